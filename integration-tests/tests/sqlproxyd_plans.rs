//! sqlproxyd's failover plans against real MariaDB replication: a
//! switchover whose target refuses a step rolls back to the old primary
//! (writable, the target replicating again, the step and the server's error
//! reported and counted), and a plan left in the journal by a proxy that
//! died half way is rolled back at the next start.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hastack_it::daemon::http_post;
use hastack_it::sqlproxy::Proxy;
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

const HA: &str = "    heartbeat: {interval: 300ms, timeout: 2s, fail_count: 3, user: monitor, password: monitor}\n    failover: {replication_user: repl, replication_password: repl, min_switch_interval: 1s, primary_wait: 10s, apply_timeout: 5s}\n    max_replica_lag: 5s\n";

fn status_of(proxy: &Proxy) -> serde_json::Value {
    proxy.daemon.status().unwrap()["state"]["data_hosts"][0].clone()
}

fn wait_primary(proxy: &Proxy, name: &str) {
    let found = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        status_of(proxy)["primary"]
            .as_str()
            .filter(|p| *p == name)
            .map(str::to_owned)
    });
    assert!(
        found.is_some(),
        "{name} is not primary: {}\n{}",
        status_of(proxy),
        proxy.daemon.log()
    );
}

fn read_only(cluster: &MariaDbCluster, node: usize) -> u32 {
    cluster
        .conn(node)
        .unwrap()
        .query_first("SELECT @@read_only")
        .unwrap()
        .unwrap()
}

#[test]
fn a_switchover_whose_target_refuses_a_step_rolls_back_to_the_old_primary() {
    let cluster = MariaDbCluster::start(3).unwrap();
    // db-2 alone lets the monitor account do everything but set read_only
    // (not replicated: the other nodes keep the grant).
    let mut root = cluster.conn(1).unwrap();
    root.query_drop("SET SESSION sql_log_bin = 0").unwrap();
    root.query_drop("REVOKE READ_ONLY ADMIN ON *.* FROM 'monitor'@'%'")
        .unwrap();
    let proxy = Proxy::start(&cluster, "replicas", HA).unwrap();
    wait_primary(&proxy, "db-1");
    let mut app = proxy.conn("app", "app", Some("app")).unwrap();
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .unwrap();
    app.query_drop("INSERT INTO t VALUES (1)").unwrap();
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();

    let (code, body) = http_post(proxy.daemon.admin, "/actions/switchover?node=db-2");
    assert_ne!(code, 200, "{body}");
    assert!(
        body.contains("db-2: SET GLOBAL read_only = OFF") && body.contains("1227"),
        "{body}"
    );

    // Exactly one writable primary: the old one, taking writes again.
    assert_eq!(read_only(&cluster, 0), 0);
    assert_eq!(read_only(&cluster, 1), 1);
    wait_primary(&proxy, "db-1");
    app.query_drop("INSERT INTO t VALUES (2)").unwrap();
    // The target replicates again (its STOP ALL SLAVES was undone) and
    // has the write made after the failed switchover.
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
    assert_eq!(
        cluster
            .replica_field(1, "Slave_SQL_Running")
            .unwrap()
            .as_deref(),
        Some("Yes")
    );
    let on_target: Vec<u32> = cluster
        .conn(1)
        .unwrap()
        .query("SELECT id FROM app.t ORDER BY id")
        .unwrap();
    assert_eq!(on_target, [1, 2]);

    // Reported with the step and the server's error, and counted.
    let last = &status_of(&proxy)["last_operation"];
    assert_eq!(last["kind"], "switchover", "{last}");
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert_eq!(last["failed_step"], "db-2: SET GLOBAL read_only = OFF");
    assert!(
        last["error"].as_str().unwrap_or("").contains("1227"),
        "{last}"
    );
    let rows: Vec<mysql::Row> = proxy
        .admin_conn()
        .unwrap()
        .query("show @@datasource")
        .unwrap();
    let column: Option<String> = rows[0].get("LAST_OPERATION");
    assert!(
        column
            .as_deref()
            .is_some_and(|c| c.starts_with("switchover rolled_back at ")),
        "{column:?}"
    );
    let metrics = proxy.daemon.metrics().unwrap();
    assert!(
        metrics.contains(
            "hastack_sqlproxyd_ha_events_total{data_host=\"dh1\",event=\"switchover\",result=\"rolled_back\"} 1"
        ),
        "{metrics}"
    );
    // No journal is left behind.
    let dir = hastack_it::sqlproxy::state_dir_for(proxy.addr);
    assert!(!dir.join("plan.dh1.json").exists());
}

#[test]
fn a_plan_left_half_done_by_a_crash_is_rolled_back_at_the_next_start() {
    let cluster = MariaDbCluster::start(3).unwrap();
    // What a proxy killed during a switchover from db-1 to db-2 leaves: the
    // old primary read-only, the target's replication stopped, the journal
    // saying step 3 (the target's read_only=OFF) was about to run.
    cluster
        .conn(0)
        .unwrap()
        .query_drop("SET GLOBAL read_only = ON")
        .unwrap();
    cluster
        .conn(1)
        .unwrap()
        .query_drop("STOP ALL SLAVES")
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let plan = serde_json::json!({
        "plan": {
            "kind": "switchover",
            "steps": [
                {"node": 0, "op": {"read_only": true}, "undo": {"read_only": false}},
                {"node": 1, "op": {"wait_applied": {"of": 0}}, "undo": null},
                {"node": 1, "op": "stop_replication", "undo": "start_replication"},
                {"node": 1, "op": {"read_only": false}, "undo": {"read_only": true}},
                {"node": 1, "op": "reset_replication", "undo": null},
                {"node": 0, "op": {"follow": {"primary": 1, "current_pos": true}}, "undo": null},
                {"node": 2, "op": {"follow": {"primary": 1, "current_pos": false}}, "undo": null}
            ],
            "commit": 4,
            "target": 1
        },
        "next": 3
    });
    std::fs::write(
        state.path().join("plan.dh1.json"),
        serde_json::to_vec(&plan).unwrap(),
    )
    .unwrap();
    let top = format!("state_dir: {}\n", state.path().display());
    let proxy = Proxy::start_with(&cluster, "replicas", HA, &top).unwrap();
    wait_primary(&proxy, "db-1");
    assert_eq!(read_only(&cluster, 0), 0);
    let mut app = proxy.conn("app", "app", Some("app")).unwrap();
    app.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(10)).unwrap();
    assert_eq!(
        cluster
            .replica_field(1, "Slave_IO_Running")
            .unwrap()
            .as_deref(),
        Some("Yes")
    );
    let last = &status_of(&proxy)["last_operation"];
    assert_eq!(last["result"], "rolled_back", "{last}");
    assert!(!state.path().join("plan.dh1.json").exists());
    let log = proxy.daemon.log();
    assert!(
        log.contains("found an interrupted plan in the journal"),
        "{log}"
    );
}
