//! The Debian packages as a user installs them (issue 9 item 5): build the
//! four .debs (dev profile, deploy/build-debs.sh), install them with
//! `dpkg -i` into a clean Debian bookworm root made by debootstrap, and check
//! the man pages, the binaries, the units (`systemd-analyze verify`), the
//! users, and that `dpkg -r` keeps the configs while `dpkg -P` removes them.
//!
//! Needs root, debootstrap, cargo-deb and systemd-analyze (.ci/run installs
//! them). The base root is cached under target/pkg-test/ (debootstrap takes
//! minutes); each run works on a fresh copy of it.

#![allow(clippy::unwrap_used)]
// Step timings are printed for the CI log; no decision depends on them.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const DAEMONS: [&str; 4] = ["vrrpd", "lbd", "sqlproxyd", "checkd"];
/// What the root needs beyond minbase: `man` (man-db), the postinsts'
/// adduser, deb-systemd-helper (init-system-helpers), and for
/// `systemd-analyze verify --root` the units' targets (systemd) and /bin/kill
/// (procps).
const INCLUDE: &str = "man-db,adduser,init-system-helpers,systemd,procps";
const SUITE: &str = "bookworm";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd`; panics with its output unless it exits 0.
fn ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("MANWIDTH", "80");
    c
}

fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is missing: install {package}");
}

/// A clean bookworm root with INCLUDE, made once and kept under target/.
fn base_root() -> PathBuf {
    let dir = target_dir().join("pkg-test");
    // The cache key: what the root holds.
    let key: u32 = format!("{SUITE} {INCLUDE}")
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    let base = dir.join(format!("base-{SUITE}-{key:08x}"));
    let stamp = base.join(".hastack-complete");
    if stamp.exists() {
        return base;
    }
    std::fs::create_dir_all(&dir).unwrap();
    if base.exists() {
        // An interrupted debootstrap: start over.
        ok(Command::new("rm").arg("-rf").arg(&base));
    }
    let mirror = std::env::var("HASTACK_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned());
    let started = Instant::now();
    ok(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"))
        .arg(SUITE)
        .arg(&base)
        .arg(&mirror));
    // Packages' maintainer scripts must not start services in the root.
    std::fs::write(base.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n").unwrap();
    ok(Command::new("chmod")
        .arg("755")
        .arg(base.join("usr/sbin/policy-rc.d")));
    ok(&mut chroot(&base, &["apt-get", "clean"]));
    std::fs::write(&stamp, "").unwrap();
    eprintln!("packages: debootstrap took {:?}", started.elapsed());
    base
}

/// Whether `path` is in the root (a symlink counts: its absolute target is
/// inside the root, not on this host).
fn exists(root: &Path, path: &str) -> bool {
    root.join(path.trim_start_matches('/'))
        .symlink_metadata()
        .is_ok()
}

/// The keys the packaged configs leave at the placeholder, by daemon.
const PLACEHOLDER_KEYS: [(&str, &str); 8] = [
    ("vrrpd", "instances.VI_MYSQL.authentication.auth_pass"),
    ("sqlproxyd", "users[0].password"),
    ("sqlproxyd", "users[1].password_hash"),
    ("sqlproxyd", "data_hosts[0].password"),
    ("sqlproxyd", "data_hosts[0].read_only_password"),
    ("sqlproxyd", "data_hosts[0].heartbeat.password"),
    ("sqlproxyd", "data_hosts[0].failover.replication_password"),
    ("checkd", "services.mycat_status.probe.mysql.password"),
];

/// What in a packaged config would be a working secret or an open port:
/// the lab's passwords (configs/lab: app/app, monitor/monitor, repl/repl,
/// reader's hash, vrrpd's hslab; hastack1, what the package once shipped), a listen/bind address that is
/// not loopback.
fn lab_secrets_and_open_addresses(config: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (what, needle) in [
        ("hastack1, the auth_pass packages once shipped", "hastack1"),
        (
            "reader's lab password hash",
            "FC69E042CE30D92E2952335F690CF2345C812E36",
        ),
    ] {
        if config.contains(needle) {
            found.push(what.to_owned());
        }
    }
    let mut in_bind_list = false;
    for line in config.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(item) = line.strip_prefix("- ") {
            if let (true, Ok(addr)) = (in_bind_list, item.trim().parse::<SocketAddr>()) {
                if !addr.ip().is_loopback() {
                    found.push(format!("bind: {addr} is not loopback"));
                }
            }
            continue;
        }
        in_bind_list = false;
        // Flow mappings ({user: monitor, password: monitor}) too.
        for piece in line.split(['{', '}', ',']) {
            let Some((key, value)) = piece.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim().trim_matches(['"', '\'']));
            if key.contains("pass")
                && [
                    "app", "monitor", "repl", "reader", "secret", "hastack1", "hslab",
                ]
                .contains(&value)
            {
                found.push(format!("{key}: {value} is a lab password"));
            }
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().trim_matches(['"', '\'']));
        if ["listen", "admin_listen", "bind"].contains(&key) {
            in_bind_list = key == "bind" && value.is_empty();
            match value.parse::<SocketAddr>() {
                Ok(addr) if !addr.ip().is_loopback() => {
                    found.push(format!("{key}: {addr} is not loopback"))
                }
                _ => {}
            }
        }
    }
    found
}

/// The check above finds the lab's secrets and addresses, and nothing in
/// the packaged configs (no root needed).
#[test]
fn packaged_configs_hold_no_lab_secret_and_listen_on_loopback() {
    for d in DAEMONS {
        let packaged = std::fs::read_to_string(repo().join(format!("configs/{d}.yaml"))).unwrap();
        assert_eq!(
            lab_secrets_and_open_addresses(&packaged),
            Vec::<String>::new(),
            "{d}"
        );
    }
    let lab = |f: &str| std::fs::read_to_string(repo().join("configs/lab").join(f)).unwrap();
    let found = lab_secrets_and_open_addresses(&lab("sqlproxyd-1.yaml"));
    assert!(
        found.iter().any(|f| f == "password: app is a lab password"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f == "replication_password: repl is a lab password"),
        "{found:?}"
    );
    assert_eq!(
        lab_secrets_and_open_addresses(&lab("vrrpd-1.yaml")),
        ["auth_pass: hslab is a lab password"]
    );
    assert_eq!(
        lab_secrets_and_open_addresses("authentication: {auth_type: PASS, auth_pass: hastack1}\n"),
        [
            "hastack1, the auth_pass packages once shipped",
            "auth_pass: hastack1 is a lab password"
        ]
    );
    let open = lab_secrets_and_open_addresses("listen: 0.0.0.0:8066\nfrontends:\n  m:\n    bind:\n      - 10.99.0.100:3306\n      - 127.0.0.1:3306\n");
    assert_eq!(
        open,
        [
            "listen: 0.0.0.0:8066 is not loopback",
            "bind: 10.99.0.100:3306 is not loopback"
        ]
    );
}

#[test]
fn debs_install_into_a_clean_root_and_remove_and_purge() {
    need("debootstrap", "debootstrap");
    need("systemd-analyze", "systemd");
    need("chroot", "coreutils");
    assert!(
        Command::new("cargo")
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: cargo install cargo-deb --locked"
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (chroot, dpkg)"
    );

    // Build the packages from the debug build.
    let t = Instant::now();
    let debs_dir = tempfile::tempdir().unwrap();
    ok(Command::new(repo().join("deploy/build-debs.sh"))
        .args(["--profile", "dev", "--output"])
        .arg(debs_dir.path())
        .current_dir(repo()));
    let mut debs: Vec<PathBuf> = std::fs::read_dir(debs_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    debs.sort();
    assert_eq!(debs.len(), 4, "one .deb per daemon: {debs:?}");
    eprintln!("packages: built in {:?}", t.elapsed());

    // A fresh copy of the cached clean root.
    let t = Instant::now();
    let base = base_root();
    let work = tempfile::Builder::new()
        .prefix("root-")
        .tempdir_in(target_dir().join("pkg-test"))
        .unwrap();
    let root = work.path().join("root");
    ok(Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&base)
        .arg(&root));
    eprintln!("packages: clean root ready in {:?}", t.elapsed());

    // dpkg -i, as a user does.
    let t = Instant::now();
    let inbox = root.join("tmp/debs");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut names = Vec::new();
    for deb in &debs {
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(deb, inbox.join(&name)).unwrap();
        names.push(format!("/tmp/debs/{name}"));
    }
    let mut install = vec!["dpkg", "-i"];
    install.extend(names.iter().map(String::as_str));
    ok(&mut chroot(&root, &install));
    eprintln!("packages: installed in {:?}", t.elapsed());

    for d in DAEMONS {
        // The files where Debian users look for them.
        for f in [
            format!("/usr/sbin/{d}"),
            format!("/lib/systemd/system/{d}.service"),
            format!("/usr/share/man/man8/{d}.8.gz"),
            format!("/usr/share/man/man5/{d}.yaml.5.gz"),
            format!("/etc/hastack/{d}.yaml"),
        ] {
            assert!(exists(&root, &f), "{d}: {f} not installed");
        }
        let conffiles =
            std::fs::read_to_string(root.join(format!("var/lib/dpkg/info/{d}.conffiles")))
                .unwrap_or_default();
        assert!(
            conffiles.contains(&format!("/etc/hastack/{d}.yaml")),
            "{d}: the config is not a conffile: {conffiles:?}"
        );

        // The binary runs there. Its packaged config holds no working
        // secret and listens on loopback only; where it needs a password,
        // --check (the unit's ExecStartPre) refuses it naming each key.
        let out = ok(&mut chroot(&root, &[d, "--version"]));
        assert_eq!(text(&out.stdout).trim(), format!("{d} 0.1.0"));
        let config = std::fs::read_to_string(root.join(format!("etc/hastack/{d}.yaml"))).unwrap();
        assert_eq!(
            lab_secrets_and_open_addresses(&config),
            Vec::<String>::new(),
            "{d}"
        );
        let check = chroot(
            &root,
            &[d, "-f", &format!("/etc/hastack/{d}.yaml"), "--check"],
        )
        .output()
        .unwrap();
        let placeholders = PLACEHOLDER_KEYS
            .iter()
            .filter(|(daemon, _)| *daemon == d)
            .map(|(_, key)| *key)
            .collect::<Vec<_>>();
        if placeholders.is_empty() {
            assert!(
                check.status.success(),
                "{d} --check: {}",
                text(&check.stderr)
            );
        } else {
            let errors = text(&check.stderr);
            assert_eq!(check.status.code(), Some(2), "{d} --check: {errors}");
            for key in placeholders {
                assert!(
                    errors
                        .lines()
                        .any(|l| l.starts_with(&format!("/etc/hastack/{d}.yaml:"))
                            && l.contains(&format!(
                                ": {key}: still the packaged placeholder __CHANGE_ME__; set "
                            ))),
                    "{d} --check does not name {key}: {errors}"
                );
            }
        }

        // man 8 NAME and man 5 NAME.yaml render without a warning.
        for (section, page) in [("8", d.to_owned()), ("5", format!("{d}.yaml"))] {
            let out = ok(&mut chroot(&root, &["man", "--warnings", section, &page]));
            assert!(
                text(&out.stdout).contains("NAME") && text(&out.stderr).is_empty(),
                "man {section} {page}: {}",
                text(&out.stderr)
            );
        }

        // The system user, and the config readable by it but nobody else.
        let user = format!("hastack-{d}");
        ok(&mut chroot(&root, &["getent", "passwd", &user]));
        let out = ok(&mut chroot(
            &root,
            &["stat", "-c", "%U:%G %a", &format!("/etc/hastack/{d}.yaml")],
        ));
        assert_eq!(text(&out.stdout).trim(), format!("root:{user} 640"));

        // Enabled, not started (there is no systemd running in the root).
        assert!(
            exists(
                &root,
                &format!("/etc/systemd/system/multi-user.target.wants/{d}.service")
            ),
            "{d}.service is not enabled"
        );
    }

    // The installed units are clean for systemd; `man` for Documentation=
    // looks in the root's pages.
    let units: Vec<String> = DAEMONS.iter().map(|d| format!("{d}.service")).collect();
    let out = ok(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(&units)
        .env("MANPATH", root.join("usr/share/man")));
    assert_eq!(text(&out.stderr), "", "systemd-analyze verify");

    // dpkg -r: the programs go, the configs (conffiles) stay.
    let mut remove = vec!["dpkg", "-r"];
    remove.extend(DAEMONS);
    ok(&mut chroot(&root, &remove));
    for d in DAEMONS {
        assert!(
            !exists(&root, &format!("/usr/sbin/{d}")),
            "{d}: binary left after dpkg -r"
        );
        assert!(
            exists(&root, &format!("/etc/hastack/{d}.yaml")),
            "{d}: dpkg -r removed the config"
        );
    }

    // dpkg -P: the configs, the enablement, the users and the state go too.
    let mut purge = vec!["dpkg", "-P"];
    purge.extend(DAEMONS);
    let out = ok(&mut chroot(&root, &purge));
    assert!(
        !text(&out.stderr).contains("warning"),
        "dpkg -P: {}",
        text(&out.stderr)
    );
    for d in DAEMONS {
        assert!(
            !exists(&root, &format!("/etc/hastack/{d}.yaml")),
            "{d}: config left after purge"
        );
        assert!(
            !exists(
                &root,
                &format!("/etc/systemd/system/multi-user.target.wants/{d}.service")
            ),
            "{d}: still enabled after purge"
        );
        let out = chroot(&root, &["getent", "passwd", &format!("hastack-{d}")])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{d}: user left after purge");
    }
    assert!(
        !exists(&root, "/etc/hastack"),
        "/etc/hastack left after purge"
    );
    assert!(
        !exists(&root, "/var/lib/sqlproxyd"),
        "sqlproxyd state left after purge"
    );
    let out = ok(&mut chroot(
        &root,
        &["dpkg-query", "-W", "-f", "${Package} ${Status}\\n"],
    ));
    for d in DAEMONS {
        assert!(
            !text(&out.stdout)
                .lines()
                .any(|l| l.starts_with(&format!("{d} "))),
            "{d} still known to dpkg after purge"
        );
    }
}
