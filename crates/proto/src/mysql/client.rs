//! The client side of a login, as pure functions: what to answer a server's
//! greeting and each packet after it. [`Login`] is the one MySQL login of
//! the workspace (sqlproxyd's sessions, heartbeats, failover and pool;
//! checkd's and lbd's checks): mysql_native_password, MariaDB's
//! client_ed25519, and caching_sha2_password (MySQL 8's default): the fast
//! path always and, only when [`Policy::allow_public_key_retrieval`] says
//! so, full authentication over plain TCP with an RSA key the server sends.
//! The I/O around it is [`super::conn`] (the checks) or sqlproxyd's
//! backend connection.

use mysql_common::packets::{AuthPlugin, HandshakeResponse};
use mysql_common::proto::MySerialize;
use mysql_common::scramble::{create_response_for_ed25519, scramble_native, scramble_sha256};

use super::packets::{parse_reply, Capabilities, Handshake, Reply, ServerErr};

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

fn handshake_response_for(greeting: &Handshake, c: &Credentials<'_>, plugin: Plugin) -> Vec<u8> {
    let caps = c.capabilities & greeting.capabilities;
    let answer = plugin.scramble(&greeting.scramble, c.password);
    let response = HandshakeResponse::new(
        Some(answer),
        server_version(&greeting.server_version),
        Some(c.user.as_bytes()),
        c.database.map(str::as_bytes),
        Some(match plugin {
            Plugin::Native => AuthPlugin::MysqlNativePassword,
            Plugin::CachingSha2 => AuthPlugin::CachingSha2Password,
            Plugin::Ed25519 => AuthPlugin::Ed25519,
        }),
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

/// The auth plugins a [`Login`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    /// mysql_native_password: SHA-1 scramble.
    Native,
    /// caching_sha2_password: SHA-256 scramble, then fast or full path.
    CachingSha2,
    /// MariaDB's client_ed25519 (`auth_ed25519`): an Ed25519 signature of
    /// the nonce, the key derived from the password.
    Ed25519,
}

impl Plugin {
    pub fn from_name(name: &str) -> Option<Plugin> {
        match name {
            "mysql_native_password" => Some(Plugin::Native),
            "caching_sha2_password" => Some(Plugin::CachingSha2),
            "client_ed25519" => Some(Plugin::Ed25519),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Plugin::Native => "mysql_native_password",
            Plugin::CachingSha2 => "caching_sha2_password",
            Plugin::Ed25519 => "client_ed25519",
        }
    }

    /// The scrambled password for `nonce`; empty for an empty password.
    fn scramble(self, nonce: &[u8], password: &str) -> Vec<u8> {
        let p = password.as_bytes();
        match self {
            Plugin::Native => scramble_native(nonce, p).map(|a| a.to_vec()),
            Plugin::CachingSha2 => scramble_sha256(nonce, p).map(|a| a.to_vec()),
            // An empty password is signed too: the server checks the
            // signature, not emptiness.
            Plugin::Ed25519 => Some(create_response_for_ed25519(p, nonce).to_vec()),
        }
        .unwrap_or_default()
    }
}

/// Why a login failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The server said no (an ERR packet), e.g. access denied.
    #[error("{0}")]
    Refused(ServerErr),
    /// The server asks for something this client does not do.
    #[error("{0}")]
    Unsupported(String),
    /// A packet that makes no sense at this point of the login.
    #[error("{0}")]
    Malformed(String),
    /// caching_sha2_password full authentication over a connection without
    /// TLS, and [`Policy::allow_public_key_retrieval`] is off: asking for
    /// the key would hand the password to whoever answers with one.
    #[error(
        "the server asks for full caching_sha2_password authentication over an unencrypted \
         connection; the password would be exposed to whoever sends the RSA key: this \
         connection speaks no TLS, so prime the server's cache (log in once as this user over \
         TLS or the server's socket) or set allow_public_key_retrieval: true (on the lbd or \
         checkd check, or on the sqlproxyd data host)"
    )]
    PublicKeyRetrieval,
}

/// What a [`Login`] may do beyond answering with a scramble.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// caching_sha2_password full authentication over plain TCP: ask the
    /// server for its RSA public key and send the password encrypted with
    /// it. A man in the middle can send its own key and read the password,
    /// so it is off unless asked for (the MySQL connectors'
    /// `allowPublicKeyRetrieval`); off, such a login fails with
    /// [`LoginError::PublicKeyRetrieval`]. The fast path (the server has
    /// the password's hash cached) never needs it.
    pub allow_public_key_retrieval: bool,
}

/// What the client does next in a [`Login`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this payload (with the next sequence id), then read a packet.
    Send(Vec<u8>),
    /// Read another packet; nothing to send.
    Read,
    /// Logged in: the server sent its OK.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The handshake response (or the auth-switch answer) went out.
    Answered { switched: bool },
    /// caching_sha2_password fast-auth success: the OK comes next.
    FastAuthOk,
    /// caching_sha2_password full auth: the RSA public key was asked for.
    AwaitingKey,
    /// The RSA-encrypted password went out: OK or ERR comes next.
    SentEncrypted,
}

/// A client login as a state machine: [`Login::start`] gives the
/// HandshakeResponse, [`Login::on_packet`] what to answer each packet the
/// server sends after it, until [`Action::Done`] or an error.
///
/// mysql_native_password and caching_sha2_password are spoken, whichever
/// the greeting names or an auth switch asks for. caching_sha2_password's
/// full authentication (the server has no cached hash of the password) is
/// done as over plain TCP, when the [`Policy`] allows it: ask for the
/// server's RSA public key and send the password encrypted with it
/// (RSA-OAEP). There is no TLS here, so no other way.
#[derive(Clone, Debug)]
pub struct Login {
    password: String,
    policy: Policy,
    plugin: Plugin,
    nonce: Vec<u8>,
    stage: Stage,
}

impl Login {
    /// Starts a login answering `greeting`: the state and the
    /// HandshakeResponse payload to send (sequence id: greeting's + 1).
    pub fn start(greeting: &Handshake, c: &Credentials<'_>, policy: Policy) -> (Login, Vec<u8>) {
        // Answer with the plugin the server names when it is one spoken
        // here; otherwise native, and the server switches if it must.
        let plugin = Plugin::from_name(&greeting.auth_plugin).unwrap_or(Plugin::Native);
        let response = handshake_response_for(greeting, c, plugin);
        let login = Login {
            password: c.password.to_owned(),
            policy,
            plugin,
            nonce: greeting.scramble.to_vec(),
            stage: Stage::Answered { switched: false },
        };
        (login, response)
    }

    /// The plugin the login currently speaks.
    pub fn plugin(&self) -> Plugin {
        self.plugin
    }

    /// What to do with the server's next packet.
    pub fn on_packet(&mut self, payload: &[u8]) -> Result<Action, LoginError> {
        let stage = self.stage;
        match payload.first() {
            None => Err(LoginError::Malformed("an empty login packet".into())),
            Some(0xFF) => Err(match parse_reply(payload) {
                Ok(Reply::Err(e)) => LoginError::Refused(e),
                _ => LoginError::Malformed("an unreadable ERR packet during login".into()),
            }),
            Some(0x00) if stage != Stage::AwaitingKey => match parse_reply(payload) {
                Ok(Reply::Ok { .. }) => Ok(Action::Done),
                _ => Err(LoginError::Malformed(
                    "an unreadable OK packet during login".into(),
                )),
            },
            Some(0xFE) if stage == (Stage::Answered { switched: false }) => self.switch(payload),
            Some(0xFE) => Err(LoginError::Malformed("a second auth switch request".into())),
            Some(0x01) => self.more_data(payload),
            Some(b) => Err(LoginError::Malformed(format!(
                "an unexpected login packet (0x{b:02x})"
            ))),
        }
    }

    fn switch(&mut self, payload: &[u8]) -> Result<Action, LoginError> {
        let (plugin, nonce) = parse_auth_switch(payload);
        let Some(p) = Plugin::from_name(&plugin) else {
            return Err(LoginError::Unsupported(format!(
                "the server asks for auth plugin {plugin}; only mysql_native_password, \
                 caching_sha2_password and client_ed25519 are spoken here: give the account \
                 one of those (ALTER USER ... IDENTIFIED VIA mysql_native_password USING \
                 PASSWORD('...'))"
            )));
        };
        // The SHA plugins' 20-byte nonce comes NUL-terminated; ed25519's 32
        // random bytes do not (and may end in a zero byte of their own).
        let nonce = match p {
            Plugin::Ed25519 => nonce,
            Plugin::Native | Plugin::CachingSha2 => nonce.strip_suffix(&[0]).unwrap_or(nonce),
        };
        self.plugin = p;
        self.nonce = nonce.to_vec();
        self.stage = Stage::Answered { switched: true };
        Ok(Action::Send(p.scramble(nonce, &self.password)))
    }

    /// caching_sha2_password's AuthMoreData (`0x01` …).
    fn more_data(&mut self, payload: &[u8]) -> Result<Action, LoginError> {
        let data = payload.get(1..).unwrap_or_default();
        match self.stage {
            Stage::Answered { .. } if self.plugin == Plugin::CachingSha2 => match data {
                [0x03] => {
                    self.stage = Stage::FastAuthOk;
                    Ok(Action::Read)
                }
                [0x04] if !self.policy.allow_public_key_retrieval => {
                    Err(LoginError::PublicKeyRetrieval)
                }
                [0x04] => {
                    self.stage = Stage::AwaitingKey;
                    Ok(Action::Send(vec![REQUEST_PUBLIC_KEY]))
                }
                _ => Err(LoginError::Malformed(format!(
                    "an unexpected caching_sha2_password packet ({} bytes)",
                    payload.len()
                ))),
            },
            Stage::AwaitingKey => {
                let encrypted = encrypt_password(self.password.as_bytes(), &self.nonce, data)
                    .map_err(|why| {
                        LoginError::Unsupported(format!(
                            "the server asks for caching_sha2 full authentication; {why}"
                        ))
                    })?;
                self.stage = Stage::SentEncrypted;
                Ok(Action::Send(encrypted))
            }
            _ => Err(LoginError::Malformed(
                "an unexpected AuthMoreData packet (0x01)".into(),
            )),
        }
    }
}

/// caching_sha2_password, full path over plain TCP: "send me your RSA key".
pub const REQUEST_PUBLIC_KEY: u8 = 0x02;

/// An AuthSwitchRequest (`0xFE`, plugin name NUL, nonce [NUL]): the plugin
/// and the nonce as sent (the plugin decides about a trailing NUL).
fn parse_auth_switch(payload: &[u8]) -> (String, &[u8]) {
    let body = payload.get(1..).unwrap_or_default();
    let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let plugin = String::from_utf8_lossy(body.get(..nul).unwrap_or_default()).into_owned();
    (plugin, body.get(nul + 1..).unwrap_or_default())
}

/// caching_sha2_password's full authentication over plain TCP: the
/// password, NUL-terminated, XOR-ed with the nonce (repeated), encrypted
/// with RSA-OAEP (SHA-1) under the server's public key (PEM, PKCS#8 or
/// PKCS#1). Refuses a key it cannot read instead of panicking on it (as
/// mysql_common's own PEM reader would).
pub fn encrypt_password(password: &[u8], nonce: &[u8], pem: &[u8]) -> Result<Vec<u8>, String> {
    use mysql_common::crypto::rsa::{GetRandom, Pkcs1OaepPadding, PublicKey};
    use num_bigint::BigUint;

    if nonce.is_empty() {
        return Err("no nonce to mix the password with".into());
    }
    let (n, e) = rsa_public_key(pem).map_err(|e| format!("its RSA public key is unusable: {e}"))?;
    let key = PublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e));
    let mut message = password.to_vec();
    message.push(0);
    for (i, b) in message.iter_mut().enumerate() {
        *b ^= nonce[i % nonce.len()];
    }
    // OAEP with SHA-1 fits k - 42 bytes in a k-byte modulus.
    let k = key.num_octets();
    if message.len() + 42 > k {
        return Err(format!(
            "the password is too long for the server's {}-bit RSA key",
            key.modulus().bits()
        ));
    }
    Ok(key.encrypt_block(message, Pkcs1OaepPadding::new(GetRandom)))
}

/// The modulus and exponent (big-endian, no leading zeros) of a PEM RSA
/// public key: `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo, what MySQL sends)
/// or `BEGIN RSA PUBLIC KEY` (PKCS#1). Keys of 512 to 16384 bits.
pub fn rsa_public_key(pem: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    use base64::Engine;

    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM text".to_owned())?;
    let mut label = None;
    let mut body = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l);
            body.clear();
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or_else(|| "no PEM block (-----BEGIN ...-----)".to_owned())?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("bad base64 in the PEM block: {e}"))?;
    let pkcs1 = match label {
        "RSA PUBLIC KEY" => der,
        "PUBLIC KEY" => {
            // SEQUENCE { SEQUENCE { algorithm }, BIT STRING { RSAPublicKey } }
            let (spki, _) = der_item(&der, 0x30)?;
            let (_algorithm, rest) = der_item(spki, 0x30)?;
            let (bits, _) = der_item(rest, 0x03)?;
            match bits.split_first() {
                Some((0, key)) => key.to_vec(),
                _ => return Err("a malformed BIT STRING".into()),
            }
        }
        other => return Err(format!("a PEM block of {other}, not a public key")),
    };
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let (fields, _) = der_item(&pkcs1, 0x30)?;
    let (n, rest) = der_item(fields, 0x02)?;
    let (e, _) = der_item(rest, 0x02)?;
    let strip = |x: &[u8]| {
        x.iter()
            .skip_while(|&&b| b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    let (n, e) = (strip(n), strip(e));
    if !(64..=2048).contains(&n.len()) {
        return Err(format!("a {}-byte modulus", n.len()));
    }
    if e.is_empty() || e.len() > 8 {
        return Err(format!("a {}-byte exponent", e.len()));
    }
    Ok((n, e))
}

/// One DER item with `tag`: its content and what follows it.
fn der_item(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let bad = || format!("malformed DER (expected tag 0x{tag:02x})");
    let (&t, rest) = der.split_first().ok_or_else(bad)?;
    if t != tag {
        return Err(bad());
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| a << 8 | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok(rest.split_at(len))
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
    fn an_auth_switch_to_native_is_answered_with_its_scramble() {
        let nonce = b"abcdefghijklmnopqrst";
        let mut payload = vec![0xFE];
        payload.extend_from_slice(b"mysql_native_password\0");
        payload.extend_from_slice(nonce);
        payload.push(0);
        let (mut login, _) = Login::start(
            &greeting("caching_sha2_password"),
            &creds("secret"),
            Policy::default(),
        );
        let Ok(Action::Send(answer)) = login.on_packet(&payload) else {
            panic!("no answer to the switch");
        };
        assert!(verify_native(nonce, &answer, &native_hash(b"secret")));
        assert_eq!(login.plugin(), Plugin::Native);
    }

    #[test]
    fn ed25519_signs_the_nonce_with_the_password_key() {
        let nonce = [7u8; 32];
        let (mut login, first) =
            Login::start(&greeting("client_ed25519"), &creds("pw"), Policy::default());
        assert_eq!(login.plugin(), Plugin::Ed25519);
        assert!(first.windows(14).any(|w| w == b"client_ed25519"));
        let mut nonce = nonce;
        nonce[31] = 0; // a nonce ending in zero is still all nonce
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"client_ed25519\0");
        switch.extend_from_slice(&nonce);
        let (mut fresh, _) = Login::start(
            &greeting("mysql_native_password"),
            &creds("pw"),
            Policy::default(),
        );
        let Ok(Action::Send(sig)) = fresh.on_packet(&switch) else {
            panic!("no answer to the switch");
        };
        // An Ed25519 signature: 64 bytes, deterministic, bound to the
        // password and the nonce (MariaDB itself checks it in
        // integration-tests/tests/sqlproxyd_login.rs).
        assert_eq!(sig.len(), 64);
        assert_eq!(sig, Plugin::Ed25519.scramble(&nonce, "pw"));
        assert_ne!(sig, Plugin::Ed25519.scramble(&nonce, "pw2"));
        assert_ne!(sig, Plugin::Ed25519.scramble(&[8u8; 32], "pw"));
        assert_eq!(login.on_packet(&[0x00, 0, 0, 2, 0, 0, 0]), Ok(Action::Done));
    }

    const N: &str = "be5d090b733d80ca9de59d0db5e381a7c5f22a26743800a5a8607a59aa476f3c2705ebd94619d5f15738fab6920490e3710b790ecaa7d7c699b59b29e64d160e26806f65e753ca04c6fde5abb3b3001e12a637014a80711b257aa488869497e8594e5f8847fe5c811f1e7a2992c8f33a4ad9d273a1184359aee927e15db39cbf";
    /// The private exponent of the 1024-bit test key (openssl genrsa).
    const D: &str = "7e61d9fd6616f10893e7bb6b3cd4bc619c8378046ba83a95c0c1bcb906d9c239d756910c8103ea0bfe726fd1020452050e2a25c6f2389882dbcdbc2407282a7937843727b95fe35090fbab5d727ce846fa4faef546dd8e13a1c69031f5b8176c775fb794476bf88a0cc4157e340b1dbd53d2754f21dd643966621f437a9c8721";
    const SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC+XQkLcz2Ayp3lnQ2144GnxfIq
JnQ4AKWoYHpZqkdvPCcF69lGGdXxVzj6tpIEkONxC3kOyqfXxpm1mynmTRYOJoBv
ZedTygTG/eWrs7MAHhKmNwFKgHEbJXqkiIaUl+hZTl+IR/5cgR8eeimSyPM6StnS
c6EYQ1mu6SfhXbOcvwIDAQAB
-----END PUBLIC KEY-----
";
    const PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIGJAoGBAL5dCQtzPYDKneWdDbXjgafF8iomdDgApahgelmqR288JwXr2UYZ1fFX
OPq2kgSQ43ELeQ7Kp9fGmbWbKeZNFg4mgG9l51PKBMb95auzswAeEqY3AUqAcRsl
eqSIhpSX6FlOX4hH/lyBHx56KZLI8zpK2dJzoRhDWa7pJ+Fds5y/AgMBAAE=
-----END RSA PUBLIC KEY-----
";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn greeting(plugin: &str) -> Handshake {
        Handshake {
            server_version: "8.0.36".into(),
            connection_id: 7,
            scramble: *b"0123456789abcdefghij",
            capabilities: Capabilities::CLIENT_PROTOCOL_41
                | Capabilities::CLIENT_SECURE_CONNECTION
                | Capabilities::CLIENT_PLUGIN_AUTH,
            collation: 45,
            status: crate::mysql::packets::Status::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin: plugin.into(),
        }
    }

    fn creds(password: &str) -> Credentials<'_> {
        Credentials {
            user: "app",
            password,
            database: None,
            capabilities: Capabilities::CLIENT_PROTOCOL_41
                | Capabilities::CLIENT_SECURE_CONNECTION
                | Capabilities::CLIENT_PLUGIN_AUTH,
            collation: 45,
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn ok() -> Vec<u8> {
        crate::mysql::packets::Ok::default().to_payload().to_vec()
    }

    fn err() -> Vec<u8> {
        crate::mysql::packets::err_payload(1045, "28000", "Access denied for user 'app'").to_vec()
    }

    /// RSA-OAEP (SHA-1) decryption with the test key, by the book.
    fn decrypt(c: &[u8]) -> Vec<u8> {
        use num_bigint::BigUint;
        use sha1::{Digest, Sha1};
        fn mgf1(seed: &[u8], len: usize) -> Vec<u8> {
            let mut out = Vec::new();
            for c in 0u32.. {
                if out.len() >= len {
                    break;
                }
                let mut h = Sha1::new();
                h.update(seed);
                h.update(c.to_be_bytes());
                out.extend_from_slice(&h.finalize());
            }
            out.truncate(len);
            out
        }
        let n = BigUint::from_bytes_be(&hex(N));
        let m = BigUint::from_bytes_be(c).modpow(&BigUint::from_bytes_be(&hex(D)), &n);
        let mut em = m.to_bytes_be();
        while em.len() < 127 {
            em.insert(0, 0);
        }
        let (masked_seed, masked_db) = em.split_at(20);
        let seed: Vec<u8> = masked_seed
            .iter()
            .zip(mgf1(masked_db, 20))
            .map(|(a, b)| a ^ b)
            .collect();
        let db: Vec<u8> = masked_db
            .iter()
            .zip(mgf1(&seed, masked_db.len()))
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(&db[..20], &Sha1::digest([])[..], "lHash");
        let rest = &db[20..];
        let one = rest.iter().position(|&b| b != 0).unwrap();
        assert_eq!(rest[one], 1);
        rest[one + 1..].to_vec()
    }

    #[test]
    fn a_native_greeting_is_answered_natively() {
        let (mut login, response) = Login::start(
            &greeting("mysql_native_password"),
            &creds("pw"),
            Policy::default(),
        );
        let expected = scramble_native(b"0123456789abcdefghij", b"pw").unwrap();
        assert!(contains(&response, &expected));
        assert!(contains(&response, b"mysql_native_password\0"));
        assert_eq!(login.plugin(), Plugin::Native);
        assert_eq!(login.on_packet(&ok()), Ok(Action::Done));
    }

    #[test]
    fn caching_sha2_fast_path() {
        let (mut login, response) = Login::start(
            &greeting("caching_sha2_password"),
            &creds("pw"),
            Policy::default(),
        );
        let expected = scramble_sha256(b"0123456789abcdefghij", b"pw").unwrap();
        assert!(contains(&response, &expected));
        assert!(contains(&response, b"caching_sha2_password\0"));
        assert_eq!(login.on_packet(&[0x01, 0x03]), Ok(Action::Read));
        assert_eq!(login.on_packet(&ok()), Ok(Action::Done));
        // An empty password: an empty answer, and the OK straight away.
        let (mut login, _) = Login::start(
            &greeting("caching_sha2_password"),
            &creds(""),
            Policy::default(),
        );
        assert_eq!(login.on_packet(&ok()), Ok(Action::Done));
    }

    const ALLOW: Policy = Policy {
        allow_public_key_retrieval: true,
    };

    #[test]
    fn caching_sha2_full_path_without_tls_is_refused_unless_key_retrieval_is_allowed() {
        // Off (the default): the request for full authentication ends the
        // login; no public-key request goes out, so no key is taken from
        // whoever answers.
        let (mut login, _) = Login::start(
            &greeting("caching_sha2_password"),
            &creds("secret"),
            Policy::default(),
        );
        assert_eq!(
            login.on_packet(&[0x01, 0x04]),
            Err(LoginError::PublicKeyRetrieval)
        );
        let e = LoginError::PublicKeyRetrieval.to_string();
        assert!(
            e.starts_with("the server asks for full caching_sha2_password authentication over an unencrypted connection")
                && e.contains("allow_public_key_retrieval: true"),
            "{e}"
        );
        // A key sent unasked is no key at all.
        let (mut login, _) = Login::start(
            &greeting("caching_sha2_password"),
            &creds("secret"),
            Policy::default(),
        );
        let mut key = vec![0x01];
        key.extend_from_slice(SPKI.as_bytes());
        assert!(matches!(
            login.on_packet(&key),
            Err(LoginError::Malformed(_))
        ));
        // After a switch to caching_sha2_password too.
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"caching_sha2_password\0ABCDEFGHIJKLMNOPQRST\0");
        let (mut login, _) = Login::start(
            &greeting("mysql_native_password"),
            &creds("secret"),
            Policy::default(),
        );
        assert!(matches!(login.on_packet(&switch), Ok(Action::Send(_))));
        assert_eq!(
            login.on_packet(&[0x01, 0x04]),
            Err(LoginError::PublicKeyRetrieval)
        );
        // The fast path needs no key and still works.
        let (mut login, _) = Login::start(
            &greeting("caching_sha2_password"),
            &creds("secret"),
            Policy::default(),
        );
        assert_eq!(login.on_packet(&[0x01, 0x03]), Ok(Action::Read));
        assert_eq!(login.on_packet(&ok()), Ok(Action::Done));
    }

    #[test]
    fn caching_sha2_full_path_sends_the_password_rsa_encrypted() {
        let (mut login, _) =
            Login::start(&greeting("caching_sha2_password"), &creds("secret"), ALLOW);
        assert_eq!(
            login.on_packet(&[0x01, 0x04]),
            Ok(Action::Send(vec![REQUEST_PUBLIC_KEY]))
        );
        let mut key = vec![0x01];
        key.extend_from_slice(SPKI.as_bytes());
        let Ok(Action::Send(encrypted)) = login.on_packet(&key) else {
            panic!("no encrypted password");
        };
        assert_eq!(encrypted.len(), 128);
        let plain: Vec<u8> = decrypt(&encrypted)
            .iter()
            .zip(b"0123456789abcdefghij".iter().cycle())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(plain, b"secret\0");
        assert_eq!(login.on_packet(&ok()), Ok(Action::Done));
        // The server's verdict on it can be no.
        let (mut login, _) =
            Login::start(&greeting("caching_sha2_password"), &creds("secret"), ALLOW);
        login.on_packet(&[0x01, 0x04]).unwrap();
        login.on_packet(&key).unwrap();
        assert!(matches!(
            login.on_packet(&err()),
            Err(LoginError::Refused(_))
        ));
    }

    #[test]
    fn an_unusable_key_is_a_clear_error() {
        let (mut login, _) =
            Login::start(&greeting("caching_sha2_password"), &creds("secret"), ALLOW);
        login.on_packet(&[0x01, 0x04]).unwrap();
        let e = login.on_packet(b"\x01not a key").unwrap_err().to_string();
        assert!(
            e.starts_with("the server asks for caching_sha2 full authentication; its RSA public key is unusable"),
            "{e}"
        );
        let long = "x".repeat(100);
        let e = encrypt_password(long.as_bytes(), b"nonce", SPKI.as_bytes()).unwrap_err();
        assert!(
            e.contains("too long for the server's 1024-bit RSA key"),
            "{e}"
        );
    }

    #[test]
    fn both_pem_forms_give_the_key() {
        let spki = rsa_public_key(SPKI.as_bytes()).unwrap();
        assert_eq!(spki.0, hex(N));
        assert_eq!(spki.1, vec![1, 0, 1]);
        assert_eq!(rsa_public_key(PKCS1.as_bytes()).unwrap(), spki);
        let truncated = &SPKI[..SPKI.len() - 60];
        assert!(rsa_public_key(truncated.as_bytes()).is_err());
        assert!(
            rsa_public_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .is_err()
        );
        assert!(rsa_public_key(b"").is_err());
    }

    #[test]
    fn auth_switches_to_either_plugin() {
        let nonce = b"ABCDEFGHIJKLMNOPQRST";
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"caching_sha2_password\0");
        switch.extend_from_slice(nonce);
        switch.push(0);
        let (mut login, _) = Login::start(&greeting("mysql_native_password"), &creds("pw"), ALLOW);
        assert_eq!(
            login.on_packet(&switch),
            Ok(Action::Send(
                scramble_sha256(nonce, b"pw").unwrap().to_vec()
            ))
        );
        assert_eq!(login.plugin(), Plugin::CachingSha2);
        // The full path then mixes the password with the switch's nonce.
        assert_eq!(login.on_packet(&[0x01, 0x04]), Ok(Action::Send(vec![2])));
        let mut key = vec![0x01];
        key.extend_from_slice(PKCS1.as_bytes());
        let Ok(Action::Send(encrypted)) = login.on_packet(&key) else {
            panic!("no encrypted password");
        };
        let plain: Vec<u8> = decrypt(&encrypted)
            .iter()
            .zip(nonce.iter().cycle())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(plain, b"pw\0");
        // Only one switch; only the plugins spoken here.
        assert!(matches!(
            login.on_packet(&switch),
            Err(LoginError::Malformed(_))
        ));
        let (mut login, _) = Login::start(
            &greeting("caching_sha2_password"),
            &creds("pw"),
            Policy::default(),
        );
        let mut native = vec![0xFE];
        native.extend_from_slice(b"mysql_native_password\0");
        native.extend_from_slice(nonce);
        native.push(0);
        assert_eq!(
            login.on_packet(&native),
            Ok(Action::Send(
                scramble_native(nonce, b"pw").unwrap().to_vec()
            ))
        );
        assert!(matches!(
            login.on_packet(&[0x01, 0x03]),
            Err(LoginError::Malformed(_))
        ));
        let (mut login, _) = Login::start(&greeting("dialog"), &creds("pw"), Policy::default());
        let mut other = vec![0xFE];
        other.extend_from_slice(b"dialog\0xyz");
        let e = login.on_packet(&other).unwrap_err().to_string();
        assert!(e.contains("auth plugin dialog"), "{e}");
    }

    #[test]
    fn an_err_is_the_servers_refusal() {
        let (mut login, _) = Login::start(
            &greeting("mysql_native_password"),
            &creds("pw"),
            Policy::default(),
        );
        let e = login.on_packet(&err()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ERROR 1045 (28000): Access denied for user 'app'"
        );
        assert!(login.on_packet(&[]).is_err());
        assert!(login.on_packet(&[0x42]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_packets_are_answered_or_refused_never_a_panic(
            packets in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..6),
            sha2 in proptest::prelude::any::<bool>(),
            allow_public_key_retrieval in proptest::prelude::any::<bool>(),
        ) {
            let plugin = if sha2 { "caching_sha2_password" } else { "mysql_native_password" };
            let policy = Policy { allow_public_key_retrieval };
            let (mut login, _) = Login::start(&greeting(plugin), &creds("pw"), policy);
            for p in &packets {
                if login.on_packet(p).is_err() {
                    break;
                }
            }
        }

        #[test]
        fn any_key_bytes_are_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = rsa_public_key(&bytes);
            let mut pem = b"-----BEGIN PUBLIC KEY-----\n".to_vec();
            pem.extend_from_slice(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes).as_bytes());
            pem.extend_from_slice(b"\n-----END PUBLIC KEY-----\n");
            let _ = encrypt_password(b"pw", b"nonce", &pem);
        }
    }
}
