//! The MySQL-protocol admin port (Mycat's 9066): `show @@datasource`,
//! `show @@connection`, `show @@backend`, `show @@session`, `kill
//! @@connection`, `reload @@config`, for DBAs who script against Mycat's.
//! Its accounts are `admin_users`: level `monitor` runs `show`, level
//! `admin` also what changes state; application users log in and get 1227.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hastack_proto::mysql::codec::PacketCodec;
use hastack_proto::mysql::packets::{text_result_set, Ok as OkPacket, Status};
use hastack_proto::mysql::Packet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AdminLevel, Role};
use crate::metrics::{Metrics, NodeLabels, NodeRouteLabels};
use crate::session::client_stream::{ClientStream, ClientWire};
use crate::session::frontend::{self, send_err};
use crate::session::registry::Registry;
use crate::topology::{DataHost, Topology};

/// What the admin port reads.
#[derive(Clone)]
pub struct Admin {
    pub topology: Arc<RwLock<Arc<Topology>>>,
    pub metrics: Metrics,
    pub registry: Arc<Registry>,
}

/// Admin sessions get ids from here, far above client sessions'.
static ADMIN_IDS: AtomicU32 = AtomicU32::new(1 << 30);

pub async fn serve(
    listener: TcpListener,
    admin: Admin,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            conn = hastack_rt::net::accept(&listener, "admin_listen") => conn,
            _ = stop.cancelled() => return,
        };
        let admin = admin.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            if let Err(e) = session(stream, peer, admin, stop).await {
                tracing::debug!(%peer, "admin session ended: {e:#}");
            }
        });
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    admin: Admin,
    stop: CancellationToken,
) -> Result<()> {
    let mut wire = ClientWire::new(ClientStream::Plain(stream), PacketCodec::new(1 << 20));
    let topology = admin
        .topology
        .read()
        .map(|t| t.clone())
        .map_err(|_| anyhow::anyhow!("topology lock poisoned"))?;
    let id = ADMIN_IDS.fetch_add(1, Ordering::Relaxed);
    let login = tokio::time::timeout(
        frontend::LOGIN_TIMEOUT,
        frontend::login_among(
            &mut wire,
            id,
            &topology,
            &topology.admin_port_users,
            peer,
            |_| None,
            // The admin port runs no backend statements: no database to check.
            false,
        ),
    );
    let Some(client) = login
        .await
        .map_err(|_| anyhow::anyhow!("no login within {:?}", frontend::LOGIN_TIMEOUT))??
    else {
        return Ok(());
    };
    loop {
        let packet = tokio::select! {
            p = wire.next() => p,
            _ = stop.cancelled() => return Ok(()),
        };
        let Some(packet) = packet.transpose()? else {
            return Ok(());
        };
        let seq = packet.seq.wrapping_add(1);
        match packet.payload.first() {
            Some(0x01) => return Ok(()),
            Some(0x0e) => send_ok(&mut wire, seq, 0, "").await?,
            Some(0x03) => {
                let sql = String::from_utf8_lossy(&packet.payload[1..]).into_owned();
                match run(&admin, &sql, client.user.admin_level) {
                    Ok(Reply::Rows(columns, rows)) => {
                        let payloads =
                            text_result_set(&columns, &rows, Status::SERVER_STATUS_AUTOCOMMIT);
                        send_all(&mut wire, seq, payloads).await?;
                    }
                    Ok(Reply::Named(columns, rows)) => {
                        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                        let payloads =
                            text_result_set(&columns, &rows, Status::SERVER_STATUS_AUTOCOMMIT);
                        send_all(&mut wire, seq, payloads).await?;
                    }
                    Ok(Reply::Done(affected, info)) => {
                        send_ok(&mut wire, seq, affected, &info).await?
                    }
                    Ok(Reply::Switch(host, node)) => match host.switchover(node).await {
                        Ok(info) => send_ok(&mut wire, seq, 0, &info).await?,
                        Err(e) => send_err(&mut wire, seq, 1105, "HY000", &e).await?,
                    },
                    Err((code, state, msg)) => send_err(&mut wire, seq, code, state, &msg).await?,
                }
            }
            _ => {
                send_err(
                    &mut wire,
                    seq,
                    1047,
                    "08S01",
                    "Unknown command on the admin port",
                )
                .await?
            }
        }
    }
}

async fn send_all(wire: &mut ClientWire, first_seq: u8, payloads: Vec<Bytes>) -> Result<()> {
    let mut seq = first_seq;
    for p in payloads {
        wire.feed(Packet::new(seq, p)).await?;
        seq = seq.wrapping_add(1);
    }
    wire.flush().await?;
    Ok(())
}

async fn send_ok(wire: &mut ClientWire, seq: u8, affected_rows: u64, info: &str) -> Result<()> {
    let ok = OkPacket {
        affected_rows,
        status: Status::SERVER_STATUS_AUTOCOMMIT,
        info: info.to_owned(),
        ..OkPacket::default()
    };
    wire.send(Packet::new(seq, ok.to_payload())).await?;
    Ok(())
}

type Rows = Vec<Vec<Option<String>>>;

enum Reply {
    Rows(Vec<&'static str>, Rows),
    /// Rows whose column names come from the statement.
    Named(Vec<String>, Rows),
    /// `switch @@datasource`: run asynchronously, then an OK or ERR.
    Switch(Arc<DataHost>, usize),
    Done(u64, String),
}

type Refusal = (u16, &'static str, String);

const HELP: &[(&str, &str)] = &[
    ("show @@help", "this list"),
    ("show @@version", "sqlproxyd's version"),
    (
        "show @@datasource",
        "every node: role in use, backend connections, commands routed, state and why",
    ),
    (
        "switch @@datasource host:index",
        "planned switchover: make that node the primary with no write lost",
    ),
    (
        "show @@heartbeat",
        "every node's last heartbeat: failures in a row, state, lag, why",
    ),
    ("show @@connection", "client sessions"),
    (
        "show @@session",
        "client sessions and the backend nodes they use",
    ),
    ("show @@backend", "backend connections, by session"),
    (
        "kill @@connection id[,id...]",
        "close client sessions (at their next command)",
    ),
    ("reload @@config", "reload the config file (as SIGHUP)"),
];

/// The level a normalized admin statement needs: none for what client
/// libraries ask right after connecting, admin for what changes state
/// (and anything not known to be harmless), monitor for `show`.
fn required_level(cmd: &str) -> Option<AdminLevel> {
    if is_connect_query(cmd) {
        return None;
    }
    let reads = cmd.starts_with("show @@");
    Some(if reads {
        AdminLevel::Monitor
    } else {
        AdminLevel::Admin
    })
}

/// The 1227 for a command that needs `needed`, as MariaDB words it.
fn denied(needed: AdminLevel) -> Refusal {
    (
        1227,
        "42000",
        format!(
            "Access denied; you need (at least one of) the {} privilege(s) for this operation (an admin_users account of level {})",
            needed.name().to_ascii_uppercase(),
            needed.name()
        ),
    )
}

/// Runs one admin statement for a user of `level` (`None`: an application
/// user, who may only ask what client libraries ask at connect).
fn run(admin: &Admin, sql: &str, level: Option<AdminLevel>) -> Result<Reply, Refusal> {
    let cmd: String = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let needed = required_level(&cmd);
    if let Some(n) = needed.filter(|_| level < needed) {
        return Err(denied(n));
    }
    if let Some(vars) = connect_variables(&cmd, admin) {
        return Ok(vars);
    }
    match cmd.as_str() {
        "show @@help" => Ok(Reply::Rows(
            vec!["STATEMENT", "DESCRIPTION"],
            HELP.iter()
                .map(|(s, d)| vec![Some((*s).to_owned()), Some((*d).to_owned())])
                .collect(),
        )),
        "show @@version" => Ok(Reply::Rows(
            vec!["VERSION"],
            vec![vec![Some(format!(
                "hastack sqlproxyd {}",
                env!("CARGO_PKG_VERSION")
            ))]],
        )),
        "show @@datasource" => Ok(datasource(admin)),
        "show @@heartbeat" => Ok(heartbeat(admin)),
        "show @@connection" => Ok(connections(admin)),
        "show @@session" => Ok(sessions(admin)),
        "show @@backend" => Ok(backends(admin)),
        "reload @@config" => {
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP)
                .map_err(|e| (1105, "HY000", format!("cannot signal a reload: {e}")))?;
            Ok(Reply::Done(
                0,
                "reload requested; the result is logged and shown in /status".into(),
            ))
        }
        _ => {
            if let Some(target) = cmd.strip_prefix("switch @@datasource ") {
                let (host, node) = resolve_node(admin, target)?;
                return Ok(Reply::Switch(host, node));
            }
            if let Some(ids) = cmd.strip_prefix("kill @@connection") {
                let ids: Result<Vec<u32>, _> =
                    ids.split(',').map(|i| i.trim().parse::<u32>()).collect();
                let ids = ids.map_err(|_| {
                    (
                        1064,
                        "42000",
                        "expected kill @@connection id[,id...]".to_owned(),
                    )
                })?;
                let killed = ids.iter().filter(|&&id| admin.registry.kill(id)).count();
                return Ok(Reply::Done(killed as u64, String::new()));
            }
            Err((
                1064,
                "42000",
                format!(
                    "unsupported on the admin port: {}; try show @@help",
                    sql.trim()
                ),
            ))
        }
    }
}

/// The variable names of `select @@a, @@b [limit 1]`, or `None`.
fn connect_query_names(cmd: &str) -> Option<Vec<&str>> {
    let list = cmd.strip_prefix("select ")?;
    let list = list.strip_suffix(" limit 1").unwrap_or(list);
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    names.iter().all(|n| n.starts_with("@@")).then_some(names)
}

fn is_connect_query(cmd: &str) -> bool {
    connect_query_names(cmd).is_some()
}

/// `SELECT @@a, @@b [LIMIT 1]`: what client libraries ask right after
/// connecting (the CLI its version comment, the Rust and Java drivers
/// max_allowed_packet and friends). Unknown variables are NULL.
fn connect_variables(cmd: &str, admin: &Admin) -> Option<Reply> {
    let names = connect_query_names(cmd)?;
    let max_packet = admin
        .topology
        .read()
        .map(|t| t.max_allowed_packet)
        .unwrap_or_default();
    let row = names
        .iter()
        .map(
            |n| match n.trim_start_matches("@@").trim_start_matches("session.") {
                "version_comment" => s("hastack sqlproxyd admin"),
                "version" => s(crate::topology::DEFAULT_SERVER_VERSION),
                "max_allowed_packet" => s(max_packet),
                "autocommit" => s(1),
                _ => None,
            },
        )
        .collect();
    Some(Reply::Named(
        names.iter().map(|n| (*n).to_owned()).collect(),
        vec![row],
    ))
}

/// `dh1:2` or `dh1:db-3` → the data host and node index.
fn resolve_node(admin: &Admin, target: &str) -> Result<(Arc<DataHost>, usize), Refusal> {
    let usage = || {
        (
            1064,
            "42000",
            "expected switch @@datasource <data host>:<node index or name>".to_owned(),
        )
    };
    let (host, node) = target.trim().split_once(':').ok_or_else(usage)?;
    let topology = admin
        .topology
        .read()
        .map(|t| t.clone())
        .map_err(|_| (1105, "HY000", "topology unavailable".to_owned()))?;
    let h = topology
        .data_hosts
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(host.trim()))
        .ok_or_else(|| (1105, "HY000", format!("no data host {host:?}")))?;
    let i = h
        .node_index(node.trim())
        .or_else(|| {
            h.nodes
                .iter()
                .position(|n| n.name.eq_ignore_ascii_case(node.trim()))
        })
        .ok_or_else(|| {
            (
                1105,
                "HY000",
                format!("data host {} has no node {node:?}", h.name),
            )
        })?;
    Ok((h.clone(), i))
}

fn s(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// Mycat's columns: DATANODE NAME TYPE HOST PORT W/R ACTIVE IDLE SIZE EXECUTE READ_LOAD WRITE_LOAD.
fn datasource(admin: &Admin) -> Reply {
    let topology = admin.topology.read().map(|t| t.clone()).ok();
    let mut rows = Vec::new();
    for host in topology.iter().flat_map(|t| t.data_hosts.iter()) {
        let view = host.view.borrow().clone();
        let writer = view.primary;
        for (i, n) in host.nodes.iter().enumerate() {
            let labels = NodeLabels::new(&host.name, &n.name);
            let routed = |route: &'static str| {
                admin
                    .metrics
                    .backend_commands
                    .get_or_create_owned(&NodeRouteLabels {
                        data_host: host.name.clone(),
                        node: n.name.clone(),
                        route,
                    })
                    .get()
            };
            let (reads, writes) = (routed("read"), routed("write"));
            let open = admin
                .metrics
                .backend_connections
                .get_or_create_owned(&labels)
                .get();
            let idle = host.pool.idle(i);
            let active = (open.max(0) as usize).saturating_sub(idle);
            let wr = if Some(i) == writer {
                "W"
            } else if n.role == Role::Write {
                "W(standby)"
            } else {
                "R"
            };
            rows.push(vec![
                s(&host.name),
                s(&n.name),
                s("mysql"),
                s(n.addr.ip()),
                s(n.addr.port()),
                s(wr),
                s(active),
                s(idle),
                s(host.pool_max),
                s(reads + writes),
                s(reads),
                s(writes),
                s(state_name(view.nodes.get(i).map(|v| v.state))),
                view.nodes.get(i).map(|v| v.reason.clone()),
                // The data host's last promotion, switchover or rejoin run
                // by this proxy, on each of its rows.
                view.last_operation.as_ref().map(last_operation),
            ]);
        }
    }
    Reply::Rows(
        vec![
            "DATANODE",
            "NAME",
            "TYPE",
            "HOST",
            "PORT",
            "W/R",
            "ACTIVE",
            "IDLE",
            "SIZE",
            "EXECUTE",
            "READ_LOAD",
            "WRITE_LOAD",
            "STATE",
            "REASON",
            "LAST_OPERATION",
        ],
        rows,
    )
}

/// `switchover rolled_back at 2026-12-01T10:00:00Z: failed at db-2: SET
/// GLOBAL read_only = OFF: ...`.
fn last_operation(o: &crate::ha::plan::Outcome) -> String {
    let mut out = format!("{} {} at {}", o.kind, o.result, o.at);
    if let Some(step) = &o.failed_step {
        out.push_str(&format!(": failed at {step}"));
    }
    if let Some(e) = &o.error {
        out.push_str(&format!(": {e}"));
    }
    if !o.rollback_errors.is_empty() {
        out.push_str(&format!("; NOT undone: {}", o.rollback_errors.join("; ")));
    }
    out
}

fn state_name(state: Option<crate::ha::cluster::State>) -> String {
    state
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Mycat's columns NAME TYPE HOST PORT RS_CODE RETRY STATUS TIMEOUT
/// EXECUTE_TIME LAST_ACTIVE_TIME STOP, then hastack's LAG, REASON and
/// GRANTS (what the monitor and replication accounts lack on that node).
/// RS_CODE is Mycat's: 1 ok, -1 error, 0 not checked yet.
fn heartbeat(admin: &Admin) -> Reply {
    let topology = admin.topology.read().map(|t| t.clone()).ok();
    let mut rows = Vec::new();
    for host in topology.iter().flat_map(|t| t.data_hosts.iter()) {
        let view = host.view.borrow().clone();
        let grants = host.grants.borrow().clone();
        for (i, n) in host.nodes.iter().enumerate() {
            let Some(v) = view.nodes.get(i) else { continue };
            let rs_code = match v.state {
                crate::ha::cluster::State::Unknown => 0,
                crate::ha::cluster::State::Down => -1,
                _ if v.failures > 0 => -1,
                _ => 1,
            };
            rows.push(vec![
                s(&n.name),
                s("mysql"),
                s(n.addr.ip()),
                s(n.addr.port()),
                s(rs_code),
                s(v.failures),
                s(state_name(Some(v.state))),
                s(host.heartbeat_timeout.as_millis()),
                v.probe_ms.map(|ms| ms.to_string()),
                v.last_ok.clone(),
                s("false"),
                v.lag.map(|l| l.to_string()),
                s(&v.reason),
                grants.get(i).map(|g| g.summary()),
            ]);
        }
    }
    Reply::Rows(
        vec![
            "NAME",
            "TYPE",
            "HOST",
            "PORT",
            "RS_CODE",
            "RETRY",
            "STATUS",
            "TIMEOUT",
            "EXECUTE_TIME",
            "LAST_ACTIVE_TIME",
            "STOP",
            "LAG",
            "REASON",
            "GRANTS",
        ],
        rows,
    )
}

fn alive(started: Instant) -> Option<String> {
    s(Instant::now().saturating_duration_since(started).as_secs())
}

fn connections(admin: &Admin) -> Reply {
    let rows = admin
        .registry
        .snapshot()
        .into_iter()
        .map(|(id, v)| {
            vec![
                s(id),
                s(v.peer.ip()),
                s(v.peer.port()),
                s(&v.user),
                v.schema.clone(),
                s(&v.data_host),
                alive(v.started),
                s(v.in_transaction),
                s(v.autocommit),
                s(v.memory.state_bytes),
                s(v.memory.buffer_bytes),
            ]
        })
        .collect();
    Reply::Rows(
        vec![
            "ID",
            "HOST",
            "PORT",
            "USER",
            "SCHEMA",
            "DATA_HOST",
            "ALIVE_TIME(S)",
            "IN_TRANSACTION",
            "AUTOCOMMIT",
            "STATE_BYTES",
            "BUFFER_BYTES",
        ],
        rows,
    )
}

fn sessions(admin: &Admin) -> Reply {
    let node = |n: &Option<(String, SocketAddr)>| n.as_ref().map(|(name, _)| name.clone());
    let rows = admin
        .registry
        .snapshot()
        .into_iter()
        .map(|(id, v)| {
            vec![
                s(id),
                s(&v.user),
                v.schema.clone(),
                node(&v.write_node),
                node(&v.read_node),
                s(v.in_transaction),
                v.pinned.clone(),
                s(v.memory.state_bytes),
                s(v.memory.buffer_bytes),
            ]
        })
        .collect();
    Reply::Rows(
        vec![
            "ID",
            "USER",
            "SCHEMA",
            "WRITE_NODE",
            "READ_NODE",
            "IN_TRANSACTION",
            "PINNED",
            "STATE_BYTES",
            "BUFFER_BYTES",
        ],
        rows,
    )
}

fn backends(admin: &Admin) -> Reply {
    let mut rows = Vec::new();
    for (id, v) in admin.registry.snapshot() {
        for (role, n) in [("W", &v.write_node), ("R", &v.read_node)] {
            if let Some((name, addr)) = n {
                rows.push(vec![
                    s(id),
                    s(&v.data_host),
                    s(name),
                    s(addr.ip()),
                    s(addr.port()),
                    s(role),
                    v.schema.clone(),
                ]);
            }
        }
    }
    Reply::Rows(
        vec![
            "SESSION",
            "DATA_HOST",
            "NODE",
            "HOST",
            "PORT",
            "W/R",
            "SCHEMA",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_needs_its_level_and_application_users_only_connect() {
        use AdminLevel::{Admin, Monitor};
        for (cmd, needed) in [
            ("select @@version_comment limit 1", None),
            ("select @@max_allowed_packet, @@session.autocommit", None),
            ("show @@datasource", Some(Monitor)),
            ("show @@connection", Some(Monitor)),
            ("show @@help", Some(Monitor)),
            ("switch @@datasource dh1:1", Some(Admin)),
            ("kill @@connection 7", Some(Admin)),
            ("reload @@config", Some(Admin)),
            // Not known to be harmless: only for those who may change state.
            ("select * from users", Some(Admin)),
            ("set global read_only = 1", Some(Admin)),
            ("", Some(Admin)),
        ] {
            assert_eq!(required_level(cmd), needed, "{cmd:?}");
        }
        // None (an application user) < monitor < admin.
        assert!(None < Some(Monitor) && Some(Monitor) < Some(Admin));
        let (code, state, msg) = denied(Admin);
        assert_eq!((code, state), (1227, "42000"));
        assert!(
            msg.starts_with("Access denied; you need (at least one of) the ADMIN privilege(s) for this operation"),
            "{msg}"
        );
    }
}
