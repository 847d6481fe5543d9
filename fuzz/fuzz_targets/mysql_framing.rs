//! Any byte stream, fed in two pieces: decode never panics, never returns a
//! packet over the limit, and what it returns re-encodes to the bytes it consumed.
#![no_main]

use bytes::BytesMut;
use hastack_proto::mysql::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let max = 1 << 20;
    let cut = usize::from(cut).min(rest.len());
    let mut src = BytesMut::from(&rest[..cut]);
    let mut consumed = 0;
    let mut feed = Some(&rest[cut..]);
    loop {
        let before = src.len();
        match decode(&mut src, max) {
            Ok(Some(packet)) => {
                assert!(packet.payload.len() <= max);
                let used = before - src.len();
                let mut again = BytesMut::new();
                encode(&packet, &mut again);
                assert_eq!(again.len(), used);
                assert_eq!(&again[..], &rest[consumed..consumed + used]);
                consumed += used;
            }
            Ok(None) => match feed.take() {
                Some(more) => src.extend_from_slice(more),
                None => break,
            },
            Err(_) => break,
        }
    }
});
