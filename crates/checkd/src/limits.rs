//! xinetd's connection limits, as a pure state machine with the time passed
//! in: `instances` (connections served at once), `per_source` (at once from
//! one address) and `cps` (more than `rate` new connections within one
//! second switch the service off for `pause`).

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

    /// Admits a new connection from `peer` at `now`, or says which limit
    /// refuses it. An admitted connection must be [`Limits::release`]d.
    pub fn admit(&mut self, peer: IpAddr, now: Instant) -> Result<(), Limit> {
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
        Ok(())
    }

    pub fn release(&mut self, peer: IpAddr) {
        self.active = self.active.saturating_sub(1);
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
        assert_eq!(l.admit(ip("10.0.0.1"), t), Ok(()));
        assert_eq!(l.admit(ip("10.0.0.2"), t), Ok(()));
        assert_eq!(l.admit(ip("10.0.0.3"), t), Err(Limit::Instances));
        l.release(ip("10.0.0.1"));
        assert_eq!(l.admit(ip("10.0.0.3"), t), Ok(()));
        assert_eq!(l.active(), 2);
    }

    #[test]
    fn per_source_counts_each_address() {
        let mut l = Limits::new(100, Some(1), 1000, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.admit(ip("10.0.0.1"), t), Ok(()));
        assert_eq!(l.admit(ip("10.0.0.1"), t), Err(Limit::PerSource));
        assert_eq!(l.admit(ip("10.0.0.2"), t), Ok(()));
        l.release(ip("10.0.0.1"));
        assert_eq!(l.admit(ip("10.0.0.1"), t), Ok(()));
    }

    #[test]
    fn cps_pauses_the_service_then_resumes() {
        let mut l = Limits::new(100, None, 3, Duration::from_secs(10));
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit(ip("10.0.0.1"), t), Ok(()));
            l.release(ip("10.0.0.1"));
        }
        assert_eq!(l.admit(ip("10.0.0.1"), t), Err(Limit::Cps));
        assert!(l.paused(t + Duration::from_secs(9)));
        assert_eq!(
            l.admit(ip("10.0.0.2"), t + Duration::from_secs(9)),
            Err(Limit::Cps)
        );
        assert_eq!(l.admit(ip("10.0.0.2"), t + Duration::from_secs(10)), Ok(()));
        // A slower stream never trips it: the window is one second.
        let mut l = Limits::new(100, None, 3, Duration::from_secs(10));
        for k in 0..20 {
            let at = t + Duration::from_millis(400 * k);
            assert_eq!(l.admit(ip("10.0.0.1"), at), Ok(()), "connection {k}");
            l.release(ip("10.0.0.1"));
        }
    }
}
