//! Classifying one COM_QUERY text.

use super::hint::Hint;
use super::lexer::{lex_as, Token};

/// Which earlier statement's result a read asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionResult {
    /// `LAST_INSERT_ID()`: the session's last insert, on the write node.
    LastInsertId,
    /// `FOUND_ROWS()`, `ROW_COUNT()`: the statement just before, wherever
    /// it ran (a `SELECT SQL_CALC_FOUND_ROWS` on a replica, say).
    PreviousStatement,
}

/// What a statement is, for routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// A plain read a replica may answer.
    Read {
        /// Reads what an earlier statement left on its connection: only
        /// that connection knows the answer.
        session_result: Option<SessionResult>,
    },
    /// Anything that must run on the write node.
    Write,
    /// Opens a transaction: BEGIN, START TRANSACTION, XA START/BEGIN.
    Begin,
    /// Ends a transaction: COMMIT, ROLLBACK (not `ROLLBACK TO SAVEPOINT`), XA COMMIT/ROLLBACK.
    End,
    /// `SET autocommit = 0|1` (alone in its statement).
    SetAutocommit(bool),
    /// `USE db`.
    Use(String),
    /// Other session state (`SET NAMES`, `SET sql_mode`, `SET @x`, ...): the
    /// proxy keeps every backend connection of the session in step.
    SessionSet,
    /// Ties the session to the write node for as long as it lives.
    Pin(Pin),
}

/// Why a session stays on the write node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// `CREATE TEMPORARY TABLE`: the table exists on one connection only.
    TemporaryTable,
    /// `GET_LOCK()` and friends, `LOCK TABLES`: locks belong to a connection.
    Lock,
    /// Several statements in one COM_QUERY, or a prepared statement: the
    /// proxy cannot split them, so the session stays where they ran.
    MultiStatement,
    /// A session variable set from an expression (a call or subquery): its
    /// value cannot be replayed on another connection.
    SessionExpression,
}

/// Statement words whose text is a read when nothing else in it writes.
const READ_STARTS: &[&str] = &[
    "SELECT", "SHOW", "DESC", "DESCRIBE", "EXPLAIN", "HELP", "VALUES", "TABLE", "WITH",
];

/// Functions whose call ties the session to its connection.
const LOCK_FUNCTIONS: &[&str] = &[
    "GET_LOCK",
    "RELEASE_LOCK",
    "RELEASE_ALL_LOCKS",
    "IS_USED_LOCK",
    "IS_FREE_LOCK",
];

/// Words that make a SELECT a write or give it side effects.
const WRITING_WORDS: &[&str] = &[
    "INTO", "UPDATE", "DELETE", "INSERT", "REPLACE", "NEXTVAL", "SETVAL", "LASTVAL", "NEXT",
];

/// Classifies the text of a COM_QUERY, and returns the hint its comments carry.
///
/// The proxy does not know whether the session runs with sql_mode
/// NO_BACKSLASH_ESCAPES, under which `'a\'; DELETE ...` ends the string
/// early. A text with a backslash is therefore read both ways; if they
/// disagree, the safer class wins (a multi-statement pin, else a write).
pub fn classify(sql: &str) -> (Class, Option<Hint>) {
    let escaped = classify_as(sql, true);
    if !sql.contains('\\') {
        return escaped;
    }
    let literal = classify_as(sql, false);
    if literal.0 == escaped.0 {
        return escaped;
    }
    let multi = Class::Pin(Pin::MultiStatement);
    let class = if escaped.0 == multi || literal.0 == multi {
        multi
    } else {
        Class::Write
    };
    (class, escaped.1)
}

fn classify_as(sql: &str, backslash_escapes: bool) -> (Class, Option<Hint>) {
    let (tokens, hints) = lex_as(sql, backslash_escapes);
    let hint = hints.first().copied();
    // Trailing semicolons are fine; anything after one is another statement.
    let mut statements = tokens
        .split(|t| *t == Token::Semicolon)
        .filter(|s| !s.is_empty());
    let first = statements.next().unwrap_or(&[]);
    if statements.next().is_some() {
        return (Class::Pin(Pin::MultiStatement), hint);
    }
    let class = match classify_one(first) {
        // The lexer upper-cased a bare name; take its spelling from the text.
        Class::Use(name) => Class::Use(original_spelling(sql, &name)),
        other => other,
    };
    (class, hint)
}

/// `name` as spelled in `sql` (the first case-insensitive match after `USE`).
fn original_spelling(sql: &str, name: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let after_use = lower.find("use").map_or(0, |i| i + 3);
    match lower[after_use..].find(&name.to_ascii_lowercase()) {
        Some(i) => sql[after_use + i..after_use + i + name.len()].to_owned(),
        None => name.to_owned(),
    }
}

/// Whether any statement in `sql` changes data (for read-only users),
/// read with and without backslash escapes (see [`classify`]).
pub fn writes_data(sql: &str) -> bool {
    writes_data_as(sql, true) || (sql.contains('\\') && writes_data_as(sql, false))
}

fn writes_data_as(sql: &str, backslash_escapes: bool) -> bool {
    let (tokens, _) = lex_as(sql, backslash_escapes);
    let mut statements = tokens
        .split(|t| *t == Token::Semicolon)
        .filter(|s| !s.is_empty())
        .peekable();
    if statements.peek().is_none() {
        return false;
    }
    statements.any(|s| classify_one(s) == Class::Write)
}

fn word(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

fn has_word(tokens: &[Token], words: &[&str]) -> bool {
    tokens
        .iter()
        .any(|t| matches!(t, Token::Word(w) if words.contains(&w.as_str())))
}

/// `w1 w2` appear next to each other.
fn has_pair(tokens: &[Token], w1: &str, w2: &str) -> bool {
    tokens
        .windows(2)
        .any(|p| word(p.first()) == Some(w1) && word(p.get(1)) == Some(w2))
}

fn classify_one(t: &[Token]) -> Class {
    // A parenthesised query: `(SELECT ...) UNION (SELECT ...)`.
    let start = t
        .iter()
        .position(|t| !matches!(t, Token::Other | Token::Open))
        .unwrap_or(t.len());
    let t = if start > 0 && word(t.get(start)) == Some("SELECT") {
        &t[start..]
    } else {
        t
    };
    let Some(first) = word(t.first()) else {
        return Class::Write;
    };
    match first {
        _ if READ_STARTS.contains(&first) => classify_read(first, t),
        "BEGIN" => match word(t.get(1)) {
            // BEGIN NOT ATOMIC starts a compound statement, not a transaction.
            Some("NOT") => Class::Write,
            _ => Class::Begin,
        },
        "START" if word(t.get(1)) == Some("TRANSACTION") => Class::Begin,
        "COMMIT" => Class::End,
        "ROLLBACK" if !has_word(t, &["TO"]) => Class::End,
        "XA" => match word(t.get(1)) {
            Some("START" | "BEGIN") => Class::Begin,
            Some("COMMIT" | "ROLLBACK") => Class::End,
            Some("RECOVER") => Class::Write,
            _ => Class::Write,
        },
        "USE" => match t.get(1) {
            Some(Token::Word(_)) | Some(Token::Quoted(_)) if t.len() == 2 => {
                Class::Use(original_name(&t[1]))
            }
            _ => Class::Write,
        },
        "SET" => classify_set(&t[1..]),
        "CREATE" if has_pair(t, "CREATE", "TEMPORARY") => Class::Pin(Pin::TemporaryTable),
        "LOCK" => Class::Pin(Pin::Lock),
        "DO" if has_word(t, LOCK_FUNCTIONS) => Class::Pin(Pin::Lock),
        _ => Class::Write,
    }
}

/// Names are compared as the server would see them; the lexer upper-cased
/// bare words, so quoted names keep their case and bare ones are lowered
/// back (schema names are case-sensitive on Linux; the client's case is
/// lost for bare words, which is why clients' USE goes through the proxy's
/// COM_INIT_DB handling whenever possible).
fn original_name(t: &Token) -> String {
    match t {
        Token::Quoted(q) => q.clone(),
        Token::Word(w) => w.to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn classify_read(first: &str, t: &[Token]) -> Class {
    if matches!(first, "EXPLAIN" | "DESC" | "DESCRIBE") {
        // EXPLAIN/DESCRIBE of a table, or of a read, is a read; EXPLAIN of a
        // write (it can execute with ANALYZE) is not.
        let rest = &t[1..];
        let target = rest.iter().find_map(|t| match t {
            Token::Word(w)
                if !matches!(
                    w.as_str(),
                    "EXTENDED" | "PARTITIONS" | "FORMAT" | "JSON" | "ANALYZE"
                ) =>
            {
                Some(w.as_str())
            }
            _ => None,
        });
        return match target {
            Some("UPDATE" | "DELETE" | "INSERT" | "REPLACE") => Class::Write,
            _ if has_word(rest, &["ANALYZE"]) => Class::Write,
            _ => Class::Read {
                session_result: None,
            },
        };
    }
    if first == "SHOW" {
        // Session-scoped SHOWs must see this session's connection.
        return if has_word(t, &["WARNINGS", "ERRORS", "PROFILE", "PROFILES"])
            || has_pair(t, "SHOW", "SESSION")
            || (has_word(t, &["STATUS", "VARIABLES"])
                && !has_word(t, &["GLOBAL"])
                && has_pair(t, "SHOW", "LOCAL"))
        {
            Class::Write
        } else {
            Class::Read {
                session_result: None,
            }
        };
    }
    if has_word(t, WRITING_WORDS)
        || has_pair(t, "FOR", "UPDATE")
        || has_pair(t, "FOR", "SHARE")
        || has_pair(t, "SHARE", "MODE")
        || t.contains(&Token::Assign)
    {
        return Class::Write;
    }
    if has_word(t, LOCK_FUNCTIONS) {
        return Class::Pin(Pin::Lock);
    }
    let session_result = if has_word(t, &["LAST_INSERT_ID"]) {
        Some(SessionResult::LastInsertId)
    } else if has_word(t, &["FOUND_ROWS", "ROW_COUNT"]) {
        Some(SessionResult::PreviousStatement)
    } else {
        None
    };
    Class::Read { session_result }
}

/// `SET ...`: autocommit alone is tracked; transaction characteristics go to
/// the write node; the rest is session state for every connection.
fn classify_set(t: &[Token]) -> Class {
    // Not session state: statements with a SET prefix (SET STATEMENT ... FOR
    // <stmt> runs <stmt>), account and server changes, and any list that
    // touches a global.
    if matches!(word(t.first()), Some("STATEMENT" | "PASSWORD" | "ROLE" | "DEFAULT" | "PERSIST" | "PERSIST_ONLY" | "GLOBAL"))
        || has_word(t, &["GLOBAL", "PERSIST", "PERSIST_ONLY"])
        || t.iter().any(|tok| matches!(tok, Token::Var(v) if v.starts_with("@@GLOBAL.") || v.starts_with("@@PERSIST")))
    {
        return Class::Write;
    }
    // A value computed by a call or subquery (`SET @id = LAST_INSERT_ID()`)
    // would come out differently if replayed elsewhere: run it on the writer
    // and keep the session there.
    if t.contains(&Token::Open) {
        return Class::Pin(Pin::SessionExpression);
    }
    let t = match word(t.first()) {
        Some("SESSION" | "LOCAL") => &t[1..],
        _ => t,
    };
    if word(t.first()) == Some("TRANSACTION") {
        return Class::Write;
    }
    if matches!(t.first(), Some(Token::Var(v)) if v.starts_with("@@GLOBAL.")) {
        return Class::Write;
    }
    let is_autocommit = match t.first() {
        Some(Token::Word(w)) => w == "AUTOCOMMIT",
        Some(Token::Var(v)) => matches!(
            v.as_str(),
            "@@AUTOCOMMIT" | "@@SESSION.AUTOCOMMIT" | "@@LOCAL.AUTOCOMMIT"
        ),
        _ => false,
    };
    // `SET autocommit = 1` is exactly: name, '=', value.
    if is_autocommit && t.len() == 3 {
        let value = match &t[2] {
            Token::Word(w) => match w.as_str() {
                "ON" | "TRUE" => Some(true),
                "OFF" | "FALSE" => Some(false),
                _ => None,
            },
            Token::Number(n) => match n.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if let Some(v) = value {
            return Class::SetAutocommit(v);
        }
        return Class::SessionSet;
    }
    Class::SessionSet
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: Class = Class::Read {
        session_result: None,
    };

    #[test]
    fn a_backslash_cannot_hide_a_second_statement_whatever_the_sql_mode() {
        // With backslash escapes one string; under NO_BACKSLASH_ESCAPES the
        // string ends at the backslash and a DELETE follows.
        let sql = r"SELECT 'x\'; DELETE FROM t; -- '";
        assert_eq!(classify(sql).0, Class::Pin(Pin::MultiStatement));
        assert!(writes_data(sql));
        let sql = r"SELECT 'x\' FROM t WHERE a = 'INTO'";
        assert_eq!(classify(sql).0, Class::Write);
        // Backslashes that change nothing change nothing.
        assert_eq!(classify(r"SELECT 'a\nb'").0, READ);
        assert!(!writes_data(r"SELECT 'a\nb'"));
    }

    #[test]
    fn table_of_statements() {
        let cases: &[(&str, Class)] = &[
            ("SELECT 1", READ),
            ("select * from t where a = 'for update'", READ),
            ("  SELECT id FROM t -- FOR UPDATE\n", READ),
            ("(SELECT 1) UNION (SELECT 2)", READ),
            ("WITH x AS (SELECT 1) SELECT * FROM x", READ),
            ("SHOW TABLES", READ),
            ("SHOW SLAVE STATUS", READ),
            ("show warnings", Class::Write),
            ("SHOW SESSION STATUS", Class::Write),
            ("DESCRIBE t", READ),
            ("EXPLAIN SELECT * FROM t", READ),
            ("EXPLAIN UPDATE t SET a = 1", Class::Write),
            ("ANALYZE SELECT 1", Class::Write),
            ("SELECT * FROM t FOR UPDATE", Class::Write),
            ("SELECT * FROM t LOCK IN SHARE MODE", Class::Write),
            ("SELECT * FROM t FOR SHARE", Class::Write),
            ("SELECT a INTO @x FROM t", Class::Write),
            ("SELECT * FROM t INTO OUTFILE '/tmp/x'", Class::Write),
            ("SELECT @x := 1", Class::Write),
            ("SELECT NEXTVAL(s)", Class::Write),
            ("SELECT NEXT VALUE FOR s", Class::Write),
            ("SELECT GET_LOCK('l', 1)", Class::Pin(Pin::Lock)),
            ("DO RELEASE_LOCK('l')", Class::Pin(Pin::Lock)),
            (
                "SELECT LAST_INSERT_ID()",
                Class::Read {
                    session_result: Some(SessionResult::LastInsertId),
                },
            ),
            (
                "select found_rows()",
                Class::Read {
                    session_result: Some(SessionResult::PreviousStatement),
                },
            ),
            ("INSERT INTO t VALUES (1)", Class::Write),
            ("update t set a=1", Class::Write),
            ("DELETE FROM t", Class::Write),
            ("REPLACE INTO t VALUES (1)", Class::Write),
            ("CREATE TABLE t (a int)", Class::Write),
            (
                "CREATE TEMPORARY TABLE tt (a int)",
                Class::Pin(Pin::TemporaryTable),
            ),
            ("DROP TEMPORARY TABLE tt", Class::Write),
            ("LOCK TABLES t WRITE", Class::Pin(Pin::Lock)),
            ("UNLOCK TABLES", Class::Write),
            ("CALL p()", Class::Write),
            ("BEGIN", Class::Begin),
            ("begin work", Class::Begin),
            (
                "BEGIN NOT ATOMIC SELECT 1; END",
                Class::Pin(Pin::MultiStatement),
            ),
            ("START TRANSACTION READ ONLY", Class::Begin),
            ("COMMIT", Class::End),
            ("commit work and no chain", Class::End),
            ("ROLLBACK", Class::End),
            ("ROLLBACK TO SAVEPOINT a", Class::Write),
            ("SAVEPOINT a", Class::Write),
            ("XA START 'x'", Class::Begin),
            ("XA END 'x'", Class::Write),
            ("XA PREPARE 'x'", Class::Write),
            ("XA COMMIT 'x'", Class::End),
            ("SET autocommit = 0", Class::SetAutocommit(false)),
            ("set autocommit=ON", Class::SetAutocommit(true)),
            (
                "SET @@session.autocommit = OFF",
                Class::SetAutocommit(false),
            ),
            ("SET autocommit = 1, sql_mode = ''", Class::SessionSet),
            ("SET NAMES utf8mb4", Class::SessionSet),
            ("SET sql_mode = 'STRICT_ALL_TABLES'", Class::SessionSet),
            ("SET @x = 1", Class::SessionSet),
            ("SET SESSION wait_timeout = 60", Class::SessionSet),
            ("SET GLOBAL read_only = ON", Class::Write),
            ("SET @@global.read_only = ON", Class::Write),
            (
                "SET STATEMENT max_statement_time=1 FOR DELETE FROM t",
                Class::Write,
            ),
            ("SET PASSWORD = PASSWORD('x')", Class::Write),
            ("SET a = 1, GLOBAL b = 2", Class::Write),
            ("SET ROLE admin", Class::Write),
            (
                "SET @id = LAST_INSERT_ID()",
                Class::Pin(Pin::SessionExpression),
            ),
            (
                "SET @n = (SELECT COUNT(*) FROM t)",
                Class::Pin(Pin::SessionExpression),
            ),
            ("/*M!100000 DELETE FROM t */", Class::Write),
            (
                "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                Class::Write,
            ),
            ("/*!40101 SET NAMES utf8 */", Class::SessionSet),
            ("USE app", Class::Use("app".into())),
            ("USE `My-Db`", Class::Use("My-Db".into())),
            ("use MyDb", Class::Use("MyDb".into())),
            ("SELECT 1; SELECT 2", Class::Pin(Pin::MultiStatement)),
            ("SELECT 1;", READ),
            ("", Class::Write),
            ("   ", Class::Write),
            ("-- only a comment", Class::Write),
            ("FLUSH TABLES", Class::Write),
            ("KILL 5", Class::Write),
        ];
        for (sql, want) in cases {
            assert_eq!(&classify(sql).0, want, "{sql:?}");
        }
    }

    #[test]
    fn writes_data_looks_at_every_statement() {
        assert!(!writes_data("SELECT 1; SELECT 2"));
        assert!(writes_data("SELECT 1; DELETE FROM t"));
        assert!(!writes_data("SET NAMES utf8; BEGIN; SELECT 1; COMMIT"));
        assert!(!writes_data(""));
        assert!(writes_data("DROP TABLE t"));
    }

    #[test]
    fn hints_are_returned_with_the_class() {
        assert_eq!(
            classify("/*#mycat:db_type=master*/ SELECT 1"),
            (READ, Some(Hint::Primary))
        );
        assert_eq!(
            classify("/*!mycat:db_type=slave*/ SELECT 1"),
            (READ, Some(Hint::Replica))
        );
        assert_eq!(
            classify("SELECT /*hastack:primary*/ 1"),
            (READ, Some(Hint::Primary))
        );
        assert_eq!(classify("/*balance*/ SELECT 1").1, Some(Hint::Replica));
        assert_eq!(classify("SELECT 1").1, None);
    }
}
