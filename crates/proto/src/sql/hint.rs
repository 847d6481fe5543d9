//! Routing hints in comments: Mycat's `/*!mycat:db_type=master*/`,
//! `/*#mycat:db_type=slave*/`, `/*mycat:...*/`, `/*balance*/`, and our own
//! `/*hastack:primary*/` / `/*hastack:replica*/`.

/// Where a hint sends a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Run on the write node (Mycat `db_type=master`).
    Primary,
    /// May run on a read node even where the classifier would not
    /// choose one (Mycat `db_type=slave`, `/*balance*/`).
    Replica,
}

impl Hint {
    /// Reads a comment's body (between `/*` and `*/`).
    pub fn parse(body: &str) -> Option<Hint> {
        let body = body.trim();
        let body = body.strip_prefix(['!', '#']).unwrap_or(body).trim_start();
        if body.eq_ignore_ascii_case("balance") {
            return Some(Hint::Replica);
        }
        let (scheme, rest) = body.split_once(':')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("hastack") {
            return match rest.to_ascii_lowercase().as_str() {
                "primary" | "master" | "write" => Some(Hint::Primary),
                "replica" | "slave" | "read" => Some(Hint::Replica),
                _ => None,
            };
        }
        if !scheme.eq_ignore_ascii_case("mycat") {
            return None;
        }
        // `db_type=master`, possibly among other `key=value` pairs.
        let compact: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        compact.split([',', ';']).find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("db_type") {
                return None;
            }
            match v.trim().to_ascii_lowercase().as_str() {
                "master" => Some(Hint::Primary),
                "slave" => Some(Hint::Replica),
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mycat_and_hastack_forms() {
        for (body, want) in [
            ("!mycat:db_type=master", Some(Hint::Primary)),
            ("#mycat:db_type=slave", Some(Hint::Replica)),
            ("mycat: db_type = master", Some(Hint::Primary)),
            ("mycat:sql=select 1, db_type=master", Some(Hint::Primary)),
            ("balance", Some(Hint::Replica)),
            ("hastack:primary", Some(Hint::Primary)),
            (" hastack:replica ", Some(Hint::Replica)),
            ("mycat:schema=x", None),
            ("a plain comment", None),
            ("!40101 SET NAMES utf8", None),
        ] {
            assert_eq!(Hint::parse(body), want, "{body}");
        }
    }
}
