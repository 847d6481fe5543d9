//! checkd: the on-demand health-check super-server. It answers lbd's (or
//! HAProxy's) HTTP checks on port 48700 with whether the local sqlproxyd can
//! serve, and runs xinetd-style services for users with existing scripts.
//!
//! - [`config`]: the YAML schema, in xinetd's vocabulary.
//! - [`service`]: a service's listener: access control, limits, dispatch.
//! - [`access`]: `only_from` / `no_access` (pure).
//! - [`limits`]: `instances`, `per_source`, `cps` (pure).
//! - [`http`]: the HTTP answer of an `http_check` service.
//! - [`check`]: its verdict, cached and shared between requests.
//! - [`probe`]: mysql, tcp, http and exec probes.
//! - [`exec`]: an `exec` service's program, xinetd-style.
//! - [`metrics`]: the `hastack_checkd_*` series.
//! - [`daemon`]: the process as the shared runtime drives it.
//! - [`import_xinetd`]: `checkd import-xinetd`, xinetd's service files as a checkd config.

#![forbid(unsafe_code)]

pub mod access;
pub mod check;
pub mod config;
pub mod daemon;
pub mod exec;
pub mod http;
pub mod import_xinetd;
pub mod limits;
pub mod metrics;
pub mod probe;
pub mod service;

pub use daemon::Checkd;
