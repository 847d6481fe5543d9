//! The sessions open now, as the admin port shows them and kills them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

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

struct Entry {
    view: SessionView,
    stop: CancellationToken,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<BTreeMap<u32, Entry>>,
}

impl Registry {
    pub fn insert(&self, id: u32, view: SessionView, stop: CancellationToken) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id, Entry { view, stop });
        }
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
