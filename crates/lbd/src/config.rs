//! lbd's config: frontends, backends and servers, with HAProxy's names
//! (`inter`, `rise`, `fall`, `maxconn`, `balance`, `backup`, `retries`,
//! `redispatch`, `send_proxy`, `httpchk`, `mysql-check`).
//!
//! Server settings resolve like HAProxy's `default-server`: a key on the
//! server wins, then the backend's, then `defaults`. [`Config::backend`]
//! does it once, so the runtime never looks at three levels.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use hastack_rt::config::{check, AdminHttp, DaemonConfig, Invalid};
use hastack_rt::{Duration, Secret};
use serde::{Deserialize, Serialize};

use crate::health::{self, InitState};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The stats and admin endpoint: `/stats` (HTML, `/stats;csv`,
    /// `/stats;json`), `/status`, `/metrics`, `POST /actions/<command>`.
    #[serde(default)]
    pub admin_http: AdminHttp,
    /// The stats page's refresh and optional basic auth.
    #[serde(default)]
    pub stats: Stats,
    /// HAProxy's `stats socket`: the runtime API as text commands on a
    /// unix socket (`show stat`, `disable server b/s`, ...).
    pub runtime_socket: Option<RuntimeSocket>,
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    /// Relay bytes with Linux `splice(2)` (socket → pipe → socket in the
    /// kernel) instead of copying them through lbd: less CPU on bulk
    /// transfers, a pipe (two descriptors) per active direction.
    #[serde(default)]
    pub splice: bool,
    /// Threads relaying sessions (HAProxy's `nbthread`); one per CPU when
    /// unset. Read at start only.
    pub nbthread: Option<usize>,
    #[serde(default)]
    pub defaults: Defaults,
    pub frontends: BTreeMap<String, Frontend>,
    pub backends: BTreeMap<String, Backend>,
}

fn default_grace() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Stats {
    /// The HTML page reloads itself this often (HAProxy's `stats refresh`).
    pub refresh: Duration,
    /// Basic auth for the stats pages (HAProxy's `stats auth user:pass`).
    pub auth: Option<StatsAuth>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            refresh: Duration::from_secs(5),
            auth: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsAuth {
    pub user: String,
    pub password: Secret,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSocket {
    pub path: PathBuf,
    /// Permission bits in octal (`"0600"`, `"0660"`): who may run commands,
    /// the socket's only guard; bits for others are refused.
    #[serde(default = "default_socket_mode")]
    pub mode: String,
}

fn default_socket_mode() -> String {
    "0600".into()
}

/// Values frontends, backends and servers inherit unless they set their own.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Per frontend: connections beyond it wait in the kernel's backlog.
    pub maxconn: u32,
    pub timeout: Timeouts,
    /// Connect attempts after the first one fails (HAProxy's `retries`).
    pub retries: u32,
    /// The last retry goes to another server (HAProxy's `option redispatch`).
    /// On by default: a proxy that refuses is the case this tier exists for.
    pub redispatch: bool,
    /// What happens to a server's established sessions when it goes DOWN.
    pub on_marked_down: OnMarkedDown,
    /// How servers are checked: `tcp` connect, `http` (`option httpchk`) or
    /// `mysql` (`option mysql-check`).
    pub check: CheckKind,
    pub inter: Duration,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: u32,
    pub fall: u32,
    pub init_state: InitState,
    /// A server coming UP ramps its weight from ~0 over this time.
    pub slowstart: Option<Duration>,
    pub send_proxy: SendProxy,
}

impl Default for Defaults {
    fn default() -> Self {
        // HAProxy's where it has one: maxconn 2000, retries 3, check every
        // 2s, rise 2, fall 3.
        Defaults {
            maxconn: 2000,
            timeout: Timeouts::default(),
            retries: 3,
            redispatch: true,
            on_marked_down: OnMarkedDown::ShutdownSessions,
            check: CheckKind::default(),
            inter: Duration::from_secs(2),
            fastinter: None,
            downinter: None,
            rise: 2,
            fall: 3,
            init_state: InitState::default(),
            slowstart: None,
            send_proxy: SendProxy::None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// To establish a connection to a server, per attempt.
    pub connect: Duration,
    /// A session ends when the client has sent nothing for `client` and the
    /// server nothing for `server`.
    pub client: Duration,
    pub server: Duration,
    /// How long a connection waits for a server under its `maxconn`.
    pub queue: Duration,
    /// When set, replaces `client` and `server` once a session is
    /// established (HAProxy's `timeout tunnel`).
    pub tunnel: Option<Duration>,
    /// A health check that takes longer fails.
    pub check: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            // MySQL connections idle for long between queries; an hour, not HAProxy's 50s.
            client: Duration::from_secs(3600),
            server: Duration::from_secs(3600),
            queue: Duration::from_secs(5),
            tunnel: None,
            check: Duration::from_secs(2),
        }
    }
}

/// A backend's own timeouts; a missing key is `defaults.timeout`'s.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutOverrides {
    pub connect: Option<Duration>,
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub queue: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub check: Option<Duration>,
}

impl TimeoutOverrides {
    fn over(&self, d: &Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect.unwrap_or(d.connect),
            client: self.client.unwrap_or(d.client),
            server: self.server.unwrap_or(d.server),
            queue: self.queue.unwrap_or(d.queue),
            tunnel: self.tunnel.or(d.tunnel),
            check: self.check.unwrap_or(d.check),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnMarkedDown {
    /// Established sessions stay (HAProxy's default).
    None,
    /// Established sessions are closed, so MySQL clients reconnect to a live
    /// proxy instead of sitting on a dead one (lbd's default; DESIGN.md §5).
    #[default]
    ShutdownSessions,
}

/// The PROXY protocol header sent to a server first, so it sees the
/// client's address (HAProxy's `send-proxy` / `send-proxy-v2`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SendProxy {
    #[default]
    None,
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// A TCP connect (HAProxy's plain `check`).
    #[default]
    Tcp,
    /// An HTTP request, e.g. to checkd on 48700 (`option httpchk`).
    Http,
    /// A MySQL login and optional query (`option mysql-check`, done fully).
    Mysql,
}

/// How a backend's servers are checked.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckKind {
    #[serde(rename = "type", default)]
    pub kind: CheckType,
    /// http: request method (`GET`).
    pub method: Option<String>,
    /// http: request path (`/`).
    pub uri: Option<String>,
    /// http: Host header; the check address when unset.
    pub host: Option<String>,
    /// http: statuses that mean UP; default any 2xx or 3xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// http: a regex the status code must match instead (`^(200|204)$`).
    pub expect_rstatus: Option<String>,
    /// mysql: the user to log in as.
    pub user: Option<String>,
    /// mysql: its password (empty when unset).
    pub password: Option<Secret>,
    /// mysql: a query that must succeed after login.
    pub query: Option<String>,
    /// mysql: for caching_sha2_password full authentication, ask the server
    /// for its RSA public key over plain TCP (a man in the middle can send
    /// its own and learn the password). Off: such a login fails, saying so;
    /// the fast path (the server has the password cached) needs no key.
    #[serde(default)]
    pub allow_public_key_retrieval: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    /// One or more `address:port` to listen on. An address not on the host
    /// yet (the VIP on the backup LB host) is fine.
    pub bind: Vec<SocketAddr>,
    pub backend: String,
    pub maxconn: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    #[serde(default)]
    pub balance: Balance,
    /// When no active server is up, every up backup shares the load instead
    /// of only the first (HAProxy's `option allbackups`).
    #[serde(default)]
    pub all_backups: bool,
    pub retries: Option<u32>,
    pub redispatch: Option<bool>,
    pub on_marked_down: Option<OnMarkedDown>,
    #[serde(default)]
    pub timeout: TimeoutOverrides,
    pub check: Option<CheckKind>,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub init_state: Option<InitState>,
    pub slowstart: Option<Duration>,
    pub send_proxy: Option<SendProxy>,
    pub servers: Vec<Server>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    #[default]
    Roundrobin,
    #[serde(rename = "static-rr")]
    StaticRr,
    Leastconn,
    Source,
    First,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub backup: bool,
    pub maxconn: Option<u32>,
    /// Starts in maintenance (HAProxy's `disabled`); `enable server` ends it.
    #[serde(default)]
    pub disabled: bool,
    /// Health-check this server (HAProxy's `check`).
    #[serde(default = "yes")]
    pub check: bool,
    /// Check this address instead of the traffic address's.
    pub addr: Option<IpAddr>,
    /// Check this port instead of the traffic port (checkd's 48700).
    pub port: Option<u16>,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub init_state: Option<InitState>,
    pub slowstart: Option<Duration>,
    pub send_proxy: Option<SendProxy>,
}

fn default_weight() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// A backend with every inherited value filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendSettings {
    pub name: String,
    pub balance: Balance,
    pub all_backups: bool,
    pub retries: u32,
    pub redispatch: bool,
    pub on_marked_down: OnMarkedDown,
    pub timeout: Timeouts,
    pub servers: Vec<ServerSettings>,
}

/// A server with every inherited value filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSettings {
    pub name: String,
    pub address: SocketAddr,
    pub weight: u32,
    pub backup: bool,
    pub maxconn: Option<u32>,
    pub disabled: bool,
    /// `None` when the server is not checked (always taken as UP).
    pub check: Option<CheckTarget>,
    pub health: health::Params,
    pub slowstart: Option<std::time::Duration>,
    pub send_proxy: SendProxy,
    pub on_marked_down: OnMarkedDown,
}

/// What a server's health check connects to, and how it judges.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckTarget {
    pub address: SocketAddr,
    pub kind: CheckKind,
    pub timeout: std::time::Duration,
}

impl Config {
    /// Backend `name` as the runtime uses it.
    pub fn backend(&self, name: &str) -> Option<BackendSettings> {
        let b = self.backends.get(name)?;
        let d = &self.defaults;
        let timeout = b.timeout.over(&d.timeout);
        let kind = b.check.clone().unwrap_or_else(|| d.check.clone());
        let servers = b
            .servers
            .iter()
            .map(|s| {
                let inter = s.inter.or(b.inter).unwrap_or(d.inter);
                let pick = |s: Option<Duration>, b: Option<Duration>, d: Option<Duration>| {
                    s.or(b).or(d).map(Duration::get)
                };
                ServerSettings {
                    name: s.name.clone(),
                    address: s.address,
                    weight: s.weight,
                    backup: s.backup,
                    maxconn: s.maxconn,
                    disabled: s.disabled,
                    check: s.check.then(|| CheckTarget {
                        address: SocketAddr::new(
                            s.addr.unwrap_or(s.address.ip()),
                            s.port.unwrap_or(s.address.port()),
                        ),
                        kind: kind.clone(),
                        timeout: timeout.check.get(),
                    }),
                    health: health::Params {
                        rise: s.rise.or(b.rise).unwrap_or(d.rise),
                        fall: s.fall.or(b.fall).unwrap_or(d.fall),
                        inter: inter.get(),
                        fastinter: pick(s.fastinter, b.fastinter, d.fastinter),
                        downinter: pick(s.downinter, b.downinter, d.downinter),
                        init_state: s.init_state.or(b.init_state).unwrap_or(d.init_state),
                    },
                    slowstart: pick(s.slowstart, b.slowstart, d.slowstart),
                    send_proxy: s.send_proxy.or(b.send_proxy).unwrap_or(d.send_proxy),
                    on_marked_down: b.on_marked_down.unwrap_or(d.on_marked_down),
                }
            })
            .collect();
        Some(BackendSettings {
            name: name.to_string(),
            balance: b.balance,
            all_backups: b.all_backups,
            retries: b.retries.unwrap_or(d.retries),
            redispatch: b.redispatch.unwrap_or(d.redispatch),
            on_marked_down: b.on_marked_down.unwrap_or(d.on_marked_down),
            timeout,
            servers,
        })
    }

    /// The frontend's connection limit.
    pub fn maxconn(&self, frontend: &Frontend) -> u32 {
        frontend.maxconn.unwrap_or(self.defaults.maxconn)
    }
}

fn validate_check(out: &mut Vec<Invalid>, at: &str, c: &CheckKind) {
    let field = |k: &str| format!("{at}.{k}");
    let http_only = [
        ("method", c.method.is_some()),
        ("uri", c.uri.is_some()),
        ("host", c.host.is_some()),
        ("expect_status", !c.expect_status.is_empty()),
        ("expect_rstatus", c.expect_rstatus.is_some()),
    ];
    let mysql_only = [
        ("user", c.user.is_some()),
        ("password", c.password.is_some()),
        ("query", c.query.is_some()),
        ("allow_public_key_retrieval", c.allow_public_key_retrieval),
    ];
    let kind = match c.kind {
        CheckType::Tcp => "tcp",
        CheckType::Http => "http",
        CheckType::Mysql => "mysql",
    };
    for (key, set) in http_only {
        if set && c.kind != CheckType::Http {
            out.push(Invalid::new(
                field(key),
                format!("applies to type: http checks, this one is type: {kind}"),
            ));
        }
    }
    for (key, set) in mysql_only {
        if set && c.kind != CheckType::Mysql {
            out.push(Invalid::new(
                field(key),
                format!("applies to type: mysql checks, this one is type: {kind}"),
            ));
        }
    }
    if c.kind == CheckType::Mysql && c.user.as_deref().is_none_or(str::is_empty) {
        out.push(Invalid::new(
            field("user"),
            "a mysql check needs the user it logs in as",
        ));
    }
    if let Some(h) = &c.host {
        if h.is_empty()
            || h.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            out.push(Invalid::new(
                field("host"),
                format!("expected a host name without spaces or control characters, got {h:?}"),
            ));
        }
    }
    if let Some(m) = &c.method {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            out.push(Invalid::new(
                field("method"),
                format!("expected an HTTP method like GET, HEAD or OPTIONS, got {m:?}"),
            ));
        }
    }
    if let Some(u) = &c.uri {
        if !u.starts_with('/')
            || u.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            out.push(Invalid::new(
                field("uri"),
                format!("expected a path starting with / and without spaces, got {u:?}"),
            ));
        }
    }
    for (k, s) in c.expect_status.iter().enumerate() {
        if !(100..=599).contains(s) {
            out.push(Invalid::new(
                format!("{at}.expect_status[{k}]"),
                format!("must be an HTTP status between 100 and 599, got {s}"),
            ));
        }
    }
    if let Some(r) = &c.expect_rstatus {
        if let Err(e) = regex::Regex::new(r) {
            out.push(Invalid::new(
                field("expect_rstatus"),
                format!("not a valid regex: {e}"),
            ));
        }
        if !c.expect_status.is_empty() {
            out.push(Invalid::new(
                field("expect_rstatus"),
                "set expect_status or expect_rstatus, not both",
            ));
        }
    }
}

fn positive(out: &mut Vec<Invalid>, at: String, d: Option<Duration>) {
    if d.is_some_and(|d| d.get().is_zero()) {
        out.push(Invalid::new(at, "must be more than 0s"));
    }
}

impl DaemonConfig for Config {
    fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.frontends.is_empty() {
            out.push(Invalid::new("frontends", "at least one frontend is needed"));
        }
        let mut binds: HashMap<SocketAddr, &str> = HashMap::new();
        for (name, f) in &self.frontends {
            if f.bind.is_empty() {
                out.push(Invalid::new(
                    format!("frontends.{name}.bind"),
                    "at least one address:port is needed",
                ));
            }
            for (k, addr) in f.bind.iter().enumerate() {
                if let Some(other) = binds.insert(*addr, name) {
                    out.push(Invalid::new(
                        format!("frontends.{name}.bind[{k}]"),
                        format!("{addr} is already bound by frontend {other:?}"),
                    ));
                }
            }
            if !self.backends.contains_key(&f.backend) {
                let known: Vec<_> = self.backends.keys().map(String::as_str).collect();
                out.push(Invalid::new(
                    format!("frontends.{name}.backend"),
                    format!(
                        "no backend named {:?} (backends: {})",
                        f.backend,
                        known.join(", ")
                    ),
                ));
            }
            if f.maxconn == Some(0) {
                out.push(Invalid::new(
                    format!("frontends.{name}.maxconn"),
                    "must be at least 1",
                ));
            }
        }
        if let Some(s) = &self.runtime_socket {
            match u32::from_str_radix(&s.mode, 8) {
                Ok(m) if m <= 0o777 && m & 0o007 != 0 => out.push(Invalid::new(
                    "runtime_socket.mode",
                    format!(
                        "{:?} lets every local user run commands (the socket's mode is its only credential): give others no permission, e.g. \"0600\" or \"0660\"",
                        s.mode
                    ),
                )),
                Ok(m) if m <= 0o777 => {}
                _ => out.push(Invalid::new(
                    "runtime_socket.mode",
                    format!(
                        "expected octal permission bits like \"0600\", got {:?}",
                        s.mode
                    ),
                )),
            }
        }
        if let Some(n) = self.nbthread {
            check::range(&mut out, "nbthread", n, 1, 256);
        }
        let d = &self.defaults;
        check::range(&mut out, "defaults.maxconn", d.maxconn, 1, 1_000_000);
        check::range(&mut out, "defaults.rise", d.rise, 1, 1000);
        check::range(&mut out, "defaults.fall", d.fall, 1, 1000);
        check::range(&mut out, "defaults.retries", d.retries, 0, 100);
        positive(&mut out, "defaults.inter".into(), Some(d.inter));
        positive(&mut out, "defaults.fastinter".into(), d.fastinter);
        positive(&mut out, "defaults.downinter".into(), d.downinter);
        let t = &d.timeout;
        for (key, v) in [
            ("connect", Some(t.connect)),
            ("client", Some(t.client)),
            ("server", Some(t.server)),
            ("queue", Some(t.queue)),
            ("tunnel", t.tunnel),
            ("check", Some(t.check)),
        ] {
            positive(&mut out, format!("defaults.timeout.{key}"), v);
        }
        validate_check(&mut out, "defaults.check", &d.check);
        for (b, backend) in &self.backends {
            let at = |key: &str| format!("backends.{b}.{key}");
            if backend.servers.is_empty() {
                out.push(Invalid::new(at("servers"), "at least one server is needed"));
            }
            if let Some(r) = backend.retries {
                check::range(&mut out, at("retries"), r, 0, 100);
            }
            if let Some(c) = &backend.check {
                validate_check(&mut out, &at("check"), c);
            }
            for (key, v) in [("rise", backend.rise), ("fall", backend.fall)] {
                if let Some(v) = v {
                    check::range(&mut out, at(key), v, 1, 1000);
                }
            }
            for (key, v) in [
                ("inter", backend.inter),
                ("fastinter", backend.fastinter),
                ("downinter", backend.downinter),
                ("timeout.connect", backend.timeout.connect),
                ("timeout.client", backend.timeout.client),
                ("timeout.server", backend.timeout.server),
                ("timeout.queue", backend.timeout.queue),
                ("timeout.tunnel", backend.timeout.tunnel),
                ("timeout.check", backend.timeout.check),
            ] {
                positive(&mut out, at(key), v);
            }
            for (i, s) in backend.servers.iter().enumerate() {
                let at = |key: &str| format!("backends.{b}.servers[{i}].{key}");
                check::range(&mut out, at("weight"), s.weight, 0, 256);
                if let Some(rise) = s.rise {
                    check::range(&mut out, at("rise"), rise, 1, 1000);
                }
                if let Some(fall) = s.fall {
                    check::range(&mut out, at("fall"), fall, 1, 1000);
                }
                for (key, v) in [
                    ("inter", s.inter),
                    ("fastinter", s.fastinter),
                    ("downinter", s.downinter),
                ] {
                    positive(&mut out, at(key), v);
                }
                if s.address.port() == 0 {
                    out.push(Invalid::new(at("address"), "port 0 cannot be connected to"));
                }
                if s.port == Some(0) {
                    out.push(Invalid::new(at("port"), "port 0 cannot be connected to"));
                }
                if !valid_name(&s.name) {
                    out.push(Invalid::new(
                        at("name"),
                        format!("{:?}: use letters, digits, '-', '_' and '.' (it appears in `backend/server` commands)", s.name),
                    ));
                }
            }
            check::unique_names(
                &mut out,
                backend
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("backends.{b}.servers[{i}].name"), s.name.as_str())),
                "server",
            );
        }
        for f in self.frontends.keys() {
            if !valid_name(f) {
                out.push(Invalid::new(
                    format!("frontends.{f}"),
                    format!("{f:?}: use letters, digits, '-', '_' and '.' for frontend names"),
                ));
            }
        }
        for b in self.backends.keys() {
            if !valid_name(b) {
                out.push(Invalid::new(
                    format!("backends.{b}"),
                    format!("{b:?}: use letters, digits, '-', '_' and '.' for backend names"),
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

    fn threads(&self) -> Option<usize> {
        self.nbthread
    }
}

/// Names that read unambiguously in `backend/server` runtime commands and
/// CSV.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn errors(text: &str) -> Vec<String> {
        hastack_rt::config::error_lines::<Config>("lbd.yaml", text)
    }

    #[test]
    fn example_configs_are_valid() {
        assert_eq!(
            errors(include_str!("../../../configs/lbd.yaml")),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(include_str!("../../../configs/lab/lbd-1.yaml")),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(include_str!("../../../configs/lab/lbd-2.yaml")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_runtime_socket_open_to_every_user_is_refused() {
        let base = "frontends:\n  f: {bind: [127.0.0.1:1], backend: b}\nbackends:\n  b:\n    servers:\n      - {name: a, address: 127.0.0.1:2}\n";
        let e = errors(&format!(
            "runtime_socket: {{path: /run/lbd.sock, mode: \"0666\"}}\n{base}"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("runtime_socket.mode: \"0666\" lets every local user run commands"),
            "{e:?}"
        );
        for ok in ["0600", "0660", "0700"] {
            let e = errors(&format!(
                "runtime_socket: {{path: /run/lbd.sock, mode: \"{ok}\"}}\n{base}"
            ));
            assert!(e.is_empty(), "{ok}: {e:?}");
        }
    }

    #[test]
    fn bad_inter_reads_like_the_issue_says() {
        let text = "frontends:\n  mysql: {bind: [127.0.0.1:3306], backend: db}\nbackends:\n  db:\n    servers:\n      - {name: a, address: 127.0.0.1:1}\n      - name: b\n        address: 127.0.0.1:2\n        inter: fast\n";
        assert_eq!(
            errors(text),
            [
                r#"lbd.yaml:9:16: backends.db.servers[1].inter: expected a duration like "2s", "250ms" or "1m", got "fast""#
            ]
        );
    }

    #[test]
    fn every_reference_and_range_error_is_listed() {
        let text = "frontends:\n  a: {bind: [127.0.0.1:3306], backend: nope}\n  b: {bind: [127.0.0.1:3306], backend: db}\nbackends:\n  db:\n    servers:\n      - {name: s, address: 127.0.0.1:1, weight: 300}\n      - {name: s, address: 127.0.0.1:2, rise: 0}\n";
        let e = errors(text);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].contains("frontends.a.backend: no backend named \"nope\" (backends: db)"));
        assert!(
            e[1].contains("frontends.b.bind[0]: 127.0.0.1:3306 is already bound by frontend \"a\"")
        );
        assert!(e
            .iter()
            .any(|l| l.contains("servers[0].weight: must be between 0 and 256, got 300")));
        assert!(e
            .iter()
            .any(|l| l.contains("servers[1].rise: must be between 1 and 1000, got 0")));
        assert!(e
            .iter()
            .any(|l| l.contains("servers[1].name: duplicate server name \"s\"")));
    }

    #[test]
    fn checks_timeouts_and_names_are_validated() {
        let text = "defaults:\n  timeout: {client: 0s}\n  check: {type: http, host: \"a\\r\\nX: y\", user: u, allow_public_key_retrieval: true}\nfrontends:\n  \"my front\": {bind: [127.0.0.1:3306], backend: db}\nbackends:\n  db:\n    timeout: {queue: 0s}\n    check: {type: mysql}\n    servers:\n      - {name: s, address: 127.0.0.1:0}\n";
        let e = errors(text);
        for want in [
            "defaults.timeout.client: must be more than 0s",
            "defaults.check.host: expected a host name without spaces",
            "defaults.check.user: applies to type: mysql checks, this one is type: http",
            "defaults.check.allow_public_key_retrieval: applies to type: mysql checks, this one is type: http",
            "backends.db.timeout.queue: must be more than 0s",
            "backends.db.check.user: a mysql check needs the user it logs in as",
            "backends.db.servers[0].address: port 0 cannot be connected to",
            "frontends.my front: \"my front\": use letters",
        ] {
            assert!(e.iter().any(|l| l.contains(want)), "{want}\n{e:#?}");
        }
    }

    #[test]
    fn servers_inherit_server_then_backend_then_defaults() {
        let text = "defaults:\n  inter: 3s\n  rise: 5\n  send_proxy: v1\n  check: {type: http, uri: /health}\nfrontends:\n  f: {bind: [127.0.0.1:3306], backend: db}\nbackends:\n  db:\n    rise: 4\n    retries: 1\n    servers:\n      - {name: a, address: 127.0.0.1:8066, port: 48700, rise: 3, send_proxy: v2}\n      - {name: b, address: 127.0.0.2:8066, addr: 127.0.0.9, check: false}\n";
        let c: Config = hastack_rt::config::parse(std::path::Path::new("lbd.yaml"), text).unwrap();
        let b = c.backend("db").unwrap();
        assert_eq!((b.retries, b.redispatch), (1, true));
        let (a, bb) = (&b.servers[0], &b.servers[1]);
        assert_eq!((a.health.rise, a.health.fall), (3, 3));
        assert_eq!(a.health.inter, std::time::Duration::from_secs(3));
        assert_eq!(a.send_proxy, SendProxy::V2);
        let check = a.check.as_ref().unwrap();
        assert_eq!(check.address, "127.0.0.1:48700".parse().unwrap());
        assert_eq!(check.kind.uri.as_deref(), Some("/health"));
        assert_eq!(bb.health.rise, 4);
        assert_eq!(bb.send_proxy, SendProxy::V1);
        assert!(bb.check.is_none());
        assert_eq!(b.on_marked_down, OnMarkedDown::ShutdownSessions);
    }

    #[test]
    fn unknown_balance_names_the_choices() {
        let e = errors("frontends: {}\nbackends:\n  db:\n    balance: fastest\n    servers: []\n");
        assert!(
            e[0].starts_with(
                "lbd.yaml:4:14: backends.db.balance: unknown variant `fastest`, expected one of"
            ),
            "{e:?}"
        );
    }
}
