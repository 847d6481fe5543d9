//! Multi-step operations on the backends as plans: a list of steps, each
//! with the step that undoes it, and a point of no return. Pure: built from
//! node indexes, executed by [`crate::ha::failover`], journaled in the state
//! dir while it runs so that a proxy that crashed half way rolls it back or
//! forward on its next start.
//!
//! The rule every plan keeps: before the point of no return the old state
//! is restorable (the old primary writable, what was stopped started
//! again); at the point of no return the new primary becomes writable, and
//! what follows (resetting its replication, pointing others at it) only
//! tidies up and never makes a node writable or read-only again.

use serde::{Deserialize, Serialize};

/// What one step does on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `SET GLOBAL read_only = ON|OFF`.
    ReadOnly(bool),
    /// `STOP ALL SLAVES`.
    StopReplication,
    /// `START ALL SLAVES`.
    StartReplication,
    /// `RESET SLAVE ALL`: forget the links, so a restart does not replicate
    /// from the old primary again.
    ResetReplication,
    /// `MASTER_GTID_WAIT` for what the node itself received from its
    /// primary (a promotion: the primary is gone).
    WaitOwnReceived,
    /// `MASTER_GTID_WAIT` for `@@gtid_binlog_pos` of node `of` (a
    /// switchover: `of` is read-only by then, so that position is final).
    WaitApplied { of: usize },
    /// Read-only, stop, `CHANGE MASTER TO` node `primary`, start.
    Follow { primary: usize, current_pos: bool },
}

/// One step of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub node: usize,
    pub op: Op,
    /// Run (in reverse order) when a later step before the point of no
    /// return fails; also when this step itself fails, since a step that
    /// timed out may have taken effect (every undo is idempotent).
    pub undo: Option<Op>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Promotion,
    Switchover,
    Rejoin,
    Restore,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Promotion => "promotion",
            Kind::Switchover => "switchover",
            Kind::Rejoin => "rejoin",
            Kind::Restore => "restore",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub kind: Kind,
    pub steps: Vec<Step>,
    /// Steps before this index must all succeed (a failure rolls back);
    /// from it on, a failure is reported and the plan goes on.
    pub commit: usize,
    /// The node that is primary once the plan is committed (for a rejoin:
    /// the primary it follows).
    pub target: usize,
}

impl Plan {
    /// Promote `node` (a replica of the failed primary), then point
    /// `repoint` at it. Replication is stopped before `read_only=OFF` and
    /// reset only after: a promotion interrupted before the point of no
    /// return leaves the candidate a replica (its links kept, restarted by
    /// the rollback), so the next attempt still finds the best candidate.
    pub fn promotion(node: usize, repoint: &[usize]) -> Plan {
        let mut steps = vec![
            step(node, Op::WaitOwnReceived, None),
            step(node, Op::StopReplication, Some(Op::StartReplication)),
            step(node, Op::ReadOnly(false), Some(Op::ReadOnly(true))),
        ];
        let commit = steps.len();
        steps.push(step(node, Op::ResetReplication, None));
        steps.extend(repoint.iter().map(|&r| step(r, follow(node, false), None)));
        Plan {
            kind: Kind::Promotion,
            steps,
            commit,
            target: node,
        }
    }

    /// A planned change of primary from `old` to `target` with no write
    /// lost; `others` are pointed at `target` afterwards.
    pub fn switchover(old: usize, target: usize, others: &[usize]) -> Plan {
        let mut steps = vec![
            step(old, Op::ReadOnly(true), Some(Op::ReadOnly(false))),
            step(target, Op::WaitApplied { of: old }, None),
            step(target, Op::StopReplication, Some(Op::StartReplication)),
            step(target, Op::ReadOnly(false), Some(Op::ReadOnly(true))),
        ];
        let commit = steps.len();
        steps.push(step(target, Op::ResetReplication, None));
        steps.push(step(old, follow(target, true), None));
        steps.extend(others.iter().map(|&r| step(r, follow(target, false), None)));
        Plan {
            kind: Kind::Switchover,
            steps,
            commit,
            target,
        }
    }

    /// Point `node` at `primary` (a replica left on another node, or a
    /// fenced former primary). `Follow` is one step: a failed `CHANGE
    /// MASTER` leaves the old link, which the undo starts again.
    pub fn rejoin(node: usize, primary: usize, current_pos: bool) -> Plan {
        Plan {
            kind: Kind::Rejoin,
            steps: vec![step(
                node,
                follow(primary, current_pos),
                Some(Op::StartReplication),
            )],
            commit: 1,
            target: primary,
        }
    }

    /// Make the primary `node` writable again (it came back read-only);
    /// nothing to undo: a failure leaves it as it was.
    pub fn restore(node: usize) -> Plan {
        Plan {
            kind: Kind::Restore,
            steps: vec![step(node, Op::ReadOnly(false), None)],
            commit: 1,
            target: node,
        }
    }

    /// What to run after step `failed` failed, in order: the undos of the
    /// steps done so far, newest first, and of the failed one when it may
    /// have taken effect (it timed out or lost its connection; a server
    /// error says it did not). Nothing once the plan is committed.
    pub fn rollback(&self, failed: usize, took_effect: bool) -> Vec<Step> {
        if failed >= self.commit {
            return Vec::new();
        }
        let done = if took_effect { failed + 1 } else { failed };
        self.steps[..done.min(self.steps.len())]
            .iter()
            .rev()
            .filter_map(|s| {
                s.undo.map(|op| Step {
                    node: s.node,
                    op,
                    undo: None,
                })
            })
            .collect()
    }

    /// A plan found in the journal at start, `next` the step that was about
    /// to run. Whether it had passed its point of no return is read off the
    /// backends (`target_writable`): a crash between a step and its journal
    /// entry must not roll back a primary that already took writes.
    pub fn recover(&self, next: usize, target_writable: bool) -> Recovery {
        match self.kind {
            Kind::Promotion | Kind::Switchover if target_writable => Recovery::Forward,
            _ if next >= self.commit => Recovery::Forward,
            // Whether the step about to run did run is unknown.
            _ => Recovery::Rollback(self.rollback(next, true)),
        }
    }

    /// The nodes the plan touches before its point of no return.
    pub fn nodes(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.steps.iter().map(|s| s.node).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// What a plan left in the journal needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Committed: the heartbeat repairs the rest (rejoins, re-points).
    Forward,
    /// Not committed: run these undos.
    Rollback(Vec<Step>),
}

fn step(node: usize, op: Op, undo: Option<Op>) -> Step {
    Step { node, op, undo }
}

fn follow(primary: usize, current_pos: bool) -> Op {
    Op::Follow {
        primary,
        current_pos,
    }
}

/// How a plan ended, for the logs, `/status` and `show @@datasource`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub kind: &'static str,
    /// ok, failed (rolled back), rollback_failed, skipped, degraded
    /// (committed, a tidy-up step failed).
    pub result: &'static str,
    /// The step that failed, as the SQL it ran, with the node.
    pub failed_step: Option<String>,
    /// The server's error (or why nothing was done).
    pub error: Option<String>,
    /// Undos that failed: what a DBA must do by hand.
    pub rollback_errors: Vec<String>,
    /// RFC 3339, when it ended.
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A node as the plans see it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Node {
        read_only: bool,
        /// Replicating from (node index), and whether the threads run.
        master: Option<usize>,
        running: bool,
    }

    /// Three nodes: 0 the primary, 1 and 2 its running replicas.
    fn healthy() -> Vec<Node> {
        let replica = Node {
            read_only: true,
            master: Some(0),
            running: true,
        };
        vec![
            Node {
                read_only: false,
                master: None,
                running: false,
            },
            replica.clone(),
            replica,
        ]
    }

    fn apply(nodes: &mut [Node], s: &Step) {
        let n = &mut nodes[s.node];
        match s.op {
            Op::ReadOnly(v) => n.read_only = v,
            Op::StopReplication => n.running = false,
            Op::StartReplication => n.running = n.master.is_some(),
            Op::ResetReplication => n.master = None,
            Op::WaitOwnReceived | Op::WaitApplied { .. } => {}
            Op::Follow { primary, .. } => {
                n.read_only = true;
                n.master = Some(primary);
                n.running = true;
            }
        }
    }

    fn writable(nodes: &[Node]) -> Vec<usize> {
        (0..nodes.len())
            .filter(|&i| !nodes[i].read_only && nodes[i].master.is_none_or(|_| !nodes[i].running))
            .collect()
    }

    /// Runs `plan` failing at step `fail` (if any; the failed step may or
    /// may not have taken effect), then its rollback.
    fn run(plan: &Plan, nodes: &mut [Node], fail: Option<(usize, bool)>) {
        for (k, s) in plan.steps.iter().enumerate() {
            if let Some((f, took_effect)) = fail {
                if f == k {
                    if took_effect {
                        apply(nodes, s);
                    }
                    for u in plan.rollback(k, took_effect) {
                        apply(nodes, &u);
                    }
                    if k < plan.commit {
                        return;
                    }
                    continue;
                }
            }
            apply(nodes, s);
        }
    }

    #[test]
    fn a_switchover_ends_with_the_target_primary_and_the_others_following() {
        let mut n = healthy();
        let plan = Plan::switchover(0, 1, &[2]);
        run(&plan, &mut n, None);
        assert_eq!(writable(&n), [1]);
        assert_eq!((n[0].master, n[2].master), (Some(1), Some(1)));
        assert!(n[0].running && n[2].running);
    }

    #[test]
    fn a_promotion_resets_replication_only_after_the_node_is_writable() {
        let plan = Plan::promotion(2, &[1]);
        let reset = plan
            .steps
            .iter()
            .position(|s| s.op == Op::ResetReplication)
            .unwrap();
        let writable = plan
            .steps
            .iter()
            .position(|s| s.op == Op::ReadOnly(false))
            .unwrap();
        assert!(writable < reset && reset >= plan.commit);
    }

    proptest! {
        /// Whatever step of a switchover fails, and whether or not it took
        /// effect, exactly one node is writable afterwards: the old primary
        /// when the failure came before the point of no return (with the
        /// target replicating again), the target after it.
        #[test]
        fn a_failed_switchover_leaves_exactly_one_primary(fail in 0usize..7, took in any::<bool>()) {
            let mut n = healthy();
            let plan = Plan::switchover(0, 1, &[2]);
            run(&plan, &mut n, Some((fail, took)));
            let expected = if fail < plan.commit { 0 } else { 1 };
            prop_assert_eq!(writable(&n), vec![expected]);
            if fail < plan.commit {
                prop_assert!(n[1].running && n[1].master == Some(0) && n[1].read_only);
                prop_assert_eq!(&n[2], &healthy()[2]);
            }
        }

        /// The old primary is gone (it stays writable in the model but
        /// takes no part); whatever step fails, the candidate ends either
        /// a running replica again or the one writable node.
        #[test]
        fn a_failed_promotion_restores_the_candidate_or_completes(fail in 0usize..5, took in any::<bool>()) {
            let mut n = healthy();
            let plan = Plan::promotion(2, &[1]);
            run(&plan, &mut n, Some((fail, took)));
            let others: Vec<usize> = writable(&n).into_iter().filter(|&i| i != 0).collect();
            if fail < plan.commit {
                prop_assert!(others.is_empty());
                prop_assert!(n[2].running && n[2].master == Some(0) && n[2].read_only);
            } else {
                prop_assert_eq!(others, vec![2]);
            }
        }

        /// A plan interrupted by a crash before step `next` (which may have
        /// run or not) is recovered to the same end as a failure there.
        #[test]
        fn a_crash_is_rolled_back_or_forward(next in 0usize..7, took in any::<bool>()) {
            let plan = Plan::switchover(0, 1, &[2]);
            let mut n = healthy();
            for s in &plan.steps[..next] {
                apply(&mut n, s);
            }
            if took {
                apply(&mut n, &plan.steps[next]);
            }
            let target_writable = writable(&n).contains(&1);
            match plan.recover(next, target_writable) {
                Recovery::Forward => prop_assert!(target_writable || next >= plan.commit),
                Recovery::Rollback(undo) => {
                    for u in &undo {
                        apply(&mut n, u);
                    }
                    prop_assert_eq!(writable(&n), vec![0]);
                    prop_assert!(n[1].running);
                }
            }
        }
    }

    #[test]
    fn a_failed_rejoin_restarts_the_link_it_stopped() {
        let plan = Plan::rejoin(1, 2, false);
        assert_eq!(
            plan.rollback(0, true),
            [Step {
                node: 1,
                op: Op::StartReplication,
                undo: None
            }]
        );
        // Refused by the server: nothing was stopped, nothing to start.
        assert_eq!(plan.rollback(0, false), []);
        assert_eq!(plan.rollback(1, true), []);
    }

    #[test]
    fn the_journal_round_trips() {
        let plan = Plan::switchover(0, 2, &[1]);
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), plan);
    }
}
