//! Which connection character sets the classifier can lex. It reads text as
//! UTF-8 (the client's bytes, lossily decoded). In gbk, big5, sjis, cp932
//! and gb18030 the second byte of a multi-byte character can be `\`, `'`,
//! `"` or `` ` ``, so the server and a byte-wise lexer disagree on where a
//! string ends; in latin1 and the other single-byte sets a byte such as 0xA0
//! is white space to the server (`t<A0>INTO<A0>OUTFILE`) and part of a word
//! to a UTF-8 reading. The classifier does not lex by character set: on any
//! connection whose set is not UTF-8 it treats non-ASCII text as a write.

use mysql_common::collations::{Collation, CollationId};

use super::lexer::{lex, Dialect, Server, Token};

/// Character sets the classifier reads exactly as the server does: UTF-8,
/// whose non-ASCII bytes are never white space, quotes or backslashes.
const SAFE_CHARSETS: &[&str] = &["utf8", "utf8mb3", "utf8mb4"];

/// Whether a character set (by name, any case) may hide a quote, backslash
/// or backtick in a multi-byte character — or is unknown, which counts the same.
pub fn charset_is_unsafe(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    !SAFE_CHARSETS.contains(&name.as_str())
}

/// The same for a collation id (the handshake's or COM_CHANGE_USER's).
pub fn collation_is_unsafe(id: u16) -> bool {
    let collation = Collation::resolve(CollationId::from(id));
    charset_is_unsafe(collation.charset())
}

/// What a statement does to the connection's `character_set_client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharsetChange {
    /// Sets it to a character set the classifier lexes correctly.
    Safe,
    /// Sets it to one it does not, or to something it cannot tell.
    Unsafe,
}

/// The last change `sql` makes to `character_set_client` (`SET NAMES`,
/// `SET CHARACTER SET`, `SET character_set_client = ...`), or `None` if it
/// makes none.
pub fn charset_after(sql: &str) -> Option<CharsetChange> {
    let mentions = |word: &str| {
        sql.as_bytes()
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
    };
    if !mentions("NAMES") && !mentions("CHARSET") && !mentions("CHARACTER") {
        return None;
    }
    // Read as each server would (a gated `/*!50700 SET NAMES gbk */` runs on
    // MySQL only): a reading that switches to an unsafe set wins.
    let mut seen = None;
    for server in [
        Server::MariaDb(u32::MAX),
        Server::MariaDb(100_000),
        Server::MySql(u32::MAX),
        Server::MySql(50_700),
    ] {
        let dialect = Dialect {
            server,
            ..Dialect::default()
        };
        match change_in(&lex(sql, dialect).tokens) {
            Some(CharsetChange::Unsafe) => return Some(CharsetChange::Unsafe),
            Some(c) => seen = Some(c),
            None => {}
        }
    }
    seen
}

/// The last change of `character_set_client` in one reading's tokens.
fn change_in(tokens: &[Token]) -> Option<CharsetChange> {
    let mut last = None;
    for stmt in tokens.split(|t| *t == Token::Semicolon) {
        if !matches!(stmt.first(), Some(Token::Word(w)) if w == "SET") {
            // Only SET changes the client character set; SET STATEMENT's
            // FOR part is lexed before it applies.
            continue;
        }
        for (i, tok) in stmt.iter().enumerate() {
            let value_at = match tok {
                Token::Word(w) if w == "NAMES" || w == "CHARSET" => Some(i + 1),
                Token::Word(w) if w == "CHARACTER" => {
                    matches!(stmt.get(i + 1), Some(Token::Word(s)) if s == "SET").then_some(i + 2)
                }
                Token::Word(w) | Token::Var(w) | Token::Quoted(w)
                    if w.to_ascii_uppercase().ends_with("CHARACTER_SET_CLIENT") =>
                {
                    // name = value, name := value
                    let eq = stmt.get(i + 1);
                    Some(
                        if matches!(eq, Some(Token::Assign)) || matches!(eq, Some(Token::Other)) {
                            i + 2
                        } else {
                            i + 1
                        },
                    )
                }
                _ => None,
            };
            let Some(at) = value_at else { continue };
            let value = match stmt.get(at) {
                Some(Token::Word(w)) if w != "DEFAULT" => Some(w.clone()),
                Some(Token::Str(s)) | Some(Token::Quoted(s)) => Some(s.clone()),
                _ => None,
            };
            last = Some(match value {
                Some(v) if !charset_is_unsafe(&v) => CharsetChange::Safe,
                _ => CharsetChange::Unsafe,
            });
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_utf8_is_read_as_the_server_reads_it() {
        for cs in [
            "gbk", "BIG5", "sjis", "cp932", "gb18030", "utf16", "nonsense", "latin1", "binary",
        ] {
            assert!(charset_is_unsafe(cs), "{cs}");
        }
        for cs in ["utf8mb4", "UTF8", "utf8mb3"] {
            assert!(!charset_is_unsafe(cs), "{cs}");
        }
        assert!(collation_is_unsafe(28)); // gbk_chinese_ci
        assert!(collation_is_unsafe(13)); // sjis_japanese_ci
        assert!(!collation_is_unsafe(45)); // utf8mb4_general_ci
        assert!(!collation_is_unsafe(33)); // utf8mb3_general_ci
        assert!(collation_is_unsafe(8)); // latin1_swedish_ci: 0xA0 is white space there
        assert!(collation_is_unsafe(0)); // unknown
    }

    /// The review's findings: a quoted name, a switch only MySQL runs.
    #[test]
    fn hidden_switches_are_seen() {
        for sql in [
            "SET `character_set_client` = gbk",
            "SET @@session.`character_set_client` = gbk",
            "/*!50700 SET NAMES gbk */",
            "SET NAMES latin1",
        ] {
            assert_eq!(charset_after(sql), Some(CharsetChange::Unsafe), "{sql}");
        }
    }

    #[test]
    fn set_names_and_friends_are_followed() {
        assert_eq!(charset_after("SET NAMES gbk"), Some(CharsetChange::Unsafe));
        assert_eq!(
            charset_after("set names 'utf8mb4' collate utf8mb4_bin"),
            Some(CharsetChange::Safe)
        );
        assert_eq!(
            charset_after("SET CHARACTER SET big5"),
            Some(CharsetChange::Unsafe)
        );
        assert_eq!(charset_after("SET CHARSET utf8"), Some(CharsetChange::Safe));
        assert_eq!(
            charset_after("SET character_set_client = sjis"),
            Some(CharsetChange::Unsafe)
        );
        assert_eq!(
            charset_after("SET @@session.character_set_client := 'utf8'"),
            Some(CharsetChange::Safe)
        );
        assert_eq!(
            charset_after("SET NAMES DEFAULT"),
            Some(CharsetChange::Unsafe)
        );
        assert_eq!(
            charset_after("SET NAMES utf8; SET NAMES cp932"),
            Some(CharsetChange::Unsafe)
        );
        assert_eq!(
            charset_after("SET NAMES cp932; SET NAMES utf8"),
            Some(CharsetChange::Safe)
        );
        assert_eq!(charset_after("SELECT 'SET NAMES gbk'"), None);
        assert_eq!(charset_after("SET sql_mode = ''"), None);
    }
}
