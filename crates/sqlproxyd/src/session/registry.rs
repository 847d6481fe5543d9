//! The sessions open now, as the admin port shows them and kills them, and
//! the statement each runs now (what `KILL QUERY` ends).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::topology::DataHost;

use tokio_util::sync::CancellationToken;

/// What the admin port shows of one session.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub user: String,
    pub peer: SocketAddr,
    pub data_host: String,
    pub schema: Option<String>,
    pub started: Instant,
    pub in_transaction: bool,
    pub autocommit: bool,
    pub pinned: Option<String>,
    /// (node name, address) of the session's backend connections.
    pub write_node: Option<(String, SocketAddr)>,
    pub read_node: Option<(String, SocketAddr)>,
    /// Remembered state and buffers, in bytes.
    pub memory: crate::session::Memory,
}

/// Where a session's statement runs now: the backend connection `KILL
/// QUERY` must name to the server.
#[derive(Clone)]
pub struct Running {
    pub host: Arc<DataHost>,
    pub node: usize,
    /// The server's id of that connection.
    pub thread_id: u32,
    /// The connection runs as the data host's read-only account.
    pub read_only: bool,
}

/// What a session does now, for `KILL QUERY` and `SHOW PROCESSLIST`.
#[derive(Clone)]
pub struct Activity {
    /// The statement running and where; `None` between statements.
    pub running: Option<Running>,
    /// Since when it runs, or since when the session is idle.
    pub since: Instant,
    /// The running COM_QUERY's payload (the command byte, then the text).
    pub statement: Option<bytes::Bytes>,
    /// Counts statements started and ended: a KILL QUERY sent for one
    /// statement checks that it is still that one.
    pub epoch: u64,
    /// KILL QUERYs other sessions are sending for this one's statement:
    /// while any is, its backend connection is not given to the pool.
    pub kills_in_flight: u32,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            running: None,
            since: Instant::now(),
            statement: None,
            epoch: 0,
            kills_in_flight: 0,
        }
    }
}

/// A session's own record of its activity: set by the session on every
/// statement without the registry's lock.
pub type RunningSlot = Arc<Mutex<Activity>>;

struct Entry {
    view: SessionView,
    stop: CancellationToken,
    running: RunningSlot,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<BTreeMap<u32, Entry>>,
}

impl Registry {
    pub fn insert(
        &self,
        id: u32,
        view: SessionView,
        stop: CancellationToken,
        running: RunningSlot,
    ) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(
                id,
                Entry {
                    view,
                    stop,
                    running,
                },
            );
        }
    }

    /// The running statement of session `id` to kill, marked so that its
    /// connection is not pooled until [`Registry::kill_done`]: where it
    /// runs and its epoch. `None` when the session is idle or gone.
    pub fn kill_starting(&self, id: u32) -> Option<(Running, u64)> {
        let slot = self.slot(id)?;
        let mut a = slot.lock().ok()?;
        let running = a.running.clone()?;
        a.kills_in_flight += 1;
        Some((running, a.epoch))
    }

    /// Whether session `id` still runs the statement of `epoch`.
    pub fn still_running(&self, id: u32, epoch: u64) -> bool {
        self.slot(id)
            .and_then(|s| {
                s.lock()
                    .ok()
                    .map(|a| a.epoch == epoch && a.running.is_some())
            })
            .unwrap_or(false)
    }

    /// A KILL QUERY marked by [`Registry::kill_starting`] has been answered.
    pub fn kill_done(&self, id: u32) {
        if let Some(slot) = self.slot(id) {
            if let Ok(mut a) = slot.lock() {
                a.kills_in_flight = a.kills_in_flight.saturating_sub(1);
            }
        }
    }

    fn slot(&self, id: u32) -> Option<RunningSlot> {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&id).map(|e| e.running.clone()))
    }

    /// What session `id` does now; `None` when there is no such session.
    pub fn activity(&self, id: u32) -> Option<Activity> {
        let slot = self.slot(id)?;
        let activity = slot.lock().ok().map(|a| a.clone());
        activity
    }

    pub fn update(&self, id: u32, view: SessionView) {
        if let Ok(mut s) = self.sessions.lock() {
            if let Some(e) = s.get_mut(&id) {
                e.view = view;
            }
        }
    }

    pub fn remove(&self, id: u32) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&id);
        }
    }

    pub fn snapshot(&self) -> Vec<(u32, SessionView)> {
        self.sessions
            .lock()
            .map(|s| s.iter().map(|(id, e)| (*id, e.view.clone())).collect())
            .unwrap_or_default()
    }

    /// Ends session `id` at once. False if there is none.
    pub fn kill(&self, id: u32) -> bool {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&id).map(|e| e.stop.cancel()))
            .is_some()
    }
}
