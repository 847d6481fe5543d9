//! sqlproxyd: a MySQL-protocol proxy with read/write splitting over a
//! primary/replica data host, backend heartbeats and safe write-node
//! failover (Mycat's role, with replication awareness).
//!
//! - [`config`]: the YAML schema (Mycat's concepts under clear names).
//! - [`topology`]: the running form of the config (users, data hosts, schemas).
//! - [`session`]: one client's connection: its login ([`session::frontend`]),
//!   its commands routed and streamed, KILL and the process list, the
//!   sessions open now ([`session::registry`]), limits, reloads followed.
//! - [`route`]: which connection a statement runs on, which read node, what
//!   a read_only user may not send (pure).
//! - [`backend`]: a logged-in connection to one node, the idle pool, and
//!   `pool.min` kept ready.
//! - [`ha`]: the heartbeat and what it decides: who is primary, who may
//!   read, fencing, promotion, switchover and rejoin as plans, the grants
//!   they need, the persisted write node.
//! - [`admin`]: the MySQL-protocol admin port (Mycat-style `show @@...`).
//! - [`import_mycat`]: `sqlproxyd import-mycat`, from Mycat's XML.
//! - [`metrics`]: the `hastack_sqlproxyd_*` series.
//! - [`daemon`]: the process as the shared runtime drives it.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod config;
pub mod daemon;
pub mod ha;
pub mod import_mycat;
pub mod metrics;
pub mod route;
pub mod session;
pub mod topology;

pub use daemon::Sqlproxyd;
