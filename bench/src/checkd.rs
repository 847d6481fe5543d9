//! checkd vs xinetd + the classic bash status script, in one run, against
//! one MariaDB: checks per second and the latency of the 200 answer of
//! (a) checkd's `http_check` with the built-in `mysql` probe (cache 500ms,
//! and cache 0s: a probe per request, except that requests arriving while
//! one runs share it), (b) xinetd running the script (which
//! runs the `mariadb` CLI's `select 1`) and (c) checkd's `exec` service
//! running the same script.
//!
//! Run with the release binaries (see bench/README.md):
//! `cargo build --release --workspace --bins && target/release/bench-checkd [SECONDS]`
//! (SECONDS per measured run defaults to `$BENCH_SECONDS`, else 5; rounds to
//! `$BENCH_ROUNDS`, else 3). Prints a markdown table for bench/RESULTS.md;
//! one line per run goes to stderr.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hastack_it::daemon::{bin_path, http_get};
use hastack_it::ports::free_port;
use hastack_it::process::LoggedChild;
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

/// What every client sends on each connection: HAProxy's `option httpchk
/// GET /` as it sends it (HTTP/1.1, a Host header, no keep-alive reuse).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
/// Concurrent client threads, each one connection at a time.
const CONCURRENCY: [usize; 2] = [1, 8];
/// Most requests of one measured run, over all its threads.
const MAX_REQUESTS: usize = 500_000;
/// Unrecorded load before each measured run (same target and concurrency).
const WARM_UP: Duration = Duration::from_millis(500);
/// One request's bound: connect, then each read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The issue's targets for the built-in probe.
const TARGET_RATIO: f64 = 50.0;
const TARGET_P99: Duration = Duration::from_millis(2);
/// What the issue says xinetd + the script measures (checks a second).
const ISSUE_XINETD_RATE: f64 = 244.0;

/// Limits far above anything the bench reaches, so neither daemon's
/// xinetd-style rate limit (`cps = 50 10` by default) shapes the result.
const CHECKD_LIMITS: &str =
    "    instances: 100000\n    per_source: 100000\n    cps: {rate: 1000000, pause: 1s}\n";
const XINETD_LIMITS: &str = "  instances = UNLIMITED\n  per_source = UNLIMITED\n  cps = 10000 1\n";

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One address under load, and the process whose CPU it costs.
struct Target {
    label: &'static str,
    addr: SocketAddr,
    /// checkd or xinetd; their exec'd children count once reaped.
    pid: u32,
    /// The checkd service name, to read its probe count from /metrics.
    service: Option<&'static str>,
}

/// The lab: one MariaDB, one checkd with three services, one xinetd.
struct Lab {
    _cluster: MariaDbCluster,
    db_pid: u32,
    checkd: LoggedChild,
    checkd_admin: SocketAddr,
    xinetd: LoggedChild,
    targets: Vec<Target>,
    _dir: tempfile::TempDir,
}

fn start_lab() -> Result<Lab> {
    let cluster = MariaDbCluster::start(1)?;
    let db = cluster.addr(0);
    let pid_file: String = cluster
        .conn(0)?
        .query_first("SELECT @@pid_file")?
        .context("no @@pid_file")?;
    let db_pid: u32 = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {pid_file}"))?
        .trim()
        .parse()?;

    let dir = tempfile::Builder::new()
        .prefix("hs-bench-checkd-")
        .tempdir()?;
    // Both daemons run the script as nobody, as the guides do.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let script = dir.path().join("mycat_status");
    // The script carries the port in its text: xinetd passes no environment.
    std::fs::write(&script, hastack_it::scripts::mycat_status(db.port()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;

    let (cached, uncached, exec, xinetd_port, admin) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let checkd_admin = local(admin);
    let probe = format!(
        "      mysql: {{address: {db}, user: app, password: app, query: SELECT 1, timeout: 2s}}\n"
    );
    let config = format!(
        "admin_http:\n  listen: {checkd_admin}\nshutdown_grace: 1s\nservices:\n\
         \x20 check_cached:\n    type: http_check\n    bind: 127.0.0.1:{cached}\n{CHECKD_LIMITS}    probe:\n{probe}      cache: 500ms\n\
         \x20 check_uncached:\n    type: http_check\n    bind: 127.0.0.1:{uncached}\n{CHECKD_LIMITS}    probe:\n{probe}      cache: 0s\n\
         \x20 mycat_status:\n    type: exec\n    bind: 127.0.0.1:{exec}\n{CHECKD_LIMITS}    server: {}\n    user: nobody\n    timeout: 10s\n",
        script.display()
    );
    let checkd_conf = dir.path().join("checkd.yaml");
    std::fs::write(&checkd_conf, config)?;
    // The default log level (info), one line per served connection (the
    // default log_on_success: HOST DURATION), to a file as journald would.
    let checkd = LoggedChild::spawn(
        &bin_path("checkd")?,
        &[
            "-f",
            &checkd_conf.display().to_string(),
            "--log-level",
            "info",
        ],
        dir.path().join("checkd.log"),
    )?;
    let ready = wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        http_get(checkd_admin, "/status")
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    if ready.is_none() {
        bail!("checkd did not come up:\n{}", checkd.log_tail());
    }

    // xinetd logs the same items to a file.
    let xinetd_conf = dir.path().join("xinetd.conf");
    std::fs::write(
        &xinetd_conf,
        format!(
            "defaults\n{{\n{XINETD_LIMITS}  log_type = FILE {}\n  log_on_success = HOST DURATION\n  log_on_failure = HOST\n}}\n\
             service mycat_status\n{{\n  type = UNLISTED\n  flags = REUSE\n  socket_type = stream\n  protocol = tcp\n  port = {xinetd_port}\n  bind = 127.0.0.1\n  wait = no\n  user = nobody\n  server = {}\n  only_from = 127.0.0.1\n  disable = no\n}}\n",
            dir.path().join("xinetd.log").display(),
            script.display()
        ),
    )?;
    let xinetd_bin = Path::new("/usr/sbin/xinetd");
    if !xinetd_bin.exists() {
        bail!("{} not found: apt-get install xinetd", xinetd_bin.display());
    }
    let xinetd = LoggedChild::spawn(
        xinetd_bin,
        &[
            "-dontfork",
            "-f",
            &xinetd_conf.display().to_string(),
            "-pidfile",
            &dir.path().join("xinetd.pid").display().to_string(),
        ],
        dir.path().join("xinetd.stderr"),
    )?;
    let listening = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        TcpStream::connect(local(xinetd_port)).ok()
    });
    if listening.is_none() {
        bail!("xinetd did not listen:\n{}", xinetd.log_tail());
    }

    let targets = vec![
        Target {
            label: "checkd http_check, mysql probe, cache 500ms",
            addr: local(cached),
            pid: checkd.pid(),
            service: Some("check_cached"),
        },
        Target {
            label: "checkd http_check, mysql probe, cache 0s",
            addr: local(uncached),
            pid: checkd.pid(),
            service: Some("check_uncached"),
        },
        Target {
            label: "xinetd + bash script (mariadb CLI)",
            addr: local(xinetd_port),
            pid: xinetd.pid(),
            service: None,
        },
        Target {
            label: "checkd exec + the same script",
            addr: local(exec),
            pid: checkd.pid(),
            service: None,
        },
    ];
    Ok(Lab {
        _cluster: cluster,
        db_pid,
        checkd,
        checkd_admin,
        xinetd,
        targets,
        _dir: dir,
    })
}

/// What one request got.
enum Answer {
    /// A 200; `reset` when the connection then ended with a RST instead of
    /// a FIN (the script never reads the request, so closing its socket
    /// with unread bytes resets it).
    Ok {
        took: Duration,
        reset: bool,
    },
    Failed(String),
}

fn request(addr: SocketAddr) -> Answer {
    let started = Instant::now();
    let result = (|| -> std::io::Result<(Vec<u8>, bool)> {
        let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        s.set_nodelay(true)?;
        s.write_all(REQUEST)?;
        let mut got = Vec::with_capacity(512);
        match s.read_to_end(&mut got) {
            Ok(_) => Ok((got, false)),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !got.is_empty() => Ok((got, true)),
            Err(e) => Err(e),
        }
    })();
    let took = Instant::now().saturating_duration_since(started);
    match result {
        Ok((got, reset)) if got.starts_with(b"HTTP/1.1 200") => Answer::Ok { took, reset },
        Ok((got, _)) => {
            let first = String::from_utf8_lossy(&got);
            Answer::Failed(match first.lines().next() {
                Some(line) if !line.is_empty() => line.to_owned(),
                _ => "closed without an answer".into(),
            })
        }
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// One measured run of one target at one concurrency.
#[derive(Default)]
struct Run {
    wall: Duration,
    /// Latencies of the 200 answers.
    ok: Vec<Duration>,
    resets: usize,
    errors: usize,
    first_error: Option<String>,
    /// CPU seconds of the daemon (its reaped children included), MariaDB
    /// and this client during the run.
    daemon_cpu: f64,
    db_cpu: f64,
    client_cpu: f64,
    /// CPU seconds the rest of the machine used meanwhile (other builds
    /// and tests on a shared box): user + system time of all CPUs minus
    /// the three above.
    other_cpu: f64,
    /// Probes checkd ran (http_check services).
    probes: Option<f64>,
}

/// `threads` clients for `length` (or until `max` requests in all).
fn load(addr: SocketAddr, threads: usize, length: Duration, max: usize) -> Result<Run> {
    let deadline = Instant::now() + length;
    let per_thread = max.div_ceil(threads);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while answers.len() < per_thread && Instant::now() < deadline {
                    answers.push(request(addr));
                }
                answers
            })
        })
        .collect();
    let mut run = Run::default();
    for w in workers {
        for a in w.join().map_err(|_| anyhow!("a client thread panicked"))? {
            match a {
                Answer::Ok { took, reset } => {
                    run.ok.push(took);
                    run.resets += usize::from(reset);
                }
                Answer::Failed(why) => {
                    run.errors += 1;
                    run.first_error.get_or_insert(why);
                }
            }
        }
    }
    run.wall = Instant::now().saturating_duration_since(started);
    Ok(run)
}

/// utime + stime (+ the reaped children's cutime + cstime), in seconds.
fn cpu_seconds(pid: &str, children: bool) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: utime is field 14.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let n = if children { 4 } else { 2 };
    // CLK_TCK is 100 on Linux.
    Ok(f.iter().take(n).sum::<f64>() / 100.0)
}

/// user + nice + system time of all CPUs, in seconds (interrupt time is
/// left out: whether it is charged to a process depends on the kernel).
fn machine_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: f64 = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|v| v.parse::<f64>().unwrap_or(0.0))
        .sum();
    Ok(ticks / 100.0)
}

/// checkd's `hastack_checkd_probes_total` for `service`, all results.
fn probes(admin: SocketAddr, service: &str) -> Result<f64> {
    let (_, text) = http_get(admin, "/metrics")?;
    let prefix = format!("hastack_checkd_probes_total{{service=\"{service}\"");
    Ok(text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn measure(lab: &Lab, t: &Target, threads: usize, length: Duration) -> Result<Run> {
    load(t.addr, threads, WARM_UP, MAX_REQUESTS)?;
    let pid = t.pid.to_string();
    let db = lab.db_pid.to_string();
    let probes_before = t.service.map(|s| probes(lab.checkd_admin, s)).transpose()?;
    let before = (
        cpu_seconds(&pid, true)?,
        cpu_seconds(&db, false)?,
        cpu_seconds("self", false)?,
        machine_cpu_seconds()?,
    );
    let mut run = load(t.addr, threads, length, MAX_REQUESTS)?;
    run.daemon_cpu = cpu_seconds(&pid, true)? - before.0;
    run.db_cpu = cpu_seconds(&db, false)? - before.1;
    run.client_cpu = cpu_seconds("self", false)? - before.2;
    run.other_cpu =
        (machine_cpu_seconds()? - before.3 - run.daemon_cpu - run.db_cpu - run.client_cpu).max(0.0);
    if let (Some(s), Some(b)) = (t.service, probes_before) {
        run.probes = Some(probes(lab.checkd_admin, s)? - b);
    }
    Ok(run)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// All rounds of one target at one concurrency, summed up.
struct Row {
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    requests: usize,
    resets: usize,
    daemon_us: f64,
    db_us: f64,
    client_us: f64,
    /// Cores the rest of the machine used meanwhile.
    other_cores: f64,
    /// Probes checkd ran, and the 200 answers they served.
    probes: Option<f64>,
    answers: usize,
}

fn summarise(runs: &[Run]) -> Row {
    let mut all: Vec<Duration> = runs.iter().flat_map(|r| r.ok.iter().copied()).collect();
    all.sort();
    let answered: usize = runs.iter().map(|r| r.ok.len() + r.errors).sum();
    let per = |f: fn(&Run) -> f64| 1e6 * runs.iter().map(f).sum::<f64>() / answered.max(1) as f64;
    let probes: Option<f64> = runs.iter().map(|r| r.probes).sum();
    Row {
        rate: median(
            runs.iter()
                .map(|r| r.ok.len() as f64 / r.wall.as_secs_f64().max(1e-9))
                .collect(),
        ),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        errors: runs.iter().map(|r| r.errors).sum(),
        requests: answered,
        resets: runs.iter().map(|r| r.resets).sum(),
        daemon_us: per(|r| r.daemon_cpu),
        db_us: per(|r| r.db_cpu),
        client_us: per(|r| r.client_cpu),
        other_cores: runs.iter().map(|r| r.other_cpu).sum::<f64>()
            / runs
                .iter()
                .map(|r| r.wall.as_secs_f64())
                .sum::<f64>()
                .max(1e-9),
        probes,
        answers: runs.iter().map(|r| r.ok.len()).sum(),
    }
}

fn main() -> Result<()> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0),
    };
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    if seconds.is_nan() || seconds <= 0.0 || rounds == 0 {
        bail!("SECONDS and BENCH_ROUNDS must be positive");
    }
    let length = Duration::from_secs_f64(seconds);
    let lab = start_lab()?;
    // Every target must answer 200 before it is measured.
    for t in &lab.targets {
        if let Answer::Failed(why) = request(t.addr) {
            bail!(
                "{} at {} does not answer 200: {why}\ncheckd:\n{}\nxinetd:\n{}",
                t.label,
                t.addr,
                lab.checkd.log_tail(),
                lab.xinetd.log_tail()
            );
        }
    }

    // runs[target][concurrency] over the rounds, interleaved.
    let mut runs: Vec<Vec<Vec<Run>>> = lab
        .targets
        .iter()
        .map(|_| CONCURRENCY.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=rounds {
        for (ci, &threads) in CONCURRENCY.iter().enumerate() {
            for (ti, t) in lab.targets.iter().enumerate() {
                let run = measure(&lab, t, threads, length)
                    .with_context(|| format!("{} at concurrency {threads}", t.label))?;
                eprintln!(
                    "round {round}, c={threads}, {}: {} ok in {:.2} s ({:.0}/s), {} errors{}, CPU s daemon {:.2} / MariaDB {:.2} / client {:.2} / other processes {:.2}{}",
                    t.label,
                    run.ok.len(),
                    run.wall.as_secs_f64(),
                    run.ok.len() as f64 / run.wall.as_secs_f64().max(1e-9),
                    run.errors,
                    run.first_error
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default(),
                    run.daemon_cpu,
                    run.db_cpu,
                    run.client_cpu,
                    run.other_cpu,
                    run.probes
                        .map(|p| format!(", {p:.0} probes"))
                        .unwrap_or_default(),
                );
                runs[ti][ci].push(run);
            }
        }
    }

    let xinetd = 2;
    let rows: Vec<Vec<Row>> = runs
        .iter()
        .map(|per_c| per_c.iter().map(|r| summarise(r)).collect())
        .collect();
    println!(
        "{rounds} interleaved rounds of {seconds} s per target and concurrency (after {} ms of warm-up each); req/s is the median of the rounds, p50/p99 are over every 200 answer of all rounds. Each request: connect, `GET / HTTP/1.1`, read to EOF; errors are requests without a 200.",
        WARM_UP.as_millis()
    );
    println!();
    println!("| target | concurrency | req/s | p50 ms | p99 ms | errors / requests | req/s ÷ xinetd | CPU µs per check: daemon (+ children) / MariaDB / client | other processes, cores |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (ci, &threads) in CONCURRENCY.iter().enumerate() {
        let base = rows[xinetd][ci].rate;
        for (ti, t) in lab.targets.iter().enumerate() {
            let r = &rows[ti][ci];
            println!(
                "| {} | {threads} | {:.0} | {} | {} | {} / {} | {:.1}× | {:.0} / {:.0} / {:.0} | {:.2} |",
                t.label,
                r.rate,
                ms(r.p50),
                ms(r.p99),
                r.errors,
                r.requests,
                r.rate / base.max(1e-9),
                r.daemon_us,
                r.db_us,
                r.client_us,
                r.other_cores,
            );
        }
    }
    println!();
    for (ci, &threads) in CONCURRENCY.iter().enumerate() {
        let base = rows[xinetd][ci].rate;
        for ti in [0, 1] {
            let r = &rows[ti][ci];
            let ratio = r.rate / base.max(1e-9);
            println!(
                "- c={threads}, {}: {:.1}× xinetd (target ≥ {TARGET_RATIO:.0}×: {}), {:.1}× the issue's {ISSUE_XINETD_RATE:.0}/s, p99 {} ms (target < {} ms: {}); {:.0} probes for {} checks",
                lab.targets[ti].label,
                ratio,
                if ratio >= TARGET_RATIO { "met" } else { "NOT met" },
                r.rate / ISSUE_XINETD_RATE,
                ms(r.p99),
                TARGET_P99.as_millis(),
                if r.p99 < TARGET_P99 { "met" } else { "NOT met" },
                r.probes.unwrap_or(0.0),
                r.answers,
            );
        }
        let (x, e) = (&rows[xinetd][ci], &rows[3][ci]);
        println!(
            "- c={threads}, checkd exec vs xinetd, same script: {:.2}× the req/s, p99 {} vs {} ms; connections reset after the 200 (script never reads the request): xinetd {}, checkd exec {}",
            e.rate / x.rate.max(1e-9),
            ms(e.p99),
            ms(x.p99),
            x.resets,
            e.resets,
        );
    }
    let all: Vec<&Run> = runs.iter().flatten().flatten().collect();
    let cores = |r: &Run| r.other_cpu / r.wall.as_secs_f64().max(1e-9);
    println!();
    println!(
        "Other processes on the machine used {:.2} cores on average during the measured runs (the busiest run: {:.2} of {} cores).",
        all.iter().map(|r| r.other_cpu).sum::<f64>()
            / all.iter().map(|r| r.wall.as_secs_f64()).sum::<f64>().max(1e-9),
        all.iter().map(|r| cores(r)).fold(0.0, f64::max),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!();
    println!("Limits: checkd `instances: 100000`, `per_source: 100000`, `cps: {{rate: 1000000, pause: 1s}}` on every service; xinetd `instances = UNLIMITED`, `per_source = UNLIMITED`, `cps = 10000 1` (its default `cps = 50 10` would cap it at 50 connections a second). Both log one line per connection (HOST DURATION) to a file; both run the script as nobody.");
    Ok(())
}
