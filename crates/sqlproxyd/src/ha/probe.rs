//! What one heartbeat of a node saw: whether it is writable, its GTID
//! positions, and each replication link it has (MariaDB's
//! `SHOW ALL SLAVES STATUS`, one row per connection). Pure: built from the
//! rows the monitor connection read.

use std::net::SocketAddr;

use hastack_proto::mysql::gtid::{GtidPos, GtidState};
use hastack_proto::mysql::rows::Rows;

/// The variables a heartbeat reads, in the order [`Report::from_rows`]
/// expects, ending with whether someone holds `lock` (the data host's
/// promotion lock, [`crate::ha::failover::promotion_lock`]): a proxy that sees it
/// held stops writing at once, because a promotion may be under way.
pub fn vars_query(lock: &str) -> String {
    format!(
        "SELECT @@read_only, @@server_id, @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_binlog_state, IS_USED_LOCK('{}')",
        lock.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// A heartbeat that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub read_only: bool,
    pub server_id: u32,
    /// Transactions in this node's binlog (its own and, with
    /// log_slave_updates, replicated ones).
    pub gtid_binlog_pos: GtidPos,
    pub gtid_current_pos: GtidPos,
    /// The last GTID of each server in each domain of its binlog.
    pub gtid_binlog_state: GtidState,
    /// `None` when the monitor account may not read replication status.
    pub links: Option<Vec<Link>>,
    /// Someone holds the data host's promotion lock on this node.
    pub promotion_locked: bool,
}

/// One replication connection of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub master_host: String,
    pub master_port: u16,
    pub io: IoThread,
    pub sql_running: bool,
    pub seconds_behind: Option<u64>,
    /// `Last_IO_Errno`, `Last_IO_Error` when set.
    pub io_error: Option<(u32, String)>,
    pub sql_error: Option<String>,
    /// The last GTID received into the relay log.
    pub gtid_io_pos: GtidPos,
}

/// `Slave_IO_Running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoThread {
    Yes,
    Connecting,
    No,
}

impl Link {
    /// A link still doing something (a stopped one is history).
    pub fn active(&self) -> bool {
        self.io != IoThread::No || self.sql_running
    }

    /// Whether this link's master is the node at `addr` named `name`.
    pub fn follows(&self, name: &str, addr: SocketAddr) -> bool {
        self.master_port == addr.port()
            && (self.master_host.parse().ok() == Some(addr.ip()) || self.master_host == name)
    }
}

impl Report {
    /// From [`VARS`] and the replication status rows (`None` when
    /// they could not be read).
    pub fn from_rows(vars: &Rows, links: Option<&Rows>) -> Result<Report, String> {
        let v = |i: usize| vars.rows.first().and_then(|r| r.get(i)?.as_deref());
        let gtid = |i: usize| GtidPos::parse(v(i).unwrap_or("")).map_err(|e| e.to_string());
        Ok(Report {
            read_only: matches!(v(0), Some("1" | "ON")),
            server_id: v(1).and_then(|s| s.parse().ok()).unwrap_or(0),
            gtid_binlog_pos: gtid(2)?,
            gtid_current_pos: gtid(3)?,
            gtid_binlog_state: GtidState::parse(v(4).unwrap_or("")).map_err(|e| e.to_string())?,
            links: links.map(parse_links).transpose()?,
            promotion_locked: v(5).is_some(),
        })
    }

    /// The links that are running or trying to.
    pub fn active_links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().flatten().filter(|l| l.active())
    }
}

fn parse_links(rows: &Rows) -> Result<Vec<Link>, String> {
    (0..rows.rows.len())
        .map(|r| {
            let get = |c: &str| rows.get(r, c).unwrap_or("");
            let errno: u32 = get("Last_IO_Errno").parse().unwrap_or(0);
            Ok(Link {
                master_host: get("Master_Host").to_owned(),
                master_port: get("Master_Port").parse().unwrap_or(0),
                io: match get("Slave_IO_Running") {
                    "Yes" => IoThread::Yes,
                    "Connecting" | "Preparing" => IoThread::Connecting,
                    _ => IoThread::No,
                },
                sql_running: get("Slave_SQL_Running") == "Yes",
                seconds_behind: rows
                    .get(r, "Seconds_Behind_Master")
                    .and_then(|s| s.parse().ok()),
                io_error: (errno != 0).then(|| (errno, get("Last_IO_Error").to_owned())),
                sql_error: Some(get("Last_SQL_Error"))
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned),
                gtid_io_pos: GtidPos::parse(get("Gtid_IO_Pos")).map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(columns: &[&str], values: &[&[Option<&str>]]) -> Rows {
        Rows {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: values
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
                .collect(),
        }
    }

    #[test]
    fn a_replica_as_mariadb_reports_it() {
        let vars = rows(
            &[
                "@@read_only",
                "@@server_id",
                "@@gtid_binlog_pos",
                "@@gtid_current_pos",
                "@@gtid_binlog_state",
            ],
            &[&[
                Some("1"),
                Some("2"),
                Some("0-1-7"),
                Some("0-1-9"),
                Some("0-1-7,0-2-3"),
            ]],
        );
        let links = rows(
            &[
                "Connection_name",
                "Master_Host",
                "Master_Port",
                "Slave_IO_Running",
                "Slave_SQL_Running",
                "Seconds_Behind_Master",
                "Last_IO_Errno",
                "Last_IO_Error",
                "Last_SQL_Error",
                "Gtid_IO_Pos",
            ],
            &[&[
                Some(""),
                Some("127.0.0.1"),
                Some("3311"),
                Some("Connecting"),
                Some("Yes"),
                None,
                Some("2003"),
                Some("error reconnecting to master"),
                Some(""),
                Some("0-1-9"),
            ]],
        );
        let r = Report::from_rows(&vars, Some(&links)).unwrap();
        assert!(r.read_only);
        assert_eq!(r.server_id, 2);
        assert_eq!(r.gtid_current_pos.to_string(), "0-1-9");
        assert!(r.gtid_binlog_state.holds(hastack_proto::mysql::gtid::Gtid {
            domain: 0,
            server: 2,
            seq: 3
        }));
        let l = &r.links.as_ref().unwrap()[0];
        assert_eq!(l.io, IoThread::Connecting);
        assert!(l.sql_running && l.active());
        assert_eq!(l.seconds_behind, None);
        assert_eq!(l.io_error.as_ref().unwrap().0, 2003);
        assert!(l.follows("db-1", "127.0.0.1:3311".parse().unwrap()));
        assert!(!l.follows("db-1", "127.0.0.1:3312".parse().unwrap()));
        let by_name = Link {
            master_host: "db-1".into(),
            ..l.clone()
        };
        assert!(by_name.follows("db-1", "10.0.0.1:3311".parse().unwrap()));
        assert!(!by_name.follows("db-2", "10.0.0.1:3311".parse().unwrap()));
    }

    #[test]
    fn a_primary_has_no_links_and_unknown_status_is_none() {
        let vars = rows(
            &["a", "b", "c", "d"],
            &[&[Some("0"), Some("1"), Some(""), Some("")]],
        );
        let r = Report::from_rows(&vars, Some(&Rows::default())).unwrap();
        assert!(!r.read_only && r.links == Some(vec![]));
        let r = Report::from_rows(&vars, None).unwrap();
        assert_eq!(r.links, None);
        let bad = rows(
            &["a", "b", "c", "d"],
            &[&[Some("0"), Some("1"), Some("x"), None]],
        );
        assert!(Report::from_rows(&bad, None).is_err());
    }
}
