//! Packets the daemons build or read themselves.
//!
//! `mysql_common` has the ERR packet and the server handshake; we build on
//! those. It can parse but not build an OK packet, so that one is written
//! here, with `mysql_common`'s length-encoded integer helpers.

use std::borrow::Cow;

use bytes::Bytes;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::{BufMutExt, ParseBuf};
use mysql_common::packets::{
    CommonOkPacket, ErrPacket, HandshakePacket, OkPacket, OkPacketDeserializer, ServerError,
    SqlState,
};
use mysql_common::proto::{MyDeserialize, MySerialize};

pub use mysql_common::constants::{CapabilityFlags as Capabilities, StatusFlags as Status};

/// Fields of an OK packet a proxy answers with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ok {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: StatusFlags,
    pub warnings: u16,
    pub info: String,
}

impl Ok {
    /// Payload of the OK packet (header 0x00), protocol 4.1 layout.
    pub fn to_payload(&self) -> Bytes {
        let mut buf = Vec::with_capacity(11 + self.info.len());
        buf.push(0x00);
        buf.put_lenenc_int(self.affected_rows);
        buf.put_lenenc_int(self.last_insert_id);
        buf.extend_from_slice(&self.status.bits().to_le_bytes());
        buf.extend_from_slice(&self.warnings.to_le_bytes());
        // Servers send `info` length-encoded (despite the manual's string<EOF>),
        // and only when there is one.
        if !self.info.is_empty() {
            buf.put_lenenc_str(self.info.as_bytes());
        }
        buf.into()
    }
}

/// Payload of an ERR packet with a SQLSTATE (protocol 4.1).
///
/// `sql_state` must be five ASCII characters; anything else becomes the
/// generic `HY000` rather than a malformed packet.
pub fn err_payload(code: u16, sql_state: &str, message: &str) -> Bytes {
    let state = <[u8; 5]>::try_from(sql_state.as_bytes())
        .ok()
        .filter(|s| s.iter().all(u8::is_ascii_alphanumeric))
        .unwrap_or(*b"HY000");
    let packet = ErrPacket::Error(ServerError::new(
        code,
        Some(SqlState::new(state)),
        Cow::Borrowed(message.as_bytes()),
    ));
    let mut buf = Vec::with_capacity(9 + message.len());
    packet.serialize(&mut buf);
    buf.into()
}

/// What a server tells a client in its initial handshake (protocol v10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub server_version: String,
    pub connection_id: u32,
    /// 20 bytes of auth-plugin data (the "scramble" or nonce).
    pub scramble: [u8; 20],
    pub capabilities: CapabilityFlags,
    pub collation: u8,
    pub status: StatusFlags,
    pub auth_plugin: String,
}

impl Handshake {
    pub fn to_payload(&self) -> Bytes {
        let (s1, s2) = self.scramble.split_at(8);
        // The second part is NUL-terminated on the wire, as servers send it.
        let mut part2 = s2.to_vec();
        part2.push(0);
        let packet = HandshakePacket::new(
            10,
            Cow::Borrowed(self.server_version.as_bytes()),
            self.connection_id,
            s1.try_into().unwrap_or([0; 8]),
            Some(part2),
            self.capabilities,
            self.collation,
            self.status,
            Some(Cow::Borrowed(self.auth_plugin.as_bytes())),
        );
        let mut buf = Vec::with_capacity(80 + self.server_version.len());
        packet.serialize(&mut buf);
        buf.into()
    }

    /// Reads a server handshake, e.g. for a health check that logs in.
    pub fn parse(payload: &[u8]) -> Result<Self, ParseError> {
        if payload.first() == Some(&0xFF) {
            return Err(ParseError::ServerError(describe_err(payload)));
        }
        check_auth_data_len(payload)?;
        let hs = HandshakePacket::deserialize((), &mut ParseBuf(payload))
            .map_err(|e| ParseError::Malformed("handshake", e.to_string()))?;
        if hs.protocol_version() != 10 {
            return Err(ParseError::Malformed(
                "handshake",
                format!("protocol version {} (expected 10)", hs.protocol_version()),
            ));
        }
        let mut scramble = [0u8; 20];
        let nonce = hs.nonce();
        let n = nonce.len().min(20);
        scramble[..n].copy_from_slice(&nonce[..n]);
        Ok(Handshake {
            server_version: String::from_utf8_lossy(hs.server_version_ref()).into_owned(),
            connection_id: hs.connection_id(),
            scramble,
            capabilities: hs.capabilities(),
            collation: hs.default_collation(),
            status: hs.status_flags(),
            auth_plugin: hs
                .auth_plugin_name_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
        })
    }
}

/// mysql_common (0.37, 0.38) computes `auth_plugin_data_len as i8 - 8`, which
/// overflows (a panic in builds with overflow checks) for 0x80..=0x87. No
/// server sends more than 21 bytes of plugin data; refuse such a length first.
fn check_auth_data_len(payload: &[u8]) -> Result<(), ParseError> {
    let Some(nul) = payload.iter().skip(1).position(|&b| b == 0) else {
        return Ok(()); // mysql_common reports the missing terminator
    };
    // protocol version, version string + NUL, then 4+8+1+2+1+2+2 bytes.
    let at = 1 + nul + 1 + 20;
    match payload.get(at) {
        Some(&len) if len >= 0x80 => Err(ParseError::Malformed(
            "handshake",
            format!("auth-plugin-data length {len} (at most 127 is possible)"),
        )),
        _ => Ok(()),
    }
}

pub use mysql_common::constants::ColumnType;

/// A text-protocol result set of string columns, as the payloads to send
/// (column count, definitions, EOF, rows, EOF), for replies the proxy
/// makes itself (the admin port). `None` is SQL NULL.
pub fn text_result_set(
    columns: &[&str],
    rows: &[Vec<Option<String>>],
    status: StatusFlags,
) -> Vec<Bytes> {
    let typed: Vec<(&str, ColumnType)> = columns
        .iter()
        .map(|&c| (c, ColumnType::MYSQL_TYPE_VAR_STRING))
        .collect();
    typed_text_result_set(&typed, rows, status)
}

/// [`text_result_set`] with each column's type (a client library converts
/// a `MYSQL_TYPE_LONGLONG` column's text to a number, as from the server).
pub fn typed_text_result_set(
    columns: &[(&str, ColumnType)],
    rows: &[Vec<Option<String>>],
    status: StatusFlags,
) -> Vec<Bytes> {
    use mysql_common::packets::Column;
    let mut out = Vec::with_capacity(columns.len() + rows.len() + 3);
    let mut count = Vec::new();
    count.put_lenenc_int(columns.len() as u64);
    out.push(count.into());
    for &(name, kind) in columns {
        let mut buf = Vec::new();
        let (charset, length) = match kind {
            ColumnType::MYSQL_TYPE_VAR_STRING | ColumnType::MYSQL_TYPE_STRING => {
                (UTF8MB4_GENERAL_CI, 1024)
            }
            // Numbers are binary-charset columns on a server.
            _ => (63, 21),
        };
        Column::new(kind)
            .with_name(name.as_bytes())
            .with_org_name(name.as_bytes())
            .with_character_set(charset)
            .with_column_length(length)
            .serialize(&mut buf);
        out.push(buf.into());
    }
    out.push(eof_payload(status));
    for row in rows {
        let mut buf = Vec::new();
        for value in row {
            match value {
                Some(v) => buf.put_lenenc_str(v.as_bytes()),
                None => buf.push(0xFB),
            }
        }
        out.push(buf.into());
    }
    out.push(eof_payload(status));
    out
}

/// utf8mb4_general_ci.
const UTF8MB4_GENERAL_CI: u16 = 45;

/// A classic EOF packet: header, no warnings, `status`.
pub fn eof_payload(status: StatusFlags) -> Bytes {
    let s = status.bits().to_le_bytes();
    Bytes::from(vec![0xFE, 0, 0, s[0], s[1]])
}

/// A client's COM_CHANGE_USER (mysql_common can build one but not read it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeUser {
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub collation: Option<u8>,
    pub auth_plugin: Option<String>,
}

impl ChangeUser {
    /// Reads the payload (command byte 0x11 included), protocol 4.1.
    pub fn parse(payload: &[u8]) -> Result<Self, ParseError> {
        let bad = |what: &str| ParseError::Malformed("COM_CHANGE_USER", what.to_owned());
        let rest = payload
            .strip_prefix(&[0x11])
            .ok_or_else(|| bad("not a COM_CHANGE_USER"))?;
        let (user, rest) = split_nul(rest).ok_or_else(|| bad("user not terminated"))?;
        let (&len, rest) = rest.split_first().ok_or_else(|| bad("no auth response"))?;
        let len = usize::from(len);
        let auth = rest
            .get(..len)
            .ok_or_else(|| bad("auth response truncated"))?;
        let rest = &rest[len..];
        let (db, rest) = split_nul(rest).unwrap_or((rest, &[]));
        let collation = rest.first().copied();
        let plugin = rest
            .get(2..)
            .and_then(split_nul)
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned());
        Ok(ChangeUser {
            user: String::from_utf8_lossy(user).into_owned(),
            auth_response: auth.to_vec(),
            database: (!db.is_empty()).then(|| String::from_utf8_lossy(db).into_owned()),
            collation,
            auth_plugin: plugin,
        })
    }
}

fn split_nul(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = b.iter().position(|&c| c == 0)?;
    Some((&b[..n], &b[n + 1..]))
}

/// A server's reply to a command, as far as "did it work" goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok {
        affected_rows: u64,
        status: StatusFlags,
    },
    Err(ServerErr),
    /// Anything else: a result set header, an auth switch, local infile.
    Other(u8),
}

/// An ERR packet's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerErr {
    pub code: u16,
    pub sql_state: String,
    pub message: String,
}

impl std::fmt::Display for ServerErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code, self.sql_state, self.message
        )
    }
}

/// Why a payload could not be read as the packet expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty packet")]
    Empty,
    #[error("malformed {0} packet: {1}")]
    Malformed(&'static str, String),
    #[error("server refused: {0}")]
    ServerError(ServerErr),
}

/// Classifies a reply payload (protocol 4.1, CLIENT_DEPRECATE_EOF not assumed).
pub fn parse_reply(payload: &[u8]) -> Result<Reply, ParseError> {
    match payload.first() {
        None => Err(ParseError::Empty),
        Some(0x00) => {
            let ok: OkPacket<'_> = OkPacketDeserializer::<CommonOkPacket>::deserialize(
                CapabilityFlags::CLIENT_PROTOCOL_41,
                &mut ParseBuf(payload),
            )
            .map_err(|e| ParseError::Malformed("OK", e.to_string()))?
            .into();
            Ok(Reply::Ok {
                affected_rows: ok.affected_rows(),
                status: ok.status_flags(),
            })
        }
        Some(0xFF) => Ok(Reply::Err(describe_err(payload))),
        Some(&other) => Ok(Reply::Other(other)),
    }
}

/// Reads an ERR payload; a malformed one is still described, never dropped.
/// An ERR packet's code, SQLSTATE and message.
pub fn describe_err(payload: &[u8]) -> ServerErr {
    match ErrPacket::deserialize(CapabilityFlags::CLIENT_PROTOCOL_41, &mut ParseBuf(payload)) {
        Ok(ErrPacket::Error(e)) => ServerErr {
            code: e.error_code(),
            sql_state: e
                .sql_state_ref()
                .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                .unwrap_or_else(|| "HY000".into()),
            message: String::from_utf8_lossy(e.message_ref()).into_owned(),
        },
        // Before the handshake (`Host '…' is blocked`, too many
        // connections) servers send no SQLSTATE marker.
        Err(_) if payload.len() >= 3 && payload.get(3) != Some(&b'#') => ServerErr {
            code: u16::from_le_bytes([payload[1], payload[2]]),
            sql_state: "HY000".into(),
            message: String::from_utf8_lossy(&payload[3..]).into_owned(),
        },
        Ok(ErrPacket::Progress(_)) | Err(_) => ServerErr {
            code: 0,
            sql_state: "HY000".into(),
            message: format!("malformed ERR packet ({} bytes)", payload.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pre_handshake_err_has_no_sqlstate() {
        let mut p = vec![0xFF, 0x69, 0x04];
        p.extend_from_slice(b"Host '10.0.0.9' is blocked because of many connection errors");
        let Err(ParseError::ServerError(e)) = Handshake::parse(&p) else {
            panic!("not a server error");
        };
        assert_eq!(e.code, 1129);
        assert_eq!(
            e.to_string(),
            "ERROR 1129 (HY000): Host '10.0.0.9' is blocked because of many connection errors"
        );
    }

    #[test]
    fn ok_round_trips_through_mysql_common() {
        let ok = Ok {
            affected_rows: 300,
            last_insert_id: 70000,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            warnings: 2,
            info: "Rows matched: 1".into(),
        };
        let payload = ok.to_payload();
        assert_eq!(payload[0], 0);
        assert_eq!(
            parse_reply(&payload).unwrap(),
            Reply::Ok {
                affected_rows: 300,
                status: StatusFlags::SERVER_STATUS_AUTOCOMMIT
            }
        );
    }

    #[test]
    fn err_round_trips() {
        let payload = err_payload(1045, "28000", "Access denied for user 'x'");
        assert_eq!(&payload[..3], &[0xFF, 0x15, 0x04]);
        assert_eq!(
            parse_reply(&payload).unwrap(),
            Reply::Err(ServerErr {
                code: 1045,
                sql_state: "28000".into(),
                message: "Access denied for user 'x'".into()
            })
        );
    }

    #[test]
    fn err_with_a_bad_sql_state_falls_back_to_hy000() {
        let payload = err_payload(1105, "bad", "x");
        assert_eq!(&payload[3..9], b"#HY000");
    }

    #[test]
    fn handshake_round_trips() {
        let hs = Handshake {
            server_version: "10.11.6-hastack".into(),
            connection_id: 42,
            scramble: *b"abcdefghijklmnopqrst",
            capabilities: CapabilityFlags::CLIENT_PROTOCOL_41
                | CapabilityFlags::CLIENT_SECURE_CONNECTION
                | CapabilityFlags::CLIENT_PLUGIN_AUTH
                | CapabilityFlags::CLIENT_CONNECT_WITH_DB,
            collation: 45,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin: "mysql_native_password".into(),
        };
        assert_eq!(Handshake::parse(&hs.to_payload()).unwrap(), hs);
    }

    #[test]
    fn handshake_refused_by_server_is_reported() {
        let payload = err_payload(1129, "HY000", "Host is blocked");
        match Handshake::parse(&payload) {
            Err(ParseError::ServerError(e)) => assert_eq!(e.code, 1129),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn result_sets_read_back_through_the_reply_tracker() {
        use crate::mysql::response::{Expect, Reply, Step};
        let rows = vec![
            vec![Some("a".to_owned()), None],
            vec![Some("b".to_owned()), Some(String::new())],
        ];
        let payloads = text_result_set(
            &["NAME", "VALUE"],
            &rows,
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        );
        assert_eq!(payloads.len(), 1 + 2 + 1 + 2 + 1);
        assert_eq!(&payloads[4][..], b"\x01a\xfb");
        let mut reply = Reply::new(Expect::ResultSets);
        let steps: Vec<Step> = payloads.iter().map(|p| reply.step(p).unwrap()).collect();
        assert!(matches!(
            steps.last(),
            Some(Step::Done { error: false, .. })
        ));
        assert!(steps[..steps.len() - 1].iter().all(|s| *s == Step::More));
    }

    #[test]
    fn change_user_is_read() {
        let mut p = vec![0x11];
        p.extend_from_slice(b"reader\0");
        p.push(20);
        p.extend_from_slice(&[7; 20]);
        p.extend_from_slice(b"app\0");
        p.extend_from_slice(&[45, 0]);
        p.extend_from_slice(b"mysql_native_password\0");
        let cu = ChangeUser::parse(&p).unwrap();
        assert_eq!(cu.user, "reader");
        assert_eq!(cu.auth_response, [7; 20]);
        assert_eq!(cu.database.as_deref(), Some("app"));
        assert_eq!(cu.collation, Some(45));
        assert_eq!(cu.auth_plugin.as_deref(), Some("mysql_native_password"));
        for cut in 0..p.len() {
            let _ = ChangeUser::parse(&p[..cut]);
        }
    }

    /// Found by the mysql_packets fuzz target.
    #[test]
    fn auth_data_length_that_overflows_mysql_common_is_an_error() {
        let crash = [
            0x00, 0x29, 0x04, 0x0b, 0x0b, 0x0b, 0x0b, 0x00, 0xfd, 0x00, 0xfe, 0xe9, 0xe9, 0xff,
            0xff, 0x5d, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe9, 0x81, 0x81, 0x81, 0x81,
            0x81, 0x81, 0xe9, 0xe9, 0xe9, 0xe9, 0xe9, 0x1e, 0xe9, 0xe9, 0x00, 0xe9, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x0b,
        ];
        assert!(matches!(
            Handshake::parse(&crash),
            Err(ParseError::Malformed("handshake", _))
        ));
        let mut hs = Handshake {
            server_version: "10.11".into(),
            connection_id: 1,
            scramble: [7; 20],
            capabilities: CapabilityFlags::CLIENT_PROTOCOL_41
                | CapabilityFlags::CLIENT_SECURE_CONNECTION
                | CapabilityFlags::CLIENT_PLUGIN_AUTH,
            collation: 8,
            status: StatusFlags::empty(),
            auth_plugin: "mysql_native_password".into(),
        }
        .to_payload()
        .to_vec();
        assert_eq!(hs[1 + 6 + 20], 21, "offset of the length byte");
        for len in 0x80..=0x87 {
            hs[1 + 6 + 20] = len;
            assert!(Handshake::parse(&hs).is_err());
        }
    }

    #[test]
    fn truncated_inputs_are_errors_not_panics() {
        let hs = Handshake {
            server_version: "x".into(),
            connection_id: 1,
            scramble: [1; 20],
            capabilities: CapabilityFlags::CLIENT_PROTOCOL_41
                | CapabilityFlags::CLIENT_SECURE_CONNECTION
                | CapabilityFlags::CLIENT_PLUGIN_AUTH,
            collation: 8,
            status: StatusFlags::empty(),
            auth_plugin: "mysql_native_password".into(),
        }
        .to_payload();
        for cut in 0..hs.len() {
            let _ = Handshake::parse(&hs[..cut]);
        }
        let ok = Ok::default().to_payload();
        for cut in 0..ok.len() {
            let _ = parse_reply(&ok[..cut]);
        }
        assert_eq!(parse_reply(&[]), Err(ParseError::Empty));
    }
}
