//! One configured service at run time: its listener's accept loop, with
//! access control and limits applied before anything is read, then the
//! connection handed to the HTTP checker or the exec program.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::Access;
use crate::check::Checker;
use crate::config::{self, Kind, LogItem};
use crate::exec::Program;
use crate::limits::{Admitted, Limits};
use crate::metrics::{Metrics, ServiceLabels};

/// A service as it runs: rebuilt on reload, its counters kept.
pub struct Service {
    pub name: Arc<str>,
    pub config: config::Service,
    access: Access,
    /// Peers outside cps and instances ([`crate::limits`]).
    checkers: Vec<config::Cidr>,
    limits: Mutex<Limits>,
    handler: Handler,
    metrics: Metrics,
}

enum Handler {
    Check(Arc<Checker>),
    Exec(Program),
}

impl Service {
    pub fn new(name: &str, c: &config::Service, metrics: Metrics) -> anyhow::Result<Service> {
        let handler = match (c.kind, &c.probe, &c.server) {
            (Kind::HttpCheck, Some(p), _) => {
                Handler::Check(Arc::new(Checker::new(name, p, metrics.clone())))
            }
            (Kind::Exec, _, Some(server)) => Handler::Exec(Program::new(
                server.clone(),
                c.server_args.clone(),
                c.user.as_deref(),
                c.timeout
                    .map_or(std::time::Duration::from_secs(30), |t| t.get()),
            )?),
            // validate() rules these out.
            _ => anyhow::bail!("service {name}: incomplete"),
        };
        Ok(Service {
            name: name.into(),
            config: c.clone(),
            access: Access {
                only_from: c.only_from.clone(),
                no_access: c.no_access.clone(),
            },
            checkers: c.checkers.clone(),
            limits: Mutex::new(Limits::new(
                c.instances,
                c.per_source,
                c.cps.rate,
                c.cps.pause.get(),
            )),
            handler,
            metrics,
        })
    }

    /// Connections being served, and whether cps has paused the service.
    pub fn load(&self) -> (u32, bool) {
        self.limits
            .lock()
            .map(|l| (l.active(), l.paused(Instant::now())))
            .unwrap_or((0, false))
    }
}

/// Accepts until `stop`; each connection runs on `tracker`. The service
/// behind the listener may be swapped by a reload (`current`).
pub async fn accept_loop(
    listener: TcpListener,
    current: Arc<RwLock<Arc<Service>>>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            conn = hastack_rt::net::accept(&listener, "service") => conn,
            _ = stop.cancelled() => return,
        };
        let Ok(service) = current.read().map(|s| s.clone()) else {
            continue;
        };
        let ip = peer.ip();
        let checker = hastack_rt::cidr::any_contains(&service.checkers, ip);
        let admitted = service
            .access
            .check(ip)
            .map_err(|r| r.label())
            .and_then(|()| {
                service
                    .limits
                    .lock()
                    .map_err(|_| "internal")?
                    .admit(ip, checker, Instant::now())
                    .map_err(|l| l.label())
            });
        let how = match admitted {
            Ok(how) => how,
            Err(reason) => {
                Metrics::count(&service.metrics.refused, &service.name, reason);
                log_failure(&service, peer, reason);
                // Closed unread, as xinetd does.
                drop(stream);
                continue;
            }
        };
        if let Admitted::Checker {
            exempted: Some(limit),
        } = how
        {
            Metrics::count(
                &service.metrics.checker_exempt,
                &service.name,
                limit.label(),
            );
        }
        tracker.spawn(async move {
            let started = Instant::now();
            let ended = serve(&service, stream, peer).await;
            if let Ok(mut l) = service.limits.lock() {
                l.release(ip, how);
            }
            log_success(&service, peer, started, ended);
        });
    }
}

/// The exec program's end, when the service runs one.
type ExecEnd = Option<crate::exec::Ended>;

async fn serve(service: &Service, stream: TcpStream, peer: SocketAddr) -> ExecEnd {
    service
        .metrics
        .connections
        .get_or_create(&ServiceLabels {
            service: service.name.to_string(),
        })
        .inc();
    let _ = stream.set_nodelay(true);
    match &service.handler {
        Handler::Check(checker) => {
            crate::http::serve(
                stream,
                checker.clone(),
                service.name.clone(),
                service.metrics.clone(),
            )
            .await;
            None
        }
        Handler::Exec(program) => match program.run(stream, peer).await {
            Ok(ended) => {
                let result = if ended.timed_out {
                    "timeout"
                } else if ended.ok {
                    "exit_0"
                } else {
                    "failed"
                };
                Metrics::count(&service.metrics.execs, &service.name, result);
                Some(ended)
            }
            Err(e) => {
                Metrics::count(&service.metrics.execs, &service.name, "failed");
                tracing::error!(service = %service.name, "exec: {e:#}");
                None
            }
        },
    }
}

fn log_failure(service: &Service, peer: SocketAddr, reason: &str) {
    let items = &service.config.log_on_failure;
    if items.is_empty() {
        return;
    }
    let host = items.contains(&LogItem::Host).then(|| peer.ip());
    let attempt = items.contains(&LogItem::Attempt);
    tracing::warn!(service = %service.name, host = ?host.map(show_ip), reason, attempt, "refused");
}

fn log_success(service: &Service, peer: SocketAddr, started: Instant, ended: ExecEnd) {
    let items = &service.config.log_on_success;
    if items.is_empty() {
        return;
    }
    let has = |i| items.contains(&i);
    let host = has(LogItem::Host).then(|| show_ip(peer.ip()));
    let duration =
        has(LogItem::Duration).then(|| Instant::now().saturating_duration_since(started));
    let pid = if has(LogItem::Pid) {
        ended.as_ref().and_then(|e| e.pid)
    } else {
        None
    };
    let exit = if has(LogItem::Exit) {
        ended.as_ref().map(|e| e.how.clone())
    } else {
        None
    };
    tracing::info!(service = %service.name, host, duration = ?duration, pid, exit, "served");
}

fn show_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(ip.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}
