//! The client side of a session's start: the server handshake and the
//! client's login: mysql_native_password, or caching_sha2_password (fast
//! path with a configured password, full path over TLS for users with only
//! a hash), with an auth switch for clients that start with another plugin.

use std::net::SocketAddr;

use anyhow::{bail, Result};
use futures::SinkExt;
use hastack_proto::mysql::auth::{
    is_empty_answer, verify_clear, verify_native, verify_sha2_fast, FAST_AUTH_SUCCESS,
    PERFORM_FULL_AUTHENTICATION,
};
use hastack_proto::mysql::packets::{err_payload, Capabilities, Handshake, Ok as OkPacket, Status};
use hastack_proto::mysql::Packet;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin as WirePlugin, AuthSwitchRequest, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};

use hastack_proto::mysql::codec::PacketCodec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::backend::next;
use crate::config::AuthPlugin;
use crate::session::client_stream::{ClientStream, ClientWire};
use crate::topology::{Topology, User};

/// What the proxy offers clients (TLS too when configured). Compression is
/// between client and proxy only: the proxy inflates and deflates, its
/// backends speak plain. Not offered: DEPRECATE_EOF and session tracking
/// (backend replies pass through unchanged, so they must be in the
/// classic form every client reads).
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
        | Capabilities::CLIENT_COMPRESS
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
    /// The login's OK is not sent yet: the database asked for is no
    /// configured schema, so whether it exists (and the account may use
    /// it) is the backend's to say, when the session first connects. The
    /// OK's sequence id.
    pub pending_ok: Option<u8>,
    /// The client asked for the compressed protocol: it starts after the OK.
    pub compress: bool,
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
/// got its ERR and the connection should close. `admit` has the last word
/// on an authenticated user (its connection limit): an error it returns is
/// sent instead of the OK, and the login fails.
pub async fn login(
    wire: &mut ClientWire,
    conn_id: u32,
    topology: &Topology,
    peer: SocketAddr,
    admit: impl FnOnce(&User) -> Option<(u16, &'static str, String)>,
) -> Result<Option<Client>> {
    login_among(wire, conn_id, topology, &topology.users, peer, admit, true).await
}

/// As [`login`], checking the login against `users` (the admin port's).
pub async fn login_among(
    wire: &mut ClientWire,
    conn_id: u32,
    topology: &Topology,
    users: &std::collections::HashMap<String, std::sync::Arc<User>>,
    peer: SocketAddr,
    admit: impl FnOnce(&User) -> Option<(u16, &'static str, String)>,
    backends_decide_databases: bool,
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
        auth_plugin: topology.default_auth_plugin.name().into(),
    };
    wire.send(Packet::new(0, hello.to_payload())).await?;
    // With TLS on offer, read the first packet exactly, byte by byte count:
    // a client sends its TLS ClientHello right behind an SSLRequest, and
    // bytes the framer read ahead would never reach the TLS handshake.
    // With PROXY headers on, exactly too: a header where none is believed
    // is refused at its first 4 bytes.
    let exact = topology.tls.is_some() || topology.proxy_protocol;
    let mut reply = if exact && wire.read_buffer().is_empty() {
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
    // CLIENT_SSL and CLIENT_COMPRESS are between client and proxy only;
    // backends never see them.
    let compress = response
        .capabilities()
        .contains(Capabilities::CLIENT_COMPRESS);
    let capabilities =
        response.capabilities() & (offered_capabilities() - Capabilities::CLIENT_COMPRESS);
    let collation = response.collation();
    let answered = match response.auth_plugin() {
        // Clients without CLIENT_PLUGIN_AUTH answer with a native scramble.
        None | Some(WirePlugin::MysqlNativePassword) => Some(AuthPlugin::MysqlNativePassword),
        Some(WirePlugin::CachingSha2Password) => Some(AuthPlugin::CachingSha2Password),
        Some(_) => None,
    };
    let exchange = Exchange {
        seq: reply.seq.wrapping_add(1),
        answer: response.scramble_buf().to_vec(),
        answered,
        switched: false,
    };
    let user = users.get(&user_name);
    let tls = wire.get_ref().is_tls();
    let (verdict, seq) = authenticate(
        wire,
        topology.default_auth_plugin,
        user.map(|u| &**u),
        &nonce,
        tls,
        exchange,
    )
    .await?;
    let ip = peer.ip();
    let user = match (verdict, user) {
        (Verdict::Accepted, Some(user)) => user,
        (Verdict::FullAuthNeedsTls, _) => {
            let msg = format!(
                "Access denied for user '{user_name}'@'{ip}': caching_sha2_password full \
                 authentication needs TLS (sqlproxyd offers no RSA key exchange); \
                 connect with TLS, or use mysql_native_password"
            );
            send_err(wire, seq, 1045, "28000", &msg).await?;
            return Ok(None);
        }
        (Verdict::Refused { with_password }, _) => {
            let using = if with_password { "YES" } else { "NO" };
            let msg =
                format!("Access denied for user '{user_name}'@'{ip}' (using password: {using})");
            send_err(wire, seq, 1045, "28000", &msg).await?;
            return Ok(None);
        }
        // authenticate() accepts known users only.
        (Verdict::Accepted, None) => bail!("accepted an unknown user {user_name:?}"),
    };
    if let Some(db) = &database {
        if let Some((code, state, msg)) = schema_refusal(user, db) {
            send_err(wire, seq, code, state, &msg).await?;
            return Ok(None);
        }
    }
    if let Some((code, state, msg)) = admit(user) {
        send_err(wire, seq, code, state, &msg).await?;
        bail!("{msg}");
    }
    let backend_decides = backends_decide_databases
        && database
            .as_deref()
            .is_some_and(|db| !topology.schemas.contains_key(db));
    if !backend_decides {
        send_login_ok(wire, seq, compress).await?;
    }
    Ok(Some(Client {
        user: user.clone(),
        database,
        capabilities,
        collation,
        nonce,
        pending_ok: backend_decides.then_some(seq),
        compress,
    }))
}

/// Where a login's authentication exchange stands.
struct Exchange {
    /// The sequence id of the next packet sqlproxyd sends.
    seq: u8,
    /// The client's latest auth data.
    answer: Vec<u8>,
    /// The plugin `answer` is for; `None`: one sqlproxyd cannot check.
    answered: Option<AuthPlugin>,
    /// An auth switch was sent already; there is never a second.
    switched: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused {
        with_password: bool,
    },
    /// A user with only a hash answered caching_sha2_password without TLS.
    FullAuthNeedsTls,
}

/// The next move of the authentication exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Check a mysql_native_password scramble.
    Native,
    /// Check a caching_sha2_password scramble (or empty answer) and finish.
    Sha2Fast,
    /// Ask for caching_sha2_password full authentication.
    Sha2Full,
    /// Ask the client to answer again with this plugin.
    Switch(AuthPlugin),
    Refuse,
}

/// Decides the next move from what the client answered. `wanted` is
/// `default_auth_plugin`: the plugin named in the handshake and switched
/// to. An answer from either plugin sqlproxyd knows is checked as it is,
/// so that a client set to mysql_native_password always gets in.
fn next_step(
    wanted: AuthPlugin,
    answered: Option<AuthPlugin>,
    user: Option<&User>,
    empty_answer: bool,
    tls: bool,
    switched: bool,
) -> Step {
    use AuthPlugin::{CachingSha2Password as Sha2, MysqlNativePassword as Native};
    // An account with a plugin of its own takes answers with that one only.
    if let Some(required) = user.and_then(|u| u.auth_plugin) {
        if answered != Some(required) {
            return if switched {
                Step::Refuse
            } else {
                Step::Switch(required)
            };
        }
    }
    match (answered, user) {
        (Some(Native), _) => Step::Native,
        // An unknown user: nothing to check the answer against.
        (Some(Sha2), None) => Step::Refuse,
        // The fast path needs the password; an empty answer needs nothing.
        (Some(Sha2), Some(u)) if u.password.is_some() || empty_answer => Step::Sha2Fast,
        (Some(Sha2), Some(_)) if tls => Step::Sha2Full,
        // Only a hash and no TLS: the full path cannot work, native can
        // (MySQL 8 clients start with caching_sha2_password whatever the
        // handshake names). Not when caching_sha2_password was asked for:
        // its users then get the error that says to use TLS.
        (Some(Sha2), Some(_)) if wanted == Native && !switched => Step::Switch(Native),
        (Some(Sha2), Some(_)) => Step::Sha2Full,
        (None, _) if !switched => Step::Switch(wanted),
        (None, _) => Step::Refuse,
    }
}

/// Runs the exchange from the client's first answer to a verdict. Returns
/// it with the sequence id the OK or ERR that follows must carry.
async fn authenticate(
    wire: &mut ClientWire,
    wanted: AuthPlugin,
    user: Option<&User>,
    nonce: &[u8; 20],
    tls: bool,
    mut ex: Exchange,
) -> Result<(Verdict, u8)> {
    // Servers send the nonce NUL-terminated in an auth switch, and clients
    // insist on those 21 bytes.
    let mut nonce_nul = nonce.to_vec();
    nonce_nul.push(0);
    loop {
        let empty = is_empty_answer(&ex.answer);
        let refused = Verdict::Refused {
            with_password: !empty,
        };
        let verdict = |ok: bool| if ok { Verdict::Accepted } else { refused };
        match next_step(wanted, ex.answered, user, empty, tls, ex.switched) {
            Step::Switch(plugin) => {
                let mut buf = Vec::new();
                AuthSwitchRequest::new(plugin.name().as_bytes(), &nonce_nul[..])
                    .serialize(&mut buf);
                wire.send(Packet::new(ex.seq, buf)).await?;
                let switched = next(wire).await?;
                ex = Exchange {
                    seq: switched.seq.wrapping_add(1),
                    answer: switched.payload.to_vec(),
                    answered: Some(plugin),
                    switched: true,
                };
            }
            Step::Native => {
                let ok = user.is_some_and(|u| verify_native(nonce, &ex.answer, &u.hash));
                return Ok((verdict(ok), ex.seq));
            }
            Step::Sha2Fast => {
                let ok = user.is_some_and(|u| match &u.password {
                    // PyMySQL (1.0) scrambles with all 21 bytes of a
                    // switch's nonce, the NUL included.
                    Some(p) => {
                        let p = p.expose().as_bytes();
                        verify_sha2_fast(nonce, &ex.answer, p)
                            || (ex.switched && verify_sha2_fast(&nonce_nul, &ex.answer, p))
                    }
                    None => empty && verify_clear(b"", &u.hash),
                });
                let mut seq = ex.seq;
                // Servers answer an empty password with the OK alone: a
                // client that sent none reads no AuthMoreData.
                if ok && !empty {
                    wire.send(Packet::new(seq, FAST_AUTH_SUCCESS.to_vec()))
                        .await?;
                    seq = seq.wrapping_add(1);
                }
                return Ok((verdict(ok), seq));
            }
            Step::Sha2Full => {
                wire.send(Packet::new(ex.seq, PERFORM_FULL_AUTHENTICATION.to_vec()))
                    .await?;
                // Over TLS: the password, in clear. Without: a request for
                // the RSA key (0x02) or the password RSA-encrypted with a
                // key the client had; either way it is read so that the
                // ERR comes as the reply the client waits for.
                let reply = next(wire).await?;
                let seq = reply.seq.wrapping_add(1);
                if !tls {
                    return Ok((Verdict::FullAuthNeedsTls, seq));
                }
                let ok = user.is_some_and(|u| verify_clear(&reply.payload, &u.hash));
                let with_password = !is_empty_answer(&reply.payload);
                let verdict = if ok {
                    Verdict::Accepted
                } else {
                    Verdict::Refused { with_password }
                };
                return Ok((verdict, seq));
            }
            Step::Refuse => return Ok((refused, ex.seq)),
        }
    }
}

/// Reads exactly one packet (a login packet: at most 64 KiB) from `stream`.
async fn read_one_packet(stream: &mut ClientStream) -> Result<Packet> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    if crate::session::proxy_header::is_header_start(&header) {
        return Err(crate::session::proxy_header::Untrusted.into());
    }
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > 64 << 10 {
        bail!("a {len}-byte login packet");
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Packet::new(header[3], payload))
}

/// Why `user` may not use `schema`, as MariaDB would say it.
/// The OK that ends a login; the compressed protocol starts right after
/// it when the client asked for it (the OK itself is plain).
pub async fn send_login_ok<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Framed<S, PacketCodec>,
    seq: u8,
    compress: bool,
) -> Result<()> {
    let ok = OkPacket {
        status: Status::SERVER_STATUS_AUTOCOMMIT,
        ..OkPacket::default()
    };
    wire.send(Packet::new(seq, ok.to_payload())).await?;
    if compress {
        wire.codec_mut().compress();
    }
    Ok(())
}

/// Whether `user` may not use `schema`, and the error that says so. Only
/// a user's own `schemas` list restricts (information_schema always
/// passes, as on a server); whether a database exists, and whether the
/// backend account may use it, is the backend's to say.
pub fn schema_refusal(user: &User, schema: &str) -> Option<(u16, &'static str, String)> {
    if !schema.eq_ignore_ascii_case("information_schema") && !user.may_use(schema) {
        return Some((
            1044,
            "42000",
            format!(
                "Access denied for user '{}'@'%' to database '{schema}'",
                user.name
            ),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use hastack_proto::mysql::auth::native_hash;
    use AuthPlugin::{CachingSha2Password as Sha2, MysqlNativePassword as Native};

    fn user(password: Option<&str>) -> User {
        User {
            name: "u".into(),
            hash: native_hash(password.unwrap_or("pw").as_bytes()),
            password: password.map(hastack_rt::Secret::new),
            schemas: Vec::new(),
            read_only: false,
            admin_level: None,
            max_connections: 0,
            auth_plugin: None,
        }
    }

    #[test]
    fn an_account_with_a_plugin_switches_other_answers_to_it_once() {
        let mut u = user(Some("pw"));
        u.auth_plugin = Some(Sha2);
        for wanted in [Native, Sha2] {
            let first = next_step(wanted, Some(Native), Some(&u), false, false, false);
            assert_eq!(first, Step::Switch(Sha2));
            let again = next_step(wanted, Some(Native), Some(&u), false, false, true);
            assert_eq!(again, Step::Refuse);
            let right = next_step(wanted, Some(Sha2), Some(&u), false, false, true);
            assert_eq!(right, Step::Sha2Fast);
        }
        u.auth_plugin = Some(Native);
        let step = next_step(Sha2, Some(Sha2), Some(&u), false, true, false);
        assert_eq!(step, Step::Switch(Native));
    }

    #[test]
    fn native_answers_are_checked_whatever_the_handshake_named() {
        for wanted in [Native, Sha2] {
            for u in [user(Some("pw")), user(None)] {
                for tls in [false, true] {
                    let step = next_step(wanted, Some(Native), Some(&u), false, tls, false);
                    assert_eq!(step, Step::Native);
                }
            }
        }
    }

    #[test]
    fn sha2_answers_take_the_fast_path_when_the_password_is_known() {
        let u = user(Some("pw"));
        for wanted in [Native, Sha2] {
            for tls in [false, true] {
                let step = next_step(wanted, Some(Sha2), Some(&u), false, tls, false);
                assert_eq!(step, Step::Sha2Fast);
            }
        }
    }

    #[test]
    fn hash_only_users_take_the_full_path_over_tls() {
        let u = user(None);
        for wanted in [Native, Sha2] {
            let step = next_step(wanted, Some(Sha2), Some(&u), false, true, false);
            assert_eq!(step, Step::Sha2Full);
        }
    }

    #[test]
    fn hash_only_users_without_tls_are_switched_to_native_unless_sha2_is_wanted() {
        let u = user(None);
        let step = next_step(Native, Some(Sha2), Some(&u), false, false, false);
        assert_eq!(step, Step::Switch(Native));
        // The full path then ends in the ERR that asks for TLS.
        let step = next_step(Sha2, Some(Sha2), Some(&u), false, false, false);
        assert_eq!(step, Step::Sha2Full);
    }

    #[test]
    fn empty_sha2_answers_are_checked_at_once() {
        let step = next_step(Sha2, Some(Sha2), Some(&user(None)), true, false, false);
        assert_eq!(step, Step::Sha2Fast);
    }

    #[test]
    fn unknown_users_answering_sha2_are_refused_at_once() {
        for tls in [false, true] {
            assert_eq!(
                next_step(Sha2, Some(Sha2), None, false, tls, false),
                Step::Refuse
            );
        }
    }

    #[test]
    fn other_plugins_are_switched_once_to_the_wanted_one() {
        let u = user(Some("pw"));
        for wanted in [Native, Sha2] {
            let step = next_step(wanted, None, Some(&u), false, false, false);
            assert_eq!(step, Step::Switch(wanted));
            let step = next_step(wanted, None, Some(&u), false, false, true);
            assert_eq!(step, Step::Refuse);
        }
    }

    #[test]
    fn there_is_never_a_second_switch() {
        for wanted in [Native, Sha2] {
            for answered in [None, Some(Native), Some(Sha2)] {
                for u in [None, Some(user(Some("pw"))), Some(user(None))] {
                    for empty in [false, true] {
                        for tls in [false, true] {
                            let step = next_step(wanted, answered, u.as_ref(), empty, tls, true);
                            assert!(!matches!(step, Step::Switch(_)), "{step:?}");
                        }
                    }
                }
            }
        }
    }
}
