//! Protocol fidelity (issue 19 item 1): what client libraries' own suites
//! found sqlproxyd doing differently from MariaDB, each checked directly
//! against MariaDB and through sqlproxyd, expecting the same.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use hastack_it::sqlproxy::{config, connect, state_dir_for, Proxy, RawClient};
use hastack_it::{wait_for, DaemonProcess, MariaDbCluster};
use mysql::prelude::Queryable;
use mysql::Conn;

fn port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], hastack_it::ports::free_port()))
}

/// sqlproxyd over `cluster` with one more user, `free`/`free` (no
/// `schemas` list: the backends decide), traffic as the `app` account.
fn proxy(cluster: &MariaDbCluster) -> Proxy {
    let (addr, http, admin) = (port(), port(), port());
    let _ = std::fs::remove_dir_all(state_dir_for(addr));
    let text = config(cluster, addr, http, admin, "primary", "", "").replacen(
        "users:\n",
        "users:\n  - {name: free, password: free}\n",
        1,
    );
    Proxy {
        daemon: DaemonProcess::start("sqlproxyd", &text, http).unwrap(),
        addr,
        admin,
    }
}

/// The server's error code of a failed call.
fn code<T>(r: &mysql::Result<T>) -> Option<u16> {
    match r {
        Err(mysql::Error::MySqlError(e)) => Some(e.code),
        _ => None,
    }
}

/// Whether some connection of the server waits on a user lock now.
fn someone_waits_on_a_lock(root: &mut Conn) -> bool {
    let n: Option<u64> = root
        .query_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'",
        )
        .unwrap();
    n.unwrap_or(0) > 0
}

/// `SELECT 'a'; SELECT GET_LOCK(..); SELECT 'c'` with the lock held
/// elsewhere: 'a' reaches the client while the second statement still
/// waits (mysql-connector-python's read timeouts depend on it). A proxy
/// that held the results until the last one would deliver 'a' only after
/// GET_LOCK gave up, when nobody waits any more. Read packet by packet (the
/// `mysql` crate reads ahead into the next result).
fn first_result_arrives_while_the_second_runs(addr: SocketAddr, root: &mut Conn) {
    use hastack_proto::mysql::packets::Capabilities;
    // A lock of its own per run: the last run's client may still hold its
    // lock while its connection closes.
    let lock = format!("fidelity{}", addr.port());
    let holder: Option<i64> = root
        .query_first(format!("SELECT GET_LOCK('{lock}', 0)"))
        .unwrap();
    assert_eq!(holder, Some(1));
    let caps = Capabilities::CLIENT_MULTI_STATEMENTS | Capabilities::CLIENT_MULTI_RESULTS;
    let mut c = RawClient::login_full(addr, &[], "app", "app", Some("app"), caps).unwrap();
    let mut query = vec![0x03];
    query.extend_from_slice(
        format!("SELECT 'a'; SELECT GET_LOCK('{lock}', 15); SELECT 'c'").as_bytes(),
    );
    c.write(0, &query).unwrap();
    // Column count, one column definition, EOF, one row, EOF.
    let first: Vec<Vec<u8>> = (0..5).map(|_| c.read().unwrap().1).collect();
    assert_eq!(first[3], b"\x01a", "the first result's row ({addr})");
    assert_eq!(first[4][0], 0xFE, "the first result's end ({addr})");
    assert!(
        someone_waits_on_a_lock(root),
        "'a' came only after the second statement was done ({addr})"
    );
    let _: Option<i64> = root
        .query_first(format!("SELECT RELEASE_LOCK('{lock}')"))
        .unwrap();
    // The other two results: 5 packets each.
    let rest: Vec<Vec<u8>> = (0..10).map(|_| c.read().unwrap().1).collect();
    assert_eq!(rest[3], b"\x011", "GET_LOCK's row ({addr})");
    assert_eq!(rest[8], b"\x01c", "the third result's row ({addr})");
}

#[test]
fn each_result_of_a_multi_result_reply_is_sent_as_it_completes() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = proxy(&cluster);
    let mut root = cluster.conn(0).unwrap();
    first_result_arrives_while_the_second_runs(cluster.addr(0), &mut root);
    first_result_arrives_while_the_second_runs(proxy.addr, &mut root);
}

#[test]
fn databases_are_the_backends_to_decide_unless_the_user_is_restricted() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = proxy(&cluster);
    let mut root = cluster.conn(0).unwrap();
    // A database created at run time, no schema of sqlproxyd's.
    root.query_drop("CREATE DATABASE IF NOT EXISTS runtime19")
        .unwrap();
    root.query_drop("GRANT ALL ON runtime19.* TO 'app'@'%'")
        .unwrap();
    root.query_drop("CREATE TABLE IF NOT EXISTS runtime19.t (id INT)")
        .unwrap();
    root.query_drop("INSERT INTO runtime19.t VALUES (7)")
        .unwrap();
    let direct = cluster.addr(0);
    // `free` runs as `app` on the backend: the same answers as `app` directly.
    for db in ["runtime19", "information_schema", "no_such_db", "mysql"] {
        let d = connect(direct, "app", "app", Some(db)).map(|_| ());
        let p = connect(proxy.addr, "free", "free", Some(db)).map(|_| ());
        assert_eq!(code(&d), code(&p), "connect to {db}: {d:?} / {p:?}");
        assert_eq!(d.is_ok(), p.is_ok(), "connect to {db}");
        let mut dc = connect(direct, "app", "app", None).unwrap();
        let mut pc = connect(proxy.addr, "free", "free", None).unwrap();
        let d = dc.query_drop(format!("USE {db}"));
        let p = pc.query_drop(format!("USE {db}"));
        assert_eq!(code(&d), code(&p), "USE {db}: {d:?} / {p:?}");
        assert_eq!(d.is_ok(), p.is_ok(), "USE {db}");
    }
    let mut c = connect(proxy.addr, "free", "free", Some("runtime19")).unwrap();
    let got: Option<i32> = c.query_first("SELECT id FROM t").unwrap();
    assert_eq!(got, Some(7));
    let n: Option<u64> = c
        .query_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'runtime19'",
        )
        .unwrap();
    assert_eq!(n, Some(1));
    // A user whose `schemas` lists some is restricted to them on purpose,
    // but information_schema is always there.
    let mut app = connect(proxy.addr, "app", "app", Some("information_schema")).unwrap();
    app.query_drop("USE INFORMATION_SCHEMA").unwrap();
    assert_eq!(code(&app.query_drop("USE runtime19")), Some(1044));
    assert_eq!(
        code(&connect(proxy.addr, "app", "app", Some("mysql"))),
        Some(1044)
    );
    // The session still works after each refusal.
    app.query_drop("USE app").unwrap();
    // Still served after a reload (the session's database has no schema).
    proxy.daemon.reload().unwrap();
    let again = wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        (proxy.daemon.status().ok()?["config_generation"] == 2).then_some(())
    });
    assert!(again.is_some());
    let got: Option<i32> = c.query_first("SELECT id FROM t").unwrap();
    assert_eq!(got, Some(7));
}

/// A finished command's standard output; its failure fails the test.
fn stdout_of(out: std::io::Result<std::process::Output>) -> String {
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The outcome of a statement as a comparable fact: `ok` or the code.
fn outcome(r: mysql::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(mysql::Error::MySqlError(e)) => format!("error {}", e.code),
        Err(_) => "connection lost".into(),
    }
}

/// What KILL and CONNECTION_ID() do at `addr`, as facts to compare.
/// `root` (on the server) sees a statement sleep, wherever it came from.
fn kill_facts(addr: SocketAddr, root: &mut Conn) -> Vec<String> {
    let mut facts = Vec::new();
    let mut victim = connect(addr, "app", "app", Some("app")).unwrap();
    let id: Option<u32> = victim.query_first("SELECT CONNECTION_ID()").unwrap();
    facts.push(format!(
        "CONNECTION_ID() is the handshake's id: {}",
        id == Some(victim.connection_id())
    ));
    let id = victim.connection_id();
    let sleeper = std::thread::spawn(move || {
        let r: mysql::Result<Option<i64>> = victim.query_first("SELECT SLEEP(20)");
        let after: mysql::Result<Option<i64>> = victim.query_first("SELECT 1");
        // Interrupted: ERROR 1317, or SLEEP() cut short (it returns 1),
        // on the server itself too, depending on when the kill lands.
        let interrupted = match r {
            Err(mysql::Error::MySqlError(e)) => e.code == 1317,
            Ok(Some(1)) => true,
            _ => false,
        };
        (interrupted, after.is_ok())
    });
    let sleeping = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        let n: Option<u64> = root
            .query_first("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(20)'")
            .ok()?;
        (n? > 0).then_some(())
    });
    assert!(sleeping.is_some(), "the statement never ran ({addr})");
    let mut killer = connect(addr, "app", "app", Some("app")).unwrap();
    facts.push(format!(
        "KILL QUERY: {}",
        outcome(killer.query_drop(format!("KILL QUERY {id}")))
    ));
    let (slept, usable) = sleeper.join().unwrap();
    // SLEEP() returns 1 when interrupted, 0 when it ran its course.
    facts.push(format!(
        "the statement interrupted: {slept}; the session usable after: {usable}"
    ));
    facts.push(format!(
        "KILL of no session: {}",
        outcome(killer.query_drop("KILL 4000000000"))
    ));
    let own = outcome(killer.query_drop("KILL QUERY CONNECTION_ID()"));
    facts.push(format!("KILL QUERY CONNECTION_ID(): {own}"));
    facts.push(format!("then: {}", outcome(killer.query_drop("SELECT 1"))));
    let own = outcome(killer.query_drop("KILL CONNECTION_ID()"));
    facts.push(format!("KILL CONNECTION_ID(): {own}"));
    facts.push(format!("then: {}", outcome(killer.query_drop("SELECT 1"))));
    facts
}

#[test]
fn kill_query_ends_the_statement_and_connection_ids_agree() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = proxy(&cluster);
    let mut root = cluster.conn(0).unwrap();
    let direct = kill_facts(cluster.addr(0), &mut root);
    let proxied = kill_facts(proxy.addr, &mut root);
    assert_eq!(direct, proxied);
}

/// PyMySQL's `kill()` (COM_PROCESS_KILL with the handshake's id), its
/// `thread_id()` against `CONNECTION_ID()` and `SHOW PROCESSLIST`.
const PYMYSQL_KILL: &str = r#"
import sys, time, pymysql
port = int(sys.argv[1])
c = lambda: pymysql.connect(host="127.0.0.1", port=port, user="app", password="app", database="app")
victim, killer = c(), c()
cur = victim.cursor()
cur.execute("SELECT CONNECTION_ID()")
print("same id:", cur.fetchone()[0] == victim.thread_id())
# PyMySQL's test_issue_36: its own row in the process list has its id.
cur.execute("show processlist")
own = [r for r in cur.fetchall() if r[7] == "show processlist"]
print("listed as itself:", [r[0] for r in own] == [victim.thread_id()])
killer.kill(victim.thread_id())
try:
    cur.execute("SELECT 1")
    print("victim alive")
except pymysql.err.OperationalError as e:
    print("victim gone:", e.args[0] in (2013, 2006, 1927, 4031))
time.sleep(0.2)
k = killer.cursor()
k.execute("SHOW FULL PROCESSLIST")
print("gone from the list:", victim.thread_id() not in [r[0] for r in k.fetchall()])
"#;

#[test]
fn pymysql_kill_and_thread_id_behave_as_on_the_server() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = proxy(&cluster);
    let run = |addr: SocketAddr| {
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", PYMYSQL_KILL, &addr.port().to_string()])
            .output();
        stdout_of(out)
    };
    let direct = run(cluster.addr(0));
    assert_eq!(
        direct,
        "same id: True\nlisted as itself: True\nvictim gone: True\ngone from the list: True\n"
    );
    assert_eq!(run(proxy.addr), direct);
}

/// Runs `sql` over the compressed protocol (mysql-connector-python's
/// `compress=True` compresses from the first command after the login, as
/// a server that offers CLIENT_COMPRESS expects) and returns the packets
/// of its reply: the server's answer, read back through the compression.
fn compressed_query(addr: SocketAddr, sql: &str, packets: usize) -> Vec<Vec<u8>> {
    use bytes::BytesMut;
    use hastack_proto::mysql::compress::Compression;
    use hastack_proto::mysql::packets::Capabilities;
    use hastack_proto::mysql::{decode, encode, Packet};
    use std::io::{Read, Write};
    let caps = Capabilities::CLIENT_COMPRESS;
    let mut c = RawClient::login_full(addr, &[], "app", "app", Some("app"), caps).unwrap();
    let mut z = Compression::default();
    let mut plain = BytesMut::new();
    let mut query = vec![0x03];
    query.extend_from_slice(sql.as_bytes());
    encode(&Packet::new(0, query), &mut plain);
    let mut wire = BytesMut::new();
    z.write_frames(&plain, &mut wire);
    c.0.write_all(&wire).unwrap();
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while out.len() < packets {
        if let Some(p) = decode(&mut z.plain, 1 << 24).unwrap() {
            out.push(p.payload.to_vec());
            continue;
        }
        if z.read_frame(&mut src, 1 << 24).unwrap() {
            continue;
        }
        let n = c.0.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} packets ({addr})", out.len());
        src.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn the_compressed_protocol_is_spoken() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = proxy(&cluster);
    // A big value (deflated) and a small one (stored): column count, two
    // column definitions, EOF, the row, EOF.
    let sql = "SELECT REPEAT('ab', 5000) AS big, 'x' AS small";
    let direct = compressed_query(cluster.addr(0), sql, 6);
    let proxied = compressed_query(proxy.addr, sql, 6);
    assert_eq!(direct[4], proxied[4], "the row");
    assert_eq!(proxied[4].len(), 3 + 10000 + 2);
    // A real client with --compress: a multi-statement and a large insert.
    let cli = |addr: SocketAddr| {
        let out = std::process::Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &addr.port().to_string(),
                "-u",
                "app",
                "-papp",
            ])
            .args(["--compress", "-N", "-B", "app", "-e"])
            .arg(
                "CREATE TABLE IF NOT EXISTS z (v LONGTEXT); DELETE FROM z; \
                 INSERT INTO z VALUES (REPEAT('0123456789', 20000)); \
                 SELECT LENGTH(v), MD5(v) FROM z; SELECT 1",
            )
            .output();
        stdout_of(out)
    };
    let d = cli(cluster.addr(0));
    assert!(d.starts_with("200000\t"), "{d}");
    assert_eq!(cli(proxy.addr), d);
}

/// mysql-connector-python, the library whose suite found most of this
/// issue's differences (pure Python, from PyPI: `.ci/run` installs it for
/// the machine's `python3`): compression, databases without a schema,
/// `KILL QUERY` and its connection id, as facts to compare.
const CONNECTOR_PYTHON: &str = r#"
import sys, threading, time, mysql.connector
port = int(sys.argv[1])
def c(**kw):
    # A socket timeout: a regression fails rather than hangs.
    args = dict(host="127.0.0.1", port=port, user="free", password="free", use_pure=True,
                connection_timeout=30)
    args.update(kw)
    return mysql.connector.connect(**args)
def code(f):
    try:
        f()
        return "ok"
    except mysql.connector.Error as e:
        return f"error {e.errno}"
z = c(database="app", compress=True)
cur = z.cursor()
cur.execute("SELECT REPEAT('ab', 30000), 'x'")
row = cur.fetchone()
print("compressed:", len(row[0]), row[1])
for db in ["information_schema", "mysql", "no_such_db"]:
    print("connect to", db, code(lambda: c(database=db).close()))
    s = c()
    print("USE", db, code(lambda: s.cmd_init_db(db)))
    s.close()
v = c(database="app")
vc = v.cursor()
vc.execute("SELECT CONNECTION_ID()")
print("same id:", vc.fetchone()[0] == v.connection_id)
out = {}
def sleep():
    out["slept"] = code(lambda: (vc.execute("SELECT SLEEP(20)"), vc.fetchall()))
t = threading.Thread(target=sleep)
t.start()
time.sleep(1)
k = c(database="app")
kc = k.cursor()
print("KILL QUERY:", code(lambda: kc.execute(f"KILL QUERY {v.connection_id}")))
t.join()
print("statement:", out["slept"] in ("ok", "error 1317"))
print("session after:", code(lambda: (vc.execute("SELECT 1"), vc.fetchall())))
"#;

#[test]
fn mysql_connector_python_sees_what_it_sees_on_the_server() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let proxy = proxy(&cluster);
    let mut root = cluster.conn(0).unwrap();
    // `free` directly is the same account as through sqlproxyd (`app`'s rights).
    root.query_drop("CREATE USER IF NOT EXISTS 'free'@'%' IDENTIFIED BY 'free'")
        .unwrap();
    root.query_drop("GRANT ALL ON app.* TO 'free'@'%'").unwrap();
    let run = |addr: SocketAddr| {
        stdout_of(
            std::process::Command::new("python3")
                .args(["-c", CONNECTOR_PYTHON, &addr.port().to_string()])
                .output(),
        )
    };
    let direct = run(cluster.addr(0));
    assert!(direct.starts_with("compressed: 60000 x\n"), "{direct}");
    assert_eq!(run(proxy.addr), direct);
}
