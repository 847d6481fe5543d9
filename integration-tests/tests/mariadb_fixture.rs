//! The MariaDB fixture itself: real replication, real faults.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

#[test]
fn row_written_on_the_primary_is_read_on_both_replicas() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let mut app = cluster.conn_as(0, "app", "app").unwrap();
    app.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .unwrap();
    app.query_drop("INSERT INTO app.t VALUES (1, 'from primary')")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(20)).unwrap();
    for replica in [1, 2] {
        let mut c = cluster.conn_as(replica, "app", "app").unwrap();
        let v: Option<String> = c.query_first("SELECT v FROM app.t WHERE id = 1").unwrap();
        assert_eq!(v.as_deref(), Some("from primary"), "replica {replica}");
        // Replicas refuse writes from the application.
        let err = c
            .query_drop("INSERT INTO app.t VALUES (2, 'x')")
            .unwrap_err();
        assert!(
            err.to_string().contains("read-only") || err.to_string().contains("1290"),
            "{err}"
        );
    }
    for (user, pass) in [("monitor", "monitor"), ("repl", "repl")] {
        cluster.conn_as(2, user, pass).unwrap();
    }
    assert_eq!(
        cluster.replica_field(1, "Using_Gtid").unwrap().as_deref(),
        Some("Slave_Pos")
    );
    assert_eq!(
        cluster.replica_status(0).unwrap(),
        None,
        "node 0 replicates from nobody"
    );
}

#[test]
fn a_killed_node_is_reported_down_and_comes_back_caught_up() {
    let mut cluster = MariaDbCluster::start(2).unwrap();
    cluster.kill(1).unwrap();
    assert!(!cluster.is_up(1));
    assert!(cluster.conn_as(1, "app", "app").is_err());

    cluster
        .conn_as(0, "app", "app")
        .unwrap()
        .query_drop("CREATE TABLE app.k (id INT PRIMARY KEY)")
        .unwrap();
    cluster.start_node(1).unwrap();
    assert!(cluster.is_up(1));
    cluster.wait_caught_up(Duration::from_secs(20)).unwrap();
    let n: Option<i64> = cluster
        .conn(1)
        .unwrap()
        .query_first("SELECT COUNT(*) FROM app.k")
        .unwrap();
    assert_eq!(
        n,
        Some(0),
        "table created while the replica was down reached it"
    );

    // A clean stop and start keeps the replica replicating.
    cluster.stop(1).unwrap();
    assert!(!cluster.is_up(1));
    cluster.start_node(1).unwrap();
    cluster
        .conn_as(0, "app", "app")
        .unwrap()
        .query_drop("INSERT INTO app.k VALUES (1)")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(20)).unwrap();
    assert_eq!(
        cluster
            .replica_field(1, "Slave_SQL_Running")
            .unwrap()
            .as_deref(),
        Some("Yes")
    );

    // The primary crashes: the replica's IO thread notices.
    cluster.kill(0).unwrap();
    assert!(!cluster.is_up(0));
    let io = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        cluster
            .replica_field(1, "Slave_IO_Running")
            .unwrap()
            .filter(|s| s != "Yes")
    });
    assert!(
        io.is_some(),
        "replica still reports its IO thread running after the primary died"
    );
}

#[test]
fn a_stopped_sql_thread_makes_a_replica_fall_behind_until_restarted() {
    let cluster = MariaDbCluster::start(2).unwrap();
    cluster.stop_sql_thread(1).unwrap();
    let mut app = cluster.conn_as(0, "app", "app").unwrap();
    app.query_drop("CREATE TABLE app.l (id INT PRIMARY KEY)")
        .unwrap();
    assert!(
        cluster.wait_caught_up(Duration::from_secs(1)).is_err(),
        "replica applied with its SQL thread stopped"
    );
    assert_eq!(
        cluster
            .replica_field(1, "Slave_SQL_Running")
            .unwrap()
            .as_deref(),
        Some("No")
    );
    cluster.start_sql_thread(1).unwrap();
    cluster.wait_caught_up(Duration::from_secs(20)).unwrap();
}

#[test]
fn semi_sync_can_be_enabled() {
    let cluster = MariaDbCluster::start(2).unwrap();
    cluster.enable_semi_sync(0).unwrap();
    let status: Option<(String, String)> = cluster
        .conn(0)
        .unwrap()
        .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'")
        .unwrap();
    assert_eq!(status.map(|(_, v)| v).as_deref(), Some("ON"));
    let mut app = cluster.conn_as(0, "app", "app").unwrap();
    app.query_drop("CREATE TABLE app.s (id INT PRIMARY KEY)")
        .unwrap();
    app.query_drop("INSERT INTO app.s VALUES (1)").unwrap();
    let acked: Option<(String, String)> = cluster
        .conn(0)
        .unwrap()
        .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
        .unwrap();
    let acked: u64 = acked.map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
    assert!(
        acked >= 1,
        "no transaction was acknowledged by a semi-sync replica"
    );
}
