//! The whole stack vs the classic stack vs direct, with sysbench, and then
//! both stacks' fault tables, in one run of the namespace lab (docs/lab.md,
//! issue 10 items 3–4):
//!
//! - hastack: VIP 10.99.0.100:3306 → lbd (lb-1/lb-2, vrrpd) → sqlproxyd
//!   (proxy-1/proxy-2 :8066) → MariaDB, as `deploy/lab.sh up` starts it;
//! - classic: keepalived (VRID 52, VIP 10.99.0.200) on lb-1/lb-2 → HAProxy
//!   (TCP mode, on 10.99.0.200:3306) → HAProxy-TCP on proxy-1/proxy-2 :8067
//!   (standing in for Mycat, which has no Debian package) → the primary
//!   10.99.0.31:3306, all from Debian's packages, in the same namespaces;
//! - direct: the primary 10.99.0.31:3306.
//!
//! sysbench runs in the root namespace (10.99.0.1). Needs root, and the lab
//! down when it starts: it waits for a lab someone else brought up to go away
//! (`BENCH_LAB_WAIT` seconds), and never tears down a lab it did not start.
//!
//! `cargo build --release --workspace --bins && sudo target/release/bench-stack`
//! (BENCH_SECONDS=20 BENCH_THREADS=8 BENCH_ROUNDS=3
//! BENCH_WORKLOADS=oltp_read_write,oltp_point_select BENCH_LAB_WAIT=900
//! BENCH_CHAOS_REPS=3 BENCH_CHAOS_CONNS=8 BENCH_CHAOS_JSON=bench/stack-chaos.json
//! BENCH_CHAOS_FAULTS=LbKill,PrimaryKill (default: all);
//! BENCH_CHAOS_REPS=0 skips the fault tables). Prints markdown tables for
//! bench/RESULTS.md; progress on stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hastack_bench::classic::{self, Classic};
use hastack_bench::fault_table;
use hastack_bench::sysbench::{self, cpu_seconds, median, Sample};
use hastack_it::chaos::{self, RunConfig, Stack, WorkloadConfig};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

const HASTACK_VIP: &str = "10.99.0.100:3306";
const CLASSIC_VIP: &str = classic::VIP;
const PRIMARY: &str = classic::PRIMARY;
const REPLICAS: [&str; 2] = ["10.99.0.32:3306", "10.99.0.33:3306"];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn lab_netns() -> Result<Vec<String>> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("hs-"))
        .map(str::to_owned)
        .collect())
}

/// The lab this run brought up; dropping it runs `deploy/lab.sh down`.
struct Lab {
    script: PathBuf,
}

impl Lab {
    /// Waits up to `wait` for no `hs-*` namespace, then `lab.sh up`. Fails
    /// (touching nothing) if the lab stays up or someone else's comes up first.
    fn up(wait: Duration) -> Result<Lab> {
        let script = repo().join("deploy/lab.sh");
        let deadline = Instant::now() + wait;
        loop {
            let netns = lab_netns()?;
            if netns.is_empty() {
                let out = Command::new(&script)
                    .arg("up")
                    .stdin(Stdio::null())
                    .output()
                    .context("running deploy/lab.sh up")?;
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                eprint!("{text}");
                if out.status.success() && !text.contains("already up") {
                    return Ok(Lab { script });
                }
                if out.status.success() {
                    bail!("someone else's lab came up first; not touching it");
                }
                // Another lab.sh holding the lock: someone else's lab is coming up.
                if !text.contains("another lab.sh is running") {
                    bail!("deploy/lab.sh up failed");
                }
            }
            if Instant::now() >= deadline {
                bail!("the lab is in use ({netns:?}) and did not go away; run again later");
            }
            eprintln!("bench-stack: the lab is in use by someone else ({netns:?}); waiting");
            std::thread::sleep(Duration::from_secs(15));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        eprintln!("bench-stack: deploy/lab.sh down");
        // Its output to stderr: stdout is the report.
        let _ = Command::new(&self.script)
            .arg("down")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::io::stderr()))
            .status();
    }
}

fn connect(addr: &str) -> Result<Conn> {
    let addr: SocketAddr = addr.parse()?;
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(addr.ip().to_string()))
        .tcp_port(addr.port())
        .user(Some("app"))
        .pass(Some("app"))
        .tcp_connect_timeout(Some(Duration::from_secs(2)));
    Ok(Conn::new(opts)?)
}

/// Polls until `f` succeeds, for up to `limit`.
fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => bail!("{what}: {e:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A path through which sysbench runs, and the processes whose CPU time it
/// charges per query, by tier.
struct Path3 {
    name: &'static str,
    addr: SocketAddr,
    /// (tier, PIDs)
    tiers: Vec<(&'static str, Vec<u32>)>,
}

#[derive(Default)]
struct Runs {
    samples: Vec<Sample>,
    /// CPU µs per query of each tier, one entry per run.
    tier_cpu: Vec<Vec<f64>>,
    failed: Vec<String>,
    /// Each round's QPS (None: the run failed), for per-round ratios.
    by_round: Vec<Option<f64>>,
}

fn measure(path: &Path3, workload: &str, threads: u32, seconds: u32, runs: &mut Runs) {
    let cpu = |pids: &[u32]| -> f64 { pids.iter().filter_map(|&p| cpu_seconds(p).ok()).sum() };
    let before: Vec<f64> = path.tiers.iter().map(|(_, p)| cpu(p)).collect();
    match sysbench::run(path.addr, workload, threads, seconds, &[]) {
        Ok(s) => {
            let queries = (s.qps * f64::from(seconds)).max(1.0);
            let per_query = path
                .tiers
                .iter()
                .zip(&before)
                .map(|((_, p), b)| (cpu(p) - b) * 1e6 / queries)
                .collect();
            eprintln!(
                "bench-stack: {workload} {}: {:.0} qps, p95 {:.2} ms, p99 {:.2} ms, {} errors",
                path.name, s.qps, s.p95_ms, s.p99_ms, s.errors
            );
            runs.by_round.push(Some(s.qps));
            runs.samples.push(s);
            runs.tier_cpu.push(per_query);
        }
        Err(e) => {
            eprintln!("bench-stack: {workload} {}: FAILED: {e:#}", path.name);
            runs.failed.push(format!("{e:#}"));
            runs.by_round.push(None);
        }
    }
}

fn main() -> Result<()> {
    let seconds: u32 = env("BENCH_SECONDS", 20);
    let threads: u32 = env("BENCH_THREADS", 8);
    let rounds: usize = env("BENCH_ROUNDS", 3);
    let wait: u64 = env("BENCH_LAB_WAIT", 900);
    let workloads: String = env(
        "BENCH_WORKLOADS",
        "oltp_read_write,oltp_point_select".to_owned(),
    );
    let workloads: Vec<&str> = workloads.split(',').filter(|w| !w.is_empty()).collect();
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root (the namespace lab): run it with sudo");
    }

    // Dropped in reverse order: the classic stack stops before the lab goes down.
    let lab = Lab::up(Duration::from_secs(wait))?;
    let mut classic = Classic::start(classic::default_lab(&repo()))?;
    let up = until(
        "a query through the classic VIP",
        Duration::from_secs(30),
        || {
            classic.check_running()?;
            connect(&format!("{CLASSIC_VIP}:3306"))?.query_drop("SELECT 1")?;
            Ok(())
        },
    );
    if let Err(e) = up {
        bail!("{e:#}\n{}", classic.logs());
    }
    eprintln!("bench-stack: the classic stack answers on {CLASSIC_VIP}:3306");

    sysbench::prepare(PRIMARY.parse()?)?;
    let last = format!("SELECT COUNT(*) FROM sbtest.sbtest{}", sysbench::TABLES);
    for replica in REPLICAS {
        until(
            "the replicas catching up with the prepare",
            Duration::from_secs(120),
            || {
                let n: Option<u64> = connect(replica)?.query_first(&last)?;
                if n != Some(u64::from(sysbench::TABLE_SIZE)) {
                    bail!("{replica}: {n:?} rows");
                }
                Ok(())
            },
        )?;
    }
    eprintln!("bench-stack: sbtest prepared and replicated");

    let lab_pids = |daemon: &str, hosts: [&str; 2]| -> Result<Vec<u32>> {
        let lab = classic::default_lab(&repo());
        hosts
            .iter()
            .map(|h| Ok(u32::try_from(lab.pid(h, daemon)?)?))
            .collect()
    };
    let paths = [
        Path3 {
            name: "hastack",
            addr: HASTACK_VIP.parse()?,
            tiers: vec![
                ("lbd", lab_pids("lbd", ["lb-1", "lb-2"])?),
                ("sqlproxyd", lab_pids("sqlproxyd", ["proxy-1", "proxy-2"])?),
            ],
        },
        Path3 {
            name: "classic",
            addr: format!("{CLASSIC_VIP}:3306").parse()?,
            tiers: vec![
                ("HAProxy on lb", classic.haproxy_pids("lb-")),
                ("HAProxy-TCP on proxy", classic.haproxy_pids("proxy-")),
            ],
        },
        Path3 {
            name: "direct",
            addr: PRIMARY.parse()?,
            tiers: vec![],
        },
    ];
    let mut results: Vec<(&str, Vec<Runs>)> = Vec::new();
    for &workload in &workloads {
        let mut runs: Vec<Runs> = paths.iter().map(|_| Runs::default()).collect();
        for round in 0..rounds {
            // Rotate the order each round, so no path always runs first.
            for i in 0..paths.len() {
                let k = (i + round) % paths.len();
                classic.check_running()?;
                measure(&paths[k], workload, threads, seconds, &mut runs[k]);
            }
        }
        results.push((workload, runs));
    }

    println!(
        "Medians of {rounds} interleaved rounds of {seconds} s each, {threads} threads, \
         sysbench in the root namespace."
    );
    println!();
    println!(
        "| workload | path | QPS | p95 ms | p99 ms | errors (ignored) | failed runs | hastack / this | per round (median) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (workload, runs) in &results {
        let qps = |r: &Runs| median(&r.samples, |s| s.qps);
        let hastack = qps(&runs[0]);
        for (path, r) in paths.iter().zip(runs) {
            // hastack's QPS over this path's in the same round (run back to
            // back), which cancels the drift between rounds.
            let mut per_round: Vec<f64> = runs[0]
                .by_round
                .iter()
                .zip(&r.by_round)
                .filter_map(|(h, t)| Some(h.as_ref()? / t.as_ref()?))
                .collect();
            per_round.sort_by(f64::total_cmp);
            let (ratio, rounds_ratio) = if path.name == "hastack" {
                ("—".to_owned(), "—".to_owned())
            } else {
                let list: Vec<String> = per_round.iter().map(|x| format!("{x:.2}")).collect();
                (
                    format!("{:.2}×", hastack / qps(r)),
                    format!(
                        "{:.2}× ({})",
                        per_round.get(per_round.len() / 2).copied().unwrap_or(0.0),
                        list.join(", ")
                    ),
                )
            };
            println!(
                "| {workload} | {} | {:.0} | {:.2} | {:.2} | {} | {}/{rounds} | {ratio} | {rounds_ratio} |",
                path.name,
                qps(r),
                median(&r.samples, |s| s.p95_ms),
                median(&r.samples, |s| s.p99_ms),
                r.samples.iter().map(|s| s.errors).sum::<u64>(),
                r.failed.len(),
            );
        }
    }
    println!();
    println!("CPU time per query of each proxy tier (both hosts of the tier summed), µs, median:");
    println!();
    println!("| workload | path | tier | CPU µs per query |");
    println!("|---|---|---|---|");
    for (workload, runs) in &results {
        for (path, r) in paths.iter().zip(runs) {
            for (t, (tier, _)) in path.tiers.iter().enumerate() {
                let mut v: Vec<f64> = r.tier_cpu.iter().map(|c| c[t]).collect();
                v.sort_by(f64::total_cmp);
                let m = v.get(v.len() / 2).copied().unwrap_or(0.0);
                println!("| {workload} | {} | {tier} | {m:.1} |", path.name);
            }
        }
    }
    for (workload, runs) in &results {
        for (path, r) in paths.iter().zip(runs) {
            for f in &r.failed {
                println!("\n{workload} {} failed: {f}", path.name);
            }
        }
    }
    let reps: usize = env("BENCH_CHAOS_REPS", 3);
    if reps > 0 {
        chaos_tables(classic, reps)?;
    } else {
        drop(classic);
    }
    drop(lab);
    Ok(())
}

const HASTACK_HOSTS: [&str; 4] = ["lb-1", "lb-2", "proxy-1", "proxy-2"];

/// The fault tables (issue 10 items 3–4): the classic stack alone first
/// (hastack's tiers stopped, so nothing fails the primary over under it),
/// then hastack alone (the classic stack stopped). Prints the summary and
/// writes every run to `BENCH_CHAOS_JSON`.
fn chaos_tables(mut classic: Classic, reps: usize) -> Result<()> {
    let cfg = RunConfig {
        load: WorkloadConfig {
            conns: env("BENCH_CHAOS_CONNS", 8),
            max_ops: 200_000,
            max_time: Duration::from_secs(240),
            pause: Duration::from_millis(5),
        },
        before: Duration::from_secs(3),
        hold: Duration::from_secs(3),
        converge_timeout: Duration::from_secs(30),
        partition: Duration::from_secs(10),
        stale_after: Duration::from_secs(7),
    };
    for host in HASTACK_HOSTS {
        classic.lab().ok(&["stop", host])?;
    }
    let only: Vec<String> = env("BENCH_CHAOS_FAULTS", String::new())
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let mut runs = fault_table::run("classic", &mut classic, reps, &only, &cfg);
    if runs.iter().any(|r| r.report.is_err()) {
        eprintln!(
            "bench-stack: classic runs failed; its logs:\n{}",
            classic.logs()
        );
    }
    drop(classic);
    let mut hastack = classic::default_lab(&repo());
    for host in HASTACK_HOSTS {
        hastack.ok(&["start", host])?;
    }
    until(
        "hastack serving again, lb-1 holding its VIP",
        Duration::from_secs(60),
        || {
            if chaos::vip_holders() != ["lb-1"] {
                bail!("VIP on {:?}", chaos::vip_holders());
            }
            connect(HASTACK_VIP)?.query_drop("SELECT 1")?;
            Ok(())
        },
    )?;
    runs.extend(fault_table::run("hastack", &mut hastack, reps, &only, &cfg));
    println!();
    println!(
        "Fault table: each fault {reps} times, {} connections through the VIP, writes and reads \
         (docs/lab.md); medians / worsts over the runs that completed.",
        cfg.load.conns
    );
    println!();
    print!("{}", fault_table::summary(&runs));
    let path = std::env::var("BENCH_CHAOS_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("bench/stack-chaos.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&fault_table::json(&runs))?,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench-stack: every run in {}", path.display());
    Ok(())
}
