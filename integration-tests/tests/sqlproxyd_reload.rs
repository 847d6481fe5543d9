//! Sessions opened before a reload follow the topology the reload put in
//! force: its heartbeat's primary for writes, its nodes for reads, against
//! a real primary and two replicas.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hastack_it::sqlproxy::{config, Proxy};
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

/// Heartbeats fast enough for a test; switchovers allowed at once.
fn ha(interval: &str, pool_max: u32) -> String {
    format!(
        "    heartbeat: {{interval: {interval}, timeout: 2s, fail_count: 3, user: monitor, password: monitor}}\n    \
         failover: {{replication_user: repl, replication_password: repl, min_switch_interval: 1s, primary_wait: 10s}}\n    \
         pool: {{min: 0, max: {pool_max}}}\n"
    )
}

fn primary_of(proxy: &Proxy) -> Option<String> {
    proxy.daemon.status().ok()?["state"]["data_hosts"][0]["primary"]
        .as_str()
        .map(str::to_owned)
}

fn wait_primary(proxy: &Proxy, name: &str) {
    let found = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        primary_of(proxy).filter(|p| p == name)
    });
    assert!(
        found.is_some(),
        "{name} is not primary: {:?}\n{}",
        primary_of(proxy),
        proxy.daemon.log()
    );
}

/// Writes `config_text` and reloads; returns once generation `generation`
/// is in force.
fn reload(proxy: &Proxy, config_text: &str, generation: u64) {
    proxy.daemon.write_config(config_text).unwrap();
    proxy.daemon.reload().unwrap();
    let applied = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        let s = proxy.daemon.status().ok()?;
        (s["config_generation"].as_u64() == Some(generation)).then_some(())
    });
    assert!(
        applied.is_some(),
        "reload to generation {generation} not applied: {:?}\n{}",
        proxy.daemon.status().ok().map(|s| s["last_reload"].clone()),
        proxy.daemon.log()
    );
}

fn has_id(cluster: &MariaDbCluster, node: usize, id: u32) -> bool {
    cluster
        .conn(node)
        .unwrap()
        .query_first::<u32, _>(format!("SELECT id FROM app.t WHERE id = {id}"))
        .unwrap()
        .is_some()
}

/// The reported sequence: a session opened, a reload that changes the data
/// host (`pool.max`: its heartbeat restarts), a switchover; the session's
/// next write goes to the new primary, not to the old one (which answers
/// 1290, read-only). Then again with the heartbeat's own settings changed.
#[test]
fn a_session_from_before_a_reload_writes_on_the_primary_of_a_later_switchover() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", &ha("300ms", 64)).unwrap();
    let text = |extra: &str| {
        config(
            &cluster,
            proxy.addr,
            proxy.daemon.admin,
            proxy.admin,
            "replicas",
            extra,
            "",
        )
    };
    wait_primary(&proxy, "db-1");
    let mut a = proxy.conn("app", "app", Some("app")).unwrap();
    a.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    a.query_drop("INSERT INTO t VALUES (1)").unwrap();

    reload(&proxy, &text(&ha("300ms", 32)), 2);
    wait_primary(&proxy, "db-1");
    proxy
        .admin_conn()
        .unwrap()
        .query_drop("switch @@datasource dh1:db-2")
        .unwrap();
    wait_primary(&proxy, "db-2");
    // A new session writes on db-2; so must A.
    proxy
        .conn("app", "app", Some("app"))
        .unwrap()
        .query_drop("INSERT INTO t VALUES (2)")
        .unwrap();
    a.query_drop("INSERT INTO t VALUES (3)")
        .unwrap_or_else(|e| {
            panic!(
                "the older session's write failed: {e}\n{}",
                proxy.daemon.log()
            )
        });
    assert!(has_id(&cluster, 1, 3), "id 3 is not on db-2");

    // The heartbeat's own settings change; a switchover back to db-1.
    reload(&proxy, &text(&ha("250ms", 32)), 3);
    wait_primary(&proxy, "db-2");
    proxy
        .admin_conn()
        .unwrap()
        .query_drop("switch @@datasource dh1:db-1")
        .unwrap();
    wait_primary(&proxy, "db-1");
    a.query_drop("INSERT INTO t VALUES (4)")
        .unwrap_or_else(|e| {
            panic!(
                "the older session's write failed: {e}\n{}",
                proxy.daemon.log()
            )
        });
    assert!(has_id(&cluster, 0, 4), "id 4 is not on db-1");
    // Nothing on the old primaries but through replication: all four everywhere.
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
    for node in 0..3 {
        for id in 1..=4 {
            assert!(has_id(&cluster, node, id), "node {node} misses id {id}");
        }
    }
}

/// The node that answers `SELECT @@port` for `conn`, by index in `cluster`.
fn read_node(cluster: &MariaDbCluster, conn: &mut mysql::Conn) -> usize {
    let port: u16 = conn.query_first("SELECT @@port").unwrap().unwrap();
    (0..cluster.len())
        .find(|&i| cluster.addr(i).port() == port)
        .unwrap()
}

/// A reload that removes the replica an older session reads from: the
/// session's next reads go to the replica that is left, never to the one
/// removed; its writes still reach the primary.
#[test]
fn a_replica_removed_by_a_reload_gets_no_more_reads_from_older_sessions() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", &ha("300ms", 64)).unwrap();
    wait_primary(&proxy, "db-1");
    let mut r = proxy.conn("app", "app", Some("app")).unwrap();
    r.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    // Both replicas readable first: the session may be on either.
    let both = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let s = proxy.daemon.status().ok()?;
        let nodes = s["state"]["data_hosts"][0]["nodes"].as_array()?.clone();
        nodes[1..]
            .iter()
            .all(|n| n["readable"] == true)
            .then_some(())
    });
    assert!(both.is_some(), "{}", proxy.daemon.log());
    let removed = read_node(&cluster, &mut r);
    assert_ne!(removed, 0, "balance replicas read from the primary");
    let kept = 3 - removed;

    let without = config(
        &cluster,
        proxy.addr,
        proxy.daemon.admin,
        proxy.admin,
        "replicas",
        &ha("300ms", 64),
        "",
    )
    .lines()
    .filter(|l| !l.contains(&format!("name: db-{},", removed + 1)))
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    reload(&proxy, &without, 2);
    wait_primary(&proxy, "db-1");
    // The remaining replica readable in the new heartbeat's view.
    let ready = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let s = proxy.daemon.status().ok()?;
        (s["state"]["data_hosts"][0]["nodes"][1]["readable"] == true).then_some(())
    });
    assert!(ready.is_some(), "{}", proxy.daemon.log());
    for _ in 0..20 {
        assert_eq!(
            read_node(&cluster, &mut r),
            kept,
            "a read went to the removed replica"
        );
    }
    r.query_drop("INSERT INTO t VALUES (1)").unwrap();
    assert!(has_id(&cluster, 0, 1));
}

fn heartbeat_rounds(proxy: &Proxy) -> u64 {
    proxy.daemon.status().unwrap()["state"]["data_hosts"][0]["heartbeat_rounds"]
        .as_u64()
        .unwrap_or(0)
}

/// A reload that leaves the data host as it was keeps its heartbeat (its
/// rounds go on counting) and its sessions' connections; one that removes
/// the schema a session uses closes that session with an error saying so,
/// and leaves the others alone.
#[test]
fn an_unchanged_data_host_keeps_its_heartbeat_and_a_removed_schema_ends_its_sessions() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", &ha("300ms", 64)).unwrap();
    wait_primary(&proxy, "db-1");
    let text = config(
        &cluster,
        proxy.addr,
        proxy.daemon.admin,
        proxy.admin,
        "primary",
        &ha("300ms", 64),
        "",
    );
    let mut app = proxy.conn("app", "app", Some("app")).unwrap();
    let mut other = proxy.conn("app", "app", Some("sbtest")).unwrap();
    // The backend connection's own id (CONNECTION_ID() is the session's).
    let id: u32 = app
        .query_first("SELECT @@pseudo_thread_id")
        .unwrap()
        .unwrap();
    other.query_drop("DO 1").unwrap();
    // Enough rounds that a restarted heartbeat could not have caught up
    // between the reload and the look after it.
    let counted = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (heartbeat_rounds(&proxy) >= 20).then_some(())
    });
    assert!(counted.is_some(), "{}", proxy.daemon.log());
    let before = heartbeat_rounds(&proxy);
    reload(&proxy, &text, 2);
    let after = heartbeat_rounds(&proxy);
    assert!(
        after >= before,
        "the heartbeat restarted: {before} rounds, then {after}"
    );
    // The same backend connection: nothing was closed or reopened.
    let still: u32 = app
        .query_first("SELECT @@pseudo_thread_id")
        .unwrap()
        .unwrap();
    assert_eq!(still, id);

    // A reload refused after its heartbeats were started (the TLS files do
    // not parse): the running heartbeat goes on, not a new one.
    let garbage = std::env::temp_dir().join(format!("hs-reload-garbage-{}.pem", proxy.addr.port()));
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let refused = format!(
        "tls: {{cert: {0}, key: {0}}}\n{1}",
        garbage.display(),
        text.replace("interval: 300ms", "interval: 250ms")
    );
    proxy.daemon.write_config(&refused).unwrap();
    let before = heartbeat_rounds(&proxy);
    proxy.daemon.reload().unwrap();
    let answered = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        let s = proxy.daemon.status().ok()?;
        (s["last_reload"]["result"] == "error").then_some(s)
    });
    let status = answered.unwrap_or_else(|| panic!("not refused\n{}", proxy.daemon.log()));
    assert_eq!(status["config_generation"].as_u64(), Some(2), "{status}");
    // Refused by the daemon building the topology, not by the file check.
    assert!(
        status["last_reload"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("no certificate in the file")),
        "{status}"
    );
    let after = heartbeat_rounds(&proxy);
    assert!(
        after >= before,
        "a refused reload restarted the heartbeat: {before} rounds, then {after}"
    );
    assert_eq!(
        app.query_first::<u32, _>("SELECT @@pseudo_thread_id")
            .unwrap(),
        Some(id)
    );
    let _ = std::fs::remove_file(&garbage);

    // The users may name only schemas that exist.
    let without_app = text
        .replace("  - {name: app, data_host: dh1}\n", "")
        .replace("schemas: [app, sbtest]", "schemas: [sbtest]")
        .replace("schemas: [app], read_only", "schemas: [sbtest], read_only");
    assert_ne!(without_app, text);
    reload(&proxy, &without_app, 3);
    let e = app.query_drop("SELECT 1").unwrap_err().to_string();
    assert!(
        e.contains("1927") && e.contains("schema 'app'") && e.contains("reconnect"),
        "{e}"
    );
    assert!(
        app.query_drop("SELECT 1").is_err(),
        "the session stayed open"
    );
    other.query_drop("DO 1").unwrap();
}
