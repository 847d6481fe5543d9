//! Every daemon's process contract (DESIGN.md §4), run against the built
//! binaries: CLI, config errors with locations and exit codes, the admin
//! endpoint, SIGHUP reload (good and bad), graceful SIGTERM.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use hastack_it::daemon::{admin_auth_yaml, bin_path, small_config};
use hastack_it::ports::free_port;
use hastack_it::{wait_for, DaemonProcess};
use nix::sys::signal::Signal;

/// A small valid config for each daemon, listening for admin on `{admin}`.
fn config(daemon: &str, admin: SocketAddr) -> String {
    small_config(daemon, admin, "")
}

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn run(daemon: &str, args: &[&str]) -> Output {
    Command::new(bin_path(daemon).unwrap())
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example(daemon: &str) -> String {
    format!("{}/../configs/{daemon}.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn version_help_and_check(daemon: &str) {
    let out = run(daemon, &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("{daemon} {}\n", env!("CARGO_PKG_VERSION"))
    );

    let out = run(daemon, &["--help"]);
    assert!(out.status.success());
    for flag in ["--config", "--check", "--log-format", "--log-level"] {
        assert!(
            text(&out.stdout).contains(flag),
            "{daemon} --help lacks {flag}"
        );
    }

    // The example is the packaged config: valid, but refused while a
    // password in it is still the placeholder, each one named.
    let out = run(daemon, &["-f", &example(daemon), "--check"]);
    let waits_for_secrets = std::fs::read_to_string(example(daemon))
        .unwrap()
        .lines()
        .any(|l| !l.trim_start().starts_with('#') && l.contains("__CHANGE_ME__"));
    if waits_for_secrets {
        let errors = text(&out.stderr);
        let lines: Vec<&str> = errors.lines().filter(|l| l.contains(".yaml:")).collect();
        assert_eq!(out.status.code(), Some(2), "{daemon}: {errors}");
        assert!(
            !lines.is_empty()
                && lines
                    .iter()
                    .all(|l| l.contains(": still the packaged placeholder __CHANGE_ME__; set ")),
            "{daemon} --check on its example: {errors}"
        );
    } else {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{daemon} --check on its example: {}",
            text(&out.stderr)
        );
    }

    // (A valid config: the example's placeholders would be found first.)
    let lab = format!(
        "{}/../configs/lab/{daemon}-1.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = run(daemon, &["-f", &lab, "--log-level", "nope=verbose"]);
    assert_eq!(out.status.code(), Some(2), "bad --log-level");
    assert!(
        text(&out.stderr).contains("--log-level \"nope=verbose\""),
        "{}",
        text(&out.stderr)
    );

    // No config given is a usage error.
    assert_eq!(run(daemon, &[]).status.code(), Some(2));
    assert_eq!(run(daemon, &["--no-such-flag"]).status.code(), Some(2));
}

fn bad_configs_exit_2_naming_the_problem(daemon: &str) {
    let dir = tempfile::tempdir().unwrap();
    let good = config(daemon, admin_addr());
    let cases: Vec<(&str, String, String)> = vec![
        (
            "unknown key",
            format!("{good}surprise: 1\n"),
            "unknown field `surprise`".into(),
        ),
        (
            "wrong type",
            good.replace("shutdown_grace: 2s", "shutdown_grace: soon"),
            "shutdown_grace: expected a duration".into(),
        ),
        (
            "bad address",
            good.replace("listen: 127.0.0.1:", "listen: 127.0.0.256:"),
            "admin_http.listen:".into(),
        ),
        ("empty file", String::new(), "the file is empty".into()),
        ("not YAML", "admin_http: [\n".into(), "".into()),
    ];
    for (what, body, expected) in cases {
        let path = dir.path().join(format!("{daemon}.yaml"));
        std::fs::write(&path, &body).unwrap();
        for args in [
            vec!["-f", path.to_str().unwrap(), "--check"],
            vec!["-f", path.to_str().unwrap()],
        ] {
            let out = run(daemon, &args);
            let err = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{daemon}, {what}, {args:?}: {err}"
            );
            let first = err.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("{}:", path.display())),
                "{daemon}, {what}: {err}"
            );
            assert!(
                first.contains(&expected),
                "{daemon}, {what}: want {expected:?} in {err}"
            );
            if what != "empty file" {
                let loc: Vec<&str> = first.splitn(4, ':').collect();
                assert!(
                    loc[1].parse::<u32>().is_ok() && loc[2].parse::<u32>().is_ok(),
                    "{daemon}, {what}: no line:col in {first}"
                );
            }
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let out = run(daemon, &["-f", "/nonexistent/x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).lines().next(),
        Some("/nonexistent/x.yaml: no such file")
    );
    // A directory is as unreadable as a file without permission (root reads those).
    let out = run(daemon, &["-f", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!("{}: cannot read", dir.path().display())),
        "{}",
        text(&out.stderr)
    );
}

fn serves_status_and_metrics(daemon: &str) {
    let admin = admin_addr();
    let d = DaemonProcess::start(daemon, &config(daemon, admin), admin).unwrap();
    let s = d.status().unwrap();
    assert_eq!(s["name"], daemon);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["config_generation"], 1);
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["config_file"], d.config_path.to_str().unwrap());
    assert!(s["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert!(s["state"].is_object(), "{s}");
    assert!(
        !s.to_string().contains("\"monitor\"")
            || daemon != "sqlproxyd"
            || !s.to_string().contains("password")
    );

    let m = d.metrics().unwrap();
    for series in [
        format!(
            "hastack_{daemon}_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        format!("hastack_{daemon}_uptime_seconds "),
        format!("hastack_{daemon}_config_generation 1"),
        format!("hastack_{daemon}_config_reloads_total{{result=\"ok\"}} 0"),
        format!("hastack_{daemon}_config_reloads_total{{result=\"error\"}} 0"),
    ] {
        assert!(
            m.contains(&series),
            "{daemon} /metrics lacks {series:?}:\n{m}"
        );
    }
    assert_eq!(d.get("/nope").unwrap().0, 404);
}

fn reload_good_then_bad(daemon: &str) {
    let admin = admin_addr();
    let d = DaemonProcess::start(daemon, &config(daemon, admin), admin).unwrap();
    let generation = |d: &DaemonProcess| d.status().unwrap()["config_generation"].as_u64().unwrap();

    d.write_config(&config(daemon, admin).replace("shutdown_grace: 2s", "shutdown_grace: 3s"))
        .unwrap();
    d.reload().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            (generation(&d) == 2).then_some(())
        })
        .is_some(),
        "{daemon}: a good reload did not bump the generation\n{}",
        d.log()
    );
    assert_eq!(d.status().unwrap()["last_reload"]["result"], "ok");

    d.write_config(&format!("{}bogus_key: 1\n", config(daemon, admin)))
        .unwrap();
    d.reload().unwrap();
    let refused = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let s = d.status().ok()?;
        (s["last_reload"]["result"] == "error").then_some(s)
    })
    .unwrap_or_else(|| panic!("{daemon}: bad reload not reported\n{}", d.log()));
    assert_eq!(
        refused["config_generation"], 2,
        "a refused reload changed the generation"
    );
    assert!(refused["last_reload"]["errors"][0]
        .as_str()
        .unwrap()
        .contains("unknown field `bogus_key`"));
    assert!(d.log().contains("unknown field `bogus_key`"), "{}", d.log());
    assert!(d.log().contains("reload refused"), "{}", d.log());
    let m = d.metrics().unwrap();
    assert!(
        m.contains(&format!(
            "hastack_{daemon}_config_reloads_total{{result=\"error\"}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "hastack_{daemon}_config_reloads_total{{result=\"ok\"}} 1"
        )),
        "{m}"
    );
}

fn sigterm_and_sigint_stop_gracefully(daemon: &str) {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let admin = admin_addr();
        let mut d = DaemonProcess::start(daemon, &config(daemon, admin), admin).unwrap();
        d.signal(sig).unwrap();
        let status = d
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{daemon} still running 10s after {sig}"));
        assert_eq!(status.code(), Some(0), "{daemon} after {sig}\n{}", d.log());
        assert!(
            d.log().contains(&format!("{daemon} stopped")),
            "{}",
            d.log()
        );
        assert!(
            TcpProbe(admin).refused(),
            "{daemon} admin still answering after exit"
        );
    }
}

struct TcpProbe(SocketAddr);

impl TcpProbe {
    fn refused(&self) -> bool {
        std::net::TcpStream::connect_timeout(&self.0, Duration::from_secs(1)).is_err()
    }
}

fn runtime_errors_exit_1_naming_the_address(daemon: &str) {
    // Admin port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config(daemon, addr)).unwrap();
    let out = run(daemon, &["-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("admin_http.listen {addr}: cannot bind")),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("address already in use") || err.contains("Address in use"),
        "{err}"
    );

    // An address this host does not have (not loopback: it takes a credential).
    let foreign: SocketAddr = "192.0.2.1:9999".parse().unwrap();
    std::fs::write(&path, small_config(daemon, foreign, &admin_auth_yaml())).unwrap();
    let out = run(daemon, &["-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("admin_http.listen 192.0.2.1:9999: cannot bind"),
        "{}",
        text(&out.stderr)
    );
}

fn json_logs(daemon: &str) {
    let admin = admin_addr();
    let mut d = DaemonProcess::start_with_args(
        daemon,
        &config(daemon, admin),
        admin,
        &["--log-format", "json"],
    )
    .unwrap();
    d.signal(Signal::SIGTERM).unwrap();
    d.wait_exit(Duration::from_secs(10)).unwrap();
    let log = d.log();
    let started = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == format!("{daemon} started"))
        .unwrap_or_else(|| panic!("no JSON 'started' event in:\n{log}"));
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["admin"], admin.to_string());
}

/// Every lab config (DESIGN.md §2) passes its daemon's `--check`.
#[test]
fn every_lab_config_is_valid() {
    let dir = format!("{}/../configs/lab", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let daemon = file.split(['-', '.']).next().unwrap().to_owned();
        let out = run(&daemon, &["-f", path.to_str().unwrap(), "--check"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        checked += 1;
    }
    assert_eq!(checked, 8, "two lab configs per daemon");
}

/// `daemon ARGS` prints a page with `markers`, the same as the committed
/// deploy/man/FILE; returns the page.
fn page_is_current(daemon: &str, args: &[&str], file: &str, markers: &[&str]) -> String {
    let out = run(daemon, args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    for m in markers {
        assert!(page.contains(m), "{daemon} {args:?}: no {m:?}\n{page}");
    }
    let committed = std::fs::read_to_string(format!(
        "{}/../deploy/man/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_default();
    assert!(
        committed == page,
        "deploy/man/{file} is stale: regenerate it with `{daemon} {}`",
        args.join(" ")
    );
    page
}

/// The committed man page is what the binary renders now (regenerate with
/// `for d in vrrpd lbd sqlproxyd checkd; do target/debug/$d man > deploy/man/$d.8; done`).
fn man_page_is_current(daemon: &str) {
    page_is_current(
        daemon,
        &["man"],
        &format!("{daemon}.8"),
        &[
            &format!(".TH {daemon} 8"),
            ".SH SIGNALS",
            ".SH CONFIGURATION",
        ],
    );
}

/// The committed NAME.yaml(5) page is what the binary renders now from the
/// example config (regenerate with `target/debug/$d man 5 > deploy/man/$d.yaml.5`),
/// and lists every key the example sets at the top level.
fn config_man_page_is_current(daemon: &str) {
    let page = page_is_current(
        daemon,
        &["man", "5"],
        &format!("{daemon}.yaml.5"),
        &[&format!(".TH {daemon}.yaml 5"), ".SH KEYS", ".SH EXAMPLE"],
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/../configs/{daemon}.yaml")).unwrap();
    for line in example.lines() {
        if let Some((key, _)) = line.split_once(':') {
            if !key.is_empty() && !key.starts_with([' ', '#', '-']) {
                assert!(
                    page.contains(&format!("\\fB{key}\\fR")),
                    "{daemon}.yaml(5) does not list {key}"
                );
            }
        }
    }
}

/// `man -l` renders every committed page without a warning.
#[test]
fn man_pages_render_without_warnings() {
    let dir = format!("{}/../deploy/man", env!("CARGO_MANIFEST_DIR"));
    let mut pages = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "")
            .output()
            .expect("man (man-db) is installed");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{}", path.display());
        pages += 1;
    }
    assert_eq!(pages, 8, "a section-8 and a section-5 page per daemon");
}

/// Under systemd (Type=notify): READY=1 once /status answers, RELOADING=1
/// then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.
fn sd_notify_ready_reloading_stopping(daemon: &str) {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let next = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification within 20s");
        text(&buf[..n])
    };
    let admin = admin_addr();
    let mut d = DaemonProcess::start_with_env(
        daemon,
        &config(daemon, admin),
        admin,
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(
        next(),
        format!("READY=1\nMAINPID={}", d.pid()),
        "{}",
        d.log()
    );
    d.reload().unwrap();
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(next().starts_with("READY=1"), "{}", d.log());
    d.signal(Signal::SIGTERM).unwrap();
    assert_eq!(next(), "STOPPING=1");
    assert!(
        d.wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{}",
        d.log()
    );
}

macro_rules! per_daemon {
    ($($daemon:ident),+) => {
        $(
            mod $daemon {
                #[test]
                fn version_help_and_check() { super::version_help_and_check(stringify!($daemon)) }
                #[test]
                fn bad_configs_exit_2_naming_the_problem() { super::bad_configs_exit_2_naming_the_problem(stringify!($daemon)) }
                #[test]
                fn serves_status_and_metrics() { super::serves_status_and_metrics(stringify!($daemon)) }
                #[test]
                fn reload_good_then_bad() { super::reload_good_then_bad(stringify!($daemon)) }
                #[test]
                fn sigterm_and_sigint_stop_gracefully() { super::sigterm_and_sigint_stop_gracefully(stringify!($daemon)) }
                #[test]
                fn runtime_errors_exit_1_naming_the_address() { super::runtime_errors_exit_1_naming_the_address(stringify!($daemon)) }
                #[test]
                fn json_logs() { super::json_logs(stringify!($daemon)) }
                #[test]
                fn man_page_is_current() { super::man_page_is_current(stringify!($daemon)) }
                #[test]
                fn config_man_page_is_current() { super::config_man_page_is_current(stringify!($daemon)) }
                #[test]
                fn sd_notify_ready_reloading_stopping() { super::sd_notify_ready_reloading_stopping(stringify!($daemon)) }
            }
        )+
    };
}

per_daemon!(vrrpd, lbd, sqlproxyd, checkd);

/// `sqlproxyd import-mycat` turns a Mycat config into one `--check` accepts.
#[test]
fn sqlproxyd_import_mycat_output_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("server.xml");
    let schema = dir.path().join("schema.xml");
    std::fs::write(
        &server,
        r#"<?xml version="1.0"?><!DOCTYPE mycat:server SYSTEM "server.dtd">
<mycat:server xmlns:mycat="http://io.mycat/"><system><property name="serverPort">8066</property></system>
<user name="app"><property name="password">app</property><property name="schemas">app</property></user></mycat:server>"#,
    )
    .unwrap();
    std::fs::write(
        &schema,
        r#"<?xml version="1.0"?><!DOCTYPE mycat:schema SYSTEM "schema.dtd">
<mycat:schema xmlns:mycat="http://io.mycat/"><schema name="app" dataNode="dn1"/><dataNode name="dn1" dataHost="dh1" database="app"/>
<dataHost name="dh1" balance="3" switchType="1" maxCon="100" minCon="5"><heartbeat>select user()</heartbeat>
<writeHost host="m1" url="127.0.0.1:3311" user="app" password="app"><readHost host="s1" url="127.0.0.1:3312" user="app" password="app"/></writeHost>
</dataHost></mycat:schema>"#,
    )
    .unwrap();
    let out = run(
        "sqlproxyd",
        &[
            "import-mycat",
            server.to_str().unwrap(),
            schema.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not converted: dataHost dh1: failover is Mycat's"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("heartbeat: {query: 'select user()'}"),
        "{}",
        text(&out.stdout)
    );
    let converted = dir.path().join("sqlproxyd.yaml");
    std::fs::write(&converted, &out.stdout).unwrap();
    let check = run("sqlproxyd", &["-f", converted.to_str().unwrap(), "--check"]);
    assert!(
        check.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&check.stderr)
    );

    let missing = run(
        "sqlproxyd",
        &[
            "import-mycat",
            "/nonexistent/server.xml",
            schema.to_str().unwrap(),
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("/nonexistent/server.xml: cannot read"),
        "{}",
        text(&missing.stderr)
    );
    assert!(text(&run("sqlproxyd", &["--help"]).stdout).contains("import-mycat"));
}

/// `checkd import-xinetd` turns the classic HAProxy + Mycat status service
/// file into a config `--check` accepts.
#[test]
fn checkd_import_xinetd_output_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("mycat_status");
    std::fs::write(
        &service,
        "# default: on
# description: mycat_status, checked by HAProxy's httpchk on port 48700
service mycat_status
{
        flags           = REUSE
        socket_type     = stream
        port            = 48700
        wait            = no
        user            = nobody
        server          = /usr/local/bin/mycat_status
        log_on_failure  += USERID
        disable         = no
        only_from       = 0.0.0.0/0
        per_source      = UNLIMITED
}
",
    )
    .unwrap();
    let out = run("checkd", &["import-xinetd", service.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not converted: service mycat_status: log_on_failure USERID"),
        "{}",
        text(&out.stderr)
    );
    for line in [
        "  'mycat_status':\n    type: exec\n    bind: '0.0.0.0:48700'\n",
        "    server: '/usr/local/bin/mycat_status'\n",
        "    only_from: ['0.0.0.0/0']\n",
    ] {
        assert!(text(&out.stdout).contains(line), "{}", text(&out.stdout));
    }
    let converted = dir.path().join("checkd.yaml");
    std::fs::write(&converted, &out.stdout).unwrap();
    let check = run("checkd", &["-f", converted.to_str().unwrap(), "--check"]);
    assert!(
        check.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&check.stderr)
    );

    let missing = run("checkd", &["import-xinetd", "/nonexistent/mycat_status"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("/nonexistent/mycat_status: cannot read"),
        "{}",
        text(&missing.stderr)
    );
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "service mycat_status\n{\n        port=48700\n}\n").unwrap();
    let malformed = run("checkd", &["import-xinetd", broken.to_str().unwrap()]);
    assert_eq!(malformed.status.code(), Some(2));
    assert!(
        text(&malformed.stderr).starts_with(&format!("{}:3: ", broken.display())),
        "{}",
        text(&malformed.stderr)
    );
    assert!(text(&run("checkd", &["--help"]).stdout).contains("import-xinetd"));
}

/// `lbd import-haproxy` turns the classic HAProxy + Mycat config into one
/// `--check` accepts; a missing or malformed file is exit status 2 with
/// where.
#[test]
fn lbd_import_haproxy_output_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        "global
    maxconn 4096
    stats socket /var/run/haproxy.sock mode 600 level admin
defaults
    mode tcp
    option tcplog
    timeout connect 5000
    timeout client 50000
    timeout server 50000
listen admin_stats
    bind 0.0.0.0:48800
    mode http
    stats uri /admin-status
    stats auth admin:admin
    stats refresh 30s
listen mysql_cluster
    bind 0.0.0.0:3306
    mode tcp
    balance roundrobin
    option httpchk
    server mycat_1 10.0.0.11:8066 check port 48700 inter 2000 rise 2 fall 3
    server mycat_2 10.0.0.12:8066 check port 48700 inter 2000 rise 2 fall 3
",
    )
    .unwrap();
    let out = run("lbd", &["import-haproxy", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(":6: defaults: option tcplog ("),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout)
            .contains("      - {name: 'mycat_1', address: '10.0.0.11:8066', port: 48700}\n"),
        "{}",
        text(&out.stdout)
    );
    let converted = dir.path().join("lbd.yaml");
    std::fs::write(&converted, &out.stdout).unwrap();
    let check = run("lbd", &["-f", converted.to_str().unwrap(), "--check"]);
    assert!(
        check.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&check.stderr)
    );

    let missing = run("lbd", &["import-haproxy", "/nonexistent/haproxy.cfg"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("/nonexistent/haproxy.cfg: cannot read"),
        "{}",
        text(&missing.stderr)
    );
    let broken = dir.path().join("broken.cfg");
    std::fs::write(
        &broken,
        "listen l\n    bind :3306\n    server a 10.0.0.1:1 rise x\n",
    )
    .unwrap();
    let malformed = run("lbd", &["import-haproxy", broken.to_str().unwrap()]);
    assert_eq!(malformed.status.code(), Some(2));
    assert!(
        text(&malformed.stderr).starts_with(&format!("{}:3: ", broken.display())),
        "{}",
        text(&malformed.stderr)
    );
    assert!(text(&run("lbd", &["--help"]).stdout).contains("import-haproxy"));
}
