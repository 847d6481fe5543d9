//! A small async MySQL client over [`super::client::Login`]: connect, log
//! in (mysql_native_password or caching_sha2_password), run a query, say
//! goodbye. What the checkers need (checkd's `mysql` probe, lbd's mysql
//! check); not a driver: one command at a time, text results, no TLS.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{Action, Credentials, Login, LoginError, Policy};
use super::framing::{self, FrameError, Packet};
use super::packets::{Capabilities, Handshake, ParseError, ServerErr};
use super::response::{Expect, Reply, Step};
use super::rows::{decode_rows, Rows};

/// The largest packet read: a checker's answers are small.
const MAX_PACKET: usize = 16 << 20;
/// Result-set packets kept per query; the rest are read past.
const MAX_KEPT: usize = 1000;

/// What went wrong, worded for a log line or a health body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connect {addr}: {}", io_reason(.source))]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("{}", io_reason(.0))]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the server closed the connection {0}")]
    Closed(&'static str),
    /// An ERR packet instead of the greeting (`Host '…' is blocked`, too
    /// many connections).
    #[error("the server refused the connection: {0}")]
    Greeting(ServerErr),
    #[error("reading the server greeting: {0}")]
    Handshake(ParseError),
    #[error("login as {user}: {source}")]
    Login { user: String, source: LoginError },
    /// The query failed; `server` is the server's ERR when it sent one.
    #[error("{sql}: {reason}")]
    Query {
        sql: String,
        reason: String,
        server: Option<ServerErr>,
    },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: String, after: Duration },
}

/// An I/O error in few words: `connection refused`, not `Connection
/// refused (os error 111)`.
pub fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::AddrNotAvailable
        | K::UnexpectedEof => e.kind().to_string(),
        _ => e.to_string(),
    }
}

/// What a checker logs in with: protocol 4.1, plugin auth, no database.
pub fn capabilities() -> Capabilities {
    Capabilities::CLIENT_PROTOCOL_41
        | Capabilities::CLIENT_SECURE_CONNECTION
        | Capabilities::CLIENT_PLUGIN_AUTH
        | Capabilities::CLIENT_LONG_PASSWORD
        | Capabilities::CLIENT_TRANSACTIONS
}

/// Connects to `addr` and logs in as `user`, all within `timeout`; what
/// the login may do beyond a scramble is `policy`'s to say.
pub async fn login(
    addr: SocketAddr,
    user: &str,
    password: &str,
    policy: Policy,
    timeout: Duration,
) -> Result<Conn, Error> {
    let credentials = Credentials {
        user,
        password,
        database: None,
        capabilities: capabilities(),
        collation: 45,
    };
    login_with(addr, &credentials, policy, timeout).await
}

/// [`login`] with all of [`Credentials`] (a database, other capabilities).
pub async fn login_with(
    addr: SocketAddr,
    credentials: &Credentials<'_>,
    policy: Policy,
    timeout: Duration,
) -> Result<Conn, Error> {
    match tokio::time::timeout(timeout, connect_and_login(addr, credentials, policy)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            what: format!("login to {addr}"),
            after: timeout,
        }),
    }
}

async fn connect_and_login(
    addr: SocketAddr,
    c: &Credentials<'_>,
    policy: Policy,
) -> Result<Conn, Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Connect { addr, source })?;
    stream.set_nodelay(true)?;
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(4096),
        server_version: String::new(),
        connection_id: 0,
    };
    let greeting = conn.read("before its greeting").await?;
    let hs = match Handshake::parse(&greeting.payload) {
        Ok(hs) => hs,
        Err(ParseError::ServerError(e)) => return Err(Error::Greeting(e)),
        Err(e) => return Err(Error::Handshake(e)),
    };
    let (mut login, response) = Login::start(&hs, c, policy);
    let mut seq = greeting.seq.wrapping_add(1);
    conn.write(Packet::new(seq, response)).await?;
    let refused = |source| Error::Login {
        user: c.user.to_owned(),
        source,
    };
    loop {
        let p = conn.read("during the login").await?;
        seq = p.seq.wrapping_add(1);
        match login.on_packet(&p.payload).map_err(refused)? {
            Action::Send(answer) => conn.write(Packet::new(seq, answer)).await?,
            Action::Read => {}
            Action::Done => break,
        }
    }
    conn.server_version = hs.server_version;
    conn.connection_id = hs.connection_id;
    Ok(conn)
}

/// A logged-in connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    server_version: String,
    connection_id: u32,
}

impl Conn {
    /// As the greeting said: `8.0.36`, `5.5.5-10.11.6-MariaDB-log`.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// Runs `sql` (COM_QUERY) and returns its first result set's rows (an
    /// OK: none). An ERR is [`Error::Query`] with the server's message.
    /// Not bounded in time: the caller wraps it in its timeout.
    pub async fn query(&mut self, sql: &str) -> Result<Rows, Error> {
        let mut payload = Vec::with_capacity(1 + sql.len());
        payload.push(0x03);
        payload.extend_from_slice(sql.as_bytes());
        self.write(Packet::new(0, payload)).await?;
        let failed = |reason: String, server| Error::Query {
            sql: sql.to_owned(),
            reason,
            server,
        };
        let mut reply = Reply::new(Expect::ResultSets);
        let mut payloads = Vec::new();
        loop {
            let p = self.read("before answering the query").await?;
            let step = reply
                .step(&p.payload)
                .map_err(|e| failed(e.to_string(), None))?;
            if payloads.len() < MAX_KEPT {
                payloads.push(p.payload);
            }
            match step {
                Step::More => {}
                Step::Done { .. } => break,
                Step::LocalInfile => return Err(failed("asked for a local file".into(), None)),
            }
        }
        decode_rows(&payloads).map_err(|e| match e {
            ParseError::ServerError(s) => failed(s.to_string(), Some(s)),
            e => failed(e.to_string(), None),
        })
    }

    /// Says goodbye (COM_QUIT) and closes; errors are of no interest then.
    pub async fn quit(mut self) {
        let _ = self.write(Packet::new(0, vec![0x01])).await;
        let _ = self.stream.shutdown().await;
    }

    async fn read(&mut self, when: &'static str) -> Result<Packet, Error> {
        loop {
            if let Some(p) = framing::decode(&mut self.buf, MAX_PACKET)? {
                return Ok(p);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(Error::Closed(when));
            }
        }
    }

    async fn write(&mut self, p: Packet) -> Result<(), Error> {
        let mut out = BytesMut::with_capacity(p.wire_len());
        framing::encode(&p, &mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }
}
