//! Test fixtures that start real processes, for the integration tests of
//! every daemon.
//!
//! - [`classifier_oracle`], [`sqlgen`]: MariaDB as the judge of the SQL
//!   classifier, over generated statements.
//! - [`chaos`]: the chaos suite over the namespace lab (workload, faults, report).
//! - [`lab`]: the namespace lab of `deploy/lab.sh`, `down` on drop.
//! - [`mariadb`]: a MariaDB GTID replication topology on loopback ports.
//! - [`nemesis`]: random fault schedules from a seed over the namespace lab, and their invariants.
//! - [`netlab`]: network-namespace "hosts" on a private bridge.
//! - [`daemon`]: one of our daemons started from its built binary.
//! - [`ports`]: free loopback ports.
//! - [`tcp`]: small echo servers that say who they are, for lbd.
//! - [`vrrp`]: keepalived and vrrpd on lab hosts, VIP holders, crafted adverts.
//!
//! Every fixture cleans up in `Drop` (so also when a test panics), and uses
//! unique ports, names and directories, so tests can run in parallel.

pub mod chaos;
pub mod classifier_oracle;
pub mod daemon;
pub mod lab;
pub mod mariadb;
pub mod nemesis;
pub mod netlab;
pub mod ports;
pub mod process;
pub mod scripts;
pub mod sqlgen;
pub mod sqlproxy;
pub mod tcp;
pub mod vrrp;

pub use daemon::DaemonProcess;
pub use mariadb::MariaDbCluster;
pub use netlab::NetLab;

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    every: std::time::Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
