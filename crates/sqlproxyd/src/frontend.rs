//! The client side of a session's start: the server handshake and the
//! client's login (mysql_native_password, with an auth switch for clients
//! that start with another plugin).

use std::net::SocketAddr;

use anyhow::{bail, Result};
use futures::SinkExt;
use hastack_proto::mysql::auth::verify_native;
use hastack_proto::mysql::packets::{err_payload, Capabilities, Handshake, Ok as OkPacket, Status};
use hastack_proto::mysql::Packet;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};

use hastack_proto::mysql::codec::PacketCodec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::backend::next;
use crate::client_stream::{ClientStream, ClientWire};
use crate::topology::{Topology, User};

/// What the proxy offers clients. Not offered: TLS (not yet), compression,
/// DEPRECATE_EOF and session tracking (backend replies pass through
/// unchanged, so they must be in the classic form every client reads).
pub fn offered_capabilities() -> Capabilities {
    Capabilities::CLIENT_LONG_PASSWORD
        | Capabilities::CLIENT_FOUND_ROWS
        | Capabilities::CLIENT_LONG_FLAG
        | Capabilities::CLIENT_CONNECT_WITH_DB
        | Capabilities::CLIENT_LOCAL_FILES
        | Capabilities::CLIENT_IGNORE_SPACE
        | Capabilities::CLIENT_PROTOCOL_41
        | Capabilities::CLIENT_INTERACTIVE
        | Capabilities::CLIENT_IGNORE_SIGPIPE
        | Capabilities::CLIENT_TRANSACTIONS
        | Capabilities::CLIENT_SECURE_CONNECTION
        | Capabilities::CLIENT_MULTI_STATEMENTS
        | Capabilities::CLIENT_MULTI_RESULTS
        | Capabilities::CLIENT_PS_MULTI_RESULTS
        | Capabilities::CLIENT_PLUGIN_AUTH
        | Capabilities::CLIENT_CONNECT_ATTRS
        | Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
}

/// utf8mb4_general_ci, what MariaDB 10.11 announces.
const DEFAULT_COLLATION: u8 = 45;

/// How long a client may take from connect to logged in.
pub const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A logged-in client.
pub struct Client {
    pub user: std::sync::Arc<User>,
    pub database: Option<String>,
    pub capabilities: Capabilities,
    pub collation: u8,
    pub nonce: [u8; 20],
}

/// A 20-byte nonce of printable ASCII (never NUL: it is sent NUL-terminated).
pub fn nonce() -> [u8; 20] {
    let mut n: [u8; 20] = rand::random();
    for b in &mut n {
        *b = 33 + *b % 94;
    }
    n
}

/// Greets the client and checks its login. `Ok(None)`: refused, the client
/// got its ERR and the connection should close.
pub async fn login(
    wire: &mut ClientWire,
    conn_id: u32,
    topology: &Topology,
    peer: SocketAddr,
) -> Result<Option<Client>> {
    let nonce = nonce();
    let mut offered = offered_capabilities();
    if topology.tls.is_some() {
        offered |= Capabilities::CLIENT_SSL;
    }
    let hello = Handshake {
        server_version: topology.server_version.clone(),
        connection_id: conn_id,
        scramble: nonce,
        capabilities: offered,
        collation: DEFAULT_COLLATION,
        status: Status::SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: "mysql_native_password".into(),
    };
    wire.send(Packet::new(0, hello.to_payload())).await?;
    // With TLS on offer, read the first packet exactly, byte by byte count:
    // a client sends its TLS ClientHello right behind an SSLRequest, and
    // bytes the framer read ahead would never reach the TLS handshake.
    let mut reply = if topology.tls.is_some() && wire.read_buffer().is_empty() {
        read_one_packet(wire.get_mut()).await?
    } else {
        next(wire).await?
    };
    // An SSLRequest is the first 32 bytes of a handshake response with
    // CLIENT_SSL set; TLS starts right after it, and the real response
    // follows inside TLS.
    let wants_tls = reply.payload.len() == 32
        && reply.payload.get(..4).is_some_and(|f| {
            u32::from_le_bytes([f[0], f[1], f[2], f[3]]) & Capabilities::CLIENT_SSL.bits() != 0
        });
    if wants_tls {
        let Some(acceptor) = &topology.tls else {
            send_err(
                wire,
                reply.seq.wrapping_add(1),
                1045,
                "28000",
                "TLS was requested but sqlproxyd has no tls section",
            )
            .await?;
            return Ok(None);
        };
        wire.get_mut()
            .upgrade(acceptor)
            .await
            .map_err(|e| anyhow::anyhow!("TLS handshake with {peer}: {e}"))?;
        reply = next(wire).await?;
    } else if topology.require_tls {
        let msg = "Connections using insecure transport are prohibited (sqlproxyd require_tls)";
        send_err(wire, reply.seq.wrapping_add(1), 3159, "HY000", msg).await?;
        return Ok(None);
    }
    let response = match HandshakeResponse::deserialize((), &mut ParseBuf(&reply.payload)) {
        Ok(r) => r,
        Err(e) => bail!("malformed handshake response from {peer}: {e}"),
    };
    let user_name = String::from_utf8_lossy(response.user()).into_owned();
    let database = response
        .db_name()
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned());
    // CLIENT_SSL is between client and proxy only; backends never see it.
    let capabilities = response.capabilities() & offered_capabilities();
    let collation = response.collation();
    let mut seq = reply.seq.wrapping_add(1);
    let mut answer = response.scramble_buf().to_vec();
    let native = matches!(
        response.auth_plugin(),
        None | Some(AuthPlugin::MysqlNativePassword)
    );
    if !native {
        // MySQL 8 clients start with caching_sha2_password: ask for native.
        let mut nonce_nul = nonce.to_vec();
        nonce_nul.push(0);
        let mut buf = Vec::new();
        AuthSwitchRequest::new(&b"mysql_native_password"[..], nonce_nul).serialize(&mut buf);
        wire.send(Packet::new(seq, buf)).await?;
        let switched = next(wire).await?;
        seq = switched.seq.wrapping_add(1);
        answer = switched.payload.to_vec();
    }
    let user = topology
        .users
        .get(&user_name)
        .filter(|u| verify_native(&nonce, &answer, &u.hash));
    let Some(user) = user else {
        let using = if answer.is_empty() { "NO" } else { "YES" };
        let msg = format!(
            "Access denied for user '{user_name}'@'{}' (using password: {using})",
            peer.ip()
        );
        send_err(wire, seq, 1045, "28000", &msg).await?;
        return Ok(None);
    };
    if let Some(db) = &database {
        if let Some((code, state, msg)) = schema_refusal(topology, user, db) {
            send_err(wire, seq, code, state, &msg).await?;
            return Ok(None);
        }
    }
    let ok = OkPacket {
        status: Status::SERVER_STATUS_AUTOCOMMIT,
        ..OkPacket::default()
    };
    wire.send(Packet::new(seq, ok.to_payload())).await?;
    Ok(Some(Client {
        user: user.clone(),
        database,
        capabilities,
        collation,
        nonce,
    }))
}

/// Reads exactly one packet (a login packet: at most 64 KiB) from `stream`.
async fn read_one_packet(stream: &mut ClientStream) -> Result<Packet> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > 64 << 10 {
        bail!("a {len}-byte login packet");
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Packet::new(header[3], payload))
}

/// Why `user` may not use `schema`, as MariaDB would say it.
pub fn schema_refusal(
    topology: &Topology,
    user: &User,
    schema: &str,
) -> Option<(u16, &'static str, String)> {
    if !user.may_use(schema) {
        return Some((
            1044,
            "42000",
            format!(
                "Access denied for user '{}'@'%' to database '{schema}'",
                user.name
            ),
        ));
    }
    if !topology.schemas.contains_key(schema) {
        return Some((1049, "42000", format!("Unknown database '{schema}'")));
    }
    None
}

pub async fn send_err<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Framed<S, PacketCodec>,
    seq: u8,
    code: u16,
    state: &str,
    msg: &str,
) -> Result<()> {
    wire.send(Packet::new(seq, err_payload(code, state, msg)))
        .await?;
    Ok(())
}

/// How long a client may take to send its PROXY protocol header.
const PROXY_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the PROXY protocol header that starts `stream`. Returns the client
/// address it names (`None` for a balancer's LOCAL health check) and any
/// bytes that followed it.
pub async fn read_proxy_header(
    stream: &mut tokio::net::TcpStream,
) -> Result<(Option<SocketAddr>, Vec<u8>)> {
    use hastack_proto::proxy_protocol::parse;
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(128);
    let read = async {
        loop {
            let mut chunk = [0u8; 256];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed before a complete PROXY protocol header");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some((header, used)) = parse(&buf)? {
                return Ok((header.addresses.map(|(src, _)| src), buf[used..].to_vec()));
            }
            if buf.len() > 16 + usize::from(u16::MAX) {
                bail!("PROXY protocol header too long");
            }
        }
    };
    tokio::time::timeout(PROXY_HEADER_TIMEOUT, read)
        .await
        .map_err(|_| anyhow::anyhow!("no PROXY protocol header within {PROXY_HEADER_TIMEOUT:?}"))?
}
