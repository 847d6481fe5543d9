//! Logins through sqlproxyd with caching_sha2_password: the fast path for
//! users with a configured password, the full path over TLS for users with
//! only a hash, and the refusals, from PyMySQL, the mariadb CLI and a raw
//! client that checks the packets and their sequence ids.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use hastack_it::sqlproxy::{config, mariadb_cli, self_signed_cert, Proxy, RawClient};
use hastack_it::{DaemonProcess, MariaDbCluster};
use hastack_proto::mysql::auth::native_hash;
use hastack_proto::mysql::packets::{parse_reply, Capabilities, Handshake, Reply};
use mysql_common::packets::{AuthPlugin, HandshakeResponse};
use mysql_common::proto::MySerialize;
use mysql_common::scramble::{scramble_native, scramble_sha256};

/// A user configured with only a mysql_native_password hash.
const HASHED: &str = "hashed";
const HASHED_PASSWORD: &str = "hashed-pw";

const SHA2: &str = "default_auth_plugin: caching_sha2_password\n";

/// sqlproxyd with the fixture's users plus [`HASHED`], TLS offered (not
/// required) and the extra top-level keys `top`.
struct Setup {
    proxy: Proxy,
    _cluster: MariaDbCluster,
    _certs: tempfile::TempDir,
}

fn start(top: &str) -> Setup {
    let cluster = MariaDbCluster::start(1).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(certs.path()).unwrap();
    let top = format!(
        "{top}tls: {{cert: {}, key: {}}}\n",
        cert.display(),
        key.display()
    );
    let hash: String = native_hash(HASHED_PASSWORD.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let port = || SocketAddr::from(([127, 0, 0, 1], hastack_it::ports::free_port()));
    let (addr, http, admin) = (port(), port(), port());
    let text = config(&cluster, addr, http, admin, "primary", "", &top).replacen(
        "users:\n",
        &format!("users:\n  - {{name: {HASHED}, password_hash: '*{hash}', schemas: [app]}}\n"),
        1,
    );
    let daemon = DaemonProcess::start("sqlproxyd", &text, http).unwrap();
    Setup {
        proxy: Proxy {
            daemon,
            addr,
            admin,
        },
        _cluster: cluster,
        _certs: certs,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Logs in with PyMySQL (which answers with the plugin the handshake names)
/// and runs a query. Prints `ok:42 <plugin> <tls|clear>` or
/// `refused <code> <message>`.
const PYMYSQL: &str = r#"
import sys, ssl, pymysql
port, user, password, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
kw = {}
if mode == "tls":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    kw["ssl"] = ctx
try:
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password,
                        database="app", connect_timeout=10, read_timeout=10, **kw)
except pymysql.err.MySQLError as e:
    print("refused", e.args[0], e.args[1])
    sys.exit(0)
cur = c.cursor()
cur.execute("SELECT CONCAT('ok:', 6 * 7)")
print(cur.fetchone()[0], c._auth_plugin_name, "tls" if c._secure else "clear")
"#;

fn pymysql(addr: SocketAddr, user: &str, password: &str, mode: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            PYMYSQL,
            &addr.port().to_string(),
            user,
            password,
            mode,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_owned()
}

#[test]
fn pymysql_logs_in_by_the_fast_path_and_queries() {
    let s = start(SHA2);
    for mode in ["clear", "tls"] {
        assert_eq!(
            pymysql(s.proxy.addr, "app", "app", mode),
            format!("ok:42 caching_sha2_password {mode}"),
            "{}",
            s.proxy.daemon.log()
        );
    }
}

#[test]
fn pymysql_wrong_password_gets_1045() {
    let s = start(SHA2);
    for (user, mode) in [("app", "clear"), ("app", "tls"), (HASHED, "tls")] {
        assert_eq!(
            pymysql(s.proxy.addr, user, "wrong", mode),
            format!(
                "refused 1045 Access denied for user '{user}'@'127.0.0.1' (using password: YES)"
            ),
            "{user} over {mode}"
        );
    }
    assert_eq!(
        pymysql(s.proxy.addr, "nobody", "app", "clear"),
        "refused 1045 Access denied for user 'nobody'@'127.0.0.1' (using password: YES)"
    );
}

#[test]
fn pymysql_hash_only_user_logs_in_by_the_full_path_over_tls() {
    let s = start(SHA2);
    assert_eq!(
        pymysql(s.proxy.addr, HASHED, HASHED_PASSWORD, "tls"),
        "ok:42 caching_sha2_password tls",
        "{}",
        s.proxy.daemon.log()
    );
}

#[test]
fn pymysql_hash_only_user_without_tls_gets_a_clear_error_not_a_hang() {
    let s = start(SHA2);
    let started = Instant::now();
    let out = pymysql(s.proxy.addr, HASHED, HASHED_PASSWORD, "clear");
    let took = Instant::now() - started;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        out.starts_with("refused 1045 Access denied for user 'hashed'@'127.0.0.1'")
            && out.contains("caching_sha2_password full authentication needs TLS"),
        "{out}"
    );
}

/// MariaDB's client library loads caching_sha2_password from here.
const MARIADB_SHA2_PLUGIN: &str =
    "/usr/lib/x86_64-linux-gnu/libmariadb3/plugin/caching_sha2_password.so";

#[test]
fn mariadb_cli_fast_path_full_path_and_refusal() {
    if !std::path::Path::new(MARIADB_SHA2_PLUGIN).exists() {
        eprintln!("skipped: no {MARIADB_SHA2_PLUGIN}");
        return;
    }
    let s = start(SHA2);
    let cli = |user: &str, password: &str, opts: &[&str]| {
        mariadb_cli(s.proxy.addr, user, password)
            .args(["--connect-timeout=10", "--batch", "--skip-column-names"])
            .args(opts)
            .args(["-e", "SELECT CONCAT('cli:', 6 * 7)", "app"])
            .output()
            .unwrap()
    };
    let sha2 = "--default-auth=caching_sha2_password";
    let tls = ["--ssl", "--skip-ssl-verify-server-cert"];
    // The CLI starts with mysql_native_password unless told otherwise; that
    // answer is checked as it is.
    for (user, password, opts) in [
        ("app", "app", vec![sha2]),
        ("app", "app", vec![]),
        (HASHED, HASHED_PASSWORD, vec![sha2, tls[0], tls[1]]),
        (HASHED, HASHED_PASSWORD, vec![]),
    ] {
        let out = cli(user, password, &opts);
        assert!(
            text(&out.stdout).contains("cli:42"),
            "{user} {opts:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let out = cli("app", "wrong", &[sha2]);
    assert!(
        text(&out.stderr).contains(
            "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)"
        ),
        "{}",
        text(&out.stderr)
    );
    let started = Instant::now();
    let out = cli(HASHED, HASHED_PASSWORD, &[sha2, "--skip-ssl"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let took = Instant::now() - started;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // libmariadb shows the ERR that answers its request for the RSA key as
    // its own 2061 ("Couldn't read RSA public key from server").
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ERROR 2061") || stderr.contains("ERROR 1045"),
        "{stderr}"
    );
}

/// Reads the greeting and sends a handshake response answering with
/// `plugin` and `answer(nonce)`.
fn raw_login(
    addr: SocketAddr,
    user: &str,
    plugin: AuthPlugin<'_>,
    answer: impl Fn(&[u8]) -> Vec<u8>,
) -> (RawClient, Handshake) {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = RawClient(stream);
    let (seq, hello) = raw.read().unwrap();
    assert_eq!(seq, 0);
    let hs = Handshake::parse(&hello).unwrap();
    let caps = Capabilities::CLIENT_PROTOCOL_41
        | Capabilities::CLIENT_SECURE_CONNECTION
        | Capabilities::CLIENT_PLUGIN_AUTH;
    let resp = HandshakeResponse::new(
        Some(answer(&hs.scramble)),
        (8, 0, 36),
        Some(user.as_bytes()),
        None::<&[u8]>,
        Some(plugin),
        caps,
        None,
        1 << 24,
    );
    let mut buf = Vec::new();
    resp.serialize(&mut buf);
    raw.write(1, &buf).unwrap();
    (raw, hs)
}

fn sha2(password: &str) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |nonce| {
        scramble_sha256(nonce, password.as_bytes())
            .unwrap()
            .to_vec()
    }
}

fn native(password: &str) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    move |nonce| {
        scramble_native(nonce, password.as_bytes())
            .unwrap()
            .to_vec()
    }
}

fn expect_ok(raw: &mut RawClient, want_seq: u8) {
    let (seq, p) = raw.read().unwrap();
    assert!(
        matches!(parse_reply(&p).unwrap(), Reply::Ok { .. }),
        "{p:?}"
    );
    assert_eq!(seq, want_seq);
}

fn expect_err(raw: &mut RawClient, want_seq: u8) -> String {
    let (seq, p) = raw.read().unwrap();
    assert_eq!(seq, want_seq);
    match parse_reply(&p).unwrap() {
        Reply::Err(e) => e.to_string(),
        other => panic!("expected an ERR, got {other:?}"),
    }
}

#[test]
fn raw_fast_path_sends_fast_auth_success_then_ok() {
    let s = start(SHA2);
    let (mut raw, hs) = raw_login(
        s.proxy.addr,
        "app",
        AuthPlugin::CachingSha2Password,
        sha2("app"),
    );
    assert_eq!(hs.auth_plugin, "caching_sha2_password");
    assert_eq!(raw.read().unwrap(), (2, vec![0x01, 0x03]));
    expect_ok(&mut raw, 3);
    // The session works after it.
    raw.write(0, &[0x0e]).unwrap();
    expect_ok(&mut raw, 1);

    let (mut raw, _) = raw_login(
        s.proxy.addr,
        "app",
        AuthPlugin::CachingSha2Password,
        sha2("bad"),
    );
    let e = expect_err(&mut raw, 2);
    assert!(
        e.contains("1045") && e.contains("(using password: YES)"),
        "{e}"
    );
}

#[test]
fn raw_native_answer_is_checked_as_is_when_sha2_is_the_default() {
    let s = start(SHA2);
    let (mut raw, _) = raw_login(
        s.proxy.addr,
        "app",
        AuthPlugin::MysqlNativePassword,
        native("app"),
    );
    expect_ok(&mut raw, 2);
    let (mut raw, _) = raw_login(
        s.proxy.addr,
        HASHED,
        AuthPlugin::MysqlNativePassword,
        native(HASHED_PASSWORD),
    );
    expect_ok(&mut raw, 2);
}

#[test]
fn raw_other_plugin_is_switched_to_caching_sha2() {
    let s = start(SHA2);
    for with_nul in [false, true] {
        let (mut raw, hs) = raw_login(
            s.proxy.addr,
            "app",
            AuthPlugin::Other(b"client_ed25519".as_slice().into()),
            |_| vec![0; 64],
        );
        let (seq, switch) = raw.read().unwrap();
        assert_eq!(seq, 2);
        let mut want = b"\xfecaching_sha2_password\0".to_vec();
        want.extend_from_slice(&hs.scramble);
        want.push(0);
        assert_eq!(switch, want);
        // PyMySQL scrambles with the whole switch data, NUL included.
        let nonce = if with_nul {
            &switch[23..]
        } else {
            &switch[23..43]
        };
        raw.write(3, &scramble_sha256(nonce, b"app").unwrap())
            .unwrap();
        assert_eq!(raw.read().unwrap(), (4, vec![0x01, 0x03]));
        expect_ok(&mut raw, 5);
    }
}

#[test]
fn raw_hash_only_user_without_tls_is_told_to_use_tls() {
    let s = start(SHA2);
    let (mut raw, _) = raw_login(
        s.proxy.addr,
        HASHED,
        AuthPlugin::CachingSha2Password,
        sha2(HASHED_PASSWORD),
    );
    assert_eq!(raw.read().unwrap(), (2, vec![0x01, 0x04]));
    // Request the RSA public key, which sqlproxyd does not have.
    raw.write(3, &[0x02]).unwrap();
    let e = expect_err(&mut raw, 4);
    assert!(
        e.contains("1045") && e.contains("caching_sha2_password full authentication needs TLS"),
        "{e}"
    );
}

#[test]
fn native_default_accepts_a_sha2_answer_and_switches_hash_only_users_to_native() {
    // No default_auth_plugin: the handshake names mysql_native_password, and
    // MySQL 8 clients answer with caching_sha2_password all the same.
    let s = start("");
    let (mut raw, hs) = raw_login(
        s.proxy.addr,
        "app",
        AuthPlugin::CachingSha2Password,
        sha2("app"),
    );
    assert_eq!(hs.auth_plugin, "mysql_native_password");
    assert_eq!(raw.read().unwrap(), (2, vec![0x01, 0x03]));
    expect_ok(&mut raw, 3);

    // Without TLS the full path cannot work for a user with only a hash;
    // mysql_native_password can.
    let (mut raw, hs) = raw_login(
        s.proxy.addr,
        HASHED,
        AuthPlugin::CachingSha2Password,
        sha2(HASHED_PASSWORD),
    );
    let (seq, switch) = raw.read().unwrap();
    assert_eq!(seq, 2);
    assert!(
        switch.starts_with(b"\xfemysql_native_password\0"),
        "{switch:?}"
    );
    raw.write(
        3,
        &scramble_native(&hs.scramble, HASHED_PASSWORD.as_bytes()).unwrap(),
    )
    .unwrap();
    expect_ok(&mut raw, 4);
}
