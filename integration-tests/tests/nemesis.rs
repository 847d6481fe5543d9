//! The randomized nemesis, short CI version (issue 18 item 7): the lab up
//! once, one fixed seed's fault schedule (about a minute: kill -9, SIGSTOP,
//! SIGTERM of any daemon or MariaDB, partitions one way and both, a link
//! down, reloads, switchovers, one of them failing) under the chaos suite's
//! workload, then every invariant of `hastack_it::nemesis` — no acknowledged
//! write lost, never two primaries taking writes, no stale read past the
//! bound, one VIP holder once the LB hosts hear each other, a primary within
//! the failover bound whenever a quorum can have one, the stack serving
//! again after healing.
//!
//! Another seed or length: HASTACK_NEMESIS_SEED=N HASTACK_NEMESIS_SECONDS=S
//! (bench-nemesis runs many). The lab uses fixed names: nextest runs this
//! binary in the test group `lab` (.config/nextest.toml).

#![allow(clippy::unwrap_used)]
// The test reports how long it took.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use hastack_it::chaos::Lab;
use hastack_it::nemesis::{self, Params, RunConfig};

/// Seed 1's minute: a switchover to a SIGSTOPped node, SIGTERM and kill -9
/// of replicas and then of the primary, proxy-2 cut off from every other
/// host, db-3's link down, both vrrpds killed, a reload, lbd SIGSTOPped. It
/// passes on main as of issue 18's start (bench/RESULTS.md, "Nemesis"); 60 s
/// keep the test near two minutes with the lab's start.
const SEED: u64 = 1;
const SECONDS: u64 = 60;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

#[test]
fn nemesis_invariants_under_a_seeded_schedule() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the namespace lab needs root (CI runs as root); run it with sudo"
    );
    let seed = env_u64("HASTACK_NEMESIS_SEED", SEED);
    let secs = env_u64("HASTACK_NEMESIS_SECONDS", SECONDS);
    let reproduce = format!(
        "sudo HASTACK_NEMESIS_SEED={seed} HASTACK_NEMESIS_SECONDS={secs} flock /tmp/hastack-lab.lock \
         cargo nextest run -p hastack-it --test nemesis"
    );
    let events = nemesis::schedule(seed, &Params::new(Duration::from_secs(secs)));
    let started = Instant::now();
    let mut lab = Lab::for_test("nemesis").unwrap();
    lab.ok(&["up"]).unwrap();
    eprintln!("up in {:?}", started.elapsed());
    let cfg = RunConfig::lab(Duration::from_secs(secs + 120));
    let r = nemesis::run_seed(&mut lab, Some(seed), &events, &cfg, &reproduce)
        .unwrap_or_else(|e| panic!("seed {seed}: {e:#}\nreproduce: {reproduce}"));
    let summary = r.summary();
    eprintln!("{summary}");
    if !r.violations.is_empty() {
        eprintln!("lab logs:\n{}", lab.logs());
    }
    assert!(r.violations.is_empty(), "{summary}");
    // The schedule ran under load.
    assert!(r.acked_writes > 0 && !r.applied.is_empty(), "{summary}");
    lab.down().unwrap();
    eprintln!("whole nemesis test: {:?}", started.elapsed());
}
