//! Moving bytes between a client and its server until the session ends.
//!
//! Both directions run in the session's one task on the sockets' readiness
//! (`readable` / `try_read`), so an idle session holds no buffer at all: a
//! buffer is taken when bytes arrive and given back when the socket is
//! drained. 10,000 idle MySQL connections cost their sockets and a small
//! task each, not 32 KiB of buffers each.
//!
//! Half-close is kept: when one side sends FIN, lbd shuts down writing
//! towards the other side and keeps carrying the opposite direction until
//! it ends too (a client that sends its last request and half-closes still
//! gets the whole answer).
//!
//! Idleness: the session ends when the client has sent nothing for
//! `client` *and* the server nothing for `server` (both `tunnel` when set).
//! A long query (client silent, server silent while working) is covered by
//! the larger of the two; one timer per session is re-armed lazily, not at
//! every read.
//!
//! With `splice`, bytes go socket → pipe → socket inside the kernel
//! (Linux `splice(2)`), never copied to user space; the pipe is made at the
//! first bytes and kept for the session.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use socket2::SockRef;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, Interest, ReadBuf};
use tokio::net::tcp::ReadHalf;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Bytes per read.
const CHUNK: usize = 16 * 1024;

/// Bytes per `splice` call. 64 KiB (a whole default pipe) measured worse
/// than 16 KiB in bench run 4; kept at the read size until measured apart.
const SPLICE_CHUNK: usize = CHUNK;

/// Where a session's bytes are counted: its server, backend and frontend.
pub trait Tally: Send + Sync {
    /// Client to server.
    fn bytes_in(&self, n: u64);
    /// Server to client.
    fn bytes_out(&self, n: u64);
}

/// The idle limits of one session.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    pub client: Duration,
    pub server: Duration,
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides closed their direction.
    Closed,
    /// Both sides were silent past their timeouts.
    Idle,
    /// Cut by lbd: the server went DOWN with `shutdown_sessions`, or a
    /// `shutdown sessions` command.
    Killed,
    /// A socket error (reset by a peer, typically), with the side.
    Error(String),
}

/// Carries bytes both ways until the session ends; closes neither socket
/// (dropping them does).
pub async fn pipe(
    client: &mut TcpStream,
    server: &mut TcpStream,
    idle: Idle,
    tally: &dyn Tally,
    kill: &CancellationToken,
    zero_copy: bool,
) -> End {
    let start = Instant::now();
    let heard_client = AtomicU64::new(0);
    let heard_server = AtomicU64::new(0);
    let (mut client_read, client_write) = client.split();
    let (mut server_read, server_write) = server.split();
    let both = async {
        let up = async {
            one_way(
                &mut client_read,
                server_write.as_ref(),
                &heard_client,
                start,
                zero_copy,
                |n| tally.bytes_in(n),
            )
            .await
            .map_err(|e| format!("client to server: {e}"))
        };
        let down = async {
            one_way(
                &mut server_read,
                client_write.as_ref(),
                &heard_server,
                start,
                zero_copy,
                |n| tally.bytes_out(n),
            )
            .await
            .map_err(|e| format!("server to client: {e}"))
        };
        // The first error ends the session; a clean end of one direction
        // leaves the other running (half-close).
        match tokio::try_join!(up, down) {
            Ok(_) => End::Closed,
            Err(e) => End::Error(e),
        }
    };
    tokio::select! {
        end = both => end,
        () = watch_idle(start, &heard_client, &heard_server, idle) => End::Idle,
        () = kill.cancelled() => End::Killed,
    }
}

/// Milliseconds since `start`: the sessions' clock for last activity.
fn since(start: Instant) -> u64 {
    #[allow(clippy::disallowed_methods)] // the shell's clock, for idle timers only
    let d = start.elapsed();
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Returns when both sides have been silent past their limits.
async fn watch_idle(start: Instant, client: &AtomicU64, server: &AtomicU64, idle: Idle) {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    loop {
        let deadline = (client
            .load(Ordering::Relaxed)
            .saturating_add(ms(idle.client)))
        .max(
            server
                .load(Ordering::Relaxed)
                .saturating_add(ms(idle.server)),
        );
        let now = since(start);
        if now >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(deadline - now)).await;
    }
}

/// Copies `from` → `to` until `from` ends, then half-closes `to`.
async fn one_way(
    from: &mut ReadHalf<'_>,
    to: &TcpStream,
    heard: &AtomicU64,
    start: Instant,
    zero_copy: bool,
    count: impl Fn(u64),
) -> io::Result<()> {
    if zero_copy {
        let mut pipe: Option<(OwnedFd, OwnedFd)> = None;
        loop {
            from.readable().await?;
            let pipe = match &mut pipe {
                Some(p) => p,
                None => pipe.insert(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?),
            };
            match splice_burst(from.as_ref(), to, pipe, &count).await? {
                Burst::Eof => break,
                Burst::Moved => heard.store(since(start), Ordering::Relaxed),
                Burst::Nothing => {}
            }
        }
    } else {
        loop {
            from.readable().await?;
            match copy_burst(from, to, &count).await? {
                Burst::Eof => break,
                Burst::Moved => heard.store(since(start), Ordering::Relaxed),
                // A stale readiness, or tokio's cooperative budget spent
                // (the read said "not now" while the socket has bytes):
                // let the scheduler run before looking again, or this
                // loop would spin without ever giving the thread back.
                Burst::Nothing => tokio::task::yield_now().await,
            }
        }
    }
    // FIN towards the other side; the opposite direction goes on.
    match SockRef::from(to).shutdown(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

enum Burst {
    Moved,
    /// A spurious wake-up.
    Nothing,
    Eof,
}

/// Reads what `from` has (until it would block) and writes it all to `to`.
/// The buffer lives only for the burst.
async fn copy_burst(
    from: &mut ReadHalf<'_>,
    to: &TcpStream,
    count: &impl Fn(u64),
) -> io::Result<Burst> {
    let mut buf = Buffer::take();
    let mut moved = false;
    loop {
        let n = match read_now(from, &mut buf).await {
            Ok(Some(0)) => return Ok(if moved { Burst::Moved } else { Burst::Eof }),
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        write_all(to, &buf[..n]).await?;
        count(n as u64);
        moved = true;
        if n < buf.len() {
            // Drained: tokio has cleared the readiness after a short read,
            // so the next wait is for new bytes, without a read that would
            // only say EAGAIN.
            break;
        }
    }
    Ok(if moved { Burst::Moved } else { Burst::Nothing })
}

/// One read of what the socket holds now; `None` when it holds nothing.
/// Through `poll_read`, which (on epoll) clears the readiness after a
/// short read, unlike `try_read`: one `recvfrom` per burst, not two.
async fn read_now(from: &mut ReadHalf<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    std::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(buf);
        match Pin::new(&mut *from).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(rb.filled().len()))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Nothing there (the readiness was stale) or the task's budget
            // is spent: back to waiting, without holding the buffer.
            Poll::Pending => Poll::Ready(Ok(None)),
        }
    })
    .await
}

/// A relay buffer from a per-thread free list: bursts take one and give it
/// back, so a busy lbd reuses a few warm buffers instead of allocating and
/// zeroing 16 KiB per burst, and an idle one holds none.
struct Buffer(Vec<u8>);

thread_local! {
    static FREE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers a thread keeps for reuse at most.
const FREE_MAX: usize = 64;

impl Buffer {
    fn take() -> Buffer {
        let buf = FREE
            .with(|f| f.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; CHUNK]);
        Buffer(buf)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < FREE_MAX {
                f.push(buf);
            }
        });
    }
}

impl std::ops::Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

pub async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable().await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `from` → pipe → `to` in the kernel until `from` would block.
async fn splice_burst(
    from: &TcpStream,
    to: &TcpStream,
    (pipe_r, pipe_w): &mut (OwnedFd, OwnedFd),
    count: &impl Fn(u64),
) -> io::Result<Burst> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut moved = false;
    loop {
        let n = match from.try_io(Interest::READABLE, || {
            splice(
                from.as_fd(),
                None,
                pipe_w.as_fd(),
                None,
                SPLICE_CHUNK,
                flags,
            )
            .map_err(io::Error::from)
        }) {
            Ok(0) => return Ok(if moved { Burst::Moved } else { Burst::Eof }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            match to.try_io(Interest::WRITABLE, || {
                splice(pipe_r.as_fd(), None, to.as_fd(), None, left, flags).map_err(io::Error::from)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => to.writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        count(n as u64);
        moved = true;
    }
    Ok(if moved { Burst::Moved } else { Burst::Nothing })
}

/// Counts into a list of counter pairs (in, out): server, backend, frontend.
pub struct Counters(pub Vec<Arc<ByteCounters>>);

/// Bytes one way and the other, HAProxy's `bin` / `bout`.
#[derive(Debug, Default)]
pub struct ByteCounters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Tally for Counters {
    fn bytes_in(&self, n: u64) {
        for c in &self.0 {
            c.bytes_in.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn bytes_out(&self, n: u64) {
        for c in &self.0 {
            c.bytes_out.fetch_add(n, Ordering::Relaxed);
        }
    }
}
