//! `NetLab`: network namespaces as hosts on one bridge, for tests that need
//! several machines with their own addresses (VRRP, VIPs, partitions).
//!
//! The bridge lives in a namespace of its own (the lab's "switch"), so a
//! lab's subnet exists only inside its namespaces: labs can reuse the same
//! addresses side by side, and nothing reaches the root namespace.
//! Partitions are nftables bridge rules on the switch, so they cut unicast
//! and multicast (VRRP adverts) alike.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, bail, Context, Result};

use crate::process::kill_and_reap;

/// One host: a namespace with `eth0` on the lab's bridge.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    /// Namespace name, for `ip netns exec`.
    pub netns: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// The switch port (in the switch namespace) this host is plugged into.
    port: String,
}

/// Hosts on a bridge; namespaces, links and processes removed on drop.
pub struct NetLab {
    switch: String,
    hosts: Vec<Host>,
    partitions: BTreeSet<(usize, usize)>,
    children: Vec<Child>,
}

static LABS: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) -> Result<()> {
    run_checked(Command::new("ip").args(args))
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetLab {
    /// Creates one namespace per `(name, "address/prefix")` on a fresh bridge.
    pub fn new(hosts: &[(&str, &str)]) -> Result<Self> {
        let id = format!(
            "hs{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = NetLab {
            switch: format!("{id}-sw"),
            hosts: Vec::new(),
            partitions: BTreeSet::new(),
            children: Vec::new(),
        };
        ip(&["netns", "add", &lab.switch])?;
        ip(&["-n", &lab.switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &lab.switch, "link", "set", "br0", "up"])?;
        ip(&["-n", &lab.switch, "link", "set", "lo", "up"])?;
        for (k, (name, cidr)) in hosts.iter().enumerate() {
            let (addr, prefix_len) = parse_cidr(cidr)?;
            let host = Host {
                name: (*name).to_owned(),
                netns: format!("{id}-{name}"),
                addr,
                prefix_len,
                port: format!("p{k}"),
            };
            ip(&["netns", "add", &host.netns])?;
            lab.hosts.push(host.clone());
            let sw = lab.switch.as_str();
            ip(&[
                "-n",
                sw,
                "link",
                "add",
                &host.port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.netns,
            ])?;
            ip(&["-n", sw, "link", "set", &host.port, "master", "br0", "up"])?;
            ip(&["-n", &host.netns, "link", "set", "lo", "up"])?;
            ip(&["-n", &host.netns, "addr", "add", cidr, "dev", "eth0"])?;
            ip(&["-n", &host.netns, "link", "set", "eth0", "up"])?;
        }
        Ok(lab)
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name:?} in this lab"))
    }

    fn index(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name:?} in this lab"))
    }

    /// A command that will run inside `host`'s namespace.
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host(host).netns, program]);
        cmd
    }

    /// Runs `program args` inside `host` and returns its output.
    pub fn run(&self, host: &str, program: &str, args: &[&str]) -> Result<Output> {
        self.command(host, program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program} in {host}"))
    }

    /// Starts `program args` inside `host` in the background; killed on drop.
    /// Returns the index for [`NetLab::child`].
    pub fn spawn(&mut self, host: &str, program: &str, args: &[&str]) -> Result<usize> {
        let child = self
            .command(host, program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program} in {host}"))?;
        self.children.push(child);
        Ok(self.children.len() - 1)
    }

    pub fn child(&mut self, index: usize) -> &mut Child {
        &mut self.children[index]
    }

    /// Whether `from` gets an ICMP echo reply from `to` within a second.
    pub fn ping(&self, from: &str, to: &str) -> Result<bool> {
        let target = self.host(to).addr.to_string();
        let out = self.run(from, "ping", &["-c", "1", "-W", "1", "-q", &target])?;
        Ok(out.status.success())
    }

    /// Takes `host`'s link down (its cable pulled).
    pub fn link_down(&self, host: &str) -> Result<()> {
        ip(&["-n", &self.host(host).netns, "link", "set", "eth0", "down"])
    }

    pub fn link_up(&self, host: &str) -> Result<()> {
        ip(&["-n", &self.host(host).netns, "link", "set", "eth0", "up"])
    }

    /// Cuts all traffic between `a` and `b`, both ways, unicast and multicast;
    /// both keep talking to every other host.
    pub fn partition(&mut self, a: &str, b: &str) -> Result<()> {
        let (i, j) = (self.index(a), self.index(b));
        if i == j {
            bail!("cannot partition {a} from itself");
        }
        self.partitions.insert((i.min(j), i.max(j)));
        self.apply_partitions()
    }

    /// Restores traffic between `a` and `b`.
    pub fn heal(&mut self, a: &str, b: &str) -> Result<()> {
        let (i, j) = (self.index(a), self.index(b));
        self.partitions.remove(&(i.min(j), i.max(j)));
        self.apply_partitions()
    }

    /// Rewrites the switch's filter from the set of partitions, in one
    /// atomic nft transaction.
    fn apply_partitions(&self) -> Result<()> {
        let mut rules = String::from(
            "table bridge hastack_lab\ndelete table bridge hastack_lab\n\
             table bridge hastack_lab {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n",
        );
        for &(i, j) in &self.partitions {
            let (p, q) = (&self.hosts[i].port, &self.hosts[j].port);
            rules += &format!(
                "  iifname \"{p}\" oifname \"{q}\" drop\n  iifname \"{q}\" oifname \"{p}\" drop\n"
            );
        }
        rules += " }\n}\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.switch, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft (is the nftables package installed?)")?;
        std::io::Write::write_all(
            child.stdin.as_mut().ok_or_else(|| anyhow!("nft stdin"))?,
            rules.as_bytes(),
        )?;
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for child in &mut self.children {
            kill_and_reap(child);
        }
        // Deleting a namespace removes its end of each veth, and with it the peer.
        for ns in self.hosts.iter().map(|h| &h.netns).chain([&self.switch]) {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a thread inside namespace `netns` (a name under
/// /var/run/netns, as [`Host::netns`]). Sockets made there stay in that
/// namespace wherever they are used afterwards, so the test process can
/// listen, connect and send raw packets on a host without running a
/// command in it.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let ns = std::fs::File::open(format!("/var/run/netns/{netns}"))
        .with_context(|| format!("opening namespace {netns}"))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering namespace {netns}"))?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("a thread in namespace {netns} panicked"))?
    })
}

fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8)> {
    let (addr, len) = cidr
        .split_once('/')
        .ok_or_else(|| anyhow!("expected address/prefix like 10.99.0.21/24, got {cidr:?}"))?;
    Ok((
        addr.parse()
            .with_context(|| format!("address in {cidr:?}"))?,
        len.parse()
            .with_context(|| format!("prefix length in {cidr:?}"))?,
    ))
}
