//! The running form of the config: users by name, data hosts with their
//! nodes and balancing state, schemas by name. Rebuilt on reload and
//! published through [`LiveTopology`]; sessions take the new one at their
//! next command ([`crate::session::follow`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hastack_proto::mysql::auth::{native_hash, parse_native_hash, NativeHash};
use hastack_rt::Secret;

use crate::backend::pool::Pool;
use crate::config::{AdminLevel, AuthPlugin, Balance, Config, Role};
use crate::ha::cluster::View;
use crate::ha::monitor::{Command, Monitor};
use crate::route::balance::{read_candidates, WeightedRoundRobin};
use hastack_proto::mysql::client::Policy as LoginPolicy;
use std::sync::atomic::AtomicUsize;
use tokio::sync::{mpsc, oneshot, watch};

pub struct User {
    pub name: String,
    pub hash: NativeHash,
    /// The password itself, when configured rather than only its hash:
    /// caching_sha2_password's fast path needs it.
    pub password: Option<Secret>,
    /// Schemas the user may use; empty = all.
    pub schemas: Vec<String>,
    pub read_only: bool,
    /// An account of the admin port (`admin_users`), and its level; `None`
    /// for an application user.
    pub admin_level: Option<AdminLevel>,
    /// Sessions this user may have open; 0: no limit.
    pub max_connections: u32,
    /// The plugin this account must log in with (`auth_plugin`); `None`:
    /// either.
    pub auth_plugin: Option<crate::config::AuthPlugin>,
}

impl User {
    pub fn may_use(&self, schema: &str) -> bool {
        self.schemas.is_empty() || self.schemas.iter().any(|s| s == schema)
    }
}

pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub role: Role,
    pub weight: u32,
}

pub struct DataHost {
    pub name: String,
    pub balance: Balance,
    pub read_your_writes: Duration,
    pub connect_timeout: Duration,
    /// How backend logins may authenticate (`allow_public_key_retrieval`).
    pub login_policy: LoginPolicy,
    /// The configured pool size (`pool.max`), shown as Mycat's SIZE.
    pub pool_max: u32,
    /// Idle connections kept ready per node and kind of session (`pool.min`).
    pub pool_min: u32,
    pub user: String,
    pub password: Secret,
    /// `read_only_user` / `read_only_password`, when configured.
    pub read_only_account: Option<(String, Secret)>,
    pub nodes: Vec<Node>,
    rr: Mutex<WeightedRoundRobin>,
    /// Idle logged-in connections to this data host's nodes; the same pool
    /// across reloads that keep the nodes and accounts.
    pub pool: Arc<Pool>,
    /// A fingerprint of the backend accounts (`user`, `read_only_user` and
    /// their passwords): connections logged in as others are not pooled.
    pub accounts: u64,
    /// The heartbeat's latest verdict: primary, readable nodes.
    pub view: watch::Receiver<View>,
    pub primary_wait: Duration,
    pub reads_fall_back_to_primary: bool,
    pub heartbeat_timeout: Duration,
    /// To the heartbeat task: switchover requests.
    pub commands: mpsc::Sender<Command>,
    /// Write commands awaiting their reply, over all sessions.
    pub writes_in_flight: Arc<AtomicUsize>,
    /// What the monitor and replication accounts lack, per node.
    pub grants: watch::Receiver<Vec<crate::ha::grants::check::NodeGrants>>,
}

impl DataHost {
    /// The account a session's backend connections log in as: the
    /// read-only account for a `read_only` user when there is one.
    pub fn account(&self, read_only: bool) -> (&str, &Secret) {
        match &self.read_only_account {
            Some((user, password)) if read_only => (user, password),
            _ => (&self.user, &self.password),
        }
    }

    /// The node writes go to now, if there is one. None once this data
    /// host's heartbeat has stopped (a reload replaced it): its last view
    /// is frozen and may name a primary that a later switchover demoted.
    pub fn writer(&self) -> Option<usize> {
        if self.view.has_changed().is_err() {
            return None;
        }
        self.view.borrow().writer(std::time::Instant::now())
    }

    /// The lease epoch a write is sent under ([`crate::ha::cluster::View::vouches`]).
    pub fn lease_epoch(&self) -> u64 {
        self.view.borrow().lease_epoch
    }

    /// Whether a reply from `node` to a write sent under `epoch` may be
    /// passed on as a success.
    pub fn vouches(&self, epoch: u64, node: usize) -> bool {
        self.view
            .borrow()
            .vouches(epoch, node, std::time::Instant::now())
    }

    /// How connections to this data host's nodes carry over to `new`'s.
    pub fn carry_to(&self, new: &DataHost) -> crate::session::follow::Carry {
        let addrs = |h: &DataHost| h.nodes.iter().map(|n| n.addr).collect::<Vec<_>>();
        crate::session::follow::Carry::between(
            crate::session::follow::Shape {
                addrs: &addrs(self),
                accounts: self.accounts,
            },
            crate::session::follow::Shape {
                addrs: &addrs(new),
                accounts: new.accounts,
            },
        )
    }

    /// The node writes go to, waiting up to `primary_wait` while there is
    /// none (a failover in progress); the error says why there is none.
    pub async fn wait_writer(&self) -> Result<usize, String> {
        // A stopped heartbeat's last view would answer at once, and maybe
        // with a primary a later switchover demoted.
        if self.view.has_changed().is_err() {
            return Err(format!(
                "a reload replaced the heartbeat of data host '{}' during this statement; run it again",
                self.name
            ));
        }
        let mut view = self.view.clone();
        crate::ha::monitor::wait_primary(&mut view, self.primary_wait).await
    }

    /// Waits until the primary is no longer `old` (a failover), at most
    /// until `deadline`; true when it changed.
    pub async fn wait_primary_change(&self, old: usize, deadline: tokio::time::Instant) -> bool {
        let mut view = self.view.clone();
        let changed = tokio::time::timeout_at(
            deadline,
            view.wait_for(|v| v.primary.is_some_and(|p| p != old)),
        )
        .await;
        matches!(changed, Ok(Ok(_)))
    }

    /// Index of the node called `name`, or numbered `name` (Mycat's index).
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .or_else(|| name.parse().ok().filter(|&i: &usize| i < self.nodes.len()))
    }

    /// Asks the heartbeat task to make node `to` the primary with no write
    /// lost; returns what it did.
    pub async fn switchover(&self, to: usize) -> Result<String, String> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Switchover { to, reply })
            .await
            .map_err(|_| "the heartbeat of this data host is not running".to_owned())?;
        done.await
            .map_err(|_| "the heartbeat stopped during the switchover".to_owned())?
    }

    /// Whether node `i` may take reads now.
    pub fn readable(&self, i: usize) -> bool {
        self.view.borrow().nodes.get(i).is_some_and(|n| n.readable)
    }

    /// Nodes to try for a read, in order: the balancer's pick first, then
    /// the other readable candidates, then (when allowed) the primary.
    pub fn read_order(&self) -> Vec<usize> {
        let view = self.view.borrow();
        let writer = view.writer(std::time::Instant::now());
        let roles: Vec<Role> = self.nodes.iter().map(|n| n.role).collect();
        let weights: Vec<u32> = self.nodes.iter().map(|n| n.weight).collect();
        let candidates: Vec<usize> = read_candidates(self.balance, &roles, writer)
            .into_iter()
            .filter(|&i| view.nodes.get(i).is_some_and(|n| n.readable))
            .collect();
        let first = self
            .rr
            .lock()
            .ok()
            .and_then(|mut rr| rr.pick(&candidates, &weights));
        let mut order: Vec<usize> = first.into_iter().collect();
        order.extend(candidates.iter().copied().filter(|&i| Some(i) != first));
        if let Some(w) = writer.filter(|w| !order.contains(w)) {
            if self.reads_fall_back_to_primary || self.balance == Balance::Primary {
                order.push(w);
            }
        }
        order
    }

    /// Why no node can take a read now, for the client's error.
    pub fn no_read_node(&self) -> String {
        let view = self.view.borrow();
        let why: Vec<String> = self
            .nodes
            .iter()
            .zip(&view.nodes)
            .map(|(n, v)| format!("{}: {}", n.name, v.reason))
            .collect();
        format!(
            "no node of data host '{}' may take reads ({}) and reads_fall_back_to_primary is off",
            self.name,
            why.join("; ")
        )
    }
}

pub struct Topology {
    pub users: HashMap<String, Arc<User>>,
    /// Who may log in to the admin port: `admin_users` and the application
    /// users (who may run nothing there).
    pub admin_port_users: HashMap<String, Arc<User>>,
    pub data_hosts: Vec<Arc<DataHost>>,
    /// Schema name → index into `data_hosts`.
    pub schemas: HashMap<String, usize>,
    pub server_version: String,
    /// PROXY protocol headers are read, from the peers in
    /// `proxy_protocol_from` only ([`crate::session::proxy_header`]).
    pub proxy_protocol: bool,
    pub proxy_protocol_from: Vec<hastack_rt::Cidr>,
    /// Offered to clients when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub require_tls: bool,
    pub default_auth_plugin: AuthPlugin,
    /// Largest client packet, in bytes.
    pub max_allowed_packet: usize,
    /// Stored functions that only read (`read_only_functions`).
    pub read_only_functions: Vec<String>,
    /// Client connections open at once.
    pub max_connections: usize,
    /// Bytes of remembered session SETs per session.
    pub max_session_state: usize,
}

/// The mysql_native_password hash a login is checked against.
fn login_hash(password: &Option<Secret>, hash: &Option<String>) -> NativeHash {
    match (password, hash) {
        (Some(p), _) => native_hash(p.expose().as_bytes()),
        // validate() guarantees a well-formed hash when no password is given.
        (None, Some(h)) => parse_native_hash(h).unwrap_or([0; 20]),
        (None, None) => [0; 20],
    }
}

/// Tells apart two sets of backend accounts without keeping a second copy
/// of their passwords.
fn accounts_fingerprint(
    user: &str,
    password: &Secret,
    read_only: &Option<(String, Secret)>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (user, password.expose()).hash(&mut h);
    read_only
        .as_ref()
        .map(|(u, p)| (u.as_str(), p.expose()))
        .hash(&mut h);
    h.finish()
}

/// The topology in force, as a reload replaces it. Sessions compare its
/// generation once per command (one atomic load, no lock shared by every
/// session) and take the new topology only when it moved.
#[derive(Clone)]
pub struct LiveTopology {
    /// What the admin port, pre-warming and the listener read.
    pub current: Arc<RwLock<Arc<Topology>>>,
    generation: Arc<AtomicU64>,
}

impl LiveTopology {
    pub fn new(t: Topology) -> LiveTopology {
        LiveTopology {
            current: Arc::new(RwLock::new(Arc::new(t))),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The topology now, and its generation.
    pub fn get(&self) -> (u64, Arc<Topology>) {
        // Generation first: a topology newer than the generation read is
        // taken again at the next look, never an older one kept.
        let g = self.generation.load(Ordering::Acquire);
        let t = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (g, t)
    }

    /// The topology, when it is newer than generation `seen`.
    pub fn newer_than(&self, seen: u64) -> Option<(u64, Arc<Topology>)> {
        (self.generation.load(Ordering::Acquire) != seen).then(|| self.get())
    }

    /// Puts `t` in force; returns the one it replaced.
    pub fn publish(&self, t: Topology) -> Arc<Topology> {
        let old = std::mem::replace(
            &mut *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Arc::new(t),
        );
        self.generation.fetch_add(1, Ordering::Release);
        old
    }
}

/// What clients see as the server version until a backend tells us its own.
pub const DEFAULT_SERVER_VERSION: &str = "5.5.5-10.11.0-MariaDB-sqlproxyd";

impl Topology {
    /// Builds it over the heartbeats in `monitors` (by data host name),
    /// keeping the pools of `previous` whose data host kept its nodes and
    /// accounts; fails only on unreadable TLS files or a data host without
    /// a heartbeat.
    pub fn from_config(
        c: &Config,
        monitors: &HashMap<String, Monitor>,
        previous: Option<&Topology>,
    ) -> anyhow::Result<Topology> {
        let users: HashMap<String, Arc<User>> = c
            .users
            .iter()
            .map(|u| {
                let user = User {
                    name: u.name.clone(),
                    hash: login_hash(&u.password, &u.password_hash),
                    password: u.password.clone(),
                    schemas: u.schemas.clone(),
                    read_only: u.read_only,
                    admin_level: None,
                    max_connections: u.max_user_connections.unwrap_or(c.max_user_connections),
                    auth_plugin: u.auth_plugin,
                };
                (u.name.clone(), Arc::new(user))
            })
            .collect();
        let mut admin_port_users = users.clone();
        for u in &c.admin_users {
            let user = User {
                name: u.name.clone(),
                hash: login_hash(&u.password, &u.password_hash),
                password: u.password.clone(),
                schemas: Vec::new(),
                read_only: true,
                admin_level: Some(u.level),
                // The admin port has no per-user limit of its own.
                max_connections: 0,
                auth_plugin: None,
            };
            admin_port_users.insert(u.name.clone(), Arc::new(user));
        }
        let data_hosts = c
            .data_hosts
            .iter()
            .map(|h| {
                let monitor = monitors
                    .get(&h.name)
                    .ok_or_else(|| anyhow::anyhow!("data host {}: no heartbeat running", h.name))?;
                let read_only_account = h.read_only_user.clone().zip(h.read_only_password.clone());
                let accounts = accounts_fingerprint(&h.user, &h.password, &read_only_account);
                let addrs: Vec<SocketAddr> = h.nodes.iter().map(|n| n.address).collect();
                // Pooled connections are keyed by node index and logged in
                // as the accounts: only the same nodes in the same order, and
                // the same accounts, may keep them.
                let pool = previous
                    .and_then(|p| p.data_hosts.iter().find(|o| o.name == h.name))
                    .filter(|o| {
                        o.accounts == accounts
                            && o.nodes.iter().map(|n| n.addr).eq(addrs.iter().copied())
                    })
                    .map(|o| {
                        o.pool.set_max_idle(h.pool.max as usize);
                        o.pool.clone()
                    })
                    .unwrap_or_else(|| Arc::new(Pool::new(h.pool.max as usize)));
                Ok(Arc::new(DataHost {
                    name: h.name.clone(),
                    balance: h.balance,
                    read_your_writes: h.read_your_writes.get(),
                    connect_timeout: h.connect_timeout.get(),
                    login_policy: login_policy(h),
                    pool_max: h.pool.max,
                    pool_min: h.pool.min,
                    user: h.user.clone(),
                    password: h.password.clone(),
                    read_only_account,
                    nodes: h
                        .nodes
                        .iter()
                        .map(|n| Node {
                            name: n.name.clone(),
                            addr: n.address,
                            role: n.role,
                            weight: n.weight,
                        })
                        .collect(),
                    rr: Mutex::new(WeightedRoundRobin::new(h.nodes.len())),
                    pool,
                    accounts,
                    view: monitor.view.clone(),
                    primary_wait: h.failover.primary_wait.get(),
                    reads_fall_back_to_primary: h.reads_fall_back_to_primary,
                    heartbeat_timeout: h.heartbeat.timeout.get(),
                    commands: monitor.commands.clone(),
                    writes_in_flight: monitor.writes_in_flight.clone(),
                    grants: monitor.grants.clone(),
                }))
            })
            .collect::<anyhow::Result<_>>()?;
        let schemas = c
            .schemas
            .iter()
            .filter_map(|s| {
                Some((
                    s.name.clone(),
                    c.data_hosts.iter().position(|h| h.name == s.data_host)?,
                ))
            })
            .collect();
        let tls = c
            .tls
            .as_ref()
            .map(|t| crate::session::client_stream::acceptor(&t.cert, &t.key))
            .transpose()?;
        Ok(Topology {
            users,
            admin_port_users,
            data_hosts,
            schemas,
            server_version: DEFAULT_SERVER_VERSION.into(),
            proxy_protocol: c.proxy_protocol,
            proxy_protocol_from: c.proxy_protocol_from.clone(),
            tls,
            require_tls: c.require_tls,
            default_auth_plugin: c.default_auth_plugin,
            max_allowed_packet: usize::try_from(c.max_allowed_packet.0).unwrap_or(usize::MAX),
            read_only_functions: c.read_only_functions.clone(),
            max_connections: c.max_connections as usize,
            max_session_state: usize::try_from(c.max_session_state.0).unwrap_or(usize::MAX),
        })
    }

    /// The data host a session without a schema uses: that of the user's
    /// first schema, else the first data host.
    pub fn default_host(&self, user: &User) -> usize {
        user.schemas
            .first()
            .and_then(|s| self.schemas.get(s))
            .copied()
            .unwrap_or(0)
    }
}

/// How logins to a data host's nodes may authenticate.
pub fn login_policy(h: &crate::config::DataHost) -> LoginPolicy {
    LoginPolicy {
        allow_public_key_retrieval: h.allow_public_key_retrieval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// One data host over two nodes, its heartbeat aimed at ports nothing
    /// listens on (it only has to exist), as `edit` rewrites its text.
    fn config(edit: impl Fn(String) -> String) -> Config {
        let text = "users:\n  - {name: app, password: app}\ndata_hosts:\n  - name: dh1\n    user: app\n    password: app\n    pool: {min: 0, max: 64}\n    heartbeat: {interval: 1h}\n    failover: {promote: false, auto_rejoin: false}\n    nodes:\n      - {name: db-1, address: 127.0.0.1:1, role: write}\n      - {name: db-2, address: 127.0.0.1:2, role: read}\nschemas:\n  - {name: app, data_host: dh1}\n";
        hastack_rt::config::parse::<Config>(Path::new("x.yaml"), &edit(text.to_owned())).unwrap()
    }

    fn monitors(c: &Config) -> HashMap<String, Monitor> {
        let metrics = crate::metrics::Metrics::register(&mut Default::default());
        // Its own directory per call: a state dir has one Store at a time.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hs-topology-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let store = Arc::new(crate::ha::dnindex::Store::open(&dir).unwrap());
        c.data_hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    Monitor::spawn(h, store.clone(), metrics.clone()),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_reload_keeps_the_pool_only_for_the_same_nodes_and_accounts() {
        let first = config(|t| t);
        let m = monitors(&first);
        let before = Topology::from_config(&first, &m, None).unwrap();
        let kept = |c: &Config| {
            let after = Topology::from_config(c, &m, Some(&before)).unwrap();
            Arc::ptr_eq(&after.data_hosts[0].pool, &before.data_hosts[0].pool)
        };
        assert!(kept(&first));
        assert!(kept(&config(|t| t.replace("max: 64", "max: 8"))));
        assert!(kept(&config(|t| t.replace("name: db-2", "name: db-two"))));
        assert!(!kept(&config(|t| t.replace("127.0.0.1:2", "127.0.0.1:3"))));
        assert!(!kept(&config(|t| t.replace(
            "      - {name: db-1",
            "      - {name: db-0, address: 127.0.0.1:9, role: read}\n      - {name: db-1"
        ))));
        assert!(!kept(&config(|t| t.replace(
            "    password: app\n    pool",
            "    password: new\n    pool"
        ))));
        assert!(!kept(&config(|t| t.replace(
            "    pool:",
            "    read_only_user: ro\n    read_only_password: ro\n    pool:"
        ))));
    }

    #[tokio::test]
    async fn sessions_see_a_published_topology_once_and_the_old_view_stops_naming_a_writer() {
        let c = config(|t| t);
        let m = monitors(&c);
        let mut t = Topology::from_config(&c, &m, None).unwrap();
        // A heartbeat that named db-1 the primary, then stopped.
        let mut named = View::initial(2);
        named.primary = Some(0);
        named.lease = crate::ha::cluster::Lease::Unbounded;
        let (tx, rx) = watch::channel(named);
        if let Some(h) = Arc::get_mut(&mut t.data_hosts[0]) {
            h.view = rx;
        }
        let live = LiveTopology::new(t);
        let (g, first) = live.get();
        assert!(live.newer_than(g).is_none());
        assert_eq!(first.data_hosts[0].writer(), Some(0));
        drop(tx);
        assert_eq!(first.data_hosts[0].writer(), None);
        let e = first.data_hosts[0].wait_writer().await.unwrap_err();
        assert!(e.contains("a reload replaced the heartbeat"), "{e}");

        let old = live.publish(Topology::from_config(&c, &m, Some(&first)).unwrap());
        assert!(Arc::ptr_eq(&old, &first));
        let (g2, second) = live.newer_than(g).unwrap();
        assert!(!Arc::ptr_eq(&second, &first));
        assert!(live.newer_than(g2).is_none());
        // Same nodes, same accounts: every connection carries over as it is.
        assert!(first.data_hosts[0]
            .carry_to(&second.data_hosts[0])
            .is_identity(2));
    }
}
