//! sqlproxyd against a real primary and two replicas: where statements run
//! (proven by @@server_id, which the fixture sets to node index + 1).

use std::collections::BTreeSet;
use std::time::Duration;

use hastack_it::sqlproxy::Proxy;
use hastack_it::MariaDbCluster;
use mysql::prelude::Queryable;

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#[allow(clippy::unwrap_used)]
fn server_id(c: &mut mysql::Conn, sql: &str) -> u32 {
    c.query_first(sql).unwrap().unwrap()
}

#[test]
fn reads_spread_over_replicas_and_writes_go_to_the_primary() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();

    // Reads: each session sticks to one read connection; several sessions spread.
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        let mut s = proxy.conn("app", "app", Some("app")).unwrap();
        let id = server_id(&mut s, "SELECT @@server_id");
        assert!(id == 2 || id == 3, "read went to server {id}");
        seen.insert(id);
    }
    assert_eq!(
        seen.len(),
        2,
        "reads did not spread over both replicas: {seen:?}"
    );

    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, sid INT)")
        .unwrap();
    c.query_drop("INSERT INTO t (sid) VALUES (@@server_id)")
        .unwrap();
    let sid: u32 = cluster
        .conn(0)
        .unwrap()
        .query_first("SELECT sid FROM app.t")
        .unwrap()
        .unwrap();
    assert_eq!(sid, 1, "the INSERT ran on server {sid}");

    for sql in [
        "SELECT @@server_id FOR UPDATE",
        "/*#mycat:db_type=master*/ SELECT @@server_id",
        "/*hastack:primary*/ SELECT @@server_id",
    ] {
        assert_eq!(server_id(&mut c, sql), 1, "{sql}");
    }
    assert_ne!(server_id(&mut c, "SELECT @@server_id"), 1);
}

#[test]
fn transactions_autocommit_off_and_temporary_tables_stay_on_the_primary() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    assert_ne!(server_id(&mut c, "SELECT @@server_id"), 1);

    c.query_drop("BEGIN").unwrap();
    assert_eq!(
        server_id(&mut c, "SELECT @@server_id"),
        1,
        "read inside a transaction"
    );
    c.query_drop("COMMIT").unwrap();
    assert_ne!(
        server_id(&mut c, "SELECT @@server_id"),
        1,
        "after COMMIT reads go back to replicas"
    );

    c.query_drop("SET autocommit = 0").unwrap();
    assert_eq!(server_id(&mut c, "SELECT @@server_id"), 1, "autocommit off");
    c.query_drop("SET autocommit = 1").unwrap();
    assert_ne!(server_id(&mut c, "SELECT @@server_id"), 1);

    c.query_drop("CREATE TEMPORARY TABLE tmp (a INT)").unwrap();
    c.query_drop("INSERT INTO tmp VALUES (1)").unwrap();
    let n: i64 = c.query_first("SELECT COUNT(*) FROM tmp").unwrap().unwrap();
    assert_eq!(
        n, 1,
        "the temporary table is visible: the session stayed on its connection"
    );
    assert_eq!(
        server_id(&mut c, "SELECT @@server_id"),
        1,
        "pinned after a temporary table"
    );
}

#[test]
fn balance_primary_sends_every_read_to_the_primary() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "0", "").unwrap();
    for _ in 0..3 {
        let mut c = proxy.conn("app", "app", None).unwrap();
        assert_eq!(server_id(&mut c, "SELECT @@server_id"), 1);
    }
}

#[test]
fn session_state_follows_the_session_across_connections() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", None).unwrap();
    c.query_drop("USE app").unwrap();
    c.query_drop("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci")
        .unwrap();
    c.query_drop("SET sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE'")
        .unwrap();
    c.query_drop("SET @marker = 42").unwrap();
    let (db, coll, mode, marker, sid): (String, String, String, i64, u32) = c
        .query_first("SELECT DATABASE(), @@collation_connection, @@sql_mode, @marker, @@server_id")
        .unwrap()
        .unwrap();
    assert_ne!(sid, 1, "this check is about a read connection");
    assert_eq!(db, "app");
    assert_eq!(coll, "utf8mb4_unicode_ci");
    assert_eq!(mode, "STRICT_ALL_TABLES,NO_ZERO_DATE");
    assert_eq!(marker, 42);
    // The same seen on the write connection.
    let (db, mode): (String, String) = c
        .query_first("SELECT /*hastack:primary*/ DATABASE(), @@sql_mode")
        .unwrap()
        .unwrap();
    assert_eq!(
        (db.as_str(), mode.as_str()),
        ("app", "STRICT_ALL_TABLES,NO_ZERO_DATE")
    );
}

#[test]
fn logins_and_permissions_get_mariadb_error_codes() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let code = |r: anyhow::Result<mysql::Conn>| match r
        .err()
        .and_then(|e| e.downcast::<mysql::Error>().ok())
    {
        Some(mysql::Error::MySqlError(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    };
    assert_eq!(code(proxy.conn("app", "wrong", None)), 1045);
    assert_eq!(code(proxy.conn("nobody", "x", None)), 1045);
    assert_eq!(code(proxy.conn("reader", "reader", Some("sbtest"))), 1044);
    // As MariaDB: a schema the user has no rights on is "access denied", existing or not.
    assert_eq!(code(proxy.conn("app", "app", Some("nosuchdb"))), 1044);

    let mut r = proxy.conn("reader", "reader", Some("app")).unwrap();
    let e = r.query_drop("CREATE TABLE x (a INT)").unwrap_err();
    assert!(
        matches!(&e, mysql::Error::MySqlError(m) if m.code == 1290),
        "{e:?}"
    );
    // The connection stays usable after a refusal.
    let one: i64 = r.query_first("SELECT 1").unwrap().unwrap();
    assert_eq!(one, 1);
    let e = r.query_drop("USE sbtest").unwrap_err();
    assert!(
        matches!(&e, mysql::Error::MySqlError(m) if m.code == 1044),
        "{e:?}"
    );

    // A backend error reaches the client as the backend's own ERR.
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let e = c.query_drop("SELECT * FROM no_such_table").unwrap_err();
    assert!(
        matches!(&e, mysql::Error::MySqlError(m) if m.code == 1146),
        "{e:?}"
    );
    let e = c
        .query_drop("INSERT INTO no_such_table VALUES (1)")
        .unwrap_err();
    assert!(
        matches!(&e, mysql::Error::MySqlError(m) if m.code == 1146),
        "{e:?}"
    );
}

#[test]
fn prepared_statements_multi_results_and_large_results_pass_through() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(255))")
        .unwrap();
    // 20,000 rows of 200 bytes: several MiB through the proxy in one reply.
    c.query_drop("INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_20000")
        .unwrap();
    let stmt = c
        .prep("SELECT id, pad FROM big WHERE id > ? ORDER BY id")
        .unwrap();
    let rows: Vec<(i64, String)> = c.exec(&stmt, (0,)).unwrap();
    assert_eq!(rows.len(), 20000);
    assert_eq!(rows[19999].0, 20000);
    let ins = c.prep("INSERT INTO big VALUES (?, ?)").unwrap();
    c.exec_drop(&ins, (20001, "prepared")).unwrap();
    let text: Vec<(i64, String)> = c
        .query("SELECT id, pad FROM big WHERE id >= 19999 ORDER BY id")
        .unwrap();
    assert_eq!(text.len(), 3);
    // Multi-statements with several result sets.
    let mut result = c.query_iter("SELECT 1; SELECT 2, 3; DO 1").unwrap();
    let mut sets = 0;
    while let Some(set) = result.iter() {
        sets += 1;
        for row in set {
            row.unwrap();
        }
    }
    assert_eq!(sets, 3);
}

#[test]
fn backend_connections_are_reset_and_reused_across_sessions() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let writer_id = |c: &mut mysql::Conn| -> u64 {
        c.query_first("SELECT /*hastack:primary*/ @@pseudo_thread_id")
            .unwrap()
            .unwrap()
    };
    let first = {
        let mut c = proxy.conn("app", "app", Some("app")).unwrap();
        c.query_drop("SET @left_behind = 1").unwrap();
        c.query_drop("CREATE TEMPORARY TABLE leftover (a INT)")
            .unwrap();
        c.query_drop("BEGIN").unwrap();
        writer_id(&mut c)
    };
    // The session is gone; its writer connection went back to the pool.
    let reused = hastack_it::wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || {
            let mut c = proxy.conn("app", "app", Some("app")).unwrap();
            (writer_id(&mut c) == first).then_some(c)
        },
    );
    let mut c = reused.expect("the backend connection was not reused");
    let var: Option<i64> = c
        .query_first("SELECT /*hastack:primary*/ @left_behind")
        .unwrap()
        .unwrap();
    assert_eq!(var, None, "a user variable survived into the next session");
    let e = c.query_drop("SELECT * FROM leftover").unwrap_err();
    assert!(
        matches!(&e, mysql::Error::MySqlError(m) if m.code == 1146),
        "a temporary table survived: {e:?}"
    );
    let in_tx: i64 = c
        .query_first("SELECT /*hastack:primary*/ @@in_transaction")
        .unwrap()
        .unwrap();
    assert_eq!(in_tx, 0, "a transaction survived");
}

#[test]
fn kill_query_names_a_proxy_session_not_a_backend_thread() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let mut victim = proxy.conn("app", "app", Some("app")).unwrap();
    let id = victim.connection_id();
    let sleeper = std::thread::spawn(move || {
        let slept = victim.query_first::<i64, _>("SELECT SLEEP(60)");
        // KILL QUERY ends the statement, not the session.
        (slept, victim.query_drop("DO 1").is_ok())
    });
    let mut root = cluster.conn(0).unwrap();
    let running = hastack_it::wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || {
            let n: u64 = root
                .query_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'")
                .ok()??;
            (n > 0).then_some(())
        },
    );
    assert!(running.is_some());
    let mut killer = proxy.conn("app", "app", Some("app")).unwrap();
    killer.query_drop(format!("KILL QUERY {id}")).unwrap();
    let (slept, usable) = sleeper.join().unwrap();
    // Interrupted: ERROR 1317, or SLEEP() cut short (it returns 1), as on
    // the server itself, depending on when the kill lands.
    let interrupted = match slept {
        Err(mysql::Error::MySqlError(e)) => e.code == 1317,
        Ok(Some(1)) => true,
        _ => false,
    };
    assert!(interrupted, "the killed query went on");
    assert!(usable, "KILL QUERY ended the session");
    let e = killer.query_drop("KILL 999999").unwrap_err();
    assert!(
        matches!(&e, mysql::Error::MySqlError(m) if m.code == 1094),
        "{e:?}"
    );
}

#[test]
fn a_failed_multi_statement_still_pins_and_sets_replay_in_order() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("SET time_zone = '+00:00'").unwrap();
    c.query_drop("SET time_zone = '+08:00'").unwrap();
    c.query_drop("SET time_zone = '+00:00'").unwrap();
    let (tz, sid): (String, u32) = c
        .query_first("SELECT @@time_zone, @@server_id")
        .unwrap()
        .unwrap();
    assert_ne!(sid, 1, "this check is about a read connection");
    assert_eq!(
        tz, "+00:00",
        "the read connection replayed SETs out of order"
    );

    let mut failed = false;
    let mut result = c
        .query_iter("BEGIN; SELECT 1; SELECT * FROM no_such_table")
        .unwrap();
    while let Some(set) = result.iter() {
        for row in set {
            failed |= row.is_err();
        }
    }
    drop(result);
    assert!(failed, "the third statement should have failed");
    assert_eq!(
        server_id(&mut c, "SELECT @@server_id"),
        1,
        "a transaction may be open: reads stay on the writer"
    );
}

#[test]
fn autocommit_off_survives_a_lost_write_connection() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("CREATE TABLE ac (id INT PRIMARY KEY)")
        .unwrap();
    c.query_drop("SET autocommit = 0").unwrap();
    // The server drops the proxy's connections (a crash, a DBA's KILL).
    let mut root = cluster.conn(0).unwrap();
    let ids: Vec<u64> = root
        .query("SELECT id FROM information_schema.processlist WHERE user = 'app'")
        .unwrap();
    assert!(!ids.is_empty());
    for id in ids {
        root.query_drop(format!("KILL {id}")).unwrap();
    }
    let lost = c.query_drop("INSERT INTO ac VALUES (1)").unwrap_err();
    assert!(lost.to_string().contains("2013"), "{lost}");
    // A new write connection: still autocommit=0, so ROLLBACK undoes.
    c.query_drop("INSERT INTO ac VALUES (2)").unwrap();
    c.query_drop("ROLLBACK").unwrap();
    let n: u32 = root
        .query_first("SELECT COUNT(*) FROM app.ac")
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the insert was committed behind the client's back");
}

/// Whether the proxy lets node `i` take reads now.
fn readable(proxy: &Proxy, i: usize) -> Option<bool> {
    let s = proxy.daemon.status().ok()?;
    s["state"]["data_hosts"][0]["nodes"][i]["readable"].as_bool()
}

#[test]
fn a_read_that_fell_back_to_the_writer_keeps_its_follow_ups_there() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();
    let mut root = cluster.conn(0).unwrap();
    root.query_drop("CREATE TABLE IF NOT EXISTS app.fr (id INT PRIMARY KEY)")
        .unwrap();
    root.query_drop("REPLACE INTO app.fr VALUES (1), (2), (3)")
        .unwrap();
    cluster.wait_caught_up(Duration::from_secs(20)).unwrap();
    let wait = |want: bool| {
        hastack_it::wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            (readable(&proxy, 1) == Some(want)).then_some(())
        })
        .unwrap_or_else(|| panic!("replica never readable={want}: {}", proxy.daemon.log()))
    };
    wait(true);
    // The replica stops replicating: no read node, reads fall back to the writer.
    let mut replica = cluster.conn(1).unwrap();
    replica.query_drop("STOP SLAVE").unwrap();
    wait(false);
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let first: Vec<i32> = c
        .query("SELECT SQL_CALC_FOUND_ROWS id FROM fr ORDER BY id LIMIT 1")
        .unwrap();
    assert_eq!(first, vec![1]);
    // The replica is back before the follow-up.
    replica.query_drop("START SLAVE").unwrap();
    wait(true);
    let found: Option<u64> = c.query_first("SELECT FOUND_ROWS()").unwrap();
    assert_eq!(found, Some(3), "FOUND_ROWS() ran elsewhere than its SELECT");
}
