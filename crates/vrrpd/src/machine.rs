//! The VRRP state machine (RFC 5798 / RFC 9568 §6.4, RFC 3768 timing) plus
//! keepalived's FAULT state, with no sockets and no clock.
//!
//! The caller passes `now` into every call and performs the returned
//! [`Action`]s; it calls [`Machine::on_timer`] at or after
//! [`Machine::next_deadline`]. Keeping I/O out is what lets the tests below
//! run thousands of simulated elections in milliseconds (STYLE.md §2, §3).
//!
//! RFC 9568 renames Master to Active (Active_Adver_Interval,
//! Active_Down_Interval, Active_Down_Timer) without changing the timing
//! formulas; this module keeps RFC 5798's names because keepalived's logs
//! and config, which our users read, still say MASTER.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config;

/// The RFC's address owner: it answers for the VIPs as its own addresses.
pub const OWNER_PRIORITY: u8 = 255;

/// A priority-0 advert means "the master is resigning" (RFC 5798 §5.2.4).
pub const RESIGN_PRIORITY: u8 = 0;

/// The wire's version, one type for the codec and the machine. V2 (RFC
/// 3768): whole-second intervals, skew independent of the interval. V3
/// (RFC 5798 / RFC 9568): centisecond intervals, skew scaled by the
/// master's interval.
pub use hastack_proto::vrrp::Version;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub version: Version,
    /// Base priority, 1..=255; tracking lowers it through
    /// [`Machine::set_effective_priority`]. 0 starts the machine in Fault.
    pub priority: u8,
    /// Our Advertisement_Interval (v2: whole seconds; v3: centiseconds).
    pub advert_int: Duration,
    /// Preempt_Mode; keepalived's `nopreempt` sets it false.
    pub preempt: bool,
    /// How long a backup keeps deferring to a live lower-priority master
    /// before taking over (keepalived's `preempt_delay`). The delay runs
    /// from the first advert of that master; when it runs out we take over
    /// at once rather than then waiting out a Master_Down_Interval too.
    pub preempt_delay: Duration,
    /// Accept_Mode (RFC 5798 §6.1): a non-owner master accepts traffic to
    /// the VIPs.
    pub accept_mode: bool,
    /// Our primary address on the interface, for the equal-priority
    /// tie-break.
    pub primary_ip: IpAddr,
}

impl Params {
    /// The validated config instance, with the interface's primary address
    /// the shell looked up.
    pub fn from_config(instance: &config::Instance, primary_ip: IpAddr) -> Params {
        Params {
            version: if instance.version == 2 {
                Version::V2
            } else {
                Version::V3
            },
            priority: instance.priority,
            advert_int: instance.advert_int.get(),
            preempt: !instance.nopreempt,
            preempt_delay: instance.preempt_delay.get(),
            accept_mode: false,
            primary_ip,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// keepalived's FAULT: a tracked failure; we neither advertise nor hold
    /// VIPs until it clears.
    Fault,
}

impl State {
    /// keepalived's name for the state, as logs, notify scripts and metrics say it.
    pub fn name(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An advert that passed the receive checks of RFC 5798 §7.1 (TTL, VRID,
/// checksum, auth), as the shell parsed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub priority: u8,
    /// The sender's primary address (the IP source).
    pub src: IpAddr,
    /// The advert's interval field (v3: Max Adver Int; v2: Adver Int).
    pub max_advert_int: Duration,
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: u8,
    },
    AddVips,
    RemoveVips,
    /// Start a gratuitous ARP / unsolicited NA burst for the VIPs.
    Gratuitous,
    /// Exactly one per state change, first among the actions it causes.
    Transition {
        from: State,
        to: State,
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct Machine {
    params: Params,
    state: State,
    /// Tracking's priority; equals `params.priority` until tracking speaks.
    priority: u8,
    /// A fault reported through [`Machine::fault`], apart from priority 0.
    fault: Option<String>,
    /// Master_Adver_Interval: the master's interval as learned in Backup.
    master_adver_int: Duration,
    /// Adver_Timer in Master, Master_Down_Timer in Backup.
    timer: Option<Instant>,
    /// When we last heard a master we deferred to, or entered Backup.
    heard_at: Instant,
    /// Who we believe is master, with its priority.
    master: Option<(IpAddr, u8)>,
    /// A lower-priority live master we mean to preempt.
    preempting: Option<(IpAddr, u8)>,
    /// When preempt_delay runs out for the current lower-priority master.
    preempt_at: Option<Instant>,
    /// When we last re-announced the VIPs to a lower-priority router that
    /// also claims to be master.
    reclaimed_at: Option<Instant>,
    /// Why the master-down timer is set, for the Transition reason.
    down_cause: DownCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DownCause {
    Silence,
    Resigned(IpAddr),
}

impl Machine {
    pub fn new(params: Params, now: Instant) -> Machine {
        Machine {
            priority: params.priority,
            master_adver_int: params.advert_int,
            params,
            state: State::Initialize,
            fault: None,
            timer: None,
            heard_at: now,
            master: None,
            preempting: None,
            preempt_at: None,
            reclaimed_at: None,
            down_cause: DownCause::Silence,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Who we believe is master: ourselves, the last master we heard in
    /// Backup, or nobody.
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.params.primary_ip),
            State::Backup => self.master.map(|(ip, _)| ip),
            State::Initialize | State::Fault => None,
        }
    }

    /// The priority we advertise and compare with.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Whether the shell should accept packets addressed to the VIPs
    /// (RFC 5798 §6.4.3: the owner always, others only with Accept_Mode).
    pub fn accepts_vip_traffic(&self) -> bool {
        self.state == State::Master && (self.params.accept_mode || self.is_owner())
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timer
    }

    /// RFC 5798 §6.4.1 Startup; a no-op unless in Initialize.
    pub fn startup(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Initialize {
            return Vec::new();
        }
        if self.in_fault() {
            let reason = self.fault_reason();
            return vec![self.transition(State::Fault, reason)];
        }
        if self.is_owner() {
            return self.become_master(now, "startup as address owner (priority 255)".into());
        }
        self.enter_backup(now, "startup")
    }

    /// RFC 5798 §6.4.2 / §6.4.3 "If an ADVERTISEMENT is received".
    pub fn on_advert(&mut self, advert: Received, now: Instant) -> Vec<Action> {
        // Our own multicast looped back is not a peer.
        if advert.src == self.params.primary_ip {
            return Vec::new();
        }
        // RFC 3768 §7.1: a v2 router discards adverts whose interval differs
        // from its own, so a misconfigured peer cannot stretch our timers.
        if self.params.version == Version::V2 && advert.max_advert_int != self.params.advert_int {
            return Vec::new();
        }
        match self.state {
            State::Backup => self.backup_advert(advert, now),
            State::Master => self.master_advert(advert, now),
            State::Initialize | State::Fault => Vec::new(),
        }
    }

    /// Fires the Adver_Timer (Master) or Master_Down_Timer (Backup); early
    /// calls do nothing, so the shell may wake spuriously.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self.timer {
            Some(at) if now >= at => {}
            _ => return Vec::new(),
        }
        match self.state {
            State::Master => {
                self.timer = Some(now + self.params.advert_int);
                vec![self.advert()]
            }
            State::Backup => {
                let reason = self.takeover_reason(now);
                self.become_master(now, reason)
            }
            State::Initialize | State::Fault => {
                self.timer = None;
                Vec::new()
            }
        }
    }

    /// RFC 5798 §6.4.2 / §6.4.3 Shutdown: a master resigns with priority 0
    /// so the backup takes over after Skew_Time rather than
    /// Master_Down_Interval.
    pub fn shutdown(&mut self, _now: Instant) -> Vec<Action> {
        let from = self.state;
        self.timer = None;
        self.master = None;
        self.forget_preempt();
        if from == State::Initialize {
            return Vec::new();
        }
        let mut out = vec![self.transition(State::Initialize, "shutdown".into())];
        out.extend(release(from, true));
        out
    }

    /// A reload changed the instance's settings but not its identity
    /// (interface, VRID, family): keep the state, so a master stays master
    /// and holds its VIPs throughout. The caller re-applies tracking with
    /// [`Machine::set_effective_priority`] for the new base priority.
    pub fn reconfigure(&mut self, params: Params, now: Instant) -> Vec<Action> {
        let advert_changed = params.advert_int != self.params.advert_int;
        self.params = params;
        if self.state == State::Master && advert_changed {
            // Advertise the new interval at once rather than after the old one.
            self.timer = Some(now + self.params.advert_int);
            return vec![self.advert()];
        }
        Vec::new()
    }

    /// Tracking changed our priority. 0 is a fault, as in keepalived; the
    /// address owner keeps 255 otherwise, because RFC 5798 §5.2.4 reserves
    /// 255 for it and a backup could never outrank it anyway.
    pub fn set_effective_priority(&mut self, priority: u8, now: Instant) -> Vec<Action> {
        let was_faulty = self.in_fault();
        self.priority = match priority {
            RESIGN_PRIORITY => RESIGN_PRIORITY,
            _ if self.params.priority == OWNER_PRIORITY => OWNER_PRIORITY,
            p => p,
        };
        match (was_faulty, self.in_fault()) {
            (false, true) => self.enter_fault(self.fault_reason()),
            (true, false) => self.leave_fault(now),
            _ => Vec::new(),
        }
    }

    /// A tracked failure (interface down, failed script): leave Master and
    /// Backup for Fault.
    pub fn fault(&mut self, _now: Instant, reason: &str) -> Vec<Action> {
        self.fault.get_or_insert_with(|| reason.to_string());
        self.enter_fault(reason.to_string())
    }

    /// Clears a [`Machine::fault`]. Leaving Fault re-runs Startup, which
    /// means Backup for all but the owner: a router that was away must hear
    /// whether a master is live before it claims the VIPs.
    pub fn recover(&mut self, now: Instant) -> Vec<Action> {
        self.fault = None;
        self.leave_fault(now)
    }

    fn leave_fault(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Fault || self.in_fault() {
            return Vec::new();
        }
        if self.is_owner() {
            return self.become_master(now, "fault cleared; address owner (priority 255)".into());
        }
        self.enter_backup(now, "fault cleared")
    }

    fn in_fault(&self) -> bool {
        self.fault.is_some() || self.priority == RESIGN_PRIORITY
    }

    fn fault_reason(&self) -> String {
        self.fault
            .clone()
            .unwrap_or_else(|| "effective priority 0 (a tracked failure)".into())
    }

    fn is_owner(&self) -> bool {
        self.priority == OWNER_PRIORITY
    }

    fn backup_advert(&mut self, advert: Received, now: Instant) -> Vec<Action> {
        if advert.priority == RESIGN_PRIORITY {
            // RFC 5798 §6.4.2: the master resigned; wait only Skew_Time so
            // the highest-priority backup answers first.
            self.master = None;
            self.forget_preempt();
            self.down_cause = DownCause::Resigned(advert.src);
            self.timer = Some(now + self.skew_time());
            return Vec::new();
        }
        self.master = Some((advert.src, advert.priority));
        if !self.params.preempt || advert.priority >= self.priority {
            self.forget_preempt();
            self.defer_to_master(advert, now);
            return Vec::new();
        }
        // A lower-priority master with Preempt_Mode: RFC 5798 discards the
        // advert so Master_Down_Timer runs out; preempt_delay first defers
        // to it for a while, e.g. so a rebooted router's routes settle.
        if self.preempting.map(|(ip, _)| ip) != Some(advert.src) {
            self.preempt_at = Some(now + self.params.preempt_delay);
        }
        self.preempting = Some((advert.src, advert.priority));
        if let Some(at) = self.preempt_at.filter(|at| now < *at) {
            self.defer_to_master(advert, now);
            self.timer = self.timer.map(|t| t.min(at));
        }
        Vec::new()
    }

    fn defer_to_master(&mut self, advert: Received, now: Instant) {
        if self.params.version == Version::V3 {
            self.master_adver_int = advert.max_advert_int;
        }
        self.heard_at = now;
        self.down_cause = DownCause::Silence;
        self.timer = Some(now + self.master_down_interval());
    }

    fn forget_preempt(&mut self) {
        self.preempting = None;
        self.preempt_at = None;
    }

    fn master_advert(&mut self, advert: Received, now: Instant) -> Vec<Action> {
        if advert.priority == RESIGN_PRIORITY {
            // RFC 5798 §6.4.3: answer at once so backups do not take over
            // after Skew_Time from a stale resignation.
            self.timer = Some(now + self.params.advert_int);
            return vec![self.advert()];
        }
        // The owner never yields to a non-owner: nothing outranks 255 and
        // tracking cannot lower it. Two owners are a misconfiguration; the
        // tie-break below still leaves one master.
        let higher = advert.priority > self.priority;
        let tie_lost = advert.priority == self.priority && advert.src > self.params.primary_ip;
        if !(higher || tie_lost) {
            // Another router believes it is master: a healed partition. It
            // yields when it hears us, by the same rule; RFC 5798 only
            // discards the advert. Like keepalived's garp_lower_prio, we
            // also advertise at once and re-announce the VIPs, because
            // clients that followed the other router's gratuitous ARP would
            // otherwise keep sending to it until their ARP entries expire.
            // Once per Master_Down_Interval, so a router that cannot hear
            // us does not make us flood the segment.
            let quiet = self.master_down_interval();
            if self.reclaimed_at.is_some_and(|at| now < at + quiet) {
                return Vec::new();
            }
            self.reclaimed_at = Some(now);
            self.timer = Some(now + self.params.advert_int);
            return vec![self.advert(), Action::Gratuitous];
        }
        let reason = if higher {
            format!(
                "preempted by {} priority {} (ours {})",
                advert.src, advert.priority, self.priority
            )
        } else {
            format!(
                "equal priority {} and {} > our {}",
                advert.priority, advert.src, self.params.primary_ip
            )
        };
        // RFC 5798 §6.4.3 sends no resignation here: the new master is
        // already advertising.
        let mut out = vec![self.transition(State::Backup, reason)];
        out.extend(release(State::Master, false));
        self.master = Some((advert.src, advert.priority));
        self.forget_preempt();
        self.defer_to_master(advert, now);
        out
    }

    fn become_master(&mut self, now: Instant, reason: String) -> Vec<Action> {
        let t = self.transition(State::Master, reason);
        self.timer = Some(now + self.params.advert_int);
        self.master = None;
        self.forget_preempt();
        vec![t, self.advert(), Action::AddVips, Action::Gratuitous]
    }

    fn enter_backup(&mut self, now: Instant, why: &str) -> Vec<Action> {
        self.master_adver_int = self.params.advert_int;
        let wait = self.master_down_interval();
        let t = self.transition(
            State::Backup,
            format!("{why}: waiting {} for a master's advert", secs(wait)),
        );
        self.heard_at = now;
        self.down_cause = DownCause::Silence;
        self.timer = Some(now + wait);
        self.master = None;
        self.forget_preempt();
        vec![t]
    }

    /// Only from Master or Backup: Initialize enters Fault at Startup.
    fn enter_fault(&mut self, reason: String) -> Vec<Action> {
        let from = self.state;
        if !matches!(from, State::Master | State::Backup) {
            return Vec::new();
        }
        self.timer = None;
        self.master = None;
        self.forget_preempt();
        let mut out = vec![self.transition(State::Fault, reason)];
        // Resign as keepalived does, so the backup takes over after
        // Skew_Time instead of a full Master_Down_Interval; once in Fault
        // nothing is sent.
        out.extend(release(from, true));
        out
    }

    fn transition(&mut self, to: State, reason: String) -> Action {
        let from = self.state;
        self.state = to;
        Action::Transition { from, to, reason }
    }

    fn takeover_reason(&self, now: Instant) -> String {
        match (self.preempting, self.down_cause) {
            (Some((ip, p)), _) if self.preempt_at.is_some_and(|at| now >= at) => {
                let delay = if self.params.preempt_delay.is_zero() {
                    String::new()
                } else {
                    format!(
                        "preempt_delay {} elapsed; ",
                        secs(self.params.preempt_delay)
                    )
                };
                format!(
                    "{delay}preempting {ip} priority {p} (ours {})",
                    self.priority
                )
            }
            (_, DownCause::Resigned(ip)) => {
                format!("master {ip} resigned (priority 0)")
            }
            _ => format!(
                "master down: no advert for {}",
                secs(now.saturating_duration_since(self.heard_at))
            ),
        }
    }

    fn advert(&self) -> Action {
        Action::SendAdvert {
            priority: self.priority,
        }
    }

    /// Skew_Time. v3 (RFC 5798 §6.1): ((256 - Priority) *
    /// Master_Adver_Interval) / 256; computed at nanosecond precision where
    /// the RFC counts centiseconds, so short intervals keep a non-zero skew.
    /// v2 (RFC 3768 §6.1): (256 - Priority) / 256 seconds, whatever the
    /// interval.
    fn skew_time(&self) -> Duration {
        let weight = 256 - u32::from(self.priority);
        match self.params.version {
            Version::V3 => self.master_adver_int * weight / 256,
            Version::V2 => Duration::from_secs(1) * weight / 256,
        }
    }

    /// Master_Down_Interval = 3 * interval + Skew_Time; v3 uses the learned
    /// Master_Adver_Interval, v2 its own Advertisement_Interval, which the
    /// master's must equal. We derive Skew_Time from the interval at each
    /// use: RFC 5798 §6.4.2 lists only "recompute Master_Down_Interval"
    /// after learning a new interval, but Skew_Time depends on it too, and
    /// RFC 9568 §6.4.2 adds that step.
    fn master_down_interval(&self) -> Duration {
        let interval = match self.params.version {
            Version::V3 => self.master_adver_int,
            Version::V2 => self.params.advert_int,
        };
        interval * 3 + self.skew_time()
    }
}

/// Giving up the VIPs when leaving `from`; `resign` announces it with a
/// priority-0 advert first.
fn release(from: State, resign: bool) -> Vec<Action> {
    match (from, resign) {
        (State::Master, true) => vec![
            Action::SendAdvert {
                priority: RESIGN_PRIORITY,
            },
            Action::RemoveVips,
        ],
        (State::Master, false) => vec![Action::RemoveVips],
        _ => Vec::new(),
    }
}

/// "3.61s", trimmed, for reasons a human reads in the log.
fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn params(priority: u8) -> Params {
        Params {
            version: Version::V3,
            priority,
            advert_int: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            primary_ip: ip(5),
        }
    }

    fn advert(priority: u8, last: u8) -> Received {
        Received {
            priority,
            src: ip(last),
            max_advert_int: Duration::from_secs(1),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn backup(p: Params, t0: Instant) -> Machine {
        let mut m = Machine::new(p, t0);
        m.startup(t0);
        assert_eq!(m.state(), State::Backup);
        m
    }

    fn master(p: Params, t0: Instant) -> Machine {
        let mut m = backup(p, t0);
        let at = m.next_deadline().unwrap();
        m.on_timer(at);
        assert_eq!(m.state(), State::Master);
        m
    }

    fn transitions(actions: &[Action]) -> Vec<(State, State)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transition { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    fn reason(actions: &[Action]) -> String {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Transition { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn params_come_from_keepalived_vocabulary() {
        let c: config::Config = hastack_rt::config::parse(
            std::path::Path::new("v.yaml"),
            "instances:\n  a:\n    interface: eth0\n    virtual_router_id: 51\n    priority: 150\n    advert_int: 2s\n    nopreempt: true\n    preempt_delay: 5s\n    virtual_ipaddress: [10.0.0.100/24]\n",
        )
        .unwrap();
        let instance = &c.instances["a"];
        let p = Params::from_config(instance, ip(5));
        assert_eq!(p.version, Version::V2);
        assert_eq!(p.priority, 150);
        assert_eq!(p.advert_int, Duration::from_secs(2));
        assert!(!p.preempt);
        assert_eq!(p.preempt_delay, Duration::from_secs(5));
    }

    #[test]
    fn v3_timing_follows_rfc_5798() {
        let t0 = Instant::now();
        let m = backup(params(100), t0);
        // 3 * 1s + (156 * 1s) / 256 = 3.609375s
        assert_eq!(
            m.next_deadline(),
            Some(t0 + ms(3609) + Duration::from_micros(375))
        );
    }

    #[test]
    fn v2_skew_ignores_the_interval() {
        let t0 = Instant::now();
        let mut p = params(100);
        p.version = Version::V2;
        p.advert_int = Duration::from_secs(2);
        let m = backup(p, t0);
        // RFC 3768: 3 * 2s + 156/256 s, not 156/256 * 2s.
        assert_eq!(
            m.next_deadline(),
            Some(t0 + ms(6609) + Duration::from_micros(375))
        );
    }

    #[test]
    fn v2_advert_with_another_interval_is_discarded() {
        let t0 = Instant::now();
        let mut p = params(100);
        p.version = Version::V2;
        let mut m = backup(p, t0);
        let before = m.next_deadline();
        let mut a = advert(200, 9);
        a.max_advert_int = Duration::from_secs(3);
        assert_eq!(m.on_advert(a, t0 + ms(500)), vec![]);
        assert_eq!(m.next_deadline(), before);
        assert_eq!(m.master(), None);
    }

    #[test]
    fn owner_starts_as_master_with_advert_and_garp() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(255), t0);
        let out = m.startup(t0);
        assert_eq!(transitions(&out), vec![(State::Initialize, State::Master)]);
        assert_eq!(
            out[1..],
            [
                Action::SendAdvert { priority: 255 },
                Action::AddVips,
                Action::Gratuitous
            ]
        );
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(m.master(), Some(ip(5)));
        assert!(m.accepts_vip_traffic());
    }

    #[test]
    fn master_down_timer_expiry_takes_over() {
        let t0 = Instant::now();
        let mut m = backup(params(100), t0);
        m.on_advert(advert(200, 9), t0 + ms(100));
        assert_eq!(m.master(), Some(ip(9)));
        let at = m.next_deadline().unwrap();
        assert_eq!(m.on_timer(at - ms(1)), vec![]);
        let out = m.on_timer(at);
        assert_eq!(transitions(&out), vec![(State::Backup, State::Master)]);
        assert_eq!(reason(&out), "master down: no advert for 3.609s");
        assert!(out.contains(&Action::SendAdvert { priority: 100 }));
        assert!(out.contains(&Action::AddVips));
        assert!(out.contains(&Action::Gratuitous));
        assert!(!m.accepts_vip_traffic(), "no accept_mode");
    }

    #[test]
    fn backup_hearing_priority_0_waits_only_skew_time() {
        let t0 = Instant::now();
        let mut m = backup(params(100), t0);
        m.on_advert(advert(200, 9), t0 + ms(100));
        let t = t0 + ms(500);
        assert_eq!(m.on_advert(advert(0, 9), t), vec![]);
        assert_eq!(
            m.next_deadline(),
            Some(t + ms(609) + Duration::from_micros(375))
        );
        assert_eq!(m.master(), None);
        let out = m.on_timer(m.next_deadline().unwrap());
        assert_eq!(reason(&out), "master 10.0.0.9 resigned (priority 0)");
    }

    #[test]
    fn backup_defers_to_higher_or_equal_priority_and_learns_its_interval() {
        let t0 = Instant::now();
        let mut m = backup(params(100), t0);
        for (k, p) in [200, 100].into_iter().enumerate() {
            let t = t0 + Duration::from_secs(3 * k as u64 + 3);
            let mut a = advert(p, 9);
            a.max_advert_int = ms(200);
            assert_eq!(m.on_advert(a, t), vec![]);
            // 3 * 200ms + 156 * 200ms / 256
            assert_eq!(
                m.next_deadline(),
                Some(t + ms(600) + ms(121) + Duration::from_micros(875))
            );
        }
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn lower_priority_master_is_preempted_when_its_adverts_are_ignored() {
        let t0 = Instant::now();
        let mut m = backup(params(150), t0);
        let first = m.next_deadline();
        for k in 1..=3 {
            m.on_advert(advert(100, 9), t0 + Duration::from_secs(k));
            assert_eq!(
                m.next_deadline(),
                first,
                "lower adverts must not reset the timer"
            );
        }
        let out = m.on_timer(first.unwrap());
        assert_eq!(transitions(&out), vec![(State::Backup, State::Master)]);
        assert_eq!(reason(&out), "preempting 10.0.0.9 priority 100 (ours 150)");
    }

    #[test]
    fn nopreempt_never_takes_over_from_a_live_lower_master() {
        let t0 = Instant::now();
        let mut p = params(150);
        p.preempt = false;
        let mut m = backup(p, t0);
        for k in 1..=100 {
            let t = t0 + Duration::from_secs(k);
            assert_eq!(m.on_timer(t), vec![]);
            m.on_advert(advert(100, 9), t);
        }
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.master(), Some(ip(9)));
        // ...but it still takes over once that master goes quiet.
        let at = m.next_deadline().unwrap();
        assert_eq!(reason(&m.on_timer(at)), "master down: no advert for 3.414s");
    }

    #[test]
    fn preempt_delay_defers_to_the_lower_master_then_takes_over() {
        let t0 = Instant::now();
        let mut p = params(150);
        p.preempt_delay = Duration::from_secs(10);
        let mut m = backup(p, t0);
        let first = t0 + Duration::from_secs(1);
        for k in 1..=12u64 {
            let t = t0 + Duration::from_secs(k);
            let out = m.on_timer(t);
            if t < first + Duration::from_secs(10) {
                assert_eq!(out, vec![], "took over {k}s in, before the delay");
            } else {
                assert_eq!(transitions(&out), vec![(State::Backup, State::Master)]);
                assert_eq!(
                    reason(&out),
                    "preempt_delay 10s elapsed; preempting 10.0.0.9 priority 100 (ours 150)"
                );
                assert_eq!(t, first + Duration::from_secs(10));
                return;
            }
            m.on_advert(advert(100, 9), t);
        }
        panic!("never took over");
    }

    #[test]
    fn preempt_delay_restarts_when_a_proper_master_intervenes() {
        let t0 = Instant::now();
        let mut p = params(150);
        p.preempt_delay = Duration::from_secs(10);
        let mut m = backup(p, t0);
        m.on_advert(advert(100, 9), t0 + Duration::from_secs(1));
        m.on_advert(advert(200, 8), t0 + Duration::from_secs(2));
        for k in 3..20 {
            let t = t0 + Duration::from_secs(k);
            if !m.on_timer(t).is_empty() {
                assert_eq!(
                    k, 13,
                    "the delay runs from the first lower advert after 200"
                );
                return;
            }
            m.on_advert(advert(100, 9), t);
        }
        panic!("never took over");
    }

    #[test]
    fn master_answers_priority_0_at_once() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        let t = t0 + ms(4000);
        assert_eq!(
            m.on_advert(advert(0, 9), t),
            vec![Action::SendAdvert { priority: 100 }]
        );
        assert_eq!(m.next_deadline(), Some(t + Duration::from_secs(1)));
    }

    #[test]
    fn master_yields_to_higher_priority() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        let out = m.on_advert(advert(150, 2), t0 + ms(4000));
        assert_eq!(transitions(&out), vec![(State::Master, State::Backup)]);
        assert_eq!(
            reason(&out),
            "preempted by 10.0.0.2 priority 150 (ours 100)"
        );
        assert_eq!(out[1..], [Action::RemoveVips]);
        assert_eq!(m.master(), Some(ip(2)));
        assert_eq!(
            m.next_deadline(),
            Some(t0 + ms(4000) + ms(3609) + Duration::from_micros(375))
        );
    }

    #[test]
    fn master_yields_to_equal_priority_from_higher_address() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        let out = m.on_advert(advert(100, 9), t0 + ms(4000));
        assert_eq!(transitions(&out), vec![(State::Master, State::Backup)]);
        assert_eq!(
            reason(&out),
            "equal priority 100 and 10.0.0.9 > our 10.0.0.5"
        );
    }

    #[test]
    fn master_keeps_vips_against_equal_priority_from_lower_address() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        // The other claimant hears us at once, and clients get our MAC back.
        let reclaim = vec![Action::SendAdvert { priority: 100 }, Action::Gratuitous];
        assert_eq!(m.on_advert(advert(100, 2), t0 + ms(4000)), reclaim);
        assert_eq!(m.next_deadline(), Some(t0 + ms(5000)));
        // Once per Master_Down_Interval (3.609s here), not per advert.
        assert_eq!(m.on_advert(advert(99, 9), t0 + ms(4100)), vec![]);
        assert_eq!(m.on_advert(advert(99, 9), t0 + ms(7600)), vec![]);
        assert_eq!(m.on_advert(advert(99, 9), t0 + ms(7700)), reclaim);
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn master_advertises_every_interval() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        let start = m.next_deadline().unwrap();
        for k in 0..5 {
            let at = m.next_deadline().unwrap();
            assert_eq!(at, start + Duration::from_secs(k));
            assert_eq!(m.on_timer(at - ms(1)), vec![]);
            assert_eq!(m.on_timer(at), vec![Action::SendAdvert { priority: 100 }]);
        }
    }

    #[test]
    fn owner_never_yields_and_keeps_255_under_tracking() {
        let t0 = Instant::now();
        let mut p = params(255);
        p.primary_ip = ip(1);
        let mut m = Machine::new(p, t0);
        m.startup(t0);
        assert_eq!(m.set_effective_priority(50, t0), vec![]);
        assert_eq!(m.priority(), 255);
        assert_eq!(
            m.on_advert(advert(254, 9), t0 + ms(100)),
            vec![Action::SendAdvert { priority: 255 }, Action::Gratuitous]
        );
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn fault_as_master_resigns_then_stays_silent() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        let out = m.fault(t0 + ms(4000), "eth0 down");
        assert_eq!(transitions(&out), vec![(State::Master, State::Fault)]);
        assert_eq!(reason(&out), "eth0 down");
        assert_eq!(
            out[1..],
            [Action::SendAdvert { priority: 0 }, Action::RemoveVips]
        );
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.on_timer(t0 + ms(9000)), vec![]);
        assert_eq!(m.on_advert(advert(0, 9), t0 + ms(9000)), vec![]);
        assert_eq!(m.master(), None);
    }

    #[test]
    fn recovery_from_fault_goes_to_backup_not_master() {
        let t0 = Instant::now();
        let mut m = master(params(200), t0);
        let t = t0 + ms(4000);
        let out = m.set_effective_priority(0, t);
        assert_eq!(transitions(&out), vec![(State::Master, State::Fault)]);
        assert_eq!(reason(&out), "effective priority 0 (a tracked failure)");
        let out = m.set_effective_priority(180, t + ms(10));
        assert_eq!(transitions(&out), vec![(State::Fault, State::Backup)]);
        assert_eq!(m.priority(), 180);
        assert!(m.next_deadline().is_some());
    }

    #[test]
    fn fault_clears_only_when_every_cause_clears() {
        let t0 = Instant::now();
        let mut m = backup(params(100), t0);
        m.fault(t0, "eth0 down");
        assert_eq!(m.set_effective_priority(0, t0), vec![]);
        assert_eq!(m.recover(t0), vec![]);
        assert_eq!(m.state(), State::Fault);
        let out = m.set_effective_priority(100, t0);
        assert_eq!(transitions(&out), vec![(State::Fault, State::Backup)]);
    }

    #[test]
    fn startup_with_a_fault_stays_in_fault() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(100), t0);
        m.fault(t0, "eth0 down");
        let out = m.startup(t0);
        assert_eq!(transitions(&out), vec![(State::Initialize, State::Fault)]);
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn shutdown_as_master_resigns_with_priority_0() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        let out = m.shutdown(t0 + ms(5000));
        assert_eq!(transitions(&out), vec![(State::Master, State::Initialize)]);
        assert_eq!(
            out[1..],
            [Action::SendAdvert { priority: 0 }, Action::RemoveVips]
        );
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.shutdown(t0 + ms(5001)), vec![]);
    }

    #[test]
    fn shutdown_as_backup_sends_nothing() {
        let t0 = Instant::now();
        let mut m = backup(params(100), t0);
        let out = m.shutdown(t0);
        assert_eq!(transitions(&out), vec![(State::Backup, State::Initialize)]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn own_looped_back_advert_is_ignored() {
        let t0 = Instant::now();
        let mut m = master(params(100), t0);
        assert_eq!(m.on_advert(advert(100, 5), t0 + ms(4000)), vec![]);
        assert_eq!(m.state(), State::Master);
    }
}

/// One machine fed thousands of random input sequences: whatever arrives,
/// its actions stay consistent with its state.
#[cfg(test)]
mod invariants {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[derive(Clone, Debug)]
    enum Input {
        Startup,
        Advert { priority: u8, src: u8 },
        Timer,
        Wait(u64),
        Fault,
        Recover,
        Priority(u8),
        Shutdown,
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            1 => Just(Input::Startup),
            6 => (any::<u8>(), 4..=6u8).prop_map(|(priority, src)| Input::Advert { priority, src }),
            4 => Just(Input::Timer),
            3 => (0..5_000u64).prop_map(Input::Wait),
            1 => Just(Input::Fault),
            1 => Just(Input::Recover),
            1 => any::<u8>().prop_map(Input::Priority),
            1 => Just(Input::Shutdown),
        ]
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn actions_agree_with_state(
            priority in 1..=255u8,
            preempt in any::<bool>(),
            delay_s in 0..3u64,
            v2 in any::<bool>(),
            inputs in proptest::collection::vec(input(), 1..80),
        ) {
            let t0 = Instant::now();
            let params = Params {
                version: if v2 { Version::V2 } else { Version::V3 },
                priority,
                advert_int: Duration::from_secs(1),
                preempt,
                preempt_delay: Duration::from_secs(delay_s),
                accept_mode: false,
                primary_ip: ip(5),
            };
            let mut m = Machine::new(params, t0);
            let mut now = t0;
            let mut holding_vips = false;
            for i in inputs {
                let before = m.state();
                let out = match i {
                    Input::Startup => m.startup(now),
                    Input::Advert { priority, src } => m.on_advert(
                        Received { priority, src: ip(src), max_advert_int: Duration::from_secs(1) },
                        now,
                    ),
                    Input::Timer => match m.next_deadline() {
                        Some(at) => {
                            now = now.max(at);
                            m.on_timer(now)
                        }
                        None => m.on_timer(now),
                    },
                    Input::Wait(ms) => {
                        // A late wake-up: the shell overslept the deadline.
                        now += Duration::from_millis(ms);
                        m.on_timer(now)
                    }
                    Input::Fault => m.fault(now, "test fault"),
                    Input::Recover => m.recover(now),
                    Input::Priority(p) => m.set_effective_priority(p, now),
                    Input::Shutdown => m.shutdown(now),
                };
                let moves: Vec<_> = out
                    .iter()
                    .filter_map(|a| match a {
                        Action::Transition { from, to, .. } => Some((*from, *to)),
                        _ => None,
                    })
                    .collect();
                if before == m.state() {
                    prop_assert!(moves.is_empty(), "{:?}", out);
                } else {
                    prop_assert_eq!(moves, vec![(before, m.state())]);
                    let first_is_transition = matches!(out[0], Action::Transition { .. });
                    prop_assert!(first_is_transition, "{:?}", out);
                }
                for a in &out {
                    match a {
                        Action::AddVips => {
                            prop_assert!(!holding_vips);
                            holding_vips = true;
                        }
                        Action::RemoveVips => {
                            prop_assert!(holding_vips);
                            holding_vips = false;
                        }
                        Action::SendAdvert { priority: 0 } => {
                            prop_assert_eq!(before, State::Master);
                        }
                        Action::SendAdvert { priority } => {
                            prop_assert_eq!(m.state(), State::Master);
                            prop_assert_eq!(*priority, m.priority());
                        }
                        Action::Gratuitous => prop_assert!(holding_vips),
                        Action::Transition { .. } => {}
                    }
                }
                prop_assert_eq!(holding_vips, m.state() == State::Master);
                let timed = matches!(m.state(), State::Master | State::Backup);
                prop_assert_eq!(m.next_deadline().is_some(), timed);
                if let Some(at) = m.next_deadline() {
                    prop_assert!(at >= now);
                }
            }
        }
    }
}

/// Two machines on a lossless link with a fixed one-way delay, run as a
/// discrete-event simulation.
#[cfg(test)]
mod election {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    struct Link {
        machines: [Machine; 2],
        starts: [Instant; 2],
        started: [bool; 2],
        ips: [IpAddr; 2],
        advert_int: Duration,
        delay: Duration,
        in_flight: Vec<(Instant, usize, Received)>,
        /// Tracking's verdicts, injected at their times.
        script: Vec<(Instant, usize, Op)>,
        now: Instant,
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Fault,
        Recover,
        Priority(u8),
    }

    enum Event {
        Start(usize),
        Timer(usize),
        Deliver(usize),
        Script(usize),
    }

    impl Link {
        fn next_event(&self) -> Option<(Instant, Event)> {
            let starts = (0..2)
                .filter(|&i| !self.started[i])
                .map(|i| (self.starts[i], Event::Start(i)));
            let timers = (0..2).filter_map(|i| {
                self.machines[i]
                    .next_deadline()
                    .map(|t| (t, Event::Timer(i)))
            });
            let deliveries = self
                .in_flight
                .iter()
                .enumerate()
                .map(|(k, (t, _, _))| (*t, Event::Deliver(k)));
            let script = self
                .script
                .iter()
                .enumerate()
                .filter(|(_, (_, i, _))| self.started[*i])
                .map(|(k, (t, _, _))| (*t, Event::Script(k)));
            starts
                .chain(script)
                .chain(deliveries)
                .chain(timers)
                .min_by_key(|(t, _)| *t)
        }

        fn step(&mut self) {
            let Some((t, event)) = self.next_event() else {
                panic!("the simulation ran out of events");
            };
            self.now = t;
            let (from, actions) = match event {
                Event::Start(i) => {
                    self.started[i] = true;
                    (i, self.machines[i].startup(t))
                }
                Event::Timer(i) => (i, self.machines[i].on_timer(t)),
                Event::Deliver(k) => {
                    let (_, to, advert) = self.in_flight.remove(k);
                    (to, self.machines[to].on_advert(advert, t))
                }
                Event::Script(k) => {
                    let (_, i, op) = self.script.remove(k);
                    let m = &mut self.machines[i];
                    let out = match op {
                        Op::Fault => m.fault(t, "scripted fault"),
                        Op::Recover => m.recover(t),
                        Op::Priority(p) => m.set_effective_priority(p, t),
                    };
                    (i, out)
                }
            };
            for a in actions {
                if let Action::SendAdvert { priority } = a {
                    let advert = Received {
                        priority,
                        src: self.ips[from],
                        max_advert_int: self.advert_int,
                    };
                    self.in_flight.push((t + self.delay, 1 - from, advert));
                }
            }
        }

        fn masters(&self) -> Vec<usize> {
            (0..2)
                .filter(|&i| self.machines[i].state() == State::Master)
                .collect()
        }
    }

    fn link(
        version: Version,
        advert_int: Duration,
        prios: [u8; 2],
        ips: [IpAddr; 2],
        starts_ms: [u64; 2],
        delay: Duration,
    ) -> Link {
        let t0 = Instant::now();
        let machine = |i: usize| {
            Machine::new(
                Params {
                    version,
                    priority: prios[i],
                    advert_int,
                    preempt: true,
                    preempt_delay: Duration::ZERO,
                    accept_mode: false,
                    primary_ip: ips[i],
                },
                t0,
            )
        };
        Link {
            machines: [machine(0), machine(1)],
            starts: starts_ms.map(|ms| t0 + Duration::from_millis(ms)),
            started: [false; 2],
            ips,
            advert_int,
            delay,
            in_flight: Vec::new(),
            script: Vec::new(),
            now: t0,
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Fault),
            Just(Op::Recover),
            any::<u8>().prop_map(Op::Priority),
        ]
    }

    fn timing() -> impl Strategy<Value = (Version, Duration)> {
        prop_oneof![
            (1..=3u64).prop_map(|s| (Version::V2, Duration::from_secs(s))),
            (10..=300u64).prop_map(|cs| (Version::V3, Duration::from_millis(cs * 10))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn two_routers_converge_to_the_higher_one(
            (version, advert_int) in timing(),
            prios in [1..=255u8, 1..=255u8],
            octets in (1..=254u8, 1..=254u8).prop_filter("distinct", |(a, b)| a != b),
            start_b in prop_oneof![Just(0u64), 0..10_000u64],
            delay_ms in 0..=20u64,
        ) {
            let ips = [octets.0, octets.1].map(|o| IpAddr::V4(Ipv4Addr::new(10, 0, 0, o)));
            let delay = Duration::from_millis(delay_ms);
            let mut l = link(version, advert_int, prios, ips, [0, start_b], delay);
            let last_start = l.starts[0].max(l.starts[1]);
            let down = l.machines.iter().map(|m| m.master_down_interval()).max().unwrap();
            let converged_by = last_start + down + advert_int + delay;
            let until = converged_by + advert_int * 20;
            while l.now < until {
                l.step();
                if l.now < converged_by {
                    continue;
                }
                let masters = l.masters();
                prop_assert_eq!(masters.len(), 1, "at {:?} past the bound", l.now - converged_by);
                let winner = masters[0];
                let loser = 1 - winner;
                // The tie-break only settles a clash of two masters; an
                // equal-priority backup defers to whoever got there first.
                prop_assert!(prios[winner] >= prios[loser]);
                if prios[0] == prios[1] && start_b == 0 && delay_ms > 0 {
                    prop_assert!(ips[winner] > ips[loser]);
                }
                prop_assert_eq!(l.machines[loser].state(), State::Backup);
                prop_assert_eq!(l.machines[loser].master(), Some(ips[winner]));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Faults, recoveries and priority changes at random times; once
        /// the last one is in, the pair settles as if it had just started.
        #[test]
        fn two_routers_settle_after_tracking_changes(
            (version, advert_int) in timing(),
            prios in [1..=254u8, 1..=254u8],
            script in proptest::collection::vec((0..20_000u64, 0..2usize, op()), 0..12),
            delay_ms in 0..=20u64,
        ) {
            let ips = [1, 2].map(|o| IpAddr::V4(Ipv4Addr::new(10, 0, 0, o)));
            let delay = Duration::from_millis(delay_ms);
            let mut l = link(version, advert_int, prios, ips, [0, 0], delay);
            let t0 = l.starts[0];
            let last = t0 + Duration::from_millis(20_001);
            l.script = script
                .into_iter()
                .map(|(ms, i, op)| (t0 + Duration::from_millis(ms), i, op))
                .collect();
            for (i, p) in prios.into_iter().enumerate() {
                l.script.push((last, i, Op::Recover));
                l.script.push((last, i, Op::Priority(p)));
            }
            let down = l.machines.iter().map(|m| m.master_down_interval()).max().unwrap();
            let converged_by = last + down + advert_int + delay;
            let until = converged_by + advert_int * 20;
            while l.now < until {
                l.step();
                if l.now < converged_by {
                    continue;
                }
                let masters = l.masters();
                prop_assert_eq!(masters.len(), 1, "at {:?} past the bound", l.now - converged_by);
                let winner = masters[0];
                prop_assert!(prios[winner] >= prios[1 - winner]);
                prop_assert_eq!(l.machines[1 - winner].state(), State::Backup);
            }
        }
    }
}
