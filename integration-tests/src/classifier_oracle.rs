//! MariaDB as the judge of sqlproxyd's classifier: a text is classified,
//! then run on a real server; the binary log position and the session
//! state the proxy tracks are taken before and after. A text classified as
//! not writing must leave the binary log where it was; one classified as a
//! read must also leave the session as it was.

use anyhow::{Context as _, Result};
use hastack_proto::sql::{classify, writes_data, Class};
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};

/// The schema the generated statements run in (`crate::sqlgen`'s names).
pub const SETUP_SQL: &[&str] = &[
    "SET GLOBAL log_bin_trust_function_creators = 1",
    "DROP DATABASE IF EXISTS d",
    "CREATE DATABASE d",
    "CREATE TABLE d.t (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0)",
    "INSERT INTO d.t VALUES (1, 0), (2, 0)",
    "CREATE TABLE d.log (id INT AUTO_INCREMENT PRIMARY KEY)",
    "INSERT INTO d.log SELECT NULL FROM d.seq_1_to_2000",
    "CREATE TABLE d.scratch (a INT)",
    "CREATE SEQUENCE d.s NOCACHE",
    "CREATE FUNCTION d.rf(x INT) RETURNS INT DETERMINISTIC NO SQL RETURN x + 1",
    "CREATE FUNCTION d.wf() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO d.log VALUES (); RETURN 1; END",
    "CREATE PROCEDURE d.wp() MODIFIES SQL DATA INSERT INTO d.log VALUES ()",
];

/// sql_modes a session may run under: each changes how text is lexed.
pub const SQL_MODES: &[&str] = &[
    "",
    "NO_BACKSLASH_ESCAPES",
    "ANSI_QUOTES",
    "ANSI_QUOTES,NO_BACKSLASH_ESCAPES",
];

/// Session state the proxy tracks, as one comparable string.
const STATE_SQL: &str = "SELECT CONCAT_WS('|', @@in_transaction, @@autocommit, @@sql_mode, \
     @@character_set_client, LAST_INSERT_ID(), \
     (SELECT IFNULL(GROUP_CONCAT(CONCAT(VARIABLE_NAME, '=', IFNULL(VARIABLE_VALUE, 'NULL')) \
      ORDER BY VARIABLE_NAME), '') FROM information_schema.USER_VARIABLES))";

/// A disagreement: what the classifier said and what the server did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub sql: String,
    pub sql_mode: String,
    pub class: Class,
    pub writes_data: bool,
    pub what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} (sql_mode '{}'): classified {:?}, writes_data {}, but {}",
            self.sql, self.sql_mode, self.class, self.writes_data, self.what
        )
    }
}

pub struct Oracle {
    opts: Opts,
    observer: Conn,
}

impl Oracle {
    /// Sets up schema `d` on the server at `opts` (a user with every
    /// privilege) and judges texts there.
    pub fn new(opts: Opts) -> Result<Oracle> {
        let mut observer = Conn::new(opts.clone()).context("connecting the observer")?;
        for sql in SETUP_SQL {
            observer
                .query_drop(sql)
                .with_context(|| format!("setting up: {sql}"))?;
        }
        let opts = OptsBuilder::from_opts(opts).db_name(Some("d")).into();
        Ok(Oracle { opts, observer })
    }

    fn binlog_pos(&mut self) -> Result<String> {
        let pos: Option<String> = self.observer.query_first("SELECT @@gtid_binlog_pos")?;
        Ok(pos.unwrap_or_default())
    }

    /// Classifies `sql`, runs it under `sql_mode` on a fresh connection,
    /// and says where the server disagreed.
    pub fn judge(&mut self, sql: &str, sql_mode: &str) -> Result<Option<Finding>> {
        self.judge_as(sql, sql_mode, |sql| (classify(sql).0, writes_data(sql)))
    }

    /// [`Oracle::judge`] of another classifier (the oracle's own test gives
    /// it a wrong one, which it must catch).
    pub fn judge_as(
        &mut self,
        sql: &str,
        sql_mode: &str,
        classifier: impl Fn(&str) -> (Class, bool),
    ) -> Result<Option<Finding>> {
        let (class, writes) = classifier(sql);
        let mut conn = Conn::new(self.opts.clone()).context("connecting a case")?;
        conn.query_drop(format!(
            "SET SESSION sql_mode = '{sql_mode}', innodb_lock_wait_timeout = 2, max_statement_time = 5"
        ))?;
        let state_before = state(&mut conn)?;
        let pos_before = self.binlog_pos()?;
        run(&mut conn, sql);
        let state_after = state(&mut conn).ok();
        // A write inside a transaction the text opened reaches the log at commit.
        let _ = conn.query_drop("COMMIT");
        drop(conn);
        let pos_after = self.binlog_pos()?;
        let finding = |what: String| Finding {
            sql: sql.to_owned(),
            sql_mode: sql_mode.to_owned(),
            class: class.clone(),
            writes_data: writes,
            what,
        };
        if !writes && pos_after != pos_before {
            return Ok(Some(finding(format!(
                "the server wrote: binlog {pos_before} -> {pos_after}"
            ))));
        }
        if matches!(class, Class::Read { .. }) {
            if pos_after != pos_before {
                return Ok(Some(finding(format!(
                    "the server wrote: binlog {pos_before} -> {pos_after}"
                ))));
            }
            if let Some(after) = state_after {
                if after != state_before {
                    return Ok(Some(finding(format!(
                        "the session changed: {state_before:?} -> {after:?}"
                    ))));
                }
            }
        }
        Ok(None)
    }
}

fn state(conn: &mut Conn) -> Result<String> {
    let s: Option<String> = conn.query_first(STATE_SQL)?;
    let temp = conn.query_drop("SELECT 1 FROM tt LIMIT 0").is_ok();
    Ok(format!("{}|temp={temp}", s.unwrap_or_default()))
}

/// Runs every statement of `sql`, reading every result; errors end it.
fn run(conn: &mut Conn, sql: &str) {
    let Ok(mut result) = conn.query_iter(sql) else {
        return;
    };
    while let Some(set) = result.iter() {
        for row in set {
            if row.is_err() {
                return;
            }
        }
    }
}
