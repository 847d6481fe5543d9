//! The namespace lab end to end (issue 9, item 1): `deploy/lab.sh up` brings
//! up the whole topology of DESIGN.md §2; a client on this machine writes
//! and reads through the VIP; `status` lists every daemon; lb-1's vrrpd
//! killed → lb-2 holds the VIP and it answers; db-1 killed → writes resume
//! on a promoted replica; `down` leaves nothing behind.
//!
//! The lab uses fixed names (bridge hsbr0, namespaces hs-*, 10.99.0.0/24 in
//! the root namespace): nextest runs this binary in a test group of its own
//! (.config/nextest.toml), and it is the only test here.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]
// The test measures how long failovers take on the wall clock.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hastack_it::chaos::vip_holders;
use hastack_it::daemon::try_http_post;
use hastack_it::lab::Lab;
use hastack_it::wait_for;

const VIP: &str = "10.99.0.100";
const DAEMONS: &[(&str, &str)] = &hastack_it::nemesis::PROCESSES;

/// `mariadb` CLI through the VIP as app/app; stdout on success.
fn mariadb(sql: &str) -> Result<String, String> {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            VIP,
            "-P",
            "3306",
            "-u",
            "app",
            "-papp",
            "--connect-timeout=2",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// PyMySQL through the VIP: writes `value` into app.lab and reads it back
/// in a new connection (a read that may go to a replica, so it retries).
fn pymysql_roundtrip(value: &str) -> Result<(), String> {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = r#"
import sys, time, pymysql
v = sys.argv[1]
c = pymysql.connect(host="10.99.0.100", port=3306, user="app", password="app", database="app", autocommit=True, connect_timeout=5)
c.cursor().execute("INSERT INTO lab (v) VALUES (%s)", (v,))
c.close()
for _ in range(50):
    r = pymysql.connect(host="10.99.0.100", port=3306, user="app", password="app", database="app", connect_timeout=5)
    cur = r.cursor()
    cur.execute("SELECT COUNT(*) FROM lab WHERE v = %s", (v,))
    n = cur.fetchone()[0]
    r.close()
    if n == 1:
        sys.exit(0)
    time.sleep(0.1)
sys.exit("written but not read back: " + v)
"#;
    let out = Command::new(python)
        .args(["-c", script, value])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Which lb host this machine's ARP entry for the VIP points at.
fn arp_answerer() -> Option<String> {
    let neigh = sh("ip", &["neigh", "show", VIP, "dev", "hsbr0"]);
    let mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)?;
    ["lb-1", "lb-2"]
        .into_iter()
        .find(|h| {
            sh(
                "ip",
                &[
                    "-n",
                    &format!("hs-{h}"),
                    "-o",
                    "link",
                    "show",
                    "dev",
                    "eth0",
                ],
            )
            .contains(&format!("link/ether {mac} "))
        })
        .map(str::to_owned)
}

fn alive(pid: i32) -> bool {
    // A zombie (exited, not reaped yet by whoever adopted it) is gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lab_up_failover_down() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the namespace lab needs root (CI runs as root); run it with sudo"
    );
    let started = Instant::now();
    let mut lab = Lab::for_test("test").unwrap();

    let up = lab.ok(&["up"]).unwrap();
    eprintln!("up in {:?}:\n{up}", started.elapsed());
    assert!(up.contains("mariadb -h 10.99.0.100"), "{up}");
    // Up twice: already up, nothing broken.
    let again = lab.ok(&["up"]).unwrap();
    assert!(again.contains("already up"), "{again}");

    // A write and a read through the VIP, with the CLI and with PyMySQL.
    mariadb("CREATE TABLE app.lab (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))").unwrap();
    mariadb("INSERT INTO app.lab (v) VALUES ('cli')").unwrap();
    let read = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        mariadb("SELECT v FROM app.lab WHERE v = 'cli'")
            .ok()
            .filter(|v| v == "cli")
    });
    assert_eq!(read.as_deref(), Some("cli"));
    pymysql_roundtrip("pymysql").unwrap();

    // status lists every daemon, running.
    let status = lab.ok(&["status"]).unwrap();
    eprintln!("{status}");
    assert!(
        status.contains("VIP 10.99.0.100:3306 held by: lb-1, answering: lb-1"),
        "{status}"
    );
    for (host, daemon) in DAEMONS {
        let line = status
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(host) && w.next() == Some(daemon)
            })
            .unwrap_or_else(|| panic!("no line for {host} {daemon} in:\n{status}"));
        assert!(!line.contains("NOT RUNNING"), "{line}\n{status}");
    }
    let pids = lab.pids().unwrap();
    assert_eq!(pids.len(), DAEMONS.len(), "{pids:?}");

    // Every admin endpoint listens on its namespace address, so actions take
    // the lab's token (admin.token in the state dir): none or a wrong one is
    // 401, the right one reaches the daemon (no action `x`: 400 or 404).
    let token = lab.admin_token().unwrap();
    for (host, port) in [
        ("10.99.0.21", 48800),
        ("10.99.0.21", 9168),
        ("10.99.0.11", 9166),
        ("10.99.0.11", 9167),
    ] {
        let addr: std::net::SocketAddr = format!("{host}:{port}").parse().unwrap();
        let (code, body) = try_http_post(addr, "/actions/x", "not-the-token").unwrap();
        assert_eq!(code, 401, "{addr}: {body}");
        let (code, body) = try_http_post(addr, "/actions/x", &token).unwrap();
        assert!(matches!(code, 400 | 404), "{addr}: {code} {body}");
    }

    // lb-1's vrrpd killed: lb-2 takes the VIP and it answers. (A vrrpd
    // killed with SIGKILL cannot remove its address, as with keepalived:
    // lb-1 keeps it too, and lb-2's gratuitous ARP moves this machine's
    // traffic.)
    let t = Instant::now();
    lab.ok(&["kill", "lb-1:vrrpd"]).unwrap();
    let moved = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        vip_holders().contains(&"lb-2").then_some(())
    });
    assert!(moved.is_some(), "VIP held by {:?}", vip_holders());
    let answered = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        mariadb("SELECT COUNT(*) FROM app.lab")
            .ok()
            .filter(|_| arp_answerer().as_deref() == Some("lb-2"))
    });
    assert!(
        answered.is_some(),
        "no answer through the VIP from lb-2 (ARP: {:?})",
        arp_answerer()
    );
    eprintln!("VIP on lb-2 and answering {:?} after the kill", t.elapsed());
    mariadb("INSERT INTO app.lab (v) VALUES ('via lb-2')").unwrap();
    let status = lab.ok(&["status"]).unwrap();
    assert!(status.contains("answering: lb-2"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("lb-1") && l.contains("vrrpd") && l.contains("NOT RUNNING")),
        "{status}"
    );

    // db-1 (the primary) killed: writes through the VIP succeed again once
    // a sqlproxyd promoted a replica (heartbeat 1s × fail_count 3).
    let t = Instant::now();
    lab.ok(&["kill", "db-1"]).unwrap();
    let mut last = String::new();
    let resumed = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || match mariadb("INSERT INTO app.lab (v) VALUES ('after failover')") {
            Ok(_) => Some(t.elapsed()),
            Err(e) => {
                last = e;
                None
            }
        },
    );
    let took = resumed.unwrap_or_else(|| panic!("writes did not resume within 30s: {last}"));
    eprintln!("writes resumed {took:?} after kill -9 db-1");
    assert!(
        took <= Duration::from_secs(10),
        "writes resumed only after {took:?}"
    );
    let status = lab.ok(&["status"]).unwrap();
    eprintln!("{status}");
    let primaries: Vec<&str> = status
        .lines()
        .filter(|l| l.trim_start().starts_with("dh1: primary "))
        .collect();
    assert!(
        primaries.len() >= 2
            && primaries
                .iter()
                .all(|l| l.contains("primary db-2") || l.contains("primary db-3")),
        "{status}"
    );
    pymysql_roundtrip("pymysql-after-failover").unwrap();

    // A planned switchover, as a user plays it (issue 20 item 5): to the
    // first readable replica, then both proxies name it and writes go on.
    let before = if primaries[0].contains("primary db-2") {
        "db-2"
    } else {
        "db-3"
    };
    let target = if before == "db-2" { "db-3" } else { "db-2" };
    let readable = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        let s = lab.ok(&["status"]).ok()?;
        s.lines()
            .any(|l| l.trim_start().starts_with(&format!("{target}: up")))
            .then_some(())
    });
    assert!(readable.is_some(), "{target} never readable");
    let switched = lab.ok(&["switchover"]).unwrap();
    assert!(
        switched.contains(&format!("switchover to {target}")),
        "{switched}"
    );
    let agreed = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        let s = lab.ok(&["status"]).ok()?;
        let named: Vec<&str> = s
            .lines()
            .filter(|l| l.trim_start().starts_with("dh1: primary "))
            .collect();
        (named.len() >= 2
            && named
                .iter()
                .all(|l| l.contains(&format!("primary {target}"))))
        .then_some(())
    });
    assert!(
        agreed.is_some(),
        "{}",
        lab.ok(&["status"]).unwrap_or_default()
    );
    let wrote = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        mariadb("INSERT INTO app.lab (v) VALUES ('after switchover')").ok()
    });
    assert!(
        wrote.is_some(),
        "no write through the VIP after the switchover"
    );
    let refused = lab.run(&["switchover", "db-9"]).unwrap();
    assert!(!refused.status.success());

    // down: no process, namespace, bridge, mount, nft table or state left.
    let down = lab.ok(&["down"]).unwrap();
    lab.down_done = true;
    eprintln!("{down}");
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after down");
    }
    let netns = sh("ip", &["netns", "list"]);
    assert!(!netns.lines().any(|l| l.starts_with("hs-")), "{netns}");
    let links = sh("ip", &["-o", "link", "show"]);
    assert!(!links.contains("hsbr0"), "{links}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains("/netns/hs-"), "{mounts}");
    let addrs = sh("ip", &["-4", "-o", "addr", "show"]);
    assert!(!addrs.contains("10.99.0."), "{addrs}");
    assert!(!lab.state.exists(), "{} left behind", lab.state.display());
    // Down again: nothing is up, still fine.
    let again = lab.ok(&["down"]).unwrap();
    assert!(again.contains("nothing is up"), "{again}");
    eprintln!("whole lab test: {:?}", started.elapsed());
}
