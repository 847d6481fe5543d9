//! lbd as the shared runtime drives it: start binds the frontends and
//! starts the checks, SIGHUP applies a new config in place, SIGTERM stops
//! accepting and lets sessions finish within the grace period.

use std::sync::Arc;
use std::time::Instant;

use hastack_rt::{ActionError, ActionFuture, Daemon, StartContext};
use serde_json::json;

use crate::config::Config;
use crate::runtime::Runtime;
use crate::server::AdminState;

pub struct Lbd {
    config: Config,
    runtime: Arc<Runtime>,
}

impl Daemon for Lbd {
    type Config = Config;
    const NAME: &'static str = "lbd";
    const ABOUT: &'static str = "TCP load balancer with health checks for the SQL proxy tier";
    const DEFAULT_ADMIN_PORT: u16 = 48800;
    const CONFIG_HELP: &'static str = "defaults: maxconn, timeout (connect, client, server, queue, tunnel, check), retries, redispatch, on_marked_down (shutdown_sessions or none), check, inter, fastinter, downinter, rise, fall, init_state, slowstart, send_proxy - HAProxy's names; check every 2s, rise 2, fall 3.
frontends: by name, each with bind (one or more address:port; an address not yet on the host is fine), backend and maxconn.
backends: by name, each with balance (roundrobin, static-rr, leastconn, source, first), all_backups, the defaults' keys to override them, and servers (name, address, weight 0-256, backup, maxconn, disabled, check, addr and port to check elsewhere - e.g. checkd's 48700 - and the per-server check keys).
check: type tcp (connect), http (method, uri, host, expect_status or expect_rstatus; 2xx/3xx by default) or mysql (user, password, query).
stats: refresh and auth (user, password) for the stats page on admin_http; runtime_socket: path and mode of the runtime API's unix socket; splice: relay with splice(2).";

    async fn start(config: Config, ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        let runtime = Runtime::start(&config).await?;
        ctx.registry
            .register_collector(Box::new(crate::metrics::Metrics(runtime.clone())));
        Ok(Lbd { config, runtime })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        self.runtime.apply(&config)?;
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let table = self.runtime.table();
        let now = Instant::now();
        let backends: serde_json::Map<_, _> = table
            .backends
            .iter()
            .map(|(name, b)| {
                let servers: Vec<_> = b
                    .servers
                    .iter()
                    .map(|s| {
                        let inner = s.lock();
                        let status = inner.status();
                        json!({
                            "name": s.name,
                            "address": inner.settings.address,
                            "admin": inner.admin,
                            "status": status.as_ref().map_or("no check".to_string(), |s| s.text.clone()),
                            "up": inner.admin != AdminState::Maint && inner.is_up(),
                            "weight": inner.effective_weight(now),
                            "sessions": s.counters.current.load(std::sync::atomic::Ordering::Relaxed),
                            "check": status,
                        })
                    })
                    .collect();
                let (up, total) = b.usable(now);
                (
                    name.clone(),
                    json!({ "balance": b.settings.balance, "servers_up": up, "servers_total": total, "servers": servers }),
                )
            })
            .collect();
        let frontends: serde_json::Map<_, _> = table
            .frontends
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    json!({ "bind": f.binds, "backend": f.backend.settings.name, "listening": true,
                            "sessions": f.shared.counters.current.load(std::sync::atomic::Ordering::Relaxed) }),
                )
            })
            .collect();
        json!({ "frontends": frontends, "backends": backends, "sessions": self.runtime.sessions() })
    }

    fn action(&self, name: &str, args: Vec<(String, String)>) -> ActionFuture {
        let result = self.run_action(name, &args);
        Box::pin(async move { result })
    }

    async fn shutdown(&mut self) {
        self.runtime.shutdown().await;
    }
}

impl Lbd {
    fn run_action(
        &self,
        name: &str,
        args: &[(String, String)],
    ) -> Result<serde_json::Value, ActionError> {
        let arg = |k: &str| {
            args.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| {
                    ActionError::BadRequest(format!(
                        "{name} needs ?backend=NAME&server=NAME{}",
                        if k == "value" { "&value=N" } else { "" }
                    ))
                })
        };
        let rt = &self.runtime;
        let (b, s) = (arg("backend")?, arg("server")?);
        let bad = ActionError::BadRequest;
        match name {
            "disable" | "enable" | "drain" => {
                let to = match name {
                    "disable" => AdminState::Maint,
                    "drain" => AdminState::Drain,
                    _ => AdminState::Ready,
                };
                let from = rt.set_admin(b, s, to).map_err(bad)?;
                Ok(json!({ "server": format!("{b}/{s}"), "was": from, "now": to }))
            }
            "set-weight" => {
                let v = arg("value")?;
                let w: u32 = v.parse().map_err(|_| bad(format!("weight must be 0-256, got {v:?}")))?;
                let from = rt.set_weight(b, s, w).map_err(bad)?;
                Ok(json!({ "server": format!("{b}/{s}"), "was": from, "now": w }))
            }
            "set-maxconn" => {
                let v = arg("value")?;
                let m: u32 = v.parse().map_err(|_| bad(format!("maxconn must be a number (0: no limit), got {v:?}")))?;
                rt.set_maxconn(b, s, m).map_err(bad)?;
                Ok(json!({ "server": format!("{b}/{s}"), "maxconn": m }))
            }
            "shutdown-sessions" => {
                let n = rt.shutdown_sessions(b, s).map_err(bad)?;
                Ok(json!({ "server": format!("{b}/{s}"), "sessions_shut_down": n }))
            }
            _ => Err(ActionError::Unknown(format!(
                "lbd has no action {name:?}; try disable, enable, drain, set-weight, set-maxconn, shutdown-sessions"
            ))),
        }
    }
}
