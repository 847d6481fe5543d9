//! A generator of SQL texts for the classifier's differential test: reads,
//! writes and session changes, wrapped in comments of every kind
//! (executable, version-gated, line comments ended by control
//! characters), strings in every quoting, and the glue that makes lexers
//! disagree (`'*/'`, backslashes, stray quotes, semicolons). Most texts are
//! not even valid SQL; the server is the judge of what each one does.
//!
//! Driven by a seed (CI's fixed-seed run) or by fuzz bytes (long runs).

/// Statements that read.
const READS: &[&str] = &[
    "SELECT 1",
    "SELECT id FROM t WHERE id = 1",
    "SELECT COUNT(*) FROM t",
    "SELECT rf(1)",
    "SELECT d.rf(2)",
    "SELECT NOW()",
    "SELECT REPLACE('ab', 'a', 'c')",
    "SELECT @@version",
    "SELECT * FROM t LIMIT 1",
    "VALUES (1)",
    "WITH c (a) AS (SELECT 1) SELECT a FROM c",
    "SELECT JSON_LENGTH('[1]')",
    "DESC t",
    "SHOW TABLES",
    "SELECT 1 FROM DUAL WHERE 1 IN (1, 2)",
    "SELECT @v",
    "SELECT 'x' FROM t FOR UPDATE",
];

/// Statements that change data (each always changes something, so the
/// binary log shows it).
const WRITES: &[&str] = &[
    "INSERT INTO log VALUES ()",
    "UPDATE t SET n = n + 1",
    "DELETE FROM t WHERE id > 100",
    "SELECT wf()",
    "SELECT d.wf()",
    "DO wf()",
    "SET @x = wf()",
    "SET @x := d.wf()",
    "CALL wp()",
    "CREATE TABLE IF NOT EXISTS x1 (a INT)",
    "DROP TABLE IF EXISTS nothere",
    "TRUNCATE TABLE scratch",
    "EXECUTE IMMEDIATE 'INSERT INTO log VALUES ()'",
    "SELECT 1 FROM t WHERE wf() > 0",
    "INSERT INTO log SELECT NULL",
    "SELECT NEXTVAL(s)",
    "SELECT wf ()",
    "SELECT `wf`()",
    "REPLACE INTO t VALUES (3, 0)",
];

/// Statements that change the session's state.
const SESSION: &[&str] = &[
    "SET @v = 1",
    "SELECT 2 INTO @v",
    "SELECT @v := 3",
    "SET sql_mode = ''",
    "SELECT LAST_INSERT_ID(7)",
    "SET autocommit = 0",
    "BEGIN",
    "CREATE TEMPORARY TABLE tt (a INT)",
    "SET NAMES latin1",
];

/// Openers and closers of comments, for a payload between them.
const WRAPS: &[(&str, &str)] = &[
    ("/*! ", " */"),
    ("/*!40101 ", " */"),
    ("/*M!100000 ", " */"),
    ("/*!999999 ", " */"),
    ("/*M!999999 ", " */"),
    ("/*!50700 ", " */"),
    ("/*!80000", "*/"),
    ("/*!1 ", " */"),
    ("/* ", " */"),
    ("-- ", "\n"),
    ("#", "\n"),
    ("--\x01", "\n"),
    ("--\x0b", "\n"),
    ("--\t", "\n"),
    ("--", "\n"),
    ("'", "'"),
    ("\"", "\""),
    ("`", "`"),
    ("(", ")"),
];

/// Glue between parts: what makes lexers disagree.
const GLUE: &[&str] = &[
    " ", " ; ", ";", "'*/'", "\"*/\"", "'\\''", "\"\\\"\"", "'\\\\'", "'", "\"", "`", "/*", "*/",
    "\n", "--", "-- '", "#'", "\\", "\x01", "\x0b", "/*!", "*/ ;", " FROM t ", " , ",
];

/// A small, fast, reproducible generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct SqlGen {
    state: u64,
}

impl SqlGen {
    pub fn new(seed: u64) -> SqlGen {
        SqlGen { state: seed }
    }

    /// A generator whose choices come from `bytes` (for a fuzz target).
    pub fn from_bytes(bytes: &[u8]) -> SqlGen {
        let mut seed = 0xcbf2_9ce4_8422_2325u64;
        for &b in bytes {
            seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        SqlGen::new(seed)
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn payload(&mut self) -> &'static str {
        match self.below(3) {
            0 => self.pick(READS),
            1 => self.pick(WRITES),
            _ => self.pick(SESSION),
        }
    }

    /// One part: a statement, maybe wrapped, maybe wrapping another part.
    fn part(&mut self, depth: usize) -> String {
        let inner = if depth < 2 && self.below(4) == 0 {
            self.part(depth + 1)
        } else {
            self.payload().to_owned()
        };
        if self.below(3) == 0 {
            return inner;
        }
        let (open, close) = WRAPS[self.below(WRAPS.len())];
        format!("{open}{inner}{close}")
    }

    /// The attacks, with their pieces varied.
    fn template(&mut self) -> String {
        let write = self.pick(WRITES);
        let read = self.pick(READS);
        let (open, close) = WRAPS[self.below(8)];
        match self.below(5) {
            0 => format!("{open}SELECT '{close}' {close} ; {write} -- '"),
            1 => format!("{open}SELECT 1 FROM {close} {write}"),
            2 => format!("{read} --\x01 'x\n; {write} -- '"),
            3 => format!("{read} /*!999999 , '*/' ; {write} -- '"),
            _ => format!("{read} {open} ; {write} {close}"),
        }
    }

    /// One text for COM_QUERY.
    pub fn statement(&mut self) -> String {
        if self.below(6) == 0 {
            return self.template();
        }
        let parts = 1 + self.below(3);
        let mut sql = String::new();
        for i in 0..parts {
            if i > 0 || self.below(4) == 0 {
                sql.push_str(self.pick(GLUE));
            }
            sql.push_str(&self.part(0));
        }
        if self.below(4) == 0 {
            sql.push_str(self.pick(GLUE));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_statements() {
        let a: Vec<String> = (0..50)
            .map({
                let mut g = SqlGen::new(7);
                move |_| g.statement()
            })
            .collect();
        let b: Vec<String> = (0..50)
            .map({
                let mut g = SqlGen::new(7);
                move |_| g.statement()
            })
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().collect::<std::collections::BTreeSet<_>>().len() > 25);
    }
}
