//! vrrpd: floats virtual IPs between load-balancer hosts with VRRP v2/v3
//! (RFC 3768 / RFC 5798), interoperating with keepalived.
//!
//! - [`config`]: the YAML schema, in keepalived's vocabulary.
//! - [`daemon`]: the process as the shared runtime drives it.
//! - [`machine`]: the VRRP state machine, pure: time in, actions out.
//! - [`notify`]: keepalived's notify scripts on state changes.
//! - [`track`]: scripts, processes, links and lbd moving priority or FAULT.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
pub mod machine;
pub mod notify;
pub mod track;

pub use daemon::Vrrpd;
