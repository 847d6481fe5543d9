//! vrrpd as the shared runtime drives it: one task per instance, one
//! receiving socket per interface and address family dispatching adverts
//! to instances by VRID, tracking, sync groups, and reload without VIP churn.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use hastack_rt::{Daemon, StartContext};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::instance::{self, Command, Handle, Shared, Spec};
use crate::metrics::Metrics;
use crate::netlink::Netlink;
use crate::socket::{AdvertSocket, Datagram};
use crate::sync_group::{self, Groups};
use crate::track::Tracking;

type Routes = Arc<RwLock<HashMap<u8, (String, mpsc::Sender<Datagram>)>>>;

/// One interface's receiving socket and the instances listening on it.
struct Receiver {
    socket: Arc<AdvertSocket>,
    routes: Routes,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Vrrpd {
    config: Config,
    shared: Shared,
    tracking: Tracking,
    receivers: HashMap<(String, bool), Receiver>,
    instances: BTreeMap<String, Handle>,
    /// Each instance's command channel, for the sync group task.
    senders: Arc<Mutex<HashMap<String, mpsc::Sender<Command>>>>,
    groups: Option<JoinHandle<()>>,
}

impl Daemon for Vrrpd {
    type Config = Config;
    const NAME: &'static str = "vrrpd";
    const ABOUT: &'static str = "VRRP v2/v3 virtual IP failover, interoperable with keepalived";
    const DEFAULT_ADMIN_PORT: u16 = 9168;
    const EXAMPLE_CONFIG: &'static str = include_str!("../../../configs/vrrpd.yaml");
    const CONFIG_HELP: &'static str = "instances: one entry per VRRP instance, by name, with keepalived's keys: interface, virtual_router_id (1-255), priority (1-255), advert_int (v2: whole seconds; v3: down to 10ms), version (2 or 3), state (MASTER or BACKUP, a start-up hint), nopreempt, preempt_delay, virtual_ipaddress (ADDR/LEN [dev IFACE] [label LABEL]), unicast_src_ip and unicast_peers, authentication (auth_type PASS, auth_pass; v2 only), v3_checksum (pseudo_header, message_only, auto), track_interface, track_script, track_process (names, or {name, weight}), track_lbd (admin, interval, timeout, weight, rise, fall), garp_master_delay, garp_master_repeat, garp_master_refresh, garp_master_refresh_repeat, notify_master, notify_backup, notify_fault, notify_stop, notify.
vrrp_script: by name: script, interval, timeout, weight, rise, fall. vrrp_track_process: by name: process, param_match, quorum, weight, delay. vrrp_sync_group: by name: group (instance names) and the notify keys.
Needs CAP_NET_RAW (raw VRRP and ARP sockets) and CAP_NET_ADMIN (VIPs).";

    async fn start(config: Config, ctx: &mut StartContext<'_>) -> anyhow::Result<Self> {
        let metrics = Metrics::register(ctx.registry);
        let netlink = Netlink::connect()?;
        let senders = Arc::new(Mutex::new(HashMap::new()));
        let groups = Groups::new(&config);
        let (group_tx, groups_task) = if groups.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(sync_group::run(groups, rx, senders.clone()));
            (Some(tx), Some(task))
        };
        let empty = Config {
            instances: BTreeMap::new(),
            ..config.clone()
        };
        let mut d = Vrrpd {
            tracking: Tracking::start(&empty),
            config: empty,
            shared: Shared {
                netlink,
                metrics,
                groups: group_tx,
            },
            receivers: HashMap::new(),
            instances: BTreeMap::new(),
            senders,
            groups: groups_task,
        };
        d.apply(config).await?;
        Ok(d)
    }

    async fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        if config.vrrp_sync_group != self.config.vrrp_sync_group {
            anyhow::bail!("changing vrrp_sync_group takes a restart");
        }
        self.apply(config).await
    }

    fn status(&self) -> serde_json::Value {
        let instances: serde_json::Map<_, _> = self
            .instances
            .iter()
            .map(|(name, h)| {
                let tracked = self.tracking.status(name);
                (name.clone(), instance::lock(&h.status).json(tracked))
            })
            .collect();
        let groups: serde_json::Map<_, _> = self
            .config
            .vrrp_sync_group
            .iter()
            .map(|(name, g)| (name.clone(), json!({ "group": g.group })))
            .collect();
        json!({ "instances": instances, "sync_groups": groups })
    }

    async fn shutdown(&mut self) {
        // Every instance resigns at once: a backup elsewhere takes each VIP
        // after Skew_Time, not after the instances before it have stopped.
        let handles = std::mem::take(&mut self.instances);
        futures_util::future::join_all(handles.into_values().map(Handle::shutdown)).await;
        self.receivers.clear();
        if let Some(g) = self.groups.take() {
            g.abort();
        }
    }
}

impl Vrrpd {
    /// Brings the running instances to `config`: resolves every interface
    /// first, so a reload naming a missing interface changes nothing.
    async fn apply(&mut self, config: Config) -> anyhow::Result<()> {
        let mut specs = BTreeMap::new();
        for (name, i) in &config.instances {
            specs.insert(
                name.clone(),
                Spec::resolve(name, i, &self.shared.netlink).await?,
            );
        }
        for ((interface, v6), spec) in specs
            .values()
            .map(|s: &Spec| ((s.config.interface.clone(), s.config.is_v6()), s))
        {
            if !self.receivers.contains_key(&(interface.clone(), v6)) {
                let link_local = if v6 {
                    match spec.source {
                        std::net::IpAddr::V6(ip) => Some(ip),
                        std::net::IpAddr::V4(_) => None,
                    }
                } else {
                    None
                };
                let socket = Arc::new(
                    AdvertSocket::open(&interface, spec.link.index, link_local)
                        .with_context(|| format!("instance {}", spec.name))?,
                );
                let routes: Routes = Arc::default();
                let task = tokio::spawn(receive(
                    socket.clone(),
                    routes.clone(),
                    self.shared.metrics.clone(),
                    interface.clone(),
                ));
                self.receivers.insert(
                    (interface, v6),
                    Receiver {
                        socket,
                        routes,
                        task,
                    },
                );
            }
        }
        self.tracking.reload(&config);
        // Stop what went away or changed identity, before starting what
        // replaces it, so two tasks never claim one VRID.
        let gone: Vec<String> = self
            .instances
            .iter()
            .filter(|(name, h)| !specs.get(*name).is_some_and(|s| s.same_identity(&h.spec)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(h) = self.instances.remove(&name) {
                self.unroute(&h.spec);
                h.shutdown().await;
                tracing::info!(instance = %name, "instance stopped (removed or re-identified)");
            }
        }
        for (name, spec) in specs {
            let health = self.tracking.health(&name);
            if let Some(h) = self.instances.get_mut(&name) {
                h.reload(spec, health).await;
                continue;
            }
            let key = (spec.config.interface.clone(), spec.config.is_v6());
            let receiver = self.receivers.get(&key).context("receiver opened above")?;
            let vrid = spec.config.virtual_router_id;
            let h = Handle::spawn(spec, receiver.socket.clone(), health, self.shared.clone());
            write(&receiver.routes).insert(vrid, (name.clone(), h.adverts.clone()));
            lock(&self.senders).insert(name.clone(), h.commands.clone());
            self.instances.insert(name, h);
        }
        let used: Vec<(String, bool)> = self
            .instances
            .values()
            .map(|h| (h.spec.config.interface.clone(), h.spec.config.is_v6()))
            .collect();
        self.receivers.retain(|k, _| used.contains(k));
        self.config = config;
        Ok(())
    }

    fn unroute(&self, spec: &Spec) {
        let key = (spec.config.interface.clone(), spec.config.is_v6());
        if let Some(r) = self.receivers.get(&key) {
            write(&r.routes).remove(&spec.config.virtual_router_id);
        }
        lock(&self.senders).remove(&spec.name);
    }
}

/// Reads one interface's socket and hands each advert to the instance
/// with its VRID; what no instance owns is counted here.
async fn receive(socket: Arc<AdvertSocket>, routes: Routes, metrics: Metrics, interface: String) {
    loop {
        let d = match socket.recv().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%interface, "receiving adverts: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(&vrid) = d.payload.get(1) else {
            metrics.dropped("", "malformed");
            continue;
        };
        let route = read(&routes).get(&vrid).cloned();
        match route {
            Some((instance, tx)) => {
                if tx.try_send(d).is_err() {
                    tracing::debug!(%instance, "advert backlog full; dropping one");
                }
            }
            None => {
                metrics.dropped("", "vrid");
                tracing::debug!(%interface, vrid, src = %d.src, "advert for a VRID we do not run");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}
