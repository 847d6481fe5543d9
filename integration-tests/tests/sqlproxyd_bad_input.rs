//! Bad input at sqlproxyd: unknown commands, garbage, oversized packets,
//! clients that vanish mid-result. Each gets a clear error or a clean
//! close, and the proxy keeps serving everyone else.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use hastack_it::sqlproxy::{Proxy, RawClient};
use hastack_it::{wait_for, MariaDbCluster};
use hastack_proto::mysql::packets::{parse_reply, Reply};
use mysql::prelude::Queryable;

/// A raw client logged in as app/app, with the reads these tests need.
struct Raw(RawClient);

impl Raw {
    fn login(addr: SocketAddr) -> Raw {
        Raw(RawClient::login(addr, "app", "app", Some("app")).unwrap())
    }

    fn stream(&mut self) -> &mut std::net::TcpStream {
        &mut self.0 .0
    }

    fn write(&mut self, seq: u8, payload: &[u8]) {
        self.0.write(seq, payload).unwrap();
    }

    fn read(&mut self) -> (u8, Vec<u8>) {
        self.0.read().unwrap()
    }

    /// The server's reply to a command: ERR code, or 0 for OK.
    fn reply_code(&mut self) -> u16 {
        match parse_reply(&self.read().1).unwrap() {
            Reply::Err(e) => e.code,
            Reply::Ok { .. } => 0,
            Reply::Other(b) => panic!("unexpected reply 0x{b:02x}"),
        }
    }

    fn closed(&mut self) -> bool {
        self.0.closed()
    }
}

#[test]
fn unknown_and_empty_commands_get_an_err_and_the_session_goes_on() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut raw = Raw::login(proxy.addr);
    raw.write(0, &[0xAA, 1, 2, 3]);
    assert_eq!(raw.reply_code(), 1047);
    raw.write(0, &[]);
    assert_eq!(raw.reply_code(), 1047);
    raw.write(0, b"\x03SELECT 1");
    let (_, first) = raw.read();
    assert_eq!(first, [1], "a one-column result set after the errors");
}

#[test]
fn a_16_mib_plus_one_packet_of_garbage_is_refused_cleanly() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut raw = Raw::login(proxy.addr);
    let garbage: Vec<u8> = (0..0xFF_FFFFu32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80)
        .collect();
    raw.stream().write_all(&[0xFF, 0xFF, 0xFF, 0]).unwrap();
    raw.stream().write_all(&garbage).unwrap();
    raw.write(1, &[0xEE]);
    assert_eq!(raw.reply_code(), 1047, "garbage command");
    raw.write(0, b"\x0e"); // COM_PING
    assert_eq!(raw.reply_code(), 0, "the session survived");
}

#[test]
fn an_oversized_packet_and_a_sequence_gap_close_the_connection_with_an_error() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    // Four full frames claim 64 MiB and more: refused from the headers.
    let mut raw = Raw::login(proxy.addr);
    let frame = vec![0u8; 0xFF_FFFF];
    let mut refused = false;
    for seq in 0..5u8 {
        if raw.stream().write_all(&[0xFF, 0xFF, 0xFF, seq]).is_err()
            || raw.stream().write_all(&frame).is_err()
        {
            refused = true;
            break;
        }
    }
    if !refused {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| raw.reply_code()));
        assert!(matches!(code, Ok(1153)), "{code:?}\n{}", proxy.daemon.log());
    }
    assert!(raw.closed());

    // A split packet whose second frame has the wrong sequence id.
    let mut raw = Raw::login(proxy.addr);
    raw.stream().write_all(&[0xFF, 0xFF, 0xFF, 0]).unwrap();
    raw.stream().write_all(&frame).unwrap();
    raw.stream().write_all(&[1, 0, 0, 7, 0]).unwrap();
    assert_eq!(raw.reply_code(), 1153);
    assert!(raw.closed());

    // Everyone else is still served.
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let one: i64 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
}

#[test]
fn a_client_that_vanishes_mid_result_leaves_nothing_behind() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let metric = |name: &str| -> f64 {
        let m = proxy.daemon.metrics().unwrap();
        m.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for _ in 0..3 {
        let mut raw = Raw::login(proxy.addr);
        // A large result: the client reads a few packets, then drops the socket.
        raw.write(0, b"\x03SELECT REPEAT('x', 1000) FROM seq_1_to_200000");
        for _ in 0..5 {
            raw.read();
        }
    }
    let idle = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        (metric("hastack_sqlproxyd_client_connections ") == 0.0
            && metric("hastack_sqlproxyd_backend_connections{") == 0.0)
            .then_some(())
    });
    assert!(
        idle.is_some(),
        "sessions or backend connections left open:\n{}",
        proxy.daemon.metrics().unwrap()
    );
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let n: i64 = c
        .query_first("SELECT COUNT(*) FROM seq_1_to_1000")
        .unwrap()
        .unwrap();
    assert_eq!(n, 1000);
    let processes: Vec<Option<String>> = cluster
        .conn(0)
        .unwrap()
        .query("SELECT info FROM information_schema.processlist WHERE user = 'app'")
        .unwrap();
    assert!(
        processes
            .iter()
            .flatten()
            .all(|i| !i.contains("seq_1_to_200000")),
        "a backend still runs the abandoned query: {processes:?}"
    );
}

#[test]
fn proxy_protocol_headers_carry_the_client_address_and_are_required_when_on() {
    use hastack_proto::proxy_protocol::{encode_v2, V2_SIGNATURE};
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start_with(
        &cluster,
        "replicas",
        "",
        "proxy_protocol: true\nproxy_protocol_from: [127.0.0.1/32]\n",
    )
    .unwrap();
    let client: SocketAddr = "203.0.113.7:5555".parse().unwrap();

    // v1: the refusal names the address from the header, not 127.0.0.1.
    let v1 = format!(
        "PROXY TCP4 203.0.113.7 {} 5555 {}\r\n",
        proxy.addr.ip(),
        proxy.addr.port()
    );
    let e = RawClient::login_after(proxy.addr, v1.as_bytes(), "app", "wrong", None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("'app'@'203.0.113.7'"), "{e}");
    // v2, and the session works.
    let mut raw = RawClient::login_after(
        proxy.addr,
        &encode_v2(client, proxy.addr),
        "app",
        "app",
        Some("app"),
    )
    .unwrap();
    raw.write(0, b"\x0e").unwrap();
    assert_eq!(raw.read().unwrap().1[0], 0, "COM_PING after a v2 header");
    // v2 LOCAL (a balancer's own check): the socket's address is used.
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    RawClient::login_after(proxy.addr, &local, "app", "app", None).unwrap();
    // The session shows the header's address on the admin port.
    let sessions = admin_rows(&proxy, "show @@connection");
    assert!(
        sessions
            .iter()
            .any(|r| r.get(1).map(String::as_str) == Some("203.0.113.7")
                && r.get(2).map(String::as_str) == Some("5555")),
        "{sessions:?}"
    );
    drop(raw);
    // No header at all from a listed balancer: closed without a greeting.
    let mut bare = std::net::TcpStream::connect(proxy.addr).unwrap();
    bare.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    bare.write_all(b"\x03SELECT 1 garbage that is no header\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(bare.read(&mut buf), Ok(0) | Err(_)),
        "a connection without a PROXY header was served"
    );
    assert!(
        proxy.daemon.log().contains("PROXY"),
        "{}",
        proxy.daemon.log()
    );
}

/// Rows of an admin (9066) command run as the monitor account, tab-separated.
fn admin_rows(proxy: &Proxy, sql: &str) -> Vec<Vec<String>> {
    let out = hastack_it::sqlproxy::mariadb_cli(proxy.admin, "watcher", "watcher")
        .args(["--batch", "--skip-column-names", "-e", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {:?}", out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// A PROXY header from a peer not in proxy_protocol_from would let any
/// client claim any address: it is refused, logged with the real peer and
/// counted; the same peer without a header is an ordinary client.
#[test]
fn a_proxy_header_from_a_peer_not_in_proxy_protocol_from_is_refused() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start_with(
        &cluster,
        "replicas",
        "",
        "proxy_protocol: true\nproxy_protocol_from: [127.0.0.2/32]\n",
    )
    .unwrap();
    let v1 = format!(
        "PROXY TCP4 203.0.113.7 {} 5555 {}\r\n",
        proxy.addr.ip(),
        proxy.addr.port()
    );
    let refused = RawClient::login_after(proxy.addr, v1.as_bytes(), "app", "app", Some("app"));
    assert!(
        refused.is_err(),
        "a forged header from 127.0.0.1 was served"
    );
    let v2 =
        hastack_proto::proxy_protocol::encode_v2("203.0.113.8:5555".parse().unwrap(), proxy.addr);
    let refused = RawClient::login_after(proxy.addr, &v2, "app", "app", Some("app"));
    assert!(
        refused.is_err(),
        "a forged v2 header from 127.0.0.1 was served"
    );
    let logged = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        let log = proxy.daemon.log();
        (log.matches("a PROXY protocol header from a peer not in proxy_protocol_from")
            .count()
            == 2)
            .then_some(log)
    })
    .unwrap_or_else(|| proxy.daemon.log());
    assert!(
        logged.contains("peer=127.0.0.1:") && !logged.contains("203.0.113."),
        "{logged}"
    );
    let metrics = proxy.daemon.metrics().unwrap();
    assert!(
        metrics
            .contains("hastack_sqlproxyd_proxy_headers_refused_total{reason=\"untrusted_peer\"} 2"),
        "{metrics}"
    );
    // Without a header, 127.0.0.1 is a plain client, shown as itself.
    let mut raw = RawClient::login(proxy.addr, "app", "app", Some("app")).unwrap();
    raw.write(0, b"\x0e").unwrap();
    assert_eq!(raw.read().unwrap().1[0], 0, "COM_PING from a plain client");
    let sessions = admin_rows(&proxy, "show @@connection");
    assert!(
        !sessions.is_empty()
            && sessions
                .iter()
                .all(|r| r.get(1).map(String::as_str) == Some("127.0.0.1")),
        "{sessions:?}"
    );
}

#[test]
fn max_allowed_packet_is_configurable() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start_with(&cluster, "replicas", "", "max_allowed_packet: 1M\n").unwrap();
    let mut raw = Raw::login(proxy.addr);
    // 1 MiB of query text is fine, 2 MiB is not.
    let mut ok = b"\x03SELECT LENGTH('".to_vec();
    ok.extend(std::iter::repeat_n(b'x', (1 << 20) - 100));
    ok.extend_from_slice(b"')");
    raw.write(0, &ok);
    assert_eq!(raw.read().1, [1], "a one-column result set");
    for _ in 0..4 {
        raw.read();
    }
    // The proxy may answer and stop reading before the whole packet is
    // written: a failed write here is allowed, a lost answer is not.
    let _ = raw.0.write(0, &vec![0x03; 2 << 20]);
    assert_eq!(raw.reply_code(), 1153);
    assert!(raw.closed());
}
