//! vrrpd: floats virtual IPs between load-balancer hosts with VRRP v2/v3
//! (RFC 3768 / RFC 5798 / RFC 9568), interoperating with keepalived.
//!
//! - [`config`]: the YAML schema, in keepalived's vocabulary.
//! - [`daemon`]: the process as the shared runtime drives it: instances,
//!   receiving sockets, reload.
//! - [`import_keepalived`]: `vrrpd import-keepalived`, a keepalived.conf's
//!   VRRP part as a vrrpd config, with what it could not convert listed.
//! - [`machine`]: the VRRP state machine, pure: time in, actions out.
//! - [`instance`]: one instance's task, carrying out the machine's actions.
//! - [`sync_group`]: instances that fault together.
//! - [`track`]: scripts, processes, links and lbd moving priority or FAULT.
//! - [`notify`]: keepalived's notify scripts on state changes.
//! - [`socket`]: the raw IP protocol 112 socket.
//! - [`netlink`]: interfaces and VIPs through rtnetlink.
//! - [`garp`]: gratuitous ARP and unsolicited neighbour advertisements.
//! - [`metrics`]: the Prometheus counters.

#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
pub mod garp;
pub mod import_keepalived;
pub mod instance;
pub mod machine;
pub mod metrics;
pub mod netlink;
pub mod notify;
pub mod socket;
pub mod sync_group;
pub mod track;

pub use daemon::Vrrpd;
