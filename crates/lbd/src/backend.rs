//! A backend as the running lbd holds it: its servers, its balancer, and
//! how a new session gets a connected server — pick, queue under
//! `maxconn`, connect, retry and redispatch, PROXY header.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hastack_proto::proxy_protocol;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::balance::{self, Balancer};
use crate::config::{BackendSettings, SendProxy};
use crate::server::{Counters, Server};

/// What outlives a reload of a backend: its counters, its queue, and
/// whether it has had a server to offer.
#[derive(Debug, Default)]
pub struct Shared {
    pub counters: Counters,
    /// Woken when a session ends or a server's state changes, for queued
    /// connections.
    pub freed: Arc<Notify>,
    pub queue_max: AtomicU32,
    pub whole: Mutex<Whole>,
}

/// The backend as a whole: DOWN when no server can take a session
/// (HAProxy's backend status, `chkdown`, `lastchg`, `downtime`).
#[derive(Debug, Default)]
pub struct Whole {
    /// `None` until first seen.
    pub up: Option<bool>,
    pub changed_at: Option<Instant>,
    pub down_transitions: u64,
    pub down_before: Duration,
}

impl Whole {
    /// Folds in whether any server is usable at `now`.
    pub fn observe(&mut self, up: bool, now: Instant) {
        if self.up == Some(up) {
            return;
        }
        if self.up == Some(false) {
            if let Some(at) = self.changed_at {
                self.down_before += now.saturating_duration_since(at);
            }
        }
        if self.up == Some(true) && !up {
            self.down_transitions += 1;
        }
        self.up = Some(up);
        self.changed_at = Some(now);
    }

    pub fn downtime(&self, now: Instant) -> Duration {
        match (self.up, self.changed_at) {
            (Some(false), Some(at)) => self.down_before + now.saturating_duration_since(at),
            _ => self.down_before,
        }
    }
}

#[derive(Debug)]
pub struct Backend {
    pub settings: BackendSettings,
    /// In configured order (the order `first` and backups follow).
    pub servers: Vec<Arc<Server>>,
    balancer: Mutex<Balancer>,
    pub shared: Arc<Shared>,
}

/// Why a session got no server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No server is UP (or all are in maintenance or drained).
    NoServer,
    /// Every usable server stayed at its `maxconn` for `timeout queue`.
    QueueTimeout(Duration),
    /// Connecting failed on every attempt; the last error.
    Connect(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoServer => f.write_str("no server available"),
            Refusal::QueueTimeout(t) => {
                write!(
                    f,
                    "queued {t:?} (timeout queue) with every server at maxconn"
                )
            }
            Refusal::Connect(e) => write!(f, "connect failed after retries: {e}"),
        }
    }
}

/// A session's claim on a server: counted in its `current` until dropped,
/// which wakes the queue.
#[derive(Debug)]
pub struct Lease {
    pub server: Arc<Server>,
    backend: Arc<Shared>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.server.counters.session_ended();
        self.backend.counters.session_ended();
        self.server.freed.notify_waiters();
    }
}

impl Backend {
    pub fn new(
        settings: BackendSettings,
        servers: Vec<Arc<Server>>,
        shared: Arc<Shared>,
    ) -> Backend {
        let balancer = Balancer::new(settings.balance, settings.all_backups);
        Backend {
            settings,
            servers,
            balancer: Mutex::new(balancer),
            shared,
        }
    }

    /// Servers UP and taking traffic, of all.
    pub fn usable(&self, now: Instant) -> (usize, usize) {
        let up = self.servers.iter().filter(|s| s.view(now).usable()).count();
        (up, self.servers.len())
    }

    /// A connected server for a client that reached `local`: picks, waits
    /// in the queue if every usable server is full, connects with retries
    /// (the last ones elsewhere with `redispatch`) and sends the PROXY
    /// header the server wants.
    pub async fn connect(
        &self,
        client: SocketAddr,
        local: SocketAddr,
    ) -> Result<(TcpStream, Lease), Refusal> {
        let t = &self.settings.timeout;
        let mut lease = self.wait_for_server(client.ip(), t.queue.get()).await?;
        let mut failed: Vec<u64> = Vec::new();
        let mut attempt = 0;
        loop {
            let (address, send_proxy) = {
                let inner = lease.server.lock();
                (inner.settings.address, inner.settings.send_proxy)
            };
            let err = match dial(address, t.connect.get()).await {
                Ok(stream) => match proxy_header(&stream, send_proxy, client, local).await {
                    Ok(()) => return Ok((stream, lease)),
                    Err(e) => format!("{address}: sending the PROXY header: {e}"),
                },
                Err(e) => e,
            };
            lease
                .server
                .counters
                .connect_errors
                .fetch_add(1, Ordering::Relaxed);
            self.shared
                .counters
                .connect_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(backend = %self.settings.name, server = %lease.server.name, attempt, "connect failed: {err}");
            if attempt >= self.settings.retries {
                return Err(Refusal::Connect(format!("{}: {err}", lease.server.name)));
            }
            attempt += 1;
            lease
                .server
                .counters
                .retries
                .fetch_add(1, Ordering::Relaxed);
            self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
            if self.settings.redispatch {
                // Another server right away, if there is one that has not
                // failed for this session.
                failed.push(lease.server.key);
                if let Some(other) = self.pick(client.ip(), &failed) {
                    other
                        .server
                        .counters
                        .redispatches
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .counters
                        .redispatches
                        .fetch_add(1, Ordering::Relaxed);
                    lease = other;
                    continue;
                }
            }
            // The same server again, after HAProxy's turn-around pause so a
            // restarting server is not hammered.
            tokio::time::sleep(t.connect.get().min(Duration::from_secs(1))).await;
        }
    }

    /// A server for a new session, waiting up to `queue` while every usable
    /// one is at its `maxconn`.
    async fn wait_for_server(&self, client: IpAddr, queue: Duration) -> Result<Lease, Refusal> {
        let deadline = tokio::time::Instant::now() + queue;
        let mut queued = false;
        let result = loop {
            // Registered before the pick so a slot freed in between is not missed.
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(lease) = self.pick(client, &[]) {
                break Ok(lease);
            }
            if !self.any_usable() {
                break Err(Refusal::NoServer);
            }
            if !queued {
                queued = true;
                let q = self.shared.counters.queued.fetch_add(1, Ordering::Relaxed) + 1;
                self.shared.queue_max.fetch_max(q, Ordering::Relaxed);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                break Err(Refusal::QueueTimeout(queue));
            }
        };
        if queued {
            self.shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    fn any_usable(&self) -> bool {
        let now = Instant::now();
        let views: Vec<_> = self.servers.iter().map(|s| s.view(now)).collect();
        balance::available(&views)
    }

    /// Picks a server, leaving out those whose key is in `failed`, and
    /// counts the session on it.
    fn pick(&self, client: IpAddr, failed: &[u64]) -> Option<Lease> {
        let now = Instant::now();
        let views: Vec<_> = self
            .servers
            .iter()
            .map(|s| {
                let v = s.view(now);
                if failed.contains(&v.key) {
                    v.down()
                } else {
                    v
                }
            })
            .collect();
        let mut balancer = match self.balancer.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        let i = balancer.pick(&views, Some(client))?;
        let server = self.servers[i].clone();
        // Counted before the lock is released, so `maxconn` holds under
        // concurrent picks.
        server.counters.session_started();
        self.shared.counters.session_started();
        drop(balancer);
        Some(Lease {
            server,
            backend: self.shared.clone(),
        })
    }
}

/// Connects within `timeout`, sets the socket up for a long-lived relay.
async fn dial(address: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("{address}: {e}")),
        Err(_) => {
            return Err(format!(
                "{address}: no answer within {timeout:?} (timeout connect)"
            ))
        }
    };
    tune(&stream);
    Ok(stream)
}

/// TCP_NODELAY (MySQL is request/response: no Nagle delay) and keepalive
/// (a peer that vanished without FIN is found within minutes, not at the
/// idle timeout).
pub fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(6);
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

async fn proxy_header(
    stream: &TcpStream,
    send_proxy: SendProxy,
    client: SocketAddr,
    local: SocketAddr,
) -> std::io::Result<()> {
    let header = match send_proxy {
        SendProxy::None => return Ok(()),
        SendProxy::V1 => proxy_protocol::encode_v1(client, local).into_bytes(),
        SendProxy::V2 => proxy_protocol::encode_v2(client, local),
    };
    crate::forward::write_all(stream, &header).await
}
