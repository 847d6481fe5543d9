//! sqlproxyd's own logins to its backends (issue 19 item 2): one MySQL
//! login (proto's `Login`) for sessions, heartbeats and the pool, so
//! accounts with caching_sha2_password (a second sqlproxyd whose account
//! demands it, standing in for MySQL 8) and MariaDB's ed25519 work as the
//! data host's account and as the monitor account.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use hastack_it::sqlproxy::{config, state_dir_for, Proxy, RawClient};
use hastack_it::{wait_for, DaemonProcess, MariaDbCluster};
use mysql::prelude::Queryable;

fn port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], hastack_it::ports::free_port()))
}

/// A sqlproxyd over `cluster` whose data host logs in as `user`/`password`
/// (its heartbeat too), with two connections pre-warmed per node, its
/// nodes at `nodes` instead of the cluster's when given.
fn proxy_as(
    cluster: &MariaDbCluster,
    user: &str,
    password: &str,
    nodes: Option<SocketAddr>,
) -> Proxy {
    let (addr, http, admin) = (port(), port(), port());
    let _ = std::fs::remove_dir_all(state_dir_for(addr));
    let extra = format!(
        "    heartbeat: {{interval: 300ms, timeout: 2s, user: {user}, password: {password}}}\n    \
         failover: {{promote: false, auto_rejoin: false}}\n    pool: {{min: 2, max: 16}}\n"
    );
    let mut text = config(cluster, addr, http, admin, "primary", &extra, "").replace(
        "    user: app\n    password: app\n",
        &format!("    user: {user}\n    password: {password}\n"),
    );
    if let Some(to) = nodes {
        text = text.replace(&cluster.addr(0).to_string(), &to.to_string());
    }
    let daemon = DaemonProcess::start("sqlproxyd", &text, http).unwrap();
    Proxy {
        daemon,
        addr,
        admin,
    }
}

fn node_up(proxy: &Proxy) -> bool {
    wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        let s = proxy.daemon.status().ok()?;
        (s["state"]["data_hosts"][0]["nodes"][0]["state"] == "up").then_some(())
    })
    .is_some()
}

/// The open backend connections `proxy` counts for its node db-1.
fn backend_connections(proxy: &Proxy) -> f64 {
    let m = proxy.daemon.metrics().unwrap();
    m.lines()
        .filter(|l| {
            l.starts_with("hastack_sqlproxyd_backend_connections{") && l.contains("node=\"db-1\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sessions, the heartbeat and the pool all log in, and a session reads
/// back what it wrote.
fn works_through(front: &Proxy) {
    assert!(
        node_up(front),
        "the heartbeat never logged in: {}",
        front.daemon.log()
    );
    {
        let mut c = front.conn("app", "app", Some("app")).unwrap();
        c.query_drop("CREATE TABLE IF NOT EXISTS login_t (id INT PRIMARY KEY)")
            .unwrap();
        c.query_drop("REPLACE INTO login_t VALUES (19)").unwrap();
        let got: Option<i32> = c
            .query_first("SELECT id FROM login_t WHERE id = 19")
            .unwrap();
        assert_eq!(got, Some(19));
    }
    // The session's connection went back to the pool, which tops itself
    // up to `pool.min` (2) for that kind of session with logins of its own.
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
            (backend_connections(front) >= 2.0).then_some(())
        })
        .is_some(),
        "the pool was never warmed: {}",
        front.daemon.log()
    );
}

#[test]
fn a_backend_whose_account_demands_caching_sha2_password() {
    let cluster = MariaDbCluster::start(1).unwrap();
    // Through a sqlproxyd the heartbeat's replication probe runs as `app`.
    let mut root = cluster.conn(0).unwrap();
    root.query_drop("GRANT SLAVE MONITOR, PROCESS ON *.* TO 'app'@'%'")
        .unwrap();
    // The back proxy stands in for MySQL 8: its `app` account takes
    // caching_sha2_password answers only (an auth switch otherwise).
    let (addr, http, admin) = (port(), port(), port());
    let _ = std::fs::remove_dir_all(state_dir_for(addr));
    let text = config(&cluster, addr, http, admin, "primary", "", "").replacen(
        "{name: app, password: app, schemas: [app, sbtest]}",
        "{name: app, password: app, auth_plugin: caching_sha2_password}",
        1,
    );
    let back = Proxy {
        daemon: DaemonProcess::start("sqlproxyd", &text, http).unwrap(),
        addr,
        admin,
    };
    // A client answering mysql_native_password gets an auth switch, not
    // an OK: the account really demands caching_sha2_password.
    let native = RawClient::login(back.addr, "app", "app", None)
        .err()
        .unwrap();
    assert!(
        native.to_string().contains("unexpected login reply"),
        "{native}"
    );
    let front = proxy_as(&cluster, "app", "app", Some(back.addr));
    works_through(&front);
}

#[test]
fn a_backend_account_identified_via_ed25519() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let mut root = cluster.conn(0).unwrap();
    // Debian's mariadb-server ships the plugin; it is not loaded by default.
    let loaded: Option<String> = root
        .query_first(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'",
        )
        .unwrap();
    if loaded.is_none() {
        root.query_drop("INSTALL SONAME 'auth_ed25519'").unwrap();
    }
    for sql in [
        "CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw')",
        "GRANT ALL ON app.* TO 'ed'@'%'",
        "GRANT SLAVE MONITOR, PROCESS ON *.* TO 'ed'@'%'",
    ] {
        root.query_drop(sql).unwrap();
    }
    let front = proxy_as(&cluster, "ed", "ed-pw", None);
    works_through(&front);
    // A wrong password is the server's refusal, named in the log.
    let bad = proxy_as(&cluster, "ed", "not-it", None);
    let logged = wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        let log = bad.daemon.log();
        log.contains("Access denied for user 'ed'").then_some(())
    });
    assert!(logged.is_some(), "{}", bad.daemon.log());
}
