//! sqlproxyd: a MySQL-protocol proxy with read/write splitting over a
//! primary/replica data host, backend heartbeats and safe write-node
//! failover (Mycat's role, with replication awareness).
//!
//! - [`config`]: the YAML schema (Mycat's concepts under clear names).
//! - [`daemon`]: the process as the shared runtime drives it.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;

pub use daemon::Sqlproxyd;
