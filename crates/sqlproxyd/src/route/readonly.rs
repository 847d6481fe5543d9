//! What a `read_only` proxy user may not send (pure).
//!
//! A read-only user's backend connections run `SET SESSION TRANSACTION
//! READ ONLY` (see [`APPLY`]), so the server refuses its writes (1792)
//! whatever our classifier made of the statement. What is left to the
//! proxy is refusing the statements that would lift that: this check works
//! on the raw bytes, comments and string literals included, so that no
//! quoting, comment or version comment hides a word from it. It fails
//! closed: a statement that only *mentions* these words in a string
//! literal is refused too.
//!
//! Not covered here, and why a read-only backend account (`read_only_user`)
//! is the stronger guarantee: a stored routine that already exists and runs
//! `SET SESSION TRANSACTION READ WRITE` lifts the session's read-only mode
//! from inside the server, where no proxy sees it.

/// Run on every backend connection of a read-only session before any of
/// its statements (and again after a reset, reconnect or failover).
pub const APPLY: &[u8] = b"SET SESSION TRANSACTION READ ONLY";

/// Why a read-only session may not run `sql`, or `None` when it may.
pub fn lifts_read_only(sql: &[u8]) -> Option<&'static str> {
    let words = Words::of(sql);
    let set = words.has("set");
    if set && (words.has("tx_read_only") || words.has("transaction_read_only")) {
        return Some("it sets transaction_read_only");
    }
    if words.has("transaction") && words.has("write") {
        return Some("it asks for a READ WRITE transaction");
    }
    if set && words.has("authorization") {
        return Some("it changes the session's authorization");
    }
    // Dynamic SQL: the statement text is built at run time, out of sight.
    if words.has("immediate") && words.has("execute") {
        return Some("EXECUTE IMMEDIATE runs SQL the proxy cannot check");
    }
    if words.has_prepare_from() {
        return Some("PREPARE ... FROM runs SQL the proxy cannot check (the binary protocol's prepare is allowed)");
    }
    None
}

/// The identifier-like words of a statement, lowercased, in order. Only
/// ASCII letters, digits, `_` and `$` make words: every other byte (a
/// quote, a comment mark, a multibyte character) ends one, so a word is
/// never missed, only sometimes found where the server would see none.
struct Words(Vec<String>);

impl Words {
    fn of(sql: &[u8]) -> Words {
        let mut words = Vec::new();
        let mut cur = String::new();
        for &b in sql {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' {
                cur.push(char::from(b.to_ascii_lowercase()));
            } else if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            words.push(cur);
        }
        Words(words)
    }

    fn has(&self, word: &str) -> bool {
        self.0.iter().any(|w| w == word)
    }

    /// `PREPARE` other than in `DEALLOCATE PREPARE` / `DROP PREPARE`.
    fn has_prepare_from(&self) -> bool {
        self.0.iter().enumerate().any(|(i, w)| {
            w == "prepare"
                && !i
                    .checked_sub(1)
                    .and_then(|p| self.0.get(p))
                    .is_some_and(|p| p == "deallocate" || p == "drop")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::lifts_read_only;

    #[test]
    fn statements_that_lift_read_only_are_refused_however_written() {
        for sql in [
            "SET SESSION TRANSACTION READ WRITE",
            "set transaction read write",
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE",
            "SET GLOBAL TRANSACTION READ WRITE",
            "START TRANSACTION READ WRITE",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
            "SET tx_read_only = 0",
            "SET @@tx_read_only=OFF",
            "SET @@session.tx_read_only = 0",
            "SET @@local.transaction_read_only = 0",
            "SET SESSION `tx_read_only` = 0",
            "set Transaction_Read_Only=0",
            "SET STATEMENT tx_read_only=0 FOR DELETE FROM t",
            "SELECT 1; SET tx_read_only = 0",
            "/*!SET*/ tx_read_only = 0",
            "SET /* tx_read_only */ @a = 1",
            "SET/**/@@tx_read_only=0",
            "/*!999999 SELECT 1 FROM */ SET SESSION TRANSACTION READ WRITE",
            "SET SESSION AUTHORIZATION 'root'",
            "PREPARE s FROM @q",
            "prepare s from 'SET tx_read_only=0'",
            "EXECUTE IMMEDIATE CONCAT('SET tx_read', '_only=0')",
            "execute   immediate @q",
        ] {
            assert!(lifts_read_only(sql.as_bytes()).is_some(), "{sql}");
        }
    }

    #[test]
    fn no_case_comment_quoting_or_company_hides_a_refused_statement() {
        let refused = [
            "SET SESSION TRANSACTION READ WRITE",
            "SET tx_read_only = 0",
            "SET STATEMENT transaction_read_only=0 FOR DELETE FROM t",
            "START TRANSACTION READ WRITE",
            "PREPARE s FROM @q",
            "EXECUTE IMMEDIATE @q",
        ];
        let disguises: [fn(&str) -> String; 8] = [
            |s| s.to_lowercase(),
            |s| s.to_uppercase(),
            |s| format!("/*!100000 {s} */"),
            |s| format!("/*M!100000 {s}*/"),
            |s| format!("SELECT 1; {s}"),
            |s| format!("{s} -- trailing"),
            |s| s.replace(' ', "/**/"),
            |s| s.replace(' ', "\n\t "),
        ];
        for sql in refused {
            for d in &disguises {
                let once = d(sql);
                assert!(lifts_read_only(once.as_bytes()).is_some(), "{once}");
                for d2 in &disguises {
                    let twice = d2(&once);
                    assert!(lifts_read_only(twice.as_bytes()).is_some(), "{twice}");
                }
            }
        }
        assert!(lifts_read_only(b"SET `tx_read_only`=0").is_some());
        assert!(lifts_read_only(b"SET \"tx_read_only\"=0").is_some());
    }

    #[test]
    fn reads_and_harmless_session_settings_pass() {
        for sql in [
            "SELECT 1",
            "SELECT @@tx_read_only",
            "SELECT @@session.transaction_read_only, @@read_only",
            "SET SESSION TRANSACTION READ ONLY",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "START TRANSACTION READ ONLY",
            "SET NAMES utf8mb4",
            "SET @x = 'write'",
            "SELECT * FROM transactions WHERE kind = 'write'",
            "SELECT * FROM t LIMIT 1 OFFSET 5",
            "DEALLOCATE PREPARE s",
            "DROP PREPARE s",
            "EXECUTE s USING @a",
            "RESET tx_read_only",
        ] {
            assert_eq!(lifts_read_only(sql.as_bytes()), None, "{sql}");
        }
    }

    #[test]
    fn words_end_at_every_non_identifier_byte() {
        // A multibyte character before SET does not hide it.
        assert!(lifts_read_only("éSET tx_read_only=0".as_bytes()).is_some());
        assert!(lifts_read_only(b"\x81SET tx_read_only=0").is_some());
        // Inside an identifier it is not the keyword.
        assert_eq!(lifts_read_only(b"SELECT offset_tx_read_only"), None);
    }
}
