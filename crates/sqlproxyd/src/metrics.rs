//! sqlproxyd's metrics, `hastack_sqlproxyd_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub data_host: String,
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeRouteLabels {
    pub data_host: String,
    pub node: String,
    /// `read` or `write`: which of a session's connections sent it.
    pub route: &'static str,
}

pub fn route_name(target: crate::route::Target) -> &'static str {
    match target {
        crate::route::Target::Read => "read",
        crate::route::Target::Write => "write",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `read` or `write`.
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HaEventLabels {
    pub data_host: String,
    /// `promote`, `fence`, `follow`, `primary_changed`, `persist`.
    pub event: &'static str,
    /// `ok`, `failed` or `skipped` (another sqlproxyd holds the lock).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProxyHeaderLabels {
    /// `untrusted_peer`: a header from a peer not in proxy_protocol_from;
    /// `bad_header`: a listed peer sent none, a malformed one or too late.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `max_connections`, `max_user_connections`, `login_packet_too_large`.
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub client_connections: Gauge,
    pub client_connections_total: Counter,
    pub auth_failures: Counter,
    /// Connections closed over their PROXY protocol header.
    pub proxy_headers: Family<ProxyHeaderLabels, Counter>,
    pub connections_refused: Family<RefusedLabels, Counter>,
    /// Which refusals get a log line.
    pub refusal_log: std::sync::Arc<std::sync::Mutex<crate::session::limits::RefusalLog>>,
    pub queries: Family<RouteLabels, Counter>,
    pub backend_connections: Family<NodeLabels, Gauge>,
    pub backend_commands: Family<NodeRouteLabels, Counter>,
    pub backend_errors: Family<NodeLabels, Counter>,
    pub backend_latency: Family<NodeLabels, Histogram>,
    pub heartbeat_failures: Family<NodeLabels, Counter>,
    /// 1 for a node that may take reads or writes now, else 0.
    pub node_up: Family<NodeLabels, Gauge>,
    pub node_lag: Family<NodeLabels, Gauge>,
    pub ha_events: Family<HaEventLabels, Counter>,
}

impl Metrics {
    /// The counter of connections closed over a PROXY header for `reason`.
    pub fn proxy_headers_refused(&self, reason: &'static str) -> Counter {
        self.proxy_headers
            .get_or_create(&ProxyHeaderLabels { reason })
            .clone()
    }

    pub fn register(r: &mut Registry) -> Self {
        let m = Metrics {
            client_connections: Gauge::default(),
            client_connections_total: Counter::default(),
            auth_failures: Counter::default(),
            proxy_headers: Family::default(),
            connections_refused: Family::default(),
            refusal_log: Default::default(),
            queries: Family::default(),
            backend_connections: Family::default(),
            backend_commands: Family::default(),
            backend_errors: Family::default(),
            // 100 µs to ~3.3 s.
            backend_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
            heartbeat_failures: Family::default(),
            node_up: Family::default(),
            node_lag: Family::default(),
            ha_events: Family::default(),
        };
        r.register(
            "client_connections",
            "Client sessions open now",
            m.client_connections.clone(),
        );
        r.register(
            "client_connections_accepted",
            "Client sessions accepted",
            m.client_connections_total.clone(),
        );
        r.register(
            "auth_failures",
            "Client logins refused",
            m.auth_failures.clone(),
        );
        r.register(
            "proxy_headers_refused",
            "Client connections closed over their PROXY protocol header, by reason",
            m.proxy_headers.clone(),
        );
        r.register(
            "connections_refused",
            "Client connections turned away by a limit, by the limit",
            m.connections_refused.clone(),
        );
        r.register("queries", "Client statements by route", m.queries.clone());
        r.register(
            "backend_connections",
            "Backend connections open now, per node",
            m.backend_connections.clone(),
        );
        r.register(
            "backend_commands",
            "Commands sent to a node for clients",
            m.backend_commands.clone(),
        );
        r.register(
            "backend_errors",
            "Backend connection failures and lost connections, per node",
            m.backend_errors.clone(),
        );
        r.register(
            "backend_latency_seconds",
            "Time from sending a command to the end of its reply",
            m.backend_latency.clone(),
        );
        r.register(
            "heartbeat_failures",
            "Failed heartbeats, per node",
            m.heartbeat_failures.clone(),
        );
        r.register(
            "node_up",
            "1 when the node may take traffic (primary, or a replica within max_replica_lag)",
            m.node_up.clone(),
        );
        r.register(
            "node_lag_seconds",
            "Seconds_Behind_Master of a replica at the last heartbeat",
            m.node_lag.clone(),
        );
        r.register(
            "ha_events",
            "Failover steps: promotions, fences, replicas pointed at the primary, primary changes",
            m.ha_events.clone(),
        );
        m
    }

    /// Counts a client turned away, and says so with its address (once
    /// per address and reason in a [`crate::session::limits::REFUSAL_LOG_WINDOW`]).
    pub fn refused(
        &self,
        why: crate::session::limits::Refusal,
        peer: std::net::SocketAddr,
        user: &str,
    ) {
        let reason = why.reason();
        self.connections_refused
            .get_or_create(&RefusedLabels { reason })
            .inc();
        let (log, quiet) = self
            .refusal_log
            .lock()
            .map(|mut l| l.note(std::time::Instant::now(), reason, peer.ip()))
            .unwrap_or((true, None));
        if let Some(n) = quiet {
            tracing::warn!(
                refused = n,
                "more client connections refused, not logged one by one"
            );
        }
        if log {
            tracing::warn!(%peer, user, reason, "client connection refused");
        }
    }

    pub fn ha_event(&self, data_host: &str, event: &'static str, result: &'static str) {
        self.ha_events
            .get_or_create(&HaEventLabels {
                data_host: data_host.to_owned(),
                event,
                result,
            })
            .inc();
    }
}

impl NodeLabels {
    pub fn new(data_host: &str, node: &str) -> Self {
        NodeLabels {
            data_host: data_host.to_owned(),
            node: node.to_owned(),
        }
    }
}
