//! The chaos suite, short CI version (issue 10, "Tests (CI)"): the lab up
//! once, then every fault of `hastack_it::chaos::Fault::ALL` once under a
//! small bounded load, asserting the invariants only — no acknowledged write
//! lost, never two writable primaries, never two VIP holders after
//! convergence, the old primary fenced then readmitted — not timings.
//!
//! The lab uses fixed names: nextest runs this binary in the test group
//! `lab` with tests/lab.rs (.config/nextest.toml), never both at once.

#![allow(clippy::unwrap_used)]
// The test reports how long it took.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use hastack_it::chaos::{self, Fault, Lab, RunConfig, WorkloadConfig};

#[test]
fn chaos_invariants_under_every_fault() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the namespace lab needs root (CI runs as root); run it with sudo"
    );
    let started = Instant::now();
    let mut lab = Lab::for_test("chaos").unwrap();
    let up = lab.ok(&["up"]).unwrap();
    eprintln!("up in {:?}:\n{up}", started.elapsed());

    let cfg = RunConfig {
        load: WorkloadConfig {
            conns: 4,
            max_ops: 5_000,
            max_time: Duration::from_secs(60),
            pause: Duration::from_millis(10),
        },
        before: Duration::from_secs(2),
        hold: Duration::from_secs(2),
        converge_timeout: Duration::from_secs(30),
        partition: Duration::from_secs(8),
        stale_after: Duration::from_secs(7),
    };
    let mut reports = Vec::new();
    for (i, fault) in Fault::ALL.into_iter().enumerate() {
        let t = Instant::now();
        let r = chaos::run_fault(&mut lab, fault, &format!("chaos_{i}"), &cfg)
            .unwrap_or_else(|e| panic!("{fault:?}: {e:#}\n{}", chaos::table(&reports)));
        eprintln!("{fault:?} in {:?}: {r:?}", t.elapsed());
        reports.push(r);
    }
    let table = chaos::table(&reports);
    eprintln!("{table}");
    let violations: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.violations()
                .into_iter()
                .map(|v| format!("{}: {v}", r.fault))
        })
        .collect();
    if !violations.is_empty() {
        eprintln!("lab logs:\n{}", lab.logs());
    }
    assert!(violations.is_empty(), "{violations:#?}\n{table}");
    // Every fault ran under load.
    assert!(reports.iter().all(|r| r.ops > 0), "{table}");
    lab.down().unwrap();
    eprintln!("whole chaos test: {:?}", started.elapsed());
}
