//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load
//! balancer puts before a proxied connection's bytes to pass on the client's
//! real address. lbd writes it (`send_proxy`); sqlproxyd reads it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12-byte signature that opens a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Longest version 1 header, CRLF included.
pub const V1_MAX: usize = 107;

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The client's address and the address it connected to; `None` for a
    /// v2 LOCAL command (the balancer's own health check) or v1 UNKNOWN.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Why the bytes are not a PROXY header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
}

/// Parses a header at the start of `buf`. `Ok(None)`: need more bytes.
/// `Ok(Some((header, n)))`: the header took the first `n` bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let n = buf.len().min(12);
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < 12 { Ok(None) } else { parse_v2(buf) };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if n < 6 { Ok(None) } else { parse_v1(buf) };
    }
    Err(Error::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(Error::V1("no CRLF within 107 bytes"))
        } else {
            Ok(None)
        };
    };
    if end + 2 > V1_MAX {
        return Err(Error::V1("longer than 107 bytes"));
    }
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| Error::V1("not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["UNKNOWN", ..] => Header { addresses: None },
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| -> Result<IpAddr, Error> {
                let ip: IpAddr = s.parse().map_err(|_| Error::V1("bad address"))?;
                match (*proto, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(Error::V1("address family does not match")),
                }
            };
            let port = |s: &str| -> Result<u16, Error> {
                // No leading zeros or signs, as the spec says.
                if s.is_empty()
                    || (s.len() > 1 && s.starts_with('0'))
                    || !s.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(Error::V1("bad port"));
                }
                s.parse().map_err(|_| Error::V1("bad port"))
            };
            Header {
                addresses: Some((
                    SocketAddr::new(ip(src)?, port(sport)?),
                    SocketAddr::new(ip(dst)?, port(dport)?),
                )),
            }
        }
        _ => {
            return Err(Error::V1(
                "expected TCP4, TCP6 or UNKNOWN with two addresses and two ports",
            ))
        }
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(None);
    };
    let version = fixed[12] >> 4;
    let command = fixed[12] & 0x0F;
    if version != 2 {
        return Err(Error::V2("version is not 2"));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let Some(body) = buf.get(16..16 + len) else {
        return Ok(None);
    };
    let total = 16 + len;
    match command {
        // LOCAL: the balancer talking for itself; addresses are ignored.
        0x0 => return Ok(Some((Header { addresses: None }, total))),
        0x1 => {}
        _ => return Err(Error::V2("unknown command")),
    }
    let addresses = match fixed[13] {
        // TCP over IPv4.
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(Error::V2("IPv4 addresses truncated"))?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        // TCP over IPv6.
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(Error::V2("IPv6 addresses truncated"))?;
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        // UNSPEC, UDP, unix sockets: no TCP addresses to report.
        _ => None,
    };
    Ok(Some((Header { addresses }, total)))
}

/// A version 1 header for a connection from `src` to `dst`.
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> String {
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        (SocketAddr::V6(s), SocketAddr::V6(d)) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        _ => "PROXY UNKNOWN\r\n".to_owned(),
    }
}

/// A version 2 header (PROXY command, TCP) for a connection from `src` to `dst`.
pub fn encode_v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.extend_from_slice(&[0x21, 0x11, 0, 12]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            out.extend_from_slice(&[0x21, 0x21, 0, 36]);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        // Mixed families: a PROXY command with UNSPEC addresses.
        _ => out.extend_from_slice(&[0x21, 0x00, 0, 0]),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_examples_from_the_spec() {
        let (h, n) = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /")
            .unwrap()
            .unwrap();
        assert_eq!(n, 47);
        assert_eq!(
            h.addresses,
            Some((addr("192.168.0.1:56324"), addr("192.168.0.11:443")))
        );
        let (h, _) = parse(b"PROXY TCP6 ::1 fd00::1 1 2\r\n").unwrap().unwrap();
        assert_eq!(h.addresses, Some((addr("[::1]:1"), addr("[fd00::1]:2"))));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0.addresses,
            None
        );
    }

    #[test]
    fn v1_errors_and_partial_input() {
        assert_eq!(parse(b"PROX"), Ok(None));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(None));
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n").is_err());
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n").is_err());
        assert!(parse(
            &[b'P', b'R', b'O', b'X', b'Y', b' ']
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'1', 200))
                .collect::<Vec<_>>()
        )
        .is_err());
        assert_eq!(parse(b"\x0a\x00\x00\x00\x0a5.5.5"), Err(Error::NotProxy));
    }

    #[test]
    fn v2_round_trips_and_local_has_no_addresses() {
        for (s, d) in [
            ("10.0.0.1:40000", "10.0.0.2:8066"),
            ("[fd00::1]:1", "[fd00::2]:2"),
        ] {
            let mut wire = encode_v2(addr(s), addr(d));
            let len = wire.len();
            wire.extend_from_slice(b"rest");
            assert_eq!(
                parse(&wire).unwrap().unwrap(),
                (
                    Header {
                        addresses: Some((addr(s), addr(d)))
                    },
                    len
                )
            );
            for cut in 0..len {
                assert_eq!(parse(&wire[..cut]), Ok(None), "cut {cut}");
            }
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local).unwrap().unwrap(),
            (Header { addresses: None }, 16)
        );
    }

    #[test]
    fn v1_round_trips() {
        let wire = encode_v1(addr("10.0.0.1:40000"), addr("10.0.0.2:8066"));
        assert_eq!(wire, "PROXY TCP4 10.0.0.1 10.0.0.2 40000 8066\r\n");
        assert_eq!(
            parse(wire.as_bytes()).unwrap().unwrap().0.addresses,
            Some((addr("10.0.0.1:40000"), addr("10.0.0.2:8066")))
        );
    }

    #[test]
    fn v2_bad_version_command_or_truncated_addresses() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x31, 0x11, 0, 12]);
        h.extend_from_slice(&[0; 12]);
        assert_eq!(parse(&h), Err(Error::V2("version is not 2")));
        h[12] = 0x2F;
        assert_eq!(parse(&h), Err(Error::V2("unknown command")));
        h[12] = 0x21;
        h[15] = 4;
        assert!(parse(&h).is_err(), "IPv4 family with 4 bytes of addresses");
    }
}
