//! `vrrpd import-keepalived FILE`: the VRRP part of a keepalived config as a
//! vrrpd config on stdout, and one line on stderr (and a comment at the top
//! of the YAML) for every directive that could not be converted or was
//! converted approximately.
//!
//! vrrpd's keys are keepalived's, so most of the work is reading
//! keepalived's syntax: blocks in braces, `{` on the keyword's line or the
//! next, `#` and `!` comments, double quotes, and `include`. What keepalived
//! would refuse (a bad number or address, unbalanced braces, an include that
//! cannot be read) is an error naming the file and line; what it accepts and
//! vrrpd has no use for is a note. Anything the conversion writes is checked
//! against vrrpd's own validation, so the output always loads.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Command};
use hastack_rt::emit::{comment, read_input, report, yaml_str};
pub use hastack_rt::emit::{ConvertError, Converted};
use hastack_rt::{ExitCode, Subcommand};

use crate::config::Vip;

pub fn subcommand() -> Subcommand {
    Subcommand {
        command: Command::new("import-keepalived")
            .about("Convert the VRRP part of a keepalived config (keepalived.conf) to a vrrpd config on stdout; what cannot be converted, or is converted approximately, is listed on stderr and as comments in the output")
            .arg(Arg::new("file").value_name("FILE").required(true)),
        run,
    }
}

fn run(m: &ArgMatches) -> ExitCode {
    match read_input(m, "file") {
        Ok((path, text)) => report(convert(&path, &text, &mut |p| std::fs::read_to_string(p))),
        Err(code) => code,
    }
}

/// Reads an included file. The command reads the disk; tests and the fuzz
/// target pass their own so that arbitrary input never opens real files.
pub type ReadFile<'a> = dyn FnMut(&Path) -> std::io::Result<String> + 'a;

// ------------------------------------------------------------- tokenizing

/// Where a word was written: the file (an index into `Ctx::files`) and line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    file: usize,
    line: usize,
}

#[derive(Clone, Debug)]
struct Word {
    text: String,
    /// Written in double quotes: never a brace, comment or keyword.
    quoted: bool,
    loc: Loc,
}

impl Word {
    fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

/// keepalived refuses deeper include chains too; the limit also stops loops.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Far beyond any real config; keeps hostile input from exhausting the stack.
const MAX_BLOCK_DEPTH: usize = 16;

/// Splits one line into words: blanks separate, `{` and `}` are words of
/// their own, `#` or `!` at the start of a word comments out the rest, and
/// `"..."` quotes (without escapes, as keepalived reads it).
fn split_line(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut open = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                open = true;
                quoted = true;
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    word.push(q);
                }
                if !closed {
                    return Err("unmatched quote \"".into());
                }
            }
            c if c.is_whitespace() || c == '{' || c == '}' => {
                if open {
                    words.push((std::mem::take(&mut word), quoted));
                    open = false;
                    quoted = false;
                }
                if c != '{' && c != '}' {
                    continue;
                }
                words.push((c.to_string(), false));
            }
            '#' | '!' if !open => break,
            c => {
                open = true;
                word.push(c);
            }
        }
    }
    if open {
        words.push((word, quoted));
    }
    Ok(words)
}

struct Tokenizer<'r, 'f> {
    read: &'r mut ReadFile<'f>,
    /// Every file read, as notes and errors name it.
    files: Vec<String>,
    words: Vec<Word>,
    notes: Vec<String>,
}

impl Tokenizer<'_, '_> {
    fn err(&self, loc: Loc, message: String) -> ConvertError {
        ConvertError {
            path: self.files[loc.file].clone(),
            line: Some(loc.line),
            message,
            not_converted: Vec::new(),
        }
    }

    /// Reads `text` as the file `path`; `chain` is the includes that led here.
    fn file(&mut self, path: &str, text: &str, chain: &[PathBuf]) -> Result<(), ConvertError> {
        let file = self.files.len();
        self.files.push(path.to_owned());
        let mut lines = text.lines().enumerate();
        while let Some((i, raw)) = lines.next() {
            let loc = Loc { file, line: i + 1 };
            // A trailing backslash continues the line.
            let mut line = raw.to_owned();
            while line.ends_with('\\') {
                line.pop();
                match lines.next() {
                    Some((_, next)) => {
                        line.push(' ');
                        line.push_str(next);
                    }
                    None => break,
                }
            }
            let words = split_line(&line).map_err(|e| self.err(loc, e))?;
            if words.first().is_some_and(|(w, q)| !q && w == "include") {
                self.include(path, &words, loc, chain)?;
                continue;
            }
            self.words.extend(
                words
                    .into_iter()
                    .map(|(text, quoted)| Word { text, quoted, loc }),
            );
        }
        Ok(())
    }

    fn include(
        &mut self,
        from: &str,
        words: &[(String, bool)],
        loc: Loc,
        chain: &[PathBuf],
    ) -> Result<(), ConvertError> {
        let [_, (target, _)] = words else {
            return Err(self.err(loc, "include needs one file name".into()));
        };
        let dir = Path::new(from).parent().unwrap_or(Path::new(""));
        let path = dir.join(target);
        if target.contains(['*', '?', '[']) {
            self.notes.push(format!(
                "{}:{}: include {} (glob patterns are not expanded: import the matching files' vrrp blocks by naming each in its own include)",
                self.files[loc.file],
                loc.line,
                comment(target)
            ));
            return Ok(());
        }
        if chain.len() >= MAX_INCLUDE_DEPTH || chain.contains(&path) {
            return Err(self.err(
                loc,
                format!(
                    "include {}: includes nested more than {MAX_INCLUDE_DEPTH} deep, or a loop",
                    comment(target)
                ),
            ));
        }
        let text = (self.read)(&path).map_err(|e| {
            self.err(
                loc,
                format!(
                    "include {}: cannot read {}: {e}",
                    comment(target),
                    path.display()
                ),
            )
        })?;
        let mut chain = chain.to_vec();
        chain.push(path.clone());
        self.file(&path.to_string_lossy(), &text, &chain)
    }
}

// ---------------------------------------------------------------- parsing

/// One directive: its words and, for `keyword ... { ... }`, its block.
#[derive(Debug)]
struct Stmt {
    words: Vec<Word>,
    block: Option<Vec<Stmt>>,
    loc: Loc,
}

impl Stmt {
    fn kw(&self) -> &str {
        &self.words[0].text
    }

    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(|w| w.text.as_str())
    }

    /// The directive as a note shows it.
    fn shown(&self) -> String {
        let words: Vec<&str> = self.words.iter().map(|w| w.text.as_str()).collect();
        let mut s = words.join(" ");
        if self.block.is_some() {
            s.push_str(" { ... }");
        }
        s
    }
}

/// Statements up to the `}` closing the block opened at `open` (the end of
/// the input at the top level).
fn parse_block(
    words: &[Word],
    i: &mut usize,
    open: Option<Loc>,
    depth: usize,
    t: &Tokenizer,
) -> Result<Vec<Stmt>, ConvertError> {
    let mut out = Vec::new();
    loop {
        let Some(w) = words.get(*i) else {
            return match open {
                Some(o) => Err(t.err(o, "unbalanced braces: this `{` is never closed".into())),
                None => Ok(out),
            };
        };
        if w.is("}") {
            if open.is_none() {
                return Err(t.err(
                    w.loc,
                    "unbalanced braces: `}` without a `{` before it".into(),
                ));
            }
            *i += 1;
            return Ok(out);
        }
        if w.is("{") {
            return Err(t.err(w.loc, "`{` without a keyword before it".into()));
        }
        let loc = w.loc;
        let start = *i;
        while words
            .get(*i)
            .is_some_and(|w| w.loc == loc && !w.is("{") && !w.is("}"))
        {
            *i += 1;
        }
        let stmt_words = words[start..*i].to_vec();
        let block = match words.get(*i) {
            Some(b) if b.is("{") => {
                if depth >= MAX_BLOCK_DEPTH {
                    return Err(t.err(
                        b.loc,
                        format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
                    ));
                }
                *i += 1;
                Some(parse_block(words, i, Some(b.loc), depth + 1, t)?)
            }
            _ => None,
        };
        out.push(Stmt {
            words: stmt_words,
            block,
            loc,
        });
    }
}

// ----------------------------------------------------------------- values

/// keepalived's seconds (`1`, `0.1`) in milliseconds. keepalived keeps
/// microseconds; vrrpd's finest unit anywhere is the v3 centisecond, so a
/// finer fraction is an error rather than a silent rounding.
fn seconds(kw: &str, v: Option<&str>) -> Result<u64, String> {
    let v = v.ok_or_else(|| format!("{kw} needs a number of seconds"))?;
    let bad = || format!("{kw}: expected seconds like 1 or 0.1, got {v:?}");
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(bad());
    }
    if frac.trim_end_matches('0').len() > 3 {
        return Err(format!(
            "{kw}: {v} is finer than a millisecond, which vrrpd cannot write"
        ));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac = format!("{:0<3}", frac.trim_end_matches('0'));
    let ms: u64 = frac.parse().map_err(|_| bad())?;
    // A year: beyond any interval or delay that means something.
    whole
        .checked_mul(1000)
        .and_then(|s| s.checked_add(ms))
        .filter(|ms| *ms <= 365 * 86_400_000)
        .ok_or_else(|| format!("{kw}: {v} seconds is out of range"))
}

fn number<T: std::str::FromStr>(kw: &str, v: Option<&str>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{kw} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{kw}: expected a whole number, got {v:?}"))
}

/// A number in the range vrrpd takes (keepalived's is the same or wider;
/// a value outside ours must be looked at, not guessed).
fn in_range(kw: &str, v: Option<&str>, lo: i64, hi: i64) -> Result<i64, String> {
    let n: i64 = number(kw, v)?;
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{kw}: vrrpd takes {lo} to {hi}, got {n}"))
    }
}

fn ip(kw: &str, v: Option<&str>) -> Result<IpAddr, String> {
    let v = v.ok_or_else(|| format!("{kw} needs an address"))?;
    v.parse()
        .map_err(|_| format!("{kw}: {v:?} is not an IP address"))
}

/// A duration as vrrpd reads it.
fn dur(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

// ------------------------------------------------------------- converting

struct Ctx<'a> {
    files: &'a [String],
    notes: Vec<String>,
}

impl Ctx<'_> {
    fn at(&self, loc: Loc) -> String {
        format!("{}:{}", self.files[loc.file], loc.line)
    }

    fn note(&mut self, loc: Loc, who: &str, what: &str, why: &str) {
        let at = self.at(loc);
        self.notes
            .push(format!("{at}: {}: {} ({why})", comment(who), comment(what)));
    }

    /// A note about a whole block.
    fn note_block(&mut self, s: &Stmt, why: &str) {
        let at = self.at(s.loc);
        self.notes
            .push(format!("{at}: {} ({why})", comment(&s.shown())));
    }

    fn err(&self, loc: Loc, message: String) -> ConvertError {
        err_at(self.files, loc, message)
    }
}

fn err_at(files: &[String], loc: Loc, message: String) -> ConvertError {
    ConvertError {
        path: files[loc.file].clone(),
        line: Some(loc.line),
        message,
        not_converted: Vec::new(),
    }
}

/// A tracked thing as an instance names it.
#[derive(Clone, Debug)]
struct Track {
    name: String,
    weight: Option<i64>,
    loc: Loc,
}

#[derive(Default)]
struct Notify {
    /// keepalived's keyword and the command, in the order written.
    scripts: Vec<(&'static str, String)>,
}

impl Notify {
    /// Takes `notify*` directives; false for any other keyword.
    fn take(&mut self, s: &Stmt, who: &str, ctx: &mut Ctx) -> Result<bool, String> {
        let key = match s.kw() {
            "notify_master" => "notify_master",
            "notify_backup" => "notify_backup",
            "notify_fault" => "notify_fault",
            "notify_stop" => "notify_stop",
            "notify" => "notify",
            _ => return Ok(false),
        };
        let cmd = s
            .arg(1)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| format!("{key} needs a command"))?;
        if s.words.len() > 2 {
            // keepalived reads the words after an unquoted or quoted command
            // as the user and group to run it as; a command with arguments
            // must be quoted.
            ctx.note(
                s.loc,
                who,
                &s.shown(),
                "the user and group to run it as: vrrpd runs scripts as its own user; a command with arguments must be in double quotes",
            );
        }
        self.scripts.retain(|(k, _)| *k != key);
        self.scripts.push((key, cmd.to_owned()));
        Ok(true)
    }

    fn emit(&self, y: &mut String, indent: &str) {
        for (k, v) in &self.scripts {
            let _ = writeln!(y, "{indent}{k}: {}", yaml_str(v));
        }
    }
}

struct Script {
    script: String,
    /// vrrpd keys and their YAML values, in the order written.
    fields: Vec<(&'static str, String)>,
}

struct Process {
    process: String,
    param_match: Option<String>,
    fields: Vec<(&'static str, String)>,
}

struct Group {
    loc: Loc,
    members: Vec<(String, Loc)>,
    notify: Notify,
}

#[derive(Default)]
struct Instance {
    interface: Option<String>,
    vrid: Option<u8>,
    version: Option<(u8, Loc)>,
    advert_ms: Option<(u64, Loc)>,
    vips: Vec<(Vip, Loc)>,
    unicast_src: Option<(IpAddr, Loc)>,
    peers: Vec<(IpAddr, Loc)>,
    auth_pass: Option<(String, Loc)>,
    track_interface: Vec<Track>,
    track_script: Vec<Track>,
    track_process: Vec<Track>,
    /// Other vrrpd keys and their YAML values, in the order written.
    fields: Vec<(&'static str, String)>,
    notify: Notify,
}

/// What `global_defs` carries over: the default VRRP version and GARP
/// timing for instances that do not set their own.
#[derive(Default)]
struct Globals {
    version: Option<u8>,
    garp: Vec<(&'static str, String)>,
}

fn set(fields: &mut Vec<(&'static str, String)>, key: &'static str, v: String) {
    fields.retain(|(k, _)| *k != key);
    fields.push((key, v));
}

/// A `keyword { ... }` directive's block, or a note that it has none.
fn block<'s>(s: &'s Stmt, who: &str, ctx: &mut Ctx) -> Option<&'s [Stmt]> {
    if s.block.is_none() {
        ctx.note(
            s.loc,
            who,
            &s.shown(),
            "expected a block in braces: not converted",
        );
    }
    s.block.as_deref()
}

/// Why keepalived's directives with no vrrpd equivalent are left out.
fn unsupported_why(kw: &str) -> Option<&'static str> {
    Some(match kw {
        "virtual_server" | "virtual_server_group" => {
            "the whole block: virtual servers (IPVS) are lbd's job: convert HAProxy's config with `lbd import-haproxy`, or write lbd's frontends and backends (docs/lbd.md)"
        }
        "virtual_routes" | "virtual_rules" | "static_routes" | "static_rules" | "static_ipaddress" => {
            "vrrpd adds only VIPs: set routes, rules and static addresses in the system's network config, or in a notify_master script"
        }
        "track_file" | "vrrp_track_file" => {
            "vrrpd tracks no files: a vrrp_script can test the file (`test \"$(cat FILE)\" = 0`)"
        }
        "track_bfd" | "bfd_instance" => "vrrpd has no BFD",
        "smtp_alert" | "notification_email" | "notification_email_from" | "smtp_server"
        | "smtp_connect_timeout" | "smtp_helo_name" => {
            "vrrpd sends no mail: a notify script can"
        }
        "vrrp_strict" | "strict_mode" => {
            "keepalived's strict RFC mode refuses unicast peers and v2 authentication and, with Accept_Mode off, adds firewall rules so that a master which does not own the VIPs drops traffic to them; vrrpd adds no firewall rules, so a master answers on its VIPs (as keepalived's `accept`)"
        }
        "accept" | "no_accept" => {
            "RFC 5798's Accept_Mode: vrrpd adds no firewall rules, so a master always answers on its VIPs (keepalived's `accept`)"
        }
        "native_ipv6" => {
            "vrrpd needs no flag: an instance with IPv6 VIPs is an IPv6 instance, and needs version 3"
        }
        "use_vmac" | "vmac_xmit_base" => {
            "vrrpd creates no VRRP MAC (macvlan) interface: the VIPs go on the interface itself and gratuitous ARP moves them"
        }
        "mcast_src_ip" => "no vrrpd equivalent: the source address of multicast adverts",
        "router_id" => "vrrpd has no router id: its logs and /status name the host",
        "enable_script_security" | "script_user" | "user" => {
            "vrrpd runs scripts as its own user: set User= in its systemd unit"
        }
        "garp_lower_prio_delay" | "garp_lower_prio_repeat" | "vrrp_garp_lower_prio_delay"
        | "vrrp_garp_lower_prio_repeat" | "vrrp_garp_interval" | "vrrp_gna_interval"
        | "garp_extra_if" => "no vrrpd equivalent for this GARP setting",
        "virtual_ipaddress_excluded" => {
            "vrrpd carries every VIP in its adverts: move the addresses to virtual_ipaddress, or to another instance of their family"
        }
        "init_fail" => "vrrpd starts a script as healthy and runs it at once",
        "debug" | "lvs_sync_daemon" | "lvs_sync_daemon_interface" => "no vrrpd equivalent",
        _ => return None,
    })
}

fn unknown(s: &Stmt, who: &str, ctx: &mut Ctx) {
    let why =
        unsupported_why(s.kw()).unwrap_or("unknown to this conversion, or no vrrpd equivalent");
    ctx.note(s.loc, who, &s.shown(), why);
}

/// The name after `vrrp_instance`, `vrrp_script`, ...
fn block_name(s: &Stmt, ctx: &Ctx) -> Result<String, ConvertError> {
    match &s.words[..] {
        [_, name] if !name.text.is_empty() => Ok(name.text.clone()),
        _ => Err(ctx.err(s.loc, format!("{} needs one name", s.kw()))),
    }
}

fn global_defs(s: &Stmt, g: &mut Globals, ctx: &mut Ctx) -> Result<(), ConvertError> {
    let who = "global_defs";
    let Some(items) = block(s, who, ctx) else {
        return Ok(());
    };
    for d in items {
        let r = (|| -> Result<(), String> {
            let v = d.arg(1);
            match d.kw() {
                "vrrp_version" => g.version = Some(in_range("vrrp_version", v, 2, 3)? as u8),
                "vrrp_garp_master_delay" => {
                    set(&mut g.garp, "garp_master_delay", dur(seconds(d.kw(), v)?));
                }
                "vrrp_garp_master_repeat" => set(
                    &mut g.garp,
                    "garp_master_repeat",
                    in_range(d.kw(), v, 0, 1000)?.to_string(),
                ),
                "vrrp_garp_master_refresh" => {
                    set(&mut g.garp, "garp_master_refresh", dur(seconds(d.kw(), v)?));
                }
                "vrrp_garp_master_refresh_repeat" => set(
                    &mut g.garp,
                    "garp_master_refresh_repeat",
                    in_range(d.kw(), v, 1, 1000)?.to_string(),
                ),
                _ => unknown(d, who, ctx),
            }
            Ok(())
        })();
        r.map_err(|e| ctx.err(d.loc, e))?;
    }
    Ok(())
}

/// `NAME [weight N [reverse]]` in a `track_*` block.
fn track_list(s: &Stmt, who: &str, ctx: &mut Ctx) -> Result<Vec<Track>, ConvertError> {
    let Some(items) = block(s, who, ctx) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in items {
        if t.block.is_some() {
            ctx.note(t.loc, who, &t.shown(), "not a name: not converted");
            continue;
        }
        let mut weight = None;
        match t.arg(1) {
            None => {}
            Some("weight") => {
                weight =
                    Some(in_range("weight", t.arg(2), -254, 254).map_err(|e| ctx.err(t.loc, e))?);
                if t.words.len() > 3 {
                    ctx.note(
                        t.loc,
                        who,
                        &t.shown(),
                        "`reverse` and other options have no vrrpd equivalent: the weight is written as given",
                    );
                }
            }
            Some(_) => ctx.note(
                t.loc,
                who,
                &t.shown(),
                "only `weight N` is converted; the rest of the line is not",
            ),
        }
        out.push(Track {
            name: t.kw().to_owned(),
            weight,
            loc: t.loc,
        });
    }
    Ok(out)
}

/// `weight N [reverse]` of a vrrp_script or vrrp_track_process.
fn weight(
    d: &Stmt,
    who: &str,
    fields: &mut Vec<(&'static str, String)>,
    ctx: &mut Ctx,
) -> Result<(), String> {
    set(
        fields,
        "weight",
        in_range("weight", d.arg(1), -254, 254)?.to_string(),
    );
    if d.words.len() > 2 {
        ctx.note(
            d.loc,
            who,
            &d.shown(),
            "`reverse` has no vrrpd equivalent: the weight is written as given",
        );
    }
    Ok(())
}

fn vrrp_script(s: &Stmt, ctx: &mut Ctx) -> Result<Option<(String, Script)>, ConvertError> {
    let name = block_name(s, ctx)?;
    let who = format!("vrrp_script {name}");
    let Some(items) = block(s, &who, ctx) else {
        return Ok(None);
    };
    let mut script = None;
    let mut fields = Vec::new();
    for d in items {
        let v = d.arg(1);
        let r = (|| -> Result<(), String> {
            match d.kw() {
                // keepalived 1.x took the rest of the line unquoted; keep that.
                "script" => {
                    let words: Vec<&str> = d.words[1..].iter().map(|w| w.text.as_str()).collect();
                    script = Some(words.join(" "));
                }
                "interval" => {
                    let ms = seconds("interval", v)?;
                    if ms == 0 {
                        return Err("interval: must be more than 0".into());
                    }
                    set(&mut fields, "interval", dur(ms));
                }
                "timeout" => set(&mut fields, "timeout", dur(seconds("timeout", v)?)),
                "weight" => weight(d, &who, &mut fields, ctx)?,
                "rise" => set(
                    &mut fields,
                    "rise",
                    in_range("rise", v, 1, 1000)?.to_string(),
                ),
                "fall" => set(
                    &mut fields,
                    "fall",
                    in_range("fall", v, 1, 1000)?.to_string(),
                ),
                _ => unknown(d, &who, ctx),
            }
            Ok(())
        })();
        r.map_err(|e| ctx.err(d.loc, e))?;
    }
    match script.filter(|s| !s.trim().is_empty()) {
        Some(script) => Ok(Some((name, Script { script, fields }))),
        None => {
            ctx.note_block(s, "the whole block: no script to run");
            Ok(None)
        }
    }
}

fn vrrp_track_process(s: &Stmt, ctx: &mut Ctx) -> Result<Option<(String, Process)>, ConvertError> {
    let name = block_name(s, ctx)?;
    let who = format!("vrrp_track_process {name}");
    let Some(items) = block(s, &who, ctx) else {
        return Ok(None);
    };
    let mut process: Option<(String, Option<String>)> = None;
    let mut fields = Vec::new();
    for d in items {
        let v = d.arg(1);
        let r = (|| -> Result<(), String> {
            match d.kw() {
                "process" => {
                    let name = v.ok_or("process needs a name")?.to_owned();
                    let params: Vec<&str> = d.words[2..].iter().map(|w| w.text.as_str()).collect();
                    let params = (!params.is_empty()).then(|| params.join(" "));
                    process = Some((name, params));
                }
                "param_match" => {
                    if v != Some("exact") {
                        ctx.note(
                            d.loc,
                            &who,
                            &d.shown(),
                            "vrrpd matches the parameters exactly: written as exact",
                        );
                    }
                }
                "quorum" => set(
                    &mut fields,
                    "quorum",
                    in_range("quorum", v, 1, 65535)?.to_string(),
                ),
                "weight" => weight(d, &who, &mut fields, ctx)?,
                "delay" => set(&mut fields, "delay", dur(seconds("delay", v)?)),
                _ => unknown(d, &who, ctx),
            }
            Ok(())
        })();
        r.map_err(|e| ctx.err(d.loc, e))?;
    }
    match process.filter(|(p, _)| !p.is_empty()) {
        Some((process, param_match)) => Ok(Some((
            name,
            Process {
                process,
                param_match,
                fields,
            },
        ))),
        None => {
            ctx.note_block(s, "the whole block: no process to watch");
            Ok(None)
        }
    }
}

fn vrrp_sync_group(s: &Stmt, ctx: &mut Ctx) -> Result<Option<(String, Group)>, ConvertError> {
    let name = block_name(s, ctx)?;
    let who = format!("vrrp_sync_group {name}");
    let Some(items) = block(s, &who, ctx) else {
        return Ok(None);
    };
    let mut g = Group {
        loc: s.loc,
        members: Vec::new(),
        notify: Notify::default(),
    };
    for d in items {
        if d.kw() == "group" {
            for m in block(d, &who, ctx).unwrap_or_default() {
                // Several names may share a line.
                for w in &m.words {
                    g.members.push((w.text.clone(), w.loc));
                }
                if m.block.is_some() {
                    ctx.note(m.loc, &who, &m.shown(), "not an instance name");
                }
            }
        } else if !g.notify.take(d, &who, ctx).map_err(|e| ctx.err(d.loc, e))? {
            unknown(d, &who, ctx);
        }
    }
    Ok(Some((name, g)))
}

/// keepalived's options after a VIP that vrrpd's VIP string does not take,
/// and whether each takes a value.
fn vip_option_takes_value(o: &str) -> Option<bool> {
    match o {
        "brd" | "broadcast" | "scope" | "peer" | "preferred_lft" | "track_group" => Some(true),
        "home" | "-nodad" | "nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin" | "no_track" => {
            Some(false)
        }
        _ => None,
    }
}

fn vip(d: &Stmt, who: &str, ctx: &mut Ctx) -> Result<Option<Vip>, ConvertError> {
    let addr = d.kw();
    let mut keep = vec![addr.to_owned()];
    let mut i = 1;
    while let Some(o) = d.arg(i) {
        let v = d.arg(i + 1);
        match (o, v) {
            ("dev" | "label", Some(v)) if !v.is_empty() && !v.contains(char::is_whitespace) => {
                keep.push(format!("{o} {v}"));
                i += 2;
            }
            _ => {
                let took = match vip_option_takes_value(o) {
                    Some(true) => 2,
                    Some(false) => 1,
                    None => d.words.len() - i,
                };
                let end = (i + took).min(d.words.len());
                let what: Vec<&str> = d.words[i..end].iter().map(|w| w.text.as_str()).collect();
                let why = match vip_option_takes_value(o) {
                    Some(_) => "vrrpd's VIPs take `dev` and `label` only: left out",
                    None => {
                        "not a VIP option this conversion knows: the rest of the line is left out"
                    }
                };
                ctx.note(d.loc, who, &format!("{addr} {}", what.join(" ")), why);
                i = end;
            }
        }
    }
    keep.join(" ")
        .parse::<Vip>()
        .map(Some)
        .map_err(|e| ctx.err(d.loc, format!("virtual_ipaddress: {e}")))
}

fn vrrp_instance(s: &Stmt, ctx: &mut Ctx) -> Result<Option<(String, Instance)>, ConvertError> {
    let name = block_name(s, ctx)?;
    let who = format!("vrrp_instance {name}");
    let Some(items) = block(s, &who, ctx) else {
        return Ok(None);
    };
    let mut inst = Instance::default();
    for d in items {
        let v = d.arg(1);
        let kw = d.kw();
        let files = ctx.files;
        let e = |m: String| err_at(files, d.loc, m);
        let r = (|| -> Result<(), ConvertError> {
            match kw {
                "interface" => {
                    inst.interface =
                        Some(v.ok_or_else(|| e("interface needs a name".into()))?.into());
                }
                "virtual_router_id" => {
                    inst.vrid = Some(in_range(kw, v, 1, 255).map_err(e)? as u8);
                }
                "priority" => {
                    let p = in_range(kw, v, 1, 255).map_err(e)?;
                    set(&mut inst.fields, "priority", p.to_string());
                }
                "advert_int" => inst.advert_ms = Some((seconds(kw, v).map_err(e)?, d.loc)),
                "version" => inst.version = Some((in_range(kw, v, 2, 3).map_err(e)? as u8, d.loc)),
                "state" => match v {
                    Some(st @ ("MASTER" | "BACKUP")) => {
                        set(&mut inst.fields, "state", st.to_owned());
                    }
                    _ => ctx.note(
                        d.loc,
                        &who,
                        &d.shown(),
                        "expected MASTER or BACKUP: left out (BACKUP)",
                    ),
                },
                "nopreempt" => set(&mut inst.fields, "nopreempt", "true".into()),
                "dont_track_primary" => set(&mut inst.fields, "dont_track_primary", "true".into()),
                "preempt_delay" => {
                    set(
                        &mut inst.fields,
                        "preempt_delay",
                        dur(seconds(kw, v).map_err(e)?),
                    );
                }
                "virtual_ipaddress" => {
                    for a in block(d, &who, ctx).unwrap_or_default() {
                        if let Some(vip) = vip(a, &who, ctx)? {
                            inst.vips.push((vip, a.loc));
                        }
                    }
                }
                "unicast_src_ip" => inst.unicast_src = Some((ip(kw, v).map_err(e)?, d.loc)),
                "unicast_peer" => {
                    for p in block(d, &who, ctx).unwrap_or_default() {
                        let addr = ip(kw, Some(p.kw())).map_err(|m| err_at(files, p.loc, m))?;
                        inst.peers.push((addr, p.loc));
                        if p.words.len() > 1 {
                            ctx.note(
                                p.loc,
                                &who,
                                &p.shown(),
                                "per-peer options (min_ttl, max_ttl) have no vrrpd equivalent",
                            );
                        }
                    }
                }
                "authentication" => authentication(d, &who, &mut inst, ctx)?,
                "track_interface" => inst.track_interface.extend(track_list(d, &who, ctx)?),
                "track_script" => inst.track_script.extend(track_list(d, &who, ctx)?),
                "track_process" => inst.track_process.extend(track_list(d, &who, ctx)?),
                "garp_master_delay" | "garp_master_refresh" => {
                    let key = if kw == "garp_master_delay" {
                        "garp_master_delay"
                    } else {
                        "garp_master_refresh"
                    };
                    set(&mut inst.fields, key, dur(seconds(kw, v).map_err(e)?));
                }
                "garp_master_repeat" => {
                    let n = in_range(kw, v, 0, 1000).map_err(e)?;
                    set(&mut inst.fields, "garp_master_repeat", n.to_string());
                }
                "garp_master_refresh_repeat" => {
                    let n = in_range(kw, v, 1, 1000).map_err(e)?;
                    set(
                        &mut inst.fields,
                        "garp_master_refresh_repeat",
                        n.to_string(),
                    );
                }
                _ => {
                    if !inst.notify.take(d, &who, ctx).map_err(e)? {
                        unknown(d, &who, ctx);
                    }
                }
            }
            Ok(())
        })();
        r?;
    }
    Ok(Some((name, inst)))
}

fn authentication(
    d: &Stmt,
    who: &str,
    inst: &mut Instance,
    ctx: &mut Ctx,
) -> Result<(), ConvertError> {
    let mut auth_type = None;
    let mut pass = None;
    for a in block(d, who, ctx).unwrap_or_default() {
        match a.kw() {
            "auth_type" => auth_type = a.arg(1).map(|t| (t.to_owned(), a.loc)),
            "auth_pass" => pass = a.arg(1).map(|p| (p.to_owned(), a.loc)),
            // Never shown: it may be a password in the wrong place.
            _ => ctx.note(a.loc, who, a.kw(), "not an authentication key: left out"),
        }
    }
    match auth_type {
        Some((t, _)) if t == "PASS" => {}
        Some((t, loc)) => {
            let why = if t == "AH" {
                "IPsec AH was removed from VRRP (RFC 5798 §9): the instance is written without authentication, which keepalived peers using AH will not accept"
            } else {
                "expected PASS: the instance is written without authentication"
            };
            ctx.note(loc, who, &format!("auth_type {t}"), why);
            return Ok(());
        }
        None => {
            ctx.note(d.loc, who, "authentication", "no auth_type: left out");
            return Ok(());
        }
    }
    let Some((mut pass, loc)) = pass.filter(|(p, _)| !p.is_empty()) else {
        ctx.note(d.loc, who, "authentication", "no auth_pass: left out");
        return Ok(());
    };
    if pass.len() > 8 {
        // keepalived sends the first 8 bytes; so must we to stay in its group.
        let mut end = 8;
        while !pass.is_char_boundary(end) {
            end -= 1;
        }
        pass.truncate(end);
        ctx.note(
            loc,
            who,
            "auth_pass",
            &format!("longer than 8 bytes: keepalived uses the first 8, and so does the converted config ({end} bytes)"),
        );
    }
    inst.auth_pass = Some((pass, loc));
    Ok(())
}

// ------------------------------------------------------------- resolving

/// One instance made valid for vrrpd, or the reason it cannot be.
fn finish_instance(
    name: &str,
    loc: Loc,
    inst: &mut Instance,
    g: &Globals,
    ctx: &mut Ctx,
) -> Result<(), String> {
    let who = format!("vrrp_instance {name}");
    if inst.interface.is_none() {
        return Err(
            "no interface (keepalived would pick the default route's: vrrpd needs it named)".into(),
        );
    }
    if inst.vrid.is_none() {
        return Err("no virtual_router_id".into());
    }
    // An instance carries one family: the first VIP's, as keepalived.
    let v6 = inst
        .vips
        .first()
        .is_some_and(|(v, _)| v.addr.addr().is_ipv6());
    let mut vips = Vec::new();
    for (v, l) in inst.vips.drain(..) {
        if v.addr.addr().is_ipv6() != v6 {
            ctx.note(l, &who, &v.to_string(), "of the other address family than the instance's first VIP: left out (give it its own instance)");
        } else {
            vips.push((v, l));
        }
    }
    inst.vips = vips;
    if inst.vips.is_empty() {
        return Err("no virtual_ipaddress".into());
    }
    let mut version = inst.version.map_or(g.version.unwrap_or(2), |(v, _)| v);
    if v6 && version == 2 {
        let at = inst.version.map_or(loc, |(_, l)| l);
        ctx.note(
            at,
            &who,
            "version 2",
            "IPv6 VIPs need VRRP v3, which keepalived uses for them too: written as version 3",
        );
        version = 3;
    }
    if let Some((ms, l)) = inst.advert_ms {
        let fixed = if version == 2 {
            ms.div_ceil(1000).clamp(1, 255) * 1000
        } else {
            (ms.div_ceil(10) * 10).clamp(10, 40_950)
        };
        if fixed != ms {
            let why = if version == 2 {
                "VRRP v2 advertises in whole seconds from 1 to 255"
            } else {
                "VRRP v3 advertises in centiseconds from 0.01 to 40.95 seconds"
            };
            ctx.note(
                l,
                &who,
                &format!("advert_int {}", dur(ms)),
                &format!("{why}: written as {}", dur(fixed)),
            );
        }
        inst.advert_ms = Some((fixed, l));
    }
    inst.version = Some((version, loc));
    if version == 3 {
        if let Some((_, l)) = inst.auth_pass.take() {
            ctx.note(
                l,
                &who,
                "authentication",
                "VRRP v3 has no authentication (RFC 5798 §9); keepalived ignores it too: left out",
            );
        }
    }
    let mut peers = Vec::new();
    for (p, l) in inst.peers.drain(..) {
        if p.is_ipv6() != v6 {
            ctx.note(
                l,
                &who,
                &format!("unicast_peer {p}"),
                "not of the VIPs' address family: left out",
            );
        } else {
            peers.push((p, l));
        }
    }
    inst.peers = peers;
    if let Some((src, l)) = inst.unicast_src {
        if src.is_ipv6() != v6 {
            ctx.note(
                l,
                &who,
                &format!("unicast_src_ip {src}"),
                "not of the VIPs' address family: left out",
            );
            inst.unicast_src = None;
        } else if inst.peers.is_empty() {
            ctx.note(
                l,
                &who,
                &format!("unicast_src_ip {src}"),
                "no unicast_peer to send to: left out (adverts are multicast)",
            );
            inst.unicast_src = None;
        }
    }
    for (k, v) in &g.garp {
        if !inst.fields.iter().any(|(f, _)| f == k) {
            inst.fields.push((k, v.clone()));
        }
    }
    Ok(())
}

/// Drops references to what was not converted, with a note for each.
fn keep_known(
    tracks: &mut Vec<Track>,
    known: &dyn Fn(&str) -> bool,
    what: &str,
    who: &str,
    ctx: &mut Ctx,
) {
    tracks.retain(|t| {
        let ok = known(&t.name);
        if !ok {
            ctx.note(
                t.loc,
                who,
                &t.name,
                &format!("no converted {what} of that name: left out"),
            );
        }
        ok
    });
}

pub fn convert(path: &str, text: &str, read: &mut ReadFile) -> Result<Converted, ConvertError> {
    let mut t = Tokenizer {
        read,
        files: Vec::new(),
        words: Vec::new(),
        notes: Vec::new(),
    };
    t.file(path, text, &[PathBuf::from(path)])?;
    let mut i = 0;
    let stmts = parse_block(&t.words, &mut i, None, 0, &t)?;
    let mut ctx = Ctx {
        files: &t.files,
        notes: std::mem::take(&mut t.notes),
    };

    let mut g = Globals::default();
    let mut scripts: BTreeMap<String, Script> = BTreeMap::new();
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut instances: Vec<(String, Loc, Instance)> = Vec::new();
    for s in &stmts {
        let dup = |ctx: &Ctx, what: &str, name: &str| {
            ctx.err(
                s.loc,
                format!("a second {what} named {name:?} (keepalived refuses it)"),
            )
        };
        match s.kw() {
            "global_defs" => global_defs(s, &mut g, &mut ctx)?,
            "vrrp_script" => {
                if let Some((n, sc)) = vrrp_script(s, &mut ctx)? {
                    if scripts.contains_key(&n) {
                        return Err(dup(&ctx, "vrrp_script", &n));
                    }
                    scripts.insert(n, sc);
                }
            }
            "vrrp_track_process" => {
                if let Some((n, p)) = vrrp_track_process(s, &mut ctx)? {
                    if processes.contains_key(&n) {
                        return Err(dup(&ctx, "vrrp_track_process", &n));
                    }
                    processes.insert(n, p);
                }
            }
            "vrrp_sync_group" => {
                if let Some((n, gr)) = vrrp_sync_group(s, &mut ctx)? {
                    if groups.contains_key(&n) {
                        return Err(dup(&ctx, "vrrp_sync_group", &n));
                    }
                    groups.insert(n, gr);
                }
            }
            "vrrp_instance" => {
                if let Some((n, inst)) = vrrp_instance(s, &mut ctx)? {
                    if instances.iter().any(|(o, _, _)| *o == n) {
                        return Err(dup(&ctx, "vrrp_instance", &n));
                    }
                    instances.push((n, s.loc, inst));
                }
            }
            kw if kw.starts_with('$') || kw.starts_with('@') => ctx.note(
                s.loc,
                "config",
                &s.shown(),
                "keepalived's parameter definitions and conditional lines are not expanded: write the values out",
            ),
            _ => match unsupported_why(s.kw()) {
                Some(why) => ctx.note_block(s, why),
                None => ctx.note_block(s, "unknown to this conversion, or no vrrpd equivalent"),
            },
        }
    }

    let mut converted: Vec<(String, Instance)> = Vec::new();
    // (interface, VRID, IPv6) → instance, as vrrpd checks.
    let mut vrids: HashMap<(String, u8, bool), String> = HashMap::new();
    for (name, loc, mut inst) in instances {
        let who = format!("vrrp_instance {name}");
        if let Err(why) = finish_instance(&name, loc, &mut inst, &g, &mut ctx) {
            ctx.note(loc, &who, "the whole instance", &why);
            continue;
        }
        let key = (
            inst.interface.clone().unwrap_or_default(),
            inst.vrid.unwrap_or_default(),
            inst.vips[0].0.addr.addr().is_ipv6(),
        );
        if let Some(other) = vrids.insert(key.clone(), name.clone()) {
            return Err(ctx.err(
                loc,
                format!(
                    "instance {other:?} already uses virtual_router_id {} on {} (keepalived refuses it)",
                    key.1, key.0
                ),
            ));
        }
        keep_known(
            &mut inst.track_script,
            &|n| scripts.contains_key(n),
            "vrrp_script",
            &who,
            &mut ctx,
        );
        keep_known(
            &mut inst.track_process,
            &|n| processes.contains_key(n),
            "vrrp_track_process",
            &who,
            &mut ctx,
        );
        converted.push((name, inst));
    }

    let mut member_of: HashMap<String, String> = HashMap::new();
    let mut kept_groups = Vec::new();
    for (name, mut gr) in groups {
        let who = format!("vrrp_sync_group {name}");
        gr.members.retain(|(m, l)| {
            if !converted.iter().any(|(n, _)| n == m) {
                ctx.note(
                    *l,
                    &who,
                    m,
                    "no converted vrrp_instance of that name: left out of the group",
                );
                false
            } else if let Some(other) = member_of.get(m) {
                ctx.note(
                    *l,
                    &who,
                    m,
                    &format!("already in sync group {other}: left out"),
                );
                false
            } else {
                member_of.insert(m.clone(), name.clone());
                true
            }
        });
        if gr.members.len() < 2 {
            for (m, _) in &gr.members {
                member_of.remove(m);
            }
            ctx.note(
                gr.loc,
                &who,
                "the whole group",
                "fewer than two converted instances in it",
            );
            continue;
        }
        kept_groups.push((name, gr));
    }

    if converted.is_empty() {
        return Err(ConvertError {
            path: path.to_owned(),
            line: None,
            message: "no vrrp_instance vrrpd can run (the not-converted lines say why)".into(),
            not_converted: ctx.notes,
        });
    }

    let mut y = format!(
        "# Converted from keepalived's {} by `vrrpd import-keepalived`.\n",
        comment(path)
    );
    if ctx.notes.is_empty() {
        y.push_str("# Everything in it was converted.\n");
    } else {
        y.push_str("# Not converted, or converted approximately:\n");
        for n in &ctx.notes {
            let _ = writeln!(y, "#   {n}");
        }
    }
    emit_scripts(&mut y, &scripts, &processes);
    if !kept_groups.is_empty() {
        y.push_str("vrrp_sync_group:\n");
        for (name, gr) in &kept_groups {
            let members: Vec<String> = gr.members.iter().map(|(m, _)| yaml_str(m)).collect();
            let _ = writeln!(
                y,
                "  {}:\n    group: [{}]",
                yaml_str(name),
                members.join(", ")
            );
            gr.notify.emit(&mut y, "    ");
        }
    }
    y.push_str("instances:\n");
    for (name, inst) in &converted {
        emit_instance(&mut y, name, inst);
    }
    Ok(Converted {
        yaml: y,
        not_converted: ctx.notes,
    })
}

// ------------------------------------------------------------------- YAML

fn emit_scripts(
    y: &mut String,
    scripts: &BTreeMap<String, Script>,
    processes: &BTreeMap<String, Process>,
) {
    if !scripts.is_empty() {
        y.push_str("vrrp_script:\n");
        for (name, s) in scripts {
            let _ = writeln!(
                y,
                "  {}:\n    script: {}",
                yaml_str(name),
                yaml_str(&s.script)
            );
            for (k, v) in &s.fields {
                let _ = writeln!(y, "    {k}: {v}");
            }
        }
    }
    if !processes.is_empty() {
        y.push_str("vrrp_track_process:\n");
        for (name, p) in processes {
            let _ = writeln!(
                y,
                "  {}:\n    process: {}",
                yaml_str(name),
                yaml_str(&p.process)
            );
            if let Some(m) = &p.param_match {
                let _ = writeln!(y, "    param_match: {}", yaml_str(m));
            }
            for (k, v) in &p.fields {
                let _ = writeln!(y, "    {k}: {v}");
            }
        }
    }
}

fn track_yaml(t: &Track) -> String {
    match t.weight {
        Some(w) => format!("{{name: {}, weight: {w}}}", yaml_str(&t.name)),
        None => yaml_str(&t.name),
    }
}

fn emit_instance(y: &mut String, name: &str, i: &Instance) {
    let _ = writeln!(y, "  {}:", yaml_str(name));
    let _ = writeln!(
        y,
        "    interface: {}",
        yaml_str(i.interface.as_deref().unwrap_or_default())
    );
    let _ = writeln!(y, "    virtual_router_id: {}", i.vrid.unwrap_or_default());
    if let Some((v, _)) = i.version.filter(|(v, _)| *v != 2) {
        let _ = writeln!(y, "    version: {v}");
    }
    if let Some((ms, _)) = i.advert_ms {
        let _ = writeln!(y, "    advert_int: {}", dur(ms));
    }
    for (k, v) in &i.fields {
        let _ = writeln!(y, "    {k}: {v}");
    }
    y.push_str("    virtual_ipaddress:\n");
    for (v, _) in &i.vips {
        let _ = writeln!(y, "      - {}", yaml_str(&v.to_string()));
    }
    if let Some((src, _)) = i.unicast_src {
        let _ = writeln!(y, "    unicast_src_ip: {}", yaml_str(&src.to_string()));
    }
    if !i.peers.is_empty() {
        let peers: Vec<String> = i
            .peers
            .iter()
            .map(|(p, _)| yaml_str(&p.to_string()))
            .collect();
        let _ = writeln!(y, "    unicast_peers: [{}]", peers.join(", "));
    }
    if let Some((pass, _)) = &i.auth_pass {
        let _ = writeln!(
            y,
            "    authentication:\n      auth_type: PASS\n      auth_pass: {}",
            yaml_str(pass)
        );
    }
    for (key, list) in [
        ("track_interface", &i.track_interface),
        ("track_script", &i.track_script),
        ("track_process", &i.track_process),
    ] {
        if !list.is_empty() {
            let items: Vec<String> = list.iter().map(track_yaml).collect();
            let _ = writeln!(y, "    {key}: [{}]", items.join(", "));
        }
    }
    i.notify.emit(y, "    ");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthType, Config, StateHint, TrackRef};
    use std::time::Duration as Dur;

    /// Two hosts' worth of a MySQL load-balancer pair: a v2 instance with
    /// PASS auth and unicast peers, a v3 one advertising every 0.1 s, a sync
    /// group over both, and the checks they track.
    const KEEPALIVED: &str = r#"! Configuration File for keepalived
global_defs {
   router_id LB_1
   notification_email {
     ops@example.com
   }
   enable_script_security
   vrrp_garp_master_refresh 60
}

vrrp_script chk_lbd {
    script "/usr/bin/killall -0 lbd"   # cheaper than a connect
    interval 2
    timeout 1
    weight -60
    rise 2
    fall 3
}

vrrp_script chk_file
{
    script "test ! -e /etc/keepalived/down"
    interval 1
}

vrrp_track_process lbd_proc {
    process /usr/sbin/lbd -f /etc/hastack/lbd.yaml
    param_match exact
    quorum 1
    weight -30
    delay 0.5
}

vrrp_sync_group VG_1 {
    group {
        VI_MYSQL
        VI_V6
    }
    notify_master "/etc/keepalived/notify.sh master"
}

vrrp_instance VI_MYSQL {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    nopreempt
    preempt_delay 10
    unicast_src_ip 10.0.0.21
    unicast_peer {
        10.0.0.22
    }
    authentication {
        auth_type PASS
        auth_pass s3cretpw
    }
    virtual_ipaddress {
        10.0.0.100/24 dev eth1 label eth1:1
        10.0.0.101/24 brd 10.0.0.255 scope global
    }
    track_interface {
        eth0
        eth1 weight -20
    }
    track_script {
        chk_lbd
        chk_file weight 10
    }
    track_process {
        lbd_proc
    }
    garp_master_delay 2
    notify_backup /etc/keepalived/backup.sh
    notify "/etc/keepalived/notify.sh"
    vrrp_strict
}

vrrp_instance VI_V6 {
    interface eth0
    virtual_router_id 52
    version 3
    advert_int 0.1
    virtual_ipaddress { fd00::100/64 }
    use_vmac
}

virtual_server 10.0.0.100 3306 {
    delay_loop 2
    real_server 10.0.0.31 3306 {
        weight 1
    }
}
"#;

    fn no_files(p: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not in this test", p.display()),
        ))
    }

    /// Converts `text` and checks the result is a valid vrrpd config.
    fn ok(text: &str) -> (Config, Converted) {
        let out = convert("keepalived.conf", text, &mut no_files).unwrap_or_else(|e| panic!("{e}"));
        valid(out)
    }

    fn valid(out: Converted) -> (Config, Converted) {
        assert_eq!(
            hastack_rt::config::error_lines::<Config>("imported.yaml", &out.yaml),
            Vec::<String>::new(),
            "{}",
            out.yaml
        );
        let cfg = hastack_rt::config::parse::<Config>(Path::new("imported.yaml"), &out.yaml)
            .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml));
        (cfg, out)
    }

    fn err(text: &str) -> String {
        convert("k.conf", text, &mut no_files)
            .unwrap_err()
            .to_string()
    }

    fn track(name: &str, weight: Option<i32>) -> TrackRef {
        TrackRef {
            name: name.into(),
            weight,
        }
    }

    #[test]
    fn a_realistic_config_converts_to_a_valid_one() {
        let (cfg, out) = ok(KEEPALIVED);
        assert!(out.yaml.starts_with(
            "# Converted from keepalived's keepalived.conf by `vrrpd import-keepalived`."
        ));

        let s = &cfg.vrrp_script["chk_lbd"];
        assert_eq!(s.script, "/usr/bin/killall -0 lbd");
        assert_eq!(s.interval.get(), Dur::from_secs(2));
        assert_eq!(s.timeout.map(|t| t.get()), Some(Dur::from_secs(1)));
        assert_eq!((s.weight, s.rise, s.fall), (-60, 2, 3));
        let f = &cfg.vrrp_script["chk_file"];
        assert_eq!(
            f.script, "test ! -e /etc/keepalived/down",
            "! inside quotes"
        );
        assert_eq!((f.weight, f.rise, f.fall), (0, 1, 1));

        let p = &cfg.vrrp_track_process["lbd_proc"];
        assert_eq!(p.process, "/usr/sbin/lbd");
        assert_eq!(p.param_match.as_deref(), Some("-f /etc/hastack/lbd.yaml"));
        assert_eq!((p.quorum, p.weight), (1, -30));
        assert_eq!(p.delay.get(), Dur::from_millis(500));

        let g = &cfg.vrrp_sync_group["VG_1"];
        assert_eq!(g.group, ["VI_MYSQL", "VI_V6"]);
        assert_eq!(
            g.notify.notify_master.as_deref(),
            Some("/etc/keepalived/notify.sh master")
        );

        let m = &cfg.instances["VI_MYSQL"];
        assert_eq!((m.interface.as_str(), m.virtual_router_id), ("eth0", 51));
        assert_eq!(
            (m.priority, m.version, m.state),
            (150, 2, StateHint::Master)
        );
        assert_eq!(m.advert_int.get(), Dur::from_secs(1));
        assert!(m.nopreempt);
        assert_eq!(m.preempt_delay.get(), Dur::from_secs(10));
        let vips: Vec<String> = m
            .virtual_ipaddress
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            vips,
            ["10.0.0.100/24 dev eth1 label eth1:1", "10.0.0.101/24"]
        );
        assert_eq!(m.unicast_src_ip, Some("10.0.0.21".parse().unwrap()));
        assert_eq!(m.unicast_peers, ["10.0.0.22".parse::<IpAddr>().unwrap()]);
        let auth = m.authentication.as_ref().unwrap();
        assert_eq!(
            (auth.auth_type, auth.auth_pass.expose()),
            (AuthType::Pass, "s3cretpw")
        );
        assert_eq!(
            m.track_interface,
            [track("eth0", None), track("eth1", Some(-20))]
        );
        assert_eq!(
            m.track_script,
            [track("chk_lbd", None), track("chk_file", Some(10))]
        );
        assert_eq!(m.track_process, [track("lbd_proc", None)]);
        assert_eq!(m.garp_master_delay.get(), Dur::from_secs(2));
        assert_eq!(
            m.garp_master_refresh.get(),
            Dur::from_secs(60),
            "global_defs'"
        );
        assert_eq!(
            m.notify.notify_backup.as_deref(),
            Some("/etc/keepalived/backup.sh")
        );
        assert_eq!(
            m.notify.notify.as_deref(),
            Some("/etc/keepalived/notify.sh")
        );

        let v6 = &cfg.instances["VI_V6"];
        assert_eq!(v6.version, 3);
        assert_eq!(v6.advert_int.get(), Dur::from_millis(100));
        assert_eq!(v6.virtual_ipaddress[0].to_string(), "fd00::100/64");
        assert_eq!(v6.garp_master_refresh.get(), Dur::from_secs(60));

        assert_eq!(
            out.not_converted,
            [
                "keepalived.conf:3: global_defs: router_id LB_1 (vrrpd has no router id: its logs and /status name the host)",
                "keepalived.conf:4: global_defs: notification_email { ... } (vrrpd sends no mail: a notify script can)",
                "keepalived.conf:7: global_defs: enable_script_security (vrrpd runs scripts as its own user: set User= in its systemd unit)",
                "keepalived.conf:60: vrrp_instance VI_MYSQL: 10.0.0.101/24 brd 10.0.0.255 (vrrpd's VIPs take `dev` and `label` only: left out)",
                "keepalived.conf:60: vrrp_instance VI_MYSQL: 10.0.0.101/24 scope global (vrrpd's VIPs take `dev` and `label` only: left out)",
                "keepalived.conf:76: vrrp_instance VI_MYSQL: vrrp_strict (keepalived's strict RFC mode refuses unicast peers and v2 authentication and, with Accept_Mode off, adds firewall rules so that a master which does not own the VIPs drops traffic to them; vrrpd adds no firewall rules, so a master answers on its VIPs (as keepalived's `accept`))",
                "keepalived.conf:85: vrrp_instance VI_V6: use_vmac (vrrpd creates no VRRP MAC (macvlan) interface: the VIPs go on the interface itself and gratuitous ARP moves them)",
                "keepalived.conf:88: virtual_server 10.0.0.100 3306 { ... } (the whole block: virtual servers (IPVS) are lbd's job: convert HAProxy's config with `lbd import-haproxy`, or write lbd's frontends and backends (docs/lbd.md))",
            ]
        );
        for n in &out.not_converted {
            assert!(
                out.yaml.contains(&format!("#   {n}\n")),
                "{n} not in the YAML"
            );
        }
        assert!(!out.not_converted.iter().any(|n| n.contains("s3cretpw")));
    }

    #[test]
    fn braces_may_open_on_the_next_line_or_close_on_the_same() {
        let (cfg, _) = ok("vrrp_instance A\n{\n interface eth0\n virtual_router_id 7\n virtual_ipaddress\n {\n 10.1.0.1 }\n}\nvrrp_instance B { interface eth1\n virtual_router_id 7\n virtual_ipaddress { 10.1.0.2/24 } }\n");
        let a = &cfg.instances["A"];
        assert_eq!(a.virtual_ipaddress[0].to_string(), "10.1.0.1/32");
        assert_eq!(cfg.instances["B"].interface, "eth1");
    }

    #[test]
    fn what_vrrpd_cannot_carry_is_adjusted_with_a_note() {
        let (cfg, out) = ok("global_defs {\n vrrp_version 3\n}\nvrrp_instance A {\n interface eth0\n virtual_router_id 1\n advert_int 0.015\n authentication {\n auth_type PASS\n auth_pass x\n }\n virtual_ipaddress {\n 10.0.0.1/24\n fd00::1/64\n }\n unicast_src_ip 10.0.0.2\n track_script {\n nope\n }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 2\n version 2\n advert_int 1.5\n authentication {\n auth_type PASS\n auth_pass longerthan8\n }\n virtual_ipaddress {\n 10.0.0.9\n }\n}\nvrrp_instance C {\n virtual_router_id 3\n virtual_ipaddress {\n 10.0.0.3\n }\n}\nvrrp_sync_group G {\n group {\n A C\n }\n}\n");
        let a = &cfg.instances["A"];
        assert_eq!((a.version, a.advert_int.get()), (3, Dur::from_millis(20)));
        assert!(a.authentication.is_none() && a.unicast_src_ip.is_none());
        assert!(a.track_script.is_empty());
        let b = &cfg.instances["B"];
        assert_eq!(b.advert_int.get(), Dur::from_secs(2));
        assert_eq!(
            b.authentication.as_ref().unwrap().auth_pass.expose(),
            "longerth"
        );
        assert!(!cfg.instances.contains_key("C") && cfg.vrrp_sync_group.is_empty());
        let n = out.not_converted.join("\n");
        for want in [
            "k:7: vrrp_instance A: advert_int 15ms (VRRP v3 advertises in centiseconds from 0.01 to 40.95 seconds: written as 20ms)",
            "k:10: vrrp_instance A: authentication (VRRP v3 has no authentication",
            "k:14: vrrp_instance A: fd00::1/64 (of the other address family",
            "k:16: vrrp_instance A: unicast_src_ip 10.0.0.2 (no unicast_peer to send to",
            "k:18: vrrp_instance A: nope (no converted vrrp_script of that name: left out)",
            "k:25: vrrp_instance B: advert_int 1500ms (VRRP v2 advertises in whole seconds from 1 to 255: written as 2s)",
            "k:28: vrrp_instance B: auth_pass (longer than 8 bytes: keepalived uses the first 8",
            "k:34: vrrp_instance C: the whole instance (no interface",
            "k:42: vrrp_sync_group G: C (no converted vrrp_instance of that name",
            "k:40: vrrp_sync_group G: the whole group (fewer than two converted instances in it)",
        ] {
            let want = want.replacen("k:", "keepalived.conf:", 1);
            assert!(n.contains(&want), "{want}\n--\n{n}");
        }
        assert!(!n.contains("longerthan8"), "no password in notes: {n}");
    }

    #[test]
    fn bad_input_is_an_error_naming_the_line() {
        let inst = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n";
        assert_eq!(
            err(inst),
            "k.conf:1: unbalanced braces: this `{` is never closed"
        );
        assert_eq!(
            err(&format!("{inst}}}\n}}\n")),
            "k.conf:8: unbalanced braces: `}` without a `{` before it"
        );
        assert_eq!(err("{\n}\n"), "k.conf:1: `{` without a keyword before it");
        assert_eq!(
            err(&format!("{inst} priority high\n}}\n")),
            "k.conf:7: priority: expected a whole number, got \"high\""
        );
        assert_eq!(
            err(&format!("{inst} priority 0\n}}\n")),
            "k.conf:7: priority: vrrpd takes 1 to 255, got 0"
        );
        assert_eq!(
            err(&format!("{inst} unicast_peer {{\n 10.0.0.x\n }}\n}}\n")),
            "k.conf:8: unicast_peer: \"10.0.0.x\" is not an IP address"
        );
        assert_eq!(
            err(&format!("{inst} notify_master \"/x.sh\n}}\n")),
            "k.conf:7: unmatched quote \""
        );
        assert_eq!(
            err(&format!("{inst}}}\n{inst}}}\n")),
            "k.conf:8: a second vrrp_instance named \"A\" (keepalived refuses it)"
        );
        assert_eq!(
            err("vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1/40\n }\n}\n"),
            "k.conf:5: virtual_ipaddress: \"10.0.0.1/40\" is not an address with a prefix length"
        );
        let deep = "a {\n".repeat(100);
        assert!(err(&deep).contains("nested more than 16 deep"));
        let e = convert("k.conf", "frobnicate 1\n", &mut no_files).unwrap_err();
        assert_eq!(
            e.to_string(),
            "k.conf: no vrrp_instance vrrpd can run (the not-converted lines say why)"
        );
        assert_eq!(
            e.not_converted,
            ["k.conf:1: frobnicate 1 (unknown to this conversion, or no vrrpd equivalent)"]
        );
    }

    #[test]
    fn an_unknown_keyword_is_listed_with_its_line() {
        let (_, out) = ok("vrrp_instance A {\n interface eth0\n virtual_router_id 1\n frobnicate yes\n virtual_ipaddress {\n 10.0.0.1\n }\n}\n");
        assert_eq!(
            out.not_converted,
            ["keepalived.conf:4: vrrp_instance A: frobnicate yes (unknown to this conversion, or no vrrpd equivalent)"]
        );
    }

    #[test]
    fn includes_are_read_relative_to_the_including_file() {
        let mut read = |p: &Path| {
            match p.to_str() {
            Some("/etc/keepalived/conf.d/vi.conf") => Ok(
                "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n 10.0.0.1\n }\n odd_thing\n}\n"
                    .to_owned(),
            ),
            _ => no_files(p),
        }
        };
        let out = convert(
            "/etc/keepalived/keepalived.conf",
            "# main\ninclude conf.d/vi.conf\ninclude conf.d/*.conf\n",
            &mut read,
        )
        .unwrap();
        let (cfg, out) = valid(out);
        assert!(cfg.instances.contains_key("A"));
        assert_eq!(
            out.not_converted,
            [
                "/etc/keepalived/keepalived.conf:3: include conf.d/*.conf (glob patterns are not expanded: import the matching files' vrrp blocks by naming each in its own include)",
                "/etc/keepalived/conf.d/vi.conf:7: vrrp_instance A: odd_thing (unknown to this conversion, or no vrrpd equivalent)",
            ]
        );
        let e = convert("/etc/k.conf", "\ninclude missing.conf\n", &mut no_files).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/k.conf:2: include missing.conf: cannot read /etc/missing.conf: /etc/missing.conf is not in this test"
        );
        let mut looping = |_: &Path| Ok("include self.conf\n".to_owned());
        let e = convert("/etc/self.conf", "include self.conf\n", &mut looping).unwrap_err();
        assert!(
            e.to_string().contains("nested more than 8 deep, or a loop"),
            "{e}"
        );
    }

    #[test]
    fn seconds_are_read_exactly() {
        assert_eq!(seconds("t", Some("0.1")), Ok(100));
        assert_eq!(seconds("t", Some("2")), Ok(2000));
        assert_eq!(seconds("t", Some("1.250")), Ok(1250));
        assert_eq!(seconds("t", Some(".5")), Ok(500));
        assert!(seconds("t", Some("0.0001"))
            .unwrap_err()
            .contains("finer than a millisecond"));
        for bad in ["", ".", "-1", "1e3", "x", "99999999999999999999"] {
            assert!(seconds("t", Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn words_follow_keepalived_quoting_and_comments() {
        let w = |l: &str| split_line(l).unwrap();
        let plain = |v: &[&str]| {
            v.iter()
                .map(|s| ((*s).to_owned(), false))
                .collect::<Vec<_>>()
        };
        assert_eq!(w("a{b}  # c"), plain(&["a", "{", "b", "}"]));
        assert_eq!(w("x ! y"), plain(&["x"]));
        assert_eq!(w("x y!z"), plain(&["x", "y!z"]));
        assert_eq!(w(r#"s "a # b" c"#)[1], ("a # b".to_owned(), true));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn pick(v: &[&'static str]) -> impl Strategy<Value = &'static str> {
        prop::sample::select(v.to_vec())
    }

    /// A keyword keepalived takes somewhere, with values that are right
    /// for some keywords and wrong for others.
    fn line() -> impl Strategy<Value = String> {
        let kw = pick(&[
            "interface",
            "virtual_router_id",
            "priority",
            "advert_int",
            "version",
            "state",
            "nopreempt",
            "preempt_delay",
            "unicast_src_ip",
            "auth_type",
            "auth_pass",
            "weight",
            "script",
            "process",
            "quorum",
            "interval",
            "rise",
            "fall",
            "delay",
            "timeout",
            "notify_master",
            "notify",
            "garp_master_repeat",
            "garp_master_refresh_repeat",
            "garp_master_delay",
            "vrrp_version",
            "A",
            "B",
            "s",
            "p",
            "eth0",
            "10.0.0.2",
            "fd00::2",
            "10.0.0.3/24",
            "fd00::3/64",
            "vrrp_strict",
            "frobnicate",
            "include",
        ]);
        let val = pick(&[
            "0",
            "1",
            "2",
            "3",
            "0.1",
            "0.015",
            "1.5",
            "255",
            "256",
            "-300",
            "-20",
            "MASTER",
            "eth1",
            "10.0.0.2",
            "fd00::2",
            "PASS",
            "AH",
            "123456789",
            "x",
            "\"a b\"",
            "weight",
            "dev",
            "label",
            "eth0:1",
            "scope",
            "link",
            "reverse",
        ]);
        (kw, prop::collection::vec(val, 0..4)).prop_map(|(k, v)| format!("{k} {}\n", v.join(" ")))
    }

    fn body() -> impl Strategy<Value = String> {
        let block_kw = pick(&[
            "virtual_ipaddress",
            "unicast_peer",
            "authentication",
            "track_interface",
            "track_script",
            "track_process",
            "group",
            "virtual_routes",
        ]);
        let item = prop_oneof![
            3 => line(),
            1 => (block_kw, prop::collection::vec(line(), 0..4))
                .prop_map(|(k, l)| format!("{k} {{\n{}}}\n", l.concat())),
        ];
        prop::collection::vec(item, 0..10).prop_map(|v| v.concat())
    }

    fn config() -> impl Strategy<Value = String> {
        let top = pick(&[
            "vrrp_instance A",
            "vrrp_instance B",
            "vrrp_script s",
            "vrrp_track_process p",
            "vrrp_sync_group g",
            "global_defs",
            "virtual_server 10.0.0.1 3306",
        ]);
        let instance = "vrrp_instance I {\ninterface eth0\nvirtual_router_id 1\nvirtual_ipaddress {\n10.0.0.1/24\n}\n";
        let section = (top, body()).prop_map(move |(t, b)| format!("{t} {{\n{b}}}\n"));
        (prop::collection::vec(section, 0..6), body())
            .prop_map(move |(s, b)| format!("{}{instance}{b}}}\n", s.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn any_mix_of_directives_converts_to_a_valid_config_or_a_worded_error(text in config()) {
            let mut no_files = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            match convert("k.conf", &text, &mut no_files) {
                Ok(out) => prop_assert_eq!(
                    hastack_rt::config::error_lines::<crate::config::Config>("i.yaml", &out.yaml),
                    Vec::<String>::new(),
                    "{}\n--\n{}", text, out.yaml
                ),
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }
    }
}
