//! Daemon plumbing shared by vrrpd, lbd, sqlproxyd and checkd.
//!
//! A daemon implements [`Daemon`] (start, reload, status, shutdown) and its
//! `main` calls [`run`]. Everything around that is the same for all four and
//! lives here once: the command line, config loading with located errors,
//! logging, signals, the admin HTTP endpoint and its base metrics.

#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_auth;
pub mod cidr;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod emit;
pub mod exit;
pub mod locate;
pub mod logging;
pub mod man;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod secret;
pub mod size;
pub mod state_file;

pub use admin::{ActionError, ActionFuture, Page, PageRequest};
pub use admin_auth::{AdminAuth, AdminUser};
pub use cidr::Cidr;
pub use config::{AdminHttp, ConfigError, ConfigErrors, DaemonConfig, Invalid};
pub use daemon::{run, run_with_subcommands, Daemon, StartContext, Subcommand};
pub use duration::Duration;
pub use exit::ExitCode;
pub use secret::Secret;
pub use size::ByteSize;
