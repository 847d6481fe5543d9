//! VRRP fixtures on [`NetLab`] hosts: one instance described once and run
//! by keepalived or by vrrpd, who holds a virtual IP, and hand-made adverts
//! (bad TTL, checksum, password, VRID...) sent from any host.
//!
//! Waits are outcomes with generous deadlines, never durations: the tests
//! share a small machine.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hastack_proto::vrrp::{self, Advert, Auth, Checksum, Version};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::netlab::{in_netns, NetLab};
use crate::process::{tail, wait_timeout};
use crate::{wait_for, DaemonProcess};

/// vrrpd's admin address inside its host's namespace (each host has its own
/// loopback, so every vrrpd can use the default).
pub const ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9168);

/// One VRRP instance, written out as keepalived's `vrrp_instance` or
/// vrrpd's `instances` entry.
#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// v2: whole seconds; v3: centiseconds.
    pub advert_int: Duration,
    /// With its prefix length: `10.99.0.100/24`.
    pub vip: String,
    /// v2 PASS authentication.
    pub auth_pass: Option<String>,
    pub nopreempt: bool,
    /// keepalived's and vrrpd's `state MASTER` start-up hint.
    pub state_master: bool,
    /// `(unicast_src_ip, unicast_peers)`.
    pub unicast: Option<(Ipv4Addr, Vec<Ipv4Addr>)>,
    /// vrrpd only: `(process name, weight)` watched by `track_process`.
    pub track_process: Option<(String, i32)>,
}

impl Instance {
    /// v2 with PASS authentication and a 1 s interval (v2's shortest).
    pub fn v2(vrid: u8, priority: u8, vip: &str) -> Instance {
        Instance {
            name: "VI_1".into(),
            version: 2,
            vrid,
            priority,
            advert_int: Duration::from_secs(1),
            vip: vip.into(),
            auth_pass: Some("hastack1".into()),
            nopreempt: false,
            state_master: false,
            unicast: None,
            track_process: None,
        }
    }

    /// v3 with a 100 ms interval.
    pub fn v3(vrid: u8, priority: u8, vip: &str) -> Instance {
        Instance {
            version: 3,
            advert_int: Duration::from_millis(100),
            auth_pass: None,
            ..Instance::v2(vrid, priority, vip)
        }
    }

    pub fn priority(mut self, priority: u8) -> Instance {
        self.priority = priority;
        self
    }

    pub fn nopreempt(mut self) -> Instance {
        self.nopreempt = true;
        self
    }

    pub fn unicast(mut self, src: Ipv4Addr, peers: &[Ipv4Addr]) -> Instance {
        self.unicast = Some((src, peers.to_vec()));
        self
    }

    pub fn track_process(mut self, process: &str, weight: i32) -> Instance {
        self.track_process = Some((process.into(), weight));
        self
    }

    /// The VIP without its prefix length.
    pub fn vip_addr(&self) -> Ipv4Addr {
        self.vip
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad VIP {:?}", self.vip))
    }

    /// The advert this instance would send, for crafting variants of it.
    pub fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: if self.version == 2 {
                Version::V2
            } else {
                Version::V3
            },
            vrid: self.vrid,
            priority,
            interval_cs: u16::try_from(self.advert_int.as_millis() / 10).unwrap_or(u16::MAX),
            addresses: vec![IpAddr::V4(self.vip_addr())],
            auth: match &self.auth_pass {
                Some(p) => Auth::simple(p),
                None => Auth::None,
            },
        }
    }

    /// A whole keepalived config with this one instance on `eth0`.
    pub fn keepalived_conf(&self, router_id: &str) -> String {
        let mut c = format!("global_defs {{\n  router_id {router_id}\n");
        if self.version == 3 {
            c += "  vrrp_version 3\n";
        }
        c += "}\n";
        let _ = writeln!(c, "vrrp_instance {} {{", self.name);
        let state = if self.state_master {
            "MASTER"
        } else {
            "BACKUP"
        };
        let _ = writeln!(c, "  state {state}\n  interface eth0");
        let _ = writeln!(c, "  virtual_router_id {}", self.vrid);
        let _ = writeln!(c, "  priority {}", self.priority);
        let _ = writeln!(c, "  advert_int {}", self.advert_int.as_secs_f64());
        if self.nopreempt {
            c += "  nopreempt\n";
        }
        if let Some(pass) = &self.auth_pass {
            let _ = writeln!(
                c,
                "  authentication {{\n    auth_type PASS\n    auth_pass {pass}\n  }}"
            );
        }
        if let Some((src, peers)) = &self.unicast {
            let _ = writeln!(c, "  unicast_src_ip {src}\n  unicast_peer {{");
            for p in peers {
                let _ = writeln!(c, "    {p}");
            }
            c += "  }\n";
        }
        let _ = writeln!(c, "  virtual_ipaddress {{\n    {}\n  }}\n}}", self.vip);
        c
    }

    /// A whole vrrpd config with this one instance on `eth0`, admin HTTP
    /// on [`ADMIN`].
    pub fn vrrpd_config(&self) -> String {
        let mut c = format!("admin_http:\n  listen: {ADMIN}\nshutdown_grace: 3s\n");
        if let Some((process, weight)) = &self.track_process {
            let _ = writeln!(
                c,
                "vrrp_track_process:\n  tracked:\n    process: {process}\n    quorum: 1\n    weight: {weight}"
            );
        }
        let _ = writeln!(c, "instances:\n  {}:\n    interface: eth0", self.name);
        let _ = writeln!(c, "    virtual_router_id: {}", self.vrid);
        let _ = writeln!(c, "    priority: {}", self.priority);
        let _ = writeln!(c, "    advert_int: {}ms", self.advert_int.as_millis());
        let _ = writeln!(c, "    version: {}", self.version);
        if self.state_master {
            c += "    state: MASTER\n";
        }
        if self.nopreempt {
            c += "    nopreempt: true\n";
        }
        let _ = writeln!(c, "    virtual_ipaddress: [{}]", self.vip);
        if let Some(pass) = &self.auth_pass {
            let _ = writeln!(
                c,
                "    authentication:\n      auth_type: PASS\n      auth_pass: {pass}"
            );
        }
        if let Some((src, peers)) = &self.unicast {
            let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(
                c,
                "    unicast_src_ip: {src}\n    unicast_peers: [{}]",
                peers.join(", ")
            );
        }
        if self.track_process.is_some() {
            c += "    track_process: [tracked]\n";
        }
        c
    }
}

/// keepalived (VRRP only, in the foreground) in a host's namespace, in a
/// process group of its own: its parent and VRRP child are SIGKILLed
/// together on drop or [`Keepalived::kill9`].
pub struct Keepalived {
    pub host: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Keepalived {
    /// Starts keepalived on `host` with config `conf`.
    pub fn start(lab: &NetLab, host: &str, conf: &str) -> Result<Keepalived> {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new()
            .prefix("hs-keepalived-")
            .tempdir()?;
        let conf_path = dir.path().join("keepalived.conf");
        std::fs::write(&conf_path, conf)?;
        let log = dir.path().join("keepalived.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "ip", "netns", "exec"])
            .arg(&lab.host(host).netns)
            .args(["keepalived", "-n", "-l", "-D", "-P", "-f"])
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path().join("keepalived.pid"))
            .arg("-r")
            .arg(dir.path().join("vrrp.pid"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting keepalived (is it installed?)")?;
        Ok(Keepalived {
            host: host.into(),
            child,
            log,
            _dir: dir,
        })
    }

    /// Its log so far (the end).
    pub fn log(&self) -> String {
        tail(&self.log, 6000)
    }

    /// SIGTERM: keepalived resigns (priority 0), removes its VIPs and exits.
    pub fn stop(&mut self) -> Result<()> {
        crate::process::signal(&self.child, Signal::SIGTERM)?;
        wait_timeout(&mut self.child, Duration::from_secs(20))
            .ok_or_else(|| anyhow!("keepalived did not exit on SIGTERM\n{}", self.log()))?;
        Ok(())
    }

    /// SIGKILL to the whole group at once (killing the parent alone makes
    /// its VRRP child shut down cleanly).
    pub fn kill9(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // The group may outlive the parent (the VRRP child); kill it always.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Starts vrrpd on `host` with `config` (its admin on [`ADMIN`] there).
pub fn start_vrrpd(lab: &NetLab, host: &str, config: &str) -> Result<DaemonProcess> {
    DaemonProcess::start_in_netns("vrrpd", config, ADMIN, &lab.host(host).netns)
}

/// vrrpd's `/status` entry for `instance` (under `state.instances`).
pub fn instance_status(vrrpd: &DaemonProcess, instance: &str) -> Result<serde_json::Value> {
    let status = vrrpd.status()?;
    status["state"]["instances"]
        .get(instance)
        .cloned()
        .ok_or_else(|| anyhow!("no instance {instance} in /status: {status}"))
}

/// The instance's VRRP state in `/status`, upper case (`MASTER`, `BACKUP`...).
pub fn instance_state(vrrpd: &DaemonProcess, instance: &str) -> Result<String> {
    let s = instance_status(vrrpd, instance)?;
    s["state"]
        .as_str()
        .map(str::to_uppercase)
        .ok_or_else(|| anyhow!("no state for {instance} in /status: {s}"))
}

/// Waits (up to 30 s) for the instance to reach `state`.
pub fn wait_state(vrrpd: &DaemonProcess, instance: &str, state: &str) -> Result<()> {
    let mut last = String::new();
    let ok = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || match instance_state(vrrpd, instance) {
            Ok(s) if s == state => Some(()),
            Ok(s) => {
                last = s;
                None
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        },
    );
    ok.ok_or_else(|| {
        anyhow!(
            "{instance} did not become {state} (last: {last})\n{}",
            vrrpd.log()
        )
    })
}

/// The sum of every series of Prometheus metric `name` whose labels include
/// all of `labels` (`[("reason", "ttl")]`); 0 when there is none.
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let matches = labels.iter().all(|(k, v)| {
                rest.split(',')
                    .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
            });
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The hosts whose interfaces carry `vip`, in lab order.
pub fn vip_holders(lab: &NetLab, vip: Ipv4Addr) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for h in lab.hosts() {
        let o = lab.run(&h.name, "ip", &["-o", "-4", "addr", "show"])?;
        anyhow::ensure!(o.status.success(), "ip addr show failed in {}", h.name);
        let text = String::from_utf8_lossy(&o.stdout);
        let held = text.lines().any(|l| {
            let mut words = l.split_whitespace();
            while let Some(w) = words.next() {
                if w == "inet" {
                    return words
                        .next()
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse::<Ipv4Addr>().ok())
                        == Some(vip);
                }
            }
            false
        });
        if held {
            out.push(h.name.clone());
        }
    }
    Ok(out)
}

/// Waits (up to `timeout`) until exactly the hosts `want` hold `vip`.
pub fn wait_holders(lab: &NetLab, vip: Ipv4Addr, want: &[&str], timeout: Duration) -> Result<()> {
    let mut last = Vec::new();
    let done = wait_for(timeout, Duration::from_millis(50), || {
        match vip_holders(lab, vip) {
            Ok(h) if h == want => return Some(()),
            Ok(h) => last = h,
            Err(e) => last = vec![format!("error: {e}")],
        }
        None
    });
    done.ok_or_else(|| anyhow!("{vip} held by {last:?}, want {want:?} (after {timeout:?})"))
}

/// Checks for `period` that exactly `want` holds `vip`, sampling every
/// host again and again; the first other answer is an error.
pub fn assert_sole_holder(lab: &NetLab, vip: Ipv4Addr, want: &str, period: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + period;
    let mut samples = 0;
    while std::time::Instant::now() < deadline || samples == 0 {
        let h = vip_holders(lab, vip)?;
        if h != [want] {
            bail!("{vip} held by {h:?} after {samples} samples of only {want:?}");
        }
        samples += 1;
    }
    Ok(())
}

/// The MAC address of `host`'s eth0.
pub fn mac(lab: &NetLab, host: &str) -> Result<String> {
    let o = lab.run(host, "cat", &["/sys/class/net/eth0/address"])?;
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// The link-layer address `host` has cached for `addr` (`ip neigh`), if any.
pub fn neighbour(lab: &NetLab, host: &str, addr: Ipv4Addr) -> Result<Option<String>> {
    let o = lab.run(
        host,
        "ip",
        &["neigh", "show", &addr.to_string(), "dev", "eth0"],
    )?;
    let text = String::from_utf8_lossy(&o.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return Ok(words.next().map(str::to_owned));
        }
    }
    Ok(None)
}

/// One hand-made VRRP packet: the message after the IP header, sent with
/// this TTL from `src` to `dst`.
#[derive(Clone, Debug)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

impl Packet {
    /// `advert` encoded as a correct sender would (v3: keepalived's
    /// pseudo-header checksum), with TTL 255.
    pub fn advert(advert: &Advert, src: Ipv4Addr, dst: Ipv4Addr) -> Packet {
        let sum = match advert.version {
            Version::V2 => Checksum::MessageOnly,
            Version::V3 => Checksum::PseudoHeader,
        };
        Packet::with_checksum(advert, src, dst, sum)
    }

    /// `advert` with the checksum computed as `sum` says (a v3 advert
    /// checksummed as RFC 9568's message-only peers do).
    pub fn with_checksum(advert: &Advert, src: Ipv4Addr, dst: Ipv4Addr, sum: Checksum) -> Packet {
        Packet {
            src,
            dst,
            ttl: vrrp::TTL,
            payload: vrrp::encode(advert, IpAddr::V4(src), IpAddr::V4(dst), sum),
        }
    }

    /// To the VRRP multicast group.
    pub fn multicast(advert: &Advert, src: Ipv4Addr) -> Packet {
        Packet::advert(advert, src, vrrp::MULTICAST_V4)
    }

    pub fn ttl(mut self, ttl: u8) -> Packet {
        self.ttl = ttl;
        self
    }

    /// Flips the checksum's bits.
    pub fn bad_checksum(mut self) -> Packet {
        if self.payload.len() >= 8 {
            self.payload[6] ^= 0xff;
            self.payload[7] ^= 0xff;
        }
        self
    }

    /// Keeps the first `len` bytes of the message.
    pub fn truncated(mut self, len: usize) -> Packet {
        self.payload.truncate(len);
        self
    }

    /// The whole IP datagram (the kernel fills in the header checksum).
    fn datagram(&self) -> Vec<u8> {
        let total = u16::try_from(20 + self.payload.len()).unwrap_or(u16::MAX);
        let mut d = vec![0x45, 0xc0];
        d.extend_from_slice(&total.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0, 0, self.ttl, vrrp::PROTOCOL, 0, 0]);
        d.extend_from_slice(&self.src.octets());
        d.extend_from_slice(&self.dst.octets());
        d.extend_from_slice(&self.payload);
        d
    }
}

/// Sends `packets` from `host`'s eth0, all of them `rounds` times, `every`
/// apart, with a raw socket made in its namespace.
pub fn send_packets(
    lab: &NetLab,
    host: &str,
    packets: &[Packet],
    rounds: usize,
    every: Duration,
) -> Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = in_netns(&lab.host(host).netns, || {
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(vrrp::PROTOCOL))),
        )?;
        s.set_header_included_v4(true)?;
        s.bind_device(Some(b"eth0"))?;
        Ok(s)
    })?;
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(every);
        }
        for p in packets {
            let to = SocketAddr::new(IpAddr::V4(p.dst), 0);
            sock.send_to(&p.datagram(), &to.into())
                .with_context(|| format!("sending to {} from {host}", p.dst))?;
        }
    }
    Ok(())
}

/// Makes `host` keep a resolved neighbour for ten minutes (no re-probe
/// before then): only a gratuitous ARP can move the VIP's entry in a test.
pub fn keep_neighbours(lab: &NetLab, host: &str) -> Result<()> {
    let out = lab.run(
        host,
        "sysctl",
        &[
            "-w",
            "net.ipv4.neigh.eth0.base_reachable_time_ms=600000",
            "net.ipv4.neigh.eth0.delay_first_probe_time=600",
        ],
    )?;
    anyhow::ensure!(out.status.success(), "sysctl in {host}: {out:?}");
    Ok(())
}

/// An [`EchoServer`](crate::tcp::EchoServer) named `host` on every address
/// of `host`, port `port`.
pub fn echo_server(lab: &NetLab, host: &str, port: u16) -> Result<crate::tcp::EchoServer> {
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    in_netns(&lab.host(host).netns, || {
        crate::tcp::EchoServer::start(host, any)
    })
}

/// Connects from `client` to `addr` and returns the name of the echo
/// server that answered.
pub fn who_from_host(lab: &NetLab, client: &str, addr: SocketAddr) -> Result<String> {
    let (name, _conn) = in_netns(&lab.host(client).netns, || crate::tcp::who(addr))?;
    Ok(name)
}

/// Waits (up to 10 s) until `host` maps `addr` to `server`'s MAC.
pub fn wait_neighbour(lab: &NetLab, host: &str, addr: Ipv4Addr, server: &str) -> Result<()> {
    let want = mac(lab, server)?;
    let mut last = None;
    let ok = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        last = neighbour(lab, host, addr).ok().flatten();
        (last.as_deref() == Some(want.as_str())).then_some(())
    });
    ok.ok_or_else(|| {
        anyhow!("{host} maps {addr} to {last:?}, not {server}'s {want}: no gratuitous ARP?")
    })
}
