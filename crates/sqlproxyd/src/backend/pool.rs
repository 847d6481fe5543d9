//! Idle backend connections, logged in and reset, kept for the next session
//! of the same data host, so a client's connect does not cost a backend
//! connect and login.
//!
//! A connection is only pooled after `COM_RESET_CONNECTION` succeeded on it
//! (no transaction, temporary table, lock or variable survives), and it is
//! only reused by a session that logged in with the same capabilities and
//! collation (they change what the server sends), and of the same kind,
//! read-only or not (they may log in as different accounts).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::Backend;

/// What must match for a pooled connection to serve a session.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct PoolKey {
    pub node: usize,
    pub capabilities: u32,
    pub collation: u8,
    /// For sessions of `read_only` users.
    pub read_only: bool,
}

/// Pooled connections idle longer than this are closed rather than reused
/// (the server or a firewall may have dropped them).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<(Instant, Backend)>>>,
    /// Most idle connections kept per node (the data host's `pool.max`);
    /// a reload that keeps the pool sets it anew.
    max_idle: AtomicUsize,
    /// The (capabilities, collation, read-only) kinds sessions asked for,
    /// and when last: what pre-warming makes connections for.
    seen: Mutex<HashMap<(u32, u8, bool), Instant>>,
}

impl Pool {
    pub fn new(max_idle: usize) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle: AtomicUsize::new(max_idle),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// For each kind of session seen in the last [`IDLE_TIMEOUT`], how many
    /// idle connections to `node` are missing to reach `min` (expired ones
    /// are closed first, so a warm pool renews itself).
    pub fn missing(&self, node: usize, min: usize, now: Instant) -> Vec<(PoolKey, usize)> {
        let kinds: Vec<(u32, u8, bool)> = match self.seen.lock() {
            Ok(mut seen) => {
                seen.retain(|_, at| now.saturating_duration_since(*at) < IDLE_TIMEOUT);
                seen.keys().copied().collect()
            }
            Err(_) => return Vec::new(),
        };
        let Ok(mut idle) = self.idle.lock() else {
            return Vec::new();
        };
        kinds
            .into_iter()
            .filter_map(|(capabilities, collation, read_only)| {
                let key = PoolKey {
                    node,
                    capabilities,
                    collation,
                    read_only,
                };
                let have = idle.get_mut(&key).map_or(0, |list| {
                    list.retain(|(at, _)| now.saturating_duration_since(*at) < IDLE_TIMEOUT);
                    list.len()
                });
                (have < min).then_some((key, min - have))
            })
            .collect()
    }

    /// The most recently returned usable connection for `key`; expired
    /// ones are dropped on the way (which closes them).
    pub fn take(&self, key: PoolKey, now: Instant) -> Option<Backend> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert((key.capabilities, key.collation, key.read_only), now);
        }
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(&key)?;
        list.retain(|(at, _)| now.saturating_duration_since(*at) < IDLE_TIMEOUT);
        list.pop().map(|(_, b)| b)
    }

    /// Keeps `b` for reuse; gives it back when the node's share is full.
    #[must_use = "a connection given back must be closed"]
    pub fn put(&self, key: PoolKey, b: Backend, now: Instant) -> Option<Backend> {
        let Ok(mut idle) = self.idle.lock() else {
            return Some(b);
        };
        let node_total: usize = idle
            .iter()
            .filter(|(k, _)| k.node == key.node)
            .map(|(_, v)| v.len())
            .sum();
        if node_total >= self.max_idle.load(Ordering::Relaxed) {
            return Some(b);
        }
        idle.entry(key).or_default().push((now, b));
        None
    }

    /// A reload kept this pool with another `pool.max`: applies from the
    /// next connection given back (idle ones past it expire as usual).
    pub fn set_max_idle(&self, max_idle: usize) {
        self.max_idle.store(max_idle, Ordering::Relaxed);
    }

    /// Closes every idle connection: a reload replaced this pool (its
    /// nodes or accounts changed), and connections no session can take
    /// must not stay open until the last older session ends.
    pub fn clear(&self) {
        let drained: Vec<_> = match self.idle.lock() {
            Ok(mut idle) => idle.drain().collect(),
            Err(_) => return,
        };
        // Dropped outside the lock: closing them counts them out of the gauge.
        drop(drained);
    }

    /// Idle connections to `node` now.
    pub fn idle(&self, node: usize) -> usize {
        self.idle
            .lock()
            .map(|idle| {
                idle.iter()
                    .filter(|(k, _)| k.node == node)
                    .map(|(_, v)| v.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}
