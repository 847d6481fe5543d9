//! The decision core under random schedules, without sockets: two or three
//! proxies, each with its own [`Cluster`], over three simulated MariaDB
//! nodes, with random deaths, restarts, partitions (of any pair, one
//! direction included) and delayed rounds. The proxies' actions are carried
//! out on the simulated nodes as [`crate::ha::failover`] carries them out: the
//! promotion lock on every reachable node at once, a majority of the
//! configured nodes or nothing, a lease waited out under it, the backends
//! looked at again before the plan runs.
//!
//! Checked at every tick: never a promotion without quorum, never two
//! promotions replacing the same primary, never writes acknowledged on two
//! nodes at once; and at the end, everything healed: one primary that all
//! proxies agree on and that holds every acknowledged write.

use super::*;
use crate::ha::probe::Link;
use hastack_proto::mysql::gtid::{GtidPos, GtidState};
use proptest::prelude::*;

const NODES: usize = 3;
const TICK: Duration = Duration::from_millis(250);
/// Rounds every 4 ticks (`heartbeat.interval` 1 s).
const ROUND: u64 = 4;
const FAIL: u32 = 3;
/// `fail_count` rounds, as the monitor sets it.
const LEASE: Duration = Duration::from_secs(3);
/// The lease and one round, as the promoter waits under the lock.
const LEASE_WAIT_TICKS: u64 = 16;

#[derive(Clone, Debug)]
struct Node {
    alive: bool,
    read_only: bool,
    master: Option<usize>,
    /// The replication threads were started (they may still be unable to
    /// reach the master).
    running: bool,
    /// The proxy holding the promotion lock here.
    lock: Option<usize>,
    /// The binlog: (sequence number, server id) of each transaction.
    log: Vec<(u64, u32)>,
    /// Its master's binlog is not a continuation of its own (MariaDB's
    /// 1236): the IO thread stopped.
    diverged: bool,
}

/// One thing that happens to the world.
#[derive(Clone, Debug)]
enum Event {
    Kill(usize),
    Restart(usize),
    /// Host `from` stops reaching host `to` (hosts: nodes 0..3, then the
    /// proxies); `both` cuts the other direction too.
    Cut {
        from: usize,
        to: usize,
        both: bool,
    },
    Heal,
    /// Proxy `p` skips its next `ticks` ticks (a slow round, a GC pause).
    Delay {
        proxy: usize,
        ticks: u64,
    },
}

struct Pending {
    node: usize,
    old: usize,
    repoint: Vec<usize>,
    done_at: u64,
    locks: Vec<usize>,
}

struct Proxy {
    cluster: Cluster,
    view: View,
    busy: Option<Pending>,
    paused_until: u64,
    phase: u64,
}

struct World {
    nodes: Vec<Node>,
    /// `cut[a][b]`: a's packets do not reach b.
    cut: Vec<Vec<bool>>,
    proxies: Vec<Proxy>,
    t0: Instant,
    /// The node most recently made primary or acknowledging writes.
    primary: usize,
    violations: Vec<String>,
    promotions: usize,
    acks: usize,
    /// Acknowledged transactions (their sequence numbers).
    acked: Vec<u64>,
    seq: u64,
}

fn specs() -> Vec<NodeSpec> {
    (0..NODES)
        .map(|i| NodeSpec {
            name: format!("db-{}", i + 1),
            addr: SocketAddr::from(([127, 0, 0, 1], 3311 + i as u16)),
            role: if i == 0 { Role::Write } else { Role::Read },
        })
        .collect()
}

fn policy() -> Policy {
    Policy {
        fail_count: FAIL,
        switch_type: SwitchType::Heartbeat,
        promote: true,
        auto_rejoin: true,
        max_replica_lag: Duration::from_secs(5),
        min_switch_interval: Duration::from_secs(0),
        reads_fall_back_to_primary: true,
        restore_writable: true,
        quorum: Quorum::Majority,
        lease: LEASE,
    }
}

impl World {
    fn new(proxies: usize, phases: &[u64]) -> World {
        let mut nodes = vec![
            Node {
                alive: true,
                read_only: true,
                master: Some(0),
                running: true,
                lock: None,
                log: vec![(1, 1)],
                diverged: false,
            };
            NODES
        ];
        nodes[0].read_only = false;
        nodes[0].master = None;
        nodes[0].running = false;
        let hosts = NODES + proxies;
        World {
            nodes,
            cut: vec![vec![false; hosts]; hosts],
            proxies: (0..proxies)
                .map(|p| Proxy {
                    cluster: Cluster::new(specs(), policy(), None),
                    view: View::initial(NODES),
                    busy: None,
                    paused_until: 0,
                    phase: phases[p] % ROUND,
                })
                .collect(),
            t0: Instant::now(),
            primary: 0,
            violations: Vec::new(),
            promotions: 0,
            acks: 0,
            acked: Vec::new(),
            seq: 1,
        }
    }

    fn at(&self, tick: u64) -> Instant {
        self.t0 + TICK * u32::try_from(tick).unwrap_or(u32::MAX)
    }

    /// A request from proxy `p` to node `n` and its answer both get through.
    fn reach(&self, p: usize, n: usize) -> bool {
        let ph = NODES + p;
        self.nodes[n].alive && !self.cut[ph][n] && !self.cut[n][ph]
    }

    /// Node `n`'s IO thread is connected to its master.
    fn io_yes(&self, n: usize) -> bool {
        let node = &self.nodes[n];
        node.running
            && !node.diverged
            && node
                .master
                .is_some_and(|m| self.nodes[m].alive && !self.cut[n][m] && !self.cut[m][n])
    }

    fn report(&self, n: usize) -> Report {
        let node = &self.nodes[n];
        let parse = |s: String| GtidPos::parse(&s).unwrap_or_default();
        let last = |log: &[(u64, u32)]| {
            parse(
                log.last()
                    .map(|(k, srv)| format!("0-{srv}-{k}"))
                    .unwrap_or_default(),
            )
        };
        let mut per_server = std::collections::BTreeMap::new();
        for &(k, srv) in &node.log {
            per_server.insert(srv, k);
        }
        let state: Vec<String> = per_server
            .iter()
            .map(|(srv, k)| format!("0-{srv}-{k}"))
            .collect();
        let links = node.master.map(|m| Link {
            master_host: "127.0.0.1".into(),
            master_port: 3311 + m as u16,
            io: if self.io_yes(n) {
                IoThread::Yes
            } else if node.running && !node.diverged {
                IoThread::Connecting
            } else {
                IoThread::No
            },
            sql_running: node.running,
            seconds_behind: self.io_yes(n).then_some(0),
            io_error: node
                .diverged
                .then(|| (1236, "not in the master's binlog".into())),
            sql_error: None,
            gtid_io_pos: last(&node.log),
        });
        Report {
            read_only: node.read_only,
            server_id: n as u32 + 1,
            gtid_binlog_pos: last(&node.log),
            gtid_current_pos: last(&node.log),
            gtid_binlog_state: GtidState::parse(&state.join(",")).unwrap_or_default(),
            links: Some(links.into_iter().collect()),
            promotion_locked: node.lock.is_some(),
        }
    }

    /// Replicas whose IO thread runs take what their master has.
    fn replicate(&mut self) {
        for n in 0..NODES {
            if !self.nodes[n].alive || !self.io_yes(n) {
                continue;
            }
            let Some(m) = self.nodes[n].master else {
                continue;
            };
            let theirs = self.nodes[m].log.clone();
            let mine = &self.nodes[n].log;
            if theirs.starts_with(mine) {
                self.nodes[n].log = theirs;
            } else if !mine.starts_with(&theirs) {
                self.nodes[n].diverged = true;
            }
        }
    }

    fn apply(&mut self, e: &Event) {
        match *e {
            Event::Kill(n) => {
                self.nodes[n].alive = false;
                // A server that dies releases its locks with it.
                self.nodes[n].lock = None;
            }
            Event::Restart(n) => {
                let node = &mut self.nodes[n];
                if !node.alive {
                    node.alive = true;
                    // my.cnf's read_only: a node that replicates from nobody
                    // comes back writable (the worst case).
                    node.read_only = node.master.is_some();
                }
            }
            Event::Cut { from, to, both } => {
                if from != to {
                    self.cut[from][to] = true;
                    if both {
                        self.cut[to][from] = true;
                    }
                }
            }
            Event::Heal => {
                for row in &mut self.cut {
                    row.fill(false);
                }
            }
            Event::Delay { proxy, ticks } => {
                if let Some(p) = self.proxies.get_mut(proxy) {
                    p.paused_until = p.paused_until.max(ticks);
                }
            }
        }
    }

    fn tick(&mut self, tick: u64) {
        let now = self.at(tick);
        self.replicate();
        for p in 0..self.proxies.len() {
            if let Some(done) = self.proxies[p].busy.as_ref().map(|b| b.done_at) {
                if tick >= done {
                    self.finish_promotion(p, tick);
                }
                continue;
            }
            let proxy = &self.proxies[p];
            if tick < proxy.paused_until || tick % ROUND != proxy.phase {
                continue;
            }
            let round: Vec<Result<Report, String>> = (0..NODES)
                .map(|n| {
                    if self.reach(p, n) {
                        Ok(self.report(n))
                    } else {
                        Err("timed out".into())
                    }
                })
                .collect();
            let (view, actions) = self.proxies[p].cluster.observe(round, now);
            self.proxies[p].view = view;
            for a in actions {
                self.act(p, a, tick);
            }
        }
        self.writes(tick, now);
    }

    fn act(&mut self, p: usize, a: Action, tick: u64) {
        match a {
            Action::Persist { .. } | Action::Switch { .. } => {}
            Action::Restore { node } => {
                // Under the lock, checked again (failover.rs restore).
                let reached: Vec<usize> = (0..NODES).filter(|&i| self.reach(p, i)).collect();
                let free = reached.iter().all(|&i| self.nodes[i].lock.is_none());
                let others = reached.iter().all(|&i| {
                    let n = &self.nodes[i];
                    i == node || n.read_only || (n.running && n.master.is_some())
                });
                let n = &self.nodes[node];
                let still = n.read_only && !(n.running && n.master.is_some());
                if free && reached.len() * 2 > NODES && others && still && self.reach(p, node) {
                    self.nodes[node].read_only = false;
                }
            }
            Action::Fence { node } => {
                if self.reach(p, node) {
                    self.nodes[node].read_only = true;
                }
            }
            Action::Follow { node, primary, .. } => {
                if self.reach(p, node) {
                    let n = &mut self.nodes[node];
                    n.read_only = true;
                    n.master = Some(primary);
                    n.running = true;
                    n.diverged = false;
                }
            }
            Action::Promote { node, old, repoint } => {
                let c = &self.proxies[p].cluster;
                let alive = (0..NODES).filter(|&i| c.alive(i)).count();
                if alive * 2 <= NODES {
                    self.violations.push(format!(
                        "tick {tick}: proxy {p} asked to promote db-{} seeing {alive} of {NODES} nodes",
                        node + 1
                    ));
                }
                // GET_LOCK(name, 0) on every node it reaches.
                let reached: Vec<usize> = (0..NODES).filter(|&i| self.reach(p, i)).collect();
                if reached.iter().any(|&i| self.nodes[i].lock.is_some()) {
                    return;
                }
                let majority = self.proxies[p].cluster.policy.quorum == Quorum::Majority;
                if reached.is_empty() || (majority && reached.len() * 2 <= NODES) {
                    return;
                }
                let wait = if majority { LEASE_WAIT_TICKS } else { 0 };
                for &i in &reached {
                    self.nodes[i].lock = Some(p);
                }
                self.proxies[p].busy = Some(Pending {
                    node,
                    old,
                    repoint,
                    done_at: tick + wait,
                    locks: reached,
                });
            }
        }
    }

    fn finish_promotion(&mut self, p: usize, tick: u64) {
        let Some(b) = self.proxies[p].busy.take() else {
            return;
        };
        // A lock on a node that died meanwhile is gone; one on a node cut
        // off from us stays until we give it back.
        let still_held = b
            .locks
            .iter()
            .filter(|&&i| self.nodes[i].lock == Some(p))
            .count();
        let others_ok = (0..NODES).filter(|&i| i != b.old).all(|i| {
            !self.reach(p, i) || {
                let n = &self.nodes[i];
                let claimant = !(n.read_only || n.running && n.master.is_some());
                !(claimant || i == b.node && self.io_yes(i))
            }
        });
        let needed = match self.proxies[p].cluster.policy.quorum {
            Quorum::Majority => NODES / 2 + 1,
            Quorum::Reachable => 1,
        };
        let go =
            still_held >= needed && !self.reach(p, b.old) && others_ok && self.reach(p, b.node);
        if go {
            if b.old != self.primary {
                self.violations.push(format!(
                    "tick {tick}: proxy {p} promoted db-{} replacing db-{}, but db-{} was already the primary",
                    b.node + 1,
                    b.old + 1,
                    self.primary + 1
                ));
            }
            let n = &mut self.nodes[b.node];
            n.running = false;
            n.read_only = false;
            n.master = None;
            for r in b.repoint {
                if self.reach(p, r) {
                    let n = &mut self.nodes[r];
                    n.read_only = true;
                    n.master = Some(b.node);
                    n.running = true;
                    n.diverged = false;
                }
            }
            self.primary = b.node;
            self.promotions += 1;
        }
        for i in b.locks {
            if self.nodes[i].lock == Some(p) {
                self.nodes[i].lock = None;
            }
        }
    }

    /// Every proxy with a writer writes once per tick. As in the labs'
    /// lossless semi-synchronous replication, the commit is acknowledged
    /// only once a replica whose IO thread runs received it; one that no
    /// replica can receive waits (and counts for nothing).
    fn writes(&mut self, tick: u64, now: Instant) {
        let mut acked_on = Vec::new();
        for p in 0..self.proxies.len() {
            if self.proxies[p].busy.is_some() {
                continue;
            }
            let Some(w) = self.proxies[p].view.writer(now) else {
                continue;
            };
            if !self.reach(p, w) || self.nodes[w].read_only {
                continue;
            }
            self.seq += 1;
            let k = self.seq;
            self.nodes[w].log.push((k, w as u32 + 1));
            self.replicate();
            let received = (0..NODES).any(|r| {
                r != w
                    && self.nodes[r].master == Some(w)
                    && self.io_yes(r)
                    && self.nodes[r].log.contains(&(k, w as u32 + 1))
            });
            if !received {
                continue;
            }
            self.acks += 1;
            self.acked.push(k);
            acked_on.push(w);
        }
        acked_on.sort_unstable();
        acked_on.dedup();
        if acked_on.len() > 1 {
            self.violations.push(format!(
                "tick {tick}: writes acknowledged on {acked_on:?} at once"
            ));
        }
        if let Some(&w) = acked_on.first() {
            // The node taking writes now is the one a promotion replaces.
            self.primary = w;
        }
    }

    /// After the schedule: everything healed and running again, the
    /// proxies agree on one primary that holds every acknowledged write.
    fn converged(&mut self, from: u64) {
        self.apply(&Event::Heal);
        for n in 0..NODES {
            self.apply(&Event::Restart(n));
        }
        for tick in from..from + 240 {
            self.tick(tick);
        }
        let now = self.at(from + 240);
        let writers: Vec<Option<usize>> = self.proxies.iter().map(|p| p.view.writer(now)).collect();
        let Some(Some(w)) = writers.first().copied() else {
            self.violations
                .push(format!("no primary after healing: {writers:?}"));
            return;
        };
        if writers.iter().any(|&x| x != Some(w)) {
            self.violations
                .push(format!("proxies disagree after healing: {writers:?}"));
        }
        let log: std::collections::BTreeSet<u64> =
            self.nodes[w].log.iter().map(|(k, _)| *k).collect();
        let lost: Vec<u64> = self
            .acked
            .iter()
            .copied()
            .filter(|k| !log.contains(k))
            .collect();
        if !lost.is_empty() {
            self.violations.push(format!(
                "acknowledged writes lost (not on primary db-{}): {lost:?}",
                w + 1
            ));
        }
    }
}

fn event(proxies: usize) -> impl Strategy<Value = Event> {
    let hosts = NODES + proxies;
    prop_oneof![
        (0..NODES).prop_map(Event::Kill),
        (0..NODES).prop_map(Event::Restart),
        (0..hosts, 0..hosts, any::<bool>()).prop_map(|(from, to, both)| Event::Cut {
            from,
            to,
            both
        }),
        Just(Event::Heal),
        (0..proxies, 1..12u64).prop_map(|(proxy, ticks)| Event::Delay { proxy, ticks }),
    ]
}

/// A schedule: (tick, event), over about a minute of simulated time.
fn schedule(proxies: usize) -> impl Strategy<Value = Vec<(u64, Event)>> {
    proptest::collection::vec((0..240u64, event(proxies)), 0..24)
}

fn run(proxies: usize, phases: &[u64], mut events: Vec<(u64, Event)>) -> World {
    events.sort_by_key(|(t, _)| *t);
    let mut w = World::new(proxies, phases);
    let mut next = 0;
    for tick in 0..400u64 {
        while next < events.len() && events[next].0 == tick {
            let e = events[next].1.clone();
            let e = match e {
                // Delays are relative to now.
                Event::Delay { proxy, ticks } => Event::Delay {
                    proxy,
                    ticks: tick + ticks,
                },
                e => e,
            };
            w.apply(&e);
            next += 1;
        }
        w.tick(tick);
    }
    w.converged(400);
    w
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_split_brain_with_two_proxies(events in schedule(2), phases in proptest::collection::vec(0..ROUND, 2)) {
        let w = run(2, &phases, events);
        prop_assert!(w.violations.is_empty(), "{:#?}", w.violations);
    }

    #[test]
    fn no_split_brain_with_three_proxies(events in schedule(3), phases in proptest::collection::vec(0..ROUND, 3)) {
        let w = run(3, &phases, events);
        prop_assert!(w.violations.is_empty(), "{:#?}", w.violations);
    }
}

/// The simulation can fail: the asymmetric partition of issue 18 with the
/// lease switched off (`quorum: reachable` semantics for writes) produces
/// the split brain the property rules out.
#[test]
fn the_simulation_sees_a_split_brain_when_there_is_one() {
    // proxy 1 (host 4) and db-2 cut off from db-1, db-3 and proxy 0.
    let mut events = Vec::new();
    for (a, b) in [(4, 0), (4, 2), (1, 0), (1, 2), (4, 3), (1, 3)] {
        events.push((
            8,
            Event::Cut {
                from: a,
                to: b,
                both: true,
            },
        ));
    }
    let mut w = World::new(2, &[0, 1]);
    for p in &mut w.proxies {
        p.cluster.policy.quorum = Quorum::Reachable;
    }
    let mut next = 0;
    for tick in 0..200 {
        while next < events.len() && events[next].0 == tick {
            let e = events[next].1.clone();
            w.apply(&e);
            next += 1;
        }
        w.tick(tick);
    }
    assert!(!w.violations.is_empty(), "promotions {}", w.promotions);
    // The same schedule under quorum: majority is safe, and writes go on
    // on the majority side.
    let w = run(2, &[0, 1], events);
    assert!(w.violations.is_empty(), "{:#?}", w.violations);
    assert!(w.acks > 300, "{}", w.acks);
}

/// A primary killed for good is replaced, once, and writes resume.
#[test]
fn a_dead_primary_is_replaced_once() {
    let w = run(3, &[0, 1, 2], vec![(8, Event::Kill(0))]);
    assert!(w.violations.is_empty(), "{:#?}", w.violations);
    assert_eq!(w.promotions, 1);
    assert_ne!(w.primary, 0);
}

/// Found by the property (CI, 2026-12-02): db-1 dies, db-2 is promoted and
/// acknowledges writes, db-2 dies while db-1 restarts writable and takes
/// writes nobody receives, db-1 is fenced and re-pointed at db-3 (promoted
/// next), db-3 dies, db-2 restarts. db-1 (the only follower of db-3, its
/// binlog "ahead" by sequence number with its own unacknowledged
/// transactions) must not be promoted over db-2's acknowledged ones.
#[test]
fn an_old_primary_back_writable_with_its_own_transactions_is_never_promoted() {
    for cut in [false, true] {
        let mut events = vec![
            (9u64, Event::Kill(0)),
            (37, Event::Kill(1)),
            (37, Event::Restart(0)),
            (65, Event::Kill(2)),
            (169, Event::Restart(1)),
        ];
        if cut {
            // db-1 never reaches db-3: its divergence is never reported.
            events.push((
                0,
                Event::Cut {
                    from: 0,
                    to: 2,
                    both: false,
                },
            ));
        }
        let w = run(3, &[0, 0, 1], events);
        assert!(w.violations.is_empty(), "cut {cut}: {:#?}", w.violations);
    }
}
