//! `read_only: true` proxy users against a real primary and replica: the
//! backends refuse their writes (every backend connection of theirs runs
//! `SET SESSION TRANSACTION READ ONLY`), so a statement that fools the
//! proxy's classifier still changes nothing; statements that would lift the
//! read-only mode are refused by the proxy. Row counts are read on the
//! primary directly.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use hastack_it::sqlproxy::Proxy;
use hastack_it::MariaDbCluster;
use mysql::prelude::Queryable;

/// A table of 3 rows, an empty log, and routines that write.
fn setup(cluster: &MariaDbCluster) {
    let mut root = cluster.conn(0).unwrap();
    for sql in [
        "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)",
        "CREATE TABLE app.log (id INT AUTO_INCREMENT PRIMARY KEY)",
        "CREATE FUNCTION app.f() RETURNS INT DETERMINISTIC MODIFIES SQL DATA \
         BEGIN INSERT INTO app.log () VALUES (); DELETE FROM app.t WHERE id = 3; RETURN 1; END",
    ] {
        root.query_drop(sql).unwrap();
    }
}

/// (rows in app.t, rows in app.log), on the primary.
fn counts(cluster: &MariaDbCluster) -> (u64, u64) {
    let mut root = cluster.conn(0).unwrap();
    let t: u64 = root
        .query_first("SELECT COUNT(*) FROM app.t")
        .unwrap()
        .unwrap();
    let log: u64 = root
        .query_first("SELECT COUNT(*) FROM app.log")
        .unwrap()
        .unwrap();
    (t, log)
}

/// `f` and `lift_f` listed as read-only by mistake: the classifier then
/// lets their calls through, and what stops them is the server's guard,
/// which these tests are about (unlisted, the proxy refuses them itself
/// with 1290: tests/sqlproxyd_classifier.rs).
const LISTED_BY_MISTAKE: &str = "read_only_functions: [f, lift_f]\n";

/// The server error code of running `sql` (all its results read), or 0.
fn code(c: &mut mysql::Conn, sql: &str) -> u16 {
    let mut run = || -> mysql::Result<()> {
        let mut result = c.query_iter(sql)?;
        while let Some(set) = result.iter() {
            for row in set {
                row?;
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(mysql::Error::MySqlError(e)) => e.code,
        Err(e) => panic!("{sql}: not a server error: {e}"),
    }
}

#[test]
fn read_only_users_change_nothing_even_past_the_classifier() {
    let cluster = MariaDbCluster::start(2).unwrap();
    setup(&cluster);
    let proxy = Proxy::start_with(&cluster, "primary", "", LISTED_BY_MISTAKE).unwrap();
    let mut c = proxy.conn("reader", "reader", Some("app")).unwrap();
    // The server itself holds the session read-only.
    let ro: u8 = c.query_first("SELECT @@tx_read_only").unwrap().unwrap();
    assert_eq!(ro, 1);
    // (statement, the errors it may get: the proxy's 1290 when the
    // classifier sees the write, the server's 1792 when it does not,
    // the proxy's 1227 for what would lift read-only).
    let cases: &[(&str, &[u16])] = &[
        ("/*!999999 SELECT 1 FROM */ TRUNCATE TABLE t", &[1290, 1792]),
        ("/*! SELECT '*/' */ ; DELETE FROM t -- '", &[1290, 1792]),
        ("DELETE FROM t", &[1290]),
        // Functions listed as read-only (by mistake): only the server stops these.
        ("SELECT f()", &[1792]),
        ("SET @x := f()", &[1792]),
        ("DO f()", &[1290, 1792]),
        ("SET SESSION TRANSACTION READ WRITE; DELETE FROM t", &[1227]),
        ("SET STATEMENT tx_read_only = 0 FOR DELETE FROM t", &[1227]),
        ("SET @@session.`tx_read_only` = OFF", &[1227]),
        ("START TRANSACTION READ WRITE", &[1227]),
        (
            "SET @q = CONCAT('SET tx_read', '_only=0'); PREPARE s FROM @q",
            &[1227],
        ),
        ("EXECUTE IMMEDIATE 'SELECT 1'", &[1227]),
    ];
    for (sql, want) in cases {
        let got = code(&mut c, sql);
        assert!(
            want.contains(&got),
            "{sql}: got {got}, want one of {want:?}"
        );
        assert_eq!(counts(&cluster), (3, 0), "{sql} changed the tables");
        // And the session is still read-only on the server.
        let ro: u8 = c.query_first("SELECT @@tx_read_only").unwrap().unwrap();
        assert_eq!(ro, 1, "after {sql}");
    }
    // Reads work.
    let n: u64 = c.query_first("SELECT COUNT(*) FROM t").unwrap().unwrap();
    assert_eq!(n, 3);
    // The same statement as the read-write user does write.
    let mut app = proxy.conn("app", "app", Some("app")).unwrap();
    app.query_drop("SELECT f()").unwrap();
    assert_eq!(counts(&cluster), (2, 1));
}

#[test]
fn read_only_is_reapplied_after_reset_change_user_reconnect_and_on_pooled_connections() {
    let cluster = MariaDbCluster::start(2).unwrap();
    setup(&cluster);
    let proxy = Proxy::start_with(&cluster, "primary", "", LISTED_BY_MISTAKE).unwrap();
    let mut c = proxy.conn("reader", "reader", Some("app")).unwrap();
    assert_eq!(code(&mut c, "SELECT f()"), 1792);
    // COM_RESET_CONNECTION: the backend connections are reset and pooled;
    // the next one is read-only again.
    c.reset().unwrap();
    let ro: u8 = c.query_first("SELECT @@tx_read_only").unwrap().unwrap();
    assert_eq!(ro, 1, "after COM_RESET_CONNECTION");
    assert_eq!(code(&mut c, "SELECT f()"), 1792);
    // COM_CHANGE_USER to the same read-only user.
    c.change_user(
        mysql::ChangeUserOpts::DEFAULT
            .with_user(Some("reader".into()))
            .with_pass(Some("reader".into()))
            .with_db_name(Some("app".into())),
    )
    .unwrap();
    assert_eq!(code(&mut c, "SELECT f()"), 1792);
    // A backend connection lost (killed on the server): the one opened in
    // its place is read-only before the next statement runs.
    let thread: u64 = c.query_first("SELECT @@pseudo_thread_id").unwrap().unwrap();
    cluster
        .conn(0)
        .unwrap()
        .query_drop(format!("KILL {thread}"))
        .unwrap();
    // The first statement after may get the loss (2013) or run anew.
    let _ = code(&mut c, "SELECT 1");
    let again: u64 = c.query_first("SELECT @@pseudo_thread_id").unwrap().unwrap();
    assert_ne!(again, thread, "a new backend connection");
    let ro: u8 = c.query_first("SELECT @@tx_read_only").unwrap().unwrap();
    assert_eq!(ro, 1, "after a reconnect");
    assert_eq!(code(&mut c, "SELECT f()"), 1792);
    drop(c);
    assert_eq!(counts(&cluster), (3, 0));
    // A read-write session after them takes a pooled connection that a
    // read-only one used, and is read-write.
    let mut app = proxy.conn("app", "app", Some("app")).unwrap();
    let ro: u8 = app.query_first("SELECT @@tx_read_only").unwrap().unwrap();
    assert_eq!(ro, 0, "a read-write session inherited read-only");
    // And a read-only session after that is read-only again.
    drop(app);
    let mut c = proxy.conn("reader", "reader", Some("app")).unwrap();
    assert_eq!(code(&mut c, "SELECT f()"), 1792);
    assert_eq!(counts(&cluster), (3, 0));
}

#[test]
fn a_read_only_account_holds_even_against_a_routine_that_lifts_read_only() {
    let cluster = MariaDbCluster::start(2).unwrap();
    setup(&cluster);
    // A routine that lifts the session's read-only mode: SET SESSION
    // TRANSACTION READ ONLY alone cannot stop what runs after it.
    let mut root = cluster.conn(0).unwrap();
    // (Called from a function listed as read-only, so the classifier lets it by.)
    for sql in [
        "CREATE PROCEDURE app.lift() BEGIN SET SESSION TRANSACTION READ WRITE; END",
        "CREATE FUNCTION app.lift_f() RETURNS INT DETERMINISTIC BEGIN CALL app.lift(); RETURN 1; END",
    ] {
        root.query_drop(sql).unwrap();
    }
    drop(root);
    let extra = "    read_only_user: app_ro\n    read_only_password: app_ro\n";
    let proxy = Proxy::start_with(&cluster, "primary", extra, LISTED_BY_MISTAKE).unwrap();
    let mut c = proxy.conn("reader", "reader", Some("app")).unwrap();
    let who: String = c.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(who, "app_ro@%");
    // No EXECUTE: neither the routine nor the function runs; no privilege
    // to write either.
    assert_eq!(code(&mut c, "SELECT lift_f()"), 1370);
    // (f's tables are opened, read-only, before its EXECUTE is checked.)
    assert!([1370, 1792].contains(&code(&mut c, "SELECT f()")));
    assert!([1142, 1290, 1792].contains(&code(&mut c, "SELECT 1; DELETE FROM t")));
    assert_eq!(counts(&cluster), (3, 0));
    drop(c);
    // The read-write user's connections are its own account's, pooled apart.
    let mut app = proxy.conn("app", "app", Some("app")).unwrap();
    let who: String = app.query_first("SELECT CURRENT_USER()").unwrap().unwrap();
    assert_eq!(who, "app@%");
    // Without the account, the routine would lift it (the warning --check gives).
    let proxy = Proxy::start_with(&cluster, "primary", "", LISTED_BY_MISTAKE).unwrap();
    let mut c = proxy.conn("reader", "reader", Some("app")).unwrap();
    assert_eq!(code(&mut c, "SELECT lift_f()"), 0);
    let ro: u8 = c.query_first("SELECT @@tx_read_only").unwrap().unwrap();
    assert_eq!(
        ro, 0,
        "the routine lifted read-only: why read_only_user exists"
    );
}

const PYMYSQL: &str = r#"
import sys, pymysql
from pymysql.constants import CLIENT
c = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user="reader", password="reader",
                    database="app", client_flag=CLIENT.MULTI_STATEMENTS)
cur = c.cursor()
for sql in sys.argv[2:]:
    try:
        cur.execute(sql)
        while cur.nextset():
            pass
        print("ok")
    except pymysql.err.MySQLError as e:
        print(e.args[0])
"#;

#[test]
fn pymysql_with_multi_statements_as_a_read_only_user_changes_nothing() {
    let cluster = MariaDbCluster::start(2).unwrap();
    setup(&cluster);
    let proxy = Proxy::start_with(&cluster, "primary", "", LISTED_BY_MISTAKE).unwrap();
    let statements = [
        "/*!999999 SELECT 1 FROM */ TRUNCATE TABLE t",
        "/*! SELECT '*/' */ ; DELETE FROM t -- '",
        "DELETE FROM t",
        "SELECT f()",
        "SET @x := f()",
        "SET SESSION TRANSACTION READ WRITE; DELETE FROM t",
        "SELECT 1; SET tx_read_only = 0; DELETE FROM t",
    ];
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PYMYSQL)
        .arg(proxy.addr.port().to_string())
        .args(statements)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let codes: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        codes.len(),
        statements.len(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (sql, got) in statements.iter().zip(&codes) {
        assert!(["1290", "1792", "1227"].contains(got), "{sql}: {got}");
    }
    assert_eq!(counts(&cluster), (3, 0));
}
