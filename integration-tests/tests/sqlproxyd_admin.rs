//! sqlproxyd's MySQL-protocol admin port, driven with the mariadb CLI as a
//! DBA would drive Mycat's 9066.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hastack_it::sqlproxy::{mariadb_cli, Proxy};
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

/// Runs `sql` on the admin port: (exit ok, rows as tab-separated fields, stderr).
fn admin(proxy: &Proxy, user: &str, sql: &str) -> (bool, Vec<Vec<String>>, String) {
    // The lab's users have their name as password.
    let out = mariadb_cli(proxy.admin, user, user)
        .args(["--batch", "--skip-column-names", "-e", sql])
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    (
        out.status.success(),
        rows,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn show_datasource_connection_session_and_backend() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("CREATE TABLE a (id INT PRIMARY KEY)").unwrap();
    let _: Option<i64> = c.query_first("SELECT 1").unwrap();

    let (ok, rows, err) = admin(&proxy, "dba", "show @@datasource");
    assert!(ok, "{err}");
    assert_eq!(rows.len(), 3, "{rows:?}");
    // DATANODE NAME TYPE HOST PORT W/R ACTIVE IDLE SIZE EXECUTE READ_LOAD WRITE_LOAD
    assert_eq!(
        rows[0][..6],
        [
            "dh1",
            "db-1",
            "mysql",
            "127.0.0.1",
            &cluster.addr(0).port().to_string(),
            "W"
        ]
    );
    assert_eq!(rows[1][5], "R");
    let writes: u64 = rows[0][11].parse().unwrap();
    let reads: u64 = rows[1..]
        .iter()
        .map(|r| r[10].parse::<u64>().unwrap())
        .sum();
    assert!(writes >= 1 && reads >= 1, "{rows:?}");

    let (_, sessions, _) = admin(&proxy, "dba", "show @@connection");
    let mine: Vec<_> = sessions
        .iter()
        .filter(|r| r[3] == "app" && r[4] == "app")
        .collect();
    assert_eq!(mine.len(), 1, "{sessions:?}");
    let id = mine[0][0].clone();

    let (_, backends, _) = admin(&proxy, "dba", "show @@backend");
    let nodes: Vec<&str> = backends
        .iter()
        .filter(|r| r[0] == id)
        .map(|r| r[2].as_str())
        .collect();
    assert!(nodes.contains(&"db-1"), "{backends:?}");
    assert_eq!(
        nodes.len(),
        2,
        "a write and a read connection: {backends:?}"
    );

    let (ok, help, _) = admin(&proxy, "dba", "show @@help");
    assert!(ok && help.len() >= 6);
    let (ok, _, err) = admin(&proxy, "dba", "select * from users");
    assert!(!ok && err.contains("ERROR 1064"), "{err}");
}

#[test]
fn kill_and_reload_for_admin_level_users_only() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut victim = proxy.conn("app", "app", Some("app")).unwrap();
    let _: Option<i64> = victim.query_first("SELECT 1").unwrap();
    let (_, sessions, _) = admin(&proxy, "dba", "show @@connection");
    let id = sessions.iter().find(|r| r[3] == "app").unwrap()[0].clone();

    for not_admin in ["watcher", "app", "reader"] {
        let (ok, _, err) = admin(&proxy, not_admin, &format!("kill @@connection {id}"));
        assert!(!ok && err.contains("ERROR 1227"), "{not_admin}: {err}");
    }
    let (ok, _, err) = admin(&proxy, "watcher", "reload @@config");
    assert!(!ok && err.contains("ERROR 1227"), "{err}");
    let (ok, _, err) = admin(&proxy, "dba", &format!("kill @@connection {id}"));
    assert!(ok, "{err}");
    let gone = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        victim.query_drop("SELECT 1").is_err().then_some(())
    });
    assert!(gone.is_some(), "the killed session still answers");

    let (ok, _, err) = admin(&proxy, "dba", "reload @@config");
    assert!(ok, "{err}");
    let reloaded = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        (proxy.daemon.status().ok()?["config_generation"] == 2).then_some(())
    });
    assert!(
        reloaded.is_some(),
        "reload @@config did not reload:\n{}",
        proxy.daemon.log()
    );
}

#[test]
fn application_users_get_1227_monitors_may_look_and_admins_may_switch() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let (ok, _, err) = admin(&proxy, "app", "switch @@datasource dh1:1");
    assert!(!ok && err.contains("ERROR 1227"), "{err}");
    assert!(
        err.contains("you need (at least one of) the ADMIN privilege(s)"),
        "{err}"
    );
    let (ok, _, err) = admin(&proxy, "app", "show @@datasource");
    assert!(
        !ok && err.contains("ERROR 1227") && err.contains("MONITOR"),
        "{err}"
    );

    let (ok, rows, err) = admin(&proxy, "watcher", "show @@datasource");
    assert!(ok, "{err}");
    assert_eq!(rows[0][5], "W", "{rows:?}");
    let (ok, _, err) = admin(&proxy, "watcher", "switch @@datasource dh1:1");
    assert!(!ok && err.contains("ERROR 1227"), "{err}");
    let (_, rows, _) = admin(&proxy, "watcher", "show @@datasource");
    assert_eq!(
        rows[0][5], "W",
        "a refused switch moved the primary: {rows:?}"
    );

    let (ok, _, err) = admin(&proxy, "dba", "switch @@datasource dh1:1");
    assert!(ok, "{err}\n{}", proxy.daemon.log());
    let (_, rows, _) = admin(&proxy, "watcher", "show @@datasource");
    assert_eq!(rows[1][5], "W", "db-2 is the primary: {rows:?}");
    // A wrong password is a refused login, not a level.
    let out = mariadb_cli(proxy.admin, "dba", "nope")
        .args(["-e", "show @@datasource"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR 1045"));
}

#[test]
fn kill_ends_a_session_in_the_middle_of_a_query() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let mut victim = proxy.conn("app", "app", Some("app")).unwrap();
    let _: Option<i64> = victim.query_first("SELECT 1").unwrap();
    let (_, sessions, _) = admin(&proxy, "dba", "show @@connection");
    let id = sessions.iter().find(|r| r[3] == "app").unwrap()[0].clone();
    let started = std::time::Instant::now();
    let sleeper = std::thread::spawn(move || victim.query_drop("SELECT SLEEP(60)"));
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _, err) = admin(&proxy, "dba", &format!("kill @@connection {id}"));
    assert!(ok, "{err}");
    let result = sleeper.join().unwrap();
    assert!(result.is_err(), "the killed query completed");
    let took = std::time::Instant::now().duration_since(started);
    assert!(
        took < Duration::from_secs(30),
        "kill waited for the query: {took:?}"
    );
}

/// `hastack_sqlproxyd_backend_connections` for node db-1.
fn open_backend_connections(proxy: &Proxy) -> i64 {
    let metrics = proxy.daemon.metrics().unwrap();
    metrics
        .lines()
        .find(|l| {
            l.starts_with("hastack_sqlproxyd_backend_connections{") && l.contains("node=\"db-1\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_backend_connection_gauge_counts_pooled_connections_out_when_a_reload_drops_them() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    {
        let mut sessions: Vec<_> = (0..3)
            .map(|_| proxy.conn("app", "app", Some("app")).unwrap())
            .collect();
        for s in &mut sessions {
            s.query_drop("DO 1").unwrap();
        }
        assert_eq!(open_backend_connections(&proxy), 3);
    }
    // Closed sessions leave their connections in the pool, still open.
    let pooled = wait_for(Duration::from_secs(5), Duration::from_millis(50), || {
        (proxy
            .daemon
            .metrics()
            .ok()?
            .contains("client_connections 0"))
        .then_some(())
    });
    assert!(pooled.is_some());
    assert_eq!(open_backend_connections(&proxy), 3);
    let generation = |g: u64| {
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            (proxy.daemon.status().ok()?["config_generation"].as_u64() == Some(g)).then_some(())
        })
        .unwrap_or_else(|| panic!("reload {g} not applied\n{}", proxy.daemon.log()))
    };
    // A reload that keeps the data host's nodes and accounts keeps its pool.
    let config = std::fs::read_to_string(&proxy.daemon.config_path).unwrap();
    proxy
        .daemon
        .write_config(&config.replace("pool: {min: 0, max: 64}", "pool: {min: 0, max: 8}"))
        .unwrap();
    proxy.daemon.reload().unwrap();
    generation(2);
    assert_eq!(open_backend_connections(&proxy), 3);
    let mut again = proxy.conn("app", "app", Some("app")).unwrap();
    again.query_drop("DO 1").unwrap();
    assert_eq!(
        open_backend_connections(&proxy),
        3,
        "the kept pool was not used"
    );
    drop(again);
    // One that changes them builds a new pool; the old one's connections
    // close and are counted out.
    let unused = "      - {name: db-9, address: 127.0.0.1:9, role: read}\n";
    let nodes = config.find("    nodes:\n").unwrap() + "    nodes:\n".len();
    let mut changed = config.clone();
    changed.insert_str(nodes, unused);
    proxy.daemon.write_config(&changed).unwrap();
    proxy.daemon.reload().unwrap();
    generation(3);
    let counted_out = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        (open_backend_connections(&proxy) == 0).then_some(())
    });
    assert!(
        counted_out.is_some(),
        "gauge stuck at {}",
        open_backend_connections(&proxy)
    );
}

#[test]
fn pool_min_keeps_connections_ready_on_the_serving_nodes() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "    pool: {min: 3, max: 8}\n").unwrap();
    // One session teaches the pool what kind of connection clients want.
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("DO 1").unwrap();
    drop(c);
    let warmed = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (open_backend_connections(&proxy) == 3).then_some(())
    });
    assert!(
        warmed.is_some(),
        "{} open\n{}",
        open_backend_connections(&proxy),
        proxy.daemon.log()
    );
    let (_, rows, _) = admin(&proxy, "dba", "show @@datasource");
    assert_eq!(rows[0][7], "3", "IDLE: {rows:?}");
    // A session takes a warm connection (no login); the pool is topped up.
    let mut s2 = proxy.conn("app", "app", Some("app")).unwrap();
    s2.query_drop("DO 1").unwrap();
    let topped = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (open_backend_connections(&proxy) == 4).then_some(())
    });
    assert!(
        topped.is_some(),
        "{} open",
        open_backend_connections(&proxy)
    );
}
