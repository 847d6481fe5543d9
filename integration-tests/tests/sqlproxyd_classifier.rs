//! sqlproxyd's classifier in a real session (issue 17 items 1 and 5): reads
//! that depend on session state run where that state is, stored functions
//! that may write go to the primary, and text a byte-wise lexer cannot read
//! as the server does (gbk) fails closed.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use hastack_it::sqlproxy::Proxy;
use hastack_it::MariaDbCluster;
use mysql::prelude::Queryable;

fn first<T: mysql::prelude::FromValue>(c: &mut mysql::Conn, sql: &str) -> T {
    c.query_first(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

#[test]
fn reads_that_depend_on_session_state_stay_with_that_state() {
    let cluster = MariaDbCluster::start(3).unwrap();
    let mut root = cluster.conn(0).unwrap();
    root.query_drop("CREATE TABLE app.ai (id INT AUTO_INCREMENT PRIMARY KEY)")
        .unwrap();
    root.query_drop("CREATE SEQUENCE app.s").unwrap();
    cluster
        .wait_caught_up(std::time::Duration::from_secs(20))
        .unwrap();
    let proxy = Proxy::start(&cluster, "replicas", "").unwrap();

    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("SELECT 42 INTO @x").unwrap();
    assert_eq!(first::<u32>(&mut c, "SELECT @x"), 42, "SELECT ... INTO @x");

    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("SELECT @a := 7").unwrap();
    assert_eq!(first::<u32>(&mut c, "SELECT @a"), 7, "SELECT @a := 7");

    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("INSERT INTO ai VALUES ()").unwrap();
    c.query_drop("INSERT INTO ai VALUES ()").unwrap();
    let id: u64 = first(&mut c, "SELECT LAST_INSERT_ID()");
    assert!(id >= 2);
    assert_eq!(first::<u64>(&mut c, "SELECT @@identity"), id);
    assert_eq!(first::<u64>(&mut c, "SELECT @@last_insert_id"), id);

    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("SELECT LAST_INSERT_ID(5)").unwrap();
    assert_eq!(first::<u64>(&mut c, "SELECT LAST_INSERT_ID()"), 5);

    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    let next: u64 = first(&mut c, "SELECT NEXT VALUE FOR s");
    assert_eq!(first::<u64>(&mut c, "SELECT PREVIOUS VALUE FOR s"), next);
    assert_eq!(first::<u64>(&mut c, "SELECT LASTVAL(s)"), next);

    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    c.query_drop("CREATE OR REPLACE TEMPORARY TABLE tt (a INT)")
        .unwrap();
    c.query_drop("INSERT INTO tt VALUES (1)").unwrap();
    assert_eq!(first::<u32>(&mut c, "SELECT COUNT(*) FROM tt"), 1);
}

#[test]
fn stored_functions_that_may_write_run_on_the_primary() {
    let cluster = MariaDbCluster::start(2).unwrap();
    // The replica applies the CREATE FUNCTIONs too.
    for i in 0..2 {
        cluster
            .conn(i)
            .unwrap()
            .query_drop("SET GLOBAL log_bin_trust_function_creators = 1")
            .unwrap();
    }
    let mut root = cluster.conn(0).unwrap();
    for sql in [
        "CREATE TABLE app.log (id INT AUTO_INCREMENT PRIMARY KEY)",
        "CREATE FUNCTION app.wf() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO app.log VALUES (); RETURN @@server_id; END",
        "CREATE FUNCTION app.rf(x INT) RETURNS INT DETERMINISTIC NO SQL RETURN x",
        "GRANT EXECUTE ON app.* TO 'app'@'%'",
    ] {
        root.query_drop(sql).unwrap();
    }
    cluster
        .wait_caught_up(std::time::Duration::from_secs(20))
        .unwrap();
    let proxy =
        Proxy::start_with(&cluster, "replicas", "", "read_only_functions: [app.rf]\n").unwrap();
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    // On a replica the INSERT inside would fail (read_only); here it runs.
    assert_eq!(first::<u32>(&mut c, "SELECT wf()"), 1);
    assert_eq!(first::<u32>(&mut c, "SELECT app.wf()"), 1);
    assert_eq!(first::<u32>(&mut c, "SELECT 1 FROM DUAL WHERE wf() > 0"), 1);
    let logged: u32 = first(&mut root, "SELECT COUNT(*) FROM app.log");
    assert_eq!(logged, 3);
    // A listed function is a read: a fresh session reads on the replica.
    let mut c = proxy.conn("app", "app", Some("app")).unwrap();
    assert_eq!(first::<u32>(&mut c, "SELECT rf(@@server_id)"), 2);
}

/// PyMySQL with charset gbk: `縗` is 0xBF 0x5C in gbk, one character to the
/// server but a backslash escaping the quote to a byte-wise lexer, which
/// would then see one string where the server sees a DELETE.
#[test]
fn gbk_text_that_hides_a_quote_fails_closed() {
    let cluster = MariaDbCluster::start(2).unwrap();
    let mut root = cluster.conn(0).unwrap();
    root.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY)")
        .unwrap();
    root.query_drop("INSERT INTO app.t VALUES (1), (2)")
        .unwrap();
    cluster
        .wait_caught_up(std::time::Duration::from_secs(20))
        .unwrap();
    let proxy = Proxy::start(&cluster, "primary", "").unwrap();
    let script = r#"
import sys, pymysql
from pymysql.constants import CLIENT
c = pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), user='reader', password='reader',
                    database='app', charset='gbk', client_flag=CLIENT.MULTI_STATEMENTS)
cur = c.cursor()
try:
    cur.execute("SELECT '\u7e17'; DELETE FROM t -- '")
    while cur.nextset():
        pass
    print("ran")
except pymysql.err.MySQLError as e:
    print("refused", e.args[0], e.args[1])
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &proxy.addr.port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("refused 1290") && stdout.contains("read_only"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: u32 = first(&mut root, "SELECT COUNT(*) FROM app.t");
    assert_eq!(rows, 2);
}
