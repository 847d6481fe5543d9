//! Small TCP servers for load-balancer tests: each greets a new connection
//! with its name on one line, then echoes what it gets, so a client knows
//! which server it reached and can check that bytes flow both ways. A
//! server can be stopped (listener closed, connections cut) and started
//! again on the same port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// One echo server.
pub struct EchoServer {
    pub name: String,
    pub addr: SocketAddr,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    stop: AtomicBool,
    accepted: AtomicUsize,
    open: AtomicUsize,
    conns: Mutex<Vec<TcpStream>>,
    /// The PROXY protocol header of the last connection, when asked for.
    last_header: Mutex<Option<String>>,
    expect_proxy: AtomicBool,
}

impl EchoServer {
    /// Listens on `addr` (port 0: any free port).
    pub fn start(name: &str, addr: SocketAddr) -> Result<EchoServer> {
        let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        let addr = listener.local_addr()?;
        let mut s = EchoServer {
            name: name.to_owned(),
            addr,
            state: Arc::default(),
            thread: None,
        };
        s.serve(listener)?;
        Ok(s)
    }

    /// Expects a PROXY protocol header first on every connection and keeps
    /// the last one (see [`EchoServer::last_proxy_header`]).
    pub fn expect_proxy_header(&self) {
        self.state.expect_proxy.store(true, Ordering::SeqCst);
    }

    pub fn last_proxy_header(&self) -> Option<String> {
        self.state.last_header.lock().ok()?.clone()
    }

    fn serve(&mut self, listener: TcpListener) -> Result<()> {
        listener.set_nonblocking(true)?;
        let state = self.state.clone();
        state.stop.store(false, Ordering::SeqCst);
        let name = self.name.clone();
        self.thread = Some(std::thread::spawn(move || loop {
            if state.stop.load(Ordering::SeqCst) {
                return;
            }
            match listener.accept() {
                Ok((conn, _)) => {
                    state.accepted.fetch_add(1, Ordering::SeqCst);
                    state.open.fetch_add(1, Ordering::SeqCst);
                    if let Ok(c) = conn.try_clone() {
                        if let Ok(mut conns) = state.conns.lock() {
                            conns.push(c);
                        }
                    }
                    let state = state.clone();
                    let name = name.clone();
                    std::thread::spawn(move || {
                        let _ = echo(conn, &name, &state);
                        state.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }));
        Ok(())
    }

    /// Closes the listener (new connections are refused) and cuts every
    /// open connection.
    pub fn stop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(mut conns) = self.state.conns.lock() {
            for c in conns.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    /// Listens again on the same address.
    pub fn restart(&mut self) -> Result<()> {
        let listener =
            TcpListener::bind(self.addr).with_context(|| format!("rebind {}", self.addr))?;
        self.serve(listener)
    }

    /// Connections accepted since start.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn echo(conn: TcpStream, name: &str, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    if state.expect_proxy.load(Ordering::SeqCst) {
        let header = read_proxy_header(&mut reader)?;
        if let Ok(mut last) = state.last_header.lock() {
            *last = Some(header);
        }
    }
    let mut w = conn;
    w.write_all(format!("{name}\n").as_bytes())?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            // Half-close: our FIN after theirs.
            return w.shutdown(Shutdown::Write);
        }
        w.write_all(&buf[..n])?;
    }
}

/// A v1 header as its text line; a v2 header as `v2 SRC DST`.
fn read_proxy_header(r: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let head = r.fill_buf()?;
    if head.starts_with(b"PROXY ") {
        let mut line = String::new();
        r.read_line(&mut line)?;
        return Ok(line.trim_end().to_owned());
    }
    let mut fixed = [0u8; 16];
    r.read_exact(&mut fixed)?;
    let len = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
    let mut rest = vec![0u8; len];
    r.read_exact(&mut rest)?;
    let mut all = fixed.to_vec();
    all.extend_from_slice(&rest);
    match hastack_proto::proxy_protocol::parse(&all) {
        Ok(Some((h, _))) => Ok(match h.addresses {
            Some((src, dst)) => format!("v2 {src} {dst}"),
            None => "v2 LOCAL".to_owned(),
        }),
        other => Ok(format!("unparsable v2 header: {other:?}")),
    }
}

/// Connects through `addr` and returns the greeting's server name; the
/// connection stays open in the second value.
pub fn who(addr: SocketAddr) -> Result<(String, BufReader<TcpStream>)> {
    who_from(addr, None)
}

/// As [`who`], from source address `from` (for `balance source`).
pub fn who_from(
    addr: SocketAddr,
    from: Option<std::net::IpAddr>,
) -> Result<(String, BufReader<TcpStream>)> {
    let s = match from {
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(5))?,
        Some(ip) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.bind(&SocketAddr::new(ip, 0).into())?;
            sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
            sock.into()
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).context("reading the greeting")?;
    anyhow::ensure!(!line.is_empty(), "closed before the greeting");
    Ok((line.trim_end().to_owned(), r))
}
