//! One `http_check` service's verdict: the maintenance file, then the
//! probe, whose result is reused for `cache` and shared by every request
//! that arrived while it ran, so a storm of checks is one probe.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hastack_proto::health::Health;
use tokio::sync::Mutex;

use crate::config::Probe;
use crate::metrics::Metrics;

pub struct Checker {
    service: String,
    probe: Probe,
    cache: Duration,
    maintenance_file: Option<PathBuf>,
    last: Mutex<Option<(Instant, Health)>>,
    metrics: Metrics,
}

impl Checker {
    pub fn new(service: &str, probe: &Probe, metrics: Metrics) -> Checker {
        Checker {
            service: service.to_owned(),
            probe: probe.clone(),
            cache: probe.cache.get(),
            maintenance_file: probe.maintenance_file.clone(),
            last: Mutex::new(None),
            metrics,
        }
    }

    pub async fn check(&self) -> Health {
        let arrived = Instant::now();
        if let Some(f) = &self.maintenance_file {
            if tokio::fs::try_exists(f).await.unwrap_or(false) {
                return Health {
                    up: false,
                    service: self.service.clone(),
                    check: self.probe.describe(),
                    detail: format!("maintenance: {} exists", f.display()),
                    took_ms: 0.0,
                };
            }
        }
        // Held while probing: requests arriving meanwhile wait for this
        // probe and take its result instead of starting their own.
        let mut last = self.last.lock().await;
        if let Some((done, h)) = last.as_ref() {
            let fresh = Instant::now().saturating_duration_since(*done) < self.cache;
            if fresh || *done >= arrived {
                return h.clone();
            }
        }
        let started = Instant::now();
        let found = self.probe.run().await;
        let took = Instant::now().saturating_duration_since(started);
        self.metrics.probe(&self.service, found.is_ok(), took);
        let (up, detail) = match found {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        let h = Health {
            up,
            service: self.service.clone(),
            check: self.probe.describe(),
            detail,
            took_ms: took.as_secs_f64() * 1000.0,
        };
        *last = Some((Instant::now(), h.clone()));
        h
    }
}
