//! The metrics every daemon exports, named `hastack_<daemon>_<what>_<unit>`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::admin_auth::Refusal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A [`crate::admin_auth::Refusal`]'s label.
    pub reason: &'static str,
}

/// Runtime metrics, registered under the daemon's prefix.
#[derive(Clone, Debug, Default)]
pub struct RuntimeMetrics {
    pub uptime_seconds: Gauge<f64, AtomicU64>,
    pub config_generation: Gauge,
    pub config_reloads: Family<ResultLabel, Counter>,
    pub admin_refused: Family<ReasonLabel, Counter>,
}

impl RuntimeMetrics {
    pub fn register(registry: &mut Registry, version: &'static str) -> Self {
        let m = RuntimeMetrics::default();
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", version)]),
        );
        registry.register(
            "uptime_seconds",
            "Seconds since the daemon started",
            m.uptime_seconds.clone(),
        );
        registry.register(
            "config_generation",
            "Config generation in force: 1 at start, +1 per successful reload",
            m.config_generation.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP) by result",
            m.config_reloads.clone(),
        );
        for result in ["ok", "error"] {
            // Export both series from the start so rate() works from 0.
            let _ = m.config_reloads.get_or_create(&ResultLabel { result });
        }
        registry.register(
            "admin_refused",
            "Admin HTTP requests refused, by reason: origin (an Origin header on an action), not_configured (an action and no admin_http.auth), missing or wrong credential",
            m.admin_refused.clone(),
        );
        for r in Refusal::ALL {
            let _ = m
                .admin_refused
                .get_or_create(&ReasonLabel { reason: r.label() });
        }
        m
    }

    pub fn refused(&self, r: Refusal) {
        self.admin_refused
            .get_or_create(&ReasonLabel { reason: r.label() })
            .inc();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }
}
