//! The randomized nemesis over the namespace lab (issue 18 item 7): a fault
//! schedule drawn from a seed, played against the stack while the chaos
//! suite's workload and sampler run, then the invariants checked over the
//! ledger, the samples and the final tables of every node.
//!
//! Pure core, thin shell: [`schedule`] (the seed's faults), the invariant
//! checks ([`landing_violations`], [`two_writable_violations`],
//! [`vip_violations`], [`primary_violations`]) and the network model they
//! read ([`Model`]) touch nothing; [`run_seed`] plays a schedule on a [`Lab`]
//! and [`restore`] brings the lab back for the next seed.
//!
//! The lab uses fixed names: whatever drives it must run in the nextest test
//! group `lab` (and by hand under `flock /tmp/hastack-lab.lock`).

// The nemesis times its faults and the outages it measures: it reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use nix::sys::signal::Signal;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chaos::{
    self, node_state, proxy_node_state, Op, OpKind, Outcome, Sample, Sampler, Workload,
    WorkloadConfig, DBS, PROXIES, VIP,
};
use crate::lab::Lab;

/// Every host of the lab, as `deploy/lab.sh` names them.
pub const HOSTS: [&str; 7] = ["lb-1", "lb-2", "proxy-1", "proxy-2", "db-1", "db-2", "db-3"];

/// Every process the lab runs, as (host, daemon).
pub const PROCESSES: [(&str, &str); 11] = [
    ("lb-1", "lbd"),
    ("lb-1", "vrrpd"),
    ("lb-2", "lbd"),
    ("lb-2", "vrrpd"),
    ("proxy-1", "sqlproxyd"),
    ("proxy-1", "checkd"),
    ("proxy-2", "sqlproxyd"),
    ("proxy-2", "checkd"),
    ("db-1", "mariadbd"),
    ("db-2", "mariadbd"),
    ("db-3", "mariadbd"),
];

/// The server_id `deploy/lab.sh` gives each node (its address's last octet).
pub fn server_id(node: &str) -> Option<u32> {
    match node {
        "db-1" => Some(31),
        "db-2" => Some(32),
        "db-3" => Some(33),
        _ => None,
    }
}

fn node_of(sid: u32) -> &'static str {
    match sid {
        31 => "db-1",
        32 => "db-2",
        33 => "db-3",
        _ => "unknown",
    }
}

// --- the schedule -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// SIGKILL; started again when the fault ends.
    Kill,
    /// SIGSTOP; SIGCONT when the fault ends.
    Stop,
    /// SIGTERM (a clean stop); started again when the fault ends.
    Term,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Process {
        host: &'static str,
        daemon: &'static str,
        sig: Sig,
    },
    /// Every pair across `a` and `b` cut on the switch; with `oneway` only
    /// what `a` sends `b` is dropped.
    Partition {
        a: Vec<&'static str>,
        b: Vec<&'static str>,
        oneway: bool,
    },
    /// The host's eth0 down (its cable pulled), up again at the end.
    LinkDown { host: &'static str },
    /// SIGHUP to one daemon: a reload of the same file.
    Reload {
        host: &'static str,
        daemon: &'static str,
    },
    /// `POST /actions/switchover?node=target` on `via`'s sqlproxyd; the
    /// target may be the primary already, or down (it must then fail and
    /// leave one primary).
    Switchover {
        via: &'static str,
        target: &'static str,
    },
    /// The target's MariaDB SIGSTOPped, then a switchover to it, which must
    /// fail and leave exactly one primary; SIGCONT when the fault ends.
    FailingSwitchover {
        via: &'static str,
        target: &'static str,
    },
    /// `node` made a writable primary behind the proxies' back (replication
    /// reset, read_only off), as a DBA's mistake or another tool would: never
    /// drawn from a seed; [`rogue_split`] plays it to show that the checks
    /// catch two primaries taking writes.
    RoguePromotion { node: &'static str },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Process { host, daemon, sig } => {
                let s = match sig {
                    Sig::Kill => "kill -9",
                    Sig::Stop => "SIGSTOP",
                    Sig::Term => "SIGTERM",
                };
                write!(f, "{s} {host}:{daemon}")
            }
            Fault::Partition { a, b, oneway } => {
                let sep = if *oneway { " -> " } else { " | " };
                write!(f, "partition {}{sep}{}", a.join(","), b.join(","))
            }
            Fault::LinkDown { host } => write!(f, "link down {host}"),
            Fault::Reload { host, daemon } => write!(f, "reload {host}:{daemon}"),
            Fault::Switchover { via, target } => write!(f, "switchover to {target} via {via}"),
            Fault::FailingSwitchover { via, target } => {
                write!(f, "failing switchover to {target} (SIGSTOPped) via {via}")
            }
            Fault::RoguePromotion { node } => write!(f, "{node} promoted behind the proxies' back"),
        }
    }
}

impl Fault {
    /// What the fault holds while it lasts: two faults sharing one never
    /// overlap, so each undo finds the state its start left (one partition
    /// at a time, one switchover at a time, one fault per process and link).
    fn resources(&self) -> Vec<String> {
        match self {
            // Undoing a process fault starts the daemon again and waits for
            // its admin endpoint, which a link down on that host would cut
            // off: the two never overlap.
            Fault::Process { host, daemon, .. } => {
                vec![format!("{host}:{daemon}"), format!("link:{host}")]
            }
            Fault::Reload { host, daemon } => vec![format!("{host}:{daemon}")],
            Fault::Partition { .. } => vec!["net".to_owned()],
            Fault::LinkDown { host } => vec![format!("link:{host}")],
            Fault::Switchover { .. } => vec!["switchover".to_owned()],
            Fault::FailingSwitchover { target, .. } => {
                vec!["switchover".to_owned(), format!("{target}:mariadbd")]
            }
            Fault::RoguePromotion { node } => vec![format!("{node}:mariadbd")],
        }
    }

    /// A reload or a plain switchover is one action, not a state held.
    fn instant(&self) -> bool {
        matches!(
            self,
            Fault::Reload { .. } | Fault::Switchover { .. } | Fault::RoguePromotion { .. }
        )
    }
}

/// One fault of a schedule: from `at` for `dur` (since the schedule's start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Duration,
    pub dur: Duration,
    pub fault: Fault,
}

#[derive(Clone, Debug)]
pub struct Params {
    /// Every fault ends by then.
    pub length: Duration,
    pub min_dur: Duration,
    pub max_dur: Duration,
    /// Faults held at once, at most.
    pub max_overlap: usize,
    /// Mean pause between two fault starts.
    pub mean_gap: Duration,
}

impl Params {
    /// The schedule of `length` the CI test and bench-nemesis play.
    pub fn new(length: Duration) -> Params {
        Params {
            length,
            min_dur: Duration::from_secs(3),
            max_dur: Duration::from_secs(15),
            max_overlap: 2,
            mean_gap: Duration::from_secs(5),
        }
    }
}

fn pick_fault(rng: &mut ChaCha8Rng) -> Fault {
    let dbs: Vec<&'static str> = DBS.iter().map(|(n, _)| *n).collect();
    let proxies: Vec<&'static str> = PROXIES.iter().map(|(n, _)| *n).collect();
    let roll: u32 = rng.random_range(0..100);
    match roll {
        0..40 => {
            let (host, daemon) = *PROCESSES.choose(rng).unwrap_or(&PROCESSES[8]);
            let sig = match rng.random_range(0..10) {
                0..4 => Sig::Kill,
                4..7 => Sig::Stop,
                _ => Sig::Term,
            };
            Fault::Process { host, daemon, sig }
        }
        40..65 => {
            let mut hosts = HOSTS.to_vec();
            hosts.shuffle(rng);
            let na = rng.random_range(1..=3);
            let (a, rest) = hosts.split_at(na);
            // Half the time one side against all the others; else against
            // some of them (a pair, or a group that leaves hosts in between).
            let b: Vec<&'static str> = if rng.random_bool(0.5) {
                rest.to_vec()
            } else {
                let nb = rng.random_range(1..=rest.len());
                rest[..nb].to_vec()
            };
            let (mut a, mut b) = (a.to_vec(), b);
            a.sort_unstable();
            b.sort_unstable();
            Fault::Partition {
                a,
                b,
                oneway: rng.random_bool(0.3),
            }
        }
        65..75 => Fault::LinkDown {
            host: HOSTS.choose(rng).unwrap_or(&HOSTS[0]),
        },
        75..85 => {
            let (host, daemon) = *PROCESSES[..8].choose(rng).unwrap_or(&PROCESSES[4]);
            Fault::Reload { host, daemon }
        }
        85..93 => Fault::Switchover {
            via: proxies.choose(rng).unwrap_or(&"proxy-1"),
            target: dbs.choose(rng).unwrap_or(&"db-2"),
        },
        _ => Fault::FailingSwitchover {
            via: proxies.choose(rng).unwrap_or(&"proxy-1"),
            target: dbs.choose(rng).unwrap_or(&"db-2"),
        },
    }
}

/// The faults of `seed`: starts a random gap apart, each held for a random
/// duration, never more than `max_overlap` held at once nor two holding one
/// resource, all ended by `length`. Same seed and params, same schedule
/// (ChaCha8 is portable across platforms and versions).
pub fn schedule(seed: u64, p: &Params) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut events: Vec<Event> = Vec::new();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut t = Duration::ZERO;
    // Bounded: every round moves t on by at least 100 ms.
    for _ in 0..10_000 {
        t += Duration::from_millis(rng.random_range(100..=ms(p.mean_gap) * 2 + 100));
        let held: Vec<&Event> = events
            .iter()
            .filter(|e| !e.fault.instant() && e.at + e.dur > t)
            .collect();
        if held.len() >= p.max_overlap {
            // Wait for the first of them to end.
            t = held.iter().map(|e| e.at + e.dur).min().unwrap_or(t);
            continue;
        }
        let left = p.length.saturating_sub(t);
        let fault = pick_fault(&mut rng);
        let dur = if fault.instant() {
            Duration::ZERO
        } else {
            Duration::from_millis(rng.random_range(ms(p.min_dur)..=ms(p.max_dur))).min(left)
        };
        if left < p.min_dur {
            break;
        }
        let taken: BTreeSet<String> = held.iter().flat_map(|e| e.fault.resources()).collect();
        if fault.resources().iter().any(|r| taken.contains(r)) {
            // Drawn anyway (the sequence stays the seed's), not played.
            continue;
        }
        events.push(Event { at: t, dur, fault });
    }
    events
}

/// The schedule the issue found split brain with: {proxy-2, db-2} cut off
/// from {proxy-1, db-1, db-3} (the LB hosts see both sides), for `hold`.
pub fn asymmetric_split(hold: Duration) -> Vec<Event> {
    vec![Event {
        at: Duration::from_secs(1),
        dur: hold,
        fault: Fault::Partition {
            a: vec!["db-2", "proxy-2"],
            b: vec!["db-1", "db-3", "proxy-1"],
            oneway: false,
        },
    }]
}

/// The harness's own check: {proxy-2, db-2} cut off from {proxy-1, db-1,
/// db-3} for `hold`, and db-2 promoted by hand 5 s in. proxy-2 then sees one
/// live writable node and sends its clients' writes there while proxy-1
/// writes on db-1: every run of it must report two primaries taking writes.
pub fn rogue_split(hold: Duration) -> Vec<Event> {
    let mut v = asymmetric_split(hold);
    v.push(Event {
        at: Duration::from_secs(6),
        dur: Duration::ZERO,
        fault: Fault::RoguePromotion { node: "db-2" },
    });
    v
}

// --- what was played, and the network it made ------------------------------------------

/// A fault as played: since the workload's start, from its first action to
/// the end of its undo (a restart counts until the process answers again).
#[derive(Clone, Debug)]
pub struct Applied {
    pub fault: Fault,
    pub start: Duration,
    pub end: Duration,
    /// What the injection or undo said, if not plainly done.
    pub note: String,
}

/// Who runs and who reaches whom at a time, from the faults as played.
pub struct Model<'a> {
    pub applied: &'a [Applied],
}

impl Model<'_> {
    fn active(&self, t: Duration) -> impl Iterator<Item = &Fault> {
        self.applied
            .iter()
            .filter(move |a| a.start <= t && t < a.end)
            .map(|a| &a.fault)
    }

    /// `daemon` on `host` runs and is not stopped at `t`.
    pub fn up(&self, host: &str, daemon: &str, t: Duration) -> bool {
        !self.active(t).any(|f| match f {
            Fault::Process {
                host: h, daemon: d, ..
            } => *h == host && *d == daemon,
            Fault::FailingSwitchover { target, .. } => *target == host && daemon == "mariadbd",
            _ => false,
        })
    }

    fn link_up(&self, host: &str, t: Duration) -> bool {
        !self
            .active(t)
            .any(|f| matches!(f, Fault::LinkDown { host: h } if *h == host))
    }

    /// What `from` sends `to` arrives at `t`.
    pub fn delivers(&self, from: &str, to: &str, t: Duration) -> bool {
        self.link_up(from, t)
            && self.link_up(to, t)
            && !self.active(t).any(|f| match f {
                Fault::Partition { a, b, oneway } => {
                    (a.contains(&from) && b.contains(&to))
                        || (!oneway && a.contains(&to) && b.contains(&from))
                }
                _ => false,
            })
    }

    /// Both ways: what a TCP connection needs.
    pub fn connected(&self, x: &str, y: &str, t: Duration) -> bool {
        self.delivers(x, y, t) && self.delivers(y, x, t)
    }

    /// Both VRRP routers run and hear each other at `t`.
    pub fn lbs_hear_each_other(&self, t: Duration) -> bool {
        self.up("lb-1", "vrrpd", t)
            && self.up("lb-2", "vrrpd", t)
            && self.connected("lb-1", "lb-2", t)
    }

    /// A sqlproxyd and a majority of the nodes, all running and reaching
    /// each other, at `t`: the stack can have a primary.
    pub fn quorum_reachable(&self, t: Duration) -> bool {
        let nodes: Vec<&str> = DBS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| self.up(n, "mariadbd", t))
            .collect();
        PROXIES.iter().any(|(p, _)| {
            self.up(p, "sqlproxyd", t)
                && pairs(&nodes).any(|(x, y)| {
                    self.connected(p, x, t) && self.connected(p, y, t) && self.connected(x, y, t)
                })
        })
    }
}

fn pairs<'a>(v: &'a [&'a str]) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    v.iter()
        .enumerate()
        .flat_map(move |(i, x)| v[i + 1..].iter().map(move |y| (*x, *y)))
}

// --- the invariants ----------------------------------------------------------------------

/// Where each acknowledged write landed, and what each node holds at the end.
#[derive(Clone, Debug, Default)]
pub struct Landing {
    /// id → server_id of the node the row was written on (from any node).
    pub sid: BTreeMap<u64, u32>,
    /// node → the ids its table holds.
    pub holds: BTreeMap<&'static str, BTreeSet<u64>>,
}

/// Acknowledged writes on two diverging nodes: node X acknowledged a write
/// that started after a write acknowledged on Y had ended, and X's table
/// never got Y's write. A legitimate history has X primary again only after
/// it replicated everything Y acknowledged, so this is two writable
/// primaries taking clients' writes at once (or Y's write lost on X).
pub fn landing_violations(ops: &[Op], landing: &Landing) -> Vec<String> {
    let acked: Vec<&Op> = ops
        .iter()
        .filter(|o| o.kind != OpKind::Read && o.outcome == Outcome::Ack && !o.ids.is_empty())
        .collect();
    let on = |o: &Op| landing.sid.get(&o.ids[0]).map(|&s| node_of(s));
    let mut v = Vec::new();
    for (x, holds) in &landing.holds {
        // The earliest-ending acknowledged write of another node missing on x.
        let missing = acked
            .iter()
            .filter(|o| on(o).is_some_and(|n| n != *x) && !holds.contains(&o.ids[0]))
            .min_by_key(|o| o.end);
        let Some(b) = missing else { continue };
        let later: Vec<&&Op> = acked
            .iter()
            .filter(|o| on(o) == Some(*x) && o.start > b.end)
            .collect();
        if let Some(c) = later.first() {
            v.push(format!(
                "acknowledged writes on two primaries: {} acknowledged {} writes after {} \
                 had acknowledged id {} (ended {:.1} s), which {x} never got; first: id {} at {:.1} s",
                x,
                later.len(),
                on(b).unwrap_or("?"),
                b.ids[0],
                b.end.as_secs_f64(),
                c.ids[0],
                c.start.as_secs_f64()
            ));
        }
    }
    v
}

/// Two nodes writable (read_only off, replicating from nobody) in two
/// samples in a row, and both acknowledging clients' writes in between: the
/// sampler's view of split brain. One sample is not enough: it reads the
/// nodes one after another, so a switchover between two reads shows both.
pub fn two_writable_violations(ops: &[Op], samples: &[Sample], landing: &Landing) -> Vec<String> {
    let acked_on = |node: &str, from: Duration, to: Duration| {
        ops.iter().any(|o| {
            o.kind != OpKind::Read
                && o.outcome == Outcome::Ack
                && o.start <= to
                && o.end >= from
                && o.ids
                    .first()
                    .and_then(|id| landing.sid.get(id))
                    .is_some_and(|&s| node_of(s) == node)
        })
    };
    let mut seen = BTreeSet::new();
    let mut v = Vec::new();
    for w in samples.windows(2) {
        let both: Vec<&&str> = w[0]
            .writable
            .iter()
            .filter(|n| w[1].writable.contains(n))
            .collect();
        for (i, x) in both.iter().enumerate() {
            for y in &both[i + 1..] {
                if acked_on(x, w[0].t, w[1].t)
                    && acked_on(y, w[0].t, w[1].t)
                    && seen.insert((**x, **y))
                {
                    v.push(format!(
                        "two writable primaries taking writes: {x} and {y} from {:.1} s to {:.1} s",
                        w[0].t.as_secs_f64(),
                        w[1].t.as_secs_f64()
                    ));
                }
            }
        }
    }
    v
}

/// Exactly one VIP holder in every two samples in a row taken after both
/// VRRP routers had run and heard each other for `settle` (3 adverts
/// missed, preemption and lbd tracking: a few seconds). Two in a row: a
/// sample reads the LB hosts one after the other, so a handover between
/// the two reads (the new master adds the VIP, the old one removes it
/// milliseconds later) shows none or two in that one sample.
pub fn vip_violations(samples: &[Sample], model: &Model, settle: Duration) -> Vec<String> {
    let mut v = Vec::new();
    let mut since: Option<Duration> = None;
    let mut previous_wrong = false;
    // The model is sampled at the samples' times: faults are seconds long,
    // samples a fraction of a second apart.
    for s in samples {
        if !model.lbs_hear_each_other(s.t) {
            since = None;
            previous_wrong = false;
            continue;
        }
        let from = *since.get_or_insert(s.t);
        let wrong = s.t >= from + settle && s.vip_holders.len() != 1;
        let twice = wrong && previous_wrong;
        previous_wrong = wrong;
        if twice {
            v.push(format!(
                "VIP held by {:?} at {:.1} s, {:.1} s after the LB hosts could hear each other",
                s.vip_holders,
                s.t.as_secs_f64(),
                (s.t - from).as_secs_f64()
            ));
            if v.len() >= 5 {
                break;
            }
        }
    }
    v
}

/// A sample where some sqlproxyd names a primary the sampler sees writable.
fn has_primary(s: &Sample) -> bool {
    s.proxy_primary
        .iter()
        .flatten()
        .any(|p| s.writable.iter().any(|w| w == p))
}

/// While a quorum of nodes and a sqlproxyd reach each other, no stretch
/// without a primary lasts longer than `bound`.
pub fn primary_violations(samples: &[Sample], model: &Model, bound: Duration) -> Vec<String> {
    let mut v = Vec::new();
    let mut since: Option<Duration> = None;
    let mut reported = false;
    for s in samples {
        if !model.quorum_reachable(s.t) || has_primary(s) {
            since = None;
            reported = false;
            continue;
        }
        let from = *since.get_or_insert(s.t);
        if s.t > from + bound && !reported {
            reported = true;
            v.push(format!(
                "no primary for {:.1} s from {:.1} s though a quorum and a proxy reached each other \
                 (bound {:.0} s); proxies named {:?}, writable {:?}",
                (s.t - from).as_secs_f64(),
                from.as_secs_f64(),
                bound.as_secs_f64(),
                s.proxy_primary,
                s.writable
            ));
        }
    }
    v
}

/// The longest stretch without an acknowledged write between `from` and
/// `to`: the write outage.
pub fn longest_write_outage(ops: &[Op], from: Duration, to: Duration) -> Duration {
    let mut ends: Vec<Duration> = ops
        .iter()
        .filter(|o| o.kind != OpKind::Read && o.outcome == Outcome::Ack)
        .map(|o| o.end.clamp(from, to))
        .collect();
    ends.push(from);
    ends.push(to);
    ends.sort();
    ends.windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

// --- the shell: playing a schedule ------------------------------------------------------

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub load: WorkloadConfig,
    /// Load before the first fault.
    pub before: Duration,
    /// After healing: the stack serves again within it.
    pub converge_timeout: Duration,
    /// A read may miss the connection's own writes younger than this.
    pub stale_after: Duration,
    /// A primary again within it whenever a quorum can have one.
    pub failover_bound: Duration,
    /// One VIP holder this long after the LB hosts hear each other.
    pub vip_settle: Duration,
}

impl RunConfig {
    /// The lab's settings (deploy/lab.sh): heartbeat 1 s × 3, slave_net_timeout
    /// 4 s, `min_switch_interval` 30 s (a failover within 30 s of a switch
    /// waits), max_replica_lag 5 s, VRRP adverts every second.
    pub fn lab(load_time: Duration) -> RunConfig {
        RunConfig {
            load: WorkloadConfig {
                conns: 4,
                max_ops: 1_000_000,
                max_time: load_time,
                pause: Duration::from_millis(10),
            },
            before: Duration::from_secs(2),
            converge_timeout: Duration::from_secs(60),
            stale_after: Duration::from_secs(7),
            failover_bound: Duration::from_secs(30 + 3 + 4 + 8),
            vip_settle: Duration::from_secs(8),
        }
    }
}

/// One seed's run.
#[derive(Clone, Debug)]
pub struct SeedReport {
    pub seed: Option<u64>,
    pub events: usize,
    pub applied: Vec<Applied>,
    pub violations: Vec<String>,
    pub ops: usize,
    pub acked_writes: usize,
    pub longest_write_outage: Duration,
    /// Max nodes writable in one sample (a returning old primary counts
    /// until fenced: information, not the invariant).
    pub max_writable_sampled: usize,
    /// The lab had to be brought down and up again after this seed.
    pub lab_restarted: bool,
    /// With a violation: the daemons' log tails, taken before the restore.
    pub logs: Option<String>,
    pub reproduce: String,
}

impl SeedReport {
    pub fn summary(&self) -> String {
        let mut s =
            format!(
            "seed {}: {} faults, {} ops ({} writes acknowledged), longest write outage {:.1} s, \
             max writable in one sample {}, {} violations{}\n",
            self.seed.map_or("-".to_owned(), |s| s.to_string()),
            self.applied.len(),
            self.ops,
            self.acked_writes,
            self.longest_write_outage.as_secs_f64(),
            self.max_writable_sampled,
            self.violations.len(),
            if self.lab_restarted { " (lab restarted after it)" } else { "" }
        );
        for a in &self.applied {
            let _ = writeln!(
                s,
                "  {:6.1}..{:6.1} s  {}{}",
                a.start.as_secs_f64(),
                a.end.as_secs_f64(),
                a.fault,
                if a.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.note)
                }
            );
        }
        for v in &self.violations {
            let _ = writeln!(s, "  VIOLATION: {v}");
        }
        if !self.violations.is_empty() {
            let _ = writeln!(s, "  reproduce: {}", self.reproduce);
        }
        s
    }
}

fn pid_of(lab: &Lab, host: &str, daemon: &str) -> Result<i32> {
    lab.pid(host, daemon)
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

fn set_eth0(host: &str, up: bool) -> Result<()> {
    let ns = format!("hs-{host}");
    let st = if up { "up" } else { "down" };
    let out = Command::new("ip")
        .args(["-n", &ns, "link", "set", "eth0", st])
        .output()?;
    if !out.status.success() {
        bail!(
            "ip -n {ns} link set eth0 {st}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if up {
        // The link going down took the default route with it.
        let _ = Command::new("ip")
            .args(["-n", &ns, "route", "replace", "default", "via", "10.99.0.1"])
            .output();
    }
    Ok(())
}

fn partition_args(a: &[&str], b: &[&str], oneway: bool) -> Vec<String> {
    let mut v = Vec::new();
    if oneway {
        v.push("--oneway".to_owned());
    }
    v.push(a.join(","));
    v.push(b.join(","));
    v
}

fn lab_ok(lab: &Lab, args: &[String]) -> Result<()> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.ok(&a).map(drop)
}

fn proxy_addr(proxy: &str) -> &'static str {
    PROXIES
        .iter()
        .find(|(n, _)| *n == proxy)
        .map_or("0.0.0.0", |(_, a)| *a)
}

/// A switchover's answer, in a thread (it answers once done, up to 30 s).
type Pending = std::thread::JoinHandle<String>;

fn switchover(via: &str, target: &str, token: &str) -> Result<Pending> {
    let admin: SocketAddr = format!("{}:9166", proxy_addr(via)).parse()?;
    let (token, target) = (token.to_owned(), target.to_owned());
    Ok(std::thread::spawn(
        move || match crate::daemon::try_http_post(
            admin,
            &format!("/actions/switchover?node={target}"),
            &token,
        ) {
            Ok((code, body)) => format!(
                "{code} {}",
                body.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(160)
                    .collect::<String>()
            ),
            Err(e) => format!("{e:#}"),
        },
    ))
}

/// Plays the start of `fault`.
fn inject(lab: &Lab, fault: &Fault, token: &str, pending: &mut Option<Pending>) -> Result<()> {
    match fault {
        Fault::Process { host, daemon, sig } => {
            let pid = pid_of(lab, host, daemon)?;
            if !alive(pid) {
                bail!("{host}:{daemon} was not running");
            }
            let s = match sig {
                Sig::Kill => Signal::SIGKILL,
                Sig::Stop => Signal::SIGSTOP,
                Sig::Term => Signal::SIGTERM,
            };
            chaos::signal_pid(pid, s)
        }
        Fault::Partition { a, b, oneway } => {
            let mut args = vec!["partition".to_owned()];
            args.extend(partition_args(a, b, *oneway));
            lab_ok(lab, &args)
        }
        Fault::LinkDown { host } => set_eth0(host, false),
        Fault::Reload { host, daemon } => {
            let pid = pid_of(lab, host, daemon)?;
            if !alive(pid) {
                bail!("{host}:{daemon} was not running");
            }
            chaos::signal_pid(pid, Signal::SIGHUP)
        }
        Fault::Switchover { via, target } => {
            *pending = Some(switchover(via, target, token)?);
            Ok(())
        }
        Fault::FailingSwitchover { via, target } => {
            let pid = pid_of(lab, target, "mariadbd")?;
            chaos::signal_pid(pid, Signal::SIGSTOP)?;
            *pending = Some(switchover(via, target, token)?);
            Ok(())
        }
        Fault::RoguePromotion { node } => {
            let mut c = chaos::connect(chaos::db_addr(node), "monitor", "monitor", None)?;
            for q in [
                "STOP ALL SLAVES",
                "RESET SLAVE ALL",
                "SET GLOBAL read_only = OFF",
            ] {
                c.query_drop(q).with_context(|| format!("{node}: {q}"))?;
            }
            Ok(())
        }
    }
}

/// Undoes `fault`: started again, continued, healed, link up.
fn undo(lab: &Lab, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Process { host, daemon, sig } => {
            let pid = pid_of(lab, host, daemon)?;
            match sig {
                Sig::Stop => chaos::signal_pid(pid, Signal::SIGCONT),
                Sig::Kill | Sig::Term => {
                    // A clean stop may take a while (MariaDB flushes); bounded.
                    let gone =
                        crate::wait_for(Duration::from_secs(30), Duration::from_millis(20), || {
                            (!alive(pid)).then_some(())
                        });
                    if gone.is_none() {
                        chaos::signal_pid(pid, Signal::SIGKILL)?;
                        crate::wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
                            (!alive(pid)).then_some(())
                        });
                    }
                    lab_ok(lab, &["start".to_owned(), format!("{host}:{daemon}")])
                }
            }
        }
        Fault::Partition { a, b, oneway } => {
            let mut args = vec!["heal".to_owned()];
            args.extend(partition_args(a, b, *oneway));
            lab_ok(lab, &args)
        }
        Fault::LinkDown { host } => set_eth0(host, true),
        Fault::Reload { .. } | Fault::Switchover { .. } | Fault::RoguePromotion { .. } => Ok(()),
        Fault::FailingSwitchover { target, .. } => {
            chaos::signal_pid(pid_of(lab, target, "mariadbd")?, Signal::SIGCONT)
        }
    }
}

/// Plays `events` from now, each at its time after `t0 + offset`: the
/// faults as played, times since `t0`.
fn play(lab: &Lab, events: &[Event], t0: Instant, offset: Duration) -> Result<Vec<Applied>> {
    let token = lab.admin_token()?;
    // (time, undo?, event): undos first at equal times.
    let mut actions: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        actions.push((e.at, false, i));
        if !e.fault.instant() {
            actions.push((e.at + e.dur, true, i));
        }
    }
    actions.sort_by_key(|&(t, undo, i)| (t, !undo, i));
    let mut applied: Vec<Option<Applied>> = vec![None; events.len()];
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    for (at, is_undo, i) in actions {
        let due = t0 + offset + at;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let now = || Instant::now().duration_since(t0);
        let fault = &events[i].fault;
        if is_undo {
            let Some(a) = applied[i].as_mut() else {
                continue;
            };
            if let Err(e) = undo(lab, fault) {
                let _ = write!(a.note, "undo failed: {e:#}");
            }
            a.end = now();
        } else {
            let start = now();
            let mut p = None;
            let note = match inject(lab, fault, &token, &mut p) {
                Ok(()) => String::new(),
                Err(e) => format!("not injected: {e:#}"),
            };
            if let Some(p) = p {
                pending.push((i, p));
            }
            let injected = note.is_empty();
            applied[i] = Some(Applied {
                fault: fault.clone(),
                start,
                end: if fault.instant() || !injected {
                    now()
                } else {
                    Duration::MAX
                },
                note,
            });
            if !injected && !fault.instant() {
                // Nothing to undo; the model must not count it as held.
                if let Some(a) = applied[i].as_mut() {
                    a.end = a.start;
                }
            }
        }
    }
    for (i, p) in pending {
        let answer = p
            .join()
            .unwrap_or_else(|_| "the request thread panicked".to_owned());
        if let Some(a) = applied[i].as_mut() {
            let _ = write!(
                a.note,
                "{}answered {answer}",
                if a.note.is_empty() { "" } else { "; " }
            );
        }
    }
    Ok(applied.into_iter().flatten().collect())
}

/// Heals everything, continues and starts whatever the schedule left
/// stopped or dead (nothing, if every undo worked).
fn heal_all(lab: &Lab) -> Result<()> {
    lab.ok(&["heal"])?;
    for h in HOSTS {
        set_eth0(h, true)?;
    }
    for (_, pid) in lab.pids()? {
        if alive(pid) {
            let _ = chaos::signal_pid(pid, Signal::SIGCONT);
        }
    }
    for h in HOSTS {
        lab.ok(&["start", h])?;
    }
    Ok(())
}

/// Every node in its place: one writable primary, the others replicating
/// from it with both threads running, up and readable on both sqlproxyds.
fn lab_ready() -> Result<()> {
    let primary = chaos::current_primary()?;
    for (n, a) in DBS {
        let st = node_state(a)?;
        if n != primary && !(st.read_only && st.replicating && st.io_running && st.sql_running) {
            bail!("{n} is not a running replica: {st:?}");
        }
        for (p, pa) in PROXIES {
            match proxy_node_state(pa, n) {
                Some((s, readable)) if s == "up" && (readable || n == primary) => {}
                other => bail!("{p} sees {n} as {other:?}"),
            }
        }
    }
    Ok(())
}

/// Brings the lab back for the next seed: healed, everything running, the
/// stack serving, every node in its place within `timeout`. Err: it could
/// not (the caller restarts the lab).
pub fn restore(lab: &Lab, timeout: Duration) -> Result<()> {
    heal_all(lab)?;
    chaos::wait_converged(VIP, timeout)?;
    let mut last = anyhow!("not checked");
    crate::wait_for(timeout, Duration::from_millis(500), || match lab_ready() {
        Ok(()) => Some(()),
        Err(e) => {
            last = e;
            None
        }
    })
    .ok_or_else(|| anyhow!("the lab did not settle within {timeout:?}: {last:#}"))
}

fn landing(table: &str) -> Result<Landing> {
    let mut out = Landing::default();
    for (n, a) in DBS {
        let mut c = chaos::connect(a, "app", "app", Some("app"))
            .with_context(|| format!("reading {n}'s {table}"))?;
        let rows: Vec<(u64, u32)> = c.query(format!("SELECT id, sid FROM {table}"))?;
        let held = out.holds.entry(n).or_default();
        for (id, sid) in rows {
            held.insert(id);
            out.sid.entry(id).or_insert(sid);
        }
    }
    Ok(out)
}

/// Plays `events` under load and checks every invariant. An Err is a
/// harness failure (the lab could not even start the workload); a broken
/// invariant, a stack that does not converge and a failed final check are
/// violations in the report.
pub fn run_events(
    lab: &Lab,
    seed: Option<u64>,
    events: &[Event],
    table: &str,
    cfg: &RunConfig,
    reproduce: &str,
) -> Result<SeedReport> {
    let mut probe = chaos::connect(VIP, "app", "app", Some("app"))?;
    probe.query_drop(
        "CREATE TABLE IF NOT EXISTS chaos_probe (n BIGINT AUTO_INCREMENT PRIMARY KEY, t DATETIME(6))",
    )?;
    drop(probe);
    let load = Workload::start(VIP, table, &cfg.load)?;
    let sampler = Sampler::start(load.t0, Duration::from_millis(200), VIP, true);
    let played = play(lab, events, load.t0, cfg.before);
    let sched_end = load.now();
    let mut violations = Vec::new();
    let healed = heal_all(lab);
    let converged = healed.and_then(|()| chaos::wait_converged(VIP, cfg.converge_timeout));
    if let Err(e) = &converged {
        violations.push(format!("after healing everything: {e:#}"));
    }
    let ops = load.finish();
    let samples = sampler.finish();
    let applied = played?;
    let model = Model { applied: &applied };
    match landing(table) {
        Ok(l) => {
            violations.extend(landing_violations(&ops, &l));
            violations.extend(two_writable_violations(&ops, &samples, &l));
        }
        Err(e) => violations.push(format!("could not read every node's table: {e:#}")),
    }
    violations.extend(vip_violations(&samples, &model, cfg.vip_settle));
    violations.extend(primary_violations(&samples, &model, cfg.failover_bound));
    // A node cut off for long replays what it missed first (a 2-minute
    // partition: a minute of rows on the lab's small nodes).
    let caught_up = converged.is_ok() && {
        let r = chaos::wait_replicated(cfg.converge_timeout * 2);
        if let Err(e) = &r {
            violations.push(format!("replication after healing: {e:#}"));
        }
        r.is_ok()
    };
    if caught_up {
        match chaos::check(table, &ops) {
            Ok(c) => {
                if !c.acked_missing.is_empty() {
                    violations.push(format!(
                        "acknowledged writes lost: {:?}",
                        first(&c.acked_missing)
                    ));
                }
                if !c.failed_present.is_empty() {
                    violations.push(format!(
                        "writes that failed (or half a transaction) present: {:?}",
                        first(&c.failed_present)
                    ));
                }
                if !c.duplicates.is_empty() || !c.phantom.is_empty() {
                    violations.push(format!(
                        "duplicate ids {:?}, ids nobody wrote {:?}",
                        first(&c.duplicates),
                        first(&c.phantom)
                    ));
                }
                if !c.disagree.is_empty() {
                    violations.push(format!(
                        "replicas disagree with {}: {:?}",
                        c.primary, c.disagree
                    ));
                }
            }
            Err(e) => violations.push(format!("final check: {e:#}")),
        }
    }
    let stale = chaos::stale_reads(&ops, cfg.stale_after);
    if stale > 0 {
        violations.push(format!(
            "{stale} reads missed the connection's own writes acknowledged more than {:?} before",
            cfg.stale_after
        ));
    }
    for a in &applied {
        if a.note.contains("undo failed") {
            violations.push(format!(
                "the nemesis could not undo {}: {}",
                a.fault, a.note
            ));
        }
    }
    Ok(SeedReport {
        seed,
        events: events.len(),
        violations,
        ops: ops.len(),
        acked_writes: ops
            .iter()
            .filter(|o| o.kind != OpKind::Read && o.outcome == Outcome::Ack)
            .count(),
        longest_write_outage: longest_write_outage(&ops, cfg.before, sched_end),
        max_writable_sampled: samples.iter().map(|s| s.writable.len()).max().unwrap_or(0),
        applied,
        lab_restarted: false,
        logs: None,
        reproduce: reproduce.to_owned(),
    })
}

fn first(v: &[u64]) -> Vec<u64> {
    v.iter().take(10).copied().collect()
}

/// Runs one seed on `lab` (up and ready), then restores it; a lab that
/// cannot be restored is brought down and up again (`lab_restarted`).
pub fn run_seed(
    lab: &mut Lab,
    seed: Option<u64>,
    events: &[Event],
    cfg: &RunConfig,
    reproduce: &str,
) -> Result<SeedReport> {
    let table = format!("nemesis_{}", seed.unwrap_or(0));
    let mut r = run_events(lab, seed, events, &table, cfg, reproduce)?;
    if !r.violations.is_empty() {
        r.logs = Some(lab.logs());
    }
    if let Err(e) = restore(lab, cfg.converge_timeout) {
        r.violations
            .push(format!("lab not restored after the seed: {e:#}"));
        r.lab_restarted = true;
        lab.ok(&["down"])?;
        lab.ok(&["up"])?;
    } else if let Ok(mut c) = chaos::connect(VIP, "app", "app", Some("app")) {
        // The next seed's replication need not carry this one's rows.
        let _ = c.query_drop(format!("DROP TABLE IF EXISTS {table}"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_bounded_in_time_and_overlap() {
        let p = Params::new(Duration::from_secs(90));
        for seed in 0..200 {
            let s = schedule(seed, &p);
            assert_eq!(s, schedule(seed, &p), "seed {seed}");
            assert!(!s.is_empty());
            for e in &s {
                assert!(e.at + e.dur <= p.length, "seed {seed}: {e:?}");
                let at = |t: Duration| {
                    s.iter()
                        .filter(|x| !x.fault.instant() && x.at <= t && t < x.at + x.dur)
                        .collect::<Vec<_>>()
                };
                let held = at(e.at);
                assert!(
                    held.len() <= p.max_overlap,
                    "seed {seed} at {:?}: {held:?}",
                    e.at
                );
                let res: Vec<String> = held.iter().flat_map(|x| x.fault.resources()).collect();
                let uniq: BTreeSet<&String> = res.iter().collect();
                assert_eq!(
                    res.len(),
                    uniq.len(),
                    "seed {seed}: shared resource {held:?}"
                );
            }
        }
        assert_ne!(schedule(1, &p), schedule(2, &p));
    }

    #[test]
    fn every_kind_of_fault_is_drawn() {
        let p = Params::new(Duration::from_secs(90));
        let all: Vec<Fault> = (0..100)
            .flat_map(|s| schedule(s, &p))
            .map(|e| e.fault)
            .collect();
        let has = |f: &dyn Fn(&Fault) -> bool| all.iter().any(f);
        assert!(has(&|f| matches!(
            f,
            Fault::Process {
                sig: Sig::Kill,
                daemon: "mariadbd",
                ..
            }
        )));
        assert!(has(&|f| matches!(f, Fault::Process { sig: Sig::Stop, .. })));
        assert!(has(&|f| matches!(f, Fault::Process { sig: Sig::Term, .. })));
        assert!(has(&|f| matches!(f, Fault::Partition { oneway: true, .. })));
        assert!(has(
            &|f| matches!(f, Fault::Partition { a, oneway: false, .. } if a.len() > 1)
        ));
        assert!(has(&|f| matches!(f, Fault::LinkDown { .. })));
        assert!(has(&|f| matches!(f, Fault::Reload { .. })));
        assert!(has(&|f| matches!(f, Fault::Switchover { .. })));
        assert!(has(&|f| matches!(f, Fault::FailingSwitchover { .. })));
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn held(fault: Fault, start: f64, end: f64) -> Applied {
        Applied {
            fault,
            start: secs(start),
            end: secs(end),
            note: String::new(),
        }
    }

    #[test]
    fn the_model_reads_partitions_one_way_and_both() {
        let applied = [
            held(
                Fault::Partition {
                    a: vec!["lb-1"],
                    b: vec!["lb-2"],
                    oneway: true,
                },
                1.0,
                5.0,
            ),
            held(
                Fault::Partition {
                    a: vec!["db-2", "proxy-2"],
                    b: vec!["db-1", "db-3", "proxy-1"],
                    oneway: false,
                },
                10.0,
                20.0,
            ),
        ];
        let m = Model { applied: &applied };
        assert!(!m.delivers("lb-1", "lb-2", secs(2.0)));
        assert!(m.delivers("lb-2", "lb-1", secs(2.0)));
        assert!(!m.lbs_hear_each_other(secs(2.0)));
        assert!(m.lbs_hear_each_other(secs(5.0)));
        assert!(!m.connected("db-1", "db-2", secs(15.0)));
        assert!(m.connected("db-1", "db-3", secs(15.0)));
        // proxy-1 with db-1 and db-3: a quorum.
        assert!(m.quorum_reachable(secs(15.0)));
        let stopped = [
            held(
                Fault::Process {
                    host: "db-1",
                    daemon: "mariadbd",
                    sig: Sig::Stop,
                },
                0.0,
                9.0,
            ),
            held(Fault::LinkDown { host: "db-2" }, 0.0, 9.0),
        ];
        let m = Model { applied: &stopped };
        assert!(!m.quorum_reachable(secs(1.0)));
        assert!(m.quorum_reachable(secs(9.0)));
    }

    fn write(conn: usize, id: u64, start: f64, end: f64) -> Op {
        Op {
            conn,
            kind: OpKind::Insert,
            ids: vec![id],
            start: secs(start),
            end: secs(end),
            outcome: Outcome::Ack,
            seen: None,
        }
    }

    fn landing_of(rows: &[(u64, &'static str)], holds: &[(&'static str, &[u64])]) -> Landing {
        Landing {
            sid: rows
                .iter()
                .map(|&(id, n)| (id, server_id(n).unwrap_or(0)))
                .collect(),
            holds: holds
                .iter()
                .map(|&(n, ids)| (n, ids.iter().copied().collect()))
                .collect(),
        }
    }

    #[test]
    fn writes_acknowledged_on_two_diverging_nodes_are_split_brain() {
        let ops = [
            write(0, 1, 0.0, 0.1),
            write(1, 2, 1.0, 1.1),
            write(0, 3, 2.0, 2.1),
        ];
        // db-1 took 1 and 3, db-2 took 2: db-1 acknowledged 3 after 2 without having it.
        let split = landing_of(
            &[(1, "db-1"), (2, "db-2"), (3, "db-1")],
            &[("db-1", &[1, 3]), ("db-2", &[1, 2])],
        );
        let v = landing_violations(&ops, &split);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("db-1 acknowledged 1 writes after db-2"),
            "{v:?}"
        );
        // A switchover there and back: db-1 had db-2's write before taking 3.
        let back = landing_of(
            &[(1, "db-1"), (2, "db-2"), (3, "db-1")],
            &[
                ("db-1", &[1, 2, 3]),
                ("db-2", &[1, 2, 3]),
                ("db-3", &[1, 2, 3]),
            ],
        );
        assert!(landing_violations(&ops, &back).is_empty());
    }

    fn sample(t: f64, writable: &[&'static str], vip: &[&'static str], primary: &str) -> Sample {
        Sample {
            t: secs(t),
            vip_holders: vip.to_vec(),
            writable: writable.to_vec(),
            read_only: vec![],
            proxy_primary: vec![Some(primary.to_owned()), None],
        }
    }

    #[test]
    fn two_writable_nodes_count_only_in_two_samples_with_writes_on_both() {
        let ops = [write(0, 1, 0.9, 1.0), write(1, 2, 1.1, 1.2)];
        let l = landing_of(&[(1, "db-1"), (2, "db-2")], &[]);
        let both = [
            sample(0.8, &["db-1", "db-2"], &[], "db-1"),
            sample(1.3, &["db-1", "db-2"], &[], "db-1"),
        ];
        assert_eq!(two_writable_violations(&ops, &both, &l).len(), 1);
        // A switchover between two reads of one sample: the next one is clean.
        let once = [
            sample(0.8, &["db-1", "db-2"], &[], "db-1"),
            sample(1.3, &["db-2"], &[], "db-2"),
        ];
        assert!(two_writable_violations(&ops, &once, &l).is_empty());
        // Writable but taking no writes (an old primary not yet fenced).
        let quiet = landing_of(&[(1, "db-1"), (2, "db-1")], &[]);
        assert!(two_writable_violations(&ops, &both, &quiet).is_empty());
    }

    #[test]
    fn the_vip_has_one_holder_once_the_lb_hosts_hear_each_other() {
        let applied = [held(
            Fault::Partition {
                a: vec!["lb-1"],
                b: vec!["lb-2"],
                oneway: false,
            },
            1.0,
            5.0,
        )];
        let m = Model { applied: &applied };
        let two = ["lb-1", "lb-2"];
        let samples = [
            sample(2.0, &[], &two, "db-1"),  // cut off: both may hold it
            sample(6.0, &[], &two, "db-1"),  // 1 s after healing: settling
            sample(16.0, &[], &two, "db-1"), // 11 s after: wrong once
            sample(16.2, &[], &two, "db-1"), // and again: a violation
            sample(17.0, &[], &["lb-1"], "db-1"),
            sample(18.0, &[], &[], "db-1"), // one sample mid-handover: not one
            sample(18.2, &[], &["lb-2"], "db-1"),
        ];
        let v = vip_violations(&samples, &m, Duration::from_secs(8));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("16.2 s"), "{v:?}");
    }

    #[test]
    fn a_quorum_must_have_a_primary_within_the_bound() {
        let applied = [held(
            Fault::Process {
                host: "db-1",
                daemon: "mariadbd",
                sig: Sig::Kill,
            },
            1.0,
            100.0,
        )];
        let m = Model { applied: &applied };
        let mut samples = vec![sample(0.0, &["db-1"], &[], "db-1")];
        samples.extend((1..60).map(|t| sample(f64::from(t), &[], &[], "none")));
        // db-2 and db-3 with a proxy: a quorum, and no primary for 59 s.
        assert_eq!(
            primary_violations(&samples, &m, Duration::from_secs(45)).len(),
            1
        );
        // Promoted at 40 s: within the bound.
        for s in samples.iter_mut().skip(40) {
            s.writable = vec!["db-2"];
            s.proxy_primary = vec![Some("db-2".to_owned())];
        }
        assert!(primary_violations(&samples, &m, Duration::from_secs(45)).is_empty());
        // Both replicas gone too: no quorum, nothing owed.
        let none = [
            applied[0].clone(),
            held(Fault::LinkDown { host: "db-2" }, 0.0, 100.0),
        ];
        let m = Model { applied: &none };
        let samples: Vec<Sample> = (1..60)
            .map(|t| sample(f64::from(t), &[], &[], "none"))
            .collect();
        assert!(primary_violations(&samples, &m, Duration::from_secs(45)).is_empty());
    }

    #[test]
    fn the_outage_is_the_longest_gap_between_acknowledged_writes() {
        let mut failed = write(0, 9, 3.0, 3.5);
        failed.outcome = Outcome::Error(0, "x".into());
        let ops = [
            write(0, 1, 0.0, 1.0),
            failed,
            write(0, 2, 5.0, 6.0),
            write(0, 3, 6.0, 6.5),
        ];
        assert_eq!(longest_write_outage(&ops, secs(0.0), secs(8.0)), secs(5.0));
    }
}
