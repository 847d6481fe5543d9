//! The running load balancer: listeners, the table of frontends and
//! backends they route by, one health-check task per checked server, and
//! the sessions. A reload builds a new table from the new config, keeping
//! what did not change: listeners by address (never closed and reopened,
//! so no connection is refused), servers by backend and name (their check
//! state, admin state and counters), counters of frontends and backends.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::backend::{self, Backend};
use crate::command::{self, Command};
use crate::config::CheckType;
use crate::config::{CheckTarget, Config, OnMarkedDown};
use crate::forward::{self, Counters as Tally, End, Idle};
use crate::health::{self, State, Transition};
use crate::probe::Prober;
use crate::server::{AdminState, Counters, Server};
use crate::stats::{self, BackendStats, FrontendStats, ServerStats, Snapshot};

/// What outlives a reload of a frontend: its counters and its limit.
#[derive(Debug, Default)]
pub struct FrontendShared {
    pub counters: Counters,
    pub limit: AtomicU32,
    /// Woken when a session ends, for an accept loop at `maxconn`.
    pub slot: Notify,
    /// Connections closed for want of a server.
    pub refused: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
pub struct Frontend {
    pub name: String,
    pub binds: Vec<SocketAddr>,
    pub backend: Arc<Backend>,
    pub shared: Arc<FrontendShared>,
}

/// One generation of routing: what a new connection on each address goes
/// through.
#[derive(Debug, Default)]
pub struct Table {
    pub frontends: BTreeMap<String, Arc<Frontend>>,
    pub backends: BTreeMap<String, Arc<Backend>>,
    by_bind: HashMap<SocketAddr, Arc<Frontend>>,
}

impl Table {
    pub fn server(&self, backend: &str, server: &str) -> Result<&Arc<Server>, String> {
        let b = self.backends.get(backend).ok_or_else(|| {
            let known: Vec<_> = self.backends.keys().map(String::as_str).collect();
            format!("no backend {backend:?} (backends: {})", known.join(", "))
        })?;
        b.servers.iter().find(|s| s.name == server).ok_or_else(|| {
            let known: Vec<_> = b.servers.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no server {server:?} in backend {backend:?} (servers: {})",
                known.join(", ")
            )
        })
    }
}

struct Checker {
    target: CheckTarget,
    task: JoinHandle<()>,
}

pub struct Runtime {
    table: RwLock<Arc<Table>>,
    listeners: Mutex<HashMap<SocketAddr, JoinHandle<()>>>,
    checkers: Mutex<HashMap<(String, String), Checker>>,
    sessions: TaskTracker,
    zero_copy: std::sync::atomic::AtomicBool,
    pub started: Instant,
    /// Follows each backend's whole state (any server usable or not).
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl Runtime {
    /// Binds every frontend and starts the checks.
    pub async fn start(config: &Config) -> anyhow::Result<Arc<Runtime>> {
        let rt = Arc::new(Runtime {
            table: RwLock::new(Arc::new(Table::default())),
            listeners: Mutex::new(HashMap::new()),
            checkers: Mutex::new(HashMap::new()),
            sessions: TaskTracker::new(),
            zero_copy: config.splice.into(),
            started: Instant::now(),
            watcher: Mutex::new(None),
        });
        rt.apply(config)?;
        let weak = Arc::downgrade(&rt);
        *lock(&rt.watcher) = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            while let Some(rt) = {
                tick.tick().await;
                weak.upgrade()
            } {
                rt.observe_backends(Instant::now());
            }
        }));
        Ok(rt)
    }

    /// The routing table in force.
    pub fn table(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Applies `config`: binds new addresses first (an error leaves the
    /// running config untouched), then swaps the table, then closes the
    /// listeners and checks that are gone.
    pub fn apply(self: &Arc<Self>, config: &Config) -> anyhow::Result<()> {
        let now = Instant::now();
        let old = self.table();
        let table = build(config, &old, now)?;
        let wanted: Vec<SocketAddr> = table.by_bind.keys().copied().collect();
        let mut listeners = lock(&self.listeners);
        let mut fresh = Vec::new();
        for addr in &wanted {
            if !listeners.contains_key(addr) {
                let frontend = &table.by_bind[addr].name;
                let l = bind(*addr).with_context(|| format!("frontends.{frontend}.bind {addr}"))?;
                fresh.push((*addr, l));
            }
        }
        self.zero_copy.store(config.splice, Ordering::Relaxed);
        *match self.table.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        } = Arc::new(table);
        for (addr, listener) in fresh {
            let rt = self.clone();
            tracing::info!(%addr, "listening");
            listeners.insert(
                addr,
                tokio::spawn(async move { rt.accept_loop(addr, listener).await }),
            );
        }
        listeners.retain(|addr, task| {
            let keep = wanted.contains(addr);
            if !keep {
                tracing::info!(%addr, "no longer listening");
                task.abort();
            }
            keep
        });
        drop(listeners);
        self.sync_checkers();
        Ok(())
    }

    /// One health-check task per checked server of the table, restarted
    /// when what it checks changed.
    fn sync_checkers(&self) {
        let table = self.table();
        let mut checkers = lock(&self.checkers);
        let mut wanted = HashMap::new();
        for b in table.backends.values() {
            for s in &b.servers {
                if let Some(target) = s.lock().settings.check.clone() {
                    wanted.insert(
                        (b.settings.name.clone(), s.name.clone()),
                        (s.clone(), target),
                    );
                }
            }
        }
        checkers.retain(|key, c| {
            let keep = wanted.get(key).is_some_and(|(_, t)| *t == c.target);
            if !keep {
                c.task.abort();
            }
            keep
        });
        for (key, (server, target)) in wanted {
            if checkers.contains_key(&key) {
                continue;
            }
            // The config's validation compiled the same regex: an error here
            // is not expected, but it fails the checks, with its text.
            let prober = Prober::new(&target);
            let task = tokio::spawn(check_loop(server, prober));
            checkers.insert(key, Checker { target, task });
        }
    }

    async fn accept_loop(self: Arc<Self>, addr: SocketAddr, listener: TcpListener) {
        loop {
            let Some(frontend) = self.table().by_bind.get(&addr).cloned() else {
                return;
            };
            // At maxconn, stop accepting: new clients wait in the backlog
            // (HAProxy's behaviour), not refused.
            let shared = &frontend.shared;
            loop {
                let slot = shared.slot.notified();
                tokio::pin!(slot);
                slot.as_mut().enable();
                if shared.counters.current.load(Ordering::Relaxed)
                    < shared.limit.load(Ordering::Relaxed)
                {
                    break;
                }
                // A reload may raise the limit; look again now and then.
                let _ = tokio::time::timeout(Duration::from_secs(1), slot).await;
            }
            let (stream, peer) = hastack_rt::net::accept(&listener, &frontend.name).await;
            // The frontend may have changed while waiting for the client.
            let frontend = self.table().by_bind.get(&addr).cloned().unwrap_or(frontend);
            frontend.shared.counters.session_started();
            let zero_copy = self.zero_copy.load(Ordering::Relaxed);
            self.sessions
                .spawn(session(frontend, stream, peer, zero_copy));
        }
    }

    fn observe_backends(&self, now: Instant) {
        for b in self.table().backends.values() {
            let up = b.usable(now).0 > 0;
            lock(&b.shared.whole).observe(up, now);
        }
    }

    /// Everything the stats page, CSV, JSON and `show` commands show, at
    /// one moment.
    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        self.observe_backends(now);
        let table = self.table();
        let relaxed = Ordering::Relaxed;
        let backends = table
            .backends
            .values()
            .map(|b| {
                let c = &b.shared.counters;
                let whole = lock(&b.shared.whole);
                let servers = b
                    .servers
                    .iter()
                    .map(|s| {
                        let view = s.view(now);
                        let inner = s.lock();
                        let c = &s.counters;
                        let check = inner.settings.check.as_ref();
                        let (last_change, downtime) = match &inner.check {
                            Some(ch) => (ch.last_change(), ch.downtime(now)),
                            None => (inner.changed_at, Duration::ZERO),
                        };
                        ServerStats {
                            name: s.name.clone(),
                            address: inner.settings.address,
                            check_address: check
                                .map(|t| t.address)
                                .filter(|a| *a != inner.settings.address),
                            admin: inner.admin,
                            check: inner.status(),
                            check_type: check.map_or(CheckType::Tcp, |t| t.kind.kind),
                            check_duration: inner.last_check.map(|(took, _)| took),
                            last_check_ago: inner
                                .last_check
                                .map(|(_, at)| now.saturating_duration_since(at)),
                            weight: view.weight,
                            user_weight: inner.configured_weight(),
                            configured_weight: inner.settings.weight,
                            backup: inner.settings.backup,
                            current_sessions: c.current.load(relaxed),
                            max_sessions: c.max.load(relaxed),
                            session_limit: inner.maxconn(),
                            total_sessions: c.total.load(relaxed),
                            bytes_in: c.bytes.bytes_in.load(relaxed),
                            bytes_out: c.bytes.bytes_out.load(relaxed),
                            // lbd queues per backend, not per server.
                            queue_current: 0,
                            queue_max: 0,
                            connect_errors: c.connect_errors.load(relaxed),
                            retries: c.retries.load(relaxed),
                            redispatches: c.redispatches.load(relaxed),
                            last_change_ago: now.saturating_duration_since(last_change),
                            downtime,
                            down_transitions: inner.status().map_or(0, |st| st.down_transitions),
                        }
                    })
                    .collect();
                BackendStats {
                    name: b.settings.name.clone(),
                    balance: b.settings.balance,
                    current_sessions: c.current.load(relaxed),
                    max_sessions: c.max.load(relaxed),
                    total_sessions: c.total.load(relaxed),
                    bytes_in: c.bytes.bytes_in.load(relaxed),
                    bytes_out: c.bytes.bytes_out.load(relaxed),
                    queue_current: c.queued.load(relaxed),
                    queue_max: b.shared.queue_max.load(relaxed),
                    connect_errors: c.connect_errors.load(relaxed),
                    retries: c.retries.load(relaxed),
                    redispatches: c.redispatches.load(relaxed),
                    down_transitions: whole.down_transitions,
                    last_change_ago: whole
                        .changed_at
                        .map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
                    downtime: whole.downtime(now),
                    servers,
                }
            })
            .collect();
        let listening = lock(&self.listeners);
        let frontends = table
            .frontends
            .values()
            .map(|f| {
                let c = &f.shared.counters;
                FrontendStats {
                    name: f.name.clone(),
                    binds: f.binds.clone(),
                    listening: f.binds.iter().all(|a| listening.contains_key(a)),
                    current_sessions: c.current.load(relaxed),
                    max_sessions: c.max.load(relaxed),
                    session_limit: f.shared.limit.load(relaxed),
                    total_sessions: c.total.load(relaxed),
                    bytes_in: c.bytes.bytes_in.load(relaxed),
                    bytes_out: c.bytes.bytes_out.load(relaxed),
                    errors: f.shared.refused.load(relaxed),
                }
            })
            .collect();
        Snapshot {
            pid: std::process::id(),
            uptime: now.saturating_duration_since(self.started),
            frontends,
            backends,
        }
    }

    /// A runtime API line (commands separated by `;`): each command's
    /// answer, each followed by an empty line, as HAProxy's socket does.
    pub fn execute_line(&self, line: &str) -> String {
        let mut out = String::new();
        for parsed in command::parse_line(line) {
            let answer = match parsed {
                Ok(Command::Quit) => break,
                Ok(cmd) => self.execute(&cmd).unwrap_or_else(|e| format!("{e}\n")),
                Err(e) => format!("{e}\n"),
            };
            // An answer, then the empty line that ends it; a command with
            // nothing to say gives the empty line alone.
            out.push_str(&answer);
            if !answer.is_empty() && !answer.ends_with('\n') {
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// One command; `Err` is the message for a command that could not run.
    pub fn execute(&self, cmd: &Command) -> Result<String, String> {
        let done = String::new;
        match cmd {
            Command::Help => Ok(command::help().to_owned()),
            Command::ShowStat => Ok(stats::csv(&self.snapshot())),
            Command::ShowInfo => Ok(command::info(&self.snapshot())),
            Command::ShowServersState { backend } => {
                command::servers_state(&self.snapshot(), backend.as_deref())
            }
            Command::ShowBackend => Ok(command::backends(&self.snapshot())),
            Command::SetState { server, state } => {
                self.set_admin(&server.backend, &server.server, *state)?;
                Ok(done())
            }
            Command::SetWeight { server, weight } => {
                let table = self.table();
                let configured = table
                    .server(&server.backend, &server.server)?
                    .lock()
                    .settings
                    .weight;
                self.set_weight(&server.backend, &server.server, weight.resolve(configured))?;
                Ok(done())
            }
            Command::GetWeight { server } => {
                let snapshot = self.snapshot();
                let s = snapshot
                    .backends
                    .iter()
                    .find(|b| b.name == server.backend)
                    .and_then(|b| b.servers.iter().find(|s| s.name == server.server));
                match s {
                    Some(s) => Ok(command::weight(s)),
                    None => Err(self
                        .table()
                        .server(&server.backend, &server.server)
                        .err()
                        .unwrap_or_default()),
                }
            }
            Command::SetMaxconn { server, maxconn } => {
                self.set_maxconn(&server.backend, &server.server, *maxconn)?;
                Ok(done())
            }
            Command::SetHealth { server, state } => {
                self.set_health(&server.backend, &server.server, *state)?;
                Ok(done())
            }
            Command::ShutdownSessions { server } => {
                self.shutdown_sessions(&server.backend, &server.server)?;
                Ok(done())
            }
            Command::Quit => Ok(done()),
        }
    }

    /// Stops accepting and waits for the sessions to end (the runtime cuts
    /// the wait at `shutdown_grace`).
    pub async fn shutdown(&self) {
        for (_, task) in lock(&self.listeners).drain() {
            task.abort();
        }
        for (_, c) in lock(&self.checkers).drain() {
            c.task.abort();
        }
        if let Some(w) = lock(&self.watcher).take() {
            w.abort();
        }
        self.sessions.close();
        self.sessions.wait().await;
    }

    /// Sessions open now, over all frontends.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Sets a server's admin state; returns what it was.
    pub fn set_admin(
        &self,
        backend: &str,
        server: &str,
        to: AdminState,
    ) -> Result<AdminState, String> {
        let table = self.table();
        let s = table.server(backend, server)?;
        let now = Instant::now();
        let from = {
            let mut inner = s.lock();
            let from = inner.admin;
            inner.admin = to;
            if from == AdminState::Maint && to != AdminState::Maint {
                // Out of maintenance: checks start over from init-state,
                // the next one now, and slowstart ramps.
                if let Some(c) = inner.check.as_mut() {
                    c.reset(now);
                }
                inner.up_since = Some(now);
            }
            if from != to {
                inner.changed_at = now;
            }
            from
        };
        if from != to {
            tracing::warn!(backend, server, from = ?from, to = ?to, "server {backend}/{server} is {} by the runtime API (was {})", admin_word(to), admin_word(from));
            s.freed.notify_waiters();
        }
        Ok(from)
    }

    /// `set weight`: an absolute weight 0-256.
    pub fn set_weight(&self, backend: &str, server: &str, weight: u32) -> Result<u32, String> {
        if weight > 256 {
            return Err(format!("weight must be between 0 and 256, got {weight}"));
        }
        let table = self.table();
        let s = table.server(backend, server)?;
        let from = {
            let mut inner = s.lock();
            let from = inner.configured_weight();
            inner.weight = Some(weight);
            from
        };
        tracing::info!(
            backend,
            server,
            from,
            to = weight,
            "weight of {backend}/{server} set to {weight} (was {from})"
        );
        s.freed.notify_waiters();
        Ok(from)
    }

    /// The configured weight and the weight in force now.
    pub fn weight(&self, backend: &str, server: &str) -> Result<(u32, u32), String> {
        let table = self.table();
        let s = table.server(backend, server)?;
        let inner = s.lock();
        Ok((
            inner.effective_weight(Instant::now()),
            inner.settings.weight,
        ))
    }

    /// `set maxconn server`: 0 is no limit.
    pub fn set_maxconn(&self, backend: &str, server: &str, maxconn: u32) -> Result<(), String> {
        let table = self.table();
        let s = table.server(backend, server)?;
        s.lock().maxconn = Some((maxconn > 0).then_some(maxconn));
        tracing::info!(
            backend,
            server,
            maxconn,
            "maxconn of {backend}/{server} set to {maxconn}"
        );
        s.freed.notify_waiters();
        Ok(())
    }

    /// `set server health up|down`: forces the check state.
    pub fn set_health(&self, backend: &str, server: &str, to: State) -> Result<(), String> {
        let table = self.table();
        let s = table.server(backend, server)?;
        let on_down = s.lock().settings.on_marked_down;
        let t = {
            let mut inner = s.lock();
            let Some(check) = inner.check.as_mut() else {
                return Err(format!("{backend}/{server} has no health check to set"));
            };
            check.force(to, "set by the runtime API", Instant::now())
        };
        if let Some(t) = t {
            transitioned(s, &t, None, on_down);
        }
        Ok(())
    }

    /// `shutdown sessions server`: returns how many were cut.
    pub fn shutdown_sessions(&self, backend: &str, server: &str) -> Result<u32, String> {
        let table = self.table();
        let s = table.server(backend, server)?;
        let n = s.shutdown_sessions();
        tracing::warn!(
            backend,
            server,
            sessions = n,
            "sessions of {backend}/{server} shut down by the runtime API"
        );
        Ok(n)
    }
}

fn admin_word(a: AdminState) -> &'static str {
    match a {
        AdminState::Ready => "ready",
        AdminState::Drain => "draining",
        AdminState::Maint => "in maintenance",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The table for `config`, reusing what `old` has under the same names.
fn build(config: &Config, old: &Table, now: Instant) -> anyhow::Result<Table> {
    let mut backends = BTreeMap::new();
    for name in config.backends.keys() {
        let settings = config
            .backend(name)
            .ok_or_else(|| anyhow!("backend {name} vanished while loading"))?;
        let previous = old.backends.get(name);
        let shared = previous.map_or_else(Default::default, |b| b.shared.clone());
        let servers = settings
            .servers
            .iter()
            .map(|s| {
                let kept = previous.and_then(|b| b.servers.iter().find(|o| o.name == s.name));
                match kept {
                    Some(server) => {
                        update(server, s.clone(), now);
                        server.clone()
                    }
                    None => Arc::new(Server::new(name, s.clone(), shared.freed.clone(), now)),
                }
            })
            .collect();
        backends.insert(
            name.clone(),
            Arc::new(Backend::new(settings, servers, shared)),
        );
    }
    let mut frontends = BTreeMap::new();
    let mut by_bind = HashMap::new();
    for (name, f) in &config.frontends {
        let backend = backends
            .get(&f.backend)
            .ok_or_else(|| anyhow!("frontends.{name}.backend: no backend {:?}", f.backend))?
            .clone();
        let shared = old
            .frontends
            .get(name)
            .map_or_else(Default::default, |f| f.shared.clone());
        shared.limit.store(config.maxconn(f), Ordering::Relaxed);
        shared.slot.notify_waiters();
        let frontend = Arc::new(Frontend {
            name: name.clone(),
            binds: f.bind.clone(),
            backend,
            shared,
        });
        for addr in &f.bind {
            by_bind.insert(*addr, frontend.clone());
        }
        frontends.insert(name.clone(), frontend);
    }
    Ok(Table {
        frontends,
        backends,
        by_bind,
    })
}

/// A kept server takes its new settings: check state moves to the new
/// thresholds; a changed configured weight or maxconn ends the runtime
/// override of it.
fn update(server: &Server, settings: crate::config::ServerSettings, now: Instant) {
    let mut inner = server.lock();
    if settings.weight != inner.settings.weight {
        inner.weight = None;
    }
    if settings.maxconn != inner.settings.maxconn {
        inner.maxconn = None;
    }
    match (&mut inner.check, settings.check.is_some()) {
        (Some(c), true) => c.reconfigure(settings.health, now),
        (None, true) => inner.check = Some(health::Check::new(settings.health, now)),
        (Some(_), false) => inner.check = None,
        (None, false) => {}
    }
    if settings.disabled && !inner.settings.disabled {
        inner.admin = AdminState::Maint;
    }
    inner.settings = settings;
}

/// A listening socket that may bind an address the host does not have yet
/// (IP_FREEBIND: the VIP before vrrpd brings it) and shares its port with
/// another lbd (SO_REUSEPORT: a restart without a gap).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

async fn session(frontend: Arc<Frontend>, client: TcpStream, peer: SocketAddr, zero_copy: bool) {
    struct Done<'a>(&'a FrontendShared);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.counters.session_ended();
            self.0.slot.notify_one();
        }
    }
    let _done = Done(&frontend.shared);
    backend::tune(&client);
    let local = client.local_addr().unwrap_or(peer);
    let backend = &frontend.backend;
    let (server, lease) = match backend.connect(peer, local).await {
        Ok(ok) => ok,
        Err(refusal) => {
            frontend.shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(frontend = %frontend.name, backend = %backend.settings.name, client = %peer, "connection closed: {refusal}");
            return;
        }
    };
    let t = &backend.settings.timeout;
    let idle = match t.tunnel {
        Some(tunnel) => Idle {
            client: tunnel.get(),
            server: tunnel.get(),
        },
        None => Idle {
            client: t.client.get(),
            server: t.server.get(),
        },
    };
    let tally = Tally(vec![
        lease.server.counters.bytes.clone(),
        backend.shared.counters.bytes.clone(),
        frontend.shared.counters.bytes.clone(),
    ]);
    let kill = lease.server.kill_token();
    let end = forward::pipe(&client, &server, idle, &tally, &kill, zero_copy).await;
    match end {
        End::Closed => {}
        End::Idle => {
            tracing::debug!(client = %peer, server = %lease.server.name, "session idle past its timeouts; closed")
        }
        End::Killed => {
            tracing::debug!(client = %peer, server = %lease.server.name, "session shut down")
        }
        End::Error(e) => {
            tracing::debug!(client = %peer, server = %lease.server.name, "session ended: {e}")
        }
    }
}

/// Checks one server for as long as it is in the config.
async fn check_loop(server: Arc<Server>, prober: Result<Prober, String>) {
    loop {
        let now = Instant::now();
        let due = {
            let inner = server.lock();
            match (&inner.check, inner.admin) {
                (Some(c), admin) if admin != AdminState::Maint => Some(c.next_check_at(now)),
                _ => None,
            }
        };
        let Some(due) = due else {
            // In maintenance: no checks; look again shortly.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        tokio::time::sleep_until(due.into()).await;
        let started = Instant::now();
        let result = match &prober {
            Ok(p) => p.run().await,
            Err(e) => Err(e.clone()),
        };
        let ended = Instant::now();
        let took = ended.saturating_duration_since(started);
        let on_down = server.lock().settings.on_marked_down;
        if let Some(t) = server.observe(result, took, ended) {
            transitioned(&server, &t, Some(took), on_down);
        }
    }
}

/// One log event per UP/DOWN change, with the reason; sessions cut and
/// the queue woken as the change requires.
fn transitioned(server: &Server, t: &Transition, took: Option<Duration>, on_down: OnMarkedDown) {
    let (b, s) = (&server.backend, &server.name);
    let took_ms = took.map(|d| d.as_millis() as u64);
    match t.to {
        State::Down => {
            let cut = match on_down {
                OnMarkedDown::ShutdownSessions => server.shutdown_sessions(),
                OnMarkedDown::None => 0,
            };
            tracing::warn!(backend = %b, server = %s, from = %t.from, to = %t.to, reason = %t.reason, check_ms = took_ms, sessions_shut_down = cut,
                "server {b}/{s} is DOWN: {}; {cut} sessions shut down", t.reason);
        }
        State::Up => {
            tracing::info!(backend = %b, server = %s, from = %t.from, to = %t.to, reason = %t.reason, check_ms = took_ms,
                "server {b}/{s} is UP: {}", t.reason);
        }
    }
    server.freed.notify_waiters();
}
