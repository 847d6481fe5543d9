//! Process exit codes, the same for every daemon.

/// What a daemon's process exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Ran and stopped cleanly, or `--check` found the config valid.
    Ok = 0,
    /// Could not run: a port in use, an address it cannot bind, a backend it
    /// must reach at start.
    Runtime = 1,
    /// The config (or the command line) is wrong.
    Config = 2,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
