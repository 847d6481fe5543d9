//! Passwords in configs: given inline, read from a file, or read from an
//! environment variable; never printed (Debug and Display are redacted).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::config::PLACEHOLDER;

/// A resolved secret. The value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it to a peer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Inline(String),
    From(SecretSource),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    file: Option<std::path::PathBuf>,
    env: Option<String>,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSecret::deserialize(d).map_err(|_| {
            de::Error::custom("expected a password string, {file: PATH} or {env: NAME}")
        })?;
        match raw {
            RawSecret::Inline(s) => Ok(Secret(s)),
            RawSecret::From(SecretSource {
                file: Some(path),
                env: None,
            }) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    de::Error::custom(format!("cannot read password file {}: {e}", path.display()))
                })?;
                // Files written by `echo` end in a newline that is not part of the password.
                let secret = text.trim_end_matches(['\n', '\r']);
                not_placeholder(secret, &format!("the password file {}", path.display()))?;
                Ok(Secret(secret.to_owned()))
            }
            RawSecret::From(SecretSource {
                file: None,
                env: Some(name),
            }) => {
                let secret = std::env::var(&name).map_err(|_| {
                    de::Error::custom(format!(
                        "environment variable {name} is not set (or not UTF-8)"
                    ))
                })?;
                not_placeholder(&secret, &format!("environment variable {name}"))?;
                Ok(Secret(secret))
            }
            RawSecret::From(_) => Err(de::Error::custom("give exactly one of `file` or `env`")),
        }
    }
}

/// A password file or variable copied from a packaged template must not
/// smuggle [`PLACEHOLDER`] past the check of the config text.
fn not_placeholder<E: de::Error>(secret: &str, source: &str) -> Result<(), E> {
    if secret.contains(PLACEHOLDER) {
        return Err(E::custom(format!(
            "{source} still holds the packaged placeholder {PLACEHOLDER}; put this site's password there"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_file_and_redaction() {
        let s: Secret = serde_yaml::from_str("hunter2").unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let s: Secret = serde_yaml::from_str(&format!("{{file: {}}}", path.display())).unwrap();
        assert_eq!(s.expose(), "from-file");
    }

    #[test]
    fn unreadable_sources_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        let e = serde_yaml::from_str::<Secret>("{file: /nonexistent/pw}").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot read password file /nonexistent/pw"),
            "{e}"
        );
        let e = serde_yaml::from_str::<Secret>("{env: HASTACK_TEST_SURELY_UNSET_VAR}").unwrap_err();
        assert!(
            e.to_string()
                .contains("HASTACK_TEST_SURELY_UNSET_VAR is not set"),
            "{e}"
        );
        std::fs::write(&path, "__CHANGE_ME__\n").unwrap();
        let e =
            serde_yaml::from_str::<Secret>(&format!("{{file: {}}}", path.display())).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "the password file {} still holds the packaged placeholder __CHANGE_ME__",
                path.display()
            )),
            "{e}"
        );
        let e = serde_yaml::from_str::<Secret>("{file: a, env: B}").unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
    }
}
