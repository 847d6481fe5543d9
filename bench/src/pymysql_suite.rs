//! PyMySQL's own test suite against MariaDB directly and through sqlproxyd,
//! in both autocommit modes (issue 19 item 1): every test's outcome on
//! each side, and the tests whose outcome differs. A difference is a place
//! where an application can tell sqlproxyd from the server.
//!
//! `target/debug/bench-pymysql-suite [--src DIR] [--ref REF] [--append]`:
//! DIR is a clone of https://github.com/PyMySQL/PyMySQL (default: the
//! project library's mirror, /work/.mirror/PyMySQL+PyMySQL/repo), REF the
//! tag whose `pymysql/tests` run (default v1.0.2, Debian 12's
//! python3-pymysql); the suite runs with that tag's own `pymysql` (pure
//! Python), under Debian's python3-pytest. One MariaDB and one sqlproxyd
//! (a primary only: every statement goes to it, so reads see the session's
//! writes; causal reads are the transparency issue's), on loopback.
//! `--append` adds the result to bench/RESULTS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hastack_it::sqlproxy::{config, state_dir_for, Proxy};
use hastack_it::{DaemonProcess, MariaDbCluster};
use mysql::prelude::Queryable;

const USAGE: &str = "usage: bench-pymysql-suite [--src DIR] [--ref REF] [--append]";
const MIRROR: &str = "/work/.mirror/PyMySQL+PyMySQL/repo";

/// The account the suite runs as: its tests create and drop tables,
/// users, procedures, so it has everything (as the suite's default root).
const USER: &str = "pymysql";
const PASSWORD: &str = "pymysql-pw";

fn main() -> Result<()> {
    let mut src = PathBuf::from(MIRROR);
    let mut reference = "v1.0.2".to_owned();
    let mut append = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--src" => src = args.next().context(USAGE)?.into(),
            "--ref" => reference = args.next().context(USAGE)?,
            "--append" => append = true,
            _ => bail!("{USAGE}"),
        }
    }
    let tree = extract(&src, &reference)?;
    let cluster = MariaDbCluster::start(1)?;
    let mut root = cluster.conn(0)?;
    for sql in [
        format!("CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'"),
        format!("GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION"),
    ] {
        root.query_drop(sql)?;
    }
    let proxy = start_proxy(&cluster)?;
    let mut report = String::new();
    let mut rows = Vec::new();
    for autocommit in [false, true] {
        let mut sides = Vec::new();
        for (side, addr) in [("direct", cluster.addr(0)), ("sqlproxyd", proxy.addr)] {
            // A clean pair of databases for each run.
            for db in ["test1", "test2"] {
                root.query_drop(format!("DROP DATABASE IF EXISTS {db}"))?;
                root.query_drop(format!(
                    "CREATE DATABASE {db} DEFAULT CHARACTER SET utf8mb4"
                ))?;
            }
            let outcomes = run_suite(&tree, addr, autocommit)
                .with_context(|| format!("the suite {side}, autocommit {autocommit}"))?;
            eprintln!(
                "bench-pymysql-suite: {side}, autocommit {autocommit}: {}",
                summary(&outcomes)
            );
            sides.push(outcomes);
        }
        let (direct, proxied) = (&sides[0], &sides[1]);
        let differ: Vec<String> = direct
            .keys()
            .chain(proxied.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|t| direct.get(*t) != proxied.get(*t))
            .map(|t| {
                let show = |m: &BTreeMap<String, String>| {
                    m.get(t).cloned().unwrap_or_else(|| "absent".into())
                };
                format!("{t}: direct {}, sqlproxyd {}", show(direct), show(proxied))
            })
            .collect();
        rows.push(format!(
            "| {} | {} | {} | {} |",
            if autocommit {
                "on"
            } else {
                "off (PyMySQL's default)"
            },
            summary(direct),
            summary(proxied),
            differ.len()
        ));
        for d in &differ {
            writeln!(
                report,
                "- autocommit {}: {d}",
                if autocommit { "on" } else { "off" }
            )?;
        }
    }
    let table = format!(
        "| autocommit | directly | through sqlproxyd | tests that differ |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    let _ = std::fs::remove_dir_all(&tree);
    println!("{table}{report}");
    if append {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        write!(f, "\n{table}{report}")?;
    }
    Ok(())
}

/// The suite's tree at `reference`, in a fresh directory.
fn extract(src: &Path, reference: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hs-pymysql-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let archive = Command::new("git")
        .arg("-C")
        .arg(src)
        .args(["archive", "--format=tar", reference])
        .output()
        .with_context(|| format!("git archive in {}", src.display()))?;
    if !archive.status.success() {
        bail!(
            "no PyMySQL {reference} in {}: clone https://github.com/PyMySQL/PyMySQL there or give --src ({})",
            src.display(),
            String::from_utf8_lossy(&archive.stderr).trim()
        );
    }
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    tar.stdin
        .take()
        .context("tar's stdin")?
        .write_all(&archive.stdout)?;
    if !tar.wait()?.success() {
        bail!("tar could not unpack the suite");
    }
    Ok(dir)
}

/// sqlproxyd over the cluster's one node, its data host's account and its
/// one user the suite's, with no `schemas` list (test1 and test2 are the
/// backend's to decide), multi-statements and LOCAL INFILE passed through.
fn start_proxy(cluster: &MariaDbCluster) -> Result<Proxy> {
    let port = || SocketAddr::from(([127, 0, 0, 1], hastack_it::ports::free_port()));
    let (addr, http, admin) = (port(), port(), port());
    let _ = std::fs::remove_dir_all(state_dir_for(addr));
    let text = config(cluster, addr, http, admin, "primary", "", "")
        .replacen(
            "users:\n",
            &format!("users:\n  - {{name: {USER}, password: {PASSWORD}}}\n"),
            1,
        )
        .replace(
            "    user: app\n    password: app\n",
            &format!("    user: {USER}\n    password: {PASSWORD}\n"),
        );
    let daemon = DaemonProcess::start("sqlproxyd", &text, http)?;
    Ok(Proxy {
        daemon,
        addr,
        admin,
    })
}

/// Runs the suite against `addr`; each test's outcome by its id.
fn run_suite(tree: &Path, addr: SocketAddr, autocommit: bool) -> Result<BTreeMap<String, String>> {
    let db = |name: &str, extra: &str| {
        format!(
            r#"{{"host": "127.0.0.1", "port": {}, "user": "{USER}", "passwd": "{PASSWORD}", "database": "{name}", "autocommit": {}{extra}}}"#,
            addr.port(),
            if autocommit { "true" } else { "false" }
        )
    };
    let databases = format!(
        "[{}, {}]",
        db("test1", r#", "use_unicode": true, "local_infile": true"#),
        db("test2", "")
    );
    std::fs::write(tree.join("pymysql/tests/databases.json"), databases)?;
    let junit = tree.join("junit.xml");
    let _ = std::fs::remove_file(&junit);
    // Bounded: a hung test is a finding, not a hung bench.
    let run = Command::new("timeout")
        .args([
            "900",
            "/usr/bin/python3",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .arg(format!("--junitxml={}", junit.display()))
        .arg("pymysql/tests")
        .current_dir(tree)
        .env("PYTHONPATH", tree)
        .output()
        .context("python3 -m pytest (Debian's python3-pytest)")?;
    if !junit.exists() {
        bail!(
            "pytest wrote no report: {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let listing = Command::new("/usr/bin/python3")
        .args(["-c", JUNIT_LINES])
        .arg(&junit)
        .output()?;
    let text = String::from_utf8(listing.stdout)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(o, t)| (t.to_owned(), o.to_owned()))
        .collect())
}

/// A junit report as `outcome<TAB>test id` lines.
const JUNIT_LINES: &str = r#"
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).iter("testcase"):
    kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
    outcome = kinds[0] if kinds else "passed"
    print(f"{outcome}\t{case.get('classname')}::{case.get('name')}")
"#;

fn summary(outcomes: &BTreeMap<String, String>) -> String {
    let count = |k: &str| outcomes.values().filter(|o| *o == k).count();
    format!(
        "{} passed, {} failed, {} errors, {} skipped",
        count("passed"),
        count("failure"),
        count("error"),
        count("skipped")
    )
}
