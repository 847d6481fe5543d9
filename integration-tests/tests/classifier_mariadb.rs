//! The SQL classifier against MariaDB itself (issue 17 item 2): a
//! statement classified as a read must change neither the binary log nor
//! the session; one classified as not writing must not change the log.
//! CI runs a fixed seed; `HASTACK_CLASSIFIER_CASES` and
//! `HASTACK_CLASSIFIER_SEED` run more (the `sql_differential` fuzz target
//! runs without end).

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use hastack_it::classifier_oracle::{Oracle, SQL_MODES};
use hastack_it::sqlgen::SqlGen;
use hastack_it::MariaDbCluster;
use hastack_proto::sql::builtin_names;
use mysql::prelude::Queryable;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn judge_all(
    oracle: &mut Oracle,
    cases: impl IntoIterator<Item = (String, &'static str)>,
) -> Vec<String> {
    let mut findings = Vec::new();
    for (sql, mode) in cases {
        if let Some(f) = oracle.judge(&sql, mode).unwrap() {
            findings.push(f.to_string());
        }
    }
    findings
}

#[test]
fn generated_statements_classified_as_reads_write_nothing_on_mariadb() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let mut oracle = Oracle::new(cluster.root_opts(0)).unwrap();
    let cases = env_or("HASTACK_CLASSIFIER_CASES", 3000);
    let seed = env_or("HASTACK_CLASSIFIER_SEED", 17);
    let mut gen = SqlGen::new(seed);
    let generated: Vec<(String, &'static str)> = (0..cases)
        .map(|i| (gen.statement(), SQL_MODES[i as usize % SQL_MODES.len()]))
        .collect();
    // The generator must give the classifier reads to get wrong.
    let reads = generated
        .iter()
        .filter(|(sql, _)| !hastack_proto::sql::writes_data(sql))
        .count();
    eprintln!("{reads} of {cases} generated statements classified as not writing");
    assert!(
        reads * 10 >= generated.len(),
        "only {reads} of {cases} classified as not writing"
    );
    let findings = judge_all(&mut oracle, generated);
    assert!(
        findings.is_empty(),
        "{} of {cases} statements (seed {seed}) disagree with MariaDB; the first:\n{}",
        findings.len(),
        findings
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Issue 17's inputs, and every disagreement the generator found, by name.
#[test]
fn named_inputs_agree_with_mariadb() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let mut oracle = Oracle::new(cluster.root_opts(0)).unwrap();
    let cases: &[(&str, &str)] = &[
        // A `*/` in a string inside an executable comment does not end it.
        ("/*! SELECT '*/' */ ; DELETE FROM log -- '", ""),
        // A version-gated comment the server skips.
        ("/*!999999 SELECT 1 FROM */ TRUNCATE TABLE scratch", ""),
        ("/*M!999999 SELECT 1 FROM */ TRUNCATE TABLE scratch", ""),
        // `--` before a control character starts a comment.
        ("SELECT 1 --\x01 'x\n; DELETE FROM log -- '", ""),
        ("SELECT 1 --\x0b 'x\n; DELETE FROM log -- '", ""),
        // Stored functions that write.
        ("SELECT wf()", ""),
        ("SET @x := wf()", ""),
        ("SELECT wf ()", ""),
        ("SELECT `wf`()", ""),
        ("SELECT d.wf()", ""),
        // sql_mode changes where strings end.
        (
            "SELECT 'x\\'; DELETE FROM log; -- '",
            "NO_BACKSLASH_ESCAPES",
        ),
        ("SELECT \"a\\\"; DELETE FROM log; -- \"", "ANSI_QUOTES"),
        (
            "SELECT 'a\\'', \"b\\\"; DELETE FROM log; -- \"'",
            "ANSI_QUOTES",
        ),
        // Session state a read must not touch.
        ("SELECT 42 INTO @x", ""),
        ("SELECT @a := 1", ""),
        ("SELECT LAST_INSERT_ID(5)", ""),
    ];
    let findings = judge_all(
        &mut oracle,
        cases.iter().map(|(s, m)| {
            (
                s.to_string(),
                match *m {
                    "" => SQL_MODES[0],
                    "NO_BACKSLASH_ESCAPES" => SQL_MODES[1],
                    _ => SQL_MODES[2],
                },
            )
        }),
    );
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

/// The judge itself: a classifier that calls everything a read is caught
/// on every input that writes or changes the session.
#[test]
fn the_oracle_catches_a_classifier_that_calls_everything_a_read() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let mut oracle = Oracle::new(cluster.root_opts(0)).unwrap();
    let everything_reads = |_: &str| {
        (
            hastack_proto::sql::Class::Read {
                session_result: None,
            },
            false,
        )
    };
    for sql in [
        "/*!999999 SELECT 1 FROM */ TRUNCATE TABLE scratch",
        "SELECT wf()",
        "INSERT INTO log VALUES ()",
        "SET @v = 1",
        "SELECT 42 INTO @x",
        "CREATE TEMPORARY TABLE tt (a INT)",
        "BEGIN",
    ] {
        let found = oracle.judge_as(sql, "", everything_reads).unwrap();
        assert!(found.is_some(), "{sql:?} went unnoticed");
    }
    assert_eq!(
        oracle.judge_as("SELECT 1", "", everything_reads).unwrap(),
        None
    );
}

/// Every name the classifier takes for a built-in is one on this server,
/// in the forms it is taken for (a stored function of that name cannot be
/// reached that way).
#[test]
fn builtin_functions_are_builtins_on_mariadb() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let mut conn = cluster.conn(0).unwrap();
    conn.query_drop("CREATE DATABASE probe").unwrap();
    conn.query_drop("USE probe").unwrap();
    let mut wrong = Vec::new();
    for (name, adjacent, spaced, quoted) in builtin_names() {
        let forms = [
            (adjacent, format!("{name}(")),
            (spaced, format!("{name} (")),
            (quoted, format!("`{name}`(")),
        ];
        for (claimed, call) in forms {
            if !claimed {
                continue;
            }
            for args in ["", "1", "1,2", "1,2,3"] {
                let sql = format!("SELECT {call}{args})");
                if let Err(mysql::Error::MySqlError(e)) = conn.query_drop(&sql) {
                    // 1305: FUNCTION probe.x does not exist; 1630: the same,
                    // with a built-in of that name.
                    if e.code == 1305 || e.code == 1630 {
                        wrong.push(format!("{sql}: {}", e.message));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "taken for built-ins but resolved as stored functions:\n{}",
        wrong.join("\n")
    );
}
