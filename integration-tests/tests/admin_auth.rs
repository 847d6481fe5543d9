//! The admin endpoint's credential (DESIGN.md §5 "Security model"), on
//! every daemon's built binary: `POST /actions/*` needs `admin_http.auth`'s
//! credential, an `Origin` header refuses it, reads stay open on loopback,
//! a non-loopback listener without a credential does not start, and a new
//! token file takes effect on SIGHUP.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use hastack_it::daemon::{bearer, bin_path, http_request, small_config};
use hastack_it::ports::free_port;
use hastack_it::{wait_for, DaemonProcess};

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// `POST path` with `headers`: (status, whole response).
fn post(d: &DaemonProcess, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http_request(d.admin, "POST", path, headers)
}

fn get(d: &DaemonProcess, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http_request(d.admin, "GET", path, headers)
}

/// A request whose Authorization header is `raw` bytes, whatever they are.
fn raw_authorization(addr: SocketAddr, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = b"POST /actions/x HTTP/1.1\r\nHost: t\r\nAuthorization: ".to_vec();
    req.extend_from_slice(raw);
    req.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The request got past the credential check to the daemon's action (which
/// has no action `x`: 404, or lbd's 400 for its missing arguments).
fn passed(code: u16) -> bool {
    matches!(code, 400 | 404)
}

/// The value of `hastack_<daemon>_admin_refused_total{reason="<reason>"}`.
fn refused(d: &DaemonProcess, daemon: &str, reason: &str) -> u64 {
    let series = format!("hastack_{daemon}_admin_refused_total{{reason=\"{reason}\"}} ");
    let m = d.metrics().unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{m}"))
}

fn actions_need_the_token_and_refuse_an_origin(daemon: &str) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "first-token\n").unwrap();
    let admin = admin_addr();
    let auth = format!("  auth:\n    token_file: {}\n", token.display());
    let d = DaemonProcess::start(daemon, &small_config(daemon, admin, &auth), admin).unwrap();

    let (code, resp) = post(&d, "/actions/x", &[]);
    assert_eq!(code, 401, "{daemon}, no credential: {resp}");
    assert!(
        resp.contains("WWW-Authenticate: Bearer realm=")
            || resp.contains("www-authenticate: Bearer realm="),
        "{resp}"
    );
    assert!(resp.contains("Authorization: Bearer TOKEN"), "{resp}");
    let wrong = bearer("second-token");
    let (code, resp) = post(&d, "/actions/x", &[(wrong.0, &wrong.1)]);
    assert_eq!(code, 401, "{daemon}, wrong credential: {resp}");
    assert!(resp.contains("not accepted"), "{resp}");
    let right = bearer("first-token");
    let (code, resp) = post(&d, "/actions/x", &[(right.0, &right.1)]);
    assert!(passed(code), "{daemon}, right credential: {resp}");
    assert!(
        resp.contains("\"error\""),
        "{daemon}: the daemon's own answer: {resp}"
    );
    let (code, resp) = post(
        &d,
        "/actions/x",
        &[(right.0, &right.1), ("Origin", "http://evil.example")],
    );
    assert_eq!(
        code, 403,
        "{daemon}, right credential and an Origin: {resp}"
    );
    assert!(resp.contains("Origin"), "{resp}");
    // Reads stay open (no protect_reads).
    assert_eq!(get(&d, "/status", &[]).0, 200);
    // Header bytes of any kind: a 401, never a crash.
    for raw in [
        &b"\xff\xfe\x80"[..],
        b"Basic \xc3\x28",
        b"Bearer",
        b"Basic ====",
        b"",
    ] {
        assert_eq!(raw_authorization(admin, raw), 401, "{daemon}: {raw:?}");
    }
    assert_eq!(get(&d, "/status", &[]).0, 200, "{daemon} died\n{}", d.log());

    assert_eq!(refused(&d, daemon, "missing"), 1);
    assert_eq!(refused(&d, daemon, "wrong"), 1 + 5);
    assert_eq!(refused(&d, daemon, "origin"), 1);
    assert_eq!(refused(&d, daemon, "not_configured"), 0);
    let log = d.log();
    assert_eq!(
        log.matches("admin_http: request refused").count(),
        8,
        "one line per refused request:\n{log}"
    );
    assert!(log.contains("peer=127.0.0.1:"), "{log}");
    assert!(!log.contains("first-token"), "the token is logged:\n{log}");

    // Rotation: a new token file, SIGHUP; then only the new token works.
    // protect_reads and a basic user come with it.
    std::fs::write(&token, "second-token\n").unwrap();
    let auth = format!(
        "  auth:\n    token_file: {}\n    users: [{{name: ops, password: ops-pw}}]\n    protect_reads: true\n",
        token.display()
    );
    d.write_config(&small_config(daemon, admin, &auth)).unwrap();
    d.reload().unwrap();
    let protected = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        (get(&d, "/status", &[]).0 == 401).then_some(())
    });
    assert!(
        protected.is_some(),
        "{daemon}: reload not applied\n{}",
        d.log()
    );
    assert_eq!(post(&d, "/actions/x", &[(right.0, &right.1)]).0, 401);
    assert!(passed(post(&d, "/actions/x", &[(wrong.0, &wrong.1)]).0));
    // ops:ops-pw
    let basic = ("Authorization", "Basic b3BzOm9wcy1wdw==");
    let (code, resp) = get(&d, "/status", &[basic]);
    assert_eq!(code, 200, "{resp}");
    assert!(resp.contains("\"config_generation\": 2"), "{resp}");
    assert_eq!(get(&d, "/metrics", &[(wrong.0, &wrong.1)]).0, 200);
    assert_eq!(get(&d, "/metrics", &[]).0, 401);
    assert!(passed(post(&d, "/actions/x", &[basic]).0));
    let (code, resp) = get(&d, "/status", &[("Authorization", "Basic b3BzOm5vcGU=")]);
    assert_eq!(code, 401, "{resp}");
    assert!(resp.contains("Basic realm="), "{resp}");

    // A token file that cannot be read at reload: refused, the old one stays.
    std::fs::remove_file(&token).unwrap();
    d.reload().unwrap();
    let refused_reload = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        d.log().contains("reload refused").then_some(())
    });
    assert!(refused_reload.is_some(), "{}", d.log());
    assert!(d.log().contains("cannot read token file"), "{}", d.log());
    assert!(passed(post(&d, "/actions/x", &[(wrong.0, &wrong.1)]).0));
}

fn without_a_credential_reads_are_open_and_no_action_runs(daemon: &str) {
    let admin = admin_addr();
    let d = DaemonProcess::start(daemon, &small_config(daemon, admin, ""), admin).unwrap();
    assert_eq!(get(&d, "/status", &[]).0, 200);
    assert_eq!(get(&d, "/metrics", &[]).0, 200);
    let any = bearer("anything");
    let (code, resp) = post(&d, "/actions/x", &[(any.0, &any.1)]);
    assert_eq!(code, 403, "{resp}");
    assert!(resp.contains("admin_http.auth.token_file"), "{resp}");
    assert_eq!(refused(&d, daemon, "not_configured"), 1);
}

fn check(daemon: &str, config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{daemon}.yaml"));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin_path(daemon).unwrap())
        .args(["-f", path.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_errors_name_the_key_and_the_file(daemon: &str) {
    let open: SocketAddr = "0.0.0.0:9999".parse().unwrap();
    let (code, err) = check(daemon, &small_config(daemon, open, ""));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(".yaml:2:3: admin_http.listen: 0.0.0.0:9999 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("set admin_http.auth.token_file"), "{err}");

    let missing = "  auth: {token_file: /nonexistent/hastack-admin.token}\n";
    let (code, err) = check(daemon, &small_config(daemon, admin_addr(), missing));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "admin_http.auth.token_file: cannot read token file /nonexistent/hastack-admin.token"
        ),
        "{err}"
    );
}

macro_rules! per_daemon {
    ($($daemon:ident),+) => {
        $(
            mod $daemon {
                #[test]
                fn actions_need_the_token_and_refuse_an_origin() { super::actions_need_the_token_and_refuse_an_origin(stringify!($daemon)) }
                #[test]
                fn without_a_credential_reads_are_open_and_no_action_runs() { super::without_a_credential_reads_are_open_and_no_action_runs(stringify!($daemon)) }
                #[test]
                fn config_errors_name_the_key_and_the_file() { super::config_errors_name_the_key_and_the_file(stringify!($daemon)) }
            }
        )+
    };
}

per_daemon!(vrrpd, lbd, sqlproxyd, checkd);
