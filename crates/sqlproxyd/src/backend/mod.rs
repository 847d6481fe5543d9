//! A connection to one MariaDB/MySQL node, logged in as the data host's
//! backend account, speaking for one client session.

pub mod pool;
pub mod warm;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hastack_proto::mysql::client::{Action, Credentials, Login, Policy};
use hastack_proto::mysql::codec::PacketCodec;
use hastack_proto::mysql::packets::{Capabilities, Handshake};
use hastack_proto::mysql::response::{Expect, Reply, Step};
use hastack_proto::mysql::rows::{decode_rows, Rows};
use hastack_proto::mysql::Packet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub type Wire = Framed<TcpStream, PacketCodec>;

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
    /// The server's id for this connection (its `CONNECTION_ID()`), as
    /// its greeting said: what `KILL QUERY` names there.
    pub thread_id: u32,
    /// Its autocommit mode, as its last reply's status said (on at login).
    pub autocommit: bool,
    /// `SET SESSION TRANSACTION READ ONLY` ran on it (and no reset since).
    pub read_only: bool,
    /// Counts it in `backend_connections` for as long as it lives, wherever
    /// it ends (a session, the pool, a pool dropped by a reload).
    pub gauge: Option<OpenGauge>,
    /// Logged in as an account the data host still has: it may go back to
    /// the pool. A reload that changed the accounts clears it.
    pub poolable: bool,
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
    /// Connects and logs in as `login`, all within `connect_timeout`, with
    /// the workspace's one MySQL login ([`Login`]: mysql_native_password,
    /// caching_sha2_password as `policy` allows, client_ed25519).
    /// `login.capabilities` are the client's: only those the proxy may use
    /// towards a backend are asked for.
    pub async fn connect(
        node: usize,
        addr: SocketAddr,
        login: &Credentials<'_>,
        policy: Policy,
        connect_timeout: Duration,
    ) -> Result<Backend> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connect to {addr} timed out after {connect_timeout:?}"))?
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut wire = Framed::new(stream, PacketCodec::default());
        let login_result =
            tokio::time::timeout(connect_timeout, Self::login(&mut wire, login, policy)).await;
        let greeting = login_result
            .map_err(|_| anyhow!("login to {addr} timed out"))?
            .with_context(|| format!("login to {addr}"))?;
        Ok(Backend {
            node,
            addr,
            wire,
            server_version: greeting.server_version,
            thread_id: greeting.connection_id,
            schema: login.database.map(str::to_owned),
            applied_sets: 0,
            metrics: None,
            capabilities: login.capabilities.bits(),
            collation: login.collation,
            in_reply: false,
            autocommit: true,
            read_only: false,
            gauge: None,
            poolable: true,
        })
    }

    /// A new connection to `host`'s node `node` for clients (a session or
    /// the pool), counted in `backend_connections` for as long as it lives.
    pub async fn open(
        host: &crate::topology::DataHost,
        node: usize,
        login: &Credentials<'_>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Backend> {
        let n = &host.nodes[node];
        let mut b =
            Backend::connect(node, n.addr, login, host.login_policy, host.connect_timeout).await?;
        let labels = crate::metrics::NodeLabels::new(&host.name, &n.name);
        b.gauge = Some(OpenGauge::new(
            metrics.backend_connections.get_or_create_owned(&labels),
        ));
        Ok(b)
    }

    /// Drives [`Login`] over `wire`; the server's greeting when logged in.
    async fn login(wire: &mut Wire, login: &Credentials<'_>, policy: Policy) -> Result<Handshake> {
        let greeting = next(wire).await?;
        let hs = Handshake::parse(&greeting.payload)?;
        let credentials = Credentials {
            capabilities: backend_capabilities(login.capabilities, hs.capabilities),
            ..*login
        };
        let (mut state, response) = Login::start(&hs, &credentials, policy);
        let mut seq = greeting.seq.wrapping_add(1);
        wire.send(Packet::new(seq, response)).await?;
        loop {
            let p = next(wire).await?;
            seq = p.seq.wrapping_add(1);
            // Kept typed: a refusal (ERR 1049 for a database that does not
            // exist, 1045) is passed on to a client logging in.
            let plugin = state.plugin().name();
            match state.on_packet(&p.payload).map_err(|e| {
                anyhow::Error::new(e).context(format!("as '{}' ({plugin})", login.user))
            })? {
                Action::Send(answer) => wire.send(Packet::new(seq, answer)).await?,
                Action::Read => {}
                Action::Done => return Ok(hs),
            }
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
                // Kept typed: callers tell "the server refused it" (it did
                // not run) from a lost connection (it may have).
                first_err = Some(hastack_proto::mysql::packets::describe_err(&p.payload));
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
            Some(e) => Err(hastack_proto::mysql::packets::ParseError::ServerError(e).into()),
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

/// The server's refusal somewhere in `e`'s chain: an ERR to a login or to
/// a statement (it did not run), as opposed to a lost connection.
pub fn server_refusal(e: &anyhow::Error) -> Option<&hastack_proto::mysql::packets::ServerErr> {
    use hastack_proto::mysql::client::LoginError;
    use hastack_proto::mysql::packets::ParseError;
    e.chain().find_map(|c| {
        if let Some(LoginError::Refused(s)) = c.downcast_ref::<LoginError>() {
            return Some(s);
        }
        match c.downcast_ref::<ParseError>() {
            Some(ParseError::ServerError(s)) => Some(s),
            _ => None,
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
