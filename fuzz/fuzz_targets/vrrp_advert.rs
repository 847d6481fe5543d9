//! VRRP adverts from any bytes, over IPv4 and IPv6, with either checksum:
//! no panic, and an accepted advert encodes back to the bytes it came from.
#![no_main]

use std::net::IpAddr;

use hastack_proto::vrrp::{decode, encode, Accept, Auth, Expect, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs: [(IpAddr, IpAddr); 2] = [
        ([10, 0, 0, 1].into(), [224, 0, 0, 18].into()),
        (
            IpAddr::V6("fe80::1".parse().unwrap()),
            IpAddr::V6("ff02::12".parse().unwrap()),
        ),
    ];
    for (src, dst) in pairs {
        let Ok((advert, sum)) = decode(data, src, dst, Accept::Either) else {
            continue;
        };
        let again = encode(&advert, src, dst, sum);
        // Reserved bits and trailing bytes are not kept; the rest is.
        assert!(again.len() <= data.len());
        assert_eq!(decode(&again, src, dst, Accept::Either), Ok((advert.clone(), sum)));
        let expect = Expect { version: Version::V2, vrid: 1, auth: Auth::None, interval_cs: 100 };
        let _ = expect.check(&advert, data.first().copied().unwrap_or(0));
    }
});
