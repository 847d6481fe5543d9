//! sqlproxyd vs HAProxy (TCP mode) vs a direct connection, with sysbench,
//! in one run, on one 3-node MariaDB replication cluster.
//!
//! Run with the release binaries (see bench/README.md):
//! `cargo build --release --workspace --bins && target/release/bench-sqlproxyd [SECONDS]`
//! Prints a markdown table for bench/RESULTS.md.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hastack_bench::baseline::older_sqlproxyd_config;
use hastack_bench::sysbench::{self, cpu_seconds, median, Sample};
use hastack_it::daemon::DaemonProcess;
use hastack_it::ports::free_port;
use hastack_it::sqlproxy::{config, Proxy, RawClient};
use hastack_it::{wait_for, MariaDbCluster};

struct Haproxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backend: SocketAddr) -> Result<Haproxy> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let dir = tempfile::Builder::new()
            .prefix("hs-bench-haproxy-")
            .tempdir()?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\
                 frontend mysql\n  bind {addr}\n  default_backend db\nbackend db\n  server primary {backend}\n"
            ),
        )?;
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting haproxy (apt-get install haproxy)")?;
        let up = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            std::net::TcpStream::connect(addr).ok()
        });
        if up.is_none() {
            bail!("haproxy did not listen on {addr}");
        }
        Ok(Haproxy {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs sysbench against `addr`, charging CPU to `proxy_pid` if there is a proxy.
fn measured(
    addr: SocketAddr,
    proxy_pid: Option<u32>,
    workload: &str,
    threads: u32,
    seconds: u32,
) -> Result<Sample> {
    measured_as(addr, proxy_pid, workload, threads, seconds, &[])
}

/// [`measured`] with extra sysbench options (another user's login).
fn measured_as(
    addr: SocketAddr,
    proxy_pid: Option<u32>,
    workload: &str,
    threads: u32,
    seconds: u32,
    extra: &[&str],
) -> Result<Sample> {
    let before = proxy_pid.map(cpu_seconds).transpose()?;
    let mut s = sysbench::run(addr, workload, threads, seconds, extra)?;
    if let (Some(pid), Some(before)) = (proxy_pid, before) {
        let used = cpu_seconds(pid)? - before;
        s.cpu_us_per_query = used * 1e6 / (s.qps * f64::from(seconds)).max(1.0);
    }
    Ok(s)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("VmRSS not found")
}

/// A sqlproxyd of another build (`BENCH_BASELINE_BIN_DIR`), on the same
/// cluster with the same config less the keys it may not know yet.
struct Baseline {
    daemon: DaemonProcess,
    addr: SocketAddr,
}

impl Baseline {
    fn start(dir: &Path, cluster: &MariaDbCluster) -> Result<Baseline> {
        let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (addr, http, admin) = (port(), port(), port());
        let yaml = config(cluster, addr, http, admin, "primary", "", "");
        let daemon =
            DaemonProcess::start_from(dir, "sqlproxyd", &older_sqlproxyd_config(&yaml), http)?;
        Ok(Baseline { daemon, addr })
    }
}

/// This build's sqlproxyd, where the read_only user `reader` may also read
/// sbtest, its backend connections logging in as the read-only account
/// (`app_ro`): its path is the application's but for the enforcement.
fn start_with_reader(cluster: &MariaDbCluster) -> Result<Proxy> {
    let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (addr, http, admin) = (port(), port(), port());
    let ro = "    read_only_user: app_ro\n    read_only_password: app_ro\n";
    let yaml = config(cluster, addr, http, admin, "primary", ro, "").replace(
        "schemas: [app], read_only: true",
        "schemas: [app, sbtest], read_only: true",
    );
    let daemon = DaemonProcess::start("sqlproxyd", &yaml, http)?;
    Ok(Proxy {
        daemon,
        addr,
        admin,
    })
}

fn main() -> Result<()> {
    let seconds: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let all = ["oltp_point_select", "oltp_read_only", "oltp_read_write"];
    let chosen: Vec<String> = std::env::args().skip(2).collect();
    let workloads: Vec<&str> = if chosen.is_empty() {
        all.to_vec()
    } else {
        chosen.iter().map(String::as_str).collect()
    };
    let cluster = MariaDbCluster::start(3)?;
    // balance 0: every query to the primary, so all three paths reach the same server.
    let proxy = start_with_reader(&cluster)?;
    let baseline = std::env::var_os("BENCH_BASELINE_BIN_DIR")
        .map(|d| Baseline::start(Path::new(&d), &cluster))
        .transpose()?;
    let haproxy = Haproxy::start(cluster.addr(0))?;
    sysbench::prepare(cluster.addr(0))?;
    cluster.wait_caught_up(Duration::from_secs(60))?;

    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    // The read_only user's path, when its workload only reads.
    let readers = std::env::var("BENCH_READER").is_ok_and(|v| v == "1");
    let mut costs = Vec::new();
    println!("Medians of {rounds} interleaved rounds of {seconds} s each.");
    println!();
    println!("| workload | threads | direct QPS | HAProxy-TCP QPS | sqlproxyd QPS | sqlproxyd / HAProxy | sqlproxyd / direct | p95 ms direct / HAProxy / sqlproxyd | proxy CPU µs per query HAProxy / sqlproxyd | deadlocks d/h/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &workload in &workloads {
        for threads in [8, 64] {
            let (mut d, mut h, mut s) = (Vec::new(), Vec::new(), Vec::new());
            let (mut b, mut r) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                d.push(measured(cluster.addr(0), None, workload, threads, seconds)?);
                h.push(measured(
                    haproxy.addr,
                    Some(haproxy.child.id()),
                    workload,
                    threads,
                    seconds,
                )?);
                s.push(measured(
                    proxy.addr,
                    Some(proxy.daemon.pid()),
                    workload,
                    threads,
                    seconds,
                )?);
                if readers {
                    r.push(measured_as(
                        proxy.addr,
                        Some(proxy.daemon.pid()),
                        workload,
                        threads,
                        seconds,
                        &["--mysql-user=reader", "--mysql-password=reader"],
                    )?);
                }
                if let Some(base) = &baseline {
                    b.push(measured(
                        base.addr,
                        Some(base.daemon.pid()),
                        workload,
                        threads,
                        seconds,
                    )?);
                }
            }
            if !b.is_empty() || !r.is_empty() {
                costs.push((workload, threads, b, s.clone(), r));
            }
            let errors = |v: &[Sample]| v.iter().map(|x| x.errors).sum::<u64>();
            let (de, he, se) = (errors(&d), errors(&h), errors(&s));
            let qps = |x: &Sample| x.qps;
            let p95 = |x: &Sample| x.p95_ms;
            let cpu = |x: &Sample| x.cpu_us_per_query;
            let (dq, hq, sq) = (median(&d, qps), median(&h, qps), median(&s, qps));
            println!(
                "| {workload} | {threads} | {dq:.0} | {hq:.0} | {sq:.0} | {:.2}× | {:.2}× | {:.2} / {:.2} / {:.2} | {:.1} / {:.1} | {de}/{he}/{se} |",
                sq / hq,
                sq / dq,
                median(&d, p95),
                median(&h, p95),
                median(&s, p95),
                median(&h, cpu),
                median(&s, cpu),
            );
        }
    }

    if !costs.is_empty() {
        println!();
        println!("This build against the baseline build (`BENCH_BASELINE_BIN_DIR`), and as the read_only user, same rounds:");
        println!();
        println!("| workload | threads | baseline QPS | sqlproxyd QPS | sqlproxyd / baseline | reader QPS | reader / app | p95 ms baseline / sqlproxyd / reader | CPU µs per query baseline / sqlproxyd / reader |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (workload, threads, b, s, r) in &costs {
            let qps: fn(&Sample) -> f64 = |x| x.qps;
            let p95: fn(&Sample) -> f64 = |x| x.p95_ms;
            let cpu: fn(&Sample) -> f64 = |x| x.cpu_us_per_query;
            // A path not measured reads NaN, not 0.
            let m = |v: &[Sample], f: fn(&Sample) -> f64| {
                if v.is_empty() {
                    f64::NAN
                } else {
                    median(v, f)
                }
            };
            let (bq, sq, rq) = (m(b, qps), m(s, qps), m(r, qps));
            println!(
                "| {workload} | {threads} | {bq:.0} | {sq:.0} | {:.3}× | {rq:.0} | {:.3}× | {:.2} / {:.2} / {:.2} | {:.1} / {:.1} / {:.1} |",
                sq / bq,
                rq / sq,
                m(b, p95),
                m(s, p95),
                m(r, p95),
                m(b, cpu),
                m(s, cpu),
                m(r, cpu),
            );
        }
    }

    // Memory: 1,000 idle client sessions (logged in, no backend connection yet).
    // Raw logins: client libraries run queries at connect, which would open
    // backend connections; an idle application pool's sessions do not.
    let before = rss_kib(proxy.daemon.pid())?;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(RawClient::login(proxy.addr, "app", "app", None)?);
    }
    std::thread::sleep(Duration::from_secs(1));
    let with_idle = rss_kib(proxy.daemon.pid())?;
    println!();
    println!(
        "sqlproxyd RSS: {} KiB at rest, {} KiB with 1,000 idle client sessions",
        before, with_idle
    );
    drop(idle);
    Ok(())
}
