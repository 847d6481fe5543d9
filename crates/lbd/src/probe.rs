//! The health checks themselves, one attempt each, bounded by the check
//! timeout: `tcp` (a connect), `http` (HAProxy's `option httpchk`: a
//! request, a status judged against `expect_status`/`expect_rstatus`, the
//! body read as checkd's health contract says) and `mysql` (a real login,
//! an optional query, COM_QUIT). An attempt gives `Ok(detail)` or
//! `Err(reason)` for [`crate::health::Check::observe`]; both are short
//! and meant for logs and the stats page.
//!
//! The HTTP exchange is written here (HTTP/1.1, `Connection: close`) so
//! that whatever comes back — garbage, a huge head, no end — is a bounded,
//! worded failure: [`parse_response`] and [`judge`] are pure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hastack_proto::health::Health;
use hastack_proto::mysql::client::Policy;
use hastack_proto::mysql::conn::{self, io_reason};
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{CheckKind, CheckTarget, CheckType};

/// The most of a response head read before giving up on it.
pub const MAX_HEAD: usize = 8 << 10;
/// The most of a body read: enough for checkd's one-line reason.
pub const MAX_BODY: usize = 4 << 10;

/// Runs one check of `target`. Builds a [`Prober`] each time; a caller
/// checking the same target repeatedly keeps one instead.
pub async fn run(target: &CheckTarget) -> Result<String, String> {
    Prober::new(target)?.run().await
}

/// One server's check, ready to run again and again (the regex compiled,
/// the request written once).
#[derive(Clone, Debug)]
pub struct Prober {
    target: CheckTarget,
    expect: Expect,
    /// http: the request bytes.
    request: Vec<u8>,
    head_only: bool,
}

/// Which HTTP statuses mean UP.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Any of these; when empty, `rstatus` decides.
    pub statuses: Vec<u16>,
    /// The status code as text must match; when unset too, 2xx and 3xx pass.
    pub rstatus: Option<Regex>,
}

impl Expect {
    pub fn from_kind(kind: &CheckKind) -> Result<Expect, String> {
        let rstatus = match &kind.expect_rstatus {
            Some(r) => Some(Regex::new(r).map_err(|e| format!("expect_rstatus {r:?}: {e}"))?),
            None => None,
        };
        Ok(Expect {
            statuses: kind.expect_status.clone(),
            rstatus,
        })
    }

    fn passes(&self, status: u16) -> bool {
        if !self.statuses.is_empty() {
            self.statuses.contains(&status)
        } else if let Some(r) = &self.rstatus {
            r.is_match(&status.to_string())
        } else {
            (200..400).contains(&status)
        }
    }

    /// What was expected, for a failure's reason; `None` for the default.
    fn describe(&self) -> Option<String> {
        if !self.statuses.is_empty() {
            let list: Vec<String> = self.statuses.iter().map(u16::to_string).collect();
            Some(format!("expected {}", list.join(" or ")))
        } else {
            self.rstatus
                .as_ref()
                .map(|r| format!("expected a status matching {}", r.as_str()))
        }
    }
}

impl Prober {
    /// Fails only on what config validation refuses too (a bad regex, a
    /// method, URI or Host that would break the request line).
    pub fn new(target: &CheckTarget) -> Result<Prober, String> {
        let kind = &target.kind;
        let expect = Expect::from_kind(kind)?;
        let method = kind.method.as_deref().unwrap_or("GET");
        let uri = kind.uri.as_deref().unwrap_or("/");
        let host = match &kind.host {
            Some(h) => h.clone(),
            None => target.address.to_string(),
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("HTTP method {method:?} is not a method"));
        }
        let bad = |s: &str| {
            s.is_empty()
                || s.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        };
        if bad(uri) || bad(&host) {
            return Err(format!(
                "HTTP check URI {uri:?} or Host {host:?} has spaces or control characters"
            ));
        }
        let request = format!(
            "{method} {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lbd-check\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        Ok(Prober {
            target: target.clone(),
            expect,
            request,
            head_only: method.eq_ignore_ascii_case("HEAD"),
        })
    }

    pub fn target(&self) -> &CheckTarget {
        &self.target
    }

    /// One attempt, within the check timeout.
    pub async fn run(&self) -> Result<String, String> {
        let t = self.target.timeout;
        let addr = self.target.address;
        let work = async {
            match self.target.kind.kind {
                CheckType::Tcp => tcp(addr).await,
                CheckType::Http => self.http().await,
                CheckType::Mysql => mysql(addr, &self.target.kind, t).await,
            }
        };
        match tokio::time::timeout(t, work).await {
            Ok(found) => found,
            Err(_) => Err(match self.target.kind.kind {
                CheckType::Tcp => format!("connect {addr}: no answer within {t:?}"),
                CheckType::Http => format!("no HTTP answer from {addr} within {t:?}"),
                CheckType::Mysql => format!("no MySQL answer from {addr} within {t:?}"),
            }),
        }
    }

    async fn http(&self) -> Result<String, String> {
        let addr = self.target.address;
        let mut stream = connect(addr).await?;
        stream.write_all(&self.request).await.map_err(|e| {
            refused_before_status(addr, Some(&e))
                .unwrap_or_else(|| format!("sending the request to {addr}: {}", io_reason(&e)))
        })?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| {
                buf.is_empty()
                    .then(|| refused_before_status(addr, Some(&e)))
                    .flatten()
                    .unwrap_or_else(|| format!("reading the answer from {addr}: {}", io_reason(&e)))
            })?;
            if n == 0 && buf.is_empty() {
                if let Some(why) = refused_before_status(addr, None) {
                    return Err(why);
                }
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(answer) = parse_response(&buf, n == 0, self.head_only)? {
                return judge(answer.status, &answer.body, &self.expect);
            }
        }
    }
}

/// The reason of an HTTP check whose connection was accepted and then
/// reset (`error`) or closed (`None`) before a byte of an answer: what
/// checkd and xinetd do to a peer their cps pause, instances or per_source
/// limit or only_from refuses. Said in so many words, so that a DOWN caused
/// by a paused checkd is not taken for a dead proxy; it is still a failed
/// check, as in HAProxy. `None` for other errors (they keep their wording).
pub fn refused_before_status(addr: SocketAddr, error: Option<&std::io::Error>) -> Option<String> {
    use std::io::ErrorKind as K;
    let how = match error.map(std::io::Error::kind) {
        None => "connection closed",
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) => "connection reset",
        Some(_) => return None,
    };
    Some(format!(
        "check refused: {how} by {addr} before an HTTP status \
         (checkd's cps pause, instances or per_source limit, or only_from?)"
    ))
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {}", io_reason(&e)))
}

async fn tcp(addr: SocketAddr) -> Result<String, String> {
    let start = Instant::now();
    let _stream = connect(addr).await?;
    Ok(format!(
        "connected in {}",
        ms(Instant::now().saturating_duration_since(start))
    ))
}

async fn mysql(addr: SocketAddr, kind: &CheckKind, timeout: Duration) -> Result<String, String> {
    let start = Instant::now();
    let user = kind.user.as_deref().unwrap_or_default();
    let password = kind.password.as_ref().map_or("", |p| p.expose());
    let policy = Policy {
        allow_public_key_retrieval: kind.allow_public_key_retrieval,
    };
    let mut conn = conn::login(addr, user, password, policy, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let version = conn.server_version();
    let version = version.strip_prefix("5.5.5-").unwrap_or(version).to_owned();
    let mut detail = format!("logged in as {user} to {version}");
    if let Some(q) = &kind.query {
        let rows = conn.query(q).await.map_err(|e| e.to_string())?;
        detail.push_str(&match rows.scalar() {
            Some(v) => format!(", {q} answered {}", v.chars().take(40).collect::<String>()),
            None => format!(", {q} ok"),
        });
    }
    conn.quit().await;
    Ok(format!(
        "{detail} in {}",
        ms(Instant::now().saturating_duration_since(start))
    ))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// An HTTP answer as far as a check reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The body, at most [`MAX_BODY`] bytes of it (de-chunked).
    pub body: Vec<u8>,
}

/// Reads what a server sent so far (`eof`: and then closed). `Ok(None)`:
/// read more. A final answer once the head and enough of the body (all of
/// it, or [`MAX_BODY`]) are in; interim 1xx answers are skipped. Anything
/// not HTTP, a head over [`MAX_HEAD`] or a close before the head ends is
/// an error worded for the log.
pub fn parse_response(buf: &[u8], eof: bool, head_only: bool) -> Result<Option<Answer>, String> {
    let mut buf = buf;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > MAX_HEAD {
                    Err(format!("an HTTP response head over {} KiB", MAX_HEAD >> 10))
                } else if eof && buf.is_empty() {
                    Err("the server closed the connection without answering".into())
                } else if eof {
                    Err(format!(
                        "the server closed the connection mid-answer: {}",
                        first_line(buf)
                    ))
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(format!("not an HTTP response ({e}): {}", first_line(buf))),
        };
        if head_len > MAX_HEAD {
            return Err(format!("an HTTP response head over {} KiB", MAX_HEAD >> 10));
        }
        let status = resp.code.unwrap_or(0);
        let rest = buf.get(head_len..).unwrap_or_default();
        if (100..200).contains(&status) && status != 101 {
            buf = rest;
            continue;
        }
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(Some(Answer {
                status,
                body: Vec::new(),
            }));
        }
        let header = |name: &str| {
            resp.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                .next_back()
        };
        let body = if header("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
            let (body, complete) = dechunk(rest)?;
            // Tiny chunks: past a bound of raw bytes, what is decoded will do.
            (complete || eof || rest.len() > 4 * MAX_BODY).then_some(body)
        } else if let Some(cl) = header("content-length") {
            let cl: usize = cl
                .parse()
                .map_err(|_| format!("a bad Content-Length {cl:?} in the HTTP response"))?;
            let want = cl.min(MAX_BODY);
            (rest.len() >= want || eof).then(|| rest[..want.min(rest.len())].to_vec())
        } else {
            // Delimited by the close.
            (eof || rest.len() >= MAX_BODY).then(|| rest[..rest.len().min(MAX_BODY)].to_vec())
        };
        return Ok(body.map(|body| Answer { status, body }));
    }
}

/// A chunked body: as much of it as is in (at most [`MAX_BODY`]), and
/// whether that is all of it or enough.
fn dechunk(mut raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut out = Vec::new();
    loop {
        if out.len() >= MAX_BODY {
            out.truncate(MAX_BODY);
            return Ok((out, true));
        }
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            if raw.len() > 1024 {
                return Err("a chunk-size line over 1 KiB in the HTTP response".into());
            }
            return Ok((out, false));
        };
        let line = String::from_utf8_lossy(&raw[..eol]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| format!("a bad chunk size {size:?} in the HTTP response"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok((out, true));
        }
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if raw.len() < size.saturating_add(2) {
            return Ok((out, false));
        }
        raw = &raw[size + 2..];
    }
}

/// The start of what a server sent, printable, for an error.
fn first_line(buf: &[u8]) -> String {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let short: String = text.trim_end().chars().take(60).collect();
    format!("{:?}", short)
}

/// HAProxy's httpchk verdict on `status`, with checkd's body read as the
/// health contract says ([`Health::from_response`]):
/// `Err("503: DOWN mycat_status: mysql …: connect: connection refused")`.
pub fn judge(status: u16, body: &[u8], expect: &Expect) -> Result<String, String> {
    let (_, reason) = Health::from_response(status, body);
    let mut text = if reason == format!("HTTP {status}") {
        reason
    } else {
        format!("{status}: {reason}")
    };
    if expect.passes(status) {
        Ok(text)
    } else {
        if let Some(wanted) = expect.describe() {
            text = format!("{text} ({wanted})");
        }
        Err(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(statuses: &[u16], r: Option<&str>) -> Expect {
        Expect {
            statuses: statuses.to_vec(),
            rstatus: r.map(|r| Regex::new(r).unwrap()),
        }
    }

    #[test]
    fn the_default_is_2xx_or_3xx() {
        let d = Expect::default();
        assert_eq!(judge(200, b"", &d), Ok("HTTP 200".into()));
        assert_eq!(judge(302, b"", &d), Ok("HTTP 302".into()));
        assert_eq!(judge(404, b"", &d), Err("HTTP 404".into()));
        assert_eq!(judge(199, b"", &d), Err("HTTP 199".into()));
        assert_eq!(judge(500, b"", &d), Err("HTTP 500".into()));
    }

    #[test]
    fn checkds_body_is_the_reason() {
        let d = Expect::default();
        assert_eq!(
            judge(503, b"sqlproxyd down: connect refused\n", &d),
            Err("503: sqlproxyd down: connect refused".into())
        );
        let body = b"DOWN mycat_status: mysql 127.0.0.1:8066 SELECT 1: connect: connection refused (1.2 ms)\n";
        assert_eq!(
            judge(503, body, &d),
            Err("503: DOWN mycat_status: mysql 127.0.0.1:8066 SELECT 1: connect: connection refused (1.2 ms)".into())
        );
        let json = br#"{"up":true,"service":"s","check":"mysql 127.0.0.1:8066 SELECT 1","detail":"ok","took_ms":1.0}"#;
        assert_eq!(
            judge(200, json, &d),
            Ok("200: mysql 127.0.0.1:8066 SELECT 1: ok".into())
        );
    }

    #[test]
    fn expect_status_then_rstatus() {
        let only_200 = expect(&[200], None);
        assert!(judge(200, b"", &only_200).is_ok());
        assert_eq!(
            judge(204, b"", &only_200),
            Err("HTTP 204 (expected 200)".into())
        );
        let two = expect(&[200, 503], None);
        assert!(judge(503, b"maintenance", &two).is_ok());
        assert_eq!(
            judge(404, b"nope", &two),
            Err("404: nope (expected 200 or 503)".into())
        );
        let r = expect(&[], Some("^(200|204)$"));
        assert!(judge(204, b"", &r).is_ok());
        assert_eq!(
            judge(302, b"", &r),
            Err("HTTP 302 (expected a status matching ^(200|204)$)".into())
        );
        // A regex may let a 5xx count as up.
        assert!(judge(503, b"", &expect(&[], Some("^5"))).is_ok());
    }

    fn done(buf: &[u8]) -> Answer {
        parse_response(buf, true, false).unwrap().unwrap()
    }

    #[test]
    fn responses_are_read_to_their_end_or_the_bound() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(r, false, false),
            Ok(Some(Answer {
                status: 503,
                body: b"hello".to_vec()
            }))
        );
        // Not all of it yet: read more; the close ends it anyway.
        assert_eq!(parse_response(&r[..r.len() - 2], false, false), Ok(None));
        assert_eq!(done(&r[..r.len() - 2]).body, b"hel");
        assert_eq!(parse_response(&r[..10], false, false), Ok(None));
        // Close-delimited.
        let r = b"HTTP/1.0 200 OK\r\n\r\nup";
        assert_eq!(parse_response(r, false, false), Ok(None));
        assert_eq!(done(r).body, b"up");
        // Chunked.
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(r, false, false).unwrap().unwrap().body,
            b"abcde"
        );
        assert_eq!(parse_response(&r[..r.len() - 12], false, false), Ok(None));
        // HEAD and 204: no body to wait for; 100 Continue skipped.
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
        assert_eq!(parse_response(r, false, true).unwrap().unwrap().status, 200);
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            parse_response(r, false, false).unwrap().unwrap().status,
            204
        );
        // A big body: MAX_BODY of it.
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'x', MAX_BODY + 10));
        assert_eq!(
            parse_response(&r, false, false)
                .unwrap()
                .unwrap()
                .body
                .len(),
            MAX_BODY
        );
    }

    #[test]
    fn garbage_is_a_worded_error() {
        let e = parse_response(b"SSH-2.0-OpenSSH_9.2\r\n", false, false).unwrap_err();
        assert!(e.starts_with("not an HTTP response"), "{e}");
        assert!(e.contains("SSH-2.0-OpenSSH_9.2"), "{e}");
        assert_eq!(
            parse_response(b"", true, false).unwrap_err(),
            "the server closed the connection without answering"
        );
        let e = parse_response(b"HTTP/1.1 200 OK\r\nX: y", true, false).unwrap_err();
        assert!(e.contains("mid-answer"), "{e}");
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        while huge.len() <= MAX_HEAD {
            huge.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let e = parse_response(&huge, false, false).unwrap_err();
        assert!(
            e.contains("over 8 KiB")
                || e.contains("TooManyHeaders")
                || e.contains("too many headers"),
            "{e}"
        );
        let e = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
            false,
            false,
        )
        .unwrap_err();
        assert!(e.contains("Content-Length"), "{e}");
        let e = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            false,
        )
        .unwrap_err();
        assert!(e.contains("chunk size"), "{e}");
    }

    #[test]
    fn a_connection_ended_before_a_status_is_a_refused_check_saying_so() {
        use std::io::{Error, ErrorKind};
        let addr = SocketAddr::from(([10, 99, 0, 11], 48700));
        let closed = refused_before_status(addr, None).unwrap();
        assert_eq!(
            closed,
            "check refused: connection closed by 10.99.0.11:48700 before an HTTP status \
             (checkd's cps pause, instances or per_source limit, or only_from?)"
        );
        for kind in [
            ErrorKind::ConnectionReset,
            ErrorKind::BrokenPipe,
            ErrorKind::ConnectionAborted,
        ] {
            let why = refused_before_status(addr, Some(&Error::from(kind))).unwrap();
            assert!(
                why.starts_with(
                    "check refused: connection reset by 10.99.0.11:48700 before an HTTP status"
                ),
                "{why}"
            );
        }
        assert_eq!(
            refused_before_status(addr, Some(&Error::from(ErrorKind::TimedOut))),
            None
        );
        // Still a failed check, and the stats' code is what it was for
        // these (Layer7 invalid response): only the words are new.
        let outcome = crate::health::Outcome {
            passed: false,
            detail: closed,
        };
        assert_eq!(
            crate::stats::check_code(CheckType::Http, &outcome),
            crate::stats::CheckCode::L7Rsp
        );
    }

    #[test]
    fn a_prober_refuses_what_would_break_the_request() {
        let mut t = CheckTarget {
            address: SocketAddr::from(([127, 0, 0, 1], 48700)),
            kind: CheckKind {
                kind: CheckType::Http,
                ..CheckKind::default()
            },
            timeout: Duration::from_secs(1),
        };
        let p = Prober::new(&t).unwrap();
        assert_eq!(
            String::from_utf8(p.request.clone()).unwrap(),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:48700\r\nUser-Agent: lbd-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        t.kind.host = Some("db\r\nX: y".into());
        assert!(Prober::new(&t).is_err());
        t.kind.host = None;
        t.kind.expect_rstatus = Some("(".into());
        assert!(Prober::new(&t).unwrap_err().contains("expect_rstatus"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            eof in proptest::prelude::any::<bool>(),
        ) {
            if let Ok(Some(a)) = parse_response(&bytes, eof, false) {
                proptest::prop_assert!(a.body.len() <= MAX_BODY);
            }
        }
    }
}
