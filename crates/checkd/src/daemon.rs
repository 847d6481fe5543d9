//! checkd as the shared runtime drives it.
//!
//! The service listeners, probes and exec services arrive with the checkd
//! issue; until then the daemon loads, validates, reloads and reports its
//! services, and binds no service port.

use hastack_rt::{Daemon, StartContext};
use serde_json::json;

use crate::config::Config;

pub struct Checkd {
    config: Config,
}

impl Daemon for Checkd {
    type Config = Config;
    const NAME: &'static str = "checkd";
    const ABOUT: &'static str =
        "Health-check super-server: HTTP checks of the local SQL proxy, xinetd-style services";
    const DEFAULT_ADMIN_PORT: u16 = 9167;
    const CONFIG_HELP: &'static str = "services: by name, each with type (http_check or exec), bind, disable, only_from and no_access (addresses or CIDRs), instances, per_source, cps (rate, pause) - xinetd's names. An http_check service has a probe (exactly one of mysql, tcp, http, exec; cache; maintenance_file); an exec service has server, server_args, user and timeout.
Status: the services are not listening yet; checkd validates, reloads and reports them.";

    async fn start(config: Config, _ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        Ok(Checkd { config })
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        self.config = config;
        Ok(())
    }

    fn status(&self) -> serde_json::Value {
        let services: serde_json::Map<_, _> = self
            .config
            .services
            .iter()
            .map(|(name, s)| {
                (
                    name.clone(),
                    json!({
                        "type": s.kind,
                        "bind": s.bind,
                        "disable": s.disable,
                        "only_from": s.only_from,
                        "no_access": s.no_access,
                        "instances": s.instances,
                        "listening": false,
                    }),
                )
            })
            .collect();
        json!({ "services": services })
    }

    async fn shutdown(&mut self) {}
}
