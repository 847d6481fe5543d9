//! keepalived's notify scripts: on a state change, the state's own script
//! (`notify_master`, ...) and then the generic `notify` with keepalived's
//! four arguments, `INSTANCE|GROUP NAME MASTER|BACKUP|FAULT|STOP PRIORITY`.
//!
//! [`commands`] decides what runs, purely; [`run`] runs it in the
//! background, in order, and logs what fails.

use std::fmt;
use std::process::Stdio;

use crate::config::Notify;

/// Whose state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Instance,
    /// A `vrrp_sync_group`.
    Group,
}

/// The states keepalived notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    /// vrrpd is stopping the instance.
    Stop,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Instance => "INSTANCE",
            Kind::Group => "GROUP",
        })
    }
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        })
    }
}

/// One script to run: `/bin/sh -c SCRIPT` when `args` is empty, else
/// `/bin/sh -c 'SCRIPT "$@"' sh ARGS...`, so that the script as written
/// may carry its own arguments and ours follow them, unquoted by nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The script as configured, for logs.
    pub script: String,
    pub args: Vec<String>,
}

impl Command {
    /// The full argument vector, `/bin/sh` first.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["/bin/sh".to_owned(), "-c".to_owned()];
        if self.args.is_empty() {
            argv.push(self.script.clone());
        } else {
            // `$0` for the script; "$@" then expands to exactly our args.
            argv.push(format!("{} \"$@\"", self.script));
            argv.push("sh".to_owned());
            argv.extend(self.args.iter().cloned());
        }
        argv
    }
}

/// What to run when `name` (an instance or sync group) enters `state` at
/// `priority`: the state's own script, then the generic `notify`.
pub fn commands(
    notify: &Notify,
    kind: Kind,
    name: &str,
    state: NotifyState,
    priority: u8,
) -> Vec<Command> {
    let specific = match state {
        NotifyState::Master => &notify.notify_master,
        NotifyState::Backup => &notify.notify_backup,
        NotifyState::Fault => &notify.notify_fault,
        NotifyState::Stop => &notify.notify_stop,
    };
    let mut out = Vec::new();
    if let Some(script) = specific {
        out.push(Command {
            script: script.clone(),
            args: Vec::new(),
        });
    }
    if let Some(script) = &notify.notify {
        out.push(Command {
            script: script.clone(),
            args: vec![
                kind.to_string(),
                name.to_owned(),
                state.to_string(),
                priority.to_string(),
            ],
        });
    }
    out
}

/// Runs `commands` one after the other in a task of their own (the
/// caller never waits on a script), each waited for so none is left a
/// zombie. A script that cannot start or exits non-zero is logged by
/// name; the next one runs anyway. The handle is for tests and for
/// callers that want the scripts of one change done before the next's.
/// Needs a tokio runtime.
pub fn run(commands: Vec<Command>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for c in commands {
            run_one(&c).await;
        }
    })
}

impl NotifyState {
    /// The notify state for a state the machine entered; Initialize has
    /// none (leaving it for good is [`NotifyState::Stop`]).
    pub fn of(state: crate::machine::State) -> Option<NotifyState> {
        use crate::machine::State;
        match state {
            State::Master => Some(NotifyState::Master),
            State::Backup => Some(NotifyState::Backup),
            State::Fault => Some(NotifyState::Fault),
            State::Initialize => None,
        }
    }
}

/// Keeps one instance's (or group's) scripts in the order of its state
/// changes: a MASTER script never overtakes the BACKUP script before it.
#[derive(Debug, Default)]
pub struct Queue {
    last: Option<tokio::task::JoinHandle<()>>,
}

impl Queue {
    pub fn push(&mut self, commands: Vec<Command>) {
        if commands.is_empty() {
            return;
        }
        let before = self.last.take();
        self.last = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            let _ = run(commands).await;
        }));
    }

    /// Waits for the scripts queued so far (the STOP script at shutdown).
    pub async fn drain(&mut self) {
        if let Some(last) = self.last.take() {
            let _ = last.await;
        }
    }
}

async fn run_one(c: &Command) {
    let argv = c.argv();
    // Output goes nowhere, as keepalived's does: a script that leaves a
    // daemon behind holding a pipe must not keep us reading.
    let status = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match status {
        Ok(s) if s.success() => {
            tracing::debug!(script = %c.script, args = ?c.args, "notify script done");
        }
        Ok(s) => {
            tracing::warn!(script = %c.script, args = ?c.args, "notify script {:?} failed: {s}", c.script);
        }
        Err(e) => {
            tracing::warn!(script = %c.script, "cannot run notify script {:?}: {e}", c.script);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Notify {
        Notify {
            notify_master: Some("/etc/up.sh".into()),
            notify_backup: Some("/etc/down.sh backup".into()),
            notify_fault: None,
            notify_stop: Some("/etc/down.sh stop".into()),
            notify: Some("/etc/notify.sh --log".into()),
        }
    }

    #[test]
    fn the_states_own_script_then_the_generic_one_with_four_arguments() {
        let c = commands(&all(), Kind::Instance, "VI_1", NotifyState::Master, 150);
        assert_eq!(
            c,
            vec![
                Command {
                    script: "/etc/up.sh".into(),
                    args: vec![]
                },
                Command {
                    script: "/etc/notify.sh --log".into(),
                    args: vec![
                        "INSTANCE".into(),
                        "VI_1".into(),
                        "MASTER".into(),
                        "150".into()
                    ]
                },
            ]
        );
        assert_eq!(
            c[1].argv(),
            [
                "/bin/sh",
                "-c",
                "/etc/notify.sh --log \"$@\"",
                "sh",
                "INSTANCE",
                "VI_1",
                "MASTER",
                "150"
            ]
        );
        assert_eq!(c[0].argv(), ["/bin/sh", "-c", "/etc/up.sh"]);
    }

    #[test]
    fn each_state_picks_its_script() {
        let n = all();
        let first = |s| commands(&n, Kind::Group, "G", s, 0)[0].script.clone();
        assert_eq!(first(NotifyState::Backup), "/etc/down.sh backup");
        assert_eq!(first(NotifyState::Stop), "/etc/down.sh stop");
        let fault = commands(&n, Kind::Group, "G", NotifyState::Fault, 0);
        assert_eq!(fault.len(), 1, "no notify_fault: only the generic one");
        assert_eq!(fault[0].args, ["GROUP", "G", "FAULT", "0"]);
        assert!(commands(
            &Notify::default(),
            Kind::Instance,
            "x",
            NotifyState::Master,
            1
        )
        .is_empty());
    }

    #[tokio::test]
    async fn a_real_notify_script_gets_its_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let marker = dir.path().join("master");
        let script = dir.path().join("notify.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", out.display()),
        )
        .unwrap();
        let n = Notify {
            notify_master: Some(format!("touch '{}'; false", marker.display())),
            notify: Some(format!("/bin/sh '{}' own-arg", script.display())),
            ..Notify::default()
        };
        let cmds = commands(&n, Kind::Instance, "VI_MYSQL", NotifyState::Master, 150);
        // The failing notify_master is logged and does not stop the next.
        run(cmds).await.unwrap();
        assert!(marker.exists());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "own-arg\nINSTANCE\nVI_MYSQL\nMASTER\n150\n"
        );
        // A script that cannot even start is only logged.
        run(vec![Command {
            script: "/nonexistent/notify".into(),
            args: vec!["x".into()],
        }])
        .await
        .unwrap();
    }
}
