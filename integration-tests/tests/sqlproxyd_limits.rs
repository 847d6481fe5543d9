//! Limits a client hits before it costs sqlproxyd memory or backend work:
//! max_connections (ERR 1040 in place of the handshake), max_user_connections
//! (ERR 1203 after authentication), the pre-login packet size, and the bytes
//! of remembered session state.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use hastack_it::sqlproxy::{mariadb_cli, Proxy, RawClient};
use hastack_it::{wait_for, MariaDbCluster};
use hastack_proto::mysql::packets::{parse_reply, Reply};
use mysql::prelude::Queryable;

fn server_code(e: anyhow::Error) -> u16 {
    match e.downcast_ref::<mysql::Error>() {
        Some(mysql::Error::MySqlError(e)) => e.code,
        _ => panic!("not a server error: {e:#}"),
    }
}

/// The code of the ERR `raw` reads next.
fn err_code(raw: &mut RawClient) -> (u8, u16) {
    let (seq, payload) = raw.read().unwrap();
    match parse_reply(&payload).unwrap() {
        Reply::Err(e) => (seq, e.code),
        other => panic!("expected an ERR, got {other:?}"),
    }
}

fn refused(proxy: &Proxy, reason: &str) -> String {
    let metrics = proxy.daemon.metrics().unwrap();
    let series = format!("hastack_sqlproxyd_connections_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .unwrap_or("none")
        .to_owned()
}

#[test]
fn past_max_connections_clients_get_1040_after_login_then_in_place_of_the_handshake() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start_with(&cluster, "primary", "", "max_connections: 3\n").unwrap();
    let held: Vec<_> = (0..3)
        .map(|_| proxy.conn("app", "app", Some("app")).unwrap())
        .collect();
    // As from MariaDB: a handshake, the login, then 1040 in place of its OK.
    let e = proxy.conn("app", "app", Some("app")).unwrap_err();
    assert_eq!(server_code(e), 1040);
    let err = RawClient::login(proxy.addr, "app", "app", Some("app"))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("Too many connections"),
        "{err:#}"
    );
    // The mariadb CLI, which refuses an error in place of the handshake
    // (it cannot tell it from a forged one), reports MariaDB's error.
    let out = mariadb_cli(proxy.addr, "app", "app")
        .args(["-e", "SELECT 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR 1040 (08004)") && stderr.contains("Too many connections"),
        "{stderr}"
    );
    assert_eq!(refused(&proxy, "max_connections"), "3");
    // Clients that hold the overflow places in their login (3 past 3)...
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let s = TcpStream::connect(proxy.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut raw = RawClient(s);
            assert_eq!(raw.read().unwrap().0, 0, "a handshake");
            raw
        })
        .collect();
    // ... leave the next one an ERR with sequence id 0 in place of the
    // handshake, then a close: no login, no backend work.
    let s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = RawClient(s);
    assert_eq!(err_code(&mut raw), (0, 1040));
    assert!(raw.closed());
    assert_eq!(refused(&proxy, "max_connections"), "4");
    // Logged with the client's address, once for the four: a flood of
    // refusals is not a flood of log lines (the metric counts them all).
    let log = proxy.daemon.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client connection refused") && l.contains("max_connections"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("127.0.0.1:"), "{log}");
    // A place given back is a place for the next client.
    drop(held);
    drop(waiting);
    let mut c = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        proxy.conn("app", "app", Some("app")).ok()
    })
    .unwrap();
    let one: u32 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
}

#[test]
fn max_user_connections_answers_the_users_next_login_with_1203() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start_with(&cluster, "primary", "", "max_user_connections: 2\n").unwrap();
    let mut held: Vec<_> = (0..2)
        .map(|_| proxy.conn("app", "app", Some("app")).unwrap())
        .collect();
    let e = proxy.conn("app", "app", Some("app")).unwrap_err();
    assert_eq!(server_code(e), 1203);
    // On the wire: the ERR comes in place of the login's OK (sequence 2).
    let err = RawClient::login(proxy.addr, "app", "app", Some("app"))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}")
            .contains("User app already has more than 'max_user_connections' active connections"),
        "{err:#}"
    );
    // Another user has its own count.
    let mut r = proxy.conn("reader", "reader", Some("app")).unwrap();
    let one: u32 = r.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
    assert_eq!(refused(&proxy, "max_user_connections"), "2");
    // A session that ends gives its place back.
    held.pop();
    let c = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        proxy.conn("app", "app", Some("app")).ok()
    });
    assert!(c.is_some(), "no place again after a session ended");
}

#[test]
fn a_login_packet_over_64_kib_is_refused_before_its_payload_is_read() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = RawClient(s.try_clone().unwrap());
    let (seq, _hello) = raw.read().unwrap();
    assert_eq!(seq, 0);
    // A 1 MiB "handshake response": the header and a first KiB only.
    let len: u32 = 1 << 20;
    let b = len.to_le_bytes();
    s.write_all(&[b[0], b[1], b[2], 1]).unwrap();
    s.write_all(&[0u8; 1024]).unwrap();
    assert_eq!(err_code(&mut raw), (2, 1153));
    assert!(raw.closed());
    assert_eq!(refused(&proxy, "login_packet_too_large"), "1");
    // Everyone else is served.
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let one: u32 = c.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
}

/// VmRSS of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn many_large_session_sets_keep_remembered_state_and_rss_bounded() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let small = ["SET @small = 1", "SET @small2 = 2"];
    let big = format!("SET @v = '{}'", "x".repeat(4 << 20));
    c.query_drop(small[0]).unwrap();
    // One first, so that buffers have their size before measuring.
    c.query_drop(&big).unwrap();
    let before = rss(proxy.daemon.pid());
    for _ in 0..50 {
        c.query_drop(&big).unwrap();
    }
    c.query_drop(small[1]).unwrap();
    let after = rss(proxy.daemon.pid());
    let grown = after.saturating_sub(before);
    println!("VmRSS before {before} after {after}: grew {grown} bytes");
    // Only the small SETs (and the schema name) are remembered.
    let want = (small[0].len() + small[1].len() + "app".len()) as u64;
    let state = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        let status = proxy.daemon.status().ok()?;
        let s = status["state"]["sessions"][0]["state_bytes"].as_u64()?;
        (s == want).then_some(s)
    });
    assert_eq!(
        state,
        Some(want),
        "{:#}",
        proxy.daemon.status().unwrap()["state"]["sessions"]
    );
    // The admin port shows the same.
    let out = mariadb_cli(proxy.admin, "watcher", "watcher")
        .args(["--batch", "-e", "show @@session"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(|l| l.split('\t').collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let col = header.iter().position(|c| *c == "STATE_BYTES").unwrap();
    let row = lines.next().unwrap();
    assert_eq!(row[col], want.to_string(), "{text}");
    // 50 remembered 4 MiB SETs would be 200 MiB.
    assert!(grown < 32 << 20, "VmRSS grew {grown} bytes");
    // The session still works, on its write connection, with its variables.
    let v: String = c
        .query_first("SELECT CONCAT(@small, @small2, LENGTH(@v))")
        .unwrap()
        .unwrap();
    assert_eq!(v, format!("12{}", 4 << 20));
}
