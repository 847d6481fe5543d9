//! checkd: the on-demand health-check super-server. It answers lbd's (or
//! HAProxy's) HTTP checks on port 48700 with whether the local sqlproxyd can
//! serve, and runs xinetd-style services for users with existing scripts.
//!
//! - [`config`]: the YAML schema, in xinetd's vocabulary.
//! - [`daemon`]: the process as the shared runtime drives it.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;

pub use daemon::Checkd;
