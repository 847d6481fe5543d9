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
//! - [`probe`]: one health check attempt — tcp connect, HTTP (httpchk, with
//!   checkd's body as the reason), MySQL login and query.
//! - [`server`], [`backend`]: servers and backends as the running lbd holds
//!   them: counters, admin state, pick → queue → connect → retry.
//! - [`forward`]: the bytes of one session, both ways, half-close kept.
//! - [`runtime`]: listeners, the routing table, reload in place, checks.
//! - [`metrics`]: per server, backend and frontend counters for `/metrics`.
//! - [`daemon`]: the process as the shared runtime drives it.
//! - [`control`]: the runtime API's unix socket.
//! - [`ctl`]: `lbd ctl`, a runtime API command from the shell.
//! - [`import_haproxy`]: `lbd import-haproxy`, an HAProxy config's TCP part as an lbd config.

#![forbid(unsafe_code)]

pub mod backend;
pub mod balance;
pub mod command;
pub mod config;
pub mod control;
pub mod ctl;
pub mod daemon;
pub mod forward;
pub mod health;
pub mod import_haproxy;
pub mod metrics;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod stats;

pub use daemon::Lbd;
