//! `MariaDbCluster`: N `mariadbd` processes (Debian's mariadb-server) in GTID
//! replication on free loopback ports, each with its own temporary datadir.
//!
//! Node 0 starts as the primary; the others replicate from it with
//! `MASTER_USE_GTID=slave_pos` and run `read_only=ON`. The users of
//! DESIGN.md §2 exist on every node: `app`, `app_ro` (SELECT and SHOW VIEW
//! on app and sbtest), `monitor`, `repl` (password = name). The fixture talks to each node as root over its unix socket, so
//! it keeps working while a test changes users, `read_only` or replication.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};
use nix::sys::signal::Signal;

use crate::ports::free_port;
use crate::process::{command_dying_with_parent, kill_and_reap, signal, tail, wait_timeout};
use crate::wait_for;

/// How long a node may take to accept connections after `mariadbd` starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The lab's users (DESIGN.md §2). The monitor account has exactly what
/// heartbeat, replication status and promotion need on MariaDB 10.11.
const USERS_SQL: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS app",
    "CREATE DATABASE IF NOT EXISTS sbtest",
    "CREATE USER 'app'@'%' IDENTIFIED BY 'app'",
    "GRANT ALL ON app.* TO 'app'@'%'",
    "GRANT ALL ON sbtest.* TO 'app'@'%'",
    "CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitor'",
    "GRANT SUPER, SLAVE MONITOR, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, BINLOG ADMIN, PROCESS, RELOAD ON *.* TO 'monitor'@'%'",
    // What sqlproxyd's read_only users may run as (read_only_user).
    "CREATE USER 'app_ro'@'%' IDENTIFIED BY 'app_ro'",
    "GRANT SELECT, SHOW VIEW ON app.* TO 'app_ro'@'%'",
    "GRANT SELECT, SHOW VIEW ON sbtest.* TO 'app_ro'@'%'",
    "CREATE USER 'repl'@'%' IDENTIFIED BY 'repl'",
    "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
];

/// One `mariadbd`.
pub struct Node {
    pub server_id: u32,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Each node its own: a starting server deletes stray `#sql*` files in
    /// its tmpdir, which would be another node's temporary tables.
    fn tmpdir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }
}

/// A running replication topology; every process is killed on drop.
pub struct MariaDbCluster {
    nodes: Vec<Node>,
    // Declared last: removed after the processes are gone.
    _dir: tempfile::TempDir,
}

impl MariaDbCluster {
    /// Starts `n` nodes: node 0 primary, the rest its replicas, users
    /// created and replicated, every replica caught up.
    pub fn start(n: usize) -> Result<Self> {
        anyhow::ensure!(n >= 1, "a cluster needs at least one node");
        let dir = tempfile::Builder::new()
            .prefix("hs-mdb-")
            .tempdir_in("/tmp")
            .context("creating the cluster's temp dir")?;
        let mut cluster = MariaDbCluster {
            nodes: Vec::new(),
            _dir: dir,
        };
        for i in 0..n {
            let node_dir = cluster._dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir)?;
            let node = Node {
                server_id: i as u32 + 1,
                port: 0,
                dir: node_dir,
                child: None,
            };
            install_datadir(&node)?;
            cluster.nodes.push(node);
            cluster.start_node(i)?;
        }
        let mut primary = cluster.conn(0)?;
        for sql in USERS_SQL {
            primary
                .query_drop(sql)
                .with_context(|| format!("on the primary: {sql}"))?;
        }
        for i in 1..n {
            cluster.replicate_from(i, 0)?;
        }
        cluster.wait_caught_up(Duration::from_secs(30))?;
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// `127.0.0.1:port` of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr()
    }

    /// A root connection to node `i` over its unix socket.
    pub fn conn(&self, i: usize) -> Result<Conn> {
        Conn::new(self.root_opts(i))
            .with_context(|| format!("connecting to node {i} ({}) as root", self.nodes[i].addr()))
    }

    /// How to reach node `i` as root over its socket.
    pub fn root_opts(&self, i: usize) -> mysql::Opts {
        OptsBuilder::new()
            .socket(Some(self.nodes[i].socket().to_string_lossy().into_owned()))
            .user(Some("root"))
            .tcp_connect_timeout(Some(Duration::from_secs(2)))
            .into()
    }

    /// A TCP connection to node `i` as `user`/`password`, as a client would.
    pub fn conn_as(&self, i: usize, user: &str, password: &str) -> Result<Conn> {
        let addr = self.addr(i);
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(addr.ip().to_string()))
            .tcp_port(addr.port())
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(2)));
        Conn::new(opts).with_context(|| format!("connecting to node {i} ({addr}) as {user}"))
    }

    /// Whether node `i` answers a query now.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
            && self
                .conn(i)
                .and_then(|mut c| Ok(c.query_drop("SELECT 1")?))
                .is_ok()
    }

    /// Makes node `i` a replica of node `primary` (GTID, slave_pos) and starts it.
    pub fn replicate_from(&self, i: usize, primary: usize) -> Result<()> {
        let mut c = self.conn(i)?;
        c.query_drop("STOP SLAVE")?;
        c.query_drop("SET GLOBAL read_only = ON")?;
        c.query_drop(format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
             MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            self.nodes[primary].port
        ))?;
        c.query_drop("START SLAVE")?;
        Ok(())
    }

    /// Waits until every running replica has applied the primary's binlog
    /// position (node 0 unless it is itself replicating).
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<()> {
        let primary = (0..self.len())
            .find(|&i| self.is_up(i) && self.replica_status(i).ok().flatten().is_none())
            .ok_or_else(|| anyhow!("no running node is a primary (all replicate or are down)"))?;
        let pos: String = self
            .conn(primary)?
            .query_first("SELECT @@gtid_binlog_pos")?
            .unwrap_or_default();
        for i in (0..self.len()).filter(|&i| i != primary && self.nodes[i].child.is_some()) {
            let waited: Option<i64> = self.conn(i)?.exec_first(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                (pos.as_str(), timeout.as_secs_f64()),
            )?;
            if waited != Some(0) {
                bail!(
                    "node {i} did not reach GTID {pos} of node {primary} within {timeout:?}: {:?}",
                    self.replica_status(i)
                );
            }
        }
        Ok(())
    }

    /// `SHOW SLAVE STATUS` of node `i` as (column, value) text pairs; `None`
    /// when the node replicates from nobody.
    pub fn replica_status(&self, i: usize) -> Result<Option<Vec<(String, String)>>> {
        let row: Option<mysql::Row> = self.conn(i)?.query_first("SHOW SLAVE STATUS")?;
        Ok(row.map(|row| {
            let cols = row.columns();
            (0..row.len())
                .map(|k| {
                    let v = match row.as_ref(k) {
                        Some(mysql::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                        Some(mysql::Value::NULL) | None => String::new(),
                        Some(other) => other.as_sql(true),
                    };
                    (cols[k].name_str().into_owned(), v)
                })
                .collect()
        }))
    }

    /// One field of `SHOW SLAVE STATUS` on node `i`.
    pub fn replica_field(&self, i: usize, field: &str) -> Result<Option<String>> {
        Ok(self
            .replica_status(i)?
            .and_then(|s| s.into_iter().find(|(k, _)| k == field).map(|(_, v)| v)))
    }

    pub fn stop_sql_thread(&self, i: usize) -> Result<()> {
        Ok(self.conn(i)?.query_drop("STOP SLAVE SQL_THREAD")?)
    }

    pub fn start_sql_thread(&self, i: usize) -> Result<()> {
        Ok(self.conn(i)?.query_drop("START SLAVE SQL_THREAD")?)
    }

    /// Turns on semi-synchronous replication: the primary waits for a
    /// replica's acknowledgement before a commit returns.
    pub fn enable_semi_sync(&self, primary: usize) -> Result<()> {
        let mut p = self.conn(primary)?;
        p.query_drop("SET GLOBAL rpl_semi_sync_master_enabled = ON")?;
        p.query_drop("SET GLOBAL rpl_semi_sync_master_timeout = 10000")?;
        for i in (0..self.len()).filter(|&i| i != primary && self.nodes[i].child.is_some()) {
            let mut c = self.conn(i)?;
            c.query_drop("SET GLOBAL rpl_semi_sync_slave_enabled = ON")?;
            // The IO thread reads the setting when it connects.
            c.query_drop("STOP SLAVE IO_THREAD")?;
            c.query_drop("START SLAVE IO_THREAD")?;
        }
        let ok = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            let clients: Option<(String, String)> = self
                .conn(primary)
                .ok()?
                .query_first("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
                .ok()?;
            clients.filter(|(_, v)| v.parse::<u32>().unwrap_or(0) >= 1)
        });
        ok.map(|_| ())
            .ok_or_else(|| anyhow!("no replica connected as a semi-sync client within 10s"))
    }

    /// SIGKILL node `i` (a crash: no clean shutdown, no goodbye to replicas).
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("node {i} is not running"))?;
        kill_and_reap(&mut child);
        Ok(())
    }

    /// SIGTERM node `i` and wait for a clean shutdown.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("node {i} is not running"))?;
        signal(&child, Signal::SIGTERM)?;
        if wait_timeout(&mut child, Duration::from_secs(60)).is_none() {
            kill_and_reap(&mut child);
            bail!("node {i} did not stop within 60s of SIGTERM; killed");
        }
        Ok(())
    }

    /// (Re)starts node `i` on its datadir and waits until it accepts
    /// connections. Replicas resume replication as configured before.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        anyhow::ensure!(self.nodes[i].child.is_none(), "node {i} is already running");
        // A port taken between our look and mariadbd's bind: try another.
        let keep_port = self.nodes[i].port != 0;
        for _attempt in 0..5 {
            let node = &mut self.nodes[i];
            if !keep_port {
                node.port = free_port();
            }
            let child = spawn_mariadbd(node, i > 0)?;
            node.child = Some(child);
            match self.wait_ready(i) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let node = &mut self.nodes[i];
                    if let Some(mut c) = node.child.take() {
                        kill_and_reap(&mut c);
                    }
                    let log = tail(&node.error_log(), 4000);
                    if keep_port || !log.contains("Address already in use") {
                        return Err(e.context(format!("node {i} error log:\n{log}")));
                    }
                }
            }
        }
        bail!("node {i}: no free port after 5 attempts")
    }

    fn wait_ready(&mut self, i: usize) -> Result<()> {
        let ready = wait_for(READY_TIMEOUT, Duration::from_millis(50), || {
            let node = &mut self.nodes[i];
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(Err(anyhow!(
                    "mariadbd of node {i} exited at start: {status}"
                )));
            }
            self.conn(i).ok().map(|_| Ok(()))
        });
        ready.unwrap_or_else(|| Err(anyhow!("node {i} not ready within {READY_TIMEOUT:?}")))
    }
}

impl Drop for MariaDbCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut c) = node.child.take() {
                kill_and_reap(&mut c);
            }
        }
    }
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Small InnoDB files and buffers: a test node needs little and the machine
/// runs several.
// Native AIO off: many servers starting at once can exhaust fs.aio-max-nr,
// and InnoDB then fails to start.
const SMALL: &[&str] = &[
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-use-native-aio=0",
];

fn install_datadir(node: &Node) -> Result<()> {
    let mut cmd = std::process::Command::new("mariadb-install-db");
    std::fs::create_dir_all(node.tmpdir())?;
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", node.datadir().display()))
        .arg(format!("--tmpdir={}", node.tmpdir().display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(SMALL)
        .stdin(Stdio::null());
    if running_as_root() {
        cmd.arg("--user=root");
    }
    let out = cmd
        .output()
        .context("running mariadb-install-db (is mariadb-server installed?)")?;
    if !out.status.success() {
        bail!(
            "mariadb-install-db failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn spawn_mariadbd(node: &Node, replica: bool) -> Result<Child> {
    let mut cmd = command_dying_with_parent(mariadbd_path());
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", node.datadir().display()))
        .arg(format!("--tmpdir={}", node.tmpdir().display()))
        .arg(format!("--port={}", node.port))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", node.socket().display()))
        .arg(format!(
            "--pid-file={}",
            node.dir.join("mariadbd.pid").display()
        ))
        .arg(format!("--log-error={}", node.error_log().display()))
        .arg(format!("--server-id={}", node.server_id))
        .args([
            "--log-bin=mysql-bin",
            "--binlog-format=ROW",
            "--log-slave-updates",
            "--gtid-strict-mode=ON",
            "--skip-name-resolve",
            "--performance-schema=OFF",
            "--max-connections=500",
            // max_allowed_packet stays at MariaDB's 16M default, below
            // sqlproxyd's 64M (unlike the lab's): sqlproxyd_packet_sizes
            // tests what a client gets when the two disagree.
        ])
        .arg(format!(
            "--relay-log={}",
            node.dir.join("relay-bin").display()
        ))
        .args(SMALL)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if replica {
        cmd.arg("--read-only=ON");
    }
    if running_as_root() {
        cmd.arg("--user=root");
    }
    cmd.spawn().context("starting mariadbd")
}

fn mariadbd_path() -> &'static Path {
    ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or(Path::new("mariadbd"))
}
