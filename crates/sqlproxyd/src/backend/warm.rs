//! `pool.min`: keeps that many idle, logged-in connections ready on each
//! node that takes traffic (the primary, readable replicas), for each kind
//! of session (capabilities and collation) seen in the last minute. After a
//! failover the new primary's pool fills within a second, before the
//! clients' reconnect storm arrives.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hastack_proto::mysql::packets::Capabilities;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::metrics::Metrics;
use crate::topology::{DataHost, Topology};
use hastack_proto::mysql::client::Credentials;

const EVERY: Duration = Duration::from_secs(1);

pub async fn keep_warm(
    topology: Arc<RwLock<Arc<Topology>>>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.cancelled() => return,
        }
        let Ok(t) = topology.read().map(|t| t.clone()) else {
            continue;
        };
        for host in t.data_hosts.iter().filter(|h| h.pool_min > 0) {
            warm_host(host, &metrics).await;
        }
    }
}

async fn warm_host(host: &DataHost, metrics: &Metrics) {
    let serving: Vec<usize> = {
        let view = host.view.borrow();
        (0..host.nodes.len())
            .filter(|&i| view.primary == Some(i) || view.nodes.get(i).is_some_and(|n| n.readable))
            .collect()
    };
    for node in serving {
        for (key, missing) in host
            .pool
            .missing(node, host.pool_min as usize, Instant::now())
        {
            let n = &host.nodes[node];
            let (user, password) = host.account(key.read_only);
            let login = Credentials {
                user,
                password: password.expose(),
                database: None,
                capabilities: Capabilities::from_bits_truncate(key.capabilities),
                collation: key.collation,
            };
            for _ in 0..missing {
                match Backend::open(host, node, &login, metrics).await {
                    Ok(b) => {
                        // A full pool gives it back: then it just closes.
                        let _ = host.pool.put(key, b, Instant::now());
                    }
                    Err(e) => {
                        tracing::debug!(data_host = %host.name, node = %n.name, "pre-warming a connection: {e:#}");
                        break;
                    }
                }
            }
        }
    }
}
