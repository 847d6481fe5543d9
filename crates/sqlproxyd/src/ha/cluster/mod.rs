//! The pure core of high availability: from each round of heartbeats,
//! who is primary, which nodes may take reads, and what to do (fence,
//! promote, point a replica at the primary, persist the write node).
//!
//! The backends are the source of truth: the primary is the live node with
//! `read_only=OFF` that replicates from nobody. Several sqlproxyd instances
//! reading the same backends therefore agree without talking to each other.
//! When two nodes qualify (a returning old master), the one the replicas
//! follow wins and the other is fenced. Time is passed in; nothing here does
//! I/O.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Quorum, Role, SwitchType};
use crate::ha::probe::{IoThread, Report};

/// A configured node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub addr: SocketAddr,
    pub role: Role,
}

/// The data host's failover settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub fail_count: u32,
    pub switch_type: SwitchType,
    pub promote: bool,
    pub auto_rejoin: bool,
    pub max_replica_lag: Duration,
    pub min_switch_interval: Duration,
    pub reads_fall_back_to_primary: bool,
    /// `failover.restore_writable`: see [`Action::Restore`].
    pub restore_writable: bool,
    pub quorum: Quorum,
    /// How long a round that reached enough nodes lets writes go on
    /// ([`Lease`]): `fail_count` rounds, so one slow round does not stop
    /// writes but a proxy cut off from the majority stops within it.
    pub lease: Duration,
}

/// A node's state, as `show @@datasource` and `/status` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No heartbeat answered yet.
    Unknown,
    Up,
    Down,
    /// A replica that may not take reads now: behind, stopped, or
    /// following another node.
    Lagging,
    /// Writable but not the primary, or diverged: no traffic.
    Fenced,
    /// Pointed at the primary, not yet caught up.
    Rejoining,
}

/// One node as routing and the admin port see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub state: State,
    pub reason: String,
    /// May take reads now (routing still applies the balance policy).
    pub readable: bool,
    /// Seconds behind the primary, when known.
    pub lag: Option<u64>,
    /// Failed heartbeats in a row.
    pub failures: u32,
    /// Filled in by the monitor (wall-clock facts the pure core has not):
    /// how long the last heartbeat took, and when one last answered.
    pub probe_ms: Option<u64>,
    pub last_ok: Option<String>,
}

/// What the rest of the proxy reads after each round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct View {
    /// Index of the node writes go to.
    pub primary: Option<usize>,
    /// Why there is none, for the error a write gets.
    pub no_primary: String,
    pub nodes: Vec<NodeView>,
    /// Heartbeat rounds seen (0 = none yet).
    pub round: u64,
    /// Why this proxy is cut off from a primary that is alive (a replica
    /// still replicates from it): only this proxy's path to it failed, so
    /// clients are better served by another proxy (`GET /health` answers 503).
    pub cut_off: Option<String>,
    /// Until when `primary` may take writes from this proxy.
    #[serde(skip)]
    pub lease: Lease,
    /// Changes whenever the lease lapsed or the primary changed: a reply to
    /// a write sent under another epoch is not vouched for (the node may
    /// have been replaced meanwhile, and resumed only now).
    #[serde(skip)]
    pub lease_epoch: u64,
    /// A switchover is under way: new writes wait for it (those in flight
    /// are still answered).
    #[serde(skip)]
    pub writes_paused: bool,
    /// How the last promotion, switchover or rejoin run by this proxy
    /// ended (filled in by the monitor).
    pub last_operation: Option<crate::ha::plan::Outcome>,
}

/// Until when writes may go to the primary. Under `quorum: majority` a
/// promotion holds the promotion lock on a majority of the configured nodes
/// for a whole lease before it changes anything, and a proxy renews its
/// lease only from a round in which the nodes it could not reach were too
/// few to form that majority and none it reached showed the lock held. So
/// by the time a node is promoted, every proxy that could still write to
/// the old primary has either seen the lock or let its lease run out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lease {
    /// Not granted (lost quorum, or a promotion lock was seen).
    #[default]
    None,
    Until(Instant),
    /// `quorum: reachable`: writes are not bounded by a lease.
    Unbounded,
}

impl Lease {
    pub fn allows(self, now: Instant) -> bool {
        match self {
            Lease::None => false,
            Lease::Until(t) => now < t,
            Lease::Unbounded => true,
        }
    }
}

impl View {
    /// The node writes may go to at `now`: the primary, while the lease
    /// holds.
    pub fn writer(&self, now: Instant) -> Option<usize> {
        self.primary
            .filter(|_| self.lease.allows(now) && !self.writes_paused)
    }

    /// Whether a reply from `node` to a write sent under `epoch` may be
    /// passed on as the client's answer: the lease held the whole time and
    /// `node` is still where writes go.
    pub fn vouches(&self, epoch: u64, node: usize, now: Instant) -> bool {
        self.lease_epoch == epoch && self.primary == Some(node) && self.lease.allows(now)
    }
}

impl View {
    /// Before the first heartbeat round.
    pub fn initial(n: usize) -> View {
        View {
            primary: None,
            no_primary: "no heartbeat round has completed yet".into(),
            nodes: vec![
                NodeView {
                    state: State::Unknown,
                    reason: "not checked yet".into(),
                    readable: false,
                    lag: None,
                    failures: 0,
                    probe_ms: None,
                    last_ok: None,
                };
                n
            ],
            round: 0,
            cut_off: None,
            lease: Lease::None,
            lease_epoch: 0,
            writes_paused: false,
            last_operation: None,
        }
    }
}

/// Something the monitor must do on the backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `SET GLOBAL read_only=ON`: writable, but not the primary.
    Fence { node: usize },
    /// Make `node` the primary in place of the failed `old`, then point
    /// `repoint` at it. `received` is what it must apply first.
    Promote {
        node: usize,
        old: usize,
        repoint: Vec<usize>,
    },
    /// Point `node` at `primary`; `current_pos` for a former primary
    /// (its own binlog counts), else `slave_pos`.
    Follow {
        node: usize,
        primary: usize,
        current_pos: bool,
    },
    /// Write `index` to dnindex.properties.
    Persist { index: usize },
    /// `SET GLOBAL read_only=OFF` on the primary that came back read-only
    /// (under the promotion lock, after checking again).
    Restore { node: usize },
    /// Mycat's mode: move writes from the failed write node `old` to
    /// `index`, under the promotion lock held for a lease; reported back
    /// with [`Cluster::switched`].
    Switch { index: usize, old: usize },
}

/// How long a failed `Follow` waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

pub struct Cluster {
    specs: Vec<NodeSpec>,
    policy: Policy,
    failures: Vec<u32>,
    last: Vec<Option<Report>>,
    errors: Vec<Option<String>>,
    /// The last primary known (kept while it is down: failover replaces it).
    primary: Option<usize>,
    /// The index in dnindex.properties.
    persisted: Option<usize>,
    last_switch: Option<Instant>,
    /// When each node was last told to follow the primary.
    followed_at: Vec<Option<Instant>>,
    round: u64,
    /// This round's [`View::cut_off`].
    cut_off: Option<String>,
    lease: Lease,
    /// Counts the lease's lapses and the primary's changes ([`View::lease_epoch`]).
    lease_epoch: u64,
    /// The primary the last view named.
    published_primary: Option<usize>,
    /// Why the lease was not renewed this round.
    no_lease: Option<String>,
    /// The configured node each node was last seen replicating from.
    last_master: Vec<Option<usize>>,
    /// Nodes this proxy has known as the primary.
    was_primary: Vec<bool>,
    /// The primary's `@@gtid_binlog_pos` at each round, newest last, back
    /// to `max_replica_lag` ago: what a replica must have applied to take
    /// reads.
    history: std::collections::VecDeque<(Instant, hastack_proto::mysql::gtid::GtidPos)>,
    /// This round's start.
    now: Instant,
    /// Whose positions `history` holds.
    history_of: Option<usize>,
}

impl Cluster {
    pub fn new(specs: Vec<NodeSpec>, policy: Policy, persisted: Option<usize>) -> Cluster {
        let n = specs.len();
        let persisted = persisted.filter(|&i| i < n);
        Cluster {
            specs,
            policy,
            failures: vec![0; n],
            last: vec![None; n],
            errors: vec![None; n],
            // Mycat's mode starts on the persisted write node; promote mode
            // learns the primary from the first round.
            primary: None,
            persisted,
            last_switch: None,
            followed_at: vec![None; n],
            round: 0,
            cut_off: None,
            lease: Lease::None,
            lease_epoch: 0,
            published_primary: None,
            no_lease: None,
            last_master: vec![None; n],
            was_primary: vec![false; n],
            history: std::collections::VecDeque::new(),
            now: Instant::now(),
            history_of: None,
        }
    }

    /// What a replica must have applied to take reads: the primary's
    /// position at the first round at most `max_replica_lag` ago (the
    /// oldest known while the history is shorter).
    fn required_position(&self) -> Option<&hastack_proto::mysql::gtid::GtidPos> {
        let since = self.now.checked_sub(self.policy.max_replica_lag)?;
        self.history
            .iter()
            .find(|(at, _)| *at >= since)
            .or(self.history.back())
            .map(|(_, pos)| pos)
    }

    /// Records the primary's position this round (a new primary starts a
    /// new history).
    fn remember_position(&mut self, primary: Option<usize>) {
        let Some(p) = primary.filter(|&p| self.failures[p] == 0) else {
            return;
        };
        let Some(pos) = self.last[p].as_ref().map(|r| r.gtid_binlog_pos.clone()) else {
            return;
        };
        if self.history_of != Some(p) {
            self.history.clear();
            self.history_of = Some(p);
        }
        self.history.push_back((self.now, pos));
        // Keep one entry at or before the horizon, and nothing older.
        let horizon = self.now.checked_sub(self.policy.max_replica_lag);
        while let (Some(h), Some(second)) = (horizon, self.history.get(1)) {
            if second.0 <= h {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    /// The last report of `node`, if it ever answered.
    pub fn report(&self, node: usize) -> Option<&Report> {
        self.last.get(node)?.as_ref()
    }

    pub fn specs(&self) -> &[NodeSpec] {
        &self.specs
    }

    /// Counts as live: answered, and not `fail_count` failures in a row.
    pub fn alive(&self, i: usize) -> bool {
        self.last[i].is_some() && self.failures[i] < self.policy.fail_count
    }

    /// Folds in one round (one result per node, in order) and decides.
    pub fn observe(
        &mut self,
        round: Vec<Result<Report, String>>,
        now: Instant,
    ) -> (View, Vec<Action>) {
        self.round += 1;
        self.now = now;
        self.cut_off = None;
        let mut answered = Vec::new();
        for (i, r) in round.into_iter().enumerate().take(self.specs.len()) {
            match r {
                Ok(report) => {
                    answered.push(i);
                    self.failures[i] = 0;
                    self.last[i] = Some(report);
                    self.errors[i] = None;
                }
                Err(e) => {
                    self.failures[i] = self.failures[i].saturating_add(1);
                    self.errors[i] = Some(e);
                }
            }
        }
        for &i in &answered {
            let source = self.last[i].as_ref().and_then(|r| {
                let l = r.active_links().next()?;
                self.specs.iter().position(|s| l.follows(&s.name, s.addr))
            });
            if source.is_some() {
                self.last_master[i] = source;
            }
        }
        self.renew_lease(&answered, now);
        if self.policy.promote {
            self.decide_from_backends(now)
        } else {
            self.decide_by_index(now)
        }
    }

    /// Renews, keeps or revokes the write lease from who answered this
    /// round (`now` is when the round started: answers came after it).
    fn renew_lease(&mut self, answered: &[usize], now: Instant) {
        self.no_lease = None;
        if !self.lease.allows(now) {
            // It lapsed since the last round: whatever was sent under it
            // is no longer vouched for, even if it is renewed now.
            self.lease_epoch += 1;
        }
        if self.policy.quorum == Quorum::Reachable {
            self.lease = Lease::Unbounded;
            return;
        }
        let n = self.specs.len();
        if let Some(&i) = answered
            .iter()
            .find(|&&i| self.last[i].as_ref().is_some_and(|r| r.promotion_locked))
        {
            self.lease = Lease::None;
            self.lease_epoch += 1;
            self.no_lease = Some(format!(
                "a promotion lock is held on {}: writes stop until it is released",
                self.specs[i].name
            ));
        } else if answered.len() * 2 >= n {
            // The nodes that did not answer are too few to be a majority
            // that another proxy could lock.
            self.lease = Lease::Until(now + self.policy.lease);
        } else if !self.lease.allows(now) {
            self.no_lease = Some(format!(
                "this proxy reaches {} of the {n} configured nodes: writes stop (quorum: majority; the others could promote a node)",
                answered.len()
            ));
        }
    }

    /// Mycat's mode: the write node moved to `index` (the lock was held).
    pub fn switched(&mut self, index: usize, now: Instant) {
        self.persisted = Some(index);
        self.primary = Some(index);
        self.last_switch = Some(now);
    }

    /// Mycat's mode: writes go to the write node at the persisted index;
    /// when it fails, to the next live write node. The backends are not
    /// changed.
    fn decide_by_index(&mut self, now: Instant) -> (View, Vec<Action>) {
        let n = self.specs.len();
        let first_writer = self
            .specs
            .iter()
            .position(|s| s.role == Role::Write)
            .unwrap_or(0);
        let writer = self.persisted.unwrap_or(first_writer);
        let mut actions = Vec::new();
        let mut no_primary = String::new();
        if !self.alive(writer) && self.failures[writer] >= self.policy.fail_count {
            let old = &self.specs[writer];
            // A node still receiving from the write node proves it alive:
            // only this proxy lost it, and the others still write there.
            let witness = (0..n).find(|&i| {
                self.alive(i)
                    && self.last[i].as_ref().is_some_and(|r| {
                        r.active_links()
                            .any(|l| l.follows(&old.name, old.addr) && l.io == IoThread::Yes)
                    })
            });
            match self.may_switch(now).and_then(|()| self.quorum_alive()) {
                Err(why) => no_primary = why,
                Ok(()) if witness.is_some() => {
                    let why = format!(
                        "write node {} does not answer this proxy, but {} still replicates from it: no switch",
                        old.name,
                        witness.map_or("", |i| self.specs[i].name.as_str())
                    );
                    self.cut_off = Some(why.clone());
                    no_primary = why;
                }
                Ok(()) => {
                    let next = (1..n).map(|k| (writer + k) % n).find(|&i| {
                        self.specs[i].role == Role::Write
                            && self.alive(i)
                            && (self.policy.switch_type != SwitchType::Replication
                                || self.caught_up(i))
                    });
                    match next {
                        Some(i) => {
                            // Moved once the lock is held (`switched`).
                            actions.push(Action::Switch {
                                index: i,
                                old: writer,
                            });
                            no_primary = format!(
                                "write node {} is down; switching to {} under the promotion lock",
                                old.name, self.specs[i].name
                            );
                        }
                        None => no_primary = "no other write node is up (and caught up)".into(),
                    }
                }
            }
        }
        self.persisted = Some(writer);
        let primary = self.alive(writer).then_some(writer);
        if primary.is_none() && no_primary.is_empty() {
            no_primary = format!("write node {} is down", self.specs[writer].name);
        }
        self.primary = Some(writer);
        self.remember_position(primary);
        let nodes = (0..n).map(|i| self.node_view(i, primary, &[])).collect();
        (self.view(primary, no_primary, nodes), actions)
    }

    /// For switch_type replication: a replica with nothing left to apply.
    fn caught_up(&self, i: usize) -> bool {
        self.last[i].as_ref().is_some_and(|r| {
            r.active_links()
                .all(|l| l.sql_running && l.seconds_behind.is_none_or(|s| s == 0))
        })
    }

    fn may_switch(&self, now: Instant) -> Result<(), String> {
        if self.policy.switch_type == SwitchType::None {
            return Err("switch_type is none: writes wait for the primary to return".into());
        }
        if let Some(at) = self.last_switch {
            let since = now.saturating_duration_since(at);
            if since < self.policy.min_switch_interval {
                return Err(format!(
                    "last switch {since:.1?} ago, min_switch_interval is {:?}",
                    self.policy.min_switch_interval
                ));
            }
        }
        Ok(())
    }

    /// Live nodes that are writable and replicate from nobody.
    fn claimants(&self) -> Vec<usize> {
        (0..self.specs.len())
            .filter(|&i| self.alive(i))
            .filter(|&i| {
                self.last[i]
                    .as_ref()
                    .is_some_and(|r| !r.read_only && r.active_links().next().is_none())
            })
            .collect()
    }

    /// Node `c` lacks a transaction that a live replica's binlog ends with
    /// (replicas hold what their lineage acknowledged; a writable node's
    /// own tail may be transactions nobody acknowledged).
    fn lacks_transactions(&self, c: usize) -> bool {
        let Some(cr) = self.last[c].as_ref() else {
            return false;
        };
        (0..self.specs.len())
            .filter(|&i| i != c && self.alive(i) && self.failures[i] == 0)
            .filter_map(|i| self.last[i].as_ref())
            .filter(|r| r.active_links().next().is_some())
            .any(|r| !cr.gtid_binlog_state.missing(&r.gtid_binlog_pos).is_empty())
    }

    /// Why `p` cannot be taken for the primary although it claims to be: a
    /// live node receives (IO thread running) from a configured node this
    /// proxy does not reach.
    fn unseen_source(&self, p: usize) -> Option<String> {
        for i in (0..self.specs.len()).filter(|&i| i != p && self.alive(i)) {
            let Some(r) = self.last[i].as_ref() else {
                continue;
            };
            for l in r.active_links().filter(|l| l.io == IoThread::Yes) {
                let source = (0..self.specs.len())
                    .find(|&q| l.follows(&self.specs[q].name, self.specs[q].addr));
                if let Some(q) = source.filter(|&q| q != p && !self.alive(q)) {
                    return Some(format!(
                        "{} claims to be primary, but {} replicates from {}, which this proxy cannot reach: not serving writes",
                        self.specs[p].name, self.specs[i].name, self.specs[q].name
                    ));
                }
            }
        }
        None
    }

    /// Nodes that answered this round with an active link to `p` (a
    /// report kept from an earlier round may be out of date by a whole
    /// failover, so it is no evidence of whom a node follows).
    fn followers(&self, p: usize) -> Vec<usize> {
        let spec = &self.specs[p];
        (0..self.specs.len())
            .filter(|&i| i != p && self.alive(i) && self.failures[i] == 0)
            .filter(|&i| {
                self.last[i]
                    .as_ref()
                    .is_some_and(|r| r.active_links().any(|l| l.follows(&spec.name, spec.addr)))
            })
            .collect()
    }

    fn decide_from_backends(&mut self, now: Instant) -> (View, Vec<Action>) {
        let mut actions = Vec::new();
        // A claimant that is not the primary this proxy knew, that nobody
        // follows and that lacks transactions another live node holds
        // belongs to an older lineage
        // (a former primary restarted writable while its successor is
        // away): serving it would lose what its successor acknowledged.
        let (stale, claimants): (Vec<usize>, Vec<usize>) =
            self.claimants().into_iter().partition(|&c| {
                self.primary != Some(c)
                    && self.followers(c).is_empty()
                    && self.lacks_transactions(c)
            });
        // A claimant other than the last known primary, while that one is
        // down, must come from its lineage: seen replicating from it, or
        // followed by someone now. Otherwise it is an older primary that
        // restarted writable while its successors are away; waiting (for
        // the primary or for them) loses nothing, serving it would.
        let (claimants, foreign): (Vec<usize>, Vec<usize>) =
            claimants.into_iter().partition(|&c| match self.primary {
                Some(p) if p != c && !self.alive(p) => {
                    self.last_master[c] == Some(p) || !self.followers(c).is_empty()
                }
                _ => true,
            });
        // The claimant more replicas follow (this round) wins, and only
        // that evidence fences the others. Not a binlog that holds more:
        // an old primary cut off from its replicas keeps a tail of
        // transactions nobody acknowledged, and must still lose to the
        // node a majority promoted. A tie is no primary at all.
        let rank = |i: usize| self.followers(i).len();
        let best = claimants.iter().map(|&i| rank(i)).max();
        let top: Vec<usize> = claimants
            .iter()
            .copied()
            .filter(|&i| Some(rank(i)) == best)
            .collect();
        let mut no_primary = String::new();
        let mut fence = stale;
        let primary = match top[..] {
            [p] => match self.unseen_source(p) {
                // A node this proxy reaches replicates from one it cannot
                // reach: that one may be the primary of the others.
                Some(why) => {
                    self.cut_off = Some(why.clone());
                    no_primary = why;
                    None
                }
                None => {
                    fence.extend(claimants.iter().copied().filter(|&i| i != p));
                    Some(p)
                }
            },
            [] => None,
            _ => {
                let names: Vec<&str> = top.iter().map(|&i| self.specs[i].name.as_str()).collect();
                no_primary = format!(
                    "{} all claim to be primary (writable, replicating from nobody); none is followed by more replicas: make all but one read-only by hand",
                    names.join(", ")
                );
                None
            }
        };
        if primary.is_none() && no_primary.is_empty() {
            if let (Some(&c), Some(p)) = (foreign.first(), self.primary) {
                no_primary = format!(
                    "{} claims to be primary, but was never seen replicating from {}, the last primary (down): an older primary restarted writable? waiting for {} or its replicas",
                    self.specs[c].name, self.specs[p].name, self.specs[p].name
                );
            }
        }
        for &i in &fence {
            actions.push(Action::Fence { node: i });
        }
        if let Some(p) = primary {
            if self.primary.is_some_and(|o| o != p) {
                // Learned from the backends whoever switched: counts for
                // min_switch_interval on every proxy alike.
                self.last_switch = Some(now);
            }
            self.primary = Some(p);
            if self.persisted != Some(p) {
                self.persisted = Some(p);
                actions.push(Action::Persist { index: p });
            }
        } else if no_primary.is_empty() {
            no_primary = self.failover(now, &mut actions);
        }
        // Replicas left following something else, and returning nodes.
        self.remember_position(primary);
        if let Some(p) = primary {
            self.was_primary[p] = true;
        }
        let mut followed = Vec::new();
        if let Some(p) = primary {
            let others: Vec<usize> = (0..self.specs.len())
                .filter(|&i| i != p && self.alive(i) && !fence.contains(&i))
                .collect();
            for i in others {
                // A replica that came back writable (a restart with the
                // primary's my.cnf): replicas are read-only, so a client
                // writing to it directly cannot fork it.
                let writable_replica = self.failures[i] == 0
                    && self.last[i]
                        .as_ref()
                        .is_some_and(|r| !r.read_only && r.active_links().next().is_some());
                if writable_replica {
                    actions.push(Action::Fence { node: i });
                }
                if let Some(current_pos) = self.needs_follow(i, p) {
                    let due = self.followed_at[i]
                        .is_none_or(|at| now.saturating_duration_since(at) >= RETRY_AFTER);
                    if due {
                        self.followed_at[i] = Some(now);
                        actions.push(Action::Follow {
                            node: i,
                            primary: p,
                            current_pos,
                        });
                    }
                    followed.push(i);
                }
            }
        }
        let nodes: Vec<NodeView> = (0..self.specs.len())
            .map(|i| {
                if fence.contains(&i) {
                    self.fenced_view(i, primary)
                } else {
                    self.node_view(i, primary, &followed)
                }
            })
            .collect();
        for (at, node) in self.followed_at.iter_mut().zip(&nodes) {
            if node.state == State::Up {
                *at = None;
            }
        }
        (self.view(primary, no_primary, nodes), actions)
    }

    /// No primary now: fail over if the last one is down for good.
    /// Returns why writes have no primary.
    fn failover(&mut self, now: Instant, actions: &mut Vec<Action>) -> String {
        let Some(old) = self.primary else {
            return "no node is writable and replicating from nobody".into();
        };
        let old_name = self.specs[old].name.clone();
        if self.alive(old) {
            // The primary restarted read-only (as my.cnf should have it):
            // still followed by the replicas, replicating from nobody, and
            // nobody else writable. Making it writable again under the
            // lock is what keeps the data host from having none.
            let restarted_read_only = self.failures[old] == 0
                && self.last[old]
                    .as_ref()
                    .is_some_and(|r| r.read_only && r.active_links().next().is_none())
                && !self.followers(old).is_empty();
            if restarted_read_only && self.policy.restore_writable {
                if let Err(why) = self.quorum_alive() {
                    return format!("{old_name} is up but read-only; not made writable: {why}");
                }
                actions.push(Action::Restore { node: old });
                return format!(
                    "{old_name} is up, still followed, but read-only (restarted?): making it writable again"
                );
            }
            return format!(
                "{old_name} is up but no longer writable, or replicates from another node"
            );
        }
        if self.failures[old] < self.policy.fail_count {
            return format!("{old_name} is not answering heartbeats");
        }
        // A replica of it that missed this round may be the one that
        // received the most: choosing without it could promote a less
        // advanced one and re-point the better one at it.
        let spec = &self.specs[old];
        if let Some(i) = (0..self.specs.len()).find(|&i| {
            i != old
                && self.alive(i)
                && self.failures[i] > 0
                && self.last[i]
                    .as_ref()
                    .is_some_and(|r| r.active_links().any(|l| l.follows(&spec.name, spec.addr)))
        }) {
            return format!(
                "primary {old_name} is down; waiting for a heartbeat from {} before choosing whom to promote",
                self.specs[i].name
            );
        }
        let replicas = self.followers(old);
        // A replica still receiving from the old primary proves it alive:
        // only this proxy lost it (a partition), so nobody is promoted.
        let spec = &self.specs[old];
        if let Some(&i) = replicas.iter().find(|&&i| {
            self.last[i].as_ref().is_some_and(|r| {
                r.active_links()
                    .any(|l| l.follows(&spec.name, spec.addr) && l.io == IoThread::Yes)
            })
        }) {
            let why = format!(
                "primary {old_name} does not answer this proxy, but {} still replicates from it: no failover",
                self.specs[i].name
            );
            self.cut_off = Some(why.clone());
            return why;
        }
        if let Err(why) = self.may_switch(now).and_then(|()| self.quorum_alive()) {
            return format!("primary {old_name} is down; no failover: {why}");
        }
        let need_sql = self.policy.switch_type == SwitchType::Replication;
        // A replica its master refused (1236: its position is not in the
        // master's binlog) holds a history of its own, not the old
        // primary's: promoting it would re-point the others at transactions
        // nobody acknowledged and lose theirs (the simulation: an old
        // primary restarted writable, fenced and re-pointed, diverged).
        let diverged = |i: usize| {
            self.last[i].as_ref().is_some_and(|r| {
                r.active_links()
                    .any(|l| l.io_error.as_ref().is_some_and(|(code, _)| *code == 1236))
            })
        };
        // Nor one holding transactions of another server that the old
        // primary, as last seen, never had: written while that node was
        // writable on its own (an old primary restarted writable), nobody
        // acknowledged them, and re-pointing the others at it would lose
        // what they hold. The old primary's own later transactions are
        // no evidence (acknowledged after its last report).
        let errant = |i: usize| match (self.last[old].as_ref(), self.last[i].as_ref()) {
            (Some(o), Some(r)) => !r
                .gtid_binlog_state
                .unknown_to(&o.gtid_binlog_state, o.server_id)
                .is_empty(),
            _ => false,
        };
        let eligible: Vec<usize> = replicas
            .iter()
            .copied()
            .filter(|&i| !diverged(i) && !errant(i))
            .filter(|&i| {
                !need_sql
                    || self.last[i].as_ref().is_some_and(|r| {
                        r.active_links()
                            .all(|l| l.sql_running && l.sql_error.is_none())
                    })
            })
            .collect();
        let received = |i: usize| {
            self.last[i]
                .as_ref()
                .and_then(|r| r.active_links().next().map(|l| l.gtid_io_pos.clone()))
                .unwrap_or_default()
        };
        let positions: Vec<_> = eligible.iter().map(|&i| received(i)).collect();
        let refs: Vec<_> = positions.iter().collect();
        // Most received first; among equals the configured order (a
        // `role: write` standby listed first wins a tie).
        let best = eligible
            .iter()
            .zip(&positions)
            .max_by_key(|(&i, pos)| {
                (
                    pos.progress_key(&refs),
                    self.specs[i].role == Role::Write,
                    std::cmp::Reverse(i),
                )
            })
            .map(|(&i, _)| i);
        let Some(node) = best else {
            return format!("primary {old_name} is down and no replica of it is up to promote");
        };

        let repoint = (0..self.specs.len())
            .filter(|&i| i != node && i != old && self.alive(i))
            .collect();
        actions.push(Action::Promote { node, old, repoint });
        format!(
            "primary {old_name} is down; promoting {}",
            self.specs[node].name
        )
    }

    /// `Some(current_pos)` when node `i` should be pointed at `p`: it follows
    /// nothing (a returning former primary, fenced) or a node that is not
    /// the primary. Never for a node that already has a link to `p` (a DBA
    /// may have stopped it) or that holds transactions `p` lacks.
    fn needs_follow(&self, i: usize, p: usize) -> Option<bool> {
        let r = self.last[i].as_ref()?;
        let links = r.links.as_ref()?;
        let ps = &self.specs[p];
        if links.iter().any(|l| l.follows(&ps.name, ps.addr)) {
            return None;
        }
        if !self.errant(i, p).is_empty() {
            return None;
        }
        // A replica of a node this proxy cannot reach and never knew as
        // primary is left alone: that node may be a primary another proxy
        // promoted, which only this one cannot see.
        let unseen = r.active_links().any(|l| {
            self.specs
                .iter()
                .enumerate()
                .any(|(q, s)| l.follows(&s.name, s.addr) && !self.alive(q) && !self.was_primary[q])
        });
        if unseen {
            return None;
        }
        let orphan = r.active_links().next().is_none();
        if orphan {
            self.policy.auto_rejoin.then_some(true)
        } else {
            Some(false)
        }
    }

    /// Transactions in `i`'s binlog that the primary `p` never had.
    fn errant(&self, i: usize, p: usize) -> Vec<hastack_proto::mysql::gtid::Gtid> {
        match (&self.last[i], &self.last[p]) {
            (Some(r), Some(pr)) => pr.gtid_binlog_state.missing(&r.gtid_binlog_pos),
            _ => Vec::new(),
        }
    }

    fn fenced_view(&self, i: usize, primary: Option<usize>) -> NodeView {
        let p = primary.map(|p| self.specs[p].name.as_str()).unwrap_or("?");
        NodeView {
            state: State::Fenced,
            reason: format!("writable but not the primary ({p} is): fenced with read_only=ON"),
            readable: false,
            lag: None,
            failures: self.failures[i],
            probe_ms: None,
            last_ok: None,
        }
    }

    fn node_view(&self, i: usize, primary: Option<usize>, followed: &[usize]) -> NodeView {
        let view = |state, reason: String, readable, lag| NodeView {
            state,
            reason,
            readable,
            lag,
            failures: self.failures[i],
            probe_ms: None,
            last_ok: None,
        };
        let Some(r) = self.last[i].as_ref() else {
            let why = self.errors[i]
                .clone()
                .unwrap_or_else(|| "not checked yet".into());
            let state = if self.failures[i] >= self.policy.fail_count {
                State::Down
            } else {
                State::Unknown
            };
            return view(state, why, false, None);
        };
        if !self.alive(i) {
            let why = self.errors[i].clone().unwrap_or_default();
            return view(
                State::Down,
                format!("{} failed heartbeats: {why}", self.failures[i]),
                false,
                None,
            );
        }
        if Some(i) == primary {
            return view(State::Up, "primary".into(), true, Some(0));
        }
        let Some(links) = &r.links else {
            return view(
                State::Up,
                "replication status unknown (the monitor account needs SLAVE MONITOR)".into(),
                true,
                None,
            );
        };
        let Some(p) = primary else {
            // No primary to measure against: replicas still serve reads by
            // their own lag.
            return match links.iter().find(|l| l.active()) {
                Some(l)
                    if l.io == IoThread::Yes
                        && l.sql_running
                        && l.seconds_behind.is_some_and(|s| {
                            Duration::from_secs(s) <= self.policy.max_replica_lag
                        }) =>
                {
                    view(
                        State::Up,
                        "replica (no primary known)".into(),
                        true,
                        l.seconds_behind,
                    )
                }
                _ => view(State::Lagging, "no primary known".into(), false, None),
            };
        };
        let ps = &self.specs[p];
        let pname = ps.name.as_str();
        let errant = self.errant(i, p);
        if !errant.is_empty() && links.iter().all(|l| !l.follows(pname, ps.addr)) {
            let list: Vec<String> = errant.iter().map(ToString::to_string).collect();
            return view(
                State::Fenced,
                format!(
                    "diverged: has transactions {} that primary {pname} lacks; rejoin by hand",
                    list.join(",")
                ),
                false,
                None,
            );
        }
        let Some(l) = links.iter().find(|l| l.follows(pname, ps.addr)) else {
            let rejoining = followed.contains(&i);
            return match r.active_links().next() {
                Some(l) => view(
                    if rejoining {
                        State::Rejoining
                    } else {
                        State::Lagging
                    },
                    format!(
                        "replicates from {}:{}, not from primary {pname}",
                        l.master_host, l.master_port
                    ),
                    false,
                    None,
                ),
                None if rejoining => view(
                    State::Rejoining,
                    format!("being pointed at primary {pname}"),
                    false,
                    None,
                ),
                None => view(
                    State::Fenced,
                    format!(
                        "replicates from nobody (auto_rejoin off): point it at {pname} by hand"
                    ),
                    false,
                    None,
                ),
            };
        };
        let rejoining = self.followed_at[i].is_some();
        let behind = if rejoining {
            State::Rejoining
        } else {
            State::Lagging
        };
        if let Some((code, msg)) = &l.io_error {
            if l.io != IoThread::Yes {
                let state = if *code == 1236 { State::Fenced } else { behind };
                return view(
                    state,
                    format!("replication from {pname} failed: {code} {msg}"),
                    false,
                    None,
                );
            }
        }
        if l.io != IoThread::Yes {
            return view(behind, format!("IO thread {:?}", l.io), false, None);
        }
        if !l.sql_running {
            let why = l.sql_error.clone().unwrap_or_else(|| "stopped".into());
            return view(
                behind,
                format!("SQL thread not running: {why}"),
                false,
                None,
            );
        }
        match l.seconds_behind {
            None => view(behind, "lag unknown".into(), false, None),
            Some(s) if Duration::from_secs(s) > self.policy.max_replica_lag => view(
                behind,
                format!(
                    "{s}s behind {pname} (max_replica_lag {:?})",
                    self.policy.max_replica_lag
                ),
                false,
                Some(s),
            ),
            Some(s) => match self.required_position() {
                // Seconds_Behind_Master says 0 while the SQL thread waits
                // for an IO thread that has not fetched what it lacks yet
                // (just reconnected, or cut off one way before it noticed):
                // the positions say how far behind it really is.
                Some(required) if !r.gtid_current_pos.covers(required) => view(
                    behind,
                    format!(
                        "behind: has not applied {required}, the primary's position {:?} ago (Seconds_Behind_Master {s})",
                        self.policy.max_replica_lag
                    ),
                    false,
                    Some(s),
                ),
                _ => view(State::Up, format!("replica of {pname}"), true, Some(s)),
            },
        }
    }

    fn view(&mut self, primary: Option<usize>, no_primary: String, nodes: Vec<NodeView>) -> View {
        let mut view = View {
            primary,
            no_primary,
            nodes,
            round: self.round,
            cut_off: self.cut_off.clone(),
            lease: self.lease,
            lease_epoch: 0,
            writes_paused: false,
            last_operation: None,
        };
        if let Some(why) = &self.no_lease {
            if let Some(p) = view.primary.take() {
                // A primary without a lease takes no writes from this
                // proxy, and clients are better served by a proxy that has
                // one.
                view.nodes[p].readable = false;
                view.nodes[p].reason = format!("primary, but {why}");
                view.no_primary = why.clone();
                view.cut_off.get_or_insert_with(|| why.clone());
            } else {
                view.no_primary = format!("{}; {why}", view.no_primary);
            }
        }
        if view.primary != self.published_primary {
            self.published_primary = view.primary;
            self.lease_epoch += 1;
        }
        view.lease_epoch = self.lease_epoch;
        view
    }

    /// Whether this round reached enough nodes for a promotion to be
    /// possible at all: a majority of the configured ones (or, under
    /// `quorum: reachable`, any).
    fn quorum_alive(&self) -> Result<(), String> {
        let n = self.specs.len();
        let alive = (0..n).filter(|&i| self.alive(i)).count();
        if self.policy.quorum == Quorum::Majority && alive * 2 <= n {
            return Err(format!(
                "only {alive} of the {n} configured nodes answer: no failover without a majority (quorum: majority)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
