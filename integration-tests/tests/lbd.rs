//! lbd against real sockets: small echo servers that say who they are
//! (and checkd, for checks through port 48700's stand-in), lbd started from
//! its built binary. Balance algorithms, backups, queueing, retries,
//! health transitions, reload under load, half-close and a large transfer,
//! the runtime API and the PROXY header.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]
// Tests measure waits with the wall clock; no pure core is involved.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hastack_it::daemon::{admin_auth_yaml, http_post};
use hastack_it::ports::free_port;
use hastack_it::tcp::{who, who_from, EchoServer};
use hastack_it::{wait_for, DaemonProcess};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn echo(name: &str) -> EchoServer {
    EchoServer::start(name, local(0)).unwrap()
}

/// lbd with one frontend `f` on a free port to backend `b`; `backend` is
/// the backend's YAML body (indented 4), `defaults` the defaults section's.
struct Lb {
    d: DaemonProcess,
    front: SocketAddr,
}

fn config(front: SocketAddr, admin: SocketAddr, defaults: &str, backend: &str) -> String {
    // `defaults` lines replace these by key.
    let mut d: Vec<String> = [
        "inter: 200ms",
        "rise: 1",
        "fall: 1",
        "timeout: {connect: 1s, queue: 1s, check: 1s}",
    ]
    .iter()
    .filter(|l| {
        !defaults
            .lines()
            .any(|x| x.trim().split(':').next() == l.split(':').next())
    })
    .map(|l| format!("  {l}\n"))
    .collect();
    d.push(defaults.to_owned());
    let d = d.concat();
    format!(
        "admin_http:\n  listen: {admin}\n{}shutdown_grace: 2s\ndefaults:\n{d}\nfrontends:\n  f: {{bind: [{front}], backend: b}}\nbackends:\n  b:\n{backend}",
        admin_auth_yaml()
    )
}

fn lbd(defaults: &str, backend: &str) -> Lb {
    let front = local(free_port());
    let admin = local(free_port());
    let d = DaemonProcess::start("lbd", &config(front, admin, defaults, backend), admin).unwrap();
    Lb { d, front }
}

fn servers_yaml(servers: &[(&EchoServer, &str)]) -> String {
    servers
        .iter()
        .map(|(s, extra)| format!("      - {{name: {}, address: {}{extra}}}\n", s.name, s.addr))
        .collect()
}

impl Lb {
    fn status(&self) -> serde_json::Value {
        self.d.status().unwrap()["state"].clone()
    }

    /// Backend `b`'s servers as `/status` shows them.
    fn servers(&self) -> Vec<serde_json::Value> {
        let st = self.status();
        st["backends"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["name"] == "b"))
            .and_then(|b| b["servers"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("no backend b in {st}"))
    }

    fn server(&self, name: &str) -> serde_json::Value {
        self.servers()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no server {name} in {}", self.status()))
    }

    /// Waits until exactly `names` are UP (taking traffic).
    fn wait_up(&self, names: &[&str]) {
        let ok = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
            let up: Vec<String> = self
                .servers()
                .iter()
                .filter(|s| s["up"] == true)
                .map(|s| s["name"].as_str().unwrap_or("").to_owned())
                .collect();
            (up == names).then_some(())
        });
        assert!(
            ok.is_some(),
            "servers UP never became {names:?}: {}\n{}",
            self.status(),
            self.d.log()
        );
    }

    /// Server names reached by `n` connections opened and closed one by one.
    fn spread(&self, n: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let (name, _conn) = who(self.front).unwrap();
            *seen.entry(name).or_default() += 1;
        }
        seen
    }
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn roundrobin_and_static_rr_follow_the_weights() {
    let (a, b) = (echo("a"), echo("b"));
    for balance in ["roundrobin", "static-rr"] {
        let lb = lbd(
            "",
            &format!(
                "    balance: {balance}\n    servers:\n{}",
                servers_yaml(&[(&a, ", weight: 3"), (&b, ", weight: 1")])
            ),
        );
        lb.wait_up(&["a", "b"]);
        assert_eq!(lb.spread(40), counts(&[("a", 30), ("b", 10)]), "{balance}");
    }
}

#[test]
fn leastconn_sends_new_sessions_to_the_least_loaded() {
    let (a, b) = (echo("a"), echo("b"));
    let lb = lbd(
        "",
        &format!(
            "    balance: leastconn\n    servers:\n{}",
            servers_yaml(&[(&a, ""), (&b, "")])
        ),
    );
    lb.wait_up(&["a", "b"]);
    let held: Vec<_> = (0..4).map(|_| who(lb.front).unwrap()).collect();
    let on = |n: &str| held.iter().filter(|(s, _)| s == n).count();
    assert_eq!((on("a"), on("b")), (2, 2));
    // End the sessions on b: the next two go to b, which now has none.
    let (on_a, on_b): (Vec<_>, Vec<_>) = held.into_iter().partition(|(s, _)| s == "a");
    drop(on_b);
    let wait_b_idle = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        (b.open() == 0).then_some(())
    });
    assert!(wait_b_idle.is_some());
    let next: Vec<_> = (0..2).map(|_| who(lb.front).unwrap().0).collect();
    assert_eq!(next, ["b", "b"]);
    drop(on_a);
}

#[test]
fn source_keeps_each_client_on_one_server() {
    let servers = [echo("a"), echo("b"), echo("c")];
    let lb = lbd(
        "",
        &format!(
            "    balance: source\n    servers:\n{}",
            servers_yaml(&[(&servers[0], ""), (&servers[1], ""), (&servers[2], "")])
        ),
    );
    lb.wait_up(&["a", "b", "c"]);
    let mut owner = BTreeMap::new();
    for i in 2..18u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, i));
        let first = who_from(lb.front, Some(ip)).unwrap().0;
        for _ in 0..3 {
            assert_eq!(
                who_from(lb.front, Some(ip)).unwrap().0,
                first,
                "client {ip} moved"
            );
        }
        owner.insert(ip, first);
    }
    let used: std::collections::BTreeSet<_> = owner.values().collect();
    assert!(
        used.len() >= 2,
        "16 clients all hashed to one server: {owner:?}"
    );
}

#[test]
fn first_fills_servers_in_order_up_to_maxconn() {
    let (a, b) = (echo("a"), echo("b"));
    let lb = lbd(
        "",
        &format!(
            "    balance: first\n    servers:\n{}",
            servers_yaml(&[(&a, ", maxconn: 2"), (&b, ", maxconn: 2")])
        ),
    );
    lb.wait_up(&["a", "b"]);
    let held: Vec<_> = (0..3).map(|_| who(lb.front).unwrap()).collect();
    let names: Vec<_> = held.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "a", "b"]);
}

#[test]
fn backups_take_traffic_only_while_no_active_server_is_up() {
    let (mut a, b, c) = (echo("a"), echo("b"), echo("c"));
    let lb = lbd(
        "",
        &format!(
            "    servers:\n{}",
            servers_yaml(&[(&a, ""), (&b, ", backup: true"), (&c, ", backup: true")])
        ),
    );
    lb.wait_up(&["a", "b", "c"]);
    assert_eq!(lb.spread(4), counts(&[("a", 4)]));
    a.stop();
    lb.wait_up(&["b", "c"]);
    // Only the first backup, as HAProxy without allbackups.
    assert_eq!(lb.spread(4), counts(&[("b", 4)]));
    a.restart().unwrap();
    lb.wait_up(&["a", "b", "c"]);
    assert_eq!(lb.spread(4), counts(&[("a", 4)]));
}

#[test]
fn maxconn_queues_a_connection_until_a_slot_frees_or_timeout_queue() {
    let a = echo("a");
    let lb = lbd(
        "",
        &format!("    servers:\n{}", servers_yaml(&[(&a, ", maxconn: 1")])),
    );
    lb.wait_up(&["a"]);
    let first = who(lb.front).unwrap();
    // The second waits in the queue and gets the server once the first ends.
    let waiter = std::thread::spawn({
        let front = lb.front;
        move || {
            let t = Instant::now();
            (who(front).map(|w| w.0), t.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a.open(),
        1,
        "the queued connection reached the server past maxconn"
    );
    drop(first);
    let (got, waited) = waiter.join().unwrap();
    assert_eq!(got.unwrap(), "a");
    assert!(
        waited >= Duration::from_millis(250),
        "it did not wait: {waited:?}"
    );
    // Held past `timeout queue` (1s): the queued client is closed unserved.
    let _hold = who(lb.front).unwrap();
    let t = Instant::now();
    let queued = who(lb.front);
    assert!(
        queued.is_err(),
        "served past maxconn: {:?}",
        queued.map(|q| q.0)
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(lb.d.log().contains("timeout queue"), "{}", lb.d.log());
}

#[test]
fn a_refusing_server_is_retried_elsewhere_with_redispatch() {
    let b = echo("b");
    let dead = local(free_port());
    let backend = format!(
        "    balance: roundrobin\n    servers:\n      - {{name: dead, address: {dead}, check: false}}\n{}",
        servers_yaml(&[(&b, ", check: false")])
    );
    let lb = lbd("", &backend);
    assert_eq!(lb.spread(6), counts(&[("b", 6)]), "{}", lb.d.log());
    // Without redispatch the retries stay on the dead server and fail.
    let lb = lbd(
        "",
        &backend.replace(
            "    balance: roundrobin\n",
            "    balance: roundrobin\n    redispatch: false\n    retries: 1\n",
        ),
    );
    let results: Vec<bool> = (0..4).map(|_| who(lb.front).is_ok()).collect();
    assert_eq!(results.iter().filter(|ok| **ok).count(), 2, "{results:?}");
    assert!(
        lb.d.log().contains("connect failed after retries"),
        "{}",
        lb.d.log()
    );
}

#[test]
fn a_server_killed_under_load_stops_getting_sessions_and_comes_back() {
    let (mut a, b) = (echo("a"), echo("b"));
    let lb = lbd(
        "  fall: 2\n  rise: 2\n",
        &format!("    servers:\n{}", servers_yaml(&[(&a, ""), (&b, "")])),
    );
    lb.wait_up(&["a", "b"]);
    // A bounded stream of short sessions while a dies and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let load = std::thread::spawn({
        let (stop, front) = (stop.clone(), lb.front);
        move || {
            let (mut n, mut failed_at) = (0, Vec::new());
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                let t = Instant::now();
                if who(front).is_err() {
                    failed_at.push(t);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (n, failed_at)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    a.stop();
    let stopped_at = Instant::now();
    lb.wait_up(&["b"]);
    let took = stopped_at.elapsed();
    let accepted = a.accepted();
    assert_eq!(lb.spread(10), counts(&[("b", 10)]));
    assert_eq!(a.accepted(), accepted);
    a.restart().unwrap();
    lb.wait_up(&["a", "b"]);
    assert!(lb.spread(10).get("a").copied().unwrap_or(0) > 0);
    stop.store(true, Ordering::SeqCst);
    let (n, failed_at) = load.join().unwrap();
    // Only a session already on a when it died may fail; connections to a
    // between its death and its DOWN were redispatched to b.
    let late: Vec<_> = failed_at.iter().filter(|t| **t > stopped_at).collect();
    assert!(
        late.is_empty(),
        "{} of {n} sessions started after a died failed; {}",
        late.len(),
        lb.d.log()
    );
    let log = lb.d.log();
    assert_eq!(log.matches("server b/a is DOWN").count(), 1, "{log}");
    assert!(log.contains("server b/a is UP"), "{log}");
    eprintln!("a marked DOWN {took:?} after it died (fall 2 x inter 200ms)");
}

/// checkd on a free port answering for `target` (a tcp probe), as on a
/// proxy host: 200 while target accepts, 503 with the reason otherwise.
fn checkd_for(target: SocketAddr) -> (DaemonProcess, SocketAddr) {
    let port = local(free_port());
    let admin = local(free_port());
    let cfg = format!(
        "admin_http: {{listen: {admin}}}\nservices:\n  status:\n    type: http_check\n    bind: {port}\n    probe:\n      cache: 0s\n      tcp: {{address: {target}, timeout: 1s}}\n"
    );
    (DaemonProcess::start("checkd", &cfg, admin).unwrap(), port)
}

#[test]
fn httpchk_through_checkd_marks_down_and_shuts_sessions_down() {
    let (a, b) = (echo("a"), echo("b"));
    // What checkd probes: a's "health", separate from its traffic port.
    let mut health = echo("health-of-a");
    let (_checkd, check) = checkd_for(health.addr);
    let (_checkd_b, check_b) = checkd_for(b.addr);
    let lb = lbd(
        "  check: {type: http, uri: /}\n",
        &format!(
            "    servers:\n      - {{name: a, address: {}, addr: {}, port: {}}}\n      - {{name: b, address: {}, port: {}}}\n",
            a.addr,
            check.ip(),
            check.port(),
            b.addr,
            check_b.port()
        ),
    );
    lb.wait_up(&["a", "b"]);
    let (name, on_a) = who(lb.front).unwrap();
    let mut on_a = if name == "a" {
        on_a
    } else {
        who(lb.front).unwrap().1
    };
    on_a.get_mut().write_all(b"ping\n").unwrap();
    let mut line = String::new();
    on_a.read_line(&mut line).unwrap();
    assert_eq!(line, "ping\n");
    // a itself stays up; its health check says 503.
    health.stop();
    lb.wait_up(&["b"]);
    let st = lb.server("a");
    let reason = st["check"]["last_failure"].as_str().unwrap().to_owned();
    assert!(reason.contains("503"), "{st}");
    // on_marked_down: shutdown_sessions (the default) cut the session on a.
    let mut rest = Vec::new();
    let n = on_a.read_to_end(&mut rest);
    assert!(
        matches!(n, Ok(0)) || n.is_err(),
        "session on a still open: {n:?}"
    );
    assert!(lb.d.log().contains("server b/a is DOWN"), "{}", lb.d.log());
    health.restart().unwrap();
    lb.wait_up(&["a", "b"]);
}

#[test]
fn reload_under_load_refuses_no_connection_and_keeps_counters() {
    let (a, b, c) = (echo("a"), echo("b"), echo("c"));
    let front = local(free_port());
    let admin = local(free_port());
    let two = format!("    servers:\n{}", servers_yaml(&[(&a, ""), (&b, "")]));
    let lb = Lb {
        d: DaemonProcess::start("lbd", &config(front, admin, "", &two), admin).unwrap(),
        front,
    };
    lb.wait_up(&["a", "b"]);
    lb.spread(10);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0usize, Vec::new());
                let t = Instant::now();
                while !stop.load(Ordering::SeqCst)
                    && t.elapsed() < Duration::from_secs(30)
                    && ok < 50_000
                {
                    match who(front) {
                        Ok((_, mut conn)) => {
                            conn.get_mut().write_all(b"x\n").unwrap();
                            let mut l = String::new();
                            match conn.read_line(&mut l) {
                                Ok(_) if l == "x\n" => ok += 1,
                                other => failed.push(format!("echo: {other:?} {l:?}")),
                            }
                        }
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let three = format!(
        "    servers:\n{}",
        servers_yaml(&[(&a, ", weight: 2"), (&b, ""), (&c, "")])
    );
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        let body = if i % 2 == 0 { &three } else { &two };
        lb.d.write_config(&config(front, admin, "", body)).unwrap();
        lb.d.reload().unwrap();
        let want = i + 2;
        let ok = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            (lb.d.status().ok()?["config_generation"] == want).then_some(())
        });
        assert!(ok.is_some(), "reload {i} not applied: {}", lb.d.log());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for w in workers {
        let (o, f) = w.join().unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 100, "only {ok} sessions under load");
    assert!(
        failed.is_empty(),
        "{} of {} failed across reloads: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    // a was in every generation: its counters were never reset.
    let total_a = lb.d.get("/status").unwrap();
    assert!(total_a.0 == 200);
    eprintln!("{ok} sessions, 0 failed, across 6 reloads");
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Streams `total` bytes through lbd to the echo server and back, then
/// half-closes: the echo ends only after all of it came back.
fn stream_through(front: SocketAddr, total: u64) -> u64 {
    let (_, conn) = who(front).unwrap();
    let mut reader = conn.into_inner();
    reader
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = reader.try_clone().unwrap();
    let send = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sent = 0u64;
        while sent < total {
            let n = chunk.len().min((total - sent) as usize);
            writer.write_all(&chunk[..n]).unwrap();
            sent += n as u64;
        }
        // Half-close: the answer must still arrive in full.
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
    }
    send.join().unwrap();
    got
}

#[test]
fn a_gigabyte_streams_through_with_half_close_and_flat_memory() {
    let a = echo("a");
    for (splice, total) in [(false, 1u64 << 30), (true, 256u64 << 20)] {
        let front = local(free_port());
        let admin = local(free_port());
        let cfg = config_with(front, admin, &[(&a, "")], &format!("splice: {splice}\n"));
        let lb = Lb {
            d: DaemonProcess::start("lbd", &cfg, admin).unwrap(),
            front,
        };
        lb.wait_up(&["a"]);
        // Warm up, then measure.
        assert_eq!(stream_through(front, 4 << 20), 4 << 20);
        let before = rss_kib(lb.d.pid());
        assert_eq!(stream_through(front, total), total, "splice {splice}");
        let after = rss_kib(lb.d.pid());
        assert!(
            after < before + 32 * 1024,
            "RSS grew from {before} KiB to {after} KiB streaming {total} bytes (splice {splice})"
        );
        let st = lb.server("a");
        assert_eq!(
            st["bytes_in"].as_u64().unwrap(),
            total + (8 << 20) / 2,
            "{st}"
        );
        eprintln!("splice {splice}: {total} bytes, RSS {before} -> {after} KiB");
    }
}

#[test]
fn runtime_actions_disable_drain_weight_and_reject_bad_input() {
    let (a, b) = (echo("a"), echo("b"));
    let lb = lbd(
        "",
        &format!("    servers:\n{}", servers_yaml(&[(&a, ""), (&b, "")])),
    );
    lb.wait_up(&["a", "b"]);
    let post = |p: &str| http_post(lb.d.admin, p);
    let (code, body) = post("/actions/disable?backend=b&server=a");
    assert_eq!(code, 200, "{body}");
    assert_eq!(lb.spread(4), counts(&[("b", 4)]));
    assert_eq!(lb.server("a")["admin"], "maint");
    let (code, _) = post("/actions/enable?backend=b&server=a");
    assert_eq!(code, 200);
    lb.wait_up(&["a", "b"]);
    // Drain: keeps its sessions, takes no new one.
    let (name, held) = who(lb.front).unwrap();
    let (code, _) = post(&format!("/actions/drain?backend=b&server={name}"));
    assert_eq!(code, 200);
    let other = if name == "a" { "b" } else { "a" };
    assert_eq!(lb.spread(4), counts(&[(other, 4)]));
    assert_eq!(lb.server(&name)["current_sessions"], 1);
    drop(held);
    post(&format!("/actions/enable?backend=b&server={name}"));
    let (code, _) = post("/actions/set-weight?backend=b&server=a&value=3");
    assert_eq!(code, 200);
    assert_eq!(lb.spread(8), counts(&[("a", 6), ("b", 2)]));
    for (path, says) in [
        (
            "/actions/set-weight?backend=b&server=a&value=300",
            "between 0 and 256",
        ),
        (
            "/actions/set-weight?backend=b&server=a&value=abc",
            "weight must be",
        ),
        (
            "/actions/disable?backend=b&server=zz",
            "no server \\\"zz\\\" in backend \\\"b\\\" (servers: a, b)",
        ),
        (
            "/actions/disable?backend=nope&server=a",
            "no backend \\\"nope\\\"",
        ),
        (
            "/actions/disable?server=a",
            "needs ?backend=NAME&server=NAME",
        ),
    ] {
        let (code, body) = post(path);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    let (code, body) = post("/actions/explode?backend=b&server=a");
    assert_eq!(code, 404, "{body}");
}

#[test]
fn send_proxy_gives_the_server_the_client_address() {
    for (version, want) in [("v1", "PROXY TCP4 127.0.0.7 "), ("v2", "v2 127.0.0.7:")] {
        let a = echo("a");
        a.expect_proxy_header();
        let lb = lbd(
            "",
            &format!(
                "    send_proxy: {version}\n    servers:\n{}",
                servers_yaml(&[(&a, ", check: false")])
            ),
        );
        let (name, _c) = who_from(lb.front, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)))).unwrap();
        assert_eq!(name, "a");
        let header = a.last_proxy_header().unwrap();
        assert!(header.starts_with(want), "{version}: {header}");
        assert!(
            header.contains(&lb.front.to_string())
                || header.ends_with(&format!(" {}", lb.front.port())),
            "{version}: {header}"
        );
    }
}

#[test]
fn binds_an_address_the_host_does_not_have_yet() {
    let a = echo("a");
    // TEST-NET-1: on no interface here; IP_FREEBIND lets lbd listen anyway,
    // as on the backup LB host before vrrpd moves the VIP to it.
    let front = SocketAddr::from(([192, 0, 2, 77], free_port()));
    let admin = local(free_port());
    let d = DaemonProcess::start(
        "lbd",
        &config(
            front,
            admin,
            "",
            &format!("    servers:\n{}", servers_yaml(&[(&a, "")])),
        ),
        admin,
    )
    .unwrap();
    assert!(
        d.log().contains(&format!("listening addr={front}")),
        "{}",
        d.log()
    );
}

#[test]
fn frontend_maxconn_leaves_extra_clients_waiting_in_the_backlog() {
    let a = echo("a");
    // Unchecked: a check's own connection would count in `open`.
    let lb = lbd(
        "  maxconn: 1\n",
        &format!("    servers:\n{}", servers_yaml(&[(&a, ", check: false")])),
    );
    lb.wait_up(&["a"]);
    let first = who(lb.front).unwrap();
    let waiter = std::thread::spawn({
        let front = lb.front;
        move || who(front).map(|w| w.0)
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        a.open(),
        1,
        "a second session was let through past the frontend's maxconn"
    );
    drop(first);
    assert_eq!(waiter.join().unwrap().unwrap(), "a");
}

#[test]
fn a_reload_that_cannot_bind_is_refused_and_the_old_config_keeps_serving() {
    let a = echo("a");
    let lb = lbd("", &format!("    servers:\n{}", servers_yaml(&[(&a, "")])));
    lb.wait_up(&["a"]);
    // A port someone else holds without SO_REUSEPORT.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let cfg = std::fs::read_to_string(&lb.d.config_path).unwrap();
    let bad = cfg.replace(
        &format!("bind: [{}]", lb.front),
        &format!("bind: [{}, {busy}]", lb.front),
    );
    assert_ne!(bad, cfg);
    lb.d.write_config(&bad).unwrap();
    lb.d.reload().unwrap();
    let refused = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let st = lb.d.status().ok()?;
        (st["last_reload"]["result"] == "error").then_some(st)
    })
    .unwrap();
    let errors = refused["last_reload"]["errors"].to_string();
    assert!(
        errors.contains(&format!("frontends.f.bind {busy}")),
        "{errors}"
    );
    assert_eq!(refused["config_generation"], 1);
    assert_eq!(who(lb.front).unwrap().0, "a");
}

/// GET with basic auth (`user:pass`): (status, headers and body).
fn get_auth(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    use base64::Engine;
    let header = auth.map(|a| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(a)
        )
    });
    let headers: Vec<(&str, &str)> = header
        .iter()
        .map(|h| ("Authorization", h.as_str()))
        .collect();
    hastack_it::daemon::http_request(addr, "GET", path, &headers)
}

/// `config` with `extra` top-level lines.
fn config_with(
    front: SocketAddr,
    admin: SocketAddr,
    servers: &[(&EchoServer, &str)],
    extra: &str,
) -> String {
    config(
        front,
        admin,
        "",
        &format!("    servers:\n{}", servers_yaml(servers)),
    )
    .replace(
        "shutdown_grace: 2s\n",
        &format!("shutdown_grace: 2s\n{extra}"),
    )
}

#[test]
fn stats_page_csv_json_and_metrics_agree_and_auth_is_enforced() {
    let (a, mut b) = (echo("a"), echo("b"));
    let lb = lbd(
        "",
        &format!("    servers:\n{}", servers_yaml(&[(&a, ""), (&b, "")])),
    );
    lb.wait_up(&["a", "b"]);
    b.stop();
    lb.wait_up(&["a"]);
    for _ in 0..3 {
        let (_, mut c) = who(lb.front).unwrap();
        c.get_mut().write_all(b"hello\n").unwrap();
        let mut l = String::new();
        c.read_line(&mut l).unwrap();
    }
    let (code, html) = lb.d.get("/stats").unwrap();
    assert_eq!(code, 200);
    assert!(
        html.contains("<html") && html.contains("http-equiv=\"refresh\""),
        "{html}"
    );
    assert!(html.contains(">a<") || html.contains(">a "), "{html}");
    let (code, csv) = lb.d.get("/stats;csv").unwrap();
    assert_eq!(code, 200);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    assert_eq!(
        &header[..6],
        ["pxname", "svname", "qcur", "qmax", "scur", "smax"]
    );
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let row = |sv: &str| {
        rows.iter()
            .find(|r| r[0] == "b" && r[1] == sv)
            .unwrap_or_else(|| panic!("no b/{sv} in {csv}"))
    };
    assert_eq!(row("a")[col("status")], "UP");
    assert_eq!(row("b")[col("status")], "DOWN");
    assert_eq!(row("a")[col("stot")], "3");
    assert_eq!(row("a")[col("bin")], "18");
    assert!(
        rows.iter().any(|r| r[0] == "f" && r[1] == "FRONTEND"),
        "{csv}"
    );
    let (code, json) = lb.d.get("/stats;json").unwrap();
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["backends"][0]["servers_up"], 1);
    let metrics = lb.d.metrics().unwrap();
    for line in [
        "hastack_lbd_server_up{backend=\"b\",server=\"a\"} 1",
        "hastack_lbd_server_up{backend=\"b\",server=\"b\"} 0",
        "hastack_lbd_server_sessions_total{backend=\"b\",server=\"a\"} 3",
        "hastack_lbd_server_received_bytes_total{backend=\"b\",server=\"a\"} 18",
        "hastack_lbd_backend_servers_up{backend=\"b\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }

    // With stats.auth the pages need the credentials; /status does not.
    let front = local(free_port());
    let admin = local(free_port());
    let cfg = config_with(
        front,
        admin,
        &[(&a, "")],
        "stats: {refresh: 2s, auth: {user: admin, password: s3cret}}\n",
    );
    let d = DaemonProcess::start("lbd", &cfg, admin).unwrap();
    let (code, resp) = get_auth(admin, "/stats", None);
    assert_eq!(code, 401, "{resp}");
    assert!(
        resp.to_lowercase()
            .contains("www-authenticate: basic realm"),
        "{resp}"
    );
    assert_eq!(get_auth(admin, "/stats;csv", Some("admin:wrong")).0, 401);
    assert_eq!(get_auth(admin, "/stats;csv", Some("admin:s3cret")).0, 200);
    assert_eq!(d.get("/status").unwrap().0, 200);
}

#[test]
fn runtime_socket_speaks_haproxys_commands_and_rejects_garbage() {
    let (a, b) = (echo("a"), echo("b"));
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("lbd.sock");
    let front = local(free_port());
    let admin = local(free_port());
    let cfg = config_with(
        front,
        admin,
        &[(&a, ""), (&b, "")],
        &format!(
            "runtime_socket: {{path: {}, mode: \"0660\"}}\n",
            sock.display()
        ),
    );
    let lb = Lb {
        d: DaemonProcess::start("lbd", &cfg, admin).unwrap(),
        front,
    };
    lb.wait_up(&["a", "b"]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o660
    );
    let ask = |line: &str| lbd::ctl::ask(&sock, line).unwrap();
    assert!(ask("help").contains("show stat"));
    assert!(ask("show stat").starts_with("# pxname,svname,"));
    // Two commands on one line, HAProxy's `;`.
    let answer = ask("disable server b/a; get weight b/b");
    assert_eq!(answer, "\n1 (initial 1)\n\n", "{answer:?}");
    assert_eq!(lb.spread(3), counts(&[("b", 3)]));
    assert!(
        ask("show servers state b")
            .lines()
            .any(|l| l.contains(" a ")),
        "{}",
        ask("show servers state b")
    );
    ask("enable server b/a");
    lb.wait_up(&["a", "b"]);
    ask("set weight b/a 300%");
    assert_eq!(ask("get weight b/a"), "3 (initial 1)\n\n");
    assert_eq!(lb.spread(8), counts(&[("a", 6), ("b", 2)]));
    for (line, says) in [
        ("shwo stat", "unknown command"),
        ("disable server proxy1", "backend/server"),
        ("set weight b/a lots", "weight"),
        ("disable server b/zz", "no server \"zz\" in backend \"b\""),
        ("set server b/a state sleepy", "ready"),
    ] {
        let answer = ask(line);
        assert!(answer.contains(says), "{line}: {answer}");
    }
    // Garbage and an endless line: an error, never a hang or a crash.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let junk = vec![0xffu8; 100 * 1024];
    let _ = s.write_all(&junk);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.contains("longer than"), "{out:?}");
    assert!(
        ask("show info").contains("Name: lbd"),
        "{}",
        ask("show info")
    );
    // `lbd ctl` reads the socket path from the config.
    let out = std::process::Command::new(hastack_it::daemon::bin_path("lbd").unwrap())
        .args(["ctl", "-f"])
        .arg(&lb.d.config_path)
        .args(["show", "backend"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "# name\nb\n\n");
}

#[test]
fn a_slow_client_gets_backpressure_not_a_growing_buffer() {
    let a = echo("a");
    let lb = lbd("", &format!("    servers:\n{}", servers_yaml(&[(&a, "")])));
    lb.wait_up(&["a"]);
    let (_, conn) = who(lb.front).unwrap();
    let mut reader = conn.into_inner();
    let mut writer = reader.try_clone().unwrap();
    let before = rss_kib(lb.d.pid());
    // The client sends 64 MiB as fast as it can but reads its echo slowly:
    // the bytes must wait in socket buffers, and the sender must stall.
    let total = 64u64 << 20;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let send = std::thread::spawn({
        let sent = sent.clone();
        move || {
            let chunk = vec![1u8; 64 * 1024];
            while sent.load(Ordering::SeqCst) < total {
                if writer.write_all(&chunk).is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0u64;
    for _ in 0..40 {
        got += reader.read(&mut buf).unwrap() as u64;
        std::thread::sleep(Duration::from_millis(25));
    }
    let stalled_at = sent.load(Ordering::SeqCst);
    assert!(
        stalled_at < total / 2,
        "the sender was never held back: {stalled_at} bytes sent"
    );
    let during = rss_kib(lb.d.pid());
    assert!(
        during < before + 16 * 1024,
        "RSS grew from {before} to {during} KiB behind a slow client"
    );
    // Then it reads fast: everything arrives.
    reader
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => panic!("{e}"),
        }
    }
    send.join().unwrap();
    assert_eq!(got, total);
}
