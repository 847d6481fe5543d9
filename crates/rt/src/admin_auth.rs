//! Who may use the admin HTTP endpoint: `admin_http.auth` (a bearer token
//! read from a file, basic-auth users, or both), the rule that a request
//! with an `Origin` header never runs an action, and [`decide`]: the
//! verdict on one request as a pure function of the config, the path and
//! the headers.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine;
use hyper::header::{HeaderMap, AUTHORIZATION, ORIGIN};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::Invalid;
use crate::secret::Secret;

/// `admin_http.auth:` — the credential `POST /actions/*` needs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminAuth {
    /// A file holding the bearer token (`Authorization: Bearer TOKEN`);
    /// read at start and at every reload.
    pub token_file: Option<TokenFile>,
    /// Basic-auth users (`Authorization: Basic ...`).
    #[serde(default)]
    pub users: Vec<AdminUser>,
    /// `/status`, `/metrics` and the daemon's pages need the credential
    /// too (by default they are open).
    #[serde(default)]
    pub protect_reads: bool,
}

/// `admin_http.auth.users[]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    pub name: String,
    /// Inline, `{file: PATH}` or `{env: NAME}`.
    pub password: Secret,
}

/// `admin_http.auth.token_file`: the path, and the token read from it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenFile {
    pub path: PathBuf,
    token: Secret,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenFile({}, ***)", self.path.display())
    }
}

impl TokenFile {
    /// Reads the token from `path`: its text, trailing whitespace cut
    /// (files written by `echo` end in a newline).
    pub fn read(path: PathBuf) -> Result<TokenFile, String> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        let token = text.trim_end();
        if token.is_empty() {
            return Err(format!("token file {} is empty", path.display()));
        }
        if token.contains(char::is_whitespace) {
            return Err(format!(
                "token file {} holds more than one word; a bearer token is one",
                path.display()
            ));
        }
        let token = Secret::new(token);
        Ok(TokenFile { path, token })
    }
}

impl<'de> Deserialize<'de> for TokenFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(d)?;
        TokenFile::read(path).map_err(de::Error::custom)
    }
}

impl AdminAuth {
    fn has_credential(&self) -> bool {
        self.token_file.is_some() || !self.users.is_empty()
    }

    /// The `WWW-Authenticate` challenges for a 401, one per scheme.
    pub fn challenges(&self, realm: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.token_file.is_some() {
            out.push(format!("Bearer realm=\"{realm}\""));
        }
        if !self.users.is_empty() {
            out.push(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""));
        }
        out
    }

    /// What to send, for the body of a 401.
    pub fn what_to_send(&self) -> String {
        let mut ways = Vec::new();
        if self.token_file.is_some() {
            ways.push("`Authorization: Bearer TOKEN` with the token in admin_http.auth.token_file");
        }
        if !self.users.is_empty() {
            ways.push("basic auth (`Authorization: Basic ...`) of a user in admin_http.auth.users");
        }
        ways.join(", or ")
    }
}

/// `admin_http.listen` when the config names none: loopback, always.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Checks `admin_http` (`listen` and `auth`); every daemon's config gets
/// these from [`crate::config::parse`].
pub fn validate(listen: Option<SocketAddr>, auth: Option<&AdminAuth>) -> Vec<Invalid> {
    let mut out = Vec::new();
    if let Some(auth) = auth {
        if !auth.has_credential() {
            out.push(Invalid::new(
                "admin_http.auth",
                "names no credential: set token_file (a file holding the bearer token) or users (basic auth), or both",
            ));
        }
        for (i, u) in auth.users.iter().enumerate() {
            if u.name.is_empty() || u.name.contains(':') {
                out.push(Invalid::new(
                    format!("admin_http.auth.users[{i}].name"),
                    "a basic-auth user name must be non-empty and without ':'",
                ));
            }
            if u.password.expose().is_empty() {
                out.push(Invalid::new(
                    format!("admin_http.auth.users[{i}].password"),
                    "an empty password is no credential",
                ));
            }
        }
        crate::config::check::unique_names(
            &mut out,
            auth.users
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("admin_http.auth.users[{i}].name"), u.name.as_str())),
            "user",
        );
    }
    if let Some(addr) = listen {
        if !is_loopback(&addr) && !auth.is_some_and(AdminAuth::has_credential) {
            out.push(Invalid::new(
                "admin_http.listen",
                format!(
                    "{addr} is not a loopback address, and the admin endpoint runs actions: set admin_http.auth.token_file (or admin_http.auth.users) to require a credential, or listen on 127.0.0.1"
                ),
            ));
        }
    }
    out
}

/// Why a request was refused; its `reason` label in
/// `hastack_<daemon>_admin_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// An action request carrying `Origin`: a browser page's request,
    /// perhaps cross-site (403).
    Origin,
    /// An action, and no `admin_http.auth` to check it against (403).
    NotConfigured,
    /// No `Authorization` header (401).
    Missing,
    /// A credential that matches none configured, or one not understood (401).
    Wrong,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::Origin,
        Refusal::NotConfigured,
        Refusal::Missing,
        Refusal::Wrong,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Origin => "origin",
            Refusal::NotConfigured => "not_configured",
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
        }
    }

    /// 401 (send a credential) or 403 (no credential helps).
    pub fn status(self) -> u16 {
        match self {
            Refusal::Missing | Refusal::Wrong => 401,
            Refusal::Origin | Refusal::NotConfigured => 403,
        }
    }
}

/// `/actions/NAME` → `NAME`: the requests that change state.
pub fn action_name(path: &str) -> Option<&str> {
    path.strip_prefix("/actions/")
}

/// May this request go on? Actions (`/actions/*`, whatever the method)
/// need the configured credential and no `Origin`; everything else is
/// open unless `protect_reads` is set.
pub fn decide(auth: Option<&AdminAuth>, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    let action = action_name(path).is_some();
    if action && headers.contains_key(ORIGIN) {
        return Err(Refusal::Origin);
    }
    match auth {
        None if action => Err(Refusal::NotConfigured),
        None => Ok(()),
        Some(auth) if action || auth.protect_reads => check_credential(auth, headers),
        Some(_) => Ok(()),
    }
}

fn check_credential(auth: &AdminAuth, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(Refusal::Missing),
        (Some(v), None) => v.as_bytes(),
        // Two credentials: which one counts would be a guess.
        (Some(_), Some(_)) => return Err(Refusal::Wrong),
    };
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
        None => (value, &[][..]),
    };
    let ok = if scheme.eq_ignore_ascii_case(b"bearer") {
        auth.token_file
            .as_ref()
            .is_some_and(|t| bool::from(rest.ct_eq(t.token.expose().as_bytes())))
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        basic_matches(&auth.users, rest)
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

/// `user:password` from the base64 of a basic `Authorization` header's
/// credentials (the part after `Basic `); `None` if it is not that.
pub fn basic_credentials(encoded: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Byte strings equal, in time that depends on their lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether the basic credentials `encoded` are those of one of `users`;
/// every user is compared, so the time does not say which name exists.
fn basic_matches(users: &[AdminUser], encoded: &[u8]) -> bool {
    let Some((name, password)) = basic_credentials(encoded) else {
        return false;
    };
    let mut found = subtle::Choice::from(0);
    for u in users {
        found |= name.ct_eq(u.name.as_bytes()) & password.ct_eq(u.password.expose().as_bytes());
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn auth(token: Option<&str>, users: &[(&str, &str)], protect_reads: bool) -> AdminAuth {
        AdminAuth {
            token_file: token.map(|t| TokenFile {
                path: PathBuf::from("/test/token"),
                token: Secret::new(t),
            }),
            users: users
                .iter()
                .map(|(n, p)| AdminUser {
                    name: (*n).to_owned(),
                    password: Secret::new(*p),
                })
                .collect(),
            protect_reads,
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {b64}").into_bytes()
    }

    #[test]
    fn actions_need_the_token_and_reads_stay_open() {
        let a = auth(Some("s3cret"), &[], false);
        let a = Some(&a);
        let none = headers(&[]);
        assert_eq!(decide(a, "/actions/x", &none), Err(Refusal::Missing));
        let wrong = headers(&[("authorization", b"Bearer nope")]);
        assert_eq!(decide(a, "/actions/x", &wrong), Err(Refusal::Wrong));
        let prefix = headers(&[("authorization", b"Bearer s3cre")]);
        assert_eq!(decide(a, "/actions/x", &prefix), Err(Refusal::Wrong));
        let right = headers(&[("authorization", b"Bearer s3cret")]);
        assert_eq!(decide(a, "/actions/x", &right), Ok(()));
        let lower = headers(&[("authorization", b"bearer   s3cret ")]);
        assert_eq!(decide(a, "/actions/x", &lower), Ok(()));
        for read in ["/status", "/metrics", "/stats", "/actions"] {
            assert_eq!(decide(a, read, &none), Ok(()), "{read}");
        }
    }

    #[test]
    fn an_origin_header_refuses_an_action_even_with_the_credential() {
        let a = auth(Some("s3cret"), &[], false);
        let h = headers(&[
            ("authorization", b"Bearer s3cret"),
            ("origin", b"http://evil.example"),
        ]);
        assert_eq!(decide(Some(&a), "/actions/x", &h), Err(Refusal::Origin));
        let null = headers(&[("origin", b"null")]);
        assert_eq!(decide(None, "/actions/x", &null), Err(Refusal::Origin));
        // Reads with an Origin: the browser cannot read the answer cross-site anyway.
        assert_eq!(decide(Some(&a), "/status", &h), Ok(()));
    }

    #[test]
    fn without_a_credential_configured_no_action_runs_and_reads_are_open() {
        let none = headers(&[]);
        assert_eq!(
            decide(None, "/actions/switchover", &none),
            Err(Refusal::NotConfigured)
        );
        let any = headers(&[("authorization", b"Bearer anything")]);
        assert_eq!(
            decide(None, "/actions/x", &any),
            Err(Refusal::NotConfigured)
        );
        assert_eq!(decide(None, "/status", &none), Ok(()));
        assert_eq!(decide(None, "/metrics", &none), Ok(()));
    }

    #[test]
    fn basic_users_are_checked_by_name_and_password() {
        let a = auth(None, &[("ops", "pw1"), ("dba", "pw2")], false);
        let a = Some(&a);
        let ok = |u: &str, p: &str| {
            decide(
                a,
                "/actions/x",
                &headers(&[("authorization", &basic(u, p))]),
            )
        };
        assert_eq!(ok("ops", "pw1"), Ok(()));
        assert_eq!(ok("dba", "pw2"), Ok(()));
        assert_eq!(ok("ops", "pw2"), Err(Refusal::Wrong));
        assert_eq!(ok("nobody", "pw1"), Err(Refusal::Wrong));
        assert_eq!(ok("ops", "pw1:"), Err(Refusal::Wrong));
        // A password may hold ':'; only the first one splits.
        let colon = auth(None, &[("u", "a:b")], false);
        let h = headers(&[("authorization", &basic("u", "a:b"))]);
        assert_eq!(decide(Some(&colon), "/actions/x", &h), Ok(()));
        // A bearer token when only users are configured is wrong.
        let bearer = headers(&[("authorization", b"Bearer pw1")]);
        assert_eq!(decide(a, "/actions/x", &bearer), Err(Refusal::Wrong));
    }

    #[test]
    fn protect_reads_puts_every_path_behind_the_credential() {
        let a = auth(Some("t"), &[("ops", "pw")], true);
        let a = Some(&a);
        for path in ["/status", "/metrics", "/stats", "/anything"] {
            assert_eq!(
                decide(a, path, &headers(&[])),
                Err(Refusal::Missing),
                "{path}"
            );
            let right = headers(&[("authorization", b"Bearer t")]);
            assert_eq!(decide(a, path, &right), Ok(()), "{path}");
            let user = headers(&[("authorization", &basic("ops", "pw"))]);
            assert_eq!(decide(a, path, &user), Ok(()), "{path}");
        }
    }

    #[test]
    fn odd_authorization_headers_are_wrong_never_a_panic() {
        let a = auth(Some("t"), &[("ops", "pw")], false);
        let a = Some(&a);
        let odd: &[&[u8]] = &[
            b"",
            b"Bearer",
            b"Bearer ",
            b"Basic",
            b"Basic !!!!",
            b"Basic bm9jb2xvbg==", // "nocolon"
            b"Basic \xff\xfe",
            b"\xff\xfe\xfd",
            b"Digest username=ops",
            b"Bearer t t",
            b"Bearer \x80t",
        ];
        for v in odd {
            let h = headers(&[("authorization", v)]);
            assert_eq!(decide(a, "/actions/x", &h), Err(Refusal::Wrong), "{v:?}");
        }
        let two = headers(&[
            ("authorization", b"Bearer t"),
            ("authorization", b"Bearer t"),
        ]);
        assert_eq!(decide(a, "/actions/x", &two), Err(Refusal::Wrong));
    }

    #[test]
    fn refusals_map_to_401_or_403() {
        for r in Refusal::ALL {
            let expected = if matches!(r, Refusal::Missing | Refusal::Wrong) {
                401
            } else {
                403
            };
            assert_eq!(r.status(), expected, "{r:?}");
        }
        let a = auth(Some("t"), &[("ops", "pw")], false);
        assert_eq!(
            a.challenges("hastack lbd"),
            [
                "Bearer realm=\"hastack lbd\"",
                "Basic realm=\"hastack lbd\", charset=\"UTF-8\""
            ]
        );
        assert!(a.what_to_send().contains("admin_http.auth.token_file"));
        assert!(a.what_to_send().contains("admin_http.auth.users"));
    }

    #[test]
    fn a_non_loopback_listener_needs_a_credential() {
        let any: SocketAddr = "0.0.0.0:9166".parse().unwrap();
        let lo: SocketAddr = "127.0.0.11:9166".parse().unwrap();
        let lo6: SocketAddr = "[::1]:9166".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9166".parse().unwrap();
        let e = validate(Some(any), None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "admin_http.listen");
        assert!(e[0].message.contains("admin_http.auth.token_file"), "{e:?}");
        assert!(validate(Some(lo), None).is_empty());
        assert!(validate(Some(lo6), None).is_empty());
        assert!(validate(Some(mapped), None).is_empty());
        assert!(validate(None, None).is_empty());
        let with = auth(Some("t"), &[], false);
        assert!(validate(Some(any), Some(&with)).is_empty());
        // An auth section without a credential is no credential.
        let empty = auth(None, &[], true);
        let e = validate(Some(any), Some(&empty));
        let paths: Vec<&str> = e.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["admin_http.auth", "admin_http.listen"]);
    }

    #[test]
    fn user_names_and_passwords_are_checked() {
        let a = auth(None, &[("a:b", "x"), ("ok", ""), ("ok", "y")], false);
        let e: Vec<String> = validate(None, Some(&a))
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("admin_http.auth.users[0].name"), "{e:?}");
        assert!(
            e[1].starts_with("admin_http.auth.users[1].password"),
            "{e:?}"
        );
        assert!(e[2].contains("duplicate user name \"ok\""), "{e:?}");
    }

    #[test]
    fn token_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        let t = TokenFile::read(path.clone()).unwrap();
        assert_eq!(t.token.expose(), "abc123");
        assert!(!format!("{t:?}").contains("abc123"));
        std::fs::write(&path, "\n").unwrap();
        assert!(TokenFile::read(path.clone())
            .unwrap_err()
            .contains("is empty"));
        std::fs::write(&path, "two words\n").unwrap();
        assert!(TokenFile::read(path)
            .unwrap_err()
            .contains("more than one word"));
        let e = TokenFile::read(dir.path().join("missing")).unwrap_err();
        assert!(
            e.contains("cannot read token file") && e.contains("missing"),
            "{e}"
        );
    }
}
