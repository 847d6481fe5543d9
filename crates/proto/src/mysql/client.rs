//! The client side of a login, as pure functions: what to answer a server's
//! greeting and its auth-switch request with (mysql_native_password). The
//! daemons that log in to MySQL servers (sqlproxyd's backends, checkd's
//! probe) do the I/O around them.

use mysql_common::packets::{AuthPlugin, HandshakeResponse};
use mysql_common::proto::MySerialize;
use mysql_common::scramble::scramble_native;

use super::packets::{Capabilities, Handshake, ParseError};

/// Who logs in, and how.
#[derive(Clone, Copy, Debug)]
pub struct Credentials<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub database: Option<&'a str>,
    /// Capabilities asked for; only those the server has are used.
    pub capabilities: Capabilities,
    /// The connection's collation (e.g. 45, utf8mb4_general_ci).
    pub collation: u8,
}

/// The HandshakeResponse payload answering `greeting`.
pub fn handshake_response(greeting: &Handshake, c: &Credentials<'_>) -> Vec<u8> {
    let caps = c.capabilities & greeting.capabilities;
    let answer = scramble_native(&greeting.scramble, c.password.as_bytes())
        .map(|a| a.to_vec())
        .unwrap_or_default();
    let response = HandshakeResponse::new(
        Some(answer),
        server_version(&greeting.server_version),
        Some(c.user.as_bytes()),
        c.database.map(str::as_bytes),
        Some(AuthPlugin::MysqlNativePassword),
        caps,
        None,
        16 * 1024 * 1024,
    );
    let mut buf = Vec::new();
    response.serialize(&mut buf);
    // mysql_common picks the collation itself; the caller's is wanted (byte
    // 8: after 4 bytes of flags and 4 of max packet size).
    if let Some(b) = buf.get_mut(8) {
        *b = c.collation;
    }
    buf
}

/// The answer to an AuthSwitchRequest (`0xFE`, plugin name, nonce). Only
/// mysql_native_password is spoken; another plugin is an error naming it.
pub fn auth_switch_answer(payload: &[u8], password: &str) -> Result<Vec<u8>, ParseError> {
    let body = payload.get(1..).unwrap_or_default();
    let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let plugin = String::from_utf8_lossy(&body[..nul]);
    if plugin != "mysql_native_password" {
        return Err(ParseError::Malformed(
            "auth switch",
            format!("the server asks for auth plugin {plugin}; only mysql_native_password is spoken here"),
        ));
    }
    let nonce = body.get(nul + 1..).unwrap_or_default();
    let nonce = nonce.strip_suffix(&[0]).unwrap_or(nonce);
    Ok(scramble_native(nonce, password.as_bytes())
        .map(|a| a.to_vec())
        .unwrap_or_default())
}

/// `5.5.5-10.11.6-MariaDB-log` → (10, 11, 6); `8.0.36` → (8, 0, 36).
pub fn server_version(v: &str) -> (u16, u16, u16) {
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
    use crate::mysql::auth::{native_hash, verify_native};

    #[test]
    fn versions() {
        assert_eq!(
            server_version("5.5.5-10.11.19-MariaDB-0+deb12u1-log"),
            (10, 11, 19)
        );
        assert_eq!(server_version("8.0.36"), (8, 0, 36));
        assert_eq!(server_version(""), (5, 5, 0));
    }

    #[test]
    fn an_auth_switch_is_answered_with_the_native_scramble() {
        let nonce = b"abcdefghijklmnopqrst";
        let mut payload = vec![0xFE];
        payload.extend_from_slice(b"mysql_native_password\0");
        payload.extend_from_slice(nonce);
        payload.push(0);
        let answer = auth_switch_answer(&payload, "secret").unwrap();
        assert!(verify_native(nonce, &answer, &native_hash(b"secret")));
        let mut other = vec![0xFE];
        other.extend_from_slice(b"caching_sha2_password\0xyz");
        let e = auth_switch_answer(&other, "secret")
            .unwrap_err()
            .to_string();
        assert!(e.contains("caching_sha2_password"), "{e}");
        assert!(auth_switch_answer(&[], "x").is_err());
    }
}
