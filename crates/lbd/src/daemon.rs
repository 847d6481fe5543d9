//! lbd as the shared runtime drives it: start binds the frontends and
//! starts the checks, SIGHUP applies a new config in place, SIGTERM stops
//! accepting and lets sessions finish within the grace period.

use std::sync::Arc;

use hastack_rt::admin_auth::{basic_credentials, ct_eq};

use hastack_rt::{ActionError, ActionFuture, Daemon, Page, PageRequest, StartContext};
use serde_json::json;

use crate::config::Config;
use crate::control::Control;
use crate::runtime::Runtime;
use crate::server::AdminState;
use crate::stats;

pub struct Lbd {
    config: Config,
    runtime: Arc<Runtime>,
    control: Option<Control>,
}

enum Format {
    Html,
    Csv,
    Json,
}

impl Daemon for Lbd {
    type Config = Config;
    const NAME: &'static str = "lbd";
    const ABOUT: &'static str = "TCP load balancer with health checks for the SQL proxy tier";
    const DEFAULT_ADMIN_PORT: u16 = 48800;
    const EXAMPLE_CONFIG: &'static str = include_str!("../../../configs/lbd.yaml");
    const CONFIG_HELP: &'static str = "defaults: maxconn, timeout (connect, client, server, queue, tunnel, check), retries, redispatch, on_marked_down (shutdown_sessions or none), check, inter, fastinter, downinter, rise, fall, init_state, slowstart, send_proxy - HAProxy's names; check every 2s, rise 2, fall 3.
frontends: by name, each with bind (one or more address:port; an address not yet on the host is fine), backend and maxconn.
backends: by name, each with balance (roundrobin, static-rr, leastconn, source, first), all_backups, the defaults' keys to override them, and servers (name, address, weight 0-256, backup, maxconn, disabled, check, addr and port to check elsewhere - e.g. checkd's 48700 - and the per-server check keys).
check: type tcp (connect), http (method, uri, host, expect_status or expect_rstatus; 2xx/3xx by default) or mysql (user, password, query).
stats: refresh and auth (user, password) for the stats page on admin_http; runtime_socket: path and mode of the runtime API's unix socket; splice: relay with splice(2).";

    async fn start(config: Config, ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        let runtime = Runtime::start(&config).await?;
        ctx.registry
            .register_collector(Box::new(crate::metrics::Metrics(runtime.clone())));
        let control = match &config.runtime_socket {
            Some(socket) => Some(Control::start(socket, runtime.clone())?),
            None => None,
        };
        Ok(Lbd {
            config,
            runtime,
            control,
        })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        // The socket first: a path that cannot be bound refuses the reload
        // before anything else changed.
        let wanted = config.runtime_socket.as_ref();
        let control = match (wanted, &self.control) {
            (Some(w), Some(c)) if w.path == c.path() => None,
            (Some(w), _) => Some(Some(Control::start(w, self.runtime.clone())?)),
            (None, Some(_)) => Some(None),
            (None, None) => None,
        };
        self.runtime.apply(&config)?;
        if let Some(control) = control {
            self.control = control;
        }
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        stats::json(&self.runtime.snapshot())
    }

    fn page(&self, req: &PageRequest) -> Option<Page> {
        let format = match req.path.as_str() {
            "/stats" | "/stats/" => match req.query.as_str() {
                "csv" => Format::Csv,
                "json" => Format::Json,
                _ => Format::Html,
            },
            "/stats;csv" => Format::Csv,
            "/stats;json" => Format::Json,
            _ => return None,
        };
        if let Some(denied) = self.authorize(req.authorization.as_deref()) {
            return Some(denied);
        }
        let snapshot = self.runtime.snapshot();
        Some(match format {
            Format::Html => Page::ok(
                "text/html; charset=utf-8",
                stats::html(&snapshot, self.config.stats.refresh.get()),
            ),
            Format::Csv => Page::ok("text/csv; charset=utf-8", stats::csv(&snapshot)),
            Format::Json => {
                let mut body =
                    serde_json::to_vec_pretty(&stats::json(&snapshot)).unwrap_or_default();
                body.push(b'\n');
                Page::ok("application/json", body)
            }
        })
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
    /// `None` when the request may see the stats (no `stats.auth`, or the
    /// right basic credentials); otherwise the 401 to send.
    fn authorize(&self, header: Option<&str>) -> Option<Page> {
        let auth = self.config.stats.auth.as_ref()?;
        let given = header
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| basic_credentials(b.trim().as_bytes()));
        if given.is_some_and(|(user, password)| {
            // Both compared, so the time does not say which was wrong.
            ct_eq(&user, auth.user.as_bytes()) & ct_eq(&password, auth.password.expose().as_bytes())
        }) {
            return None;
        }
        Some(Page {
            status: 401,
            content_type: "text/plain; charset=utf-8",
            body: b"the stats page needs a user and password (stats.auth)\n".to_vec(),
            headers: vec![("www-authenticate", "Basic realm=\"lbd stats\"".to_owned())],
        })
    }

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
