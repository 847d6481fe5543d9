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
