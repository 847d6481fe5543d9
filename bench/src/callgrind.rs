//! Instructions per query in sqlproxyd, counted by callgrind (stable on a
//! busy 2-core machine, where wall time is not): the same statements over
//! one client connection through this build's sqlproxyd and, side by side,
//! through a baseline build, as the application user and as a read_only
//! user. Only the query window is counted (`--instr-atstart=no`, then
//! `callgrind_control -i on/off` around it).
//!
//! `target/release/bench-callgrind [QUERIES]`, with `BENCH_BASELINE_BIN_DIR`
//! naming a directory holding another build's `sqlproxyd` (a worktree of
//! an older commit built with `cargo build --release -p sqlproxyd`).
//! Prints a markdown table for bench/RESULTS.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hastack_bench::baseline::older_sqlproxyd_config;
use hastack_it::daemon::bin_path;
use hastack_it::ports::free_port;
use hastack_it::sqlproxy::config;
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

/// What an application sends most: sysbench's point select, as text.
const QUERY: &str = "SELECT c FROM sbtest.sbtest1 WHERE id = 42";

struct Callgrind {
    label: &'static str,
    child: Child,
    out: PathBuf,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Callgrind {
    fn start(
        label: &'static str,
        bin: &Path,
        older: bool,
        cluster: &MariaDbCluster,
    ) -> Result<Callgrind> {
        let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (addr, http, admin) = (port(), port(), port());
        let dir = tempfile::Builder::new().prefix("hs-callgrind-").tempdir()?;
        // The read_only user may read sbtest, for the second path.
        // Heartbeats are rare, so the query window counts queries only.
        let heartbeat =
            "    heartbeat: {interval: 60s, timeout: 2s, user: monitor, password: monitor}\n";
        let yaml = config(cluster, addr, http, admin, "primary", heartbeat, "").replace(
            "schemas: [app], read_only: true",
            "schemas: [app, sbtest], read_only: true",
        );
        let yaml = if older {
            older_sqlproxyd_config(&yaml)
        } else {
            yaml.replace(
                "    nodes:\n",
                "    read_only_user: app_ro\n    read_only_password: app_ro\n    nodes:\n",
            )
        };
        let cfg = dir.path().join("sqlproxyd.yaml");
        std::fs::write(&cfg, yaml)?;
        let out = dir.path().join("callgrind.out");
        let child = Command::new("valgrind")
            .args(["--tool=callgrind", "--instr-atstart=no"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(bin)
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting valgrind (apt-get install valgrind)")?;
        let up = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
            Conn::new(opts(addr, "app", "app")).ok()
        });
        if up.is_none() {
            bail!("sqlproxyd under callgrind did not answer on {addr}");
        }
        Ok(Callgrind {
            label,
            child,
            out,
            addr,
            _dir: dir,
        })
    }

    fn control(&self, arg: &str) -> Result<()> {
        let ok = Command::new("callgrind_control")
            .arg(arg)
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .status()?
            .success();
        anyhow::ensure!(ok, "callgrind_control {arg} failed");
        Ok(())
    }

    /// Instructions for `n` queries as `user`, counted from a warm session.
    fn per_query(&mut self, user: &str, n: u32) -> Result<f64> {
        let mut c = Conn::new(opts(self.addr, user, user))?;
        for _ in 0..50 {
            c.query_drop(QUERY)?;
        }
        self.control("--zero")?;
        self.control("--instr=on")?;
        for _ in 0..n {
            c.query_drop(QUERY)?;
        }
        self.control("--instr=off")?;
        self.control("--dump")?;
        let (ir, dump) = last_dump_ir(&self.out)?;
        // BENCH_CALLGRIND_OUT=DIR keeps each dump, for callgrind_annotate.
        if let Some(dir) = std::env::var_os("BENCH_CALLGRIND_OUT") {
            let name = format!("{}-{user}.callgrind", self.label);
            std::fs::copy(&dump, Path::new(&dir).join(name))?;
        }
        Ok(ir as f64 / f64::from(n))
    }
}

impl Drop for Callgrind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn opts(addr: SocketAddr, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::new()
        .ip_or_hostname(Some(addr.ip().to_string()))
        .tcp_port(addr.port())
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
}

/// The `totals:` Ir of the newest dump file of `out` (its `summary:`
/// line reads 0 when instrumentation was switched on by callgrind_control)
/// (callgrind writes `out.N` for each `--dump`).
fn last_dump_ir(out: &Path) -> Result<(u64, PathBuf)> {
    let dir = out.parent().context("dump dir")?;
    let stem = out
        .file_name()
        .context("dump name")?
        .to_string_lossy()
        .into_owned();
    let mut dumps: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&format!("{stem}."))?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    dumps.sort();
    let (_, path) = dumps.last().context("callgrind wrote no dump")?;
    let text = std::fs::read_to_string(path)?;
    let ir = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no totals line in the callgrind dump")?;
    Ok((ir, path.clone()))
}

fn main() -> Result<()> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2000);
    let cluster = MariaDbCluster::start(1)?;
    hastack_bench::sysbench::prepare(cluster.addr(0))?;
    let mut builds = vec![("this build", bin_path("sqlproxyd")?, false)];
    if let Some(dir) = std::env::var_os("BENCH_BASELINE_BIN_DIR") {
        builds.push(("baseline", PathBuf::from(dir).join("sqlproxyd"), true));
    }
    println!(
        "Instructions per `{QUERY}` in sqlproxyd (callgrind), {n} queries on one warm session."
    );
    println!();
    println!("| build | app (read-write) | reader (read_only) | reader / app |");
    println!("|---|---|---|---|");
    let mut app_of = Vec::new();
    for (name, bin, older) in &builds {
        let label = if *older { "baseline" } else { "this-build" };
        let mut cg = Callgrind::start(label, bin, *older, &cluster)?;
        let app = cg.per_query("app", n)?;
        let reader = cg.per_query("reader", n)?;
        println!("| {name} | {app:.0} | {reader:.0} | {:.3}× |", reader / app);
        app_of.push((app, reader));
    }
    if let [(app, reader), (base_app, base_reader)] = app_of[..] {
        println!();
        println!(
            "this build / baseline: app {:.3}×, reader {:.3}×",
            app / base_app,
            reader / base_reader
        );
    }
    Ok(())
}
