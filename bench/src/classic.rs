//! The classic stack in the namespace lab, from Debian's packages:
//! keepalived (VRID 52, VIP 10.99.0.200) on lb-1/lb-2 → HAProxy (TCP mode,
//! on 10.99.0.200:3306) → HAProxy-TCP on proxy-1/proxy-2 :8067 (standing in
//! for Mycat, which has no Debian package) → the primary 10.99.0.31:3306.
//!
//! Each process runs in a process group of its own inside a lab namespace,
//! so a fault can kill, stop or restart one; dropping the stack stops every
//! group (SIGTERM, then SIGKILL).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hastack_it::chaos::{Stack, Tier};
use hastack_it::lab::Lab;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

pub const VIP: &str = "10.99.0.200";
/// HAProxy-TCP's port on the proxy hosts (sqlproxyd has 8066).
pub const PROXY_PORT: u16 = 8067;
/// The one node HAProxy-TCP sends to: it has no notion of a failover.
pub const PRIMARY: &str = "10.99.0.31:3306";
/// keepalived's VRRP router id; vrrpd has 51.
pub const VRID: u8 = 52;

struct Process {
    host: String,
    argv: Vec<OsString>,
    /// Where its PID is written at each start (`haproxy -db` writes none).
    pidfile: Option<PathBuf>,
    /// None while a fault has it stopped.
    child: Option<Child>,
}

pub struct Classic {
    dir: tempfile::TempDir,
    /// By "HOST:PROGRAM" (PROGRAM: haproxy or keepalived).
    procs: BTreeMap<String, Process>,
    /// The lab the stack lives in, for the faults on hosts and databases.
    lab: Lab,
}

impl Classic {
    /// Starts every process of the stack in `lab` (which must be up).
    pub fn start(lab: Lab) -> Result<Classic> {
        let dir = tempfile::Builder::new()
            .prefix("hs-bench-classic-")
            .tempdir()?;
        let mut c = Classic {
            dir,
            procs: BTreeMap::new(),
            lab,
        };
        for (host, ip) in [("proxy-1", "10.99.0.11"), ("proxy-2", "10.99.0.12")] {
            let cfg = format!(
                "global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\
                 frontend mysql\n  bind {ip}:{PROXY_PORT}\n  default_backend db\n\
                 backend db\n  server db-1 {PRIMARY} check\n"
            );
            c.haproxy(host, &cfg)?;
        }
        for host in ["lb-1", "lb-2"] {
            // The backup binds the VIP it does not hold yet: Debian's HAProxy has
            // no `freebind`, so the classic setup's sysctl, in the lab namespace.
            let ok = Command::new("ip")
                .args(["netns", "exec", &format!("hs-{host}")])
                .args(["sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"])
                .status()?
                .success();
            if !ok {
                bail!("sysctl net.ipv4.ip_nonlocal_bind=1 in hs-{host} failed");
            }
            let cfg = format!(
                "global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\
                 frontend mysql\n  bind {VIP}:3306\n  default_backend proxies\n\
                 backend proxies\n  balance leastconn\n\
                 \x20 server proxy-1 10.99.0.11:{PROXY_PORT} check\n\
                 \x20 server proxy-2 10.99.0.12:{PROXY_PORT} check\n"
            );
            c.haproxy(host, &cfg)?;
        }
        for (host, state, priority) in [("lb-1", "MASTER", 150), ("lb-2", "BACKUP", 100)] {
            // The usual companion script: HAProxy gone → priority below the
            // peer's (keepalived's pidof would see every lab host's HAProxy,
            // they share one PID namespace, hence this host's pidfile).
            let haproxy_pid = c.dir.path().join(format!("haproxy-{host}.pid"));
            let check = c.dir.path().join(format!("chk-haproxy-{host}.sh"));
            std::fs::write(
                &check,
                format!(
                    "#!/bin/sh\nexec kill -0 \"$(cat {})\"\n",
                    haproxy_pid.display()
                ),
            )?;
            std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o700))?;
            let cfg = format!(
                "global_defs {{\nrouter_id classic-{host}\nscript_user root\n}}\n\
                 vrrp_script chk_haproxy {{\nscript \"{}\"\ninterval 1\nfall 2\nrise 2\nweight -60\n}}\n\
                 vrrp_instance VI_CLASSIC {{\nstate {state}\ninterface eth0\n\
                 virtual_router_id {VRID}\npriority {priority}\nadvert_int 1\n\
                 authentication {{\nauth_type PASS\nauth_pass classic\n}}\n\
                 virtual_ipaddress {{\n{VIP}/24 dev eth0\n}}\ntrack_script {{\nchk_haproxy\n}}\n}}\n",
                check.display()
            );
            let conf = c.dir.path().join(format!("keepalived-{host}.conf"));
            std::fs::write(&conf, cfg)?;
            let pid = c.dir.path().join(format!("keepalived-{host}.pid"));
            let vrrp_pid = c.dir.path().join(format!("keepalived-vrrp-{host}.pid"));
            c.spawn(
                host,
                "keepalived",
                vec![
                    "keepalived".into(),
                    "-n".into(),
                    "-l".into(),
                    "-D".into(),
                    "-f".into(),
                    conf.into(),
                    "-p".into(),
                    pid.into(),
                    "-r".into(),
                    vrrp_pid.into(),
                ],
                None,
            )?;
        }
        Ok(c)
    }

    fn haproxy(&mut self, host: &str, cfg: &str) -> Result<()> {
        let conf = self.dir.path().join(format!("haproxy-{host}.cfg"));
        std::fs::write(&conf, cfg)?;
        // -db: in the foreground, so the child is HAProxy itself; it then
        // writes no pidfile, so the shell does (for keepalived's check).
        let pidfile = self.dir.path().join(format!("haproxy-{host}.pid"));
        self.spawn(
            host,
            "haproxy",
            vec!["haproxy".into(), "-db".into(), "-f".into(), conf.into()],
            Some(pidfile),
        )
    }

    fn spawn(
        &mut self,
        host: &str,
        program: &str,
        argv: Vec<OsString>,
        pidfile: Option<PathBuf>,
    ) -> Result<()> {
        let name = format!("{host}:{program}");
        let p = Process {
            host: host.to_owned(),
            argv,
            pidfile,
            child: None,
        };
        self.procs.insert(name.clone(), p);
        self.respawn(&name)
    }

    fn respawn(&mut self, name: &str) -> Result<()> {
        let log_path = self.log_path(name);
        let p = self
            .procs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no process {name} in the classic stack"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        // `ip netns exec` execs the program: the child's PID is the program's.
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("hs-{}", p.host)])
            .args(&p.argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        eprintln!("classic: started {name}, pid {}", child.id());
        if let Some(f) = &p.pidfile {
            std::fs::write(f, format!("{}\n", child.id()))
                .with_context(|| format!("writing {}", f.display()))?;
        }
        p.child = Some(child);
        Ok(())
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The PIDs of the HAProxy processes on the hosts whose name starts
    /// with `prefix` ("lb-" or "proxy-").
    pub fn haproxy_pids(&self, prefix: &str) -> Vec<u32> {
        self.procs
            .iter()
            .filter(|(n, _)| n.starts_with(prefix) && n.ends_with(":haproxy"))
            .filter_map(|(_, p)| p.child.as_ref().map(Child::id))
            .collect()
    }

    /// Every process's log, for an error message.
    pub fn logs(&self) -> String {
        self.procs
            .keys()
            .map(|name| {
                format!(
                    "--- {name}:\n{}",
                    std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails, with its log, if a process that should run has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for (name, p) in &mut self.procs {
            if let Some(child) = &mut p.child {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{name} exited ({status}): {}",
                        std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                            .unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    }

    /// Stops `name`: SIGTERM to the program and up to 10 s for it to exit,
    /// or SIGKILL to its whole group (keepalived's VRRP child included).
    fn stop(&mut self, name: &str, graceful: bool) -> Result<()> {
        let p = self
            .procs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no process {name} in the classic stack"))?;
        let Some(mut child) = p.child.take() else {
            return Ok(());
        };
        stop_child(name, &mut child, graceful);
        Ok(())
    }
}

fn stop_child(name: &str, child: &mut Child, graceful: bool) {
    let group = Pid::from_raw(child.id() as i32);
    if graceful {
        let _ = kill(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(child.try_wait(), Ok(None)) {
            eprintln!("classic: {name} ignored SIGTERM for 10 s; SIGKILL");
        }
    }
    // Whatever is left in its group (keepalived's VRRP child).
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

fn tier_program(tier: Tier) -> &'static str {
    match tier {
        Tier::Lb | Tier::Proxy => "haproxy",
        Tier::Vrrp => "keepalived",
    }
}

impl Stack for Classic {
    fn lab(&self) -> &Lab {
        &self.lab
    }

    fn vip(&self) -> &'static str {
        VIP
    }

    fn program(&self, tier: Tier) -> &'static str {
        match tier {
            Tier::Lb => "HAProxy",
            Tier::Vrrp => "keepalived",
            Tier::Proxy => "HAProxy-TCP",
        }
    }

    fn has_sqlproxyd(&self) -> bool {
        false
    }

    fn pid(&self, host: &str, tier: Tier) -> Result<i32> {
        let name = format!("{host}:{}", tier_program(tier));
        self.procs
            .get(&name)
            .and_then(|p| p.child.as_ref())
            .map(|c| c.id() as i32)
            .ok_or_else(|| anyhow!("{name} is not running"))
    }

    fn kill(&mut self, host: &str, tier: Tier, graceful: bool) -> Result<()> {
        self.stop(&format!("{host}:{}", tier_program(tier)), graceful)
    }

    fn start(&mut self, host: &str, tier: Tier) -> Result<()> {
        self.respawn(&format!("{host}:{}", tier_program(tier)))
    }
}

impl Drop for Classic {
    fn drop(&mut self) {
        for (name, p) in &mut self.procs {
            if let Some(mut child) = p.child.take() {
                stop_child(name, &mut child, true);
            }
        }
    }
}

/// A handle on the lab `deploy/lab.sh up` started with its defaults (state
/// in `HASTACK_LAB_DIR` or /tmp/hastack-lab, release binaries) that never
/// takes it down: whoever started it does.
pub fn default_lab(repo: &Path) -> Lab {
    let state = std::env::var_os("HASTACK_LAB_DIR").unwrap_or_else(|| "/tmp/hastack-lab".into());
    let bin_dir = std::env::var_os("HASTACK_BIN_DIR")
        .map(Into::into)
        .unwrap_or_else(|| repo.join("target/release"));
    let mut lab = Lab::new(bin_dir, state.into());
    lab.down_done = true;
    lab
}
