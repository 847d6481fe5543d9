//! The shell of [`crate::ha::grants`]: reads `SHOW GRANTS` of the monitor
//! account (and of the replication account, where the monitor may) on
//! every node of a data host when its heartbeat starts and on every
//! reload, never per heartbeat; publishes the verdict per node for
//! `/status` and `show @@heartbeat` and logs what changed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hastack_proto::mysql::packets::ParseError;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{features, missing, needs_replication_account, replication_missing, Grants, Missing};
use crate::backend::Backend;
use crate::config;
use crate::ha::cluster::NodeSpec;
use crate::ha::failover::connect_as;

/// Nodes that could not be reached are tried again this often...
const RETRY_EVERY: Duration = Duration::from_secs(30);
/// ...this many times (two hours), then wait for the next reload.
const RETRIES: u32 = 240;
/// Roles followed from an account (nested role grants), at most.
const MAX_ROLES: usize = 16;

/// What the check found on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NodeGrants {
    /// Not read yet.
    #[default]
    Pending,
    Checked {
        /// The monitor account as the server matched it (`'monitor'@'%'`).
        account: String,
        missing: Vec<Missing>,
        /// What could not be inspected, and roles that do not count.
        notes: Vec<String>,
    },
    /// The grants could not be read at all, and why.
    NotChecked(String),
}

impl NodeGrants {
    /// For `/status`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            NodeGrants::Pending => json!({ "checked": false, "why": "not read yet" }),
            NodeGrants::NotChecked(why) => json!({ "checked": false, "why": why }),
            NodeGrants::Checked {
                account,
                missing,
                notes,
            } => json!({
                "checked": true,
                "account": account,
                "missing": missing.iter().map(|m| json!({
                    "feature": m.feature, "privilege": m.privilege, "statement": m.statement,
                    "message": m.to_string(),
                })).collect::<Vec<_>>(),
                "notes": notes,
            }),
        }
    }

    /// One line for `show @@heartbeat`'s GRANTS column.
    pub fn summary(&self) -> String {
        match self {
            NodeGrants::Pending => "not checked yet".into(),
            NodeGrants::NotChecked(why) => format!("not checked: {why}"),
            NodeGrants::Checked { missing, notes, .. } => {
                let mut parts: Vec<String> = missing.iter().map(ToString::to_string).collect();
                parts.extend(notes.iter().cloned());
                if parts.is_empty() {
                    "ok".into()
                } else {
                    parts.join("; ")
                }
            }
        }
    }
}

/// Runs the check of one data host, again on [`Checker::recheck`].
pub struct Checker {
    host: Arc<config::DataHost>,
    tx: Arc<watch::Sender<Vec<NodeGrants>>>,
    stop: CancellationToken,
    /// The check under way: a recheck ends it and starts over.
    running: Mutex<CancellationToken>,
}

impl Checker {
    /// Starts the first check; it ends with `stop`.
    pub fn start(
        host: &config::DataHost,
        stop: &CancellationToken,
    ) -> (Checker, watch::Receiver<Vec<NodeGrants>>) {
        let (tx, rx) = watch::channel(vec![NodeGrants::Pending; host.nodes.len()]);
        let checker = Checker {
            host: Arc::new(host.clone()),
            tx: Arc::new(tx),
            stop: stop.clone(),
            running: Mutex::new(stop.child_token()),
        };
        checker.recheck();
        (checker, rx)
    }

    /// Reads the grants again (a reload: a DBA may have granted since).
    pub fn recheck(&self) {
        let token = self.stop.child_token();
        if let Ok(mut running) = self.running.lock() {
            running.cancel();
            *running = token.clone();
        }
        let (host, tx) = (self.host.clone(), self.tx.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = run(&host, &tx) => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

/// Checks every node; those that could not be reached again later.
async fn run(h: &config::DataHost, tx: &watch::Sender<Vec<NodeGrants>>) {
    let mut todo: Vec<usize> = (0..h.nodes.len()).collect();
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            tokio::time::sleep(RETRY_EVERY).await;
        }
        let results = futures::future::join_all(todo.iter().map(|&i| check_node(h, i))).await;
        let mut again = Vec::new();
        for (&i, (result, reached)) in todo.iter().zip(results) {
            let before = tx.borrow().get(i).cloned().unwrap_or_default();
            log_change(&h.name, &h.nodes[i].name, &before, &result);
            tx.send_modify(|all| {
                if let Some(slot) = all.get_mut(i) {
                    *slot = result;
                }
            });
            if !reached {
                again.push(i);
            }
        }
        todo = again;
        if todo.is_empty() {
            return;
        }
    }
}

/// The monitor account of `h`, as the heartbeat logs in.
fn monitor_account(h: &config::DataHost) -> (&str, &str) {
    match (&h.heartbeat.user, &h.heartbeat.password) {
        (Some(u), Some(p)) => (u, p.expose()),
        _ => (&h.user, h.password.expose()),
    }
}

/// The verdict on node `i`, and whether it was reached at all.
async fn check_node(h: &config::DataHost, i: usize) -> (NodeGrants, bool) {
    let n = &h.nodes[i];
    let spec = NodeSpec {
        name: n.name.clone(),
        addr: n.address,
        role: n.role,
    };
    let (user, password) = monitor_account(h);
    let timeout = h.heartbeat.timeout.get().max(h.connect_timeout.get());
    let mut b = match connect_as(
        &spec,
        i,
        user,
        password,
        crate::topology::login_policy(h),
        timeout,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            let why = format!("cannot log in as the monitor account '{user}': {e:#}");
            return (NodeGrants::NotChecked(why), false);
        }
    };
    // Generous: a handful of small queries.
    let limit = timeout + Duration::from_secs(10);
    match tokio::time::timeout(limit, inspect(h, &mut b)).await {
        Ok(Ok(found)) => (found, true),
        Ok(Err(e)) => (NodeGrants::NotChecked(format!("{e:#}")), true),
        Err(_) => (
            NodeGrants::NotChecked(format!("reading the grants took over {limit:?}")),
            false,
        ),
    }
}

async fn inspect(h: &config::DataHost, b: &mut Backend) -> Result<NodeGrants> {
    let enabled = features(h);
    let current = b.query_rows("SELECT CURRENT_USER()").await?;
    let account = account_text(current.scalar().unwrap_or(""));
    let mut grants =
        Grants::parse(&lines(&b.query_rows("SHOW GRANTS").await?)).map_err(anyhow::Error::msg)?;
    let mut notes = Vec::new();
    // SHOW GRANTS of the current user lists the default role's grants
    // already; this only runs if a server does not.
    if let Err(why) = resolve_roles(b, &mut grants).await? {
        notes.push(format!("{account}: {why}"));
    }
    let mut missing = missing(&enabled, &grants);
    if !missing.is_empty() {
        for role in grants.inactive_roles() {
            notes.push(format!(
                "role `{role}` is granted to {account} but is not its default role, and sqlproxyd never runs SET ROLE: its privileges do not count (SET DEFAULT ROLE `{role}` FOR {account})"
            ));
        }
    }
    // Without a replication_user there is no account to look at (the
    // config check asks for one where promotion needs it).
    if let (Some(repl), true) = (
        &h.failover.replication_user,
        needs_replication_account(&enabled),
    ) {
        match replication_accounts(b, repl).await? {
            Ok(accounts) => missing.extend(replication_missing(repl, &accounts)),
            Err(why) => notes.push(why),
        }
    }
    Ok(NodeGrants::Checked {
        account,
        missing,
        notes,
    })
}

/// The entries of the replication account `user` with their grants, or
/// why they could not be read (the monitor's own lack of privilege is
/// not the replication account's fault: it is said as not checked).
async fn replication_accounts(
    b: &mut Backend,
    user: &str,
) -> Result<std::result::Result<Vec<(String, Grants)>, String>> {
    let not_checked = |what: &str| {
        format!(
            "replication account '{user}' not checked: the monitor account may not {what} (that needs SELECT ON mysql.*)"
        )
    };
    let hosts = match b
        .query_rows(&format!(
            "SELECT Host FROM mysql.user WHERE User = {} AND is_role <> 'Y'",
            quoted(user)
        ))
        .await
    {
        Ok(rows) => rows,
        Err(e) if denied(&e) => return Ok(Err(not_checked("read mysql.user"))),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for host in hosts.rows.iter().filter_map(|r| r.first()?.clone()) {
        let sql = format!("SHOW GRANTS FOR {}@{}", quoted(user), quoted(&host));
        let rows = match b.query_rows(&sql).await {
            Ok(rows) => rows,
            Err(e) if denied(&e) => return Ok(Err(not_checked("run SHOW GRANTS FOR"))),
            Err(e) => return Err(e),
        };
        let mut g = Grants::parse(&lines(&rows)).map_err(anyhow::Error::msg)?;
        if let Err(why) = resolve_roles(b, &mut g).await? {
            return Ok(Err(format!(
                "replication account '{user}'@'{host}' not checked: {why}"
            )));
        }
        out.push((host, g));
    }
    Ok(Ok(out))
}

/// Reads the grants of the account's active roles that `g` lacks;
/// `Err(why)` when the monitor may not (their privileges then uncounted).
async fn resolve_roles(b: &mut Backend, g: &mut Grants) -> Result<std::result::Result<(), String>> {
    for _ in 0..MAX_ROLES {
        let Some(role) = g.unresolved_roles().into_iter().next() else {
            return Ok(Ok(()));
        };
        let sql = format!("SHOW GRANTS FOR `{}`", role.replace('`', "``"));
        match b.query_rows(&sql).await {
            Ok(rows) => g.add_lines(&lines(&rows)).map_err(anyhow::Error::msg)?,
            Err(e) if denied(&e) => {
                return Ok(Err(format!(
                    "the privileges of role `{role}` were not inspected: the monitor account may not run SHOW GRANTS FOR it (that needs SELECT ON mysql.*)"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Err(format!(
        "roles nested deeper than {MAX_ROLES} were not inspected"
    )))
}

/// The first column of every row.
fn lines(rows: &hastack_proto::mysql::rows::Rows) -> Vec<String> {
    rows.rows
        .iter()
        .filter_map(|r| r.first().cloned().flatten())
        .collect()
}

/// `monitor@%` (CURRENT_USER()) as `'monitor'@'%'`.
fn account_text(current: &str) -> String {
    match current.rsplit_once('@') {
        Some((u, h)) => format!("'{u}'@'{h}'"),
        None => format!("'{current}'"),
    }
}

/// A single-quoted SQL string; quotes doubled, backslashes escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Refused for lack of privilege (1044 database, 1142 table, 1227 global).
fn denied(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ParseError>(),
        Some(ParseError::ServerError(s)) if matches!(s.code, 1044 | 1142 | 1227)
    )
}

/// Logs what is new on a node: once per change, not per check.
fn log_change(data_host: &str, node: &str, before: &NodeGrants, now: &NodeGrants) {
    match now {
        NodeGrants::Pending => {}
        NodeGrants::NotChecked(why) => {
            if !matches!(before, NodeGrants::NotChecked(_)) {
                tracing::warn!(data_host, node, "grants not checked: {why}");
            }
        }
        NodeGrants::Checked {
            account,
            missing,
            notes,
        } => {
            let (old_missing, old_notes) = match before {
                NodeGrants::Checked { missing, notes, .. } => (missing.clone(), notes.clone()),
                _ => (Vec::new(), Vec::new()),
            };
            for m in missing.iter().filter(|m| !old_missing.contains(m)) {
                tracing::warn!(data_host, node, account = %account, feature = m.feature, privilege = %m.privilege, "missing privilege: {m}");
            }
            // What could not be inspected is not a fault: info, not warn.
            for n in notes.iter().filter(|n| !old_notes.contains(n)) {
                tracing::info!(data_host, node, account = %account, "grants: {n}");
            }
            let was_ok =
                matches!(before, NodeGrants::Checked { missing, .. } if missing.is_empty());
            if missing.is_empty() && !was_ok {
                tracing::info!(data_host, node, account = %account, "grants: the monitor account has every privilege the enabled features need");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quoted(r"it's \ok"), r"'it''s \\ok'");
        assert_eq!(account_text("monitor@%"), "'monitor'@'%'");
        assert_eq!(account_text("a@b@10.%"), "'a@b'@'10.%'");
    }

    #[test]
    fn summaries() {
        let m = Missing {
            feature: "failover.promote",
            privilege: "RELOAD".into(),
            statement: "RESET SLAVE ALL".into(),
        };
        let checked = NodeGrants::Checked {
            account: "'m'@'%'".into(),
            missing: vec![m],
            notes: vec!["replication account 'repl' not checked: x".into()],
        };
        assert_eq!(
            checked.summary(),
            "failover.promote needs RELOAD for RESET SLAVE ALL; replication account 'repl' not checked: x"
        );
        assert_eq!(
            checked.to_json()["missing"][0]["message"],
            "failover.promote needs RELOAD for RESET SLAVE ALL"
        );
        let ok = NodeGrants::Checked {
            account: "'m'@'%'".into(),
            missing: vec![],
            notes: vec![],
        };
        assert_eq!(ok.summary(), "ok");
        assert_eq!(
            NodeGrants::NotChecked("x".into()).summary(),
            "not checked: x"
        );
    }
}
