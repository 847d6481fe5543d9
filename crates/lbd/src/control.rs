//! The runtime API on a unix socket, as HAProxy's `stats socket` speaks
//! it: a client sends one line (commands separated by `;`), gets each
//! command's answer followed by an empty line, and the connection closes;
//! after `prompt` it stays open with a `> ` prompt until `quit`. The same
//! commands run from `lbd ctl` and, for the common ones, `POST /actions`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::config::RuntimeSocket;
use crate::runtime::Runtime;

/// A command line longer than this is refused (and the connection closed):
/// the socket must not buffer without bound for a confused client.
const MAX_LINE: usize = 64 * 1024;

/// How long a connection may sit without sending a full line.
const IDLE: Duration = Duration::from_secs(60);

/// The listening socket and its accept task; removed when dropped.
pub struct Control {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Control {
    /// Binds `socket` (replacing a stale file left by a dead lbd) with its
    /// permission bits.
    pub fn start(socket: &RuntimeSocket, runtime: Arc<Runtime>) -> anyhow::Result<Control> {
        let path = socket.path.clone();
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            anyhow::ensure!(
                meta.file_type().is_socket(),
                "runtime_socket.path {}: exists and is not a socket; not replacing it",
                path.display()
            );
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                anyhow::bail!(
                    "runtime_socket.path {}: another process is serving it",
                    path.display()
                );
            }
            std::fs::remove_file(&path).with_context(|| {
                format!(
                    "runtime_socket.path {}: removing the stale socket",
                    path.display()
                )
            })?;
        }
        // Bound under a temporary name and renamed into place once its mode
        // is set: at its path, the socket never has the umask's mode.
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)
            .with_context(|| format!("runtime_socket.path {}: cannot bind", path.display()))?;
        let mode = u32::from_str_radix(&socket.mode, 8).unwrap_or(0o600);
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("runtime_socket.path {}: chmod {:o}", path.display(), mode))
            .and_then(|()| {
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("runtime_socket.path {}: cannot bind", path.display()))
            });
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        tracing::info!(path = %path.display(), "runtime API listening");
        let task = tokio::spawn(serve(listener, runtime));
        Ok(Control { path, task })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(listener: UnixListener, runtime: Arc<Runtime>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("runtime socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let runtime = runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, &runtime).await {
                tracing::debug!("runtime socket session ended: {e}");
            }
        });
    }
}

async fn session(stream: UnixStream, runtime: &Runtime) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut interactive = false;
    loop {
        if interactive {
            write.write_all(b"> ").await?;
        }
        let mut line = Vec::new();
        let read = tokio::time::timeout(IDLE, read_line(&mut lines, &mut line)).await;
        let line = match read {
            Err(_) | Ok(Ok(0)) => return Ok(()),
            Ok(Err(e)) => {
                write.write_all(format!("{e}\n\n").as_bytes()).await?;
                return Ok(());
            }
            Ok(Ok(_)) => String::from_utf8_lossy(&line).trim().to_owned(),
        };
        match line.as_str() {
            "prompt" => {
                interactive = !interactive;
                continue;
            }
            "quit" => return Ok(()),
            "" if interactive => continue,
            _ => {}
        }
        let answer = runtime.execute_line(&line);
        write.write_all(answer.as_bytes()).await?;
        if !interactive {
            return write.shutdown().await;
        }
    }
}

/// One line, at most [`MAX_LINE`] bytes; the count read, 0 at end.
async fn read_line(
    r: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        out.extend_from_slice(&buf[..take]);
        r.consume(take);
        if out.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("command line longer than {MAX_LINE} bytes; closing"),
            ));
        }
        if done {
            return Ok(out.len());
        }
    }
}
