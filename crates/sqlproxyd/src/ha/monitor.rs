//! The heartbeat of one data host: every `interval`, each node is probed
//! (the configured query, `@@read_only`, the GTID positions and
//! `SHOW ALL SLAVES STATUS`) over a kept monitor connection, the round is
//! folded into [`Cluster`], the resulting [`View`] is published for routing,
//! and the actions it asks for are carried out by [`Actor`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hastack_proto::mysql::packets::ParseError;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config;
use crate::ha::cluster::{Action, Cluster, NodeSpec, Policy, State, View};
use crate::ha::dnindex::Store;
use crate::ha::failover::{connect_as, Actor};
use crate::ha::plan::Outcome;
use crate::ha::probe::{vars_query, Report};
use crate::metrics::{Metrics, NodeLabels};

/// A running heartbeat: its published view, and what it was started from
/// (a reload keeps it when that did not change).
pub struct Monitor {
    pub view: watch::Receiver<View>,
    pub config: config::DataHost,
    /// Requests for the heartbeat task (a switchover).
    pub commands: mpsc::Sender<Command>,
    /// Write commands sent and not yet answered, over all sessions: a
    /// switchover lets them finish before the old primary goes read-only.
    pub writes_in_flight: Arc<AtomicUsize>,
    /// What the monitor and replication accounts lack, per node; read at
    /// start and on [`Monitor::recheck_grants`], not per heartbeat.
    pub grants: watch::Receiver<Vec<crate::ha::grants::check::NodeGrants>>,
    grants_check: crate::ha::grants::check::Checker,
    stop: CancellationToken,
}

/// What the admin port and API ask of a data host's heartbeat task.
pub enum Command {
    /// Make node `to` the primary, losing no write.
    Switchover { to: usize, reply: Reply },
}

/// Counts one write command in flight while alive.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Reply = oneshot::Sender<Result<String, String>>;

/// How long a switchover waits for writes in flight before it goes on.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Monitor {
    /// Starts the heartbeat of `host`; the write-node index is kept in
    /// `store`, shared by every data host of the process.
    pub fn spawn(host: &config::DataHost, store: Arc<Store>, metrics: Metrics) -> Monitor {
        let (tx, view) = watch::channel(View::initial(host.nodes.len()));
        let stop = CancellationToken::new();
        let (commands, inbox) = mpsc::channel(4);
        let writes_in_flight = Arc::new(AtomicUsize::new(0));
        let task = Task::new(host, store, metrics, tx, writes_in_flight.clone());
        tokio::spawn(task.run(stop.clone(), inbox));
        let (grants_check, grants) = crate::ha::grants::check::Checker::start(host, &stop);
        Monitor {
            view,
            config: host.clone(),
            commands,
            writes_in_flight,
            grants,
            grants_check,
            stop,
        }
    }

    /// Reads the accounts' grants again (a reload that kept this heartbeat).
    pub fn recheck_grants(&self) {
        self.grants_check.recheck();
    }
}

struct Task {
    name: String,
    query: String,
    interval: Duration,
    timeout: Duration,
    cluster: Cluster,
    actor: Arc<Actor>,
    /// The heartbeat's variables query (with the promotion lock's name).
    vars: String,
    /// How the last plan ended, shown with every view.
    last_operation: Option<Outcome>,
    /// A plan journal was left by an earlier run: recover it first.
    recovering: bool,
    store: Arc<Store>,
    metrics: Metrics,
    tx: watch::Sender<View>,
    writes_in_flight: Arc<AtomicUsize>,
}

impl Task {
    fn new(
        h: &config::DataHost,
        store: Arc<Store>,
        metrics: Metrics,
        tx: watch::Sender<View>,
        writes_in_flight: Arc<AtomicUsize>,
    ) -> Task {
        let specs: Vec<NodeSpec> = h
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.name.clone(),
                addr: n.address,
                role: n.role,
            })
            .collect();
        let persisted = match store.read() {
            Ok(m) => m.get(&h.name).copied(),
            Err(e) => {
                tracing::error!(data_host = %h.name, "{e:#}; starting without the persisted write node");
                None
            }
        };
        if let Some(i) = persisted {
            tracing::info!(data_host = %h.name, index = i, file = %store.file().display(), "persisted write node index");
        }
        let policy = Policy {
            fail_count: h.heartbeat.fail_count,
            switch_type: h.switch_type,
            promote: h.failover.promote,
            auto_rejoin: h.failover.auto_rejoin,
            max_replica_lag: h.max_replica_lag.get(),
            min_switch_interval: h.failover.min_switch_interval.get(),
            reads_fall_back_to_primary: h.reads_fall_back_to_primary,
            quorum: h.failover.quorum,
            restore_writable: h.failover.restore_writable,
            lease: lease(h),
        };
        let (user, password) = match (&h.heartbeat.user, &h.heartbeat.password) {
            (Some(u), Some(p)) => (u.clone(), p.expose().to_owned()),
            _ => (h.user.clone(), h.password.expose().to_owned()),
        };
        let actor = Actor {
            data_host: h.name.clone(),
            specs: specs.clone(),
            user,
            password,
            login_policy: crate::topology::login_policy(h),
            repl_user: h.failover.replication_user.clone().unwrap_or_default(),
            repl_password: h
                .failover
                .replication_password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
            timeout: h.heartbeat.timeout.get().max(h.connect_timeout.get()),
            apply_timeout: h.failover.apply_timeout.get(),
            quorum: h.failover.quorum,
            lease_wait: lease(h) + round(h),
            journal: store.dir().join(journal_name(&h.name)),
        };
        let recovering = actor.journal.exists();
        Task {
            name: h.name.clone(),
            query: h.heartbeat.query.clone(),
            interval: h.heartbeat.interval.get(),
            timeout: h.heartbeat.timeout.get(),
            cluster: Cluster::new(specs, policy, persisted),
            actor: Arc::new(actor),
            vars: vars_query(&crate::ha::failover::promotion_lock(&h.name)),
            last_operation: None,
            recovering,
            store,
            metrics,
            tx,
            writes_in_flight,
        }
    }

    async fn run(mut self, stop: CancellationToken, mut inbox: mpsc::Receiver<Command>) {
        let n = self.cluster.specs().len();
        let mut conns: Vec<Option<Backend>> = (0..n).map(|_| None).collect();
        let mut previous = View::initial(n);
        let mut last_ok: Vec<Option<std::time::SystemTime>> = vec![None; n];
        let mut answer: Option<(Reply, Result<String, String>)> = None;
        loop {
            let started = tokio::time::Instant::now();
            // Leases count from the round's start: every answer came after.
            let round_started = Instant::now();
            let timed = tokio::select! {
                r = self.probe_all(&mut conns) => r,
                _ = stop.cancelled() => return,
            };
            let mut took = Vec::with_capacity(n);
            let mut round = Vec::with_capacity(n);
            for (i, (result, t)) in timed.into_iter().enumerate() {
                if result.is_ok() {
                    last_ok[i] = Some(std::time::SystemTime::now());
                }
                took.push(t);
                round.push(result);
            }
            let (mut view, actions) = self.cluster.observe(round, round_started);
            view.last_operation = self.last_operation.clone();
            for (i, v) in view.nodes.iter_mut().enumerate() {
                v.probe_ms = Some(u64::try_from(took[i].as_millis()).unwrap_or(u64::MAX));
                v.last_ok = last_ok[i].map(|t| humantime::format_rfc3339_seconds(t).to_string());
            }
            self.report_changes(&previous, &view);
            self.tx.send_replace(view.clone());
            previous = view;
            // A switchover answers once routing has the new primary.
            if let Some((reply, result)) = answer.take() {
                let _ = reply.send(result);
            }
            if self.recovering {
                if let Some(o) = self.actor.recover().await {
                    self.recovering = false;
                    self.finished(o);
                }
            }
            let mut changed = false;
            for action in actions {
                tokio::select! {
                    c = self.act(action) => changed |= c,
                    _ = stop.cancelled() => return,
                }
            }
            // After a change on the backends, look again at once: routing
            // should see the result of a promotion now, not an interval
            // later. An action skipped or failed waits for the interval (a
            // lock held elsewhere, a node refusing) rather than retrying in
            // a loop.
            if !changed {
                tokio::select! {
                    _ = tokio::time::sleep_until(started + self.interval) => {}
                    Some(cmd) = inbox.recv() => answer = Some(self.command(cmd, &previous).await),
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    /// Probes every node at once; each result with how long it took.
    async fn probe_all(
        &self,
        conns: &mut [Option<Backend>],
    ) -> Vec<(Result<Report, String>, Duration)> {
        let specs = self.cluster.specs();
        let probes = conns.iter_mut().enumerate().map(|(i, conn)| async move {
            let started = Instant::now();
            let r = self.probe(i, &specs[i], conn).await;
            (r, Instant::now().saturating_duration_since(started))
        });
        futures::future::join_all(probes).await
    }

    async fn probe(
        &self,
        i: usize,
        spec: &NodeSpec,
        conn: &mut Option<Backend>,
    ) -> Result<Report, String> {
        let result = tokio::time::timeout(self.timeout, async {
            if conn.is_none() {
                *conn = Some(
                    connect_as(
                        spec,
                        i,
                        &self.actor.user,
                        &self.actor.password,
                        self.actor.login_policy,
                        self.timeout,
                    )
                    .await?,
                );
            }
            let Some(b) = conn.as_mut() else {
                anyhow::bail!("no connection");
            };
            b.query_rows(&self.query).await?;
            let vars = b.query_rows(&self.vars).await?;
            let links = match b.query_rows("SHOW ALL SLAVES STATUS").await {
                Ok(rows) => Some(rows),
                Err(e) if is_denied(&e) => None,
                Err(e) => return Err(e),
            };
            Report::from_rows(&vars, links.as_ref()).map_err(anyhow::Error::msg)
        })
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "heartbeat timed out after {:?}",
                self.timeout
            ))
        });
        result.map_err(|e| {
            *conn = None;
            self.metrics
                .heartbeat_failures
                .get_or_create(&NodeLabels::new(&self.name, &spec.name))
                .inc();
            format!("{e:#}")
        })
    }

    fn report_changes(&self, before: &View, now: &View) {
        let specs = self.cluster.specs();
        if before.primary != now.primary {
            match now.primary {
                Some(p) => {
                    tracing::warn!(data_host = %self.name, primary = %specs[p].name, address = %specs[p].addr, "writes go to {}", specs[p].name)
                }
                None => {
                    tracing::error!(data_host = %self.name, reason = %now.no_primary, "no primary: writes wait")
                }
            }
            if before.round > 0 {
                self.metrics.ha_event(&self.name, "primary_changed", "ok");
            }
        } else if now.primary.is_none() && before.no_primary != now.no_primary {
            tracing::warn!(data_host = %self.name, reason = %now.no_primary, "no primary");
        }
        for (i, (b, n)) in before.nodes.iter().zip(&now.nodes).enumerate() {
            let labels = NodeLabels::new(&self.name, &specs[i].name);
            let serving = n.readable || now.primary == Some(i);
            self.metrics
                .node_up
                .get_or_create(&labels)
                .set(i64::from(serving));
            self.metrics
                .node_lag
                .get_or_create(&labels)
                .set(n.lag.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)));
            if b.state != n.state || (n.state != State::Up && b.reason != n.reason) {
                let level_warn = matches!(n.state, State::Down | State::Fenced | State::Lagging);
                if level_warn {
                    tracing::warn!(data_host = %self.name, node = %specs[i].name, state = ?n.state, reason = %n.reason, "node state");
                } else {
                    tracing::info!(data_host = %self.name, node = %specs[i].name, state = ?n.state, reason = %n.reason, "node state");
                }
            }
        }
    }

    /// Runs `cmd`; returns its reply channel and result, to be sent after
    /// the next round.
    async fn command(&mut self, cmd: Command, view: &View) -> (Reply, Result<String, String>) {
        match cmd {
            Command::Switchover { to, reply } => {
                let result = self.switchover(to, view).await;
                self.metrics
                    .ha_event(&self.name, "switchover", outcome(result.is_ok()));
                if let Err(e) = &result {
                    tracing::error!(data_host = %self.name, "switchover failed: {e}");
                }
                (reply, result)
            }
        }
    }

    /// A planned change of primary: routing pauses writes (sessions wait,
    /// up to `primary_wait`), writes in flight finish, then the backends
    /// switch and the next round publishes the new primary.
    async fn switchover(&mut self, to: usize, view: &View) -> Result<String, String> {
        let specs = self.cluster.specs().to_vec();
        let target = specs.get(to).ok_or_else(|| format!("no node {to}"))?;
        let old = view
            .primary
            .ok_or_else(|| format!("no primary now: {}", view.no_primary))?;
        if old == to {
            return Ok(format!("{} is already the primary", target.name));
        }
        let follows = self.cluster.report(to).is_some_and(|r| {
            r.active_links().any(|l| {
                l.follows(&specs[old].name, specs[old].addr)
                    && l.io == crate::ha::probe::IoThread::Yes
                    && l.sql_running
            })
        });
        if !self.cluster.alive(to) || !follows {
            return Err(format!(
                "{} is not a running replica of {} ({}): no switchover",
                target.name,
                specs[old].name,
                view.nodes.get(to).map(|n| n.reason.as_str()).unwrap_or("")
            ));
        }
        let live: Vec<usize> = (0..specs.len())
            .filter(|&i| self.cluster.alive(i))
            .collect();
        let others: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| i != old && i != to)
            .collect();
        let mut paused = view.clone();
        // New writes wait; those in flight finish and are answered.
        paused.writes_paused = true;
        paused.no_primary = format!(
            "switchover from {} to {} in progress",
            specs[old].name, target.name
        );
        self.tx.send_replace(paused);
        let started = Instant::now();
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            while self.writes_in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(data_host = %self.name, "writes still in flight after {DRAIN_LIMIT:?}; switching anyway (they get the old primary's read-only error)");
        }
        tracing::warn!(data_host = %self.name, old = %specs[old].name, new = %target.name, "switchover: writes paused");
        let o = self.actor.switchover(old, to, &others).await;
        let took = Instant::now().saturating_duration_since(started);
        let ok = matches!(o.result, "ok" | "degraded");
        let said = describe(&o);
        self.finished(o);
        if ok {
            tracing::warn!(data_host = %self.name, primary = %target.name, took = ?took, "switchover done");
            Ok(format!(
                "{} is the primary; {} replicates from it (writes paused {took:.2?}){said}",
                target.name, specs[old].name
            ))
        } else {
            self.tx.send_replace(view.clone());
            Err(said.trim_start_matches("; ").to_owned())
        }
    }

    /// Records how a plan ended: the log, the counter, every view after.
    fn finished(&mut self, o: Outcome) {
        let line = describe(&o);
        match o.result {
            "ok" | "skipped" | "recovered_forward" => {
                tracing::info!(data_host = %self.name, plan = o.kind, result = o.result, "plan {}{line}", o.result)
            }
            _ => {
                tracing::error!(data_host = %self.name, plan = o.kind, result = o.result, "plan {}{line}", o.result)
            }
        }
        self.metrics.ha_event(&self.name, o.kind, o.result);
        // A skipped plan (the lock elsewhere) is routine: keep the last
        // real outcome on show.
        if o.result != "skipped" {
            self.last_operation = Some(o);
        }
    }

    /// Carries out `action`; whether it changed something on the backends.
    async fn act(&mut self, action: Action) -> bool {
        let specs = self.cluster.specs().to_vec();
        match action {
            Action::Persist { index } => {
                self.persist(index).await;
                false
            }
            Action::Fence { node } => {
                let result = self.actor.fence(node).await;
                match &result {
                    Ok(()) => {
                        tracing::warn!(data_host = %self.name, node = %specs[node].name, "fenced: writable but not the primary; read_only=ON")
                    }
                    Err(e) => {
                        tracing::error!(data_host = %self.name, node = %specs[node].name, "cannot fence: {e:#}")
                    }
                }
                self.metrics
                    .ha_event(&self.name, "fence", outcome(result.is_ok()));
                result.is_ok()
            }
            Action::Follow {
                node,
                primary,
                current_pos,
            } => {
                let o = self.actor.follow(node, primary, current_pos).await;
                let ok = o.result == "ok";
                if ok {
                    tracing::warn!(data_host = %self.name, node = %specs[node].name, primary = %specs[primary].name, gtid = if current_pos { "current_pos" } else { "slave_pos" }, "pointed at the primary; readmitted once caught up");
                }
                self.finished(o);
                ok
            }
            Action::Promote { node, old, repoint } => {
                let (name, old_name) = (&specs[node].name, &specs[old].name);
                tracing::warn!(data_host = %self.name, failed = %old_name, candidate = %name, "primary failed: promoting");
                let started = Instant::now();
                let o = self.actor.promote(node, old, &repoint).await;
                let took = Instant::now().saturating_duration_since(started);
                let ok = matches!(o.result, "ok" | "degraded");
                if ok {
                    tracing::warn!(data_host = %self.name, primary = %name, took = ?took, "promotion done");
                }
                // A rollback changed the backends too.
                let changed = ok || o.result != "skipped";
                self.finished(o);
                changed
            }
            Action::Restore { node } => {
                let o = self.actor.restore(node).await;
                let ok = o.result == "ok";
                if ok {
                    tracing::warn!(data_host = %self.name, node = %specs[node].name, "primary was read-only (restarted?): made writable again");
                }
                self.finished(o);
                ok
            }
            Action::Switch { index, old } => {
                let (name, old_name) = (&specs[index].name, &specs[old].name);
                match self.actor.switch_write_node().await {
                    Ok(()) => {
                        tracing::warn!(data_host = %self.name, failed = %old_name, write_node = %name, "write node switched (Mycat's mode)");
                        self.cluster.switched(index, Instant::now());
                        self.persist(index).await;
                        self.metrics.ha_event(&self.name, "switch", "ok");
                        true
                    }
                    Err(why) => {
                        tracing::info!(data_host = %self.name, write_node = %name, "write node not switched here: {why}");
                        self.metrics.ha_event(&self.name, "switch", "skipped");
                        false
                    }
                }
            }
        }
    }

    async fn persist(&self, index: usize) {
        // Off the async threads: it may wait for another data host's
        // update and does two fsyncs.
        let (store, name) = (self.store.clone(), self.name.clone());
        let result = tokio::task::spawn_blocking(move || store.write(&name, index))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the write was cut short: {e}")));
        match &result {
            Ok(()) => {
                tracing::info!(data_host = %self.name, index, file = %self.store.file().display(), "write node index persisted")
            }
            Err(e) => {
                tracing::error!(data_host = %self.name, index, "cannot persist the write node index: {e:#}")
            }
        }
        self.metrics
            .ha_event(&self.name, "persist", outcome(result.is_ok()));
    }
}

/// A plan's outcome after its kind and result: "; step ...: error".
fn describe(o: &Outcome) -> String {
    let mut out = String::new();
    if let Some(step) = &o.failed_step {
        out.push_str(&format!("; failed at {step}"));
    }
    if let Some(e) = &o.error {
        out.push_str(&format!("; {e}"));
    }
    if !o.rollback_errors.is_empty() {
        out.push_str(&format!(
            "; NOT undone (fix by hand): {}",
            o.rollback_errors.join("; ")
        ));
    }
    out
}

/// How long a round that reached enough nodes lets writes go on:
/// `fail_count` rounds (a round lasts the interval, or the timeout when a
/// node does not answer).
fn lease(h: &config::DataHost) -> Duration {
    round(h) * h.heartbeat.fail_count.max(1)
}

fn round(h: &config::DataHost) -> Duration {
    h.heartbeat.interval.get().max(h.heartbeat.timeout.get())
}

/// The plan journal's file name in the state dir.
fn journal_name(data_host: &str) -> String {
    let safe: String = data_host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("plan.{safe}.json")
}

fn outcome(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "failed"
    }
}

/// The server refused the statement for lack of privilege (1227, 1142,
/// 1045) rather than failing.
fn is_denied(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ParseError>(),
        Some(ParseError::ServerError(s)) if matches!(s.code, 1227 | 1142 | 1045 | 1044)
    )
}

/// Waits up to `wait` for `view` to name a primary.
pub async fn wait_primary(
    view: &mut watch::Receiver<View>,
    wait: Duration,
) -> Result<usize, String> {
    let waited = tokio::time::timeout(wait, view.wait_for(|v| v.writer(Instant::now()).is_some()))
        .await
        .map(|r| r.map(|v| v.writer(Instant::now())));
    match waited {
        Ok(Ok(Some(p))) => Ok(p),
        Ok(Ok(None)) | Err(_) => {
            let v = view.borrow();
            Err(if v.primary.is_some() && !v.writes_paused {
                "this proxy's write lease ran out (it reached too few nodes for a round; see /status)".into()
            } else {
                v.no_primary.clone()
            })
        }
        Ok(Err(_)) => Err("the heartbeat of this data host stopped".into()),
    }
}
