//! The runtime API's language: HAProxy's `stats socket` commands, parsed
//! apart from the socket so that every accepted spelling and every error
//! message is pinned down by unit tests (and fuzzed: no input panics), and
//! the text answers that are not the stats CSV (`show servers state`, `show
//! info`, `show backend`, `get weight`).
//!
//! One line may hold several commands separated by `;`, as HAProxy allows
//! (`show info;show stat`); `\;` and `\\` stand for a literal `;` and `\`.
//! Keywords are lowercase, as HAProxy's; backend and server names are
//! matched by the runtime as given.
//!
//! Synonyms parse to one [`Command`], so the runtime has one case each:
//! `disable server b/s` is `set server b/s state maint`, `enable server b/s`
//! is `... state ready`, `set weight b/s N` is `set server b/s weight N`.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use crate::health;
use crate::stats::{check_code, AdminState, ServerStats, Snapshot};

/// A server as commands name it: `backend/server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRef {
    pub backend: String,
    pub server: String,
}

impl fmt::Display for ServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.backend, self.server)
    }
}

/// A weight as `set weight` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    /// 0 to 256.
    Absolute(u32),
    /// Percent of the configured weight (`50%`), HAProxy's relative weight.
    Percent(u32),
}

impl Weight {
    /// The weight to apply to a server configured with `configured`: as
    /// HAProxy, a relative weight is capped at 256.
    pub fn resolve(self, configured: u32) -> u32 {
        match self {
            Weight::Absolute(w) => w.min(MAX_WEIGHT),
            Weight::Percent(p) => {
                let w = u64::from(configured) * u64::from(p) / 100;
                u32::try_from(w.min(u64::from(MAX_WEIGHT))).unwrap_or(MAX_WEIGHT)
            }
        }
    }
}

/// HAProxy's highest server weight.
pub const MAX_WEIGHT: u32 = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help`: [`help`]'s text.
    Help,
    /// `show stat`: [`crate::stats::csv`].
    ShowStat,
    /// `show info`: [`info`].
    ShowInfo,
    /// `show servers state [backend]`: [`servers_state`].
    ShowServersState { backend: Option<String> },
    /// `show backend`: [`backends`].
    ShowBackend,
    /// `set server b/s state ready|drain|maint`, `enable server b/s`,
    /// `disable server b/s`.
    SetState {
        server: ServerRef,
        state: AdminState,
    },
    /// `set server b/s weight N[%]`, `set weight b/s N[%]`.
    SetWeight { server: ServerRef, weight: Weight },
    /// `get weight b/s`: [`weight`].
    GetWeight { server: ServerRef },
    /// `set maxconn server b/s N`; 0 is no limit.
    SetMaxconn { server: ServerRef, maxconn: u32 },
    /// `set server b/s health up|down`: forces the check state
    /// ([`health::Check::force`]); checks go on from there.
    SetHealth {
        server: ServerRef,
        state: health::State,
    },
    /// `shutdown sessions server b/s`: closes the server's sessions.
    ShutdownSessions { server: ServerRef },
    /// `quit`: closes the connection.
    Quit,
}

/// Why a command did not parse, and how it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub problem: String,
    /// The syntax of the command that was recognised, if one was.
    pub usage: Option<&'static str>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)?;
        if let Some(usage) = self.usage {
            write!(f, "; usage: {usage}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Each command's syntax, with a line of what it does: [`help`] lists
/// them, errors quote them.
const USAGE: [(&str, &str); 15] = [
    ("help", "this list"),
    (
        "show stat",
        "counters of every frontend, backend and server (CSV)",
    ),
    ("show info", "process information"),
    (
        "show servers state [<backend>]",
        "servers' state (HAProxy's format 1)",
    ),
    ("show backend", "backend names"),
    (
        "disable server <backend>/<server>",
        "put a server in maintenance",
    ),
    (
        "enable server <backend>/<server>",
        "take a server out of maintenance",
    ),
    (
        "set server <backend>/<server> state ready|drain|maint",
        "set a server's admin state",
    ),
    (
        "set server <backend>/<server> weight <weight>[%]",
        "set a server's weight, 0-256 or % of the configured one",
    ),
    (
        "set server <backend>/<server> health up|down",
        "force a server's check state",
    ),
    (
        "set weight <backend>/<server> <weight>[%]",
        "same as set server ... weight",
    ),
    (
        "get weight <backend>/<server>",
        "a server's weight and configured weight",
    ),
    (
        "set maxconn server <backend>/<server> <maxconn>",
        "a server's connection limit, 0 for none",
    ),
    (
        "shutdown sessions server <backend>/<server>",
        "close a server's sessions",
    ),
    ("quit", "close this connection"),
];

/// The syntax line of the command starting with `keywords`.
fn usage(keywords: &str) -> &'static str {
    // Every caller passes keywords from USAGE; "help" is a safe answer
    // should one ever not match.
    USAGE
        .iter()
        .find(|(u, _)| u.starts_with(keywords))
        .map_or("help", |(u, _)| u)
}

/// The command list, one per line: syntax, then what it does.
pub fn help() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        let width = USAGE.iter().map(|(u, _)| u.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (syntax, what) in USAGE {
            let _ = writeln!(out, "{syntax:<width$}  {what}");
        }
        out
    })
}

/// One command (no `;`).
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let unknown = || ParseError {
        problem: format!("unknown command {:?}; try \"help\"", words.join(" ")),
        usage: None,
    };
    let (keywords, rest): (&[&str], &[&str]) = match words.as_slice() {
        [] => {
            return Err(ParseError {
                problem: "empty command; try \"help\"".into(),
                usage: None,
            })
        }
        ["show", "servers", "state", ..] => words.split_at(3),
        ["set", "maxconn", "server", ..] | ["shutdown", "sessions", "server", ..] => {
            words.split_at(3)
        }
        ["show" | "set" | "get" | "enable" | "disable", _, ..] => words.split_at(2),
        _ => words.split_at(1),
    };
    let args = |u: &str| Args {
        rest: rest.iter(),
        usage: usage(u),
    };
    match keywords {
        ["help"] => args("help").end().map(|()| Command::Help),
        ["quit"] => args("quit").end().map(|()| Command::Quit),
        ["show", "stat"] => args("show stat").end().map(|()| Command::ShowStat),
        ["show", "info"] => args("show info").end().map(|()| Command::ShowInfo),
        ["show", "backend"] => args("show backend").end().map(|()| Command::ShowBackend),
        ["show", "servers", "state"] => {
            let mut a = args("show servers state");
            let backend = a.next().map(str::to_string);
            a.end().map(|()| Command::ShowServersState { backend })
        }
        ["disable" | "enable", "server"] => {
            let mut a = args(&keywords.join(" "));
            let server = a.server()?;
            a.end()?;
            let state = if keywords[0] == "enable" {
                AdminState::Ready
            } else {
                AdminState::Maint
            };
            Ok(Command::SetState { server, state })
        }
        ["set", "server"] => set_server(rest),
        ["set", "weight"] => {
            let mut a = args("set weight");
            let server = a.server()?;
            let weight = a.weight()?;
            a.end().map(|()| Command::SetWeight { server, weight })
        }
        ["get", "weight"] => {
            let mut a = args("get weight");
            let server = a.server()?;
            a.end().map(|()| Command::GetWeight { server })
        }
        ["set", "maxconn", "server"] => {
            let mut a = args("set maxconn server");
            let server = a.server()?;
            let word = a.required("<maxconn>")?;
            let maxconn = number(word).ok_or_else(|| {
                a.error(format!(
                    "maxconn must be a number of connections (0 for no limit), got {word:?}"
                ))
            })?;
            a.end().map(|()| Command::SetMaxconn { server, maxconn })
        }
        ["shutdown", "sessions", "server"] => {
            let mut a = args("shutdown sessions server");
            let server = a.server()?;
            a.end().map(|()| Command::ShutdownSessions { server })
        }
        _ => Err(unknown()),
    }
}

/// `set server <backend>/<server> state|weight|health <value>`: the usage
/// quoted on an error is the one for the attribute given.
fn set_server(rest: &[&str]) -> Result<Command, ParseError> {
    let any = Args {
        rest: rest.iter(),
        usage: "set server <backend>/<server> state|weight|health <value>",
    };
    let attribute = rest.get(1).copied().unwrap_or("");
    let mut a = match attribute {
        "state" | "weight" | "health" => Args {
            usage: usage(&format!("set server <backend>/<server> {attribute}")),
            ..any
        },
        _ => any,
    };
    let server = a.server()?;
    let attribute = a.required("state|weight|health")?;
    let command = match attribute {
        "state" => {
            let word = a.required("ready|drain|maint")?;
            let state = match word {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => {
                    return Err(
                        a.error(format!("state must be ready, drain or maint, got {word:?}"))
                    )
                }
            };
            Command::SetState { server, state }
        }
        "weight" => Command::SetWeight {
            server,
            weight: a.weight()?,
        },
        "health" => {
            let word = a.required("up|down")?;
            let state = match word {
                "up" => health::State::Up,
                "down" => health::State::Down,
                _ => return Err(a.error(format!("health must be up or down, got {word:?}"))),
            };
            Command::SetHealth { server, state }
        }
        other => return Err(a.error(format!("expected state, weight or health, got {other:?}"))),
    };
    a.end().map(|()| command)
}

/// The words after a command's keywords.
struct Args<'a> {
    rest: std::slice::Iter<'a, &'a str>,
    usage: &'static str,
}

impl<'a> Args<'a> {
    fn error(&self, problem: String) -> ParseError {
        ParseError {
            problem,
            usage: Some(self.usage),
        }
    }

    fn next(&mut self) -> Option<&'a str> {
        self.rest.next().copied()
    }

    fn required(&mut self, what: &str) -> Result<&'a str, ParseError> {
        self.next()
            .ok_or_else(|| self.error(format!("missing {what}")))
    }

    fn server(&mut self) -> Result<ServerRef, ParseError> {
        let word = self.required("<backend>/<server>")?;
        match word.split_once('/') {
            Some((backend, server))
                if !backend.is_empty() && !server.is_empty() && !server.contains('/') =>
            {
                Ok(ServerRef {
                    backend: backend.to_string(),
                    server: server.to_string(),
                })
            }
            _ => Err(self.error(format!("expected \"backend/server\", got {word:?}"))),
        }
    }

    fn weight(&mut self) -> Result<Weight, ParseError> {
        let word = self.required("<weight>")?;
        let weight = match word.strip_suffix('%') {
            Some(p) => number(p).map(Weight::Percent),
            None => number(word)
                .filter(|&w| w <= MAX_WEIGHT)
                .map(Weight::Absolute),
        };
        weight.ok_or_else(|| {
            self.error(format!(
                "weight must be 0-{MAX_WEIGHT} or a percentage, got {word:?}"
            ))
        })
    }

    fn end(mut self) -> Result<(), ParseError> {
        match self.next() {
            None => Ok(()),
            Some(extra) => Err(self.error(format!("unexpected {extra:?} at the end"))),
        }
    }
}

/// A decimal number, digits only: `parse` alone would take `+3`.
fn number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every command on a line: split at `;` (not at `\;`), empty ones
/// skipped, each parsed on its own so one bad command does not hide the
/// others' answers.
pub fn parse_line(line: &str) -> Vec<Result<Command, ParseError>> {
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    let mut flush = |current: &mut String| {
        if !current.trim().is_empty() {
            commands.push(parse(current));
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(c @ (';' | '\\')) => current.push(c),
                Some(other) => {
                    current.push('\\');
                    current.push(other);
                }
                None => current.push('\\'),
            },
            ';' => flush(&mut current),
            c => current.push(c),
        }
    }
    flush(&mut current);
    commands
}

/// HAProxy's `show servers state` header, format version 1.
pub const SERVERS_STATE_HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state \
srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status \
srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id \
srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port";

/// `show servers state [backend]` in HAProxy's format 1: the version line,
/// the header, a line per server with HAProxy's numeric codes (op state 0
/// down, 1 slowstart, 2 up; admin 0x01 maint, 0x08 drain; check status and
/// result as HAProxy numbers them; check state 0x02|0x04 checked, 0x08
/// paused by maintenance). No agent, TLS, FQDN or forced ids in lbd: those
/// columns hold HAProxy's values for "none". An unknown backend is an
/// error naming it.
pub fn servers_state(snapshot: &Snapshot, backend: Option<&str>) -> Result<String, String> {
    if let Some(name) = backend {
        if !snapshot.backends.iter().any(|b| b.name == name) {
            return Err(format!("no backend named {name:?}"));
        }
    }
    let mut out = format!("1\n{SERVERS_STATE_HEADER}\n");
    for (i, b) in snapshot.backends.iter().enumerate() {
        if backend.is_some_and(|name| name != b.name) {
            continue;
        }
        let be_id = snapshot.backend_id(i);
        for (k, s) in b.servers.iter().enumerate() {
            let (check_addr, check_port) = check_target(s);
            let (status, result, health, check_state) = check_numbers(s);
            // `write!` into a String cannot fail.
            let _ = writeln!(
                out,
                "{be_id} {} {} {} {} {} {} {} {} {} {status} {result} {health} {check_state} \
                 0 0 0 - {} - 0 {check_port} {check_addr} - 0",
                b.name,
                k + 1,
                s.name,
                s.address.ip(),
                op_state(s),
                admin_flags(s.admin),
                s.user_weight,
                s.configured_weight,
                s.last_change_ago.as_secs(),
                s.address.port(),
            );
        }
    }
    Ok(out)
}

/// HAProxy's `srv_op_state`.
fn op_state(s: &ServerStats) -> u8 {
    if !s.is_up() {
        0
    } else if s.throttle().is_some() {
        1
    } else {
        2
    }
}

/// HAProxy's `srv_admin_state` flags.
fn admin_flags(a: AdminState) -> u8 {
    match a {
        AdminState::Ready => 0,
        AdminState::Maint => 0x01,
        AdminState::Drain => 0x08,
    }
}

/// `srv_check_status`, `srv_check_result`, `srv_check_health`,
/// `srv_check_state`; all 0 for an unchecked server.
fn check_numbers(s: &ServerStats) -> (u32, u8, u32, u8) {
    let Some(c) = &s.check else {
        return (0, 0, 0, 0);
    };
    let (status, result) = match &c.last_check {
        // INI, CHK_RES_UNKNOWN.
        None => (1, 0),
        Some(o) => (
            check_code(s.check_type, o).number(),
            if o.passed { 3 } else { 2 },
        ),
    };
    let paused = if s.admin == AdminState::Maint {
        0x08
    } else {
        0
    };
    (status, result, c.health, 0x02 | 0x04 | paused)
}

/// `srv_check_addr` and `srv_check_port`: `-` and 0 unless checks go
/// elsewhere than the traffic address, as HAProxy without `addr`/`port`.
fn check_target(s: &ServerStats) -> (String, u16) {
    match s.check_address {
        Some(a) => {
            let addr = if a.ip() == s.address.ip() {
                "-".to_string()
            } else {
                a.ip().to_string()
            };
            let port = if a.port() == s.address.port() {
                0
            } else {
                a.port()
            };
            (addr, port)
        }
        None => ("-".into(), 0),
    }
}

/// `show info`: `Key: value` lines with HAProxy's key names for what lbd
/// has. `Maxconn` adds up the frontends' limits (HAProxy's is global).
pub fn info(snapshot: &Snapshot) -> String {
    let sum = |f: fn(&crate::stats::FrontendStats) -> u64| -> u64 {
        snapshot.frontends.iter().map(f).sum()
    };
    let up = snapshot.uptime.as_secs();
    let servers: usize = snapshot.backends.iter().map(|b| b.servers.len()).sum();
    let lines: [(&str, String); 14] = [
        ("Name", "lbd".into()),
        ("Version", env!("CARGO_PKG_VERSION").into()),
        ("Nbthread", "1".into()),
        ("Process_num", "1".into()),
        ("Pid", snapshot.pid.to_string()),
        (
            "Uptime",
            format!(
                "{}d {}h{:02}m{:02}s",
                up / 86400,
                up / 3600 % 24,
                up / 60 % 60,
                up % 60
            ),
        ),
        ("Uptime_sec", up.to_string()),
        ("Maxconn", sum(|f| u64::from(f.session_limit)).to_string()),
        (
            "CurrConns",
            sum(|f| u64::from(f.current_sessions)).to_string(),
        ),
        ("CumConns", sum(|f| f.total_sessions).to_string()),
        ("Frontends", snapshot.frontends.len().to_string()),
        ("Backends", snapshot.backends.len().to_string()),
        ("Servers", servers.to_string()),
        (
            "Listeners",
            snapshot
                .frontends
                .iter()
                .filter(|f| f.listening)
                .map(|f| f.binds.len())
                .sum::<usize>()
                .to_string(),
        ),
    ];
    let mut out = String::new();
    for (key, value) in lines {
        let _ = writeln!(out, "{key}: {value}");
    }
    out
}

/// `show backend`: HAProxy's `# name` header and a name per line.
pub fn backends(snapshot: &Snapshot) -> String {
    let mut out = String::from("# name\n");
    for b in &snapshot.backends {
        out.push_str(&b.name);
        out.push('\n');
    }
    out
}

/// `get weight`'s answer, HAProxy's: `3 (initial 1)`.
pub fn weight(server: &ServerStats) -> String {
    format!(
        "{} (initial {})\n",
        server.user_weight, server.configured_weight
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balance, CheckType};
    use crate::stats::{BackendStats, FrontendStats};
    use std::time::Duration;

    fn srv(b: &str, s: &str) -> ServerRef {
        ServerRef {
            backend: b.into(),
            server: s.into(),
        }
    }

    fn ok(line: &str) -> Command {
        match parse(line) {
            Ok(c) => c,
            Err(e) => panic!("{line:?}: {e}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(line) {
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_command_parses() {
        let p = || srv("proxies", "sp1");
        let cases = [
            ("help", Command::Help),
            ("quit", Command::Quit),
            ("show stat", Command::ShowStat),
            ("show info", Command::ShowInfo),
            ("show backend", Command::ShowBackend),
            (
                "show servers state",
                Command::ShowServersState { backend: None },
            ),
            (
                "show servers state proxies",
                Command::ShowServersState {
                    backend: Some("proxies".into()),
                },
            ),
            (
                "disable server proxies/sp1",
                Command::SetState {
                    server: p(),
                    state: AdminState::Maint,
                },
            ),
            (
                "enable server proxies/sp1",
                Command::SetState {
                    server: p(),
                    state: AdminState::Ready,
                },
            ),
            (
                "set server proxies/sp1 state drain",
                Command::SetState {
                    server: p(),
                    state: AdminState::Drain,
                },
            ),
            (
                "set server proxies/sp1 state maint",
                Command::SetState {
                    server: p(),
                    state: AdminState::Maint,
                },
            ),
            (
                "set server proxies/sp1 state ready",
                Command::SetState {
                    server: p(),
                    state: AdminState::Ready,
                },
            ),
            (
                "set server proxies/sp1 weight 10",
                Command::SetWeight {
                    server: p(),
                    weight: Weight::Absolute(10),
                },
            ),
            (
                "set weight proxies/sp1 50%",
                Command::SetWeight {
                    server: p(),
                    weight: Weight::Percent(50),
                },
            ),
            (
                "set weight proxies/sp1 256",
                Command::SetWeight {
                    server: p(),
                    weight: Weight::Absolute(256),
                },
            ),
            ("get weight proxies/sp1", Command::GetWeight { server: p() }),
            (
                "set maxconn server proxies/sp1 100",
                Command::SetMaxconn {
                    server: p(),
                    maxconn: 100,
                },
            ),
            (
                "set server proxies/sp1 health down",
                Command::SetHealth {
                    server: p(),
                    state: health::State::Down,
                },
            ),
            (
                "set server proxies/sp1 health up",
                Command::SetHealth {
                    server: p(),
                    state: health::State::Up,
                },
            ),
            (
                "shutdown sessions server proxies/sp1",
                Command::ShutdownSessions { server: p() },
            ),
            // Spacing is free, as on HAProxy's socket.
            ("  show\tstat \r", Command::ShowStat),
        ];
        for (line, want) in cases {
            assert_eq!(ok(line), want, "{line:?}");
        }
    }

    #[test]
    fn errors_name_the_problem_and_the_syntax() {
        assert_eq!(
            err("shwo stat"),
            "unknown command \"shwo stat\"; try \"help\""
        );
        assert_eq!(
            err("show  sessions"),
            "unknown command \"show sessions\"; try \"help\""
        );
        assert_eq!(
            err("SHOW STAT"),
            "unknown command \"SHOW STAT\"; try \"help\""
        );
        assert_eq!(err("   "), "empty command; try \"help\"");
        assert_eq!(
            err("disable server proxy1"),
            "expected \"backend/server\", got \"proxy1\"; usage: disable server <backend>/<server>"
        );
        assert_eq!(
            err("set weight proxies/sp1 abc"),
            "weight must be 0-256 or a percentage, got \"abc\"; usage: set weight <backend>/<server> <weight>[%]"
        );
        assert_eq!(
            err("set server proxies/sp1 weight 257"),
            "weight must be 0-256 or a percentage, got \"257\"; usage: set server <backend>/<server> weight <weight>[%]"
        );
        assert_eq!(
            err("set server proxies/sp1 state up"),
            "state must be ready, drain or maint, got \"up\"; usage: set server <backend>/<server> state ready|drain|maint"
        );
        assert_eq!(
            err("set server proxies/sp1 health stopping"),
            "health must be up or down, got \"stopping\"; usage: set server <backend>/<server> health up|down"
        );
        assert_eq!(
            err("set server proxies/sp1 addr 1.2.3.4"),
            "expected state, weight or health, got \"addr\"; usage: set server <backend>/<server> state|weight|health <value>"
        );
        assert_eq!(
            err("set server proxies/sp1"),
            "missing state|weight|health; usage: set server <backend>/<server> state|weight|health <value>"
        );
        assert_eq!(
            err("get weight"),
            "missing <backend>/<server>; usage: get weight <backend>/<server>"
        );
        assert_eq!(
            err("set maxconn server proxies/sp1 -1"),
            "maxconn must be a number of connections (0 for no limit), got \"-1\"; usage: set maxconn server <backend>/<server> <maxconn>"
        );
        assert!(parse("set maxconn server b/s +5").is_err());
        assert_eq!(
            err("show stat json"),
            "unexpected \"json\" at the end; usage: show stat"
        );
        assert_eq!(
            err("quit now"),
            "unexpected \"now\" at the end; usage: quit"
        );
        assert_eq!(
            err("show servers state a b"),
            "unexpected \"b\" at the end; usage: show servers state [<backend>]"
        );
        for bad in ["/sp1", "proxies/", "a/b/c", "/"] {
            assert!(
                err(&format!("get weight {bad}")).starts_with("expected \"backend/server\""),
                "{bad}"
            );
        }
        for bad in ["-1%", "x%", "%", "1.5", "+3", ""] {
            let line = format!("set weight b/s {bad}");
            assert!(parse(&line).is_err(), "{line}");
        }
    }

    #[test]
    fn weights_resolve_as_haproxys() {
        assert_eq!(Weight::Percent(50).resolve(10), 5);
        assert_eq!(Weight::Percent(0).resolve(10), 0);
        assert_eq!(Weight::Percent(1000).resolve(100), 256, "capped");
        assert_eq!(Weight::Percent(u32::MAX).resolve(u32::MAX), 256);
        assert_eq!(Weight::Absolute(7).resolve(100), 7);
        assert_eq!(Weight::Absolute(300).resolve(1), 256);
        assert_eq!(
            ok("set weight b/s 4294967295%"),
            Command::SetWeight {
                server: srv("b", "s"),
                weight: Weight::Percent(u32::MAX)
            }
        );
        assert!(parse("set weight b/s 4294967296%").is_err());
    }

    #[test]
    fn a_line_holds_several_commands() {
        let got = parse_line("show info;show stat ; ;shwo;get weight b/s");
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok(Command::ShowInfo));
        assert_eq!(got[1], Ok(Command::ShowStat));
        assert!(got[2].is_err());
        assert_eq!(
            got[3],
            Ok(Command::GetWeight {
                server: srv("b", "s")
            })
        );
        assert!(parse_line("").is_empty());
        assert!(parse_line(" ; ;\n").is_empty());
        // An escaped `;` stays in the command (and here makes a bad name).
        let got = parse_line(r"get weight b/s\;quit");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0],
            Ok(Command::GetWeight {
                server: srv("b", "s;quit")
            })
        );
        let got = parse_line(r"get weight b/s\\;quit");
        assert_eq!(
            got,
            vec![
                Ok(Command::GetWeight {
                    server: srv("b", r"s\")
                }),
                Ok(Command::Quit)
            ]
        );
        assert_eq!(
            parse_line(r"quit\"),
            vec![Err(ParseError {
                problem: "unknown command \"quit\\\\\"; try \"help\"".into(),
                usage: None
            })]
        );
    }

    #[test]
    fn help_lists_every_command() {
        let text = help();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), USAGE.len());
        for (syntax, what) in USAGE {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(syntax) && l.ends_with(what)),
                "{syntax}"
            );
        }
        // Every usage line parses when filled in.
        let filled = |u: &str| {
            u.replace("<backend>/<server>", "b/s")
                .replace(" [<backend>]", "")
                .replace("ready|drain|maint", "drain")
                .replace("up|down", "up")
                .replace("<weight>[%]", "5")
                .replace("<maxconn>", "5")
        };
        for (syntax, _) in USAGE {
            assert!(parse(&filled(syntax)).is_ok(), "{syntax}");
        }
    }

    use crate::stats::tests::checked as status;

    fn server(name: &str, address: &str, check: Option<health::Status>) -> ServerStats {
        ServerStats {
            name: name.into(),
            address: address.parse().expect("address"),
            check_address: None,
            admin: AdminState::Ready,
            check,
            check_type: CheckType::Tcp,
            check_duration: None,
            last_check_ago: None,
            weight: 1,
            user_weight: 1,
            configured_weight: 1,
            backup: false,
            current_sessions: 0,
            max_sessions: 0,
            session_limit: None,
            total_sessions: 0,
            bytes_in: 0,
            bytes_out: 0,
            queue_current: 0,
            queue_max: 0,
            connect_errors: 0,
            retries: 0,
            redispatches: 0,
            last_change_ago: Duration::from_secs(812),
            downtime: Duration::ZERO,
            down_transitions: 0,
        }
    }

    fn backend(name: &str, servers: Vec<ServerStats>) -> BackendStats {
        BackendStats {
            name: name.into(),
            balance: Balance::Roundrobin,
            current_sessions: 0,
            max_sessions: 0,
            total_sessions: 0,
            bytes_in: 0,
            bytes_out: 0,
            queue_current: 0,
            queue_max: 0,
            connect_errors: 0,
            retries: 0,
            redispatches: 0,
            down_transitions: 0,
            last_change_ago: Duration::ZERO,
            downtime: Duration::ZERO,
            servers,
        }
    }

    fn snapshot() -> Snapshot {
        let up = server("sp1", "10.0.0.17:8066", Some(status(&[true], "ok")));
        let mut checkd = server(
            "sp2",
            "10.0.0.27:8066",
            Some(status(&[false, false, false], "connect: refused")),
        );
        checkd.check_address = Some("10.0.0.27:48700".parse().expect("address"));
        checkd.user_weight = 3;
        checkd.configured_weight = 2;
        let mut maint = server("sp3", "[fd00::1]:8066", Some(status(&[], "")));
        maint.admin = AdminState::Maint;
        let mut drain = server("sp4", "10.0.0.4:8066", None);
        drain.admin = AdminState::Drain;
        let mut slow = server("sp5", "10.0.0.5:8066", Some(status(&[true], "HTTP 200")));
        slow.check_type = CheckType::Http;
        slow.check_address = Some("10.9.9.9:8066".parse().expect("address"));
        slow.user_weight = 10;
        slow.weight = 5;
        Snapshot {
            pid: 777,
            uptime: Duration::from_secs(93_784),
            frontends: vec![FrontendStats {
                name: "mysql".into(),
                binds: vec!["10.0.0.100:3306".parse().expect("address")],
                listening: true,
                current_sessions: 3,
                max_sessions: 10,
                session_limit: 2000,
                total_sessions: 99,
                bytes_in: 0,
                bytes_out: 0,
                errors: 0,
            }],
            backends: vec![
                backend("proxies", vec![up, checkd, maint, drain]),
                backend("other", vec![slow]),
            ],
        }
    }

    #[test]
    fn servers_state_is_haproxys_format_1() {
        let out = servers_state(&snapshot(), None).expect("all backends");
        let want = "1\n\
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
2 proxies 1 sp1 10.0.0.17 2 0 1 1 812 6 3 4 6 0 0 0 - 8066 - 0 0 - - 0\n\
2 proxies 2 sp2 10.0.0.27 0 0 3 2 812 8 2 0 6 0 0 0 - 8066 - 0 48700 - - 0\n\
2 proxies 3 sp3 fd00::1 0 1 1 1 812 1 0 4 14 0 0 0 - 8066 - 0 0 - - 0\n\
2 proxies 4 sp4 10.0.0.4 2 8 1 1 812 0 0 0 0 0 0 0 - 8066 - 0 0 - - 0\n\
3 other 1 sp5 10.0.0.5 1 0 10 1 812 15 3 4 6 0 0 0 - 8066 - 0 0 10.9.9.9 - 0\n";
        assert_eq!(out, want);
        for line in out.lines().skip(2) {
            assert_eq!(line.split(' ').count(), 25, "{line}");
        }
        let other = servers_state(&snapshot(), Some("other")).expect("one backend");
        assert_eq!(other.lines().count(), 3);
        assert!(other.ends_with("10.9.9.9 - 0\n"));
        assert_eq!(
            servers_state(&snapshot(), Some("nope")),
            Err("no backend named \"nope\"".into())
        );
    }

    #[test]
    fn info_has_haproxys_keys() {
        let out = info(&snapshot());
        for line in [
            "Name: lbd",
            "Pid: 777",
            "Uptime: 1d 2h03m04s",
            "Uptime_sec: 93784",
            "Maxconn: 2000",
            "CurrConns: 3",
            "CumConns: 99",
            "Servers: 5",
            "Listeners: 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(out.starts_with("Name: lbd\nVersion: "));
        for line in out.lines() {
            assert!(line.split_once(": ").is_some(), "{line}");
        }
    }

    #[test]
    fn show_backend_and_get_weight() {
        let snap = snapshot();
        assert_eq!(backends(&snap), "# name\nproxies\nother\n");
        assert_eq!(weight(&snap.backends[0].servers[1]), "3 (initial 2)\n");
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        let long = "x".repeat(100_000);
        let odd = [
            "\u{0}",
            "set",
            "set server",
            "set maxconn",
            "set maxconn server",
            "shutdown",
            "shutdown sessions server",
            "show",
            "show servers",
            "é/é",
            "get weight é/ü",
            "set weight a/b 99999999999999999999%",
            "set weight a/b ٣",
            long.as_str(),
        ];
        for line in odd {
            let _ = parse(line);
            let _ = parse_line(line);
        }
        assert!(parse("get weight é/ü").is_ok());
    }
}
