//! Requests bigger than the backend's max_allowed_packet (the fixture's
//! MariaDB keeps its 16M default; sqlproxyd allows 64M): the client gets
//! MariaDB's 1153 (or, when the backend hung up before its ERR could be
//! read, sqlproxyd's 2013 naming max_allowed_packet) with the sequence id
//! it expects, that of the request's last 0xFFFFFF-byte frame plus one;
//! and the session goes on.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;

use hastack_it::sqlproxy::{Proxy, RawClient};
use hastack_it::MariaDbCluster;
use hastack_proto::mysql::packets::{parse_reply, Reply};

/// `COM_QUERY SELECT LENGTH('xxx…')` of about `size` bytes.
fn big_query(size: usize) -> Vec<u8> {
    let mut p = b"\x03SELECT LENGTH('".to_vec();
    p.resize(p.len() + size, b'x');
    p.extend_from_slice(b"')");
    p
}

/// Writes `payload` as a client does: frames of 0xFFFFFF bytes, sequence
/// ids from 0; returns the id of the last frame.
fn send_split(raw: &mut RawClient, payload: &[u8]) -> u8 {
    let mut seq = 0u8;
    let mut rest = payload;
    loop {
        let n = rest.len().min(0xFF_FFFF);
        let len = (n as u32).to_le_bytes();
        // The proxy may answer and stop reading before the whole request is
        // written: a failed write is allowed, a lost or misnumbered answer is not.
        if raw.0.write_all(&[len[0], len[1], len[2], seq]).is_err()
            || raw.0.write_all(&rest[..n]).is_err()
        {
            return seq;
        }
        rest = &rest[n..];
        if n < 0xFF_FFFF {
            return seq;
        }
        seq = seq.wrapping_add(1);
    }
}

#[test]
fn a_request_over_the_backends_max_allowed_packet_gets_its_error_on_the_expected_sequence_id() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let mut raw = RawClient::login(proxy.addr, "app", "app", Some("app")).unwrap();
    // Two frames, then three: the ERR's id is 2, then 3.
    for (mib, last_frame) in [(20, 1u8), (40, 2)] {
        let last = send_split(&mut raw, &big_query(mib << 20));
        assert_eq!(last, last_frame, "{mib} MiB is {} frames", last_frame + 1);
        let (seq, reply) = raw.read().unwrap();
        let code = match parse_reply(&reply).unwrap() {
            Reply::Err(e) => e.code,
            other => panic!("expected an ERR, got {other:?}"),
        };
        assert!(
            code == 1153 || code == 2013,
            "{mib} MiB: {code}\n{}",
            proxy.daemon.log()
        );
        assert_eq!(
            seq,
            last_frame + 1,
            "{mib} MiB: the ERR must follow the request's last frame"
        );
        // The session goes on: the next statement runs.
        raw.write(0, b"\x03SELECT 1").unwrap();
        let (seq, first) = raw.read().unwrap();
        assert_eq!(
            (seq, first),
            (1, vec![1]),
            "after {mib} MiB: a one-column result set"
        );
        for _ in 0..4 {
            raw.read().unwrap();
        }
    }
}

const PYMYSQL: &str = r#"
import sys, pymysql
port = int(sys.argv[1])
c = pymysql.connect(host="127.0.0.1", port=port, user="app", password="app", database="app")
cur = c.cursor()
try:
    cur.execute("SELECT LENGTH('" + "x" * (20 << 20) + "')")
    print("no error")
except pymysql.err.MySQLError as e:
    print("error", e.args[0], e.args[1] if len(e.args) > 1 else "")
try:
    cur.execute("SELECT 41 + 1")
    print("next", cur.fetchone()[0])
except pymysql.err.MySQLError as e:
    print("next error", e.args)
"#;

fn pymysql(addr: SocketAddr) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PYMYSQL)
        .arg(addr.port().to_string())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pymysql_sending_20_mib_to_a_16m_backend_gets_1153_and_goes_on() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let out = pymysql(proxy.addr);
    // MariaDB's own error, or (when the backend hung up before its ERR
    // could be read) the proxy's, naming max_allowed_packet.
    assert!(
        out.contains("error 1153 Got a packet bigger than 'max_allowed_packet' bytes")
            || (out.contains("error 2013") && out.contains("max_allowed_packet")),
        "{out}\n{}",
        proxy.daemon.log()
    );
    assert!(!out.contains("sequence"), "{out}");
    assert!(out.contains("next 42"), "{out}");
}
