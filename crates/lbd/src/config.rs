//! lbd's config: frontends, backends and servers, with HAProxy's names
//! (`inter`, `rise`, `fall`, `maxconn`, `balance`, `backup`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use hastack_rt::config::{check, AdminHttp, DaemonConfig, Invalid};
use hastack_rt::Duration;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stats and admin HTTP; HAProxy users know it as the stats page.
    #[serde(default)]
    pub admin_http: AdminHttp,
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    #[serde(default)]
    pub defaults: Defaults,
    pub frontends: BTreeMap<String, Frontend>,
    pub backends: BTreeMap<String, Backend>,
}

fn default_grace() -> Duration {
    Duration::from_secs(10)
}

/// Values servers and frontends inherit unless they set their own.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub maxconn: u32,
    pub timeout: Timeouts,
    pub inter: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        // HAProxy's: maxconn 2000 per frontend, check every 2s, rise 2, fall 3.
        Defaults {
            maxconn: 2000,
            timeout: Timeouts::default(),
            inter: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub connect: Duration,
    pub client: Duration,
    pub server: Duration,
    pub queue: Duration,
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
            check: Duration::from_secs(2),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    /// One or more `address:port` to listen on.
    pub bind: Vec<SocketAddr>,
    pub backend: String,
    pub maxconn: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    #[serde(default)]
    pub balance: Balance,
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
    /// Health-check this server (HAProxy's `check`).
    #[serde(default = "yes")]
    pub check: bool,
    /// Check another port than the traffic port (checkd's 48700).
    pub port: Option<u16>,
    pub inter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

fn default_weight() -> u32 {
    1
}

fn yes() -> bool {
    true
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
        }
        check::range(&mut out, "defaults.rise", self.defaults.rise, 1, 1000);
        check::range(&mut out, "defaults.fall", self.defaults.fall, 1, 1000);
        for (b, backend) in &self.backends {
            if backend.servers.is_empty() {
                out.push(Invalid::new(
                    format!("backends.{b}.servers"),
                    "at least one server is needed",
                ));
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
                if s.inter.is_some_and(|d| d.get().is_zero()) {
                    out.push(Invalid::new(at("inter"), "must be more than 0s"));
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
