//! Classifying one COM_QUERY text.

use super::charset::{charset_after, CharsetChange};
use super::functions::stored_calls;
use super::hint::Hint;
use super::lexer::{gate_versions, lex, Dialect, Server, Token};

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
    "UPDATE", "DELETE", "INSERT", "REPLACE", "NEXTVAL", "SETVAL", "NEXT",
];

/// Session variables that read the session's last insert (`@@identity`).
const LAST_INSERT_VARS: &[&str] = &[
    "@@IDENTITY",
    "@@LAST_INSERT_ID",
    "@@INSERT_ID",
    "@@SESSION.IDENTITY",
    "@@SESSION.LAST_INSERT_ID",
    "@@SESSION.INSERT_ID",
    "@@LOCAL.IDENTITY",
    "@@LOCAL.LAST_INSERT_ID",
    "@@LOCAL.INSERT_ID",
    "@@LAST_GTID",
    "@@SESSION.LAST_GTID",
    "@@LOCAL.LAST_GTID",
];

/// Session variables that read the statement before (`@@warning_count`).
const PREVIOUS_STATEMENT_VARS: &[&str] = &[
    "@@WARNING_COUNT",
    "@@ERROR_COUNT",
    "@@SESSION.WARNING_COUNT",
    "@@SESSION.ERROR_COUNT",
    "@@LOCAL.WARNING_COUNT",
    "@@LOCAL.ERROR_COUNT",
];

/// More readings than this (version-gated comments of many versions) and
/// the text is a write: nobody writes that by hand for a read.
const MAX_READINGS: usize = 64;

/// What the proxy knows of a session that changes how its text must be read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// Stored functions a read may call (`read_only_functions`): names as
    /// `f` (any schema) or `db.f`, compared without regard to case. Any
    /// other stored function may write, so a statement calling it does.
    pub read_only_functions: &'a [String],
    /// The session's current schema: where an unqualified `f()` is looked up.
    pub schema: Option<&'a str>,
    /// The connection's character set has multi-byte characters whose later
    /// bytes can be a quote, a backslash or a backtick (gbk, big5, sjis,
    /// cp932, gb18030). The text is not lexed by that character set, so any
    /// non-ASCII byte in it makes it unreadable: a write.
    pub unsafe_charset: bool,
}

/// One statement's class, and whether it may change data (for read-only
/// users: some statements must run on the writer without writing, such as
/// `SHOW WARNINGS` or `SELECT LAST_INSERT_ID(5)`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Verdict {
    class: Class,
    writes: bool,
}

impl Verdict {
    fn of(class: Class) -> Verdict {
        let writes = matches!(class, Class::Write);
        Verdict { class, writes }
    }

    fn write() -> Verdict {
        Verdict::of(Class::Write)
    }

    fn on_writer() -> Verdict {
        Verdict {
            class: Class::Write,
            writes: false,
        }
    }

    fn read(session_result: Option<SessionResult>) -> Verdict {
        Verdict::of(Class::Read { session_result })
    }
}

/// Classifies the text of a COM_QUERY, and returns the hint its comments carry.
pub fn classify(sql: &str) -> (Class, Option<Hint>) {
    classify_in(sql, &Context::default())
}

/// [`classify`] for a session with `ctx`.
pub fn classify_in(sql: &str, ctx: &Context) -> (Class, Option<Hint>) {
    let a = analyze(sql, ctx);
    (a.class, a.hint)
}

/// Whether any statement in `sql` may change data (for read-only users),
/// under any reading of the text (see [`analyze`]).
pub fn writes_data(sql: &str) -> bool {
    writes_data_in(sql, &Context::default())
}

/// [`writes_data`] for a session with `ctx`.
pub fn writes_data_in(sql: &str, ctx: &Context) -> bool {
    analyze(sql, ctx).writes_data
}

/// What the proxy needs to know of one COM_QUERY text, from one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Where it may run (the first statement's class, or a multi-statement pin).
    pub class: Class,
    /// The routing hint its comments carry.
    pub hint: Option<Hint>,
    /// Whether any statement in it may change data (refused to read-only users).
    pub writes_data: bool,
}

/// Classifies `sql` for a session with `ctx`.
///
/// The proxy does not know the session's sql_mode (NO_BACKSLASH_ESCAPES
/// ends `'a\'; DELETE ...`'s string early, ANSI_QUOTES makes `"..."` a name)
/// nor exactly which server version gates `/*!NNNNN ...*/`. The text is
/// read every way that can differ; if the readings disagree, the safer
/// class wins (a multi-statement pin, else a write), and it writes data if
/// any reading does.
pub fn analyze(sql: &str, ctx: &Context) -> Analysis {
    // Most statements hold nothing whose reading depends on sql_mode, the
    // server's version or the character set: one reading, no allocation.
    let plain =
        sql.is_ascii() && !sql.bytes().any(|b| b == b'\\' || b == b'"') && !sql.contains("/*");
    let many = if plain {
        None
    } else {
        match dialects(sql, ctx) {
            Some(d) => Some(d),
            None => {
                return Analysis {
                    class: Class::Write,
                    hint: None,
                    writes_data: true,
                }
            }
        }
    };
    let one = [Dialect::default()];
    let mut result: Option<Analysis> = None;
    let mut disagree = false;
    for &d in many.as_deref().unwrap_or(&one) {
        let lexed = lex(sql, d);
        let hint = lexed.hints.first().copied();
        let reading = if lexed.unsure.is_some() {
            None
        } else {
            Some(read_tokens(&lexed.tokens, ctx))
        };
        let (class, writes) = reading.unwrap_or((None, true));
        match &mut result {
            None => {
                result = Some(Analysis {
                    class: class.clone().unwrap_or(Class::Write),
                    hint,
                    writes_data: writes,
                });
                disagree = class.is_none();
            }
            Some(r) => {
                r.writes_data |= writes;
                if class.as_ref() != Some(&r.class) {
                    disagree = true;
                    if class == Some(Class::Pin(Pin::MultiStatement)) {
                        r.class = Class::Pin(Pin::MultiStatement);
                    }
                }
            }
        }
    }
    let mut a = result.unwrap_or(Analysis {
        class: Class::Write,
        hint: None,
        writes_data: true,
    });
    if disagree && a.class != Class::Pin(Pin::MultiStatement) {
        a.class = Class::Write;
    }
    if let Class::Use(name) = &a.class {
        // The lexer upper-cased a bare name; take its spelling from the text.
        a.class = Class::Use(original_spelling(sql, name));
    }
    a
}

/// Every way the server may read `sql`, or `None` when the text cannot be
/// read safely at all.
fn dialects(sql: &str, ctx: &Context) -> Option<Vec<Dialect>> {
    if !sql.is_ascii() && (ctx.unsafe_charset || charset_after(sql) == Some(CharsetChange::Unsafe))
    {
        return None;
    }
    let mut quoting = vec![(true, false)];
    if sql.contains('\\') {
        quoting.push((false, false));
        if sql.contains('"') {
            quoting.push((true, true));
        }
    } else if sql.contains('"') {
        quoting.push((true, true));
    }
    let versions = if sql.contains("/*") {
        gate_versions(sql)
    } else {
        Vec::new()
    };
    let mut servers = Vec::new();
    if versions.is_empty() && !sql.contains("/*M!") {
        servers.push(Server::MariaDb(u32::MAX));
    } else if versions.is_empty() {
        // `/*M!` without a version: MariaDB runs it, MySQL skips it.
        servers.extend([Server::MariaDb(u32::MAX), Server::MySql(u32::MAX)]);
    } else {
        // The oldest servers we run on, then one reading per version at
        // which the set of comments that run changes.
        for (floor, make) in [
            (100_000, Server::MariaDb as fn(u32) -> Server),
            (50_700, Server::MySql as fn(u32) -> Server),
        ] {
            servers.push(make(floor));
            servers.extend(versions.iter().filter(|&&v| v > floor).map(|&v| make(v)));
        }
    }
    if quoting.len() * servers.len() > MAX_READINGS {
        return None;
    }
    Some(
        quoting
            .iter()
            .flat_map(|&(backslash_escapes, ansi_quotes)| {
                servers.iter().map(move |&server| Dialect {
                    backslash_escapes,
                    ansi_quotes,
                    server,
                })
            })
            .collect(),
    )
}

/// The statements of a token list (trailing semicolons are fine).
fn statements(tokens: &[Token]) -> impl Iterator<Item = &[Token]> {
    tokens
        .split(|t| *t == Token::Semicolon)
        .filter(|s| !s.is_empty())
}

/// The class of one reading's tokens (`None`-free) and whether any of its
/// statements writes data.
fn read_tokens(tokens: &[Token], ctx: &Context) -> (Option<Class>, bool) {
    let mut class = None;
    let mut count = 0;
    let mut writes = false;
    for stmt in statements(tokens) {
        let v = classify_one(stmt, ctx);
        writes |= v.writes;
        count += 1;
        if count == 1 {
            class = Some(v.class);
        }
    }
    match count {
        // Nothing to run: the server answers with an error; the writer may.
        0 => (Some(Class::Write), false),
        1 => (class, writes),
        _ => (Some(Class::Pin(Pin::MultiStatement)), writes),
    }
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

/// A name among `names`, bare or quoted (`` `GET_LOCK`( `` calls the
/// built-in as `GET_LOCK(` does).
fn has_name(tokens: &[Token], names: &[&str]) -> bool {
    tokens.iter().any(|t| match t {
        Token::Word(w) => names.contains(&w.as_str()),
        Token::Quoted(q) => names.iter().any(|n| q.eq_ignore_ascii_case(n)),
        _ => false,
    })
}

/// Whether a statement advances or sets a sequence, wherever it stands
/// (`SET @x = NEXT VALUE FOR s`, `DO NEXTVAL(s)`, Oracle mode's
/// `s.nextval`, quoted or not).
fn writes_sequence(t: &[Token]) -> bool {
    has_name(t, &["NEXTVAL", "SETVAL"])
        || has_pair(t, "NEXT", "VALUE")
        || t.windows(2).any(|w| {
            w[0] == Token::Dot
                && matches!(&w[1], Token::Word(n) | Token::Quoted(n) if n.eq_ignore_ascii_case("NEXTVAL"))
        })
}

fn has_var(tokens: &[Token], vars: &[&str]) -> bool {
    tokens
        .iter()
        .any(|t| matches!(t, Token::Var(v) if vars.contains(&v.as_str())))
}

fn classify_one(t: &[Token], ctx: &Context) -> Verdict {
    // A parenthesised query: `(SELECT ...) UNION (SELECT ...)`.
    let start = t
        .iter()
        .position(|t| !matches!(t, Token::Other | Token::Open { .. }))
        .unwrap_or(t.len());
    let t = if start > 0 && word(t.get(start)) == Some("SELECT") {
        &t[start..]
    } else {
        t
    };
    let Some(first) = word(t.first()) else {
        return Verdict::write();
    };
    let verdict = match first {
        _ if READ_STARTS.contains(&first) => classify_read(first, t),
        "BEGIN" => match word(t.get(1)) {
            // BEGIN NOT ATOMIC starts a compound statement, not a transaction.
            Some("NOT") => Verdict::write(),
            _ => Verdict::of(Class::Begin),
        },
        "START" if word(t.get(1)) == Some("TRANSACTION") => Verdict {
            class: Class::Begin,
            // READ WRITE undoes a read-only session's guard.
            writes: has_pair(t, "READ", "WRITE"),
        },
        "COMMIT" => Verdict::of(Class::End),
        "ROLLBACK" if !has_word(t, &["TO"]) => Verdict::of(Class::End),
        "XA" => match word(t.get(1)) {
            Some("START" | "BEGIN") => Verdict::of(Class::Begin),
            Some("COMMIT" | "ROLLBACK") => Verdict::of(Class::End),
            _ => Verdict::write(),
        },
        "USE" => match t.get(1) {
            Some(Token::Word(_)) | Some(Token::Quoted(_)) if t.len() == 2 => {
                Verdict::of(Class::Use(original_name(&t[1])))
            }
            _ => Verdict::write(),
        },
        "SET" => classify_set(&t[1..]),
        // CREATE [OR REPLACE] TEMPORARY TABLE/SEQUENCE: one connection's.
        "CREATE"
            if word(t.get(1)) == Some("TEMPORARY")
                || (has_pair(t, "CREATE", "OR")
                    && word(t.get(2)) == Some("REPLACE")
                    && word(t.get(3)) == Some("TEMPORARY")) =>
        {
            Verdict {
                class: Class::Pin(Pin::TemporaryTable),
                writes: true,
            }
        }
        "LOCK" => Verdict {
            class: Class::Pin(Pin::Lock),
            writes: true,
        },
        "DO" if has_name(t, LOCK_FUNCTIONS) && stored_calls(t, ctx).is_empty() => {
            Verdict::of(Class::Pin(Pin::Lock))
        }
        _ => Verdict::write(),
    };
    if !verdict.writes && (writes_sequence(t) || !stored_calls(t, ctx).is_empty()) {
        // A stored function may write whatever the statement around it is,
        // and so does a sequence's next value.
        return Verdict::write();
    }
    verdict
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

fn classify_read(first: &str, t: &[Token]) -> Verdict {
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
            Some("UPDATE" | "DELETE" | "INSERT" | "REPLACE") => Verdict::write(),
            _ if has_word(rest, &["ANALYZE"]) => Verdict::write(),
            _ => Verdict::read(None),
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
            Verdict::on_writer()
        } else {
            Verdict::read(None)
        };
    }
    // `INSERT(...)` and `REPLACE(...)` are string functions in a read.
    let writing = t.iter().enumerate().any(|(i, tok)| match tok {
        Token::Word(w) if WRITING_WORDS.contains(&w.as_str()) => {
            !(matches!(w.as_str(), "INSERT" | "REPLACE")
                && t.get(i + 1) == Some(&Token::Open { adjacent: true }))
        }
        _ => false,
    });
    if writing
        || has_pair(t, "FOR", "UPDATE")
        || has_pair(t, "FOR", "SHARE")
        || has_pair(t, "SHARE", "MODE")
    {
        return Verdict::write();
    }
    // `INTO OUTFILE`/`DUMPFILE` writes a file; `INTO @x` (and `@x := ...`)
    // sets a variable that only the connection it ran on has.
    let mut into_var = false;
    for (i, tok) in t.iter().enumerate() {
        if word(Some(tok)) == Some("INTO") {
            match t.get(i + 1) {
                Some(Token::Var(v)) if !v.starts_with("@@") => into_var = true,
                _ => return Verdict::write(),
            }
        }
    }
    if into_var || t.contains(&Token::Assign) {
        return Verdict {
            class: Class::Pin(Pin::SessionExpression),
            writes: false,
        };
    }
    if has_name(t, LOCK_FUNCTIONS) {
        return Verdict::of(Class::Pin(Pin::Lock));
    }
    // LAST_INSERT_ID(expr) sets the value later calls read.
    let sets_last_insert = t.windows(3).any(|w| {
        has_name(&w[..1], &["LAST_INSERT_ID"])
            && matches!(w.get(1), Some(Token::Open { .. }))
            && w.get(2) != Some(&Token::Close)
    });
    if sets_last_insert {
        return Verdict::on_writer();
    }
    let session_result = if has_name(t, &["LAST_INSERT_ID", "LASTVAL", "CURRVAL"])
        || has_pair(t, "PREVIOUS", "VALUE")
        || has_var(t, LAST_INSERT_VARS)
    {
        Some(SessionResult::LastInsertId)
    } else if has_name(t, &["FOUND_ROWS", "ROW_COUNT"]) || has_var(t, PREVIOUS_STATEMENT_VARS) {
        Some(SessionResult::PreviousStatement)
    } else {
        None
    };
    Verdict::read(session_result)
}

/// `SET ...`: autocommit alone is tracked; transaction characteristics go to
/// the write node; the rest is session state for every connection.
fn classify_set(t: &[Token]) -> Verdict {
    // Not session state: statements with a SET prefix (SET STATEMENT ... FOR
    // <stmt> runs <stmt>), account and server changes, and any list that
    // touches a global.
    if matches!(word(t.first()), Some("STATEMENT" | "PASSWORD" | "ROLE" | "DEFAULT" | "PERSIST" | "PERSIST_ONLY" | "GLOBAL"))
        || has_word(t, &["GLOBAL", "PERSIST", "PERSIST_ONLY"])
        // `@@global .x` (a space or comment before the dot) is the global too.
        || t.iter().any(|tok| matches!(tok, Token::Var(v) if v == "@@" || v.starts_with("@@GLOBAL") || v.starts_with("@@PERSIST")))
    {
        // SET STATEMENT ... FOR <stmt> keeps what <stmt> ties to the session.
        if word(t.first()) == Some("STATEMENT") {
            if let Some(at) = t.iter().position(|x| word(Some(x)) == Some("FOR")) {
                if let Class::Pin(pin) = classify_one(&t[at + 1..], &Context::default()).class {
                    return Verdict {
                        class: Class::Pin(pin),
                        writes: true,
                    };
                }
            }
        }
        return Verdict::write();
    }
    // Turning a read-only session's guard off is a write, however spelled.
    let read_only_guard = t.iter().any(|tok| match tok {
        Token::Word(w) | Token::Var(w) => {
            w.ends_with("TRANSACTION_READ_ONLY") || w.ends_with("TX_READ_ONLY")
        }
        Token::Quoted(q) => {
            let q = q.to_ascii_uppercase();
            q.ends_with("TRANSACTION_READ_ONLY") || q.ends_with("TX_READ_ONLY")
        }
        _ => false,
    });
    if read_only_guard || has_pair(t, "READ", "WRITE") {
        return Verdict::write();
    }
    // A value computed by a call or subquery (`SET @id = LAST_INSERT_ID()`)
    // would come out differently if replayed elsewhere: run it on the writer
    // and keep the session there.
    if t.iter().any(|t| matches!(t, Token::Open { .. })) {
        return Verdict::of(Class::Pin(Pin::SessionExpression));
    }
    let t = match word(t.first()) {
        Some("SESSION" | "LOCAL") => &t[1..],
        _ => t,
    };
    if word(t.first()) == Some("TRANSACTION") {
        return Verdict::on_writer();
    }
    if matches!(t.first(), Some(Token::Var(v)) if v.starts_with("@@GLOBAL.")) {
        return Verdict::write();
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
            return Verdict::of(Class::SetAutocommit(v));
        }
    }
    Verdict::of(Class::SessionSet)
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
            (
                "SELECT a INTO @x FROM t",
                Class::Pin(Pin::SessionExpression),
            ),
            ("SELECT * FROM t INTO OUTFILE '/tmp/x'", Class::Write),
            ("SELECT @x := 1", Class::Pin(Pin::SessionExpression)),
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

    /// Issue 17's findings: text that MariaDB reads differently from a
    /// byte-wise lexer, or that writes through a function, is a write.
    #[test]
    fn read_only_users_cannot_write_through_text_the_server_reads_differently() {
        for sql in [
            "/*! SELECT '*/' */ ; DELETE FROM t -- '",
            "/*!999999 SELECT 1 FROM */ TRUNCATE TABLE t",
            "/*M!999999 SELECT 1 FROM */ TRUNCATE TABLE t",
            // MariaDB runs `SELECT 1 FROM TRUNCATE t` (an error); MySQL
            // skips the /*M! comment and truncates.
            "/*M! SELECT 1 FROM */ TRUNCATE t",
            "SELECT 1 /*!80000 FROM t; DELETE FROM t */",
            // The server's `--` comment ends at the newline; a byte-wise
            // lexer that wants a space after `--` reads a string instead.
            "SELECT 1 --\x01 'x\n; DELETE FROM t -- '",
            "SELECT 1 --\x0b 'x\n; DELETE FROM t -- '",
            "SELECT f()",
            "SELECT app.f()",
            "SELECT now ()",
            "SET @x := f()",
            "SET @x = app.f(1)",
            "DO f()",
            "CALL p()",
            "EXECUTE IMMEDIATE 'DELETE FROM t'",
            "PREPARE s FROM 'SELECT 1'",
            "EXECUTE s",
            "CREATE TABLE t2 (a INT)",
            "CREATE TEMPORARY TABLE t2 (a INT)",
            "DROP TABLE t",
            "TRUNCATE t",
            "GRANT ALL ON *.* TO x",
            "LOCK TABLES t WRITE",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "SET SESSION TRANSACTION READ WRITE",
            "SET TRANSACTION READ WRITE",
            "SET transaction_read_only = 0",
            "SET @@session.tx_read_only = OFF",
            "SET `transaction_read_only` = 0",
            "START TRANSACTION READ WRITE",
            "SELECT 1 /*! , 2 /*! , 3 */ , 4 */",
            // The review's findings.
            "SET @@global .init_connect = 'DELETE FROM t'",
            "SET @@global/**/.init_connect = 'x'",
            "SET @a = 1, @@GLOBAL .general_log = 1",
            "SET @x = NEXT VALUE FOR s",
            "SET @x = NEXTVAL(s)",
            "SET @x = (SELECT SETVAL(s, 9))",
            "DO GET_LOCK('l', 0), NEXTVAL(s)",
            "DO IS_FREE_LOCK('l'), (SELECT NEXT VALUE FOR s)",
            "SELECT s.`nextval`",
            "SELECT db.s.\"NEXTVAL\" FROM dual",
            "SELECT 1f()",
            "SELECT app.1f(2)",
            "SELECT app.123()",
            "SELECT json_table(1)",
            r#"SELECT 'a\'', "b\"; DELETE FROM t; -- "'"#,
        ] {
            assert!(writes_data(sql), "{sql:?}");
        }
        for sql in [
            "SELECT 1",
            "SELECT NOW(), COUNT(*) FROM t",
            "/*!40101 SET NAMES utf8 */",
            "SHOW WARNINGS",
            "SELECT LAST_INSERT_ID(5)",
            "SELECT 42 INTO @x",
            "SELECT @a := 1",
            "SET @x = 1",
            "SET @x = NOW()",
            "START TRANSACTION READ ONLY",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SELECT REPLACE(a, 'x', 'y') FROM t",
        ] {
            assert!(!writes_data(sql), "{sql:?}");
        }
        let allowed = ["app.f".to_string()];
        let ctx = Context {
            read_only_functions: &allowed,
            ..Context::default()
        };
        assert!(!writes_data_in("SELECT app.f()", &ctx));
        assert!(writes_data_in("SELECT other.f()", &ctx));
    }

    #[test]
    fn non_ascii_text_on_a_charset_that_hides_quotes_is_a_write() {
        // gbk: 0xBF 0x5C is one character, not an escaping backslash.
        let sql = "SELECT '\u{FFFD}\\'; DELETE FROM t; -- '";
        let gbk = Context {
            unsafe_charset: true,
            ..Context::default()
        };
        assert_eq!(classify_in(sql, &gbk).0, Class::Write);
        assert!(writes_data_in(sql, &gbk));
        assert!(!writes_data_in("SELECT 1", &gbk));
        assert_eq!(classify_in("SELECT 1", &gbk).0, READ);
        // Switched to in the same text.
        assert!(writes_data("SET NAMES gbk; SELECT '\u{e9}'"));
        assert!(!writes_data("SET NAMES utf8mb4; SELECT '\u{e9}'"));
    }

    /// Reads that depend on session state go where that state is.
    #[test]
    fn reads_that_depend_on_session_state() {
        let cases: &[(&str, Class)] = &[
            ("SELECT 42 INTO @x", Class::Pin(Pin::SessionExpression)),
            ("SELECT @a := 1", Class::Pin(Pin::SessionExpression)),
            (
                "SELECT @@identity",
                Class::Read {
                    session_result: Some(SessionResult::LastInsertId),
                },
            ),
            (
                "SELECT @@last_insert_id",
                Class::Read {
                    session_result: Some(SessionResult::LastInsertId),
                },
            ),
            (
                "SELECT PREVIOUS VALUE FOR s",
                Class::Read {
                    session_result: Some(SessionResult::LastInsertId),
                },
            ),
            (
                "SELECT @@warning_count",
                Class::Read {
                    session_result: Some(SessionResult::PreviousStatement),
                },
            ),
            ("SELECT LAST_INSERT_ID(5)", Class::Write),
            (
                "CREATE OR REPLACE TEMPORARY TABLE t (a INT)",
                Class::Pin(Pin::TemporaryTable),
            ),
            ("SELECT f()", Class::Write),
            ("SELECT 1 FROM t WHERE a = app.f(b)", Class::Write),
            ("/*!999999 SELECT 1 FROM */ TRUNCATE TABLE t", Class::Write),
            (
                "/*! SELECT '*/' */ ; DELETE FROM t -- '",
                Class::Pin(Pin::MultiStatement),
            ),
            ("SELECT /*!50718 STRAIGHT_JOIN */ 1", READ),
        ];
        for (sql, want) in cases {
            assert_eq!(&classify(sql).0, want, "{sql:?}");
        }
    }

    /// Text made of the pieces lexers disagree on: never a panic, and a
    /// write seen by any server's reading is a write.
    mod any_text {
        use super::super::*;
        use proptest::prelude::*;

        const PIECES: &[&str] = &[
            "SELECT 1 FROM ",
            "TRUNCATE t",
            "/*",
            "*/",
            "/*!",
            "/*M!",
            "/*!999999",
            "/*!40101",
            "/*!5",
            "'",
            "\"",
            "`",
            "\\",
            ";",
            "--",
            "--\x01",
            "#",
            "\n",
            "(",
            ")",
            ".",
            "f",
            "NOW",
            " ",
            "@x",
            ":=",
            "INTO",
            "SET ",
            "NAMES gbk",
            "\u{e9}",
            "\u{FFFD}",
        ];

        /// Readings of servers and sql_modes the proxy may face.
        fn servers() -> Vec<Dialect> {
            let mut v = Vec::new();
            for server in [
                Server::MariaDb(100_000),
                Server::MariaDb(101_119),
                Server::MariaDb(u32::MAX),
                Server::MySql(50_700),
                Server::MySql(80_036),
            ] {
                for (backslash_escapes, ansi_quotes) in
                    [(true, false), (false, false), (true, true)]
                {
                    v.push(Dialect {
                        backslash_escapes,
                        ansi_quotes,
                        server,
                    });
                }
            }
            v
        }

        /// Comment openers: a write right after their end hides in some readings.
        const OPENERS: &[&str] = &[
            "/*",
            "/*!",
            "/*M!",
            "/*!999999",
            "/*M!999999",
            "/*!40101",
            "/*!50700",
            "/*M!100000",
            "/*!80000",
            "--",
            "--\x01",
            "#",
            "'",
            "\"",
            "`",
        ];

        fn check(sql: &str) -> Result<(), TestCaseError> {
            let a = analyze(sql, &Context::default());
            for d in servers() {
                let lexed = lex(sql, d);
                let truncates = statements(&lexed.tokens)
                    .any(|s| matches!(s.first(), Some(Token::Word(w)) if w == "TRUNCATE"));
                prop_assert!(!truncates || a.writes_data, "{:?} under {:?}", sql, d);
            }
            // On a charset that hides quotes, non-ASCII text is a write.
            let gbk = Context {
                unsafe_charset: true,
                ..Context::default()
            };
            let g = analyze(sql, &gbk);
            if !sql.is_ascii() {
                prop_assert_eq!(g.class, Class::Write);
                prop_assert!(g.writes_data);
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn a_write_any_server_would_run_is_a_write(parts in proptest::collection::vec(0..PIECES.len(), 0..24)) {
                let sql: String = parts.iter().map(|&i| PIECES[i]).collect();
                check(&sql)?;
            }

            #[test]
            fn a_write_after_any_comment_is_seen(
                opener in 0..OPENERS.len(),
                inner in proptest::collection::vec(0..PIECES.len(), 0..6),
                closer in 0..OPENERS.len() + 2,
                tail in proptest::collection::vec(0..PIECES.len(), 0..4),
            ) {
                let pieces = |v: &[usize]| v.iter().map(|&i| PIECES[i]).collect::<String>();
                let closer = ["*/", "\n"].get(closer).copied().unwrap_or_else(|| OPENERS[closer - 2]);
                let sql = format!("{}{}{closer} TRUNCATE t{}", OPENERS[opener], pieces(&inner), pieces(&tail));
                check(&sql)?;
            }
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
