//! One look at a tracked thing: a script run, a count of processes in
//! /proc, an interface's link state in sysfs, lbd's `/status`. Each gives
//! `Ok(detail)` or `Err(detail)`, short enough for a log line and the
//! admin status.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::net::TcpStream;
use tokio_util::task::AbortOnDropHandle;

use crate::config::TrackedProcess;

/// What one look found.
pub type Outcome = Result<String, String>;

/// `IFF_UP` from `<linux/if.h>`: the interface is administratively up.
const IFF_UP: u32 = 0x1;

/// The kernel's `TASK_COMM_LEN` less the NUL: /proc/PID/comm is cut here.
const COMM_MAX: usize = 15;

fn human(d: Duration) -> hastack_rt::Duration {
    hastack_rt::Duration(d)
}

/// Runs `script` with `/bin/sh -c` in a process group of its own; exit 0
/// is healthy. Past `timeout` the whole group is killed, so a script's
/// own children cannot outlive it, and the run counts as failed. Dropping
/// the future (the tracking stopping) kills the group too.
pub async fn script(script: &str, timeout: Duration) -> Outcome {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    let mut group = GroupKiller(child.id());
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // What the script left running in the background is its own
            // business once it has answered.
            group.0 = None;
            exit_verdict(status)
        }
        Ok(Err(e)) => Err(format!("waiting for the script: {e}")),
        Err(_) => {
            drop(group);
            // Reaps the shell at once rather than leaving it to tokio's
            // orphan queue.
            let _ = child.wait().await;
            Err(format!("timed out after {}", human(timeout)))
        }
    }
}

fn exit_verdict(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok("exit 0".into()),
        (Some(code), _) => Err(format!("exit {code}")),
        (None, Some(sig)) => Err(format!("killed by signal {sig}")),
        (None, None) => Err(format!("ended: {status}")),
    }
}

/// Kills a process group when dropped, unless disarmed (`.0 = None`).
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // ESRCH (the group is already gone) is the usual, fine case.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// Whether a process matches a `vrrp_track_process`: by its comm (the
/// kernel's cut of the name), or with `param_match` by its whole command
/// line, the path as `process` and the arguments joined by spaces.
pub fn matches(watch: &TrackedProcess, comm: &str, cmdline: &[u8]) -> bool {
    match &watch.param_match {
        None => {
            let want = watch.process.as_bytes();
            comm.as_bytes() == &want[..want.len().min(COMM_MAX)]
        }
        Some(params) => {
            let mut args = cmdline
                .strip_suffix(b"\0")
                .unwrap_or(cmdline)
                .split(|&b| b == 0);
            if args.next() != Some(watch.process.as_bytes()) {
                return false;
            }
            let rest: Vec<&[u8]> = args.collect();
            rest.join(&b' ') == params.as_bytes()
        }
    }
}

/// For each watch, the /proc directories (normally under /proc) of the
/// processes that match it. A process that ends mid-scan is not counted.
pub fn find_processes(
    proc_root: &Path,
    watches: &[&TrackedProcess],
) -> std::io::Result<Vec<Vec<PathBuf>>> {
    let mut found = vec![Vec::new(); watches.len()];
    let need_cmdline = watches.iter().any(|w| w.param_match.is_some());
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let comm = comm.strip_suffix('\n').unwrap_or(&comm);
        let cmdline = if need_cmdline {
            std::fs::read(dir.join("cmdline")).unwrap_or_default()
        } else {
            Vec::new()
        };
        let hits: Vec<bool> = watches.iter().map(|w| matches(w, comm, &cmdline)).collect();
        if !hits.contains(&true) || exited(&dir) {
            continue;
        }
        for (dirs, hit) in found.iter_mut().zip(hits) {
            if hit {
                dirs.push(dir.clone());
            }
        }
    }
    Ok(found)
}

/// Whether a process found by [`find_processes`] still runs: its /proc
/// directory is there and it has not exited. Cheap enough to ask often,
/// which is how a tracked process's death is seen within milliseconds
/// while the full scan for new ones stays slow.
pub fn still_running(dir: &Path) -> bool {
    dir.exists() && !exited(dir)
}

/// Whether the process has exited and waits to be reaped (state Z or X in
/// /proc/PID/stat): it runs no more, and keepalived's proc connector sees
/// the exit at once, whether or not its parent ever reaps it. An unreadable
/// stat leaves the process counted.
fn exited(dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    // The name in parentheses may itself hold ") ": the state follows the last.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state == 'Z' || state == 'X')
}

/// An interface's link under `sys_class_net` (normally /sys/class/net):
/// up when administratively up (IFF_UP) and its operstate is `up`, or
/// `unknown` with carrier (loopback, dummy and some tunnels never say
/// `up`). A missing interface is down.
pub fn link(sys_class_net: &Path, ifname: &str) -> Outcome {
    if ifname.is_empty() || ifname.contains('/') || ifname == "." || ifname == ".." {
        return Err("not an interface name".into());
    }
    let dir = sys_class_net.join(ifname);
    let read = |attr: &str| {
        std::fs::read_to_string(dir.join(attr))
            .map(|s| s.trim().to_owned())
            .ok()
    };
    let Some(flags) = read("flags") else {
        return Err("no such interface".into());
    };
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    if flags & IFF_UP == 0 {
        return Err("link down (administratively down)".into());
    }
    let oper = read("operstate").unwrap_or_default();
    match oper.as_str() {
        "up" => Ok("link up".into()),
        // Reading carrier fails on a down link; that is no carrier.
        "unknown" if read("carrier").as_deref() == Some("1") => Ok("link up (carrier)".into()),
        "unknown" => Err("link down (no carrier)".into()),
        other => Err(format!("link down (operstate {other})")),
    }
}

/// lbd's admin `GET /status`: 200 is healthy, anything else or no answer
/// within `timeout` is not.
pub async fn lbd_status(admin: SocketAddr, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, get_status(admin)).await {
        Ok(found) => found,
        Err(_) => Err(format!("no answer within {}", human(timeout))),
    }
}

async fn get_status(admin: SocketAddr) -> Outcome {
    let stream = TcpStream::connect(admin)
        .await
        .map_err(|e| format!("connect {admin}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{admin}: {e}"))?;
    // Drives the connection; aborted with this future on a timeout.
    let _conn = AbortOnDropHandle::new(tokio::spawn(conn));
    let request = hyper::Request::get("/status")
        .header(hyper::header::HOST, admin.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET http://{admin}/status: {e}"))?;
    let status = response.status().as_u16();
    if status == 200 {
        Ok("HTTP 200".into())
    } else {
        Err(format!("HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::tests::wait_dead;
    use std::fs;

    fn watch(process: &str, param_match: Option<&str>) -> TrackedProcess {
        TrackedProcess {
            process: process.into(),
            param_match: param_match.map(Into::into),
            quorum: 1,
            weight: 0,
            delay: hastack_rt::Duration::default(),
        }
    }

    #[test]
    fn comm_matches_the_kernels_cut_of_the_name() {
        assert!(matches(&watch("lbd", None), "lbd", b""));
        assert!(!matches(&watch("lbd", None), "lbdx", b""));
        assert!(matches(
            &watch("a_very_long_process_name", None),
            "a_very_long_pro",
            b""
        ));
    }

    #[test]
    fn param_match_compares_the_whole_command_line() {
        let w = watch("/usr/sbin/lbd", Some("-c /etc/lbd.yaml"));
        assert!(matches(&w, "lbd", b"/usr/sbin/lbd\0-c\0/etc/lbd.yaml\0"));
        assert!(!matches(&w, "lbd", b"/usr/sbin/lbd\0-c\0/etc/other.yaml\0"));
        assert!(!matches(&w, "lbd", b"lbd\0-c\0/etc/lbd.yaml\0"));
        assert!(!matches(&w, "lbd", b""), "a kernel thread");
        let bare = watch("/usr/sbin/lbd", Some(""));
        assert!(matches(&bare, "lbd", b"/usr/sbin/lbd\0"));
    }

    #[test]
    fn counts_a_fake_proc() {
        let root = tempfile::tempdir().unwrap();
        for (pid, comm, cmdline) in [
            ("1", "init", &b"/sbin/init\0"[..]),
            ("20", "lbd", b"/usr/sbin/lbd\0-c\0x\0"),
            ("21", "lbd", b"/usr/sbin/lbd\0"),
            ("22", "lbd", b"/usr/sbin/lbd\0-c\0x\0"),
            ("self", "lbd", b"/usr/sbin/lbd\0"),
        ] {
            let d = root.path().join(pid);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(d.join("cmdline"), cmdline).unwrap();
        }
        // 21 runs (its name may hold ") Z"); 22 exited and is not reaped yet.
        fs::write(root.path().join("21/stat"), "21 (lbd) Z) S 1 21\n").unwrap();
        fs::write(root.path().join("22/stat"), "22 (lbd) Z 1 22\n").unwrap();
        fs::create_dir(root.path().join("99")).unwrap(); // gone mid-scan
        let (a, b) = (watch("lbd", None), watch("/usr/sbin/lbd", Some("-c x")));
        let found = find_processes(root.path(), &[&a, &b]).unwrap();
        assert_eq!(found.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert!(found[0].iter().all(|d| still_running(d)));
        fs::write(root.path().join("20/stat"), "20 (lbd) Z 1 20\n").unwrap();
        fs::remove_dir_all(root.path().join("21")).unwrap();
        assert!(
            found[0].iter().all(|d| !still_running(d)),
            "exited and gone"
        );
    }

    fn fake_if(root: &Path, name: &str, flags: &str, oper: &str, carrier: Option<&str>) {
        let d = root.join(name);
        fs::create_dir(&d).unwrap();
        fs::write(d.join("flags"), format!("{flags}\n")).unwrap();
        fs::write(d.join("operstate"), format!("{oper}\n")).unwrap();
        if let Some(c) = carrier {
            fs::write(d.join("carrier"), format!("{c}\n")).unwrap();
        }
    }

    #[test]
    fn link_state_from_a_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fake_if(r, "eth0", "0x1003", "up", Some("1"));
        fake_if(r, "eth1", "0x1003", "down", Some("0"));
        fake_if(r, "eth2", "0x1002", "down", None);
        fake_if(r, "lo", "0x9", "unknown", Some("1"));
        fake_if(r, "tun0", "0x1091", "unknown", Some("0"));
        fake_if(r, "eth3", "0x1003", "lowerlayerdown", Some("0"));
        assert_eq!(link(r, "eth0"), Ok("link up".into()));
        assert_eq!(link(r, "eth1"), Err("link down (operstate down)".into()));
        assert_eq!(
            link(r, "eth2"),
            Err("link down (administratively down)".into())
        );
        assert_eq!(link(r, "lo"), Ok("link up (carrier)".into()));
        assert_eq!(link(r, "tun0"), Err("link down (no carrier)".into()));
        assert_eq!(
            link(r, "eth3"),
            Err("link down (operstate lowerlayerdown)".into())
        );
        assert_eq!(link(r, "eth9"), Err("no such interface".into()));
        assert_eq!(link(r, "../etc"), Err("not an interface name".into()));
    }

    #[test]
    fn the_real_loopback_is_up() {
        assert!(link(Path::new("/sys/class/net"), "lo").is_ok());
    }

    #[tokio::test]
    async fn script_verdicts() {
        let t = Duration::from_secs(10);
        assert_eq!(script("true", t).await, Ok("exit 0".into()));
        assert_eq!(script("exit 3", t).await, Err("exit 3".into()));
        assert_eq!(
            script("kill -9 $$", t).await,
            Err("killed by signal 9".into())
        );
    }

    #[tokio::test]
    async fn a_script_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let out = script(&cmd, Duration::from_millis(300)).await;
        assert_eq!(out, Err("timed out after 300ms".into()));
        let pid: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(wait_dead(pid).await, "the script's child {pid} outlived it");
    }
}
