//! vrrpd: floats virtual IPs between load-balancer hosts with VRRP v2/v3
//! (RFC 3768 / RFC 5798), interoperating with keepalived.
//!
//! - [`config`]: the YAML schema, in keepalived's vocabulary.
//! - [`daemon`]: the process as the shared runtime drives it.
//! - [`import_keepalived`]: `vrrpd import-keepalived`, a keepalived.conf's
//!   VRRP part as a vrrpd config, with what it could not convert listed.
//! - [`machine`]: the VRRP state machine, pure: time in, actions out.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
pub mod import_keepalived;
pub mod machine;

pub use daemon::Vrrpd;
