//! `DaemonProcess`: one of our daemons started from its built binary with a
//! config written by the test, ready once its admin `/status` answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;

use crate::ports::free_port;
use crate::process::{command_dying_with_parent, kill_and_reap, signal, tail, wait_timeout};
use crate::wait_for;

/// The bearer token of [`test_token_file`]: what the tests' daemons take
/// for `POST /actions/*` when their config has [`admin_auth_yaml`].
pub const TEST_TOKEN: &str = "hastack-test-token-0123456789";

/// A file holding [`TEST_TOKEN`], for `admin_http.auth.token_file`: one per
/// test process, written atomically (daemons of parallel tests read it).
pub fn test_token_file() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("hs-admin-token-{}", std::process::id()));
    if !path.exists() {
        let tmp = tempfile::NamedTempFile::new_in(std::env::temp_dir())?;
        std::fs::write(tmp.path(), format!("{TEST_TOKEN}\n"))?;
        // Readable by daemons a test runs as another user (`start_as`):
        // a test token guards nothing.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
        tmp.persist(&path)?;
    }
    Ok(path)
}

/// `  auth: {token_file: ...}\n`, to go under `admin_http:` (two-space
/// indented keys), so that [`http_post`] may run actions.
pub fn admin_auth_yaml() -> String {
    match test_token_file() {
        Ok(p) => format!("  auth: {{token_file: {}}}\n", p.display()),
        Err(e) => panic!("cannot write the test token file: {e}"),
    }
}

/// `Authorization: Bearer TOKEN` as a header pair.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// Where the daemons' binaries are: `$HASTACK_BIN_DIR`, or the cargo target
/// directory this test binary was built into (`target/<profile>/`).
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("HASTACK_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe()?;
            // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
            let dir = exe
                .parent()
                .ok_or_else(|| anyhow!("cannot find the target dir from {}", exe.display()))?;
            if dir.ends_with("deps") {
                dir.parent().unwrap_or(dir).to_owned()
            } else {
                dir.to_owned()
            }
        }
    };
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it first (cargo build --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

/// A small valid config for each daemon, listening for admin on `{admin}`,
/// with `admin_extra` (indented keys) added to its `admin_http:` section.
pub fn small_config(daemon: &str, admin: SocketAddr, admin_extra: &str) -> String {
    // Every address a daemon binds is a free port: tests run in parallel.
    let port = free_port;
    let body = match daemon {
        "vrrpd" => "instances:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n    virtual_ipaddress: [10.99.0.100/24]\n".to_owned(),
        "lbd" => format!(
            "frontends:\n  mysql: {{bind: [127.0.0.1:{}], backend: proxies}}\nbackends:\n  proxies:\n    servers:\n      - {{name: proxy-1, address: 127.0.0.1:{}, port: {}}}\n",
            port(), port(), port()
        ),
        "sqlproxyd" => {
            // Its own state_dir: sqlproxyd locks it, and tests run in parallel.
            let listen = SocketAddr::from(([127, 0, 0, 1], port()));
            format!(
            "listen: {listen}\nstate_dir: {}\nadmin_listen: 127.0.0.1:{}\nusers:\n  - {{name: app, password: app}}\ndata_hosts:\n  - name: dh1\n    user: app\n    password: app\n    nodes:\n      - {{name: db-1, address: 127.0.0.1:{}, role: write}}\nschemas:\n  - {{name: app, data_host: dh1}}\n",
            crate::sqlproxy::state_dir_for(listen).display(), port(), port()
        )
        }
        "checkd" => format!(
            "services:\n  status:\n    type: http_check\n    bind: 127.0.0.1:{}\n    probe:\n      tcp: {{address: 127.0.0.1:{}}}\n",
            port(), port()
        ),
        other => panic!("unknown daemon {other}"),
    };
    format!("admin_http:\n  listen: {admin}\n{admin_extra}shutdown_grace: 2s\n{body}")
}

/// A running daemon; SIGKILLed on drop if still running.
pub struct DaemonProcess {
    pub name: String,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    /// The network namespace it runs in (its admin address is there too).
    pub netns: Option<String>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl DaemonProcess {
    /// Writes `config` to a temp file, starts daemon `name` on it and waits
    /// (up to 20 s) until `http://{admin}/status` answers 200.
    pub fn start(name: &str, config: &str, admin: SocketAddr) -> Result<Self> {
        Self::start_with_args(name, config, admin, &[])
    }

    pub fn start_with_args(
        name: &str,
        config: &str,
        admin: SocketAddr,
        args: &[&str],
    ) -> Result<Self> {
        Self::spawn(name, bin_path(name)?, config, admin, args, None, None, &[])
    }

    /// As [`DaemonProcess::start`], inside network namespace `netns` (a
    /// [`crate::netlab::Host`]'s); `admin` is an address in that namespace.
    pub fn start_in_netns(
        name: &str,
        config: &str,
        admin: SocketAddr,
        netns: &str,
    ) -> Result<Self> {
        Self::spawn(
            name,
            bin_path(name)?,
            config,
            admin,
            &[],
            None,
            Some(netns),
            &[],
        )
    }

    /// As [`DaemonProcess::start`], running as user and group `uid` (so a
    /// firewall rule on `meta skuid` can cut this process alone off).
    pub fn start_as(name: &str, config: &str, admin: SocketAddr, uid: u32) -> Result<Self> {
        Self::spawn(
            name,
            bin_path(name)?,
            config,
            admin,
            &[],
            Some(uid),
            None,
            &[],
        )
    }

    /// As [`DaemonProcess::start`], with these environment variables set
    /// (`NOTIFY_SOCKET`, say).
    pub fn start_with_env(
        name: &str,
        config: &str,
        admin: SocketAddr,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::spawn(name, bin_path(name)?, config, admin, &[], None, None, env)
    }

    /// As [`DaemonProcess::start`], with the binary in `bin_dir` (another
    /// build's, for a benchmark against it).
    pub fn start_from(bin_dir: &Path, name: &str, config: &str, admin: SocketAddr) -> Result<Self> {
        Self::spawn(
            name,
            bin_dir.join(name),
            config,
            admin,
            &[],
            None,
            None,
            &[],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        name: &str,
        bin: PathBuf,
        config: &str,
        admin: SocketAddr,
        args: &[&str],
        uid: Option<u32>,
        netns: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("hs-{name}-"))
            .tempdir()?;
        let config_path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&config_path, config)?;
        let log_path = dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = match netns {
            // `ip netns exec` execs the daemon: same PID, same parent-death signal.
            Some(ns) => {
                let mut c = command_dying_with_parent("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => command_dying_with_parent(&bin),
        };
        if let Some(uid) = uid {
            // The config must be readable by that user; the log is our fd.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            cmd = std::process::Command::new("setpriv");
            cmd.args(["--pdeathsig", "KILL"])
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .args(["--clear-groups", "--"])
                .arg(&bin);
        }
        let child = cmd
            .arg("-f")
            .arg(&config_path)
            .args(["--log-level", "debug"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut d = DaemonProcess {
            name: name.to_owned(),
            admin,
            config_path,
            log_path,
            netns: netns.map(str::to_owned),
            child,
            _dir: dir,
        };
        let ready = wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Some(Err(anyhow!("{name} exited at start ({status})")));
            }
            d.get("/status")
                .ok()
                .filter(|(code, _)| *code == 200)
                .map(|_| Ok(()))
        });
        match ready {
            Some(Ok(())) => Ok(d),
            Some(Err(e)) => Err(e.context(d.log())),
            None => Err(anyhow!(
                "{name}: /status did not answer within 20s\n{}",
                d.log()
            )),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far (its last 8 KiB).
    pub fn log(&self) -> String {
        tail(&self.log_path, 8192)
    }

    /// `GET path` on the admin endpoint: (status code, body).
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        match &self.netns {
            Some(ns) => http_get_in(ns, self.admin, path),
            None => http_get(self.admin, path),
        }
    }

    /// `/status` as JSON.
    pub fn status(&self) -> Result<serde_json::Value> {
        let (code, body) = self.get("/status")?;
        anyhow::ensure!(code == 200, "/status answered {code}: {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        let (code, body) = self.get("/metrics")?;
        anyhow::ensure!(code == 200, "/metrics answered {code}: {body}");
        Ok(body)
    }

    /// Replaces the config file (takes effect on [`DaemonProcess::reload`]).
    pub fn write_config(&self, config: &str) -> Result<()> {
        Ok(std::fs::write(&self.config_path, config)?)
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        Ok(signal(&self.child, sig)?)
    }

    /// SIGHUP.
    pub fn reload(&self) -> Result<()> {
        self.signal(Signal::SIGHUP)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, timeout)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// A plain HTTP/1.0 GET; the server closes after answering.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    send_on(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))?,
        addr,
        "GET",
        path,
    )
}

/// A plain HTTP/1.0 POST with an empty body (an admin action) and the
/// bearer `token`, errors returned rather than panicking (for code outside
/// a test).
pub fn try_http_post(addr: SocketAddr, path: &str, token: &str) -> Result<(u16, String)> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    send_with(
        s,
        addr,
        "POST",
        path,
        &format!("Authorization: Bearer {token}\r\n"),
    )
}

/// [`http_get`] to an address in network namespace `netns`.
pub fn http_get_in(netns: &str, addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let s = crate::netlab::in_netns(netns, || {
        Ok(TcpStream::connect_timeout(&addr, Duration::from_secs(2))?)
    })?;
    send_on(s, addr, "GET", path)
}

fn send_on(s: TcpStream, addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    send_with(s, addr, method, path, "")
}

/// `headers`: extra header lines, each ending in CRLF.
fn send_with(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> Result<(u16, String)> {
    // A switchover answers once it is done: seconds, not milliseconds.
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {resp:?}"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// A POST with an empty body and [`TEST_TOKEN`] (the admin actions of a
/// daemon configured with [`admin_auth_yaml`]); panics on I/O errors, as a
/// failed step is a failed test.
pub fn http_post(addr: SocketAddr, path: &str) -> (u16, String) {
    let (k, v) = bearer(TEST_TOKEN);
    let (code, resp) = http_request(addr, "POST", path, &[(k, &v)]);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// One HTTP/1.1 request with an empty body and extra `headers`:
/// (status, the whole response). Panics on I/O errors, as a failed step is a failed test.
#[allow(clippy::unwrap_used)]
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}
