//! The health contract between checkd and the balancers that check it
//! (lbd's httpchk, HAProxy's `option httpchk`): a 200 means serve, a 503
//! means do not; the body says what was checked and, when down, why.
//!
//! Text body (default), one line:
//! `UP mycat_status: mysql 127.0.0.1:8066 SELECT 1: ok (1.2 ms)` or
//! `DOWN mycat_status: mysql 127.0.0.1:8066 SELECT 1: connect: Connection refused`.
//! JSON body (on `Accept: application/json`):
//! `{"up":false,"service":"...","check":"...","detail":"...","took_ms":1.2}`.

use serde::{Deserialize, Serialize};

/// One check's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub up: bool,
    /// The service that answered.
    pub service: String,
    /// What was checked: `mysql 127.0.0.1:8066 SELECT 1`.
    pub check: String,
    /// `ok`, or why not.
    pub detail: String,
    pub took_ms: f64,
}

impl Health {
    pub fn status_code(&self) -> u16 {
        if self.up {
            200
        } else {
            503
        }
    }

    pub fn text(&self) -> String {
        let state = if self.up { "UP" } else { "DOWN" };
        format!(
            "{state} {}: {}: {} ({:.1} ms)\n",
            self.service, self.check, self.detail, self.took_ms
        )
    }

    pub fn json(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"));
        s.push('\n');
        s
    }

    /// Reads a checker's answer: up is a 2xx (HAProxy's rule); the reason
    /// is the body's first line, or the status when the body says nothing.
    pub fn from_response(status: u16, body: &[u8]) -> (bool, String) {
        let up = (200..300).contains(&status);
        let text = String::from_utf8_lossy(body);
        let reason = match serde_json::from_str::<Health>(&text) {
            Ok(h) => format!("{}: {}", h.check, h.detail),
            Err(_) => text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        };
        let reason = if reason.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            reason
        };
        (up, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(up: bool) -> Health {
        Health {
            up,
            service: "mycat_status".into(),
            check: "mysql 127.0.0.1:8066 SELECT 1".into(),
            detail: if up {
                "ok".into()
            } else {
                "connect: Connection refused".into()
            },
            took_ms: 1.25,
        }
    }

    #[test]
    fn bodies_say_what_and_why() {
        assert_eq!(h(true).status_code(), 200);
        assert_eq!(h(false).status_code(), 503);
        assert_eq!(
            h(false).text(),
            "DOWN mycat_status: mysql 127.0.0.1:8066 SELECT 1: connect: Connection refused (1.2 ms)\n"
        );
        let back: Health = serde_json::from_str(&h(true).json()).unwrap();
        assert_eq!(back, h(true));
    }

    #[test]
    fn a_checker_reads_either_body_or_none() {
        assert_eq!(
            Health::from_response(503, h(false).text().as_bytes()),
            (false, "DOWN mycat_status: mysql 127.0.0.1:8066 SELECT 1: connect: Connection refused (1.2 ms)".into())
        );
        assert_eq!(
            Health::from_response(200, h(true).json().as_bytes()),
            (true, "mysql 127.0.0.1:8066 SELECT 1: ok".into())
        );
        assert_eq!(Health::from_response(204, b""), (true, "HTTP 204".into()));
        assert!(!Health::from_response(500, &[0xff, 0xfe]).0);
    }
}
