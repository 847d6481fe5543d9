//! An `exec` service, as xinetd runs `server`: the program gets the
//! connection as its stdin and stdout, runs as `user`, and is killed after
//! `timeout`. The peer's address is in `REMOTE_HOST`, as xinetd sets it.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::net::TcpStream;

/// What an exec service runs.
#[derive(Clone, Debug)]
pub struct Program {
    pub server: PathBuf,
    pub args: Vec<String>,
    /// uid and gid to run as (looked up when the config is loaded).
    pub run_as: Option<(u32, u32)>,
    pub timeout: Duration,
}

/// How a run ended, for the log and metrics.
#[derive(Debug)]
pub struct Ended {
    pub pid: Option<u32>,
    /// `exit 0`, `exit 1`, `signal 9`, `timed out after 5s`.
    pub how: String,
    pub ok: bool,
    pub timed_out: bool,
}

impl Program {
    /// Resolves `user` to ids now, so a typo fails the config, not a request.
    pub fn new(
        server: PathBuf,
        args: Vec<String>,
        user: Option<&str>,
        timeout: Duration,
    ) -> Result<Program> {
        let run_as = match user {
            None => None,
            Some(name) => {
                let u = nix::unistd::User::from_name(name)
                    .with_context(|| format!("looking up user {name}"))?
                    .ok_or_else(|| anyhow!("no user named {name:?} on this host"))?;
                Some((u.uid.as_raw(), u.gid.as_raw()))
            }
        };
        Ok(Program {
            server,
            args,
            run_as,
            timeout,
        })
    }

    pub async fn run(&self, stream: TcpStream, peer: SocketAddr) -> Result<Ended> {
        let socket = stream.into_std()?;
        // The program reads and writes it as a plain blocking descriptor.
        socket.set_nonblocking(false)?;
        let stdin = OwnedFd::from(socket.try_clone()?);
        let stdout = OwnedFd::from(socket);
        let mut cmd = tokio::process::Command::new(&self.server);
        cmd.args(&self.args)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::null())
            .env("REMOTE_HOST", peer.ip().to_string())
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.server.display()))?;
        // Our copies of the connection go with the command: when the
        // program exits, the connection closes.
        drop(cmd);
        let pid = child.id();
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(status) => {
                let status = status?;
                let how = match (
                    status.code(),
                    std::os::unix::process::ExitStatusExt::signal(&status),
                ) {
                    (Some(c), _) => format!("exit {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => status.to_string(),
                };
                Ok(Ended {
                    pid,
                    how,
                    ok: status.success(),
                    timed_out: false,
                })
            }
            Err(_) => {
                let _ = child.kill().await;
                Ok(Ended {
                    pid,
                    how: format!("timed out after {:?}, killed", self.timeout),
                    ok: false,
                    timed_out: true,
                })
            }
        }
    }
}
