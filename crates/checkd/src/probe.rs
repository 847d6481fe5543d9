//! The probes an `http_check` service runs: `mysql` (connect, log in, run
//! a query: proves the proxy can serve), `tcp` (connect), `http` (a 2xx from
//! a URL, e.g. sqlproxyd's admin `/status`) and `exec` (exit status 0).
//! Each is bounded by its timeout; what it found is a one-line detail.
//! Several may be given: all must pass (sqlproxyd: `mysql` proves the SQL
//! port serves, `http` on its `/health` that it is not cut off from the
//! primary).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hastack_proto::mysql::client::Policy;
use hastack_proto::mysql::conn;
use tokio::net::TcpStream;

use crate::config::{ExecProbe, HttpProbe, MysqlProbe, Probe, TcpProbe};

/// What a probe found: up or not, and the detail for the body.
pub type Found = std::result::Result<String, String>;

impl Probe {
    /// What the probe checks, for the health body:
    /// `mysql 127.0.0.1:8066 SELECT 1 + http http://127.0.0.1:9166/health`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.mysql {
            parts.push(format!("mysql {} {}", m.address, m.query));
        }
        if let Some(t) = &self.tcp {
            parts.push(format!("tcp {}", t.address));
        }
        if let Some(h) = &self.http {
            parts.push(format!("http {}", h.url));
        }
        if let Some(e) = &self.exec {
            parts.push(format!("exec {}", e.command.display()));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(" + ")
        }
    }

    /// Runs each configured probe once, in turn, each within its timeout;
    /// up only if all are, and the first failure is the detail.
    pub async fn run(&self) -> Found {
        let mut found = Vec::new();
        if let Some(m) = &self.mysql {
            found.push(bounded("mysql", m.timeout.get(), mysql(m)).await?);
        }
        if let Some(t) = &self.tcp {
            found.push(bounded("tcp", t.timeout.get(), tcp(t)).await?);
        }
        if let Some(h) = &self.http {
            found.push(bounded("http", h.timeout.get(), http(h)).await?);
        }
        if let Some(e) = &self.exec {
            found.push(bounded("exec", e.timeout.get(), exec(e)).await?);
        }
        if found.is_empty() {
            return Err("no probe configured".into());
        }
        Ok(found.join("; "))
    }
}

/// Runs one probe within its timeout; a timeout names the probe, since
/// with several configured "no answer" alone would not say which hung.
async fn bounded(
    what: &str,
    timeout: Duration,
    work: impl std::future::Future<Output = Result<String>>,
) -> Found {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(detail)) => Ok(detail),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("{what} probe: no answer within {timeout:?}")),
    }
}

async fn tcp(p: &TcpProbe) -> Result<String> {
    TcpStream::connect(p.address)
        .await
        .with_context(|| format!("connect {}", p.address))?;
    Ok("connected".into())
}

async fn mysql(p: &MysqlProbe) -> Result<String> {
    // The whole probe is bounded by `run`'s timeout; login's own bound is
    // the same, so that its message names the step that hung.
    let mut conn = conn::login(
        p.address,
        p.user.as_str(),
        p.password.expose(),
        Policy {
            allow_public_key_retrieval: p.allow_public_key_retrieval,
        },
        p.timeout.get(),
    )
    .await?;
    let rows = conn.query(&p.query).await?;
    if p.fail_when_read_only {
        let ro = conn.query("SELECT @@read_only").await?;
        if ro.get(0, "@@read_only") != Some("0") {
            bail!("the server is read-only (fail_when_read_only)");
        }
    }
    conn.quit().await;
    Ok(match rows.scalar() {
        Some(v) => format!("ok, answered {}", v.chars().take(40).collect::<String>()),
        None => "ok".into(),
    })
}

async fn http(p: &HttpProbe) -> Result<String> {
    let uri: hyper::Uri = p.url.parse().with_context(|| format!("url {:?}", p.url))?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("url {:?} has no host", p.url))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connect {host}:{port}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(format!("HTTP {}", status.as_u16()));
    }
    // The body's first line says why (sqlproxyd's /health: "dh1: cut off: ...").
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let why: String = String::from_utf8_lossy(&body)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    if why.is_empty() {
        bail!("HTTP {}", status.as_u16())
    }
    bail!("HTTP {}: {why}", status.as_u16())
}

async fn exec(p: &ExecProbe) -> Result<String> {
    let out = tokio::process::Command::new(&p.command)
        .args(&p.args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", p.command.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    let said = said
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect::<String>();
    if out.status.success() {
        Ok(if said.is_empty() {
            "exit 0".into()
        } else {
            format!("exit 0: {said}")
        })
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err.lines().next().map(str::to_owned).unwrap_or(said);
        bail!("{}: {why}", out.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server answering every request with `response`, and its address.
    async fn serve(response: &'static str) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    fn probe(tcp: std::net::SocketAddr, http: std::net::SocketAddr) -> Probe {
        serde_json::from_value(serde_json::json!({
            "tcp": {"address": tcp.to_string()},
            "http": {"url": format!("http://{http}/health")},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn every_probe_given_must_pass() {
        let ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n").await;
        let cut = serve(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\n\r\ndh1: cut off: db-1 x\n",
        )
        .await;
        let both_up = probe(ok, ok);
        assert_eq!(both_up.run().await, Ok("connected; HTTP 200".to_owned()));
        assert_eq!(
            both_up.describe(),
            format!("tcp {ok} + http http://{ok}/health")
        );
        let http_down = probe(ok, cut);
        assert_eq!(
            http_down.run().await,
            Err("HTTP 503: dh1: cut off: db-1 x".to_owned())
        );
    }
}
