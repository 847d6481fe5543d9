//! lbd as the shared runtime drives it.
//!
//! Forwarding and health checks arrive with the lbd issue; until then the
//! daemon loads, validates, reloads and reports its frontends and backends,
//! and binds no frontend.

use hastack_rt::{Daemon, StartContext};
use serde_json::json;

use crate::config::Config;

pub struct Lbd {
    config: Config,
}

impl Daemon for Lbd {
    type Config = Config;
    const NAME: &'static str = "lbd";
    const ABOUT: &'static str = "TCP load balancer with health checks for the SQL proxy tier";
    const DEFAULT_ADMIN_PORT: u16 = 48800;
    const CONFIG_HELP: &'static str = "defaults: maxconn, timeout (connect, client, server, queue, check), inter, rise, fall - HAProxy's names and defaults (2s, 2, 3).
frontends: by name, each with bind (one or more address:port), backend and maxconn.
backends: by name, each with balance (roundrobin, static-rr, leastconn, source, first) and servers (name, address, weight 0-256, backup, maxconn, check, port - the health-check port, e.g. checkd's 48700 - inter, rise, fall).
Status: forwarding and health checks are not running yet; lbd validates, reloads and reports its frontends and backends.";

    async fn start(config: Config, _ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        Ok(Lbd { config })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let frontends: serde_json::Map<_, _> = self
            .config
            .frontends
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    json!({ "bind": f.bind, "backend": f.backend, "listening": false }),
                )
            })
            .collect();
        let backends: serde_json::Map<_, _> = self
            .config
            .backends
            .iter()
            .map(|(name, b)| {
                let servers: Vec<_> = b
                    .servers
                    .iter()
                    .map(|s| json!({ "name": s.name, "address": s.address, "weight": s.weight, "backup": s.backup, "check": s.check }))
                    .collect();
                (name.clone(), json!({ "balance": b.balance, "servers": servers }))
            })
            .collect();
        json!({ "frontends": frontends, "backends": backends })
    }

    async fn shutdown(&mut self) {}
}
