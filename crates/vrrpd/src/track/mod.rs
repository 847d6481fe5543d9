//! Tracking with keepalived's semantics: scripts, processes, interfaces
//! and the local lbd decide each instance's priority, or its FAULT.
//!
//! [`Tracking::start`] runs one probe per tracked thing, shared by all the
//! instances that track it (a `vrrp_script` runs once per interval however
//! many instances name it). Each probe result goes through the item's
//! rise/fall count; when an item flips, every instance's [`Health`] is
//! computed again ([`health`]) and published on its watch channel.
//!
//! [`Tracking::reload`] keeps the state of every item whose definition is
//! unchanged (a reload does not reset a failed script to healthy) and the
//! instances' health channels, so the driver's receivers carry on.

mod probe;
mod rules;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::config::{self, Config};

pub use self::probe::Outcome;
pub use self::rules::{
    health, owner_ignores_weights, weight, Counter, Health, Kind, Quorum, Tracked,
};

/// How often links and processes are looked at: the kernel offers no
/// cheap event for a process ending, and for links polling sysfs keeps
/// vrrpd free of netlink for a tenth of a second's delay.
const POLL: Duration = Duration::from_millis(100);
/// How often processes already found are checked for their exit.
const QUICK: Duration = Duration::from_millis(10);

/// The running probes and every instance's health. Dropping it stops the
/// probes and kills any script still running.
pub struct Tracking {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

struct Shared {
    instances: BTreeMap<String, InstanceTrack>,
    /// Serialises recomputing, so that a health computed from older item
    /// states is never published after one from newer states.
    recompute: Mutex<()>,
}

struct InstanceTrack {
    base: u8,
    items: Vec<Item>,
    health: watch::Sender<Health>,
}

struct Item {
    weight: i32,
    source: Arc<Source>,
}

/// One tracked thing, probed once for all the instances tracking it.
struct Source {
    kind: Kind,
    /// The script's or process watch's name, the interface, lbd's address.
    name: String,
    probe: Probe,
    state: Mutex<SourceState>,
}

/// What a source probes, without the weights (instances apply those), so
/// that two sources with equal probes are the same thing.
#[derive(Clone, Debug, PartialEq)]
enum Probe {
    Script(config::Script),
    Process(config::TrackedProcess),
    Interface,
    Lbd(config::TrackLbd),
}

#[derive(Clone, Debug)]
struct SourceState {
    counter: Counter,
    /// Processes only.
    quorum: Option<Quorum>,
    /// The last result's detail.
    detail: String,
    /// When the state last flipped (or tracking started).
    since: SystemTime,
    checked: Option<SystemTime>,
}

impl Probe {
    fn of_script(s: &config::Script) -> Probe {
        Probe::Script(config::Script {
            weight: 0,
            ..s.clone()
        })
    }

    fn of_process(p: &config::TrackedProcess) -> Probe {
        Probe::Process(config::TrackedProcess {
            weight: 0,
            ..p.clone()
        })
    }

    fn of_lbd(t: &config::TrackLbd) -> Probe {
        Probe::Lbd(config::TrackLbd {
            weight: 0,
            ..t.clone()
        })
    }

    fn fresh_state(&self) -> SourceState {
        let (counter, quorum) = match self {
            Probe::Script(s) => (Counter::new(s.rise, s.fall), None),
            Probe::Lbd(t) => (Counter::new(t.rise, t.fall), None),
            Probe::Process(p) => (
                Counter::new(1, 1),
                Some(Quorum::new(p.quorum, p.delay.get())),
            ),
            Probe::Interface => (Counter::new(1, 1), None),
        };
        SourceState {
            counter,
            quorum,
            detail: "not checked yet".into(),
            since: SystemTime::now(),
            checked: None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking probe leaves consistent plain data behind.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Source {
    fn healthy(&self) -> bool {
        lock(&self.state).counter.healthy()
    }
}

impl InstanceTrack {
    fn compute(&self) -> Health {
        let states: Vec<bool> = self.items.iter().map(|i| i.source.healthy()).collect();
        health(self.base, self.tracked(&states))
    }

    fn tracked<'a>(&'a self, healthy: &'a [bool]) -> impl Iterator<Item = Tracked<'a>> + 'a {
        self.items.iter().zip(healthy).map(|(i, &h)| Tracked {
            kind: i.source.kind,
            name: &i.source.name,
            healthy: h,
            weight: i.weight,
        })
    }
}

impl Shared {
    /// Counts one probe result; on a flip, logs it and republishes health.
    fn record(&self, source: &Source, outcome: Outcome) {
        let (ok, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        let now = SystemTime::now();
        let flipped = {
            let mut st = lock(&source.state);
            st.checked = Some(now);
            st.detail.clone_from(&detail);
            let flipped = st.counter.observe(ok);
            if flipped {
                st.since = now;
            }
            flipped
        };
        if !flipped {
            return;
        }
        let (kind, name) = (source.kind, source.name.as_str());
        if ok {
            tracing::info!(track = %kind, name, detail, "{kind} {name} is healthy again: {detail}");
        } else {
            tracing::info!(track = %kind, name, detail, "{kind} {name} failed: {detail}");
        }
        self.recompute();
    }

    fn recompute(&self) {
        let _one_at_a_time = lock(&self.recompute);
        for track in self.instances.values() {
            let new = track.compute();
            track.health.send_if_modified(|h| {
                let changed = *h != new;
                *h = new;
                changed
            });
        }
    }
}

impl Tracking {
    /// Starts the probes for `config`'s instances on the current tokio
    /// runtime (it panics outside one). Every item starts healthy, as in
    /// keepalived, until its probes say otherwise.
    pub fn start(config: &Config) -> Tracking {
        Tracking::build(config, &[], &BTreeMap::new())
    }

    /// Stops these probes and starts `config`'s. An item whose definition
    /// is unchanged keeps its state, counts and detail; instances keep
    /// their health channels, so receivers from [`Tracking::health`] stay
    /// valid (and see a new value if the health changes). A removed
    /// instance's channel closes.
    pub fn reload(&mut self, config: &Config) {
        self.tasks.abort_all();
        let sources: Vec<Arc<Source>> = self
            .shared
            .instances
            .values()
            .flat_map(|t| t.items.iter().map(|i| Arc::clone(&i.source)))
            .collect();
        let channels: BTreeMap<String, watch::Sender<Health>> = self
            .shared
            .instances
            .iter()
            .map(|(name, t)| (name.clone(), t.health.clone()))
            .collect();
        *self = Tracking::build(config, &sources, &channels);
    }

    /// Stops the probes and waits until they have stopped, running
    /// scripts killed.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }

    fn build(
        config: &Config,
        previous: &[Arc<Source>],
        channels: &BTreeMap<String, watch::Sender<Health>>,
    ) -> Tracking {
        let mut sources: Vec<Arc<Source>> = Vec::new();
        let mut source = |kind: Kind, name: &str, probe: Probe| -> Arc<Source> {
            let same = |s: &&Arc<Source>| s.kind == kind && s.name == name && s.probe == probe;
            if let Some(s) = sources.iter().find(same) {
                return Arc::clone(s);
            }
            let state = match previous.iter().find(same) {
                Some(old) => lock(&old.state).clone(),
                None => probe.fresh_state(),
            };
            let s = Arc::new(Source {
                kind,
                name: name.to_owned(),
                probe,
                state: Mutex::new(state),
            });
            sources.push(Arc::clone(&s));
            s
        };
        let mut instances = BTreeMap::new();
        for (iname, inst) in &config.instances {
            let items = definitions(config, iname, inst)
                .into_iter()
                .map(|(kind, name, probe, weight)| Item {
                    weight,
                    source: source(kind, &name, probe),
                })
                .collect();
            let track = InstanceTrack {
                base: inst.priority,
                items,
                health: channels
                    .get(iname)
                    .cloned()
                    .unwrap_or_else(|| watch::Sender::new(Health::untracked(inst.priority))),
            };
            let healthy: Vec<bool> = track.items.iter().map(|i| i.source.healthy()).collect();
            if owner_ignores_weights(track.base, track.tracked(&healthy)) {
                tracing::warn!(
                    instance = %iname,
                    "priority 255 (the address owner) is never changed by tracking weights; only weight-0 failures (FAULT) affect it"
                );
            }
            instances.insert(iname.clone(), track);
        }
        let shared = Arc::new(Shared {
            instances,
            recompute: Mutex::new(()),
        });
        // Publishes the carried-over or initial health before any probe runs.
        shared.recompute();
        let mut tasks = JoinSet::new();
        let mut processes = Vec::new();
        for s in sources {
            let sh = Arc::clone(&shared);
            match &s.probe {
                Probe::Script(def) => {
                    let def = def.clone();
                    tasks.spawn(run_script(sh, s, def));
                }
                Probe::Lbd(def) => {
                    let def = def.clone();
                    tasks.spawn(run_lbd(sh, s, def));
                }
                Probe::Interface => {
                    tasks.spawn(run_interface(sh, s));
                }
                Probe::Process(_) => processes.push(s),
            }
        }
        if !processes.is_empty() {
            tasks.spawn(run_processes(Arc::clone(&shared), processes));
        }
        Tracking { shared, tasks }
    }

    /// `instance`'s health, current and to come. An instance without
    /// tracking gets its base priority, never changing. The channel
    /// closes when this `Tracking` is dropped (not on a reload).
    pub fn health(&self, instance: &str) -> watch::Receiver<Health> {
        match self.shared.instances.get(instance) {
            Some(t) => t.health.subscribe(),
            None => {
                tracing::warn!(instance, "health asked for an unknown instance");
                watch::Sender::new(Health {
                    priority: 0,
                    fault: Some(format!("no instance {instance:?} is configured")),
                })
                .subscribe()
            }
        }
    }

    /// `instance`'s tracking for the admin status: its base and current
    /// priority, fault, and each item's kind, name, state (`healthy` or
    /// `failed`), weight, last result's detail and since when it is in
    /// that state. `null` for an unknown instance.
    pub fn status(&self, instance: &str) -> Value {
        let Some(track) = self.shared.instances.get(instance) else {
            return Value::Null;
        };
        let health = track.health.borrow().clone();
        let stamp = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let items: Vec<Value> = track
            .items
            .iter()
            .map(|i| {
                let st = lock(&i.source.state).clone();
                json!({
                    "kind": i.source.kind,
                    "name": i.source.name,
                    "state": if st.counter.healthy() { "healthy" } else { "failed" },
                    "weight": i.weight,
                    "detail": st.detail,
                    "since": stamp(st.since),
                    "checked": st.checked.map(stamp),
                })
            })
            .collect();
        json!({
            "base_priority": track.base,
            "priority": health.priority,
            "fault": health.fault,
            "items": items,
        })
    }
}

/// What `inst` tracks: each item's kind, name, probe and weight for it.
fn definitions<'a>(
    config: &'a Config,
    iname: &str,
    inst: &'a config::Instance,
) -> Vec<(Kind, String, Probe, i32)> {
    let mut out = Vec::new();
    for r in &inst.tracked_interfaces() {
        out.push((
            Kind::Interface,
            r.name.clone(),
            Probe::Interface,
            weight(0, r.weight),
        ));
    }
    named(
        iname,
        Kind::Script,
        &inst.track_script,
        &config.vrrp_script,
        &mut out,
    );
    named(
        iname,
        Kind::Process,
        &inst.track_process,
        &config.vrrp_track_process,
        &mut out,
    );
    if let Some(t) = &inst.track_lbd {
        // Named by its address: what a log reader needs to find it.
        out.push((Kind::Lbd, t.admin.to_string(), Probe::of_lbd(t), t.weight));
    }
    out
}

/// A named definition instances refer to by a [`config::TrackRef`].
trait Definition {
    const SECTION: &'static str;
    fn own_weight(&self) -> i32;
    fn probe(&self) -> Probe;
}

impl Definition for config::Script {
    const SECTION: &'static str = "vrrp_script";
    fn own_weight(&self) -> i32 {
        self.weight
    }
    fn probe(&self) -> Probe {
        Probe::of_script(self)
    }
}

impl Definition for config::TrackedProcess {
    const SECTION: &'static str = "vrrp_track_process";
    fn own_weight(&self) -> i32 {
        self.weight
    }
    fn probe(&self) -> Probe {
        Probe::of_process(self)
    }
}

/// Adds the definitions `refs` name to `out`. Config validation refuses
/// unknown names, so one missing here is only logged.
fn named<D: Definition>(
    iname: &str,
    kind: Kind,
    refs: &[config::TrackRef],
    defs: &BTreeMap<String, D>,
    out: &mut Vec<(Kind, String, Probe, i32)>,
) {
    for r in refs {
        match defs.get(&r.name) {
            Some(d) => out.push((
                kind,
                r.name.clone(),
                d.probe(),
                weight(d.own_weight(), r.weight),
            )),
            None => {
                tracing::warn!(instance = %iname, "no {} {:?}; not tracked", D::SECTION, r.name)
            }
        }
    }
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(every);
    // A run longer than the interval is followed by the next at once, not
    // by a burst of the ones it missed.
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// One run at a time by construction: the next starts after this ends.
async fn run_script(shared: Arc<Shared>, source: Arc<Source>, def: config::Script) {
    let timeout = def.timeout.unwrap_or(def.interval).get();
    let mut tick = ticker(def.interval.get());
    loop {
        tick.tick().await;
        let outcome = probe::script(&def.script, timeout).await;
        shared.record(&source, outcome);
    }
}

async fn run_lbd(shared: Arc<Shared>, source: Arc<Source>, def: config::TrackLbd) {
    let admin: SocketAddr = def.admin;
    let mut tick = ticker(def.interval.get());
    loop {
        tick.tick().await;
        let outcome = probe::lbd_status(admin, def.timeout.get()).await;
        shared.record(&source, outcome);
    }
}

async fn run_interface(shared: Arc<Shared>, source: Arc<Source>) {
    let mut tick = ticker(POLL);
    loop {
        tick.tick().await;
        // sysfs attributes are generated by the kernel on read: no disk,
        // no blocking worth a thread.
        let outcome = probe::link(Path::new("/sys/class/net"), &source.name);
        shared.record(&source, outcome);
    }
}

/// One walk of /proc a poll for all the process watches.
async fn run_processes(shared: Arc<Shared>, sources: Vec<Arc<Source>>) {
    let defs: Arc<Vec<config::TrackedProcess>> = Arc::new(
        sources
            .iter()
            .filter_map(|s| match &s.probe {
                Probe::Process(p) => Some(p.clone()),
                _ => None,
            })
            .collect(),
    );
    // A full /proc scan (new processes) every POLL; in between, only the
    // processes already found are looked at, every QUICK, so a death is
    // seen within milliseconds as keepalived's proc connector sees it.
    let mut tick = ticker(QUICK);
    let mut found: Vec<Vec<std::path::PathBuf>> = Vec::new();
    let mut last_scan: Option<Instant> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if last_scan.is_none_or(|at| now.duration_since(at) >= POLL) {
            let d = Arc::clone(&defs);
            let scan = tokio::task::spawn_blocking(move || {
                let watches: Vec<&config::TrackedProcess> = d.iter().collect();
                probe::find_processes(Path::new("/proc"), &watches)
            })
            .await;
            match scan {
                Ok(Ok(f)) => found = f,
                Ok(Err(e)) => {
                    tracing::warn!("cannot read /proc to track processes: {e}");
                    continue;
                }
                Err(_) => continue,
            }
            last_scan = Some(now);
        } else {
            let before: usize = found.iter().map(Vec::len).sum();
            for dirs in &mut found {
                dirs.retain(|d| probe::still_running(d));
            }
            if found.iter().map(Vec::len).sum::<usize>() == before {
                continue;
            }
        }
        let now = Instant::now();
        for ((source, def), dirs) in sources.iter().zip(defs.iter()).zip(&found) {
            let count = u32::try_from(dirs.len()).unwrap_or(u32::MAX);
            let outcome = process_outcome(source, def, count, now);
            shared.record(source, outcome);
        }
    }
}

fn process_outcome(
    source: &Source,
    def: &config::TrackedProcess,
    count: u32,
    now: Instant,
) -> Outcome {
    let mut st = lock(&source.state);
    let quorum = st
        .quorum
        .get_or_insert_with(|| Quorum::new(def.quorum, def.delay.get()));
    let ok = quorum.observe(count, now);
    let plural = if count == 1 { "process" } else { "processes" };
    let mut detail = format!("{count} {plural}");
    if count < def.quorum {
        detail.push_str(&format!(", quorum {}", def.quorum));
        if let (true, Some(since)) = (ok, quorum.short_since()) {
            let short = now.saturating_duration_since(since).as_millis();
            let short = hastack_rt::Duration::from_millis(u64::try_from(short).unwrap_or(u64::MAX));
            detail.push_str(&format!(", short for {short} of the {} delay", def.delay));
        }
    }
    if ok {
        Ok(detail)
    } else {
        Err(detail)
    }
}

#[cfg(test)]
mod tests;
