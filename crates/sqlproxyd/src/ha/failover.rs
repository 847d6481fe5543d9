//! Carrying out what [`crate::ha::cluster`] decided, on the backends: fencing a
//! node, and running [`Plan`]s (promotion, switchover, rejoin) under a lock.
//!
//! The promotion lock is `GET_LOCK` on every configured node at once (never
//! waiting): a plan runs only while this proxy holds it on a majority of
//! the configured nodes (`quorum: majority`), so two proxies never both
//! hold it and a minority side of a partition never gets it. Every
//! heartbeat reads `IS_USED_LOCK` of it, so a proxy stops writing as soon as
//! it sees the lock held; a promotion (whose old primary cannot be reached
//! to make it read-only) waits a whole write lease under the lock before it
//! changes anything, so that every proxy has seen the lock or lost its
//! lease. Rejoins take a second lock of their own, which stops no writes.
//!
//! While a plan runs it is journaled in the state dir; a proxy that died
//! half way rolls it back (or forward, if the new primary already took
//! writes) on its next start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hastack_proto::mysql::gtid::GtidPos;
use hastack_proto::mysql::packets::Capabilities;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::Quorum;
use crate::ha::cluster::NodeSpec;
use crate::ha::plan::{Op, Outcome, Plan, Recovery, Step};
use hastack_proto::mysql::client::{Credentials, Policy as LoginPolicy};

const UTF8MB4_GENERAL_CI: u8 = 45;

/// What actions need to know of the data host.
pub struct Actor {
    pub data_host: String,
    pub specs: Vec<NodeSpec>,
    pub user: String,
    pub password: String,
    pub login_policy: LoginPolicy,
    pub repl_user: String,
    pub repl_password: String,
    pub timeout: Duration,
    pub apply_timeout: Duration,
    pub quorum: Quorum,
    /// How long a promotion holds the lock before it changes anything:
    /// the write lease of the other proxies, and one round.
    pub lease_wait: Duration,
    /// The plan running now (`plan.<data host>.json` in the state dir).
    pub journal: PathBuf,
}

/// The journal's content.
#[derive(Serialize, Deserialize)]
struct Journal {
    plan: Plan,
    /// The step about to run.
    next: usize,
}

/// The lock a promotion, a switchover and Mycat's switch take (MariaDB
/// allows 64 characters).
pub fn promotion_lock(data_host: &str) -> String {
    lock_name("hastack_promote", data_host)
}

fn rejoin_lock(data_host: &str) -> String {
    lock_name("hastack_rejoin", data_host)
}

fn lock_name(what: &str, data_host: &str) -> String {
    format!("{what}.{data_host}").chars().take(64).collect()
}

/// The locks held (they last as long as these connections).
pub struct Locks {
    name: String,
    held: Vec<Backend>,
}

impl Locks {
    /// Gives the locks back now: closing the connections would too, but
    /// the server may notice that a moment later, and until then every
    /// proxy's heartbeat sees the lock held and withholds writes.
    async fn release(mut self) {
        let sql = format!("DO RELEASE_LOCK('{}')", sql_escape(&self.name));
        // All at once and bounded: a node cut off meanwhile must not hold
        // the release up (its lock goes with the connection's
        // wait_timeout, set when it was taken).
        let releases = self.held.iter_mut().map(|b| {
            let sql = sql.clone();
            async move {
                let _ = tokio::time::timeout(RELEASE_WAIT, b.run(COM_QUERY, sql.as_bytes())).await;
            }
        });
        futures::future::join_all(releases).await;
    }

    /// How many of the locks this proxy still holds (a node that restarted
    /// meanwhile has dropped its lock, and another proxy may take it).
    async fn still_held(&mut self) -> usize {
        let sql = format!(
            "SELECT IS_USED_LOCK('{}') = CONNECTION_ID()",
            sql_escape(&self.name)
        );
        let checks = self.held.iter_mut().map(|b| {
            let sql = sql.clone();
            async move {
                let r = tokio::time::timeout(RELEASE_WAIT, b.query_rows(&sql)).await;
                matches!(r, Ok(Ok(rows)) if rows.scalar() == Some("1"))
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .filter(|&held| held)
            .count()
    }
}

/// How long a lock's release or check may take on one node.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl Actor {
    /// A fresh connection to `node` as the monitor account.
    pub async fn connect(&self, node: usize) -> Result<Backend> {
        connect_as(
            &self.specs[node],
            node,
            &self.user,
            &self.password,
            self.login_policy,
            self.timeout,
        )
        .await
    }

    /// Makes `node` read-only: a second writable node is never served and
    /// must not take writes from anyone else either.
    pub async fn fence(&self, node: usize) -> Result<()> {
        let mut b = self.connect(node).await?;
        b.run(COM_QUERY, b"SET GLOBAL read_only = ON")
            .await
            .context("SET GLOBAL read_only = ON")
    }

    /// `GET_LOCK(name, 0)` on every configured node at once. `Err` says why
    /// not held: another proxy has it somewhere, or too few nodes granted
    /// it for the quorum.
    async fn lock(&self, name: &str) -> std::result::Result<Locks, String> {
        let sql = format!("SELECT GET_LOCK('{}', 0)", sql_escape(name));
        // A promoter that hangs or is cut off must not hold the lock (and
        // so every proxy's writes) for MariaDB's 8 hours: the server drops
        // an idle lock connection after the longest a plan can take.
        let limit = self.lease_wait + self.apply_timeout * 2 + Duration::from_secs(60);
        let idle = format!("SET SESSION wait_timeout = {}", limit.as_secs().max(1));
        let tries = (0..self.specs.len()).map(|i| {
            let (sql, idle) = (sql.clone(), idle.clone());
            async move {
                let mut b = self.connect(i).await.ok()?;
                b.run(COM_QUERY, idle.as_bytes()).await.ok()?;
                let got = b.query_rows(&sql).await.ok()?;
                Some((got.scalar() == Some("1"), b))
            }
        });
        let results = futures::future::join_all(tries).await;
        let reached = results.iter().flatten().count();
        let mut held = Vec::new();
        let mut refused = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Some((true, b)) => held.push(b),
                Some((false, _)) => refused.push(self.specs[i].name.clone()),
                None => {}
            }
        }
        let n = self.specs.len();
        if !refused.is_empty() {
            return Err(format!(
                "another sqlproxyd holds the lock {name} on {}",
                refused.join(", ")
            ));
        }
        let enough = match self.quorum {
            Quorum::Majority => held.len() * 2 > n,
            Quorum::Reachable => held.len() * 2 > reached,
        };
        if !enough {
            return Err(format!(
                "the lock {name} is held on {} of the {n} configured nodes: not a majority",
                held.len()
            ));
        }
        Ok(Locks {
            name: name.to_owned(),
            held,
        })
    }

    /// Whether `held` locks are a quorum (under `reachable`, any).
    fn enough(&self, held: usize) -> bool {
        match self.quorum {
            Quorum::Majority => held * 2 > self.specs.len(),
            Quorum::Reachable => held > 0,
        }
    }

    /// Points `node` at `primary` under the rejoin lock.
    pub async fn follow(&self, node: usize, primary: usize, current_pos: bool) -> Outcome {
        let plan = Plan::rejoin(node, primary, current_pos);
        let locks = match self.lock(&rejoin_lock(&self.data_host)).await {
            Ok(l) => l,
            Err(why) => return outcome(&plan, "skipped", None, Some(why), vec![]),
        };
        let o = self.execute(&plan).await;
        locks.release().await;
        o
    }

    /// Promotes `node` in place of the failed `old` and points `repoint`
    /// at it, under the promotion lock held for a lease first. Skipped (and
    /// why) when the lock is elsewhere or the backends changed meanwhile.
    pub async fn promote(&self, node: usize, old: usize, repoint: &[usize]) -> Outcome {
        let plan = Plan::promotion(node, repoint);
        let skip = |why: String| outcome(&plan, "skipped", None, Some(why), vec![]);
        let mut locks = match self.lock(&promotion_lock(&self.data_host)).await {
            Ok(l) => l,
            Err(why) => return skip(why),
        };
        if self.quorum == Quorum::Majority {
            tracing::warn!(data_host = %self.data_host, candidate = %self.specs[node].name, wait = ?self.lease_wait, "promotion lock held on a majority; waiting out the other proxies' write leases");
            tokio::time::sleep(self.lease_wait).await;
        }
        let o = match self.still_failed(node, old).await {
            Err(why) => skip(why),
            Ok(()) if !self.enough(locks.still_held().await) => {
                skip("the promotion lock was lost on some nodes while waiting (restarted?)".into())
            }
            Ok(()) => self.execute(&plan).await,
        };
        locks.release().await;
        o
    }

    /// Makes the primary `node`, back read-only, writable again under the
    /// promotion lock, if under the lock it is still read-only, replicates
    /// from nobody, and no other node is writable and replicating from
    /// nobody.
    pub async fn restore(&self, node: usize) -> Outcome {
        let plan = Plan::restore(node);
        let skip = |why: String| outcome(&plan, "skipped", None, Some(why), vec![]);
        let locks = match self.lock(&promotion_lock(&self.data_host)).await {
            Ok(l) => l,
            Err(why) => return skip(why),
        };
        let mut others_ok = true;
        let mut still = false;
        for i in 0..self.specs.len() {
            let Some((writable, links)) = self.node_state(i).await else {
                continue;
            };
            let replicating = (0..links.rows.len()).any(|r| {
                links.get(r, "Slave_IO_Running") != Some("No")
                    || links.get(r, "Slave_SQL_Running") == Some("Yes")
            });
            if i == node {
                still = !writable && !replicating;
            } else if writable && !replicating {
                others_ok = false;
            }
        }
        let o = if !still {
            skip(format!(
                "{} is no longer a read-only node replicating from nobody",
                self.specs[node].name
            ))
        } else if !others_ok {
            skip("another node is writable and replicating from nobody".into())
        } else {
            self.execute(&plan).await
        };
        locks.release().await;
        o
    }

    /// Whether node `i` is writable, and its replication links, asked
    /// now; `None` when it cannot be reached or asked.
    async fn node_state(&self, i: usize) -> Option<(bool, hastack_proto::mysql::rows::Rows)> {
        let mut b = self.connect(i).await.ok()?;
        let ro = b.query_rows("SELECT @@read_only").await.ok()?;
        let links = b.query_rows("SHOW ALL SLAVES STATUS").await.ok()?;
        Some((ro.scalar() == Some("0"), links))
    }

    /// Under the lock, after the wait: the old primary still does not
    /// answer, nobody became primary, and `node` still lost it too.
    async fn still_failed(&self, node: usize, old: usize) -> std::result::Result<(), String> {
        if self.connect(old).await.is_ok() {
            return Err(format!(
                "the old primary {} answers again",
                self.specs[old].name
            ));
        }
        for i in (0..self.specs.len()).filter(|&i| i != old) {
            let Some((writable, links)) = self.node_state(i).await else {
                continue;
            };
            let running = |r: usize, c: &str| links.get(r, c) == Some("Yes");
            let replicating = (0..links.rows.len()).any(|r| {
                links.get(r, "Slave_IO_Running") != Some("No") || running(r, "Slave_SQL_Running")
            });
            if writable && !replicating {
                return Err(format!(
                    "{} is already writable and replicating from nobody",
                    self.specs[i].name
                ));
            }
            if i == node && (0..links.rows.len()).any(|r| running(r, "Slave_IO_Running")) {
                return Err(format!(
                    "{} receives from its primary again",
                    self.specs[i].name
                ));
            }
        }
        Ok(())
    }

    /// A planned switch of the primary from `old` to `target` with no
    /// write lost, under the promotion lock. `old` is reachable and goes
    /// read-only first, so no lease needs waiting out.
    pub async fn switchover(&self, old: usize, target: usize, others: &[usize]) -> Outcome {
        let plan = Plan::switchover(old, target, others);
        let locks = match self.lock(&promotion_lock(&self.data_host)).await {
            Ok(l) => l,
            Err(why) => return outcome(&plan, "skipped", None, Some(why), vec![]),
        };
        let o = self.execute(&plan).await;
        locks.release().await;
        o
    }

    /// Mycat's mode: takes the promotion lock and holds it for a lease, so
    /// that no other proxy writes to the failed node meanwhile; the caller
    /// then moves its writes.
    pub async fn switch_write_node(&self) -> std::result::Result<(), String> {
        let mut locks = self.lock(&promotion_lock(&self.data_host)).await?;
        if self.quorum == Quorum::Majority {
            tokio::time::sleep(self.lease_wait).await;
        }
        let held = locks.still_held().await;
        locks.release().await;
        if !self.enough(held) {
            return Err(
                "the promotion lock was lost on some nodes while waiting (restarted?)".into(),
            );
        }
        Ok(())
    }

    /// Runs `plan`, journaled: on a failure before its point of no return
    /// the done steps are undone (newest first); after it, the failure is
    /// reported and the remaining steps still run.
    async fn execute(&self, plan: &Plan) -> Outcome {
        let mut conns = HashMap::new();
        let mut degraded: Option<(String, String)> = None;
        for (k, step) in plan.steps.iter().enumerate() {
            if k <= plan.commit {
                if let Err(e) = self.journal(plan, k) {
                    // Without a journal a crash could leave the nodes half
                    // way: do not start (or go on) blind.
                    let why = format!("cannot write {}: {e}", self.journal.display());
                    let undo = self.undo(&plan.rollback(k, false), &mut conns).await;
                    let result = match (k, undo.is_empty()) {
                        (0, _) => "skipped",
                        (_, true) => "rolled_back",
                        (_, false) => "rollback_failed",
                    };
                    return outcome(plan, result, None, Some(why), undo);
                }
            }
            if let Err(e) = self.run_step(step, &mut conns).await {
                let shown = self.shown(step);
                tracing::error!(data_host = %self.data_host, plan = plan.kind.name(), step = %shown, "plan step failed: {e:#}");
                if k < plan.commit {
                    let took_effect = !refused_by_server(&e);
                    let undo = self.undo(&plan.rollback(k, took_effect), &mut conns).await;
                    self.clear_journal();
                    let result = if undo.is_empty() {
                        "rolled_back"
                    } else {
                        "rollback_failed"
                    };
                    return outcome(plan, result, Some(shown), Some(format!("{e:#}")), undo);
                }
                degraded.get_or_insert((shown, format!("{e:#}")));
            }
        }
        self.clear_journal();
        match degraded {
            None => outcome(plan, "ok", None, None, vec![]),
            Some((step, e)) => outcome(plan, "degraded", Some(step), Some(e), vec![]),
        }
    }

    /// Runs undo steps, each whatever the others did; the errors.
    async fn undo(&self, steps: &[Step], conns: &mut HashMap<usize, Backend>) -> Vec<String> {
        let mut errors = Vec::new();
        for s in steps {
            // A connection that failed the step may be broken: fresh one.
            conns.remove(&s.node);
            match self.run_step(s, conns).await {
                Ok(()) => {
                    tracing::warn!(data_host = %self.data_host, step = %self.shown(s), "undone")
                }
                Err(e) => {
                    tracing::error!(data_host = %self.data_host, step = %self.shown(s), "undo failed: {e:#}");
                    errors.push(format!("{}: {e:#}", self.shown(s)));
                }
            }
        }
        errors
    }

    /// A plan left in the journal by a proxy that stopped half way, rolled
    /// back or forward. `None`: no journal, or the nodes cannot be reached
    /// or locked yet (tried again next round).
    pub async fn recover(&self) -> Option<Outcome> {
        let text = match std::fs::read_to_string(&self.journal) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::error!(data_host = %self.data_host, "cannot read {}: {e}", self.journal.display());
                return None;
            }
        };
        let Ok(j) = serde_json::from_str::<Journal>(&text) else {
            tracing::error!(data_host = %self.data_host, "{} is not a plan journal; moved aside", self.journal.display());
            let _ = std::fs::rename(&self.journal, self.journal.with_extension("json.bad"));
            return None;
        };
        let Ok(locks) = self.lock(&promotion_lock(&self.data_host)).await else {
            return None;
        };
        let result = self.recover_plan(j).await;
        locks.release().await;
        result
    }

    async fn recover_plan(&self, j: Journal) -> Option<Outcome> {
        let plan = j.plan;
        let target_writable = match self.connect(plan.target).await {
            Ok(mut b) => match b.query_rows("SELECT @@read_only").await {
                Ok(r) => r.scalar() == Some("0"),
                Err(_) => return None,
            },
            Err(_) => return None,
        };
        let recovery = plan.recover(j.next, target_writable);
        tracing::warn!(data_host = %self.data_host, plan = plan.kind.name(), step = j.next, ?recovery, "found an interrupted plan in the journal");
        let result = match recovery {
            Recovery::Forward => outcome(&plan, "recovered_forward", None, None, vec![]),
            Recovery::Rollback(steps) => {
                let errors = self.undo(&steps, &mut HashMap::new()).await;
                let result = if errors.is_empty() {
                    "rolled_back"
                } else {
                    "rollback_failed"
                };
                outcome(&plan, result, None, None, errors)
            }
        };
        self.clear_journal();
        Some(result)
    }

    fn journal(&self, plan: &Plan, next: usize) -> std::io::Result<()> {
        let j = Journal {
            plan: plan.clone(),
            next,
        };
        let text = serde_json::to_vec_pretty(&j).map_err(std::io::Error::other)?;
        hastack_rt::state_file::replace(&self.journal, &text)
    }

    fn clear_journal(&self) {
        if let Err(e) = hastack_rt::state_file::remove(&self.journal) {
            tracing::error!(data_host = %self.data_host, "cannot remove {}: {e}; the next start will recover the plan again", self.journal.display());
        }
    }

    /// A step as the logs and `show @@datasource` show it.
    fn shown(&self, s: &Step) -> String {
        let name = &self.specs[s.node].name;
        let sql = match s.op {
            Op::ReadOnly(true) => "SET GLOBAL read_only = ON".to_owned(),
            Op::ReadOnly(false) => "SET GLOBAL read_only = OFF".to_owned(),
            Op::StopReplication => "STOP ALL SLAVES".to_owned(),
            Op::StartReplication => "START ALL SLAVES".to_owned(),
            Op::ResetReplication => "RESET SLAVE ALL".to_owned(),
            Op::WaitOwnReceived => "MASTER_GTID_WAIT(its Gtid_IO_Pos)".to_owned(),
            Op::WaitApplied { of } => {
                format!(
                    "MASTER_GTID_WAIT(@@gtid_binlog_pos of {})",
                    self.specs[of].name
                )
            }
            Op::Follow { primary, .. } => {
                format!("CHANGE MASTER TO {}", self.specs[primary].name)
            }
        };
        format!("{name}: {sql}")
    }

    async fn run_step(&self, s: &Step, conns: &mut HashMap<usize, Backend>) -> Result<()> {
        let result = self.run_op(s, conns).await;
        if result.is_err() {
            conns.remove(&s.node);
        }
        result
    }

    async fn run_op(&self, s: &Step, conns: &mut HashMap<usize, Backend>) -> Result<()> {
        // Read before the node's connection is borrowed.
        let pos = match s.op {
            Op::WaitApplied { of } => {
                let b = self.conn(of, conns).await?;
                let rows = b.query_rows("SELECT @@gtid_binlog_pos").await?;
                Some(GtidPos::parse(rows.scalar().unwrap_or(""))?)
            }
            _ => None,
        };
        let b = self.conn(s.node, conns).await?;
        match s.op {
            Op::ReadOnly(true) => b.run(COM_QUERY, b"SET GLOBAL read_only = ON").await,
            Op::ReadOnly(false) => b.run(COM_QUERY, b"SET GLOBAL read_only = OFF").await,
            Op::StopReplication => b.run(COM_QUERY, b"STOP ALL SLAVES").await,
            Op::StartReplication => b.run(COM_QUERY, b"START ALL SLAVES").await,
            Op::ResetReplication => b.run(COM_QUERY, b"RESET SLAVE ALL").await,
            Op::WaitOwnReceived => {
                let status = b.query_rows("SHOW ALL SLAVES STATUS").await?;
                let received = GtidPos::parse(status.get(0, "Gtid_IO_Pos").unwrap_or(""))?;
                self.wait_applied(b, &received).await
            }
            Op::WaitApplied { .. } => {
                let pos = pos.unwrap_or_default();
                self.wait_applied(b, &pos).await
            }
            Op::Follow {
                primary,
                current_pos,
            } => self.change_master(b, primary, current_pos).await,
        }
    }

    async fn conn<'a>(
        &self,
        node: usize,
        conns: &'a mut HashMap<usize, Backend>,
    ) -> Result<&'a mut Backend> {
        if let std::collections::hash_map::Entry::Vacant(e) = conns.entry(node) {
            e.insert(self.connect(node).await?);
        }
        conns
            .get_mut(&node)
            .ok_or_else(|| anyhow!("no connection to node {node}"))
    }

    /// `MASTER_GTID_WAIT` on `b` for `pos`, bounded by `apply_timeout`.
    async fn wait_applied(&self, b: &mut Backend, pos: &GtidPos) -> Result<()> {
        let name = &self.specs[b.node].name;
        let wait = format!(
            "SELECT MASTER_GTID_WAIT('{}', {})",
            pos,
            self.apply_timeout.as_secs_f64()
        );
        let waited = tokio::time::timeout(
            self.apply_timeout + Duration::from_secs(5),
            b.query_rows(&wait),
        )
        .await
        .map_err(|_| anyhow!("{name}: {wait} did not return"))??;
        if waited.scalar() != Some("0") {
            bail!(
                "{name}: relay log not applied up to {pos} within {:?}",
                self.apply_timeout
            );
        }
        Ok(())
    }

    async fn change_master(
        &self,
        b: &mut Backend,
        primary: usize,
        current_pos: bool,
    ) -> Result<()> {
        let p = &self.specs[primary];
        let change = format!(
            // Retry every second (not MariaDB's 60 s): a replica pointed at a
            // primary that is still starting must not sit out a minute.
            "CHANGE MASTER TO MASTER_HOST='{}', MASTER_PORT={}, MASTER_USER='{}', MASTER_PASSWORD='{}', MASTER_USE_GTID={}, MASTER_CONNECT_RETRY=1",
            p.addr.ip(),
            p.addr.port(),
            sql_escape(&self.repl_user),
            sql_escape(&self.repl_password),
            if current_pos { "current_pos" } else { "slave_pos" }
        );
        let steps: [(&str, &str); 4] = [
            ("SET GLOBAL read_only = ON", "SET GLOBAL read_only = ON"),
            ("STOP SLAVE", "STOP SLAVE"),
            (&change, "CHANGE MASTER TO ..."),
            ("START SLAVE", "START SLAVE"),
        ];
        for (sql, shown) in steps {
            b.run(COM_QUERY, sql.as_bytes())
                .await
                .with_context(|| format!("{}: {shown}", self.specs[b.node].name))?;
        }
        Ok(())
    }
}

fn outcome(
    plan: &Plan,
    result: &'static str,
    failed_step: Option<String>,
    error: Option<String>,
    rollback_errors: Vec<String>,
) -> Outcome {
    Outcome {
        kind: plan.kind.name(),
        result,
        failed_step,
        error,
        rollback_errors,
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    }
}

/// The server answered the statement with an error: it did not run (as
/// opposed to a timeout or a lost connection, after which it may have).
fn refused_by_server(e: &anyhow::Error) -> bool {
    crate::backend::server_refusal(e).is_some()
}

/// A connection to `spec` for the proxy's own queries.
pub async fn connect_as(
    spec: &NodeSpec,
    node: usize,
    user: &str,
    password: &str,
    policy: LoginPolicy,
    timeout: Duration,
) -> Result<Backend> {
    let login = Credentials {
        user,
        password,
        database: None,
        capabilities: Capabilities::empty(),
        collation: UTF8MB4_GENERAL_CI,
    };
    Backend::connect(node, spec.addr, &login, policy, timeout).await
}

const COM_QUERY: u8 = 0x03;

/// A value for a single-quoted SQL string literal.
fn sql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_lock_names() {
        assert_eq!(sql_escape(r"it's \ok"), r"it\'s \\ok");
        assert_eq!(promotion_lock("dh1"), "hastack_promote.dh1");
        assert_eq!(promotion_lock(&"x".repeat(100)).len(), 64);
        assert_ne!(promotion_lock("dh1"), rejoin_lock("dh1"));
    }
}
