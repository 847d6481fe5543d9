//! checkd's metrics, `hastack_checkd_*`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub service: String,
    /// `up`/`down` (checks, probes), `only_from`/`no_access`/`instances`/
    /// `per_source`/`cps` (refusals), `exit_0`/`failed`/`timeout` (exec).
    pub result: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub connections: Family<ServiceLabels, Counter>,
    pub refused: Family<ResultLabels, Counter>,
    pub checks: Family<ResultLabels, Counter>,
    pub probes: Family<ResultLabels, Counter>,
    pub probe_seconds: Family<ServiceLabels, Histogram>,
    pub execs: Family<ResultLabels, Counter>,
    pub checker_exempt: Family<ResultLabels, Counter>,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Metrics {
        let m = Metrics {
            connections: Family::default(),
            refused: Family::default(),
            checks: Family::default(),
            probes: Family::default(),
            // 100 µs to ~3.3 s.
            probe_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
            execs: Family::default(),
            checker_exempt: Family::default(),
        };
        r.register(
            "connections",
            "Connections served, per service",
            m.connections.clone(),
        );
        r.register(
            "refused",
            "Connections refused, by service and reason (access control or a limit)",
            m.refused.clone(),
        );
        r.register(
            "checks",
            "HTTP check answers, by service and up/down",
            m.checks.clone(),
        );
        r.register(
            "probes",
            "Probes run (cached and shared answers are not probes)",
            m.probes.clone(),
        );
        r.register(
            "probe_seconds",
            "How long probes took",
            m.probe_seconds.clone(),
        );
        r.register(
            "execs",
            "exec service programs run, by how they ended",
            m.execs.clone(),
        );
        r.register(
            "checker_exempt",
            "Connections of named checkers served although the cps pause or instances limit (result) refused other peers",
            m.checker_exempt.clone(),
        );
        m
    }

    pub fn count(family: &Family<ResultLabels, Counter>, service: &str, result: &'static str) {
        family
            .get_or_create(&ResultLabels {
                service: service.to_owned(),
                result,
            })
            .inc();
    }

    pub fn probe(&self, service: &str, up: bool, took: Duration) {
        Self::count(&self.probes, service, if up { "up" } else { "down" });
        self.probe_seconds
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}
