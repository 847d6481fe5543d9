//! Limits a hostile or runaway client hits before it costs the proxy
//! memory or backend work: client connections in all (`max_connections`)
//! and per proxy user (`max_user_connections`), the size of a packet
//! before login, and the bytes of session state remembered for replay.
//!
//! [`Counts`] decides (pure); [`Admission`] holds it for all sessions and
//! hands out slots that give their place back when dropped.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest packet a client may send before it is logged in (its handshake
/// response, an auth switch answer): a real one is a few hundred bytes,
/// with connection attributes a few KiB. Checked on the packet header,
/// before its payload is read.
pub const LOGIN_MAX_PACKET: usize = 64 << 10;

/// Session SET statements remembered for replay, at most; past this (or
/// past `max_session_state` bytes) the session is pinned to its write
/// connection instead.
pub const MAX_REMEMBERED_SETS: usize = 256;

/// Why a client was turned away, as `connections_refused_total{reason}` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` client connections are open (ERR 1040).
    MaxConnections,
    /// The user has `max_user_connections` sessions open (ERR 1203).
    MaxUserConnections,
    /// A packet before login over [`LOGIN_MAX_PACKET`] (ERR 1153).
    LoginPacketTooLarge,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxUserConnections => "max_user_connections",
            Refusal::LoginPacketTooLarge => "login_packet_too_large",
        }
    }

    /// The error a client gets, as MariaDB words it: (code, SQLSTATE, message).
    pub fn error(self, user: &str) -> (u16, &'static str, String) {
        match self {
            Refusal::MaxConnections => (1040, "08004", "Too many connections".into()),
            Refusal::MaxUserConnections => (
                1203,
                "42000",
                format!("User {user} already has more than 'max_user_connections' active connections"),
            ),
            Refusal::LoginPacketTooLarge => (
                1153,
                "08S01",
                format!(
                    "Got a packet bigger than {LOGIN_MAX_PACKET} bytes before login (sqlproxyd's limit for handshake packets)"
                ),
            ),
        }
    }
}

/// Where a new connection stands against `max_connections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Within the limit: served.
    Within,
    /// Past it, within the overflow: greeted and, once logged in, told
    /// 1040, as MariaDB does (clients trust an error after the handshake,
    /// and the mariadb CLI refuses one in its place).
    Over,
}

/// Connections past `max` that still get a handshake (and a 1040 after
/// their login); past those, the 1040 comes in place of the handshake.
pub fn overflow(max: usize) -> usize {
    max.min(64)
}

/// Open client connections, in all and per logged-in user.
#[derive(Debug, Default)]
pub struct Counts {
    total: usize,
    per_user: HashMap<String, usize>,
}

impl Counts {
    /// A new connection: within `max`, in the overflow past it, or refused.
    pub fn connect(&mut self, max: usize) -> Result<Place, Refusal> {
        let place = if self.total < max {
            Place::Within
        } else if self.total < max + overflow(max) {
            Place::Over
        } else {
            return Err(Refusal::MaxConnections);
        };
        self.total += 1;
        Ok(place)
    }

    pub fn disconnect(&mut self) {
        self.total = self.total.saturating_sub(1);
    }

    /// A session of `user` logs in, unless it has `max` open already
    /// (0: no limit, as MariaDB's max_user_connections).
    pub fn login(&mut self, user: &str, max: u32) -> Result<(), Refusal> {
        let open = self.per_user.get(user).copied().unwrap_or(0);
        if max > 0 && open >= max as usize {
            return Err(Refusal::MaxUserConnections);
        }
        *self.per_user.entry(user.to_owned()).or_default() += 1;
        Ok(())
    }

    pub fn logout(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of_user(&self, user: &str) -> usize {
        self.per_user.get(user).copied().unwrap_or(0)
    }
}

/// Whether a SET of `len` bytes may join the `count` remembered ones that
/// hold `bytes`: within both the count and the byte bound. A single SET
/// bigger than the bound is never kept.
pub fn may_remember(count: usize, bytes: usize, len: usize, max_bytes: usize) -> bool {
    count < MAX_REMEMBERED_SETS && bytes.saturating_add(len) <= max_bytes
}

/// Which refusals are logged: the first of each reason from each client
/// address in a window; the others are counted (the metric has them all)
/// and reported in one line when the window ends, so that a flood of
/// refused connections is not a flood of log lines.
#[derive(Debug, Default)]
pub struct RefusalLog {
    since: Option<Instant>,
    seen: HashSet<(&'static str, IpAddr)>,
    quiet: u64,
}

/// How long a logged refusal keeps the same ones from the same address quiet.
pub const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);

/// Addresses remembered per window, at most; past that all are quiet.
const REFUSAL_LOG_ADDRESSES: usize = 1024;

impl RefusalLog {
    /// Whether to log the refusal of `ip` for `reason` now, and how many
    /// refusals a window that just ended kept quiet (when any).
    pub fn note(&mut self, now: Instant, reason: &'static str, ip: IpAddr) -> (bool, Option<u64>) {
        let mut ended = None;
        let expired = self
            .since
            .is_none_or(|t| now.saturating_duration_since(t) >= REFUSAL_LOG_WINDOW);
        if expired {
            ended = (self.quiet > 0).then_some(self.quiet);
            *self = RefusalLog {
                since: Some(now),
                ..RefusalLog::default()
            };
        }
        let log = self.seen.len() < REFUSAL_LOG_ADDRESSES && self.seen.insert((reason, ip));
        if !log {
            self.quiet += 1;
        }
        (log, ended)
    }
}

/// The counts of the whole proxy, across reloads.
#[derive(Debug, Default)]
pub struct Admission {
    counts: Mutex<Counts>,
}

/// A client connection's place; given back when dropped.
pub struct ConnSlot {
    admission: Arc<Admission>,
    pub place: Place,
}

/// A logged-in session's place in its user's count; given back when dropped.
pub struct UserSlot {
    admission: Arc<Admission>,
    user: String,
}

impl Admission {
    pub fn connect(self: &Arc<Self>, max: usize) -> Result<ConnSlot, Refusal> {
        let place = self.with(|c| c.connect(max))?;
        Ok(ConnSlot {
            admission: self.clone(),
            place,
        })
    }

    pub fn login(self: &Arc<Self>, user: &str, max: u32) -> Result<UserSlot, Refusal> {
        self.with(|c| c.login(user, max))?;
        Ok(UserSlot {
            admission: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Client connections open now (logged in or not).
    pub fn open(&self) -> usize {
        self.with(|c| c.total())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        // A panic elsewhere while holding the lock leaves valid counts.
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }
}

impl ConnSlot {
    /// The counts this slot is in: a session logs its user in there.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }
}

impl UserSlot {
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.admission.with(Counts::disconnect);
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.admission.with(|c| c.logout(&self.user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_max_connections_come_the_overflow_then_refusal_and_disconnects_free_places() {
        let mut c = Counts::default();
        assert_eq!(c.connect(2), Ok(Place::Within));
        assert_eq!(c.connect(2), Ok(Place::Within));
        // overflow(2) = 2: greeted, then told 1040.
        assert_eq!(c.connect(2), Ok(Place::Over));
        assert_eq!(c.connect(2), Ok(Place::Over));
        assert_eq!(c.connect(2), Err(Refusal::MaxConnections));
        assert_eq!(c.total(), 4);
        c.disconnect();
        c.disconnect();
        c.disconnect();
        assert_eq!(c.connect(2), Ok(Place::Within));
        assert_eq!(overflow(4096), 64);
    }

    #[test]
    fn max_user_connections_counts_each_user_apart_and_zero_is_no_limit() {
        let mut c = Counts::default();
        assert_eq!(c.login("app", 1), Ok(()));
        assert_eq!(c.login("app", 1), Err(Refusal::MaxUserConnections));
        assert_eq!(c.login("reader", 1), Ok(()));
        for _ in 0..1000 {
            assert_eq!(c.login("batch", 0), Ok(()));
        }
        assert_eq!(c.of_user("batch"), 1000);
        c.logout("app");
        assert_eq!(c.of_user("app"), 0);
        assert_eq!(c.login("app", 1), Ok(()));
        // A lowered limit refuses new sessions, never counts below zero.
        assert_eq!(c.login("batch", 10), Err(Refusal::MaxUserConnections));
        c.logout("nobody");
        assert_eq!(c.of_user("nobody"), 0);
    }

    #[test]
    fn slots_give_their_place_back_when_dropped() {
        let a = Arc::new(Admission::default());
        let s1 = a.connect(1).unwrap();
        let over = a.connect(1).unwrap();
        assert_eq!(over.place, Place::Over);
        assert!(a.connect(1).is_err());
        drop(s1);
        drop(over);
        assert_eq!(a.connect(1).unwrap().place, Place::Within);
        let u = a.login("app", 1).unwrap();
        assert!(a.login("app", 1).is_err());
        drop(u);
        assert!(a.login("app", 1).is_ok());
    }

    #[test]
    fn remembered_state_is_bounded_in_count_and_bytes() {
        let mib = 1 << 20;
        assert!(may_remember(0, 0, 100, mib));
        assert!(may_remember(10, mib - 100, 100, mib));
        assert!(!may_remember(10, mib - 100, 101, mib));
        // One SET bigger than the bound is never kept, even first.
        assert!(!may_remember(0, 0, 4 * mib, mib));
        assert!(!may_remember(MAX_REMEMBERED_SETS, 0, 1, mib));
        assert!(!may_remember(1, usize::MAX, 1, mib));
    }

    #[test]
    fn a_flood_of_refusals_logs_once_per_address_and_reason_per_window() {
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut log = RefusalLog::default();
        assert_eq!(log.note(t0, "max_connections", a), (true, None));
        for _ in 0..1000 {
            assert_eq!(log.note(t0, "max_connections", a), (false, None));
        }
        assert_eq!(log.note(t0, "max_connections", b), (true, None));
        assert_eq!(log.note(t0, "max_user_connections", a), (true, None));
        // The next window logs again and says how many were kept quiet.
        let t1 = t0 + REFUSAL_LOG_WINDOW;
        assert_eq!(log.note(t1, "max_connections", a), (true, Some(1000)));
        assert_eq!(
            log.note(t1 + REFUSAL_LOG_WINDOW, "max_connections", a),
            (true, None)
        );
        // Addresses beyond the bound are all quiet.
        let mut log = RefusalLog::default();
        for i in 0..REFUSAL_LOG_ADDRESSES as u32 {
            assert!(
                log.note(t0, "max_connections", IpAddr::from((i + 1).to_be_bytes()))
                    .0
            );
        }
        assert!(!log.note(t0, "max_connections", [192, 0, 2, 1].into()).0);
    }

    #[test]
    fn refusals_speak_mariadbs_errors() {
        assert_eq!(Refusal::MaxConnections.error("x").0, 1040);
        let (code, state, msg) = Refusal::MaxUserConnections.error("app");
        assert_eq!((code, state), (1203, "42000"));
        assert_eq!(
            msg,
            "User app already has more than 'max_user_connections' active connections"
        );
        assert_eq!(Refusal::LoginPacketTooLarge.error("").0, 1153);
    }
}
