//! The probes for real: shell scripts, spawned processes, the loopback
//! link, a small HTTP server standing in for lbd. Each test waits for a
//! state with a generous deadline rather than counting on exact times.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn config(top: &str, instances: &[(&str, &str)]) -> Config {
    let mut text = format!("{top}\ninstances:\n");
    for (k, (name, tracking)) in instances.iter().enumerate() {
        text.push_str(&format!(
            "  {name}:\n    interface: lo\n    virtual_router_id: {}\n    priority: 100\n    virtual_ipaddress: [10.0.0.1/24]\n",
            k + 1
        ));
        for line in tracking.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    hastack_rt::config::parse(Path::new("vrrpd.yaml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn eventually<F: Future<Output = ()>>(what: &str, f: F) {
    if tokio::time::timeout(DEADLINE, f).await.is_err() {
        panic!("timed out waiting for {what}");
    }
}

async fn wait_health(rx: &mut watch::Receiver<Health>, want: Health) {
    eventually(&format!("{want:?}"), async {
        loop {
            if *rx.borrow_and_update() == want {
                return;
            }
            rx.changed().await.expect("the channel stays open");
        }
    })
    .await;
}

fn item<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no item {name} in {status:#}"))
}

/// Waits until `instance`'s item `name` shows `detail` (and returns the status).
async fn wait_detail(t: &Tracking, instance: &str, name: &str, detail: &str) -> Value {
    let mut last = Value::Null;
    let found = tokio::time::timeout(DEADLINE, async {
        loop {
            last = t.status(instance);
            if item(&last, name)["detail"] == detail {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{name} never said {detail:?}: {last:#}"))
}

fn fault(priority: u8, why: &str) -> Health {
    Health {
        priority,
        fault: Some(why.into()),
    }
}

/// Dead, or a zombie left to init (its parent, the shell, was killed).
pub(crate) async fn wait_dead(pid: i32) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

#[tokio::test]
async fn scripts_move_the_priority_and_a_zero_weight_failure_faults() {
    let c = config(
        "vrrp_script:\n  ok: {script: \"true\", interval: 50ms, weight: 10}\n  bad: {script: \"exit 4\", interval: 50ms, weight: -30, fall: 2}",
        &[
            ("a", "track_script: [ok, bad]"),
            ("b", "track_script: [{name: bad, weight: 0}]"),
            ("c", ""),
        ],
    );
    let t = Tracking::start(&c);
    wait_health(&mut t.health("a"), Health::untracked(80)).await;
    wait_health(&mut t.health("b"), fault(100, "track_script bad failed")).await;
    assert_eq!(*t.health("c").borrow(), Health::untracked(100));
    let s = t.status("a");
    assert_eq!(s["base_priority"], 100);
    assert_eq!(s["priority"], 80);
    assert_eq!(s["fault"], Value::Null);
    let bad = item(&s, "bad");
    assert_eq!(bad["kind"], "track_script");
    assert_eq!(bad["state"], "failed");
    assert_eq!(bad["weight"], -30);
    assert_eq!(bad["detail"], "exit 4");
    assert!(
        bad["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{bad}"
    );
    assert_eq!(item(&s, "ok")["state"], "healthy");
    assert_eq!(item(&s, "ok")["detail"], "exit 0");
    // Only the implicit track of the instance's own interface, as keepalived.
    let c_items = t.status("c")["items"].clone();
    assert_eq!(c_items.as_array().map(Vec::len), Some(1), "{c_items}");
    assert_eq!(c_items[0]["kind"], "track_interface");
    assert_eq!(t.status("nope"), Value::Null);
    assert!(t.health("nope").borrow().fault.is_some());
}

#[tokio::test]
async fn a_script_shared_by_instances_runs_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let c = config(
        &format!(
            "vrrp_script:\n  s: {{script: \"echo run >> '{}'\", interval: 200ms}}",
            log.display()
        ),
        &[("a", "track_script: [s]"), ("b", "track_script: [s]")],
    );
    let t = Tracking::start(&c);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    t.stop().await;
    let runs = std::fs::read_to_string(&log).unwrap().lines().count();
    // One runner: about 6 runs in 1s; one per instance would be about 12.
    assert!((1..=8).contains(&runs), "{runs} runs");
}

#[tokio::test]
async fn a_script_past_its_timeout_fails() {
    let c = config(
        "vrrp_script:\n  slow: {script: \"sleep 5\", interval: 100ms}",
        &[("a", "track_script: [slow]")],
    );
    let t = Tracking::start(&c);
    wait_health(&mut t.health("a"), fault(100, "track_script slow failed")).await;
    wait_detail(&t, "a", "slow", "timed out after 100ms").await;
}

async fn started_script_pid(pidfile: &Path) -> i32 {
    let mut pid = None;
    eventually("the script to start", async {
        loop {
            if let Some(p) = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                pid = Some(p);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    pid.unwrap_or_default()
}

#[tokio::test]
async fn stopping_or_dropping_kills_running_scripts() {
    for stop in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let c = config(
            &format!(
                "vrrp_script:\n  long: {{script: \"sleep 30 & echo $! > '{}'; wait\", interval: 50ms, timeout: 1m}}",
                pidfile.display()
            ),
            &[("a", "track_script: [long]")],
        );
        let t = Tracking::start(&c);
        let pid = started_script_pid(&pidfile).await;
        if stop {
            t.stop().await;
        } else {
            drop(t);
        }
        assert!(wait_dead(pid).await, "the script's sleep {pid} lives on");
    }
}

/// Runs /bin/sleep under a name of its own, so no other process matches.
struct Sleepers {
    path: std::path::PathBuf,
    children: Vec<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Sleepers {
    fn new() -> Sleepers {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("trk{}", std::process::id()));
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("a sleep binary");
        // comm is the name the program was started by: the link's.
        std::os::unix::fs::symlink(sleep, &path).unwrap();
        Sleepers {
            path,
            children: Vec::new(),
            _dir: dir,
        }
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new(&self.path)
            .arg("30")
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn kill_one(&mut self) {
        let mut c = self.children.pop().expect("a sleeper");
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        while !self.children.is_empty() {
            self.kill_one();
        }
    }
}

#[tokio::test]
async fn processes_are_counted_against_the_quorum() {
    let mut sleepers = Sleepers::new();
    sleepers.spawn();
    sleepers.spawn();
    let name = sleepers.name();
    let path = sleepers.path.display().to_string();
    let c = config(
        &format!(
            "vrrp_track_process:\n  two: {{process: {name}, quorum: 2}}\n  patient: {{process: {name}, quorum: 2, delay: 1m, weight: -10}}\n  exact: {{process: \"{path}\", param_match: \"30\"}}\n  other_args: {{process: \"{path}\", param_match: \"31\", weight: -5}}"
        ),
        &[
            ("a", "track_process: [two, exact]"),
            ("b", "track_process: [patient, other_args]"),
        ],
    );
    let t = Tracking::start(&c);
    wait_detail(&t, "a", "two", "2 processes").await;
    wait_detail(&t, "a", "exact", "2 processes").await;
    wait_health(&mut t.health("b"), Health::untracked(95)).await;
    assert_eq!(*t.health("a").borrow(), Health::untracked(100));

    sleepers.kill_one();
    wait_health(&mut t.health("a"), fault(100, "track_process two failed")).await;
    let s = wait_detail(&t, "a", "two", "1 process, quorum 2").await;
    assert_eq!(item(&s, "two")["state"], "failed");
    assert_eq!(item(&s, "exact")["state"], "healthy");
    // Within its delay, a short count is still healthy.
    let s = t.status("b");
    let patient = item(&s, "patient");
    assert_eq!(patient["state"], "healthy", "{s:#}");
    assert!(
        patient["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("1 process, quorum 2, short for ")),
        "{patient}"
    );

    sleepers.spawn();
    wait_health(&mut t.health("a"), Health::untracked(100)).await;
}

#[tokio::test]
async fn interfaces_are_up_or_missing() {
    let c = config(
        "",
        &[
            ("a", "track_interface: [lo, {name: nosuch0, weight: -20}]"),
            ("b", "track_interface: [nosuch0]"),
        ],
    );
    let t = Tracking::start(&c);
    wait_health(&mut t.health("a"), Health::untracked(80)).await;
    wait_health(
        &mut t.health("b"),
        fault(100, "track_interface nosuch0 failed"),
    )
    .await;
    let s = wait_detail(&t, "a", "lo", "link up (carrier)").await;
    assert_eq!(item(&s, "nosuch0")["detail"], "no such interface");
    assert_eq!(item(&s, "lo")["kind"], "track_interface");
}

/// Answers every request with the current status code.
async fn fake_lbd(code: Arc<AtomicU16>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let code = code.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(got.starts_with(b"GET /status HTTP/1.1\r\n"));
                let answer = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn track_lbd_wants_a_200() {
    let code = Arc::new(AtomicU16::new(200));
    let admin = fake_lbd(Arc::clone(&code)).await;
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = gone.local_addr().unwrap();
    drop(gone);
    let c = config(
        "",
        &[
            (
                "a",
                &format!("track_lbd: {{admin: \"{admin}\", interval: 50ms, timeout: 1s, fall: 2}}"),
            ),
            (
                "b",
                &format!("track_lbd: {{admin: \"{refused}\", interval: 50ms, weight: -50}}"),
            ),
        ],
    );
    let t = Tracking::start(&c);
    let name = admin.to_string();
    wait_detail(&t, "a", &name, "HTTP 200").await;
    assert_eq!(*t.health("a").borrow(), Health::untracked(100));
    code.store(503, Ordering::SeqCst);
    wait_health(
        &mut t.health("a"),
        fault(100, &format!("track_lbd {name} failed")),
    )
    .await;
    wait_detail(&t, "a", &name, "HTTP 503").await;
    wait_health(&mut t.health("b"), Health::untracked(50)).await;
    let s = t.status("b");
    let detail = item(&s, &refused.to_string())["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        detail.starts_with(&format!("connect {refused}: ")),
        "{detail}"
    );
    code.store(200, Ordering::SeqCst);
    wait_health(&mut t.health("a"), Health::untracked(100)).await;
}

#[tokio::test]
async fn a_reload_keeps_unchanged_items_and_the_channels() {
    let script = "vrrp_script:\n  bad: {script: \"false\", interval: 50ms, rise: 1000}";
    let mut t = Tracking::start(&config(script, &[("a", "track_script: [bad]")]));
    let mut rx = t.health("a");
    wait_health(&mut rx, fault(100, "track_script bad failed")).await;

    // Unchanged: still failed the moment the reload returns, before any run.
    let more = config(
        script,
        &[
            ("a", "track_script: [bad]"),
            ("b", "track_script: [{name: bad, weight: -1}]"),
        ],
    );
    t.reload(&more);
    assert_eq!(*rx.borrow(), fault(100, "track_script bad failed"));
    assert_eq!(*t.health("b").borrow(), Health::untracked(99));
    assert_eq!(item(&t.status("a"), "bad")["state"], "failed");

    // Changed: a new item, healthy until it fails again.
    let changed = "vrrp_script:\n  bad: {script: \"false\", interval: 60ms, rise: 1000}";
    t.reload(&config(changed, &[("a", "track_script: [bad]")]));
    assert!(rx.has_changed().unwrap(), "the same channel carries on");
    assert_eq!(*rx.borrow_and_update(), Health::untracked(100));
    wait_health(&mut rx, fault(100, "track_script bad failed")).await;
}
