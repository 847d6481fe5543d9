//! VIP failover time, vrrpd vs keepalived 2.2.7, side by side in one run,
//! with the same settings: the master (lb1, priority 150) is killed with
//! SIGKILL, stopped with SIGTERM, or loses a tracked process (weight -60,
//! so 90 < the backup's 100), at `advert_int` 1 s (VRRP v2) and 100 ms (v3).
//!
//! Each trial builds a fresh [`NetLab`] (lb1, lb2, client on 10.99.0.0/24,
//! VIP 10.99.0.100/24), runs a TCP responder on each router host that
//! greets with its host name (threads of this process moved into the host's
//! namespace with setns), and a prober in the client namespace that starts
//! a connection to VIP:7000 every 10 ms (connect and greeting timeout
//! 100 ms, each attempt on its own thread so a timeout does not delay the
//! next one). Recorded per trial:
//!
//! - **takeover**: the event (signal sent) → the first answer from lb2;
//!   this is what the RFC bounds (Master_Down_Interval after a crash,
//!   Skew_Time after a priority-0 advert);
//! - **gap**: the last answer from lb1 → the first from lb2, the outage a
//!   client sees. After SIGKILL the VIP stays on lb1 (nobody removes it)
//!   and lb1's kernel keeps answering until lb2's gratuitous ARP moves the
//!   client's ARP entry, so the gap is short there; that is what users get.
//! - **flaps**: answers from lb1 after the first one from lb2.
//!
//! Run with the release binaries (see bench/README.md):
//! `cargo build --release --workspace --bins && target/release/bench-vrrp [TRIALS]`
//! (TRIALS defaults to `$BENCH_TRIALS`, else 5; needs root). Prints a
//! markdown table for bench/RESULTS.md on stdout; one line per trial on
//! stderr. `BENCH_KEEP_LOGS=DIR` keeps every trial's configs and daemon logs.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hastack_it::daemon::bin_path;
use hastack_it::netlab::NetLab;
use hastack_it::process::LoggedChild;
use hastack_it::tcp::EchoServer;
use hastack_it::wait_for;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const KEEPALIVED: &str = "/usr/sbin/keepalived";
/// Why keepalived has no tracked-process figures: its `track_process`
/// listens to the kernel's proc connector, which answers only in the initial
/// network namespace. In a lab namespace the VRRP child logs "Failed to
/// set/clear process event listen - errno 111 - Connection refused" and
/// runs with the weight applied from the start (150 - 60 = 90), so lb1 is
/// never master; and 2.2.7 as packaged here does not know `net_namespace`.
const KEEPALIVED_TRACK: &str = "n/a: keepalived's track_process needs the proc connector, \
     which works only in the initial network namespace";
const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const PORT: u16 = 7000;
const HOSTS: [(&str, &str); 3] = [
    ("lb1", "10.99.0.11/24"),
    ("lb2", "10.99.0.12/24"),
    ("client", "10.99.0.50/24"),
];
const MASTER_PRIORITY: u8 = 150;
const BACKUP_PRIORITY: u8 = 100;
/// The tracked process's weight: 150 - 60 = 90 < 100.
const TRACK_WEIGHT: i32 = -60;
/// A new connection attempt this often.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Connect and greeting timeout of one attempt.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// After the first answer from the new master, probing goes on this long
/// (to catch answers from the old one coming back).
const AFTER_TAKEOVER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Vrrpd,
    Keepalived,
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Vrrpd => "vrrpd",
            Daemon::Keepalived => "keepalived",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    Kill9,
    Sigterm,
    TrackedProcess,
}

impl Event {
    fn key(self) -> &'static str {
        match self {
            Event::Kill9 => "kill9",
            Event::Sigterm => "term",
            Event::TrackedProcess => "track",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Event::Kill9 => "kill -9 of the master",
            Event::Sigterm => "SIGTERM of the master",
            Event::TrackedProcess => "tracked process killed",
        }
    }
}

#[derive(Clone, Copy)]
struct Timing {
    version: u8,
    advert_int: Duration,
}

impl Timing {
    /// Skew_Time of the backup (priority 100).
    fn skew(self) -> Duration {
        let p = 256 - u32::from(BACKUP_PRIORITY);
        if self.version == 2 {
            Duration::from_secs(1) * p / 256
        } else {
            self.advert_int * p / 256
        }
    }

    fn master_down(self) -> Duration {
        self.advert_int * 3 + self.skew()
    }

    /// The RFC's bound on the takeover for `event`: Master_Down_Interval
    /// after the last advert at the master's full priority (a backup with
    /// Preempt_Mode discards the lower-priority ones), Skew_Time after a
    /// priority-0 advert.
    fn bound(self, event: Event) -> Duration {
        match event {
            Event::Kill9 | Event::TrackedProcess => self.master_down(),
            Event::Sigterm => self.skew(),
        }
    }

    fn label(self) -> String {
        format!("v{}, advert_int {}", self.version, secs(self.advert_int))
    }
}

const TIMINGS: [Timing; 2] = [
    Timing {
        version: 2,
        advert_int: Duration::from_secs(1),
    },
    Timing {
        version: 3,
        advert_int: Duration::from_millis(100),
    },
];

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Moves the calling thread into `netns` (threads it spawns afterwards
/// start there too; sockets stay in the namespace they were made in).
fn enter_netns(netns: &str) -> Result<()> {
    let f = File::open(Path::new("/run/netns").join(netns))
        .with_context(|| format!("opening namespace {netns}"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering namespace {netns}"))
}

/// A greeting server running in a host's namespace.
struct Responder {
    _server: EchoServer,
}

impl Responder {
    fn start(lab: &NetLab, host: &str) -> Result<Responder> {
        let netns = lab.host(host).netns.clone();
        let name = host.to_owned();
        let server = std::thread::spawn(move || -> Result<EchoServer> {
            enter_netns(&netns)?;
            EchoServer::start(&name, SocketAddr::from(([0, 0, 0, 0], PORT)))
        })
        .join()
        .map_err(|_| anyhow!("responder thread panicked"))??;
        Ok(Responder { _server: server })
    }
}

/// One connection attempt: when it started and ended, and who answered.
struct Probe {
    start: Instant,
    end: Instant,
    answer: Result<String, String>,
}

fn probe_once(addr: SocketAddr) -> Result<String, String> {
    let s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.is_empty() {
        return Err("closed before the greeting".into());
    }
    Ok(line.trim_end().to_owned())
}

/// Connection attempts to VIP:PORT from the client namespace every
/// [`PROBE_EVERY`], each on its own thread; stopped (and joined) on drop.
struct Prober {
    probes: Arc<Mutex<Vec<Probe>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Prober {
    fn start(lab: &NetLab) -> Prober {
        let netns = lab.host("client").netns.clone();
        let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (probes.clone(), stop.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            enter_netns(&netns)?;
            let addr = SocketAddr::from((VIP, PORT));
            let mut workers: Vec<JoinHandle<()>> = Vec::new();
            let mut next = Instant::now();
            while !s.load(Ordering::SeqCst) {
                let p = p.clone();
                workers.push(std::thread::spawn(move || {
                    let start = Instant::now();
                    let answer = probe_once(addr);
                    let probe = Probe {
                        start,
                        end: Instant::now(),
                        answer,
                    };
                    p.lock().unwrap_or_else(|e| e.into_inner()).push(probe);
                }));
                workers.retain(|w| !w.is_finished());
                next += PROBE_EVERY;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            for w in workers {
                let _ = w.join();
            }
            Ok(())
        });
        Prober {
            probes,
            stop,
            thread: Some(thread),
        }
    }

    /// The host named in the latest answer that ended at or after `since`.
    fn latest_answer(&self, since: Instant) -> Option<String> {
        let probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes
            .iter()
            .filter(|p| p.end >= since)
            .max_by_key(|p| p.end)
            .and_then(|p| p.answer.clone().ok())
    }

    /// The end of the first answer from `host` that started at or after `since`.
    fn first_answer_from(&self, host: &str, since: Instant) -> Option<Instant> {
        let probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes
            .iter()
            .filter(|p| p.start >= since && p.answer.as_deref() == Ok(host))
            .map(|p| p.end)
            .min()
    }

    fn finish(mut self) -> Result<Vec<Probe>> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| anyhow!("prober panicked"))??;
        }
        let mut probes =
            std::mem::take(&mut *self.probes.lock().unwrap_or_else(|e| e.into_inner()));
        probes.sort_by_key(|p| p.start);
        Ok(probes)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one trial measured.
struct Outcome {
    takeover: Duration,
    gap: Duration,
    flaps: usize,
    errors: usize,
}

fn analyse(probes: &[Probe], event: Instant) -> Result<Outcome> {
    let first_new = probes
        .iter()
        .filter(|p| p.answer.as_deref() == Ok("lb2"))
        .min_by_key(|p| p.end)
        .ok_or_else(|| anyhow!("lb2 never answered"))?;
    if first_new.end < event {
        bail!("lb2 answered before the event");
    }
    let last_old = probes
        .iter()
        .filter(|p| p.answer.as_deref() == Ok("lb1") && p.end <= first_new.end)
        .max_by_key(|p| p.end)
        .ok_or_else(|| anyhow!("lb1 never answered"))?;
    let flaps = probes
        .iter()
        .filter(|p| p.answer.as_deref() == Ok("lb1") && p.start > first_new.end)
        .count();
    let errors = probes
        .iter()
        .filter(|p| p.answer.is_err() && p.start >= event && p.start <= first_new.end)
        .count();
    Ok(Outcome {
        takeover: first_new.end.duration_since(event),
        gap: first_new.end.duration_since(last_old.end),
        flaps,
        errors,
    })
}

static TRACKED: AtomicUsize = AtomicUsize::new(0);

/// A tracked process: a copy of `sleep` under a unique name, so its
/// /proc/PID/comm is that name.
struct Tracked {
    name: String,
    child: LoggedChild,
}

impl Tracked {
    fn start(dir: &Path, name: &str) -> Result<Tracked> {
        let path = dir.join(name);
        std::fs::copy("/bin/sleep", &path).context("copying /bin/sleep")?;
        let child = LoggedChild::spawn(&path, &["3600"], dir.join(format!("{name}.log")))?;
        let comm = PathBuf::from(format!("/proc/{}/comm", child.pid()));
        // setpriv execs the copy; wait until the PID carries its name.
        wait_for(Duration::from_secs(5), Duration::from_millis(5), || {
            std::fs::read_to_string(&comm)
                .ok()
                .filter(|c| c.trim_end() == name)
        })
        .ok_or_else(|| anyhow!("tracked process {name} did not start"))?;
        Ok(Tracked {
            name: name.to_owned(),
            child,
        })
    }
}

fn vrrpd_config(host: &str, timing: Timing, track: Option<&str>) -> String {
    let (priority, state) = if host == "lb1" {
        (MASTER_PRIORITY, "MASTER")
    } else {
        (BACKUP_PRIORITY, "BACKUP")
    };
    let mut c = String::from("admin_http:\n  listen: 127.0.0.1:9168\n");
    if let Some(name) = track {
        c += &format!(
            "vrrp_track_process:\n  trk:\n    process: {name}\n    quorum: 1\n    weight: {TRACK_WEIGHT}\n"
        );
    }
    c += &format!(
        "instances:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n    priority: {priority}\n    \
         advert_int: {}ms\n    version: {}\n    state: {state}\n    virtual_ipaddress: [{VIP}/24]\n",
        timing.advert_int.as_millis(),
        timing.version
    );
    if track.is_some() {
        c += "    track_process: [trk]\n";
    }
    c
}

fn keepalived_config(host: &str, timing: Timing, track: Option<&str>) -> String {
    let (priority, state) = if host == "lb1" {
        (MASTER_PRIORITY, "MASTER")
    } else {
        (BACKUP_PRIORITY, "BACKUP")
    };
    let mut c = format!(
        "global_defs {{\n    router_id {host}\n    vrrp_version {}\n}}\n",
        timing.version
    );
    if let Some(name) = track {
        c += &format!(
            "vrrp_track_process trk {{\n    process {name}\n    quorum 1\n    weight {TRACK_WEIGHT}\n}}\n"
        );
    }
    let advert_int = if timing.advert_int >= Duration::from_secs(1) {
        timing.advert_int.as_secs().to_string()
    } else {
        format!("{}", timing.advert_int.as_secs_f64())
    };
    c += &format!(
        "vrrp_instance VI_1 {{\n    state {state}\n    interface eth0\n    virtual_router_id 51\n    \
         priority {priority}\n    advert_int {advert_int}\n    virtual_ipaddress {{\n        {VIP}/24\n    }}\n"
    );
    if track.is_some() {
        c += "    track_process {\n        trk\n    }\n";
    }
    c += "}\n";
    c
}

/// One router's daemon, started inside its namespace with `ip netns exec`
/// (which execs, so the PID is the daemon's).
struct Router {
    daemon: Daemon,
    child: LoggedChild,
    /// keepalived's VRRP child writes its PID here.
    vrrp_pidfile: PathBuf,
}

impl Router {
    fn start(
        lab: &NetLab,
        daemon: Daemon,
        host: &str,
        timing: Timing,
        track: Option<&str>,
        dir: &Path,
    ) -> Result<Router> {
        let netns = lab.host(host).netns.clone();
        let conf = dir.join(format!("{}-{host}.conf", daemon.name()));
        let log = dir.join(format!("{}-{host}.log", daemon.name()));
        let pidfile = dir.join(format!("{host}.pid"));
        let vrrp_pidfile = dir.join(format!("{host}-vrrp.pid"));
        let (text, program) = match daemon {
            Daemon::Vrrpd => (
                vrrpd_config(host, timing, track),
                bin_path("vrrpd")?.to_string_lossy().into_owned(),
            ),
            Daemon::Keepalived => (keepalived_config(host, timing, track), KEEPALIVED.into()),
        };
        std::fs::write(&conf, text)?;
        let conf_s = conf.to_string_lossy().into_owned();
        let mut args: Vec<String> = vec!["netns".into(), "exec".into(), netns, program];
        match daemon {
            Daemon::Vrrpd => args.extend(["--config".into(), conf_s]),
            Daemon::Keepalived => args.extend([
                "-n".into(),
                "-l".into(),
                "-D".into(),
                "--vrrp".into(),
                "-f".into(),
                conf_s,
                "-p".into(),
                pidfile.to_string_lossy().into_owned(),
                "-r".into(),
                vrrp_pidfile.to_string_lossy().into_owned(),
            ]),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = LoggedChild::spawn(Path::new("/usr/sbin/ip"), &args, log)?;
        let r = Router {
            daemon,
            child,
            vrrp_pidfile,
        };
        let comm = PathBuf::from(format!("/proc/{}/comm", r.child.pid()));
        wait_for(Duration::from_secs(5), Duration::from_millis(5), || {
            std::fs::read_to_string(&comm)
                .ok()
                .filter(|c| c.trim_end() == daemon.name())
        })
        .ok_or_else(|| anyhow!("{} on {host} did not start", daemon.name()))?;
        if daemon == Daemon::Keepalived {
            wait_for(Duration::from_secs(5), Duration::from_millis(5), || {
                r.vrrp_child().ok()
            })
            .ok_or_else(|| anyhow!("keepalived's VRRP child on {host} did not start"))?;
        }
        Ok(r)
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.pid() as i32)
    }

    fn vrrp_child(&self) -> Result<Pid> {
        let pid: i32 = std::fs::read_to_string(&self.vrrp_pidfile)?
            .trim()
            .parse()?;
        // The file may be stale or half-written: the PID must be a live keepalived.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))?;
        if comm.trim_end() != "keepalived" || pid == self.child.pid() as i32 {
            bail!("no VRRP child yet");
        }
        Ok(Pid::from_raw(pid))
    }

    /// SIGKILL as a crash would: for keepalived the VRRP process (the one
    /// holding the state) and its parent, which would otherwise restart it
    /// or, dying first, make it stop cleanly (its parent-death signal is
    /// SIGTERM). Returns when the signal went to the VRRP process.
    fn crash(&self) -> Result<Instant> {
        match self.daemon {
            Daemon::Vrrpd => {
                let at = Instant::now();
                kill(self.pid(), Signal::SIGKILL)?;
                Ok(at)
            }
            Daemon::Keepalived => {
                let child = self.vrrp_child()?;
                kill(self.pid(), Signal::SIGSTOP)?;
                let at = Instant::now();
                kill(child, Signal::SIGKILL)?;
                kill(self.pid(), Signal::SIGKILL)?;
                Ok(at)
            }
        }
    }

    fn terminate(&self) -> Result<Instant> {
        let at = Instant::now();
        kill(self.pid(), Signal::SIGTERM)?;
        Ok(at)
    }

    fn log_tail(&self) -> String {
        self.child.log_tail()
    }
}

fn has_vip(lab: &NetLab, host: &str) -> Result<bool> {
    let out = lab.run(host, "ip", &["-4", "-o", "addr", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains(&format!(" {VIP}/")))
}

/// The directory a trial's configs and logs go to: kept under
/// `$BENCH_KEEP_LOGS` if set, else removed with the TempDir.
fn trial_dir(keep: Option<&Path>, tag: &str) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match keep {
        Some(root) => {
            let d = root.join(tag);
            std::fs::create_dir_all(&d)?;
            Ok((d, None))
        }
        None => {
            let t = tempfile::Builder::new().prefix("bench-vrrp-").tempdir()?;
            Ok((t.path().to_owned(), Some(t)))
        }
    }
}

/// One trial: a fresh lab, lb1 master, lb2 backup, then `event` on lb1
/// `phase` (a fraction of advert_int) after the setup settled.
fn trial(daemon: Daemon, event: Event, timing: Timing, phase: f64, dir: &Path) -> Result<Outcome> {
    let lab = NetLab::new(&HOSTS)?;
    let _r1 = Responder::start(&lab, "lb1")?;
    let _r2 = Responder::start(&lab, "lb2")?;
    let prober = Prober::start(&lab);
    // /proc/PID/comm keeps 15 bytes: "hsb" + PID + "x" + a counter fits.
    let track_name = format!(
        "hsb{}x{}",
        std::process::id() % 100_000,
        TRACKED.fetch_add(1, Ordering::SeqCst)
    );
    let mut tracked = match event {
        Event::TrackedProcess => Some(Tracked::start(dir, &track_name)?),
        _ => None,
    };
    let track = tracked.as_ref().map(|t| t.name.as_str());
    let lb1 = Router::start(&lab, daemon, "lb1", timing, track, dir)?;
    let t0 = Instant::now();
    wait_for(Duration::from_secs(15), Duration::from_millis(20), || {
        (prober.latest_answer(t0).as_deref() == Some("lb1")).then_some(())
    })
    .ok_or_else(|| anyhow!("lb1 never answered on the VIP:\n{}", lb1.log_tail()))?;
    let lb2 = Router::start(&lab, daemon, "lb2", timing, None, dir)?;
    // lb2 hears lb1's adverts and stays backup; wait well past its own
    // Master_Down_Interval so a start-up takeover would have shown.
    std::thread::sleep(timing.master_down() + Duration::from_millis(500));
    std::thread::sleep(timing.advert_int.mul_f64(phase));
    if has_vip(&lab, "lb2")? || !has_vip(&lab, "lb1")? {
        bail!(
            "not settled (lb1 should hold the VIP alone):\nlb1:\n{}\nlb2:\n{}",
            lb1.log_tail(),
            lb2.log_tail()
        );
    }
    if prober.latest_answer(t0).as_deref() != Some("lb1") {
        bail!("the VIP does not answer from lb1 before the event");
    }
    let at = match event {
        Event::Kill9 => lb1.crash()?,
        Event::Sigterm => lb1.terminate()?,
        Event::TrackedProcess => {
            let t = tracked
                .as_mut()
                .ok_or_else(|| anyhow!("no tracked process"))?;
            let at = Instant::now();
            kill(Pid::from_raw(t.child.pid() as i32), Signal::SIGKILL)?;
            // Reaped at once, as a supervisor would: a zombie still has its
            // /proc/PID/comm.
            wait_for(Duration::from_secs(5), Duration::from_micros(200), || {
                t.child.exited()
            })
            .ok_or_else(|| anyhow!("the tracked process did not die"))?;
            at
        }
    };
    let limit = timing.master_down() + Duration::from_secs(5);
    let first = wait_for(limit, Duration::from_millis(10), || {
        prober.first_answer_from("lb2", at)
    });
    if first.is_some() {
        std::thread::sleep(AFTER_TAKEOVER);
    }
    let probes = prober.finish()?;
    let outcome = analyse(&probes, at).with_context(|| {
        format!(
            "no takeover within {}:\nlb1:\n{}\nlb2:\n{}",
            secs(limit),
            lb1.log_tail(),
            lb2.log_tail()
        )
    });
    drop(lb2);
    drop(lb1);
    drop(tracked);
    lab.link_down("client").ok();
    outcome
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let n = s.len();
    if n == 0 {
        Duration::ZERO
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

struct Summary {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn summary(v: &[Duration]) -> Summary {
    Summary {
        median: median(v),
        min: v.iter().min().copied().unwrap_or_default(),
        max: v.iter().max().copied().unwrap_or_default(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn cell(s: &Summary) -> String {
    format!("{} ({}–{})", ms(s.median), ms(s.min), ms(s.max))
}

fn main() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("bench-vrrp needs root (network namespaces)");
    }
    let trials: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().context("TRIALS")?,
        None => std::env::var("BENCH_TRIALS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
    };
    if trials == 0 {
        bail!("TRIALS must be at least 1");
    }
    bin_path("vrrpd")?;
    if !Path::new(KEEPALIVED).exists() {
        bail!("{KEEPALIVED} not found");
    }
    let keep = std::env::var_os("BENCH_KEEP_LOGS").map(PathBuf::from);
    let events = [Event::Kill9, Event::Sigterm, Event::TrackedProcess];
    let mut rows = Vec::new();
    // Optional filters after TRIALS: v2, v3, kill9, term, track.
    let only: Vec<String> = std::env::args().skip(2).collect();
    let wanted = |what: &str, all: &[&str]| {
        !only.iter().any(|o| all.contains(&o.as_str())) || only.iter().any(|o| o == what)
    };
    for timing in TIMINGS {
        if !wanted(&format!("v{}", timing.version), &["v2", "v3"]) {
            continue;
        }
        for event in events {
            if !wanted(event.key(), &["kill9", "term", "track"]) {
                continue;
            }
            let mut results: [Vec<Outcome>; 2] = [Vec::new(), Vec::new()];
            for t in 0..trials {
                let phase = t as f64 / trials as f64;
                for (k, daemon) in [Daemon::Vrrpd, Daemon::Keepalived].into_iter().enumerate() {
                    if daemon == Daemon::Keepalived && event == Event::TrackedProcess {
                        // See KEEPALIVED_TRACK: it would start at priority 90.
                        continue;
                    }
                    let tag = format!("v{}-{}-{}-{t}", timing.version, event.key(), daemon.name());
                    let (dir, _tmp) = trial_dir(keep.as_deref(), &tag)?;
                    let o = trial(daemon, event, timing, phase, &dir)
                        .with_context(|| format!("trial {tag}"))?;
                    eprintln!(
                        "{tag}: takeover {} gap {} flaps {} failed probes {}",
                        secs(o.takeover),
                        secs(o.gap),
                        o.flaps,
                        o.errors
                    );
                    results[k].push(o);
                }
            }
            rows.push((timing, event, results));
        }
    }
    println!(
        "| row | RFC bound | takeover vrrpd, ms: median (min–max) | keepalived | ratio of medians | \
         gap vrrpd, ms | gap keepalived, ms | flaps vrrpd / keepalived |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (timing, event, results) in &rows {
        let take: Vec<Summary> = results
            .iter()
            .map(|r| summary(&r.iter().map(|o| o.takeover).collect::<Vec<_>>()))
            .collect();
        let gap: Vec<Summary> = results
            .iter()
            .map(|r| summary(&r.iter().map(|o| o.gap).collect::<Vec<_>>()))
            .collect();
        let flaps: Vec<String> = results
            .iter()
            .map(|r| r.iter().map(|o| o.flaps).sum::<usize>().to_string())
            .collect();
        let (k_take, ratio, k_gap, k_flaps) = if results[1].is_empty() {
            (
                KEEPALIVED_TRACK.to_owned(),
                "–".to_owned(),
                "–".to_owned(),
                "–",
            )
        } else {
            (
                cell(&take[1]),
                format!(
                    "{:.2}",
                    take[0].median.as_secs_f64() / take[1].median.as_secs_f64()
                ),
                cell(&gap[1]),
                flaps[1].as_str(),
            )
        };
        println!(
            "| {}, {} | {} | {} | {k_take} | {ratio} | {} | {k_gap} | {} / {k_flaps} |",
            event.label(),
            timing.label(),
            ms(timing.bound(*event)),
            cell(&take[0]),
            cell(&gap[0]),
            flaps[0],
        );
    }
    Ok(())
}
