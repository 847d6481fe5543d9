//! One client session: its commands, routed to the session's write or read
//! backend connection, replies streamed back packet by packet.
//!
//! The session owns at most one connection to the write node and one to a
//! read node of its data host, opened when first needed. Before a command
//! runs on either, that connection is brought in step with the session:
//! the current schema and every session-level SET the client ran.

pub mod client_stream;
pub mod follow;
pub mod frontend;
mod kill;
pub mod limits;
mod processlist;
pub mod proxy_header;
pub mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use hastack_proto::mysql::packets::{Ok as OkPacket, Status};
use hastack_proto::mysql::response::{Expect, Reply, Step};
use hastack_proto::mysql::Packet;
use hastack_proto::sql::{
    analyze, charset_after, collation_is_unsafe, replace_connection_id, writes_data_in, Analysis,
    CharsetChange, Class, Context, Mentions,
};
use tokio_util::sync::CancellationToken;

use crate::backend::pool::PoolKey;
use crate::backend::{next, server_refusal, Backend, NodeMetrics};
use crate::ha::monitor::InFlight;
use crate::metrics::{route_name, Metrics, NodeLabels, NodeRouteLabels, RouteLabels};
use crate::route::readonly::lifts_read_only;
use crate::route::{PinReason, SessionRoute, Target};
use crate::topology::{DataHost, LiveTopology, Topology};
use client_stream::{ClientStream, ClientWire};
use follow::Fate;
use frontend::{schema_refusal, send_err, Client};
use hastack_proto::mysql::client::Credentials;
use kill::{kill_target, Kill};
use limits::{may_remember, ConnSlot, Place, Refusal, UserSlot, LOGIN_MAX_PACKET};
use processlist::processlist_asked;
use registry::{Registry, Running, RunningSlot, SessionView};

const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
const COM_QUERY: u8 = 0x03;
const COM_FIELD_LIST: u8 = 0x04;
const COM_STATISTICS: u8 = 0x09;
const COM_PROCESS_KILL: u8 = 0x0c;
const COM_PING: u8 = 0x0e;
const COM_CHANGE_USER: u8 = 0x11;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_RESET: u8 = 0x1a;
const COM_SET_OPTION: u8 = 0x1b;
const COM_STMT_FETCH: u8 = 0x1c;
const COM_RESET_CONNECTION: u8 = 0x1f;

pub struct Session {
    id: u32,
    peer: SocketAddr,
    topology: Arc<Topology>,
    /// The topology in force and the generation `topology` is of: a reload
    /// is taken at the next command ([`Session::follow_reload`]).
    live: LiveTopology,
    generation: u64,
    metrics: Metrics,
    client: ClientWire,
    login: Client,
    schema: Option<String>,
    host: Arc<DataHost>,
    write: Option<Backend>,
    read: Option<Backend>,
    route: SessionRoute,
    sets: Vec<Bytes>,
    /// The connection's character set may hide a quote in a multi-byte
    /// character (gbk, sjis, ...): the classifier then fails closed on
    /// non-ASCII text. From the login's collation, then `SET NAMES`.
    unsafe_charset: bool,
    /// Bytes held in `sets`, bounded by `max_session_state`.
    set_bytes: usize,
    /// This session's place in its user's `max_user_connections`.
    user_slot: UserSlot,
    /// Its place in `max_connections`, given back when the session ends.
    _conn_slot: ConnSlot,
    counted: RouteCounters,
    registry: Arc<Registry>,
    /// Cancelled by `kill @@connection`: ends the session at once, even in
    /// the middle of a reply (a shutdown, in contrast, lets replies finish).
    kill: CancellationToken,
    /// Where the statement runs now (`KILL QUERY` from another session).
    running: RunningSlot,
    started: Instant,
    /// What the registry last got, to publish only changes (a per-command
    /// update of a shared map would cost every session a contended lock).
    published: Option<Fingerprint>,
}

/// The parts of a session's view that change, cheap to compare.
struct Fingerprint {
    /// COM_CHANGE_USER changes it: KILL and the process list go by it.
    user: String,
    schema: Option<String>,
    in_transaction: bool,
    autocommit: bool,
    pinned: Option<PinReason>,
    write: Option<usize>,
    read: Option<usize>,
    memory: Memory,
}

/// The two `queries_total` series, looked up once per session.
struct RouteCounters {
    reads: prometheus_client::metrics::counter::Counter,
    writes: prometheus_client::metrics::counter::Counter,
}

/// How a forwarded command ended, for the session loop.
enum Forwarded {
    /// The reply reached the client in full, from the connection `on` (a
    /// read that fell back to the writer ran on the writer: what follows
    /// it, `FOUND_ROWS()` say, must go there too).
    Done { ok: bool, on: Target },
    /// The backend failed before any reply byte reached the client; the
    /// client has an ERR and the session goes on.
    Refused,
    /// A read's node was lost before any reply byte: it may run again.
    Retry,
    /// The write node answered "read-only" (1290) outside a transaction:
    /// nothing ran; `err` is its reply, not yet sent.
    ReadOnly { err: Packet, node: usize },
}

/// What a command does after [`Session::follow_reload`].
enum Followed {
    /// Runs, on the topology in force.
    Go,
    /// The client got an error in its place (what it held is lost).
    Answered,
    /// The client got an error and the session ends.
    Close,
}

/// Closes after an error sent mid-packet: the client may still be writing
/// the rest of it, and closing with its bytes unread would reset the
/// connection and could destroy the ERR before the client reads it. So:
/// FIN, then read and discard (at most 1 s and 64 MiB) until the client closes.
async fn linger(client: &mut ClientWire) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = client.get_mut();
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut left: usize = 64 << 20;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Whether a read failed on a packet over the codec's limit.
fn is_oversized(e: &anyhow::Error) -> bool {
    use hastack_proto::mysql::codec::CodecError;
    use hastack_proto::mysql::framing::FrameError;
    matches!(
        e.downcast_ref::<CodecError>(),
        Some(CodecError::Frame(FrameError::Oversized { .. }))
    )
}

/// How long a backend that failed a request's send has to show its ERR.
const SENT_ERR_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A request as sent to a backend, for the error that answers it.
#[derive(Clone, Copy)]
struct Sent {
    /// The client's next sequence id: its request's last frame's + 1.
    reply_seq: u8,
    size: usize,
}

/// A network error after which the server closes the connection
/// (ER_NET_PACKET_TOO_LARGE 1153 to ER_NET_WRITE_INTERRUPTED 1161).
fn closes_connection(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFF)
        && payload
            .get(1..3)
            .is_some_and(|c| (1153..=1161).contains(&u16::from_le_bytes([c[0], c[1]])))
}

/// ERR 1290 (ER_OPTION_PREVENTS_STATEMENT), which is what a statement gets
/// from a server running with read_only, or 1836 (ER_READ_ONLY_MODE): the
/// statement did not run. It is run again only on another node the
/// heartbeat names primary ([`Session::forward`]), never on the same one.
fn is_read_only_refusal(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFF)
        && payload
            .get(1..3)
            .is_some_and(|c| matches!(u16::from_le_bytes([c[0], c[1]]), 1290 | 1836))
}

/// A client connection the accept loop let in.
pub struct Accepted {
    pub id: u32,
    pub stream: tokio::net::TcpStream,
    pub peer: SocketAddr,
    /// Its place in `max_connections`.
    pub slot: ConnSlot,
}

/// What a session holds in memory that it can account for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Remembered SET statements and the schema name.
    pub state_bytes: usize,
    /// Capacity of its client and backend read and write buffers.
    pub buffer_bytes: usize,
}

impl Session {
    /// Runs a session from accept to close.
    pub async fn run(
        conn: Accepted,
        topology: Arc<Topology>,
        (live, generation): (LiveTopology, u64),
        metrics: Metrics,
        stop: CancellationToken,
        registry: Arc<Registry>,
    ) {
        let Accepted {
            id,
            mut stream,
            mut peer,
            slot,
        } = conn;
        let _ = stream.set_nodelay(true);
        let socket_peer = peer;
        let mut early = Vec::new();
        let expect = proxy_header::expect(
            topology.proxy_protocol,
            &topology.proxy_protocol_from,
            peer.ip(),
        );
        if expect == proxy_header::Expect::Header {
            match frontend::read_proxy_header(&mut stream).await {
                Ok((source, rest)) => {
                    // LOCAL (a balancer's own check) keeps the socket's address.
                    peer = source.unwrap_or(peer);
                    early = rest;
                }
                Err(e) => {
                    metrics.proxy_headers_refused("bad_header").inc();
                    tracing::warn!(session = id, %peer, "closing: {e:#}");
                    return;
                }
            }
        }
        let mut parts = tokio_util::codec::FramedParts::new::<Packet>(
            ClientStream::Plain(stream),
            // The login's own packets are small; max_allowed_packet holds after it.
            hastack_proto::mysql::codec::PacketCodec::new(LOGIN_MAX_PACKET),
        );
        parts.read_buf.extend_from_slice(&early);
        let mut client = ClientWire::from_parts(parts);
        let admission = slot.admission().clone();
        let over = slot.place == Place::Over;
        let mut user_slot = None;
        // Past max_connections, the 1040 comes after the login, as from MariaDB.
        let admit = |user: &crate::topology::User| {
            let admitted = if over {
                Err(Refusal::MaxConnections)
            } else {
                admission.login(&user.name, user.max_connections)
            };
            match admitted {
                Ok(s) => {
                    user_slot = Some(s);
                    None
                }
                Err(why) => {
                    metrics.refused(why, peer, &user.name);
                    Some(why.error(&user.name))
                }
            }
        };
        let login = tokio::select! {
            r = tokio::time::timeout(frontend::LOGIN_TIMEOUT, frontend::login(&mut client, id, &topology, peer, admit)) => {
                r.unwrap_or_else(|_| Err(anyhow::anyhow!("no login within {:?}", frontend::LOGIN_TIMEOUT)))
            }
            _ = stop.cancelled() => return,
        };
        let login = match login {
            Ok(Some(c)) => c,
            Ok(None) => {
                metrics.auth_failures.inc();
                return;
            }
            Err(e) if e.is::<proxy_header::Untrusted>() => {
                metrics.proxy_headers_refused("untrusted_peer").inc();
                tracing::warn!(session = id, peer = %socket_peer, "closing: {e}");
                return;
            }
            Err(e) => {
                if is_oversized(&e) {
                    let why = Refusal::LoginPacketTooLarge;
                    metrics.refused(why, peer, "");
                    let (code, state, msg) = why.error("");
                    // The handshake response is packet 1; its reply, 2.
                    let _ = send_err(&mut client, 2, code, state, &msg).await;
                    linger(&mut client).await;
                }
                tracing::debug!(session = id, %peer, "login failed: {e:#}");
                return;
            }
        };
        let Some(user_slot) = user_slot else {
            tracing::warn!(session = id, %peer, "logged in without a user slot");
            return;
        };
        client
            .codec_mut()
            .set_max_packet(topology.max_allowed_packet);
        let host = login
            .database
            .as_deref()
            .and_then(|d| topology.schemas.get(d))
            .or(Some(&topology.default_host(&login.user)))
            .and_then(|&i| topology.data_hosts.get(i).cloned());
        let Some(host) = host else {
            let _ = send_err(
                &mut client,
                2,
                1105,
                "HY000",
                "sqlproxyd has no data host configured",
            )
            .await;
            return;
        };
        tracing::debug!(session = id, %peer, user = %login.user.name, "session opened");
        // One statement each: get_or_create() holds the family's lock until
        // its guard drops, and a second call in the same expression would
        // wait on it forever when it has to insert.
        let reads = metrics
            .queries
            .get_or_create_owned(&RouteLabels { route: "read" });
        let writes = metrics
            .queries
            .get_or_create_owned(&RouteLabels { route: "write" });
        let counted = RouteCounters { reads, writes };
        let unsafe_charset = collation_is_unsafe(u16::from(login.collation));
        let mut s = Session {
            id,
            peer,
            schema: login.database.clone(),
            topology,
            live,
            generation,
            metrics,
            client,
            login,
            host,
            write: None,
            read: None,
            route: SessionRoute::default(),
            sets: Vec::new(),
            unsafe_charset,
            set_bytes: 0,
            user_slot,
            _conn_slot: slot,
            counted,
            registry,
            started: Instant::now(),
            kill: CancellationToken::new(),
            running: RunningSlot::default(),
            published: None,
        };
        s.registry
            .insert(id, s.view(), s.kill.clone(), s.running.clone());
        let result = match s.login.pending_ok.take() {
            Some(seq) => match s.finish_login(seq).await {
                Ok(true) => s.serve(stop).await,
                other => other.map(|_| ()),
            },
            None => s.serve(stop).await,
        };
        s.registry.remove(id);
        s.release(Target::Write).await;
        s.release(Target::Read).await;
        if let Err(e) = result {
            tracing::debug!(session = id, peer = %s.peer, "session closed: {e:#}");
        }
    }

    /// Ends a login that named a database sqlproxyd has no schema for:
    /// the write connection opens in it, and the server's refusal (1049
    /// Unknown database, 1044) is the login's answer, as from MariaDB
    /// directly. Only those two refusals are passed on (a 1040 or 1045 of
    /// the backend account is no answer about the database and names what
    /// the client need not know); when no backend answers within
    /// `connect_timeout` (no primary, say) the login goes through and the
    /// first statement gets the error. Whether the session goes on.
    async fn finish_login(&mut self, seq: u8) -> Result<bool> {
        let limit = self.host.connect_timeout;
        let opened = match tokio::time::timeout(limit, self.ensure_backend(Target::Write)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(anyhow::anyhow!("no write connection within {limit:?}")),
        };
        if let Err(e) = opened {
            if let Some(refusal) = server_refusal(&e).filter(|r| matches!(r.code, 1044 | 1049)) {
                let (code, state, msg) = (
                    refusal.code,
                    refusal.sql_state.clone(),
                    refusal.message.clone(),
                );
                send_err(&mut self.client, seq, code, &state, &msg).await?;
                return Ok(false);
            }
            tracing::debug!(
                session = self.id,
                "no backend to check the login's database: {e:#}"
            );
        }
        frontend::send_login_ok(&mut self.client, seq, self.login.compress).await?;
        Ok(true)
    }

    async fn serve(&mut self, stop: CancellationToken) -> Result<()> {
        loop {
            self.publish();
            let packet = tokio::select! {
                p = self.client.next() => p,
                _ = stop.cancelled() => return Ok(()),
                _ = self.kill.cancelled() => return Ok(()),
            };
            let packet = match packet {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    // Framing is lost: tell the client why, then close.
                    let _ = send_err(
                        &mut self.client,
                        0,
                        1153,
                        "08S01",
                        &format!("Got a packet sqlproxyd cannot read: {e}"),
                    )
                    .await;
                    linger(&mut self.client).await;
                    return Err(e.into());
                }
                None => return Ok(()),
            };
            let Some(&command) = packet.payload.first() else {
                self.err(&packet, 1047, "08S01", "Empty command packet")
                    .await?;
                continue;
            };
            // Commands without a reply go where the statement they name
            // lives; every other one is routed by the topology in force.
            if !matches!(command, COM_QUIT | COM_STMT_SEND_LONG_DATA | COM_STMT_CLOSE) {
                match self.follow_reload(&packet).await? {
                    Followed::Go => {}
                    Followed::Answered => continue,
                    Followed::Close => return Ok(()),
                }
            }
            match command {
                COM_QUIT => return Ok(()),
                COM_PING => self.ok(&packet).await?,
                COM_QUERY => self.query(packet).await?,
                COM_INIT_DB => {
                    let db = String::from_utf8_lossy(&packet.payload[1..]).into_owned();
                    self.use_schema(packet, db).await?;
                }
                COM_FIELD_LIST => self.simple(packet, Expect::FieldList).await?,
                COM_STATISTICS | COM_STMT_RESET | COM_SET_OPTION => {
                    self.simple(packet, Expect::OnePacket).await?
                }
                COM_STMT_PREPARE => {
                    let packet = self.own_connection_id(packet);
                    let sql = String::from_utf8_lossy(&packet.payload[1..]).into_owned();
                    if self.login.user.read_only {
                        if let Some(why) = lifts_read_only(&packet.payload[1..]) {
                            self.refuse_lifting(&packet, why).await?;
                            continue;
                        }
                        if writes_data_in(&sql, &self.sql_context()) {
                            self.refuse_read_only(&packet).await?;
                            continue;
                        }
                    }
                    // Statement ids belong to one connection: stay on it.
                    self.route
                        .pinned
                        .get_or_insert(PinReason::PreparedStatement);
                    self.simple(packet, Expect::Prepare).await?;
                }
                COM_STMT_EXECUTE => self.simple(packet, Expect::ResultSets).await?,
                COM_STMT_FETCH => self.simple(packet, Expect::Fetch).await?,
                COM_STMT_SEND_LONG_DATA | COM_STMT_CLOSE => {
                    // No reply; only meaningful where the statement lives.
                    if let Some(b) = self.write.as_mut() {
                        if b.wire.send(packet).await.is_err() {
                            self.drop_backend(Target::Write);
                        }
                    }
                }
                COM_RESET_CONNECTION => {
                    self.release(Target::Write).await;
                    self.release(Target::Read).await;
                    self.route = SessionRoute::default();
                    self.forget_sets();
                    self.unsafe_charset = collation_is_unsafe(u16::from(self.login.collation));
                    self.ok(&packet).await?;
                }
                COM_CHANGE_USER => self.change_user(packet).await?,
                // PyMySQL's kill(), older connectors: KILL by id, as a command.
                COM_PROCESS_KILL => match packet.payload.get(1..5) {
                    Some(&[a, b, c, d]) => {
                        let id = u32::from_le_bytes([a, b, c, d]);
                        self.kill(&packet, Kill { id, query: false }).await?
                    }
                    _ => {
                        self.err(
                            &packet,
                            1047,
                            "08S01",
                            "COM_PROCESS_KILL without a thread id",
                        )
                        .await?
                    }
                },
                other => {
                    self.err(
                        &packet,
                        1047,
                        "08S01",
                        &format!("Unknown command (0x{other:02x})"),
                    )
                    .await?
                }
            }
        }
    }

    /// The command with `CONNECTION_ID()` replaced by this session's id
    /// (the handshake's, what `KILL` takes), unless the text has none or
    /// cannot be read for sure ([`replace_connection_id`]).
    fn own_connection_id(&self, packet: Packet) -> Packet {
        let text = std::str::from_utf8(&packet.payload[1..]).ok();
        match text.and_then(|sql| replace_connection_id(sql, self.id)) {
            Some(sql) if !self.unsafe_charset => {
                let mut payload = Vec::with_capacity(1 + sql.len());
                payload.push(packet.payload[0]);
                payload.extend_from_slice(sql.as_bytes());
                Packet::new(packet.seq, payload)
            }
            _ => packet,
        }
    }

    async fn query(&mut self, packet: Packet) -> Result<()> {
        // One pass over the text says which of the proxy's own readings
        // (CONNECTION_ID(), SHOW PROCESSLIST, KILL) it needs at all.
        let mentions = Mentions::of(&packet.payload[1..]);
        let packet = if mentions.connection_id {
            self.own_connection_id(packet)
        } else {
            packet
        };
        let payload = packet.payload.clone();
        let sql = String::from_utf8_lossy(&payload[1..]);
        let Analysis {
            class,
            hint,
            writes_data,
        } = analyze(&sql, &self.sql_context());
        if self.login.user.read_only {
            // The server enforces read-only (readonly::APPLY); the proxy
            // refuses what would lift it, then what it sees as a write.
            if let Some(why) = lifts_read_only(&payload[1..]) {
                return self.refuse_lifting(&packet, why).await;
            }
            if writes_data {
                return self.refuse_read_only(&packet).await;
            }
        }
        // Only a SET (alone or in a multi-statement) changes the charset.
        let charset = match class {
            Class::Read { .. } => None,
            _ => charset_after(&sql),
        };
        if let Class::Use(db) = &class {
            return self.use_schema(packet, db.clone()).await;
        }
        if let Some(full) = mentions
            .processlist
            .then(|| processlist_asked(&sql))
            .flatten()
        {
            return self.processlist(&packet, full).await;
        }
        match mentions.kill.then(|| kill_target(&sql)).flatten() {
            None => {}
            Some(Ok(kill)) => return self.kill(&packet, kill).await,
            Some(Err(why)) => return self.err(&packet, 1235, "42000", &why).await,
        }
        let now = Instant::now();
        let target = self.route.target(
            now,
            &class,
            hint,
            self.host.balance,
            self.host.read_your_writes,
        );
        match target {
            Target::Read => self.counted.reads.inc(),
            Target::Write => self.counted.writes.inc(),
        };
        let remember = matches!(class, Class::SessionSet);
        let forwarded = self
            .forward(target, packet.clone(), Expect::ResultSets)
            .await?;
        // A charset that hides quotes counts from the moment it may have
        // been set (a failed multi-statement may have set it); a safe one
        // only once it is known to be in force.
        match (charset, &forwarded) {
            (Some(CharsetChange::Unsafe), _) => self.unsafe_charset = true,
            (Some(CharsetChange::Safe), Forwarded::Done { ok: true, .. }) => {
                self.unsafe_charset = false
            }
            _ => {}
        }
        match forwarded {
            Forwarded::Done { ok: true, on } => {
                // The write is done now, not when it was sent; and on the
                // connection it ran on, not the one it was routed to.
                self.route.after(Instant::now(), &class, on);
                if remember {
                    self.remember_set(packet.payload);
                }
            }
            Forwarded::Done { ok: false, .. } => {
                // A multi-statement may have opened a transaction or made a
                // temporary table before the statement that failed: pinning
                // is always the safe direction.
                if let Class::Pin(pin) = class {
                    self.route.pinned.get_or_insert(PinReason::Statement(pin));
                }
            }
            Forwarded::Refused | Forwarded::Retry | Forwarded::ReadOnly { .. } => {}
        }
        Ok(())
    }

    fn forget_sets(&mut self) {
        self.sets.clear();
        self.set_bytes = 0;
    }

    /// What this session holds now, as far as it can tell.
    fn memory(&self) -> Memory {
        use tokio_util::codec::Framed;
        fn buffers<T, C>(w: &Framed<T, C>) -> usize {
            w.read_buffer().capacity() + w.write_buffer().capacity()
        }
        let backends: usize = [&self.write, &self.read]
            .into_iter()
            .flatten()
            .map(|b| buffers(&b.wire))
            .sum();
        Memory {
            state_bytes: self.set_bytes + self.schema.as_ref().map_or(0, String::len),
            // The compressed protocol's inflated bytes not yet framed count too.
            buffer_bytes: buffers(&self.client) + self.client.codec().buffered() + backends,
        }
    }

    /// A session SET ran on the write connection: replay it on the others.
    fn remember_set(&mut self, payload: Bytes) {
        // Always appended, repeats included: replay order must end where the
        // writer is (`SET time_zone` A, B, A leaves A in force).
        let arg = payload.slice(1..);
        if !may_remember(
            self.sets.len(),
            self.set_bytes,
            arg.len(),
            self.topology.max_session_state,
        ) {
            self.route.pinned.get_or_insert(PinReason::Statement(
                hastack_proto::sql::Pin::MultiStatement,
            ));
            return;
        }
        self.set_bytes += arg.len();
        self.sets.push(arg);
        if let Some(w) = self.write.as_mut() {
            w.applied_sets = self.sets.len();
        }
    }

    async fn simple(&mut self, packet: Packet, expect: Expect) -> Result<()> {
        self.forward(Target::Write, packet, expect)
            .await
            .map(|_| ())
    }

    /// `USE db` or COM_INIT_DB: checked against the user's schemas, run on
    /// the write connection, and remembered for the others.
    async fn use_schema(&mut self, packet: Packet, db: String) -> Result<()> {
        if let Some((code, state, msg)) = schema_refusal(&self.login.user, &db) {
            return self.err(&packet, code, state, &msg).await;
        }
        let host = self
            .topology
            .schemas
            .get(&db)
            .and_then(|&i| self.topology.data_hosts.get(i))
            .cloned();
        if let Some(host) = host {
            if !Arc::ptr_eq(&host, &self.host) {
                if self.route.in_transaction {
                    return self.err(&packet, 1105, "HY000", &format!("cannot switch to schema '{db}' on another data host inside a transaction")).await;
                }
                self.drop_backend(Target::Write);
                self.drop_backend(Target::Read);
                self.host = host;
            }
        }
        if let Forwarded::Done { ok: true, .. } = self
            .forward(Target::Write, packet, Expect::OnePacket)
            .await?
        {
            self.schema = Some(db.clone());
            if let Some(w) = self.write.as_mut() {
                w.schema = Some(db);
            }
        }
        Ok(())
    }

    /// Sends `packet` to the target connection and streams the reply back.
    /// A read whose node is lost before any reply byte is run once more,
    /// on another node (a read is safe to repeat; a write never is).
    async fn forward(
        &mut self,
        target: Target,
        packet: Packet,
        expect: Expect,
    ) -> Result<Forwarded> {
        let result = self.forward_retrying(target, packet, expect).await;
        self.set_running(None, None);
        result
    }

    /// Records where this session's statement runs now, for `KILL QUERY`
    /// from another session.
    fn set_running(&self, running: Option<Running>, statement: Option<Bytes>) {
        if let Ok(mut a) = self.running.lock() {
            a.running = running;
            a.since = Instant::now();
            a.statement = statement;
            a.epoch = a.epoch.wrapping_add(1);
        }
    }

    async fn forward_retrying(
        &mut self,
        target: Target,
        packet: Packet,
        expect: Expect,
    ) -> Result<Forwarded> {
        if target == Target::Read {
            match self
                .forward_once(target, packet.clone(), expect, true)
                .await?
            {
                Forwarded::Retry => {
                    tracing::info!(
                        session = self.id,
                        "read node lost before replying: the read runs again on another node"
                    );
                }
                done => return Ok(done),
            }
        }
        match self
            .forward_once(target, packet.clone(), expect, false)
            .await?
        {
            Forwarded::ReadOnly { err, node } => {
                // The statement did not run: the node went read-only (a
                // switchover, or a fenced old primary). Once the heartbeat
                // names another primary it runs there, else the client
                // gets the server's error.
                let deadline = tokio::time::Instant::now() + self.host.primary_wait;
                if !self.host.wait_primary_change(node, deadline).await {
                    return self.pass_err(err).await;
                }
                tracing::info!(session = self.id, node = %self.host.nodes[node].name, "primary went read-only: the write runs on the new primary");
                match self.forward_once(target, packet, expect, false).await? {
                    Forwarded::ReadOnly { err, .. } => self.pass_err(err).await,
                    done => Ok(done),
                }
            }
            done => Ok(done),
        }
    }

    /// Sends a backend's ERR reply that was held back.
    async fn pass_err(&mut self, err: Packet) -> Result<Forwarded> {
        self.client.send(err).await?;
        Ok(Forwarded::Done {
            ok: false,
            on: Target::Write,
        })
    }

    async fn forward_once(
        &mut self,
        target: Target,
        packet: Packet,
        expect: Expect,
        may_retry: bool,
    ) -> Result<Forwarded> {
        // What the client expects on the reply: the request's last frame + 1.
        let reply_seq = packet.next_seq();
        let sent = Sent {
            reply_seq,
            size: packet.payload.len(),
        };
        let target = match self.ensure_backend(target).await {
            Ok(t) => t,
            Err(e) => {
                let msg = format!(
                    "sqlproxyd cannot reach a backend of data host '{}': {e:#}",
                    self.host.name
                );
                self.err(&packet, 2003, "HY000", &msg).await?;
                return Ok(Forwarded::Refused);
            }
        };
        let _in_flight =
            (target == Target::Write).then(|| InFlight::new(&self.host.writes_in_flight));
        // The write's reply is passed on only if the lease it was sent
        // under still holds for the same node when it comes.
        let sent_under = self.host.lease_epoch();
        let (node, thread_id) = {
            let b = self.backend_mut(target)?;
            (b.node, b.thread_id)
        };
        let statement =
            (packet.payload.first() == Some(&COM_QUERY)).then(|| packet.payload.clone());
        self.set_running(
            Some(Running {
                host: self.host.clone(),
                node,
                thread_id,
                read_only: self.login.user.read_only,
            }),
            statement,
        );
        let backend = self.backend_mut(target)?;
        let sent_to = backend.node;
        let node_metrics = backend.metrics.clone();
        backend.in_reply = true;
        let started = Instant::now();
        if let Err(e) = backend.wire.send(packet).await {
            // A server refusing a request (one over its max_allowed_packet)
            // answers ERR and closes while the rest is still being written:
            // its answer may be there to read.
            let answer = tokio::time::timeout(SENT_ERR_WAIT, next(&mut backend.wire)).await;
            if let Ok(Ok(mut err)) = answer {
                if err.payload.first() != Some(&0xFF) {
                    let e = anyhow::anyhow!("{e}; then a reply that is not an ERR");
                    return self.lost_backend(target, sent, false, may_retry, &e).await;
                }
                err.seq = reply_seq;
                self.lost_connection(target);
                self.client.send(err).await?;
                return Ok(Forwarded::Done {
                    ok: false,
                    on: target,
                });
            }
            let e = e.into();
            return self.lost_backend(target, sent, false, may_retry, &e).await;
        }
        let mut reply = Reply::new(expect);
        let mut forwarded = false;
        // Replies go out numbered after the client's request, whatever
        // the backend numbered them (they differ after a request the
        // backend refused part way).
        let mut renumber: Option<u8> = None;
        loop {
            // What the backend sent so far goes out before the proxy waits
            // for more: each result of a multi-result reply reaches the
            // client as it completes (`SELECT 'a'; SELECT SLEEP(3)` shows
            // 'a' at once), and a reply read in one go is one write.
            if self.kill.is_cancelled() {
                // kill @@connection in the middle of a long reply.
                self.drop_backend(target);
                anyhow::bail!("killed by the admin port");
            }
            let ready = next(&mut self.backend_mut(target)?.wire).now_or_never();
            let next_packet = match ready {
                Some(r) => r,
                None => {
                    self.client.flush().await?;
                    let kill = self.kill.clone();
                    let backend = self.backend_mut(target)?;
                    tokio::select! {
                        r = next(&mut backend.wire) => r,
                        // kill @@connection: no waiting for the reply to finish.
                        _ = kill.cancelled() => {
                            self.drop_backend(target);
                            anyhow::bail!("killed by the admin port");
                        }
                    }
                }
            };
            let mut p = match next_packet {
                Ok(p) => p,
                Err(e) => {
                    return self
                        .lost_backend(target, sent, forwarded, may_retry, &e)
                        .await
                }
            };
            let shift = *renumber.get_or_insert(reply_seq.wrapping_sub(p.seq));
            p.seq = p.seq.wrapping_add(shift);
            if !forwarded && target == Target::Write && !self.host.vouches(sent_under, sent_to) {
                // The lease this was sent under lapsed, or the primary
                // changed, before the answer came: another proxy may have
                // promoted a node meanwhile (and this one resumed only
                // now), so this write (if it was one) must not count as
                // acknowledged.
                // The connection goes: what it held is not ours to vouch for.
                self.lost_connection(target);
                send_err(
                    &mut self.client,
                    reply_seq,
                    2013,
                    "HY000",
                    "sqlproxyd: the outcome of this statement is unknown: this proxy's write lease on the primary ran out while it ran (it reached too few nodes; a promotion may be under way elsewhere); check its effect, then retry",
                )
                .await?;
                return Ok(Forwarded::Done {
                    ok: false,
                    on: target,
                });
            }
            let step = reply.step(&p.payload);
            let closes = closes_connection(&p.payload);
            if !forwarded
                && target == Target::Write
                && is_read_only_refusal(&p.payload)
                && !self.route.in_transaction
            {
                let b = self.backend_mut(target)?;
                b.in_reply = false;
                return Ok(Forwarded::ReadOnly {
                    err: p,
                    node: b.node,
                });
            }
            self.client.feed(p).await?;
            forwarded = true;
            match step {
                Ok(Step::More) => {}
                Ok(Step::Done { status, error }) => {
                    let b = self.backend_mut(target)?;
                    b.in_reply = false;
                    b.autocommit = status.contains(Status::SERVER_STATUS_AUTOCOMMIT);
                    self.client.flush().await?;
                    if let Some(m) = &node_metrics {
                        m.commands.inc();
                        m.latency.observe(
                            Instant::now()
                                .saturating_duration_since(started)
                                .as_secs_f64(),
                        );
                    }
                    if target == Target::Write && !error {
                        self.route.server_status(
                            status.contains(Status::SERVER_STATUS_IN_TRANS),
                            status.contains(Status::SERVER_STATUS_AUTOCOMMIT),
                        );
                    }
                    if closes {
                        // The server hangs up after this error: the next
                        // statement gets a new connection, in step again.
                        self.lost_connection(target);
                    }
                    return Ok(Forwarded::Done {
                        ok: !error,
                        on: target,
                    });
                }
                Ok(Step::LocalInfile) => {
                    self.client.flush().await?;
                    self.relay_local_infile(target, shift).await?;
                }
                Err(e) => {
                    // The backend broke protocol: neither side can go on.
                    self.drop_backend(target);
                    anyhow::bail!("backend of data host '{}': {e}", self.host.name);
                }
            }
        }
    }

    /// LOAD DATA LOCAL INFILE: the client's file packets, up to an empty one, go to the backend.
    async fn relay_local_infile(&mut self, target: Target, shift: u8) -> Result<()> {
        loop {
            let mut p = next(&mut self.client).await?;
            p.seq = p.seq.wrapping_sub(shift);
            let last = p.payload.is_empty();
            self.backend_mut(target)?.wire.feed(p).await?;
            if last {
                self.backend_mut(target)?.wire.flush().await?;
                return Ok(());
            }
        }
    }

    /// The connection for `target` is gone (or going): closed, and what the
    /// session held there forgotten.
    fn lost_connection(&mut self, target: Target) {
        self.drop_backend(target);
        if target == Target::Write {
            // Whatever was open there (transaction, locks, temp tables) is
            // gone; the session's autocommit setting is not.
            self.route = self.route.after_connection_lost();
        }
    }

    async fn lost_backend(
        &mut self,
        target: Target,
        sent: Sent,
        forwarded: bool,
        may_retry: bool,
        e: &anyhow::Error,
    ) -> Result<Forwarded> {
        let node = self.backend_mut(target)?.node;
        let name = self.host.nodes[node].name.clone();
        self.metrics
            .backend_errors
            .get_or_create(&NodeLabels::new(&self.host.name, &name))
            .inc();
        self.drop_backend(target);
        tracing::warn!(session = self.id, node = %name, "lost the backend connection: {e:#}");
        if forwarded {
            // Part of a reply reached the client: the stream cannot be repaired.
            anyhow::bail!("backend {name} lost in the middle of a reply");
        }
        if may_retry && target == Target::Read {
            return Ok(Forwarded::Retry);
        }
        self.lost_connection(target);
        let msg = if sent.size >= hastack_proto::mysql::MAX_FRAME_PAYLOAD {
            format!(
                "Lost connection to backend node '{name}' while sending a {}-byte request: \
                 more than that node's max_allowed_packet? (MariaDB's default is 16M, \
                 sqlproxyd's max_allowed_packet is {})",
                sent.size, self.topology.max_allowed_packet
            )
        } else {
            format!("Lost connection to backend node '{name}' during query")
        };
        send_err(&mut self.client, sent.reply_seq, 2013, "HY000", &msg).await?;
        Ok(Forwarded::Refused)
    }

    fn backend_mut(&mut self, target: Target) -> Result<&mut Backend> {
        match target {
            Target::Write => self.write.as_mut(),
            Target::Read => self.read.as_mut(),
        }
        .ok_or_else(|| anyhow::anyhow!("no {target:?} backend connection open"))
    }

    /// Takes the topology a reload put in force, when there is a newer one
    /// than the session's: its data host is looked up again (by schema, as
    /// at login), and the backend connections that still lead to one of its
    /// nodes are kept ([`follow`]); the others close. From then on
    /// the session routes by that data host's heartbeat, nodes and pool.
    async fn follow_reload(&mut self, packet: &Packet) -> Result<Followed> {
        let Some((generation, topology)) = self.live.newer_than(self.generation) else {
            return Ok(Followed::Go);
        };
        self.generation = generation;
        // A schema the reload removed ends the session (the DBA took it
        // away on purpose). A database with no schema of its own stays on
        // the data host it was used on (`USE` keeps the data host), by
        // name, unless the reload made it a schema somewhere.
        let schema = self.schema.as_deref();
        let same_host = || {
            topology
                .data_hosts
                .iter()
                .position(|h| h.name == self.host.name)
        };
        let index = match schema.map(|db| (db, self.topology.schemas.contains_key(db))) {
            Some((db, true)) => topology.schemas.get(db).copied(),
            Some((db, false)) => topology.schemas.get(db).copied().or_else(same_host),
            None => Some(topology.default_host(&self.login.user)),
        };
        let Some(host) = index.and_then(|i| topology.data_hosts.get(i).cloned()) else {
            let what = match &self.schema {
                Some(db) => format!("schema '{db}' (data host '{}')", self.host.name),
                None => format!("data host '{}'", self.host.name),
            };
            tracing::warn!(session = self.id, "closing: {what} removed by a reload");
            // Its connections lead to nodes no longer configured: closed, not pooled.
            self.drop_backend(Target::Write);
            self.drop_backend(Target::Read);
            let msg = format!(
                "{what} is no longer configured in sqlproxyd (removed by a reload): this session is closed; reconnect"
            );
            self.err(packet, 1927, "70100", &msg).await?;
            return Ok(Followed::Close);
        };
        self.topology = topology;
        self.client
            .codec_mut()
            .set_max_packet(self.topology.max_allowed_packet);
        let carry = self.host.carry_to(&host);
        let held = self.route.in_transaction || self.route.pinned.is_some();
        let mut lost = None;
        for target in [Target::Write, Target::Read] {
            let slot = match target {
                Target::Write => &mut self.write,
                Target::Read => &mut self.read,
            };
            let Some(node) = slot.as_ref().map(|b| b.node) else {
                continue;
            };
            // Reads hold nothing: what the session set is run again on a new one.
            match carry.fate(node, held && target == Target::Write) {
                Fate::Keep { node, pool } => {
                    if let Some(b) = slot.as_mut() {
                        b.node = node;
                        b.poolable &= pool;
                    }
                }
                Fate::Close => self.drop_backend(target),
                Fate::Lost => {
                    lost = Some(self.host.nodes[node].name.clone());
                    self.lost_connection(target);
                }
            }
        }
        let old = std::mem::replace(&mut self.host, host);
        if let Some(node) = lost {
            tracing::warn!(session = self.id, data_host = %old.name, %node, "a reload removed the node this session's transaction was on");
            let msg = format!(
                "a reload removed node '{node}' of data host '{}' (or moved it to another address): this session's open transaction, locks, temporary tables or prepared statements there are lost; retry the transaction",
                old.name
            );
            self.err(packet, 1105, "HY000", &msg).await?;
            return Ok(Followed::Answered);
        }
        Ok(Followed::Go)
    }

    /// Opens (if needed) and brings in step the connection for `target`;
    /// returns the target actually used (a read falls back to the writer
    /// when no read node qualifies and the data host allows it).
    async fn ensure_backend(&mut self, target: Target) -> Result<Target> {
        if target == Target::Read {
            // A replica that fell behind, or a node promoted or fenced since,
            // is let go: the read goes where the heartbeat allows now.
            if let Some(node) = self.read.as_ref().map(|b| b.node) {
                if !self.host.readable(node) || Some(node) == self.host.writer() {
                    self.release(Target::Read).await;
                }
            }
            if self.read.is_none() {
                let writer = self.host.writer();
                let order = self.host.read_order();
                for &node in &order {
                    if Some(node) == writer {
                        break;
                    }
                    match self.connect(node, Target::Read).await {
                        Ok(b) => {
                            self.read = Some(b);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(session = self.id, node = %self.host.nodes[node].name, "read node unavailable: {e:#}")
                        }
                    }
                }
                if self.read.is_none() && writer.is_some_and(|w| !order.contains(&w)) {
                    anyhow::bail!("{}", self.host.no_read_node());
                }
            }
            if self.read.is_some() {
                match self.sync(Target::Read).await {
                    Ok(()) => return Ok(Target::Read),
                    Err(e) => {
                        tracing::warn!(
                            session = self.id,
                            "cannot bring the read connection in step, using the writer: {e:#}"
                        );
                        self.drop_backend(Target::Read);
                    }
                }
            }
        }
        self.ensure_writer().await?;
        self.sync(Target::Write).await?;
        Ok(Target::Write)
    }

    /// Keeps the write connection on the primary in use: after a failover
    /// the old one is closed (what it held is gone, and the client is told
    /// when that was a transaction or session state), and a new one is
    /// opened, waiting up to `primary_wait` for a primary to exist.
    async fn ensure_writer(&mut self) -> Result<()> {
        let mut writer = self.host.writer();
        if writer.is_none() && self.write.is_some() {
            // No primary named now (a switchover's pause, a failover, the
            // first round of a heartbeat a reload restarted): the
            // connection is judged against the primary there will be, not
            // dropped (with the transaction it may hold) for a pause.
            writer = self.host.wait_writer().await.ok();
        }
        if let Some(node) = self.write.as_ref().map(|b| b.node) {
            if Some(node) != writer {
                let held = self.route.in_transaction || self.route.pinned.is_some();
                let old = self.host.nodes[node].name.clone();
                self.drop_backend(Target::Write);
                self.route = self.route.after_connection_lost();
                if held {
                    anyhow::bail!("the primary changed (it was {old}): this session's open transaction, locks, temporary tables or prepared statements there are lost; retry the transaction");
                }
            }
        }
        if self.write.is_none() {
            // Nothing was sent yet, so a primary that refuses the connection
            // (dying, a failover under way) is waited out, not reported.
            let deadline = tokio::time::Instant::now() + self.host.primary_wait;
            loop {
                let w = self.host.wait_writer().await.map_err(|why| {
                    anyhow::anyhow!("no primary for data host '{}': {why}", self.host.name)
                })?;
                match self.connect(w, Target::Write).await {
                    Ok(b) => {
                        self.write = Some(b);
                        break;
                    }
                    Err(e) => {
                        if !self.host.wait_primary_change(w, deadline).await {
                            return Err(e);
                        }
                        tracing::info!(
                            session = self.id,
                            "primary {} unreachable; writes go to the new primary",
                            self.host.nodes[w].name
                        );
                    }
                }
            }
        }
        Ok(())
    }

    async fn connect(&mut self, node: usize, target: Target) -> Result<Backend> {
        let host = self.host.clone();
        let n = &host.nodes[node];
        let read_only = self.login.user.read_only;
        let (user, password) = host.account(read_only);
        let login = Credentials {
            user,
            password: password.expose(),
            database: self.schema.as_deref(),
            capabilities: self.login.capabilities,
            collation: self.login.collation,
        };
        let labels = NodeLabels::new(&host.name, &n.name);
        let key = PoolKey {
            node,
            capabilities: self.login.capabilities.bits(),
            collation: self.login.collation,
            read_only,
        };
        // Expired and unusable pooled connections close as they drop (their
        // gauge guard counts them out).
        let pooled = host.pool.take(key, Instant::now());
        let pooled = match pooled {
            // A pooled connection cannot leave a schema: a session without one takes a fresh one.
            Some(b) if self.schema.is_none() && b.schema.is_some() => None,
            other => other,
        };
        let connected = match pooled {
            Some(b) => Ok(b),
            None => Backend::open(&host, node, &login, &self.metrics).await,
        };
        match connected {
            Ok(mut b) => {
                b.metrics = Some(NodeMetrics {
                    commands: self
                        .metrics
                        .backend_commands
                        .get_or_create_owned(&NodeRouteLabels {
                            data_host: labels.data_host.clone(),
                            node: labels.node.clone(),
                            route: route_name(target),
                        }),
                    latency: self.metrics.backend_latency.get_or_create_owned(&labels),
                });
                Ok(b)
            }
            Err(e) => {
                self.metrics.backend_errors.get_or_create(&labels).inc();
                Err(e.context(format!("node '{}' ({})", n.name, n.addr)))
            }
        }
    }

    /// Runs on the connection what the session did elsewhere: schema, SETs, autocommit.
    async fn sync(&mut self, target: Target) -> Result<()> {
        // Disjoint borrows: nothing is cloned on the per-command path.
        let b = match target {
            Target::Write => self.write.as_mut(),
            Target::Read => self.read.as_mut(),
        }
        .ok_or_else(|| anyhow::anyhow!("no {target:?} backend connection open"))?;
        // First, before anything of the client's runs there.
        if b.read_only != self.login.user.read_only {
            let sql: &[u8] = if self.login.user.read_only {
                crate::route::readonly::APPLY
            } else {
                b"SET SESSION TRANSACTION READ WRITE"
            };
            b.run(COM_QUERY, sql).await?;
            b.read_only = self.login.user.read_only;
        }
        if let Some(db) = self
            .schema
            .as_ref()
            .filter(|db| b.schema.as_ref() != Some(*db))
        {
            b.run(COM_INIT_DB, db.as_bytes()).await?;
            b.schema = Some(db.clone());
        }
        for set in &self.sets[b.applied_sets.min(self.sets.len())..] {
            b.run(COM_QUERY, set).await?;
        }
        b.applied_sets = self.sets.len();
        // A new write connection (after a lost one, or a failover) must
        // not commit each statement behind a client that turned autocommit off.
        if target == Target::Write && b.autocommit != self.route.autocommit {
            let sql: &[u8] = if self.route.autocommit {
                b"SET autocommit = 1"
            } else {
                b"SET autocommit = 0"
            };
            b.run(COM_QUERY, sql).await?;
            b.autocommit = self.route.autocommit;
        }
        Ok(())
    }

    /// Returns a healthy connection to the pool (reset first), or closes it.
    async fn release(&mut self, target: Target) {
        let slot = match target {
            Target::Write => &mut self.write,
            Target::Read => &mut self.read,
        };
        let Some(mut b) = slot.take() else {
            return;
        };
        // After a multi-statement the connection's schema is not known for
        // sure (a `USE` inside it), and COM_RESET_CONNECTION keeps it.
        let multi = matches!(
            self.route.pinned,
            Some(PinReason::Statement(
                hastack_proto::sql::Pin::MultiStatement
            ))
        );
        // A KILL QUERY on its way names this connection's thread: another
        // session must never get it from the pool and lose its statement.
        let kills_pending = self.running.lock().map_or(true, |a| a.kills_in_flight > 0);
        let reset = !b.in_reply
            && !multi
            && !kills_pending
            && b.poolable
            && tokio::time::timeout(
                std::time::Duration::from_secs(2),
                b.run(COM_RESET_CONNECTION, &[]),
            )
            .await
            .is_ok_and(|r| r.is_ok());
        if reset {
            b.applied_sets = 0;
            b.autocommit = true;
            // The reset took the session back to the server's defaults.
            b.read_only = false;
            b.metrics = None;
            let key = PoolKey {
                node: b.node,
                capabilities: b.capabilities,
                collation: b.collation,
                read_only: self.login.user.read_only,
            };
            // Given back when the pool is full: dropped, and so closed.
            let _ = self.host.pool.put(key, b, Instant::now());
        }
    }

    /// Closes a connection that cannot be reused.
    fn drop_backend(&mut self, target: Target) {
        let slot = match target {
            Target::Write => &mut self.write,
            Target::Read => &mut self.read,
        };
        // Dropping it closes it and counts it out of the gauge.
        drop(slot.take());
    }

    async fn change_user(&mut self, packet: Packet) -> Result<()> {
        use hastack_proto::mysql::auth::verify_native;
        use hastack_proto::mysql::packets::ChangeUser;
        let cu = match ChangeUser::parse(&packet.payload) {
            Ok(cu) => cu,
            Err(e) => return self.err(&packet, 1047, "08S01", &e.to_string()).await,
        };
        let native = cu
            .auth_plugin
            .as_deref()
            .is_none_or(|p| p == "mysql_native_password");
        let mut seq = packet.seq.wrapping_add(1);
        let mut answer = cu.auth_response.clone();
        if !native {
            let mut payload = vec![0xFE];
            payload.extend_from_slice(b"mysql_native_password\0");
            payload.extend_from_slice(&self.login.nonce);
            payload.push(0);
            self.client.send(Packet::new(seq, payload)).await?;
            let switched = next(&mut self.client).await?;
            seq = switched.seq.wrapping_add(1);
            answer = switched.payload.to_vec();
        }
        let user = self
            .topology
            .users
            .get(&cu.user)
            .filter(|u| verify_native(&self.login.nonce, &answer, &u.hash))
            .cloned();
        let Some(user) = user else {
            self.metrics.auth_failures.inc();
            let msg = format!(
                "Access denied for user '{}'@'{}' (using password: YES)",
                cu.user,
                self.peer.ip()
            );
            send_err(&mut self.client, seq, 1045, "28000", &msg).await?;
            anyhow::bail!("COM_CHANGE_USER refused");
        };
        if let Some(db) = &cu.database {
            if let Some((code, state, msg)) = schema_refusal(&user, db) {
                send_err(&mut self.client, seq, code, state, &msg).await?;
                anyhow::bail!("COM_CHANGE_USER refused: {msg}");
            }
        }
        // A new identity starts from a clean session, as on a server.
        self.release(Target::Write).await;
        self.release(Target::Read).await;
        self.route = SessionRoute::default();
        self.forget_sets();
        if user.name != self.login.user.name {
            // The new user's count, before the old one's place is given up.
            match self
                .user_slot
                .admission()
                .login(&user.name, user.max_connections)
            {
                Ok(slot) => self.user_slot = slot,
                Err(why) => {
                    self.metrics.refused(why, self.peer, &user.name);
                    let (code, state, msg) = why.error(&user.name);
                    send_err(&mut self.client, seq, code, state, &msg).await?;
                    anyhow::bail!("COM_CHANGE_USER refused: {msg}");
                }
            }
        }
        self.login.user = user;
        if let Some(c) = cu.collation {
            self.login.collation = c;
        }
        self.unsafe_charset = collation_is_unsafe(u16::from(self.login.collation));
        // The data host follows the new schema (or the new user's default).
        let host = cu
            .database
            .as_deref()
            .and_then(|d| self.topology.schemas.get(d))
            .copied()
            .unwrap_or_else(|| self.topology.default_host(&self.login.user));
        if let Some(h) = self.topology.data_hosts.get(host) {
            self.host = h.clone();
        }
        self.schema = cu.database;
        let backend_decides = self
            .schema
            .as_deref()
            .is_some_and(|d| !self.topology.schemas.contains_key(d));
        if backend_decides {
            if !self.finish_login(seq).await? {
                anyhow::bail!("COM_CHANGE_USER refused by the backend (its database)");
            }
            return Ok(());
        }
        // COM_CHANGE_USER's OK goes out in the protocol already spoken.
        frontend::send_login_ok(&mut self.client, seq, false).await
    }

    /// Updates the registry's view of this session if it changed.
    fn publish(&mut self) {
        let write = self.write.as_ref().map(|b| b.node);
        let read = self.read.as_ref().map(|b| b.node);
        let memory = self.memory();
        // Buffer capacities move with every read; a change of their size
        // class is news, one within it is not (the view says "as of the
        // session's last change").
        let unchanged = self.published.as_ref().is_some_and(|p| {
            p.memory.state_bytes == memory.state_bytes
                && p.memory.buffer_bytes.next_power_of_two()
                    == memory.buffer_bytes.next_power_of_two()
                && p.user == self.login.user.name
                && p.schema == self.schema
                && p.in_transaction == self.route.in_transaction
                && p.autocommit == self.route.autocommit
                && p.pinned == self.route.pinned
                && p.write == write
                && p.read == read
        });
        if !unchanged {
            self.registry.update(self.id, self.view());
            self.published = Some(Fingerprint {
                user: self.login.user.name.clone(),
                schema: self.schema.clone(),
                in_transaction: self.route.in_transaction,
                autocommit: self.route.autocommit,
                pinned: self.route.pinned,
                write,
                read,
                memory,
            });
        }
    }

    /// What the admin port shows of this session.
    fn view(&self) -> SessionView {
        let node = |b: &Option<Backend>| {
            b.as_ref()
                .map(|b| (self.host.nodes[b.node].name.clone(), b.addr))
        };
        SessionView {
            user: self.login.user.name.clone(),
            peer: self.peer,
            data_host: self.host.name.clone(),
            schema: self.schema.clone(),
            started: self.started,
            in_transaction: self.route.in_transaction,
            autocommit: self.route.autocommit,
            pinned: self.route.pinned.map(|p| format!("{p:?}")),
            write_node: node(&self.write),
            read_node: node(&self.read),
            memory: self.memory(),
        }
    }

    /// What the classifier must know of this session.
    fn sql_context(&self) -> Context<'_> {
        Context {
            read_only_functions: &self.topology.read_only_functions,
            schema: self.schema.as_deref(),
            unsafe_charset: self.unsafe_charset,
        }
    }

    async fn refuse_lifting(&mut self, packet: &Packet, why: &str) -> Result<()> {
        let msg = format!(
            "Access denied; sqlproxyd user '{}' is read_only and this statement is refused: {why}",
            self.login.user.name
        );
        self.err(packet, 1227, "42000", &msg).await
    }

    async fn refuse_read_only(&mut self, packet: &Packet) -> Result<()> {
        let msg = format!(
            "The MariaDB server is running with the --read-only option so it cannot execute this statement (sqlproxyd user '{}' is read_only)",
            self.login.user.name
        );
        self.err(packet, 1290, "HY000", &msg).await
    }

    async fn ok(&mut self, request: &Packet) -> Result<()> {
        let mut status = Status::empty();
        if self.route.autocommit {
            status |= Status::SERVER_STATUS_AUTOCOMMIT;
        }
        if self.route.in_transaction {
            status |= Status::SERVER_STATUS_IN_TRANS;
        }
        let ok = OkPacket {
            status,
            ..OkPacket::default()
        };
        self.client
            .send(Packet::new(request.next_seq(), ok.to_payload()))
            .await?;
        Ok(())
    }

    async fn err(&mut self, request: &Packet, code: u16, state: &str, msg: &str) -> Result<()> {
        send_err(&mut self.client, request.next_seq(), code, state, msg).await
    }
}

#[cfg(test)]
mod tests {
    use super::{closes_connection, is_read_only_refusal};
    use hastack_proto::mysql::packets::err_payload;

    #[test]
    fn read_only_refusals_are_told_from_other_errors() {
        for code in [1290, 1836] {
            assert!(is_read_only_refusal(&err_payload(
                code,
                "HY000",
                "read-only"
            )));
        }
        for code in [1062, 1205, 1792, 2013] {
            assert!(!is_read_only_refusal(&err_payload(code, "HY000", "x")));
        }
        // An OK packet whose bytes after the header happen to read 1290.
        let mut ok = err_payload(1290, "HY000", "x").to_vec();
        ok[0] = 0x00;
        assert!(!is_read_only_refusal(&ok));
        assert!(!is_read_only_refusal(&[0xFF]));
    }

    #[test]
    fn network_errors_close_the_backend_connection_others_do_not() {
        let too_large = err_payload(
            1153,
            "08S01",
            "Got a packet bigger than 'max_allowed_packet' bytes",
        );
        assert!(closes_connection(&too_large));
        assert!(closes_connection(&err_payload(1161, "08S01", "x")));
        assert!(!closes_connection(&err_payload(
            1062,
            "23000",
            "Duplicate entry"
        )));
        assert!(!closes_connection(&err_payload(1152, "08S01", "x")));
        assert!(!closes_connection(&[0x00, 0x81, 0x04]));
    }
}
