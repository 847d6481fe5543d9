//! Durations as users write them in configs: `250ms`, `2s`, `1m`, `1h30m`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A `std::time::Duration` that reads and writes the human form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// The message every bad duration gets, wherever it is in a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a duration like \"2s\", \"250ms\" or \"1m\", got {0:?}")]
pub struct BadDuration(pub String);

impl FromStr for Duration {
    type Err = BadDuration;

    fn from_str(s: &str) -> Result<Self, BadDuration> {
        // humantime accepts "2 s" and bare "0"; we want one unambiguous form,
        // and a bare number is the classic mistake (seconds? milliseconds?).
        let t = s.trim();
        if t.is_empty() || t.contains(' ') || t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadDuration(s.to_owned()));
        }
        humantime::parse_duration(t)
            .map(Duration)
            .map_err(|_| BadDuration(s.to_owned()))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"2s\", \"250ms\" or \"1m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(BadDuration(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(BadDuration(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(BadDuration(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("250ms".parse(), Ok(Duration::from_millis(250)));
        assert_eq!("2s".parse(), Ok(Duration::from_secs(2)));
        assert_eq!("1m".parse(), Ok(Duration::from_secs(60)));
        assert_eq!("1h30m".parse(), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        for bad in ["fast", "", "2", "2 s", "-1s", "1.5.s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "fast".parse::<Duration>().unwrap_err().to_string(),
            r#"expected a duration like "2s", "250ms" or "1m", got "fast""#
        );
    }

    #[test]
    fn displays_back_in_the_same_form() {
        assert_eq!(Duration::from_millis(1500).to_string(), "1s 500ms");
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
    }
}
