//! vrrpd as the shared runtime drives it.
//!
//! The VRRP state machine and its raw-socket shell arrive with the vrrpd
//! issue; until then the daemon loads, validates, reloads and reports its
//! instances, and takes no VIP.

use hastack_rt::{Daemon, StartContext};
use serde_json::json;

use crate::config::Config;

pub struct Vrrpd {
    config: Config,
}

impl Daemon for Vrrpd {
    type Config = Config;
    const NAME: &'static str = "vrrpd";
    const ABOUT: &'static str = "VRRP v2/v3 virtual IP failover, interoperable with keepalived";
    const DEFAULT_ADMIN_PORT: u16 = 9168;
    const CONFIG_HELP: &'static str = "instances: one entry per VRRP instance, by name, with keepalived's keys: interface, virtual_router_id (1-255), priority (1-255), advert_int (v2: whole seconds; v3: down to 10ms), version (2 or 3), state (MASTER or BACKUP, a start-up hint), nopreempt, preempt_delay, virtual_ipaddress (addresses with prefix length).
Status: the VRRP state machine is not running yet; vrrpd validates, reloads and reports its instances.";

    async fn start(config: Config, _ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        Ok(Vrrpd { config })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let instances: serde_json::Map<_, _> = self
            .config
            .instances
            .iter()
            .map(|(name, i)| {
                (
                    name.clone(),
                    json!({
                        "interface": i.interface,
                        "virtual_router_id": i.virtual_router_id,
                        "version": i.version,
                        "priority": i.priority,
                        "advert_int": i.advert_int,
                        "state_hint": i.state,
                        "virtual_ipaddress": i.virtual_ipaddress,
                        // No VRRP yet: this instance neither advertises nor holds its VIPs.
                        "vrrp": "not running",
                    }),
                )
            })
            .collect();
        json!({ "instances": instances })
    }

    async fn shutdown(&mut self) {}
}
