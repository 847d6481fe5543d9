//! lbd vs HAProxy 2.6 (TCP mode) vs the direct path, in one run, against
//! the same backends on loopback:
//!
//! 1. keep-alive small requests: `wrk` against one nginx (1 worker, a
//!    small static body): requests/s and p99;
//! 2. a new connection per request: the same with `Connection: close`:
//!    connections/s and p99;
//! 3. bulk: (a) one TCP stream of `--bulk-gib` GiB (≥ 1) from a source
//!    server in this process, counted by this process; (b) `wrk` fetching a
//!    1 MiB file from nginx over keep-alive: MB/s;
//! 4. memory: VmRSS of each proxy at rest and holding `--idle` idle
//!    connections (to a backend in this process that accepts and holds
//!    them), and the RSS per connection.
//!
//! Paths: direct; HAProxy `nbthread 1` (the reference figures) and
//! `nbthread 2`; lbd (`target/release/lbd`). Every run is bounded in time
//! and count, runs one after the other (never two loads at once), and the
//! paths are interleaved over `--rounds` rounds (medians reported).
//!
//! Run with the release binaries (see bench/README.md):
//! `cargo build --release -p lbd -p hastack-bench && target/release/bench-lbd --duration 10s`
//! Prints markdown tables for bench/RESULTS.md on stdout; one line per run
//! on stderr.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hastack_it::daemon::{bin_path, http_get};
use hastack_it::ports::free_port;
use hastack_it::process::LoggedChild;
use hastack_it::wait_for;

/// A small static body, as a health page or a tiny API answer would be.
const SMALL_BODY: &[u8] = b"hello from nginx, a small static body\n";
const LARGE_BODY_LEN: usize = 1 << 20;
/// Unrecorded load before each measured run (same path and scenario).
const WARM_UP: Duration = Duration::from_secs(1);
/// One bulk stream never lasts longer than this.
const BULK_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const HAPROXY: &str = "/usr/sbin/haproxy";

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Args {
    duration: Duration,
    rounds: usize,
    bulk_bytes: u64,
    idle: usize,
    /// wrk threads.
    wrk_threads: u32,
    /// wrk connections for the small-request scenarios.
    connections: u32,
    /// wrk connections for the 1 MiB transfers.
    bulk_connections: u32,
    nbthread2: bool,
    /// Also lbd with `nbthread: 1`, and with splice.
    lbd_variants: bool,
}

fn parse_duration(s: &str) -> Result<Duration> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    if !(v > 0.0 && v * scale < 3600.0) {
        bail!("duration {s:?} out of range");
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// The most idle connections both proxies can hold: each needs two fds
/// (client and server side) under RLIMIT_NOFILE's hard limit, and so does
/// this process (clients and the holding backend).
fn max_idle(hard: u64) -> usize {
    let fit = hard.saturating_sub(200) / 2;
    (fit.min(10_000) as usize / 100) * 100
}

fn parse_args(hard_nofile: u64) -> Result<Args> {
    let mut a = Args {
        duration: Duration::from_secs(10),
        rounds: 3,
        bulk_bytes: 4 << 30,
        idle: max_idle(hard_nofile),
        wrk_threads: 1,
        connections: 32,
        bulk_connections: 8,
        nbthread2: true,
        lbd_variants: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--duration" => a.duration = parse_duration(&value()?)?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--bulk-gib" => {
                let g: f64 = value()?.parse()?;
                if !(1.0..=64.0).contains(&g) {
                    bail!("--bulk-gib must be 1 to 64 (the stream is at least 1 GiB)");
                }
                a.bulk_bytes = (g * f64::from(1u32 << 30)) as u64;
            }
            "--idle" => a.idle = value()?.parse()?,
            "--connections" => a.connections = value()?.parse()?,
            "--wrk-threads" => a.wrk_threads = value()?.parse()?,
            "--bulk-connections" => a.bulk_connections = value()?.parse()?,
            "--no-nbthread2" => a.nbthread2 = false,
            "--no-lbd-variants" => a.lbd_variants = false,
            "-h" | "--help" => {
                println!("bench-lbd [--duration 10s] [--rounds 3] [--bulk-gib 4] [--idle N] [--wrk-threads 1] [--connections 32] [--bulk-connections 8] [--no-nbthread2] [--no-lbd-variants]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if a.rounds == 0
        || a.wrk_threads == 0
        || a.connections < a.wrk_threads
        || a.bulk_connections < a.wrk_threads
    {
        bail!("--rounds and --connections must be positive");
    }
    if a.idle > max_idle(hard_nofile) {
        bail!(
            "--idle {} needs {} fds in each proxy; RLIMIT_NOFILE's hard limit is {hard_nofile}",
            a.idle,
            2 * a.idle + 200
        );
    }
    Ok(a)
}

// ---------------------------------------------------------------- backends

/// The bulk source: reads an 8-byte big-endian length, writes that many
/// bytes, closes. One thread per connection (a handful at a time).
fn start_source() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            std::thread::spawn(move || {
                let _ = (|| -> std::io::Result<()> {
                    s.set_read_timeout(Some(IO_TIMEOUT))?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    let mut len = [0u8; 8];
                    s.read_exact(&mut len)?;
                    let mut left = u64::from_be_bytes(len).min(64 << 30);
                    let buf = vec![0x5a_u8; 256 << 10];
                    while left > 0 {
                        let n = (left.min(buf.len() as u64)) as usize;
                        s.write_all(&buf[..n])?;
                        left -= n as u64;
                    }
                    s.shutdown(std::net::Shutdown::Write)
                })();
            });
        }
    });
    Ok(addr)
}

/// A loopback listener with a backlog of 4096 (std's is 128): a proxy that
/// connects faster than this process accepts must not overflow it, or the
/// kernel drops the handshake's last ACK and the connection never arrives.
fn listen_deep() -> Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// A backend that accepts connections and holds them, idle, until cleared.
struct Holder {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
    count: Arc<AtomicUsize>,
}

impl Holder {
    fn start() -> Result<Holder> {
        let listener = listen_deep()?;
        let addr = listener.local_addr()?;
        let held = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (h, c) = (held.clone(), count.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Ok(mut v) = h.lock() {
                            v.push(s);
                            c.store(v.len(), Ordering::SeqCst);
                        }
                    }
                    // Out of fds: back off instead of spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Holder { addr, held, count })
    }

    fn held(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn clear(&self) {
        if let Ok(mut v) = self.held.lock() {
            v.clear();
            self.count.store(0, Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------- the lab

/// Where each scenario connects on one path, and the process it costs.
struct Target {
    label: String,
    kind: Kind,
    /// The proxy (None: direct).
    pid: Option<u32>,
    http: SocketAddr,
    bulk: SocketAddr,
    hold: Option<(SocketAddr, Holder)>,
    /// Only the bulk scenarios (lbd with `splice: true`).
    bulk_only: bool,
    /// lbd before it forwards: measured as "n/a".
    unavailable: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Direct,
    /// HAProxy with `nbthread` threads.
    Haproxy(u32),
    /// lbd with `nbthread` (None: its default, a thread per CPU), and splice.
    Lbd(Option<u32>, bool),
}

struct Lab {
    nginx: LoggedChild,
    /// HAProxies and lbds.
    proxies: Vec<(String, LoggedChild)>,
    targets: Vec<Target>,
    dir: tempfile::TempDir,
}

fn nginx_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\nworker_rlimit_nofile 20000;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 10000; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 1h;\n\
         \x20 client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
         \x20 server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n  }}\n}}\n"
    )
}

struct Ports {
    http: u16,
    bulk: u16,
    hold: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            http: free_port(),
            bulk: free_port(),
            hold: free_port(),
        }
    }
}

struct Backends {
    nginx: SocketAddr,
    source: SocketAddr,
}

fn haproxy_config(
    nbthread: u32,
    maxconn: usize,
    p: &Ports,
    b: &Backends,
    hold: SocketAddr,
) -> String {
    format!(
        "global\n  nbthread {nbthread}\n  maxconn {maxconn}\n\
         defaults\n  mode tcp\n  maxconn {maxconn}\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\
         frontend http\n  bind 127.0.0.1:{}\n  default_backend nginx\n\
         frontend bulk\n  bind 127.0.0.1:{}\n  default_backend source\n\
         frontend hold\n  bind 127.0.0.1:{}\n  default_backend holder\n\
         backend nginx\n  server nginx {}\n\
         backend source\n  server source {}\n\
         backend holder\n  server holder {hold}\n",
        p.http, p.bulk, p.hold, b.nginx, b.source
    )
}

fn lbd_config(
    admin: SocketAddr,
    nbthread: Option<u32>,
    splice: bool,
    maxconn: usize,
    p: &Ports,
    b: &Backends,
    hold: SocketAddr,
) -> String {
    let backend = |name: &str, addr: SocketAddr| {
        format!("  {name}:\n    balance: roundrobin\n    servers:\n      - {{name: {name}, address: {addr}, check: false}}\n")
    };
    let nbthread = nbthread.map_or(String::new(), |n| format!("nbthread: {n}\n"));
    format!(
        "admin_http:\n  listen: {admin}\nshutdown_grace: 1s\nsplice: {splice}\n{nbthread}\
         defaults:\n  maxconn: {maxconn}\n  timeout:\n    connect: 5s\n    client: 1h\n    server: 1h\n\
         frontends:\n\
         \x20 http:\n    bind: [127.0.0.1:{}]\n    backend: nginx\n\
         \x20 bulk:\n    bind: [127.0.0.1:{}]\n    backend: source\n\
         \x20 hold:\n    bind: [127.0.0.1:{}]\n    backend: holder\n\
         backends:\n{}{}{}",
        p.http,
        p.bulk,
        p.hold,
        backend("nginx", b.nginx),
        backend("source", b.source),
        backend("holder", hold),
    )
}

/// One GET on a fresh connection; Ok when the answer is a 200 with `body`.
fn probe_http(addr: SocketAddr) -> Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    if got.starts_with(b"HTTP/1.1 200") && got.ends_with(SMALL_BODY) {
        Ok(())
    } else {
        bail!(
            "unexpected answer: {:?}",
            String::from_utf8_lossy(&got[..got.len().min(200)])
        )
    }
}

fn wait_listening(addr: SocketAddr, p: &mut LoggedChild, what: &str) -> Result<()> {
    let up = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        if p.exited().is_some() {
            return Some(false);
        }
        probe_http(addr).ok().map(|()| true)
    });
    match up {
        Some(true) => Ok(()),
        _ => bail!("{what} does not serve {addr}:\n{}", p.log_tail()),
    }
}

fn start_lab(args: &Args) -> Result<Lab> {
    let dir = tempfile::Builder::new().prefix("hs-bench-lbd-").tempdir()?;
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::create_dir_all(dir.path().join("tmp"))?;
    std::fs::write(www.join("index.html"), SMALL_BODY)?;
    std::fs::write(www.join("1m.bin"), vec![0xa5u8; LARGE_BODY_LEN])?;

    let nginx_port = free_port();
    let nginx_conf = dir.path().join("nginx.conf");
    std::fs::write(&nginx_conf, nginx_config(dir.path(), nginx_port))?;
    let mut nginx = LoggedChild::spawn(
        Path::new("/usr/sbin/nginx"),
        &[
            "-c",
            &nginx_conf.display().to_string(),
            "-p",
            &dir.path().display().to_string(),
        ],
        dir.path().join("nginx.log"),
    )?;
    wait_listening(local(nginx_port), &mut nginx, "nginx")?;
    let backends = Backends {
        nginx: local(nginx_port),
        source: start_source()?,
    };
    // Room for the idle connections and the load's few hundred.
    let maxconn = args.idle + 50;

    let mut targets = vec![Target {
        label: "direct".into(),
        kind: Kind::Direct,
        pid: None,
        http: backends.nginx,
        bulk: backends.source,
        hold: None,
        bulk_only: false,
        unavailable: None,
    }];

    let mut proxies = Vec::new();
    let threads: &[u32] = if args.nbthread2 { &[1, 2] } else { &[1] };
    for &n in threads {
        let ports = Ports::new();
        let holder = Holder::start()?;
        let cfg = dir.path().join(format!("haproxy-{n}.cfg"));
        std::fs::write(
            &cfg,
            haproxy_config(n, maxconn, &ports, &backends, holder.addr),
        )?;
        let mut p = LoggedChild::spawn(
            Path::new(HAPROXY),
            &["-db", "-f", &cfg.display().to_string()],
            dir.path().join(format!("haproxy-{n}.log")),
        )?;
        wait_listening(local(ports.http), &mut p, "haproxy")?;
        targets.push(Target {
            label: format!("HAProxy, nbthread {n}"),
            kind: Kind::Haproxy(n),
            bulk_only: false,
            pid: Some(p.pid()),
            http: local(ports.http),
            bulk: local(ports.bulk),
            hold: Some((local(ports.hold), holder)),
            unavailable: None,
        });
        proxies.push((format!("HAProxy, nbthread {n}"), p));
    }

    // lbd as it runs by default (`nbthread` unset: a thread per CPU, 2
    // here), with `nbthread: 1` (as HAProxy's reference figures), and with
    // `splice: true` (bulk scenarios only).
    let mut variants = vec![(None, false)];
    if args.lbd_variants {
        variants.extend([(Some(1), false), (None, true)]);
    }
    for (nbthread, splice) in variants {
        let (p, t) = start_lbd(dir.path(), nbthread, splice, maxconn, &backends)?;
        proxies.push((t.label.clone(), p));
        targets.push(t);
    }
    Ok(Lab {
        nginx,
        proxies,
        targets,
        dir,
    })
}

fn start_lbd(
    dir: &Path,
    nbthread: Option<u32>,
    splice: bool,
    maxconn: usize,
    backends: &Backends,
) -> Result<(LoggedChild, Target)> {
    let ports = Ports::new();
    let holder = Holder::start()?;
    let admin = local(free_port());
    let name = format!(
        "lbd-{}{}",
        nbthread.map_or("default".into(), |n| n.to_string()),
        if splice { "-splice" } else { "" }
    );
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        lbd_config(
            admin,
            nbthread,
            splice,
            maxconn,
            &ports,
            backends,
            holder.addr,
        ),
    )?;
    // lbd at its default log level (info), as it would run in production.
    let mut lbd = LoggedChild::spawn(
        &bin_path("lbd")?,
        &["-f", &cfg.display().to_string()],
        dir.join(format!("{name}.log")),
    )?;
    let ready = wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        if lbd.exited().is_some() {
            return Some(false);
        }
        http_get(admin, "/status")
            .ok()
            .filter(|(code, _)| *code == 200)
            .map(|_| true)
    });
    if ready != Some(true) {
        bail!("lbd did not come up:\n{}", lbd.log_tail());
    }
    // Forwarding may not exist yet in this lbd: then its column is n/a.
    let unavailable = wait_for(Duration::from_secs(3), Duration::from_millis(50), || {
        probe_http(local(ports.http)).ok()
    })
    .is_none()
    .then(|| {
        let why = probe_http(local(ports.http))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        format!("lbd does not forward {}: {why}", local(ports.http))
    });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let label = match (nbthread, splice) {
        (None, false) => format!("lbd (default: a thread per CPU, {cpus})"),
        (Some(n), false) => format!("lbd, nbthread {n}"),
        (None, true) => format!("lbd, splice (a thread per CPU, {cpus})"),
        (Some(n), true) => format!("lbd, splice, nbthread {n}"),
    };
    let target = Target {
        label,
        kind: Kind::Lbd(nbthread, splice),
        pid: Some(lbd.pid()),
        http: local(ports.http),
        bulk: local(ports.bulk),
        hold: (!splice).then_some((local(ports.hold), holder)),
        bulk_only: splice,
        unavailable,
    };
    Ok((lbd, target))
}

// ---------------------------------------------------------------- measuring

/// utime + stime (+ reaped children's), in seconds.
fn cpu_seconds(pid: &str, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let n = if children { 4 } else { 2 };
    // CLK_TCK is 100 on Linux.
    f.iter().take(n).sum::<f64>() / 100.0
}

/// The pids whose parent is `pid` (nginx's worker).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// user + nice + system time of all CPUs, in seconds.
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    line.split_whitespace()
        .skip(1)
        .take(3)
        .map(|v| v.parse::<f64>().unwrap_or(0.0))
        .sum::<f64>()
        / 100.0
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("VmRSS not found")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    KeepAlive,
    Close,
    Stream,
    Large,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::KeepAlive,
        Scenario::Close,
        Scenario::Stream,
        Scenario::Large,
    ];

    fn title(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "1. keep-alive, small body",
            Scenario::Close => "2. new connection per request",
            Scenario::Stream => "3a. bulk, one TCP stream",
            Scenario::Large => "3b. bulk, 1 MiB responses (keep-alive)",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "req/s",
            Scenario::Close => "conn/s",
            Scenario::Stream | Scenario::Large => "MB/s",
        }
    }

    /// What the proxy's CPU is charged per.
    fn cpu_unit(self) -> &'static str {
        match self {
            Scenario::KeepAlive => "µs/req",
            Scenario::Close => "µs/conn",
            Scenario::Stream | Scenario::Large => "ms/GB",
        }
    }
}

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Run {
    /// Requests/s, connections/s or MB/s.
    rate: f64,
    /// Of the requests (wrk); the stream has none.
    p99_ms: Option<f64>,
    errors: u64,
    /// Units done (requests, connections, or MB).
    units: f64,
    wall: f64,
    proxy_cpu: f64,
    /// CPU of the load generator (wrk or this process), nginx.
    load_cpu: f64,
    nginx_cpu: f64,
    /// Cores the rest of the machine used meanwhile.
    other_cores: f64,
}

/// wrk's value with a unit: "1.21ms", "635.91us", "1.00s", "2.00m".
fn wrk_time_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = v.strip_suffix('h') {
        (n, 3600e3)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().ok().map(|x| x * scale)
}

struct WrkOut {
    rps: f64,
    requests: f64,
    p99_ms: Option<f64>,
    errors: u64,
    text: String,
}

fn parse_wrk(text: &str) -> Result<WrkOut> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no Requests/sec in wrk's output:\n{text}"))?;
    // "  123456 requests in 10.00s, 12.34MB read"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let p99_ms = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("99%"))
        .and_then(wrk_time_ms);
    let mut errors = 0;
    if let Some(l) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
    {
        errors += l
            .split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    if let Some(l) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
    {
        errors += l.trim().parse::<u64>().unwrap_or(0);
    }
    Ok(WrkOut {
        rps,
        requests,
        p99_ms,
        errors,
        text: text.to_owned(),
    })
}

fn wrk(url: &str, threads: u32, connections: u32, length: Duration, close: bool) -> Result<WrkOut> {
    let secs = length.as_secs().max(1);
    let mut cmd = Command::new("wrk");
    cmd.args(["--latency", "--timeout", "5s"])
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"));
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "wrk {url} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text)
}

/// One stream of `bytes` from the source through `addr`; bytes received and seconds.
fn stream(addr: SocketAddr, bytes: u64) -> Result<(u64, f64)> {
    let started = Instant::now();
    let deadline = started + BULK_TIMEOUT;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(&bytes.to_be_bytes())?;
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((
        got,
        Instant::now()
            .saturating_duration_since(started)
            .as_secs_f64(),
    ))
}

fn run_load(t: &Target, scenario: Scenario, args: &Args, length: Duration) -> Result<Run> {
    let bytes = args.bulk_bytes;
    let mut run = Run::default();
    match scenario {
        Scenario::KeepAlive | Scenario::Close => {
            let w = wrk(
                &format!("http://{}/", t.http),
                args.wrk_threads,
                args.connections,
                length,
                scenario == Scenario::Close,
            )?;
            if w.requests == 0.0 {
                bail!("wrk made no request:\n{}", w.text);
            }
            run.rate = w.rps;
            run.units = w.requests;
            run.p99_ms = w.p99_ms;
            run.errors = w.errors;
        }
        Scenario::Large => {
            let w = wrk(
                &format!("http://{}/1m.bin", t.http),
                args.wrk_threads,
                args.bulk_connections,
                length,
                false,
            )?;
            if w.requests == 0.0 {
                bail!("wrk made no request:\n{}", w.text);
            }
            run.rate = w.rps * LARGE_BODY_LEN as f64 / 1e6;
            run.units = w.requests * LARGE_BODY_LEN as f64 / 1e6;
            run.p99_ms = w.p99_ms;
            run.errors = w.errors;
        }
        Scenario::Stream => {
            let (got, secs) = stream(t.bulk, bytes)?;
            if got < bytes {
                run.errors = 1;
                eprintln!(
                    "  {}: stream stopped at {got} of {bytes} bytes after {secs:.1} s",
                    t.label
                );
            }
            run.rate = got as f64 / 1e6 / secs.max(1e-9);
            run.units = got as f64 / 1e6;
        }
    }
    Ok(run)
}

fn measure(lab: &Lab, t: &Target, scenario: Scenario, args: &Args) -> Result<Run> {
    // Warm-up: a short run of the same load (the stream: 256 MiB).
    if scenario == Scenario::Stream {
        stream(t.bulk, 256 << 20)?;
    } else {
        run_load(t, scenario, args, WARM_UP)?;
    }
    let proxy = t.pid.map(|p| p.to_string());
    let nginx_pids: Vec<String> = std::iter::once(lab.nginx.pid())
        .chain(children_of(lab.nginx.pid()))
        .map(|p| p.to_string())
        .collect();
    let nginx_cpu = || {
        nginx_pids
            .iter()
            .map(|p| cpu_seconds(p, false))
            .sum::<f64>()
    };
    // wrk is our reaped child: its CPU lands in our cutime/cstime.
    let own = || cpu_seconds("self", true);
    let before = (
        proxy.as_deref().map_or(0.0, |p| cpu_seconds(p, false)),
        own(),
        nginx_cpu(),
        machine_cpu_seconds(),
        Instant::now(),
    );
    let mut run = run_load(t, scenario, args, args.duration)?;
    run.wall = Instant::now()
        .saturating_duration_since(before.4)
        .as_secs_f64();
    run.proxy_cpu = proxy.as_deref().map_or(0.0, |p| cpu_seconds(p, false)) - before.0;
    run.load_cpu = own() - before.1;
    run.nginx_cpu = nginx_cpu() - before.2;
    let other = machine_cpu_seconds() - before.3 - run.proxy_cpu - run.load_cpu - run.nginx_cpu;
    run.other_cores = other.max(0.0) / run.wall.max(1e-9);
    Ok(run)
}

/// RSS of the proxy at rest and holding `n` idle connections.
struct Memory {
    idle_kib: u64,
    loaded_kib: u64,
    held: usize,
    took: f64,
}

fn memory(t: &Target, n: usize) -> Result<Memory> {
    let pid = t.pid.context("memory of the direct path")?;
    let (addr, holder) = t.hold.as_ref().context("no holding backend")?;
    holder.clear();
    std::thread::sleep(Duration::from_millis(500));
    let idle_kib = rss_kib(pid)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut clients = Vec::with_capacity(n);
    while clients.len() < n {
        if Instant::now() >= deadline {
            bail!("opened only {} of {n} connections in 120 s", clients.len());
        }
        // At most 1,000 connections ahead of the backend, so no listen
        // queue on the way overflows.
        if clients.len() >= holder.held() + 1000 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        match TcpStream::connect_timeout(addr, IO_TIMEOUT) {
            Ok(s) => clients.push(s),
            Err(e) => bail!("connection {} of {n} to {addr}: {e}", clients.len() + 1),
        }
    }
    // Every client connection must reach the backend (a proxy in TCP mode
    // connects to the server at once).
    let all = wait_for(
        deadline.saturating_duration_since(Instant::now()),
        Duration::from_millis(50),
        || (holder.held() >= n).then_some(()),
    );
    let held = holder.held();
    if all.is_none() {
        eprintln!(
            "  {}: only {held} of {n} connections reached the backend",
            t.label
        );
    }
    let took = Instant::now()
        .saturating_duration_since(started)
        .as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let loaded_kib = rss_kib(pid)?;
    // The clients still open: none may have been closed by the proxy.
    drop(clients);
    holder.clear();
    std::thread::sleep(Duration::from_secs(1));
    Ok(Memory {
        idle_kib,
        loaded_kib,
        held,
        took,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

/// RLIMIT_NOFILE raised to its hard limit for this process and the daemons
/// it starts; returns the hard limit.
fn raise_nofile() -> Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

fn version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let all = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&all)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let hard = raise_nofile()?;
    let args = parse_args(hard)?;
    let mut lab = start_lab(&args)?;
    let started = Instant::now();
    for t in &lab.targets {
        if let Some(why) = &t.unavailable {
            eprintln!("{}: not measured: {why}", t.label);
        }
    }

    // 4. Memory first, on fresh processes (before any buffer pool grows).
    let mut mem: Vec<Option<Memory>> = Vec::new();
    for t in &lab.targets {
        if t.pid.is_none() || t.hold.is_none() || t.unavailable.is_some() {
            mem.push(None);
            continue;
        }
        let m = memory(t, args.idle).with_context(|| format!("{}: memory", t.label))?;
        eprintln!(
            "memory, {}: {} KiB at rest, {} KiB with {} idle connections (opened in {:.1} s)",
            t.label, m.idle_kib, m.loaded_kib, m.held, m.took
        );
        mem.push(Some(m));
    }

    // 1-3: each scenario's paths interleaved over the rounds.
    let mut runs: Vec<Vec<Vec<Run>>> = Scenario::ALL
        .iter()
        .map(|_| lab.targets.iter().map(|_| Vec::new()).collect())
        .collect();
    for (si, &scenario) in Scenario::ALL.iter().enumerate() {
        let bulk = matches!(scenario, Scenario::Stream | Scenario::Large);
        for round in 1..=args.rounds {
            for (ti, t) in lab.targets.iter().enumerate() {
                if t.unavailable.is_some() || (t.bulk_only && !bulk) {
                    continue;
                }
                let run = measure(&lab, t, scenario, &args)
                    .with_context(|| format!("{}: {}", scenario.title(), t.label))?;
                eprintln!(
                    "round {round}, {}, {}: {} {}, p99 {} ms, {} errors, CPU s proxy {:.2} / load {:.2} / nginx {:.2}, other processes {:.2} cores",
                    scenario.title(),
                    t.label,
                    fmt_rate(run.rate),
                    scenario.unit(),
                    run.p99_ms.map_or("-".into(), |p| format!("{p:.2}")),
                    run.errors,
                    run.proxy_cpu,
                    run.load_cpu,
                    run.nginx_cpu,
                    run.other_cores,
                );
                runs[si][ti].push(run);
            }
        }
    }
    for (name, p) in &mut lab.proxies {
        if let Some(status) = p.exited() {
            bail!("{name} exited during the run ({status}):\n{}", p.log_tail());
        }
    }
    let rss_after: Vec<Option<u64>> = lab
        .targets
        .iter()
        .map(|t| t.pid.and_then(|p| rss_kib(p).ok()))
        .collect();

    // ------------------------------------------------------------ report
    let find = |k: Kind| lab.targets.iter().position(|t| t.kind == k);
    let direct = find(Kind::Direct);
    let h1 = find(Kind::Haproxy(1));
    let h2 = find(Kind::Haproxy(2));
    let rate = |si: usize, ti: Option<usize>| -> f64 {
        match ti {
            Some(ti) if !runs[si][ti].is_empty() => {
                median(runs[si][ti].iter().map(|r| r.rate).collect())
            }
            _ => 0.0,
        }
    };

    println!(
        "{} rounds; in each, every path ran for {} s (after {} s of unrecorded warm-up), one after the other; figures are medians of the rounds (p99: median of the rounds' p99). wrk: {} thread(s), {} connections (1 MiB: {}), `--latency`. Stream: {:.0} GiB per run through one connection, counted by the bench. Memory: {} idle connections, opened before any load.",
        args.rounds,
        args.duration.as_secs_f64(),
        WARM_UP.as_secs(),
        args.wrk_threads,
        args.connections,
        args.bulk_connections,
        args.bulk_bytes as f64 / f64::from(1u32 << 30),
        args.idle,
    );
    println!();
    println!("| scenario | path | rate | ÷ direct | ÷ HAProxy nbthread 1 | ÷ HAProxy nbthread 2 | p99 ms | proxy CPU | errors | other processes, cores |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (si, &s) in Scenario::ALL.iter().enumerate() {
        let (d, a, b) = (rate(si, direct), rate(si, h1), rate(si, h2));
        for (ti, t) in lab.targets.iter().enumerate() {
            let rs = &runs[si][ti];
            if rs.is_empty() {
                continue;
            }
            let r = rate(si, Some(ti));
            let p99 = median(rs.iter().map(|r| r.p99_ms.unwrap_or(0.0)).collect());
            let (cpu, units) = rs
                .iter()
                .fold((0.0, 0.0), |(c, u), r| (c + r.proxy_cpu, u + r.units));
            let cpu = match (t.pid, s) {
                (None, _) => "-".to_owned(),
                // CPU seconds per MB = ms per GB.
                (_, Scenario::Stream | Scenario::Large) => {
                    format!("{:.0} {}", cpu * 1e6 / units.max(1e-9), s.cpu_unit())
                }
                _ => format!("{:.1} {}", cpu * 1e6 / units.max(1e-9), s.cpu_unit()),
            };
            let is_haproxy = matches!(t.kind, Kind::Haproxy(_));
            println!(
                "| {} | {} | {} {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                s.title(),
                t.label,
                fmt_rate(r),
                s.unit(),
                if t.kind == Kind::Direct {
                    "1.00×".into()
                } else {
                    ratio(r, d)
                },
                if t.kind == Kind::Direct || is_haproxy {
                    "".into()
                } else {
                    ratio(r, a)
                },
                if t.kind == Kind::Direct || is_haproxy {
                    "".into()
                } else {
                    ratio(r, b)
                },
                if p99 > 0.0 {
                    format!("{p99:.2}")
                } else {
                    "-".into()
                },
                cpu,
                rs.iter().map(|r| r.errors).sum::<u64>(),
                median(rs.iter().map(|r| r.other_cores).collect()),
            );
        }
    }
    println!();
    println!("| memory | at rest KiB | with {} idle connections KiB | connections reaching the backend | KiB per connection | RSS after the load scenarios KiB |", args.idle);
    println!("|---|---|---|---|---|---|");
    for (ti, t) in lab.targets.iter().enumerate() {
        if let Some(m) = &mem[ti] {
            println!(
                "| {} | {} | {} | {} | {:.2} | {} |",
                t.label,
                m.idle_kib,
                m.loaded_kib,
                m.held,
                (m.loaded_kib as f64 - m.idle_kib as f64) / m.held.max(1) as f64,
                rss_after[ti].map_or("n/a".into(), |v| v.to_string()),
            );
        }
    }
    println!();
    for t in &lab.targets {
        if let Some(why) = &t.unavailable {
            println!("- {}: not measured ({why})", t.label);
        }
    }
    println!(
        "- {}; {}; {}; RLIMIT_NOFILE {hard} (the hard limit) for the bench and every daemon; {} s in all.",
        version(HAPROXY, "-v"),
        version("/usr/sbin/nginx", "-v"),
        version("wrk", "-v").trim(),
        Instant::now().saturating_duration_since(started).as_secs(),
    );
    // The temp dir (nginx root, configs, logs) goes with `lab`.
    let _ = &lab.dir;
    Ok(())
}
