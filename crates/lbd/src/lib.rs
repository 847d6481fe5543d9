//! lbd: a TCP load balancer with health checks, stats and runtime control,
//! spreading client connections over the SQL proxies (HAProxy's role).
//!
//! - [`config`]: the YAML schema, in HAProxy's vocabulary.
//! - [`daemon`]: the process as the shared runtime drives it.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;

pub use daemon::Lbd;
