//! Whether the monitor and replication accounts hold the privileges the
//! configured features need, read from `SHOW GRANTS` (pure; the shell that
//! reads the grants from the nodes is [`check`]).
//!
//! What each statement needs was found by experiment on MariaDB 10.11
//! (an account with only that privilege runs it, one with every other
//! monitor privilege gets 1227); `integration-tests/tests/sqlproxyd_grants.rs`
//! replays [`STATEMENTS`] against a real server so the table cannot drift
//! from the server. Only privileges granted `ON *.*` count: every one
//! below is global, and MariaDB refuses them on a database.

pub mod check;

use std::collections::BTreeSet;
use std::fmt;

use crate::config::{self, SwitchType};

/// One statement sqlproxyd runs as the monitor account, and the global
/// privileges of which it needs at least one (none: any account may).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
    /// As sqlproxyd sends it, or its fixed beginning (`CHANGE MASTER TO`).
    pub sql: &'static str,
    pub any_of: &'static [&'static str],
}

/// [`crate::ha::probe::vars_query`]'s beginning (it ends with the lock's name).
pub const HEARTBEAT_VARS: Statement = Statement {
    sql: "SELECT @@read_only, @@server_id",
    any_of: &[],
};
pub const SELECT_READ_ONLY: Statement = Statement {
    sql: "SELECT @@read_only",
    any_of: &[],
};
pub const SELECT_BINLOG_POS: Statement = Statement {
    sql: "SELECT @@gtid_binlog_pos",
    any_of: &[],
};
pub const GET_LOCK: Statement = Statement {
    sql: "SELECT GET_LOCK(",
    any_of: &[],
};
pub const IS_USED_LOCK: Statement = Statement {
    sql: "SELECT IS_USED_LOCK(",
    any_of: &[],
};
pub const RELEASE_LOCK: Statement = Statement {
    sql: "DO RELEASE_LOCK(",
    any_of: &[],
};
pub const MASTER_GTID_WAIT: Statement = Statement {
    sql: "SELECT MASTER_GTID_WAIT(",
    any_of: &[],
};
/// REPLICATION CLIENT (BINLOG MONITOR in 10.5+) is not enough.
pub const SHOW_SLAVES: Statement = Statement {
    sql: "SHOW ALL SLAVES STATUS",
    any_of: &["SLAVE MONITOR", "SUPER"],
};
/// SUPER no longer implies READ_ONLY ADMIN in 10.11.
pub const READ_ONLY_ON: Statement = Statement {
    sql: "SET GLOBAL read_only = ON",
    any_of: &["READ_ONLY ADMIN"],
};
pub const READ_ONLY_OFF: Statement = Statement {
    sql: "SET GLOBAL read_only = OFF",
    any_of: &["READ_ONLY ADMIN"],
};
pub const STOP_SLAVE: Statement = Statement {
    sql: "STOP SLAVE",
    any_of: &["REPLICATION SLAVE ADMIN", "SUPER"],
};
/// Refused only while a connection runs: with none running it answers OK
/// to anyone, before any privilege check.
pub const STOP_ALL_SLAVES: Statement = Statement {
    sql: "STOP ALL SLAVES",
    any_of: &["REPLICATION SLAVE ADMIN", "SUPER"],
};
pub const CHANGE_MASTER: Statement = Statement {
    sql: "CHANGE MASTER TO",
    any_of: &["REPLICATION SLAVE ADMIN", "SUPER"],
};
pub const START_SLAVE: Statement = Statement {
    sql: "START SLAVE",
    any_of: &["REPLICATION SLAVE ADMIN", "SUPER"],
};
/// What a rolled-back plan runs to restart what it stopped.
pub const START_ALL_SLAVES: Statement = Statement {
    sql: "START ALL SLAVES",
    any_of: &["REPLICATION SLAVE ADMIN", "SUPER"],
};
/// RELOAD alone is enough; neither SUPER nor REPLICATION SLAVE ADMIN is.
pub const RESET_SLAVE_ALL: Statement = Statement {
    sql: "RESET SLAVE ALL",
    any_of: &["RELOAD"],
};

/// Every statement above, for the experiment that checks the table.
pub const STATEMENTS: &[Statement] = &[
    HEARTBEAT_VARS,
    SELECT_READ_ONLY,
    SELECT_BINLOG_POS,
    GET_LOCK,
    IS_USED_LOCK,
    RELEASE_LOCK,
    MASTER_GTID_WAIT,
    SHOW_SLAVES,
    READ_ONLY_ON,
    READ_ONLY_OFF,
    STOP_SLAVE,
    STOP_ALL_SLAVES,
    CHANGE_MASTER,
    START_SLAVE,
    START_ALL_SLAVES,
    RESET_SLAVE_ALL,
];

/// What replicas log in to the primary with (`COM_REGISTER_SLAVE`, then
/// the binlog dump): REPLICATION SLAVE, which neither SUPER nor
/// REPLICATION SLAVE ADMIN replaces.
pub const REPLICATION_PRIVILEGE: &str = "REPLICATION SLAVE";

/// A feature the config turns on that runs statements as the monitor
/// account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Feature {
    /// Always: the probe of every node; without SHOW ALL SLAVES STATUS
    /// replication state is unknown (the heartbeat goes on without it).
    Heartbeat,
    /// `failover.promote`: a second writable node is set read-only.
    Fencing,
    /// `failover.promote` with a `switch_type` other than none.
    Promote,
    /// `failover.auto_rejoin` (with promote): a returning old primary, or
    /// a replica left on another, is pointed at the primary.
    AutoRejoin,
    /// `switch @@datasource` / `POST /actions/switchover`, with promote.
    Switchover,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::Heartbeat => "heartbeat",
            Feature::Fencing => "fencing (failover.promote)",
            Feature::Promote => "failover.promote",
            Feature::AutoRejoin => "failover.auto_rejoin",
            Feature::Switchover => "switchover",
        }
    }

    /// The statements it runs, in the order it runs them.
    pub fn statements(self) -> &'static [Statement] {
        match self {
            Feature::Heartbeat => &[HEARTBEAT_VARS, SHOW_SLAVES],
            Feature::Fencing => &[READ_ONLY_ON],
            Feature::Promote => &[
                GET_LOCK,
                SELECT_READ_ONLY,
                SHOW_SLAVES,
                MASTER_GTID_WAIT,
                STOP_ALL_SLAVES,
                READ_ONLY_OFF,
                // After the point of no return: a failure leaves the new
                // primary with a stopped link to the old one.
                RESET_SLAVE_ALL,
                // Re-pointing the other replicas at the new primary.
                READ_ONLY_ON,
                STOP_SLAVE,
                CHANGE_MASTER,
                START_SLAVE,
                // A rollback restarts what it stopped.
                START_ALL_SLAVES,
                RELEASE_LOCK,
            ],
            Feature::AutoRejoin => &[
                GET_LOCK,
                READ_ONLY_ON,
                STOP_SLAVE,
                CHANGE_MASTER,
                START_SLAVE,
                START_ALL_SLAVES,
                RELEASE_LOCK,
            ],
            Feature::Switchover => &[
                // The target must be seen replicating from the old primary.
                SHOW_SLAVES,
                GET_LOCK,
                READ_ONLY_ON,
                SELECT_BINLOG_POS,
                MASTER_GTID_WAIT,
                STOP_ALL_SLAVES,
                READ_ONLY_OFF,
                RESET_SLAVE_ALL,
                STOP_SLAVE,
                CHANGE_MASTER,
                START_SLAVE,
                START_ALL_SLAVES,
                RELEASE_LOCK,
            ],
        }
    }

    /// Whether replicas log in with `failover.replication_user` because
    /// of this feature.
    fn replicates(self) -> bool {
        matches!(
            self,
            Feature::Promote | Feature::AutoRejoin | Feature::Switchover
        )
    }
}

/// The features `h` turns on.
pub fn features(h: &config::DataHost) -> Vec<Feature> {
    let mut out = vec![Feature::Heartbeat];
    if h.failover.promote {
        out.push(Feature::Fencing);
        if h.switch_type != SwitchType::None {
            out.push(Feature::Promote);
        }
        if h.failover.auto_rejoin {
            out.push(Feature::AutoRejoin);
        }
        out.push(Feature::Switchover);
    }
    out
}

/// Whether any of `features` points replicas at a node, so that the
/// replication account must be able to log in to it.
pub fn needs_replication_account(features: &[Feature]) -> bool {
    features.iter().any(|f| f.replicates())
}

/// A privilege an enabled feature needs and the account lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub feature: &'static str,
    /// `SLAVE MONITOR`, or alternatives: `SLAVE MONITOR (or SUPER)`.
    pub privilege: String,
    /// The statements that fail without it, comma-separated.
    pub statement: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs {} for {}",
            self.feature, self.privilege, self.statement
        )
    }
}

/// What the features need that `grants` lacks: one entry per feature and
/// privilege, naming every statement of it that would be refused.
pub fn missing(features: &[Feature], grants: &Grants) -> Vec<Missing> {
    let mut out: Vec<Missing> = Vec::new();
    for &f in features {
        for s in f.statements() {
            if s.any_of.is_empty() || s.any_of.iter().any(|p| grants.has(p)) {
                continue;
            }
            let privilege = match s.any_of {
                [one] => (*one).to_owned(),
                [first, rest @ ..] => format!("{first} (or {})", rest.join(" or ")),
                [] => continue,
            };
            match out
                .iter_mut()
                .find(|m| m.feature == f.name() && m.privilege == privilege)
            {
                Some(m) if !m.statement.split(", ").any(|x| x == s.sql) => {
                    m.statement = format!("{}, {}", m.statement, s.sql);
                }
                Some(_) => {}
                None => out.push(Missing {
                    feature: f.name(),
                    privilege,
                    statement: s.sql.to_owned(),
                }),
            }
        }
    }
    out
}

/// What the replication account lacks on one node: `accounts` are its
/// entries there (`'repl'@'host'` and their grants); none at all means
/// replicas cannot log in.
pub fn replication_missing(user: &str, accounts: &[(String, Grants)]) -> Vec<Missing> {
    const FEATURE: &str = "failover.replication_user";
    const FOR: &str = "replicas reading the primary's binlog";
    if accounts.is_empty() {
        return vec![Missing {
            feature: FEATURE,
            privilege: format!("an account '{user}' with {REPLICATION_PRIVILEGE}"),
            statement: format!("{FOR} (no such account on this node)"),
        }];
    }
    accounts
        .iter()
        .filter(|(_, g)| !g.has(REPLICATION_PRIVILEGE))
        .map(|(host, _)| Missing {
            feature: FEATURE,
            privilege: REPLICATION_PRIVILEGE.to_owned(),
            statement: format!("{FOR} (account '{user}'@'{host}')"),
        })
        .collect()
}

/// Who a `GRANT ... TO` line is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Grantee {
    User,
    Role(String),
}

/// The global privileges an account has in its sessions, read from the
/// lines of `SHOW GRANTS` (of the current user, which MariaDB lists with
/// the grants of the default role and the roles granted to it), or of
/// `SHOW GRANTS FOR` the account followed by those of its roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Global privileges, upper case, aliases resolved, by grantee
    /// (`ALL PRIVILEGES` standing for all of them).
    global: Vec<(Grantee, BTreeSet<String>)>,
    /// Roles granted, and to whom.
    role_grants: Vec<(Grantee, String)>,
    default_role: Option<String>,
    /// Grantees with a privilege line (every role has one, USAGE at least).
    listed: BTreeSet<Grantee>,
}

impl Grants {
    /// Parses `SHOW GRANTS` lines; an error names the line it cannot read
    /// (the check then says it could not be done, rather than guess).
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Result<Grants, String> {
        let mut g = Grants::default();
        for line in lines {
            g.add_line(line.as_ref())?;
        }
        Ok(g)
    }

    /// Adds the lines of `SHOW GRANTS FOR` a role (see [`Self::unresolved_roles`]).
    pub fn add_lines<S: AsRef<str>>(&mut self, lines: &[S]) -> Result<(), String> {
        for line in lines {
            self.add_line(line.as_ref())?;
        }
        Ok(())
    }

    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let bad = |why: &str| format!("cannot read the SHOW GRANTS line {line:?}: {why}");
        let line = line.trim();
        if let Some(rest) = strip_keyword(line, "SET DEFAULT ROLE ") {
            let role = top_level_find(rest, " FOR ").map_or(rest, |at| &rest[..at]);
            let role = unquote(role.trim());
            // `SET DEFAULT ROLE NONE` is never listed, but costs nothing.
            if !role.eq_ignore_ascii_case("none") {
                self.default_role = Some(role);
            }
            return Ok(());
        }
        let Some(rest) = strip_keyword(line, "GRANT ") else {
            return Err(bad("neither GRANT nor SET DEFAULT ROLE"));
        };
        let to = top_level_find(rest, " TO ").ok_or_else(|| bad("no TO"))?;
        let grantee = grantee(&rest[to + 4..]);
        let head = &rest[..to];
        match top_level_find(head, " ON ") {
            None => {
                // `GRANT role TO grantee [WITH ADMIN OPTION]`.
                self.role_grants.push((grantee, unquote(head.trim())));
            }
            Some(on) => {
                let target = head[on + 4..].trim();
                self.listed.insert(grantee.clone());
                if target != "*.*" {
                    // A database, table, routine or PROXY grant: no global
                    // privilege can be granted there.
                    return Ok(());
                }
                let mut set = BTreeSet::new();
                for p in top_level_split(&head[..on]) {
                    let p = normalize(p);
                    if p == "ALL" {
                        set.insert("ALL PRIVILEGES".to_owned());
                    } else if !p.is_empty() && p != "USAGE" {
                        // USAGE: no privilege at all, only the account's line.
                        set.insert(p);
                    }
                }
                self.global.push((grantee, set));
            }
        }
        Ok(())
    }

    /// The roles whose privileges this account's sessions have: the
    /// default role and, transitively, the roles granted to it.
    fn active_roles(&self) -> BTreeSet<String> {
        let mut active: BTreeSet<String> = self.default_role.iter().cloned().collect();
        // Bounded: each pass adds a role or stops.
        for _ in 0..=self.role_grants.len() {
            let more: Vec<String> = self
                .role_grants
                .iter()
                .filter(|(to, r)| {
                    matches!(to, Grantee::Role(t) if active.contains(t)) && !active.contains(r)
                })
                .map(|(_, r)| r.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            active.extend(more);
        }
        active
    }

    /// Whether the account's sessions have global privilege `p`.
    pub fn has(&self, p: &str) -> bool {
        let p = normalize(p);
        let active = self.active_roles();
        self.global.iter().any(|(who, set)| {
            let on = match who {
                Grantee::User => true,
                Grantee::Role(r) => active.contains(r),
            };
            on && (set.contains("ALL PRIVILEGES") || set.contains(&p))
        })
    }

    /// Active roles whose grants are not among the lines read: the shell
    /// reads `SHOW GRANTS FOR` each (SHOW GRANTS FOR an account does not
    /// list its roles' privileges).
    pub fn unresolved_roles(&self) -> Vec<String> {
        self.active_roles()
            .into_iter()
            .filter(|r| !self.listed.contains(&Grantee::Role(r.clone())))
            .collect()
    }

    /// Roles granted to the account that are not active in its sessions
    /// (not the default role nor granted to it): sqlproxyd never runs
    /// SET ROLE, so their privileges do not count.
    pub fn inactive_roles(&self) -> Vec<String> {
        let active = self.active_roles();
        let mut out: Vec<String> = self
            .role_grants
            .iter()
            .filter(|(to, r)| *to == Grantee::User && !active.contains(r))
            .map(|(_, r)| r.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// `p` in upper case with single spaces, aliases as SHOW GRANTS prints
/// them (it always prints the canonical names; GRANT accepts both).
fn normalize(p: &str) -> String {
    // A column list (`SELECT (a, b)`) never comes with a global grant,
    // but is dropped rather than misread.
    let p = p.split('(').next().unwrap_or("");
    let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
    let p = p.to_ascii_uppercase();
    match p.as_str() {
        "REPLICATION CLIENT" => "BINLOG MONITOR".into(),
        "REPLICA MONITOR" => "SLAVE MONITOR".into(),
        "REPLICATION REPLICA" => "REPLICATION SLAVE".into(),
        _ => p,
    }
}

/// `line` after a leading keyword (any case).
fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let head = line.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &line[keyword.len()..])
}

/// Byte offsets of `s`'s characters that are outside quotes (`` ` ``, `'`,
/// `"`) and parentheses.
fn top_level(s: &str) -> Vec<bool> {
    let b = s.as_bytes();
    let mut out = vec![false; b.len()];
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) => {
                if c == b'\\' && q != b'`' {
                    i += 1;
                } else if c == q {
                    if b.get(i + 1) == Some(&q) {
                        i += 1;
                    } else {
                        quote = None;
                    }
                }
            }
            None => match c {
                b'`' | b'\'' | b'"' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ => out[i] = depth == 0,
            },
        }
        i += 1;
    }
    out
}

/// The first top-level occurrence of the keyword `kw` (any case).
fn top_level_find(s: &str, kw: &str) -> Option<usize> {
    let top = top_level(s);
    (0..s.len().saturating_sub(kw.len() - 1)).find(|&i| {
        top[i]
            && s.get(i..i + kw.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(kw))
    })
}

/// `s` split at top-level commas.
fn top_level_split(s: &str) -> Vec<&str> {
    let top = top_level(s);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.bytes().enumerate() {
        if c == b',' && top[i] {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// The grantee at the start of `s` (what follows TO): `` `u`@`h` `` is the
/// account itself, a lone name a role.
fn grantee(s: &str) -> Grantee {
    let s = s.trim_start();
    let end = top_level_find(s, " ").unwrap_or(s.len());
    let name = &s[..end];
    match top_level_find(name, "@") {
        Some(_) => Grantee::User,
        None => Grantee::Role(unquote(name)),
    }
}

/// A name without its backticks or quotes (doubled ones undone).
fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['`', '\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            let inner = &s[1..s.len() - 1];
            return inner.replace(&format!("{q}{q}"), &q.to_string());
        }
    }
    s.to_owned()
}

#[cfg(test)]
mod tests;
