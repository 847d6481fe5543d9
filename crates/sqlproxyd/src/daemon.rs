//! sqlproxyd as the shared runtime drives it.
//!
//! The MySQL frontend, routing and failover arrive with the sqlproxyd
//! issues; until then the daemon loads, validates, reloads and reports its
//! users (names only), data hosts and schemas, and binds no MySQL port.

use hastack_rt::{Daemon, StartContext};
use serde_json::json;

use crate::config::Config;

pub struct Sqlproxyd {
    config: Config,
}

impl Daemon for Sqlproxyd {
    type Config = Config;
    const NAME: &'static str = "sqlproxyd";
    const ABOUT: &'static str =
        "MySQL-protocol proxy with read/write splitting and safe write-node failover";
    const DEFAULT_ADMIN_PORT: u16 = 9166;

    async fn start(config: Config, _ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        Ok(Sqlproxyd { config })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let c = &self.config;
        let data_hosts: Vec<_> = c
            .data_hosts
            .iter()
            .map(|h| {
                let nodes: Vec<_> = h
                    .nodes
                    .iter()
                    .map(|n| json!({ "name": n.name, "address": n.address, "role": n.role, "weight": n.weight }))
                    .collect();
                json!({ "name": h.name, "balance": h.balance, "switch_type": h.switch_type, "nodes": nodes })
            })
            .collect();
        json!({
            "listen": c.listen,
            "admin_listen": c.admin_listen,
            "serving": false,
            "users": c.users.iter().map(|u| json!({ "name": u.name, "read_only": u.read_only })).collect::<Vec<_>>(),
            "data_hosts": data_hosts,
            "schemas": c.schemas.iter().map(|s| json!({ "name": s.name, "data_host": s.data_host })).collect::<Vec<_>>(),
        })
    }

    async fn shutdown(&mut self) {}
}
