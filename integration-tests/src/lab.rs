//! The namespace lab of `deploy/lab.sh` (docs/lab.md) driven from a test.
//!
//! The lab uses fixed names (bridge hsbr0, namespaces hs-*, 10.99.0.0/24 in
//! the root namespace): a test binary that drives it must run in the nextest
//! test group `lab` (.config/nextest.toml), so never two at once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// The namespace lab driven through `deploy/lab.sh`; `down` on drop (after
/// printing the daemons' logs if the thread panics).
pub struct Lab {
    pub script: PathBuf,
    pub state: PathBuf,
    pub bin_dir: PathBuf,
    pub down_done: bool,
}

impl Lab {
    /// A lab on the binaries in `bin_dir` with its state in `state`.
    pub fn new(bin_dir: PathBuf, state: PathBuf) -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        Lab {
            script: repo.join("deploy/lab.sh"),
            state,
            bin_dir,
            down_done: false,
        }
    }

    pub fn run(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("HASTACK_LAB_DIR", &self.state)
            .env("HASTACK_BIN_DIR", &self.bin_dir)
            .stdin(Stdio::null())
            .output()?)
    }

    /// `lab.sh args`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "lab.sh {} failed ({}):\n{stdout}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    /// A lab on the debug binaries cargo built for the tests, its state in
    /// a directory of this process (`hastack-lab-NAME-PID` in the temp dir).
    ///
    /// Refuses when a lab is already up (namespaces hs-* exist): lab.sh's
    /// `up` and `down` clean up every hs-* namespace and whatever runs in
    /// it, whoever's state directory started it, so even the drop guard's
    /// `down` would tear down someone else's lab.
    pub fn for_test(name: &str) -> Result<Self> {
        if lab_in_use() {
            bail!(
                "a namespace lab is already up (ip netns list shows hs-*), maybe someone \
                 else's: not touching it; run again once it is down"
            );
        }
        let vrrpd = crate::daemon::bin_path("vrrpd")?;
        let bin_dir = vrrpd.parent().map(Path::to_owned).unwrap_or_default();
        let state = std::env::temp_dir().join(format!("hastack-lab-{name}-{}", std::process::id()));
        Ok(Lab::new(bin_dir, state))
    }

    /// The PIDs lab.sh recorded, as (HOST:DAEMON, pid).
    pub fn pids(&self) -> Result<Vec<(String, i32)>> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir(self.state.join("pids"))? {
            let e = e?;
            let pid = std::fs::read_to_string(e.path())?;
            pids.push((
                e.file_name().to_string_lossy().into_owned(),
                pid.trim().parse()?,
            ));
        }
        Ok(pids)
    }

    /// The PID lab.sh recorded for HOST:DAEMON.
    /// The bearer token `lab.sh up` wrote for the daemons' admin actions
    /// (`admin_http.auth.token_file`: `$HASTACK_LAB_DIR/admin.token`).
    pub fn admin_token(&self) -> Result<String> {
        let path = self.state.join("admin.token");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the lab's admin token {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    pub fn pid(&self, host: &str, daemon: &str) -> Result<i32> {
        let p = self.state.join("pids").join(format!("{host}:{daemon}"));
        let s = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
        Ok(s.trim().parse()?)
    }

    /// The last 3000 bytes of every daemon's log.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let hosts = ["lb-1", "lb-2", "proxy-1", "proxy-2", "db-1", "db-2", "db-3"];
        for h in hosts {
            let Ok(dir) = std::fs::read_dir(self.state.join(h)) else {
                continue;
            };
            for e in dir.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let start = text.len().saturating_sub(3000);
                    let start = (start..text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0);
                    let _ = writeln!(all, "=== {}\n{}", p.display(), &text[start..]);
                }
            }
        }
        all
    }

    /// `down`, once.
    pub fn down(&mut self) -> Result<String> {
        self.down_done = true;
        self.ok(&["down"])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.down_done {
            return;
        }
        if std::thread::panicking() {
            eprintln!("lab logs:\n{}", self.logs());
            if let Ok(out) = self.run(&["status"]) {
                eprintln!("lab status:\n{}", String::from_utf8_lossy(&out.stdout));
            }
        }
        match self.run(&["down"]) {
            Ok(out) => eprintln!(
                "lab.sh down: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("lab.sh down: {e}"),
        }
    }
}

/// Whether a lab (anyone's) is up: namespaces hs-* exist.
pub fn lab_in_use() -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("hs-"))
        })
        .unwrap_or(false)
}
