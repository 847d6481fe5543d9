//! vrrpd's config: VRRP instances under keepalived's names.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use hastack_rt::config::{check, AdminHttp, DaemonConfig, Invalid};
use hastack_rt::{Duration, Secret};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub admin_http: AdminHttp,
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    /// Health scripts by name (keepalived's `vrrp_script NAME`), used by
    /// instances' `track_script`.
    #[serde(default)]
    pub vrrp_script: BTreeMap<String, Script>,
    /// Process watches by name (keepalived's `vrrp_track_process NAME`),
    /// used by instances' `track_process`.
    #[serde(default)]
    pub vrrp_track_process: BTreeMap<String, TrackedProcess>,
    /// Instances that change state together (keepalived's
    /// `vrrp_sync_group NAME`).
    #[serde(default)]
    pub vrrp_sync_group: BTreeMap<String, SyncGroup>,
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
    /// VIPs with their prefix length and, as in keepalived, optionally
    /// `dev IFACE` and `label IFACE:NAME`: `10.99.0.100/24 label eth0:vip`.
    pub virtual_ipaddress: Vec<Vip>,
    /// Send adverts from this address to `unicast_peers` instead of
    /// multicasting them; adverts from anyone else are dropped.
    #[serde(default)]
    pub unicast_src_ip: Option<IpAddr>,
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// v2 only: keepalived's `authentication { auth_type PASS; auth_pass }`.
    #[serde(default)]
    pub authentication: Option<Authentication>,
    /// v3 over IPv4: which checksum to send and accept (see [`V3Checksum`]).
    #[serde(default)]
    pub v3_checksum: V3Checksum,
    /// Lower priority or fault when these links go down.
    #[serde(default)]
    pub track_interface: Vec<TrackRef>,
    /// keepalived's: the instance's own interface going down is a FAULT
    /// unless this is set (then only `track_interface` counts).
    #[serde(default)]
    pub dont_track_primary: bool,
    /// Names from `vrrp_script`, optionally with a weight overriding the
    /// script's own.
    #[serde(default)]
    pub track_script: Vec<TrackRef>,
    /// Names from `vrrp_track_process`, optionally with a weight.
    #[serde(default)]
    pub track_process: Vec<TrackRef>,
    /// Built-in: the local lbd's admin `/status` must answer 200.
    #[serde(default)]
    pub track_lbd: Option<TrackLbd>,
    /// Gratuitous ARP / unsolicited NA timing, keepalived's names and
    /// defaults: a burst on becoming master, another after the delay.
    #[serde(default = "default_garp_delay")]
    pub garp_master_delay: Duration,
    #[serde(default = "default_garp_repeat")]
    pub garp_master_repeat: u32,
    /// 0s (the default) sends no periodic refresh while master.
    #[serde(default)]
    pub garp_master_refresh: Duration,
    #[serde(default = "default_garp_refresh_repeat")]
    pub garp_master_refresh_repeat: u32,
    #[serde(flatten)]
    pub notify: Notify,
}

/// v3 over IPv4 checksums differ between implementations (RFC 9568 §5.2.8
/// vs keepalived's and FRR's default).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum V3Checksum {
    /// Include the IPv4 pseudo-header, as keepalived and FRR do; accept only that.
    #[default]
    PseudoHeader,
    /// The message only, as RFC 9568, Cisco and Juniper do; accept only that.
    MessageOnly,
    /// Send with the pseudo-header, accept either (a mixed segment).
    Auto,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// Up to 8 bytes; keepalived truncates longer ones, we refuse them.
    pub auth_pass: Secret,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum AuthType {
    #[serde(rename = "PASS")]
    Pass,
    /// IPsec AH, which RFC 5798 removed; named so the error can say so.
    #[serde(rename = "AH")]
    Ah,
}

/// One tracked thing: a bare name, or `{name, weight}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRef {
    pub name: String,
    /// keepalived's semantics: none or 0 → failure means FAULT; positive →
    /// added to the priority while healthy; negative → added while failing.
    pub weight: Option<i32>,
}

impl<'de> Deserialize<'de> for TrackRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            weight: Option<i32>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Full(Full),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a name or {name: NAME, weight: N}"))?
        {
            Raw::Name(name) => Ok(TrackRef { name, weight: None }),
            Raw::Full(f) => Ok(TrackRef {
                name: f.name,
                weight: f.weight,
            }),
        }
    }
}

/// keepalived's `vrrp_script`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Run with `/bin/sh -c`; exit status 0 is success.
    pub script: String,
    #[serde(default = "default_script_interval")]
    pub interval: Duration,
    /// A run still going after this counts as a failure (and is killed).
    /// keepalived's default is the interval.
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub weight: i32,
    /// Successes in a row before a failed script counts as healthy again.
    #[serde(default = "one")]
    pub rise: u32,
    /// Failures in a row before a healthy script counts as failed.
    #[serde(default = "one")]
    pub fall: u32,
}

/// keepalived's `vrrp_track_process`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackedProcess {
    /// The process name as in /proc/PID/comm (e.g. `lbd`), or the full
    /// command path when `param_match` is set.
    pub process: String,
    /// Also match these arguments exactly (keepalived's `param_match initial`
    /// is not supported; the whole command line after the name must match).
    #[serde(default)]
    pub param_match: Option<String>,
    /// At least this many processes must run.
    #[serde(default = "one")]
    pub quorum: u32,
    #[serde(default)]
    pub weight: i32,
    /// A process gone for less than this is not yet a failure.
    #[serde(default)]
    pub delay: Duration,
}

/// Built-in check of a local lbd: its admin `/status` answers 200.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackLbd {
    /// lbd's admin HTTP address.
    #[serde(default = "default_lbd_admin")]
    pub admin: std::net::SocketAddr,
    #[serde(default = "default_lbd_interval")]
    pub interval: Duration,
    #[serde(default = "default_lbd_timeout")]
    pub timeout: Duration,
    #[serde(default)]
    pub weight: i32,
    #[serde(default = "one")]
    pub rise: u32,
    #[serde(default = "default_lbd_fall")]
    pub fall: u32,
}

/// keepalived's `vrrp_sync_group`: if one member leaves MASTER, all do.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    pub group: Vec<String>,
    #[serde(flatten)]
    pub notify: Notify,
}

/// Scripts run on state changes, keepalived's names. Each runs with
/// `/bin/sh -c`; `notify` gets keepalived's arguments appended:
/// `INSTANCE|GROUP NAME MASTER|BACKUP|FAULT|STOP PRIORITY`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub notify_master: Option<String>,
    #[serde(default)]
    pub notify_backup: Option<String>,
    #[serde(default)]
    pub notify_fault: Option<String>,
    #[serde(default)]
    pub notify_stop: Option<String>,
    #[serde(default)]
    pub notify: Option<String>,
}

/// A VIP as keepalived writes it: `ADDR/LEN [dev IFACE] [label LABEL]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vip {
    pub addr: IpNet,
    /// Another interface than the instance's.
    pub dev: Option<String>,
    /// An IPv4 address label (`ip addr ... label eth0:vip`).
    pub label: Option<String>,
}

impl FromStr for Vip {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let first = words.next().ok_or("empty virtual IP")?;
        let addr = match first.parse::<IpNet>() {
            Ok(net) => net,
            // keepalived's default prefix for a bare address is /32 (/128).
            Err(_) => first
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("{first:?} is not an address with a prefix length"))?,
        };
        let mut vip = Vip {
            addr,
            dev: None,
            label: None,
        };
        while let Some(word) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| format!("{word:?} needs a value"))?;
            match word {
                "dev" => vip.dev = Some(value.to_string()),
                "label" => vip.label = Some(value.to_string()),
                other => {
                    return Err(format!(
                        "unknown virtual IP option {other:?} (known: dev, label)"
                    ))
                }
            }
        }
        Ok(vip)
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if let Some(label) = &self.label {
            write!(f, " label {label}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Vip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Vip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Instance {
    /// The interface a VIP lives on.
    pub fn vip_dev<'a>(&'a self, vip: &'a Vip) -> &'a str {
        vip.dev.as_deref().unwrap_or(&self.interface)
    }

    /// `track_interface` plus, as keepalived does, the instance's own
    /// interface (a FAULT when down) unless listed or `dont_track_primary`.
    pub fn tracked_interfaces(&self) -> Vec<TrackRef> {
        let mut out = self.track_interface.clone();
        if !self.dont_track_primary && !out.iter().any(|t| t.name == self.interface) {
            out.push(TrackRef {
                name: self.interface.clone(),
                weight: None,
            });
        }
        out
    }

    pub fn is_v6(&self) -> bool {
        self.virtual_ipaddress
            .first()
            .is_some_and(|v| matches!(v.addr, IpNet::V6(_)))
    }
}

fn one() -> u32 {
    1
}

fn default_script_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_lbd_admin() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 48800))
}

fn default_lbd_interval() -> Duration {
    Duration::from_millis(500)
}

fn default_lbd_timeout() -> Duration {
    Duration::from_millis(400)
}

fn default_lbd_fall() -> u32 {
    2
}

fn default_garp_delay() -> Duration {
    Duration::from_secs(5)
}

fn default_garp_repeat() -> u32 {
    5
}

fn default_garp_refresh_repeat() -> u32 {
    1
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
            let v6 = i.is_v6();
            for (k, vip) in i.virtual_ipaddress.iter().enumerate() {
                let vip = &vip.addr;
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
            self.validate_instance_extras(name, i, &mut out);
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
        self.validate_scripts_and_groups(&mut out);
        out
    }

    fn admin_http(&self) -> &AdminHttp {
        &self.admin_http
    }

    fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }
}

impl Config {
    fn validate_instance_extras(&self, name: &str, i: &Instance, out: &mut Vec<Invalid>) {
        let at = |key: &str| format!("instances.{name}.{key}");
        let v6 = i.is_v6();
        if let Some(auth) = &i.authentication {
            if auth.auth_type == AuthType::Ah {
                out.push(Invalid::new(
                    at("authentication.auth_type"),
                    "AH authentication was removed from VRRP (RFC 5798 §9); use PASS with version 2, or none",
                ));
            }
            if i.version == 3 {
                out.push(Invalid::new(
                    at("authentication"),
                    "VRRP v3 has no authentication (RFC 5798 §9); remove it or use version: 2",
                ));
            }
            let len = auth.auth_pass.expose().len();
            if !(1..=8).contains(&len) {
                out.push(Invalid::new(
                    at("authentication.auth_pass"),
                    format!("a VRRP password is 1 to 8 bytes, this one is {len}"),
                ));
            }
        }
        if i.v3_checksum != V3Checksum::PseudoHeader && (i.version != 3 || v6) {
            out.push(Invalid::new(
                at("v3_checksum"),
                "only VRRP v3 over IPv4 has a checksum choice",
            ));
        }
        let family_ok = |ip: &IpAddr| ip.is_ipv6() == v6;
        if let Some(src) = &i.unicast_src_ip {
            if !family_ok(src) {
                out.push(Invalid::new(
                    at("unicast_src_ip"),
                    "must be of the VIPs' address family",
                ));
            }
            if i.unicast_peers.is_empty() {
                out.push(Invalid::new(
                    at("unicast_peers"),
                    "unicast_src_ip needs at least one peer",
                ));
            }
        }
        for (k, peer) in i.unicast_peers.iter().enumerate() {
            if !family_ok(peer) {
                out.push(Invalid::new(
                    at(&format!("unicast_peers[{k}]")),
                    "must be of the VIPs' address family",
                ));
            }
        }
        for (k, t) in i.track_script.iter().enumerate() {
            if !self.vrrp_script.contains_key(&t.name) {
                out.push(Invalid::new(
                    at(&format!("track_script[{k}]")),
                    format!("no vrrp_script named {:?}", t.name),
                ));
            }
        }
        for (k, t) in i.track_process.iter().enumerate() {
            if !self.vrrp_track_process.contains_key(&t.name) {
                out.push(Invalid::new(
                    at(&format!("track_process[{k}]")),
                    format!("no vrrp_track_process named {:?}", t.name),
                ));
            }
        }
        for (key, t) in [
            ("track_script", &i.track_script),
            ("track_process", &i.track_process),
            ("track_interface", &i.track_interface),
        ] {
            for (k, r) in t.iter().enumerate() {
                if let Some(w) = r.weight {
                    check::range(out, at(&format!("{key}[{k}].weight")), w, -254, 254);
                }
            }
        }
        if let Some(t) = &i.track_lbd {
            check::range(out, at("track_lbd.rise"), t.rise, 1, 1000);
            check::range(out, at("track_lbd.fall"), t.fall, 1, 1000);
            check::range(out, at("track_lbd.weight"), t.weight, -254, 254);
            if t.timeout.get().is_zero() || t.interval.get().is_zero() {
                out.push(Invalid::new(
                    at("track_lbd"),
                    "interval and timeout must be above 0",
                ));
            }
        }
        check::range(out, at("garp_master_repeat"), i.garp_master_repeat, 0, 1000);
        check::range(
            out,
            at("garp_master_refresh_repeat"),
            i.garp_master_refresh_repeat,
            1,
            1000,
        );
    }

    fn validate_scripts_and_groups(&self, out: &mut Vec<Invalid>) {
        for (name, s) in &self.vrrp_script {
            let at = |key: &str| format!("vrrp_script.{name}.{key}");
            if s.script.trim().is_empty() {
                out.push(Invalid::new(at("script"), "empty command"));
            }
            check::range(out, at("rise"), s.rise, 1, 1000);
            check::range(out, at("fall"), s.fall, 1, 1000);
            check::range(out, at("weight"), s.weight, -254, 254);
            if s.interval.get().is_zero() {
                out.push(Invalid::new(at("interval"), "must be above 0"));
            }
        }
        for (name, p) in &self.vrrp_track_process {
            let at = |key: &str| format!("vrrp_track_process.{name}.{key}");
            if p.process.is_empty() {
                out.push(Invalid::new(at("process"), "empty process name"));
            }
            check::range(out, at("quorum"), p.quorum, 1, 65535);
            check::range(out, at("weight"), p.weight, -254, 254);
        }
        let mut member_of: HashMap<&str, &str> = HashMap::new();
        for (name, g) in &self.vrrp_sync_group {
            if g.group.len() < 2 {
                out.push(Invalid::new(
                    format!("vrrp_sync_group.{name}.group"),
                    "a sync group needs at least two instances",
                ));
            }
            for (k, member) in g.group.iter().enumerate() {
                let at = format!("vrrp_sync_group.{name}.group[{k}]");
                if !self.instances.contains_key(member) {
                    out.push(Invalid::new(at, format!("no instance named {member:?}")));
                } else if let Some(other) = member_of.insert(member, name) {
                    out.push(Invalid::new(
                        at,
                        format!("{member:?} is already in sync group {other:?}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn errors(text: &str) -> Vec<String> {
        hastack_rt::config::error_lines::<Config>("vrrpd.yaml", text)
    }

    #[test]
    fn example_config_is_valid_but_for_its_placeholder() {
        let (placeholders, other) = hastack_rt::config::placeholder_paths::<Config>(
            "vrrpd.yaml",
            include_str!("../../../configs/vrrpd.yaml"),
        );
        assert_eq!(other, Vec::<String>::new());
        assert_eq!(
            placeholders,
            ["instances.VI_MYSQL.authentication.auth_pass"]
        );
        // Set, it is valid.
        let set = include_str!("../../../configs/vrrpd.yaml")
            .replace("auth_pass: __CHANGE_ME__", "auth_pass: s3cret");
        assert_eq!(errors(&set), Vec::<String>::new());
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

    #[test]
    fn vip_takes_keepalived_options() {
        let v: Vip = "10.0.0.1/24 dev eth1 label eth1:vip".parse().unwrap();
        assert_eq!(v.dev.as_deref(), Some("eth1"));
        assert_eq!(v.label.as_deref(), Some("eth1:vip"));
        assert_eq!(v.to_string(), "10.0.0.1/24 dev eth1 label eth1:vip");
        let bare: Vip = "10.0.0.1".parse().unwrap();
        assert_eq!(bare.addr.to_string(), "10.0.0.1/32");
        assert!("10.0.0.1/24 scope link"
            .parse::<Vip>()
            .unwrap_err()
            .contains("unknown virtual IP option \"scope\""));
        assert!("10.0.0.1/24 dev"
            .parse::<Vip>()
            .unwrap_err()
            .contains("needs a value"));
    }

    #[test]
    fn tracking_and_auth_are_checked() {
        let e = errors(
            "vrrp_sync_group:\n  g:\n    group: [a, nope]\ninstances:\n  a:\n    interface: eth0\n    virtual_router_id: 9\n    version: 3\n    virtual_ipaddress: [10.0.0.1/24]\n    authentication: {auth_type: AH, auth_pass: toolongpassword}\n    track_script: [missing, {name: m2, weight: -300}]\n    unicast_peers: [fd00::2]\n",
        );
        let want = [
            "auth_type: AH authentication was removed",
            "authentication: VRRP v3 has no authentication",
            "auth_pass: a VRRP password is 1 to 8 bytes, this one is 15",
            "unicast_peers[0]: must be of the VIPs' address family",
            "track_script[0]: no vrrp_script named \"missing\"",
            "track_script[1]: no vrrp_script named \"m2\"",
            "track_script[1].weight: must be between -254 and 254",
            "group[1]: no instance named \"nope\"",
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for w in want {
            assert!(e.iter().any(|l| l.contains(w)), "missing {w:?} in {e:#?}");
        }
        assert!(
            !e.iter().any(|l| l.contains("toolongpassword")),
            "a password must never be echoed: {e:#?}"
        );
    }

    #[test]
    fn track_ref_is_a_name_or_a_map() {
        let c: Config = hastack_rt::config::parse(
            std::path::Path::new("v.yaml"),
            "vrrp_script:\n  s: {script: \"true\"}\ninstances:\n  a:\n    interface: eth0\n    virtual_router_id: 9\n    virtual_ipaddress: [10.0.0.1/24]\n    track_script: [s, {name: s, weight: 10}]\n",
        )
        .unwrap();
        let t = &c.instances["a"].track_script;
        assert_eq!(
            t[0],
            TrackRef {
                name: "s".into(),
                weight: None
            }
        );
        assert_eq!(t[1].weight, Some(10));
        assert_eq!(c.vrrp_script["s"].timeout, None);
    }
}
