//! sqlproxyd's failover and switchover under write load, on a fresh 3-node
//! MariaDB cluster (semi-sync on the primary) per trial: how long writes
//! stop when the primary is killed with SIGKILL, how many writes fail, and
//! whether any acknowledged write is missing on the new primary. Peers'
//! defaults (MaxScale, Mycat) are computed from their settings, not measured.
//!
//! Run with the release binaries (see bench/README.md):
//! `cargo build --release --workspace --bins && target/release/bench-failover [TRIALS] [failover] [switchover]`
//! (TRIALS defaults to `$BENCH_TRIALS`, else 5). Prints markdown tables for
//! bench/RESULTS.md; one line per trial goes to stderr.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hastack_it::sqlproxy::Proxy;
use hastack_it::{wait_for, MariaDbCluster};
use mysql::prelude::Queryable;

/// Most statements one trial's writer sends.
const WRITE_LIMIT: u32 = 200_000;
/// Longest one trial's writer runs.
const WRITE_TIME: Duration = Duration::from_secs(45);
/// After the first write that succeeds past the event, writes go on this
/// long (to count failures that come after a recovery), then stop.
const AFTER_RECOVERY: Duration = Duration::from_secs(1);
/// Writes before the event, so the load is steady when it happens.
const WARM_UP: Duration = Duration::from_millis(1500);
/// Trial `t` of `n` waits a further `(t - 1) / n` of a heartbeat interval
/// before the kill, so the trials sample the kill's phase against the
/// heartbeat evenly (otherwise every trial's setup takes about as long and
/// the kill lands at the same point of the heartbeat cycle each time).
/// A failed write is retried on a new connection after this pause.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// A heartbeat configuration under test.
struct HaConfig {
    label: &'static str,
    interval: &'static str,
    /// `interval` as a Duration.
    period: Duration,
    timeout: &'static str,
    /// The target for the median write outage.
    target: Duration,
}

const CONFIGS: [HaConfig; 2] = [
    HaConfig {
        label: "sqlproxyd, heartbeat 1s, timeout 1s, fail_count 3 (defaults)",
        interval: "1s",
        period: Duration::from_secs(1),
        timeout: "1s",
        target: Duration::from_secs(5),
    },
    HaConfig {
        label: "sqlproxyd, heartbeat 500ms, timeout 500ms, fail_count 3",
        interval: "500ms",
        period: Duration::from_millis(500),
        timeout: "500ms",
        target: Duration::from_millis(2500),
    },
];

fn ha_block(interval: &str, timeout: &str) -> String {
    format!(
        "    heartbeat: {{interval: {interval}, fail_count: 3, timeout: {timeout}, user: monitor, password: monitor}}\n\
         \x20   failover: {{replication_user: repl, replication_password: repl, min_switch_interval: 1s}}\n"
    )
}

/// One statement the writer sent.
struct Attempt {
    id: u32,
    start: Instant,
    end: Instant,
    error: Option<String>,
}

/// Inserts ids 1.. through the proxy, one autocommit statement each,
/// reconnecting after an error as a pooled application would. Stops
/// [`AFTER_RECOVERY`] after the first success of a statement sent once
/// `event` is set, or at [`WRITE_LIMIT`] statements, or after [`WRITE_TIME`].
fn spawn_writer(addr: SocketAddr, event: Arc<OnceLock<Instant>>) -> JoinHandle<Vec<Attempt>> {
    std::thread::spawn(move || {
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(addr.ip().to_string()))
            .tcp_port(addr.port())
            .user(Some("app"))
            .pass(Some("app"))
            .db_name(Some("app"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(2)))
            .read_timeout(Some(Duration::from_secs(10)))
            .write_timeout(Some(Duration::from_secs(10)));
        let began = Instant::now();
        let mut attempts = Vec::new();
        let mut conn: Option<mysql::Conn> = None;
        let mut recovered: Option<Instant> = None;
        for id in 1..=WRITE_LIMIT {
            let now = Instant::now();
            if now.saturating_duration_since(began) > WRITE_TIME
                || recovered.is_some_and(|r| now.saturating_duration_since(r) > AFTER_RECOVERY)
            {
                break;
            }
            let start = Instant::now();
            let result = (|| -> Result<(), mysql::Error> {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => conn.insert(mysql::Conn::new(opts.clone())?),
                };
                c.query_drop(format!(
                    "INSERT INTO ledger (id, payload) VALUES ({id}, REPEAT('x', 100))"
                ))
            })();
            let end = Instant::now();
            let failed = result.is_err();
            if !failed && recovered.is_none() && event.get().is_some_and(|e| start >= *e) {
                recovered = Some(end);
            }
            attempts.push(Attempt {
                id,
                start,
                end,
                error: result.err().map(|e| e.to_string()),
            });
            if failed {
                conn = None;
                std::thread::sleep(RETRY_PAUSE);
            }
        }
        attempts
    })
}

fn join(writer: JoinHandle<Vec<Attempt>>) -> Result<Vec<Attempt>> {
    writer.join().map_err(|_| anyhow!("the writer panicked"))
}

fn primary_of(proxy: &Proxy) -> Option<String> {
    proxy.daemon.status().ok()?["state"]["data_hosts"][0]["primary"]
        .as_str()
        .map(str::to_owned)
}

/// Waits until the proxy names a primary that `ok` accepts.
fn wait_primary(proxy: &Proxy, ok: impl Fn(&str) -> bool) -> Result<String> {
    wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        primary_of(proxy).filter(|p| ok(p))
    })
    .ok_or_else(|| {
        anyhow!(
            "the proxy did not report the expected primary (it says {:?})\n{}",
            primary_of(proxy),
            proxy.daemon.log()
        )
    })
}

/// Node index of `db-N`.
fn index_of(name: &str) -> Result<usize> {
    name.strip_prefix("db-")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| n.checked_sub(1))
        .with_context(|| format!("not a node name: {name}"))
}

/// A fresh cluster (semi-sync on node 0) and a proxy that reports db-1
/// primary, with the ledger table created through it.
fn setup(ha: &str) -> Result<(MariaDbCluster, Proxy)> {
    let cluster = MariaDbCluster::start(3)?;
    cluster.enable_semi_sync(0)?;
    let proxy = Proxy::start(&cluster, "primary", ha)?;
    wait_primary(&proxy, |p| p == "db-1")?;
    proxy
        .conn("app", "app", Some("app"))?
        .query_drop("CREATE TABLE ledger (id INT PRIMARY KEY, payload TEXT)")?;
    Ok((cluster, proxy))
}

/// What one trial measured.
struct Outcome {
    /// Kill (or command) → first successful write sent after it.
    outage: Duration,
    failed: usize,
    /// Failed writes whose row is on the new primary all the same (the
    /// error came after the commit: the client cannot tell).
    failed_but_committed: usize,
    lost: usize,
    acked: usize,
    /// Longest time between two successful writes' completions.
    longest_pause: Duration,
    new_primary: String,
    first_error: Option<String>,
}

/// Counts what the writer saw and checks the new primary has every
/// acknowledged write.
fn outcome(
    cluster: &MariaDbCluster,
    attempts: &[Attempt],
    from: Instant,
    after: Instant,
    new_primary: String,
) -> Result<Outcome> {
    let recovered = attempts
        .iter()
        .find(|a| a.error.is_none() && a.start >= after)
        .context("writes never succeeded again")?;
    let acked: Vec<u32> = attempts
        .iter()
        .filter(|a| a.error.is_none())
        .map(|a| a.id)
        .collect();
    let present: BTreeSet<u32> = cluster
        .conn(index_of(&new_primary)?)?
        .query("SELECT id FROM app.ledger")?
        .into_iter()
        .collect();
    let ends: Vec<Instant> = attempts
        .iter()
        .filter(|a| a.error.is_none())
        .map(|a| a.end)
        .collect();
    let longest_pause = ends
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default();
    Ok(Outcome {
        outage: recovered.end.saturating_duration_since(from),
        failed: attempts.iter().filter(|a| a.error.is_some()).count(),
        failed_but_committed: attempts
            .iter()
            .filter(|a| a.error.is_some() && present.contains(&a.id))
            .count(),
        lost: acked.iter().filter(|id| !present.contains(id)).count(),
        acked: acked.len(),
        longest_pause,
        new_primary,
        first_error: attempts.iter().find_map(|a| a.error.clone()),
    })
}

/// Kill -9 of the primary under writes, in trial `t` of `n`.
fn failover_trial(cfg: &HaConfig, t: usize, n: usize) -> Result<Outcome> {
    let (mut cluster, proxy) = setup(&ha_block(cfg.interval, cfg.timeout))?;
    let event = Arc::new(OnceLock::new());
    let writer = spawn_writer(proxy.addr, event.clone());
    let phase = cfg.period.mul_f64((t - 1) as f64 / n as f64);
    std::thread::sleep(WARM_UP + phase);
    // The outage counts from the signal; writes count as "after" once the
    // process is reaped (certainly dead).
    let killed = Instant::now();
    cluster.kill(0)?;
    let dead = Instant::now();
    let _ = event.set(dead);
    let attempts = join(writer)?;
    if !attempts.iter().any(|a| a.error.is_none() && a.end < killed) {
        bail!("no write succeeded before the kill");
    }
    eprintln!(
        "  phase offset +{} ms; SIGKILL → reaped in {} ms",
        phase.as_millis(),
        dead.saturating_duration_since(killed).as_millis()
    );
    let new_primary = wait_primary(&proxy, |p| p != "db-1")?;
    outcome(&cluster, &attempts, killed, dead, new_primary)
}

/// `switch @@datasource dh1:1` on the admin port under writes: what it
/// measured and how long the command took, or the proxy's answer when it
/// does not support the command.
fn switchover_trial() -> Result<Result<(Outcome, Duration), String>> {
    let (cluster, proxy) = setup(&ha_block("1s", "1s"))?;
    let event = Arc::new(OnceLock::new());
    let writer = spawn_writer(proxy.addr, event.clone());
    std::thread::sleep(WARM_UP);
    let mut admin = mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(proxy.admin.ip().to_string()))
            .tcp_port(proxy.admin.port())
            // The admin port's admin-level account (hastack_it::sqlproxy::config).
            .user(Some("dba"))
            .pass(Some("dba"))
            .prefer_socket(false)
            .read_timeout(Some(Duration::from_secs(60))),
    )
    .context("connecting to the admin port")?;
    let issued = Instant::now();
    let answer = admin.query_drop("switch @@datasource dh1:1");
    let done = Instant::now();
    let _ = event.set(done);
    let attempts = join(writer)?;
    if let Err(e) = answer {
        let e = e.to_string();
        if e.to_ascii_lowercase().contains("unsupported") {
            return Ok(Err(e));
        }
        bail!(
            "switch @@datasource dh1:1 failed: {e}\n{}",
            proxy.daemon.log()
        );
    }
    let new_primary = wait_primary(&proxy, |p| p == "db-2")?;
    // The backends agree: db-2 writable and replicating from nobody, db-1
    // read-only; both others follow db-2.
    let read_only = |i: usize| -> Result<Option<u32>> {
        Ok(cluster.conn(i)?.query_first("SELECT @@read_only")?)
    };
    if read_only(1)? != Some(0) || cluster.replica_status(1)?.is_some() || read_only(0)? != Some(1)
    {
        bail!(
            "after the switchover db-2 is not the only writable primary\n{}",
            proxy.daemon.log()
        );
    }
    let port = cluster.addr(1).port().to_string();
    for i in [0, 2] {
        let follows = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            cluster
                .replica_field(i, "Master_Port")
                .ok()
                .flatten()
                .filter(|p| *p == port)
        });
        if follows.is_none() {
            bail!(
                "db-{} does not replicate from db-2 after the switchover: {:?}",
                i + 1,
                cluster.replica_status(i)
            );
        }
    }
    let o = outcome(&cluster, &attempts, issued, done, new_primary)?;
    Ok(Ok((o, done.saturating_duration_since(issued))))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn list(v: impl Iterator<Item = usize>) -> String {
    v.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

fn detail(what: &str, trial: usize, o: &Outcome) {
    eprintln!(
        "{what} #{trial}: outage {}, {} failed ({} of them committed all the same), {} acknowledged, {} lost, longest pause {}, new primary {}{}",
        secs(o.outage),
        o.failed,
        o.failed_but_committed,
        o.acked,
        o.lost,
        secs(o.longest_pause),
        o.new_primary,
        o.first_error
            .as_deref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials: usize = match args.first().filter(|a| a.parse::<usize>().is_ok()) {
        Some(n) => n.parse()?,
        None => std::env::var("BENCH_TRIALS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(5),
    };
    if trials == 0 {
        bail!("TRIALS must be at least 1");
    }
    let parts: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.parse::<usize>().is_err())
        .collect();
    for p in &parts {
        if *p != "failover" && *p != "switchover" {
            bail!("unknown part {p:?}: expected failover and/or switchover");
        }
    }
    let run = |part: &str| parts.is_empty() || parts.contains(&part);

    if run("failover") {
        println!("Kill -9 of the primary under a single-connection autocommit INSERT loop; {trials} trials per row, a fresh cluster each.");
        println!();
        println!("| configuration | trials | kill → first write, median | min | max | failed writes per trial | acknowledged writes lost | target (median) |");
        println!("|---|---|---|---|---|---|---|---|");
        for cfg in &CONFIGS {
            let mut outcomes = Vec::new();
            for t in 1..=trials {
                let o = failover_trial(cfg, t, trials)
                    .with_context(|| format!("{}, trial {t}", cfg.label))?;
                detail(cfg.interval, t, &o);
                outcomes.push(o);
            }
            let outages: Vec<Duration> = outcomes.iter().map(|o| o.outage).collect();
            let m = median(outages.clone());
            println!(
                "| {} | {trials} | {} | {} | {} | {} | {} | ≤ {}: {} |",
                cfg.label,
                secs(m),
                secs(outages.iter().min().copied().unwrap_or_default()),
                secs(outages.iter().max().copied().unwrap_or_default()),
                list(outcomes.iter().map(|o| o.failed)),
                outcomes.iter().map(|o| o.lost).sum::<usize>(),
                secs(cfg.target),
                if m <= cfg.target { "met" } else { "NOT met" },
            );
        }
        println!("| MaxScale mariadbmon defaults (monitor_interval 2 s × failcount 5) | computed, not measured | ≥ 10 s (detection alone) | | | | | |");
        println!("| Mycat-style defaults (heartbeat 10 s × 3 failed heartbeats) | computed, not measured | ≥ 30 s (detection alone) | | | | | |");
        println!();
    }

    if run("switchover") {
        let mut outcomes = Vec::new();
        for t in 1..=trials {
            match switchover_trial().with_context(|| format!("switchover, trial {t}"))? {
                Ok((o, took)) => {
                    eprintln!("switchover #{t}: command → OK {}", secs(took));
                    detail("switchover", t, &o);
                    outcomes.push((o, took));
                }
                Err(answer) => {
                    println!("Switchover: skipped: sqlproxyd does not support `switch @@datasource` yet (it answered: {answer}).");
                    return Ok(());
                }
            }
        }
        let took: Vec<Duration> = outcomes.iter().map(|(_, d)| *d).collect();
        let m = median(took.clone());
        let failed: usize = outcomes.iter().map(|(o, _)| o.failed).sum();
        println!("`switch @@datasource dh1:1` (db-1 → db-2) on the admin port under the same write loop; {trials} trials, a fresh cluster each.");
        println!();
        println!("| operation | trials | command → OK, median | min | max | failed writes per trial | acknowledged writes lost | longest write pause, median | target |");
        println!("|---|---|---|---|---|---|---|---|---|");
        println!(
            "| switchover, heartbeat 1s | {trials} | {} | {} | {} | {} | {} | {} | ≤ 2 s, no failed write: {} |",
            secs(m),
            secs(took.iter().min().copied().unwrap_or_default()),
            secs(took.iter().max().copied().unwrap_or_default()),
            list(outcomes.iter().map(|(o, _)| o.failed)),
            outcomes.iter().map(|(o, _)| o.lost).sum::<usize>(),
            secs(median(outcomes.iter().map(|(o, _)| o.longest_pause).collect())),
            if m <= Duration::from_secs(2) && failed == 0 {
                "met"
            } else {
                "NOT met"
            },
        );
    }
    Ok(())
}
