//! A tokenizer just deep enough for classification: words, a few symbols,
//! and the hints found in comments. String literals and quoted identifiers
//! are skipped (their contents never look like keywords).

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
    /// `(`: a call or a subquery follows.
    Open,
    /// Anything else: punctuation, numbers, string literals.
    Other,
}

/// Tokens of `sql`, and the routing hints found in its comments.
/// `backslash_escapes`: MariaDB's default; false reads strings as the server
/// does under sql_mode NO_BACKSLASH_ESCAPES (`'a\'` is a whole string).
pub fn lex_as(sql: &str, backslash_escapes: bool) -> (Vec<Token>, Vec<Hint>) {
    let b = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut hints = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | 0x0c => i += 1,
            b'#' => i = skip_line(b, i),
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                i = skip_line(b, i)
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = find(b, i + 2, b"*/").unwrap_or(b.len());
                let body = &sql[i + 2..end];
                i = (end + 2).min(b.len());
                if let Some(hint) = Hint::parse(body) {
                    hints.push(hint);
                } else if let Some(rest) =
                    body.strip_prefix('!').or_else(|| body.strip_prefix("M!"))
                {
                    // MySQL's /*!NNNNN ...*/ and MariaDB's /*M!NNNNNN ...*/.
                    // MySQL executable comment: /*!40101 SET NAMES utf8 */ runs its text.
                    let code = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                    let (inner, inner_hints) = lex_as(code, backslash_escapes);
                    tokens.extend(inner);
                    hints.extend(inner_hints);
                }
            }
            b'\'' | b'"' => {
                i = skip_quoted(b, i, c, backslash_escapes);
                tokens.push(Token::Other);
            }
            b'`' => {
                let end = skip_quoted(b, i, b'`', false);
                // Unterminated, the name runs to the end of the input (whose
                // last byte may be inside a multi-byte character).
                let close = if end > i + 1 && b[end - 1] == b'`' {
                    end - 1
                } else {
                    end
                };
                let inner = &sql[i + 1..close];
                tokens.push(Token::Quoted(inner.replace("``", "`")));
                i = end;
            }
            b';' => {
                tokens.push(Token::Semicolon);
                i += 1;
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                tokens.push(Token::Assign);
                i += 2;
            }
            b'@' => {
                let start = i;
                i += 1;
                if b.get(i) == Some(&b'@') {
                    i += 1;
                }
                if matches!(b.get(i), Some(b'\'' | b'"' | b'`')) {
                    i = skip_quoted(b, i, b[i], backslash_escapes);
                } else {
                    while i < b.len() && is_word_byte(b[i]) || b.get(i) == Some(&b'.') {
                        i += 1;
                    }
                }
                tokens.push(Token::Var(sql[start..i].to_ascii_uppercase()));
            }
            _ if is_word_byte(c) => {
                let start = i;
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                let word = &sql[start..i];
                if word.as_bytes()[0].is_ascii_digit() {
                    tokens.push(Token::Number(word.to_owned()));
                } else {
                    tokens.push(Token::Word(word.to_ascii_uppercase()));
                }
            }
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            _ => {
                tokens.push(Token::Other);
                // Step over a whole UTF-8 character, not one byte of it.
                i += 1;
                while i < b.len() && (b[i] & 0xC0) == 0x80 {
                    i += 1;
                }
            }
        }
    }
    (tokens, hints)
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

    fn lex(sql: &str) -> (Vec<Token>, Vec<Hint>) {
        lex_as(sql, true)
    }

    fn words(sql: &str) -> Vec<String> {
        lex(sql)
            .0
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_and_literals_hide_their_contents() {
        assert_eq!(
            words("select 'update' , \"delete\" -- insert\n from t # drop\n"),
            ["SELECT", "FROM", "T"]
        );
        assert_eq!(words("/* for update */ select 1"), ["SELECT"]);
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
        ] {
            let _ = lex(sql);
        }
    }

    /// Found by the sql_classify fuzz target: an unterminated quoted name
    /// ending inside a multi-byte character.
    #[test]
    fn unterminated_backtick_before_a_multibyte_character() {
        let sql = String::from_utf8_lossy(&[0x60, 0xd0]);
        assert_eq!(lex(&sql).0, [Token::Quoted("\u{FFFD}".into())]);
        assert_eq!(lex("`\u{e9}").0, [Token::Quoted("\u{e9}".into())]);
    }
}
