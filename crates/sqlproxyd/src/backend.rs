//! A connection to one MariaDB/MySQL node, logged in as the data host's
//! backend account, speaking for one client session.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hastack_proto::mysql::codec::PacketCodec;
use hastack_proto::mysql::packets::{parse_reply, Capabilities, Handshake, Reply as ParsedReply};
use hastack_proto::mysql::response::{Expect, Reply, Step};
use hastack_proto::mysql::rows::{decode_rows, Rows};
use hastack_proto::mysql::Packet;
use mysql_common::packets::{AuthPlugin, HandshakeResponse};
use mysql_common::proto::MySerialize;
use mysql_common::scramble::scramble_native;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub type Wire = Framed<TcpStream, PacketCodec>;

/// What to log in with and ask of the server.
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub database: Option<&'a str>,
    /// The client's capabilities, as far as they change server behaviour
    /// (FOUND_ROWS, MULTI_STATEMENTS, LOCAL_FILES ...).
    pub capabilities: Capabilities,
    pub collation: u8,
    pub connect_timeout: Duration,
}

/// A logged-in backend connection.
pub struct Backend {
    pub node: usize,
    pub addr: SocketAddr,
    pub wire: Wire,
    pub server_version: String,
    /// The schema this connection is in.
    pub schema: Option<String>,
    /// How many of the session's SET statements this connection has run.
    pub applied_sets: usize,
    /// This node's series, looked up once per connection, not per command.
    pub metrics: Option<NodeMetrics>,
    /// Capabilities and collation it logged in with (the pool's key).
    pub capabilities: u32,
    pub collation: u8,
    /// A command was sent and its reply not read to the end: the connection
    /// cannot be reused.
    pub in_reply: bool,
    /// Its autocommit mode, as its last reply's status said (on at login).
    pub autocommit: bool,
    /// Counts it in `backend_connections` for as long as it lives, wherever
    /// it ends (a session, the pool, a pool dropped by a reload).
    pub gauge: Option<OpenGauge>,
}

/// One open connection in a gauge: up when made, down when dropped.
pub struct OpenGauge(prometheus_client::metrics::gauge::Gauge);

impl OpenGauge {
    pub fn new(gauge: prometheus_client::metrics::gauge::Gauge) -> OpenGauge {
        gauge.inc();
        OpenGauge(gauge)
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Handles to one node's metric series.
#[derive(Clone)]
pub struct NodeMetrics {
    pub commands: prometheus_client::metrics::counter::Counter,
    pub latency: prometheus_client::metrics::histogram::Histogram,
}

/// Capabilities the proxy may use towards a backend; everything else the
/// server offers is dropped (no TLS, compression, DEPRECATE_EOF or session
/// tracking, which the client side does not offer either).
pub fn backend_capabilities(client: Capabilities, server: Capabilities) -> Capabilities {
    let base = Capabilities::CLIENT_PROTOCOL_41
        | Capabilities::CLIENT_SECURE_CONNECTION
        | Capabilities::CLIENT_PLUGIN_AUTH
        | Capabilities::CLIENT_LONG_PASSWORD
        | Capabilities::CLIENT_LONG_FLAG
        | Capabilities::CLIENT_TRANSACTIONS
        | Capabilities::CLIENT_MULTI_RESULTS
        | Capabilities::CLIENT_PS_MULTI_RESULTS;
    let from_client = client
        & (Capabilities::CLIENT_FOUND_ROWS
            | Capabilities::CLIENT_MULTI_STATEMENTS
            | Capabilities::CLIENT_LOCAL_FILES
            | Capabilities::CLIENT_IGNORE_SPACE
            | Capabilities::CLIENT_INTERACTIVE);
    (base | from_client) & server
}

impl Backend {
    pub async fn connect(node: usize, addr: SocketAddr, login: &Login<'_>) -> Result<Backend> {
        let stream = tokio::time::timeout(login.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                anyhow!(
                    "connect to {addr} timed out after {:?}",
                    login.connect_timeout
                )
            })?
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut wire = Framed::new(stream, PacketCodec::default());
        let login_result =
            tokio::time::timeout(login.connect_timeout, Self::login(&mut wire, login)).await;
        let server_version = login_result
            .map_err(|_| anyhow!("login to {addr} timed out"))?
            .with_context(|| format!("login to {addr}"))?;
        Ok(Backend {
            node,
            addr,
            wire,
            server_version,
            schema: login.database.map(str::to_owned),
            applied_sets: 0,
            metrics: None,
            capabilities: login.capabilities.bits(),
            collation: login.collation,
            in_reply: false,
            autocommit: true,
            gauge: None,
        })
    }

    async fn login(wire: &mut Wire, login: &Login<'_>) -> Result<String> {
        let greeting = next(wire).await?;
        let hs = Handshake::parse(&greeting.payload)?;
        let caps = backend_capabilities(login.capabilities, hs.capabilities);
        let answer = scramble_native(&hs.scramble, login.password.as_bytes())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        let version = parse_version(&hs.server_version);
        let response = HandshakeResponse::new(
            Some(answer),
            version,
            Some(login.user.as_bytes()),
            login.database.map(str::as_bytes),
            Some(AuthPlugin::MysqlNativePassword),
            caps,
            None,
            16 * 1024 * 1024,
        );
        let mut buf = Vec::new();
        response.serialize(&mut buf);
        // mysql_common picks the collation itself; the session wants the
        // client's (byte 8: after 4 bytes of flags and 4 of max packet size).
        if let Some(c) = buf.get_mut(8) {
            *c = login.collation;
        }
        wire.send(Packet::new(greeting.seq.wrapping_add(1), buf))
            .await?;
        let mut reply = next(wire).await?;
        if reply.payload.first() == Some(&0xFE) {
            // Auth switch: the server wants another plugin or a fresh nonce.
            let body = &reply.payload[1..];
            let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
            let plugin = String::from_utf8_lossy(&body[..nul]).into_owned();
            if plugin != "mysql_native_password" {
                bail!("server asks for auth plugin {plugin}; sqlproxyd logs in to backends with mysql_native_password");
            }
            let nonce = body.get(nul + 1..).unwrap_or_default();
            let nonce = nonce.strip_suffix(&[0]).unwrap_or(nonce);
            let answer = scramble_native(nonce, login.password.as_bytes())
                .map(|a| a.to_vec())
                .unwrap_or_default();
            wire.send(Packet::new(reply.seq.wrapping_add(1), answer))
                .await?;
            reply = next(wire).await?;
        }
        match parse_reply(&reply.payload)? {
            ParsedReply::Ok { .. } => Ok(hs.server_version),
            ParsedReply::Err(e) => bail!("{e}"),
            ParsedReply::Other(b) => bail!("unexpected login reply (0x{b:02x})"),
        }
    }

    /// Runs a query of the proxy's own whose result is small (heartbeats,
    /// replication status) and returns its rows; an ERR is an error that
    /// downcasts to [`ParseError::ServerError`].
    pub async fn query_rows(&mut self, sql: &str) -> Result<Rows> {
        /// Far more than any status query returns: a bound, not a limit.
        const MAX_PACKETS: usize = 10_000;
        let mut payload = Vec::with_capacity(1 + sql.len());
        payload.push(COM_QUERY);
        payload.extend_from_slice(sql.as_bytes());
        self.wire.send(Packet::new(0, payload)).await?;
        let mut reply = Reply::new(Expect::ResultSets);
        let mut payloads = Vec::new();
        loop {
            let p = next(&mut self.wire).await?;
            let step = reply.step(&p.payload)?;
            // Only the first result set is kept; later ones are read past.
            if payloads.len() < MAX_PACKETS && !reply_ended(&payloads) {
                payloads.push(p.payload);
            }
            match step {
                Step::More => {}
                Step::Done { .. } => break,
                Step::LocalInfile => bail!("{sql:?} asked for a local file"),
            }
        }
        Ok(decode_rows(&payloads)?)
    }

    /// Runs a statement of the proxy's own (session sync) and reads the
    /// whole reply; an ERR becomes an error.
    pub async fn run(&mut self, command: u8, arg: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(1 + arg.len());
        payload.push(command);
        payload.extend_from_slice(arg);
        self.wire.send(Packet::new(0, payload)).await?;
        let mut reply = Reply::new(Expect::ResultSets);
        let mut first_err = None;
        loop {
            let p = next(&mut self.wire).await?;
            if p.payload.first() == Some(&0xFF) && first_err.is_none() {
                if let Ok(ParsedReply::Err(e)) = parse_reply(&p.payload) {
                    first_err = Some(e);
                }
            }
            match reply.step(&p.payload)? {
                Step::More => {}
                Step::Done { .. } => break,
                Step::LocalInfile => {
                    // Never from the proxy's own statements; answer "no file".
                    self.wire
                        .send(Packet::new(p.seq.wrapping_add(1), Bytes::new()))
                        .await?;
                }
            }
        }
        match first_err {
            Some(e) => bail!("{e}"),
            None => Ok(()),
        }
    }
}

const COM_QUERY: u8 = 0x03;

/// Whether `payloads` already hold one complete reply (an OK, an ERR, or a
/// result set's final EOF), so what follows belongs to a later result.
fn reply_ended(payloads: &[Bytes]) -> bool {
    match payloads.first().and_then(|p| p.first()) {
        None => false,
        Some(0x00 | 0xFF) => true,
        Some(_) => {
            payloads
                .iter()
                .filter(|p| p.first() == Some(&0xFE) && p.len() < 9)
                .count()
                >= 2
        }
    }
}

/// The next packet, or an error naming a closed connection.
pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Framed<S, PacketCodec>,
) -> Result<Packet> {
    match wire.next().await {
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => Err(e.into()),
        None => bail!("connection closed by the server"),
    }
}

/// `5.5.5-10.11.6-MariaDB-log` → (10, 11, 6); `8.0.36` → (8, 0, 36).
fn parse_version(v: &str) -> (u16, u16, u16) {
    let v = v.strip_prefix("5.5.5-").unwrap_or(v);
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(5),
        parts.next().unwrap_or(5),
        parts.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("5.5.5-10.11.19-MariaDB-0+deb12u1-log"),
            (10, 11, 19)
        );
        assert_eq!(parse_version("8.0.36"), (8, 0, 36));
        assert_eq!(parse_version(""), (5, 5, 0));
    }

    #[test]
    fn client_flags_pass_only_when_the_server_has_them() {
        let server = Capabilities::all() - Capabilities::CLIENT_LOCAL_FILES;
        let caps = backend_capabilities(
            Capabilities::CLIENT_FOUND_ROWS
                | Capabilities::CLIENT_LOCAL_FILES
                | Capabilities::CLIENT_SSL,
            server,
        );
        assert!(caps.contains(Capabilities::CLIENT_FOUND_ROWS | Capabilities::CLIENT_PROTOCOL_41));
        assert!(!caps.contains(Capabilities::CLIENT_LOCAL_FILES));
        assert!(!caps.contains(Capabilities::CLIENT_SSL));
        assert!(!caps.contains(Capabilities::CLIENT_DEPRECATE_EOF));
    }
}
