//! checkd's config: services, each a listener with xinetd's access control
//! and limits, answering HTTP checks (`http_check`) or running a program
//! per connection (`exec`, xinetd's `server`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;

use hastack_rt::config::{AdminHttp, DaemonConfig, Invalid};
pub use hastack_rt::Cidr;
use hastack_rt::{Duration, Secret};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub admin_http: AdminHttp,
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    pub services: BTreeMap<String, Service>,
}

fn default_grace() -> Duration {
    Duration::from_secs(5)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(rename = "type")]
    pub kind: Kind,
    pub bind: SocketAddr,
    #[serde(default)]
    pub disable: bool,
    /// Peers allowed (addresses or CIDRs); empty allows everyone not in `no_access`.
    #[serde(default)]
    pub only_from: Vec<Cidr>,
    #[serde(default)]
    pub no_access: Vec<Cidr>,
    /// The balancers that check this service (addresses or CIDRs): their
    /// connections are outside `cps` and `instances`, so no other peer can
    /// switch the checks off. They must still pass only_from/no_access.
    #[serde(default)]
    pub checkers: Vec<Cidr>,
    /// Connections served at once (xinetd's `instances`).
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Connections at once from one peer address.
    pub per_source: Option<u32>,
    /// xinetd's `cps`: above `rate` connections per second, stop accepting for `pause`.
    #[serde(default)]
    pub cps: Cps,
    /// `http_check`: what decides 200 or 503.
    pub probe: Option<Probe>,
    /// `exec`: the program, its arguments, its user and time limit.
    pub server: Option<PathBuf>,
    #[serde(default)]
    pub server_args: Vec<String>,
    pub user: Option<String>,
    pub timeout: Option<Duration>,
    /// What a served connection's log line carries (xinetd's names).
    #[serde(default = "default_log_on_success")]
    pub log_on_success: Vec<LogItem>,
    /// What a refused connection's log line carries.
    #[serde(default = "default_log_on_failure")]
    pub log_on_failure: Vec<LogItem>,
}

fn default_log_on_success() -> Vec<LogItem> {
    vec![LogItem::Host, LogItem::Duration]
}

fn default_log_on_failure() -> Vec<LogItem> {
    vec![LogItem::Host]
}

/// xinetd's `log_on_success` / `log_on_failure` items.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogItem {
    /// The peer address.
    #[serde(alias = "host")]
    Host,
    /// The exec service's process id.
    #[serde(alias = "pid")]
    Pid,
    /// How long the connection was served.
    #[serde(alias = "duration")]
    Duration,
    /// The exec service's exit status.
    #[serde(alias = "exit")]
    Exit,
    /// Why a connection was refused.
    #[serde(alias = "attempt")]
    Attempt,
    /// Bytes in and out (exec services).
    #[serde(alias = "traffic")]
    Traffic,
}

fn default_instances() -> u32 {
    50
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    HttpCheck,
    Exec,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Cps {
    pub rate: u32,
    pub pause: Duration,
}

impl Default for Cps {
    fn default() -> Self {
        // xinetd's default: 50 per second, then a 10 s pause.
        Cps {
            rate: 50,
            pause: Duration::from_secs(10),
        }
    }
}

/// One of `mysql`, `tcp`, `http`, `exec`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub mysql: Option<MysqlProbe>,
    pub tcp: Option<TcpProbe>,
    pub http: Option<HttpProbe>,
    pub exec: Option<ExecProbe>,
    /// Seconds a result is reused; concurrent checks share one probe.
    #[serde(default = "default_cache")]
    pub cache: Duration,
    /// While this file exists, answer 503 (drain by hand).
    pub maintenance_file: Option<PathBuf>,
}

fn default_cache() -> Duration {
    Duration::from_millis(500)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MysqlProbe {
    pub address: SocketAddr,
    pub user: String,
    pub password: Secret,
    #[serde(default = "default_query")]
    pub query: String,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
    /// For a database probed directly: a read-only server counts as down.
    #[serde(default)]
    pub fail_when_read_only: bool,
    /// For caching_sha2_password full authentication, ask the server for
    /// its RSA public key over plain TCP (a man in the middle can send its
    /// own and learn the password). Off: such a login fails, saying so; the
    /// fast path (the server has the password cached) needs no key.
    #[serde(default)]
    pub allow_public_key_retrieval: bool,
}

fn default_query() -> String {
    "SELECT 1".into()
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    pub address: SocketAddr,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub url: String,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecProbe {
    pub command: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
}

impl DaemonConfig for Config {
    fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.services.is_empty() {
            out.push(Invalid::new("services", "at least one service is needed"));
        }
        let mut binds: HashMap<SocketAddr, &str> = HashMap::new();
        for (name, s) in &self.services {
            let at = |key: &str| format!("services.{name}.{key}");
            if !s.disable {
                if let Some(other) = binds.insert(s.bind, name) {
                    out.push(Invalid::new(
                        at("bind"),
                        format!("{} is already bound by service {other:?}", s.bind),
                    ));
                }
            }
            if s.instances == 0 {
                out.push(Invalid::new(at("instances"), "must be at least 1"));
            }
            if s.cps.rate == 0 {
                out.push(Invalid::new(at("cps.rate"), "must be at least 1"));
            }
            let access = crate::access::Access {
                only_from: s.only_from.clone(),
                no_access: s.no_access.clone(),
            };
            for c in &s.checkers {
                // A checker the access lists refuse would be closed unread
                // anyway: say so now rather than let its checks fail.
                if let Err(r) = access.check(c.0.network()) {
                    out.push(Invalid::new(
                        at("checkers"),
                        format!(
                            "{c} is refused by {}: checkers are exempt from cps and instances, not from access control; allow it in only_from",
                            r.label()
                        ),
                    ));
                }
            }
            match s.kind {
                Kind::HttpCheck => {
                    if s.server.is_some() {
                        out.push(Invalid::new(
                            at("server"),
                            "only for type: exec; an http_check service uses probe",
                        ));
                    }
                    match &s.probe {
                        None => out.push(Invalid::new(
                            at("probe"),
                            "type: http_check needs a probe (mysql, tcp, http or exec)",
                        )),
                        Some(p) => {
                            let n = [
                                p.mysql.is_some(),
                                p.tcp.is_some(),
                                p.http.is_some(),
                                p.exec.is_some(),
                            ]
                            .into_iter()
                            .filter(|&b| b)
                            .count();
                            if n == 0 {
                                out.push(Invalid::new(
                                    at("probe"),
                                    "give at least one of mysql, tcp, http, exec (all given must pass)",
                                ));
                            }
                            if let Some(h) = &p.http {
                                if !h.url.starts_with("http://") {
                                    out.push(Invalid::new(
                                        at("probe.http.url"),
                                        format!("expected an http:// URL, got {:?}", h.url),
                                    ));
                                }
                            }
                        }
                    }
                }
                Kind::Exec => {
                    if s.probe.is_some() {
                        out.push(Invalid::new(
                            at("probe"),
                            "only for type: http_check; an exec service runs server",
                        ));
                    }
                    match &s.server {
                        None => out.push(Invalid::new(
                            at("server"),
                            "type: exec needs server (the program to run)",
                        )),
                        Some(p) if !p.is_absolute() => out.push(Invalid::new(
                            at("server"),
                            format!(
                                "must be an absolute path, as in xinetd, got {}",
                                p.display()
                            ),
                        )),
                        Some(_) => {}
                    }
                }
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
    fn errors(text: &str) -> Vec<String> {
        hastack_rt::config::error_lines::<Config>("checkd.yaml", text)
    }

    #[test]
    fn example_configs_are_valid() {
        // The packaged one waits for its password, and only for it.
        let (placeholders, other) = hastack_rt::config::placeholder_paths::<Config>(
            "checkd.yaml",
            include_str!("../../../configs/checkd.yaml"),
        );
        assert_eq!(other, Vec::<String>::new());
        assert_eq!(placeholders, ["services.mycat_status.probe.mysql.password"]);
        assert_eq!(
            errors(include_str!("../../../configs/lab/checkd-1.yaml")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn addresses_and_networks_both_parse() {
        assert_eq!(
            "10.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let e = errors("services:\n  a:\n    type: exec\n    bind: 127.0.0.1:1\n    server: /bin/true\n    only_from: [10.0.0.0/24, nowhere]\n");
        assert!(e[0].starts_with("checkd.yaml:6:"), "{e:?}");
        assert!(
            e[0].contains("expected an IP address or CIDR like 10.0.0.0/24, got \"nowhere\""),
            "{e:?}"
        );
    }

    #[test]
    fn kinds_need_their_own_settings() {
        let text = "services:\n  a:\n    type: http_check\n    bind: 127.0.0.1:48700\n    server: /bin/true\n  b:\n    type: exec\n    bind: 127.0.0.1:48700\n    server: relative/script\n    probe: {tcp: {address: 127.0.0.1:1}, http: {url: 'ftp://x'}}\n";
        let e = errors(text);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].contains("services.a.server: only for type: exec"));
        assert!(e[1].contains("services.a.probe: type: http_check needs a probe"));
        assert!(e[2].contains("services.b.bind: 127.0.0.1:48700 is already bound by service \"a\""));
        assert!(e[3].contains("services.b.probe: only for type: http_check"));
        assert!(e[4].contains("services.b.server: must be an absolute path"));
    }

    #[test]
    fn checkers_must_pass_access_control() {
        let svc = |only: &str, no: &str| {
            format!("services:\n  a:\n    type: exec\n    bind: 127.0.0.1:1\n    server: /bin/true\n    only_from: [{only}]\n    no_access: [{no}]\n    checkers: [10.0.0.21, 10.0.1.0/24]\n")
        };
        assert_eq!(errors(&svc("10.0.0.0/16", "")), Vec::<String>::new());
        let e = errors(&svc("10.0.0.0/24", ""));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("services.a.checkers: 10.0.1.0/24 is refused by only_from"),
            "{e:?}"
        );
        let e = errors(&svc("10.0.0.0/16", "10.0.0.21"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("10.0.0.21/32 is refused by no_access"),
            "{e:?}"
        );
        assert!(e[0].contains("allow it in only_from"), "{e:?}");
    }
}
