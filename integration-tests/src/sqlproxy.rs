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
}

/// The lab's users and one data host over every node of `cluster`
/// (node 0 write, the others read), with `balance` and extra data-host keys.
pub fn config(
    cluster: &MariaDbCluster,
    listen: SocketAddr,
    admin_http: SocketAddr,
    balance: &str,
    extra: &str,
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
    format!(
        "admin_http:\n  listen: {admin_http}\nshutdown_grace: 2s\nlisten: {listen}\nadmin_listen: 127.0.0.1:{admin}\n\
         users:\n  - {{name: app, password: app, schemas: [app, sbtest]}}\n  - {{name: reader, password: reader, schemas: [app], read_only: true}}\n\
         data_hosts:\n  - name: dh1\n    balance: {balance}\n    user: app\n    password: app\n{extra}    nodes:\n{nodes}\
         schemas:\n  - {{name: app, data_host: dh1}}\n  - {{name: sbtest, data_host: dh1}}\n",
        admin = free_port(),
    )
}

impl Proxy {
    pub fn start(cluster: &MariaDbCluster, balance: &str, extra: &str) -> Result<Proxy> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let daemon = DaemonProcess::start(
            "sqlproxyd",
            &config(cluster, addr, admin, balance, extra),
            admin,
        )?;
        Ok(Proxy { daemon, addr })
    }

    /// A client connection through the proxy.
    pub fn conn(&self, user: &str, password: &str, db: Option<&str>) -> Result<Conn> {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(self.addr.ip().to_string()))
            .tcp_port(self.addr.port())
            .user(Some(user))
            .pass(Some(password))
            .db_name(db)
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(5)));
        Conn::new(opts)
            .with_context(|| format!("connecting to sqlproxyd at {} as {user}", self.addr))
    }
}
