//! checkd: the on-demand health-check super-server. It answers lbd's (or
//! HAProxy's) HTTP checks on port 48700 with whether the local sqlproxyd can
//! serve, and runs xinetd-style services for users with existing scripts.
//!
//! - [`config`]: the YAML schema, in xinetd's vocabulary.
//! - [`daemon`]: the process as the shared runtime drives it.
//! - [`import_xinetd`]: `checkd import-xinetd`, xinetd's service files as a checkd config.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
pub mod import_xinetd;

pub use daemon::Checkd;
