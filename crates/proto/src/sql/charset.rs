//! Which connection character sets the classifier can lex. In gbk, big5,
//! sjis, cp932 and gb18030 the second byte of a multi-byte character can be
//! `\`, `'`, `"` or `` ` ``, so the server and a byte-wise lexer disagree on
//! where a string ends. The classifier does not lex by character set: on
//! such a connection it treats any non-ASCII text as a write.

use mysql_common::collations::{Collation, CollationId};

use super::lexer::{lex, Dialect, Token};

/// Character sets whose multi-byte characters never hold a byte below 0x80
/// (or that have none): byte-wise lexing reads them as the server does.
const SAFE_CHARSETS: &[&str] = &[
    "utf8", "utf8mb3", "utf8mb4", "latin1", "latin2", "latin5", "latin7", "ascii", "binary",
    "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866", "koi8r", "koi8u", "greek",
    "hebrew", "armscii8", "hp8", "dec8", "swe7", "keybcs2", "macce", "macroman", "geostd8",
    "tis620", "euckr", "ujis", "eucjpms", "gb2312",
];

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
    let lexed = lex(sql, Dialect::default());
    let mut last = None;
    for stmt in lexed.tokens.split(|t| *t == Token::Semicolon) {
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
                Token::Word(w) | Token::Var(w) if w.ends_with("CHARACTER_SET_CLIENT") => {
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
    fn multibyte_charsets_that_hide_quotes_are_unsafe() {
        for cs in [
            "gbk", "BIG5", "sjis", "cp932", "gb18030", "utf16", "nonsense",
        ] {
            assert!(charset_is_unsafe(cs), "{cs}");
        }
        for cs in ["utf8mb4", "UTF8", "latin1", "binary", "euckr"] {
            assert!(!charset_is_unsafe(cs), "{cs}");
        }
        assert!(collation_is_unsafe(28)); // gbk_chinese_ci
        assert!(collation_is_unsafe(13)); // sjis_japanese_ci
        assert!(!collation_is_unsafe(45)); // utf8mb4_general_ci
        assert!(!collation_is_unsafe(8)); // latin1_swedish_ci
        assert!(collation_is_unsafe(0)); // unknown
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
            charset_after("SET @@session.character_set_client := 'latin1'"),
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
