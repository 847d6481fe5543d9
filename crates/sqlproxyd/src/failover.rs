//! Carrying out what [`crate::cluster`] decided, on the backends: fencing a
//! node, promoting a replica, pointing a replica at the primary.
//!
//! Promotion and re-pointing run under a lock held on a majority of the
//! live nodes (`GET_LOCK` on each, taken in node order and given up at the
//! first refusal, so two proxies never both hold a majority and never
//! deadlock). Under the lock the backends are asked again whether a primary
//! appeared meanwhile: another proxy may have just promoted one.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hastack_proto::mysql::gtid::GtidPos;
use hastack_proto::mysql::packets::Capabilities;

use crate::backend::Backend;
use crate::cluster::NodeSpec;
use hastack_proto::mysql::client::Credentials;

const UTF8MB4_GENERAL_CI: u8 = 45;

/// What actions need to know of the data host.
pub struct Actor {
    pub data_host: String,
    pub specs: Vec<NodeSpec>,
    pub user: String,
    pub password: String,
    pub repl_user: String,
    pub repl_password: String,
    pub timeout: Duration,
    pub apply_timeout: Duration,
}

impl Actor {
    /// A fresh connection to `node` as the monitor account.
    pub async fn connect(&self, node: usize) -> Result<Backend> {
        connect_as(
            &self.specs[node],
            node,
            &self.user,
            &self.password,
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

    /// Points `node` at `primary` (under the lock). `Ok(false)`: another
    /// proxy holds the lock and is doing it.
    pub async fn follow(
        &self,
        live: &[usize],
        node: usize,
        primary: usize,
        current_pos: bool,
    ) -> Result<bool> {
        let Some(_locks) = self.lock_majority(live).await? else {
            return Ok(false);
        };
        let mut b = self.connect(node).await?;
        self.change_master(&mut b, primary, current_pos).await?;
        Ok(true)
    }

    /// Promotes `node` in place of the failed `old` and points `repoint`
    /// at it. `Ok(None)`: not done, and why (lock held elsewhere, or a
    /// primary appeared meanwhile); `Ok(Some(failures))`: promoted, with
    /// the re-points that failed.
    pub async fn promote(
        &self,
        live: &[usize],
        node: usize,
        repoint: &[usize],
    ) -> Result<Result<Vec<String>, String>> {
        let Some(_locks) = self.lock_majority(live).await? else {
            return Ok(Err(
                "another sqlproxyd holds the failover lock on the nodes".into(),
            ));
        };
        // Under the lock: did someone else promote already?
        for &i in live {
            let mut b = self.connect(i).await?;
            let vars = b
                .query_rows("SELECT @@read_only")
                .await
                .with_context(|| format!("{}: SELECT @@read_only", self.specs[i].name))?;
            let links = b.query_rows("SHOW ALL SLAVES STATUS").await?;
            let replicating = (0..links.rows.len()).any(|r| {
                links.get(r, "Slave_IO_Running") != Some("No")
                    || links.get(r, "Slave_SQL_Running") == Some("Yes")
            });
            if vars.get(0, "@@read_only") == Some("0") && !replicating {
                return Ok(Err(format!(
                    "{} is already writable and replicating from nobody",
                    self.specs[i].name
                )));
            }
        }
        let name = &self.specs[node].name;
        let mut b = self.connect(node).await?;
        // Everything it received must be applied before it takes writes.
        let status = b.query_rows("SHOW ALL SLAVES STATUS").await?;
        let received = GtidPos::parse(status.get(0, "Gtid_IO_Pos").unwrap_or(""))?;
        self.wait_applied(&mut b, &received)
            .await
            .context("not promoted")?;
        make_primary(&mut b, name).await?;
        tracing::warn!(data_host = %self.data_host, node = %name, applied = %received, "promoted: read_only=OFF, replication reset");
        let mut failed = Vec::new();
        for &r in repoint {
            let result = async {
                let mut c = self.connect(r).await?;
                self.change_master(&mut c, node, false).await
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::warn!(data_host = %self.data_host, node = %self.specs[r].name, primary = %name, "replica pointed at the new primary")
                }
                Err(e) => failed.push(format!("{}: {e:#}", self.specs[r].name)),
            }
        }
        Ok(Ok(failed))
    }

    /// A planned switch of the primary from `old` to `target` with no
    /// write lost: `old` goes read-only, `target` applies everything `old`
    /// wrote, is promoted, and `old` and `others` follow it. If `target`
    /// does not catch up within `apply_timeout`, `old` is made writable
    /// again and nothing else changed.
    pub async fn switchover(
        &self,
        live: &[usize],
        old: usize,
        target: usize,
        others: &[usize],
    ) -> Result<std::result::Result<(), String>> {
        let Some(_locks) = self.lock_majority(live).await? else {
            return Ok(Err(
                "another sqlproxyd holds the failover lock on the nodes".into(),
            ));
        };
        let (old_name, name) = (&self.specs[old].name, &self.specs[target].name);
        let mut o = self.connect(old).await?;
        o.run(COM_QUERY, b"SET GLOBAL read_only = ON")
            .await
            .with_context(|| format!("{old_name}: SET GLOBAL read_only = ON"))?;
        let written = o.query_rows("SELECT @@gtid_binlog_pos").await?;
        let written = GtidPos::parse(written.scalar().unwrap_or(""))?;
        let mut t = self.connect(target).await?;
        let caught_up = self.wait_applied(&mut t, &written).await;
        if let Err(e) = caught_up {
            // Back as it was: the old primary takes writes again.
            let undo = o.run(COM_QUERY, b"SET GLOBAL read_only = OFF").await;
            if let Err(u) = undo {
                tracing::error!(data_host = %self.data_host, node = %old_name, "cannot make the old primary writable again: {u:#}");
            }
            return Err(e.context(format!(
                "switchover to {name} abandoned; {old_name} stays primary"
            )));
        }
        make_primary(&mut t, name).await?;
        tracing::warn!(data_host = %self.data_host, old = %old_name, primary = %name, applied = %written, "switchover: promoted");
        self.change_master(&mut o, target, true).await?;
        for &r in others {
            let mut c = self.connect(r).await?;
            self.change_master(&mut c, target, false).await?;
        }
        Ok(Ok(()))
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

    /// `GET_LOCK` on the live nodes in order, stopping at the first
    /// refusal; `None` when that leaves less than a majority. The locks
    /// last as long as the returned connections.
    async fn lock_majority(&self, live: &[usize]) -> Result<Option<Vec<Backend>>> {
        let name = lock_name(&self.data_host);
        let mut held = Vec::new();
        for &i in live {
            let Ok(mut b) = self.connect(i).await else {
                break;
            };
            let got = b
                .query_rows(&format!("SELECT GET_LOCK('{}', 0)", sql_escape(&name)))
                .await
                .ok()
                .and_then(|r| r.scalar().map(str::to_owned));
            if got.as_deref() != Some("1") {
                break;
            }
            held.push(b);
        }
        if held.len() * 2 > live.len() {
            Ok(Some(held))
        } else {
            Ok(None)
        }
    }
}

/// Turns a caught-up replica into a primary: no replication, writable.
async fn make_primary(b: &mut Backend, name: &str) -> Result<()> {
    for sql in [
        "STOP ALL SLAVES",
        "RESET SLAVE ALL",
        "SET GLOBAL read_only = OFF",
    ] {
        b.run(COM_QUERY, sql.as_bytes())
            .await
            .with_context(|| format!("{name}: {sql}"))?;
    }
    Ok(())
}

/// A connection to `spec` for the proxy's own queries.
pub async fn connect_as(
    spec: &NodeSpec,
    node: usize,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<Backend> {
    let login = Credentials {
        user,
        password,
        database: None,
        capabilities: Capabilities::empty(),
        collation: UTF8MB4_GENERAL_CI,
    };
    Backend::connect(node, spec.addr, &login, timeout).await
}

const COM_QUERY: u8 = 0x03;

/// The name of the failover lock of a data host (MariaDB allows 64 chars).
fn lock_name(data_host: &str) -> String {
    format!("hastack_failover.{data_host}")
        .chars()
        .take(64)
        .collect()
}

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
        assert_eq!(lock_name("dh1"), "hastack_failover.dh1");
        assert_eq!(lock_name(&"x".repeat(100)).len(), 64);
    }
}
