//! lbd's Prometheus metrics, read from the running table at each scrape
//! (`/metrics` on the admin endpoint): per server, backend and frontend,
//! with the same counters as the stats page, so the two never disagree.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::runtime::Runtime;
use crate::server::AdminState;

pub struct Metrics(pub Arc<Runtime>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("lbd::Metrics")
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family, its series gathered before encoding.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: MetricType) -> Family {
        Family {
            name,
            help,
            kind,
            series: Vec::new(),
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.series {
            let series = family.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(*value as u64).encode(series)?,
                _ => ConstGauge::new(*value).encode(series)?,
            }
        }
        Ok(())
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let table = self.0.table();
        let now = Instant::now();
        use MetricType::{Counter, Gauge};
        let mut up = Family::new(
            "server_up",
            "1 when the server takes new sessions (UP, not in maintenance)",
            Gauge,
        );
        let mut admin = Family::new(
            "server_admin_state",
            "1 for the server's admin state: ready, drain or maint",
            Gauge,
        );
        let mut weight = Family::new(
            "server_weight",
            "The server's weight now (after drain, set weight, slowstart)",
            Gauge,
        );
        let mut s_cur = Family::new(
            "server_active_sessions",
            "Sessions on the server now",
            Gauge,
        );
        let mut s_tot = Family::new("server_sessions", "Sessions the server has taken", Counter);
        let mut s_in = Family::new(
            "server_received_bytes",
            "Bytes from clients to the server",
            Counter,
        );
        let mut s_out = Family::new(
            "server_sent_bytes",
            "Bytes from the server to clients",
            Counter,
        );
        let mut s_econ = Family::new(
            "server_connect_errors",
            "Failed connect attempts to the server",
            Counter,
        );
        let mut s_retr = Family::new(
            "server_retries",
            "Connect retries after a failure on the server",
            Counter,
        );
        let mut s_redis = Family::new(
            "server_redispatches",
            "Sessions moved to the server after a failure elsewhere",
            Counter,
        );
        let mut chk_fail = Family::new(
            "server_check_failures",
            "Failed health checks while not fully DOWN (HAProxy's chkfail)",
            Counter,
        );
        let mut chk_down = Family::new(
            "server_down_transitions",
            "UP to DOWN transitions (HAProxy's chkdown)",
            Counter,
        );
        let mut chk_dur = Family::new(
            "server_check_duration_seconds",
            "How long the last health check took",
            Gauge,
        );
        let mut b_up = Family::new(
            "backend_servers_up",
            "Servers of the backend taking new sessions",
            Gauge,
        );
        let mut b_queue = Family::new(
            "backend_queued",
            "Connections waiting for a server under its maxconn",
            Gauge,
        );
        let mut b_cur = Family::new(
            "backend_active_sessions",
            "Sessions on the backend now",
            Gauge,
        );
        let mut b_tot = Family::new(
            "backend_sessions",
            "Sessions the backend has taken",
            Counter,
        );
        let mut f_cur = Family::new(
            "frontend_active_sessions",
            "Client connections on the frontend now",
            Gauge,
        );
        let mut f_tot = Family::new(
            "frontend_sessions",
            "Client connections the frontend has accepted",
            Counter,
        );
        let mut f_ref = Family::new("frontend_refused", "Client connections closed for want of a server (none up, queue timeout, connect failed)", Counter);
        let mut f_in = Family::new("frontend_received_bytes", "Bytes from clients", Counter);
        let mut f_out = Family::new("frontend_sent_bytes", "Bytes to clients", Counter);
        for b in table.backends.values() {
            let bl = || vec![("backend", b.settings.name.clone())];
            let c = &b.shared.counters;
            b_up.series.push((bl(), b.usable(now).0 as f64));
            b_queue
                .series
                .push((bl(), f64::from(c.queued.load(Ordering::Relaxed))));
            b_cur
                .series
                .push((bl(), f64::from(c.current.load(Ordering::Relaxed))));
            b_tot
                .series
                .push((bl(), c.total.load(Ordering::Relaxed) as f64));
            for s in &b.servers {
                let sl = || {
                    vec![
                        ("backend", b.settings.name.clone()),
                        ("server", s.name.clone()),
                    ]
                };
                let view = s.view(now);
                let inner = s.lock();
                up.series
                    .push((sl(), if view.usable() { 1.0 } else { 0.0 }));
                for state in [AdminState::Ready, AdminState::Drain, AdminState::Maint] {
                    let mut l = sl();
                    l.push(("state", format!("{state:?}").to_lowercase()));
                    admin
                        .series
                        .push((l, if inner.admin == state { 1.0 } else { 0.0 }));
                }
                weight.series.push((sl(), f64::from(view.weight)));
                let c = &s.counters;
                s_cur
                    .series
                    .push((sl(), f64::from(c.current.load(Ordering::Relaxed))));
                s_tot
                    .series
                    .push((sl(), c.total.load(Ordering::Relaxed) as f64));
                s_in.series
                    .push((sl(), c.bytes.bytes_in.load(Ordering::Relaxed) as f64));
                s_out
                    .series
                    .push((sl(), c.bytes.bytes_out.load(Ordering::Relaxed) as f64));
                s_econ
                    .series
                    .push((sl(), c.connect_errors.load(Ordering::Relaxed) as f64));
                s_retr
                    .series
                    .push((sl(), c.retries.load(Ordering::Relaxed) as f64));
                s_redis
                    .series
                    .push((sl(), c.redispatches.load(Ordering::Relaxed) as f64));
                if let Some(st) = inner.status() {
                    chk_fail.series.push((sl(), st.failed_checks as f64));
                    chk_down.series.push((sl(), st.down_transitions as f64));
                }
                if let Some((took, _)) = inner.last_check {
                    chk_dur.series.push((sl(), took.as_secs_f64()));
                }
            }
        }
        for f in table.frontends.values() {
            let fl = || vec![("frontend", f.name.clone())];
            let c = &f.shared.counters;
            f_cur
                .series
                .push((fl(), f64::from(c.current.load(Ordering::Relaxed))));
            f_tot
                .series
                .push((fl(), c.total.load(Ordering::Relaxed) as f64));
            f_ref
                .series
                .push((fl(), f.shared.refused.load(Ordering::Relaxed) as f64));
            f_in.series
                .push((fl(), c.bytes.bytes_in.load(Ordering::Relaxed) as f64));
            f_out
                .series
                .push((fl(), c.bytes.bytes_out.load(Ordering::Relaxed) as f64));
        }
        for family in [
            up, admin, weight, s_cur, s_tot, s_in, s_out, s_econ, s_retr, s_redis, chk_fail,
            chk_down, chk_dur, b_up, b_queue, b_cur, b_tot, f_cur, f_tot, f_ref, f_in, f_out,
        ] {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}
