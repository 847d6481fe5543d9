//! `CONNECTION_ID()` as the client knows it. Behind a proxy the server's
//! own answer is the id of whichever backend connection ran the statement,
//! not the id the proxy's handshake gave the client (what `KILL` takes and
//! drivers report), so the proxy puts its own id in the text instead.

use super::lexer::{lex_spanned, Dialect, Token};

/// `sql` with each call of `CONNECTION_ID()` replaced by `id`, or `None`
/// when there is none to replace. Fails closed towards the server's own
/// answer: nothing is replaced when the text reads differently under the
/// sql_modes that change quoting (NO_BACKSLASH_ESCAPES, ANSI_QUOTES), or in
/// a `CREATE`/`ALTER` (a view's, routine's, trigger's or event's body must
/// keep the call: it runs later, in other sessions), or beside something
/// that yields the server's own thread ids (`IS_USED_LOCK(..) =
/// CONNECTION_ID()`, `PROCESSLIST WHERE ID = CONNECTION_ID()`): within one
/// statement those must keep agreeing.
pub fn replace_connection_id(sql: &str, id: u32) -> Option<String> {
    if !super::Mentions::of(sql.as_bytes()).connection_id {
        return None;
    }
    let base = Dialect::default();
    let readings = [
        base,
        Dialect {
            backslash_escapes: false,
            ..base
        },
        Dialect {
            ansi_quotes: true,
            ..base
        },
    ];
    let mut calls = readings.iter().map(|&d| calls(sql, d));
    let first = calls.next()??;
    if calls.any(|c| c.as_ref() != Some(&first)) || first.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len() + 32);
    let mut at = 0;
    for Call { range, select_item } in first {
        out.push_str(&sql[at..range.start]);
        // In parentheses, so it never runs into what follows (`(12)e1`,
        // not `12e1`); a select item keeps its column name.
        out.push_str(&format!("({id})"));
        if select_item {
            let name = sql[range.clone()].replace('`', "``");
            out.push_str(&format!(" AS `{name}`"));
        }
        at = range.end;
    }
    out.push_str(&sql[at..]);
    Some(out)
}

/// One `CONNECTION_ID()` call: where, and whether it is a whole select
/// item with no alias of its own (its column is named after its text).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Call {
    range: std::ops::Range<usize>,
    select_item: bool,
}

/// The byte ranges of `CONNECTION_ID()` calls (name to closing paren) as
/// `dialect` reads `sql`; `None` when the reading is unsure or the
/// statement defines something whose body must keep the call.
fn calls(sql: &str, dialect: Dialect) -> Option<Vec<Call>> {
    let lexed = lex_spanned(sql, dialect);
    if lexed.unsure.is_some() {
        return None;
    }
    let t = &lexed.tokens;
    let keeps_server_ids = t.iter().any(|tok| match tok {
        Token::Word(w) => matches!(
            w.as_str(),
            "CREATE"
                | "ALTER"
                | "IS_USED_LOCK"
                | "PROCESSLIST"
                | "PROCESSLIST_ID"
                | "THREAD_ID"
                | "THREADS"
                | "INNODB_TRX"
                | "METADATA_LOCK_INFO"
                | "PSEUDO_THREAD_ID"
                | "PS_THREAD_ID"
                | "PS_CURRENT_THREAD_ID"
                | "CONN_ID"
        ),
        Token::Var(v) => v.ends_with("PSEUDO_THREAD_ID"),
        _ => false,
    });
    if keeps_server_ids {
        return None;
    }
    // `sys.session` and friends list server thread ids too.
    let sys_view = t
        .windows(2)
        .any(|w| matches!(&w[0], Token::Dot) && matches!(&w[1], Token::Word(v) if v == "SESSION"));
    if sys_view {
        return None;
    }
    let text = |i: usize| lexed.spans.get(i).and_then(|r| sql.get(r.clone()));
    let comma = |i: usize| matches!(t.get(i), Some(Token::Other)) && text(i) == Some(",");
    // The paren depth of each token, and of the select list it is in.
    let mut depth = 0usize;
    let mut lists: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for i in 0..t.len() {
        match &t[i] {
            Token::Open { .. } => depth += 1,
            Token::Close => {
                depth = depth.saturating_sub(1);
                lists.retain(|&d| d <= depth);
            }
            Token::Word(w) if w == "SELECT" => lists.push(depth),
            Token::Word(w) if ENDS_SELECT_LIST.contains(&w.as_str()) => {
                lists.retain(|&d| d < depth)
            }
            Token::Semicolon => lists.clear(),
            _ => {}
        }
        let is_call = matches!(&t[i], Token::Word(w) if w == "CONNECTION_ID")
            && matches!(t.get(i + 1), Some(Token::Open { .. }))
            && matches!(t.get(i + 2), Some(Token::Close))
            // `db.connection_id()` is a stored function of that name.
            && !matches!(i.checked_sub(1).and_then(|p| t.get(p)), Some(Token::Dot));
        if is_call {
            let (name, close) = (lexed.spans.get(i)?, lexed.spans.get(i + 2)?);
            // Inside an executable comment a token's span is exact too;
            // anything else (a span that is not the name) is not replaced.
            if !sql.get(name.clone())?.eq_ignore_ascii_case("connection_id") {
                return None;
            }
            let in_list = lists.last() == Some(&depth);
            let after_start = i.checked_sub(1).is_some_and(|p| {
                comma(p) || matches!(&t[p], Token::Word(w) if matches!(w.as_str(), "SELECT" | "DISTINCT" | "ALL"))
            });
            let before_end = match t.get(i + 3) {
                None | Some(Token::Semicolon) => true,
                Some(Token::Word(w)) => ENDS_SELECT_LIST.contains(&w.as_str()),
                Some(_) => comma(i + 3),
            };
            out.push(Call {
                range: name.start..close.end,
                select_item: in_list && after_start && before_end,
            });
        }
    }
    Some(out)
}

/// Words that end a select list at its own depth.
const ENDS_SELECT_LIST: &[&str] = &[
    "FROM",
    "INTO",
    "WHERE",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "GROUP",
    "HAVING",
    "ORDER",
    "LIMIT",
    "WINDOW",
    "FOR",
    "LOCK",
    "PROCEDURE",
];

#[cfg(test)]
mod tests {
    use super::replace_connection_id as r;

    #[test]
    fn calls_are_replaced_and_nothing_else() {
        assert_eq!(
            r("SELECT CONNECTION_ID()", 7).as_deref(),
            Some("SELECT (7) AS `CONNECTION_ID()`")
        );
        assert_eq!(
            r("kill connection_id ( )", 12).as_deref(),
            Some("kill (12)")
        );
        assert_eq!(
            r(
                "SELECT connection_id(), 'connection_id()' /* connection_id() */",
                3
            )
            .as_deref(),
            Some("SELECT (3) AS `connection_id()`, 'connection_id()' /* connection_id() */")
        );
        assert_eq!(
            r("SELECT /*!100000 CONNECTION_ID() */", 5).as_deref(),
            Some("SELECT /*!100000 (5) AS `CONNECTION_ID()` */")
        );
        assert_eq!(r("SELECT 1", 1), None);
        assert_eq!(r("SELECT `connection_id`()", 1), None);
        assert_eq!(r("SELECT app.connection_id()", 1), None);
        assert_eq!(r("SELECT connection_id", 1), None);
        // Definitions keep the call; so does a text read two ways.
        assert_eq!(r("CREATE VIEW v AS SELECT CONNECTION_ID()", 1), None);
        assert_eq!(r("SELECT IS_USED_LOCK('l') = CONNECTION_ID()", 1), None);
        assert_eq!(
            r(
                "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
                1
            ),
            None
        );
        assert_eq!(r("SELECT @@pseudo_thread_id = CONNECTION_ID()", 1), None);
        assert_eq!(r("SELECT sys.ps_thread_id(CONNECTION_ID())", 1), None);
        assert_eq!(
            r(
                "SELECT * FROM sys.session WHERE conn_id = CONNECTION_ID()",
                1
            ),
            None
        );
        assert_eq!(r("SELECT 'a\\' , CONNECTION_ID(), '", 1), None);
        assert_eq!(
            r("SELECT \"x\", CONNECTION_ID()", 9).as_deref(),
            Some("SELECT \"x\", (9) AS `CONNECTION_ID()`")
        );
    }

    #[test]
    fn only_whole_select_items_get_a_column_name() {
        let cases = [
            ("SELECT CONNECTION_ID() AS cid", "SELECT (4) AS cid"),
            ("SELECT CONNECTION_ID()e1", "SELECT (4)e1"),
            ("SELECT CONNECTION_ID()IN(1,2)", "SELECT (4)IN(1,2)"),
            ("SELECT IF(1, CONNECTION_ID(), 0)", "SELECT IF(1, (4), 0)"),
            ("SELECT CONNECTION_ID() + 1", "SELECT (4) + 1"),
            (
                "SELECT a, CONNECTION_ID() FROM t WHERE b = CONNECTION_ID()",
                "SELECT a, (4) AS `CONNECTION_ID()` FROM t WHERE b = (4)",
            ),
            (
                "INSERT INTO t VALUES (CONNECTION_ID(), 2)",
                "INSERT INTO t VALUES ((4), 2)",
            ),
            // A subquery's column name is not the client's.
            (
                "SELECT (SELECT CONNECTION_ID()) AS x",
                "SELECT (SELECT (4)) AS x",
            ),
            (
                "SELECT DISTINCT CONNECTION_ID(); SELECT CONNECTION_ID()",
                "SELECT DISTINCT (4) AS `CONNECTION_ID()`; SELECT (4) AS `CONNECTION_ID()`",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(r(sql, 4).as_deref(), Some(want), "{sql}");
        }
    }

    proptest::proptest! {
        /// Any text: no panic, and what is replaced was a call.
        #[test]
        fn any_text(prefix in "\\PC{0,40}", suffix in "\\PC{0,40}", call in "(?i)connection_id ?\\( ?\\)") {
            let sql = format!("{prefix}{call}{suffix}");
            if let Some(out) = r(&sql, 4242) {
                proptest::prop_assert!(out.contains("4242"));
                proptest::prop_assert!(out.len() < sql.len() + 40);
            }
            let _ = r(&prefix, 1);
        }
    }
}
