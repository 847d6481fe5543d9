//! One server as the running lbd holds it: its settings (from the config,
//! replaced by a reload), what the runtime API changed (admin state, weight,
//! maxconn), its health-check state and its counters. It outlives reloads
//! that keep its name, so counters and check state carry over.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::balance;
use crate::config::ServerSettings;
use crate::forward::ByteCounters;
use crate::health::{self, Check, State, Transition};

pub use crate::stats::AdminState;

/// Counters that only grow, plus the session gauge and its peak.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: Arc<ByteCounters>,
    pub current: AtomicU32,
    pub max: AtomicU32,
    pub total: AtomicU64,
    pub connect_errors: AtomicU64,
    pub retries: AtomicU64,
    pub redispatches: AtomicU64,
    pub queued: AtomicU32,
}

impl Counters {
    pub fn session_started(&self) {
        let now = self.current.fetch_add(1, Ordering::Relaxed) + 1;
        self.max.fetch_max(now, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_ended(&self) {
        self.current.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What changes under the lock: settings, admin overrides, the check.
#[derive(Debug)]
pub struct Inner {
    pub settings: ServerSettings,
    pub admin: AdminState,
    /// `set weight` overrides the configured weight until a reload changes
    /// the configured one.
    pub weight: Option<u32>,
    /// `set maxconn server` likewise.
    pub maxconn: Option<Option<u32>>,
    /// `None` for a server without checks: always UP.
    pub check: Option<Check>,
    /// When it last came back UP (or out of maintenance), for `slowstart`;
    /// not at start, as in HAProxy: a fresh lbd has no traffic to protect.
    pub up_since: Option<Instant>,
    /// The last check's duration and end.
    pub last_check: Option<(Duration, Instant)>,
    /// For servers without checks: last change of admin state.
    pub changed_at: Instant,
}

#[derive(Debug)]
pub struct Server {
    pub backend: String,
    pub name: String,
    pub key: u64,
    inner: Mutex<Inner>,
    pub counters: Counters,
    /// Cancelled to end every session on this server; replaced after.
    kill: Mutex<CancellationToken>,
    /// Woken when this server may take more connections: its backend's
    /// queue listens.
    pub freed: Arc<Notify>,
}

impl Server {
    pub fn new(
        backend: &str,
        settings: ServerSettings,
        freed: Arc<Notify>,
        now: Instant,
    ) -> Server {
        let check = settings
            .check
            .as_ref()
            .map(|_| Check::new(settings.health, now));
        let admin = if settings.disabled {
            AdminState::Maint
        } else {
            AdminState::Ready
        };
        Server {
            backend: backend.to_string(),
            key: balance::key(&settings.name),
            name: settings.name.clone(),
            inner: Mutex::new(Inner {
                settings,
                admin,
                weight: None,
                maxconn: None,
                check,
                up_since: None,
                last_check: None,
                changed_at: now,
            }),
            counters: Counters::default(),
            kill: Mutex::new(CancellationToken::new()),
            freed,
        }
    }

    /// The state, locked. Never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            // A panic elsewhere must not take the data plane down with it.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// As the balancer sees it at `now`.
    pub fn view(&self, now: Instant) -> balance::Server {
        let inner = self.lock();
        balance::Server {
            key: self.key,
            weight: inner.effective_weight(now),
            backup: inner.settings.backup,
            maxconn: inner.maxconn(),
            up: inner.admin != AdminState::Maint && inner.is_up(),
            active: self.counters.current.load(Ordering::Relaxed),
        }
    }

    /// A token that is cancelled when this server's sessions must end.
    pub fn kill_token(&self) -> CancellationToken {
        match self.kill.lock() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Ends every established session (HAProxy's `shutdown sessions
    /// server`, and `on-marked-down shutdown-sessions`). Returns how many
    /// there were.
    pub fn shutdown_sessions(&self) -> u32 {
        let old = {
            let mut t = match self.kill.lock() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            std::mem::replace(&mut *t, CancellationToken::new())
        };
        old.cancel();
        self.counters.current.load(Ordering::Relaxed)
    }

    /// Folds in a check outcome; returns the transition to log, if any.
    pub fn observe(
        &self,
        result: Result<String, String>,
        took: Duration,
        now: Instant,
    ) -> Option<Transition> {
        let mut inner = self.lock();
        let first = inner.last_check.is_none();
        inner.last_check = Some((took, now));
        let t = inner.check.as_mut()?.observe(result, now);
        if !first && matches!(&t, Some(t) if t.to == State::Up) {
            inner.up_since = Some(now);
        }
        t
    }
}

impl Inner {
    /// UP by its checks (or unchecked).
    pub fn is_up(&self) -> bool {
        self.check.as_ref().is_none_or(Check::is_up)
    }

    pub fn configured_weight(&self) -> u32 {
        self.weight.unwrap_or(self.settings.weight)
    }

    pub fn maxconn(&self) -> Option<u32> {
        self.maxconn.unwrap_or(self.settings.maxconn)
    }

    /// The weight a pick uses now: 0 while draining; during `slowstart`
    /// after coming UP, a share growing linearly from 1/20 (never 0, as in
    /// HAProxy, so the server gets its first sessions).
    pub fn effective_weight(&self, now: Instant) -> u32 {
        let w = self.configured_weight();
        if self.admin == AdminState::Drain || w == 0 {
            return 0;
        }
        match (self.settings.slowstart, self.up_since) {
            (Some(ramp), Some(since)) if !ramp.is_zero() => {
                let t = now.saturating_duration_since(since);
                if t >= ramp {
                    return w;
                }
                let share = t.as_secs_f64() / ramp.as_secs_f64();
                let ramped = (f64::from(w) * share.max(0.05)).ceil() as u32;
                ramped.clamp(1, w)
            }
            _ => w,
        }
    }

    /// The health text, or what stands in for it.
    pub fn status(&self) -> Option<health::Status> {
        self.check.as_ref().map(Check::status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OnMarkedDown, SendProxy};

    fn settings(weight: u32, slowstart: Option<Duration>) -> ServerSettings {
        ServerSettings {
            name: "s".into(),
            address: "127.0.0.1:1".parse().unwrap(),
            weight,
            backup: false,
            maxconn: None,
            disabled: false,
            check: None,
            health: health::Params::default(),
            slowstart,
            send_proxy: SendProxy::None,
            on_marked_down: OnMarkedDown::ShutdownSessions,
        }
    }

    #[test]
    fn slowstart_ramps_the_weight_after_a_return_only() {
        let t0 = Instant::now();
        let s = Server::new(
            "b",
            settings(100, Some(Duration::from_secs(10))),
            Arc::default(),
            t0,
        );
        // At start there is nothing to protect: full weight at once.
        assert_eq!(s.view(t0).weight, 100);
        s.lock().up_since = Some(t0);
        let at = |secs: u64| s.view(t0 + Duration::from_secs(secs)).weight;
        assert_eq!(at(0), 5, "a twentieth at first, never 0");
        assert_eq!(at(5), 50);
        assert_eq!(at(10), 100);
        assert_eq!(at(60), 100);
    }

    #[test]
    fn drain_and_maint_take_no_new_sessions_and_overrides_apply() {
        let t0 = Instant::now();
        let s = Server::new("b", settings(3, None), Arc::default(), t0);
        assert!(s.view(t0).usable());
        s.lock().admin = AdminState::Drain;
        assert_eq!(s.view(t0).weight, 0);
        s.lock().admin = AdminState::Maint;
        assert!(!s.view(t0).up);
        s.lock().admin = AdminState::Ready;
        s.lock().weight = Some(7);
        s.lock().maxconn = Some(Some(2));
        let v = s.view(t0);
        assert_eq!((v.weight, v.maxconn), (7, Some(2)));
    }

    #[test]
    fn shutdown_sessions_cancels_the_current_token_only() {
        let s = Server::new("b", settings(1, None), Arc::default(), Instant::now());
        let old = s.kill_token();
        s.shutdown_sessions();
        assert!(old.is_cancelled());
        assert!(
            !s.kill_token().is_cancelled(),
            "new sessions must not start cut"
        );
    }
}
