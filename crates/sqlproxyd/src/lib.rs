//! sqlproxyd: a MySQL-protocol proxy with read/write splitting over a
//! primary/replica data host, backend heartbeats and safe write-node
//! failover (Mycat's role, with replication awareness).
//!
//! - [`config`]: the YAML schema (Mycat's concepts under clear names).
//! - [`topology`]: the running form of the config (users, data hosts, schemas).
//! - [`frontend`]: the server handshake and client login.
//! - [`proxy_header`]: who may send a PROXY protocol header (pure).
//! - [`import_mycat`]: `sqlproxyd import-mycat`, from Mycat's XML.
//! - [`session`]: one client's commands, routed and streamed.
//! - [`route`]: which connection a statement runs on (pure).
//! - [`balance`]: which read node (pure).
//! - [`readonly`]: what a read_only user may not send (pure).
//! - [`backend`]: a logged-in connection to one node.
//! - [`probe`]: what one heartbeat saw (pure).
//! - [`cluster`]: who is primary, who may read, what to repair (pure).
//! - [`health`]: whether a load balancer should send us clients (pure).
//! - [`monitor`]: the heartbeat of a data host, driving [`cluster`].
//! - [`plan`]: promotion, switchover and rejoin as steps with undos (pure).
//! - [`failover`]: fencing, the promotion lock, and plans run on the backends.
//! - [`grants`]: what the monitor and replication accounts lack for the enabled features.
//! - [`dnindex`]: the persisted write node (Mycat's dnindex.properties).
//! - [`admin`]: the MySQL-protocol admin port (Mycat-style `show @@...`).
//! - [`registry`]: the sessions open now.
//! - [`limits`]: connections per proxy and per user, pre-login packets, session state.
//! - [`pool`]: idle logged-in backend connections.
//! - [`warm`]: keeps `pool.min` of them ready.
//! - [`metrics`]: the `hastack_sqlproxyd_*` series.
//! - [`daemon`]: the process as the shared runtime drives it.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod balance;
pub mod client_stream;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod dnindex;
pub mod failover;
pub mod follow;
pub mod frontend;
pub mod grants;
pub mod health;
pub mod import_mycat;
pub mod limits;
pub mod metrics;
pub mod monitor;
pub mod plan;
pub mod pool;
pub mod probe;
pub mod proxy_header;
pub mod readonly;
pub mod registry;
pub mod route;
pub mod session;
pub mod topology;
pub mod warm;

pub use daemon::Sqlproxyd;
