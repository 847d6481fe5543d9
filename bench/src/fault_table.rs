//! The long chaos run (issue 10 item 3): every fault of
//! [`Fault::ALL`] repeated on a stack, each repetition one
//! [`chaos::run_fault`], summarised per fault as median and worst, and the
//! raw reports as JSON.

use std::collections::BTreeSet;
use std::time::Duration;

use hastack_it::chaos::{self, Fault, FaultReport, RunConfig, Stack};
use serde_json::{json, Value};

/// One repetition of one fault on one stack.
pub struct Run {
    pub stack: &'static str,
    pub fault: Fault,
    pub label: String,
    pub rep: usize,
    pub report: Result<FaultReport, String>,
}

/// Runs every fault that applies to `stack` (and is in `only`, by its
/// `Debug` name, unless `only` is empty), `reps` times, in the order of
/// [`Fault::ALL`] within each repetition. A failed run is recorded and the
/// next one goes on from wherever the stack is.
pub fn run(
    name: &'static str,
    stack: &mut dyn Stack,
    reps: usize,
    only: &[String],
    cfg: &RunConfig,
) -> Vec<Run> {
    let mut runs = Vec::new();
    for rep in 0..reps {
        for (i, fault) in Fault::ALL.into_iter().enumerate() {
            if !fault.applies_to(stack)
                || !(only.is_empty() || only.contains(&format!("{fault:?}")))
            {
                continue;
            }
            let label = fault.label(stack);
            let table = format!("chaos_{name}_{rep}_{i}");
            eprintln!("chaos: {name} rep {}/{reps}: {label}", rep + 1);
            let report = chaos::run_fault(stack, fault, &table, cfg).map_err(|e| format!("{e:#}"));
            match &report {
                Ok(r) => eprintln!(
                    "chaos: {name} {label}: writes unavailable {:?}, reads {:?}, {} failed of {}{}",
                    r.write_unavailable,
                    r.read_unavailable,
                    r.ops_failed,
                    r.ops,
                    r.violations()
                        .iter()
                        .map(|v| format!("; VIOLATION {v}"))
                        .collect::<String>()
                ),
                Err(e) => eprintln!("chaos: {name} {label}: FAILED: {e}"),
            }
            runs.push(Run {
                stack: name,
                fault,
                label,
                rep,
                report,
            });
        }
    }
    runs
}

/// Seconds, with "never" for a run that did not recover and 0 for one
/// where nothing failed.
fn secs(d: Option<Duration>) -> f64 {
    match d {
        None => 0.0,
        Some(Duration::MAX) => f64::INFINITY,
        Some(d) => d.as_secs_f64(),
    }
}

fn median_worst(v: Vec<f64>) -> String {
    median_worst_with(v, 2)
}

/// Median and worst with `decimals` places ("never" for infinity).
fn median_worst_with(mut v: Vec<f64>, decimals: usize) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    v.sort_by(f64::total_cmp);
    let show = |x: f64| {
        if x.is_infinite() {
            "never".to_owned()
        } else {
            format!("{x:.decimals$}")
        }
    };
    format!("{} / {}", show(v[v.len() / 2]), show(v[v.len() - 1]))
}

/// One Markdown row per (stack, fault): medians and worsts over the
/// repetitions that completed, sums and maxima of the invariants.
pub fn summary(runs: &[Run]) -> String {
    let mut s = String::from(
        "| stack | fault | runs ok | write unavail. s (median / worst) | read unavail. s | max write latency s | \
         new connections all served again after s | failed ops | acked writes lost | stale reads | \
         max VIP holders after convergence | max writable primaries (old primary fenced) | \
         old primary readmitted s | violations / notes |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut keys: Vec<(&str, Fault, &str)> = Vec::new();
    for r in runs {
        if !keys.iter().any(|(s, f, _)| *s == r.stack && *f == r.fault) {
            keys.push((r.stack, r.fault, &r.label));
        }
    }
    for (stack, fault, label) in keys {
        let all: Vec<&Run> = runs
            .iter()
            .filter(|r| r.stack == stack && r.fault == fault)
            .collect();
        let ok: Vec<&FaultReport> = all.iter().filter_map(|r| r.report.as_ref().ok()).collect();
        let col = |f: &dyn Fn(&FaultReport) -> f64| median_worst(ok.iter().map(|r| f(r)).collect());
        let mut notes: BTreeSet<String> = BTreeSet::new();
        for r in &all {
            match &r.report {
                Ok(rep) => {
                    notes.extend(rep.violations());
                    if !rep.note.is_empty() {
                        notes.insert(rep.note.clone());
                    }
                }
                Err(e) => {
                    notes.insert(format!("run failed: {}", e.lines().next().unwrap_or("")));
                }
            }
        }
        let readmitted: Vec<f64> = ok
            .iter()
            .filter_map(|r| r.readmitted.map(|d| d.as_secs_f64()))
            .collect();
        s.push_str(&format!(
            "| {stack} | {label} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            ok.len(),
            all.len(),
            col(&|r| secs(r.write_unavailable)),
            col(&|r| secs(r.read_unavailable)),
            col(&|r| r.max_write_latency.as_secs_f64()),
            col(&|r| r.served_again.map_or(f64::INFINITY, |d| d.as_secs_f64())),
            median_worst_with(ok.iter().map(|r| r.ops_failed as f64).collect(), 0),
            ok.iter()
                .map(|r| r.check.acked_missing.len())
                .sum::<usize>(),
            ok.iter().map(|r| r.stale_reads).sum::<usize>(),
            ok.iter().map(|r| r.max_vip_converged).max().unwrap_or(0),
            ok.iter().map(|r| r.max_writable_fenced).max().unwrap_or(0),
            median_worst(readmitted),
            if notes.is_empty() {
                "-".to_owned()
            } else {
                notes.into_iter().collect::<Vec<_>>().join("; ")
            },
        ));
    }
    s
}

fn opt_secs(d: Option<Duration>) -> Value {
    match d {
        None => json!(0.0),
        Some(Duration::MAX) => Value::Null,
        Some(d) => json!(d.as_secs_f64()),
    }
}

/// Every run as JSON (unavailability `null`: never recovered).
pub fn json(runs: &[Run]) -> Value {
    Value::Array(
        runs.iter()
            .map(|r| match &r.report {
                Ok(x) => json!({
                    "stack": r.stack,
                    "fault": format!("{:?}", r.fault),
                    "label": r.label,
                    "rep": r.rep,
                    "write_unavailable_s": opt_secs(x.write_unavailable),
                    "read_unavailable_s": opt_secs(x.read_unavailable),
                    "max_write_latency_s": x.max_write_latency.as_secs_f64(),
                    "ops": x.ops,
                    "ops_failed": x.ops_failed,
                    "ops_unknown": x.ops_unknown,
                    "errors": x.errors,
                    "acked_lost": x.check.acked_missing,
                    "failed_present": x.check.failed_present,
                    "unknown_present": x.check.unknown_present,
                    "duplicates": x.check.duplicates,
                    "replicas_disagree": x.check.disagree,
                    "stale_reads": x.stale_reads,
                    "max_vip_holders_converged": x.max_vip_converged,
                    "max_writable": x.max_writable,
                    "max_writable_fenced": x.max_writable_fenced,
                    "old_primary_unfenced_s": x.old_primary_unfenced.map(|d| d.as_secs_f64()),
                    "max_primaries_named_by_proxies": x.max_proxy_primaries,
                    "old_primary": x.old_primary,
                    "readmitted_s": x.readmitted.map(|d| d.as_secs_f64()),
                    "served_again_s": x.served_again.map(|d| d.as_secs_f64()),
                    "note": x.note,
                    "violations": x.violations(),
                }),
                Err(e) => json!({
                    "stack": r.stack,
                    "fault": format!("{:?}", r.fault),
                    "label": r.label,
                    "rep": r.rep,
                    "error": e,
                }),
            })
            .collect(),
    )
}
