//! `checkd import-xinetd FILE...`: xinetd's service files (`/etc/xinetd.d/*`,
//! or a whole `xinetd.conf` with its `defaults` block) as a checkd config of
//! `exec` services, and a plain list of what could not be converted.
//!
//! The conversion follows xinetd's own rules (its `parse.c`, `confparse.c`
//! and `addr.c`): `defaults` fills what a service leaves out, `+=`/`-=`
//! modify the defaults' lists, `10.0.0.0` is xinetd's `10.0.0.0/8`, and
//! `10.0.0.{1,2}` is two addresses.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::{Arg, ArgMatches, Command};
use hastack_rt::emit::{comment, report, yaml_str};
pub use hastack_rt::emit::{ConvertError, Converted};
use hastack_rt::{ExitCode, Subcommand};
use ipnet::IpNet;

/// What xinetd's `UNLIMITED` instances (and `cps = 0 N`, no rate limit)
/// become: checkd always has a limit.
pub const UNLIMITED: u32 = 10_000;

pub fn subcommand() -> Subcommand {
    Subcommand {
        command: Command::new("import-xinetd")
            .about("Convert xinetd service files (/etc/xinetd.d/*, xinetd.conf with its defaults) to a checkd config on stdout; what cannot be converted is listed on stderr")
            .arg(
                Arg::new("files")
                    .value_name("FILE")
                    .required(true)
                    .num_args(1..),
            ),
        run,
    }
}

fn run(m: &ArgMatches) -> ExitCode {
    let mut files = Vec::new();
    for path in m.get_many::<String>("files").into_iter().flatten() {
        match std::fs::read_to_string(path) {
            Ok(text) => files.push(Input {
                path: path.clone(),
                text,
            }),
            Err(e) => {
                eprintln!("{path}: cannot read: {e}");
                return ExitCode::Config;
            }
        }
    }
    // Where xinetd looks up the port of a service without `port`.
    let etc_services = std::fs::read_to_string("/etc/services").ok();
    report(convert(&files, etc_services.as_deref()))
}

/// One file given on the command line: its path (for messages) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: String,
    pub text: String,
}

// ---------------------------------------------------------------- parsing

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Set,
    Add,
    Remove,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Set => "=",
            Op::Add => "+=",
            Op::Remove => "-=",
        })
    }
}

/// `name OP value value ...`, one line of a block.
#[derive(Debug)]
struct Attr<'a> {
    name: &'a str,
    op: Op,
    values: Vec<&'a str>,
    line: usize,
}

impl<'a> Attr<'a> {
    /// The attribute as the user wrote it, for notes.
    fn shown(&self) -> String {
        let mut s = format!("{} {}", self.name, self.op);
        for v in &self.values {
            s.push(' ');
            s.push_str(v);
        }
        s
    }

    fn one(&self) -> Result<&'a str, String> {
        match self.values[..] {
            [v] => Ok(v),
            _ => Err(self.arity(1)),
        }
    }

    fn arity(&self, n: usize) -> String {
        let mut m = format!(
            "{} takes {n} value{}, got {}",
            self.name,
            if n == 1 { "" } else { "s" },
            self.values.len()
        );
        if self.values.iter().any(|v| v.starts_with('#')) {
            m.push_str(" (xinetd takes `#` as a comment only at the start of a line)");
        }
        m
    }
}

enum Block<'a> {
    Defaults {
        line: usize,
        attrs: Vec<Attr<'a>>,
    },
    Service {
        name: &'a str,
        line: usize,
        attrs: Vec<Attr<'a>>,
    },
}

/// Splits one file into its blocks as xinetd's parser does: `#` starts a
/// comment only at the start of a line; `{` and `}` stand on lines of their
/// own (`service NAME {` on one line is accepted too).
fn parse_file<'a>(
    input: &'a Input,
    notes: &mut Vec<String>,
) -> Result<Vec<Block<'a>>, ConvertError> {
    let err = |line: usize, message: String| ConvertError {
        path: input.path.clone(),
        line: Some(line),
        message,
        not_converted: Vec::new(),
    };
    let mut lines = input
        .text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        });
    let mut blocks = Vec::new();
    while let Some((n, line)) = lines.next() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (header, name, rest) = match words[..] {
            ["service", name, ref rest @ ..] => (format!("service {name}"), Some(name), rest),
            ["defaults", ref rest @ ..] => ("defaults".to_owned(), None, rest),
            [kw @ ("include" | "includedir"), arg] => {
                notes.push(format!(
                    "{}:{n}: {kw} {arg} (not followed: give its files to import-xinetd too)",
                    input.path
                ));
                continue;
            }
            [kw @ ("include" | "includedir"), ..] => {
                return Err(err(n, format!("{kw} takes one path")));
            }
            ["service"] => return Err(err(n, "service name missing after `service`".into())),
            _ => {
                return Err(err(
                    n,
                    format!(
                        "expected `service NAME`, `defaults`, `include` or `includedir`, got {:?}",
                        line.trim()
                    ),
                ))
            }
        };
        match rest {
            ["{"] => {}
            [] => match lines.next() {
                Some((_, l)) if l.trim() == "{" => {}
                Some((m, l)) => {
                    return Err(err(
                        m,
                        format!(
                            "expected `{{` on the line after `{header}`, got {:?}",
                            l.trim()
                        ),
                    ))
                }
                None => return Err(err(n, format!("{header}: no `{{` follows"))),
            },
            _ => {
                return Err(err(
                    n,
                    format!("unexpected {:?} after `{header}`", rest.join(" ")),
                ))
            }
        }
        let mut attrs = Vec::new();
        let mut closed = false;
        for (m, l) in lines.by_ref() {
            if l.trim() == "}" {
                closed = true;
                break;
            }
            attrs.push(parse_attr(l, m).map_err(|e| err(m, e))?);
        }
        if !closed {
            return Err(err(n, format!("{header}: no closing `}}`")));
        }
        blocks.push(match name {
            Some(name) => Block::Service {
                name,
                line: n,
                attrs,
            },
            None => Block::Defaults { line: n, attrs },
        });
    }
    Ok(blocks)
}

fn parse_attr(line: &str, n: usize) -> Result<Attr<'_>, String> {
    let t = line.trim();
    let end = t
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(t.len());
    let name = &t[..end];
    let rest = &t[end..];
    if name.is_empty() || name == "{" || name == "}" {
        return Err(format!("expected `attribute = value`, got {t:?}"));
    }
    if rest.starts_with('=') || name.ends_with('+') || name.ends_with('-') {
        return Err(format!(
            "{t:?}: xinetd needs a space between the attribute name and its operator"
        ));
    }
    let rest = rest.trim_start();
    let (op, values) = if let Some(v) = rest.strip_prefix("+=") {
        (Op::Add, v)
    } else if let Some(v) = rest.strip_prefix("-=") {
        (Op::Remove, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (Op::Set, v)
    } else {
        return Err(format!(
            "expected `=`, `+=` or `-=` after {name}, got {t:?}"
        ));
    };
    Ok(Attr {
        name,
        op,
        values: values.split_whitespace().collect(),
        line: n,
    })
}

// ------------------------------------------------------------- attributes

const SOCKET_TYPES: &[&str] = &["stream", "dgram", "raw", "seqpacket"];
const TYPES: &[&str] = &[
    "RPC",
    "INTERNAL",
    "UNLISTED",
    "SPECIAL",
    "TCPMUX",
    "TCPMUXPLUS",
];
const FLAGS: &[&str] = &[
    "REUSE",
    "INTERCEPT",
    "NORETRY",
    "IDONLY",
    "NAMEINARGS",
    "NODELAY",
    "KEEPALIVE",
    "NOLIBWRAP",
    "SENSOR",
    "IPv4",
    "IPv6",
    "LABELED",
];
/// xinetd's items, in the order checkd's docs list them. `USERID` (and the
/// old `RECORD`) have no checkd equivalent.
const SUCCESS_ITEMS: &[&str] = &["HOST", "PID", "DURATION", "EXIT", "TRAFFIC", "USERID"];
const FAILURE_ITEMS: &[&str] = &["HOST", "ATTEMPT", "USERID", "RECORD"];
const CHECKD_ITEMS: &[&str] = &["HOST", "PID", "DURATION", "EXIT", "ATTEMPT", "TRAFFIC"];
/// What checkd logs when a config says nothing (config.rs's defaults).
const CHECKD_SUCCESS_DEFAULT: &[&str] = &["HOST", "DURATION"];
const CHECKD_FAILURE_DEFAULT: &[&str] = &["HOST"];

/// What xinetd accepts in `defaults` (its `default_attributes` table).
const DEFAULTS_ATTRS: &[&str] = &[
    "log_type",
    "log_on_success",
    "log_on_failure",
    "disabled",
    "no_access",
    "only_from",
    "instances",
    "passenv",
    "banner",
    "bind",
    "interface",
    "per_source",
    "groups",
    "banner_success",
    "banner_fail",
    "cps",
    "enabled",
    "max_load",
    "v6only",
    "umask",
    "mdns",
];

/// xinetd's attributes checkd has nothing for, with why where it helps.
fn no_equivalent(name: &str) -> Option<&'static str> {
    Some(match name {
        "banner" | "banner_success" | "banner_fail" => "checkd sends no banner",
        "log_type" => "checkd writes its own log",
        "access_times" => "checkd has no time windows",
        "env" | "passenv" => "checkd sets no environment for the server",
        "libwrap" => "checkd does not read /etc/hosts.allow or hosts.deny",
        "group" | "groups" | "nice" | "umask" | "max_load" | "deny_time" | "v6only" | "mdns"
        | "rpc_version" | "rpc_number" => "no checkd equivalent",
        n if n.starts_with("rlimit_") => "checkd sets no resource limits",
        _ => return None,
    })
}

/// Values that are xinetd's default and change nothing in checkd.
fn is_harmless(name: &str, values: &[&str]) -> bool {
    matches!((name, values), ("groups" | "v6only" | "mdns", ["no"]))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    Unlimited,
    At(u32),
}

fn limit(a: &Attr) -> Result<Limit, String> {
    let v = a.one()?;
    if v == "UNLIMITED" {
        return Ok(Limit::Unlimited);
    }
    v.parse()
        .map(Limit::At)
        .map_err(|_| format!("{} must be a number or UNLIMITED, got {v:?}", a.name))
}

fn yes_no(a: &Attr) -> Result<bool, String> {
    match a.one()? {
        "yes" => Ok(true),
        "no" => Ok(false),
        v => Err(format!("{} must be yes or no, got {v:?}", a.name)),
    }
}

/// An `only_from`/`no_access` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Addr<'a> {
    Net(IpNet),
    /// A host, `.domain` or /etc/networks name: xinetd resolves it, checkd
    /// matches addresses only.
    Name(&'a str),
}

/// One value of `only_from`/`no_access`, read as xinetd's `addr.c` does.
fn parse_addr(v: &str) -> Result<Vec<Addr<'_>>, String> {
    if let Some((prefix, list)) = v.split_once('{') {
        return factorized(v, prefix, list);
    }
    if v.contains('/') {
        return v
            .parse::<IpNet>()
            .map(|n| vec![Addr::Net(n.trunc())])
            .map_err(|_| format!("{v:?} is not an address/prefix like 10.0.0.0/24"));
    }
    match v.parse::<IpAddr>() {
        // xinetd: the rightmost 0 parts of an IPv4 address are wildcards
        // (10.1.0.0 is 10.1.0.0/16, 0.0.0.0 everything); `::` is everything.
        Ok(IpAddr::V4(a)) => {
            let bits = u32::from(a);
            let prefix = if bits == 0 {
                0
            } else {
                32 - 8 * (bits.trailing_zeros() / 8)
            };
            Ok(vec![Addr::Net(net(IpAddr::V4(a), prefix as u8))])
        }
        Ok(IpAddr::V6(a)) => {
            let prefix = if a.is_unspecified() { 0 } else { 128 };
            Ok(vec![Addr::Net(net(IpAddr::V6(a), prefix))])
        }
        Err(_) if v.contains(':') || v.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            Err(format!(
                "{v:?} is not an address checkd can read (write IPv4 addresses in full, a.b.c.d)"
            ))
        }
        Err(_) => Ok(vec![Addr::Name(v)]),
    }
}

fn net(ip: IpAddr, prefix: u8) -> IpNet {
    // The prefix is in range for the address family by construction.
    IpNet::new(ip, prefix).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
}

/// `a.b.c.{1,2}` is a.b.c.1 and a.b.c.2; `a.b.{1,2}` is a.b.1.0/24 and
/// a.b.2.0/24 (xinetd's `factorized_addr`, IPv4 only).
fn factorized<'a>(v: &str, prefix: &str, list: &str) -> Result<Vec<Addr<'a>>, String> {
    let bad = |why: &str| format!("{v:?} is not a factorized address like 10.0.0.{{1,2}}: {why}");
    let Some(list) = list.strip_suffix('}') else {
        return Err(bad("it must end with `}` (and have no spaces inside)"));
    };
    let Some(prefix) = prefix.strip_suffix('.') else {
        return Err(bad("a `.` must come before `{`"));
    };
    let mut octets = Vec::new();
    for part in prefix.split('.') {
        octets.push(
            part.parse::<u8>()
                .map_err(|_| bad("the parts are numbers 0-255"))?,
        );
    }
    if octets.len() > 3 {
        return Err(bad("at most three parts come before `{`"));
    }
    let mut out = Vec::new();
    for item in list.split(',') {
        let last = item
            .parse::<u8>()
            .map_err(|_| bad("the parts are numbers 0-255"))?;
        let mut full = octets.clone();
        full.push(last);
        let prefix_len = 8 * full.len();
        full.resize(4, 0);
        let ip = IpAddr::V4(Ipv4Addr::new(full[0], full[1], full[2], full[3]));
        out.push(Addr::Net(net(ip, prefix_len as u8)));
    }
    Ok(out)
}

/// What one block (defaults or a service) said, after xinetd's rules.
#[derive(Clone, Default)]
struct Settings<'a> {
    socket_type: Option<&'a str>,
    protocol: Option<&'a str>,
    wait: Option<bool>,
    user: Option<&'a str>,
    server: Option<&'a str>,
    server_args: Option<Vec<&'a str>>,
    port: Option<u16>,
    bind: Option<&'a str>,
    id: Option<&'a str>,
    disable: Option<bool>,
    redirect: Option<String>,
    instances: Option<Limit>,
    per_source: Option<Limit>,
    cps: Option<(u32, u32)>,
    types: Vec<&'a str>,
    flags: Vec<&'a str>,
    log_on_success: Option<Vec<&'static str>>,
    log_on_failure: Option<Vec<&'static str>>,
    only_from: Option<Vec<Addr<'a>>>,
    no_access: Option<Vec<Addr<'a>>>,
    /// `defaults` only: services by id.
    disabled: Vec<&'a str>,
    enabled: Option<Vec<&'a str>>,
    /// Notes for attributes checkd has nothing for.
    unsupported: Vec<String>,
}

/// Where an attribute stands, for xinetd's rules and the notes.
struct Scope<'s> {
    /// "defaults" or "service NAME".
    who: &'s str,
    defaults: bool,
    /// Whether any file given has a `defaults` block (else a service's
    /// `+=` adds to defaults we cannot see).
    have_defaults: bool,
}

fn modify_items(
    current: &mut Option<Vec<&'static str>>,
    a: &Attr,
    op: Op,
    known: &[&'static str],
) -> Result<(), String> {
    let mut set = match op {
        Op::Set => Vec::new(),
        _ => current.take().unwrap_or_default(),
    };
    for v in &a.values {
        let Some(item) = known.iter().find(|k| k.eq_ignore_ascii_case(v)) else {
            return Err(format!(
                "{}: unknown item {v:?} (xinetd's are {})",
                a.name,
                known.join(", ")
            ));
        };
        match op {
            Op::Remove => set.retain(|x| x != item),
            _ if set.contains(item) => {}
            _ => set.push(item),
        }
    }
    *current = Some(set);
    Ok(())
}

fn modify_addrs<'a>(
    current: &mut Option<Vec<Addr<'a>>>,
    a: &Attr<'a>,
    op: Op,
) -> Result<(), String> {
    let mut list = match op {
        Op::Set => Vec::new(),
        _ => current.take().unwrap_or_default(),
    };
    for &v in &a.values {
        for addr in parse_addr(v).map_err(|e| format!("{}: {e}", a.name))? {
            match op {
                Op::Remove => list.retain(|x| *x != addr),
                _ => list.push(addr),
            }
        }
    }
    *current = Some(list);
    Ok(())
}

impl<'a> Settings<'a> {
    fn apply(&mut self, a: &Attr<'a>, s: &Scope, notes: &mut Vec<String>) -> Result<(), String> {
        let who = s.who;
        let modifiable = matches!(
            a.name,
            "log_on_success" | "log_on_failure" | "only_from" | "no_access" | "env" | "passenv"
        ) || (s.defaults && matches!(a.name, "disabled" | "enabled" | "log_type"));
        if a.op != Op::Set && !modifiable {
            notes.push(format!(
                "{who}: {} (xinetd ignores {} on {}, and so does this conversion)",
                a.shown(),
                a.op,
                a.name
            ));
            return Ok(());
        }
        if s.defaults && !DEFAULTS_ATTRS.contains(&a.name) {
            notes.push(format!(
                "{who}: {} (not an attribute of xinetd's defaults, which ignores it)",
                a.shown()
            ));
            return Ok(());
        }
        // In defaults, `=` adds to what an earlier line set.
        let op = if s.defaults && a.op == Op::Set {
            Op::Add
        } else {
            a.op
        };
        if op != Op::Set && !s.defaults && !s.have_defaults {
            let base: Option<&[&'static str]> = match a.name {
                "log_on_success" if self.log_on_success.is_none() => Some(CHECKD_SUCCESS_DEFAULT),
                "log_on_failure" if self.log_on_failure.is_none() => Some(CHECKD_FAILURE_DEFAULT),
                _ => None,
            };
            let unset = match a.name {
                "only_from" => self.only_from.is_none(),
                "no_access" => self.no_access.is_none(),
                _ => base.is_some(),
            };
            if unset {
                let taken = match base {
                    Some(b) => format!("checkd's default [{}]", b.join(", ")),
                    None => "an empty list".to_owned(),
                };
                notes.push(format!("{who}: {} changes xinetd.conf's defaults, which are not among the files given: taken relative to {taken} (give /etc/xinetd.conf too)", a.shown()));
                match a.name {
                    "log_on_success" => self.log_on_success = base.map(<[_]>::to_vec),
                    "log_on_failure" => self.log_on_failure = base.map(<[_]>::to_vec),
                    _ => {}
                }
            }
        }
        match a.name {
            "socket_type" => {
                let v = a.one()?;
                if !SOCKET_TYPES.contains(&v) {
                    return Err(format!(
                        "socket_type must be one of {}, got {v:?}",
                        SOCKET_TYPES.join(", ")
                    ));
                }
                self.socket_type = Some(v);
            }
            "protocol" => self.protocol = Some(a.one()?),
            "wait" => self.wait = Some(yes_no(a)?),
            "disable" => self.disable = Some(yes_no(a)?),
            "user" => self.user = Some(a.one()?),
            "server" => self.server = Some(a.one()?),
            "server_args" => self.server_args = Some(a.values.clone()),
            "id" => self.id = Some(a.one()?),
            "port" => {
                let v = a.one()?;
                self.port = Some(
                    v.parse()
                        .map_err(|_| format!("port must be a number 0-65535, got {v:?}"))?,
                );
            }
            "bind" | "interface" => self.bind = Some(a.one()?),
            "instances" => self.instances = Some(limit(a)?),
            "per_source" => self.per_source = Some(limit(a)?),
            "cps" => {
                let [rate, pause] = a.values[..] else {
                    return Err(format!("{} (like `cps = 50 10`: connections per second, then the pause in seconds)", a.arity(2)));
                };
                let num = |v: &str| {
                    v.parse::<u32>()
                        .map_err(|_| format!("cps takes two numbers, got {v:?}"))
                };
                self.cps = Some((num(rate)?, num(pause)?));
            }
            "redirect" => {
                if a.values.len() != 2 {
                    return Err(a.arity(2));
                }
                self.redirect = Some(a.values.join(" "));
            }
            "type" | "flags" => {
                let (known, list) = if a.name == "type" {
                    (TYPES, &mut self.types)
                } else {
                    (FLAGS, &mut self.flags)
                };
                if a.values.is_empty() {
                    return Err(format!("{} needs at least one value", a.name));
                }
                for &v in &a.values {
                    if !known.contains(&v) {
                        return Err(format!(
                            "{}: unknown value {v:?} (xinetd's are {})",
                            a.name,
                            known.join(", ")
                        ));
                    }
                    list.push(v);
                }
            }
            "log_on_success" => modify_items(&mut self.log_on_success, a, op, SUCCESS_ITEMS)?,
            "log_on_failure" => modify_items(&mut self.log_on_failure, a, op, FAILURE_ITEMS)?,
            "only_from" => modify_addrs(&mut self.only_from, a, op)?,
            "no_access" => modify_addrs(&mut self.no_access, a, op)?,
            "disabled" | "enabled" => {
                let list = if a.name == "disabled" {
                    &mut self.disabled
                } else {
                    self.enabled.get_or_insert_with(Vec::new)
                };
                for &v in &a.values {
                    match op {
                        Op::Remove => list.retain(|x| *x != v),
                        _ => list.push(v),
                    }
                }
            }
            name if is_harmless(name, &a.values) => {}
            name => match no_equivalent(name) {
                Some(why) => self
                    .unsupported
                    .push(format!("{who}: {} ({why})", a.shown())),
                None => self.unsupported.push(format!(
                    "{who}: {} (not an xinetd attribute; xinetd ignores it too)",
                    a.shown()
                )),
            },
        }
        Ok(())
    }
}

// ------------------------------------------------------------- conversion

/// A service as it will be written.
struct Out<'a> {
    key: String,
    bind: SocketAddr,
    disable: bool,
    /// Why the conversion disabled it (a YAML comment).
    why_disabled: Vec<String>,
    server: &'a str,
    server_args: Vec<&'a str>,
    user: Option<&'a str>,
    only_from: Vec<IpNet>,
    no_access: Vec<IpNet>,
    instances: Option<u32>,
    per_source: Option<u32>,
    cps: Option<(u32, u32)>,
    log_on_success: Option<Vec<&'static str>>,
    log_on_failure: Option<Vec<&'static str>>,
}

/// The port of a tcp service in /etc/services' text.
fn lookup_port(etc_services: &str, name: &str) -> Option<u16> {
    etc_services.lines().find_map(|l| {
        let l = l.split('#').next().unwrap_or_default();
        let mut words = l.split_whitespace();
        let first = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let named = first == name || words.any(|alias| alias == name);
        if named && proto == "tcp" {
            port.parse().ok()
        } else {
            None
        }
    })
}

/// Addresses checkd can match, with a note for each name it cannot.
fn nets(list: &[Addr], who: &str, attr: &str, why: &str, notes: &mut Vec<String>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for a in list {
        match a {
            Addr::Net(n) if !out.contains(n) => out.push(*n),
            Addr::Net(_) => {}
            Addr::Name(name) => notes.push(format!("{who}: {attr} {name} ({why})")),
        }
    }
    out
}

/// Converts a service block, or says in one line why the whole service
/// cannot be.
fn service<'a>(
    name: &'a str,
    settings: Settings<'a>,
    defaults: &Settings<'a>,
    etc_services: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Out<'a>, String> {
    let s = settings;
    let key = s.id.unwrap_or(name).to_owned();
    let who = format!("service {key}");

    let mut skip = Vec::new();
    for t in &s.types {
        match *t {
            "UNLISTED" => {}
            "INTERNAL" => skip.push("type = INTERNAL (xinetd's built-in services)".to_owned()),
            t => skip.push(format!("type = {t} (no checkd equivalent)")),
        }
    }
    if let Some(t) = s.socket_type.filter(|t| *t != "stream") {
        skip.push(format!(
            "socket_type = {t} (checkd serves TCP streams only)"
        ));
    }
    if let Some(p) = s.protocol.filter(|p| *p != "tcp") {
        skip.push(format!("protocol = {p} (checkd serves TCP only)"));
    }
    if s.wait == Some(true) {
        skip.push("wait = yes (the server accepts on xinetd's socket; checkd hands a server one connection)".to_owned());
    }
    if let Some(r) = &s.redirect {
        skip.push(format!(
            "redirect = {r} (checkd does not forward connections)"
        ));
    }
    if s.flags.contains(&"SENSOR") {
        skip.push("flags SENSOR (an intrusion sensor, not a service)".to_owned());
    }
    let server = match s.server {
        _ if s.types.contains(&"INTERNAL") => "",
        None => {
            skip.push("no server".to_owned());
            ""
        }
        Some(p) if !p.starts_with('/') => {
            skip.push(format!("server {p} is not an absolute path"));
            ""
        }
        Some(p) => p,
    };
    if !skip.is_empty() {
        return Err(format!("{who} (whole service): {}", skip.join("; ")));
    }

    notes.extend(s.unsupported.iter().cloned());
    if s.socket_type.is_none() && s.protocol.is_none() {
        notes.push(format!(
            "{who}: no socket_type (xinetd requires one): taken as stream"
        ));
    }
    if s.wait.is_none() {
        notes.push(format!("{who}: no wait (xinetd requires it): taken as no"));
    }
    if s.user.is_none() {
        notes.push(format!("{who}: no user (xinetd requires one when it runs as root): set user, or the server runs as checkd's user"));
    }
    for f in &s.flags {
        match *f {
            "REUSE" | "IPv4" | "IPv6" | "NOLIBWRAP" | "NAMEINARGS" => {}
            "IDONLY" => notes.push(format!(
                "{who}: flags IDONLY (an access restriction: checkd does not ask the peer's identd)"
            )),
            f => notes.push(format!("{who}: flags {f} (no checkd equivalent)")),
        }
    }
    let mut server_args = s.server_args.unwrap_or_default();
    if s.flags.contains(&"NAMEINARGS") && !server_args.is_empty() {
        let argv0 = server_args.remove(0);
        notes.push(format!("{who}: flags NAMEINARGS: the server's argv[0] {argv0} (checkd sets argv[0] to the server path; the rest of server_args is kept)"));
    }

    let mut why_disabled = Vec::new();
    let ip = match s.bind.or(defaults.bind) {
        None if s.flags.contains(&"IPv6") => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(b) => b.parse().unwrap_or_else(|_| {
            notes.push(format!("{who}: bind = {b} (a host name; checkd binds an address): written as 0.0.0.0 with disable: true until you set it"));
            why_disabled.push("bind is a host name: set its address".to_owned());
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }),
    };
    let port = match s.port {
        Some(p) => p,
        None => match etc_services.and_then(|t| lookup_port(t, name)) {
            Some(p) => p,
            None => {
                let why = if etc_services.is_some() {
                    format!("{name} is not a tcp service in /etc/services")
                } else {
                    "/etc/services cannot be read".to_owned()
                };
                notes.push(format!(
                    "{who}: no port, and {why}: written as port 0 with disable: true until you set it"
                ));
                why_disabled.push("no port: set it".to_owned());
                0
            }
        },
    };

    let mut instances = None;
    match s.instances.or(defaults.instances) {
        Some(Limit::Unlimited) => {
            notes.push(format!(
                "{who}: instances = UNLIMITED (checkd always has a limit): written as {UNLIMITED}"
            ));
            instances = Some(UNLIMITED);
        }
        Some(Limit::At(0)) => {
            notes.push(format!(
                "{who}: instances = 0 (xinetd refuses every connection): written as disable: true"
            ));
            why_disabled.push("instances = 0".to_owned());
        }
        Some(Limit::At(n)) => instances = Some(n),
        None => {}
    }
    let per_source = match s.per_source.or(defaults.per_source) {
        Some(Limit::At(0)) => {
            notes.push(format!(
                "{who}: per_source = 0 (xinetd refuses every connection): written as disable: true"
            ));
            why_disabled.push("per_source = 0".to_owned());
            None
        }
        Some(Limit::At(n)) => Some(n),
        Some(Limit::Unlimited) | None => None,
    };
    let cps = s.cps.or(defaults.cps).map(|(rate, pause)| {
        if rate == 0 {
            notes.push(format!("{who}: cps = 0 {pause} (xinetd: no rate limit; checkd always has one): written as rate {UNLIMITED}"));
            (UNLIMITED, pause)
        } else {
            (rate, pause)
        }
    });

    let mut only_from = Vec::new();
    let mut no_access = Vec::new();
    if let Some(list) = &s.no_access {
        no_access = nets(
            list,
            &who,
            "no_access",
            "a host or network name; checkd matches addresses, so it is NOT denied",
            notes,
        );
    }
    if let Some(list) = &s.only_from {
        only_from = nets(
            list,
            &who,
            "only_from",
            "a host or network name; checkd matches addresses only",
            notes,
        );
        if only_from.is_empty() {
            // xinetd: an only_from list with nothing in it lets nobody in;
            // checkd's empty only_from lets everyone in.
            if list.iter().any(|a| matches!(a, Addr::Name(_))) {
                notes.push(format!("{who}: only_from has no address left: written as no_access: [0.0.0.0/0, ::/0] (nobody) until you list addresses"));
            }
            for all in [
                net(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                net(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            ] {
                if !no_access.contains(&all) {
                    no_access.push(all);
                }
            }
        }
    }

    // xinetd refuses a peer that matches no_access even where only_from
    // matches it more closely; checkd lets the more specific entry decide.
    for o in &only_from {
        if let Some(n) = no_access.iter().find(|n| *n != o && n.contains(o)) {
            notes.push(format!("{who}: only_from {o} lies inside no_access {n}: xinetd refuses those peers, checkd lets them in (the more specific entry wins)"));
        }
    }

    let log = |list: &Option<Vec<&'static str>>, attr: &str, notes: &mut Vec<String>| {
        list.as_ref().map(|items| {
            for i in items.iter().filter(|i| !CHECKD_ITEMS.contains(i)) {
                let why = if *i == "USERID" {
                    "checkd does not ask the peer's identd"
                } else {
                    "no checkd equivalent"
                };
                notes.push(format!("{who}: {attr} {i} ({why})"));
            }
            CHECKD_ITEMS
                .iter()
                .copied()
                .filter(|i| items.contains(i))
                .collect::<Vec<_>>()
        })
    };
    let log_on_success = log(&s.log_on_success, "log_on_success", notes);
    let log_on_failure = log(&s.log_on_failure, "log_on_failure", notes);

    let listed = defaults.disabled.iter().any(|d| *d == key);
    let disable = s.disable == Some(true)
        || listed
        || defaults
            .enabled
            .as_ref()
            .is_some_and(|e| !e.iter().any(|d| *d == key));
    if listed {
        why_disabled.push("listed in defaults' disabled".to_owned());
    } else if s.disable != Some(true) && disable {
        why_disabled.push("not in defaults' enabled".to_owned());
    }
    Ok(Out {
        key,
        bind: SocketAddr::new(ip, port),
        disable: disable || !why_disabled.is_empty(),
        why_disabled,
        server,
        server_args,
        user: s.user,
        only_from,
        no_access,
        instances,
        per_source,
        cps,
        log_on_success,
        log_on_failure,
    })
}

/// Whether two listeners could not both bind (same port, and the same or
/// a wildcard address).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn emit(o: &Out, y: &mut String) {
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    let _ = writeln!(y, "  {}:", yaml_str(&o.key));
    y.push_str("    type: exec\n");
    let _ = writeln!(y, "    bind: {}", yaml_str(&o.bind.to_string()));
    if o.disable {
        y.push_str("    disable: true");
        if !o.why_disabled.is_empty() {
            let _ = write!(y, "  # {}", comment(&o.why_disabled.join("; ")));
        }
        y.push('\n');
    }
    let _ = writeln!(y, "    server: {}", yaml_str(o.server));
    if !o.server_args.is_empty() {
        let args = list(&mut o.server_args.iter().map(|a| yaml_str(a)));
        let _ = writeln!(y, "    server_args: [{args}]");
    }
    if let Some(u) = o.user {
        let _ = writeln!(y, "    user: {}", yaml_str(u));
    }
    for (key, nets) in [("only_from", &o.only_from), ("no_access", &o.no_access)] {
        if !nets.is_empty() {
            let nets = list(&mut nets.iter().map(|n| yaml_str(&n.to_string())));
            let _ = writeln!(y, "    {key}: [{nets}]");
        }
    }
    if let Some(n) = o.instances {
        let _ = writeln!(y, "    instances: {n}");
    }
    if let Some(n) = o.per_source {
        let _ = writeln!(y, "    per_source: {n}");
    }
    if let Some((rate, pause)) = o.cps {
        let _ = writeln!(y, "    cps: {{rate: {rate}, pause: {pause}s}}");
    }
    for (key, items) in [
        ("log_on_success", &o.log_on_success),
        ("log_on_failure", &o.log_on_failure),
    ] {
        if let Some(items) = items {
            let _ = writeln!(y, "    {key}: [{}]", items.join(", "));
        }
    }
}

/// Converts the files' text; `etc_services` is /etc/services' text, where
/// xinetd finds the port of a service without `port`.
pub fn convert(files: &[Input], etc_services: Option<&str>) -> Result<Converted, ConvertError> {
    let mut notes = Vec::new();
    let mut parsed = Vec::new();
    for f in files {
        parsed.push((f, parse_file(f, &mut notes)?));
    }
    let attr_err = |f: &Input, a: &Attr, message: String| ConvertError {
        path: f.path.clone(),
        line: Some(a.line),
        message,
        not_converted: Vec::new(),
    };

    // xinetd reads one defaults block, for every service.
    let mut defaults = Settings::default();
    let mut defaults_at: Option<String> = None;
    for (f, blocks) in &parsed {
        for b in blocks {
            let Block::Defaults { line, attrs } = b else {
                continue;
            };
            if let Some(first) = &defaults_at {
                notes.push(format!(
                    "{}:{line}: a second defaults block (xinetd reads only the first, at {first})",
                    f.path
                ));
                continue;
            }
            defaults_at = Some(format!("{}:{line}", f.path));
            let scope = Scope {
                who: "defaults",
                defaults: true,
                have_defaults: true,
            };
            for a in attrs {
                defaults
                    .apply(a, &scope, &mut notes)
                    .map_err(|e| attr_err(f, a, e))?;
            }
        }
    }
    notes.append(&mut defaults.unsupported);

    let mut outs: Vec<Out> = Vec::new();
    let mut any_service = false;
    for (f, blocks) in &parsed {
        for b in blocks {
            let Block::Service { name, line, attrs } = b else {
                continue;
            };
            any_service = true;
            // xinetd starts a service's lists from the defaults' ones.
            let mut s = Settings {
                log_on_success: defaults.log_on_success.clone(),
                log_on_failure: defaults.log_on_failure.clone(),
                only_from: defaults.only_from.clone(),
                no_access: defaults.no_access.clone(),
                ..Settings::default()
            };
            // Notes name a service by its id, as the output does.
            let key = attrs
                .iter()
                .rev()
                .find(|a| a.name == "id" && a.values.len() == 1)
                .map_or(*name, |a| a.values[0]);
            let who = format!("service {key}");
            let scope = Scope {
                who: &who,
                defaults: false,
                have_defaults: defaults_at.is_some(),
            };
            let mut service_notes = Vec::new();
            for a in attrs {
                s.apply(a, &scope, &mut service_notes)
                    .map_err(|e| attr_err(f, a, e))?;
            }
            if outs.iter().any(|o| o.key == key) {
                let line = format!("service {key} at {}:{line} (whole service): a service of that name is converted already (give one an `id`)", f.path);
                notes.push(line);
                continue;
            }
            match service(name, s, &defaults, etc_services, &mut service_notes) {
                Ok(mut out) => {
                    if !out.disable {
                        if let Some(other) = outs
                            .iter()
                            .find(|o| !o.disable && overlaps(o.bind, out.bind))
                        {
                            service_notes.push(format!("service {}: bind {} overlaps service {}'s {} (xinetd could not bind both either): written with disable: true", out.key, out.bind, other.key, other.bind));
                            out.why_disabled
                                .push(format!("bind overlaps service {}", other.key));
                            out.disable = true;
                        }
                    }
                    notes.append(&mut service_notes);
                    outs.push(out);
                }
                Err(line) => notes.push(line),
            }
        }
    }

    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    if outs.is_empty() {
        let what = if any_service {
            "no service checkd can run (the not-converted lines say why)"
        } else if notes
            .iter()
            .any(|n| n.contains("(not followed: give its files"))
        {
            "no service block (include and includedir are not followed: give the files in them too)"
        } else {
            "no service block to convert"
        };
        let (path, message) = match paths[..] {
            [one] => (one.to_owned(), what.to_owned()),
            _ => (
                String::new(),
                format!("the {} files given: {what}", paths.len()),
            ),
        };
        return Err(ConvertError {
            path,
            line: None,
            message,
            not_converted: notes,
        });
    }
    let mut y = format!(
        "# Converted from xinetd's {} by `checkd import-xinetd`;\n# what it could not carry over was listed on stderr (`not converted:` lines).\n# xinetd has no `checkers`: add the balancers' addresses to a service's\n# checkers so that no other peer's flood (cps) can pause their checks.\nservices:\n",
        comment(&paths.join(" "))
    );
    for o in &outs {
        emit(o, &mut y);
    }
    Ok(Converted {
        yaml: y,
        not_converted: notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LogItem};

    /// The status script's service file from the classic HAProxy + Mycat guides.
    const MYCAT_STATUS: &str = "# default: on
# description: mycat_status tells HAProxy whether Mycat can serve
service mycat_status
{
        flags           = REUSE
        socket_type     = stream
        port            = 48700
        wait            = no
        user            = nobody
        server          = /usr/local/bin/mycat_status
        log_on_failure  += USERID
        disable         = no
        only_from       = 0.0.0.0/0
        per_source      = UNLIMITED
}
";

    /// A RHEL-style xinetd.conf, with its services in the same file.
    const XINETD_CONF: &str = "#
# This is the master xinetd configuration file.
defaults
{
	log_type	= SYSLOG daemon info
	log_on_failure	= HOST
	log_on_success	= PID HOST DURATION EXIT
	cps		= 50 10
	instances	= 50
	per_source	= 10
	v6only		= no
	groups		= yes
	umask		= 002
	only_from	= 10.1.0.0 127.0.0.1
	disabled	= telnet
}

includedir /etc/xinetd.d

service mysqlchk
{
	socket_type	= stream
	protocol	= tcp
	port		= 9200
	wait		= no
	user		= nobody
	server		= /usr/local/bin/clustercheck
	server_args	= clustercheckuser s3cret! 1 /var/log/mysqlchk.log
	log_on_success	-= PID EXIT
	log_on_success	+= TRAFFIC
	only_from	+= 192.168.{1,2}
	only_from	-= 127.0.0.1
	no_access	= 10.1.0.66
	instances	= UNLIMITED
	cps		= 100 5
	flags		= REUSE NODELAY
	env		= LANG=C
}

service echo
{
	id		= echo-dgram
	type		= INTERNAL
	socket_type	= dgram
	wait		= yes
}

service telnet
{
	socket_type	= stream
	wait		= no
	user		= root
	server		= /usr/sbin/in.telnetd
	port		= 23
}
";

    fn input(path: &str, text: &str) -> Input {
        Input {
            path: path.into(),
            text: text.into(),
        }
    }

    fn config(out: &Converted) -> Config {
        hastack_rt::config::parse::<Config>(std::path::Path::new("imported.yaml"), &out.yaml)
            .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml))
    }

    fn one(text: &str) -> (Config, Converted) {
        let out = convert(&[input("svc", text)], None).unwrap();
        (config(&out), out)
    }

    fn service_file(body: &str) -> String {
        format!("service s\n{{\n\tsocket_type = stream\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n\tport = 7000\n{body}}}\n")
    }

    fn net(s: &str) -> crate::config::Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn the_classic_mycat_status_file_converts_to_a_valid_config() {
        let (cfg, out) = one(MYCAT_STATUS);
        assert!(out
            .yaml
            .starts_with("# Converted from xinetd's svc by `checkd import-xinetd`"));
        // Nothing of xinetd's maps to checkers: the output says to add them.
        assert!(
            out.yaml.contains("# xinetd has no `checkers`"),
            "{}",
            out.yaml
        );
        let s = &cfg.services["mycat_status"];
        assert!(s.checkers.is_empty());
        assert_eq!(s.kind, crate::config::Kind::Exec);
        assert_eq!(s.bind, "0.0.0.0:48700".parse().unwrap());
        assert!(!s.disable);
        assert_eq!(
            s.server.as_deref(),
            Some(std::path::Path::new("/usr/local/bin/mycat_status"))
        );
        assert!(s.server_args.is_empty());
        assert_eq!(s.user.as_deref(), Some("nobody"));
        assert_eq!(s.only_from, [net("0.0.0.0/0")]);
        assert!(s.no_access.is_empty());
        assert_eq!(s.per_source, None, "UNLIMITED is checkd's default");
        assert_eq!(s.log_on_failure, [LogItem::Host]);
        assert_eq!(
            out.not_converted,
            [
                "service mycat_status: log_on_failure += USERID changes xinetd.conf's defaults, which are not among the files given: taken relative to checkd's default [HOST] (give /etc/xinetd.conf too)",
                "service mycat_status: log_on_failure USERID (checkd does not ask the peer's identd)",
            ]
        );
    }

    #[test]
    fn a_full_xinetd_conf_applies_its_defaults() {
        let out = convert(&[input("/etc/xinetd.conf", XINETD_CONF)], None).unwrap();
        let cfg = config(&out);
        assert_eq!(cfg.services.len(), 2, "{}", out.yaml);

        let s = &cfg.services["mysqlchk"];
        assert_eq!(s.bind, "0.0.0.0:9200".parse().unwrap());
        assert_eq!(
            s.server_args,
            ["clustercheckuser", "s3cret!", "1", "/var/log/mysqlchk.log"]
        );
        // only_from: the defaults' 10.1.0.0 (xinetd's 10.1.0.0/16), plus
        // 192.168.1.0/24 and 192.168.2.0/24, minus 127.0.0.1.
        assert_eq!(
            s.only_from,
            [
                net("10.1.0.0/16"),
                net("192.168.1.0/24"),
                net("192.168.2.0/24")
            ]
        );
        assert_eq!(s.no_access, [net("10.1.0.66/32")]);
        assert_eq!(s.instances, UNLIMITED);
        assert_eq!(s.per_source, Some(10), "from defaults");
        assert_eq!(
            (s.cps.rate, s.cps.pause),
            (100, hastack_rt::Duration::from_secs(5))
        );
        assert_eq!(
            s.log_on_success,
            [LogItem::Host, LogItem::Duration, LogItem::Traffic]
        );
        assert_eq!(s.log_on_failure, [LogItem::Host]);

        let t = &cfg.services["telnet"];
        assert!(t.disable, "defaults' disabled lists it");
        assert_eq!((t.cps.rate, t.instances), (50, 50));
        assert!(
            out.yaml
                .contains("disable: true  # listed in defaults' disabled"),
            "{}",
            out.yaml
        );

        let notes = out.not_converted.join("\n");
        for expected in [
            "/etc/xinetd.conf:18: includedir /etc/xinetd.d (not followed: give its files to import-xinetd too)",
            "defaults: log_type = SYSLOG daemon info (checkd writes its own log)",
            "defaults: groups = yes (no checkd equivalent)",
            "defaults: umask = 002 (no checkd equivalent)",
            "service mysqlchk: env = LANG=C (checkd sets no environment for the server)",
            "service mysqlchk: flags NODELAY (no checkd equivalent)",
            "service mysqlchk: instances = UNLIMITED (checkd always has a limit): written as 10000",
            "service echo-dgram (whole service): type = INTERNAL (xinetd's built-in services); socket_type = dgram (checkd serves TCP streams only); wait = yes",
        ] {
            assert!(notes.contains(expected), "{expected}\n--\n{notes}");
        }
        assert!(
            !notes.contains("v6only"),
            "v6only = no is the default: {notes}"
        );
        assert!(
            !notes.contains("relative to"),
            "the defaults are given: {notes}"
        );
        assert!(!notes.contains("REUSE"), "{notes}");
    }

    #[test]
    fn defaults_in_one_file_apply_to_services_in_another() {
        let conf = "defaults\n{\n\tinstances = 20\n\tlog_on_failure = HOST ATTEMPT\n\tenabled = mycat_status\n}\n";
        let other = service_file("");
        let out = convert(
            &[
                input("xinetd.conf", conf),
                input("mycat_status", MYCAT_STATUS),
                input("s", &other),
            ],
            None,
        )
        .unwrap();
        let cfg = config(&out);
        let m = &cfg.services["mycat_status"];
        assert_eq!(m.instances, 20);
        assert_eq!(m.log_on_failure, [LogItem::Host, LogItem::Attempt]);
        assert!(!m.disable);
        assert!(cfg.services["s"].disable, "not in defaults' enabled");
        assert!(
            !out.not_converted.iter().any(|n| n.contains("relative to")),
            "{:?}",
            out.not_converted
        );
    }

    #[test]
    fn addresses_follow_xinetd_forms() {
        let (cfg, out) = one(&service_file(
            "\tonly_from = 10.0.0.{1,2} 172.16.0.0 ::1 fd00::/8 0.0.0.0/0 db.example .example.com\n\tno_access = 10.0.0.2 bastion\n",
        ));
        let s = &cfg.services["s"];
        assert_eq!(
            s.only_from,
            [
                net("10.0.0.1/32"),
                net("10.0.0.2/32"),
                net("172.16.0.0/16"),
                net("::1/128"),
                net("fd00::/8"),
                net("0.0.0.0/0"),
            ]
        );
        assert_eq!(s.no_access, [net("10.0.0.2/32")]);
        let notes = out.not_converted.join("\n");
        assert!(notes.contains("service s: only_from db.example (a host or network name; checkd matches addresses only)"), "{notes}");
        assert!(
            notes.contains("service s: only_from .example.com"),
            "{notes}"
        );
        assert!(notes.contains("service s: no_access bastion (a host or network name; checkd matches addresses, so it is NOT denied)"), "{notes}");
    }

    #[test]
    fn an_only_from_that_allows_nobody_stays_so() {
        // xinetd: `only_from =` with no value lets nobody in; checkd's empty
        // only_from would let everyone in.
        for body in ["\tonly_from =\n", "\tonly_from = db.example\n"] {
            let (cfg, _) = one(&service_file(body));
            let s = &cfg.services["s"];
            assert!(s.only_from.is_empty(), "{body}");
            assert_eq!(s.no_access, [net("0.0.0.0/0"), net("::/0")], "{body}");
        }
    }

    #[test]
    fn a_service_without_port_is_looked_up_in_etc_services() {
        let text = "service mysqlchk\n{\n\tsocket_type = stream\n\twait = no\n\tuser = nobody\n\tserver = /usr/local/bin/clustercheck\n}\n";
        let services = "# /etc/services\nmysql\t\t3306/tcp\nmysqlchk\t9200/udp\nmysql-check\t9200/tcp\tmysqlchk # alias\n";
        let out = convert(&[input("mysqlchk", text)], Some(services)).unwrap();
        assert_eq!(
            config(&out).services["mysqlchk"].bind,
            "0.0.0.0:9200".parse().unwrap()
        );

        for etc in [None, Some("mysql 3306/tcp\n")] {
            let out = convert(&[input("mysqlchk", text)], etc).unwrap();
            let s = &config(&out).services["mysqlchk"];
            assert!(s.disable && s.bind.port() == 0, "{}", out.yaml);
            assert!(
                out.not_converted
                    .iter()
                    .any(|n| n.starts_with("service mysqlchk: no port, and ")),
                "{:?}",
                out.not_converted
            );
        }
    }

    #[test]
    fn services_checkd_cannot_run_are_left_out_with_the_reason() {
        let text = format!(
            "{}service fwd\n{{\n\tsocket_type = stream\n\twait = no\n\tport = 8080\n\tredirect = 10.0.0.1 80\n}}\nservice rel\n{{\n\tsocket_type = stream\n\twait = no\n\tport = 8081\n\tserver = bin/x\n}}\nservice u\n{{\n\tsocket_type = stream\n\tprotocol = udp\n\twait = no\n\tport = 8082\n\tserver = /bin/x\n}}\n",
            service_file("")
        );
        let (cfg, out) = one(&text);
        assert_eq!(cfg.services.keys().collect::<Vec<_>>(), ["s"]);
        let notes = out.not_converted.join("\n");
        assert!(notes.contains("service fwd (whole service): redirect = 10.0.0.1 80 (checkd does not forward connections); no server"), "{notes}");
        assert!(
            notes.contains("service rel (whole service): server bin/x is not an absolute path"),
            "{notes}"
        );
        assert!(
            notes.contains("service u (whole service): protocol = udp"),
            "{notes}"
        );
    }

    #[test]
    fn attributes_without_an_equivalent_are_listed_one_a_line() {
        let (cfg, out) = one(&service_file(
            "\tflags = REUSE KEEPALIVE IDONLY\n\tbanner = /etc/banner\n\trlimit_as = 8M\n\taccess_times = 2:00-8:59\n\tnice = 10\n\tlog_on_success = HOST USERID\n\tcolour = blue\n\tport += 1\n",
        ));
        assert_eq!(cfg.services["s"].log_on_success, [LogItem::Host]);
        assert_eq!(
            out.not_converted,
            [
                "service s: port += 1 (xinetd ignores += on port, and so does this conversion)",
                "service s: banner = /etc/banner (checkd sends no banner)",
                "service s: rlimit_as = 8M (checkd sets no resource limits)",
                "service s: access_times = 2:00-8:59 (checkd has no time windows)",
                "service s: nice = 10 (no checkd equivalent)",
                "service s: colour = blue (not an xinetd attribute; xinetd ignores it too)",
                "service s: flags KEEPALIVE (no checkd equivalent)",
                "service s: flags IDONLY (an access restriction: checkd does not ask the peer's identd)",
                "service s: log_on_success USERID (checkd does not ask the peer's identd)",
            ]
        );
    }

    #[test]
    fn limits_and_binds_checkd_must_express_differently() {
        let text = format!(
            "{}service t\n{{\n\tsocket_type = stream\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n\tbind = 127.0.0.1\n\tport = 7000\n\tcps = 0 3\n\tinstances = 0\n}}\nservice v6\n{{\n\tsocket_type = stream\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n\tflags = IPv6\n\tport = 7001\n}}\nservice named\n{{\n\tsocket_type = stream\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n\tinterface = db1.example\n\tport = 7002\n}}\n",
            service_file("")
        );
        let (cfg, out) = one(&text);
        let t = &cfg.services["t"];
        assert!(t.disable);
        assert_eq!(t.cps.rate, UNLIMITED);
        assert_eq!(cfg.services["v6"].bind, "[::]:7001".parse().unwrap());
        assert!(!cfg.services["v6"].disable);
        assert!(cfg.services["named"].disable);
        let notes = out.not_converted.join("\n");
        assert!(
            notes.contains("service t: instances = 0 (xinetd refuses every connection)"),
            "{notes}"
        );
        assert!(
            notes.contains("service t: cps = 0 3 (xinetd: no rate limit"),
            "{notes}"
        );
        assert!(
            notes.contains("service named: bind = db1.example (a host name"),
            "{notes}"
        );

        // Two enabled services on one port: the second is written disabled.
        let text = format!("{}service t\n{{\n\tsocket_type = stream\n\twait = no\n\tuser = nobody\n\tserver = /bin/cat\n\tbind = 127.0.0.1\n\tport = 7000\n}}\n", service_file(""));
        let (cfg, out) = one(&text);
        assert!(!cfg.services["s"].disable && cfg.services["t"].disable);
        assert!(
            out.not_converted[0]
                .starts_with("service t: bind 127.0.0.1:7000 overlaps service s's 0.0.0.0:7000"),
            "{:?}",
            out.not_converted
        );
    }

    #[test]
    fn strings_are_quoted_safely() {
        let (cfg, _) = one(&service_file(
            "\tserver_args = it's \"quoted\" #not-a-comment a\u{1}b [x] {y}: *z &w\n\tid = we'ird:#name\u{80}\n",
        ));
        let s = &cfg.services["we'ird:#name\u{80}"];
        assert_eq!(
            s.server_args,
            [
                "it's",
                "\"quoted\"",
                "#not-a-comment",
                "a\u{1}b",
                "[x]",
                "{y}:",
                "*z",
                "&w"
            ]
        );
    }

    #[test]
    fn nameinargs_drops_argv0() {
        let (cfg, out) = one(&service_file(
            "\tflags = NAMEINARGS\n\tserver_args = in.ftpd -l\n",
        ));
        assert_eq!(cfg.services["s"].server_args, ["-l"]);
        assert!(
            out.not_converted[0].contains("NAMEINARGS: the server's argv[0] in.ftpd"),
            "{:?}",
            out.not_converted
        );
    }

    #[test]
    fn malformed_input_names_file_and_line() {
        let err = |text: &str| convert(&[input("f", text)], None).unwrap_err().to_string();
        assert_eq!(
            err("service s\nport = 1\n"),
            "f:2: expected `{` on the line after `service s`, got \"port = 1\""
        );
        assert_eq!(
            err("service s\n{\n\tport = 1\n"),
            "f:1: service s: no closing `}`"
        );
        assert_eq!(
            err("\n\n{\n"),
            "f:3: expected `service NAME`, `defaults`, `include` or `includedir`, got \"{\""
        );
        assert_eq!(
            err("service s\n{\n\tport=1\n}\n"),
            "f:3: \"port=1\": xinetd needs a space between the attribute name and its operator"
        );
        assert_eq!(
            err("service s\n{\n\tport 1\n}\n"),
            "f:3: expected `=`, `+=` or `-=` after port, got \"port 1\""
        );
        assert_eq!(err("service s\n{\n\tport = 48700 # status\n}\n"), "f:3: port takes 1 value, got 3 (xinetd takes `#` as a comment only at the start of a line)");
        assert_eq!(
            err("service s\n{\n\tport = 70000\n}\n"),
            "f:3: port must be a number 0-65535, got \"70000\""
        );
        assert_eq!(
            err("service s\n{\n\twait = maybe\n}\n"),
            "f:3: wait must be yes or no, got \"maybe\""
        );
        assert_eq!(err("service s\n{\n\tcps = 50\n}\n"), "f:3: cps takes 2 values, got 1 (like `cps = 50 10`: connections per second, then the pause in seconds)");
        assert_eq!(err("service s\n{\n\tlog_on_success = HOST SPEED\n}\n"), "f:3: log_on_success: unknown item \"SPEED\" (xinetd's are HOST, PID, DURATION, EXIT, TRAFFIC, USERID)");
        assert!(err("service s\n{\n\tonly_from = 10.0.{1, 2}\n}\n")
            .starts_with("f:3: only_from: \"10.0.{1,\" is not a factorized address"));
        assert!(err("service s\n{\n\tonly_from = 10.1\n}\n")
            .starts_with("f:3: only_from: \"10.1\" is not an address"));
        assert_eq!(err("# nothing\n"), "f: no service block to convert");
        let two = convert(&[input("a", "# nothing\n"), input("b", "")], None).unwrap_err();
        assert_eq!(
            two.to_string(),
            "the 2 files given: no service block to convert"
        );
        assert_eq!(err("includedir /etc/xinetd.d\n"), "f: no service block (include and includedir are not followed: give the files in them too)");
        let internal = convert(
            &[input(
                "f",
                "service echo\n{\n\tsocket_type = dgram\n\twait = yes\n\ttype = INTERNAL\n}\n",
            )],
            None,
        )
        .unwrap_err();
        assert_eq!(
            internal.to_string(),
            "f: no service checkd can run (the not-converted lines say why)"
        );
        assert!(
            internal.not_converted[0].starts_with("service echo (whole service): type = INTERNAL")
        );
    }

    #[test]
    fn xinetd_address_rules() {
        let nets = |v: &str| {
            parse_addr(v)
                .unwrap()
                .into_iter()
                .map(|a| match a {
                    Addr::Net(n) => n.to_string(),
                    Addr::Name(n) => format!("name {n}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(nets("0.0.0.0"), ["0.0.0.0/0"]);
        assert_eq!(nets("10.0.0.0"), ["10.0.0.0/8"]);
        assert_eq!(nets("128.138.12.0"), ["128.138.12.0/24"]);
        assert_eq!(nets("10.0.1.5"), ["10.0.1.5/32"]);
        assert_eq!(nets("::"), ["::/0"]);
        assert_eq!(nets("10.1.2.3/16"), ["10.1.0.0/16"]);
        assert_eq!(
            nets("128.138.{200,201}"),
            ["128.138.200.0/24", "128.138.201.0/24"]
        );
        assert_eq!(nets("10.{1}"), ["10.1.0.0/16"]);
        assert_eq!(nets("localhost"), ["name localhost"]);
        assert!(parse_addr("10.0.0.{1,,2}").is_err());
        assert!(parse_addr("10.0.0.{256}").is_err());
        assert!(parse_addr("1.2.3.4.{5}").is_err());
        assert!(parse_addr("10.0.0{1}").is_err());
    }
}
