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

    /// Whether the server closes the connection (EOF or reset within the
    /// read timeout), whatever it sent before.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.stream().read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
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
