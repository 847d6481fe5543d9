//! Who may send a PROXY protocol header (pure). A header names the client
//! address sqlproxyd logs, shows in `show @@connection` and checks `user@host`
//! against, so it is believed only from the balancers listed in
//! `proxy_protocol_from`. From them it is required (HAProxy's
//! `accept-proxy`): a listed peer without one is closed. Every other peer
//! is a plain MySQL client; a header from it is refused (the connection is
//! closed, logged with the real peer address and counted).

use std::net::IpAddr;

use hastack_rt::Cidr;

/// What a client connection must start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A PROXY header, then MySQL: a listed balancer.
    Header,
    /// MySQL right away; a PROXY header is refused.
    Plain,
}

/// What a connection from `peer` (the socket's address) must start with.
pub fn expect(proxy_protocol: bool, from: &[Cidr], peer: IpAddr) -> Expect {
    if proxy_protocol && hastack_rt::cidr::any_contains(from, peer) {
        Expect::Header
    } else {
        Expect::Plain
    }
}

/// Whether the first 4 bytes a client sent open a PROXY header (v1's
/// `PROX`, v2's signature) rather than a MySQL packet: its header would
/// say a 5 MB (or 850 kB) packet with sequence id `X` (`\n`), never a
/// login's first packet (sequence id 1).
pub fn is_header_start(first: &[u8; 4]) -> bool {
    first == b"PROX" || first[..] == hastack_proto::proxy_protocol::V2_SIGNATURE[..4]
}

/// A PROXY header where none is believed: from a peer not in
/// `proxy_protocol_from` (or with proxy_protocol off), or a second one.
#[derive(Debug)]
pub struct Untrusted;

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a PROXY protocol header from a peer not in proxy_protocol_from")
    }
}

impl std::error::Error for Untrusted {}

#[cfg(test)]
mod tests {
    use super::*;
    use hastack_proto::proxy_protocol::{encode_v1, encode_v2};

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_listed_balancers_send_headers() {
        let from = nets(&["10.99.0.21/32", "10.99.0.22", "fd00::/64"]);
        assert_eq!(expect(true, &from, ip("10.99.0.21")), Expect::Header);
        assert_eq!(expect(true, &from, ip("10.99.0.22")), Expect::Header);
        assert_eq!(expect(true, &from, ip("fd00::7")), Expect::Header);
        assert_eq!(expect(true, &from, ip("10.99.0.23")), Expect::Plain);
        assert_eq!(expect(true, &from, ip("127.0.0.1")), Expect::Plain);
        // Off: nobody's header is believed, listed or not.
        assert_eq!(expect(false, &from, ip("10.99.0.21")), Expect::Plain);
        // An empty list (refused by --check) trusts nobody.
        assert_eq!(expect(true, &[], ip("10.99.0.21")), Expect::Plain);
    }

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address() {
        // A listener on [::] sees IPv4 clients as ::ffff:a.b.c.d.
        let from = nets(&["127.0.0.1/32"]);
        assert_eq!(expect(true, &from, ip("::ffff:127.0.0.1")), Expect::Header);
        assert_eq!(expect(true, &from, ip("::ffff:127.0.0.2")), Expect::Plain);
        let from = nets(&["127.0.0.2/32"]);
        assert_eq!(expect(true, &from, ip("::ffff:127.0.0.1")), Expect::Plain);
    }

    #[test]
    fn headers_are_told_from_a_logins_first_packet() {
        let a = "203.0.113.7:5555".parse().unwrap();
        let b = "127.0.0.1:8066".parse().unwrap();
        let v1 = encode_v1(a, b);
        let v2 = encode_v2(a, b);
        for h in [v1.as_bytes(), &v2[..]] {
            assert!(is_header_start(&h[..4].try_into().unwrap()));
        }
        // A HandshakeResponse: 3 bytes of length, sequence id 1.
        assert!(!is_header_start(&[0x50, 0x00, 0x00, 0x01]));
        assert!(!is_header_start(b"PRO\x01"));
    }
}
