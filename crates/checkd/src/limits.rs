//! xinetd's connection limits, as a pure state machine with the time passed
//! in: `instances` (connections served at once), `per_source` (at once from
//! one address) and `cps` (more than `rate` new connections within one
//! second switch the service off for `pause`).
//!
//! Connections from the service's named `checkers` (the balancers whose
//! checks decide whether this host gets traffic) stand outside `cps` and
//! `instances`: they are admitted during a pause, do not count towards the
//! rate or the instances, and so can neither be switched off by another
//! peer's flood nor cause a pause themselves. `per_source` still bounds
//! each checker address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Instances,
    PerSource,
    Cps,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::Instances => "instances",
            Limit::PerSource => "per_source",
            Limit::Cps => "cps",
        }
    }
}

/// How an admitted connection was counted, for its [`Limits::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Counted in `instances` (and it counted towards `cps`).
    Counted,
    /// A named checker's, outside `cps` and `instances`; `exempted` is the
    /// limit that would have refused it otherwise.
    Checker { exempted: Option<Limit> },
}

#[derive(Debug)]
pub struct Limits {
    instances: u32,
    per_source: Option<u32>,
    rate: u32,
    pause: Duration,
    active: u32,
    by_source: HashMap<IpAddr, u32>,
    window: Option<(Instant, u32)>,
    paused_until: Option<Instant>,
}

impl Limits {
    pub fn new(instances: u32, per_source: Option<u32>, rate: u32, pause: Duration) -> Limits {
        Limits {
            instances,
            per_source,
            rate,
            pause,
            active: 0,
            by_source: HashMap::new(),
            window: None,
            paused_until: None,
        }
    }

    /// Admits a new connection from `peer` at `now` (`checker`: `peer` is
    /// one of the service's named checkers), or says which limit refuses
    /// it. An admitted connection must be [`Limits::release`]d with what
    /// this returned.
    pub fn admit(&mut self, peer: IpAddr, checker: bool, now: Instant) -> Result<Admitted, Limit> {
        if checker {
            let from_peer = self.by_source.get(&peer).copied().unwrap_or(0);
            if self.per_source.is_some_and(|max| from_peer >= max) {
                return Err(Limit::PerSource);
            }
            let exempted = if self.paused(now) {
                Some(Limit::Cps)
            } else if self.active >= self.instances {
                Some(Limit::Instances)
            } else {
                None
            };
            self.by_source.insert(peer, from_peer + 1);
            return Ok(Admitted::Checker { exempted });
        }
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(Limit::Cps);
            }
            self.paused_until = None;
            self.window = None;
        }
        let (start, count) = match self.window {
            Some((start, count))
                if now.saturating_duration_since(start) < Duration::from_secs(1) =>
            {
                (start, count + 1)
            }
            _ => (now, 1),
        };
        self.window = Some((start, count));
        if count > self.rate {
            self.paused_until = Some(now + self.pause);
            return Err(Limit::Cps);
        }
        if self.active >= self.instances {
            return Err(Limit::Instances);
        }
        let from_peer = self.by_source.get(&peer).copied().unwrap_or(0);
        if self.per_source.is_some_and(|max| from_peer >= max) {
            return Err(Limit::PerSource);
        }
        self.active += 1;
        self.by_source.insert(peer, from_peer + 1);
        Ok(Admitted::Counted)
    }

    pub fn release(&mut self, peer: IpAddr, how: Admitted) {
        if how == Admitted::Counted {
            self.active = self.active.saturating_sub(1);
        }
        if let Some(n) = self.by_source.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&peer);
            }
        }
    }

    /// Connections being served now.
    pub fn active(&self) -> u32 {
        self.active
    }

    /// Whether cps has switched the service off at `now`.
    pub fn paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn instances_engage_and_release() {
        let mut l = Limits::new(2, None, 1000, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Ok(Admitted::Counted));
        assert_eq!(l.admit(ip("10.0.0.2"), false, t), Ok(Admitted::Counted));
        assert_eq!(l.admit(ip("10.0.0.3"), false, t), Err(Limit::Instances));
        l.release(ip("10.0.0.1"), Admitted::Counted);
        assert_eq!(l.admit(ip("10.0.0.3"), false, t), Ok(Admitted::Counted));
        assert_eq!(l.active(), 2);
    }

    #[test]
    fn per_source_counts_each_address() {
        let mut l = Limits::new(100, Some(1), 1000, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Ok(Admitted::Counted));
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Err(Limit::PerSource));
        assert_eq!(l.admit(ip("10.0.0.2"), false, t), Ok(Admitted::Counted));
        l.release(ip("10.0.0.1"), Admitted::Counted);
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Ok(Admitted::Counted));
    }

    #[test]
    fn cps_pauses_the_service_then_resumes() {
        let mut l = Limits::new(100, None, 3, Duration::from_secs(10));
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit(ip("10.0.0.1"), false, t), Ok(Admitted::Counted));
            l.release(ip("10.0.0.1"), Admitted::Counted);
        }
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Err(Limit::Cps));
        assert!(l.paused(t + Duration::from_secs(9)));
        assert_eq!(
            l.admit(ip("10.0.0.2"), false, t + Duration::from_secs(9)),
            Err(Limit::Cps)
        );
        assert_eq!(
            l.admit(ip("10.0.0.2"), false, t + Duration::from_secs(10)),
            Ok(Admitted::Counted)
        );
        // A slower stream never trips it: the window is one second.
        let mut l = Limits::new(100, None, 3, Duration::from_secs(10));
        for k in 0..20 {
            let at = t + Duration::from_millis(400 * k);
            assert_eq!(
                l.admit(ip("10.0.0.1"), false, at),
                Ok(Admitted::Counted),
                "connection {k}"
            );
            l.release(ip("10.0.0.1"), Admitted::Counted);
        }
    }

    #[test]
    fn a_named_checker_gets_through_a_pause_another_peer_caused() {
        let mut l = Limits::new(100, None, 2, Duration::from_secs(10));
        let t = Instant::now();
        let (noisy, other, checker) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.9"));
        for _ in 0..2 {
            assert_eq!(l.admit(noisy, false, t), Ok(Admitted::Counted));
            l.release(noisy, Admitted::Counted);
        }
        assert_eq!(l.admit(noisy, false, t), Err(Limit::Cps));
        let later = t + Duration::from_secs(5);
        assert!(l.paused(later));
        assert_eq!(l.admit(other, false, later), Err(Limit::Cps));
        let exempt = Admitted::Checker {
            exempted: Some(Limit::Cps),
        };
        assert_eq!(l.admit(checker, true, later), Ok(exempt));
        l.release(checker, exempt);
        // The pause is the other peers' and ends on time.
        assert_eq!(l.admit(other, false, later), Err(Limit::Cps));
        assert_eq!(
            l.admit(other, false, t + Duration::from_secs(10)),
            Ok(Admitted::Counted)
        );
    }

    #[test]
    fn checkers_count_towards_neither_cps_nor_instances() {
        let mut l = Limits::new(100, None, 2, Duration::from_secs(10));
        let t = Instant::now();
        let checker = ip("10.0.0.9");
        // Far more than `rate` within the second: no pause.
        for _ in 0..50 {
            let how = l.admit(checker, true, t).unwrap();
            assert_eq!(how, Admitted::Checker { exempted: None });
            l.release(checker, how);
        }
        assert!(!l.paused(t));
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Ok(Admitted::Counted));
        l.release(ip("10.0.0.1"), Admitted::Counted);
        // Checkers being served hold no instance...
        let mut l = Limits::new(1, None, 100, Duration::from_secs(10));
        let held = l.admit(checker, true, t).unwrap();
        assert_eq!(l.admit(ip("10.0.0.1"), false, t), Ok(Admitted::Counted));
        assert_eq!(l.active(), 1);
        // ...and are served past a full `instances`, saying so.
        let past = l.admit(ip("10.0.0.8"), true, t).unwrap();
        assert_eq!(
            past,
            Admitted::Checker {
                exempted: Some(Limit::Instances)
            }
        );
        assert_eq!(l.admit(ip("10.0.0.2"), false, t), Err(Limit::Instances));
        // Releasing a checker frees no instance for other peers.
        l.release(checker, held);
        l.release(ip("10.0.0.8"), past);
        assert_eq!(l.admit(ip("10.0.0.2"), false, t), Err(Limit::Instances));
        l.release(ip("10.0.0.1"), Admitted::Counted);
        assert_eq!(l.admit(ip("10.0.0.2"), false, t), Ok(Admitted::Counted));
    }

    #[test]
    fn per_source_still_bounds_each_checker() {
        let mut l = Limits::new(100, Some(1), 2, Duration::from_secs(10));
        let t = Instant::now();
        let checker = ip("10.0.0.9");
        let how = l.admit(checker, true, t).unwrap();
        assert_eq!(l.admit(checker, true, t), Err(Limit::PerSource));
        assert_eq!(
            l.admit(ip("10.0.0.8"), true, t),
            Ok(Admitted::Checker { exempted: None })
        );
        l.release(checker, how);
        assert!(l.admit(checker, true, t).is_ok());
    }
}
