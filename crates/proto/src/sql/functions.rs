//! Which `name(` in a statement calls a stored function: MariaDB's
//! built-ins (`builtins.txt`, checked against the server in CI) cannot
//! write, a stored function can. Anything not known to be a built-in or
//! grammar is taken for a stored-function call: the safe side.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::classify::Context;
use super::lexer::Token;

/// Where a built-in name is still the built-in when followed by `(`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Forms {
    /// `NAME(`: no space between.
    adjacent: bool,
    /// `NAME (`: with a space or comment between.
    spaced: bool,
    /// `` `NAME`( ``: quoted.
    quoted: bool,
}

fn builtins() -> &'static HashMap<&'static str, Forms> {
    static MAP: OnceLock<HashMap<&'static str, Forms>> = OnceLock::new();
    MAP.get_or_init(|| {
        include_str!("builtins.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, flags) = l.split_once(' ')?;
                Some((
                    name,
                    Forms {
                        adjacent: flags.contains('a'),
                        spaced: flags.contains('s'),
                        quoted: flags.contains('q'),
                    },
                ))
            })
            .collect()
    })
}

/// Every built-in function name the classifier knows, with its forms as
/// written in `builtins.txt` (`asq`), for the test against the server.
pub fn builtin_names() -> Vec<(&'static str, bool, bool, bool)> {
    let mut v: Vec<_> = builtins()
        .iter()
        .map(|(n, f)| (*n, f.adjacent, f.spaced, f.quoted))
        .collect();
    v.sort_unstable();
    v
}

/// Stored functions that statement `t` calls and that `ctx` does not list
/// as read-only, as written (`F`, `DB.F`; upper-cased).
pub fn stored_calls(t: &[Token], ctx: &Context) -> Vec<String> {
    let mut calls = Vec::new();
    // Which `(`s are JSON_TABLE's, inside which COLUMNS( is grammar.
    let mut json_table: Vec<bool> = Vec::new();
    // Tokens the CTE look-ahead may scan in all: bounded, so no text costs
    // more than a few linear passes (past it, a column list is taken for a call).
    let mut budget = 4 * t.len().min(1 << 16);
    for (i, tok) in t.iter().enumerate() {
        let adjacent = match tok {
            Token::Open { adjacent } => *adjacent,
            Token::Close => {
                json_table.pop();
                continue;
            }
            _ => continue,
        };
        let name = match i.checked_sub(1).map(|p| &t[p]) {
            Some(Token::Word(w)) => Some((w.as_str(), false)),
            Some(Token::Quoted(q)) => Some((q.as_str(), true)),
            // `1f()` or `db.123()`: a name that starts with a digit (a bare
            // number before `(` is no SQL).
            Some(Token::Number(n))
                if !n.bytes().all(|b| b.is_ascii_digit()) || (i >= 2 && t[i - 2] == Token::Dot) =>
            {
                Some((n.as_str(), true))
            }
            _ => None,
        };
        let Some((name, quoted)) = name else {
            json_table.push(false);
            continue;
        };
        let upper = name.to_ascii_uppercase();
        let qualified = i >= 2 && t[i - 2] == Token::Dot;
        let in_json_table = json_table.last() == Some(&true);
        let from_clause =
            i >= 2 && matches!(&t[i - 2], Token::Word(w) if w == "FROM" || w == "JOIN");
        json_table
            .push((upper == "JSON_TABLE" && from_clause) || (upper == "COLUMNS" && in_json_table));
        if qualified {
            let schema = match t.get(i.wrapping_sub(3)) {
                Some(Token::Word(w)) => w.clone(),
                Some(Token::Quoted(q)) => q.to_ascii_uppercase(),
                _ => String::new(),
            };
            let full = format!("{schema}.{upper}");
            if !listed(ctx, &full, &upper) {
                calls.push(full);
            }
            continue;
        }
        let builtin = builtins().get(upper.as_str()).is_some_and(|f| {
            if quoted {
                f.quoted
            } else if adjacent {
                f.adjacent
            } else {
                f.spaced
            }
        });
        if builtin || (!quoted && grammar(t, i, &upper, in_json_table, &mut budget)) {
            continue;
        }
        let full = ctx
            .schema
            .map(|db| format!("{}.{upper}", db.to_ascii_uppercase()));
        if !listed(ctx, full.as_deref().unwrap_or(&upper), &upper) {
            calls.push(upper);
        }
    }
    calls
}

/// `name(` at `t[i]` that is syntax rather than a call: JSON_TABLE and its
/// COLUMNS, MATCH ... AGAINST (...), a CTE's column list
/// (`WITH c (a, b) AS (...)`).
fn grammar(t: &[Token], i: usize, name: &str, in_json_table: bool, budget: &mut usize) -> bool {
    match name {
        // JSON_TABLE is a table: after FROM or JOIN; elsewhere `json_table(`
        // reaches a stored function.
        "JSON_TABLE" => {
            return i >= 2 && matches!(&t[i - 2], Token::Word(w) if w == "FROM" || w == "JOIN")
        }
        "COLUMNS" if in_json_table => return true,
        "AGAINST" if i >= 2 && t[i - 2] == Token::Close => return true,
        _ => {}
    }
    // A CTE column list: the name follows WITH, RECURSIVE or a `,` after a
    // CTE, and its `)` is followed by `AS (`.
    let before = i.checked_sub(2).map(|p| &t[p]);
    let after_with = matches!(before, Some(Token::Word(w)) if w == "WITH" || w == "RECURSIVE")
        || (matches!(before, Some(Token::Other))
            && t.iter().take(i).any(|x| *x == Token::Word("WITH".into())));
    if !after_with {
        return false;
    }
    let mut depth = 0usize;
    for (j, tok) in t.iter().enumerate().skip(i) {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match tok {
            Token::Open { .. } => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return matches!(t.get(j + 1), Some(Token::Word(w)) if w == "AS")
                        && matches!(t.get(j + 2), Some(Token::Open { .. }));
                }
            }
            _ => {}
        }
    }
    false
}

fn listed(ctx: &Context, full: &str, bare: &str) -> bool {
    ctx.read_only_functions.iter().any(|f| {
        let f = f.to_ascii_uppercase();
        f == full || (!f.contains('.') && f == bare)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lexer::{lex, Dialect};

    fn calls(sql: &str) -> Vec<String> {
        calls_with(sql, &[])
    }

    fn calls_with(sql: &str, allowed: &[&str]) -> Vec<String> {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let ctx = Context {
            read_only_functions: &allowed,
            ..Context::default()
        };
        stored_calls(&lex(sql, Dialect::default()).tokens, &ctx)
    }

    #[test]
    fn builtins_are_not_stored_calls() {
        assert!(calls("SELECT NOW(), COUNT(*), ABS(-1), CONCAT('a', 'b') FROM t").is_empty());
        assert!(calls("SELECT CAST(a AS DECIMAL(10, 2)), CHAR(65 USING utf8)").is_empty());
        assert!(calls("SELECT * FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1)").is_empty());
        assert!(calls("SELECT ROW_NUMBER() OVER (PARTITION BY a) FROM t USE INDEX (i)").is_empty());
        assert!(calls("SELECT REPLACE('a', 'b', 'c'), INSERT('abc', 1, 1, 'x')").is_empty());
        assert!(calls("SELECT ABS (1), `ABS`(1)").is_empty());
    }

    #[test]
    fn other_names_are_stored_calls() {
        assert_eq!(calls("SELECT f()"), ["F"]);
        assert_eq!(calls("SELECT app.f(1)"), ["APP.F"]);
        assert_eq!(calls("SELECT `app`.`abs`(1)"), ["APP.ABS"]);
        // NOW is a built-in only right before its `(`.
        assert_eq!(calls("SELECT now ()"), ["NOW"]);
        assert_eq!(calls("SELECT `now`()"), ["NOW"]);
        assert_eq!(calls("SELECT 1 FROM t WHERE a = my_func(b)"), ["MY_FUNC"]);
    }

    #[test]
    fn listed_functions_are_allowed() {
        assert!(calls_with("SELECT f(1), app.g(2)", &["f", "APP.G"]).is_empty());
        assert_eq!(calls_with("SELECT other.f(1)", &["app.f"]), ["OTHER.F"]);
        assert!(calls_with("SELECT other.f(1)", &["f"]).is_empty());
        // An unqualified call is the current schema's.
        let allowed = ["app.f".to_string()];
        let in_app = Context {
            read_only_functions: &allowed,
            schema: Some("app"),
            ..Context::default()
        };
        let t = lex("SELECT f(1)", Dialect::default()).tokens;
        assert!(stored_calls(&t, &in_app).is_empty());
        let in_other = Context {
            schema: Some("other"),
            ..in_app
        };
        assert_eq!(stored_calls(&t, &in_other), ["F"]);
        assert_eq!(
            stored_calls(
                &t,
                &Context {
                    schema: None,
                    ..in_app
                }
            ),
            ["F"]
        );
    }

    #[test]
    fn grammar_that_looks_like_a_call() {
        assert!(calls(
            "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (a INT PATH '$', NESTED PATH '$' COLUMNS (b INT PATH '$'))) AS j"
        )
        .is_empty());
        assert!(calls("SELECT * FROM t WHERE MATCH (a) AGAINST ('x' IN BOOLEAN MODE)").is_empty());
        assert!(calls("WITH c (a, b) AS (SELECT 1, 2) SELECT * FROM c").is_empty());
        assert!(calls("WITH x AS (SELECT 1), c (a) AS (SELECT 2) SELECT * FROM c").is_empty());
        // Outside JSON_TABLE, COLUMNS( is a call.
        assert_eq!(calls("SELECT columns(1)"), ["COLUMNS"]);
        assert_eq!(calls("SELECT json_table(1)"), ["JSON_TABLE"]);
        assert_eq!(calls("SELECT 1f()"), ["1F"]);
        assert_eq!(calls("SELECT app.123()"), ["APP.123"]);
        assert!(calls("SELECT 1 + (2)").is_empty());
    }

    /// A CTE-shaped text as long as a packet costs a bounded scan (it was
    /// quadratic: 38 s for 96 KB).
    #[test]
    fn many_cte_like_names_cost_a_bounded_scan() {
        let sql = format!("WITH {}", ",f(".repeat(200_000));
        let t = lex(&sql, Dialect::default()).tokens;
        assert!(!stored_calls(&t, &Context::default()).is_empty());
    }
}
