//! lbd's health checks (`lbd::probe`) against real peers: TCP connects, an
//! HTTP server in the test that answers well, badly or not at all, MariaDB
//! (the fixture), sqlproxyd speaking caching_sha2_password, and a fake
//! MySQL 8 (Python, OpenSSL's RSA) doing caching_sha2 full authentication.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hastack_it::ports::free_port;
use hastack_it::process::{command_dying_with_parent, kill_and_reap};
use hastack_it::sqlproxy::{config, Proxy};
use hastack_it::{DaemonProcess, MariaDbCluster};
use hastack_proto::mysql::auth::native_hash;
use hastack_rt::Secret;
use lbd::config::{CheckKind, CheckTarget, CheckType};
use lbd::probe::{self, Prober};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn target(address: SocketAddr, kind: CheckKind) -> CheckTarget {
    CheckTarget {
        address,
        kind,
        timeout: Duration::from_secs(2),
    }
}

fn http() -> CheckKind {
    CheckKind {
        kind: CheckType::Http,
        ..CheckKind::default()
    }
}

fn mysql(user: &str, password: &str, query: Option<&str>) -> CheckKind {
    CheckKind {
        kind: CheckType::Mysql,
        user: Some(user.into()),
        password: Some(Secret::new(password)),
        query: query.map(str::to_owned),
        ..CheckKind::default()
    }
}

/// `kind` with `allow_public_key_retrieval: true`.
fn allowing_key_retrieval(kind: CheckKind) -> CheckKind {
    CheckKind {
        allow_public_key_retrieval: true,
        ..kind
    }
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn tcp_up_and_refused() {
    rt().block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = probe::run(&target(l.local_addr().unwrap(), CheckKind::default())).await;
        assert!(
            up.as_ref().is_ok_and(|d| d.starts_with("connected in ")),
            "{up:?}"
        );
        let addr = closed_port();
        let down = probe::run(&target(addr, CheckKind::default())).await;
        assert_eq!(down, Err(format!("connect {addr}: connection refused")));
    });
}

/// An HTTP server that answers every connection with `answer` (after
/// reading the request head) and hands the request it read back; `None`:
/// reads and never answers.
async fn http_server(
    answer: Option<&'static [u8]>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
                match answer {
                    Some(a) => {
                        let _ = s.write_all(a).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (addr, rx)
}

#[test]
fn http_200_passes_and_sends_the_httpchk_request() {
    rt().block_on(async {
        let (addr, mut requests) =
            http_server(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")).await;
        let found = probe::run(&target(addr, http())).await;
        assert_eq!(found, Ok("200: ok".into()));
        let req = requests.recv().await.unwrap();
        assert_eq!(
            req,
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: lbd-check\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        );
        // Method, URI and Host as configured; one Prober, run twice.
        let kind = CheckKind {
            method: Some("OPTIONS".into()),
            uri: Some("/status?x=1".into()),
            host: Some("db1.example".into()),
            ..http()
        };
        let prober = Prober::new(&target(addr, kind)).unwrap();
        for _ in 0..2 {
            assert!(prober.run().await.is_ok());
            let req = requests.recv().await.unwrap();
            assert!(
                req.starts_with("OPTIONS /status?x=1 HTTP/1.1\r\nHost: db1.example\r\n"),
                "{req}"
            );
        }
    });
}

#[test]
fn http_503_fails_with_checkds_reason() {
    rt().block_on(async {
        let (addr, _r) = http_server(Some(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 32\r\n\r\nsqlproxyd down: connect refused\n",
        ))
        .await;
        let found = probe::run(&target(addr, http())).await;
        assert_eq!(found, Err("503: sqlproxyd down: connect refused".into()));
        // Unless 503 is what is expected.
        let kind = CheckKind {
            expect_status: vec![503],
            ..http()
        };
        assert!(probe::run(&target(addr, kind)).await.is_ok());
        let kind = CheckKind {
            expect_rstatus: Some("^2".into()),
            ..http()
        };
        let found = probe::run(&target(addr, kind)).await;
        assert_eq!(
            found,
            Err("503: sqlproxyd down: connect refused (expected a status matching ^2)".into())
        );
    });
}

#[test]
fn http_garbage_silence_and_refusal_fail_clearly() {
    rt().block_on(async {
        let (addr, _r) = http_server(Some(b"SSH-2.0-OpenSSH_9.2p1\r\n")).await;
        let found = probe::run(&target(addr, http())).await.unwrap_err();
        assert!(found.starts_with("not an HTTP response"), "{found}");
        assert!(found.contains("SSH-2.0-OpenSSH_9.2p1"), "{found}");

        let (addr, _r) = http_server(Some(b"HTTP/1.1 200 OK\r\nX-Half: ")).await;
        let found = probe::run(&target(addr, http())).await.unwrap_err();
        assert!(
            found.contains("closed the connection mid-answer"),
            "{found}"
        );

        let (addr, _r) = http_server(None).await;
        let t = CheckTarget {
            timeout: Duration::from_millis(300),
            ..target(addr, http())
        };
        let found = probe::run(&t).await;
        assert_eq!(
            found,
            Err(format!("no HTTP answer from {addr} within 300ms"))
        );

        let addr = closed_port();
        let found = probe::run(&target(addr, http())).await;
        assert_eq!(found, Err(format!("connect {addr}: connection refused")));
    });
}

/// A server that accepts and closes at once, unread (`read_first`: after
/// reading the request), as checkd does to a peer a limit refuses.
async fn closing_server(read_first: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            if read_first {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
            }
            drop(s);
        }
    });
    addr
}

#[test]
fn http_closed_or_reset_before_a_status_says_the_check_was_refused() {
    rt().block_on(async {
        for read_first in [false, true] {
            let addr = closing_server(read_first).await;
            let why = probe::run(&target(addr, http())).await.unwrap_err();
            assert!(
                why.starts_with("check refused: connection ")
                    && why.contains(&format!("by {addr} before an HTTP status"))
                    && why.contains("cps pause"),
                "read_first {read_first}: {why}"
            );
        }
    });
    // The real thing: checkd paused by a flood from this address.
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = free_port();
    let config = format!(
        "admin_http:\n  listen: {admin}\nshutdown_grace: 1s\nservices:\n  status:\n    type: http_check\n    bind: 127.0.0.1:{port}\n    cps: {{rate: 2, pause: 60s}}\n    probe: {{exec: {{command: /bin/true}}}}\n"
    );
    let _checkd = DaemonProcess::start("checkd", &config, admin).unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let why = rt().block_on(async {
        for _ in 0..200 {
            if let Err(why) = probe::run(&target(at, http())).await {
                return why;
            }
        }
        panic!("200 checks did not trip cps rate 2");
    });
    assert!(why.starts_with("check refused: connection "), "{why}");
}

#[test]
fn http_against_checkd() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = free_port();
    let db = cluster.addr(0);
    let config = format!(
        "admin_http:\n  listen: {admin}\nshutdown_grace: 1s\nservices:\n  mycat_status:\n    type: http_check\n    bind: 127.0.0.1:{port}\n    probe:\n      mysql: {{address: {db}, user: app, password: wrong, query: SELECT 1, timeout: 1s}}\n      cache: 0s\n"
    );
    let _checkd = DaemonProcess::start("checkd", &config, admin).unwrap();
    let found = rt().block_on(probe::run(&target(
        SocketAddr::from(([127, 0, 0, 1], port)),
        http(),
    )));
    let why = found.unwrap_err();
    assert!(
        why.starts_with("503: DOWN mycat_status: mysql") && why.contains("Access denied"),
        "{why}"
    );
}

#[test]
fn mysql_check_against_mariadb() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let db = cluster.addr(0);
    let rt = rt();
    let ok = rt
        .block_on(probe::run(&target(
            db,
            mysql("app", "app", Some("SELECT 1")),
        )))
        .unwrap();
    assert!(
        ok.starts_with("logged in as app to 1")
            && ok.contains("MariaDB")
            && ok.contains(", SELECT 1 answered 1 in "),
        "{ok}"
    );
    // No query: the login is the check.
    assert!(rt
        .block_on(probe::run(&target(db, mysql("monitor", "monitor", None))))
        .is_ok());

    let bad = rt
        .block_on(probe::run(&target(db, mysql("app", "nope", None))))
        .unwrap_err();
    assert!(
        bad.starts_with("login as app: ERROR 1045 (28000): Access denied for user 'app'@"),
        "{bad}"
    );
    let bad = rt
        .block_on(probe::run(&target(
            db,
            mysql("app", "app", Some("SELECT nope FROM app.missing")),
        )))
        .unwrap_err();
    assert!(
        bad.starts_with("SELECT nope FROM app.missing: ERROR 1146 (42S02)"),
        "{bad}"
    );
    let addr = closed_port();
    let bad = rt
        .block_on(probe::run(&target(addr, mysql("app", "app", None))))
        .unwrap_err();
    assert_eq!(bad, format!("connect {addr}: connection refused"));
}

/// A user configured with only a mysql_native_password hash: its
/// caching_sha2_password logins need the full path.
const HASHED: &str = "hashed";

fn sqlproxyd_sha2(cluster: &MariaDbCluster) -> Proxy {
    let hash: String = native_hash(b"hashed-pw")
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (addr, http, admin) = (port(), port(), port());
    let text = config(
        cluster,
        addr,
        http,
        admin,
        "primary",
        "",
        "default_auth_plugin: caching_sha2_password\n",
    )
    .replacen(
        "users:\n",
        &format!("users:\n  - {{name: {HASHED}, password_hash: '*{hash}', schemas: [app]}}\n"),
        1,
    );
    let daemon = DaemonProcess::start("sqlproxyd", &text, http).unwrap();
    Proxy {
        daemon,
        addr,
        admin,
    }
}

#[test]
fn mysql_check_against_sqlproxyd_with_caching_sha2() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = sqlproxyd_sha2(&cluster);
    let rt = rt();
    // The fast path (0x01 0x03, then OK), then a query through the proxy.
    let ok = rt
        .block_on(probe::run(&target(
            proxy.addr,
            mysql("app", "app", Some("SELECT 1")),
        )))
        .unwrap();
    assert!(ok.contains("SELECT 1 answered 1"), "{ok}");
    let bad = rt
        .block_on(probe::run(&target(proxy.addr, mysql("app", "nope", None))))
        .unwrap_err();
    assert!(
        bad.starts_with("login as app: ERROR 1045 (28000): Access denied"),
        "{bad}"
    );
    // The full path over plain TCP: by default the check does not ask
    // for the key and says why.
    let bad = rt
        .block_on(probe::run(&target(
            proxy.addr,
            mysql(HASHED, "hashed-pw", None),
        )))
        .unwrap_err();
    assert!(
        bad.starts_with(&format!("login as {HASHED}: the server asks for full caching_sha2_password authentication over an unencrypted connection"))
            && bad.contains("allow_public_key_retrieval: true"),
        "{bad}"
    );
    // Allowed, the key is asked for; sqlproxyd does full auth over TLS
    // only and says so.
    let bad = rt
        .block_on(probe::run(&target(
            proxy.addr,
            allowing_key_retrieval(mysql(HASHED, "hashed-pw", None)),
        )))
        .unwrap_err();
    assert!(
        bad.contains("caching_sha2_password full authentication needs TLS"),
        "{bad}"
    );
}

/// A MySQL 8 stand-in for caching_sha2_password full authentication: it
/// greets naming the plugin, asks for full auth, sends a fresh RSA key on
/// request and checks the password with OpenSSL's RSA-OAEP. `mode`
/// `blocked` greets with an ERR instead.
const FAKE_MYSQL8: &str = r##"
import os, random, socket, struct, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

password, mode = sys.argv[1].encode(), sys.argv[2]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)

def recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b

def recv(c):
    h = recvn(c, 4)
    return h[3], recvn(c, int.from_bytes(h[:3], "little"))

def send(c, seq, payload):
    c.sendall(len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload)

def err(code, state, msg):
    return b"\xff" + struct.pack("<H", code) + b"#" + state + msg

while True:
    c, _ = srv.accept()
    try:
        if mode == "blocked":
            send(c, 0, b"\xff" + struct.pack("<H", 1129) + b"Host '127.0.0.1' is blocked because of many connection errors")
            continue
        nonce = bytes(random.randrange(33, 127) for _ in range(20))
        caps = 0x1 | 0x200 | 0x2000 | 0x8000 | 0x80000
        hs = (b"\x0a8.0.36-fake\x00" + struct.pack("<I", 1) + nonce[:8] + b"\x00"
              + struct.pack("<H", caps & 0xFFFF) + bytes([45]) + struct.pack("<H", 2)
              + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10
              + nonce[8:] + b"\x00" + b"caching_sha2_password\x00")
        send(c, 0, hs)
        seq, _answer = recv(c)
        send(c, seq + 1, b"\x01\x04")
        seq, req = recv(c)
        if req != b"\x02":
            send(c, seq + 1, err(1045, b"28000", b"expected a public key request"))
            continue
        send(c, seq + 1, b"\x01" + pem)
        seq, enc = recv(c)
        plain = key.decrypt(enc, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
        got = bytes(b ^ nonce[i % 20] for i, b in enumerate(plain))
        if got == password + b"\x00":
            send(c, seq + 1, b"\x00\x00\x00\x02\x00\x00\x00")
        else:
            send(c, seq + 1, err(1045, b"28000", b"Access denied for user 'app'@'localhost' (using password: YES)"))
        recv(c)  # COM_QUIT
    except Exception as e:
        print("fake mysql:", e, file=sys.stderr, flush=True)
    finally:
        c.close()
"##;

struct Fake(Child, SocketAddr);

impl Drop for Fake {
    fn drop(&mut self) {
        kill_and_reap(&mut self.0);
    }
}

fn fake_mysql8(password: &str, mode: &str) -> Fake {
    let mut child = command_dying_with_parent("/usr/bin/python3")
        .args(["-c", FAKE_MYSQL8, password, mode])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    Fake(child, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn have_python_cryptography() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn caching_sha2_full_authentication_with_the_servers_rsa_key() {
    if !have_python_cryptography() {
        eprintln!("skipped: no python3 cryptography");
        return;
    }
    let fake = fake_mysql8("s3cret", "full");
    let rt = rt();
    let allowed = |password| allowing_key_retrieval(mysql("app", password, None));
    let ok = rt
        .block_on(probe::run(&target(fake.1, allowed("s3cret"))))
        .unwrap();
    assert!(
        ok.starts_with("logged in as app to 8.0.36-fake in "),
        "{ok}"
    );
    let bad = rt
        .block_on(probe::run(&target(fake.1, allowed("wrong"))))
        .unwrap_err();
    assert_eq!(
        bad,
        "login as app: ERROR 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)"
    );
}

/// A man in the middle answering like a MySQL 8 that wants full
/// authentication: without `allow_public_key_retrieval` the check never
/// asks for a key, so it never sends a password the key could open.
#[test]
fn no_public_key_is_asked_for_over_plain_tcp_by_default() {
    if !have_python_cryptography() {
        eprintln!("skipped: no python3 cryptography");
        return;
    }
    let fake = fake_mysql8("s3cret", "full");
    let bad = rt()
        .block_on(probe::run(&target(fake.1, mysql("app", "s3cret", None))))
        .unwrap_err();
    assert_eq!(
        bad,
        "login as app: the server asks for full caching_sha2_password authentication over an \
         unencrypted connection; the password would be exposed to whoever sends the RSA key: \
         this connection speaks no TLS, so prime the server's cache (log in once as this user \
         over TLS or the server's socket) or set allow_public_key_retrieval: true (on the lbd \
         or checkd check, or on the sqlproxyd data host)"
    );
}

#[test]
fn an_err_greeting_is_the_servers_message() {
    if !have_python_cryptography() {
        eprintln!("skipped: no python3 cryptography");
        return;
    }
    let fake = fake_mysql8("x", "blocked");
    let bad = rt()
        .block_on(probe::run(&target(fake.1, mysql("app", "x", None))))
        .unwrap_err();
    assert!(
        bad.starts_with("the server refused the connection: ERROR 1129")
            && bad.contains("Host '127.0.0.1' is blocked"),
        "{bad}"
    );
}
