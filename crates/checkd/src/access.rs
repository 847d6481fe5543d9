//! xinetd's access control: `only_from` and `no_access`, each a list of
//! addresses and networks. A peer matched by neither is allowed only when
//! `only_from` is empty. Matched by both, the more specific entry (the
//! longer prefix) wins, as in xinetd; equally specific, it is refused.
//!
//! IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, what a dual-stack socket
//! reports for an IPv4 client) are matched as the IPv4 address they are;
//! xinetd's lists can be bypassed that way unless both forms are written.

use std::net::IpAddr;

use crate::config::Cidr;

#[derive(Clone, Debug, Default)]
pub struct Access {
    pub only_from: Vec<Cidr>,
    pub no_access: Vec<Cidr>,
}

/// Why a peer was refused, for the log and the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Matched `no_access` (more specifically than `only_from`, if both).
    NoAccess,
    /// Not in a non-empty `only_from`.
    NotInOnlyFrom,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoAccess => "no_access",
            Refusal::NotInOnlyFrom => "only_from",
        }
    }
}

impl Access {
    pub fn check(&self, peer: IpAddr) -> Result<(), Refusal> {
        let allow = best_match(&self.only_from, peer);
        let deny = best_match(&self.no_access, peer);
        match (allow, deny) {
            (_, None) if self.only_from.is_empty() => Ok(()),
            (Some(_), None) => Ok(()),
            (None, None) => Err(Refusal::NotInOnlyFrom),
            (None, Some(_)) => Err(Refusal::NoAccess),
            (Some(a), Some(d)) if a > d => Ok(()),
            (Some(_), Some(_)) => Err(Refusal::NoAccess),
        }
    }
}

/// The longest prefix among `list`'s entries containing `peer`.
fn best_match(list: &[Cidr], peer: IpAddr) -> Option<u8> {
    list.iter()
        .filter(|c| c.contains(peer))
        .map(Cidr::prefix_len)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(only: &[&str], no: &[&str]) -> Access {
        Access {
            only_from: only.iter().map(|s| s.parse().unwrap()).collect(),
            no_access: no.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_lists_allow_everyone() {
        assert_eq!(access(&[], &[]).check(ip("203.0.113.9")), Ok(()));
    }

    #[test]
    fn only_from_allows_its_members_only() {
        let a = access(&["10.99.0.0/24", "127.0.0.1", "fd00::/8"], &[]);
        assert_eq!(a.check(ip("10.99.0.7")), Ok(()));
        assert_eq!(a.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(a.check(ip("fd00::1")), Ok(()));
        assert_eq!(a.check(ip("10.98.0.7")), Err(Refusal::NotInOnlyFrom));
        assert_eq!(a.check(ip("::1")), Err(Refusal::NotInOnlyFrom));
    }

    #[test]
    fn ipv4_mapped_peers_are_their_ipv4_address() {
        let a = access(&["10.99.0.0/24"], &["10.99.0.66"]);
        assert_eq!(a.check(ip("::ffff:10.99.0.7")), Ok(()));
        assert_eq!(a.check(ip("::ffff:10.99.0.66")), Err(Refusal::NoAccess));
        assert_eq!(a.check(ip("::ffff:192.0.2.1")), Err(Refusal::NotInOnlyFrom));
        // A rule written in mapped form still covers plain IPv4 peers.
        let b = access(&[], &["::ffff:192.0.2.0/120"]);
        assert_eq!(b.check(ip("192.0.2.5")), Err(Refusal::NoAccess));
    }

    #[test]
    fn the_more_specific_list_wins_and_a_tie_refuses() {
        let a = access(&["10.0.0.0/8", "10.1.2.3"], &["10.1.0.0/16"]);
        assert_eq!(a.check(ip("10.2.0.1")), Ok(()), "only_from /8 only");
        assert_eq!(
            a.check(ip("10.1.0.1")),
            Err(Refusal::NoAccess),
            "/16 beats /8"
        );
        assert_eq!(a.check(ip("10.1.2.3")), Ok(()), "/32 beats /16");
        let tie = access(&["10.0.0.0/8"], &["10.0.0.0/8"]);
        assert_eq!(tie.check(ip("10.0.0.1")), Err(Refusal::NoAccess));
        let no_only = access(&[], &["10.0.0.0/8"]);
        assert_eq!(no_only.check(ip("10.0.0.1")), Err(Refusal::NoAccess));
        assert_eq!(no_only.check(ip("11.0.0.1")), Ok(()));
    }
}
