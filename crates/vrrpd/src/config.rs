//! vrrpd's config: VRRP instances under keepalived's names.

use std::collections::{BTreeMap, HashMap};

use hastack_rt::config::{check, AdminHttp, DaemonConfig, Invalid};
use hastack_rt::Duration;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub admin_http: AdminHttp,
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    /// VRRP instances by name (keepalived's `vrrp_instance NAME`).
    pub instances: BTreeMap<String, Instance>,
}

fn default_grace() -> Duration {
    Duration::from_secs(3)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Interface adverts are sent on and VIPs are added to.
    pub interface: String,
    pub virtual_router_id: u8,
    /// 1–254 for a backup-capable router; 255 only for the address owner.
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default = "default_advert_int")]
    pub advert_int: Duration,
    #[serde(default = "default_version")]
    pub version: u8,
    /// Start-up hint, as keepalived's `state`; the election decides.
    #[serde(default)]
    pub state: StateHint,
    #[serde(default)]
    pub nopreempt: bool,
    #[serde(default)]
    pub preempt_delay: Duration,
    /// VIPs with their prefix length, e.g. `10.99.0.100/24`.
    pub virtual_ipaddress: Vec<IpNet>,
}

fn default_priority() -> u8 {
    100
}

fn default_advert_int() -> Duration {
    Duration::from_secs(1)
}

fn default_version() -> u8 {
    2
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum StateHint {
    Master,
    #[default]
    Backup,
}

impl DaemonConfig for Config {
    fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.instances.is_empty() {
            out.push(Invalid::new(
                "instances",
                "at least one VRRP instance is needed",
            ));
        }
        let mut vrids: HashMap<(&str, u8, bool), &str> = HashMap::new();
        for (name, i) in &self.instances {
            let at = |key: &str| format!("instances.{name}.{key}");
            check::range(
                &mut out,
                at("virtual_router_id"),
                i.virtual_router_id,
                1,
                255,
            );
            check::range(&mut out, at("priority"), i.priority, 1, 255);
            check::range(&mut out, at("version"), i.version, 2, 3);
            let ms = i.advert_int.get().as_millis();
            if i.version == 2 && (ms % 1000 != 0 || !(1000..=255_000).contains(&ms)) {
                out.push(Invalid::new(
                    at("advert_int"),
                    format!(
                        "VRRP v2 advertises in whole seconds from 1s to 255s, got {}",
                        i.advert_int
                    ),
                ));
            }
            if i.version == 3 && (ms % 10 != 0 || !(10..=40_950).contains(&ms)) {
                out.push(Invalid::new(
                    at("advert_int"),
                    format!(
                        "VRRP v3 advertises in centiseconds from 10ms to 40.95s, got {}",
                        i.advert_int
                    ),
                ));
            }
            if i.virtual_ipaddress.is_empty() {
                out.push(Invalid::new(
                    at("virtual_ipaddress"),
                    "at least one virtual IP is needed",
                ));
            }
            let v6 = i
                .virtual_ipaddress
                .first()
                .is_some_and(|n| matches!(n, IpNet::V6(_)));
            for (k, vip) in i.virtual_ipaddress.iter().enumerate() {
                if matches!(vip, IpNet::V6(_)) != v6 {
                    out.push(Invalid::new(
                        at(&format!("virtual_ipaddress[{k}]")),
                        "an instance carries IPv4 or IPv6 VIPs, not both",
                    ));
                }
                if matches!(vip, IpNet::V6(_)) && i.version == 2 {
                    out.push(Invalid::new(
                        at(&format!("virtual_ipaddress[{k}]")),
                        "IPv6 VIPs need version: 3",
                    ));
                }
            }
            if let Some(other) = vrids.insert((i.interface.as_str(), i.virtual_router_id, v6), name)
            {
                out.push(Invalid::new(
                    at("virtual_router_id"),
                    format!(
                        "instance {other:?} already uses VRID {} on {}",
                        i.virtual_router_id, i.interface
                    ),
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
    fn errors(text: &str) -> Vec<String> {
        hastack_rt::config::error_lines::<Config>("vrrpd.yaml", text)
    }

    #[test]
    fn example_config_is_valid() {
        assert_eq!(
            errors(include_str!("../../../configs/vrrpd.yaml")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rfc_limits_are_enforced() {
        let e = errors(
            "instances:\n  a:\n    interface: eth0\n    virtual_router_id: 0\n    advert_int: 1500ms\n    virtual_ipaddress: [10.0.0.1/24]\n  b:\n    interface: eth0\n    virtual_router_id: 0\n    version: 3\n    advert_int: 5ms\n    virtual_ipaddress: [10.0.0.2/24]\n",
        );
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].starts_with(
            "vrrpd.yaml:4:5: instances.a.virtual_router_id: must be between 1 and 255"
        ));
        assert!(e[1].contains("instances.a.advert_int: VRRP v2 advertises in whole seconds"));
        assert!(e[4].contains("already uses VRID 0 on eth0"));
    }

    #[test]
    fn ipv6_needs_v3_and_no_mixing() {
        let e = errors("instances:\n  a:\n    interface: eth0\n    virtual_router_id: 9\n    virtual_ipaddress: [fd00::1/64, 10.0.0.1/24]\n");
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].contains("IPv6 VIPs need version: 3"));
        assert!(e[1].contains("IPv4 or IPv6 VIPs, not both"));
    }

    #[test]
    fn bad_vip_is_located() {
        let e = errors("instances:\n  a:\n    interface: eth0\n    virtual_router_id: 9\n    virtual_ipaddress: [10.0.0.300/24]\n");
        assert!(e[0].starts_with("vrrpd.yaml:5:"), "{e:?}");
        assert!(e[0].contains("instances.a.virtual_ipaddress[0]"), "{e:?}");
    }
}
