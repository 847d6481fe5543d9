//! sqlproxyd's config: users, data hosts (a primary and its replicas) and
//! the logical schemas mapped onto them. Mycat's numeric `balance` and
//! `switch_type` values are accepted beside the names.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use hastack_rt::config::{check, AdminHttp, DaemonConfig, Invalid};
use hastack_rt::{ByteSize, Cidr, Duration, Secret};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub admin_http: AdminHttp,
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    /// MySQL protocol for applications (Mycat's 8066).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// MySQL protocol admin commands, `show @@datasource` etc. (Mycat's 9066).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Accept PROXY protocol (v1 or v2) headers, as lbd's `send_proxy`
    /// writes them, and use the client address they carry: required from
    /// the peers in `proxy_protocol_from` (HAProxy's `accept-proxy`),
    /// refused from every other peer, which connects as a plain client.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The balancers (addresses or CIDRs) whose PROXY headers are
    /// believed; needed when `proxy_protocol` is on.
    #[serde(default)]
    pub proxy_protocol_from: Vec<Cidr>,
    /// TLS for clients (offered when set): PEM certificate chain and key.
    pub tls: Option<Tls>,
    /// Refuse clients that do not switch to TLS.
    #[serde(default)]
    pub require_tls: bool,
    /// The login plugin the handshake names and clients are switched to.
    #[serde(default)]
    pub default_auth_plugin: AuthPlugin,
    /// Largest packet a client may send (MariaDB's max_allowed_packet);
    /// bigger ones get ERR 1153 and the connection is closed.
    #[serde(default = "default_max_allowed_packet")]
    pub max_allowed_packet: ByteSize,
    /// Client connections open at once, over all users (MariaDB's
    /// max_connections); the next one gets ERR 1040 after its login.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Sessions one proxy user may have open (MariaDB's
    /// max_user_connections); 0: no limit. A user's own setting wins.
    #[serde(default)]
    pub max_user_connections: u32,
    /// Bytes of session SET statements a session may have remembered for
    /// replay on its other backend connections; past it the session stays
    /// on its write connection (as past 256 statements).
    #[serde(default = "default_max_session_state")]
    pub max_session_state: ByteSize,
    /// Where the write-node index (`dnindex.properties`) is kept.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Stored functions that only read (`f` in any schema, or `db.f`): a
    /// statement calling them may go to a replica and a read_only user may
    /// run it. Any other stored function is taken to write.
    #[serde(default)]
    pub read_only_functions: Vec<String>,
    pub users: Vec<User>,
    /// Who may log in to `admin_listen` (9066) and what they may run there:
    /// application users (`users`) get 1227 for every admin command.
    #[serde(default)]
    pub admin_users: Vec<AdminUser>,
    pub data_hosts: Vec<DataHost>,
    pub schemas: Vec<Schema>,
}

fn default_grace() -> Duration {
    Duration::from_secs(10)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8066))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9066))
}

fn default_max_allowed_packet() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_max_connections() -> u32 {
    2048
}

fn default_max_session_state() -> ByteSize {
    ByteSize(1 << 20)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/sqlproxyd")
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A login plugin sqlproxyd checks itself (`default_auth_plugin`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AuthPlugin {
    #[default]
    #[serde(rename = "mysql_native_password")]
    MysqlNativePassword,
    /// MySQL 8's default. Users with only a password_hash can use it only
    /// over TLS: its full path sends the password in clear.
    #[serde(rename = "caching_sha2_password")]
    CachingSha2Password,
}

impl AuthPlugin {
    /// As handshakes and auth switches name it.
    pub fn name(self) -> &'static str {
        match self {
            AuthPlugin::MysqlNativePassword => "mysql_native_password",
            AuthPlugin::CachingSha2Password => "caching_sha2_password",
        }
    }
}

/// A client account of the proxy (Mycat's server.xml `<user>`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// Cleartext (inline, `{file: ..}` or `{env: ..}`) ...
    pub password: Option<Secret>,
    /// ... or a mysql_native_password hash: `*` and 40 hex digits.
    pub password_hash: Option<String>,
    /// Logical schemas this user may use; empty means all.
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
    /// This user's own max_user_connections (0: no limit); default: the
    /// top-level one.
    pub max_user_connections: Option<u32>,
    /// The account's plugin, as MySQL's `mysql.user.plugin`: a client
    /// answering with another is switched to it (and refused if it answers
    /// with another again). Unset: an answer with either plugin is checked.
    pub auth_plugin: Option<AuthPlugin>,
}

/// An account of the admin port (9066), apart from the application's.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    pub name: String,
    /// Cleartext (inline, `{file: ..}` or `{env: ..}`) ...
    pub password: Option<Secret>,
    /// ... or a mysql_native_password hash: `*` and 40 hex digits.
    pub password_hash: Option<String>,
    /// What the user may run on the admin port.
    pub level: AdminLevel,
}

/// `admin_users[].level`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum AdminLevel {
    /// `show @@...`: read what the proxy sees.
    Monitor,
    /// Also everything that changes state: `switch`, `kill`, `reload`.
    Admin,
}

impl AdminLevel {
    pub fn name(self) -> &'static str {
        match self {
            AdminLevel::Monitor => "monitor",
            AdminLevel::Admin => "admin",
        }
    }
}

/// A primary and its replicas (Mycat's `<dataHost>`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataHost {
    pub name: String,
    #[serde(default)]
    pub balance: Balance,
    #[serde(default)]
    pub switch_type: SwitchType,
    /// Account client traffic runs as on the backends (Mycat's writeHost
    /// user): it needs the application's privileges.
    pub user: String,
    pub password: Secret,
    /// The account `read_only` users' traffic runs as, when set: one
    /// with only read privileges (GRANT SELECT, SHOW VIEW ON app.*), so
    /// the backends refuse their writes by privilege too.
    pub read_only_user: Option<String>,
    pub read_only_password: Option<Secret>,
    #[serde(default)]
    pub pool: Pool,
    /// After a write, the session's reads stay on the write node this long
    /// (replicas may not have applied it yet). `0s` turns it off.
    #[serde(default)]
    pub read_your_writes: Duration,
    /// Limit on connecting and logging in to a node.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// caching_sha2_password accounts (MySQL 8) whose hash the server has
    /// not cached: ask the server for its RSA key and send the password
    /// encrypted with it (the connectors' `allowPublicKeyRetrieval`). Off:
    /// whoever can answer for a node could send its own key and read the
    /// password; such a login then fails saying so. The fast path (hash
    /// cached) and the other plugins never need it.
    #[serde(default)]
    pub allow_public_key_retrieval: bool,
    /// Replicas further behind the primary than this (or with a stopped
    /// replication thread) get no reads (Mycat's slaveThreshold).
    #[serde(default = "default_max_replica_lag")]
    pub max_replica_lag: Duration,
    /// When no replica qualifies for reads, send them to the primary
    /// (Mycat's tempReadHostAvailable) rather than refusing them.
    #[serde(default = "yes")]
    pub reads_fall_back_to_primary: bool,
    #[serde(default)]
    pub heartbeat: Heartbeat,
    #[serde(default)]
    pub failover: Failover,
    pub nodes: Vec<Node>,
}

fn default_max_replica_lag() -> Duration {
    Duration::from_secs(10)
}

fn yes() -> bool {
    true
}

/// How each node is watched: a query, and the replication probe.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Heartbeat {
    pub query: String,
    pub interval: Duration,
    /// Limit on one heartbeat (connect, query and probe).
    pub timeout: Duration,
    /// Consecutive failed heartbeats before a node is down (Mycat's 3).
    pub fail_count: u32,
    /// The monitor account: it needs SLAVE MONITOR, and for fencing,
    /// failover, switchover and rejoin also READ_ONLY ADMIN, REPLICATION
    /// SLAVE ADMIN and RELOAD (see `crate::ha::grants`; checked at start and
    /// on reload). Defaults to the data host's `user`/`password`.
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            query: "SELECT 1".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            fail_count: 3,
            user: None,
            password: None,
        }
    }
}

/// What happens when the primary fails, and to a node that comes back.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Failover {
    /// Promote the most advanced replica (true), or only move writes to the
    /// next configured write node, as Mycat does (false).
    pub promote: bool,
    /// No second switch sooner than this after one (a flapping node must
    /// not cause failover after failover).
    pub min_switch_interval: Duration,
    /// Point a fenced node (a returning old primary) at the current primary
    /// and readmit it for reads once it has caught up, unless it holds
    /// transactions the primary lacks.
    pub auto_rejoin: bool,
    /// New sessions and writes wait this long for a primary before failing.
    pub primary_wait: Duration,
    /// Longest wait for the promoted replica to apply its relay log.
    pub apply_timeout: Duration,
    /// The account replicas use towards the primary (CHANGE MASTER TO);
    /// needed for promotion and rejoin.
    pub replication_user: Option<String>,
    pub replication_password: Option<Secret>,
    /// Which nodes a promotion must lock, and which a proxy must reach to
    /// keep writing.
    pub quorum: Quorum,
    /// Make the primary writable again when it comes back read-only (a
    /// restart with read_only=ON in my.cnf) while the replicas still follow
    /// it and nothing else is writable (MaxScale's enforce_writable_master).
    /// Off: it waits for a DBA, with no primary meanwhile.
    pub restore_writable: bool,
}

/// How many nodes stand behind a change of primary (docs/sqlproxyd.md,
/// "Quorum").
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    /// A promotion locks a majority of the configured nodes, so a minority
    /// side of any partition never promotes; a proxy writes only while the
    /// nodes it cannot reach could not form such a majority.
    #[default]
    Majority,
    /// A promotion locks a majority of the nodes this proxy reaches, and a
    /// proxy writes whatever it reaches: a data host of two nodes fails
    /// over, at the risk of two primaries when a partition splits it.
    Reachable,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            promote: true,
            min_switch_interval: Duration::from_secs(30),
            auto_rejoin: true,
            primary_wait: Duration::from_secs(5),
            apply_timeout: Duration::from_secs(30),
            replication_user: None,
            replication_password: None,
            quorum: Quorum::Majority,
            restore_writable: true,
        }
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}

/// Where reads go (Mycat's `balance`, whose numbers are accepted too).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// 0: no splitting, everything to the primary.
    #[default]
    Primary,
    /// 1: reads to replicas and standby write nodes.
    ReplicasAndStandby,
    /// 2: reads to any node, the primary included.
    Any,
    /// 3: reads to replicas only.
    Replicas,
}

/// When the write node switches (Mycat's `switchType`).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SwitchType {
    /// -1: never switch automatically.
    None,
    /// 1: after failed heartbeats.
    #[default]
    Heartbeat,
    /// 2: after failed heartbeats, only to a caught-up replica.
    Replication,
}

/// Accepts a name or Mycat's number for enums with numeric aliases.
macro_rules! name_or_number {
    ($ty:ty, $what:literal, [$(($name:literal, $num:literal, $variant:expr)),+ $(,)?]) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Num(i64),
                    Name(String),
                }
                let expected = concat!("one of ", $($name, " (", $num, "), ",)+ "for ", $what);
                match Raw::deserialize(d).map_err(|_| serde::de::Error::custom(format!("expected {expected}")))? {
                    $(Raw::Num($num) => Ok($variant),)+
                    $(Raw::Name(s) if s == $name || s == stringify!($num) => Ok($variant),)+
                    Raw::Num(n) => Err(serde::de::Error::custom(format!("expected {expected}, got {n}"))),
                    Raw::Name(s) => Err(serde::de::Error::custom(format!("expected {expected}, got {s:?}"))),
                }
            }
        }
    };
}

name_or_number!(
    Balance,
    "balance",
    [
        ("primary", 0, Balance::Primary),
        ("replicas_and_standby", 1, Balance::ReplicasAndStandby),
        ("any", 2, Balance::Any),
        ("replicas", 3, Balance::Replicas),
    ]
);

name_or_number!(
    SwitchType,
    "switch_type",
    [
        ("none", -1, SwitchType::None),
        ("heartbeat", 1, SwitchType::Heartbeat),
        ("replication", 2, SwitchType::Replication),
    ]
);

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Pool {
    pub min: u32,
    pub max: u32,
}

impl Default for Pool {
    fn default() -> Self {
        Pool { min: 4, max: 64 }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub address: SocketAddr,
    pub role: Role,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A node's configured role; who is primary *now* is read from the backends.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Write,
    Read,
}

/// A schema clients `USE`, served by one data host (the database of the
/// same name on its nodes).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub name: String,
    pub data_host: String,
}

fn is_native_hash(s: &str) -> bool {
    s.len() == 41 && s.starts_with('*') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A login's password: `password` or a well-formed `password_hash`, one
/// of them. `at` is the account's key path (`users[0]`).
fn check_password(
    out: &mut Vec<Invalid>,
    at: &str,
    password: &Option<Secret>,
    hash: &Option<String>,
) {
    match (password, hash) {
        (Some(_), Some(_)) => out.push(Invalid::new(
            format!("{at}.password_hash"),
            "give password or password_hash, not both",
        )),
        (None, None) => out.push(Invalid::new(
            format!("{at}.password"),
            "a password or password_hash is needed",
        )),
        (None, Some(h)) if !is_native_hash(h) => out.push(Invalid::new(
            format!("{at}.password_hash"),
            "expected a mysql_native_password hash: '*' and 40 hex digits",
        )),
        _ => {}
    }
}

impl DaemonConfig for Config {
    fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        check::range(
            &mut out,
            "max_allowed_packet",
            self.max_allowed_packet,
            ByteSize(1024),
            ByteSize(1 << 30),
        );
        match (self.proxy_protocol, self.proxy_protocol_from.is_empty()) {
            (true, true) => out.push(Invalid::new(
                "proxy_protocol_from",
                "proxy_protocol: true needs the balancers allowed to send PROXY headers, e.g. \
                 proxy_protocol_from: [10.99.0.21/32, 10.99.0.22/32]; a header from any other \
                 peer would let it claim any client address",
            )),
            (false, false) => out.push(Invalid::new(
                "proxy_protocol_from",
                "applies with proxy_protocol: true (set it, or remove this list)",
            )),
            _ => {}
        }
        check::range(
            &mut out,
            "max_connections",
            self.max_connections,
            1,
            1_000_000,
        );
        check::range(
            &mut out,
            "max_session_state",
            self.max_session_state,
            ByteSize(0),
            ByteSize(1 << 30),
        );
        if self.require_tls && self.tls.is_none() {
            out.push(Invalid::new(
                "require_tls",
                "needs a tls section (cert and key)",
            ));
        }
        if self.listen == self.admin_listen {
            out.push(Invalid::new(
                "admin_listen",
                format!("same address as listen ({})", self.listen),
            ));
        }
        let schemas: HashSet<&str> = self.schemas.iter().map(|s| s.name.as_str()).collect();
        let hosts: HashSet<&str> = self.data_hosts.iter().map(|h| h.name.as_str()).collect();
        if self.users.is_empty() {
            out.push(Invalid::new("users", "at least one user is needed"));
        }
        for (i, u) in self.users.iter().enumerate() {
            let at = |key: &str| format!("users[{i}].{key}");
            check_password(
                &mut out,
                &format!("users[{i}]"),
                &u.password,
                &u.password_hash,
            );
            for (k, s) in u.schemas.iter().enumerate() {
                if !schemas.contains(s.as_str()) {
                    out.push(Invalid::new(
                        at(&format!("schemas[{k}]")),
                        format!("no schema named {s:?}"),
                    ));
                }
            }
        }
        check::unique_names(
            &mut out,
            self.users
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("users[{i}].name"), u.name.as_str())),
            "user",
        );
        let app_users: HashSet<&str> = self.users.iter().map(|u| u.name.as_str()).collect();
        for (i, u) in self.admin_users.iter().enumerate() {
            check_password(
                &mut out,
                &format!("admin_users[{i}]"),
                &u.password,
                &u.password_hash,
            );
            if app_users.contains(u.name.as_str()) {
                out.push(Invalid::new(
                    format!("admin_users[{i}].name"),
                    format!(
                        "{:?} is also in users: the admin port's accounts need names of their own",
                        u.name
                    ),
                ));
            }
        }
        check::unique_names(
            &mut out,
            self.admin_users
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("admin_users[{i}].name"), u.name.as_str())),
            "admin user",
        );
        if self.data_hosts.is_empty() {
            out.push(Invalid::new(
                "data_hosts",
                "at least one data host is needed",
            ));
        }
        for (i, h) in self.data_hosts.iter().enumerate() {
            let at = |key: &str| format!("data_hosts[{i}].{key}");
            if h.pool.max == 0 || h.pool.min > h.pool.max {
                out.push(Invalid::new(
                    at("pool"),
                    format!(
                        "need 0 <= min <= max and max >= 1, got min {} max {}",
                        h.pool.min, h.pool.max
                    ),
                ));
            }
            if !h.nodes.iter().any(|n| n.role == Role::Write) {
                out.push(Invalid::new(
                    at("nodes"),
                    "at least one node with role: write is needed",
                ));
            }
            check::range(
                &mut out,
                at("heartbeat.interval"),
                h.heartbeat.interval,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            );
            check::range(
                &mut out,
                at("heartbeat.timeout"),
                h.heartbeat.timeout,
                Duration::from_millis(50),
                Duration::from_secs(600),
            );
            check::range(
                &mut out,
                at("heartbeat.fail_count"),
                h.heartbeat.fail_count,
                1,
                100,
            );
            if h.heartbeat.query.trim().is_empty() {
                out.push(Invalid::new(at("heartbeat.query"), "must not be empty"));
            }
            if h.heartbeat.user.is_some() != h.heartbeat.password.is_some() {
                out.push(Invalid::new(
                    at("heartbeat.user"),
                    "give both user and password, or neither (the data host's account is used)",
                ));
            }
            if h.read_only_user.is_some() != h.read_only_password.is_some() {
                out.push(Invalid::new(
                    at("read_only_user"),
                    "give both read_only_user and read_only_password, or neither",
                ));
            }
            let f = &h.failover;
            if f.replication_user.is_some() != f.replication_password.is_some() {
                out.push(Invalid::new(
                    at("failover.replication_user"),
                    "give both replication_user and replication_password",
                ));
            }
            let mutates = h.switch_type != SwitchType::None && f.promote;
            // One node has nobody to fail over to or rejoin.
            if (mutates || f.auto_rejoin) && f.replication_user.is_none() && h.nodes.len() > 1 {
                out.push(Invalid::new(
                    at("failover.replication_user"),
                    "promotion and auto_rejoin point replicas at the primary: set replication_user and replication_password (or promote: false and auto_rejoin: false)",
                ));
            }
            for (k, n) in h.nodes.iter().enumerate() {
                check::range(
                    &mut out,
                    at(&format!("nodes[{k}].weight")),
                    n.weight,
                    0,
                    1000,
                );
            }
            check::unique_names(
                &mut out,
                h.nodes
                    .iter()
                    .enumerate()
                    .map(|(k, n)| (at(&format!("nodes[{k}].name")), n.name.as_str())),
                "node",
            );
        }
        check::unique_names(
            &mut out,
            self.data_hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("data_hosts[{i}].name"), h.name.as_str())),
            "data host",
        );
        for (i, s) in self.schemas.iter().enumerate() {
            if !hosts.contains(s.data_host.as_str()) {
                out.push(Invalid::new(
                    format!("schemas[{i}].data_host"),
                    format!("no data host named {:?}", s.data_host),
                ));
            }
        }
        check::unique_names(
            &mut out,
            self.schemas
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("schemas[{i}].name"), s.name.as_str())),
            "schema",
        );
        out
    }

    fn warnings(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let read_only_users = self.users.iter().any(|u| u.read_only);
        for (i, h) in self.data_hosts.iter().enumerate() {
            if read_only_users && h.read_only_user.is_none() {
                out.push(Invalid::new(
                    format!("data_hosts[{i}].read_only_user"),
                    format!(
                        "not set: read_only users run as '{}' with SET SESSION TRANSACTION READ ONLY, \
                         which a stored routine that sets READ WRITE can lift; give them an account \
                         with only SELECT (and SHOW VIEW) privileges",
                        h.user
                    ),
                ));
            }
            let switches = h.switch_type != SwitchType::None;
            if switches && h.failover.quorum == Quorum::Majority && h.nodes.len() == 2 {
                out.push(Invalid::new(
                    format!("data_hosts[{i}].nodes"),
                    "two nodes cannot fail over under quorum: majority (the survivor alone is not a \
                     majority of two): writes stay on the primary while it lives and wait for it \
                     when it dies; add a third node, or set failover.quorum: reachable and accept \
                     two primaries if a partition splits the two",
                ));
            }
            if switches && h.failover.quorum == Quorum::Reachable {
                out.push(Invalid::new(
                    format!("data_hosts[{i}].failover.quorum"),
                    "reachable: a proxy cut off with a minority of the nodes can promote one of \
                     them while the others still write to the old primary (split brain)",
                ));
            }
            if switches && !h.failover.promote && h.nodes.len() > 1 {
                out.push(Invalid::new(
                    format!("data_hosts[{i}].failover.promote"),
                    "false (Mycat's mode): each sqlproxyd keeps its own write node in its \
                     dnindex.properties; the switch is taken under the same majority lock, but \
                     several sqlproxyds can still disagree once a partition heals; run one \
                     sqlproxyd per data host in this mode, or promote: true (the backends decide)",
                ));
            }
        }
        out
    }

    fn admin_http(&self) -> &AdminHttp {
        &self.admin_http
    }

    fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn errors(text: &str) -> Vec<String> {
        hastack_rt::config::error_lines::<Config>("sqlproxyd.yaml", text)
    }

    /// The packaged example with its placeholders filled in.
    fn filled_example() -> String {
        include_str!("../../../configs/sqlproxyd.yaml")
            .replace(
                "password_hash: __CHANGE_ME__",
                "password_hash: '*FC69E042CE30D92E2952335F690CF2345C812E36'",
            )
            .replace("__CHANGE_ME__", "s3cret")
    }

    #[test]
    fn example_configs_are_valid() {
        // The packaged one waits for its passwords, and only for them.
        let (placeholders, other) = hastack_rt::config::placeholder_paths::<Config>(
            "sqlproxyd.yaml",
            include_str!("../../../configs/sqlproxyd.yaml"),
        );
        assert_eq!(other, Vec::<String>::new());
        assert_eq!(
            placeholders,
            [
                "users[0].password",
                "users[1].password_hash",
                "data_hosts[0].password",
                "data_hosts[0].read_only_password",
                "data_hosts[0].heartbeat.password",
                "data_hosts[0].failover.replication_password",
            ]
        );
        assert_eq!(errors(&filled_example()), Vec::<String>::new());
        assert_eq!(
            errors(include_str!("../../../configs/lab/sqlproxyd-1.yaml")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn max_allowed_packet_takes_mysql_sizes_within_limits() {
        let lab = include_str!("../../../configs/lab/sqlproxyd-1.yaml");
        assert_eq!(
            errors(&format!("{lab}max_allowed_packet: 16M\n")),
            Vec::<String>::new()
        );
        let e = errors(&format!("{lab}max_allowed_packet: 2G\n"));
        assert!(
            e[0].contains("max_allowed_packet: must be between 1K and 1G, got 2G"),
            "{e:?}"
        );
        let e = errors(&format!("{lab}max_allowed_packet: lots\n"));
        assert!(e[0].contains("expected a size like"), "{e:?}");
    }

    #[test]
    fn proxy_protocol_needs_the_balancers_it_believes() {
        let lab = include_str!("../../../configs/lab/sqlproxyd-1.yaml");
        let e = errors(&format!("{lab}proxy_protocol: true\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("proxy_protocol_from: proxy_protocol: true needs the balancers"),
            "{e:?}"
        );
        let e = errors(&format!("{lab}proxy_protocol_from: [127.0.0.1]\n"));
        assert!(
            e[0].contains("proxy_protocol_from: applies with proxy_protocol: true"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{lab}proxy_protocol: true\nproxy_protocol_from: [10.99.0.0/33]\n"
        ));
        assert!(e[0].contains("expected an IP address or CIDR"), "{e:?}");
        let ok = format!(
            "{lab}proxy_protocol: true\nproxy_protocol_from: [10.99.0.21, 10.99.0.0/24, '::1']\n"
        );
        assert_eq!(errors(&ok), Vec::<String>::new());
    }

    #[test]
    fn connection_and_state_limits_have_dba_defaults_and_ranges() {
        let lab = include_str!("../../../configs/lab/sqlproxyd-1.yaml");
        let cfg = hastack_rt::config::parse::<Config>(Path::new("x.yaml"), lab).unwrap();
        assert_eq!(cfg.max_connections, 2048);
        assert_eq!(cfg.max_user_connections, 0);
        assert_eq!(cfg.max_session_state, ByteSize(1 << 20));
        let e = errors(&format!("{lab}max_connections: 0\n"));
        assert!(
            e[0].contains("max_connections: must be between 1 and"),
            "{e:?}"
        );
        let e = errors(&format!("{lab}max_session_state: 2G\n"));
        assert!(e[0].contains("max_session_state: must be between"), "{e:?}");
        let example =
            hastack_rt::config::parse::<Config>(Path::new("x.yaml"), &filled_example()).unwrap();
        let reader = example.users.iter().find(|u| u.name == "reader").unwrap();
        assert_eq!(reader.max_user_connections, Some(100));
    }

    #[test]
    fn read_only_users_without_a_read_only_account_are_warned_about() {
        let lab = include_str!("../../../configs/lab/sqlproxyd-1.yaml");
        let lab_cfg = hastack_rt::config::parse::<Config>(Path::new("x.yaml"), lab).unwrap();
        assert_eq!(lab_cfg.warnings(), Vec::new());
        let without: String = lab
            .lines()
            .filter(|l| !l.contains("read_only_user") && !l.contains("read_only_password"))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = hastack_rt::config::parse::<Config>(Path::new("x.yaml"), &without).unwrap();
        let w = cfg.warnings();
        assert_eq!(w.len(), cfg.data_hosts.len(), "{w:?}");
        assert_eq!(w[0].path, "data_hosts[0].read_only_user");
        let example =
            hastack_rt::config::parse::<Config>(Path::new("x.yaml"), &filled_example()).unwrap();
        assert_eq!(example.warnings(), Vec::new());
        let e = errors(&without.replace(
            "    password: app\n",
            "    password: app\n    read_only_user: ro\n",
        ));
        assert!(
            e.iter().any(|l| l.contains("read_only_user: give both")),
            "{e:?}"
        );
    }

    #[test]
    fn require_tls_needs_a_tls_section() {
        let lab = include_str!("../../../configs/lab/sqlproxyd-1.yaml");
        let e = errors(&format!("{lab}require_tls: true\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("require_tls: needs a tls section"), "{e:?}");
        let e = errors(&format!("{lab}tls: {{cert: /x.pem}}\n"));
        assert!(e[0].contains("tls: missing field `key`"), "{e:?}");
    }

    #[test]
    fn default_auth_plugin_takes_the_two_plugin_names() {
        let lab = include_str!("../../../configs/lab/sqlproxyd-1.yaml");
        let e = errors(&format!("{lab}default_auth_plugin: sha256_password\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("default_auth_plugin: unknown variant `sha256_password`, expected `mysql_native_password` or `caching_sha2_password`"),
            "{e:?}"
        );
        let cfg = hastack_rt::config::parse::<Config>(
            Path::new("x.yaml"),
            &format!("{lab}default_auth_plugin: caching_sha2_password\n"),
        )
        .unwrap();
        assert_eq!(cfg.default_auth_plugin, AuthPlugin::CachingSha2Password);
    }

    #[test]
    fn admin_users_need_a_password_a_level_and_names_of_their_own() {
        let base = "users:\n  - {name: app, password: app}\ndata_hosts:\n  - name: dh1\n    user: app\n    password: app\n    nodes:\n      - {name: db-1, address: 127.0.0.1:3306, role: write}\nschemas:\n  - {name: app, data_host: dh1}\n";
        let ok = format!("{base}admin_users:\n  - {{name: ops, password: ops, level: admin}}\n  - {{name: watch, password_hash: \"*{}\", level: monitor}}\n", "A".repeat(40));
        assert_eq!(errors(&ok), Vec::<String>::new());
        let e = errors(&format!("{base}admin_users:\n  - {{name: app, password: x, level: admin}}\n  - {{name: w, level: monitor}}\n  - {{name: w, password: y, level: monitor}}\n"));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].contains("admin_users[0].name: \"app\" is also in users"),
            "{e:?}"
        );
        assert!(
            e[1].contains("admin_users[1].password: a password or password_hash is needed"),
            "{e:?}"
        );
        assert!(
            e[2].contains("admin_users[2].name: duplicate admin user name \"w\""),
            "{e:?}"
        );
        let e = errors(&format!(
            "{base}admin_users:\n  - {{name: ops, password: x}}\n"
        ));
        assert!(
            e[0].contains("admin_users[0]: missing field `level`"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{base}admin_users:\n  - {{name: ops, password: x, level: root}}\n"
        ));
        assert!(
            e[0].contains("unknown variant `root`, expected `monitor` or `admin`"),
            "{e:?}"
        );
    }

    #[test]
    fn mycat_numbers_and_names_are_the_same() {
        for (text, want) in [
            ("1", Balance::ReplicasAndStandby),
            ("replicas", Balance::Replicas),
            ("'2'", Balance::Any),
        ] {
            assert_eq!(
                serde_yaml::from_str::<Balance>(text).unwrap(),
                want,
                "{text}"
            );
        }
        assert_eq!(
            serde_yaml::from_str::<SwitchType>("-1").unwrap(),
            SwitchType::None
        );
        let e = serde_yaml::from_str::<SwitchType>("3")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "expected one of none (-1), heartbeat (1), replication (2), for switch_type, got 3"
            ),
            "{e}"
        );
    }

    #[test]
    fn references_passwords_and_roles_are_checked() {
        let text = "\
users:
  - {name: app, password_hash: '*nothex', schemas: [nope]}
  - {name: app}
data_hosts:
  - name: dh
    user: monitor
    password: monitor
    pool: {min: 9, max: 2}
    nodes:
      - {name: db-1, address: 127.0.0.1:3311, role: read}
schemas:
  - {name: app, data_host: dh2}
";
        let e = errors(text);
        assert_eq!(e.len(), 7, "{e:#?}");
        assert!(e[0].starts_with("sqlproxyd.yaml:2:17: users[0].password_hash: expected a mysql_native_password hash"), "{e:?}");
        assert!(e
            .iter()
            .any(|l| l.contains("users[0].schemas[0]: no schema named \"nope\"")));
        assert!(e
            .iter()
            .any(|l| l.contains("users[1].password: a password or password_hash is needed")));
        assert!(e
            .iter()
            .any(|l| l.contains("users[1].name: duplicate user name \"app\"")));
        assert!(e
            .iter()
            .any(|l| l.contains("data_hosts[0].pool: need 0 <= min <= max")));
        assert!(e
            .iter()
            .any(|l| l.contains("data_hosts[0].nodes: at least one node with role: write")));
        assert!(
            e.iter().any(|l| l.starts_with(
                "sqlproxyd.yaml:12:17: schemas[0].data_host: no data host named \"dh2\""
            )),
            "{e:?}"
        );
    }

    #[test]
    fn passwords_never_appear_in_debug_output() {
        let cfg = hastack_rt::config::parse::<Config>(
            Path::new("x.yaml"),
            include_str!("../../../configs/lab/sqlproxyd-1.yaml"),
        )
        .unwrap();
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("password: Some(Secret(\"app\"))") && debug.contains("Secret(***)"),
            "{debug}"
        );
    }
}
