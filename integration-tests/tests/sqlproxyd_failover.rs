//! sqlproxyd's high availability against a real primary and two replicas:
//! failover under write load with nothing acknowledged lost, fencing and
//! rejoin of the old primary, lag-aware reads, the persisted write node,
//! and two proxies that promote exactly once between them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hastack_it::daemon::http_post;
use hastack_it::sqlproxy::{state_dir_for, Proxy};
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

/// Heartbeats fast enough for a test, failover allowed at once.
const HA: &str = "    heartbeat: {interval: 300ms, timeout: 2s, fail_count: 3, user: monitor, password: monitor}\n    failover: {replication_user: repl, replication_password: repl, min_switch_interval: 1s, primary_wait: 10s}\n    max_replica_lag: 5s\n";

fn status_of(proxy: &Proxy) -> serde_json::Value {
    proxy.daemon.status().unwrap()["state"]["data_hosts"][0].clone()
}

fn primary_of(proxy: &Proxy) -> Option<String> {
    status_of(proxy)["primary"].as_str().map(str::to_owned)
}

fn node_state(proxy: &Proxy, node: usize) -> (String, String) {
    let n = &status_of(proxy)["nodes"][node];
    (
        n["state"].as_str().unwrap_or("").to_owned(),
        n["reason"].as_str().unwrap_or("").to_owned(),
    )
}

/// What a writer saw: acknowledged ids, and when writes failed.
struct Ledger {
    acked: Vec<u32>,
    failed: Vec<(Instant, String)>,
    /// First failure → first success after it.
    outage: Option<Duration>,
}

/// Inserts ids `from..` through the proxy, one autocommit statement each,
/// reconnecting after an error as a pooled application would, until `stop`
/// says so (bounded by `limit` statements).
fn write_loop(
    proxy_addr: std::net::SocketAddr,
    from: u32,
    limit: u32,
    stop: impl Fn(&Ledger) -> bool,
) -> Ledger {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(proxy_addr.ip().to_string()))
        .tcp_port(proxy_addr.port())
        .user(Some("app"))
        .pass(Some("app"))
        .db_name(Some("app"))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(2)))
        .read_timeout(Some(Duration::from_secs(10)));
    let mut ledger = Ledger {
        acked: Vec::new(),
        failed: Vec::new(),
        outage: None,
    };
    let mut conn: Option<mysql::Conn> = None;
    let mut first_failure: Option<Instant> = None;
    for id in from..from + limit {
        if stop(&ledger) {
            break;
        }
        let result = (|| -> Result<(), String> {
            if conn.is_none() {
                conn = Some(mysql::Conn::new(opts.clone()).map_err(|e| e.to_string())?);
            }
            conn.as_mut()
                .unwrap()
                // Text protocol: a server-side prepared statement lives on
                // one backend connection and does not survive a switchover.
                .query_drop(format!(
                    "INSERT INTO ledger (id, payload) VALUES ({id}, REPEAT('x', 100))"
                ))
                .map_err(|e| e.to_string())
        })();
        match result {
            Ok(()) => {
                ledger.acked.push(id);
                if let Some(f) = first_failure.take() {
                    ledger
                        .outage
                        .get_or_insert(Instant::now().saturating_duration_since(f));
                }
            }
            Err(e) => {
                conn = None;
                first_failure.get_or_insert(Instant::now());
                ledger.failed.push((Instant::now(), e));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    ledger
}

/// `@@read_only` of `node`, read as root; `None` while it does not answer.
fn read_only(cluster: &MariaDbCluster, node: usize) -> Option<u32> {
    cluster
        .conn(node)
        .ok()?
        .query_first("SELECT @@read_only")
        .ok()?
}

fn ids_on(cluster: &MariaDbCluster, node: usize) -> BTreeSet<u32> {
    cluster
        .conn(node)
        .unwrap()
        .query("SELECT id FROM app.ledger")
        .unwrap()
        .into_iter()
        .collect()
}

fn wait_primary(proxy: &Proxy, name: &str) {
    let found = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        primary_of(proxy).filter(|p| p == name)
    });
    assert!(
        found.is_some(),
        "{name} is not primary: {}\n{}",
        status_of(proxy),
        proxy.daemon.log()
    );
}

fn create_ledger(proxy: &Proxy) {
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("CREATE TABLE ledger (id INT PRIMARY KEY, payload TEXT)")
        .unwrap();
}

#[test]
fn a_killed_primary_is_replaced_without_losing_an_acknowledged_write_and_is_fenced_on_return() {
    let mut cluster = MariaDbCluster::start(3).unwrap();
    cluster.enable_semi_sync(0).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", HA).unwrap();
    wait_primary(&proxy, "db-1");
    create_ledger(&proxy);

    // Writes run; the primary dies under them.
    let addr = proxy.addr;
    let writer = std::thread::spawn(move || {
        let started = Instant::now();
        write_loop(addr, 1, 100_000, |l| {
            // Until writes have resumed for a while after the failure, at most 40 s.
            let resumed = l.failed.last().is_some_and(|(t, _)| {
                Instant::now().saturating_duration_since(*t) > Duration::from_secs(2)
            });
            resumed || Instant::now().saturating_duration_since(started) > Duration::from_secs(40)
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    cluster.kill(0).unwrap();
    let ledger = writer.join().unwrap();

    assert!(
        !ledger.failed.is_empty(),
        "the kill was not noticed by the writer"
    );
    let outage = ledger
        .outage
        .expect("writes never resumed after the primary was killed");
    let new_primary = primary_of(&proxy).expect("no primary after failover");
    assert!(
        new_primary == "db-2" || new_primary == "db-3",
        "{new_primary}"
    );
    let p = if new_primary == "db-2" { 1 } else { 2 };
    let other = 3 - p;
    eprintln!(
        "failover: {} writes acknowledged, {} failed; write outage {outage:?}; promoted {new_primary}; first failure {:?} after the kill",
        ledger.acked.len(),
        ledger.failed.len(),
        ledger.failed.first().map(|(t, _)| t.saturating_duration_since(killed_at)),
    );
    for (_, e) in ledger.failed.iter().take(3) {
        eprintln!("  a failed write said: {e}");
    }

    // Nothing acknowledged is missing on the new primary.
    let present = ids_on(&cluster, p);
    let lost: Vec<u32> = ledger
        .acked
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // The promoted node is writable and replicates from nobody; the other follows it.
    assert_eq!(read_only(&cluster, p), Some(0));
    assert!(cluster.replica_status(p).unwrap().is_none());
    let followed = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        cluster
            .replica_field(other, "Master_Port")
            .ok()
            .flatten()
            .filter(|port| *port == cluster.addr(p).port().to_string())
    });
    assert!(followed.is_some(), "{:?}", cluster.replica_status(other));
    let dnindex =
        std::fs::read_to_string(state_dir_for(proxy.addr).join("dnindex.properties")).unwrap();
    assert!(dnindex.contains(&format!("dh1={p}")), "{dnindex}");

    // The old primary comes back writable (as it was configured): fenced
    // at once, then pointed at the new primary and readmitted for reads.
    cluster.start_node(0).unwrap();
    let fenced = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        let ro = read_only(&cluster, 0);
        (ro == Some(1)).then_some(())
    });
    assert!(
        fenced.is_some(),
        "old primary not fenced: {:?}",
        node_state(&proxy, 0)
    );
    assert_eq!(
        primary_of(&proxy).as_deref(),
        Some(new_primary.as_str()),
        "the returning node must not become primary"
    );
    // It rejoins, unless the write in flight at the kill reached its binlog
    // and no replica (semi-sync commits before the ack): then it holds a
    // transaction nobody acknowledged, has diverged, and stays fenced.
    let settled = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        let (state, reason) = node_state(&proxy, 0);
        (state == "up" || (state == "fenced" && reason.contains("diverged")))
            .then_some((state, reason))
    });
    let (state, reason) = settled.unwrap_or_else(|| {
        panic!(
            "old primary neither readmitted nor found diverged: {:?}\n{}",
            node_state(&proxy, 0),
            proxy.daemon.log()
        )
    });
    if state == "fenced" {
        eprintln!("old primary diverged (the unacknowledged write in flight): {reason}");
        assert_eq!(ledger.failed.len(), 1, "{reason}");
        assert_eq!(
            reason.matches(',').count(),
            0,
            "more than one errant GTID: {reason}"
        );
        // It kept every write acknowledged before the kill; those after
        // went to the new primary, which a fenced node does not follow.
        let first_failed = (1..).find(|id| !ledger.acked.contains(id)).unwrap_or(0);
        let on_old = ids_on(&cluster, 0);
        let missing: Vec<u32> = ledger
            .acked
            .iter()
            .copied()
            .filter(|id| *id < first_failed && !on_old.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "acknowledged before the kill, missing on the old primary: {missing:?}"
        );
    } else {
        assert_eq!(
            cluster.replica_field(0, "Master_Port").unwrap(),
            Some(cluster.addr(p).port().to_string())
        );
        // It has every acknowledged write too, and a later write reaches it.
        let mut w = proxy.conn("app", "app", Some("app")).unwrap();
        w.query_drop("INSERT INTO ledger (id, payload) VALUES (0, 'after rejoin')")
            .unwrap();
        cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
        let on_old = ids_on(&cluster, 0);
        assert!(on_old.contains(&0) && ledger.acked.iter().all(|id| on_old.contains(id)));
    }
    let log = proxy.daemon.log();
    assert_eq!(log.matches("promotion done").count(), 1, "{log}");
    assert!(log.contains("fenced"), "{log}");
    let metrics = proxy.daemon.metrics().unwrap();
    assert!(metrics.contains("hastack_sqlproxyd_ha_events_total{data_host=\"dh1\",event=\"promotion\",result=\"ok\"} 1"), "{metrics}");
}

fn log_count(proxies: &[&Proxy], what: &str) -> usize {
    proxies
        .iter()
        .map(|p| p.daemon.log().matches(what).count())
        .sum()
}

#[test]
fn two_proxies_promote_once_and_a_diverged_old_primary_stays_fenced() {
    let mut cluster = MariaDbCluster::start(3).unwrap();
    let state = tempfile::tempdir().unwrap();
    let top = format!("state_dir: {}\n", state.path().display());
    let a = Proxy::start_with(&cluster, "replicas", HA, &top).unwrap();
    let b = Proxy::start(&cluster, "replicas", HA).unwrap();
    wait_primary(&a, "db-1");
    wait_primary(&b, "db-1");
    create_ledger(&a);
    let mut c = a.conn("app", "app", Some("app")).unwrap();
    c.exec_drop("INSERT INTO ledger VALUES (1, 'before')", ())
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();

    cluster.kill(0).unwrap();
    let agreed = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        let (pa, pb) = (primary_of(&a)?, primary_of(&b)?);
        (pa == pb && pa != "db-1").then_some(pa)
    });
    let new_primary = agreed.unwrap_or_else(|| {
        panic!(
            "proxies did not agree on a new primary\n{}\n{}",
            a.daemon.log(),
            b.daemon.log()
        )
    });
    let p = if new_primary == "db-2" { 1 } else { 2 };
    // Let both run a few more rounds: still exactly one promotion.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        log_count(&[&a, &b], "promotion done"),
        1,
        "{}\n{}",
        a.daemon.log(),
        b.daemon.log()
    );
    // Writes through either proxy land on the same node.
    for (i, proxy) in [&a, &b].into_iter().enumerate() {
        let mut c = proxy.conn("app", "app", Some("app")).unwrap();
        c.exec_drop(
            "INSERT INTO ledger VALUES (?, @@server_id)",
            (10 + i as u32,),
        )
        .unwrap();
    }
    let sids: Vec<String> = cluster
        .conn(p)
        .unwrap()
        .query("SELECT payload FROM app.ledger WHERE id >= 10")
        .unwrap();
    assert_eq!(sids, vec![(p + 1).to_string(); 2]);

    // Both proxies stop; the old primary returns and takes a write of its
    // own that the new primary never gets (an errant transaction).
    drop(b);
    let a_state = a.daemon.status().unwrap();
    drop(a);
    cluster.start_node(0).unwrap();
    cluster
        .conn(0)
        .unwrap()
        .query_drop("INSERT INTO app.ledger VALUES (99, 'errant')")
        .unwrap();

    // A proxy restarted on the same state dir: writes go to the persisted,
    // followed primary; the old one is fenced and, diverged, stays so.
    let dnindex = std::fs::read_to_string(state.path().join("dnindex.properties")).unwrap();
    assert!(
        dnindex.contains(&format!("dh1={p}")),
        "{dnindex}\n{a_state}"
    );
    let a = Proxy::start_with(&cluster, "replicas", HA, &top).unwrap();
    wait_primary(&a, &new_primary);
    let diverged = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let (state, reason) = node_state(&a, 0);
        let ro = read_only(&cluster, 0);
        (state == "fenced"
            && ro == Some(1)
            && (reason.contains("diverged") || reason.contains("1236")))
        .then_some(reason)
    });
    let reason = diverged.unwrap_or_else(|| {
        panic!(
            "old primary not kept fenced: {:?}\n{}",
            node_state(&a, 0),
            a.daemon.log()
        )
    });
    eprintln!("diverged old primary: {reason}");
    // And it stays out of rotation.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node_state(&a, 0).0, "fenced");
    assert_eq!(primary_of(&a).as_deref(), Some(new_primary.as_str()));
    let rows: Vec<mysql::Row> = admin_conn(&a).query("show @@heartbeat").unwrap();
    let first: Vec<String> = rows[0]
        .clone()
        .unwrap()
        .into_iter()
        .map(|v| match v {
            mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(first[0], "db-1");
    assert_eq!(first[6], "fenced", "{first:?}");
    assert!(
        first[12].contains("diverged") || first[12].contains("1236"),
        "{first:?}"
    );
}

#[test]
fn replicas_that_stop_or_fall_behind_get_no_reads_until_they_catch_up() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", HA).unwrap();
    wait_primary(&proxy, "db-1");
    let read_servers = || -> BTreeSet<u32> {
        (0..8)
            .map(|_| {
                let mut c = proxy.conn("app", "app", Some("app")).unwrap();
                c.query_first("SELECT @@server_id").unwrap().unwrap()
            })
            .collect()
    };
    assert_eq!(read_servers(), BTreeSet::from([2, 3]));

    cluster.stop_sql_thread(1).unwrap();
    let excluded = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        (node_state(&proxy, 1).0 == "lagging").then_some(())
    });
    assert!(excluded.is_some(), "{:?}", node_state(&proxy, 1));
    assert!(
        node_state(&proxy, 1).1.contains("SQL thread"),
        "{:?}",
        node_state(&proxy, 1)
    );
    assert_eq!(read_servers(), BTreeSet::from([3]));

    cluster.start_sql_thread(1).unwrap();
    let back = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        (node_state(&proxy, 1).0 == "up").then_some(())
    });
    assert!(back.is_some(), "{:?}", node_state(&proxy, 1));
    assert_eq!(read_servers(), BTreeSet::from([2, 3]));

    // Lag: node 3 applies events 30 s late; after a write it falls behind.
    let mut c = cluster.conn(2).unwrap();
    c.query_drop("STOP SLAVE").unwrap();
    c.query_drop("CHANGE MASTER TO MASTER_DELAY = 30").unwrap();
    c.query_drop("START SLAVE").unwrap();
    let mut w = proxy.conn("app", "app", Some("app")).unwrap();
    w.query_drop("CREATE TABLE lagged (id INT PRIMARY KEY)")
        .unwrap();
    let lagging = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        let (state, reason) = node_state(&proxy, 2);
        (state == "lagging").then_some(reason)
    });
    let reason = lagging.unwrap_or_else(|| panic!("{:?}", node_state(&proxy, 2)));
    assert!(reason.contains("behind"), "{reason}");
    assert_eq!(read_servers(), BTreeSet::from([2]));
    // With both replicas out, reads fall back to the primary.
    cluster.stop_sql_thread(1).unwrap();
    wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        (node_state(&proxy, 1).0 == "lagging").then_some(())
    })
    .unwrap();
    assert_eq!(read_servers(), BTreeSet::from([1]));
}

#[test]
fn mycat_mode_honours_the_persisted_write_node_and_changes_nothing_on_the_backends() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("dnindex.properties"), "#update\ndh1=1\n").unwrap();
    let top = format!("state_dir: {}\n", state.path().display());
    let extra = "    heartbeat: {interval: 300ms, user: monitor, password: monitor}\n    failover: {promote: false, auto_rejoin: false}\n";
    let proxy = Proxy::start_with(&cluster, "primary", extra, &top).unwrap();
    wait_primary(&proxy, "db-2");
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let sid: u32 = c
        .query_first("/*#mycat:db_type=master*/ SELECT @@server_id")
        .unwrap()
        .unwrap();
    assert_eq!(sid, 2, "the persisted index names the second node");
    // Nothing was fenced or promoted: node 1 is still the writable one.
    let ro = read_only(&cluster, 0).unwrap();
    assert_eq!(ro, 0);
    assert_eq!(log_count(&[&proxy], "fenced"), 0);
}

#[test]
fn a_second_sqlproxyd_on_the_same_state_dir_refuses_to_start_naming_the_holder() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let state = tempfile::tempdir().unwrap();
    let top = format!("state_dir: {}\n", state.path().display());
    let first = Proxy::start_with(&cluster, "primary", "", &top).unwrap();
    wait_primary(&first, "db-1");
    // Other ports, the same directory: its dnindex.properties has one writer.
    let e = Proxy::start_with(&cluster, "primary", "", &top)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        e.contains(&format!(
            "state_dir {}: in use by another sqlproxyd (pid {})",
            state.path().display(),
            first.daemon.pid()
        )),
        "{e}"
    );
    // The first one is unaffected and is the one that wrote the index.
    let index = state.path().join("dnindex.properties");
    let written = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        std::fs::read_to_string(&index)
            .ok()
            .filter(|t| t.contains("dh1=0"))
    });
    assert!(written.is_some(), "{}", first.daemon.log());
    assert_eq!(primary_of(&first).as_deref(), Some("db-1"));
    drop(first);
    // Once it is gone, the directory is free again.
    let again = Proxy::start_with(&cluster, "primary", "", &top).unwrap();
    wait_primary(&again, "db-1");
}

fn admin_conn(proxy: &Proxy) -> mysql::Conn {
    mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(proxy.admin.ip().to_string()))
            .tcp_port(proxy.admin.port())
            // The admin port's admin-level account (hastack_it::sqlproxy::config).
            .user(Some("dba"))
            .pass(Some("dba"))
            .prefer_socket(false),
    )
    .unwrap()
}

/// `POST path` on the admin HTTP endpoint: (status code, body).

#[test]
fn a_switchover_under_write_load_fails_and_loses_nothing() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", HA).unwrap();
    wait_primary(&proxy, "db-1");
    create_ledger(&proxy);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (addr, flag) = (proxy.addr, stop.clone());
    let writer = std::thread::spawn(move || {
        let started = Instant::now();
        write_loop(addr, 1, 100_000, |_| {
            flag.load(std::sync::atomic::Ordering::SeqCst)
                || Instant::now().saturating_duration_since(started) > Duration::from_secs(60)
        })
    });
    std::thread::sleep(Duration::from_secs(1));

    // On the admin port, Mycat's way: to node index 2.
    let t = Instant::now();
    admin_conn(&proxy)
        .query_drop("switch @@datasource dh1:2")
        .unwrap();
    eprintln!(
        "switch @@datasource took {:?}",
        Instant::now().saturating_duration_since(t)
    );
    assert_eq!(primary_of(&proxy).as_deref(), Some("db-3"));
    std::thread::sleep(Duration::from_secs(1));

    // Over the admin HTTP API: to db-2.
    let t = Instant::now();
    let (code, body) = http_post(proxy.daemon.admin, "/actions/switchover?node=db-2");
    eprintln!(
        "POST /actions/switchover took {:?}: {body}",
        Instant::now().saturating_duration_since(t)
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"primary\": \"db-2\""), "{body}");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let ledger = writer.join().unwrap();

    assert!(
        ledger.failed.is_empty(),
        "writes failed during switchovers: {:?}",
        ledger.failed.iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
    assert!(
        ledger.acked.len() > 100,
        "too few writes to mean anything: {}",
        ledger.acked.len()
    );
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
    for node in 0..3 {
        let present = ids_on(&cluster, node);
        assert!(
            ledger.acked.iter().all(|id| present.contains(id)),
            "node {node} misses acknowledged writes"
        );
    }
    // Both former primaries now replicate from db-2.
    for node in [0, 2] {
        assert_eq!(
            cluster.replica_field(node, "Master_Port").unwrap(),
            Some(cluster.addr(1).port().to_string()),
            "node {node}"
        );
    }
    // Refusals are clear: no such node; a read_only user; an unknown action.
    let e = admin_conn(&proxy)
        .query_drop("switch @@datasource dh1:db-9")
        .unwrap_err();
    assert!(e.to_string().contains("no node"), "{e}");
    let (code, body) = http_post(proxy.daemon.admin, "/actions/nothing");
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_post(proxy.daemon.admin, "/actions/switchover");
    assert_eq!(code, 400, "{body}");
}

/// An nftables table dropping what user `uid` sends to `port`: this
/// proxy (run as `uid`) loses the primary, the replicas (run as root) do
/// not. Removed on drop.
struct CutOff(String);

impl CutOff {
    fn new(uid: u32, port: u16) -> CutOff {
        let table = format!("hs_cut_{}_{port}", std::process::id());
        let nft = |args: &str| {
            let out = std::process::Command::new("nft")
                .args(args.split(' '))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "nft {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        nft(&format!("add table inet {table}"));
        nft(&format!(
            "add chain inet {table} out {{ type filter hook output priority 0 ; }}"
        ));
        nft(&format!(
            "add rule inet {table} out meta skuid {uid} tcp dport {port} drop"
        ));
        CutOff(table)
    }
}

impl Drop for CutOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .output();
    }
}

#[test]
fn a_proxy_cut_off_from_the_primary_alone_promotes_nobody() {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: u32 = 65534;
    let cluster = MariaDbCluster::start(3).unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = || std::net::SocketAddr::from(([127, 0, 0, 1], hastack_it::ports::free_port()));
    let (addr, http, admin) = (port(), port(), port());
    let text = hastack_it::sqlproxy::config(
        &cluster,
        addr,
        http,
        admin,
        "replicas",
        HA,
        &format!("state_dir: {}\n", state.path().display()),
    );
    let daemon = hastack_it::DaemonProcess::start_as("sqlproxyd", &text, http, NOBODY).unwrap();
    let proxy = Proxy {
        daemon,
        addr,
        admin,
    };
    wait_primary(&proxy, "db-1");

    let cut = CutOff::new(NOBODY, cluster.addr(0).port());
    let refused = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let s = status_of(&proxy);
        s["no_primary"]
            .as_str()
            .filter(|r| r.contains("still replicates from it"))
            .map(str::to_owned)
    });
    let reason = refused.unwrap_or_else(|| panic!("{}\n{}", status_of(&proxy), proxy.daemon.log()));
    eprintln!("cut off from the primary: {reason}");
    // Well past fail_count: still nobody promoted, and the backends unchanged.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        log_count(&[&proxy], "promoting"),
        0,
        "{}",
        proxy.daemon.log()
    );
    for node in [1, 2] {
        let ro = read_only(&cluster, node).unwrap();
        assert_eq!(ro, 1, "node {node} was made writable");
        assert_eq!(
            cluster
                .replica_field(node, "Slave_IO_Running")
                .unwrap()
                .as_deref(),
            Some("Yes")
        );
    }
    // A write waits for a primary, then fails with the reason.
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let e = c
        .query_drop("CREATE TABLE t (id INT)")
        .unwrap_err()
        .to_string();
    assert!(e.contains("still replicates from it"), "{e}");

    drop(cut);
    wait_primary(&proxy, "db-1");
    c.query_drop("CREATE TABLE t (id INT)").unwrap();
}

#[test]
fn an_old_primary_that_lost_nothing_rejoins_and_takes_reads_again() {
    let mut cluster = MariaDbCluster::start(3).unwrap();
    // Balance 1: replicas and standby write nodes (the old primary is one) read.
    let proxy = Proxy::start(&cluster, "replicas_and_standby", HA).unwrap();
    wait_primary(&proxy, "db-1");
    create_ledger(&proxy);
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("INSERT INTO ledger VALUES (1, 'before')")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
    // Nothing in flight: the replicas have all the old primary wrote.
    cluster.kill(0).unwrap();
    let promoted = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        primary_of(&proxy).filter(|p| p != "db-1")
    });
    let new_primary = promoted.unwrap_or_else(|| panic!("{}", proxy.daemon.log()));
    let p = if new_primary == "db-2" { 1 } else { 2 };
    cluster.start_node(0).unwrap();
    let rejoined = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        (node_state(&proxy, 0).0 == "up").then_some(())
    });
    assert!(
        rejoined.is_some(),
        "old primary not readmitted: {:?}\n{}",
        node_state(&proxy, 0),
        proxy.daemon.log()
    );
    assert_eq!(
        cluster.replica_field(0, "Master_Port").unwrap(),
        Some(cluster.addr(p).port().to_string())
    );
    let ro = read_only(&cluster, 0).unwrap();
    assert_eq!(ro, 1);
    // Writes after the rejoin reach it; reads are spread over it again.
    let mut w = proxy.conn("app", "app", Some("app")).unwrap();
    w.query_drop("INSERT INTO ledger VALUES (2, 'after')")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
    assert!(ids_on(&cluster, 0).contains(&2));
    let readers: BTreeSet<u32> = (0..8)
        .map(|_| {
            let mut r = proxy.conn("app", "app", Some("app")).unwrap();
            r.query_first("SELECT @@server_id").unwrap().unwrap()
        })
        .collect();
    assert!(
        readers.contains(&1),
        "the rejoined node takes no reads: {readers:?}"
    );
    assert!(
        !readers.contains(&(p as u32 + 1)),
        "reads went to the primary: {readers:?}"
    );
}
