//! Loading a daemon's YAML config: what the user wrote, checked, with errors
//! that say where and what to fix.
//!
//! Loading has two passes. serde turns the text into the daemon's typed
//! config (`deny_unknown_fields` everywhere), stopping at the first type or
//! syntax error, which it locates. Then [`DaemonConfig::validate`] checks
//! what types cannot (references, ranges, duplicates) and reports every
//! problem at once; [`crate::locate`] finds their lines.
//!
//! A config that still holds [`PLACEHOLDER`] anywhere (the packaged
//! configs carry it for every password) is refused, each place named: a
//! package must not run with a secret everyone who read it knows.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::admin_auth::{self, AdminAuth};
use crate::duration::Duration;
use crate::locate::Locator;

/// What the packaged configs (configs/NAME.yaml, installed as
/// /etc/hastack/NAME.yaml) hold where a site's own secret goes. A config
/// holding it anywhere is refused by `--check` and at start.
pub const PLACEHOLDER: &str = "__CHANGE_ME__";

/// A daemon's config type: deserialized from YAML, then validated.
pub trait DaemonConfig: DeserializeOwned + Send + Sync + 'static {
    /// Problems serde cannot see. Empty when the config is usable.
    fn validate(&self) -> Vec<Invalid>;

    /// What is usable but weaker than it could be: `--check` prints these
    /// and the daemon logs them at start; they never stop it.
    fn warnings(&self) -> Vec<Invalid> {
        Vec::new()
    }

    /// The admin HTTP section (same shape in every daemon).
    fn admin_http(&self) -> &AdminHttp;

    /// How long SIGTERM waits for work in flight before exiting.
    fn shutdown_grace(&self) -> Duration;

    /// Threads that run the daemon's work: `None` is one per CPU; `1`
    /// runs everything on one thread, without work-stealing (lbd's
    /// `nbthread`, as HAProxy's). Read at start only.
    fn threads(&self) -> Option<usize> {
        None
    }
}

/// `admin_http:` — where `/status`, `/metrics` and `POST /actions/*` are
/// served, and the credential actions need.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminHttp {
    /// Defaults to 127.0.0.1 and the daemon's own port. Anything but
    /// loopback needs `auth`.
    pub listen: Option<SocketAddr>,
    /// Without it no action runs.
    pub auth: Option<AdminAuth>,
}

/// One semantic problem, before it is located in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Key path, e.g. `backends.db.servers[1].inter`.
    pub path: String,
    pub message: String,
}

impl Invalid {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One located config error: `file:line:col: key.path: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Empty when the error is about the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in one config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line: None,
            column: None,
            path: String::new(),
            message: message.into(),
        }])
    }
}

/// Reads, parses and validates `file`.
pub fn load<C: DaemonConfig>(file: &Path) -> Result<C, ConfigErrors> {
    let text = std::fs::read(file).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => format!("cannot read: {e}"),
        };
        ConfigErrors::whole_file(file, why)
    })?;
    let text = String::from_utf8(text).map_err(|e| {
        ConfigErrors::whole_file(
            file,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    parse(file, &text)
}

/// Parses and validates `text` as the contents of `file`.
pub fn parse<C: DaemonConfig>(file: &Path, text: &str) -> Result<C, ConfigErrors> {
    let blank = |l: &str| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    };
    if text.lines().all(blank) {
        return Err(ConfigErrors::whole_file(
            file,
            "the file is empty; see the example configs for the sections it needs",
        ));
    }
    let locator = Locator::new(text);
    let mut errors = placeholders(file, &locator);
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let config: C = match serde_path_to_error::deserialize(deserializer) {
        Ok(c) => c,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let located = inner.location().map(|l| (l.line(), l.column()));
            let (line, column) = located
                .or_else(|| locator.find(&path).map(|p| (p.line, p.column)))
                .unzip();
            let path = if path == "." { String::new() } else { path };
            // A placeholder where an address or a number goes is named once.
            if !errors.iter().any(|p| p.path == path) {
                errors.push(ConfigError {
                    file: file.to_owned(),
                    line,
                    column,
                    path,
                    message: serde_message(&inner),
                });
            }
            return Err(ConfigErrors(errors));
        }
    };
    let placeholder_paths: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
    let admin = config.admin_http();
    let mut problems = admin_auth::validate(admin.listen, admin.auth.as_ref());
    problems.extend(config.validate());
    for p in problems {
        // What is wrong with a placeholder (not a password hash, say) is
        // that it is one; that was said.
        if placeholder_paths.contains(&p.path) {
            continue;
        }
        let pos = locator.find(&p.path);
        errors.push(ConfigError {
            file: file.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: p.path,
            message: p.message,
        });
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// One error per scalar still holding [`PLACEHOLDER`], saying what to set.
fn placeholders(file: &Path, locator: &Locator) -> Vec<ConfigError> {
    locator
        .scalars()
        .filter(|(_, _, text)| text.contains(PLACEHOLDER))
        .map(|(path, pos, _)| {
            let key = path.rsplit(['.', '[']).next().unwrap_or(path);
            let what = if key.contains("hash") {
                "this site's mysql_native_password hash (SELECT PASSWORD('...'))"
            } else if key.contains("pass") {
                "this site's password: inline, {file: PATH} (a file only the daemon's user reads) or {env: NAME}"
            } else {
                "this site's own value"
            };
            ConfigError {
                file: file.to_owned(),
                line: Some(pos.line),
                column: Some(pos.column),
                path: path.to_owned(),
                message: format!(
                    "still the packaged placeholder {PLACEHOLDER}; set {what} before starting"
                ),
            }
        })
        .collect()
}

/// Every error `parse` finds in `text`, as the lines `--check` prints
/// (empty when valid). For tests of the daemons' schemas.
pub fn error_lines<C: DaemonConfig>(file: &str, text: &str) -> Vec<String> {
    match parse::<C>(Path::new(file), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// For tests of the packaged configs: the key paths `parse` finds still
/// holding [`PLACEHOLDER`], and every other error line (none, for a
/// packaged config that only waits for its secrets).
pub fn placeholder_paths<C: DaemonConfig>(file: &str, text: &str) -> (Vec<String>, Vec<String>) {
    let Err(e) = parse::<C>(Path::new(file), text) else {
        return (Vec::new(), Vec::new());
    };
    let (placeholders, other): (Vec<ConfigError>, Vec<ConfigError>) =
        e.0.into_iter()
            .partition(|e| e.message.starts_with("still the packaged placeholder"));
    (
        placeholders.into_iter().map(|e| e.path).collect(),
        other.iter().map(ToString::to_string).collect(),
    )
}

/// serde_yaml's message without the position it appends (we print our own)
/// and without a key path prefix (we print the full one).
fn serde_message(e: &serde_yaml::Error) -> String {
    let mut msg = e.to_string();
    if let Some(cut) = msg.find(" at line ") {
        msg.truncate(cut);
    }
    // "expected struct AdminHttp" names our type, not what to write.
    if let Some(cut) = msg.find("expected struct ") {
        msg.truncate(cut);
        msg.push_str("expected a mapping of keys to values");
    }
    // serde_yaml prefixes some messages with a partial path ("a.b: ...").
    if let Some((head, tail)) = msg.split_once(": ") {
        if !head.contains(' ') && !head.is_empty() {
            msg = tail.to_owned();
        }
    }
    msg
}

/// Shared checks the daemons' `validate` use.
pub mod check {
    use super::Invalid;
    use std::collections::HashSet;

    /// `value` must be within `lo..=hi`.
    pub fn range<T: PartialOrd + std::fmt::Display>(
        out: &mut Vec<Invalid>,
        path: impl Into<String>,
        value: T,
        lo: T,
        hi: T,
    ) {
        if value < lo || value > hi {
            out.push(Invalid::new(
                path,
                format!("must be between {lo} and {hi}, got {value}"),
            ));
        }
    }

    /// Names in one list must be unique; reports each repeat.
    pub fn unique_names<'a>(
        out: &mut Vec<Invalid>,
        items: impl IntoIterator<Item = (String, &'a str)>,
        what: &str,
    ) {
        let mut seen = HashSet::new();
        for (path, name) in items {
            if !seen.insert(name) {
                out.push(Invalid::new(
                    path,
                    format!("duplicate {what} name {name:?}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        admin_http: AdminHttp,
        backends: BTreeMap<String, Backend>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Backend {
        servers: Vec<Server>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // `inter` is here to be parsed, not read
    struct Server {
        name: String,
        #[serde(default)]
        inter: Option<Duration>,
        #[serde(default)]
        weight: u32,
        #[serde(default)]
        password: Option<crate::Secret>,
    }

    impl DaemonConfig for Cfg {
        fn validate(&self) -> Vec<Invalid> {
            let mut out = Vec::new();
            for (b, backend) in &self.backends {
                for (i, s) in backend.servers.iter().enumerate() {
                    check::range(
                        &mut out,
                        format!("backends.{b}.servers[{i}].weight"),
                        s.weight,
                        0,
                        256,
                    );
                }
                check::unique_names(
                    &mut out,
                    backend
                        .servers
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (format!("backends.{b}.servers[{i}].name"), s.name.as_str())),
                    "server",
                );
            }
            out
        }
        fn admin_http(&self) -> &AdminHttp {
            &self.admin_http
        }
        fn shutdown_grace(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    fn errors(text: &str) -> Vec<String> {
        parse::<Cfg>(Path::new("lbd.yaml"), text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn bad_duration_names_file_line_column_path_and_expectation() {
        let text = "backends:\n  db:\n    servers:\n      - name: a\n      - name: b\n        inter: fast\n";
        assert_eq!(
            errors(text),
            [
                r#"lbd.yaml:6:16: backends.db.servers[1].inter: expected a duration like "2s", "250ms" or "1m", got "fast""#
            ]
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = errors("backends: {}\nbakends: {}\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("lbd.yaml:2:1: "), "{e:?}");
        assert!(e[0].contains("unknown field `bakends`"), "{e:?}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = errors("backends:\n  db:\n    servers:\n      - name: a\n        weight: heavy\n");
        assert!(
            e[0].starts_with("lbd.yaml:5:17: backends.db.servers[0].weight: invalid type"),
            "{e:?}"
        );
    }

    #[test]
    fn every_semantic_error_is_listed_and_located() {
        let text = "backends:\n  db:\n    servers:\n      - name: a\n        weight: 1000\n      - name: a\n        weight: 999\n";
        assert_eq!(
            errors(text),
            [
                "lbd.yaml:5:9: backends.db.servers[0].weight: must be between 0 and 256, got 1000",
                "lbd.yaml:7:9: backends.db.servers[1].weight: must be between 0 and 256, got 999",
                "lbd.yaml:6:9: backends.db.servers[1].name: duplicate server name \"a\"",
            ]
        );
    }

    #[test]
    fn placeholders_are_refused_each_named_with_what_to_set() {
        let text = "backends:\n  db:\n    servers:\n      - name: a\n        password: __CHANGE_ME__\n      - name: b\n        inter: __CHANGE_ME__\n        weight: 999\n";
        assert_eq!(
            errors(text),
            [
                "lbd.yaml:5:19: backends.db.servers[0].password: still the packaged placeholder __CHANGE_ME__; set this site's password: inline, {file: PATH} (a file only the daemon's user reads) or {env: NAME} before starting",
                "lbd.yaml:7:16: backends.db.servers[1].inter: still the packaged placeholder __CHANGE_ME__; set this site's own value before starting",
            ]
        );
        // With the types right, the other problems are listed too.
        let text = "backends:\n  db:\n    servers:\n      - name: a\n        password: __CHANGE_ME__\n      - name: b\n        weight: 999\n";
        let e = errors(text);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("servers[0].password: still the packaged placeholder"));
        assert!(e[1].contains("servers[1].weight: must be between 0 and 256"));
        // In a comment it is no value; part of a value, it is.
        let text = "# password: __CHANGE_ME__\nbackends:\n  db:\n    servers:\n      - {name: x__CHANGE_ME__}\n";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("lbd.yaml:5:16: backends.db.servers[0].name: still"),
            "{e:?}"
        );
        assert!(parse::<Cfg>(
            Path::new("lbd.yaml"),
            "backends:\n  db:\n    servers:\n      - {name: a, password: s3cret}\n"
        )
        .is_ok());
    }

    #[test]
    fn empty_and_missing_files_are_whole_file_errors() {
        assert!(errors("  \n# only a comment\n---\n")[0].contains("the file is empty"));
        assert!(errors("\n")[0].starts_with("lbd.yaml: the file is empty"));
        let missing = load::<Cfg>(Path::new("/nonexistent/lbd.yaml")).unwrap_err();
        assert_eq!(missing.to_string(), "/nonexistent/lbd.yaml: no such file");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = errors("backends:\n  db: [\n");
        assert!(e[0].starts_with("lbd.yaml:"), "{e:?}");
        assert!(
            e[0].split(':').nth(1).unwrap().parse::<usize>().is_ok(),
            "{e:?}"
        );
    }

    #[test]
    fn bad_listen_address_is_located() {
        let e = errors("admin_http:\n  listen: 127.0.0.1:99999\nbackends: {}\n");
        assert!(
            e[0].starts_with("lbd.yaml:2:11: admin_http.listen: "),
            "{e:?}"
        );
    }

    #[test]
    fn a_non_loopback_admin_listener_without_a_credential_is_located() {
        let e = errors("admin_http:\n  listen: 0.0.0.0:48800\nbackends: {}\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "lbd.yaml:2:3: admin_http.listen: 0.0.0.0:48800 is not a loopback address"
            ),
            "{e:?}"
        );
        assert!(e[0].contains("set admin_http.auth.token_file"), "{e:?}");
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let ok = format!(
            "admin_http:\n  listen: 0.0.0.0:48800\n  auth:\n    token_file: {}\nbackends: {{}}\n",
            token.display()
        );
        let cfg = parse::<Cfg>(Path::new("lbd.yaml"), &ok).unwrap();
        assert!(cfg.admin_http.auth.is_some());
    }

    #[test]
    fn an_unreadable_token_file_is_located_and_named() {
        let e = errors(
            "admin_http:\n  auth:\n    token_file: /nonexistent/admin.token\nbackends: {}\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("lbd.yaml:3:5: admin_http.auth.token_file: cannot read token file /nonexistent/admin.token"),
            "{e:?}"
        );
        let e = errors("admin_http:\n  auth: {protect_reads: true}\nbackends: {}\n");
        assert!(
            e[0].starts_with("lbd.yaml:2:3: admin_http.auth: names no credential"),
            "{e:?}"
        );
    }

    #[test]
    fn type_errors_describe_yaml_not_rust() {
        let e = errors("admin_http: [1]\nbackends: {}\n");
        assert_eq!(
            e,
            ["lbd.yaml:1:13: admin_http: invalid type: sequence, expected a mapping of keys to values"]
        );
    }
}
