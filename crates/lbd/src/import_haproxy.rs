//! `lbd import-haproxy FILE`: the TCP-mode part of an HAProxy 2.x config as
//! an lbd config on stdout, and one line on stderr for every directive that
//! could not be converted or was converted approximately.
//!
//! The conversion follows HAProxy's own rules: a proxy starts from the
//! `defaults` section before it (or the one its `from` names), a server's
//! settings are its `default-server` line's unless it sets its own, times
//! without a unit are milliseconds, and what HAProxy does when a directive
//! is absent (no `option redispatch`, servers UP at start) is written out
//! where lbd's own default differs, so the converted config behaves as the
//! old one did.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration as Dur;

use clap::{Arg, ArgMatches, Command};
use hastack_rt::emit::{comment, read_input, report, yaml_str};
pub use hastack_rt::emit::{ConvertError, Converted};
use hastack_rt::{ExitCode, Subcommand};

use crate::config::{Balance, CheckKind, CheckType, OnMarkedDown, SendProxy};
use crate::health::InitState;

pub fn subcommand() -> Subcommand {
    Subcommand {
        command: Command::new("import-haproxy")
            .about("Convert the TCP-mode part of an HAProxy config (haproxy.cfg) to an lbd config on stdout; what cannot be converted, or is converted approximately, is listed on stderr")
            .arg(Arg::new("file").value_name("FILE").required(true)),
        run,
    }
}

fn run(m: &ArgMatches) -> ExitCode {
    match read_input(m, "file") {
        Ok((path, text)) => report(convert(&path, &text)),
        Err(code) => code,
    }
}

// ---------------------------------------------------------------- parsing

/// One directive: its words after HAProxy's quoting rules.
#[derive(Debug, Clone)]
struct Line {
    n: usize,
    words: Vec<String>,
}

impl Line {
    /// The directive as a note shows it.
    fn shown(&self) -> String {
        self.words.join(" ")
    }
}

/// Splits a line into words as HAProxy's `parse_line` does: blanks separate
/// words, `#` outside quotes starts a comment, `"..."` and `'...'` quote
/// (only double quotes take escapes), and `\` escapes the next character
/// (`\r`, `\n`, `\t` and `\xHH` are control characters). Returns the words
/// and whether an environment variable (`$NAME`, `${NAME}`) appeared, which
/// HAProxy would expand and this conversion cannot.
fn split_words(line: &str) -> Result<(Vec<String>, bool), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word is open even when empty: `""` is an empty argument.
    let mut open = false;
    let mut quote: Option<char> = None;
    let mut env = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => word.push(c),
            (None, c) if c.is_whitespace() => {
                if open {
                    words.push(std::mem::take(&mut word));
                    open = false;
                }
            }
            (None, '#') => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                open = true;
            }
            (_, '\\') => {
                open = true;
                match chars.next() {
                    Some('r') => word.push('\r'),
                    Some('n') => word.push('\n'),
                    Some('t') => word.push('\t'),
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        let byte = u8::from_str_radix(&hex, 16)
                            .map_err(|_| format!("\\x{hex}: expected two hex digits"))?;
                        word.push(char::from(byte));
                    }
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            (_, '$')
                if chars
                    .peek()
                    .is_some_and(|n| *n == '{' || n.is_ascii_alphabetic()) =>
            {
                env = true;
                open = true;
                word.push('$');
            }
            (_, c) => {
                open = true;
                word.push(c);
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unmatched quote {q} (HAProxy refuses the line)"));
    }
    if open {
        words.push(word);
    }
    Ok((words, env))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Global => "global",
            Kind::Defaults => "defaults",
            Kind::Frontend => "frontend",
            Kind::Backend => "backend",
            Kind::Listen => "listen",
        }
    }

    fn frontend(self) -> bool {
        matches!(self, Kind::Frontend | Kind::Listen | Kind::Defaults)
    }

    fn backend(self) -> bool {
        matches!(self, Kind::Backend | Kind::Listen | Kind::Defaults)
    }
}

/// HAProxy's other sections, which have nothing lbd can use.
const OTHER_SECTIONS: &[&str] = &[
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "fcgi-app",
    "crt-store",
    "log-forward",
    "traces",
    "acme",
];

struct Section {
    kind: Kind,
    name: String,
    line: usize,
    /// `defaults` named by `from NAME`, or for `listen NAME ADDR:PORT` the
    /// old-style address.
    args: Vec<String>,
    lines: Vec<Line>,
}

impl Section {
    fn who(&self) -> String {
        match self.kind {
            Kind::Global => "global".into(),
            Kind::Defaults if self.name.is_empty() => "defaults".into(),
            k => format!("{} {}", k.word(), self.name),
        }
    }
}

struct Ctx<'a> {
    path: &'a str,
    notes: Vec<String>,
}

impl Ctx<'_> {
    fn note(&mut self, n: usize, who: &str, what: &str, why: &str) {
        self.notes.push(format!(
            "{}:{n}: {who}: {} ({why})",
            self.path,
            comment(what)
        ));
    }

    /// A note about a whole section, or its name.
    fn note_section(&mut self, n: usize, who: &str, why: &str) {
        self.notes
            .push(format!("{}:{n}: {} ({why})", self.path, comment(who)));
    }

    fn err(&self, n: usize, message: String) -> ConvertError {
        ConvertError {
            path: self.path.to_owned(),
            line: Some(n),
            message,
            not_converted: Vec::new(),
        }
    }
}

fn parse_sections(text: &str, ctx: &mut Ctx) -> Result<Vec<Section>, ConvertError> {
    let mut sections: Vec<Section> = Vec::new();
    // Inside a section lbd has no use for: its lines are skipped with it.
    let mut skipping = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (words, env) = split_words(raw).map_err(|e| ctx.err(n, e))?;
        let Some(first) = words.first() else {
            continue;
        };
        let kind = match first.as_str() {
            "global" => Some(Kind::Global),
            "defaults" => Some(Kind::Defaults),
            "frontend" => Some(Kind::Frontend),
            "backend" => Some(Kind::Backend),
            "listen" => Some(Kind::Listen),
            _ => None,
        };
        if let Some(kind) = kind {
            skipping = false;
            let name = words.get(1).cloned().unwrap_or_default();
            if name.is_empty() && !matches!(kind, Kind::Global | Kind::Defaults) {
                return Err(ctx.err(n, format!("{first} needs a name")));
            }
            let args = words.get(2..).map(<[String]>::to_vec).unwrap_or_default();
            if env {
                ctx.note(
                    n,
                    first,
                    raw.trim(),
                    "environment variables are not expanded",
                );
            }
            sections.push(Section {
                kind,
                name,
                line: n,
                args,
                lines: Vec::new(),
            });
            continue;
        }
        if OTHER_SECTIONS.contains(&first.as_str()) {
            skipping = true;
            ctx.note(
                n,
                first,
                &words.join(" "),
                "the whole section: lbd has no equivalent",
            );
            continue;
        }
        if skipping {
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(ctx.err(
                n,
                format!("{first:?} outside a section (HAProxy refuses it; expected global, defaults, frontend, backend or listen)"),
            ));
        };
        if env {
            let who = section.who();
            ctx.note(
                n,
                &who,
                raw.trim(),
                "environment variables are not expanded: set the value in the converted config",
            );
            continue;
        }
        section.lines.push(Line { n, words });
    }
    Ok(sections)
}

// ----------------------------------------------------------------- values

/// An HAProxy time: a number and `us`, `ms`, `s`, `m`, `h` or `d`;
/// milliseconds without a unit.
fn parse_time(v: &str) -> Result<Dur, String> {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = v.split_at(digits);
    let bad = || format!("expected a time like 2000, 2s or 500ms, got {v:?}");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms = |f: u64| n.checked_mul(f).map(Dur::from_millis).ok_or_else(bad);
    match unit {
        "us" => Ok(Dur::from_micros(n)),
        "" | "ms" => ms(1),
        "s" => ms(1000),
        "m" => ms(60_000),
        "h" => ms(3_600_000),
        "d" => ms(86_400_000),
        _ => Err(bad()),
    }
}

fn number<T: std::str::FromStr>(kw: &str, v: Option<&String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{kw} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{kw}: expected a number, got {v:?}"))
}

/// A number in the range both HAProxy and lbd take (lbd's is narrower
/// for `maxconn` and `retries`; a config beyond it is rare and must be
/// looked at).
fn in_range(kw: &str, v: Option<&String>, lo: u32, hi: u32) -> Result<u32, String> {
    let n: u32 = number(kw, v)?;
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{kw}: lbd takes {lo} to {hi}, got {n}"))
    }
}

/// Check intervals: HAProxy refuses 0, and so does lbd.
fn positive_time(kw: &str, v: Option<&String>) -> Result<Dur, String> {
    let d = time_arg(kw, v)?;
    if d.is_zero() {
        return Err(format!("{kw}: must be more than 0"));
    }
    Ok(d)
}

fn time_arg(kw: &str, v: Option<&String>) -> Result<Dur, String> {
    let v = v.ok_or_else(|| format!("{kw} needs a time"))?;
    parse_time(v).map_err(|e| format!("{kw}: {e}"))
}

/// An address as `bind` and `server` write it: `IP:PORT`, `:PORT` or
/// `*:PORT` (any address), `[v6]:PORT` or `v6:PORT`, optionally after
/// `ipv4@`/`ipv6@`/`tcp@`. The port may be absent (`None`).
fn parse_addr(v: &str) -> Result<(IpAddr, Option<String>), String> {
    let v = ["ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .unwrap_or(v);
    if v.contains('@') || v.starts_with('/') {
        return Err("not a TCP address (lbd listens and connects on TCP/IP only)".into());
    }
    if let Ok(ip @ IpAddr::V4(_)) = v.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (host, port) = match v.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err("an IPv6 address opened with [ is not closed".into()),
        },
        None => match v.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        },
    };
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        h => match h.parse() {
            Ok(ip) => ip,
            // A bare IPv6 address without a port (`fd00::1`).
            Err(_) => {
                if let Ok(ip) = v.parse::<IpAddr>() {
                    return Ok((ip, None));
                }
                return Err(format!(
                    "{h:?} is not an IP address (lbd takes addresses, not host names)"
                ));
            }
        },
    };
    Ok((ip, port.map(str::to_owned)))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("expected a port 1-65535, got {p:?}")),
        Ok(n) => Ok(n),
    }
}

// ---------------------------------------------------------------- proxies

/// A server's settings as one line (or `default-server`) gives them.
#[derive(Clone, Debug, Default, PartialEq)]
struct ServerOpts {
    check: Option<bool>,
    port: Option<u16>,
    addr: Option<IpAddr>,
    weight: Option<u32>,
    backup: Option<bool>,
    maxconn: Option<u32>,
    disabled: Option<bool>,
    inter: Option<Dur>,
    fastinter: Option<Dur>,
    downinter: Option<Dur>,
    rise: Option<u32>,
    fall: Option<u32>,
    init_state: Option<InitState>,
    slowstart: Option<Dur>,
    send_proxy: Option<SendProxy>,
    on_marked_down: Option<OnMarkedDown>,
}

impl ServerOpts {
    /// These settings, with `base`'s where these have none.
    fn over(&self, base: &ServerOpts) -> ServerOpts {
        ServerOpts {
            check: self.check.or(base.check),
            port: self.port.or(base.port),
            addr: self.addr.or(base.addr),
            weight: self.weight.or(base.weight),
            backup: self.backup.or(base.backup),
            maxconn: self.maxconn.or(base.maxconn),
            disabled: self.disabled.or(base.disabled),
            inter: self.inter.or(base.inter),
            fastinter: self.fastinter.or(base.fastinter),
            downinter: self.downinter.or(base.downinter),
            rise: self.rise.or(base.rise),
            fall: self.fall.or(base.fall),
            init_state: self.init_state.or(base.init_state),
            slowstart: self.slowstart.or(base.slowstart),
            send_proxy: self.send_proxy.or(base.send_proxy),
            on_marked_down: self.on_marked_down.or(base.on_marked_down),
        }
    }
}

/// Server keywords lbd has nothing for, with how many values they take
/// and why.
fn server_kw_unsupported(kw: &str) -> Option<(usize, &'static str)> {
    const TLS: &str = "lbd does not speak TLS to servers";
    const AGENT: &str = "lbd has no agent checks";
    const NAMES: &str = "lbd takes addresses, not names to resolve";
    Some(match kw {
        "ssl"
        | "check-ssl"
        | "no-ssl"
        | "no-check-ssl"
        | "no-verifyhost"
        | "ssl-reuse"
        | "no-ssl-reuse"
        | "tls-tickets"
        | "no-tls-tickets"
        | "force-sslv3"
        | "force-tlsv10"
        | "force-tlsv11"
        | "force-tlsv12"
        | "force-tlsv13"
        | "no-sslv3"
        | "no-tlsv10"
        | "no-tlsv11"
        | "no-tlsv12"
        | "no-tlsv13"
        | "send-proxy-v2-ssl"
        | "send-proxy-v2-ssl-cn"
        | "allow-0rtt" => (0, TLS),
        "verify" | "verifyhost" | "ca-file" | "crt" | "crl-file" | "ciphers" | "ciphersuites"
        | "sni" | "alpn" | "npn" | "check-alpn" | "check-sni" | "ssl-min-ver" | "ssl-max-ver"
        | "curves" | "sigalgs" | "client-sigalgs" => (1, TLS),
        "agent-check" | "no-agent-check" => (0, AGENT),
        "agent-port" | "agent-inter" | "agent-addr" | "agent-send" => (1, AGENT),
        "resolvers" | "resolve-prefer" | "resolve-net" | "resolve-opts" | "init-addr" => (1, NAMES),
        "check-send-proxy" => (0, "lbd's checks send no PROXY header"),
        "non-stick" | "stick" | "tfo" | "check-via-socks4" | "ws" => (0, "no lbd equivalent"),
        "id" | "cookie" | "minconn" | "maxqueue" | "max-reuse" | "on-marked-up" | "on-error"
        | "error-limit" | "observe" | "pool-max-conn" | "pool-low-conn" | "pool-purge-delay"
        | "pool-conn-name" | "namespace" | "redir" | "track" | "proxy-v2-options" | "socks4"
        | "tcp-ut" | "check-proto" | "proto" | "log-proto" | "shard" | "hash-key" | "guid"
        | "mss" => (1, "no lbd equivalent"),
        _ => return None,
    })
}

/// Applies `server`/`default-server` keywords (`words` after the address).
fn server_opts(
    words: &[String],
    line: &Line,
    who: &str,
    ctx: &mut Ctx,
) -> Result<ServerOpts, String> {
    let mut o = ServerOpts::default();
    let mut i = 0;
    while let Some(kw) = words.get(i) {
        let arg = words.get(i + 1);
        let mut took = 1;
        match kw.as_str() {
            "check" => o.check = Some(true),
            "no-check" => o.check = Some(false),
            "backup" => o.backup = Some(true),
            "no-backup" => o.backup = Some(false),
            "disabled" => o.disabled = Some(true),
            "enabled" => o.disabled = Some(false),
            "send-proxy" => o.send_proxy = Some(SendProxy::V1),
            "send-proxy-v2" => o.send_proxy = Some(SendProxy::V2),
            "no-send-proxy" | "no-send-proxy-v2" => o.send_proxy = Some(SendProxy::None),
            kw @ ("port" | "addr" | "weight" | "maxconn" | "rise" | "fall" | "inter"
            | "fastinter" | "downinter" | "slowstart" | "init-state" | "on-marked-down") => {
                took = 2;
                let Some(v) = arg else {
                    return Err(format!("{kw} needs a value"));
                };
                match kw {
                    "port" => o.port = Some(parse_port(v).map_err(|e| format!("port: {e}"))?),
                    "addr" => {
                        o.addr = Some(v.parse().map_err(|_| {
                            format!("addr: {v:?} is not an IP address (lbd checks addresses, not names)")
                        })?);
                    }
                    "weight" => o.weight = Some(in_range(kw, arg, 0, 256)?),
                    "maxconn" => o.maxconn = Some(number(kw, arg)?),
                    "rise" => o.rise = Some(in_range(kw, arg, 1, 1000)?),
                    "fall" => o.fall = Some(in_range(kw, arg, 1, 1000)?),
                    "inter" => o.inter = Some(positive_time(kw, arg)?),
                    "fastinter" => o.fastinter = Some(positive_time(kw, arg)?),
                    "downinter" => o.downinter = Some(positive_time(kw, arg)?),
                    "slowstart" => o.slowstart = Some(time_arg(kw, arg)?),
                    "init-state" => {
                        o.init_state = Some(match v.as_str() {
                            "fully-up" => InitState::FullyUp,
                            "up" => InitState::Up,
                            "down" => InitState::Down,
                            "fully-down" => InitState::FullyDown,
                            _ => {
                                return Err(format!(
                                "init-state: expected fully-up, up, down or fully-down, got {v:?}"
                            ))
                            }
                        });
                    }
                    _ => {
                        if v != "shutdown-sessions" {
                            return Err(format!(
                                "on-marked-down: expected shutdown-sessions, got {v:?}"
                            ));
                        }
                        o.on_marked_down = Some(OnMarkedDown::ShutdownSessions);
                    }
                }
            }
            "source" => {
                // `source ADDR [usesrc ...] [interface NAME]`: the rest.
                ctx.note(
                    line.n,
                    who,
                    &words[i..].join(" "),
                    "lbd connects from the address the kernel picks",
                );
                break;
            }
            kw => match server_kw_unsupported(kw) {
                Some((args, why)) => {
                    took = 1 + args;
                    let end = (i + took).min(words.len());
                    ctx.note(line.n, who, &words[i..end].join(" "), why);
                }
                None => {
                    ctx.note(
                        line.n,
                        who,
                        &words[i..].join(" "),
                        &format!("{kw} is unknown to this conversion; the rest of the line is not converted"),
                    );
                    break;
                }
            },
        }
        i += took;
    }
    Ok(o)
}

#[derive(Clone, Debug, Default)]
struct Times {
    connect: Option<Dur>,
    client: Option<Dur>,
    server: Option<Dur>,
    queue: Option<Dur>,
    tunnel: Option<Dur>,
    check: Option<Dur>,
}

#[derive(Clone, Debug)]
struct RawServer {
    name: String,
    ip: IpAddr,
    /// `None` when the address has no port: HAProxy connects to the port
    /// the client connected to.
    port: Option<u16>,
    opts: ServerOpts,
    line: usize,
}

#[derive(Clone, Debug, Default)]
struct StatsOpts {
    /// `stats enable` or `stats uri`: this proxy serves the stats page.
    on: bool,
    uri: Option<(String, usize)>,
    refresh: Option<Dur>,
    /// User, password, line.
    auth: Vec<(String, String, usize)>,
}

/// One section's settings after HAProxy's rules, starting from its
/// defaults section's.
#[derive(Clone, Debug, Default)]
struct Proxy {
    mode: Option<String>,
    maxconn: Option<u32>,
    timeout: Times,
    retries: Option<u32>,
    redispatch: Option<bool>,
    balance: Option<Balance>,
    all_backups: Option<bool>,
    check: Option<CheckKind>,
    /// `http-check` rules were given (they matter only for `httpchk`).
    http_check_line: Option<usize>,
    default_server: ServerOpts,
    binds: Vec<(SocketAddr, usize)>,
    default_backend: Option<(String, usize)>,
    use_backend: Option<(String, usize)>,
    servers: Vec<RawServer>,
    stats: StatsOpts,
    /// `disabled`: HAProxy does not start the proxy.
    disabled: bool,
}

fn log_kw(w: &str) -> bool {
    matches!(
        w,
        "log" | "log-format" | "log-format-sd" | "error-log-format" | "log-tag" | "log-steps"
    )
}

fn log_option(w: &str) -> bool {
    matches!(
        w,
        "tcplog"
            | "httplog"
            | "httpslog"
            | "dontlognull"
            | "dontlog-normal"
            | "log-health-checks"
            | "log-separate-errors"
            | "logasap"
    )
}

const LOG_WHY: &str = "lbd writes its own log, to stderr or the journal";

/// Applies one directive of a defaults, frontend, backend or listen
/// section. Problems HAProxy would refuse the file for are errors; what
/// lbd has no use for is a note.
fn apply(p: &mut Proxy, kind: Kind, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    let kw = w[0].as_str();
    let arg = w.get(1);
    let note = |ctx: &mut Ctx, why: &str| ctx.note(line.n, who, &line.shown(), why);
    let fe_only = |ctx: &mut Ctx| {
        if kind.frontend() {
            true
        } else {
            note(
                ctx,
                "HAProxy takes it in frontends and listen sections only",
            );
            false
        }
    };
    let be_only = |ctx: &mut Ctx| {
        if kind.backend() {
            true
        } else {
            note(ctx, "HAProxy takes it in backends and listen sections only");
            false
        }
    };
    match kw {
        "mode" => p.mode = Some(arg.ok_or("mode needs a value")?.clone()),
        "maxconn" if fe_only(ctx) => p.maxconn = Some(in_range(kw, arg, 1, 1_000_000)?),
        "timeout" => timeout(p, line, who, ctx)?,
        "contimeout" | "clitimeout" | "srvtimeout" => {
            let d = time_arg(kw, arg)?;
            let (t, slot) = match kw {
                "contimeout" => ("connect", &mut p.timeout.connect),
                "clitimeout" => ("client", &mut p.timeout.client),
                _ => ("server", &mut p.timeout.server),
            };
            *slot = Some(d);
            note(
                ctx,
                &format!("HAProxy 1.x; 2.x refuses it: converted as timeout {t}"),
            );
        }
        "retries" if be_only(ctx) => p.retries = Some(in_range(kw, arg, 0, 100)?),
        "redispatch" if be_only(ctx) => {
            p.redispatch = Some(true);
            note(
                ctx,
                "HAProxy 1.x; 2.x refuses it: converted as option redispatch",
            );
        }
        "option" => option(p, kind, line, &w[1..], false, who, ctx)?,
        "no" if w.get(1).is_some_and(|o| o == "option") => {
            option(p, kind, line, &w[2..], true, who, ctx)?;
        }
        "balance" if be_only(ctx) => balance(p, line, who, ctx)?,
        "default-server" if be_only(ctx) => {
            let o = server_opts(&w[1..], line, who, ctx)?;
            p.default_server = o.over(&p.default_server);
        }
        "server" if kind != Kind::Defaults && be_only(ctx) => server(p, line, who, ctx)?,
        "bind" if kind != Kind::Defaults && fe_only(ctx) => bind(p, line, who, ctx)?,
        "default_backend" if fe_only(ctx) => {
            p.default_backend = Some((arg.ok_or("default_backend needs a name")?.clone(), line.n));
        }
        "use_backend" if kind != Kind::Defaults && fe_only(ctx) => {
            let name = arg.ok_or("use_backend needs a name")?;
            if w.len() > 2 {
                note(
                    ctx,
                    "a condition: lbd sends a frontend's connections to one backend",
                );
            } else if p.use_backend.is_some() {
                note(
                    ctx,
                    "an earlier use_backend without condition already takes every connection",
                );
            } else {
                p.use_backend = Some((name.clone(), line.n));
            }
        }
        "http-check" if be_only(ctx) => http_check(p, line, who, ctx)?,
        "tcp-check" => note(ctx, "lbd's tcp check only connects"),
        "stats" => stats(p, kind, line, who, ctx)?,
        "disabled" if kind != Kind::Defaults => p.disabled = true,
        "enabled" => p.disabled = false,
        kw if log_kw(kw) => note(ctx, LOG_WHY),
        "acl"
        | "tcp-request"
        | "tcp-response"
        | "http-request"
        | "http-response"
        | "http-after-response" => note(ctx, "lbd has no rules or ACLs"),
        "description" | "id" => note(ctx, "no lbd equivalent"),
        // Keywords in a section that does not take them were noted above.
        "maxconn" | "retries" | "redispatch" | "balance" | "default-server" | "default_backend"
        | "http-check" => {}
        "server" | "bind" | "use_backend" if kind == Kind::Defaults => {
            note(ctx, "HAProxy refuses it in a defaults section");
        }
        "server" | "bind" | "use_backend" => {}
        _ => note(ctx, "no lbd equivalent"),
    }
    Ok(())
}

fn timeout(p: &mut Proxy, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    let name = w.get(1).ok_or("timeout needs a name and a time")?;
    let slot = match name.as_str() {
        "connect" => &mut p.timeout.connect,
        "client" => &mut p.timeout.client,
        "server" => &mut p.timeout.server,
        "queue" => &mut p.timeout.queue,
        "tunnel" => &mut p.timeout.tunnel,
        "check" => &mut p.timeout.check,
        _ => {
            ctx.note(line.n, who, &line.shown(), "no lbd equivalent in TCP mode");
            return Ok(());
        }
    };
    let d = time_arg(&format!("timeout {name}"), w.get(2))?;
    if d.is_zero() {
        // HAProxy: 0 means no timeout.
        ctx.note(
            line.n,
            who,
            &line.shown(),
            "0 is no timeout in HAProxy; lbd always has one: its default applies",
        );
        *slot = None;
    } else {
        *slot = Some(d);
    }
    Ok(())
}

fn balance(p: &mut Proxy, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let algo = line.words.get(1).ok_or("balance needs an algorithm")?;
    let b = match algo.as_str() {
        "roundrobin" => Balance::Roundrobin,
        "static-rr" => Balance::StaticRr,
        "leastconn" => Balance::Leastconn,
        "source" => Balance::Source,
        "first" => Balance::First,
        _ => {
            ctx.note(
                line.n,
                who,
                &line.shown(),
                "lbd balances roundrobin, static-rr, leastconn, source or first: written as roundrobin",
            );
            Balance::Roundrobin
        }
    };
    if line.words.len() > 2 && !matches!(b, Balance::Roundrobin) {
        ctx.note(
            line.n,
            who,
            &line.shown(),
            "the algorithm's arguments are not converted",
        );
    }
    p.balance = Some(b);
    Ok(())
}

fn option(
    p: &mut Proxy,
    kind: Kind,
    line: &Line,
    w: &[String],
    no: bool,
    who: &str,
    ctx: &mut Ctx,
) -> Result<(), String> {
    let name = w.first().ok_or("option needs a name")?.as_str();
    let args = &w[1..];
    let note = |ctx: &mut Ctx, why: &str| ctx.note(line.n, who, &line.shown(), why);
    let check_option = matches!(
        name,
        "httpchk"
            | "mysql-check"
            | "tcp-check"
            | "ldap-check"
            | "pgsql-check"
            | "redis-check"
            | "smtpchk"
            | "ssl-hello-chk"
            | "external-check"
            | "spop-check"
    );
    if (check_option || matches!(name, "redispatch" | "allbackups")) && !kind.backend() {
        note(ctx, "HAProxy takes it in backends and listen sections only");
        return Ok(());
    }
    if no && check_option {
        p.check = Some(CheckKind::default());
        return Ok(());
    }
    match name {
        "redispatch" => {
            p.redispatch = Some(!no);
            if args.first().is_some_and(|a| a != "1" && a != "-1") {
                note(
                    ctx,
                    "lbd redispatches the last retry: the interval is not converted",
                );
            }
        }
        "allbackups" => p.all_backups = Some(!no),
        "httpchk" => httpchk(p, line, args, who, ctx),
        "mysql-check" => {
            let user = match args {
                [u, name, ..] if u == "user" => Some(name.clone()),
                [] => None,
                _ => {
                    return Err(format!(
                        "option mysql-check: expected `user NAME`, got {:?}",
                        args.join(" ")
                    ))
                }
            };
            p.check = Some(match user {
                Some(user) => {
                    note(ctx, "HAProxy logs in without a password and reads only the reply; lbd's mysql check logs in for real as this user and can take a password and a query");
                    CheckKind {
                        kind: CheckType::Mysql,
                        user: Some(user),
                        ..CheckKind::default()
                    }
                }
                None => {
                    note(ctx, "without a user HAProxy only reads the server's greeting; lbd's mysql check needs a user to log in as: written as a tcp connect check");
                    CheckKind::default()
                }
            });
        }
        "tcp-check" => p.check = Some(CheckKind::default()),
        n if check_option => {
            note(
                ctx,
                &format!("lbd has no {n} check: written as a tcp connect check"),
            );
            p.check = Some(CheckKind::default());
        }
        n if log_option(n) => note(ctx, LOG_WHY),
        _ => note(ctx, "no lbd equivalent"),
    }
    Ok(())
}

/// `option httpchk [[METHOD] URI [VERSION]]`, with HAProxy's defaults
/// (`OPTIONS /`). The version may carry headers after `\r\n`, the old way
/// to send a Host header.
fn httpchk(p: &mut Proxy, line: &Line, args: &[String], who: &str, ctx: &mut Ctx) {
    let (method, uri, version) = match args {
        [] => ("OPTIONS", "/", None),
        [uri] => ("OPTIONS", uri.as_str(), None),
        [m, uri] => (m.as_str(), uri.as_str(), None),
        [m, uri, v, ..] => (m.as_str(), uri.as_str(), Some(v.as_str())),
    };
    // http-check rules given before it stay.
    let mut check = p
        .check
        .take()
        .filter(|c| c.kind != CheckType::Mysql)
        .unwrap_or_default();
    check.kind = CheckType::Http;
    check.method = Some(method.to_owned());
    check.uri = Some(uri.to_owned());
    if let Some(v) = version {
        for header in v.split("\r\n").skip(1).filter(|h| !h.is_empty()) {
            match header.split_once(':') {
                Some((h, value)) if h.eq_ignore_ascii_case("host") => {
                    check.host = Some(value.trim().to_owned());
                }
                _ => ctx.note(
                    line.n,
                    who,
                    header,
                    "lbd's http check sends no extra headers",
                ),
            }
        }
    }
    p.check = Some(check);
}

fn http_check(p: &mut Proxy, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    p.http_check_line = Some(line.n);
    // HAProxy uses http-check rules only with option httpchk, which may
    // come later in the section: kept on a tcp check until then.
    if p.check.as_ref().is_some_and(|c| c.kind == CheckType::Mysql) {
        ctx.note(
            line.n,
            who,
            &line.shown(),
            "http-check applies to option httpchk only",
        );
        return Ok(());
    }
    let check = p.check.get_or_insert_with(CheckKind::default);
    match w.get(1).map(String::as_str) {
        Some("send") => {
            let mut i = 2;
            while let Some(k) = w.get(i) {
                let v = w
                    .get(i + 1)
                    .ok_or_else(|| format!("http-check send: {k} needs a value"))?;
                match k.as_str() {
                    "meth" => check.method = Some(v.clone()),
                    "uri" => check.uri = Some(v.clone()),
                    "ver" => {}
                    "hdr" => {
                        let value = w
                            .get(i + 2)
                            .ok_or("http-check send: hdr needs a name and a value")?;
                        if v.eq_ignore_ascii_case("host") {
                            check.host = Some(value.clone());
                        } else {
                            ctx.note(
                                line.n,
                                who,
                                &format!("hdr {v} {value}"),
                                "lbd's http check sends no extra headers",
                            );
                        }
                        i += 1;
                    }
                    other => ctx.note(
                        line.n,
                        who,
                        &format!("{other} {v}"),
                        "not converted: lbd's http check sends a method, a path and a Host header",
                    ),
                }
                i += 2;
            }
        }
        Some("expect") => expect(check, line, who, ctx)?,
        _ => ctx.note(line.n, who, &line.shown(), "no lbd equivalent"),
    }
    Ok(())
}

/// `http-check expect [options] [!] status|rstatus PATTERN`.
fn expect(check: &mut CheckKind, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    let mut i = 2;
    while let Some(k) = w.get(i) {
        match k.as_str() {
            "min-recv" | "comment" | "ok-status" | "error-status" | "tout-status"
            | "on-success" | "on-error" | "status-code" => {
                ctx.note(
                    line.n,
                    who,
                    &w[i..(i + 2).min(w.len())].join(" "),
                    "no lbd equivalent",
                );
                i += 2;
            }
            _ => break,
        }
    }
    let rest = &w[i..];
    let note = |ctx: &mut Ctx, why: &str| ctx.note(line.n, who, &line.shown(), why);
    if !check.expect_status.is_empty() || check.expect_rstatus.is_some() {
        note(
            ctx,
            "lbd takes one http-check expect per backend: the first is kept",
        );
        return Ok(());
    }
    match rest {
        [m, pattern] if m == "status" => check.expect_status = status_list(pattern)?,
        [m, pattern] if m == "rstatus" => {
            regex::Regex::new(pattern).map_err(|e| {
                // The regex crate's message spans lines; its last says what.
                let e = e.to_string();
                let why = e.lines().last().unwrap_or_default();
                format!(
                    "http-check expect rstatus: not a valid regex: {}",
                    why.trim_start_matches("error: ")
                )
            })?;
            check.expect_rstatus = Some(pattern.clone());
        }
        [bang, ..] if bang == "!" => note(
            ctx,
            "a negated expect: lbd's check is UP on the statuses it lists (default 2xx and 3xx)",
        ),
        _ => note(
            ctx,
            "lbd's http check judges the status code only (status or rstatus)",
        ),
    }
    Ok(())
}

/// HAProxy 2.2+'s status list: `200`, `200,204`, `200-299`.
fn status_list(v: &str) -> Result<Vec<u16>, String> {
    let bad = || {
        format!("http-check expect status: expected codes like 200, 200,204 or 200-299, got {v:?}")
    };
    let mut out = Vec::new();
    for part in v.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo > hi || !(100..=599).contains(&lo) || !(100..=599).contains(&hi) {
            return Err(bad());
        }
        let new: Vec<u16> = (lo..=hi).filter(|s| !out.contains(s)).collect();
        out.extend(new);
    }
    Ok(out)
}

fn server(p: &mut Proxy, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    let (Some(name), Some(addr)) = (w.get(1), w.get(2)) else {
        return Err("server needs a name and an address".into());
    };
    if p.servers.iter().any(|s| &s.name == name) {
        return Err(format!(
            "a server named {name:?} is already in this section (HAProxy refuses it)"
        ));
    }
    let opts = server_opts(&w[3..], line, who, ctx)?;
    let (ip, port) = match parse_addr(addr) {
        Ok(a) => a,
        Err(e) => {
            ctx.note(
                line.n,
                who,
                &format!("server {name} {addr}"),
                &format!("{e}: the server is left out"),
            );
            return Ok(());
        }
    };
    let port = match port.as_deref() {
        None | Some("") => None,
        Some(p) => {
            match parse_port(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    ctx.note(line.n, who, &format!("server {name} {addr}"), &format!("{e} (port offsets and ranges are not converted): the server is left out"));
                    return Ok(());
                }
            }
        }
    };
    p.servers.push(RawServer {
        name: name.clone(),
        ip,
        port,
        opts,
        line: line.n,
    });
    Ok(())
}

/// `bind ADDR[,ADDR...] [options]`; a port range is every port in it.
fn bind(p: &mut Proxy, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    let list = w.get(1).ok_or("bind needs an address")?;
    for a in list.split(',') {
        let (ip, port) = match parse_addr(a) {
            Ok((ip, Some(port))) => (ip, port),
            Ok((_, None)) => return Err(format!("bind {a}: a port is needed")),
            Err(e) => {
                ctx.note(line.n, who, &format!("bind {a}"), &e);
                continue;
            }
        };
        let (lo, hi) = port.split_once('-').unwrap_or((&port, &port));
        let lo = parse_port(lo).map_err(|e| format!("bind {a}: {e}"))?;
        let hi = parse_port(hi).map_err(|e| format!("bind {a}: {e}"))?;
        for port in lo..=hi {
            p.binds.push((SocketAddr::new(ip, port), line.n));
        }
    }
    if w.len() > 2 {
        let why = if w[2..].iter().any(|o| o == "accept-proxy") {
            "bind options: lbd reads no PROXY header from clients and takes no TLS"
        } else {
            "bind options are not converted"
        };
        ctx.note(line.n, who, &w[2..].join(" "), why);
    }
    Ok(())
}

fn stats(p: &mut Proxy, kind: Kind, line: &Line, who: &str, ctx: &mut Ctx) -> Result<(), String> {
    let w = &line.words;
    let note = |ctx: &mut Ctx, why: &str| ctx.note(line.n, who, &line.shown(), why);
    if kind == Kind::Defaults {
        note(
            ctx,
            "a stats page in defaults would be one in every proxy: not converted",
        );
        return Ok(());
    }
    match w.get(1).map(String::as_str) {
        Some("enable") => p.stats.on = true,
        Some("uri") => {
            p.stats.on = true;
            p.stats.uri = Some((w.get(2).ok_or("stats uri needs a path")?.clone(), line.n));
        }
        Some("refresh") => p.stats.refresh = Some(time_arg("stats refresh", w.get(2))?),
        Some("auth") => {
            p.stats.on = true;
            let v = w.get(2).ok_or("stats auth needs user:password")?;
            let (user, pass) = v
                .split_once(':')
                .ok_or_else(|| "stats auth: expected user:password".to_owned())?;
            p.stats
                .auth
                .push((user.to_owned(), pass.to_owned(), line.n));
        }
        Some("admin") => note(
            ctx,
            "lbd's admin actions are POST /actions/<command> on its admin endpoint, for the stats auth users (admin_http.auth.users)",
        ),
        _ => note(ctx, "no lbd equivalent"),
    }
    Ok(())
}

// ----------------------------------------------------------------- global

#[derive(Debug, Default)]
struct Global {
    socket: Option<(String, String)>,
}

fn global(s: &Section, ctx: &mut Ctx) -> Result<Global, ConvertError> {
    let mut g = Global::default();
    for line in &s.lines {
        let w = &line.words;
        let note = |ctx: &mut Ctx, why: &str| ctx.note(line.n, "global", &line.shown(), why);
        match w[0].as_str() {
            "stats" if w.get(1).is_some_and(|a| a == "socket") => {
                if g.socket.is_some() {
                    note(ctx, "lbd has one runtime socket: the first is converted");
                    continue;
                }
                g.socket = stats_socket(line, ctx).map_err(|e| ctx.err(line.n, e))?;
            }
            "maxconn" => note(ctx, "a process-wide limit; lbd limits each frontend: defaults.maxconn, frontends' maxconn"),
            kw if log_kw(kw) => note(ctx, LOG_WHY),
            "daemon" | "master-worker" | "pidfile" | "user" | "group" | "uid" | "gid"
            | "chroot" | "nbproc" | "nbthread" | "cpu-map" | "ulimit-n" => {
                note(ctx, "lbd runs as a systemd service: set this in its unit");
            }
            _ => note(ctx, "no lbd equivalent"),
        }
    }
    Ok(g)
}

/// `stats socket PATH [mode OCTAL] [level admin] ...` as lbd's runtime
/// socket path and mode.
fn stats_socket(line: &Line, ctx: &mut Ctx) -> Result<Option<(String, String)>, String> {
    let w = &line.words;
    let path = w.get(2).ok_or("stats socket needs a path")?;
    let path = path.strip_prefix("unix@").unwrap_or(path);
    if !path.starts_with('/') {
        ctx.note(
            line.n,
            "global",
            &line.shown(),
            "lbd's runtime socket is a unix socket path",
        );
        return Ok(None);
    }
    let mut mode = None;
    let mut level = false;
    let mut i = 3;
    while let Some(k) = w.get(i) {
        let v = w.get(i + 1);
        match (k.as_str(), v) {
            ("mode", Some(v)) => {
                let bits = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        format!("stats socket: mode must be octal permission bits, got {v:?}")
                    })?;
                // Whoever can open the socket runs every command: never others.
                let kept = bits & !0o007;
                if kept != bits {
                    ctx.note(
                        line.n,
                        "global",
                        &format!("stats socket mode {v}"),
                        &format!("lbd's runtime socket has no credential but its mode, so it takes no permission for others: mode {kept:04o}"),
                    );
                }
                mode = Some(format!("{kept:04o}"));
                i += 2;
            }
            ("level", Some(v)) => {
                level = true;
                if v != "admin" {
                    ctx.note(line.n, "global", &format!("stats socket level {v}"), "lbd's runtime socket runs every command for whoever can open it: keep its mode tight");
                }
                i += 2;
            }
            ("expose-fd", Some(v)) => {
                ctx.note(
                    line.n,
                    "global",
                    &format!("expose-fd {v}"),
                    "lbd reloads in place (SIGHUP) and hands no sockets over",
                );
                i += 2;
            }
            (
                k @ ("user" | "group" | "uid" | "gid" | "process" | "thread" | "maxconn" | "name"
                | "backlog"),
                Some(v),
            ) => {
                ctx.note(
                    line.n,
                    "global",
                    &format!("stats socket {k} {v}"),
                    "lbd creates the socket as its own user",
                );
                i += 2;
            }
            (k, _) => {
                ctx.note(
                    line.n,
                    "global",
                    &w[i..].join(" "),
                    &format!("stats socket option {k} is not converted"),
                );
                break;
            }
        }
    }
    if !level {
        ctx.note(line.n, "global", &line.shown(), "no level: HAProxy's default is user, read-only; lbd's runtime socket runs every command for whoever can open it");
    }
    let mode = mode.unwrap_or_else(|| {
        ctx.note(
            line.n,
            "global",
            &line.shown(),
            "no mode: HAProxy follows its umask; written as lbd's 0600",
        );
        "0600".to_owned()
    });
    Ok(Some((path.to_owned(), mode)))
}

// ------------------------------------------------------------- conversion

/// `name` with every character lbd does not take in names (letters,
/// digits, `-`, `_`, `.`) as `_`, made unique
/// against `taken`.
fn lbd_name(name: &str, taken: &[String]) -> String {
    let base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() {
        "_".to_owned()
    } else {
        base
    };
    let mut out = base.clone();
    let mut k = 2;
    while taken.contains(&out) {
        out = format!("{base}_{k}");
        k += 1;
    }
    out
}

/// A backend's values as HAProxy runs them, every default filled in
/// where HAProxy has one.
#[derive(Clone, Debug, PartialEq)]
struct Eff {
    retries: u32,
    redispatch: bool,
    on_marked_down: OnMarkedDown,
    check: CheckKind,
    inter: Dur,
    fastinter: Option<Dur>,
    downinter: Option<Dur>,
    rise: u32,
    fall: u32,
    init_state: InitState,
    slowstart: Option<Dur>,
    send_proxy: SendProxy,
    balance: Balance,
    all_backups: bool,
}

fn eff(p: &Proxy) -> Eff {
    let ds = &p.default_server;
    Eff {
        retries: p.retries.unwrap_or(3),
        redispatch: p.redispatch.unwrap_or(false),
        on_marked_down: ds.on_marked_down.unwrap_or(OnMarkedDown::None),
        check: lbd_check(p.check.as_ref()),
        inter: ds.inter.unwrap_or(Dur::from_secs(2)),
        fastinter: ds.fastinter,
        downinter: ds.downinter,
        rise: ds.rise.unwrap_or(2),
        fall: ds.fall.unwrap_or(3),
        init_state: ds.init_state.unwrap_or(InitState::HAPROXY),
        slowstart: ds.slowstart,
        send_proxy: ds.send_proxy.unwrap_or(SendProxy::None),
        balance: p.balance.unwrap_or_default(),
        all_backups: p.all_backups.unwrap_or(false),
    }
}

/// A check as lbd takes it: http-check rules without `option httpchk`
/// (which HAProxy ignores) left out.
fn lbd_check(c: Option<&CheckKind>) -> CheckKind {
    match c {
        Some(c) if c.kind == CheckType::Http => c.clone(),
        Some(c) => CheckKind {
            kind: c.kind,
            user: c.user.clone(),
            ..CheckKind::default()
        },
        None => CheckKind::default(),
    }
}

/// Timeouts as HAProxy applies them: the queue waits `timeout connect`
/// when unset. (A check without `timeout check` times out after its
/// server's `inter`: see [`finish_backends`].)
fn eff_times(p: &Proxy) -> Times {
    let t = &p.timeout;
    Times {
        queue: t.queue.or(t.connect),
        ..t.clone()
    }
}

/// A converted frontend.
struct FeOut {
    name: String,
    binds: Vec<SocketAddr>,
    backend: String,
    maxconn: Option<u32>,
    /// HAProxy's client timeout is the frontend's; lbd's the backend's.
    client: Option<Dur>,
}

/// A converted server.
struct SrvOut {
    name: String,
    address: SocketAddr,
    opts: ServerOpts,
}

/// A converted backend: the values to write where they differ from the
/// written defaults.
struct BeOut {
    name: String,
    eff: Eff,
    times: Times,
    servers: Vec<SrvOut>,
}

struct StatsOut {
    listen: SocketAddr,
    refresh: Option<Dur>,
    /// The stats page's user (lbd's `stats.auth` takes one).
    auth: Option<(String, String)>,
    /// Every `stats auth` user: `admin_http.auth.users`, the credential
    /// lbd's admin actions need.
    users: Vec<(String, String)>,
}

/// A proxy section after its defaults and directives.
struct Built<'s> {
    section: &'s Section,
    proxy: Proxy,
    /// Index of its defaults section in `defaults`, when there is one.
    defaults: Option<usize>,
}

/// Every section after HAProxy's inheritance.
struct Sections<'s> {
    global: Option<Global>,
    defaults: Vec<Proxy>,
    proxies: Vec<Built<'s>>,
}

/// Runs every section through HAProxy's inheritance.
fn build<'s>(sections: &'s [Section], ctx: &mut Ctx) -> Result<Sections<'s>, ConvertError> {
    let mut g = None;
    let mut defaults: Vec<(&Section, Proxy)> = Vec::new();
    let mut built = Vec::new();
    for s in sections {
        let who = s.who();
        let from = match s.args.as_slice() {
            [f, name] if f == "from" => match defaults.iter().rposition(|(d, _)| d.name == *name) {
                Some(i) => Some(i),
                None => {
                    return Err(ctx.err(
                        s.line,
                        format!("no defaults section named {name:?} before it"),
                    ))
                }
            },
            _ => defaults.len().checked_sub(1),
        };
        let base = match (s.kind, from) {
            (Kind::Defaults, _) if !s.args.iter().any(|a| a == "from") => Proxy::default(),
            (_, Some(i)) => defaults[i].1.clone(),
            (_, None) => Proxy::default(),
        };
        match s.kind {
            Kind::Global => {
                let this = global(s, ctx)?;
                match &mut g {
                    None => g = Some(this),
                    Some(prev) => {
                        prev.socket = prev.socket.take().or(this.socket);
                    }
                }
            }
            Kind::Defaults => {
                let mut p = base;
                for line in &s.lines {
                    apply(&mut p, s.kind, line, &who, ctx).map_err(|e| ctx.err(line.n, e))?;
                }
                defaults.push((s, p));
            }
            _ => {
                if let [addr, ..] = s.args.as_slice() {
                    if s.kind == Kind::Listen && addr != "from" {
                        ctx.note(
                            s.line,
                            &who,
                            addr,
                            "the old `listen NAME ADDR` form: converted as a bind",
                        );
                    }
                }
                let mut p = base;
                if s.kind == Kind::Listen {
                    if let Some(addr) = s.args.first().filter(|a| *a != "from") {
                        let l = Line {
                            n: s.line,
                            words: vec!["bind".into(), addr.clone()],
                        };
                        bind(&mut p, &l, &who, ctx).map_err(|e| ctx.err(s.line, e))?;
                    }
                }
                for line in &s.lines {
                    apply(&mut p, s.kind, line, &who, ctx).map_err(|e| ctx.err(line.n, e))?;
                }
                built.push(Built {
                    section: s,
                    proxy: p,
                    defaults: from,
                });
            }
        }
    }
    Ok(Sections {
        global: g,
        defaults: defaults.into_iter().map(|(_, p)| p).collect(),
        proxies: built,
    })
}

/// Converts an HAProxy config's text; `path` names it in messages.
pub fn convert(path: &str, text: &str) -> Result<Converted, ConvertError> {
    let mut ctx = Ctx {
        path,
        notes: Vec::new(),
    };
    let sections = parse_sections(text, &mut ctx)?;
    let Sections {
        global: g,
        defaults,
        proxies: built,
    } = build(&sections, &mut ctx)?;

    let mut stats: Option<StatsOut> = None;
    // HAProxy name → lbd name, for use_backend/default_backend.
    let mut be_names: HashMap<&str, String> = HashMap::new();
    let mut backends: Vec<(BeOut, &Built)> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    let mut used_defaults: Option<Option<usize>> = None;

    // Backends first: frontends refer to them.
    for b in &built {
        let s = b.section;
        let who = s.who();
        if !matches!(s.kind, Kind::Backend | Kind::Listen) {
            continue;
        }
        if b.proxy.stats.on && b.proxy.servers.is_empty() {
            continue;
        }
        if let Some(why) = skip_reason(&b.proxy) {
            ctx.note_section(s.line, &who, &format!("the whole section: {why}"));
            continue;
        }
        if be_names.contains_key(s.name.as_str()) {
            return Err(ctx.err(
                s.line,
                format!("a second backend named {:?} (HAProxy refuses it)", s.name),
            ));
        }
        let name = lbd_name(&s.name, &taken);
        if name != s.name {
            ctx.note_section(
                s.line,
                &who,
                &format!("lbd names are letters, digits, '-', '_' and '.': written as {name}"),
            );
        }
        let Some(out) = backend(b, name.clone(), &built, &mut ctx) else {
            continue;
        };
        taken.push(name.clone());
        be_names.insert(&s.name, name);
        used_defaults.get_or_insert(b.defaults);
        backends.push((out, b));
    }

    let mut frontends: Vec<FeOut> = Vec::new();
    let mut fe_taken: Vec<String> = Vec::new();
    for b in &built {
        let s = b.section;
        let who = s.who();
        if !matches!(s.kind, Kind::Frontend | Kind::Listen) {
            continue;
        }
        if b.proxy.stats.on
            && b.proxy.servers.is_empty()
            && b.proxy.use_backend.is_none()
            && b.proxy.default_backend.is_none()
        {
            stats_proxy(b, &mut stats, &mut ctx);
            continue;
        }
        if let Some(why) = skip_reason(&b.proxy) {
            if s.kind == Kind::Frontend {
                ctx.note_section(s.line, &who, &format!("the whole section: {why}"));
            }
            continue;
        }
        if b.proxy.stats.on {
            ctx.note(s.line, &who, "stats", "a stats page inside a proxy with servers: not converted (give it its own listen section)");
        }
        let target = if s.kind == Kind::Listen {
            Some(s.name.clone())
        } else {
            b.proxy
                .use_backend
                .as_ref()
                .or(b.proxy.default_backend.as_ref())
                .map(|(n, _)| n.clone())
        };
        let Some(target) = target else {
            ctx.note_section(
                s.line,
                &who,
                "the whole section: no default_backend or use_backend without condition",
            );
            continue;
        };
        let Some(backend) = be_names.get(target.as_str()).cloned() else {
            if s.kind == Kind::Frontend {
                let why = if built
                    .iter()
                    .any(|o| o.section.name == target && o.section.kind.backend())
                {
                    format!("the whole section: its backend {target} is not converted")
                } else {
                    return Err(ctx.err(
                        s.line,
                        format!("no backend named {target:?} (HAProxy refuses it)"),
                    ));
                };
                ctx.note_section(s.line, &who, &why);
            }
            continue;
        };
        let mut binds = Vec::new();
        for (addr, n) in &b.proxy.binds {
            if let Some(other) = frontends.iter().find(|f| f.binds.contains(addr)) {
                ctx.note(
                    *n,
                    &who,
                    &format!("bind {addr}"),
                    &format!("already bound by frontend {}: left out", other.name),
                );
            } else if !binds.contains(addr) {
                binds.push(*addr);
            }
        }
        if binds.is_empty() {
            ctx.note_section(s.line, &who, "the whole section: no address to bind");
            continue;
        }
        let name = lbd_name(&s.name, &fe_taken);
        if name != s.name && s.kind == Kind::Frontend {
            ctx.note_section(
                s.line,
                &who,
                &format!("lbd names are letters, digits, '-', '_' and '.': written as {name}"),
            );
        }
        fe_taken.push(name.clone());
        used_defaults.get_or_insert(b.defaults);
        frontends.push(FeOut {
            name,
            binds,
            backend,
            maxconn: b.proxy.maxconn,
            client: b.proxy.timeout.client,
        });
    }

    if frontends.is_empty() {
        return Err(ConvertError {
            path: path.to_owned(),
            line: None,
            message: if built.iter().any(|b| b.section.kind != Kind::Backend) {
                "no TCP frontend or listen section lbd can run (the not-converted lines say why)"
            } else {
                "no frontend or listen section to convert"
            }
            .into(),
            not_converted: ctx.notes,
        });
    }

    finish_backends(&mut backends, &frontends, &mut ctx);
    let top = used_defaults
        .flatten()
        .map(|i| &defaults[i])
        .cloned()
        .unwrap_or_default();
    let mut y = format!(
        "# Converted from HAProxy's {} by `lbd import-haproxy`;\n# what it could not carry over was listed on stderr (`not converted:` lines).\n",
        comment(path)
    );
    emit_top(&mut y, g.as_ref(), stats.as_ref(), &top);
    emit_frontends(&mut y, &frontends, &top);
    emit_backends(&mut y, &backends, &top);
    Ok(Converted {
        yaml: y,
        not_converted: ctx.notes,
    })
}

/// Why a proxy is not converted at all, if it is not.
fn skip_reason(p: &Proxy) -> Option<String> {
    if p.disabled {
        return Some("disabled (HAProxy does not start it)".into());
    }
    match p.mode.as_deref() {
        None | Some("tcp") => None,
        Some(m) => Some(format!("mode {m} (lbd balances TCP only)")),
    }
}

/// Converts a proxy that only serves the stats page.
fn stats_proxy(b: &Built, stats: &mut Option<StatsOut>, ctx: &mut Ctx) {
    let s = b.section;
    let who = s.who();
    let p = &b.proxy;
    if stats.is_some() {
        ctx.note_section(
            s.line,
            &who,
            "the whole section: lbd has one stats endpoint, converted from an earlier section",
        );
        return;
    }
    let Some((bound, bind_line)) = p.binds.first() else {
        ctx.note_section(s.line, &who, "the whole section: a stats page without bind");
        return;
    };
    // lbd's admin endpoint runs actions: off loopback it needs a credential,
    // and without `stats auth` there is none to carry over.
    let mut listen = *bound;
    if !hastack_rt::admin_auth::is_loopback(bound) && p.stats.auth.is_empty() {
        listen = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, bound.port()));
        ctx.note(
            *bind_line,
            &who,
            &format!("bind {bound}"),
            &format!("lbd's admin endpoint, which also runs actions, listens on {listen} instead: this stats page has no stats auth; to serve it on {bound}, set admin_http.auth (token_file or users) and admin_http.listen"),
        );
    }
    for (addr, n) in p.binds.iter().skip(1) {
        ctx.note(
            *n,
            &who,
            &format!("bind {addr}"),
            "lbd's admin endpoint listens on one address",
        );
    }
    if let Some((uri, n)) = &p.stats.uri {
        if uri != "/stats" {
            ctx.note(
                *n,
                &who,
                &format!("stats uri {uri}"),
                "lbd serves its stats page at /stats, /stats;csv and /stats;json",
            );
        }
    }
    if !s
        .lines
        .iter()
        .any(|l| l.words.get(1).is_some_and(|w| w == "admin") && l.words[0] == "stats")
    {
        ctx.note_section(s.line, &who, &format!("HAProxy's stats page here is read-only; lbd's admin endpoint at {listen} also takes POST /actions/<command>, with admin_http.auth's credential: keep it reachable by operators only"));
    }
    for (user, _, n) in p.stats.auth.iter().skip(1) {
        ctx.note(
            *n,
            &who,
            &format!("stats auth {user}:***"),
            "lbd's stats page takes one user: the first is converted",
        );
    }
    *stats = Some(StatsOut {
        listen,
        refresh: p.stats.refresh,
        users: p
            .stats
            .auth
            .iter()
            .map(|(u, pw, _)| (u.clone(), pw.clone()))
            .collect(),
        auth: p
            .stats
            .auth
            .first()
            .map(|(u, pw, _)| (u.clone(), pw.clone())),
    });
}

/// A backend's servers and settings, or `None` (noted) when no server can
/// be converted.
fn backend(b: &Built, name: String, built: &[Built], ctx: &mut Ctx) -> Option<BeOut> {
    let s = b.section;
    let who = s.who();
    let p = &b.proxy;
    if let (Some(n), Some(c)) = (p.http_check_line, &p.check) {
        if c.kind != CheckType::Http {
            ctx.note(
                n,
                &who,
                "http-check",
                "HAProxy ignores http-check rules without option httpchk",
            );
        }
    }
    let mut servers = Vec::new();
    let mut taken = Vec::new();
    // A server without a port gets the client's port: known when every
    // frontend that sends here binds one port.
    let ports: Vec<u16> = client_ports(s, built);
    for r in &p.servers {
        let port = match (r.port, ports.as_slice()) {
            (Some(port), _) => port,
            (None, [one]) => {
                ctx.note(r.line, &who, &format!("server {}", r.name), &format!("no port: HAProxy connects to the port the client connected to: written as {one}"));
                *one
            }
            (None, _) => {
                ctx.note(r.line, &who, &format!("server {}", r.name), "no port, and the frontends sending here do not listen on one port: the server is left out");
                continue;
            }
        };
        let sname = lbd_name(&r.name, &taken);
        if sname != r.name {
            ctx.note(
                r.line,
                &who,
                &format!("server {}", r.name),
                &format!("lbd names are letters, digits, '-', '_' and '.': written as {sname}"),
            );
        }
        taken.push(sname.clone());
        servers.push(SrvOut {
            name: sname,
            address: SocketAddr::new(r.ip, port),
            opts: r.opts.over(&p.default_server),
        });
    }
    if servers.is_empty() {
        ctx.note_section(
            s.line,
            &who,
            "the whole section: no server lbd can connect to",
        );
        return None;
    }
    Some(BeOut {
        name,
        eff: eff(p),
        times: eff_times(p),
        servers,
    })
}

/// The ports clients connect to on the way to backend section `s`.
fn client_ports(s: &Section, built: &[Built]) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for f in built.iter().filter(|f| sends_to(f, s)) {
        for (a, _) in &f.proxy.binds {
            if !ports.contains(&a.port()) {
                ports.push(a.port());
            }
        }
    }
    ports
}

fn sends_to(f: &Built, s: &Section) -> bool {
    match f.section.kind {
        Kind::Listen => std::ptr::eq(f.section, s),
        Kind::Frontend => f
            .proxy
            .use_backend
            .as_ref()
            .or(f.proxy.default_backend.as_ref())
            .is_some_and(|(n, _)| *n == s.name && s.kind != Kind::Frontend),
        _ => false,
    }
}

/// What HAProxy decides per server or per frontend and lbd per backend:
/// on-marked-down, the check timeout when it is `inter`, and the client
/// timeout (a frontend's in HAProxy).
fn finish_backends(backends: &mut [(BeOut, &Built)], frontends: &[FeOut], ctx: &mut Ctx) {
    for (be, b) in backends.iter_mut() {
        let who = b.section.who();
        let checked: Vec<&SrvOut> = be
            .servers
            .iter()
            .filter(|s| s.opts.check == Some(true))
            .collect();
        let omd: Vec<OnMarkedDown> = be
            .servers
            .iter()
            .map(|s| s.opts.on_marked_down.unwrap_or(OnMarkedDown::None))
            .collect();
        if let Some(first) = omd.first() {
            if omd.iter().any(|o| o != first) {
                ctx.note(
                    b.section.line,
                    &who,
                    "on-marked-down",
                    &format!(
                        "set on some servers only; lbd sets it per backend: written as {}",
                        omd_name(*first)
                    ),
                );
            }
            be.eff.on_marked_down = *first;
        }
        if b.proxy.timeout.check.is_none() {
            let inters: Vec<Dur> = checked
                .iter()
                .map(|s| s.opts.inter.unwrap_or(Dur::from_secs(2)))
                .collect();
            if let Some(first) = inters.first() {
                be.times.check = Some(*first);
                if inters.iter().any(|i| i != first) {
                    ctx.note(b.section.line, &who, "timeout check", &format!("unset, so HAProxy times each server's check out after its inter; lbd has one check timeout per backend: written as {}", dur(*first)));
                }
            }
        }
        // The client timeout: that of the frontends sending here.
        let mut client = None;
        for f in frontends.iter().filter(|f| f.backend == be.name) {
            match client {
                None => client = Some(f.client),
                Some(prev) if prev != f.client => ctx.note(
                    b.section.line,
                    &who,
                    &format!("timeout client of frontend {}", f.name),
                    &format!(
                        "lbd sets the client timeout per backend: {} keeps its first frontend's",
                        be.name
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(c) = client {
            be.times.client = c;
        }
        for (name, v, lbd) in [
            ("connect", be.times.connect, "5s"),
            ("client", be.times.client, "1h"),
            ("server", be.times.server, "1h"),
        ] {
            if v.is_none() {
                ctx.note(
                    b.section.line,
                    &who,
                    &format!("no timeout {name}"),
                    &format!("HAProxy waits without limit, and warns; lbd's default {lbd} applies"),
                );
            }
        }
    }
}

// ------------------------------------------------------------------- YAML

/// A duration in the form lbd reads (`2s`, `500ms`, `1h`), exactly.
fn dur(d: Dur) -> String {
    let us = d.as_micros();
    if !us.is_multiple_of(1000) {
        return format!("{us}us");
    }
    let ms = us / 1000;
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

fn omd_name(o: OnMarkedDown) -> &'static str {
    match o {
        OnMarkedDown::None => "none",
        OnMarkedDown::ShutdownSessions => "shutdown_sessions",
    }
}

fn send_proxy_name(s: SendProxy) -> &'static str {
    match s {
        SendProxy::None => "none",
        SendProxy::V1 => "v1",
        SendProxy::V2 => "v2",
    }
}

fn balance_name(b: Balance) -> &'static str {
    match b {
        Balance::Roundrobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::Leastconn => "leastconn",
        Balance::Source => "source",
        Balance::First => "first",
    }
}

fn check_yaml(c: &CheckKind) -> String {
    let mut parts = vec![format!(
        "type: {}",
        match c.kind {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Mysql => "mysql",
        }
    )];
    for (k, v) in [
        ("method", &c.method),
        ("uri", &c.uri),
        ("host", &c.host),
        ("expect_rstatus", &c.expect_rstatus),
        ("user", &c.user),
        ("query", &c.query),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}: {}", yaml_str(v)));
        }
    }
    if !c.expect_status.is_empty() {
        let list: Vec<String> = c.expect_status.iter().map(u16::to_string).collect();
        parts.push(format!("expect_status: [{}]", list.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

/// The `key: value` lines for the settings of `e` that differ from
/// `base`'s, at `indent`. `base` is `None` at the top, where every value is
/// compared with lbd's own defaults and a difference gets a comment.
fn emit_settings(y: &mut String, indent: &str, e: &Eff, base: Option<&Eff>) {
    let lbd = crate::config::Defaults::default();
    let lbd_eff = Eff {
        retries: lbd.retries,
        redispatch: lbd.redispatch,
        on_marked_down: lbd.on_marked_down,
        check: lbd.check.clone(),
        inter: lbd.inter.get(),
        fastinter: None,
        downinter: None,
        rise: lbd.rise,
        fall: lbd.fall,
        init_state: lbd.init_state,
        slowstart: None,
        send_proxy: lbd.send_proxy,
        balance: Balance::default(),
        all_backups: false,
    };
    let top = base.is_none();
    let b = base.unwrap_or(&lbd_eff);
    let mut line = |key: &str, value: String, why: &str| {
        let _ = write!(y, "{indent}{key}: {value}");
        if top && !why.is_empty() {
            let _ = write!(y, "  # {why}");
        }
        y.push('\n');
    };
    if e.retries != b.retries {
        line("retries", e.retries.to_string(), "");
    }
    if e.redispatch != b.redispatch {
        line(
            "redispatch",
            e.redispatch.to_string(),
            if e.redispatch {
                ""
            } else {
                "HAProxy's default without option redispatch; lbd's own is true"
            },
        );
    }
    if e.on_marked_down != b.on_marked_down {
        line(
            "on_marked_down",
            omd_name(e.on_marked_down).into(),
            if e.on_marked_down == OnMarkedDown::None {
                "HAProxy's default; lbd's own closes a DOWN server's sessions (shutdown_sessions)"
            } else {
                ""
            },
        );
    }
    if e.check != b.check {
        line("check", check_yaml(&e.check), "");
    }
    if e.inter != b.inter {
        line("inter", dur(e.inter), "");
    }
    for (key, v, bv) in [
        ("fastinter", e.fastinter, b.fastinter),
        ("downinter", e.downinter, b.downinter),
        ("slowstart", e.slowstart, b.slowstart),
    ] {
        if v != bv {
            match (v, key) {
                (Some(v), _) => line(key, dur(v), ""),
                // Below the top, where the written defaults set one and
                // this backend's defaults section does not: unset is inter.
                (None, "fastinter" | "downinter") => line(key, dur(e.inter), ""),
                (None, _) => {}
            }
        }
    }
    if e.rise != b.rise {
        line("rise", e.rise.to_string(), "");
    }
    if e.fall != b.fall {
        line("fall", e.fall.to_string(), "");
    }
    if e.init_state != b.init_state {
        line(
            "init_state",
            e.init_state.name().into(),
            if e.init_state == InitState::HAPROXY {
                "HAProxy 2.6's behaviour; lbd's own is down (no client before a check passes)"
            } else {
                ""
            },
        );
    }
    if e.send_proxy != b.send_proxy {
        line("send_proxy", send_proxy_name(e.send_proxy).into(), "");
    }
}

fn emit_times(y: &mut String, indent: &str, t: &Times, base: &Times) {
    let lbd = crate::config::Timeouts::default();
    let mut lines = String::new();
    for (key, v, b, lbd_v) in [
        ("connect", t.connect, base.connect, Some(lbd.connect.get())),
        ("client", t.client, base.client, Some(lbd.client.get())),
        ("server", t.server, base.server, Some(lbd.server.get())),
        ("queue", t.queue, base.queue, Some(lbd.queue.get())),
        ("tunnel", t.tunnel, base.tunnel, None),
        ("check", t.check, base.check, Some(lbd.check.get())),
    ] {
        if v == b {
            continue;
        }
        // Unset here but set in the written defaults: lbd's own default is
        // what HAProxy's unlimited comes closest to.
        if let Some(v) = v.or(lbd_v).filter(|v| Some(*v) != b) {
            let _ = writeln!(lines, "{indent}  {key}: {}", dur(v));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(y, "{indent}timeout:");
        y.push_str(&lines);
    }
}

fn emit_top(y: &mut String, g: Option<&Global>, stats: Option<&StatsOut>, top: &Proxy) {
    if let Some(s) = stats {
        let _ = writeln!(
            y,
            "admin_http:\n  listen: {}",
            yaml_str(&s.listen.to_string())
        );
        if !s.users.is_empty() {
            // HAProxy's `stats auth` users are the ones who may run actions.
            y.push_str("  auth:\n    users:\n");
            for (u, p) in &s.users {
                let _ = writeln!(
                    y,
                    "      - {{name: {}, password: {}}}",
                    yaml_str(u),
                    yaml_str(p)
                );
            }
        }
        if s.refresh.is_some() || s.auth.is_some() {
            y.push_str("stats:\n");
            if let Some(r) = s.refresh {
                let _ = writeln!(y, "  refresh: {}", dur(r));
            }
            if let Some((u, p)) = &s.auth {
                let _ = writeln!(
                    y,
                    "  auth: {{user: {}, password: {}}}",
                    yaml_str(u),
                    yaml_str(p)
                );
            }
        }
    }
    if let Some((path, mode)) = g.and_then(|g| g.socket.as_ref()) {
        let _ = writeln!(
            y,
            "runtime_socket:\n  path: {}\n  mode: '{mode}'",
            yaml_str(path)
        );
    }
    let mut d = String::new();
    if let Some(m) = top.maxconn {
        let _ = writeln!(d, "  maxconn: {m}");
    }
    emit_times(&mut d, "  ", &eff_times(top), &Times::default());
    emit_settings(&mut d, "  ", &eff(top), None);
    if d.is_empty() {
        y.push_str("defaults: {}\n");
    } else {
        y.push_str("defaults:\n");
        y.push_str(&d);
    }
}

fn emit_frontends(y: &mut String, frontends: &[FeOut], top: &Proxy) {
    y.push_str("frontends:\n");
    for f in frontends {
        let _ = writeln!(y, "  {}:", yaml_str(&f.name));
        let binds: Vec<String> = f.binds.iter().map(|b| yaml_str(&b.to_string())).collect();
        let _ = writeln!(y, "    bind: [{}]", binds.join(", "));
        let _ = writeln!(y, "    backend: {}", yaml_str(&f.backend));
        match (f.maxconn, top.maxconn) {
            (Some(m), t) if Some(m) != t => {
                let _ = writeln!(y, "    maxconn: {m}");
            }
            (None, Some(_)) => {
                let _ = writeln!(
                    y,
                    "    maxconn: {}",
                    crate::config::Defaults::default().maxconn
                );
            }
            _ => {}
        }
    }
}

fn emit_backends(y: &mut String, backends: &[(BeOut, &Built)], top: &Proxy) {
    let top_eff = eff(top);
    let top_times = eff_times(top);
    // What a backend without its own check timeout gets in lbd.
    let top_times = Times {
        check: top_times
            .check
            .or(Some(crate::config::Timeouts::default().check.get())),
        ..top_times
    };
    y.push_str("backends:\n");
    for (be, _) in backends {
        let _ = writeln!(y, "  {}:", yaml_str(&be.name));
        if be.eff.balance != Balance::default() {
            let _ = writeln!(y, "    balance: {}", balance_name(be.eff.balance));
        }
        if be.eff.all_backups {
            y.push_str("    all_backups: true\n");
        }
        emit_settings(y, "    ", &be.eff, Some(&top_eff));
        emit_times(y, "    ", &be.times, &top_times);
        y.push_str("    servers:\n");
        for s in &be.servers {
            emit_server(y, s, &be.eff);
        }
    }
}

fn emit_server(y: &mut String, s: &SrvOut, be: &Eff) {
    let o = &s.opts;
    let mut parts = vec![
        format!("name: {}", yaml_str(&s.name)),
        format!("address: {}", yaml_str(&s.address.to_string())),
    ];
    if o.check != Some(true) {
        parts.push("check: false".into());
    }
    if let Some(w) = o.weight.filter(|w| *w != 1) {
        parts.push(format!("weight: {w}"));
    }
    if o.backup == Some(true) {
        parts.push("backup: true".into());
    }
    if o.disabled == Some(true) {
        parts.push("disabled: true".into());
    }
    if let Some(m) = o.maxconn.filter(|m| *m > 0) {
        parts.push(format!("maxconn: {m}"));
    }
    if let Some(a) = o.addr {
        parts.push(format!("addr: {}", yaml_str(&a.to_string())));
    }
    if let Some(p) = o.port {
        parts.push(format!("port: {p}"));
    }
    let mut time = |key: &str, v: Option<Dur>, b: Option<Dur>| {
        if let Some(v) = v.filter(|v| Some(*v) != b) {
            parts.push(format!("{key}: {}", dur(v)));
        }
    };
    time("inter", o.inter, Some(be.inter));
    time("fastinter", o.fastinter, be.fastinter);
    time("downinter", o.downinter, be.downinter);
    time("slowstart", o.slowstart, be.slowstart);
    for (key, v, b) in [("rise", o.rise, be.rise), ("fall", o.fall, be.fall)] {
        if let Some(v) = v.filter(|v| *v != b) {
            parts.push(format!("{key}: {v}"));
        }
    }
    if let Some(i) = o.init_state.filter(|i| *i != be.init_state) {
        parts.push(format!("init_state: {}", i.name()));
    }
    if let Some(p) = o.send_proxy.filter(|p| *p != be.send_proxy) {
        parts.push(format!("send_proxy: {}", send_proxy_name(p)));
    }
    let _ = writeln!(y, "      - {{{}}}", parts.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The HAProxy config of the classic HAProxy + Mycat MySQL stack: a TCP
    /// listen section checked through the xinetd status service on 48700,
    /// and the stats page on 48800.
    const CLASSIC: &str = "global
    log 127.0.0.1 local0
    maxconn 4096
    chroot /usr/local/haproxy
    user haproxy
    group haproxy
    daemon
    pidfile /usr/local/haproxy/haproxy.pid
    stats socket /var/run/haproxy.sock mode 600 level admin

defaults
    log global
    mode tcp
    option tcplog
    option dontlognull
    retries 3
    option redispatch
    maxconn 2000
    timeout connect 5000
    timeout client 50000
    timeout server 50000

listen admin_stats
    bind 0.0.0.0:48800
    mode http
    stats uri /admin-status
    stats auth admin:admin
    stats refresh 30s

listen mysql_cluster
    bind 0.0.0.0:3306
    mode tcp
    balance roundrobin
    option httpchk
    server mycat_1 10.0.0.11:8066 check port 48700 inter 2000 rise 2 fall 3
    server mycat_2 10.0.0.12:8066 check port 48700 inter 2000 rise 2 fall 3
";

    /// Converts `text` and checks the result is a valid lbd config.
    fn ok(text: &str) -> (Config, Converted) {
        let out = convert("haproxy.cfg", text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hastack_rt::config::error_lines::<Config>("imported.yaml", &out.yaml),
            Vec::<String>::new(),
            "{}",
            out.yaml
        );
        let cfg =
            hastack_rt::config::parse::<Config>(std::path::Path::new("imported.yaml"), &out.yaml)
                .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml));
        (cfg, out)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn notes(out: &Converted) -> String {
        out.not_converted.join("\n")
    }

    #[test]
    fn the_classic_mysql_stack_converts_to_a_valid_config() {
        let (cfg, out) = ok(CLASSIC);
        assert!(out
            .yaml
            .starts_with("# Converted from HAProxy's haproxy.cfg by `lbd import-haproxy`"));
        assert_eq!(cfg.admin_http.listen, Some(addr("0.0.0.0:48800")));
        let users = &cfg.admin_http.auth.as_ref().unwrap().users;
        assert_eq!(users.len(), 1);
        assert_eq!(
            (users[0].name.as_str(), users[0].password.expose()),
            ("admin", "admin")
        );
        assert_eq!(cfg.stats.refresh, hastack_rt::Duration::from_secs(30));
        let auth = cfg.stats.auth.as_ref().unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.expose()),
            ("admin", "admin")
        );
        let sock = cfg.runtime_socket.as_ref().unwrap();
        assert_eq!(sock.path, std::path::Path::new("/var/run/haproxy.sock"));
        assert_eq!(sock.mode, "0600");

        assert_eq!(cfg.frontends.len(), 1, "the stats section is no frontend");
        let f = &cfg.frontends["mysql_cluster"];
        assert_eq!(f.bind, [addr("0.0.0.0:3306")]);
        assert_eq!(f.backend, "mysql_cluster");
        assert_eq!(cfg.maxconn(f), 2000);

        let b = cfg.backend("mysql_cluster").unwrap();
        assert_eq!(b.balance, Balance::Roundrobin);
        assert!(b.redispatch);
        assert_eq!(b.retries, 3);
        assert_eq!(b.on_marked_down, OnMarkedDown::None, "HAProxy's default");
        assert_eq!(b.timeout.connect.get(), Dur::from_secs(5));
        assert_eq!(b.timeout.client.get(), Dur::from_secs(50));
        assert_eq!(b.timeout.server.get(), Dur::from_secs(50));
        assert_eq!(
            b.timeout.queue.get(),
            Dur::from_secs(5),
            "timeout connect's"
        );
        assert_eq!(b.timeout.check.get(), Dur::from_secs(2), "inter's");
        assert_eq!(b.servers.len(), 2);
        let s = &b.servers[0];
        assert_eq!(
            (s.name.as_str(), s.address),
            ("mycat_1", addr("10.0.0.11:8066"))
        );
        let check = s.check.as_ref().unwrap();
        assert_eq!(check.address, addr("10.0.0.11:48700"));
        assert_eq!(check.kind.kind, CheckType::Http);
        assert_eq!(check.kind.method.as_deref(), Some("OPTIONS"));
        assert_eq!(check.kind.uri.as_deref(), Some("/"));
        assert_eq!(
            (s.health.inter, s.health.rise, s.health.fall),
            (Dur::from_secs(2), 2, 3)
        );
        assert_eq!(s.health.init_state, InitState::Up, "HAProxy 2.6's");

        let n = notes(&out);
        for expected in [
            "haproxy.cfg:2: global: log 127.0.0.1 local0 (lbd writes its own log",
            "haproxy.cfg:3: global: maxconn 4096 (a process-wide limit",
            "haproxy.cfg:7: global: daemon (",
            "haproxy.cfg:14: defaults: option tcplog (",
            "haproxy.cfg:15: defaults: option dontlognull (",
            "haproxy.cfg:26: listen admin_stats: stats uri /admin-status (lbd serves its stats page at /stats",
            "haproxy.cfg:23: listen admin_stats (HAProxy's stats page here is read-only; lbd's admin endpoint at 0.0.0.0:48800 also takes POST /actions/<command>",
        ] {
            assert!(n.contains(expected), "{expected}\n--\n{n}");
        }
        assert!(!n.contains("mysql_cluster"), "{n}");
        assert!(!n.contains("stats socket"), "level admin, mode 600: {n}");
        assert!(!n.contains("admin:admin"), "no password in notes: {n}");
    }

    #[test]
    fn a_stats_page_without_auth_off_loopback_becomes_a_loopback_admin_endpoint() {
        let cfg_text = "listen stats\n    bind *:8404\n    stats enable\n    stats uri /stats\n\
                        listen db\n    bind :3306\n    server a 10.0.0.1:3306\n";
        let (cfg, out) = ok(cfg_text);
        assert_eq!(cfg.admin_http.listen, Some(addr("127.0.0.1:8404")));
        assert!(cfg.admin_http.auth.is_none());
        let n = notes(&out);
        assert!(
            n.contains("haproxy.cfg:2: listen stats: bind 0.0.0.0:8404 (lbd's admin endpoint, which also runs actions, listens on 127.0.0.1:8404 instead: this stats page has no stats auth"),
            "{n}"
        );
        let (cfg, out) = ok(&format!(
            "global\n    stats socket /run/h.sock mode 666 level admin\n{cfg_text}"
        ));
        assert_eq!(cfg.runtime_socket.unwrap().mode, "0660");
        assert!(
            notes(&out).contains(
                "stats socket mode 666 (lbd's runtime socket has no credential but its mode"
            ),
            "{}",
            notes(&out)
        );
        // With stats auth the address stays, and its users guard the actions.
        let (cfg, _) =
            ok(&cfg_text.replace("stats enable", "stats auth ops:pw1\n    stats auth dba:pw2"));
        assert_eq!(cfg.admin_http.listen, Some(addr("0.0.0.0:8404")));
        let users: Vec<_> = cfg
            .admin_http
            .auth
            .as_ref()
            .unwrap()
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.password.expose()))
            .collect();
        assert_eq!(users, [("ops", "pw1"), ("dba", "pw2")]);
    }

    const FULL: &str = r#"# Most of what converts, and some of what does not.
global
    stats socket unix@/run/haproxy/admin.sock mode 0660 level operator
    nbthread 4

defaults
    mode tcp
    timeout connect 1500ms
    timeout client 1h
    timeout server 30m
    timeout queue 10s
    timeout tunnel 2d
    timeout check 750ms
    retries 2
    no option redispatch
    maxconn 5000
    default-server inter 3s fastinter 1s downinter 10s rise 3 fall 2 slowstart 30s init-state fully-down send-proxy-v2 on-marked-down shutdown-sessions

frontend "mysql:rw"    # a name lbd does not take
    bind 10.0.0.100:3306,10.0.0.101:3306 accept-proxy
    bind :3307
    bind [::1]:3308
    maxconn 10000
    use_backend readers if { src 10.1.0.0/16 }
    use_backend sql:proxies
    default_backend readers

frontend web
    mode http
    bind :80
    default_backend web

backend web
    mode http
    server w1 10.0.0.50:80

backend sql:proxies
    balance leastconn
    option allbackups
    option mysql-check user haproxy post-41
    server p1 10.0.0.11:8066 check weight 10 maxconn 500
    server p2 10.0.0.12:8066 check backup addr 10.9.0.12 port 48700 send-proxy
    server 'p 3' 10.0.0.13:8066 disabled
    server p4 db4.example:8066 check

backend readers
    balance uri
    option httpchk GET /health HTTP/1.1\r\nHost:\ db.local
    http-check expect status 200,204
    default-server port 48700 check
    server r1 10.0.0.21:8066 inter 5s agent-check agent-port 9999 on-marked-up shutdown-backup-sessions
    server r2 10.0.0.22:8066 fall 5 frobnicate 1 2

listen legacy 0.0.0.0:4000
    balance source
    option httpchk
    http-check send meth HEAD uri /ok hdr Host lb.local hdr X-A b
    http-check expect rstatus ^(200|204)$
    server l1 10.0.0.31:4000 check init-state up
    server l2 10.0.0.32 check
"#;

    #[test]
    fn a_config_using_most_keywords_converts_with_notes() {
        let (cfg, out) = ok(FULL);
        let d = &cfg.defaults;
        assert_eq!(d.maxconn, 5000);
        assert_eq!(d.timeout.connect, hastack_rt::Duration::from_millis(1500));
        assert_eq!(d.timeout.client, hastack_rt::Duration::from_secs(3600));
        assert_eq!(d.timeout.server, hastack_rt::Duration::from_secs(1800));
        assert_eq!(d.timeout.queue, hastack_rt::Duration::from_secs(10));
        assert_eq!(
            d.timeout.tunnel,
            Some(hastack_rt::Duration::from_secs(2 * 86_400))
        );
        assert_eq!(d.timeout.check, hastack_rt::Duration::from_millis(750));
        assert_eq!((d.retries, d.redispatch), (2, false));
        assert_eq!(d.on_marked_down, OnMarkedDown::ShutdownSessions);
        assert_eq!(d.send_proxy, SendProxy::V2);
        assert_eq!(d.init_state, InitState::FullyDown);
        let sock = cfg.runtime_socket.as_ref().unwrap();
        assert_eq!(
            (sock.path.to_str(), sock.mode.as_str()),
            (Some("/run/haproxy/admin.sock"), "0660")
        );

        assert_eq!(
            cfg.frontends.keys().collect::<Vec<_>>(),
            ["legacy", "mysql_rw"]
        );
        let f = &cfg.frontends["mysql_rw"];
        assert_eq!(
            f.bind,
            [
                addr("10.0.0.100:3306"),
                addr("10.0.0.101:3306"),
                addr("0.0.0.0:3307"),
                addr("[::1]:3308")
            ]
        );
        assert_eq!(
            f.backend, "sql_proxies",
            "use_backend without condition wins"
        );
        assert_eq!(f.maxconn, Some(10000));
        assert_eq!(cfg.frontends["legacy"].bind, [addr("0.0.0.0:4000")]);

        let b = cfg.backend("sql_proxies").unwrap();
        assert_eq!(b.balance, Balance::Leastconn);
        assert!(b.all_backups);
        let names: Vec<&str> = b.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["p1", "p2", "p_3"], "p4 has a host name");
        let [p1, p2, p3] = &b.servers[..] else {
            panic!()
        };
        assert_eq!((p1.weight, p1.maxconn), (10, Some(500)));
        let c = p1.check.as_ref().unwrap();
        assert_eq!(
            (c.kind.kind, c.kind.user.as_deref()),
            (CheckType::Mysql, Some("haproxy"))
        );
        assert_eq!(c.timeout, Dur::from_millis(750));
        assert_eq!(
            (p1.health.inter, p1.health.fastinter, p1.health.downinter),
            (
                Dur::from_secs(3),
                Some(Dur::from_secs(1)),
                Some(Dur::from_secs(10))
            )
        );
        assert_eq!((p1.health.rise, p1.health.fall), (3, 2));
        assert_eq!(p1.slowstart, Some(Dur::from_secs(30)));
        assert!(p2.backup);
        assert_eq!(p2.check.as_ref().unwrap().address, addr("10.9.0.12:48700"));
        assert_eq!(p2.send_proxy, SendProxy::V1);
        assert!(p3.disabled && p3.check.is_none(), "no `check`: not checked");

        let r = cfg.backend("readers").unwrap();
        assert_eq!(r.balance, Balance::Roundrobin, "uri is not converted");
        let [r1, r2] = &r.servers[..] else { panic!() };
        let c = r1.check.as_ref().unwrap();
        assert_eq!(c.address, addr("10.0.0.21:48700"), "default-server port");
        assert_eq!(c.kind.kind, CheckType::Http);
        assert_eq!(
            (
                c.kind.method.as_deref(),
                c.kind.uri.as_deref(),
                c.kind.host.as_deref()
            ),
            (Some("GET"), Some("/health"), Some("db.local"))
        );
        assert_eq!(c.kind.expect_status, [200, 204]);
        assert_eq!(r1.health.inter, Dur::from_secs(5));
        assert_eq!(r2.health.fall, 5);

        let l = cfg.backend("legacy").unwrap();
        assert_eq!(l.balance, Balance::Source);
        let c = l.servers[0].check.as_ref().unwrap();
        assert_eq!(
            (
                c.kind.method.as_deref(),
                c.kind.uri.as_deref(),
                c.kind.host.as_deref()
            ),
            (Some("HEAD"), Some("/ok"), Some("lb.local"))
        );
        assert_eq!(c.kind.expect_rstatus.as_deref(), Some("^(200|204)$"));
        assert_eq!(l.servers[0].health.init_state, InitState::Up);
        assert_eq!(
            l.servers[1].address,
            addr("10.0.0.32:4000"),
            "no port: the one clients connect to"
        );
        assert!(!cfg.backends.contains_key("web"));

        assert_eq!(
            out.not_converted,
            [
                "haproxy.cfg:3: global: stats socket level operator (lbd's runtime socket runs every command for whoever can open it: keep its mode tight)",
                "haproxy.cfg:4: global: nbthread 4 (lbd runs as a systemd service: set this in its unit)",
                "haproxy.cfg:20: frontend mysql:rw: accept-proxy (bind options: lbd reads no PROXY header from clients and takes no TLS)",
                "haproxy.cfg:24: frontend mysql:rw: use_backend readers if { src 10.1.0.0/16 } (a condition: lbd sends a frontend's connections to one backend)",
                "haproxy.cfg:40: backend sql:proxies: option mysql-check user haproxy post-41 (HAProxy logs in without a password and reads only the reply; lbd's mysql check logs in for real as this user and can take a password and a query)",
                "haproxy.cfg:44: backend sql:proxies: server p4 db4.example:8066 (\"db4.example\" is not an IP address (lbd takes addresses, not host names): the server is left out)",
                "haproxy.cfg:47: backend readers: balance uri (lbd balances roundrobin, static-rr, leastconn, source or first: written as roundrobin)",
                "haproxy.cfg:51: backend readers: agent-check (lbd has no agent checks)",
                "haproxy.cfg:51: backend readers: agent-port 9999 (lbd has no agent checks)",
                "haproxy.cfg:51: backend readers: on-marked-up shutdown-backup-sessions (no lbd equivalent)",
                "haproxy.cfg:52: backend readers: frobnicate 1 2 (frobnicate is unknown to this conversion; the rest of the line is not converted)",
                "haproxy.cfg:54: listen legacy: 0.0.0.0:4000 (the old `listen NAME ADDR` form: converted as a bind)",
                "haproxy.cfg:57: listen legacy: hdr X-A b (lbd's http check sends no extra headers)",
                "haproxy.cfg:33: backend web (the whole section: mode http (lbd balances TCP only))",
                "haproxy.cfg:37: backend sql:proxies (lbd names are letters, digits, '-', '_' and '.': written as sql_proxies)",
                "haproxy.cfg:43: backend sql:proxies: server p 3 (lbd names are letters, digits, '-', '_' and '.': written as p_3)",
                "haproxy.cfg:60: listen legacy: server l2 (no port: HAProxy connects to the port the client connected to: written as 4000)",
                "haproxy.cfg:19: frontend mysql:rw (lbd names are letters, digits, '-', '_' and '.': written as mysql_rw)",
                "haproxy.cfg:28: frontend web (the whole section: mode http (lbd balances TCP only))",
            ]
        );
    }

    #[test]
    fn words_follow_haproxys_quoting() {
        let w = |l: &str| split_words(l).unwrap().0;
        assert_eq!(
            w("  server a 1.2.3.4:5 # comment"),
            ["server", "a", "1.2.3.4:5"]
        );
        assert_eq!(
            w(r#"stats auth "ad min":'p#w"d'"#),
            ["stats", "auth", "ad min:p#w\"d"]
        );
        assert_eq!(w(r"a\ b c\#d \x41\tz"), ["a b", "c#d", "A\tz"]);
        assert_eq!(w(r#"x "" y"#), ["x", "", "y"]);
        assert_eq!(w(r"'\n'"), [r"\n"], "single quotes take no escapes");
        assert!(split_words("bind ${VIP}:3306").unwrap().1);
        assert!(!split_words("'$VIP'").unwrap().1);
        assert_eq!(
            split_words("stats auth \"admin:x").unwrap_err(),
            "unmatched quote \" (HAProxy refuses the line)"
        );
    }

    #[test]
    fn times_take_haproxys_units() {
        let t = |v: &str| parse_time(v).map(dur);
        assert_eq!(t("2000"), Ok("2s".into()), "a bare number is milliseconds");
        assert_eq!(t("1500"), Ok("1500ms".into()));
        assert_eq!(t("250us"), Ok("250us".into()));
        assert_eq!(t("90s"), Ok("90s".into()));
        assert_eq!(t("5m"), Ok("5m".into()));
        assert_eq!(t("1h"), Ok("1h".into()));
        assert_eq!(t("1d"), Ok("24h".into()));
        assert!(t("2.5s").is_err() && t("s").is_err() && t("2 s").is_err());
        // What lbd reads back is the same time.
        for v in ["1500ms", "90s", "24h", "250us"] {
            let back: hastack_rt::Duration = v.parse().unwrap();
            assert_eq!(dur(back.get()), v);
        }
    }

    #[test]
    fn addresses_follow_haproxys_forms() {
        let a = |v: &str| parse_addr(v).map(|(ip, p)| (ip.to_string(), p));
        let some = |ip: &str, p: &str| Ok((ip.to_owned(), Some(p.to_owned())));
        assert_eq!(a(":3306"), some("0.0.0.0", "3306"));
        assert_eq!(a("*:3306"), some("0.0.0.0", "3306"));
        assert_eq!(a("ipv4@10.0.0.1:80"), some("10.0.0.1", "80"));
        assert_eq!(a(":::3306"), some("::", "3306"));
        assert_eq!(a("[fd00::1]:3306"), some("fd00::1", "3306"));
        assert_eq!(a("10.0.0.1"), Ok(("10.0.0.1".to_owned(), None)));
        assert!(a("/var/run/x.sock").is_err());
        assert!(a("unix@/x").is_err());
        assert!(a("db.example:3306").is_err());
    }

    #[test]
    fn what_haproxy_refuses_is_an_error_with_file_and_line() {
        let err = |text: &str| convert("h.cfg", text).unwrap_err().to_string();
        let listen = "listen l\n    bind :3306\n";
        assert_eq!(
            err("server a 1.2.3.4:5\n"),
            "h.cfg:1: \"server\" outside a section (HAProxy refuses it; expected global, defaults, frontend, backend or listen)"
        );
        assert_eq!(
            err(&format!("{listen}    server a 1.2.3.4:5 rise two\n")),
            "h.cfg:3: rise: expected a number, got \"two\""
        );
        assert_eq!(
            err(&format!("{listen}    server a 1.2.3.4:5 weight 300\n")),
            "h.cfg:3: weight: lbd takes 0 to 256, got 300"
        );
        assert_eq!(
            err(&format!("{listen}    default-server inter 0\n")),
            "h.cfg:3: inter: must be more than 0"
        );
        assert_eq!(
            err(&format!("{listen}    http-check expect rstatus (\n")),
            "h.cfg:3: http-check expect rstatus: not a valid regex: unclosed group"
        );
        assert_eq!(
            err(&format!("{listen}    timeout connect 5x\n")),
            "h.cfg:3: timeout connect: expected a time like 2000, 2s or 500ms, got \"5x\""
        );
        assert_eq!(
            err(&format!("{listen}    stats auth \"admin\n")),
            "h.cfg:3: unmatched quote \" (HAProxy refuses the line)"
        );
        assert_eq!(
            err("frontend f\n    bind :3306\n    default_backend nope\n"),
            "h.cfg:1: no backend named \"nope\" (HAProxy refuses it)"
        );
        assert_eq!(
            err(&format!(
                "{listen}    server a 1.2.3.4:5\n    server a 1.2.3.5:5\n"
            )),
            "h.cfg:4: a server named \"a\" is already in this section (HAProxy refuses it)"
        );
    }

    #[test]
    fn nothing_lbd_can_run_is_an_error_that_says_why() {
        let e = convert("h.cfg", "# empty\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "h.cfg: no frontend or listen section to convert"
        );
        let e = convert(
            "h.cfg",
            "defaults\n    mode http\nlisten web\n    bind :80\n    server a 10.0.0.1:80\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "h.cfg: no TCP frontend or listen section lbd can run (the not-converted lines say why)"
        );
        assert_eq!(e.line, None);
        assert_eq!(
            e.not_converted,
            ["h.cfg:3: listen web (the whole section: mode http (lbd balances TCP only))"]
        );
        let e = convert("h.cfg", "listen l\n    bind :3306\n    server a db:3306\n").unwrap_err();
        assert!(
            e.not_converted[1].ends_with("(the whole section: no server lbd can connect to)"),
            "{:?}",
            e.not_converted
        );
    }

    #[test]
    fn checks_lbd_does_not_have_become_tcp_with_a_note() {
        let (cfg, out) = ok("listen l\n    bind :3306\n    option mysql-check\n    server a 10.0.0.1:3306 check\nlisten m\n    bind :5432\n    option pgsql-check user pg\n    server b 10.0.0.2:5432 check\n");
        for b in ["l", "m"] {
            let s = &cfg.backend(b).unwrap().servers[0];
            assert_eq!(s.check.as_ref().unwrap().kind.kind, CheckType::Tcp, "{b}");
        }
        let n = notes(&out);
        assert!(n.contains("haproxy.cfg:3: listen l: option mysql-check (without a user HAProxy only reads the server's greeting"), "{n}");
        assert!(
            n.contains(
                "haproxy.cfg:7: listen m: option pgsql-check user pg (lbd has no pgsql-check check"
            ),
            "{n}"
        );
    }

    #[test]
    fn several_defaults_sections_apply_to_the_proxies_after_them() {
        let (cfg, _) = ok("defaults\n    timeout connect 1s\n    default-server inter 1s\nlisten a\n    bind :1\n    server s 10.0.0.1:1 check\ndefaults\n    timeout connect 9s\nlisten b\n    bind :2\n    server s 10.0.0.1:2 check\n");
        let a = cfg.backend("a").unwrap();
        let b = cfg.backend("b").unwrap();
        assert_eq!(a.timeout.connect.get(), Dur::from_secs(1));
        assert_eq!(a.servers[0].health.inter, Dur::from_secs(1));
        assert_eq!(b.timeout.connect.get(), Dur::from_secs(9));
        assert_eq!(
            b.servers[0].health.inter,
            Dur::from_secs(2),
            "HAProxy's default"
        );
        assert_eq!(b.timeout.check.get(), Dur::from_secs(2));
    }
}
