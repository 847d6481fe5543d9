//! sqlproxyd as the shared runtime drives it: the client listener, the
//! sessions, reload and drain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hastack_rt::{ActionError, ActionFuture, Daemon, Page, PageRequest, StartContext};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, Admin};
use crate::config::Config;
use crate::ha::cluster::View;
use crate::ha::dnindex::Store;
use crate::ha::health;
use crate::ha::monitor::Monitor;
use crate::metrics::Metrics;
use crate::session::limits::{Admission, Refusal};
use crate::session::registry::Registry;
use crate::session::{Accepted, Session};
use crate::topology::{LiveTopology, Topology};

pub struct Sqlproxyd {
    config: Config,
    topology: LiveTopology,
    metrics: Metrics,
    stop: CancellationToken,
    sessions: TaskTracker,
    listen: SocketAddr,
    /// One heartbeat per data host, by name; kept across reloads that do
    /// not change the data host.
    monitors: HashMap<String, Monitor>,
    registry: Arc<Registry>,
    /// Client connections per proxy and per user, across reloads.
    admission: Arc<Admission>,
    /// state_dir, locked for this process: the one writer of its index.
    store: Arc<Store>,
}

impl Daemon for Sqlproxyd {
    type Config = Config;
    const NAME: &'static str = "sqlproxyd";
    const ABOUT: &'static str =
        "MySQL-protocol proxy with read/write splitting and safe write-node failover";
    const DEFAULT_ADMIN_PORT: u16 = 9166;
    const EXAMPLE_CONFIG: &'static str = include_str!("../../../configs/sqlproxyd.yaml");
    const CONFIG_HELP: &'static str = "listen (default 127.0.0.1:8066) for applications; admin_listen (default 127.0.0.1:9066) for the MySQL-protocol admin commands (show @@help lists them); proxy_protocol and proxy_protocol_from (PROXY protocol v1/v2 headers: required from the balancers listed in proxy_protocol_from, refused from every other peer); tls (cert, key: PEM files; TLS is then offered to clients) and require_tls; default_auth_plugin (mysql_native_password or caching_sha2_password: the login plugin the handshake names; answers with either are accepted); max_allowed_packet (16M, 64MiB, 1G); max_connections (default 2048: ERR 1040 past it), max_user_connections (default 0, no limit: ERR 1203 past it), max_session_state (default 1M: bytes of remembered session SETs); read_only_functions (stored functions that only read); state_dir (holds dnindex.properties; locked by one sqlproxyd: a second on the same directory does not start).
users: name, password or password_hash (a mysql_native_password hash, '*' and 40 hex digits; their caching_sha2_password logins need TLS), schemas (empty: all), read_only (enforced by the backends: SET SESSION TRANSACTION READ ONLY), max_user_connections, auth_plugin (the account's own plugin: answers with the other are switched to it).
admin_users: the admin port's own accounts: name, password or password_hash, level (monitor: show @@...; admin: also switch, kill, reload). Application users (users) get 1227 for every admin command.
data_hosts: name, balance (primary 0, replicas_and_standby 1, any 2, replicas 3 - Mycat's numbers accepted), switch_type (none -1, heartbeat 1, replication 2), user and password (the account client traffic runs as on the backends), read_only_user and read_only_password (the account read_only users run as: GRANT SELECT, SHOW VIEW only), pool (min, max), read_your_writes, connect_timeout, allow_public_key_retrieval (caching_sha2_password full authentication over plain TCP with the server's RSA key; off by default), max_replica_lag (replicas further behind get no reads; Mycat's slaveThreshold), reads_fall_back_to_primary, heartbeat (query, interval, timeout, fail_count, user, password: the monitor account), failover (promote: promote the most advanced replica, or false for Mycat's move-to-the-next-write-node; min_switch_interval; auto_rejoin: point a fenced old primary without errant transactions at the new one; primary_wait; apply_timeout; replication_user, replication_password; quorum: majority (a promotion locks a majority of the configured nodes, and a proxy writes only while the nodes it cannot reach could not be such a majority) or reachable (the nodes this proxy reaches: two-node data hosts fail over, at the risk of two primaries); restore_writable: make a primary that came back read-only, still followed and alone, writable again under the lock), nodes (name, address, role write or read, weight).
High availability: the primary is the live node with read_only=OFF that replicates from nobody, as the backends report it. After fail_count failed heartbeats of the primary, one sqlproxyd (holding the promotion lock, GET_LOCK, on a majority of the configured nodes, for as long as the other proxies' write leases) promotes the replica that received the most, and re-points the others, as a plan whose steps are undone if one fails (journaled in state_dir, recovered at the next start); a proxy whose last round left unreached a majority of the nodes, or that saw the lock held, stops writing (its /health answers 503); the node index goes to state_dir/dnindex.properties (Mycat's format). A returning old primary is fenced with read_only=ON and, with auto_rejoin, made a replica once its GTIDs are a prefix of the new primary's. Admin port: show @@heartbeat, switch @@datasource HOST:INDEX (planned switchover, no write lost); the same over HTTP: POST /actions/switchover?data_host=NAME&node=NODE, with admin_http.auth's credential.
schemas: name (the database of that name on the data host's nodes) and data_host.
import-mycat SERVER_XML SCHEMA_XML writes a Mycat 1.x config's common subset as a sqlproxyd config on stdout and lists what it could not convert on stderr.";

    async fn start(config: Config, ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        // First: a second sqlproxyd on this state_dir must stop here,
        // before it binds or heartbeats anything.
        let store = Arc::new(Store::open(&config.state_dir)?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("listen {}: cannot bind: {e}", config.listen))?;
        let admin_listener = TcpListener::bind(config.admin_listen).await.map_err(|e| {
            anyhow::anyhow!("admin_listen {}: cannot bind: {e}", config.admin_listen)
        })?;
        let metrics = Metrics::register(ctx.registry);
        let mut monitors = HashMap::new();
        let _ = refresh_monitors(&mut monitors, &config, &store, &metrics);
        let topology = LiveTopology::new(Topology::from_config(&config, &monitors, None)?);
        let stop = CancellationToken::new();
        let sessions = TaskTracker::new();
        let registry = Arc::new(Registry::default());
        let admission = Arc::new(Admission::default());
        tokio::spawn(accept_loop(
            listener,
            topology.clone(),
            metrics.clone(),
            stop.clone(),
            sessions.clone(),
            registry.clone(),
            admission.clone(),
        ));
        tokio::spawn(crate::backend::warm::keep_warm(
            topology.current.clone(),
            metrics.clone(),
            stop.clone(),
        ));
        let admin = Admin {
            topology: topology.current.clone(),
            metrics: metrics.clone(),
            registry: registry.clone(),
        };
        if config.admin_users.is_empty() {
            tracing::warn!(
                admin_listen = %config.admin_listen,
                "no admin_users: the admin port refuses every command (1227); add admin_users with level monitor or admin"
            );
        }
        tokio::spawn(admin::serve(
            admin_listener,
            admin,
            stop.clone(),
            sessions.clone(),
        ));
        tracing::info!(listen = %config.listen, "accepting MySQL clients");
        Ok(Sqlproxyd {
            listen: config.listen,
            config,
            topology,
            metrics,
            stop,
            sessions,
            monitors,
            registry,
            admission,
            store,
        })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        if config.listen != self.listen {
            tracing::warn!(running = %self.listen, configured = %config.listen, "listen changes only at restart");
        }
        let mut monitors = std::mem::take(&mut self.monitors);
        let mut stopping = Vec::new();
        let state_dir_changed = config.state_dir != self.config.state_dir;
        // Taken before anything changes: if another sqlproxyd has the new
        // directory, the reload is refused and the old one kept.
        let new_store = if state_dir_changed {
            match Store::open(&config.state_dir) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    self.monitors = monitors;
                    return Err(e);
                }
            }
        } else {
            None
        };
        if state_dir_changed {
            stopping.extend(monitors.drain().map(|(_, m)| m));
        }
        // Kept heartbeats read the grants again (a new one reads them at
        // start): a DBA may have granted what was missing.
        for m in monitors.values() {
            m.recheck_grants();
        }
        let store = new_store.clone().unwrap_or_else(|| self.store.clone());
        let (replaced, started) = refresh_monitors(&mut monitors, &config, &store, &self.metrics);
        stopping.extend(replaced);
        let (_, previous) = self.topology.get();
        let fresh = match Topology::from_config(&config, &monitors, Some(&previous)) {
            Ok(t) => t,
            Err(e) => {
                // Refused: sessions keep routing by the heartbeats they
                // have, which go on; the ones just started stop.
                for name in &started {
                    monitors.remove(name);
                }
                for m in stopping {
                    monitors.insert(m.config.name.clone(), m);
                }
                self.monitors = monitors;
                return Err(e);
            }
        };
        if let Some(s) = new_store {
            self.store = s;
        }
        self.monitors = monitors;
        let kept_pools: Vec<_> = fresh.data_hosts.iter().map(|h| h.pool.clone()).collect();
        // Sessions see it at their next command and follow it (session.rs).
        self.topology.publish(fresh);
        // Pools the new topology did not keep: nobody takes from them any
        // more, so their idle connections close now.
        for old in &previous.data_hosts {
            if !kept_pools.iter().any(|p| Arc::ptr_eq(p, &old.pool)) {
                old.pool.clear();
            }
        }
        // Only now: a session that has not looked yet still routes by a
        // heartbeat that runs, not by a stopped one's last view.
        drop(stopping);
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let c = &self.config;
        let data_hosts: Vec<_> = c
            .data_hosts
            .iter()
            .map(|h| {
                let view = self.monitors.get(&h.name).map(|m| m.view.borrow().clone());
                let grants = self.monitors.get(&h.name).map(|m| m.grants.borrow().clone());
                let nodes: Vec<_> = h
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let v = view.as_ref().and_then(|v| v.nodes.get(i));
                        let g = grants.as_ref().and_then(|g| g.get(i)).map(|g| g.to_json());
                        json!({
                            "name": n.name, "address": n.address, "role": n.role, "weight": n.weight,
                            "state": v.map(|v| v.state), "reason": v.map(|v| &v.reason),
                            "readable": v.map(|v| v.readable), "lag_seconds": v.and_then(|v| v.lag),
                            "failed_heartbeats": v.map(|v| v.failures), "last_ok": v.and_then(|v| v.last_ok.as_ref()),
                            "grants": g,
                        })
                    })
                    .collect();
                let primary = view.as_ref().and_then(|v| v.primary).and_then(|p| h.nodes.get(p)).map(|n| &n.name);
                json!({
                    "name": h.name, "balance": h.balance, "switch_type": h.switch_type,
                    "primary": primary,
                    "no_primary": view.as_ref().filter(|v| v.primary.is_none()).map(|v| &v.no_primary),
                    "heartbeat_rounds": view.as_ref().map(|v| v.round),
                    "quorum": h.failover.quorum,
                    "cut_off": view.as_ref().and_then(|v| v.cut_off.as_ref()),
                    "last_operation": view.as_ref().and_then(|v| v.last_operation.as_ref()),
                    "nodes": nodes,
                })
            })
            .collect();
        json!({
            "listen": self.listen,
            "admin_listen": c.admin_listen,
            "serving": !self.stop.is_cancelled(),
            "client_connections": self.metrics.client_connections.get(),
            "limits": {
                "max_connections": c.max_connections,
                "max_user_connections": c.max_user_connections,
                "max_session_state_bytes": c.max_session_state.0,
                "open_connections": self.admission.open(),
            },
            "sessions": self.registry.snapshot().into_iter().map(|(id, v)| json!({
                "id": id, "user": v.user, "peer": v.peer,
                "state_bytes": v.memory.state_bytes, "buffer_bytes": v.memory.buffer_bytes,
            })).collect::<Vec<_>>(),
            "users": c.users.iter().map(|u| json!({ "name": u.name, "read_only": u.read_only })).collect::<Vec<_>>(),
            "data_hosts": data_hosts,
            "schemas": c.schemas.iter().map(|s| json!({ "name": s.name, "data_host": s.data_host })).collect::<Vec<_>>(),
        })
    }

    /// `GET /health`: 200 or 503 for checkd's probe ([`crate::ha::health`]).
    fn page(&self, req: &PageRequest) -> Option<Page> {
        if req.path != "/health" {
            return None;
        }
        let views: Vec<(String, View)> = self
            .config
            .data_hosts
            .iter()
            .filter_map(|h| {
                Some((
                    h.name.clone(),
                    self.monitors.get(&h.name)?.view.borrow().clone(),
                ))
            })
            .collect();
        let (status, body) = health::health(
            !self.stop.is_cancelled(),
            views.iter().map(|(n, v)| (n.as_str(), v)),
        );
        Some(Page {
            status,
            ..Page::ok("text/plain; charset=utf-8", body)
        })
    }

    /// `POST /actions/switchover?data_host=dh1&node=db-3`: a planned
    /// switchover, as `switch @@datasource dh1:db-3` on the admin port.
    fn action(&self, name: &str, args: Vec<(String, String)>) -> ActionFuture {
        let (_, t) = self.topology.get();
        let want = args
            .iter()
            .find(|(k, _)| k == "data_host")
            .map(|(_, v)| v.as_str());
        let host = match want {
            Some(n) => t.data_hosts.iter().find(|h| h.name == n).cloned(),
            None if t.data_hosts.len() == 1 => t.data_hosts.first().cloned(),
            None => None,
        };
        let node = args
            .iter()
            .find(|(k, _)| k == "node")
            .map(|(_, v)| v.clone());
        let name = name.to_owned();
        Box::pin(async move {
            if name != "switchover" {
                return Err(ActionError::Unknown(format!(
                    "no action {name:?}; sqlproxyd has: switchover"
                )));
            }
            let host = host.ok_or_else(|| {
                ActionError::BadRequest(
                    "data_host= names no configured data host (needed when there are several)"
                        .into(),
                )
            })?;
            let node = node
                .ok_or_else(|| ActionError::BadRequest("node= (name or index) is needed".into()))?;
            let to = host.node_index(&node).ok_or_else(|| {
                ActionError::BadRequest(format!("data host {} has no node {node:?}", host.name))
            })?;
            match host.switchover(to).await {
                Ok(done) => Ok(
                    json!({ "data_host": host.name, "primary": host.nodes[to].name, "result": done }),
                ),
                Err(e) => Err(ActionError::Conflict(e)),
            }
        })
    }

    async fn shutdown(&mut self) {
        // Stop accepting; sessions end between commands, a reply in flight completes.
        self.stop.cancel();
        self.sessions.close();
        self.sessions.wait().await;
    }
}

/// Starts a heartbeat for each data host that has none or whose config
/// changed; returns those of data hosts changed or no longer configured,
/// to be stopped (by dropping them) once sessions have a topology without
/// them, and the names of the heartbeats it started.
fn refresh_monitors(
    monitors: &mut HashMap<String, Monitor>,
    config: &Config,
    store: &Arc<Store>,
    metrics: &Metrics,
) -> (Vec<Monitor>, Vec<String>) {
    let (kept, replaced): (HashMap<_, _>, HashMap<_, _>) =
        std::mem::take(monitors).into_iter().partition(|(name, m)| {
            config
                .data_hosts
                .iter()
                .any(|h| &h.name == name && *h == m.config)
        });
    *monitors = kept;
    let mut started = Vec::new();
    for h in &config.data_hosts {
        if !monitors.contains_key(&h.name) {
            monitors.insert(
                h.name.clone(),
                Monitor::spawn(h, store.clone(), metrics.clone()),
            );
            started.push(h.name.clone());
        }
    }
    (replaced.into_values().collect(), started)
}

/// ERR 1040 in place of the handshake, for connections past even the
/// overflow (`limits::overflow`); no login, no backend work.
async fn too_many(stream: tokio::net::TcpStream, why: Refusal) {
    use tokio::io::AsyncWriteExt;
    let (code, state, msg) = why.error("");
    let payload = hastack_proto::mysql::packets::err_payload(code, state, &msg);
    let mut buf = bytes::BytesMut::new();
    hastack_proto::mysql::encode(&hastack_proto::mysql::Packet::new(0, payload), &mut buf);
    let mut stream = stream;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = stream.write_all(&buf).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn accept_loop(
    listener: TcpListener,
    topology: LiveTopology,
    metrics: Metrics,
    stop: CancellationToken,
    sessions: TaskTracker,
    registry: Arc<Registry>,
    admission: Arc<Admission>,
) {
    let ids = AtomicU32::new(1);
    loop {
        let (stream, peer) = tokio::select! {
            conn = hastack_rt::net::accept(&listener, "listen") => conn,
            _ = stop.cancelled() => return,
        };
        let (generation, topo) = topology.get();
        let slot = match admission.connect(topo.max_connections) {
            Ok(slot) => slot,
            Err(why) => {
                metrics.refused(why, peer, "");
                sessions.spawn(too_many(stream, why));
                continue;
            }
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let metrics = metrics.clone();
        let stop = stop.clone();
        let registry = registry.clone();
        let live = topology.clone();
        metrics.client_connections.inc();
        metrics.client_connections_total.inc();
        sessions.spawn(async move {
            Session::run(
                Accepted {
                    id,
                    stream,
                    peer,
                    slot,
                },
                topo,
                (live, generation),
                metrics.clone(),
                stop.child_token(),
                registry,
            )
            .await;
            metrics.client_connections.dec();
        });
    }
}
