//! sqlproxyd in front of a `MariaDbCluster`: the config and the client
//! connections the sqlproxyd tests share.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use mysql::{Conn, OptsBuilder};

use crate::ports::free_port;
use crate::{DaemonProcess, MariaDbCluster};

/// A running sqlproxyd and the addresses it serves.
pub struct Proxy {
    pub daemon: DaemonProcess,
    pub addr: SocketAddr,
    /// The MySQL-protocol admin port (`admin_listen`).
    pub admin: SocketAddr,
}

/// The lab's users, the admin port's `dba` (level admin) and `watcher`
/// (level monitor), passwords their names, and one data host over every node of `cluster`
/// (node 0 write, the others read), with `balance`, extra data-host keys
/// and extra top-level keys.
pub fn config(
    cluster: &MariaDbCluster,
    listen: SocketAddr,
    admin_http: SocketAddr,
    admin: SocketAddr,
    balance: &str,
    extra: &str,
    top: &str,
) -> String {
    let nodes: String = (0..cluster.len())
        .map(|i| {
            let role = if i == 0 { "write" } else { "read" };
            format!(
                "      - {{name: db-{}, address: {}, role: {role}}}\n",
                i + 1,
                cluster.addr(i)
            )
        })
        .collect();
    // Never the system's /var/lib/sqlproxyd: a directory per proxy port.
    let state_dir = if top.contains("state_dir:") {
        String::new()
    } else {
        format!("state_dir: {}\n", state_dir_for(listen).display())
    };
    // Defaults a test may replace through `extra`.
    let heartbeat = if extra.contains("heartbeat:") {
        ""
    } else {
        "    heartbeat: {interval: 300ms, timeout: 2s, user: monitor, password: monitor}\n"
    };
    // No pre-warmed connections unless a test asks: counts stay exact.
    let pool = if extra.contains("pool:") {
        ""
    } else {
        "    pool: {min: 0, max: 64}\n"
    };
    let failover = if extra.contains("failover:") {
        ""
    } else {
        "    failover: {replication_user: repl, replication_password: repl}\n"
    };
    // Actions take the test token (`http_post` sends it).
    let auth = crate::daemon::admin_auth_yaml();
    format!(
        "{top}{state_dir}admin_http:\n  listen: {admin_http}\n{auth}shutdown_grace: 2s\nlisten: {listen}\nadmin_listen: {admin}\n\
         users:\n  - {{name: app, password: app, schemas: [app, sbtest]}}\n  - {{name: reader, password: reader, schemas: [app], read_only: true}}\n\
         admin_users:\n  - {{name: dba, password: dba, level: admin}}\n  - {{name: watcher, password: watcher, level: monitor}}\n\
         data_hosts:\n  - name: dh1\n    balance: {balance}\n    user: app\n    password: app\n{heartbeat}{failover}{pool}{extra}    nodes:\n{nodes}\
         schemas:\n  - {{name: app, data_host: dh1}}\n  - {{name: sbtest, data_host: dh1}}\n",
    )
}

/// A client connection (the `mysql` crate) to `addr`, over TCP, with the
/// server's own error on failure.
pub fn connect(
    addr: SocketAddr,
    user: &str,
    password: &str,
    db: Option<&str>,
) -> mysql::Result<Conn> {
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(addr.ip().to_string()))
        .tcp_port(addr.port())
        .user(Some(user))
        .pass(Some(password))
        .db_name(db)
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(5)));
    Conn::new(opts)
}

/// The `state_dir` [`config`] gives the proxy listening on `listen`.
pub fn state_dir_for(listen: SocketAddr) -> std::path::PathBuf {
    std::env::temp_dir()
        .join("hs-sqlproxyd-state")
        .join(listen.port().to_string())
}

impl Proxy {
    pub fn start(cluster: &MariaDbCluster, balance: &str, extra: &str) -> Result<Proxy> {
        Self::start_with(cluster, balance, extra, "")
    }

    /// As [`Proxy::start`], with extra top-level config keys.
    pub fn start_with(
        cluster: &MariaDbCluster,
        balance: &str,
        extra: &str,
        top: &str,
    ) -> Result<Proxy> {
        let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (addr, http, admin) = (port(), port(), port());
        // A stale index from an earlier run on this port must not count.
        let _ = std::fs::remove_dir_all(state_dir_for(addr));
        let daemon = DaemonProcess::start(
            "sqlproxyd",
            &config(cluster, addr, http, admin, balance, extra, top),
            http,
        )?;
        Ok(Proxy {
            daemon,
            addr,
            admin,
        })
    }

    /// A client connection through the proxy.
    pub fn conn(&self, user: &str, password: &str, db: Option<&str>) -> Result<Conn> {
        connect(self.addr, user, password, db)
            .with_context(|| format!("connecting to sqlproxyd at {} as {user}", self.addr))
    }
}

impl Proxy {
    /// A connection to the MySQL-protocol admin port as `dba` (level admin).
    pub fn admin_conn(&self) -> Result<Conn> {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(self.admin.ip().to_string()))
            .tcp_port(self.admin.port())
            .user(Some("dba"))
            .pass(Some("dba"))
            .prefer_socket(false);
        Conn::new(opts).with_context(|| format!("connecting to the admin port {}", self.admin))
    }
}

/// A client speaking raw MySQL packets, for tests that send what no client
/// library would, or that must not run the queries libraries run at connect.
pub struct RawClient(pub std::net::TcpStream);

impl RawClient {
    /// Connects and logs in (mysql_native_password) without running anything.
    pub fn login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<RawClient> {
        Self::login_after(addr, &[], user, password, db)
    }

    /// Sends `preamble` (a PROXY protocol header, say) first, then logs in.
    pub fn login_after(
        addr: SocketAddr,
        preamble: &[u8],
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<RawClient> {
        let none = hastack_proto::mysql::packets::Capabilities::empty();
        Self::login_full(addr, preamble, user, password, db, none)
    }

    /// Logs in asking for `extra` capabilities too (CLIENT_MULTI_STATEMENTS, say).
    pub fn login_full(
        addr: SocketAddr,
        preamble: &[u8],
        user: &str,
        password: &str,
        db: Option<&str>,
        extra: hastack_proto::mysql::packets::Capabilities,
    ) -> Result<RawClient> {
        use hastack_proto::mysql::packets::{Capabilities, Handshake};
        use mysql_common::packets::{AuthPlugin, HandshakeResponse};
        use mysql_common::proto::MySerialize;
        use mysql_common::scramble::scramble_native;

        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        std::io::Write::write_all(&mut stream, preamble)?;
        let mut raw = RawClient(stream);
        let (_, hello) = raw.read()?;
        let hs = Handshake::parse(&hello)?;
        let caps = Capabilities::CLIENT_PROTOCOL_41
            | Capabilities::CLIENT_SECURE_CONNECTION
            | Capabilities::CLIENT_PLUGIN_AUTH
            | extra;
        let answer = scramble_native(&hs.scramble, password.as_bytes())
            .map(|a| a.to_vec())
            .unwrap_or_default();
        let resp = HandshakeResponse::new(
            Some(answer),
            (10, 11, 0),
            Some(user.as_bytes()),
            db.map(str::as_bytes),
            Some(AuthPlugin::MysqlNativePassword),
            caps,
            None,
            1 << 24,
        );
        let mut buf = Vec::new();
        resp.serialize(&mut buf);
        raw.write(1, &buf)?;
        let (_, ok) = raw.read()?;
        match hastack_proto::mysql::packets::parse_reply(&ok)? {
            hastack_proto::mysql::packets::Reply::Ok { .. } => {}
            hastack_proto::mysql::packets::Reply::Err(e) => anyhow::bail!("login refused: {e}"),
            other => anyhow::bail!("unexpected login reply {other:?}"),
        }
        Ok(raw)
    }

    pub fn write(&mut self, seq: u8, payload: &[u8]) -> Result<()> {
        use std::io::Write;
        let len = (payload.len() as u32).to_le_bytes();
        self.0.write_all(&[len[0], len[1], len[2], seq])?;
        self.0.write_all(payload)?;
        Ok(())
    }

    /// Whether the server closes the connection (EOF or reset within the
    /// read timeout), whatever it sent before.
    pub fn closed(&mut self) -> bool {
        use std::io::Read;
        let mut b = [0u8; 4096];
        loop {
            match self.0.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
    }

    pub fn read(&mut self) -> Result<(u8, Vec<u8>)> {
        use std::io::Read;
        let mut h = [0u8; 4];
        self.0.read_exact(&mut h)?;
        let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        let mut p = vec![0; len];
        self.0.read_exact(&mut p)?;
        Ok((h[3], p))
    }
}

/// The `mariadb` CLI, connected over TCP to `addr` as `user`/`password`;
/// add options and the database with `.args(...)`.
pub fn mariadb_cli(addr: SocketAddr, user: &str, password: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("mariadb");
    cmd.arg("--protocol=TCP")
        .arg(format!("-h{}", addr.ip()))
        .arg(format!("-P{}", addr.port()))
        .arg(format!("-u{user}"))
        .arg(format!("-p{password}"));
    cmd
}

/// A self-signed certificate and key for 127.0.0.1, made with openssl in
/// `dir`, for a `tls` section.
pub fn self_signed_cert(dir: &std::path::Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((cert, key))
}
