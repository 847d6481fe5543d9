//! Child processes that die with the test.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Wraps `program` so the kernel kills it with SIGKILL if the test thread
/// that started it dies without running `Drop` (a test killed by a timeout).
pub fn command_dying_with_parent(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig").arg("KILL").arg("--").arg(program);
    cmd
}

/// Sends `signal` to `child` (by PID; only children we started).
pub fn signal(child: &Child, signal: Signal) -> nix::Result<()> {
    kill(Pid::from_raw(child.id() as i32), signal)
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    crate::wait_for(timeout, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    })
}

/// SIGKILL and reap, ignoring a child that has already gone.
pub fn kill_and_reap(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = signal(child, Signal::SIGKILL);
        let _ = child.wait();
    }
}

/// The last `max` bytes of a log file, for error messages.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// A child with its output in a log file, killed and reaped on drop, and
/// killed by the kernel if its parent dies (the benches' servers and
/// reference daemons).
pub struct LoggedChild {
    child: Child,
    log: std::path::PathBuf,
}

impl LoggedChild {
    /// Starts `program` with `args`, stdout and stderr to `log`.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        log: std::path::PathBuf,
    ) -> anyhow::Result<LoggedChild> {
        use anyhow::Context;
        let out = std::fs::File::create(&log)?;
        let child = command_dying_with_parent(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(LoggedChild { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 4000)
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}
