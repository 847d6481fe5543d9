//! Any byte stream as a client's compressed protocol, fed in two pieces:
//! no panic, nothing inflated past the limit, and what the codec frames
//! from it re-encodes (compressed, then read back) to the same packets.
#![no_main]

use bytes::BytesMut;
use hastack_proto::mysql::compress::Compression;
use hastack_proto::mysql::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let max = 1 << 20;
    let cut = usize::from(cut).min(rest.len());
    let mut src = BytesMut::from(&rest[..cut]);
    let mut feed = Some(&rest[cut..]);
    let mut c = Compression::default();
    let mut packets = Vec::new();
    loop {
        match decode(&mut c.plain, max) {
            Ok(Some(p)) => {
                assert!(p.payload.len() <= max);
                packets.push(p);
                continue;
            }
            Ok(None) => {}
            Err(_) => break,
        }
        assert!(c.plain.len() <= 2 * (max + 4) + 0xFF_FFFF);
        match c.read_frame(&mut src, max) {
            Ok(true) => {}
            Ok(false) => match feed.take() {
                Some(more) => src.extend_from_slice(more),
                None => break,
            },
            Err(_) => break,
        }
    }
    // What came out goes back in, compressed by us, and reads the same.
    let mut plain = BytesMut::new();
    for p in &packets {
        encode(p, &mut plain);
    }
    let mut out = Compression::default();
    let mut wire = BytesMut::new();
    out.write_frames(&plain, &mut wire);
    let mut back = Compression::default();
    while back.read_frame(&mut wire, max).unwrap() {}
    let mut again = Vec::new();
    while let Some(p) = decode(&mut back.plain, max).unwrap() {
        again.push(p);
    }
    assert_eq!(again, packets);
});
