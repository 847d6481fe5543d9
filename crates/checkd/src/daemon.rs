//! checkd as the shared runtime drives it: one listener per enabled
//! service, swapped in place by a reload when its address stays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use hastack_rt::{Daemon, StartContext};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::{accept_loop, Service};

pub struct Checkd {
    config: Config,
    metrics: Metrics,
    running: BTreeMap<String, Running>,
    connections: TaskTracker,
}

/// A listening service.
struct Running {
    bind: SocketAddr,
    current: Arc<RwLock<Arc<Service>>>,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Daemon for Checkd {
    type Config = Config;
    const NAME: &'static str = "checkd";
    const ABOUT: &'static str =
        "Health-check super-server: HTTP checks of the local SQL proxy, xinetd-style services";
    const DEFAULT_ADMIN_PORT: u16 = 9167;
    const EXAMPLE_CONFIG: &'static str = include_str!("../../../configs/checkd.yaml");
    const CONFIG_HELP: &'static str = "services: by name, each with type (http_check or exec), bind, disable, only_from and no_access (addresses or CIDRs; IPv4-mapped IPv6 peers match IPv4 entries; the more specific list wins, a tie refuses), instances, per_source, cps (rate, pause: more than rate connections in a second pause the service), checkers (the balancers' addresses or CIDRs: their connections stand outside cps and instances, so no other peer's flood can pause their checks; per_source and only_from/no_access still apply), log_on_success and log_on_failure (HOST PID DURATION EXIT ATTEMPT TRAFFIC) - xinetd's names.
An http_check service answers each HTTP request (GET, HEAD or OPTIONS, any path) with 200 or 503 and a one-line body saying what was checked and why it failed (JSON with Accept: application/json). Its probe is one or more of mysql (address, user, password, query, timeout, fail_when_read_only), tcp (address, timeout), http (url, timeout: a 2xx is up) and exec (command, args, timeout: exit 0 is up), all of which must pass (for sqlproxyd: mysql on its SQL port and http on its admin /health); cache (how long a result is reused; requests during a probe share it) and maintenance_file (while it exists: 503).
An exec service runs server with server_args as user, the connection as its stdin and stdout and REMOTE_HOST set, killed after timeout - as xinetd does.
checkd import-xinetd FILE... converts xinetd service files (/etc/xinetd.d/*, xinetd.conf with its defaults) to this config on stdout and lists on stderr what it could not convert.";

    async fn start(config: Config, ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        let metrics = Metrics::register(ctx.registry);
        let mut d = Checkd {
            config: config.clone(),
            metrics,
            running: BTreeMap::new(),
            connections: TaskTracker::new(),
        };
        d.apply(&config).await?;
        Ok(d)
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        self.apply(&config).await?;
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let services: serde_json::Map<_, _> = self
            .config
            .services
            .iter()
            .map(|(name, s)| {
                let live = self
                    .running
                    .get(name)
                    .and_then(|r| r.current.read().ok().map(|c| c.load()));
                (
                    name.clone(),
                    json!({
                        "type": s.kind,
                        "bind": s.bind,
                        "disable": s.disable,
                        "only_from": s.only_from,
                        "no_access": s.no_access,
                        "checkers": s.checkers,
                        "instances": s.instances,
                        "listening": live.is_some(),
                        "active": live.map(|l| l.0),
                        "paused_by_cps": live.map(|l| l.1),
                    }),
                )
            })
            .collect();
        json!({ "services": services })
    }

    async fn shutdown(&mut self) {
        self.running.clear();
        self.connections.close();
        self.connections.wait().await;
    }
}

impl Checkd {
    /// Makes the listeners match `config`: a service whose address stays
    /// keeps its socket and gets the new settings; others are bound anew or
    /// closed. Nothing changes unless every new service can be built and bound.
    async fn apply(&mut self, config: &Config) -> anyhow::Result<()> {
        let mut built = BTreeMap::new();
        for (name, s) in config.services.iter().filter(|(_, s)| !s.disable) {
            built.insert(
                name.clone(),
                Arc::new(Service::new(name, s, self.metrics.clone())?),
            );
        }
        let mut fresh = BTreeMap::new();
        for (name, service) in &built {
            let bind = service.config.bind;
            let keeps = self.running.values().any(|r| r.bind == bind);
            if !keeps {
                let listener = TcpListener::bind(bind)
                    .await
                    .map_err(|e| anyhow::anyhow!("service {name}: cannot bind {bind}: {e}"))?;
                fresh.insert(name.clone(), listener);
            }
        }
        let mut next = BTreeMap::new();
        for (name, service) in built {
            let bind = service.config.bind;
            let reused = self
                .running
                .iter()
                .find(|(_, r)| r.bind == bind)
                .map(|(k, _)| k.clone())
                .and_then(|k| self.running.remove(&k));
            let running = match (reused, fresh.remove(&name)) {
                (Some(r), _) => {
                    if let Ok(mut c) = r.current.write() {
                        *c = service;
                    }
                    r
                }
                (None, Some(listener)) => {
                    let current = Arc::new(RwLock::new(service));
                    let stop = CancellationToken::new();
                    tokio::spawn(accept_loop(
                        listener,
                        current.clone(),
                        stop.clone(),
                        self.connections.clone(),
                    ));
                    tracing::info!(service = %name, %bind, "listening");
                    Running {
                        bind,
                        current,
                        stop,
                    }
                }
                (None, None) => continue,
            };
            next.insert(name, running);
        }
        // Whatever is left is disabled or gone: its listener closes.
        for (name, r) in std::mem::take(&mut self.running) {
            tracing::info!(service = %name, bind = %r.bind, "stopped listening");
        }
        self.running = next;
        Ok(())
    }
}
