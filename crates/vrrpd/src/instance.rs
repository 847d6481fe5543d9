//! One VRRP instance's task: feeds the pure [`Machine`] adverts, tracking
//! and time, and carries out what it decides — adverts on the wire, VIPs
//! through netlink, gratuitous ARP, notify scripts, metrics and status.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hastack_proto::vrrp::{self, Accept, Advert, Auth, Checksum, Expect, Version};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{self, V3Checksum, Vip};
use crate::machine::{Action, Machine, Params, Received, State};
use crate::metrics::{InstanceLabel, Metrics, TransitionLabel};
use crate::netlink::{Link, Netlink};
use crate::notify::{self, NotifyState};
use crate::socket::{AdvertSocket, Datagram};
use crate::track::Health;

/// An instance's config with what the kernel told us about its interfaces.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub config: config::Instance,
    pub link: Link,
    /// Our address for adverts and the tie-break: `unicast_src_ip`, else the
    /// interface's primary IPv4 / link-local IPv6 address.
    pub source: IpAddr,
    pub vips: Vec<PlacedVip>,
}

/// A VIP with the interface it goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedVip {
    pub vip: Vip,
    pub dev: String,
    pub index: u32,
    pub mac: Option<[u8; 6]>,
}

impl Spec {
    pub async fn resolve(
        name: &str,
        config: &config::Instance,
        nl: &Netlink,
    ) -> anyhow::Result<Spec> {
        let link = nl
            .link(&config.interface)
            .await
            .with_context(|| format!("instance {name}"))?;
        let mut vips = Vec::with_capacity(config.virtual_ipaddress.len());
        for vip in &config.virtual_ipaddress {
            let dev = config.vip_dev(vip).to_string();
            let l = if dev == config.interface {
                link.clone()
            } else {
                nl.link(&dev)
                    .await
                    .with_context(|| format!("instance {name}: VIP {vip}"))?
            };
            vips.push(PlacedVip {
                vip: vip.clone(),
                dev,
                index: l.index,
                mac: l.mac,
            });
        }
        let addrs: Vec<IpAddr> = vips.iter().map(|v| v.vip.addr.addr()).collect();
        let source = match config.unicast_src_ip {
            Some(ip) => ip,
            None => nl
                .primary(link.index, config.is_v6(), &addrs)
                .await
                .with_context(|| format!("instance {name} on {}", config.interface))?,
        };
        Ok(Spec {
            name: name.to_string(),
            config: config.clone(),
            link,
            source,
            vips,
        })
    }

    /// Whether a reload can hand this instance to the running task (same
    /// interface, VRID and family) rather than stopping and starting it.
    pub fn same_identity(&self, other: &Spec) -> bool {
        self.config.interface == other.config.interface
            && self.config.virtual_router_id == other.config.virtual_router_id
            && self.config.is_v6() == other.config.is_v6()
    }

    fn params(&self) -> Params {
        Params::from_config(&self.config, self.source)
    }

    fn version(&self) -> Version {
        if self.config.version == 2 {
            Version::V2
        } else {
            Version::V3
        }
    }

    fn auth(&self) -> Auth {
        match &self.config.authentication {
            Some(a) => Auth::simple(a.auth_pass.expose()),
            None => Auth::None,
        }
    }

    fn interval_cs(&self) -> u16 {
        u16::try_from(self.config.advert_int.get().as_millis() / 10).unwrap_or(u16::MAX)
    }

    fn expect(&self) -> Expect {
        Expect {
            version: self.version(),
            vrid: self.config.virtual_router_id,
            auth: self.auth(),
            interval_cs: self.interval_cs(),
        }
    }

    /// v2 and IPv6 have one checksum; only v3 over IPv4 has a choice.
    fn accept(&self) -> Accept {
        match (self.version(), self.config.is_v6(), self.config.v3_checksum) {
            (Version::V2, _, _) => Accept::Only(Checksum::MessageOnly),
            (_, true, _) | (_, _, V3Checksum::PseudoHeader) => Accept::Only(Checksum::PseudoHeader),
            (_, _, V3Checksum::MessageOnly) => Accept::Only(Checksum::MessageOnly),
            (_, _, V3Checksum::Auto) => Accept::Either,
        }
    }

    fn send_checksum(&self) -> Checksum {
        match self.accept() {
            Accept::Only(c) => c,
            Accept::Either => Checksum::PseudoHeader,
        }
    }

    fn destinations(&self) -> Vec<IpAddr> {
        if !self.config.unicast_peers.is_empty() {
            self.config.unicast_peers.clone()
        } else if self.config.is_v6() {
            vec![vrrp::MULTICAST_V6.into()]
        } else {
            vec![vrrp::MULTICAST_V4.into()]
        }
    }

    fn addresses(&self) -> Vec<IpAddr> {
        let mut a: Vec<IpAddr> = self.vips.iter().map(|v| v.vip.addr.addr()).collect();
        a.sort();
        a
    }
}

/// What the daemon tells a running instance.
pub enum Command {
    Reload(Box<Spec>, watch::Receiver<Health>, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    /// A sync group member's own fault (or its end) that this instance
    /// must share.
    GroupFault(Option<String>),
}

/// What an instance tells its sync group.
#[derive(Clone, Debug)]
pub struct GroupReport {
    pub instance: String,
    pub state: State,
    pub priority: u8,
    /// Its own tracking's fault, which the rest of its group shares.
    pub own_fault: Option<String>,
}

/// Everything instances share.
#[derive(Clone)]
pub struct Shared {
    pub netlink: Netlink,
    pub metrics: Metrics,
    pub groups: Option<mpsc::UnboundedSender<GroupReport>>,
}

/// The running task, as the daemon holds it.
pub struct Handle {
    pub commands: mpsc::Sender<Command>,
    pub adverts: mpsc::Sender<Datagram>,
    pub status: Arc<Mutex<Status>>,
    pub spec: Spec,
    task: JoinHandle<()>,
}

impl Handle {
    pub fn spawn(
        spec: Spec,
        socket: Arc<AdvertSocket>,
        health: watch::Receiver<Health>,
        shared: Shared,
    ) -> Handle {
        let (commands, command_rx) = mpsc::channel(8);
        // Adverts beyond this backlog are dropped by the receiver: a flood
        // must not grow memory, and the state machine only needs the latest.
        let (adverts, advert_rx) = mpsc::channel(64);
        let now = Instant::now();
        let status = Arc::new(Mutex::new(Status::new(&spec, now)));
        shared.metrics.init_instance(&spec.name);
        let driver = Driver {
            machine: Machine::new(spec.params(), now),
            spec: spec.clone(),
            socket,
            health,
            shared,
            status: status.clone(),
            own_fault: None,
            group_fault: None,
            garp: Garp::default(),
            mismatch_logged: None,
            notify: notify::Queue::default(),
        };
        let task = tokio::spawn(driver.run(command_rx, advert_rx));
        Handle {
            commands,
            adverts,
            status,
            spec,
            task,
        }
    }

    /// Stops the instance: a master resigns with priority 0 and removes its VIPs.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }

    pub async fn reload(&mut self, spec: Spec, health: watch::Receiver<Health>) {
        let (tx, rx) = oneshot::channel();
        self.spec = spec.clone();
        if self
            .commands
            .send(Command::Reload(Box::new(spec), health, tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// What `/status` shows of an instance.
#[derive(Clone, Debug)]
pub struct Status {
    pub state: State,
    pub since: Instant,
    pub reason: String,
    pub priority: u8,
    pub master: Option<IpAddr>,
    pub last_advert: Option<(IpAddr, u8, Instant)>,
    pub transitions: u64,
    pub vips_held: bool,
    pub fault: Option<String>,
    spec: Spec,
}

impl Status {
    fn new(spec: &Spec, now: Instant) -> Status {
        Status {
            state: State::Initialize,
            since: now,
            reason: "starting".into(),
            priority: spec.config.priority,
            master: None,
            last_advert: None,
            transitions: 0,
            vips_held: false,
            fault: None,
            spec: spec.clone(),
        }
    }

    pub fn json(&self, tracked: serde_json::Value) -> serde_json::Value {
        let now = Instant::now();
        let c = &self.spec.config;
        json!({
            "state": self.state.name(),
            "since_seconds": now.duration_since(self.since).as_secs_f64(),
            "reason": self.reason,
            "interface": c.interface,
            "virtual_router_id": c.virtual_router_id,
            "version": c.version,
            "advert_int": c.advert_int,
            "base_priority": c.priority,
            "effective_priority": self.priority,
            "source": self.spec.source,
            "mode": if c.unicast_peers.is_empty() { "multicast" } else { "unicast" },
            "unicast_peers": c.unicast_peers,
            "master": self.master,
            "last_advert": self.last_advert.map(|(from, priority, at)| json!({
                "from": from,
                "priority": priority,
                "seconds_ago": now.duration_since(at).as_secs_f64(),
            })),
            "transitions": self.transitions,
            "virtual_ipaddress": c.virtual_ipaddress,
            "vips_held": self.vips_held,
            "fault": self.fault,
            "tracked": tracked,
        })
    }
}

/// Gratuitous ARP bursts still to send while master.
#[derive(Default)]
struct Garp {
    /// The delayed second burst.
    second: Option<Instant>,
    refresh: Option<Instant>,
}

impl Garp {
    fn next(&self) -> Option<Instant> {
        match (self.second, self.refresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Driver {
    spec: Spec,
    machine: Machine,
    socket: Arc<AdvertSocket>,
    health: watch::Receiver<Health>,
    shared: Shared,
    status: Arc<Mutex<Status>>,
    own_fault: Option<String>,
    group_fault: Option<String>,
    garp: Garp,
    /// The last mismatching VIP set we logged, so a duplicate VRID on the
    /// segment logs once per sender and set, not once per advert.
    mismatch_logged: Option<(IpAddr, Vec<IpAddr>)>,
    notify: notify::Queue,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut adverts: mpsc::Receiver<Datagram>,
    ) {
        self.remove_stale_vips().await;
        let now = Instant::now();
        let health = self.health.borrow_and_update().clone();
        let mut actions = self.apply_health(health, now);
        actions.extend(self.machine.startup(now));
        self.perform(actions).await;
        loop {
            let deadline = [self.machine.next_deadline(), self.garp.next()]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            self.refresh_status();
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Reload(spec, health, done)) => {
                        self.reload(*spec, health).await;
                        let _ = done.send(());
                    }
                    Some(Command::GroupFault(reason)) => {
                        self.group_fault = reason;
                        let health = self.health.borrow().clone();
                        let actions = self.apply_health(health, Instant::now());
                        self.perform(actions).await;
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                changed = self.health.changed() => {
                    if changed.is_err() {
                        // Tracking stopped (a reload is replacing it): keep the last word.
                        let last = self.health.borrow().clone();
                        self.health = watch::channel(last).1;
                        continue;
                    }
                    let health = self.health.borrow_and_update().clone();
                    let actions = self.apply_health(health, Instant::now());
                    self.perform(actions).await;
                }
                Some(d) = adverts.recv() => {
                    let actions = self.on_datagram(d, Instant::now());
                    self.perform(actions).await;
                }
                () = sleep => {
                    let now = Instant::now();
                    let actions = self.machine.on_timer(now);
                    self.perform(actions).await;
                    self.garp_timers(now).await;
                }
            }
        }
    }

    fn refresh_status(&self) {
        let mut s = lock(&self.status);
        s.master = self.machine.master();
        s.priority = self.machine.priority();
    }

    fn report_to_group(&self) {
        if let Some(groups) = &self.shared.groups {
            let _ = groups.send(GroupReport {
                instance: self.spec.name.clone(),
                state: self.machine.state(),
                priority: self.machine.priority(),
                own_fault: self.own_fault.clone(),
            });
        }
    }

    /// A previous run killed with -9 leaves its VIPs on the interface; a
    /// router starting as backup must not answer for them.
    async fn remove_stale_vips(&mut self) {
        if self.spec.config.priority == crate::machine::OWNER_PRIORITY {
            return;
        }
        for v in &self.spec.vips {
            match self.shared.netlink.del(v.index, v.vip.addr).await {
                Ok(true) => tracing::warn!(
                    instance = %self.spec.name,
                    vip = %v.vip.addr,
                    dev = %v.dev,
                    "removed a VIP left on the interface by an earlier run"
                ),
                Ok(false) => {}
                Err(e) => tracing::error!(instance = %self.spec.name, "{e:#}"),
            }
        }
    }

    /// Tracking's verdict and the sync group's, into the machine.
    fn apply_health(&mut self, health: Health, now: Instant) -> Vec<Action> {
        let fault_changed = self.own_fault.is_some() != health.fault.is_some();
        self.own_fault = health.fault.clone();
        if fault_changed {
            self.report_to_group();
        }
        let fault = self.own_fault.clone().or_else(|| self.group_fault.clone());
        let mut actions = Vec::new();
        match &fault {
            Some(reason) if self.machine.state() != State::Fault => {
                actions.extend(self.machine.fault(now, reason));
            }
            Some(_) => {}
            None => {
                actions.extend(self.machine.set_effective_priority(health.priority, now));
                if self.machine.state() == State::Fault {
                    actions.extend(self.machine.recover(now));
                }
            }
        }
        if fault.is_some() {
            // Keep the priority current for status even while faulty.
            actions.extend(
                self.machine
                    .set_effective_priority(health.priority.max(1), now)
                    .into_iter()
                    .filter(|a| !matches!(a, Action::Transition { .. })),
            );
        }
        let mut status = lock(&self.status);
        status.fault = fault;
        status.priority = self.machine.priority();
        self.shared
            .metrics
            .priority
            .get_or_create(&self.label())
            .set(i64::from(self.machine.priority()));
        actions
    }

    fn label(&self) -> InstanceLabel {
        InstanceLabel {
            instance: self.spec.name.clone(),
        }
    }

    fn drop_advert(&self, reason: &'static str, detail: &dyn std::fmt::Display, src: IpAddr) {
        self.shared.metrics.dropped(&self.spec.name, reason);
        tracing::debug!(instance = %self.spec.name, %src, reason, "advert dropped: {detail}");
    }

    fn on_datagram(&mut self, d: Datagram, now: Instant) -> Vec<Action> {
        let peers = &self.spec.config.unicast_peers;
        if !peers.is_empty() && !peers.contains(&d.src) {
            self.drop_advert("peer", &"not one of unicast_peers", d.src);
            return Vec::new();
        }
        // The checksum rule depends on the version, so a well-formed advert
        // of the other version would fail as "checksum": name it for what it is.
        let ours = if self.spec.version() == Version::V2 {
            2
        } else {
            3
        };
        if let Some(v @ (2 | 3)) = d.payload.first().map(|b| b >> 4) {
            if v != ours {
                let why = format!("version {v}, this instance speaks {ours}");
                self.drop_advert("version", &why, d.src);
                return Vec::new();
            }
        }
        let advert = match vrrp::decode(&d.payload, d.src, d.dst, self.spec.accept()) {
            Ok((advert, _)) => advert,
            Err(e) => {
                self.drop_advert(e.label(), &e, d.src);
                return Vec::new();
            }
        };
        if let Err(e) = self.spec.expect().check(&advert, d.ttl) {
            self.drop_advert(e.label(), &e, d.src);
            return Vec::new();
        }
        let mut theirs = advert.addresses.clone();
        theirs.sort();
        if theirs != self.spec.addresses() {
            let key = (d.src, theirs.clone());
            if self.mismatch_logged.as_ref() != Some(&key) {
                tracing::warn!(
                    instance = %self.spec.name,
                    from = %d.src,
                    theirs = ?theirs,
                    ours = ?self.spec.addresses(),
                    "an advert for our VRID carries other virtual addresses: a duplicate VRID on the segment, or configs that differ"
                );
                self.mismatch_logged = Some(key);
            }
            self.shared
                .metrics
                .address_mismatch
                .get_or_create(&self.label())
                .inc();
            // RFC 3768 §7.1 (v2): only the address owner's adverts survive a
            // mismatch. RFC 5798/9568 (v3) only ask for a log, and keeping
            // the advert means a rolling change of the VIP list across the
            // routers does not make a backup take over from a live master.
            if advert.version == Version::V2 && advert.priority != crate::machine::OWNER_PRIORITY {
                self.shared.metrics.dropped(&self.spec.name, "addresses");
                return Vec::new();
            }
        }
        self.shared
            .metrics
            .adverts_received
            .get_or_create(&self.label())
            .inc();
        lock(&self.status).last_advert = Some((d.src, advert.priority, now));
        self.machine.on_advert(
            Received {
                priority: advert.priority,
                src: d.src,
                max_advert_int: Duration::from_millis(u64::from(advert.interval_cs) * 10),
            },
            now,
        )
    }

    async fn reload(&mut self, spec: Spec, health: watch::Receiver<Health>) {
        let now = Instant::now();
        let holding = self.machine.state() == State::Master;
        let old = std::mem::replace(&mut self.spec, spec);
        if holding {
            for v in old.vips.iter().filter(|v| !self.spec.vips.contains(v)) {
                self.remove_vip(v).await;
            }
            let added: Vec<PlacedVip> = self
                .spec
                .vips
                .iter()
                .filter(|v| !old.vips.contains(v))
                .cloned()
                .collect();
            for v in &added {
                self.add_vip(v).await;
            }
            self.announce(&added).await;
        }
        lock(&self.status).spec = self.spec.clone();
        let mut actions = self.machine.reconfigure(self.spec.params(), now);
        self.health = health;
        let h = self.health.borrow_and_update().clone();
        actions.extend(self.apply_health(h, now));
        self.perform(actions).await;
    }

    async fn stop(&mut self) {
        let priority = self.machine.priority();
        let actions = self.machine.shutdown(Instant::now());
        self.perform(actions).await;
        self.notify.push(notify::commands(
            &self.spec.config.notify,
            notify::Kind::Instance,
            &self.spec.name,
            NotifyState::Stop,
            priority,
        ));
        // Bounded by the daemon's shutdown grace, as every stop is.
        self.notify.drain().await;
    }

    async fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::AddVips => {
                    for v in self.spec.vips.clone() {
                        self.add_vip(&v).await;
                    }
                    lock(&self.status).vips_held = true;
                }
                Action::RemoveVips => {
                    for v in self.spec.vips.clone() {
                        self.remove_vip(&v).await;
                    }
                    lock(&self.status).vips_held = false;
                    self.garp = Garp::default();
                }
                Action::Gratuitous => {
                    let now = Instant::now();
                    let c = &self.spec.config;
                    let delay = c.garp_master_delay.get();
                    let refresh = c.garp_master_refresh.get();
                    self.garp = Garp {
                        second: (!delay.is_zero()).then_some(now + delay),
                        refresh: (!refresh.is_zero()).then_some(now + refresh),
                    };
                    let vips = self.spec.vips.clone();
                    for _ in 0..self.spec.config.garp_master_repeat {
                        self.announce(&vips).await;
                    }
                }
                Action::Transition { from, to, reason } => self.transition(from, to, reason),
            }
        }
    }

    fn send_advert(&self, priority: u8) {
        let spec = &self.spec;
        let advert = Advert {
            version: spec.version(),
            vrid: spec.config.virtual_router_id,
            priority,
            interval_cs: spec.interval_cs(),
            addresses: spec.vips.iter().map(|v| v.vip.addr.addr()).collect(),
            auth: spec.auth(),
        };
        for dst in spec.destinations() {
            let payload = vrrp::encode(&advert, spec.source, dst, spec.send_checksum());
            match self.socket.send(&payload, spec.source, dst) {
                Ok(()) => {
                    self.shared
                        .metrics
                        .adverts_sent
                        .get_or_create(&self.label())
                        .inc();
                }
                // A full send buffer or a link going down: the next advert
                // retries, and a backup tolerates three missed ones.
                Err(e) => tracing::warn!(instance = %spec.name, %dst, "sending an advert: {e}"),
            }
        }
    }

    async fn add_vip(&self, v: &PlacedVip) {
        let nl = &self.shared.netlink;
        let done = nl.add(v.index, v.vip.addr, v.vip.label.as_deref()).await;
        self.log_vip(v, done, "added", "already present");
    }

    async fn remove_vip(&self, v: &PlacedVip) {
        let done = self.shared.netlink.del(v.index, v.vip.addr).await;
        self.log_vip(v, done, "removed", "already absent");
    }

    fn log_vip(&self, v: &PlacedVip, done: anyhow::Result<bool>, did: &str, was: &str) {
        match done {
            Ok(changed) => tracing::info!(
                instance = %self.spec.name,
                vip = %v.vip.addr,
                dev = %v.dev,
                "VIP {}",
                if changed { did } else { was }
            ),
            Err(e) => {
                let label = self.label();
                self.shared.metrics.vip_errors.get_or_create(&label).inc();
                tracing::error!(instance = %self.spec.name, "{e:#}");
            }
        }
    }

    /// One gratuitous ARP / NA per VIP, grouped by interface.
    async fn announce(&self, vips: &[PlacedVip]) {
        let mut by_dev: Vec<(String, [u8; 6], Vec<IpAddr>)> = Vec::new();
        for v in vips {
            let Some(mac) = v.mac else { continue };
            match by_dev.iter_mut().find(|(d, _, _)| *d == v.dev) {
                Some((_, _, ips)) => ips.push(v.vip.addr.addr()),
                None => by_dev.push((v.dev.clone(), mac, vec![v.vip.addr.addr()])),
            }
        }
        for (dev, mac, ips) in by_dev {
            let n = ips.len() as u64;
            let sent =
                tokio::task::spawn_blocking(move || crate::garp::announce(&dev, mac, &ips)).await;
            match sent {
                Ok(Ok(())) => {
                    self.shared
                        .metrics
                        .gratuitous_sent
                        .get_or_create(&self.label())
                        .inc_by(n);
                }
                Ok(Err(e)) => tracing::warn!(instance = %self.spec.name, "{e:#}"),
                Err(e) => tracing::warn!(instance = %self.spec.name, "gratuitous ARP task: {e}"),
            }
        }
    }

    async fn garp_timers(&mut self, now: Instant) {
        if self.machine.state() != State::Master {
            self.garp = Garp::default();
            return;
        }
        let vips = self.spec.vips.clone();
        if self.garp.second.is_some_and(|at| now >= at) {
            self.garp.second = None;
            for _ in 0..self.spec.config.garp_master_repeat {
                self.announce(&vips).await;
            }
        }
        if self.garp.refresh.is_some_and(|at| now >= at) {
            self.garp.refresh = Some(now + self.spec.config.garp_master_refresh.get());
            for _ in 0..self.spec.config.garp_master_refresh_repeat {
                self.announce(&vips).await;
            }
        }
    }

    fn transition(&mut self, from: State, to: State, reason: String) {
        let name = &self.spec.name;
        tracing::info!(instance = %name, from = from.name(), to = to.name(), "{from} → {to}: {reason}");
        let m = &self.shared.metrics;
        m.transitions
            .get_or_create(&TransitionLabel {
                instance: name.clone(),
                from: from.name(),
                to: to.name(),
            })
            .inc();
        m.set_state(name, to.name());
        {
            let mut s = lock(&self.status);
            s.state = to;
            s.since = Instant::now();
            s.reason = reason;
            s.transitions += 1;
            s.master = self.machine.master();
        }
        if let Some(state) = NotifyState::of(to) {
            self.notify.push(notify::commands(
                &self.spec.config.notify,
                notify::Kind::Instance,
                name,
                state,
                self.machine.priority(),
            ));
        }
        self.report_to_group();
    }
}

/// The status lock only guards plain data; a panic elsewhere cannot leave it
/// half-written in a way that matters more than losing `/status`.
pub fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Spec {
        let c: config::Config = hastack_rt::config::parse(
            std::path::Path::new("v.yaml"),
            &format!("instances:\n  a:\n    interface: eth0\n    virtual_router_id: 7\n{extra}"),
        )
        .unwrap();
        let config = c.instances["a"].clone();
        let vips = config
            .virtual_ipaddress
            .iter()
            .map(|vip| PlacedVip {
                vip: vip.clone(),
                dev: "eth0".into(),
                index: 2,
                mac: None,
            })
            .collect();
        Spec {
            name: "a".into(),
            config,
            link: Link {
                index: 2,
                mac: None,
            },
            source: "10.0.0.1".parse().unwrap(),
            vips,
        }
    }

    #[test]
    fn checksums_follow_version_family_and_setting() {
        let v2 = spec("    virtual_ipaddress: [10.0.0.9/24]\n");
        assert_eq!(v2.accept(), Accept::Only(Checksum::MessageOnly));
        let v3 = spec("    version: 3\n    virtual_ipaddress: [10.0.0.9/24]\n");
        assert_eq!(v3.accept(), Accept::Only(Checksum::PseudoHeader));
        let msg = spec(
            "    version: 3\n    v3_checksum: message_only\n    virtual_ipaddress: [10.0.0.9/24]\n",
        );
        assert_eq!(msg.send_checksum(), Checksum::MessageOnly);
        let auto =
            spec("    version: 3\n    v3_checksum: auto\n    virtual_ipaddress: [10.0.0.9/24]\n");
        assert_eq!(auto.accept(), Accept::Either);
        assert_eq!(auto.send_checksum(), Checksum::PseudoHeader);
        let v6 = spec("    version: 3\n    virtual_ipaddress: [fd00::9/64]\n");
        assert_eq!(v6.accept(), Accept::Only(Checksum::PseudoHeader));
    }

    #[test]
    fn adverts_go_to_the_group_or_the_peers() {
        let m = spec("    virtual_ipaddress: [10.0.0.9/24]\n");
        assert_eq!(m.destinations(), vec![IpAddr::from(vrrp::MULTICAST_V4)]);
        let u = spec("    virtual_ipaddress: [10.0.0.9/24]\n    unicast_src_ip: 10.0.0.1\n    unicast_peers: [10.0.0.2, 10.0.0.3]\n");
        assert_eq!(u.destinations().len(), 2);
        let v6 = spec("    version: 3\n    virtual_ipaddress: [fd00::9/64]\n");
        assert_eq!(v6.destinations(), vec![IpAddr::from(vrrp::MULTICAST_V6)]);
    }

    #[test]
    fn the_expectation_carries_the_password_and_interval() {
        let s = spec("    advert_int: 2s\n    authentication: {auth_type: PASS, auth_pass: pw}\n    virtual_ipaddress: [10.0.0.9/24, 10.0.0.8/24]\n");
        let e = s.expect();
        assert_eq!(
            (e.vrid, e.interval_cs, e.auth),
            (7, 200, Auth::simple("pw"))
        );
        let a = s.addresses();
        assert!(
            a.windows(2).all(|w| w[0] <= w[1]),
            "sorted for comparison: {a:?}"
        );
    }

    #[test]
    fn identity_is_interface_vrid_and_family() {
        let a = spec("    virtual_ipaddress: [10.0.0.9/24]\n");
        let more = spec("    priority: 200\n    virtual_ipaddress: [10.0.0.9/24, 10.0.0.10/24]\n");
        assert!(a.same_identity(&more));
        let v6 = spec("    version: 3\n    virtual_ipaddress: [fd00::9/64]\n");
        assert!(!a.same_identity(&v6));
    }
}
