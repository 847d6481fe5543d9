//! A tokenizer just deep enough for classification: words, a few symbols,
//! and the hints found in comments. String literals are skipped (their
//! contents never look like keywords).
//!
//! It reads text as MariaDB's own lexer does wherever that decides what
//! runs: which comments are executable (`/*!`, `/*M!`, version-gated), where
//! an executable comment ends (never inside a string of its own), what
//! starts a `--` comment (a space or any control character after it),
//! which bytes are white space. Where the server's reading depends on
//! something the proxy does not know (the server's version, sql_mode), the
//! caller lexes once per possibility ([`Dialect`]) and compares. Where even
//! that is not enough (an executable comment nested in another), the result
//! says [`Lexed::unsure`] and the caller fails closed.

use super::hint::Hint;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A keyword or identifier, upper-cased (ASCII).
    Word(String),
    /// A quoted identifier: `name`; kept for `USE `db``.
    Quoted(String),
    /// `;` between statements.
    Semicolon,
    /// `:=`, a session-variable assignment inside an expression.
    Assign,
    /// `@name` or `@@name`.
    Var(String),
    /// A number, as written.
    Number(String),
    /// A string literal's text between its quotes, as written (escapes
    /// are not undone): enough for `SET NAMES 'utf8mb4'`.
    Str(String),
    /// `(`: a call or a subquery follows. `adjacent`: right after the
    /// previous token, with no space or comment between (MariaDB reads
    /// `NOW()` as the built-in and `NOW ()` as a stored function).
    Open { adjacent: bool },
    /// `)`.
    Close,
    /// `.` between qualified names (`db.f()` is always a stored function).
    Dot,
    /// Anything else: punctuation, string literals.
    Other,
}

/// How the server reads the text: what the proxy cannot see from the
/// statement alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// MariaDB's default; false reads strings as the server does under
    /// sql_mode NO_BACKSLASH_ESCAPES (`'a\'` is a whole string).
    pub backslash_escapes: bool,
    /// sql_mode ANSI_QUOTES: `"..."` is a quoted name, where a backslash
    /// escapes nothing.
    pub ansi_quotes: bool,
    /// Which server, of which version, decides version-gated comments.
    pub server: Server,
}

/// The server whose version gates `/*!NNNNN ... */` comments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// MariaDB runs `/*!v` when v ≤ its version, except MySQL 5.7+'s
    /// versions 50700–99999, and `/*M!v` when v ≤ its version.
    MariaDb(u32),
    /// MySQL runs `/*!v` when v ≤ its version; `/*M!` is a plain comment.
    MySql(u32),
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            backslash_escapes: true,
            ansi_quotes: false,
            server: Server::MariaDb(u32::MAX),
        }
    }
}

/// What lexing a text found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lexed {
    pub tokens: Vec<Token>,
    /// Each token's byte range in the text (`spans[i]` for `tokens[i]`),
    /// from [`lex_spanned`] only.
    pub spans: Vec<std::ops::Range<usize>>,
    pub hints: Vec<Hint>,
    /// Why this reading may not be the server's (the caller treats the
    /// text as a write), or `None`.
    pub unsure: Option<&'static str>,
}

/// Tokens of `sql` as the server described by `dialect` reads it.
pub fn lex(sql: &str, dialect: Dialect) -> Lexed {
    lex_inner(sql, dialect, false)
}

/// [`lex`], with each token's byte range in [`Lexed::spans`] (for a
/// caller that edits the text; the classifier's hot path needs none).
pub fn lex_spanned(sql: &str, dialect: Dialect) -> Lexed {
    lex_inner(sql, dialect, true)
}

fn lex_inner(sql: &str, dialect: Dialect, spans: bool) -> Lexed {
    let b = sql.as_bytes();
    let mut out = Lexed::default();
    let mut i = 0;
    // Inside an executable comment that runs: its `*/` ends it.
    let mut in_exec = false;
    // Where the previous token ended, for `Open { adjacent }`.
    let mut last_end = usize::MAX;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let pushed = out.tokens.len();
        match c {
            0x09..=0x0d | b' ' => i += 1,
            b'#' => i = skip_line(b, i),
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2).is_none_or(|&c| c <= b' ' || c == 0x7f) =>
            {
                i = skip_line(b, i)
            }
            b'*' if in_exec && b.get(i + 1) == Some(&b'/') => {
                in_exec = false;
                i += 2;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (next, exec) = comment(sql, i, dialect, in_exec, &mut out);
                i = next;
                if exec {
                    in_exec = true;
                }
            }
            b'\'' => {
                i = skip_quoted(b, i, c, dialect.backslash_escapes);
                out.tokens.push(string_token(sql, start, i, c));
            }
            b'"' if !dialect.ansi_quotes => {
                i = skip_quoted(b, i, c, dialect.backslash_escapes);
                out.tokens.push(string_token(sql, start, i, c));
            }
            b'`' | b'"' => {
                let end = skip_quoted(b, i, c, false);
                // Unterminated, the name runs to the end of the input (whose
                // last byte may be inside a multi-byte character).
                let close = if end > i + 1 && b[end - 1] == c {
                    end - 1
                } else {
                    end
                };
                let inner = &sql[i + 1..close];
                let doubled = if c == b'`' { "``" } else { "\"\"" };
                out.tokens
                    .push(Token::Quoted(inner.replace(doubled, &doubled[..1])));
                i = end;
            }
            b';' => {
                out.tokens.push(Token::Semicolon);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                out.tokens.push(Token::Assign);
                i += 2;
            }
            b'@' => {
                i += 1;
                if b.get(i) == Some(&b'@') {
                    i += 1;
                }
                if matches!(b.get(i), Some(b'\'' | b'"' | b'`')) {
                    i = skip_quoted(b, i, b[i], dialect.backslash_escapes && b[i] != b'`');
                } else {
                    while i < b.len() && is_word_byte(b[i]) || b.get(i) == Some(&b'.') {
                        i += 1;
                    }
                }
                out.tokens
                    .push(Token::Var(sql[start..i].to_ascii_uppercase()));
            }
            _ if is_word_byte(c) => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                let word = &sql[start..i];
                if word.as_bytes()[0].is_ascii_digit() {
                    out.tokens.push(Token::Number(word.to_owned()));
                } else {
                    out.tokens.push(Token::Word(word.to_ascii_uppercase()));
                }
            }
            b'(' => {
                let adjacent = last_end == i
                    && matches!(out.tokens.last(), Some(Token::Word(_) | Token::Quoted(_)));
                out.tokens.push(Token::Open { adjacent });
                i += 1;
            }
            b')' => {
                out.tokens.push(Token::Close);
                i += 1;
            }
            b'.' => {
                out.tokens.push(Token::Dot);
                i += 1;
            }
            _ => {
                out.tokens.push(Token::Other);
                // Step over a whole UTF-8 character, not one byte of it.
                i += 1;
                while i < b.len() && (b[i] & 0xC0) == 0x80 {
                    i += 1;
                }
            }
        }
        if out.tokens.len() > pushed {
            last_end = i;
            if spans {
                out.spans.resize(out.tokens.len(), start..i);
            }
        }
    }
    if in_exec {
        out.unsure
            .get_or_insert("an executable comment is not closed");
    }
    out
}

/// A comment starting at `i` (`/*`). Returns where lexing goes on and
/// whether an executable comment starts there whose text runs.
fn comment(sql: &str, i: usize, dialect: Dialect, in_exec: bool, out: &mut Lexed) -> (usize, bool) {
    let b = sql.as_bytes();
    let mut p = i + 2;
    let mariadb_marker = b.get(p) == Some(&b'M') && b.get(p + 1) == Some(&b'!');
    if mariadb_marker {
        p += 1;
    }
    if b.get(p) != Some(&b'!') {
        // A plain comment: the first `*/` ends it; it may carry a hint.
        let end = find(b, i + 2, b"*/").unwrap_or(b.len());
        if let Some(hint) = Hint::parse(&sql[i + 2..end]) {
            out.hints.push(hint);
        }
        return ((end + 2).min(b.len()), false);
    }
    // `/*!mycat:db_type=master*/`: a routing hint, not code.
    let plain_end = find(b, i + 2, b"*/").unwrap_or(b.len());
    if let Some(hint) = Hint::parse(&sql[i + 2..plain_end]) {
        out.hints.push(hint);
        return ((plain_end + 2).min(b.len()), false);
    }
    if in_exec {
        // MariaDB reads an executable comment inside a running one in ways
        // of its own; nothing here claims to know them.
        out.unsure
            .get_or_insert("an executable comment inside an executable comment");
        return ((plain_end + 2).min(b.len()), false);
    }
    p += 1;
    let digits = b[p..]
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits < 5 {
        // Not a version: the text always runs (digits included).
        if mariadb_marker && matches!(dialect.server, Server::MySql(_)) {
            return ((plain_end + 2).min(b.len()), false);
        }
        return (p, true);
    }
    let version: u32 = sql[p..p + digits].parse().unwrap_or(u32::MAX);
    let runs = match dialect.server {
        Server::MariaDb(v) => {
            version <= v && (mariadb_marker || !(50700..=99999).contains(&version))
        }
        Server::MySql(v) => !mariadb_marker && version <= v,
    };
    if runs {
        return (p + digits, true);
    }
    if mariadb_marker && matches!(dialect.server, Server::MySql(_)) {
        return ((plain_end + 2).min(b.len()), false);
    }
    (skip_gated(b, p + digits), false)
}

/// Past a version-gated comment the server skips: the first `*/` ends it
/// (quotes mean nothing here), but one nested `/* ... */` may sit inside.
fn skip_gated(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i = find(b, i + 2, b"*/").map_or(b.len(), |e| e + 2);
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            return i + 2;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Every version of a version-gated comment in `sql` (`/*!NNNNN`,
/// `/*M!NNNNNN`), found in the raw text so that comments inside skipped
/// ones count too: the versions at which the server's reading can change.
pub fn gate_versions(sql: &str) -> Vec<u32> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = find(b, from, b"/*") {
        let mut p = at + 2;
        if b.get(p) == Some(&b'M') {
            p += 1;
        }
        if b.get(p) == Some(&b'!') {
            let digits = &b[p + 1..];
            let n = digits
                .iter()
                .take(6)
                .take_while(|c| c.is_ascii_digit())
                .count();
            if n >= 5 {
                if let Ok(v) = sql[p + 1..p + 1 + n].parse::<u32>() {
                    out.push(v);
                }
            }
        }
        from = at + 2;
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The string literal `sql[start..end]` (quotes included, or unterminated).
fn string_token(sql: &str, start: usize, end: usize, quote: u8) -> Token {
    let b = sql.as_bytes();
    let close = if end > start + 1 && b[end - 1] == quote {
        end - 1
    } else {
        end
    };
    Token::Str(sql.get(start + 1..close).unwrap_or_default().to_owned())
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn skip_line(b: &[u8], i: usize) -> usize {
    find(b, i, b"\n").map_or(b.len(), |n| n + 1)
}

/// Index just past the closing `quote` (doubled quotes and, with
/// `backslash_escapes`, backslash escapes stay inside), or the end of input.
fn skip_quoted(b: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && backslash_escapes {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_default(sql: &str) -> Lexed {
        lex(sql, Dialect::default())
    }

    fn words_in(sql: &str, dialect: Dialect) -> Vec<String> {
        lex(sql, dialect)
            .tokens
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w),
                Token::Number(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn words(sql: &str) -> Vec<String> {
        words_in(sql, Dialect::default())
    }

    fn mariadb(version: u32) -> Dialect {
        Dialect {
            server: Server::MariaDb(version),
            ..Dialect::default()
        }
    }

    #[test]
    fn comments_and_literals_hide_their_contents() {
        assert_eq!(
            words("select 'update' , \"delete\" -- insert\n from t # drop\n"),
            ["SELECT", "FROM", "T"]
        );
        assert_eq!(words("/* for update */ select 1"), ["SELECT", "1"]);
        assert_eq!(
            words(r"select 'it\'s for update' from t"),
            ["SELECT", "FROM", "T"]
        );
        assert_eq!(words("select 'a''b' x"), ["SELECT", "X"]);
    }

    #[test]
    fn executable_comments_are_code() {
        assert_eq!(
            words("/*!40101 SET NAMES utf8 */"),
            ["SET", "NAMES", "UTF8"]
        );
        assert_eq!(words("/*! SELECT 1 */"), ["SELECT", "1"]);
        // Fewer than five digits are no version: they run as code.
        assert_eq!(words("SELECT 1 /*!1 , 2 */"), ["SELECT", "1", "1", "2"]);
    }

    /// MariaDB ends an executable comment at a `*/` outside its strings:
    /// `/*! SELECT '*/' */ ; DELETE FROM t -- '` runs the DELETE.
    #[test]
    fn a_string_inside_an_executable_comment_does_not_end_it() {
        assert_eq!(
            words("/*! SELECT '*/' */ ; DELETE FROM t -- '"),
            ["SELECT", "DELETE", "FROM", "T"]
        );
    }

    /// `/*!999999 SELECT 1 FROM */ TRUNCATE TABLE t`: the server skips the
    /// comment (its version is above the server's) and truncates.
    #[test]
    fn version_gated_comments_follow_the_servers_version() {
        let sql = "/*!999999 SELECT 1 FROM */ TRUNCATE TABLE t";
        assert_eq!(words_in(sql, mariadb(101119)), ["TRUNCATE", "TABLE", "T"]);
        assert_eq!(
            words_in(sql, mariadb(999999)),
            ["SELECT", "1", "FROM", "TRUNCATE", "TABLE", "T"]
        );
        // MySQL 5.7+'s versions are skipped by MariaDB, /*M! ones are not.
        assert_eq!(
            words_in("SELECT /*!80000 x */ 1", mariadb(101119)),
            ["SELECT", "1"]
        );
        assert_eq!(
            words_in("SELECT /*M!080000 x */ 1", mariadb(101119)),
            ["SELECT", "X", "1"]
        );
        let mysql = Dialect {
            server: Server::MySql(80036),
            ..Dialect::default()
        };
        assert_eq!(words_in("SELECT /*M!100000 x */ 1", mysql), ["SELECT", "1"]);
        assert_eq!(
            words_in("SELECT /*!80000 x */ 1", mysql),
            ["SELECT", "X", "1"]
        );
    }

    /// A skipped gated comment ends at its first `*/`, quotes or not, but
    /// may hold one nested comment.
    #[test]
    fn a_skipped_comment_ends_as_the_server_ends_it() {
        let old = mariadb(100000);
        // The server: `SELECT 1 ' , 3 */, 4` (an unterminated string).
        assert_eq!(
            words_in("SELECT 1 /*!999999 , '*/' , 3 */, 4", old),
            ["SELECT", "1"]
        );
        assert_eq!(
            words_in("SELECT 1 /*!999999 /* , 2 */ , 3 */, 4", old),
            ["SELECT", "1", "4"]
        );
    }

    #[test]
    fn nested_executable_comments_are_unsure() {
        assert!(lex_default("SELECT 1 /*! , 2 /*! , 3 */ , 4 */")
            .unsure
            .is_some());
        assert!(lex_default("SELECT 1 /*! , 2").unsure.is_some());
        assert!(lex_default("SELECT 1 /*! , 2 /* , 3 */ , 4 */")
            .unsure
            .is_none());
    }

    /// MariaDB starts a `--` comment before a space or any control
    /// character, and takes VT as white space.
    #[test]
    fn double_dash_before_a_control_character_is_a_comment() {
        for sep in ["\x01", "\x0b", "\x7f", "\t"] {
            assert_eq!(
                words(&format!("SELECT 1 --{sep}x, 2")),
                ["SELECT", "1"],
                "{sep:?}"
            );
        }
        assert_eq!(words("SELECT 1 --x"), ["SELECT", "1", "X"]);
        assert_eq!(words("SELECT 1 --"), ["SELECT", "1"]);
        assert_eq!(words("SELECT\x0b1"), ["SELECT", "1"]);
    }

    #[test]
    fn ansi_quotes_make_double_quotes_names_without_escapes() {
        let ansi = Dialect {
            ansi_quotes: true,
            ..Dialect::default()
        };
        assert_eq!(
            words_in(r#"SELECT "a\"; DELETE FROM t; -- ""#, ansi),
            ["SELECT", "DELETE", "FROM", "T"]
        );
        assert_eq!(words(r#"SELECT "a\"; DELETE FROM t; -- ""#), ["SELECT"]);
    }

    #[test]
    fn open_knows_whether_it_touches_the_name() {
        let opens: Vec<bool> = lex_default("SELECT now(), now (), `f`(), f/**/(), (1)")
            .tokens
            .into_iter()
            .filter_map(|t| match t {
                Token::Open { adjacent } => Some(adjacent),
                _ => None,
            })
            .collect();
        assert_eq!(opens, [true, false, true, false, false]);
    }

    #[test]
    fn gate_versions_are_found_anywhere() {
        assert_eq!(
            gate_versions("/*!999999 /*M!100500 x */ */ '/*!40101' /*!12 */"),
            [40101, 100500, 999999]
        );
        assert!(gate_versions("SELECT 1").is_empty());
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for sql in [
            "select '",
            "/* x",
            "`abc",
            "@'",
            "select \u{e9}t\u{e9}",
            "--",
            "-",
            "@@",
            "\u{1F600}",
            "/*!",
            "/*M!",
            "/*!1234",
            "/*!123456",
            "/*M",
            "\"",
        ] {
            let _ = lex_default(sql);
            let _ = lex(sql, mariadb(0));
        }
    }

    /// Found by the sql_classify fuzz target: an unterminated quoted name
    /// ending inside a multi-byte character.
    #[test]
    fn unterminated_backtick_before_a_multibyte_character() {
        let sql = String::from_utf8_lossy(&[0x60, 0xd0]);
        assert_eq!(lex_default(&sql).tokens, [Token::Quoted("\u{FFFD}".into())]);
        assert_eq!(
            lex_default("`\u{e9}").tokens,
            [Token::Quoted("\u{e9}".into())]
        );
    }
}
