//! vrrpd's Prometheus counters (`/metrics`, prefixed `hastack_vrrpd_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabel {
    pub instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// Empty when no instance owns the advert (an unknown VRID, garbage).
    pub instance: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabel {
    pub instance: String,
    pub from: &'static str,
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub instance: String,
    pub state: &'static str,
}

/// Every reason an advert is dropped, exported from the start at 0 so a
/// rate() or an alert works before the first drop.
pub const DROP_REASONS: &[&str] = &[
    "malformed",
    "version",
    "type",
    "checksum",
    "ttl",
    "auth",
    "vrid",
    "interval",
    "peer",
    "addresses",
];

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub adverts_sent: Family<InstanceLabel, Counter>,
    pub adverts_received: Family<InstanceLabel, Counter>,
    pub adverts_dropped: Family<DropLabel, Counter>,
    pub transitions: Family<TransitionLabel, Counter>,
    /// 1 for the state each instance is in, 0 for the others.
    pub state: Family<StateLabel, Gauge>,
    pub priority: Family<InstanceLabel, Gauge>,
    pub gratuitous_sent: Family<InstanceLabel, Counter>,
    /// Adverts for our VRID with another VIP set (v2 drops them too).
    pub address_mismatch: Family<InstanceLabel, Counter>,
    pub vip_errors: Family<InstanceLabel, Counter>,
}

pub const STATES: &[&str] = &["INIT", "BACKUP", "MASTER", "FAULT"];

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        registry.register(
            "adverts_sent",
            "VRRP advertisements sent, by instance",
            m.adverts_sent.clone(),
        );
        registry.register(
            "adverts_received",
            "VRRP advertisements received and accepted, by instance",
            m.adverts_received.clone(),
        );
        registry.register(
            "adverts_dropped",
            "VRRP advertisements dropped, by instance and reason (ttl, auth, checksum, vrid, interval, version, type, malformed, peer, addresses)",
            m.adverts_dropped.clone(),
        );
        registry.register(
            "transitions",
            "State changes, by instance and from/to state",
            m.transitions.clone(),
        );
        registry.register(
            "state",
            "1 for each instance's current state (INIT, BACKUP, MASTER, FAULT)",
            m.state.clone(),
        );
        registry.register(
            "priority",
            "Each instance's effective priority (base plus tracking weights)",
            m.priority.clone(),
        );
        registry.register(
            "gratuitous_sent",
            "Gratuitous ARP / unsolicited NA packets sent, by instance",
            m.gratuitous_sent.clone(),
        );
        registry.register(
            "address_mismatch",
            "Adverts for the instance's VRID carrying another VIP set: a duplicate VRID or differing configs (v2 drops them, v3 only counts)",
            m.address_mismatch.clone(),
        );
        registry.register(
            "vip_errors",
            "Failed attempts to add or remove a VIP, by instance",
            m.vip_errors.clone(),
        );
        let _ = m.adverts_dropped.get_or_create(&DropLabel {
            instance: String::new(),
            reason: "vrid",
        });
        m
    }

    /// Creates an instance's series at 0 so they are visible from the start.
    pub fn init_instance(&self, instance: &str) {
        let i = InstanceLabel {
            instance: instance.to_string(),
        };
        let _ = self.adverts_sent.get_or_create(&i);
        let _ = self.adverts_received.get_or_create(&i);
        let _ = self.gratuitous_sent.get_or_create(&i);
        let _ = self.vip_errors.get_or_create(&i);
        let _ = self.address_mismatch.get_or_create(&i);
        for reason in DROP_REASONS {
            let _ = self.adverts_dropped.get_or_create(&DropLabel {
                instance: instance.to_string(),
                reason,
            });
        }
    }

    pub fn dropped(&self, instance: &str, reason: &'static str) {
        self.adverts_dropped
            .get_or_create(&DropLabel {
                instance: instance.to_string(),
                reason,
            })
            .inc();
    }

    pub fn set_state(&self, instance: &str, current: &'static str) {
        for state in STATES {
            self.state
                .get_or_create(&StateLabel {
                    instance: instance.to_string(),
                    state,
                })
                .set(i64::from(*state == current));
        }
    }
}
