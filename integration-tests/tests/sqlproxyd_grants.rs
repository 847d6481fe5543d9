//! The privileges sqlproxyd's statements need, found on a real MariaDB,
//! and sqlproxyd naming the ones its accounts lack (issue 18, item 3).

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hastack_it::sqlproxy::{mariadb_cli, Proxy};
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;
use sqlproxyd::ha::grants::{Grants, REPLICATION_PRIVILEGE, STATEMENTS};

/// Global privileges an experiment account may be given: those the table
/// names and the other administrative ones a monitor account might hold,
/// so "all but X" is a real test of X.
const UNIVERSE: &[&str] = &[
    "SUPER",
    "SLAVE MONITOR",
    "BINLOG MONITOR",
    "READ_ONLY ADMIN",
    "REPLICATION SLAVE ADMIN",
    "REPLICATION MASTER ADMIN",
    "REPLICATION SLAVE",
    "RELOAD",
    "BINLOG ADMIN",
    "CONNECTION ADMIN",
    "PROCESS",
];

const DEAD_MASTER: &str = "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, \
     MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1";

/// The statement as sqlproxyd would send it (the table keeps the fixed
/// beginning of those it builds).
fn concrete(sql: &str) -> String {
    match sql {
        "SELECT GET_LOCK(" => "SELECT GET_LOCK('hastack_grants_test', 0)".into(),
        "DO RELEASE_LOCK(" => "DO RELEASE_LOCK('hastack_grants_test')".into(),
        "SELECT IS_USED_LOCK(" => {
            "SELECT IS_USED_LOCK('hastack_grants_test') = CONNECTION_ID()".into()
        }
        "SELECT @@read_only, @@server_id" => {
            sqlproxyd::ha::probe::vars_query("hastack_grants_test")
        }
        "SELECT MASTER_GTID_WAIT(" => "SELECT MASTER_GTID_WAIT('', 0.1)".into(),
        "CHANGE MASTER TO" => DEAD_MASTER.into(),
        other => other.into(),
    }
}

/// A fresh account on node 0 holding exactly `privileges` on `*.*`.
fn account(cluster: &MariaDbCluster, name: &str, privileges: &[&str]) {
    let mut root = cluster.conn(0).unwrap();
    root.query_drop(format!("DROP USER IF EXISTS '{name}'@'%'"))
        .unwrap();
    root.query_drop(format!("CREATE USER '{name}'@'%' IDENTIFIED BY 'p'"))
        .unwrap();
    if !privileges.is_empty() {
        root.query_drop(format!(
            "GRANT {} ON *.* TO '{name}'@'%'",
            privileges.join(", ")
        ))
        .unwrap();
    }
}

/// Runs `sql` as `name` on node 0 from a known state (replication
/// configured towards a dead port, writable); the server's error code if
/// refused. Replication runs for the STOP statements: STOP ALL SLAVES
/// with nothing running answers OK to anyone, before any privilege check.
fn run_as(cluster: &MariaDbCluster, name: &str, sql: &str) -> Result<(), u16> {
    let mut root = cluster.conn(0).unwrap();
    for s in [
        "STOP ALL SLAVES",
        "RESET SLAVE ALL",
        DEAD_MASTER,
        "SET GLOBAL read_only = OFF",
    ] {
        root.query_drop(s).unwrap();
    }
    if sql.starts_with("STOP ") {
        root.query_drop("START SLAVE").unwrap();
    }
    let mut c = cluster.conn_as(0, name, "p").unwrap();
    let result = c.query_drop(sql);
    for s in [
        "STOP ALL SLAVES",
        "RESET SLAVE ALL",
        "SET GLOBAL read_only = OFF",
    ] {
        root.query_drop(s).unwrap();
    }
    match result {
        Ok(()) => Ok(()),
        Err(mysql::Error::MySqlError(e)) => Err(e.code),
        Err(e) => panic!("{name}: {sql}: {e}"),
    }
}

/// Each statement of `grants::STATEMENTS`: an account with any one of its
/// privileges runs it, one with every other privilege of [`UNIVERSE`]
/// gets 1227; one with none needs no privilege at all. What SHOW GRANTS
/// says of each account is read back through the parser too.
#[test]
fn each_statement_needs_exactly_the_privileges_the_table_names() {
    let cluster = MariaDbCluster::start(1).unwrap();
    account(&cluster, "g_none", &[]);
    for (k, s) in STATEMENTS.iter().enumerate() {
        let sql = concrete(s.sql);
        if s.any_of.is_empty() {
            assert_eq!(run_as(&cluster, "g_none", &sql), Ok(()), "{sql}");
            continue;
        }
        for (j, p) in s.any_of.iter().enumerate() {
            let name = format!("g_{k}_{j}");
            account(&cluster, &name, &[p]);
            assert_eq!(run_as(&cluster, &name, &sql), Ok(()), "{p} alone: {sql}");
            let shown = show_grants(&cluster, &name);
            assert!(shown.has(p), "{name} has {p}");
        }
        let others: Vec<&str> = UNIVERSE
            .iter()
            .copied()
            .filter(|p| !s.any_of.contains(p))
            .collect();
        let name = format!("g_{k}_without");
        account(&cluster, &name, &others);
        assert_eq!(
            run_as(&cluster, &name, &sql),
            Err(1227),
            "all but {:?}: {sql}",
            s.any_of
        );
        let shown = show_grants(&cluster, &name);
        assert!(
            s.any_of.iter().all(|p| !shown.has(p)) && others.iter().all(|p| shown.has(p)),
            "{name}: SHOW GRANTS read as {shown:?}"
        );
        // ALL PRIVILEGES covers it.
        let name = format!("g_{k}_all");
        account(&cluster, &name, &["ALL PRIVILEGES"]);
        assert_eq!(run_as(&cluster, &name, &sql), Ok(()), "ALL: {sql}");
    }
}

/// The account's own SHOW GRANTS, parsed as sqlproxyd parses it.
fn show_grants(cluster: &MariaDbCluster, name: &str) -> Grants {
    let lines: Vec<String> = cluster
        .conn_as(0, name, "p")
        .unwrap()
        .query("SHOW GRANTS")
        .unwrap();
    Grants::parse(&lines).unwrap()
}

/// A replica logging in with an account: `Slave_IO_Running` once it has
/// settled, and `Last_IO_Error`.
fn replicate_as(cluster: &MariaDbCluster, user: &str) -> (String, String) {
    let mut c = cluster.conn(1).unwrap();
    c.query_drop("STOP SLAVE").unwrap();
    c.query_drop(format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{user}', \
         MASTER_PASSWORD='p', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
        cluster.addr(0).port()
    ))
    .unwrap();
    c.query_drop("START SLAVE").unwrap();
    let settled = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        let io = cluster.replica_field(1, "Slave_IO_Running").ok()??;
        let error = cluster.replica_field(1, "Last_IO_Error").ok()??;
        (io == "Yes" || !error.is_empty()).then_some((io, error))
    });
    settled.unwrap_or_else(|| panic!("replication as {user} neither ran nor failed"))
}

/// Replicas need REPLICATION SLAVE; SUPER and the admin privileges do not
/// stand in for it, and a default role's does.
#[test]
fn replicas_need_replication_slave_and_nothing_else_replaces_it() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let without: Vec<&str> = UNIVERSE
        .iter()
        .copied()
        .filter(|p| *p != REPLICATION_PRIVILEGE)
        .collect();
    account(&cluster, "r_without", &without);
    account(&cluster, "r_only", &[REPLICATION_PRIVILEGE]);
    let mut root = cluster.conn(0).unwrap();
    for sql in [
        "CREATE ROLE r_role",
        "GRANT REPLICATION SLAVE ON *.* TO r_role",
        "CREATE USER 'r_by_role'@'%' IDENTIFIED BY 'p'",
        "GRANT r_role TO 'r_by_role'@'%'",
        "SET DEFAULT ROLE r_role FOR 'r_by_role'@'%'",
    ] {
        root.query_drop(sql).unwrap();
    }
    cluster.wait_caught_up(Duration::from_secs(30)).unwrap();
    let (io, error) = replicate_as(&cluster, "r_without");
    assert!(
        io != "Yes" && error.contains("COM_REGISTER_SLAVE failed: Access denied"),
        "{io}: {error}"
    );
    assert_eq!(replicate_as(&cluster, "r_only").0, "Yes");
    assert_eq!(replicate_as(&cluster, "r_by_role").0, "Yes");
}

/// `show @@heartbeat`'s GRANTS column, one entry per node.
fn heartbeat_grants(proxy: &Proxy) -> Vec<String> {
    let out = mariadb_cli(proxy.admin, "dba", "dba")
        .args(["--batch", "-e", "show @@heartbeat"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let col = header
        .iter()
        .position(|h| *h == "GRANTS")
        .unwrap_or_else(|| panic!("no GRANTS column: {text}"));
    lines
        .map(|l| l.split('\t').nth(col).unwrap_or("").to_owned())
        .collect()
}

/// Every node's `grants` in /status once all are checked, or `None`
/// while some are not.
fn checked(proxy: &Proxy) -> Option<Vec<serde_json::Value>> {
    let status = proxy.daemon.status().ok()?;
    let nodes = status["state"]["data_hosts"][0]["nodes"]
        .as_array()?
        .clone();
    let grants: Vec<_> = nodes.iter().map(|n| n["grants"].clone()).collect();
    grants
        .iter()
        .all(|g| g["checked"] == true)
        .then_some(grants)
}

fn messages(g: &serde_json::Value) -> Vec<String> {
    g["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until every node's grants satisfy `ok`, then returns them.
fn wait_grants(
    proxy: &Proxy,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        checked(proxy).filter(|gs| gs.iter().all(&ok))
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: /status never showed it: {:?}\n{}",
            proxy
                .daemon
                .status()
                .ok()
                .map(|s| s["state"]["data_hosts"].clone()),
            proxy.daemon.log()
        )
    })
}

/// A monitor account without RELOAD is told, per node, in /status, in
/// show @@heartbeat and once in the log; after GRANT RELOAD (and SELECT
/// on mysql.*, so the replication account can be read) and a reload,
/// nothing is missing; a replication account without REPLICATION SLAVE
/// is named too.
#[test]
fn a_monitor_account_without_reload_is_named_until_granted() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let mut root = cluster.conn(0).unwrap();
    for sql in [
        "CREATE USER 'mon'@'%' IDENTIFIED BY 'mon'",
        "GRANT SUPER, SLAVE MONITOR, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG ADMIN, PROCESS ON *.* TO 'mon'@'%'",
        "CREATE USER 'norepl'@'%' IDENTIFIED BY 'p'",
        "GRANT SUPER ON *.* TO 'norepl'@'%'",
    ] {
        root.query_drop(sql).unwrap();
    }
    cluster.wait_caught_up(Duration::from_secs(30)).unwrap();
    let proxy = Proxy::start(
        &cluster,
        "replicas",
        "    heartbeat: {interval: 300ms, timeout: 2s, user: mon, password: mon}\n",
    )
    .unwrap();
    let reload = [
        "failover.promote needs RELOAD for RESET SLAVE ALL",
        "switchover needs RELOAD for RESET SLAVE ALL",
    ];
    let found = wait_grants(&proxy, "RELOAD missing", |g| !messages(g).is_empty());
    for g in &found {
        assert_eq!(g["account"], "'mon'@'%'");
        assert_eq!(messages(g), reload);
        // The monitor may not read mysql.*: said as not checked, not failed.
        let notes = g["notes"].to_string();
        assert!(
            notes.contains("replication account 'repl' not checked: the monitor account may not read mysql.user"),
            "{notes}"
        );
    }
    let column = heartbeat_grants(&proxy);
    assert_eq!(column.len(), 2, "{column:?}");
    for c in &column {
        assert!(c.starts_with(&reload.join("; ")), "{c}");
    }
    // Once per node in the log, not once per heartbeat.
    let said = |log: &str| {
        log.matches("missing privilege: failover.promote needs RELOAD for RESET SLAVE ALL")
            .count()
    };
    assert_eq!(said(&proxy.daemon.log()), 2, "{}", proxy.daemon.log());

    root.query_drop("GRANT RELOAD ON *.* TO 'mon'@'%'").unwrap();
    root.query_drop("GRANT SELECT ON mysql.* TO 'mon'@'%'")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(30)).unwrap();
    proxy.daemon.reload().unwrap();
    wait_grants(&proxy, "nothing missing after the grant", |g| {
        messages(g).is_empty() && g["notes"].as_array().is_some_and(Vec::is_empty)
    });
    assert_eq!(heartbeat_grants(&proxy), ["ok", "ok"]);
    let log = proxy.daemon.log();
    assert_eq!(said(&log), 2, "said again after the grant: {log}");
    assert!(
        log.contains("the monitor account has every privilege"),
        "{log}"
    );

    // A replication account that exists but may not replicate.
    let config = std::fs::read_to_string(&proxy.daemon.config_path).unwrap();
    let changed = config.replace(
        "replication_user: repl, replication_password: repl",
        "replication_user: norepl, replication_password: p",
    );
    assert_ne!(config, changed);
    proxy.daemon.write_config(&changed).unwrap();
    proxy.daemon.reload().unwrap();
    let found = wait_grants(&proxy, "norepl named", |g| !messages(g).is_empty());
    for g in &found {
        assert_eq!(
            messages(g),
            ["failover.replication_user needs REPLICATION SLAVE for replicas reading the primary's binlog (account 'norepl'@'%')"]
        );
    }
}
