//! lbd: a TCP load balancer with health checks, stats and runtime control,
//! spreading client connections over the SQL proxies (HAProxy's role).
//!
//! - [`config`]: the YAML schema, in HAProxy's vocabulary.
//! - [`balance`]: which server a new connection goes to (roundrobin,
//!   static-rr, leastconn, source, first; backups, maxconn) — pure.
//! - [`health`]: a server's rise/fall state machine and check schedule — pure,
//!   time passed in.
//! - [`stats`]: the stats snapshot and its renderings: HAProxy's `show stat`
//!   CSV, lbd's JSON, the HTML page — pure.
//! - [`command`]: the runtime API's commands (HAProxy's `stats socket`
//!   syntax) and their text answers — pure.
//! - [`daemon`]: the process as the shared runtime drives it.

#![forbid(unsafe_code)]

pub mod balance;
pub mod command;
pub mod config;
pub mod daemon;
pub mod health;
pub mod stats;

pub use daemon::Lbd;
