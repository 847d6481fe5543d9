//! The raw IP protocol 112 socket one interface's instances share.
//!
//! IPv4 sends with `IP_HDRINCL` so the source address is the interface's
//! primary address even when a VIP on the same interface would otherwise be
//! picked, and the TTL is 255 whatever the route says. IPv6 lets the kernel
//! build the header (hop limit 255 set per socket) and reads the hop limit
//! and destination from control messages, because a raw IPv6 socket never
//! sees the header.

use std::io::{self, IoSliceMut, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;

use anyhow::Context;
use hastack_proto::vrrp;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The largest advert, 255 IPv6 addresses, is 4,088 bytes plus the IPv4
/// header's 60 at most; anything longer is garbage that decodes as
/// malformed whether or not its tail was cut. Allocated per datagram, so a
/// flood costs little.
const RECV_BUF: usize = 8_192;

/// One received datagram, with what the receive checks need from its IP header.
#[derive(Debug)]
pub struct Datagram {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// The VRRP message (the IPv4 header already stripped).
    pub payload: Vec<u8>,
}

pub struct AdvertSocket {
    /// A raw socket behind tokio's datagram socket type, which only needs
    /// readiness and plain datagram reads from the fd (no UDP semantics).
    fd: UdpSocket,
    ifindex: u32,
    v6: bool,
    /// IPv6 sends from the link-local address (RFC 5798 §5.1.2.1): a second
    /// socket bound to it, since binding the receive socket would filter out
    /// the multicast it must receive.
    send_v6: Option<Socket>,
}

impl AdvertSocket {
    /// Opens and joins VRRP's multicast group on `interface` (index
    /// `ifindex`); for IPv6 `link_local` is the source adverts leave from.
    pub fn open(
        interface: &str,
        ifindex: u32,
        link_local: Option<Ipv6Addr>,
    ) -> anyhow::Result<Self> {
        let v6 = link_local.is_some();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let proto = Protocol::from(i32::from(vrrp::PROTOCOL));
        let sock = Socket::new(domain, Type::RAW, Some(proto))
            .context("opening a raw socket for VRRP (IP protocol 112) needs CAP_NET_RAW")?;
        sock.bind_device(Some(interface.as_bytes()))
            .with_context(|| format!("binding the VRRP socket to interface {interface}"))?;
        let index = NonZeroU32::new(ifindex).context("interface index 0")?;
        let mut send_v6 = None;
        if let Some(ll) = link_local {
            sock.join_multicast_v6(&vrrp::MULTICAST_V6, index.get())
                .with_context(|| format!("joining ff02::12 on {interface}"))?;
            setsockopt(&sock, sockopt::Ipv6RecvPacketInfo, &true)?;
            setsockopt(&sock, sockopt::Ipv6RecvHopLimit, &true)?;
            let tx = Socket::new(domain, Type::RAW, Some(proto))?;
            tx.bind_device(Some(interface.as_bytes()))?;
            tx.set_multicast_if_v6(index.get())?;
            tx.set_multicast_hops_v6(u32::from(vrrp::TTL))?;
            tx.set_unicast_hops_v6(u32::from(vrrp::TTL))?;
            tx.set_multicast_loop_v6(false)?;
            // At boot, or just after the link came up, the link-local address
            // is still tentative (duplicate address detection, about a
            // second): binding would fail and the daemon with it. Sends fail
            // until DAD ends; the next advert goes out.
            tx.set_freebind_v6(true)?;
            tx.bind(&SockAddr::from(SocketAddrV6::new(ll, 0, 0, index.get())))
                .with_context(|| format!("binding to {ll}%{interface}"))?;
            send_v6 = Some(tx);
        } else {
            sock.join_multicast_v4_n(
                &vrrp::MULTICAST_V4,
                &InterfaceIndexOrAddress::Index(index.get()),
            )
            .with_context(|| format!("joining 224.0.0.18 on {interface}"))?;
            sock.set_header_included_v4(true)?;
            sock.set_multicast_loop_v4(false)?;
        }
        sock.set_nonblocking(true)?;
        Ok(AdvertSocket {
            fd: UdpSocket::from_std(std::net::UdpSocket::from(sock))?,
            ifindex,
            v6,
            send_v6,
        })
    }

    pub async fn recv(&self) -> io::Result<Datagram> {
        loop {
            self.fd.readable().await?;
            let got = self.fd.try_io(Interest::READABLE, || {
                if self.v6 {
                    recv_v6(&self.fd)
                } else {
                    let mut buf = vec![0u8; RECV_BUF];
                    let n = (&*SockRef::from(&self.fd)).read(&mut buf)?;
                    buf.truncate(n);
                    Ok(parse_v4(&buf).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "short IPv4 header")
                    }))
                }
            });
            match got {
                Ok(Ok(d)) => return Ok(d),
                // The kernel never hands a raw socket less than a header;
                // should it, there is nothing to count it against.
                Ok(Err(_)) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `payload` (an encoded advert) from `src` to `dst`.
    pub fn send(&self, payload: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        match (src, dst, &self.send_v6) {
            (IpAddr::V4(src), IpAddr::V4(dst), None) => {
                let packet = build_v4(src, dst, payload);
                SockRef::from(&self.fd)
                    .send_to(&packet, &SockAddr::from(SocketAddr::new(dst.into(), 0)))?;
            }
            (_, IpAddr::V6(dst), Some(tx)) => {
                let scope = if is_link_scoped(dst) { self.ifindex } else { 0 };
                tx.send_to(
                    payload,
                    &SockAddr::from(SocketAddrV6::new(dst, 0, 0, scope)),
                )?;
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{src} → {dst} does not match this socket's address family"),
                ))
            }
        }
        Ok(())
    }
}

fn is_link_scoped(ip: Ipv6Addr) -> bool {
    ip.is_multicast() || (ip.segments()[0] & 0xffc0) == 0xfe80
}

fn recv_v6(sock: &UdpSocket) -> io::Result<io::Result<Datagram>> {
    let mut buf = vec![0u8; RECV_BUF];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<SockaddrIn6>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let src = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    let mut dst = Ipv6Addr::UNSPECIFIED;
    let mut ttl = 0u8;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Ipv6Addr::from(info.ipi6_addr.s6_addr)
            }
            ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).unwrap_or(0),
            _ => {}
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    Ok(Ok(Datagram {
        src: src.into(),
        dst: dst.into(),
        ttl,
        payload: buf,
    }))
}

/// The IPv4 header fields the receive checks need; `None` for a packet too
/// short to have a header (the kernel never hands us one, but a fuzzer will).
pub fn parse_v4(packet: &[u8]) -> Option<Datagram> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl {
        return None;
    }
    let octets =
        |at: usize| -> [u8; 4] { [packet[at], packet[at + 1], packet[at + 2], packet[at + 3]] };
    // Trust the total length over the datagram's size: Ethernet pads
    // small frames, and the padding is not part of the advert.
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let end = if (ihl..=packet.len()).contains(&total) {
        total
    } else {
        packet.len()
    };
    Some(Datagram {
        src: Ipv4Addr::from(octets(12)).into(),
        dst: Ipv4Addr::from(octets(16)).into(),
        ttl: packet[8],
        payload: packet[ihl..end].to_vec(),
    })
}

/// An IPv4 header for `payload`; the kernel fills in the identification
/// and header checksum when they are 0 (raw(7), IP_HDRINCL).
pub fn build_v4(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
    let mut p = Vec::with_capacity(20 + payload.len());
    p.extend_from_slice(&[0x45, 0xc0]); // version 4, IHL 5; DSCP CS6 (network control) as keepalived
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]); // id, flags/fragment
    p.extend_from_slice(&[vrrp::TTL, vrrp::PROTOCOL, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_header_round_trips() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let packet = build_v4(src, vrrp::MULTICAST_V4, b"advert");
        let d = parse_v4(&packet).unwrap();
        assert_eq!(d.src, IpAddr::V4(src));
        assert_eq!(d.dst, IpAddr::V4(vrrp::MULTICAST_V4));
        assert_eq!(d.ttl, 255);
        assert_eq!(d.payload, b"advert");
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut packet = build_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, b"abc");
        packet.extend_from_slice(&[0; 20]);
        assert_eq!(parse_v4(&packet).unwrap().payload, b"abc");
    }

    #[test]
    fn short_or_bad_headers_are_refused() {
        assert!(parse_v4(&[]).is_none());
        assert!(parse_v4(&[0x44; 19]).is_none());
        assert!(parse_v4(&[0x4f; 30]).is_none());
    }
}
