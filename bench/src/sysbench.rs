//! Running sysbench's OLTP workloads against a MySQL endpoint and reading its
//! report, for `bench-sqlproxyd` and `bench-stack`.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The schema's shape: `--tables` and `--table-size`.
pub const TABLES: u32 = 4;
pub const TABLE_SIZE: u32 = 10_000;

/// One sysbench run's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Queries per second ("queries: N (R per sec.)").
    pub qps: f64,
    /// sysbench's own 95th percentile latency (`--percentile=95`), ms.
    pub p95_ms: f64,
    /// The 99th percentile, computed from sysbench's latency histogram, ms.
    pub p99_ms: f64,
    /// "ignored errors": the deadlocks (1213) and lock waits (1205) sysbench retries.
    pub errors: u64,
    /// CPU time a proxy spent per query, µs; the caller fills it in (0 = not measured).
    pub cpu_us_per_query: f64,
}

fn base_args(cmd: &mut Command, workload: &str, addr: SocketAddr) {
    cmd.arg(workload)
        .args([
            "--db-driver=mysql",
            "--mysql-user=app",
            "--mysql-password=app",
            "--mysql-db=sbtest",
        ])
        .arg(format!("--mysql-host={}", addr.ip()))
        .arg(format!("--mysql-port={}", addr.port()))
        .arg(format!("--tables={TABLES}"))
        .arg(format!("--table-size={TABLE_SIZE}"));
}

/// `sysbench oltp_read_write ... cleanup` then `prepare` against `addr` (the primary).
pub fn prepare(addr: SocketAddr) -> Result<()> {
    for step in ["cleanup", "prepare"] {
        let mut cmd = Command::new("sysbench");
        base_args(&mut cmd, "oltp_read_write", addr);
        let out = cmd.arg(step).output().context("running sysbench")?;
        if !out.status.success() {
            bail!(
                "sysbench {step} against {addr}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// Runs `sysbench WORKLOAD run` against `addr` for `seconds` with `threads`.
pub fn run(
    addr: SocketAddr,
    workload: &str,
    threads: u32,
    seconds: u32,
    extra: &[&str],
) -> Result<Sample> {
    let mut cmd = Command::new("sysbench");
    base_args(&mut cmd, workload, addr);
    let out = cmd
        .args(["--percentile=95", "--histogram=on", "--report-interval=0"])
        .arg(format!("--threads={threads}"))
        .arg(format!("--time={seconds}"))
        .args(extra)
        .arg("run")
        .output()
        .context("running sysbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "sysbench {workload} against {addr} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse(&text))
}

/// Reads sysbench's report (`--histogram=on`).
pub fn parse(text: &str) -> Sample {
    let field = |key: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
        line.split_whitespace()
            .find_map(|w| w.trim_start_matches('(').parse::<f64>().ok())
    };
    // "queries: 1234 (567.89 per sec.)": the rate is the figure in parentheses.
    let qps = text
        .lines()
        .find(|l| l.trim_start().starts_with("queries:"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let histogram = histogram(text);
    Sample {
        qps,
        p95_ms: field("95th percentile:").unwrap_or(0.0),
        p99_ms: percentile(&histogram, 99.0),
        errors: field("ignored errors:").unwrap_or(0.0) as u64,
        cpu_us_per_query: 0.0,
    }
}

/// The histogram's (bucket value in ms, count) rows, in order:
/// `       0.281 |****                                     123`.
fn histogram(text: &str) -> Vec<(f64, u64)> {
    text.lines()
        .skip_while(|l| !l.starts_with("Latency histogram"))
        .skip(2)
        .map_while(|l| {
            let (value, rest) = l.split_once('|')?;
            let count = rest.split_whitespace().last()?.parse().ok()?;
            Some((value.trim().parse().ok()?, count))
        })
        .collect()
}

/// The smallest bucket value at or below which `pct` % of the events fall, as
/// sysbench computes its own `--percentile`.
fn percentile(histogram: &[(f64, u64)], pct: f64) -> f64 {
    let total: u64 = histogram.iter().map(|&(_, n)| n).sum();
    let want = (total as f64 * pct / 100.0).ceil() as u64;
    let mut seen = 0;
    for &(value, n) in histogram {
        seen += n;
        if seen >= want {
            return value;
        }
    }
    0.0
}

/// The median of `key` over `samples` (the upper one for an even count).
pub fn median(samples: &[Sample], key: fn(&Sample) -> f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().map(key).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // CLK_TCK is 100 on Linux.
    Ok(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "SQL statistics:
    queries performed:
        read:                            1000
    queries:                             2000   (99.50 per sec.)
    ignored errors:                      3      (0.15 per sec.)

Latency histogram (values are in milliseconds)
       value  ------------- distribution ------------- count
       1.000 |****************************************  90
       2.000 |****                                      5
       3.000 |***                                       4
       9.000 |*                                         1
 
Latency (ms):
         min:                                    0.90
         95th percentile:                        2.00
";

    #[test]
    fn parses_the_report() {
        let s = parse(REPORT);
        assert_eq!(s.qps, 99.5);
        assert_eq!(s.p95_ms, 2.0);
        assert_eq!(s.p99_ms, 3.0);
        assert_eq!(s.errors, 3);
        assert_eq!(percentile(&histogram(REPORT), 95.0), 2.0);
        assert_eq!(percentile(&histogram(REPORT), 100.0), 9.0);
    }
}
