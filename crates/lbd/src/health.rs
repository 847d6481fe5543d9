//! A server's health-check state machine, apart from the checks themselves
//! (TCP connect, httpchk through checkd, mysql-check), so that "down after
//! `fall` failures, up after `rise` successes" and the check schedule are
//! proven by unit tests with injected time rather than by killing proxies.
//!
//! It is HAProxy's: one counter `health` from 0 to `rise + fall - 1`; the
//! server is UP while `health >= rise`. A success while UP restores full
//! health, a failure while DOWN starts the climb over, so in effect `fall`
//! consecutive failures take an UP server down and `rise` consecutive
//! successes bring a DOWN one up. The stats text is HAProxy's too: `UP`,
//! `UP 2/3` (going down: 2 of 3 failures still to go), `DOWN 1/2` (going up:
//! 1 of 2 successes done), `DOWN`.
//!
//! The shell runs one check at a time per server: it starts the next one at
//! [`Check::next_check_at`], reports its outcome (a check that outlasts
//! `timeout check` is a failure) to [`Check::observe`], and logs the
//! [`Transition`] it may return. As in HAProxy, the next check is due one
//! interval after the outcome: `inter` while fully UP, `fastinter` while in
//! transition (or not yet checked), `downinter` while fully DOWN.
//!
//! Initial state ([`InitState`], HAProxy 3.1's `init-state`): HAProxy 2.6
//! has no such setting and starts every checked server UP, one failure away
//! from DOWN (`up` here), so a proxy that is dead or answering 503 at start
//! gets clients until its first check fails. lbd's default is `down`: no
//! client goes to a server no check has vouched for, and since the first
//! check runs at once the cost is one check's round trip after a start or a
//! reload that adds the server. MySQL sessions are long-lived, so a client
//! placed on a bad proxy would stay there, not retry.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a server is taken to be before its checks have spoken.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InitState {
    /// UP; `fall` failures take it down.
    #[serde(alias = "fully_up")]
    FullyUp,
    /// UP; one failure takes it down. HAProxy's behaviour (and 2.6's only one).
    Up,
    /// DOWN; one success brings it up. lbd's default (see the module docs).
    #[default]
    Down,
    /// DOWN; `rise` successes bring it up.
    #[serde(alias = "fully_down")]
    FullyDown,
}

impl InitState {
    /// What HAProxy does when `init-state` is not set.
    pub const HAPROXY: InitState = InitState::Up;

    /// The name a config uses, HAProxy's.
    pub fn name(self) -> &'static str {
        match self {
            InitState::FullyUp => "fully-up",
            InitState::Up => "up",
            InitState::Down => "down",
            InitState::FullyDown => "fully-down",
        }
    }
}

/// A server's check settings, HAProxy's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Consecutive successes that bring a DOWN server up (at least 1).
    pub rise: u32,
    /// Consecutive failures that take an UP server down (at least 1).
    pub fall: u32,
    /// Between checks while fully UP.
    pub inter: Duration,
    /// Between checks while in transition; `inter` when unset.
    pub fastinter: Option<Duration>,
    /// Between checks while fully DOWN; `inter` when unset.
    pub downinter: Option<Duration>,
    pub init_state: InitState,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            rise: 2,
            fall: 3,
            inter: Duration::from_secs(2),
            fastinter: None,
            downinter: None,
            init_state: InitState::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Up,
    Down,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Up => "UP",
            State::Down => "DOWN",
        })
    }
}

/// A change between UP and DOWN: one log event, with the outcome of the
/// check that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// What `/status` and the stats page show of a server's checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub state: State,
    /// HAProxy's stats text: `UP`, `UP 2/3`, `DOWN 1/2`, `DOWN`.
    pub text: String,
    pub health: u32,
    pub rise: u32,
    pub fall: u32,
    /// The last check's outcome, `None` before the first.
    pub last_check: Option<Outcome>,
    /// Why the last failed check failed, kept after a recovery.
    pub last_failure: Option<String>,
    /// Failed checks while not fully DOWN (HAProxy's `chkfail`).
    pub failed_checks: u64,
    /// UP to DOWN transitions (HAProxy's `chkdown`).
    pub down_transitions: u64,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub passed: bool,
    pub detail: String,
}

/// The health-check state of one server.
#[derive(Clone, Debug)]
pub struct Check {
    params: Params,
    health: u32,
    due: Instant,
    changed_at: Instant,
    /// DOWN time before the current state began.
    down_before: Duration,
    last_check: Option<Outcome>,
    last_failure: Option<String>,
    failed_checks: u64,
    down_transitions: u64,
}

impl Check {
    /// A server in `params.init_state`, its first check due at `now`. To
    /// spread the first checks of n servers over one interval as HAProxy
    /// does, follow with [`Check::first_check_at`].
    pub fn new(params: Params, now: Instant) -> Check {
        let params = Params {
            rise: params.rise.max(1),
            fall: params.fall.max(1),
            ..params
        };
        let mut check = Check {
            params,
            health: 0,
            due: now,
            changed_at: now,
            down_before: Duration::ZERO,
            last_check: None,
            last_failure: None,
            failed_checks: 0,
            down_transitions: 0,
        };
        check.health = check.initial_health();
        check
    }

    /// Moves the first check to `at`.
    pub fn first_check_at(self, at: Instant) -> Check {
        Check { due: at, ..self }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn state(&self) -> State {
        if self.health >= self.params.rise {
            State::Up
        } else {
            State::Down
        }
    }

    pub fn is_up(&self) -> bool {
        self.state() == State::Up
    }

    /// Folds in the outcome of a check that ended at `now`: `Ok` with what
    /// was seen (may be empty), `Err` with why it failed. Returns the
    /// transition it caused, if any, and schedules the next check.
    pub fn observe(&mut self, result: Result<String, String>, now: Instant) -> Option<Transition> {
        let from = self.state();
        let (rise, full) = (self.params.rise, self.full_health());
        let outcome = match result {
            Ok(detail) => {
                if self.health < full {
                    self.health += 1;
                    if self.health >= rise {
                        self.health = full;
                    }
                }
                Outcome {
                    passed: true,
                    detail: or(detail, "check passed"),
                }
            }
            Err(reason) => {
                if self.health > 0 {
                    self.failed_checks += 1;
                    self.health -= 1;
                    if self.health < rise {
                        self.health = 0;
                    }
                }
                let reason = or(reason, "check failed");
                self.last_failure = Some(reason.clone());
                Outcome {
                    passed: false,
                    detail: reason,
                }
            }
        };
        let reason = outcome.detail.clone();
        self.last_check = Some(outcome);
        self.due = after(now, self.interval());
        self.changed(from, now, reason)
    }

    /// When the next check should start: never before `now`.
    pub fn next_check_at(&self, now: Instant) -> Instant {
        self.due.max(now)
    }

    /// The wait after a check in the current state (HAProxy's
    /// `srv_getinter`).
    pub fn interval(&self) -> Duration {
        let p = &self.params;
        if self.health == self.full_health() {
            p.inter
        } else if self.health == 0 {
            p.downinter.unwrap_or(p.inter)
        } else {
            p.fastinter.unwrap_or(p.inter)
        }
    }

    pub fn status(&self) -> Status {
        let (rise, fall) = (self.params.rise, self.params.fall);
        let text = match self.state() {
            State::Up if self.health == self.full_health() => "UP".to_string(),
            State::Up => format!("UP {}/{fall}", self.health - rise + 1),
            State::Down if self.health == 0 => "DOWN".to_string(),
            State::Down => format!("DOWN {}/{rise}", self.health),
        };
        Status {
            state: self.state(),
            text,
            health: self.health,
            rise,
            fall,
            last_check: self.last_check.clone(),
            last_failure: self.last_failure.clone(),
            failed_checks: self.failed_checks,
            down_transitions: self.down_transitions,
        }
    }

    /// When the server last changed between UP and DOWN (or was created):
    /// HAProxy's `lastchg`.
    pub fn last_change(&self) -> Instant {
        self.changed_at
    }

    /// Total time DOWN since creation, up to `now`: HAProxy's `downtime`.
    pub fn downtime(&self, now: Instant) -> Duration {
        match self.state() {
            State::Up => self.down_before,
            State::Down => self.down_before + now.saturating_duration_since(self.changed_at),
        }
    }

    /// Applies new settings from a reload, keeping the state and how far
    /// the server is along its way up or down (clamped to the new counts).
    pub fn reconfigure(&mut self, params: Params, now: Instant) {
        let (old_rise, up) = (self.params.rise, self.is_up());
        let params = Params {
            rise: params.rise.max(1),
            fall: params.fall.max(1),
            ..params
        };
        self.health = if up {
            // Failures still to go before DOWN, 1 to fall.
            let margin = (self.health - old_rise + 1).min(params.fall);
            params.rise + margin - 1
        } else {
            self.health.min(params.rise - 1)
        };
        self.params = params;
        self.due = self.due.min(after(now, self.interval()));
    }

    /// Sets the state by hand (HAProxy's `set server … health up|down`):
    /// full health or none, checks going on from there.
    pub fn force(&mut self, to: State, reason: &str, now: Instant) -> Option<Transition> {
        let from = self.state();
        self.health = match to {
            State::Up => self.full_health(),
            State::Down => 0,
        };
        self.due = after(now, self.interval());
        self.changed(from, now, reason.to_string())
    }

    /// Back to the initial state with a check due now, as when a server
    /// leaves maintenance.
    pub fn reset(&mut self, now: Instant) -> Option<Transition> {
        let from = self.state();
        self.health = self.initial_health();
        self.due = now;
        let reason = format!("init-state {}", self.params.init_state.name());
        self.changed(from, now, reason)
    }

    fn changed(&mut self, from: State, now: Instant, reason: String) -> Option<Transition> {
        let to = self.state();
        if to == from {
            return None;
        }
        match to {
            State::Up => {
                self.down_before += now.saturating_duration_since(self.changed_at);
            }
            State::Down => self.down_transitions += 1,
        }
        self.changed_at = now;
        Some(Transition { from, to, reason })
    }

    fn full_health(&self) -> u32 {
        self.params.rise + self.params.fall - 1
    }

    fn initial_health(&self) -> u32 {
        match self.params.init_state {
            InitState::FullyUp => self.full_health(),
            InitState::Up => self.params.rise,
            InitState::Down => self.params.rise - 1,
            InitState::FullyDown => 0,
        }
    }
}

fn or(text: String, default: &str) -> String {
    if text.trim().is_empty() {
        default.to_string()
    } else {
        text
    }
}

/// `now + d`, or `now` if that is past what an `Instant` can hold (a check
/// then runs at once rather than the daemon panicking).
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn params(init_state: InitState) -> Params {
        Params {
            inter: 2 * S,
            fastinter: Some(S / 2),
            downinter: Some(5 * S),
            init_state,
            ..Params::default()
        }
    }

    fn ok() -> Result<String, String> {
        Ok("HTTP 200: UP mycat_status".into())
    }

    fn refused() -> Result<String, String> {
        Err("connect: Connection refused".into())
    }

    fn text(c: &Check) -> String {
        c.status().text
    }

    #[test]
    fn defaults_are_haproxys_but_the_initial_state_is_down() {
        let p = Params::default();
        assert_eq!((p.rise, p.fall, p.inter), (2, 3, 2 * S));
        assert_eq!((p.fastinter, p.downinter), (None, None));
        assert_eq!(p.init_state, InitState::Down);
        assert_eq!(InitState::HAPROXY, InitState::Up);
    }

    #[test]
    fn a_dead_proxy_is_marked_down_after_fall_failed_checks() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        assert_eq!(text(&c), "UP");
        assert_eq!(c.observe(refused(), t0), None);
        assert_eq!(text(&c), "UP 2/3");
        assert_eq!(c.observe(refused(), t0 + S), None);
        assert_eq!(text(&c), "UP 1/3");
        assert!(c.is_up());
        let t = c.observe(refused(), t0 + 2 * S);
        assert_eq!(
            t,
            Some(Transition {
                from: State::Up,
                to: State::Down,
                reason: "connect: Connection refused".into()
            })
        );
        assert_eq!(text(&c), "DOWN");
        assert_eq!(c.state(), State::Down);
    }

    #[test]
    fn a_recovered_proxy_comes_back_after_rise_good_checks() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyDown), t0);
        assert_eq!(text(&c), "DOWN");
        assert_eq!(c.observe(ok(), t0), None);
        assert_eq!(text(&c), "DOWN 1/2");
        let t = c.observe(ok(), t0 + S).expect("up");
        assert_eq!((t.from, t.to), (State::Down, State::Up));
        assert_eq!(t.reason, "HTTP 200: UP mycat_status");
        assert_eq!(text(&c), "UP");
    }

    #[test]
    fn a_good_check_while_going_down_restores_full_health() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        c.observe(refused(), t0);
        c.observe(refused(), t0);
        assert_eq!(text(&c), "UP 1/3");
        assert_eq!(c.observe(ok(), t0), None);
        assert_eq!(text(&c), "UP");
        // So it takes `fall` failures in a row again.
        c.observe(refused(), t0);
        c.observe(refused(), t0);
        assert!(c.is_up());
    }

    #[test]
    fn a_failed_check_while_coming_up_starts_the_climb_over() {
        let t0 = Instant::now();
        let mut c = Check::new(
            Params {
                rise: 3,
                ..params(InitState::FullyDown)
            },
            t0,
        );
        c.observe(ok(), t0);
        c.observe(ok(), t0);
        assert_eq!(text(&c), "DOWN 2/3");
        assert_eq!(c.observe(refused(), t0), None);
        assert_eq!(text(&c), "DOWN");
        c.observe(ok(), t0);
        c.observe(ok(), t0);
        assert!(!c.is_up());
        assert!(c.observe(ok(), t0).is_some());
    }

    #[test]
    fn intervals_follow_the_state() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        // Stable UP: inter.
        c.observe(ok(), t0);
        assert_eq!(c.next_check_at(t0), t0 + 2 * S);
        // UP after a failure: fastinter, so a dead server is found sooner.
        c.observe(refused(), t0 + 2 * S);
        assert_eq!(c.next_check_at(t0), t0 + 2 * S + S / 2);
        c.observe(refused(), t0 + 3 * S);
        assert_eq!(c.interval(), S / 2);
        // Fully DOWN: downinter.
        c.observe(refused(), t0 + 4 * S);
        assert_eq!(c.next_check_at(t0), t0 + 9 * S);
        // DOWN but succeeding: fastinter.
        c.observe(ok(), t0 + 9 * S);
        assert_eq!(c.next_check_at(t0), t0 + 9 * S + S / 2);
        // UP again: inter.
        c.observe(ok(), t0 + 10 * S);
        assert_eq!(c.next_check_at(t0), t0 + 12 * S);
    }

    #[test]
    fn unset_fastinter_and_downinter_mean_inter() {
        let t0 = Instant::now();
        let mut c = Check::new(Params::default(), t0);
        assert_eq!(c.interval(), 2 * S); // DOWN 1/2
        c.observe(refused(), t0);
        assert_eq!(c.interval(), 2 * S); // DOWN
        c.observe(ok(), t0);
        c.observe(ok(), t0);
        c.observe(refused(), t0);
        assert_eq!(c.interval(), 2 * S); // UP 2/3
    }

    #[test]
    fn down_time_is_fall_times_the_fast_interval_after_the_first_failure() {
        // DESIGN.md §5: a dead sqlproxyd is marked down within fall × inter;
        // with fastinter set, the first failure at an `inter` tick and the
        // next ones `fastinter` apart.
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        let mut now = t0;
        let mut checks = 0;
        while c.is_up() {
            now = c.next_check_at(now);
            c.observe(refused(), now);
            checks += 1;
        }
        assert_eq!(checks, 3);
        assert_eq!(now - t0, 2 * (S / 2));
        let p = Params::default();
        let mut c = Check::new(
            Params {
                init_state: InitState::FullyUp,
                ..p
            },
            t0,
        );
        let mut now = c.next_check_at(t0);
        c.observe(ok(), now);
        while c.is_up() {
            now = c.next_check_at(now);
            c.observe(refused(), now);
        }
        assert_eq!(now - t0, 3 * p.inter, "fall × inter without fastinter");
    }

    #[test]
    fn each_initial_state_is_haproxys() {
        let t0 = Instant::now();
        let cases = [
            (InitState::FullyUp, "UP", State::Up, 3, 1),
            (InitState::Up, "UP 1/3", State::Up, 1, 1),
            (InitState::Down, "DOWN 1/2", State::Down, 1, 1),
            (InitState::FullyDown, "DOWN", State::Down, 1, 2),
        ];
        for (init, shown, state, failures_to_down, successes_to_up) in cases {
            let c = Check::new(params(init), t0);
            assert_eq!((text(&c).as_str(), c.state()), (shown, state), "{init:?}");
            assert_eq!(c.next_check_at(t0), t0, "{init:?}: first check at once");
            let mut probe = c.clone();
            let result = if state == State::Up { refused } else { ok };
            let needed = if state == State::Up {
                failures_to_down
            } else {
                successes_to_up
            };
            for k in 1..=needed {
                let t = probe.observe(result(), t0);
                assert_eq!(t.is_some(), k == needed, "{init:?} after {k}");
            }
        }
    }

    #[test]
    fn init_state_names_are_haproxys() {
        let all = [
            InitState::FullyUp,
            InitState::Up,
            InitState::Down,
            InitState::FullyDown,
        ];
        for init in all {
            let yaml = serde_json::to_string(&init).expect("serialize");
            assert_eq!(yaml, format!("\"{}\"", init.name()));
            let back: InitState = serde_json::from_str(&yaml).expect("deserialize");
            assert_eq!(back, init);
        }
        let snake: InitState = serde_json::from_str("\"fully_down\"").expect("alias");
        assert_eq!(snake, InitState::FullyDown);
        assert!(serde_json::from_str::<InitState>("\"maybe\"").is_err());
    }

    #[test]
    fn first_checks_can_be_spread() {
        let t0 = Instant::now();
        let c = Check::new(Params::default(), t0).first_check_at(t0 + S);
        assert_eq!(c.next_check_at(t0), t0 + S);
        // Never in the past.
        assert_eq!(c.next_check_at(t0 + 3 * S), t0 + 3 * S);
    }

    #[test]
    fn status_keeps_the_last_failure_reason() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        let s = c.status();
        assert_eq!((s.last_check, s.last_failure), (None, None));
        c.observe(
            Err("HTTP 503: DOWN mycat_status: connect refused".into()),
            t0,
        );
        c.observe(ok(), t0);
        let s = c.status();
        assert_eq!(
            s.last_failure.as_deref(),
            Some("HTTP 503: DOWN mycat_status: connect refused")
        );
        assert_eq!(
            s.last_check,
            Some(Outcome {
                passed: true,
                detail: "HTTP 200: UP mycat_status".into()
            })
        );
        assert_eq!((s.health, s.rise, s.fall), (4, 2, 3));
        assert_eq!(s.to_string(), "UP");
        // Empty details get a word.
        c.observe(Err(" ".into()), t0);
        assert_eq!(c.status().last_failure.as_deref(), Some("check failed"));
        c.observe(Ok(String::new()), t0);
        assert_eq!(
            c.status().last_check.map(|o| o.detail).as_deref(),
            Some("check passed")
        );
    }

    #[test]
    fn status_serializes_for_the_status_endpoint() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        c.observe(refused(), t0);
        let v = serde_json::to_value(c.status()).expect("json");
        assert_eq!(v["state"], "UP");
        assert_eq!(v["text"], "UP 2/3");
        assert_eq!(v["last_failure"], "connect: Connection refused");
        assert_eq!(v["last_check"]["passed"], false);
    }

    #[test]
    fn counters_are_haproxys_chkfail_and_chkdown() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        for _ in 0..3 {
            c.observe(refused(), t0);
        }
        // Failures while fully DOWN are not counted (HAProxy's chkfail).
        for _ in 0..5 {
            c.observe(refused(), t0);
        }
        let s = c.status();
        assert_eq!((s.failed_checks, s.down_transitions), (3, 1));
        c.observe(ok(), t0);
        c.observe(refused(), t0); // DOWN 1/2 -> DOWN: counted
        assert_eq!(c.status().failed_checks, 4);
    }

    #[test]
    fn downtime_adds_up_the_down_periods() {
        let t0 = Instant::now();
        let mut c = Check::new(
            Params {
                rise: 1,
                fall: 1,
                ..params(InitState::FullyUp)
            },
            t0,
        );
        assert_eq!(c.downtime(t0 + 5 * S), Duration::ZERO);
        c.observe(refused(), t0 + 10 * S);
        assert_eq!(c.last_change(), t0 + 10 * S);
        assert_eq!(c.downtime(t0 + 13 * S), 3 * S);
        c.observe(ok(), t0 + 14 * S);
        assert_eq!(c.downtime(t0 + 100 * S), 4 * S);
        c.observe(refused(), t0 + 100 * S);
        assert_eq!(c.downtime(t0 + 101 * S), 5 * S);
        // A server that starts DOWN is down from the start.
        let d = Check::new(params(InitState::Down), t0);
        assert_eq!(d.downtime(t0 + 2 * S), 2 * S);
        assert_eq!(d.last_change(), t0);
    }

    #[test]
    fn a_reload_keeps_the_state_and_the_progress() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        c.observe(refused(), t0);
        assert_eq!(text(&c), "UP 2/3");
        // fall 3 -> 5: still two failures to go... of five.
        c.reconfigure(
            Params {
                fall: 5,
                ..params(InitState::FullyDown)
            },
            t0,
        );
        assert_eq!(text(&c), "UP 2/5");
        // fall 5 -> 1: clamped, one failure to go.
        c.reconfigure(
            Params {
                fall: 1,
                ..Params::default()
            },
            t0,
        );
        assert_eq!(text(&c), "UP");
        assert!(c.observe(refused(), t0).is_some());
        c.observe(ok(), t0);
        assert_eq!(text(&c), "DOWN 1/2");
        c.reconfigure(
            Params {
                rise: 4,
                ..Params::default()
            },
            t0,
        );
        assert_eq!(text(&c), "DOWN 1/4");
        c.reconfigure(
            Params {
                rise: 1,
                ..Params::default()
            },
            t0,
        );
        assert_eq!(text(&c), "DOWN");
        assert!(!c.is_up());
    }

    #[test]
    fn a_reload_to_a_shorter_interval_brings_the_next_check_forward() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::FullyUp), t0);
        c.observe(ok(), t0);
        assert_eq!(c.next_check_at(t0), t0 + 2 * S);
        c.reconfigure(
            Params {
                inter: S,
                ..params(InitState::FullyUp)
            },
            t0,
        );
        assert_eq!(c.next_check_at(t0), t0 + S);
        c.reconfigure(
            Params {
                inter: 10 * S,
                ..params(InitState::FullyUp)
            },
            t0,
        );
        assert_eq!(c.next_check_at(t0), t0 + S, "a longer one waits its turn");
    }

    #[test]
    fn force_and_reset_are_transitions_too() {
        let t0 = Instant::now();
        let mut c = Check::new(params(InitState::Down), t0);
        let t = c.force(State::Up, "set by admin", t0).expect("transition");
        assert_eq!(
            (t.from, t.to, t.reason.as_str()),
            (State::Down, State::Up, "set by admin")
        );
        assert_eq!(text(&c), "UP");
        assert_eq!(c.force(State::Up, "again", t0), None);
        let t = c.reset(t0 + S).expect("back to init-state down");
        assert_eq!((t.to, t.reason.as_str()), (State::Down, "init-state down"));
        assert_eq!(text(&c), "DOWN 1/2");
        assert_eq!(c.next_check_at(t0), t0 + S);
        c.force(State::Down, "maintenance", t0 + S);
        assert_eq!(text(&c), "DOWN");
        assert_eq!(c.status().down_transitions, 1);
    }

    #[test]
    fn zero_rise_or_fall_act_as_one() {
        let t0 = Instant::now();
        let mut c = Check::new(
            Params {
                rise: 0,
                fall: 0,
                init_state: InitState::FullyUp,
                ..Params::default()
            },
            t0,
        );
        assert_eq!((c.params().rise, c.params().fall), (1, 1));
        assert!(c.observe(refused(), t0).is_some());
        assert!(c.observe(ok(), t0).is_some());
    }

    #[test]
    fn a_huge_interval_does_not_panic() {
        let t0 = Instant::now();
        let mut c = Check::new(
            Params {
                inter: Duration::MAX,
                ..Params::default()
            },
            t0,
        );
        c.observe(ok(), t0);
        assert!(c.next_check_at(t0) >= t0);
    }

    /// The same rules stated another way: consecutive counts, pre-filled by
    /// the initial state. Thousands of seeded random sequences must agree
    /// with it on state, transitions, text and interval.
    #[test]
    fn random_sequences_agree_with_consecutive_counting() {
        let mut seed = 0x5eed_u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            crate::balance::mix(seed) % n
        };
        let inits = [
            InitState::FullyUp,
            InitState::Up,
            InitState::Down,
            InitState::FullyDown,
        ];
        for case in 0..3000 {
            let (rise, fall) = (1 + next(5) as u32, 1 + next(5) as u32);
            let init = inits[next(4) as usize];
            let p = Params {
                rise,
                fall,
                inter: 2 * S,
                fastinter: Some(S),
                downinter: Some(3 * S),
                init_state: init,
            };
            let t0 = Instant::now();
            let mut c = Check::new(p, t0);
            // The model: up, and how many in a row count towards a change.
            let (mut up, mut streak) = match init {
                InitState::FullyUp => (true, 0),
                InitState::Up => (true, fall - 1),
                InitState::Down => (false, rise - 1),
                InitState::FullyDown => (false, 0),
            };
            let mut now = t0;
            for step in 0..60 {
                let pass = next(3) != 0;
                let was = up;
                if pass == up {
                    streak = 0;
                } else {
                    streak += 1;
                    if streak >= if up { fall } else { rise } {
                        up = !up;
                        streak = 0;
                    }
                }
                now += Duration::from_millis(next(3000));
                let result = if pass { ok() } else { refused() };
                let t = c.observe(result, now);
                let at = format!("case {case} step {step} rise {rise} fall {fall} {init:?}");
                assert_eq!(c.is_up(), up, "{at}");
                assert_eq!(t.is_some(), was != up, "{at}");
                if let Some(t) = t {
                    assert_eq!(t.to == State::Up, pass, "{at}: up only on a pass");
                }
                let want = match (up, streak) {
                    (true, 0) => "UP".to_string(),
                    (true, k) => format!("UP {}/{fall}", fall - k),
                    (false, 0) => "DOWN".to_string(),
                    (false, k) => format!("DOWN {k}/{rise}"),
                };
                assert_eq!(text(&c), want, "{at}");
                let interval = match (up, streak) {
                    (true, 0) => 2 * S,
                    (false, 0) => 3 * S,
                    _ => S,
                };
                assert_eq!(c.next_check_at(now), now + interval, "{at}");
                assert!(c.status().health < rise + fall, "{at}");
            }
        }
    }
}
