//! The randomized nemesis over many seeds (issue 18 item 7): each seed's
//! fault schedule (`hastack_it::nemesis::schedule`) played on the namespace
//! lab under the chaos workload, its invariants checked, the lab restored
//! for the next seed (brought down and up again if it cannot be). Prints a
//! table — per seed: faults, violations, the longest write outage; then the
//! outage's p50/p95/max — and every violation with the one command that
//! reproduces it.
//!
//! `cargo build --release --workspace --bins && sudo flock /tmp/hastack-lab.lock
//! target/release/bench-nemesis --seeds 50` (options below; `--append` adds
//! the table to bench/RESULTS.md). Needs root and the lab down when it starts;
//! it takes the daemons from its own directory (or HASTACK_BIN_DIR).

// It reports how long the lab and each seed took: it reads the clock.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hastack_it::chaos::{lab_in_use, Lab};
use hastack_it::nemesis::{self, Event, Params, RunConfig, SeedReport};

const USAGE: &str =
    "usage: bench-nemesis [--seeds N] [--first SEED] [--seed SEED] [--length SECONDS]
                     [--schedule asym-split[:SECONDS]] [--print] [--append]
  --seeds N        run N seeds, from --first (default 1); default 10
  --seed SEED      run that one seed (what a failure's reproduce line says)
  --length S       each schedule's length, default 60 (the CI test's)
  --schedule asym-split[:S]  instead of seeds: {proxy-2, db-2} cut off from
                   {proxy-1, db-1, db-3} for S seconds (default 120), the
                   partition issue 18 found split brain with; rogue-split[:S]:
                   the same with db-2 promoted by hand 5 s in (the harness
                   must report two primaries taking writes)
  --print          print the schedules and exit (no lab)
  --append         also append the table to bench/RESULTS.md";

struct Args {
    seeds: Vec<u64>,
    length: u64,
    split: Option<(bool, u64)>,
    print: bool,
    append: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seeds: Vec::new(),
        length: 60,
        split: None,
        print: false,
        append: false,
    };
    let (mut n, mut first, mut one) = (10u64, 1u64, None);
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, flag: &str| -> Result<u64> {
        let v = v.with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        v.parse()
            .with_context(|| format!("{flag} {v:?}: expected a whole number\n{USAGE}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seeds" => n = num(it.next(), "--seeds")?,
            "--first" => first = num(it.next(), "--first")?,
            "--seed" => one = Some(num(it.next(), "--seed")?),
            "--length" => a.length = num(it.next(), "--length")?,
            "--schedule" => {
                let v = it.next().unwrap_or_default();
                let (name, secs) = v.split_once(':').unwrap_or((v.as_str(), "120"));
                let secs = num(Some(secs.to_owned()), "--schedule NAME:")?;
                a.split = Some(match name {
                    "asym-split" => (false, secs),
                    "rogue-split" => (true, secs),
                    _ => bail!("--schedule {v:?}: the named schedules are asym-split[:SECONDS] and rogue-split[:SECONDS]\n{USAGE}"),
                });
            }
            "--print" => a.print = true,
            "--append" => a.append = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    a.seeds = match one {
        Some(s) => vec![s],
        None => (first..first.saturating_add(n)).collect(),
    };
    Ok(a)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn table(runs: &[(String, Result<SeedReport, String>)], length: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| seed | faults | violations | longest write outage | lab restarted |\n|---|---|---|---|---|"
    );
    let mut outages = Vec::new();
    let (mut faults, mut violations, mut bad) = (0, 0, 0);
    for (name, r) in runs {
        match r {
            Ok(r) => {
                faults += r.applied.len();
                violations += r.violations.len();
                bad += usize::from(!r.violations.is_empty());
                outages.push(r.longest_write_outage.as_secs_f64());
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {:.1} s | {} |",
                    r.applied.len(),
                    r.violations.len(),
                    r.longest_write_outage.as_secs_f64(),
                    if r.lab_restarted { "yes" } else { "no" }
                );
            }
            Err(e) => {
                bad += 1;
                let _ = writeln!(
                    s,
                    "| {name} | - | harness failure: {} | - | - |",
                    e.lines().next().unwrap_or("")
                );
            }
        }
    }
    outages.sort_by(f64::total_cmp);
    let _ = writeln!(
        s,
        "\n{} runs of {length} s schedules: {faults} faults, {violations} violations in {bad} runs; \
         longest write outage per run p50 {:.1} s, p95 {:.1} s, max {:.1} s.",
        runs.len(),
        percentile(&outages, 0.5),
        percentile(&outages, 0.95),
        outages.last().copied().unwrap_or(0.0)
    );
    for (name, r) in runs {
        match r {
            Ok(r) if !r.violations.is_empty() => {
                let _ = writeln!(s, "\n{name}:");
                for v in &r.violations {
                    let _ = writeln!(s, "- {v}");
                }
                let _ = writeln!(s, "- reproduce: `{}`", r.reproduce);
            }
            Err(e) => {
                let _ = writeln!(s, "\n{name}: harness failure: {e}");
            }
            _ => {}
        }
    }
    s
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let plans: Vec<(String, Option<u64>, Vec<Event>, String)> = match args.split {
        Some((rogue, hold)) => {
            let name = format!("{}:{hold}", if rogue { "rogue-split" } else { "asym-split" });
            let hold = Duration::from_secs(hold);
            vec![(
                name.clone(),
                None,
                if rogue {
                    nemesis::rogue_split(hold)
                } else {
                    nemesis::asymmetric_split(hold)
                },
                format!("sudo flock /tmp/hastack-lab.lock target/release/bench-nemesis --schedule {name}"),
            )]
        }
        None => args
            .seeds
            .iter()
            .map(|&seed| {
                (
                    seed.to_string(),
                    Some(seed),
                    nemesis::schedule(seed, &Params::new(Duration::from_secs(args.length))),
                    format!(
                        "sudo flock /tmp/hastack-lab.lock target/release/bench-nemesis --seed {seed} --length {}",
                        args.length
                    ),
                )
            })
            .collect(),
    };
    if args.print {
        for (name, _, events, _) in &plans {
            println!("{name}:");
            for e in events {
                println!(
                    "  {:5.1} s +{:4.1} s  {}",
                    e.at.as_secs_f64(),
                    e.dur.as_secs_f64(),
                    e.fault
                );
            }
        }
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root (the namespace lab): run it with sudo");
    }
    if lab_in_use() {
        bail!("a namespace lab is already up (ip netns list shows hs-*): not touching it; run again once it is down");
    }
    let bin_dir = match std::env::var_os("HASTACK_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut lab = Lab::new(bin_dir, std::env::temp_dir().join("hastack-lab-nemesis"));
    let t = Instant::now();
    lab.ok(&["up"])?;
    eprintln!(
        "bench-nemesis: lab up in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let length = plans
        .iter()
        .map(|(_, _, e, _)| e.iter().map(|e| e.at + e.dur).max().unwrap_or_default())
        .max()
        .unwrap_or_default();
    let cfg = RunConfig::lab(length + Duration::from_secs(120));
    let mut runs = Vec::new();
    for (name, seed, events, reproduce) in &plans {
        let t = Instant::now();
        eprintln!("bench-nemesis: {name}: {} faults", events.len());
        let r = nemesis::run_seed(&mut lab, *seed, events, &cfg, reproduce)
            .map_err(|e| format!("{e:#}"));
        match &r {
            Ok(r) => {
                eprint!(
                    "bench-nemesis: {:.0} s: {}",
                    t.elapsed().as_secs_f64(),
                    r.summary()
                );
                if let Some(logs) = &r.logs {
                    let path = std::env::temp_dir().join(format!("hastack-nemesis-{name}.log"));
                    match std::fs::write(&path, logs) {
                        Ok(()) => eprintln!("bench-nemesis: the daemons' logs: {}", path.display()),
                        Err(e) => eprintln!("bench-nemesis: writing {}: {e}", path.display()),
                    }
                }
            }
            Err(e) => {
                eprintln!("bench-nemesis: {name}: harness failure: {e}\nreproduce: {reproduce}");
                // The next seed needs a lab in a known state.
                let restarted = lab.ok(&["down"]).and_then(|_| lab.ok(&["up"]));
                if let Err(e) = restarted {
                    runs.push((name.clone(), Err(format!("{e:#}"))));
                    break;
                }
            }
        }
        runs.push((name.clone(), r));
    }
    let out = table(&runs, length.as_secs());
    print!("{out}");
    if args.append {
        let path = repo().join("bench/RESULTS.md");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        write!(f, "\n{out}").with_context(|| format!("appending to {}", path.display()))?;
        eprintln!("bench-nemesis: appended to {}", path.display());
    }
    lab.down()?;
    Ok(())
}
