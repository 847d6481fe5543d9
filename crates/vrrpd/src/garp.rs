//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6)
//! for VIPs a new master took over, so switches and hosts on the segment
//! send to its MAC at once instead of waiting for their caches to expire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

use anyhow::{anyhow, Context};
use pnet_datalink::Channel;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Sends one announcement per address in `vips` out of `interface`,
/// whose MAC is `mac`. Blocking: call it from a blocking thread.
pub fn announce(interface: &str, mac: [u8; 6], vips: &[IpAddr]) -> anyhow::Result<()> {
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = vips.iter().partition(|ip| ip.is_ipv4());
    if !v4.is_empty() {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| anyhow!("no interface named {interface:?} for gratuitous ARP"))?;
        let config = pnet_datalink::Config {
            // We only send: keep the receive side from buffering the segment's traffic.
            read_buffer_size: 64,
            ..Default::default()
        };
        let mut tx = match pnet_datalink::channel(&iface, config).with_context(|| {
            format!("opening a packet socket on {interface} (needs CAP_NET_RAW)")
        })? {
            Channel::Ethernet(tx, _rx) => tx,
            _ => return Err(anyhow!("{interface} is not an Ethernet-like interface")),
        };
        for ip in v4 {
            if let IpAddr::V4(ip) = ip {
                tx.send_to(&arp_frame(mac, ip), None)
                    .unwrap_or_else(|| Err(std::io::Error::other("no frame sent")))
                    .with_context(|| format!("sending gratuitous ARP for {ip} on {interface}"))?;
            }
        }
    }
    if !v6.is_empty() {
        let index = nix::net::if_::if_nametoindex(interface)
            .with_context(|| format!("no interface named {interface:?}"))?;
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .context("opening an ICMPv6 socket (needs CAP_NET_RAW)")?;
        sock.bind_device(Some(interface.as_bytes()))?;
        sock.set_multicast_if_v6(index)?;
        // RFC 4861 §7.1.2: a receiver drops NAs whose hop limit is not 255.
        sock.set_multicast_hops_v6(255)?;
        let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, index);
        for ip in v6 {
            if let IpAddr::V6(ip) = ip {
                sock.send_to(&neighbour_advert(mac, ip), &SockAddr::from(all_nodes))
                    .with_context(|| {
                        format!("sending a neighbour advertisement for {ip} on {interface}")
                    })?;
            }
        }
    }
    Ok(())
}

/// A broadcast ARP request with sender and target both the VIP: the form
/// of gratuitous ARP that every stack updates its cache from (RFC 5227 §3).
pub fn arp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]); // destination: broadcast
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]); // Ethernet, IPv4
    f.extend_from_slice(&[0x00, 0x01]); // request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement with the Override flag (RFC 4861
/// §7.2.6) and our MAC as the target link-layer address; the kernel fills in
/// the checksum of a raw ICMPv6 socket.
pub fn neighbour_advert(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum
    p.extend_from_slice(&[0x20, 0, 0, 0]); // flags: Override
    p.extend_from_slice(&ip.octets());
    p.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    p.extend_from_slice(&mac);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frame_is_a_gratuitous_request() {
        let mac = [2, 0, 0, 0, 0, 7];
        let f = arp_frame(mac, Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[10, 99, 0, 100], "sender IP");
        assert_eq!(&f[38..42], &[10, 99, 0, 100], "target IP");
        assert_eq!(&f[22..28], &mac, "sender MAC");
    }

    #[test]
    fn neighbour_advert_overrides_with_our_mac() {
        let mac = [2, 0, 0, 0, 0, 7];
        let p = neighbour_advert(mac, "fd00::100".parse().unwrap());
        assert_eq!(p.len(), 32);
        assert_eq!(p[0], 136);
        assert_eq!(p[4] & 0x20, 0x20);
        assert_eq!(&p[26..32], &mac);
    }
}
