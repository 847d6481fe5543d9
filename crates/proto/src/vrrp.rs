//! VRRP advertisements, version 2 (RFC 3768, IPv4) and version 3 (RFC 5798,
//! now RFC 9568; IPv4 and IPv6): the message after the IP header, encoded
//! and decoded with its checksum, and checked by the receive rules that
//! need no instance state ([`decode`]) and those that do ([`Expect::check`]).
//!
//! The v3 IPv4 checksum is an interop trap. RFC 5798 §5.2.8 computes it
//! over an IP pseudo-header plus the message, as keepalived (since 1.3.6)
//! and FRR do; some implementations (and keepalived's old
//! `v3_checksum_as_v2`) checksum the message alone, as v2 does. RFC 9568
//! keeps the pseudo-header. So a sender picks one [`Checksum`], and a
//! receiver may accept either ([`Accept::Either`]), learning which the
//! peer uses. IPv6 always includes the pseudo-header.
//!
//! The IP-level rules (TTL / hop limit 255, the destination, the protocol)
//! belong to the socket that received the packet; [`Drop`] names them so
//! the shell counts every reason the same way.

use std::net::IpAddr;

/// The IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// Where adverts go: 224.0.0.18 and ff02::12.
pub const MULTICAST_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 18);
pub const MULTICAST_V6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Every advert is sent with this TTL / hop limit and must arrive with it.
pub const TTL: u8 = 255;

/// Fixed header before the addresses.
const HEADER: usize = 8;
/// v2 authentication data after the addresses.
const AUTH_DATA: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

/// v2 authentication (RFC 3768 §5.3.6). Type 2 (IP AH) was removed from
/// the protocol; it is refused on receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Simple text password, up to 8 bytes, NUL-padded (keepalived's PASS).
    Simple([u8; 8]),
}

impl Auth {
    /// keepalived's `auth_pass`: longer passwords are cut at 8 bytes, as
    /// keepalived does, so both sides send the same bytes.
    pub fn simple(password: &str) -> Auth {
        let mut data = [0u8; 8];
        for (d, b) in data.iter_mut().zip(password.bytes()) {
            *d = b;
        }
        Auth::Simple(data)
    }
}

/// One advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    /// 255: the address owner; 0: the master resigns.
    pub priority: u8,
    /// The advertisement interval in centiseconds. v2 carries whole seconds
    /// (1-255), so a v2 advert's interval is a multiple of 100.
    pub interval_cs: u16,
    /// The virtual addresses, all of one family.
    pub addresses: Vec<IpAddr>,
    /// Always [`Auth::None`] in v3.
    pub auth: Auth,
}

/// How the checksum is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// Over the IP pseudo-header and the message (RFC 5798/9568; v3 only).
    PseudoHeader,
    /// Over the message alone (v2; some v3 IPv4 peers).
    MessageOnly,
}

/// Which checksums a receiver takes for v3 over IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    Only(Checksum),
    /// Either; the decoded advert says which one matched.
    Either,
}

/// Why an advert is dropped, one name per counter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Drop {
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("version {0}, not 2 or 3")]
    Version(u8),
    #[error("type {0}, not 1 (advertisement)")]
    Type(u8),
    #[error("bad checksum")]
    Checksum,
    #[error("{0}")]
    Malformed(String),
    #[error("TTL/hop limit {0}, not 255: sent from off the link")]
    Ttl(u8),
    #[error("authentication: {0}")]
    Auth(String),
    #[error("virtual router id {got}, this instance is {want}")]
    Vrid { got: u8, want: u8 },
    #[error("version {got:?}, this instance speaks {want:?}")]
    WrongVersion { got: Version, want: Version },
    #[error("advertisement interval {got_cs}cs, this instance's is {want_cs}cs")]
    Interval { got_cs: u16, want_cs: u16 },
}

impl Drop {
    /// A short label for metrics (`reason="checksum"`).
    pub fn label(&self) -> &'static str {
        match self {
            Drop::Truncated(_) | Drop::Malformed(_) => "malformed",
            Drop::Version(_) | Drop::WrongVersion { .. } => "version",
            Drop::Type(_) => "type",
            Drop::Checksum => "checksum",
            Drop::Ttl(_) => "ttl",
            Drop::Auth(_) => "auth",
            Drop::Vrid { .. } => "vrid",
            Drop::Interval { .. } => "interval",
        }
    }
}

/// The message for `advert`, sent from `src` to `dst` (needed for the
/// pseudo-header).
pub fn encode(advert: &Advert, src: IpAddr, dst: IpAddr, checksum: Checksum) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + advert.addresses.len() * 16 + AUTH_DATA);
    let count = u8::try_from(advert.addresses.len()).unwrap_or(u8::MAX);
    match advert.version {
        Version::V2 => {
            let (auth_type, data) = match advert.auth {
                Auth::None => (0u8, [0u8; 8]),
                Auth::Simple(d) => (1, d),
            };
            let secs = (advert.interval_cs / 100).clamp(1, 255) as u8;
            out.extend_from_slice(&[
                0x21,
                advert.vrid,
                advert.priority,
                count,
                auth_type,
                secs,
                0,
                0,
            ]);
            push_addresses(&mut out, advert, count);
            out.extend_from_slice(&data);
        }
        Version::V3 => {
            let interval = advert.interval_cs & 0x0fff;
            out.extend_from_slice(&[0x31, advert.vrid, advert.priority, count]);
            out.extend_from_slice(&interval.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            push_addresses(&mut out, advert, count);
        }
    }
    let sum = match (advert.version, checksum, dst) {
        (Version::V2, ..) | (Version::V3, Checksum::MessageOnly, IpAddr::V4(_)) => {
            internet_checksum(&out, 0)
        }
        _ => internet_checksum(&out, pseudo_header_sum(src, dst, out.len())),
    };
    out[6..8].copy_from_slice(&sum.to_be_bytes());
    out
}

fn push_addresses(out: &mut Vec<u8>, advert: &Advert, count: u8) {
    for a in advert.addresses.iter().take(usize::from(count)) {
        match a {
            IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
        }
    }
}

/// Decodes the message that came from `src` to `dst`, checking what needs
/// no instance state: version, type, length, checksum, address family,
/// auth type. Returns the advert and the checksum that matched.
pub fn decode(
    buf: &[u8],
    src: IpAddr,
    dst: IpAddr,
    accept: Accept,
) -> Result<(Advert, Checksum), Drop> {
    if buf.len() < HEADER {
        return Err(Drop::Truncated(format!(
            "{} bytes, the header alone is {HEADER}",
            buf.len()
        )));
    }
    let version = match buf[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        v => return Err(Drop::Version(v)),
    };
    if buf[0] & 0x0f != 1 {
        return Err(Drop::Type(buf[0] & 0x0f));
    }
    let (vrid, priority, count) = (buf[1], buf[2], usize::from(buf[3]));
    let v6 = src.is_ipv6();
    if version == Version::V2 && v6 {
        return Err(Drop::Malformed("VRRP v2 over IPv6".into()));
    }
    let width = if v6 { 16 } else { 4 };
    let tail = if version == Version::V2 { AUTH_DATA } else { 0 };
    let need = HEADER + count * width + tail;
    if buf.len() < need {
        return Err(Drop::Truncated(format!(
            "{} bytes for {count} address(es), need {need}",
            buf.len()
        )));
    }
    if count == 0 {
        return Err(Drop::Malformed("no virtual address".into()));
    }
    // Only the message is checksummed, not trailing padding.
    let msg = &buf[..need];
    let matched = verify(version, msg, src, dst, accept)?;
    let addresses = msg[HEADER..HEADER + count * width]
        .chunks_exact(width)
        .map(|c| match <[u8; 16]>::try_from(c) {
            Ok(b) => IpAddr::from(b),
            Err(_) => IpAddr::from([c[0], c[1], c[2], c[3]]),
        })
        .collect();
    let (interval_cs, auth) = match version {
        Version::V2 => {
            let data: [u8; 8] = msg[need - AUTH_DATA..need].try_into().unwrap_or_default();
            let auth = match buf[4] {
                0 => Auth::None,
                1 => Auth::Simple(data),
                2 => {
                    return Err(Drop::Auth(
                        "type 2 (IP AH) is not supported (removed in RFC 3768)".into(),
                    ))
                }
                t => return Err(Drop::Auth(format!("unknown type {t}"))),
            };
            if buf[5] == 0 {
                return Err(Drop::Malformed("advertisement interval 0".into()));
            }
            (u16::from(buf[5]) * 100, auth)
        }
        Version::V3 => {
            let cs = u16::from_be_bytes([buf[4], buf[5]]) & 0x0fff;
            if cs == 0 {
                return Err(Drop::Malformed("advertisement interval 0".into()));
            }
            (cs, Auth::None)
        }
    };
    Ok((
        Advert {
            version,
            vrid,
            priority,
            interval_cs,
            addresses,
            auth,
        },
        matched,
    ))
}

fn verify(
    version: Version,
    msg: &[u8],
    src: IpAddr,
    dst: IpAddr,
    accept: Accept,
) -> Result<Checksum, Drop> {
    let plain = || internet_checksum(msg, 0) == 0;
    let pseudo = || internet_checksum(msg, pseudo_header_sum(src, dst, msg.len())) == 0;
    let ok = |c: Checksum| match c {
        Checksum::MessageOnly => plain(),
        Checksum::PseudoHeader => pseudo(),
    };
    let candidates: &[Checksum] = match (version, src, accept) {
        (Version::V2, ..) => &[Checksum::MessageOnly],
        (Version::V3, IpAddr::V6(_), _) => &[Checksum::PseudoHeader],
        (Version::V3, _, Accept::Only(Checksum::PseudoHeader)) => &[Checksum::PseudoHeader],
        (Version::V3, _, Accept::Only(Checksum::MessageOnly)) => &[Checksum::MessageOnly],
        (Version::V3, _, Accept::Either) => &[Checksum::PseudoHeader, Checksum::MessageOnly],
    };
    candidates
        .iter()
        .copied()
        .find(|c| ok(*c))
        .ok_or(Drop::Checksum)
}

/// The one's complement sum of the pseudo-header: addresses, protocol and
/// upper-layer length (RFC 5798 §5.2.8, RFC 8200 §8.1 for IPv6).
fn pseudo_header_sum(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    let mut bytes = Vec::with_capacity(40);
    for a in [src, dst] {
        match a {
            IpAddr::V4(v) => bytes.extend_from_slice(&v.octets()),
            IpAddr::V6(v) => bytes.extend_from_slice(&v.octets()),
        }
    }
    let len = u32::try_from(len).unwrap_or(0);
    sum_words(&bytes) + u32::from(PROTOCOL) + (len >> 16) + (len & 0xffff)
}

fn sum_words(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// RFC 1071's checksum of `data` starting from `initial`; 0 when a message
/// with its checksum field filled in is intact.
fn internet_checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial) + u64::from(sum_words(data));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What an instance expects of its peers' adverts (RFC 5798 §7.1 and
/// RFC 3768 §7.1, the rules that depend on the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub version: Version,
    pub vrid: u8,
    pub auth: Auth,
    /// v2 only: adverts with another interval are dropped (RFC 3768 §7.1;
    /// v3 learns the master's interval instead).
    pub interval_cs: u16,
}

impl Expect {
    /// Whether `advert`, which arrived with `ttl`, is for this instance.
    pub fn check(&self, advert: &Advert, ttl: u8) -> Result<(), Drop> {
        if ttl != TTL {
            return Err(Drop::Ttl(ttl));
        }
        if advert.version != self.version {
            return Err(Drop::WrongVersion {
                got: advert.version,
                want: self.version,
            });
        }
        if advert.vrid != self.vrid {
            return Err(Drop::Vrid {
                got: advert.vrid,
                want: self.vrid,
            });
        }
        if advert.version == Version::V2 {
            match (self.auth, advert.auth) {
                (Auth::None, Auth::None) => {}
                (Auth::Simple(want), Auth::Simple(got)) if constant_eq(&want, &got) => {}
                (Auth::Simple(_), Auth::Simple(_)) => {
                    return Err(Drop::Auth("wrong password".into()))
                }
                (Auth::None, Auth::Simple(_)) => {
                    return Err(Drop::Auth(
                        "the peer uses a password, this instance none".into(),
                    ))
                }
                (Auth::Simple(_), Auth::None) => {
                    return Err(Drop::Auth("the peer sends no password".into()))
                }
            }
            if advert.interval_cs != self.interval_cs {
                return Err(Drop::Interval {
                    got_cs: advert.interval_cs,
                    want_cs: self.interval_cs,
                });
            }
        }
        Ok(())
    }
}

fn constant_eq(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An IP packet captured from keepalived 2.2.7 (testdata/vrrp/capture.sh):
    /// its source, destination, TTL and VRRP message.
    fn captured(name: &str) -> (IpAddr, IpAddr, u8, Vec<u8>) {
        let hex = match name {
            "v2pass" => include_str!("../testdata/vrrp/keepalived-2.2.7-v2pass.hex"),
            "v3ip4" => include_str!("../testdata/vrrp/keepalived-2.2.7-v3ip4.hex"),
            _ => include_str!("../testdata/vrrp/keepalived-2.2.7-v3ip6.hex"),
        };
        let hex = hex.trim();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        if bytes[0] >> 4 == 4 {
            let ihl = usize::from(bytes[0] & 0x0f) * 4;
            let src = IpAddr::from([bytes[12], bytes[13], bytes[14], bytes[15]]);
            let dst = IpAddr::from([bytes[16], bytes[17], bytes[18], bytes[19]]);
            (src, dst, bytes[8], bytes[ihl..].to_vec())
        } else {
            let src: [u8; 16] = bytes[8..24].try_into().unwrap();
            let dst: [u8; 16] = bytes[24..40].try_into().unwrap();
            (
                IpAddr::from(src),
                IpAddr::from(dst),
                bytes[7],
                bytes[40..].to_vec(),
            )
        }
    }

    #[test]
    fn keepalived_v2_with_a_password_decodes_and_reencodes_byte_for_byte() {
        let (src, dst, ttl, msg) = captured("v2pass");
        let (advert, sum) = decode(&msg, src, dst, Accept::Either).unwrap();
        assert_eq!(sum, Checksum::MessageOnly);
        assert_eq!(
            advert,
            Advert {
                version: Version::V2,
                vrid: 51,
                priority: 150,
                interval_cs: 100,
                addresses: vec![
                    IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100)),
                    IpAddr::V4(Ipv4Addr::new(10, 77, 0, 101))
                ],
                auth: Auth::simple("hastack1"),
            }
        );
        assert_eq!(encode(&advert, src, dst, Checksum::MessageOnly), msg);
        let expect = Expect {
            version: Version::V2,
            vrid: 51,
            auth: Auth::simple("hastack1"),
            interval_cs: 100,
        };
        assert_eq!(expect.check(&advert, ttl), Ok(()));
        let wrong = Expect {
            auth: Auth::simple("other"),
            ..expect.clone()
        };
        assert_eq!(wrong.check(&advert, ttl).unwrap_err().label(), "auth");
        assert_eq!(expect.check(&advert, 254), Err(Drop::Ttl(254)));
        let slow = Expect {
            interval_cs: 200,
            ..expect
        };
        assert_eq!(slow.check(&advert, ttl).unwrap_err().label(), "interval");
    }

    #[test]
    fn keepalived_v3_ipv4_uses_the_pseudo_header_and_reencodes() {
        let (src, dst, ttl, msg) = captured("v3ip4");
        assert_eq!(ttl, 255);
        let (advert, sum) = decode(&msg, src, dst, Accept::Either).unwrap();
        assert_eq!(sum, Checksum::PseudoHeader);
        assert_eq!(
            (advert.vrid, advert.priority, advert.interval_cs),
            (52, 200, 10)
        );
        assert_eq!(
            advert.addresses,
            vec![IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100))]
        );
        assert_eq!(encode(&advert, src, dst, Checksum::PseudoHeader), msg);
        // A receiver configured for message-only checksums refuses it...
        assert_eq!(
            decode(&msg, src, dst, Accept::Only(Checksum::MessageOnly)),
            Err(Drop::Checksum)
        );
        // ...and takes the message-only form of the same advert.
        let plain = encode(&advert, src, dst, Checksum::MessageOnly);
        assert_ne!(plain, msg);
        assert_eq!(
            decode(&plain, src, dst, Accept::Either).unwrap().1,
            Checksum::MessageOnly
        );
    }

    #[test]
    fn keepalived_v3_ipv6_decodes_and_reencodes() {
        let (src, dst, ttl, msg) = captured("v3ip6");
        assert_eq!(ttl, 255);
        assert_eq!(dst, IpAddr::V6(MULTICAST_V6));
        let (advert, _) = decode(&msg, src, dst, Accept::Only(Checksum::PseudoHeader)).unwrap();
        assert_eq!(
            (advert.vrid, advert.priority, advert.interval_cs),
            (54, 120, 100)
        );
        assert_eq!(
            advert.addresses,
            vec![IpAddr::V6("fd77::100".parse::<Ipv6Addr>().unwrap())]
        );
        assert_eq!(encode(&advert, src, dst, Checksum::PseudoHeader), msg);
        // The pseudo-header binds the source: the same bytes from another
        // address fail their checksum.
        let other = IpAddr::V6("fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            decode(&msg, other, dst, Accept::Either),
            Err(Drop::Checksum)
        );
    }

    #[test]
    fn bad_input_is_named() {
        let (src, dst, _, msg) = captured("v2pass");
        let check = |bytes: &[u8]| {
            decode(bytes, src, dst, Accept::Either)
                .map(|_| ())
                .unwrap_err()
        };
        assert!(matches!(check(&msg[..5]), Drop::Truncated(_)));
        assert!(matches!(check(&msg[..20]), Drop::Truncated(_)));
        let mut flipped = msg.clone();
        flipped[2] ^= 1;
        assert_eq!(check(&flipped), Drop::Checksum);
        let mut v4 = msg.clone();
        v4[0] = 0x41;
        assert_eq!(check(&v4), Drop::Version(4));
        let mut t = msg.clone();
        t[0] = 0x22;
        assert_eq!(check(&t), Drop::Type(2));
        let advert = Advert {
            version: Version::V2,
            vrid: 9,
            priority: 100,
            interval_cs: 100,
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            auth: Auth::None,
        };
        let mut ah = encode(&advert, src, dst, Checksum::MessageOnly);
        ah[4] = 2;
        ah[6..8].copy_from_slice(&[0, 0]);
        let sum = internet_checksum(&ah, 0);
        ah[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(check(&ah).label(), "auth");
        let expect = Expect {
            version: Version::V2,
            vrid: 10,
            auth: Auth::None,
            interval_cs: 100,
        };
        assert_eq!(
            expect.check(&advert, 255),
            Err(Drop::Vrid { got: 9, want: 10 })
        );
    }

    #[test]
    fn v3_round_trips_with_either_checksum_and_odd_lengths() {
        let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let dst = IpAddr::V4(MULTICAST_V4);
        for n in 1..=5u8 {
            let advert = Advert {
                version: Version::V3,
                vrid: n,
                priority: 255,
                interval_cs: 4095,
                addresses: (0..n)
                    .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 1, i)))
                    .collect(),
                auth: Auth::None,
            };
            for sum in [Checksum::PseudoHeader, Checksum::MessageOnly] {
                let bytes = encode(&advert, src, dst, sum);
                assert_eq!(
                    decode(&bytes, src, dst, Accept::Either),
                    Ok((advert.clone(), sum))
                );
            }
        }
    }
}
