//! The command line every daemon shares.

use std::path::PathBuf;

use clap::Args;

use crate::logging::LogFormat;

// `NAME -f FILE [--check] [--log-format ..] [--log-level ..]`. (A doc comment
// here would replace the daemon's own `about` in --help.)
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Config file (YAML).
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    pub config: PathBuf,

    /// Validate the config, print every error found, and exit: 0 if valid, 2 if not.
    #[arg(long)]
    pub check: bool,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, default_value = "info", env = "HASTACK_LOG")]
    pub log_level: String,
}
