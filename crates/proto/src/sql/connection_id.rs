//! `CONNECTION_ID()` as the client knows it. Behind a proxy the server's
//! own answer is the id of whichever backend connection ran the statement,
//! not the id the proxy's handshake gave the client (what `KILL` takes and
//! drivers report), so the proxy puts its own id in the text instead.

use super::lexer::{lex, Dialect, Token};

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
    if !contains_ignore_case(sql.as_bytes(), b"connection_id") {
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
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for range in first {
        out.push_str(&sql[at..range.start]);
        out.push_str(&id.to_string());
        at = range.end;
    }
    out.push_str(&sql[at..]);
    Some(out)
}

/// The byte ranges of `CONNECTION_ID()` calls (name to closing paren) as
/// `dialect` reads `sql`; `None` when the reading is unsure or the
/// statement defines something whose body must keep the call.
fn calls(sql: &str, dialect: Dialect) -> Option<Vec<std::ops::Range<usize>>> {
    let lexed = lex(sql, dialect);
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
        ),
        Token::Var(v) => v.ends_with("PSEUDO_THREAD_ID"),
        _ => false,
    });
    if keeps_server_ids {
        return None;
    }
    let mut out = Vec::new();
    for i in 0..t.len() {
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
            out.push(name.start..close.end);
        }
    }
    Some(out)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::replace_connection_id as r;

    #[test]
    fn calls_are_replaced_and_nothing_else() {
        assert_eq!(r("SELECT CONNECTION_ID()", 7).as_deref(), Some("SELECT 7"));
        assert_eq!(r("kill connection_id ( )", 12).as_deref(), Some("kill 12"));
        assert_eq!(
            r(
                "SELECT connection_id(), 'connection_id()' /* connection_id() */",
                3
            )
            .as_deref(),
            Some("SELECT 3, 'connection_id()' /* connection_id() */")
        );
        assert_eq!(
            r("SELECT /*!100000 CONNECTION_ID() */", 5).as_deref(),
            Some("SELECT /*!100000 5 */")
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
        assert_eq!(r("SELECT 'a\\' , CONNECTION_ID(), '", 1), None);
        assert_eq!(
            r("SELECT \"x\", CONNECTION_ID()", 9).as_deref(),
            Some("SELECT \"x\", 9")
        );
    }

    proptest::proptest! {
        /// Any text: no panic, and what is replaced was a call.
        #[test]
        fn any_text(prefix in "\\PC{0,40}", suffix in "\\PC{0,40}", call in "(?i)connection_id ?\\( ?\\)") {
            let sql = format!("{prefix}{call}{suffix}");
            if let Some(out) = r(&sql, 4242) {
                proptest::prop_assert!(out.contains("4242"));
                proptest::prop_assert!(out.len() < sql.len() + 4);
            }
            let _ = r(&prefix, 1);
        }
    }
}
