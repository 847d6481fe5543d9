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

use crate::config::{Role, SwitchType};
use crate::probe::{IoThread, Report};

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
        self.cut_off = None;
        for (i, r) in round.into_iter().enumerate().take(self.specs.len()) {
            match r {
                Ok(report) => {
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
        if self.policy.promote {
            self.decide_from_backends(now)
        } else {
            self.decide_by_index(now)
        }
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
        let mut writer = self.persisted.unwrap_or(first_writer);
        let mut actions = Vec::new();
        let mut no_primary = String::new();
        if !self.alive(writer) && self.failures[writer] >= self.policy.fail_count {
            match self.may_switch(now) {
                Err(why) => no_primary = why,
                Ok(()) => {
                    let next = (1..n).map(|k| (writer + k) % n).find(|&i| {
                        self.specs[i].role == Role::Write
                            && self.alive(i)
                            && (self.policy.switch_type != SwitchType::Replication
                                || self.caught_up(i))
                    });
                    match next {
                        Some(i) => {
                            writer = i;
                            self.last_switch = Some(now);
                            actions.push(Action::Persist { index: i });
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

    /// Live nodes with an active link to `p`.
    fn followers(&self, p: usize) -> Vec<usize> {
        let spec = &self.specs[p];
        (0..self.specs.len())
            .filter(|&i| i != p && self.alive(i))
            .filter(|&i| {
                self.last[i]
                    .as_ref()
                    .is_some_and(|r| r.active_links().any(|l| l.follows(&spec.name, spec.addr)))
            })
            .collect()
    }

    fn decide_from_backends(&mut self, now: Instant) -> (View, Vec<Action>) {
        let mut actions = Vec::new();
        let claimants = self.claimants();
        // The most followed claimant wins; then the one already primary;
        // then the persisted one. A tie beyond that is no primary at all.
        let rank = |i: usize| {
            (
                self.followers(i).len(),
                Some(i) == self.primary,
                Some(i) == self.persisted,
            )
        };
        let best = claimants.iter().map(|&i| rank(i)).max();
        let top: Vec<usize> = claimants
            .iter()
            .copied()
            .filter(|&i| Some(rank(i)) == best)
            .collect();
        let mut no_primary = String::new();
        let mut fence = Vec::new();
        let primary = match top[..] {
            [p] => {
                fence = claimants.iter().copied().filter(|&i| i != p).collect();
                Some(p)
            }
            [] => None,
            _ => {
                let names: Vec<&str> = top.iter().map(|&i| self.specs[i].name.as_str()).collect();
                no_primary = format!(
                    "{} all claim to be primary (writable, replicating from nobody) and none is followed by more replicas: fix by hand",
                    names.join(", ")
                );
                None
            }
        };
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
        let mut followed = Vec::new();
        if let Some(p) = primary {
            let others: Vec<usize> = (0..self.specs.len())
                .filter(|&i| i != p && self.alive(i) && !fence.contains(&i))
                .collect();
            for i in others {
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
            return format!(
                "{old_name} is up but no longer writable, or replicates from another node"
            );
        }
        if self.failures[old] < self.policy.fail_count {
            return format!("{old_name} is not answering heartbeats");
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
        if let Err(why) = self.may_switch(now) {
            return format!("primary {old_name} is down; no failover: {why}");
        }
        let need_sql = self.policy.switch_type == SwitchType::Replication;
        let eligible: Vec<usize> = replicas
            .iter()
            .copied()
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
            Some(s) => view(State::Up, format!("replica of {pname}"), true, Some(s)),
        }
    }

    fn view(&self, primary: Option<usize>, no_primary: String, nodes: Vec<NodeView>) -> View {
        View {
            primary,
            no_primary,
            nodes,
            round: self.round,
            cut_off: self.cut_off.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Link;
    use hastack_proto::mysql::gtid::{GtidPos, GtidState};

    const FAIL: u32 = 3;

    fn specs() -> Vec<NodeSpec> {
        ["db-1", "db-2", "db-3"]
            .iter()
            .enumerate()
            .map(|(i, n)| NodeSpec {
                name: n.to_string(),
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
            min_switch_interval: Duration::from_secs(30),
            reads_fall_back_to_primary: true,
        }
    }

    fn gtid(s: &str) -> GtidPos {
        GtidPos::parse(s).unwrap()
    }

    fn primary(binlog: &str) -> Result<Report, String> {
        primary_with_state(binlog, binlog)
    }

    fn primary_with_state(binlog: &str, state: &str) -> Result<Report, String> {
        Ok(Report {
            read_only: false,
            server_id: 1,
            gtid_binlog_pos: gtid(binlog),
            gtid_current_pos: gtid(binlog),
            gtid_binlog_state: GtidState::parse(state).unwrap(),
            links: Some(vec![]),
        })
    }

    fn link(of: usize, received: &str) -> Link {
        Link {
            master_host: "127.0.0.1".into(),
            master_port: 3311 + of as u16,
            io: IoThread::Yes,
            sql_running: true,
            seconds_behind: Some(0),
            io_error: None,
            sql_error: None,
            gtid_io_pos: gtid(received),
        }
    }

    fn replica(l: Link) -> Result<Report, String> {
        let pos = l.gtid_io_pos.to_string();
        Ok(Report {
            read_only: true,
            server_id: 2,
            gtid_binlog_pos: gtid(&pos),
            gtid_current_pos: gtid(&pos),
            gtid_binlog_state: GtidState::parse(&pos).unwrap(),
            links: Some(vec![l]),
        })
    }

    fn healthy() -> Vec<Result<Report, String>> {
        vec![
            primary("0-1-10"),
            replica(link(0, "0-1-10")),
            replica(link(0, "0-1-10")),
        ]
    }

    fn down() -> Result<Report, String> {
        Err("connect: Connection refused".into())
    }

    /// Node 0 crashed: the replicas' IO threads are reconnecting.
    fn primary_crashed(r1: &str, r2: &str) -> Vec<Result<Report, String>> {
        let lost = |received| Link {
            io: IoThread::Connecting,
            seconds_behind: None,
            io_error: Some((2003, "error reconnecting to master".into())),
            ..link(0, received)
        };
        vec![down(), replica(lost(r1)), replica(lost(r2))]
    }

    fn cluster() -> (Cluster, Instant) {
        (Cluster::new(specs(), policy(), None), Instant::now())
    }

    #[test]
    fn the_writable_node_nobody_replicates_from_is_primary() {
        let (mut c, t) = cluster();
        let (v, a) = c.observe(healthy(), t);
        assert_eq!(v.primary, Some(0));
        assert_eq!(a, [Action::Persist { index: 0 }]);
        assert!(
            v.nodes.iter().all(|n| n.state == State::Up && n.readable),
            "{v:?}"
        );
        // Persisted once, not every round.
        assert_eq!(c.observe(healthy(), t).1, []);
    }

    #[test]
    fn before_the_first_answer_there_is_no_primary() {
        let (mut c, t) = cluster();
        let (v, a) = c.observe(vec![down(), down(), down()], t);
        assert_eq!(v.primary, None);
        assert!(a.is_empty());
        assert!(
            v.no_primary.contains("no node is writable"),
            "{}",
            v.no_primary
        );
        assert_eq!(v.nodes[0].state, State::Unknown);
    }

    #[test]
    fn the_primary_is_kept_until_fail_count_heartbeats_fail() {
        let (mut c, t) = cluster();
        c.observe(healthy(), t);
        for k in 1..FAIL {
            let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
            assert_eq!(v.primary, Some(0), "after {k} failures");
            assert!(a.is_empty());
        }
        let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-12"), t);
        assert_eq!(v.primary, None);
        assert_eq!(v.nodes[0].state, State::Down);
        // The replica that received the most is promoted; the other follows it.
        assert_eq!(
            a,
            [Action::Promote {
                node: 2,
                old: 0,
                repoint: vec![1]
            }]
        );
        assert!(v.no_primary.contains("promoting db-3"), "{}", v.no_primary);
    }

    #[test]
    fn on_equal_positions_the_first_configured_replica_is_promoted() {
        let (mut c, t) = cluster();
        c.observe(healthy(), t);
        let mut a = vec![];
        for _ in 0..FAIL {
            a = c.observe(primary_crashed("0-1-10", "0-1-10"), t).1;
        }
        assert!(matches!(a[..], [Action::Promote { node: 1, .. }]), "{a:?}");
    }

    #[test]
    fn a_partition_from_this_proxy_alone_promotes_nobody() {
        let (mut c, t) = cluster();
        c.observe(healthy(), t);
        for _ in 0..FAIL + 2 {
            // The replicas still receive from node 0: only we lost it.
            let (v, a) = c.observe(
                vec![
                    down(),
                    replica(link(0, "0-1-10")),
                    replica(link(0, "0-1-10")),
                ],
                t,
            );
            assert!(a.is_empty(), "{a:?}");
            assert!(
                v.no_primary.is_empty() || v.no_primary.contains("still replicates"),
                "{}",
                v.no_primary
            );
            // Cut off once the primary is given up on, not before.
            assert_eq!(v.cut_off.is_some(), v.primary.is_none(), "{v:?}");
        }
        // Healed: the primary answers again and nobody is cut off.
        let (v, _) = c.observe(healthy(), t);
        assert_eq!((v.primary, v.cut_off), (Some(0), None));
    }

    #[test]
    fn a_primary_dead_to_its_replicas_too_is_no_partition() {
        let (mut c, t) = cluster();
        c.observe(healthy(), t);
        for _ in 0..FAIL {
            let (v, _) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
            assert_eq!(v.cut_off, None, "{v:?}");
        }
    }

    #[test]
    fn a_partition_right_after_a_switch_is_still_seen_as_one() {
        // Within min_switch_interval no failover may happen, but that the
        // primary is alive (the replicas see it) must still be reported.
        let (mut c, t) = cluster();
        c.observe(healthy(), t);
        c.last_switch = Some(t);
        let mut v = View::initial(3);
        for _ in 0..FAIL {
            v = c
                .observe(
                    vec![
                        down(),
                        replica(link(0, "0-1-10")),
                        replica(link(0, "0-1-10")),
                    ],
                    t,
                )
                .0;
        }
        assert!(v.cut_off.is_some(), "{v:?}");
    }

    #[test]
    fn switch_type_none_never_promotes() {
        let mut c = Cluster::new(
            specs(),
            Policy {
                switch_type: SwitchType::None,
                ..policy()
            },
            None,
        );
        let t = Instant::now();
        c.observe(healthy(), t);
        for _ in 0..FAIL + 2 {
            let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
            assert!(a.is_empty());
            if v.primary.is_none() {
                assert!(
                    v.no_primary.contains("switch_type is none"),
                    "{}",
                    v.no_primary
                );
            }
        }
    }

    #[test]
    fn switch_type_replication_needs_a_running_sql_thread() {
        let mut c = Cluster::new(
            specs(),
            Policy {
                switch_type: SwitchType::Replication,
                ..policy()
            },
            None,
        );
        let t = Instant::now();
        c.observe(healthy(), t);
        let mut round = primary_crashed("0-1-10", "0-1-12");
        if let Ok(r) = &mut round[2] {
            r.links.as_mut().unwrap()[0].sql_running = false;
        }
        let mut a = vec![];
        for _ in 0..FAIL {
            a = c.observe(round.clone(), t).1;
        }
        assert!(matches!(a[..], [Action::Promote { node: 1, .. }]), "{a:?}");
    }

    /// After db-3 was promoted and db-2 re-pointed.
    fn after_failover() -> Vec<Result<Report, String>> {
        let mut p = primary_with_state("0-3-20,1-3-5", "0-1-12,0-3-20,1-3-5");
        if let Ok(r) = &mut p {
            r.server_id = 3;
        }
        vec![down(), replica(link(2, "0-3-20,1-3-5")), p]
    }

    fn failed_over(c: &mut Cluster, t: Instant) {
        c.observe(healthy(), t);
        for _ in 0..FAIL {
            c.observe(primary_crashed("0-1-10", "0-1-12"), t);
        }
        let (v, a) = c.observe(after_failover(), t);
        assert_eq!(v.primary, Some(2));
        assert_eq!(a, [Action::Persist { index: 2 }]);
    }

    #[test]
    fn the_new_primary_is_learned_from_the_backends() {
        let (mut c, t) = cluster();
        failed_over(&mut c, t);
        let (v, _) = c.observe(after_failover(), t);
        assert!(v.nodes[1].readable && !v.nodes[0].readable);
    }

    #[test]
    fn a_returning_old_master_is_fenced_then_rejoined() {
        let (mut c, t) = cluster();
        failed_over(&mut c, t);
        // It comes back writable, replicating from nobody.
        let mut round = after_failover();
        round[0] = primary("0-1-11");
        let (v, a) = c.observe(round.clone(), t);
        assert_eq!(v.primary, Some(2), "the followed node stays primary");
        assert_eq!(v.nodes[0].state, State::Fenced);
        assert!(!v.nodes[0].readable);
        assert_eq!(a, [Action::Fence { node: 0 }]);
        // Fenced (read_only=ON), it holds nothing the primary lacks: rejoin.
        if let Ok(r) = &mut round[0] {
            r.read_only = true;
        }
        let (v, a) = c.observe(round.clone(), t);
        assert_eq!(
            a,
            [Action::Follow {
                node: 0,
                primary: 2,
                current_pos: true
            }]
        );
        assert_eq!(v.nodes[0].state, State::Rejoining);
        // Not asked again at once while it gets going.
        assert_eq!(c.observe(round.clone(), t).1, []);
        // Replicating but behind: still no reads.
        let mut behind = link(2, "0-1-12,1-3-5");
        behind.seconds_behind = Some(60);
        round[0] = replica(behind);
        let (v, _) = c.observe(round.clone(), t);
        assert_eq!(v.nodes[0].state, State::Rejoining);
        assert!(!v.nodes[0].readable);
        round[0] = replica(link(2, "0-1-12,1-3-5"));
        let (v, _) = c.observe(round, t);
        assert_eq!(v.nodes[0].state, State::Up);
        assert!(v.nodes[0].readable);
    }

    #[test]
    fn a_diverged_old_master_stays_fenced() {
        let (mut c, t) = cluster();
        failed_over(&mut c, t);
        let mut round = after_failover();
        round[0] = primary("0-1-13");
        if let Ok(r) = &mut round[0] {
            r.read_only = true;
        }
        let (v, a) = c.observe(round, t);
        assert_eq!(a, []);
        assert_eq!(v.nodes[0].state, State::Fenced);
        assert!(
            v.nodes[0].reason.contains("0-1-13"),
            "{}",
            v.nodes[0].reason
        );
    }

    #[test]
    fn without_auto_rejoin_a_fenced_node_waits_for_a_dba() {
        let mut c = Cluster::new(
            specs(),
            Policy {
                auto_rejoin: false,
                ..policy()
            },
            None,
        );
        let t = Instant::now();
        failed_over(&mut c, t);
        let mut round = after_failover();
        round[0] = primary("0-1-11");
        if let Ok(r) = &mut round[0] {
            r.read_only = true;
        }
        let (v, a) = c.observe(round, t);
        assert_eq!(a, []);
        assert_eq!(v.nodes[0].state, State::Fenced);
    }

    #[test]
    fn a_rejoin_that_the_primary_refuses_is_fenced() {
        let (mut c, t) = cluster();
        failed_over(&mut c, t);
        let mut round = after_failover();
        let refused = Link {
            io: IoThread::No,
            seconds_behind: None,
            io_error: Some((1236, "not in the master's binlog".into())),
            ..link(2, "")
        };
        round[0] = replica(refused);
        let (v, a) = c.observe(round, t);
        assert_eq!(a, []);
        assert_eq!(v.nodes[0].state, State::Fenced);
        assert!(v.nodes[0].reason.contains("1236"));
    }

    #[test]
    fn lagging_or_stopped_replicas_get_no_reads() {
        let (mut c, t) = cluster();
        let mut round = healthy();
        let mut slow = link(0, "0-1-10");
        slow.seconds_behind = Some(6);
        round[1] = replica(slow);
        let mut stopped = link(0, "0-1-10");
        stopped.sql_running = false;
        round[2] = replica(stopped);
        let (v, a) = c.observe(round, t);
        assert_eq!(
            a,
            [Action::Persist { index: 0 }],
            "a stopped SQL thread is left to the DBA"
        );
        assert_eq!(v.nodes[1].state, State::Lagging);
        assert!(
            v.nodes[1].reason.contains("6s behind"),
            "{}",
            v.nodes[1].reason
        );
        assert_eq!(v.nodes[2].state, State::Lagging);
        assert!(!v.nodes[1].readable && !v.nodes[2].readable);
        assert_eq!(v.nodes[1].lag, Some(6));
    }

    #[test]
    fn a_replica_left_on_the_old_primary_is_pointed_at_the_new_one() {
        let (mut c, t) = cluster();
        failed_over(&mut c, t);
        let mut round = after_failover();
        round[1] = replica(Link {
            io: IoThread::Connecting,
            seconds_behind: None,
            ..link(0, "0-1-12")
        });
        let (v, a) = c.observe(round.clone(), t);
        assert_eq!(
            a,
            [Action::Follow {
                node: 1,
                primary: 2,
                current_pos: false
            }]
        );
        assert_eq!(v.nodes[1].state, State::Rejoining);
        assert_eq!(c.observe(round.clone(), t).1, [], "not retried at once");
        assert_eq!(
            c.observe(round, t + RETRY_AFTER).1.len(),
            1,
            "retried later"
        );
    }

    #[test]
    fn min_switch_interval_holds_a_second_failover() {
        let (mut c, t) = cluster();
        failed_over(&mut c, t);
        // Now db-3 dies too, 10 s later; db-2 follows it.
        let lost = Link {
            io: IoThread::Connecting,
            seconds_behind: None,
            ..link(2, "0-1-12,1-3-5")
        };
        let round = vec![down(), replica(lost), down()];
        let mut a = vec![];
        let mut v = None;
        for _ in 0..FAIL {
            (v, a) = {
                let (view, acts) = c.observe(round.clone(), t + Duration::from_secs(10));
                (Some(view), acts)
            };
        }
        assert_eq!(a, []);
        assert!(v.unwrap().no_primary.contains("min_switch_interval"));
        let (_, a) = c.observe(round, t + Duration::from_secs(31));
        assert!(
            matches!(
                a[..],
                [Action::Promote {
                    node: 1,
                    old: 2,
                    ..
                }]
            ),
            "{a:?}"
        );
    }

    #[test]
    fn two_claimants_and_no_followers_is_no_primary() {
        let (mut c, t) = cluster();
        let (v, a) = c.observe(vec![primary("0-1-1"), primary("0-1-1"), down()], t);
        assert_eq!(v.primary, None);
        assert!(
            v.no_primary.contains("db-1, db-2 all claim"),
            "{}",
            v.no_primary
        );
        assert!(a.is_empty(), "nothing is fenced on a guess: {a:?}");
    }

    #[test]
    fn the_persisted_node_breaks_a_tie() {
        let mut c = Cluster::new(specs(), policy(), Some(1));
        let (v, a) = c.observe(
            vec![primary("0-1-1"), primary("0-1-1"), down()],
            Instant::now(),
        );
        assert_eq!(v.primary, Some(1));
        assert_eq!(a, [Action::Fence { node: 0 }]);
    }

    #[test]
    fn mycat_mode_moves_writes_to_the_next_write_node_only() {
        let mut s = specs();
        s[1].role = Role::Write;
        let mut c = Cluster::new(
            s,
            Policy {
                promote: false,
                ..policy()
            },
            None,
        );
        let t = Instant::now();
        let (v, a) = c.observe(healthy(), t);
        assert_eq!((v.primary, a), (Some(0), vec![]));
        let mut a = vec![];
        let mut v = None;
        for _ in 0..FAIL {
            let r = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
            v = Some(r.0);
            a = r.1;
        }
        assert_eq!(a, [Action::Persist { index: 1 }]);
        assert_eq!(v.unwrap().primary, Some(1));
        // Restarted on the persisted index, it stays there.
        let mut c = Cluster::new(
            specs(),
            Policy {
                promote: false,
                ..policy()
            },
            Some(1),
        );
        assert_eq!(c.observe(healthy(), t).0.primary, Some(1));
    }

    #[test]
    fn unknown_replication_status_still_serves() {
        let (mut c, t) = cluster();
        let mut round = healthy();
        for r in round.iter_mut().flatten() {
            r.links = None;
        }
        let (v, _) = c.observe(round, t);
        assert_eq!(v.primary, Some(0));
        assert!(v.nodes[1].readable);
        assert!(v.nodes[1].reason.contains("SLAVE MONITOR"));
    }
}
