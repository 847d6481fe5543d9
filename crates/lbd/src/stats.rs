//! What the stats page, `show stat` and `/stats;json` show, and how: the
//! runtime copies its counters into a [`Snapshot`] and these functions
//! render it, so every column's meaning is pinned down by unit tests rather
//! than read off a live page.
//!
//! The CSV is HAProxy's `show stat` (management guide §9.1): the first 100
//! columns in HAProxy's names and order, one FRONTEND row per frontend, then
//! for each backend one row per server and a BACKEND row; a column lbd has no
//! data for is empty, as HAProxy leaves columns that do not apply. Scripts
//! written against HAProxy (`awk -F,` on `status`, `check_status`, `scur`)
//! read it unchanged. One difference: HAProxy double-quotes a value with a
//! comma in it; lbd replaces the comma instead (free text only: check
//! details), so that the `cut -d,` scripts this tier grew up with still see
//! every line with the same number of fields.
//!
//! Proxy ids (`iid`, and `be_id` in `show servers state`): frontends are
//! numbered from 1 in snapshot order, backends after them, the way HAProxy
//! numbers proxies in configuration order. Server ids (`sid`) count from 1
//! within their backend.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{Balance, CheckType};
use crate::health::{self, Outcome};

/// Everything the renderings show, copied out of the runtime at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// The OS process id (`show info`'s `Pid`; the CSV's `pid` column is
    /// HAProxy's process number, always 1).
    pub pid: u32,
    pub uptime: Duration,
    pub frontends: Vec<FrontendStats>,
    pub backends: Vec<BackendStats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FrontendStats {
    pub name: String,
    pub binds: Vec<SocketAddr>,
    /// Its sockets are bound (false: not yet, or a bind failed).
    pub listening: bool,
    pub current_sessions: u32,
    pub max_sessions: u32,
    /// Its `maxconn`; 0 is no limit.
    pub session_limit: u32,
    pub total_sessions: u64,
    /// From clients.
    pub bytes_in: u64,
    /// To clients.
    pub bytes_out: u64,
    /// Client-side errors: the client left or timed out before a server was
    /// connected (HAProxy's `ereq`).
    pub errors: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackendStats {
    pub name: String,
    pub balance: Balance,
    pub current_sessions: u32,
    pub max_sessions: u32,
    pub total_sessions: u64,
    /// From clients, sent on to servers.
    pub bytes_in: u64,
    /// From servers, sent on to clients.
    pub bytes_out: u64,
    /// Connections waiting for a server below its `maxconn`.
    pub queue_current: u32,
    pub queue_max: u32,
    /// Failed connects, the servers' and those with no server to try.
    pub connect_errors: u64,
    pub retries: u64,
    pub redispatches: u64,
    /// Times the whole backend went DOWN, no server left to take a
    /// connection (HAProxy's backend `chkdown`).
    pub down_transitions: u64,
    /// Since the backend last went UP or DOWN as a whole.
    pub last_change_ago: Duration,
    /// Total time the whole backend was DOWN.
    pub downtime: Duration,
    pub servers: Vec<ServerStats>,
}

/// A server's administrative state, set by config (`disabled`) or the
/// runtime API (`set server b/s state`, `disable server`); independent of
/// what its checks say.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// Takes traffic if its checks allow.
    #[default]
    Ready,
    /// Keeps its sessions, takes no new ones (HAProxy's DRAIN: weight 0).
    Drain,
    /// Out: no traffic, checks paused (HAProxy's MAINT).
    Maint,
}

impl AdminState {
    /// The name `set server b/s state` takes.
    pub fn name(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerStats {
    pub name: String,
    /// Where client connections go.
    pub address: SocketAddr,
    /// Where checks go, when not `address` (a `port`/`addr` override such
    /// as checkd's 48700).
    pub check_address: Option<SocketAddr>,
    pub admin: AdminState,
    /// `None`: the server is not checked (always taken as UP).
    pub check: Option<health::Status>,
    /// How the server is checked; meaningful only with `check`.
    pub check_type: CheckType,
    /// How long the last check took.
    pub check_duration: Option<Duration>,
    /// Since the last check ended.
    pub last_check_ago: Option<Duration>,
    /// Effective weight now: after `set weight`, drain and a slowstart ramp.
    pub weight: u32,
    /// The weight `set weight` gave it, or the configured one (HAProxy's
    /// `uweight`); `weight` below it means slowstart is ramping.
    pub user_weight: u32,
    /// The weight in the config (HAProxy's `iweight`).
    pub configured_weight: u32,
    pub backup: bool,
    pub current_sessions: u32,
    pub max_sessions: u32,
    /// Its `maxconn`; `None` or `Some(0)` is no limit.
    pub session_limit: Option<u32>,
    pub total_sessions: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Connections waiting for this server (at its `maxconn`).
    pub queue_current: u32,
    pub queue_max: u32,
    pub connect_errors: u64,
    pub retries: u64,
    /// Connections that left this server for another after failed connects.
    pub redispatches: u64,
    /// Since it last went UP or DOWN ([`health::Check::last_change`]).
    pub last_change_ago: Duration,
    /// Total time DOWN ([`health::Check::downtime`]).
    pub downtime: Duration,
    /// UP to DOWN transitions, by checks or by hand.
    pub down_transitions: u64,
}

impl ServerStats {
    /// The status as HAProxy shows it: `MAINT`, `DRAIN`, `no check`, or the
    /// check's `UP`, `UP 1/3`, `DOWN 1/2`, `DOWN` (`DRAIN 1/3` for a drained
    /// server going down; a DOWN server shows DOWN even if drained).
    pub fn status_text(&self) -> String {
        if self.admin == AdminState::Maint {
            return "MAINT".into();
        }
        let drain = self.admin == AdminState::Drain;
        match &self.check {
            None if drain => "DRAIN".into(),
            None => "no check".into(),
            Some(s) if s.state == health::State::Up && drain => s.text.replacen("UP", "DRAIN", 1),
            Some(s) => s.text.clone(),
        }
    }

    /// Up by its checks (or unchecked) and not in maintenance.
    pub fn is_up(&self) -> bool {
        let checks_say_up = match &self.check {
            None => true,
            Some(s) => s.state == health::State::Up,
        };
        self.admin != AdminState::Maint && checks_say_up
    }

    /// May take new connections: up, not drained, weight above 0. What
    /// HAProxy counts in a backend's `act` and `bck`.
    pub fn usable(&self) -> bool {
        self.is_up() && self.admin == AdminState::Ready && self.weight > 0
    }

    /// Slowstart's share of the user weight in percent, while it ramps
    /// (HAProxy's `throttle`).
    pub fn throttle(&self) -> Option<u32> {
        (self.is_up() && self.admin == AdminState::Ready && self.weight < self.user_weight)
            .then(|| percent(self.weight, self.user_weight))
    }

    /// The last check's HAProxy status code (`L4OK`, `L4CON`, `L7STS`, ...):
    /// `INI` before the first, `None` when unchecked.
    pub fn check_status(&self) -> Option<&'static str> {
        let status = self.check.as_ref()?;
        Some(match &status.last_check {
            None => "INI",
            Some(o) => check_code(self.check_type, o).name(),
        })
    }

    /// The layer 7 code the last check got (an HTTP status), if any.
    pub fn check_code(&self) -> Option<u16> {
        let o = self.check.as_ref()?.last_check.as_ref()?;
        l7_code(&o.detail)
    }

    fn limit(&self) -> Option<u32> {
        self.session_limit.filter(|&m| m > 0)
    }
}

impl BackendStats {
    /// Active servers that may take connections (HAProxy's `act`).
    pub fn active_up(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| !s.backup && s.usable())
            .count()
    }

    /// Backup servers that may take connections (HAProxy's `bck`).
    pub fn backups_up(&self) -> usize {
        self.servers
            .iter()
            .filter(|s| s.backup && s.usable())
            .count()
    }

    /// Servers that may take connections, active or backup.
    pub fn servers_up(&self) -> usize {
        self.servers.iter().filter(|s| s.usable()).count()
    }

    /// `UP` while any server may take a connection, else `DOWN`.
    pub fn status_text(&self) -> &'static str {
        if self.servers_up() > 0 {
            "UP"
        } else {
            "DOWN"
        }
    }

    /// The weight sharing the load now: the usable active servers', or the
    /// usable backups' when no active one is (HAProxy's backend `weight`).
    pub fn weight(&self) -> u64 {
        let backup = self.active_up() == 0;
        self.servers
            .iter()
            .filter(|s| s.backup == backup && s.usable())
            .map(|s| u64::from(s.weight))
            .sum()
    }
}

impl FrontendStats {
    /// HAProxy's frontend status: `OPEN`, `FULL` at `maxconn`, `STOP` when
    /// not listening.
    pub fn status_text(&self) -> &'static str {
        if !self.listening {
            "STOP"
        } else if self.session_limit > 0 && self.current_sessions >= self.session_limit {
            "FULL"
        } else {
            "OPEN"
        }
    }
}

impl Snapshot {
    /// Frontend `index`'s proxy id (see the module docs).
    pub fn frontend_id(&self, index: usize) -> usize {
        index + 1
    }

    /// Backend `index`'s proxy id (see the module docs).
    pub fn backend_id(&self, index: usize) -> usize {
        self.frontends.len() + index + 1
    }
}

/// HAProxy's health-check status codes lbd produces, with their numbers in
/// `show servers state` (HAProxy's `enum healthcheck_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckCode {
    /// Not checked yet.
    Ini,
    /// TCP connect succeeded (a `tcp` check).
    L4Ok,
    L4Timeout,
    /// Connection refused, no route, reset.
    L4Con,
    L7Timeout,
    /// Not the protocol expected.
    L7Rsp,
    /// Passed at layer 7 (`http`, `mysql`).
    L7Ok,
    /// An answer meaning DOWN, e.g. HTTP 503.
    L7Sts,
}

impl CheckCode {
    pub fn name(self) -> &'static str {
        match self {
            CheckCode::Ini => "INI",
            CheckCode::L4Ok => "L4OK",
            CheckCode::L4Timeout => "L4TOUT",
            CheckCode::L4Con => "L4CON",
            CheckCode::L7Timeout => "L7TOUT",
            CheckCode::L7Rsp => "L7RSP",
            CheckCode::L7Ok => "L7OK",
            CheckCode::L7Sts => "L7STS",
        }
    }

    /// HAProxy's number for it (`srv_check_status`).
    pub fn number(self) -> u32 {
        match self {
            CheckCode::Ini => 1,
            CheckCode::L4Ok => 6,
            CheckCode::L4Timeout => 7,
            CheckCode::L4Con => 8,
            CheckCode::L7Timeout => 12,
            CheckCode::L7Rsp => 13,
            CheckCode::L7Ok => 15,
            CheckCode::L7Sts => 17,
        }
    }

    /// HAProxy's `check_desc`.
    pub fn description(self) -> &'static str {
        match self {
            CheckCode::Ini => "Initializing",
            CheckCode::L4Ok => "Layer4 check passed",
            CheckCode::L4Timeout => "Layer4 timeout",
            CheckCode::L4Con => "Layer4 connection problem",
            CheckCode::L7Timeout => "Layer7 timeout",
            CheckCode::L7Rsp => "Layer7 invalid response",
            CheckCode::L7Ok => "Layer7 check passed",
            CheckCode::L7Sts => "Layer7 wrong status",
        }
    }
}

/// The status code of a check outcome. lbd's checkers say why a check
/// failed in words (`connect: Connection refused`, `timeout after 2s`,
/// `HTTP 503: ...`); the code is read off those words, since the operator
/// tooling keys on the code and the words are free to improve.
pub fn check_code(kind: CheckType, outcome: &Outcome) -> CheckCode {
    let detail = outcome.detail.to_ascii_lowercase();
    let timeout = detail.contains("timeout") || detail.contains("timed out");
    let at_connect = detail.starts_with("connect");
    match (kind, outcome.passed) {
        (CheckType::Tcp, true) => CheckCode::L4Ok,
        (_, true) => CheckCode::L7Ok,
        (_, false) if at_connect => {
            if timeout {
                CheckCode::L4Timeout
            } else {
                CheckCode::L4Con
            }
        }
        (CheckType::Tcp, false) if timeout => CheckCode::L4Timeout,
        (CheckType::Tcp, false) => CheckCode::L4Con,
        (_, false) if timeout => CheckCode::L7Timeout,
        (_, false) if l7_code(&outcome.detail).is_some() => CheckCode::L7Sts,
        (_, false) => CheckCode::L7Rsp,
    }
}

/// The HTTP status in a check detail that starts `HTTP 503...`.
fn l7_code(detail: &str) -> Option<u16> {
    let rest = detail.strip_prefix("HTTP ")?;
    let digits = rest.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// HAProxy's `show stat` column names, in order (management guide §9.1,
/// fields 0 to 99).
pub const CSV_COLUMNS: [&str; 100] = [
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
];

/// One CSV row being filled in, by column name so a row reads like the
/// management guide.
struct Row([String; CSV_COLUMNS.len()]);

impl Row {
    fn new() -> Row {
        Row(std::array::from_fn(|_| String::new()))
    }

    fn set(&mut self, column: &str, value: impl ToString) {
        // The names are this file's constants; a typo is caught by the
        // tests' column checks, never by a panic in the daemon.
        if let Some(i) = CSV_COLUMNS.iter().position(|&c| c == column) {
            self.0[i] = csv_safe(&value.to_string());
        }
    }

    fn write(&self, out: &mut String) {
        // HAProxy ends every field, the last one included, with a comma.
        for value in &self.0 {
            out.push_str(value);
            out.push(',');
        }
        out.push('\n');
    }
}

/// Free text made safe for a comma-separated line: no comma, no line
/// break, no quote a CSV reader would take as an opening delimiter.
fn csv_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ',' => ';',
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// HAProxy's `show stat` CSV (see the module docs).
pub fn csv(snapshot: &Snapshot) -> String {
    let mut out = String::from("# ");
    for name in CSV_COLUMNS {
        out.push_str(name);
        out.push(',');
    }
    out.push('\n');
    for (i, f) in snapshot.frontends.iter().enumerate() {
        let mut r = Row::new();
        r.set("pxname", &f.name);
        r.set("svname", "FRONTEND");
        r.set("scur", f.current_sessions);
        r.set("smax", f.max_sessions);
        if f.session_limit > 0 {
            r.set("slim", f.session_limit);
        }
        r.set("stot", f.total_sessions);
        r.set("bin", f.bytes_in);
        r.set("bout", f.bytes_out);
        r.set("ereq", f.errors);
        r.set("status", f.status_text());
        r.set("pid", 1);
        r.set("iid", snapshot.frontend_id(i));
        r.set("sid", 0);
        r.set("type", 0);
        r.set("mode", "tcp");
        r.set("conn_tot", f.total_sessions);
        r.write(&mut out);
    }
    for (i, b) in snapshot.backends.iter().enumerate() {
        let iid = snapshot.backend_id(i);
        for (k, s) in b.servers.iter().enumerate() {
            server_row(&b.name, iid, k + 1, s).write(&mut out);
        }
        backend_row(b, iid).write(&mut out);
    }
    out
}

fn server_row(backend: &str, iid: usize, sid: usize, s: &ServerStats) -> Row {
    let mut r = Row::new();
    r.set("pxname", backend);
    r.set("svname", &s.name);
    r.set("qcur", s.queue_current);
    r.set("qmax", s.queue_max);
    r.set("scur", s.current_sessions);
    r.set("smax", s.max_sessions);
    if let Some(m) = s.limit() {
        r.set("slim", m);
    }
    r.set("stot", s.total_sessions);
    r.set("bin", s.bytes_in);
    r.set("bout", s.bytes_out);
    r.set("econ", s.connect_errors);
    r.set("wretr", s.retries);
    r.set("wredis", s.redispatches);
    r.set("status", s.status_text());
    r.set("weight", s.weight);
    r.set("act", u8::from(!s.backup));
    r.set("bck", u8::from(s.backup));
    r.set("lastchg", s.last_change_ago.as_secs());
    r.set("pid", 1);
    r.set("iid", iid);
    r.set("sid", sid);
    if let Some(t) = s.throttle() {
        r.set("throttle", t);
    }
    r.set("type", 2);
    r.set("addr", s.address);
    r.set("mode", "tcp");
    r.set("uweight", s.user_weight);
    if let Some(c) = &s.check {
        // As HAProxy: check columns for checked servers only, and the
        // last check's result not while maintenance pauses the checks.
        r.set("chkfail", c.failed_checks);
        r.set("chkdown", s.down_transitions);
        r.set("downtime", s.downtime.as_secs());
        if s.admin != AdminState::Maint {
            let code = c
                .last_check
                .as_ref()
                .map_or(CheckCode::Ini, |o| check_code(s.check_type, o));
            r.set("check_status", code.name());
            r.set("check_desc", code.description());
            if let Some(n) = s.check_code() {
                r.set("check_code", n);
            }
            if let (Some(d), Some(_)) = (s.check_duration, &c.last_check) {
                r.set("check_duration", d.as_millis());
            }
            if let Some(o) = &c.last_check {
                r.set("last_chk", &o.detail);
            }
            r.set("check_rise", c.rise);
            r.set("check_fall", c.fall);
            r.set("check_health", c.health);
        }
    }
    r
}

fn backend_row(b: &BackendStats, iid: usize) -> Row {
    let mut r = Row::new();
    r.set("pxname", &b.name);
    r.set("svname", "BACKEND");
    r.set("qcur", b.queue_current);
    r.set("qmax", b.queue_max);
    r.set("scur", b.current_sessions);
    r.set("smax", b.max_sessions);
    r.set("stot", b.total_sessions);
    r.set("bin", b.bytes_in);
    r.set("bout", b.bytes_out);
    r.set("econ", b.connect_errors);
    r.set("wretr", b.retries);
    r.set("wredis", b.redispatches);
    r.set("status", b.status_text());
    r.set("weight", b.weight());
    r.set("act", b.active_up());
    r.set("bck", b.backups_up());
    r.set("chkdown", b.down_transitions);
    r.set("lastchg", b.last_change_ago.as_secs());
    r.set("downtime", b.downtime.as_secs());
    r.set("pid", 1);
    r.set("iid", iid);
    r.set("sid", 0);
    r.set("type", 1);
    r.set("mode", "tcp");
    r.set("algo", algorithm(b.balance));
    let uweight: u64 = b.servers.iter().map(|s| u64::from(s.user_weight)).sum();
    r.set("uweight", uweight);
    r
}

/// The config name of a balance algorithm, HAProxy's.
pub fn algorithm(b: Balance) -> &'static str {
    match b {
        Balance::Roundrobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::Leastconn => "leastconn",
        Balance::Source => "source",
        Balance::First => "first",
    }
}

/// The snapshot as `/stats;json` serves it. lbd's own shape, kept stable
/// for scripts: plain JSON numbers, durations in milliseconds (`*_ms`),
/// every key always present (`null` when there is no value):
///
/// ```text
/// { "pid", "uptime_ms",
///   "frontends": [{ "name", "binds": ["ip:port"], "listening", "status",
///       "current_sessions", "max_sessions", "session_limit",
///       "total_sessions", "bytes_in", "bytes_out", "errors" }],
///   "backends": [{ "name", "balance", "status", "weight", "servers_up",
///       "servers_total", "current_sessions", "max_sessions",
///       "total_sessions", "bytes_in", "bytes_out", "queue_current",
///       "queue_max", "connect_errors", "retries", "redispatches",
///       "down_transitions", "last_change_ago_ms", "downtime_ms",
///       "servers": [{ "name", "address", "check_address", "admin",
///           "status", "up", "backup", "weight", "user_weight",
///           "configured_weight", "throttle", "current_sessions",
///           "max_sessions", "session_limit", "total_sessions", "bytes_in",
///           "bytes_out", "queue_current", "queue_max", "connect_errors",
///           "retries", "redispatches", "last_change_ago_ms", "downtime_ms",
///           "down_transitions",
///           "check": null | { "type", "state", "text", "health", "rise",
///               "fall", "status", "code", "passed", "detail",
///               "duration_ms", "last_check_ago_ms", "last_failure",
///               "failed_checks" } }] }] }
/// ```
///
/// `status` is the CSV's; `check.status` HAProxy's code (`L4OK`, `INI`).
pub fn json(snapshot: &Snapshot) -> Value {
    let frontends: Vec<Value> = snapshot
        .frontends
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "binds": f.binds.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "listening": f.listening,
                "status": f.status_text(),
                "current_sessions": f.current_sessions,
                "max_sessions": f.max_sessions,
                "session_limit": f.session_limit,
                "total_sessions": f.total_sessions,
                "bytes_in": f.bytes_in,
                "bytes_out": f.bytes_out,
                "errors": f.errors,
            })
        })
        .collect();
    let backends: Vec<Value> = snapshot
        .backends
        .iter()
        .map(|b| {
            json!({
                "name": b.name,
                "balance": algorithm(b.balance),
                "status": b.status_text(),
                "weight": b.weight(),
                "servers_up": b.servers_up(),
                "servers_total": b.servers.len(),
                "current_sessions": b.current_sessions,
                "max_sessions": b.max_sessions,
                "total_sessions": b.total_sessions,
                "bytes_in": b.bytes_in,
                "bytes_out": b.bytes_out,
                "queue_current": b.queue_current,
                "queue_max": b.queue_max,
                "connect_errors": b.connect_errors,
                "retries": b.retries,
                "redispatches": b.redispatches,
                "down_transitions": b.down_transitions,
                "last_change_ago_ms": millis(b.last_change_ago),
                "downtime_ms": millis(b.downtime),
                "servers": b.servers.iter().map(server_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "pid": snapshot.pid,
        "uptime_ms": millis(snapshot.uptime),
        "frontends": frontends,
        "backends": backends,
    })
}

fn server_json(s: &ServerStats) -> Value {
    let check = s.check.as_ref().map(|c| {
        let last = c.last_check.as_ref();
        json!({
            "type": s.check_type,
            "state": c.state,
            "text": c.text,
            "health": c.health,
            "rise": c.rise,
            "fall": c.fall,
            "status": s.check_status(),
            "code": s.check_code(),
            "passed": last.map(|o| o.passed),
            "detail": last.map(|o| o.detail.as_str()),
            "duration_ms": s.check_duration.map(millis),
            "last_check_ago_ms": s.last_check_ago.map(millis),
            "last_failure": c.last_failure,
            "failed_checks": c.failed_checks,
        })
    });
    json!({
        "name": s.name,
        "address": s.address.to_string(),
        "check_address": s.check_address.map(|a| a.to_string()),
        "admin": s.admin,
        "status": s.status_text(),
        "up": s.is_up(),
        "backup": s.backup,
        "weight": s.weight,
        "user_weight": s.user_weight,
        "configured_weight": s.configured_weight,
        "throttle": s.throttle(),
        "current_sessions": s.current_sessions,
        "max_sessions": s.max_sessions,
        "session_limit": s.limit(),
        "total_sessions": s.total_sessions,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "queue_current": s.queue_current,
        "queue_max": s.queue_max,
        "connect_errors": s.connect_errors,
        "retries": s.retries,
        "redispatches": s.redispatches,
        "last_change_ago_ms": millis(s.last_change_ago),
        "downtime_ms": millis(s.downtime),
        "down_transitions": s.down_transitions,
        "check": check,
    })
}

/// Whole milliseconds, saturating (a `Duration` holds more than JSON's
/// integers should carry).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn percent(part: u32, whole: u32) -> u32 {
    if whole == 0 {
        return 100;
    }
    u32::try_from(u64::from(part) * 100 / u64::from(whole)).unwrap_or(u32::MAX)
}

/// The stats page: one table of frontends, one per backend with a row per
/// server, reloading itself every `refresh`. Self-contained (inline CSS, no
/// script), every text from config or checks escaped.
pub fn html(snapshot: &Snapshot, refresh: Duration) -> String {
    let mut out = String::new();
    let refresh = refresh.as_secs().max(1);
    // `write!` into a String cannot fail; the results are ignored for that
    // reason, not to hide errors.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <title>lbd statistics</title>\n<style>{CSS}</style></head><body>\n\
         <h1>lbd statistics</h1>\n\
         <p>pid {} &middot; up {} &middot; refresh every {refresh}s &middot; \
         <a href=\";csv\">CSV</a> &middot; <a href=\";json\">JSON</a></p>\n",
        snapshot.pid,
        human_duration(snapshot.uptime),
    );
    out.push_str(
        "<h2>Frontends</h2>\n<table><tr><th>Name</th><th>Bind</th><th>Status</th>\
         <th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>Bytes in</th>\
         <th>Bytes out</th><th>Errors</th></tr>\n",
    );
    for f in &snapshot.frontends {
        let binds: Vec<String> = f.binds.iter().map(ToString::to_string).collect();
        let class = if f.status_text() == "OPEN" {
            "up"
        } else {
            "down"
        };
        let limit = if f.session_limit > 0 {
            f.session_limit.to_string()
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td>\
             <td>{}</td><td>{limit}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.name),
            escape(&binds.join(" ")),
            f.status_text(),
            f.current_sessions,
            f.max_sessions,
            f.total_sessions,
            human_bytes(f.bytes_in),
            human_bytes(f.bytes_out),
            f.errors,
        );
    }
    out.push_str("</table>\n");
    for b in &snapshot.backends {
        backend_html(&mut out, b);
    }
    out.push_str("</body></html>\n");
    out
}

const CSS: &str = "body{font-family:sans-serif;font-size:13px;margin:1em}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #bbb;padding:2px 6px;text-align:right}\
th{background:#eee}td:first-child,td:nth-child(2){text-align:left}\
td.up{background:#c0f0c0}td.going{background:#f8f080}\
td.down{background:#f4a0a0}td.admin{background:#a0c8f8}\
tr.total td{font-weight:bold;background:#f4f4f4}";

fn backend_html(out: &mut String, b: &BackendStats) {
    let _ = writeln!(
        out,
        "<h2>Backend {} ({}, {} of {} servers up)</h2>",
        escape(&b.name),
        algorithm(b.balance),
        b.servers_up(),
        b.servers.len(),
    );
    out.push_str(
        "<table><tr><th>Server</th><th>Address</th><th>Status</th><th>Last check</th>\
         <th>Weight</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th>\
         <th>Bytes in</th><th>Bytes out</th><th>Queue</th><th>Conn errors</th>\
         <th>Retries/Redisp</th><th>Downtime</th><th>Last change</th></tr>\n",
    );
    for s in &b.servers {
        let status = s.status_text();
        let weight = if s.weight == s.configured_weight {
            s.weight.to_string()
        } else {
            format!("{} (of {})", s.weight, s.configured_weight)
        };
        let backup = if s.backup { " <i>(backup)</i>" } else { "" };
        let limit = s.limit().map_or("-".into(), |m| m.to_string());
        let downtime = if s.check.is_some() {
            human_duration(s.downtime)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "<tr><td>{}{backup}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td>\
             <td>{weight}</td><td>{}</td><td>{}</td><td>{limit}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}/{}</td><td>{}</td><td>{}/{}</td><td>{downtime}</td>\
             <td>{} ago</td></tr>",
            escape(&s.name),
            s.address,
            status_class(s),
            escape(&status),
            last_check_html(s),
            s.current_sessions,
            s.max_sessions,
            s.total_sessions,
            human_bytes(s.bytes_in),
            human_bytes(s.bytes_out),
            s.queue_current,
            s.queue_max,
            s.connect_errors,
            s.retries,
            s.redispatches,
            human_duration(s.last_change_ago),
        );
    }
    let _ = writeln!(
        out,
        "<tr class=\"total\"><td>Backend</td><td></td><td class=\"{}\">{}</td><td></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>-</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}/{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{} ago</td></tr>",
        if b.servers_up() > 0 { "up" } else { "down" },
        b.status_text(),
        b.weight(),
        b.current_sessions,
        b.max_sessions,
        b.total_sessions,
        human_bytes(b.bytes_in),
        human_bytes(b.bytes_out),
        b.queue_current,
        b.queue_max,
        b.connect_errors,
        b.retries,
        b.redispatches,
        human_duration(b.downtime),
        human_duration(b.last_change_ago),
    );
    out.push_str("</table>\n");
}

/// Green UP, yellow on the way up or down, red DOWN, blue for the admin's
/// MAINT and DRAIN.
fn status_class(s: &ServerStats) -> &'static str {
    if s.admin != AdminState::Ready {
        return "admin";
    }
    match &s.check {
        None => "up",
        Some(c) if c.text == "UP" => "up",
        Some(c) if c.text == "DOWN" => "down",
        Some(_) => "going",
    }
}

fn last_check_html(s: &ServerStats) -> String {
    let Some(c) = &s.check else {
        return "no check".into();
    };
    let Some(o) = &c.last_check else {
        return "not yet".into();
    };
    let mut text = format!(
        "{} {}",
        check_code(s.check_type, o).name(),
        escape(&o.detail)
    );
    if let Some(d) = s.check_duration {
        let _ = write!(text, " in {}ms", d.as_millis());
    }
    if let Some(ago) = s.last_check_ago {
        let _ = write!(text, ", {} ago", human_duration(ago));
    }
    text
}

/// Text safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Floating point only for display; u64 to f64 loses nothing visible at
    // one decimal.
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// HAProxy's stats page style: `45s`, `3m05s`, `2h07m`, `5d03h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86400);
    if s < 60 {
        format!("{s}s")
    } else if h == 0 {
        format!("{m}m{:02}s", s % 60)
    } else if days == 0 {
        format!("{h}h{:02}m", m % 60)
    } else {
        format!("{days}d{:02}h", h % 24)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::health::{Check, InitState, Params, State};
    use std::time::Instant;

    const S: Duration = Duration::from_secs(1);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    /// A checked server's status after `results` (true passed), starting
    /// fully UP.
    pub(crate) fn checked(results: &[bool], detail: &str) -> health::Status {
        let t0 = Instant::now();
        let mut c = Check::new(
            Params {
                init_state: InitState::FullyUp,
                ..Params::default()
            },
            t0,
        );
        for &ok in results {
            let r = if ok {
                Ok(detail.to_string())
            } else {
                Err(detail.to_string())
            };
            c.observe(r, t0);
        }
        c.status()
    }

    fn server(name: &str, check: Option<health::Status>) -> ServerStats {
        ServerStats {
            name: name.into(),
            address: addr("10.0.0.1:3306"),
            check_address: None,
            admin: AdminState::Ready,
            check,
            check_type: CheckType::Tcp,
            check_duration: Some(Duration::from_millis(3)),
            last_check_ago: Some(S),
            weight: 1,
            user_weight: 1,
            configured_weight: 1,
            backup: false,
            current_sessions: 2,
            max_sessions: 7,
            session_limit: None,
            total_sessions: 40,
            bytes_in: 1000,
            bytes_out: 20000,
            queue_current: 0,
            queue_max: 1,
            connect_errors: 3,
            retries: 4,
            redispatches: 5,
            last_change_ago: 90 * S,
            downtime: 12 * S,
            down_transitions: 1,
        }
    }

    fn snapshot(servers: Vec<ServerStats>) -> Snapshot {
        Snapshot {
            pid: 4242,
            uptime: 3700 * S,
            frontends: vec![FrontendStats {
                name: "mysql".into(),
                binds: vec![addr("10.0.0.100:3306"), addr("[::1]:3306")],
                listening: true,
                current_sessions: 5,
                max_sessions: 9,
                session_limit: 2000,
                total_sessions: 123,
                bytes_in: 4096,
                bytes_out: 1 << 30,
                errors: 2,
            }],
            backends: vec![BackendStats {
                name: "proxies".into(),
                balance: Balance::Leastconn,
                current_sessions: 5,
                max_sessions: 9,
                total_sessions: 123,
                bytes_in: 4096,
                bytes_out: 1 << 30,
                queue_current: 0,
                queue_max: 2,
                connect_errors: 6,
                retries: 7,
                redispatches: 1,
                down_transitions: 0,
                last_change_ago: 3700 * S,
                downtime: Duration::ZERO,
                servers,
            }],
        }
    }

    /// Up, going down, down, going up, maint, drain, unchecked, drained
    /// unchecked, drained going down.
    fn zoo() -> Snapshot {
        let mut maint = server("maint", Some(checked(&[], "")));
        maint.admin = AdminState::Maint;
        let mut drain = server("drain", Some(checked(&[true], "ok")));
        drain.admin = AdminState::Drain;
        let mut drain_nc = server("drain-nc", None);
        drain_nc.admin = AdminState::Drain;
        let mut drain_going = server("drain-going", Some(checked(&[false], "timeout")));
        drain_going.admin = AdminState::Drain;
        let mut backup = server("backup", Some(checked(&[true], "ok")));
        backup.backup = true;
        snapshot(vec![
            server("up", Some(checked(&[true], "ok"))),
            server(
                "going-down",
                Some(checked(&[false], "connect: Connection refused")),
            ),
            server(
                "down",
                Some(checked(
                    &[false, false, false],
                    "connect: Connection refused",
                )),
            ),
            server(
                "going-up",
                Some(checked(&[false, false, false, true], "ok")),
            ),
            maint,
            drain,
            server("nocheck", None),
            drain_nc,
            drain_going,
            backup,
        ])
    }

    fn rows(csv: &str) -> Vec<Vec<String>> {
        csv.lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    }

    fn column(name: &str) -> usize {
        CSV_COLUMNS
            .iter()
            .position(|&c| c == name)
            .expect("known column")
    }

    fn cell<'a>(rows: &'a [Vec<String>], svname: &str, col: &str) -> &'a str {
        let row = rows
            .iter()
            .find(|r| r.get(1).map(String::as_str) == Some(svname))
            .expect("row");
        &row[column(col)]
    }

    #[test]
    fn csv_header_is_haproxys() {
        let out = csv(&snapshot(vec![]));
        let header = out.lines().next().expect("header");
        assert!(header.starts_with(
            "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,\
             eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,\
             qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,\
             check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,\
             hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,\
             comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,\
             rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,\
             check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,\
             cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,\
             connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,\
             rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,\
             need_conn_est,uweight,"
        ));
        // Positions scripts hard-code.
        let names: Vec<&str> = header[2..].split(',').collect();
        assert_eq!(names[17], "status");
        assert_eq!(names[32], "type");
        assert_eq!(names[36], "check_status");
        assert_eq!(names[73], "addr");
        assert_eq!(names[99], "uweight");
        assert_eq!(names.len(), 101, "100 fields, each with a trailing comma");
    }

    #[test]
    fn status_columns_are_haproxys() {
        let out = csv(&zoo());
        let rows = rows(&out);
        let want = [
            ("up", "UP"),
            ("going-down", "UP 2/3"),
            ("down", "DOWN"),
            ("going-up", "DOWN 1/2"),
            ("maint", "MAINT"),
            ("drain", "DRAIN"),
            ("nocheck", "no check"),
            ("drain-nc", "DRAIN"),
            ("drain-going", "DRAIN 2/3"),
            ("backup", "UP"),
            ("FRONTEND", "OPEN"),
            ("BACKEND", "UP"),
        ];
        for (sv, status) in want {
            assert_eq!(cell(&rows, sv, "status"), status, "{sv}");
        }
        assert_eq!(cell(&rows, "FRONTEND", "type"), "0");
        assert_eq!(cell(&rows, "BACKEND", "type"), "1");
        assert_eq!(cell(&rows, "up", "type"), "2");
        // One frontend row, ten servers, then the backend row.
        assert_eq!(rows.len(), 1 + 1 + 10 + 1);
        assert_eq!(rows[12][1], "BACKEND");
    }

    #[test]
    fn check_columns_follow_the_check() {
        let rows = rows(&csv(&zoo()));
        assert_eq!(cell(&rows, "up", "check_status"), "L4OK");
        assert_eq!(cell(&rows, "up", "check_desc"), "Layer4 check passed");
        assert_eq!(cell(&rows, "up", "check_duration"), "3");
        assert_eq!(cell(&rows, "down", "check_status"), "L4CON");
        assert_eq!(
            cell(&rows, "down", "last_chk"),
            "connect: Connection refused"
        );
        assert_eq!(cell(&rows, "down", "chkfail"), "3");
        assert_eq!(cell(&rows, "down", "check_health"), "0");
        assert_eq!(cell(&rows, "up", "check_health"), "4");
        assert_eq!(cell(&rows, "up", "check_rise"), "2");
        assert_eq!(cell(&rows, "up", "check_fall"), "3");
        assert_eq!(cell(&rows, "drain-going", "check_status"), "L4TOUT");
        // Not checked yet.
        assert_eq!(cell(&rows, "maint", "check_status"), "");
        // Unchecked: no check columns, no downtime, as HAProxy.
        for col in ["check_status", "chkfail", "downtime", "last_chk"] {
            assert_eq!(cell(&rows, "nocheck", col), "", "{col}");
        }
        assert_eq!(cell(&rows, "nocheck", "lastchg"), "90");
        assert_eq!(cell(&rows, "up", "downtime"), "12");
        assert_eq!(cell(&rows, "up", "addr"), "10.0.0.1:3306");
        assert_eq!(cell(&rows, "up", "act"), "1");
        assert_eq!(cell(&rows, "backup", "bck"), "1");
        assert_eq!(cell(&rows, "backup", "act"), "0");
        // Backend: usable active servers (up, going-down, nocheck; not
        // DOWN 1/2, not drained), the backup counted apart.
        assert_eq!(cell(&rows, "BACKEND", "act"), "3");
        assert_eq!(cell(&rows, "BACKEND", "bck"), "1");
        assert_eq!(cell(&rows, "BACKEND", "weight"), "3");
        assert_eq!(cell(&rows, "BACKEND", "algo"), "leastconn");
        assert_eq!(cell(&rows, "BACKEND", "iid"), "2");
        assert_eq!(cell(&rows, "FRONTEND", "iid"), "1");
        assert_eq!(cell(&rows, "up", "sid"), "1");
        assert_eq!(cell(&rows, "backup", "sid"), "10");
        assert_eq!(cell(&rows, "up", "pid"), "1");
    }

    #[test]
    fn l7_checks_get_l7_codes() {
        let mut s = server("h", Some(checked(&[false], "HTTP 503: DOWN mycat")));
        s.check_type = CheckType::Http;
        assert_eq!(s.check_status(), Some("L7STS"));
        assert_eq!(s.check_code(), Some(503));
        let rows = rows(&csv(&snapshot(vec![s])));
        assert_eq!(cell(&rows, "h", "check_code"), "503");
        let outcome = |passed, detail: &str| Outcome {
            passed,
            detail: detail.into(),
        };
        let cases = [
            (CheckType::Http, true, "HTTP 200", CheckCode::L7Ok),
            (CheckType::Mysql, true, "login ok", CheckCode::L7Ok),
            (
                CheckType::Mysql,
                false,
                "connect: refused",
                CheckCode::L4Con,
            ),
            (
                CheckType::Mysql,
                false,
                "connect timeout",
                CheckCode::L4Timeout,
            ),
            (
                CheckType::Mysql,
                false,
                "read timed out",
                CheckCode::L7Timeout,
            ),
            (CheckType::Mysql, false, "ERR 1045 access", CheckCode::L7Rsp),
            (
                CheckType::Tcp,
                false,
                "timed out after 2s",
                CheckCode::L4Timeout,
            ),
        ];
        for (kind, passed, detail, code) in cases {
            assert_eq!(check_code(kind, &outcome(passed, detail)), code, "{detail}");
        }
        assert_eq!(l7_code("HTTP 20"), None);
        assert_eq!(l7_code("HTTP abc"), None);
        assert_eq!(l7_code("HTTP é"), None);
    }

    #[test]
    fn commas_and_newlines_in_details_do_not_break_columns() {
        let detail = "HTTP 503: a, b,, \"c\"\nd\r,e";
        let mut s = server("x,y", Some(checked(&[false], detail)));
        s.check_type = CheckType::Http;
        let mut snap = snapshot(vec![s, server("z", None)]);
        snap.frontends[0].name = "front,end".into();
        let out = csv(&snap);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 1 + 2 + 1);
        for line in &lines {
            assert_eq!(line.split(',').count(), 101, "{line}");
            assert!(!line.contains('"'));
        }
        let rows = rows(&out);
        assert_eq!(cell(&rows, "x;y", "last_chk"), "HTTP 503: a; b;; 'c' d ;e");
    }

    #[test]
    fn frontend_status_and_limits() {
        let mut snap = snapshot(vec![]);
        let rows1 = rows(&csv(&snap));
        assert_eq!(cell(&rows1, "FRONTEND", "slim"), "2000");
        assert_eq!(cell(&rows1, "FRONTEND", "ereq"), "2");
        assert_eq!(cell(&rows1, "FRONTEND", "conn_tot"), "123");
        assert_eq!(cell(&rows1, "BACKEND", "status"), "DOWN");
        snap.frontends[0].current_sessions = 2000;
        assert_eq!(snap.frontends[0].status_text(), "FULL");
        snap.frontends[0].session_limit = 0;
        assert_eq!(snap.frontends[0].status_text(), "OPEN");
        snap.frontends[0].listening = false;
        assert_eq!(snap.frontends[0].status_text(), "STOP");
        let rows2 = rows(&csv(&snap));
        assert_eq!(cell(&rows2, "FRONTEND", "slim"), "");
    }

    #[test]
    fn slowstart_shows_as_throttle() {
        let mut s = server("s", Some(checked(&[true], "ok")));
        s.user_weight = 100;
        s.configured_weight = 100;
        s.weight = 25;
        s.session_limit = Some(50);
        assert_eq!(s.throttle(), Some(25));
        let rows = rows(&csv(&snapshot(vec![s.clone()])));
        assert_eq!(cell(&rows, "s", "throttle"), "25");
        assert_eq!(cell(&rows, "s", "weight"), "25");
        assert_eq!(cell(&rows, "s", "uweight"), "100");
        assert_eq!(cell(&rows, "s", "slim"), "50");
        s.weight = 100;
        assert_eq!(s.throttle(), None);
        s.session_limit = Some(0);
        assert_eq!(s.limit(), None);
    }

    #[test]
    fn html_escapes_everything_from_outside() {
        let evil = "<script>alert('x')</script>";
        let mut s = server("s<b>", Some(checked(&[false], evil)));
        s.check_type = CheckType::Http;
        let mut snap = snapshot(vec![s]);
        snap.backends[0].name = "b&\"q\"".into();
        snap.frontends[0].name = "<f>".into();
        let page = html(&snap, 5 * S);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>"));
        assert!(!page.contains("<f>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("b&amp;&quot;q&quot;"));
        assert!(page.contains("s&lt;b&gt;"));
    }

    #[test]
    fn html_has_refresh_links_and_colors() {
        let page = html(&zoo(), Duration::from_millis(7500));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"7\">"));
        assert!(page.contains("href=\";csv\""));
        assert!(page.contains("href=\";json\""));
        assert!(page.contains("<td class=\"up\">UP</td>"));
        assert!(page.contains("<td class=\"going\">UP 2/3</td>"));
        assert!(page.contains("<td class=\"going\">DOWN 1/2</td>"));
        assert!(page.contains("<td class=\"down\">DOWN</td>"));
        assert!(page.contains("<td class=\"admin\">MAINT</td>"));
        assert!(page.contains("<td class=\"admin\">DRAIN</td>"));
        assert!(page.contains("<td class=\"up\">no check</td>"));
        assert!(page.contains("1.0 GiB"));
        assert!(page.contains("L4CON connect: Connection refused in 3ms, 1s ago"));
        assert!(page.contains("Backend proxies (leastconn, 4 of 10 servers up)"));
        assert!(!page.contains("<script"));
        // A refresh of 0 would reload in a loop.
        assert!(html(&zoo(), Duration::ZERO).contains("content=\"1\""));
    }

    #[test]
    fn json_carries_the_numbers() {
        let snap = zoo();
        let v = json(&snap);
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["uptime_ms"], 3_700_000);
        let f = &v["frontends"][0];
        assert_eq!(f["binds"][1], "[::1]:3306");
        assert_eq!(f["bytes_out"], 1u64 << 30);
        assert_eq!(f["status"], "OPEN");
        let b = &v["backends"][0];
        assert_eq!(b["balance"], "leastconn");
        assert_eq!(b["servers_total"], 10);
        assert_eq!(b["servers_up"], 4);
        assert_eq!(b["queue_max"], 2);
        let servers = b["servers"].as_array().expect("servers");
        for (s, j) in snap.backends[0].servers.iter().zip(servers) {
            assert_eq!(j["name"], s.name.as_str());
            assert_eq!(j["status"], s.status_text());
            assert_eq!(j["total_sessions"], s.total_sessions);
            assert_eq!(j["bytes_out"], s.bytes_out);
            assert_eq!(j["connect_errors"], s.connect_errors);
            assert_eq!(j["redispatches"], s.redispatches);
            assert_eq!(j["downtime_ms"], millis(s.downtime));
            assert_eq!(j["admin"], s.admin.name());
            assert_eq!(j["check"].is_null(), s.check.is_none());
        }
        let down = &servers[2]["check"];
        assert_eq!(down["state"], "DOWN");
        assert_eq!(down["status"], "L4CON");
        assert_eq!(down["passed"], false);
        assert_eq!(down["duration_ms"], 3);
        assert_eq!(down["last_check_ago_ms"], 1000);
        assert_eq!(servers[4]["check"]["status"], "INI");
        assert_eq!(servers[4]["check"]["detail"], Value::Null);
        // Through text and back, as a client reads it.
        let text = serde_json::to_string(&v).expect("serialize");
        let back: Value = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, v);
        assert_eq!(
            back["backends"][0]["servers"][0]["bytes_in"].as_u64(),
            Some(1000)
        );
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(percent(1, 0), 100);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_duration(45 * S), "45s");
        assert_eq!(human_duration(185 * S), "3m05s");
        assert_eq!(human_duration(7620 * S), "2h07m");
        assert_eq!(human_duration((5 * 86400 + 3 * 3600) * S), "5d03h");
    }

    #[test]
    fn admin_state_names() {
        for a in [AdminState::Ready, AdminState::Drain, AdminState::Maint] {
            let text = serde_json::to_string(&a).expect("serialize");
            assert_eq!(text, format!("\"{}\"", a.name()));
            let back: AdminState = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, a);
        }
    }

    #[test]
    fn a_server_in_maintenance_is_not_up() {
        let mut s = server("m", None);
        assert!(s.is_up() && s.usable());
        s.admin = AdminState::Drain;
        assert!(s.is_up() && !s.usable());
        s.admin = AdminState::Maint;
        assert!(!s.is_up());
        let mut d = server("d", Some(checked(&[false, false, false], "x")));
        assert_eq!(d.check.as_ref().map(|c| c.state), Some(State::Down));
        assert!(!d.is_up());
        d.admin = AdminState::Drain;
        assert_eq!(d.status_text(), "DOWN");
    }
}
