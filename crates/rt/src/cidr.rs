//! Addresses and networks in configs (`10.0.0.1`, `10.0.0.0/24`, `::1`,
//! `fd00::/8`) and whether a peer is in one. IPv4-mapped IPv6 peers
//! (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4
//! client) are matched as the IPv4 address they are, so a list written in
//! IPv4 cannot be bypassed by connecting to an IPv6 socket (xinetd's hole).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An address or a network; a bare address is its /32 (/128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// Whether `peer` is in this network, IPv4-mapped peers as IPv4 (and
    /// a network written in IPv4-mapped IPv6 form matches IPv4 peers).
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.0, canonical(peer)) {
            (IpNet::V4(n), IpAddr::V4(v4)) => n.contains(&v4),
            (IpNet::V6(n), IpAddr::V6(v6)) => n.contains(&v6),
            (IpNet::V6(n), IpAddr::V4(v4)) => n.contains(&v4.to_ipv6_mapped()),
            (IpNet::V4(_), IpAddr::V6(_)) => false,
        }
    }

    /// The prefix length (`24` for `10.0.0.0/24`).
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }
}

/// Whether any entry of `list` contains `peer`.
pub fn any_contains(list: &[Cidr], peer: IpAddr) -> bool {
    list.iter().any(|c| c.contains(peer))
}

/// The IPv4 address inside an IPv4-mapped IPv6 one; others unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(Cidr)
            .map_err(|_| format!("expected an IP address or CIDR like 10.0.0.0/24, got {s:?}"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_parse_and_print() {
        assert_eq!(net("10.0.0.1").to_string(), "10.0.0.1/32");
        assert_eq!(net("fd00::/8").to_string(), "fd00::/8");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_ipv4_networks() {
        let lb = net("10.99.0.0/24");
        assert!(lb.contains(ip("10.99.0.21")));
        assert!(lb.contains(ip("::ffff:10.99.0.21")));
        assert!(!lb.contains(ip("::ffff:10.98.0.21")));
        assert!(!lb.contains(ip("fd00::1")));
        // Written in the mapped form, it matches the IPv4 peer too.
        assert!(net("::ffff:127.0.0.1/128").contains(ip("127.0.0.1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(!net("::1").contains(ip("127.0.0.1")));
        assert!(any_contains(&[net("::1"), lb], ip("::ffff:10.99.0.5")));
        assert!(!any_contains(&[], ip("127.0.0.1")));
    }
}
