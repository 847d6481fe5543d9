//! The chaos suite over the namespace lab (issue 10, items 1–3): a workload
//! through the VIP with an honest ledger, a fault injector driving
//! `deploy/lab.sh`, a sampler of the stack's state, a checker of the final
//! tables on every MariaDB node, and a report per fault.
//!
//! The lab uses fixed names (hsbr0, hs-*): only one may run at a time, so
//! whatever drives [`Lab`] must run in the nextest test group `lab`.

// The suite measures wall-clock unavailability: it reads the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use crate::lab::{lab_in_use, Lab};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

pub const VIP: &str = "10.99.0.100";
pub const LB_HOSTS: [&str; 2] = ["lb-1", "lb-2"];
pub const PROXIES: [(&str, &str); 2] = [("proxy-1", "10.99.0.11"), ("proxy-2", "10.99.0.12")];
pub const DBS: [(&str, &str); 3] = [
    ("db-1", "10.99.0.31"),
    ("db-2", "10.99.0.32"),
    ("db-3", "10.99.0.33"),
];

// --- connections -----------------------------------------------------------------

pub(crate) fn connect(host: &str, user: &str, pass: &str, db: Option<&str>) -> Result<Conn> {
    connect_within(
        host,
        user,
        pass,
        db,
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
}

/// A connection to `host:3306` with the given connect and read/write timeouts.
fn connect_within(
    host: &str,
    user: &str,
    pass: &str,
    db: Option<&str>,
    connect: Duration,
    io: Duration,
) -> Result<Conn> {
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(3306)
        .user(Some(user))
        .pass(Some(pass))
        .db_name(db)
        .tcp_connect_timeout(Some(connect))
        .read_timeout(Some(io))
        .write_timeout(Some(io));
    Ok(Conn::new(opts)?)
}

/// A plain HTTP/1.0 GET with short timeouts (a SIGSTOPped daemon accepts
/// but never answers): the body of a 200.
fn http_body(addr: &str, path: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    if !resp.starts_with("HTTP/1.") || resp.split(' ').nth(1) != Some("200") {
        return None;
    }
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

// --- the workload and its ledger ---------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// One autocommit INSERT.
    Insert,
    /// BEGIN; two INSERTs; COMMIT.
    Txn,
    Read,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// Definitely not applied: a server error, a failed connect, or the
    /// connection broke before COMMIT was sent. Code 0: not a server error.
    Error(u16, String),
    /// The connection broke after the autocommit INSERT or the COMMIT was
    /// sent: it may or may not be applied.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub conn: usize,
    pub kind: OpKind,
    /// The ids it writes.
    pub ids: Vec<u64>,
    /// Since the workload's start.
    pub start: Duration,
    pub end: Duration,
    pub outcome: Outcome,
    /// What an acknowledged read returned: the connection's own rows.
    pub seen: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub conns: usize,
    /// Per connection.
    pub max_ops: u64,
    pub max_time: Duration,
    /// Pause between two operations of a connection.
    pub pause: Duration,
}

/// A running workload: one thread per connection; [`Workload::finish`]
/// stops it and returns the ledger.
pub struct Workload {
    pub t0: Instant,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Op>>>,
}

/// "Lost connection to MySQL server during query", "server has gone
/// away": a proxy answers these when its backend connection broke with the
/// statement in flight, so the statement may have run.
const LOST_IN_FLIGHT: [u16; 2] = [2013, 2006];

/// Where an error leaves a write: a server error is definite, except a
/// proxy's "lost connection" with the commit sent; a broken connection is
/// definite only if it broke before the commit was sent.
fn classify(e: &mysql::Error, commit_sent: bool) -> Outcome {
    match e {
        mysql::Error::MySqlError(m) if commit_sent && LOST_IN_FLIGHT.contains(&m.code) => {
            Outcome::Unknown(format!("{} ({})", m.message, m.code))
        }
        mysql::Error::MySqlError(m) => Outcome::Error(m.code, m.message.clone()),
        other if commit_sent => Outcome::Unknown(other.to_string()),
        other => Outcome::Error(0, other.to_string()),
    }
}

impl Workload {
    /// Creates `app.TABLE` through `vip` (waits until every node has it)
    /// and starts the connections to `vip`.
    pub fn start(vip: &'static str, table: &str, cfg: &WorkloadConfig) -> Result<Workload> {
        let mut c = connect(vip, "app", "app", Some("app"))?;
        c.query_drop(format!(
            "CREATE TABLE {table} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, id BIGINT NOT NULL, \
             conn INT NOT NULL, payload VARCHAR(64) NOT NULL, sid INT NOT NULL, KEY (id))"
        ))?;
        drop(c);
        // Every reachable node has the table before the load starts.
        wait_replicated(Duration::from_secs(20))?;
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..cfg.conns)
            .map(|n| {
                let (table, cfg, stop) = (table.to_owned(), cfg.clone(), stop.clone());
                std::thread::spawn(move || client_loop(vip, n, &table, &cfg, t0, &stop))
            })
            .collect();
        Ok(Workload { t0, stop, threads })
    }

    pub fn now(&self) -> Duration {
        Instant::now().duration_since(self.t0)
    }

    pub fn finish(self) -> Vec<Op> {
        self.stop.store(true, Ordering::SeqCst);
        let mut ops: Vec<Op> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        ops.sort_by_key(|o| o.start);
        ops
    }
}

fn client_loop(
    vip: &str,
    n: usize,
    table: &str,
    cfg: &WorkloadConfig,
    t0: Instant,
    stop: &AtomicBool,
) -> Vec<Op> {
    let deadline = t0 + cfg.max_time;
    let mut ops = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut next_id = (n as u64 + 1) * 10_000_000;
    let mut seq = 0u64;
    while seq < cfg.max_ops && !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let kind = match seq % 4 {
            0 | 1 => OpKind::Insert,
            2 => OpKind::Txn,
            _ => OpKind::Read,
        };
        seq += 1;
        let ids: Vec<u64> = match kind {
            OpKind::Insert => vec![next_id],
            OpKind::Txn => vec![next_id, next_id + 1],
            OpKind::Read => vec![],
        };
        next_id += ids.len() as u64;
        let start = Instant::now().duration_since(t0);
        let (outcome, seen) = match conn.as_mut() {
            Some(c) => run_op(c, table, n, kind, &ids),
            None => match connect(vip, "app", "app", Some("app")) {
                Ok(c) => run_op(conn.insert(c), table, n, kind, &ids),
                Err(e) => (Outcome::Error(0, format!("connect: {e}")), None),
            },
        };
        let end = Instant::now().duration_since(t0);
        let failed = outcome != Outcome::Ack;
        ops.push(Op {
            conn: n,
            kind,
            ids,
            start,
            end,
            outcome,
            seen,
        });
        if failed {
            // A pool discards a connection that failed and retries on a new one.
            conn = None;
            std::thread::sleep(Duration::from_millis(50));
        } else {
            std::thread::sleep(cfg.pause);
        }
    }
    ops
}

/// Runs one operation: its outcome, and for a read the count it saw.
fn run_op(
    c: &mut Conn,
    table: &str,
    n: usize,
    kind: OpKind,
    ids: &[u64],
) -> (Outcome, Option<u64>) {
    // sid: the server the row was written on (row-based binlog carries the
    // value to the replicas), so a checker knows where each write landed.
    let insert = |id: u64| {
        format!(
            "INSERT INTO {table} (id, conn, payload, sid) VALUES ({id}, {n}, 'p{id}', @@server_id)"
        )
    };
    let outcome = match kind {
        OpKind::Insert => match c.query_drop(insert(ids[0])) {
            Ok(()) => Outcome::Ack,
            Err(e) => classify(&e, true),
        },
        OpKind::Txn => {
            for q in std::iter::once("BEGIN".to_owned()).chain(ids.iter().map(|&id| insert(id))) {
                if let Err(e) = c.query_drop(q) {
                    return (classify(&e, false), None);
                }
            }
            match c.query_drop("COMMIT") {
                Ok(()) => Outcome::Ack,
                Err(e) => classify(&e, true),
            }
        }
        OpKind::Read => {
            return match c
                .query_first::<u64, _>(format!("SELECT COUNT(*) FROM {table} WHERE conn = {n}"))
            {
                Ok(seen) => (Outcome::Ack, seen),
                Err(e) => (classify(&e, false), None),
            }
        }
    };
    (outcome, None)
}

// --- the state of the stack ---------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct NodeState {
    pub read_only: bool,
    /// SHOW SLAVE STATUS has a row.
    pub replicating: bool,
    pub io_running: bool,
    pub sql_running: bool,
}

/// read_only and replication of one node, as the monitor user.
pub fn node_state(addr: &str) -> Result<NodeState> {
    let mut c = connect_within(
        addr,
        "monitor",
        "monitor",
        None,
        Duration::from_millis(500),
        Duration::from_secs(1),
    )?;
    let ro: u8 = c
        .query_first("SELECT @@read_only")?
        .ok_or_else(|| anyhow!("no row"))?;
    let row: Option<mysql::Row> = c.query_first("SHOW SLAVE STATUS")?;
    let col = |r: &mysql::Row, name: &str| -> String {
        match r
            .columns_ref()
            .iter()
            .position(|c| c.name_str() == name)
            .and_then(|i| r.as_ref(i))
        {
            Some(mysql::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    };
    Ok(match row {
        Some(r) => NodeState {
            read_only: ro != 0,
            replicating: true,
            io_running: col(&r, "Slave_IO_Running") == "Yes",
            sql_running: col(&r, "Slave_SQL_Running") == "Yes",
        },
        None => NodeState {
            read_only: ro != 0,
            ..NodeState::default()
        },
    })
}

/// The lb hosts that have hastack's VIP on an eth0 that is up.
pub fn vip_holders() -> Vec<&'static str> {
    vip_holders_of(VIP)
}

/// The lb hosts that have `vip` on eth0, counting only those whose eth0 is
/// up: a dead host's address answers nobody.
pub fn vip_holders_of(vip: &str) -> Vec<&'static str> {
    LB_HOSTS
        .into_iter()
        .filter(|h| vip_prefix(h, vip).is_some_and(|(_, up)| up))
        .collect()
}

/// `vip`'s `ADDR/LEN` on `host`'s eth0, and whether eth0 is up.
fn vip_prefix(host: &str, vip: &str) -> Option<(String, bool)> {
    let out = Command::new("ip")
        .args([
            "-n",
            &format!("hs-{host}"),
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{vip}/")))?
        .to_owned();
    let link = Command::new("ip")
        .args([
            "-n",
            &format!("hs-{host}"),
            "-o",
            "link",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .ok()?;
    let flags = String::from_utf8_lossy(&link.stdout);
    let up = flags
        .split_once('<')
        .and_then(|(_, f)| f.split_once('>'))
        .is_some_and(|(f, _)| f.split(',').any(|x| x == "UP"));
    Some((prefix, up))
}

/// Takes `host`'s eth0 down (its cable pulled) or up; up first removes
/// `vip`, as the host's reboot would have.
pub fn set_link(host: &str, up: bool, vip: &str) -> Result<()> {
    let ns = format!("hs-{host}");
    if up {
        if let Some((prefix, _)) = vip_prefix(host, vip) {
            run_ok("ip", &["-n", &ns, "addr", "del", &prefix, "dev", "eth0"])?;
        }
    }
    run_ok(
        "ip",
        &[
            "-n",
            &ns,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ],
    )
}

fn run_ok(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What a sqlproxyd's /status names as dh1's primary (None: no answer).
pub fn proxy_primary(addr: &str) -> Option<String> {
    let body = http_body(&format!("{addr}:9166"), "/status")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let dh = v.get("state")?.get("data_hosts")?.get(0)?;
    Some(
        dh.get("primary")
            .and_then(|p| p.as_str())
            .unwrap_or("none")
            .to_owned(),
    )
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub t: Duration,
    pub vip_holders: Vec<&'static str>,
    /// Nodes with read_only=0 and not replicating.
    pub writable: Vec<&'static str>,
    pub read_only: Vec<&'static str>,
    /// Per proxy, its primary (None: no answer).
    pub proxy_primary: Vec<Option<String>>,
}

/// Samples the stack every `every` until stopped: who holds `vip`, which
/// databases are writable, and (`sqlproxyds`) what each sqlproxyd names as
/// the primary.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(t0: Instant, every: Duration, vip: &'static str, sqlproxyds: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s2, v2) = (stop.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                let t = Instant::now().duration_since(t0);
                let mut writable = Vec::new();
                let mut read_only = Vec::new();
                for (name, addr) in DBS {
                    if let Ok(s) = node_state(addr) {
                        if !s.read_only && !s.replicating {
                            writable.push(name);
                        }
                        if s.read_only {
                            read_only.push(name);
                        }
                    }
                }
                let sample = Sample {
                    t,
                    vip_holders: vip_holders_of(vip),
                    writable,
                    read_only,
                    proxy_primary: if sqlproxyds {
                        PROXIES.iter().map(|(_, a)| proxy_primary(a)).collect()
                    } else {
                        Vec::new()
                    },
                };
                if let Ok(mut v) = v2.lock() {
                    v.push(sample);
                }
                std::thread::sleep(every);
            }
        });
        Sampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The node that is writable and not replicating, if exactly one is.
pub fn current_primary() -> Result<&'static str> {
    let w: Vec<&str> = DBS
        .iter()
        .filter(|(_, a)| node_state(a).is_ok_and(|s| !s.read_only && !s.replicating))
        .map(|(n, _)| *n)
        .collect();
    match w.as_slice() {
        [one] => Ok(one),
        _ => bail!("writable primaries: {w:?}"),
    }
}

pub(crate) fn db_addr(name: &str) -> &'static str {
    DBS.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .unwrap_or("0.0.0.0")
}

/// Waits until every replicating node reached the primary's GTID position.
pub fn wait_replicated(timeout: Duration) -> Result<()> {
    let primary = current_primary()?;
    let mut p = connect(db_addr(primary), "monitor", "monitor", None)?;
    let pos: String = p
        .query_first("SELECT @@gtid_binlog_pos")?
        .ok_or_else(|| anyhow!("no gtid_binlog_pos"))?;
    for (name, addr) in DBS {
        if name == primary || !node_state(addr).is_ok_and(|s| s.replicating) {
            continue;
        }
        // The wait may outlast connect()'s read timeout.
        let mut c = connect_within(
            addr,
            "monitor",
            "monitor",
            None,
            Duration::from_secs(2),
            timeout + Duration::from_secs(5),
        )?;
        let r: Option<i64> = c.query_first(format!(
            "SELECT MASTER_GTID_WAIT('{pos}', {})",
            timeout.as_secs_f64()
        ))?;
        if r != Some(0) {
            bail!("{name} did not reach {primary}'s GTID {pos} within {timeout:?}");
        }
    }
    Ok(())
}

// --- the checker ---------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Check {
    pub primary: String,
    /// Acknowledged ids missing on the primary.
    pub acked_missing: Vec<u64>,
    /// Present, though the client saw a definite failure.
    pub failed_present: Vec<u64>,
    /// Present with an unknown outcome (allowed), and absent ones.
    pub unknown_present: usize,
    pub unknown_absent: usize,
    /// Ids present more than once on the primary.
    pub duplicates: Vec<u64>,
    /// Present on the primary but never written by the workload.
    pub phantom: Vec<u64>,
    /// Nodes whose table differs from the primary's (or unreadable).
    pub disagree: Vec<String>,
}

fn table_ids(addr: &str, table: &str) -> Result<Vec<u64>> {
    let mut c = connect(addr, "app", "app", Some("app"))?;
    Ok(c.query(format!("SELECT id FROM {table} ORDER BY id"))?)
}

/// Compares the ledger with the final table on the primary and every
/// other node (after replication caught up).
pub fn check(table: &str, ops: &[Op]) -> Result<Check> {
    wait_replicated(Duration::from_secs(30))?;
    let primary = current_primary()?;
    let on_primary = table_ids(db_addr(primary), table)?;
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for id in &on_primary {
        *counts.entry(*id).or_default() += 1;
    }
    let mut out = Check {
        primary: primary.to_owned(),
        duplicates: counts
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(&id, _)| id)
            .collect(),
        ..Check::default()
    };
    let mut written = BTreeSet::new();
    for op in ops {
        // A transaction is all or nothing: judge it by its first id.
        let Some(&id) = op.ids.first() else { continue };
        written.extend(op.ids.iter().copied());
        let present = op.ids.iter().all(|i| counts.contains_key(i));
        let partly = op.ids.iter().any(|i| counts.contains_key(i));
        match &op.outcome {
            Outcome::Ack if !present => out.acked_missing.extend(op.ids.iter().copied()),
            Outcome::Error(..) if partly => out.failed_present.push(id),
            Outcome::Unknown(_) if partly => out.unknown_present += 1,
            Outcome::Unknown(_) => out.unknown_absent += 1,
            _ => {}
        }
        if partly && !present {
            // Half a transaction: never allowed.
            out.failed_present.push(id);
        }
    }
    out.phantom = counts
        .keys()
        .filter(|i| !written.contains(i))
        .copied()
        .collect();
    for (name, addr) in DBS {
        if name == primary {
            continue;
        }
        match table_ids(addr, table) {
            Ok(ids) if ids == on_primary => {}
            Ok(ids) => out.disagree.push(format!(
                "{name}: {} rows, primary {}",
                ids.len(),
                on_primary.len()
            )),
            Err(e) => out.disagree.push(format!("{name}: {e}")),
        }
    }
    Ok(out)
}

// --- the report ---------------------------------------------------------------------------

/// First failed operation → end of the first successful one that started
/// after it (None: nothing failed; Some(MAX): never recovered).
pub fn unavailability<'a>(ops: impl Iterator<Item = &'a Op>) -> Option<Duration> {
    let ops: Vec<&Op> = ops.collect();
    let first_fail = ops
        .iter()
        .filter(|o| o.outcome != Outcome::Ack)
        .map(|o| o.start)
        .min()?;
    Some(
        ops.iter()
            .filter(|o| o.outcome == Outcome::Ack && o.start > first_fail)
            .map(|o| o.end)
            .min()
            .map_or(Duration::MAX, |e| e.saturating_sub(first_fail)),
    )
}

#[derive(Clone, Debug)]
pub struct FaultReport {
    pub fault: String,
    pub write_unavailable: Option<Duration>,
    pub read_unavailable: Option<Duration>,
    pub ops: usize,
    pub ops_failed: usize,
    pub ops_unknown: usize,
    /// Failed operations by kind and error: "Insert 1290: ..." → count.
    pub errors: BTreeMap<String, usize>,
    /// Reads that missed the connection's own writes acknowledged longer
    /// than `RunConfig::stale_after` before: older than the lag threshold.
    pub stale_reads: usize,
    /// The longest write, acknowledged or not: a stall that ends in success
    /// is unavailability the error-based measure does not see.
    pub max_write_latency: Duration,
    pub check: Check,
    /// Max VIP holders over the samples after convergence.
    pub max_vip_converged: usize,
    /// Max writable, non-replicating nodes over every sample.
    pub max_writable: usize,
    /// The same without the restarted old primary until it was first seen
    /// read_only (it starts writable and sqlproxyd fences it, DESIGN.md §5):
    /// the invariant.
    pub max_writable_fenced: usize,
    /// How long the restarted old primary was seen writable before fenced.
    pub old_primary_unfenced: Option<Duration>,
    /// Max distinct primaries the sqlproxyds named at one time.
    pub max_proxy_primaries: usize,
    /// Some when the fault includes the old primary's return.
    pub old_primary: Option<String>,
    /// From the old primary's restart to its readmission as a replica.
    pub readmitted: Option<Duration>,
    /// From the fault to the first time every new connection through the
    /// VIP was served again (None: not while the fault lasted).
    pub served_again: Option<Duration>,
    /// What the run saw that the columns do not say.
    pub note: String,
}

impl FaultReport {
    pub fn new(
        fault: &str,
        ops: &[Op],
        samples: &[Sample],
        converged: &[(Duration, Duration)],
        check: Check,
        stale_after: Duration,
    ) -> Self {
        let writes = || ops.iter().filter(|o| o.kind != OpKind::Read);
        FaultReport {
            fault: fault.to_owned(),
            write_unavailable: unavailability(writes()),
            read_unavailable: unavailability(ops.iter().filter(|o| o.kind == OpKind::Read)),
            ops: ops.len(),
            ops_failed: ops.iter().filter(|o| o.outcome != Outcome::Ack).count(),
            ops_unknown: ops
                .iter()
                .filter(|o| matches!(o.outcome, Outcome::Unknown(_)))
                .count(),
            errors: errors(ops),
            stale_reads: stale_reads(ops, stale_after),
            max_write_latency: writes()
                .map(|o| o.end.saturating_sub(o.start))
                .max()
                .unwrap_or_default(),
            check,
            max_vip_converged: samples
                .iter()
                .filter(|s| converged.iter().any(|(a, b)| s.t >= *a && s.t <= *b))
                .map(|s| s.vip_holders.len())
                .max()
                .unwrap_or(0),
            max_writable: samples.iter().map(|s| s.writable.len()).max().unwrap_or(0),
            max_writable_fenced: samples.iter().map(|s| s.writable.len()).max().unwrap_or(0),
            old_primary_unfenced: None,
            max_proxy_primaries: samples
                .iter()
                .map(|s| {
                    s.proxy_primary
                        .iter()
                        .flatten()
                        .filter(|p| *p != "none")
                        .collect::<BTreeSet<_>>()
                        .len()
                })
                .max()
                .unwrap_or(0),
            old_primary: None,
            readmitted: None,
            served_again: None,
            note: String::new(),
        }
    }

    /// Accounts for `node` restarted at `at`: writable until first seen
    /// read_only, which is the fencing, not a second primary.
    pub fn returning(&mut self, node: &str, at: Duration, samples: &[Sample]) {
        let fenced_at = samples
            .iter()
            .find(|s| s.t >= at && s.read_only.contains(&node))
            .map(|s| s.t);
        let unfenced = |s: &&Sample| s.t >= at && fenced_at.is_none_or(|f| s.t < f);
        self.old_primary_unfenced = samples
            .iter()
            .filter(unfenced)
            .filter(|s| s.writable.contains(&node))
            .map(|s| s.t.saturating_sub(at))
            .max();
        self.max_writable_fenced = samples
            .iter()
            .map(|s| {
                let exempt = unfenced(&s) && s.writable.contains(&node);
                s.writable.len() - usize::from(exempt)
            })
            .max()
            .unwrap_or(0);
    }

    /// The invariants of issue 10: what must hold whatever the timings.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let c = &self.check;
        if !c.acked_missing.is_empty() {
            v.push(format!("acknowledged writes lost: {:?}", c.acked_missing));
        }
        if !c.failed_present.is_empty() {
            v.push(format!(
                "writes that failed (or half a txn) present: {:?}",
                c.failed_present
            ));
        }
        if !c.duplicates.is_empty() {
            v.push(format!("duplicate ids: {:?}", c.duplicates));
        }
        if !c.phantom.is_empty() {
            v.push(format!("ids nobody wrote: {:?}", c.phantom));
        }
        if self.stale_reads > 0 {
            v.push(format!(
                "reads older than the lag threshold: {}",
                self.stale_reads
            ));
        }
        if !c.disagree.is_empty() {
            v.push(format!(
                "replicas disagree with {}: {:?}",
                c.primary, c.disagree
            ));
        }
        if self.max_vip_converged != 1 {
            v.push(format!(
                "VIP holders after convergence: {}",
                self.max_vip_converged
            ));
        }
        if self.max_writable_fenced > 1 {
            v.push(format!(
                "writable primaries at once: {}",
                self.max_writable_fenced
            ));
        }
        if let Some(p) = &self.old_primary {
            if !p.starts_with("fenced, readmitted") && !p.starts_with("no failover") {
                v.push(format!("old primary: {p}"));
            }
        }
        v
    }
}

/// The failed operations by kind and error (message cut at 80 characters).
fn errors(ops: &[Op]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for o in ops {
        let what = match &o.outcome {
            Outcome::Ack => continue,
            Outcome::Error(code, m) => format!("{:?} {code}: {m}", o.kind),
            Outcome::Unknown(m) => format!("{:?} unknown: {m}", o.kind),
        };
        *by.entry(what.chars().take(100).collect()).or_default() += 1;
    }
    by
}

/// Reads that returned fewer of the connection's rows than it had written,
/// acknowledged, more than `stale_after` before the read started.
pub fn stale_reads(ops: &[Op], stale_after: Duration) -> usize {
    let mut stale = 0;
    let conns: BTreeSet<usize> = ops.iter().map(|o| o.conn).collect();
    for conn in conns {
        // (end, rows) of the connection's acknowledged writes, by end.
        let mut acked: Vec<(Duration, u64)> = ops
            .iter()
            .filter(|o| o.conn == conn && o.kind != OpKind::Read && o.outcome == Outcome::Ack)
            .map(|o| (o.end, o.ids.len() as u64))
            .collect();
        acked.sort();
        let mut total = 0;
        let cumulative: Vec<(Duration, u64)> = acked
            .into_iter()
            .map(|(end, n)| {
                total += n;
                (end, total)
            })
            .collect();
        for r in ops
            .iter()
            .filter(|o| o.conn == conn && o.kind == OpKind::Read)
        {
            let Some(seen) = r.seen else { continue };
            let Some(cutoff) = r.start.checked_sub(stale_after) else {
                continue;
            };
            let k = cumulative.partition_point(|(end, _)| *end < cutoff);
            let must = k.checked_sub(1).map_or(0, |i| cumulative[i].1);
            if seen < must {
                stale += 1;
            }
        }
    }
    stale
}

fn ms(d: Option<Duration>) -> String {
    match d {
        None => "0 (no failure)".to_owned(),
        Some(Duration::MAX) => "never recovered".to_owned(),
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
    }
}

/// The reports as a Markdown table.
pub fn table(reports: &[FaultReport]) -> String {
    let mut s = String::from(
        "| fault | write unavail. | read unavail. | max write latency | ops | failed | unknown | acked lost | \
         failed present | unknown present | dup ids | stale reads | replicas disagree | max VIP holders (converged) | \
         max writable primaries (all / old primary fenced) | old primary writable before fenced | \
         max primaries named by proxies | old primary | note |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let c = &r.check;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} s | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            r.fault,
            ms(r.write_unavailable),
            ms(r.read_unavailable),
            r.max_write_latency.as_secs_f64(),
            r.ops,
            r.ops_failed,
            r.ops_unknown,
            c.acked_missing.len(),
            c.failed_present.len(),
            c.unknown_present,
            c.duplicates.len(),
            r.stale_reads,
            if c.disagree.is_empty() {
                "none".to_owned()
            } else {
                c.disagree.join("; ")
            },
            r.max_vip_converged,
            r.max_writable,
            r.max_writable_fenced,
            r.old_primary_unfenced
                .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            r.max_proxy_primaries,
            r.old_primary.as_deref().unwrap_or("-"),
            if r.note.is_empty() { "-" } else { &r.note },
        );
    }
    s
}

// --- the fault injector ------------------------------------------------------------------

/// The tier of a stack a fault hits: the load balancer, the VIP's router,
/// or the SQL proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Lb,
    Vrrp,
    Proxy,
}

/// A stack the faults act on, in the lab: its tiers are its own (hastack's
/// daemons, or keepalived and HAProxy for the classic stack); the databases,
/// hosts and network are the lab's.
pub trait Stack {
    fn lab(&self) -> &Lab;
    /// Where clients connect (port 3306).
    fn vip(&self) -> &'static str;
    /// A tier's program, for the report.
    fn program(&self, tier: Tier) -> &'static str;
    /// Its proxies are sqlproxyds: they fail over, fence and readmit, and
    /// answer /status. The classic stack's do none of that.
    fn has_sqlproxyd(&self) -> bool;
    fn pid(&self, host: &str, tier: Tier) -> Result<i32>;
    /// `kill -9`, or with `graceful` SIGTERM and wait for the exit.
    fn kill(&mut self, host: &str, tier: Tier, graceful: bool) -> Result<()>;
    fn start(&mut self, host: &str, tier: Tier) -> Result<()>;
}

/// hastack as `deploy/lab.sh up` runs it.
impl Stack for Lab {
    fn lab(&self) -> &Lab {
        self
    }

    fn vip(&self) -> &'static str {
        VIP
    }

    fn program(&self, tier: Tier) -> &'static str {
        match tier {
            Tier::Lb => "lbd",
            Tier::Vrrp => "vrrpd",
            Tier::Proxy => "sqlproxyd",
        }
    }

    fn has_sqlproxyd(&self) -> bool {
        true
    }

    fn pid(&self, host: &str, tier: Tier) -> Result<i32> {
        Lab::pid(self, host, self.program(tier))
    }

    /// The signal straight to the recorded PID, not through `lab.sh kill`:
    /// the fault starts when the caller says, not after a script's start-up
    /// (the classic stack's processes are signalled the same way).
    fn kill(&mut self, host: &str, tier: Tier, graceful: bool) -> Result<()> {
        use nix::sys::signal::Signal;
        let pid = Lab::pid(self, host, self.program(tier))?;
        signal_pid(
            pid,
            if graceful {
                Signal::SIGTERM
            } else {
                Signal::SIGKILL
            },
        )?;
        // Not our child: init reaps it. A graceful stop gets lab.sh's 30 s.
        let gone = crate::wait_for(Duration::from_secs(30), Duration::from_millis(10), || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            matches!(state, None | Some('Z')).then_some(())
        });
        if gone.is_none() {
            signal_pid(pid, Signal::SIGKILL)?;
        }
        Ok(())
    }

    fn start(&mut self, host: &str, tier: Tier) -> Result<()> {
        self.ok(&["start", &format!("{host}:{}", self.program(tier))])
            .map(drop)
    }
}

/// One fault of DESIGN.md §5 and how it is undone. Faults hit lb-1 (the VIP's
/// initial holder), proxy-1, or whichever node is primary or replica then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The primary moved to a replica by `POST /actions/switchover` on
    /// proxy-1; not undone (the next faults find the primary wherever it is).
    PrimarySwitchover,
    /// kill -9 of lb-1's load balancer; undone by starting it.
    LbKill,
    /// SIGTERM to lb-1's VRRP router (a priority-0 advert); undone by starting it.
    VrrpTerm,
    /// lb-1's eth0 down and both its daemons killed -9; undone as a reboot
    /// would: VIP gone, link up, daemons started.
    LbHostDeath,
    /// kill -9 of proxy-1's proxy; undone by starting it.
    ProxyKill,
    /// SIGSTOP to proxy-1's proxy; undone by SIGCONT.
    ProxyHang,
    /// Everything between proxy-1 and the primary dropped for
    /// `RunConfig::partition`; undone by healing it.
    ProxyPartition,
    /// `STOP SLAVE SQL_THREAD` on a replica (its lag grows); undone by
    /// `START SLAVE SQL_THREAD`.
    ReplicaSqlStopped,
    /// kill -9 of the primary's MariaDB, later restarted: hastack fences it
    /// and readmits it as a replica.
    PrimaryKill,
}

impl Fault {
    /// In the order a run takes them: the switchover first, so that every
    /// other fault lies between it and the primary's death
    /// (`min_switch_interval` applies to a failover after a switchover).
    pub const ALL: [Fault; 9] = [
        Fault::PrimarySwitchover,
        Fault::LbKill,
        Fault::VrrpTerm,
        Fault::LbHostDeath,
        Fault::ProxyKill,
        Fault::ProxyHang,
        Fault::ProxyPartition,
        Fault::ReplicaSqlStopped,
        Fault::PrimaryKill,
    ];

    /// The fault's name with `stack`'s programs in it.
    pub fn label(self, stack: &dyn Stack) -> String {
        let p = |t| stack.program(t);
        match self {
            Fault::PrimarySwitchover => "primary switchover (planned, via proxy-1)".to_owned(),
            Fault::LbKill => format!("{} kill -9 (lb-1)", p(Tier::Lb)),
            Fault::VrrpTerm => format!("{} SIGTERM (lb-1)", p(Tier::Vrrp)),
            Fault::LbHostDeath => format!(
                "LB host death (lb-1: link down, {} and {} kill -9)",
                p(Tier::Lb),
                p(Tier::Vrrp)
            ),
            Fault::ProxyKill => format!("{} kill -9 (proxy-1)", p(Tier::Proxy)),
            Fault::ProxyHang => format!("{} SIGSTOP (proxy-1)", p(Tier::Proxy)),
            Fault::ProxyPartition => "network partition between proxy-1 and the primary".to_owned(),
            Fault::ReplicaSqlStopped => "replica SQL thread stopped (lag grows)".to_owned(),
            Fault::PrimaryKill => "primary MariaDB kill -9, restarted".to_owned(),
        }
    }

    /// Whether the fault means anything for `stack`: a planned switchover
    /// needs a proxy that can do one.
    pub fn applies_to(self, stack: &dyn Stack) -> bool {
        self != Fault::PrimarySwitchover || stack.has_sqlproxyd()
    }
}

pub(crate) fn signal_pid(pid: i32, sig: nix::sys::signal::Signal) -> Result<()> {
    Ok(nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        sig,
    )?)
}

/// A node's state and readability in a sqlproxyd's /status.
pub fn proxy_node_state(proxy: &str, node: &str) -> Option<(String, bool)> {
    let body = http_body(&format!("{proxy}:9166"), "/status")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let n = v
        .get("state")?
        .get("data_hosts")?
        .get(0)?
        .get("nodes")?
        .as_array()?
        .iter()
        .find(|n| n.get("name").and_then(|x| x.as_str()) == Some(node))?;
    Some((
        n.get("state")?.as_str().unwrap_or("?").to_owned(),
        n.get("readable")?.as_bool().unwrap_or(false),
    ))
}

/// `n` new connections in a row through `vip` each take a write (into
/// `app.chaos_probe`) and answer `SELECT 1`.
fn stack_serves(vip: &str, n: usize) -> bool {
    (0..n).all(|_| {
        connect(vip, "app", "app", Some("app")).is_ok_and(|mut c| {
            c.query_drop("INSERT INTO chaos_probe (t) VALUES (NOW(6))")
                .is_ok()
                && c.query_first::<u8, _>("SELECT 1").is_ok()
        })
    })
}

/// Waits until the stack serves again through `vip` with one VIP holder.
pub(crate) fn wait_converged(vip: &str, timeout: Duration) -> Result<()> {
    crate::wait_for(timeout, Duration::from_millis(200), || {
        (vip_holders_of(vip).len() == 1 && stack_serves(vip, 6)).then_some(())
    })
    .ok_or_else(|| {
        anyhow!(
            "the stack did not serve again within {timeout:?} (VIP on {:?})",
            vip_holders_of(vip)
        )
    })
}

/// Per-fault timings of one run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub load: WorkloadConfig,
    /// Load before the fault.
    pub before: Duration,
    /// Load kept after each convergence (the window where at most one VIP
    /// holder is asserted).
    pub hold: Duration,
    pub converge_timeout: Duration,
    /// How long a partition lasts.
    pub partition: Duration,
    /// A read may miss the connection's own acknowledged writes only when
    /// they are younger than this: the proxies' `max_replica_lag`, plus a
    /// heartbeat interval, plus a second of `Seconds_Behind_Master`'s
    /// granularity.
    pub stale_after: Duration,
}

/// A replica of `primary` with both threads running.
fn a_replica_of(primary: &str) -> Result<&'static str> {
    DBS.iter()
        .filter(|(n, _)| *n != primary)
        .find(|(_, a)| node_state(a).is_ok_and(|s| s.replicating && s.io_running && s.sql_running))
        .map(|(n, _)| *n)
        .ok_or_else(|| anyhow!("no running replica of {primary}"))
}

fn on_node(node: &str, sql: &str) -> Result<()> {
    connect(db_addr(node), "monitor", "monitor", None)?
        .query_drop(sql)
        .with_context(|| format!("{node}: {sql}"))
}

/// Runs the workload through `stack`'s VIP, injects `fault`, waits for
/// convergence, undoes the fault, waits again, checks the ledger: one
/// report.
pub fn run_fault(
    stack: &mut dyn Stack,
    fault: Fault,
    table: &str,
    cfg: &RunConfig,
) -> Result<FaultReport> {
    let vip = stack.vip();
    let ha = stack.has_sqlproxyd();
    let label = fault.label(stack);
    let mut probe = connect(vip, "app", "app", Some("app"))?;
    probe.query_drop("CREATE TABLE IF NOT EXISTS chaos_probe (n BIGINT AUTO_INCREMENT PRIMARY KEY, t DATETIME(6))")?;
    drop(probe);
    let old_primary = current_primary()?;
    let replica = a_replica_of(old_primary)?;
    let load = Workload::start(vip, table, &cfg.load)?;
    let sampler = Sampler::start(load.t0, Duration::from_millis(200), vip, ha);
    std::thread::sleep(cfg.before);
    let mut converged = Vec::new();
    let mut hang_pid = None;
    let mut note = String::new();
    // The switchover is an admin action: it takes the lab's token.
    let token = match fault {
        Fault::PrimarySwitchover => stack.lab().admin_token()?,
        _ => String::new(),
    };
    // The fault starts with its first action.
    let fault_at = load.now();
    let injected = (|| -> Result<()> {
        match fault {
            Fault::PrimarySwitchover => {
                let admin: SocketAddr = format!("{}:9166", PROXIES[0].1).parse()?;
                let (code, body) = crate::daemon::try_http_post(
                    admin,
                    &format!("/actions/switchover?node={replica}"),
                    &token,
                )?;
                if code != 200 {
                    bail!("POST /actions/switchover?node={replica}: {code} {body}");
                }
            }
            Fault::LbKill => stack.kill("lb-1", Tier::Lb, false)?,
            Fault::VrrpTerm => stack.kill("lb-1", Tier::Vrrp, true)?,
            Fault::LbHostDeath => {
                set_link("lb-1", false, vip)?;
                stack.kill("lb-1", Tier::Lb, false)?;
                stack.kill("lb-1", Tier::Vrrp, false)?;
            }
            Fault::ProxyKill => stack.kill("proxy-1", Tier::Proxy, false)?,
            Fault::ProxyHang => {
                let pid = stack.pid("proxy-1", Tier::Proxy)?;
                signal_pid(pid, nix::sys::signal::Signal::SIGSTOP)?;
                hang_pid = Some(pid);
            }
            Fault::ProxyPartition => {
                drop(stack.lab().ok(&["partition", "proxy-1", old_primary])?)
            }
            Fault::ReplicaSqlStopped => on_node(replica, "STOP SLAVE SQL_THREAD")?,
            Fault::PrimaryKill => {
                // Straight to the PID, as the tiers' faults.
                let pid = stack.lab().pid(old_primary, "mariadbd")?;
                signal_pid(pid, nix::sys::signal::Signal::SIGKILL)?;
            }
        }
        Ok(())
    })();
    let mut old = None;
    let mut restarted_at = None;
    let mut readmitted = None;
    let mut served_again = None;
    let res = injected.and_then(|()| {
        match fault {
            Fault::ProxyPartition => {
                // Held for its time whatever happens: the report says whether
                // the stack routed around it meanwhile.
                let t = Instant::now();
                let served = wait_converged(vip, cfg.partition).is_ok();
                if served {
                    served_again = Some(load.now().saturating_sub(fault_at));
                }
                if ha && !served {
                    // proxy-1's /health says it is cut off: lbd must route
                    // every new client to proxy-2.
                    bail!(
                        "new connections kept failing for the whole {:?} partition",
                        cfg.partition
                    );
                }
                note = if served {
                    format!(
                        "served every new connection again {:.1} s into the {:.0} s partition",
                        t.elapsed().as_secs_f64(),
                        cfg.partition.as_secs_f64()
                    )
                } else {
                    format!(
                        "new connections kept failing for the whole {:.0} s partition",
                        cfg.partition.as_secs_f64()
                    )
                };
                std::thread::sleep(cfg.partition.saturating_sub(t.elapsed()));
            }
            Fault::PrimaryKill if !ha => {
                // No failover: the writes wait for the primary, which a DBA
                // restarts by hand; show that they do not come back before.
                let served = wait_converged(vip, cfg.converge_timeout).is_ok();
                note = if served {
                    "served again without the primary".to_owned()
                } else {
                    format!(
                        "no failover: writes failed until the primary was restarted by hand after {:.0} s",
                        cfg.converge_timeout.as_secs_f64()
                    )
                };
            }
            _ => match wait_converged(vip, cfg.converge_timeout) {
                Ok(()) => {
                    served_again = Some(load.now().saturating_sub(fault_at));
                    let a = load.now();
                    std::thread::sleep(cfg.hold);
                    converged.push((a, load.now()));
                }
                // hastack must route around every fault; for another stack
                // that it does not is the finding.
                Err(e) if ha => return Err(e),
                Err(_) => {
                    note = format!(
                        "new connections kept failing while the fault lasted ({:.0} s, then undone)",
                        cfg.converge_timeout.as_secs_f64()
                    );
                }
            },
        }
        match fault {
            Fault::PrimarySwitchover => {}
            Fault::LbKill => stack.start("lb-1", Tier::Lb)?,
            Fault::VrrpTerm => stack.start("lb-1", Tier::Vrrp)?,
            Fault::LbHostDeath => {
                set_link("lb-1", true, vip)?;
                stack.start("lb-1", Tier::Lb)?;
                stack.start("lb-1", Tier::Vrrp)?;
            }
            Fault::ProxyKill => stack.start("proxy-1", Tier::Proxy)?,
            Fault::ProxyHang => {}
            Fault::ProxyPartition => drop(stack.lab().ok(&["heal", "proxy-1", old_primary])?),
            Fault::ReplicaSqlStopped => on_node(replica, "START SLAVE SQL_THREAD")?,
            Fault::PrimaryKill => {
                restarted_at = Some(load.now());
                drop(stack.lab().ok(&["start", old_primary])?);
            }
        }
        if let Some(pid) = hang_pid.take() {
            signal_pid(pid, nix::sys::signal::Signal::SIGCONT)?;
        }
        if fault == Fault::PrimaryKill {
            old = Some(if ha {
                let r = wait_readmitted(old_primary, cfg.converge_timeout * 2);
                if r.is_ok() {
                    readmitted = restarted_at.map(|at| load.now().saturating_sub(at));
                }
                r
            } else {
                Ok(note.clone())
            });
        }
        // Back to the initial layout: lb-1 preempts the VIP back (priority 150).
        if matches!(fault, Fault::LbKill | Fault::VrrpTerm | Fault::LbHostDeath) {
            crate::wait_for(cfg.converge_timeout, Duration::from_millis(100), || {
                (vip_holders_of(vip) == ["lb-1"]).then_some(())
            })
            .ok_or_else(|| anyhow!("lb-1 did not take the VIP back: {:?}", vip_holders_of(vip)))?;
        }
        wait_converged(vip, cfg.converge_timeout)?;
        let b = load.now();
        std::thread::sleep(cfg.hold);
        converged.push((b, load.now()));
        Ok(())
    });
    if let Some(pid) = hang_pid {
        let _ = signal_pid(pid, nix::sys::signal::Signal::SIGCONT);
    }
    let ops = load.finish();
    let samples = sampler.finish();
    res.with_context(|| format!("{label} (injected at {fault_at:?})"))?;
    let check = check(table, &ops)?;
    let mut r = FaultReport::new(&label, &ops, &samples, &converged, check, cfg.stale_after);
    if let Some(at) = restarted_at {
        r.returning(old_primary, at, &samples);
    }
    r.old_primary = old.map(|o| match o {
        Ok(s) => s,
        Err(e) => format!("{e:#}"),
    });
    r.readmitted = readmitted;
    r.served_again = served_again;
    r.note = note;
    Ok(r)
}

/// Waits until the restarted old primary was fenced (read_only, or a proxy
/// calls it fenced or rejoining) and then readmitted: read_only, replicating
/// with both threads running, up and readable on both proxies.
fn wait_readmitted(node: &str, timeout: Duration) -> Result<String> {
    let addr = db_addr(node);
    let mut fenced_seen = Vec::new();
    let t = Instant::now();
    let ok = crate::wait_for(timeout, Duration::from_millis(200), || {
        let st = node_state(addr).ok();
        if st.as_ref().is_some_and(|s| s.read_only) && !fenced_seen.contains(&"read_only") {
            fenced_seen.push("read_only");
        }
        let views: Vec<Option<(String, bool)>> = PROXIES
            .iter()
            .map(|(_, p)| proxy_node_state(p, node))
            .collect();
        for (s, _) in views.iter().flatten() {
            if (s == "fenced" || s == "rejoining") && !fenced_seen.contains(&"proxy") {
                fenced_seen.push("proxy");
            }
        }
        let repl_ok =
            st.is_some_and(|s| s.read_only && s.replicating && s.io_running && s.sql_running);
        let proxies_ok = views
            .iter()
            .all(|v| v.as_ref().is_some_and(|(s, r)| s == "up" && *r));
        (repl_ok && proxies_ok).then_some(())
    });
    let took = Instant::now().duration_since(t);
    match ok {
        Some(()) if !fenced_seen.is_empty() => {
            Ok(format!("fenced, readmitted in {:.1} s", took.as_secs_f64()))
        }
        Some(()) => Ok(format!(
            "readmitted in {:.1} s, never seen fenced",
            took.as_secs_f64()
        )),
        None => Err(anyhow!(
            "not readmitted within {timeout:?}: {:?}, proxies: {:?}",
            node_state(addr).ok(),
            PROXIES
                .iter()
                .map(|(_, p)| proxy_node_state(p, node))
                .collect::<Vec<_>>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: "HY000".into(),
            code,
            message: "m".into(),
        })
    }

    #[test]
    fn a_proxys_lost_connection_after_the_commit_is_unknown() {
        assert!(matches!(
            classify(&server_error(2013), true),
            Outcome::Unknown(_)
        ));
        assert!(matches!(
            classify(&server_error(2006), true),
            Outcome::Unknown(_)
        ));
        // Before the commit was sent nothing can have committed.
        assert_eq!(
            classify(&server_error(2013), false),
            Outcome::Error(2013, "m".into())
        );
        // read_only refused it: it did not run.
        assert_eq!(
            classify(&server_error(1290), true),
            Outcome::Error(1290, "m".into())
        );
    }

    fn op(conn: usize, kind: OpKind, ids: u64, start: u64, end: u64, seen: Option<u64>) -> Op {
        Op {
            conn,
            kind,
            ids: (0..ids).collect(),
            start: Duration::from_secs(start),
            end: Duration::from_secs(end),
            outcome: Outcome::Ack,
            seen,
        }
    }

    #[test]
    fn a_read_is_stale_only_past_the_allowed_lag() {
        let ops = [
            op(0, OpKind::Insert, 1, 0, 1, None),
            op(0, OpKind::Txn, 2, 2, 3, None),
            // 3 rows acknowledged by t=3; at t=5 (< 3 + 7) seeing 1 is allowed.
            op(0, OpKind::Read, 0, 5, 5, Some(1)),
            // At t=11 only the first row is older than 7 s: 1 is enough.
            op(0, OpKind::Read, 0, 9, 9, Some(1)),
            // At t=20 all three are: 2 is stale.
            op(0, OpKind::Read, 0, 20, 20, Some(2)),
            // Another connection's rows do not count.
            op(1, OpKind::Read, 0, 20, 20, Some(0)),
        ];
        assert_eq!(stale_reads(&ops, Duration::from_secs(7)), 1);
    }
}
