//! Whole IPv4 packets as vrrpd's raw socket hands them over: the header
//! parse never panics, never reads past the datagram, and a packet built by
//! `build_v4` parses back to its own fields.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use vrrpd::socket::{build_v4, parse_v4};

fuzz_target!(|data: &[u8]| {
    if let Some(d) = parse_v4(data) {
        assert!(d.payload.len() + 20 <= data.len());
    }
    let src = Ipv4Addr::new(10, 0, 0, 1);
    let dst = Ipv4Addr::new(224, 0, 0, 18);
    let packet = build_v4(src, dst, data);
    if packet.len() <= usize::from(u16::MAX) {
        let d = parse_v4(&packet).expect("our own header parses");
        assert_eq!(d.payload, data);
        assert_eq!((d.src, d.dst, d.ttl), (src.into(), dst.into(), 255));
    }
});
