//! MariaDB GTID positions (`@@gtid_binlog_pos`, `Gtid_IO_Pos`, ...): one
//! `domain-server-seq` triple per replication domain, comma-separated.
//!
//! Failover needs two questions answered from them: which replica has
//! received the most (the one to promote), and whether a returning node
//! holds transactions the new primary never had (errant: it must not rejoin).

use std::collections::BTreeMap;
use std::fmt;

/// One GTID: `domain-server-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A position: the last GTID of each domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidPos(BTreeMap<u32, Gtid>);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed GTID position {input:?}: {what}")]
pub struct BadGtid {
    input: String,
    what: &'static str,
}

impl GtidPos {
    /// Parses MariaDB's form; the empty string is the empty position.
    pub fn parse(s: &str) -> Result<GtidPos, BadGtid> {
        let bad = |what| BadGtid {
            input: s.chars().take(200).collect(),
            what,
        };
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let (Some(d), Some(sv), Some(q), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad("each GTID is domain-server-seq"));
            };
            let gtid = Gtid {
                domain: d.parse().map_err(|_| bad("domain is not a number"))?,
                server: sv.parse().map_err(|_| bad("server id is not a number"))?,
                seq: q.parse().map_err(|_| bad("sequence is not a number"))?,
            };
            if map.insert(gtid.domain, gtid).is_some() {
                return Err(bad("a domain appears twice"));
            }
        }
        Ok(GtidPos(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.0.get(&domain).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.0.values().copied()
    }

    /// The GTIDs of `self` beyond `other`: in a domain `other` lacks, or
    /// with a higher sequence number than `other` has there. A node whose
    /// binlog position has any is not a prefix of `other`'s history.
    pub fn beyond(&self, other: &GtidPos) -> Vec<Gtid> {
        self.iter()
            .filter(|g| other.get(g.domain).is_none_or(|o| g.seq > o.seq))
            .collect()
    }

    /// True when `self` has at least everything `other` has, domain by domain.
    pub fn covers(&self, other: &GtidPos) -> bool {
        other.beyond(self).is_empty()
    }

    /// A total order for "who received the most": by how many domains one
    /// is ahead in, then by the sum of sequence numbers (saturating: the
    /// seqs of several domains may add up past `u64::MAX`).
    pub fn progress_key(&self, others: &[&GtidPos]) -> (usize, u64) {
        let ahead = others
            .iter()
            .filter(|o| self.covers(o) && !o.covers(self))
            .count();
        let sum = self.iter().fold(0u64, |sum, g| sum.saturating_add(g.seq));
        (ahead, sum)
    }
}

/// `@@gtid_binlog_state`: the last GTID of each (domain, server) pair a
/// binlog holds (kept when old binlogs are purged). Under
/// gtid_strict_mode a GTID is in that history exactly when its sequence
/// number is at most the state's for its domain and server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidState(BTreeMap<(u32, u32), u64>);

impl GtidState {
    pub fn parse(s: &str) -> Result<GtidState, BadGtid> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g = GtidPos::parse(part)?.iter().next().ok_or_else(|| BadGtid {
                input: part.chars().take(200).collect(),
                what: "empty GTID",
            })?;
            map.insert((g.domain, g.server), g.seq);
        }
        Ok(GtidState(map))
    }

    /// Whether this history holds `g`.
    pub fn holds(&self, g: Gtid) -> bool {
        self.0
            .get(&(g.domain, g.server))
            .is_some_and(|&s| g.seq <= s)
    }

    /// The last GTIDs of this history, per (domain, server), that `other`
    /// does not hold, leaving out server `except` (whose later
    /// transactions `other` may simply not have seen yet).
    pub fn unknown_to(&self, other: &GtidState, except: u32) -> Vec<Gtid> {
        self.0
            .iter()
            .map(|(&(domain, server), &seq)| Gtid {
                domain,
                server,
                seq,
            })
            .filter(|g| g.server != except && !other.holds(*g))
            .collect()
    }

    /// The GTIDs of `pos` this history does not hold: a node whose binlog
    /// ends with any of them has transactions the primary never had.
    pub fn missing(&self, pos: &GtidPos) -> Vec<Gtid> {
        pos.iter().filter(|&g| !self.holds(g)).collect()
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> GtidPos {
        GtidPos::parse(s).unwrap()
    }

    #[test]
    fn transactions_unknown_to_another_history() {
        let s = |t: &str| GtidState::parse(t).unwrap();
        let old = s("0-1-27,0-2-29,0-3-33");
        // Written by server 1 while it was writable on its own.
        let g = s("0-1-32").unknown_to(&old, 3);
        assert_eq!(
            g.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["0-1-32"]
        );
        // The old primary's (3) own later transactions are no evidence.
        assert!(s("0-1-27,0-2-29,0-3-40").unknown_to(&old, 3).is_empty());
        assert!(s("0-1-20,0-2-29").unknown_to(&old, 3).is_empty());
    }

    #[test]
    fn parses_and_prints_mariadb_positions() {
        assert!(p("").is_empty());
        assert_eq!(p("0-1-100").to_string(), "0-1-100");
        assert_eq!(p(" 1-2-5, 0-1-100 ").to_string(), "0-1-100,1-2-5");
        for bad in ["0-1", "0-1-x", "a-1-2", "0-1-2-3", "0-1-2,0-2-3", "-1-1-1"] {
            assert!(GtidPos::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errant_transactions_are_what_lies_beyond() {
        let primary = p("0-2-110");
        // The old master received nothing the new one lacks.
        assert!(p("0-1-103").beyond(&primary).is_empty());
        // It wrote past the new primary's sequence in the same domain.
        assert_eq!(
            p("0-1-111").beyond(&primary),
            [Gtid {
                domain: 0,
                server: 1,
                seq: 111
            }]
        );
        // Or in a domain the new primary never saw.
        assert_eq!(p("0-1-100,7-1-1").beyond(&primary).len(), 1);
    }

    #[test]
    fn a_binlog_state_knows_each_servers_history() {
        // The new primary (server 3) took over at 0-1-103 and wrote 104..110.
        let state = GtidState::parse("0-1-103,0-3-110").unwrap();
        // The old master had 0-1-103: a prefix, it may rejoin.
        assert!(state.missing(&p("0-1-103")).is_empty());
        // It had written 0-1-105, never replicated: errant, although 105 < 110.
        assert_eq!(state.missing(&p("0-1-105")).len(), 1);
        assert!(
            p("0-1-105").beyond(&p("0-3-110")).is_empty(),
            "why positions alone are not enough"
        );
        assert!(!GtidState::parse("").unwrap().holds(Gtid {
            domain: 0,
            server: 1,
            seq: 1
        }));
        assert!(GtidState::parse("0-1").is_err());
    }

    #[test]
    fn the_most_advanced_replica_wins() {
        let (a, b, c) = (p("0-1-100"), p("0-1-104"), p("0-1-104,1-3-1"));
        let all = [&a, &b, &c];
        let best = all
            .iter()
            .max_by_key(|x| x.progress_key(&all))
            .map(|x| x.to_string());
        assert_eq!(best.as_deref(), Some("0-1-104,1-3-1"));
        assert!(c.covers(&b) && b.covers(&a) && !a.covers(&b));
    }

    #[test]
    fn sequence_numbers_that_add_up_past_u64_do_not_overflow() {
        // Seen reading `progress_key` and confirmed through the `gtid` fuzz
        // target with this input: the sum overflowed (a panic in debug
        // builds, a wrapped and so wrong tie-break in release).
        let huge = p("0-0-18446744073709551615,1-0-1");
        let small = p("2-0-5");
        assert_eq!(huge.progress_key(&[&huge, &small]), (0, u64::MAX));
        assert_eq!(small.progress_key(&[&huge, &small]), (0, 5));
    }
}
