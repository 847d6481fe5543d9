//! The probes an `http_check` service runs: `mysql` (connect, log in, run
//! a query: proves the proxy can serve), `tcp` (connect), `http` (a 2xx from
//! a URL, e.g. sqlproxyd's admin `/status`) and `exec` (exit status 0).
//! Each is bounded by its timeout; what it found is a one-line detail.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use hastack_proto::mysql::client::{auth_switch_answer, handshake_response, Credentials};
use hastack_proto::mysql::codec::PacketCodec;
use hastack_proto::mysql::packets::{parse_reply, Capabilities, Handshake, Reply as Parsed};
use hastack_proto::mysql::response::{Expect, Reply, Step};
use hastack_proto::mysql::rows::decode_rows;
use hastack_proto::mysql::Packet;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

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
    let mut wire = mysql_login(p.address, p.user.as_str(), p.password.expose()).await?;
    let rows = query(&mut wire, &p.query).await?;
    if p.fail_when_read_only {
        let ro = query(&mut wire, "SELECT @@read_only").await?;
        if ro.get(0, "@@read_only") != Some("0") {
            bail!("the server is read-only (fail_when_read_only)");
        }
    }
    // A clean goodbye: COM_QUIT.
    let _ = wire.send(Packet::new(0, vec![0x01])).await;
    Ok(match rows.scalar() {
        Some(v) => format!("ok, answered {}", v.chars().take(40).collect::<String>()),
        None => "ok".into(),
    })
}

type Wire = Framed<TcpStream, PacketCodec>;

async fn mysql_login(addr: SocketAddr, user: &str, password: &str) -> Result<Wire> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let mut wire = Framed::new(stream, PacketCodec::default());
    let greeting = next(&mut wire)
        .await
        .context("reading the server greeting")?;
    if greeting.payload.first() == Some(&0xFF) {
        if let Ok(Parsed::Err(e)) = parse_reply(&greeting.payload) {
            bail!("the server refused the connection: {e}");
        }
    }
    let hs = Handshake::parse(&greeting.payload)?;
    let credentials = Credentials {
        user,
        password,
        database: None,
        capabilities: Capabilities::CLIENT_PROTOCOL_41
            | Capabilities::CLIENT_SECURE_CONNECTION
            | Capabilities::CLIENT_PLUGIN_AUTH
            | Capabilities::CLIENT_LONG_PASSWORD
            | Capabilities::CLIENT_TRANSACTIONS,
        collation: 45,
    };
    wire.send(Packet::new(
        greeting.seq.wrapping_add(1),
        handshake_response(&hs, &credentials),
    ))
    .await?;
    let mut reply = next(&mut wire).await?;
    if reply.payload.first() == Some(&0xFE) {
        let answer = auth_switch_answer(&reply.payload, password)?;
        wire.send(Packet::new(reply.seq.wrapping_add(1), answer))
            .await?;
        reply = next(&mut wire).await?;
    }
    match parse_reply(&reply.payload)? {
        Parsed::Ok { .. } => Ok(wire),
        Parsed::Err(e) => bail!("login as {user}: {e}"),
        Parsed::Other(b) => bail!("login as {user}: unexpected reply 0x{b:02x}"),
    }
}

async fn query(wire: &mut Wire, sql: &str) -> Result<hastack_proto::mysql::rows::Rows> {
    let mut payload = vec![0x03];
    payload.extend_from_slice(sql.as_bytes());
    wire.send(Packet::new(0, payload)).await?;
    let mut reply = Reply::new(Expect::ResultSets);
    let mut payloads = Vec::new();
    loop {
        let p = next(wire).await?;
        let step = reply.step(&p.payload)?;
        // Bounded: a probe query's answer is small; the rest is read past.
        if payloads.len() < 1000 {
            payloads.push(p.payload);
        }
        match step {
            Step::More => {}
            Step::Done { .. } => break,
            Step::LocalInfile => bail!("{sql:?} asked for a local file"),
        }
    }
    decode_rows(&payloads).with_context(|| sql.to_owned())
}

async fn next(wire: &mut Wire) -> Result<Packet> {
    match wire.next().await {
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => Err(e.into()),
        None => bail!("connection closed by the server"),
    }
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
