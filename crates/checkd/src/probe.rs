//! The probes an `http_check` service runs: `mysql` (connect, log in, run
//! a query: proves the proxy can serve), `tcp` (connect), `http` (a 2xx from
//! a URL, e.g. sqlproxyd's admin `/status`) and `exec` (exit status 0).
//! Each is bounded by its timeout; what it found is a one-line detail.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hastack_proto::mysql::conn;
use tokio::net::TcpStream;

use crate::config::{ExecProbe, HttpProbe, MysqlProbe, Probe, TcpProbe};

/// What a probe found: up or not, and the detail for the body.
pub type Found = std::result::Result<String, String>;

impl Probe {
    /// What the probe checks, for the health body: `mysql 127.0.0.1:8066 SELECT 1`.
    pub fn describe(&self) -> String {
        if let Some(m) = &self.mysql {
            format!("mysql {} {}", m.address, m.query)
        } else if let Some(t) = &self.tcp {
            format!("tcp {}", t.address)
        } else if let Some(h) = &self.http {
            format!("http {}", h.url)
        } else if let Some(e) = &self.exec {
            format!("exec {}", e.command.display())
        } else {
            "nothing".into()
        }
    }

    fn timeout(&self) -> Duration {
        let t = self
            .mysql
            .as_ref()
            .map(|m| m.timeout)
            .or(self.tcp.as_ref().map(|t| t.timeout))
            .or(self.http.as_ref().map(|h| h.timeout))
            .or(self.exec.as_ref().map(|e| e.timeout));
        t.map_or(Duration::from_secs(2), |t| t.get())
    }

    /// Runs the probe once, within its timeout.
    pub async fn run(&self) -> Found {
        let timeout = self.timeout();
        let work = async {
            if let Some(m) = &self.mysql {
                mysql(m).await
            } else if let Some(t) = &self.tcp {
                tcp(t).await
            } else if let Some(h) = &self.http {
                http(h).await
            } else if let Some(e) = &self.exec {
                exec(e).await
            } else {
                Err(anyhow!("no probe configured"))
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(detail)) => Ok(detail),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
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
        Ok(format!("HTTP {}", status.as_u16()))
    } else {
        bail!("HTTP {}", status.as_u16())
    }
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
