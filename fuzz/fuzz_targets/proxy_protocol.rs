//! The PROXY protocol reader, on any bytes: a header, a wait or an error,
//! never a panic; a header never claims more bytes than it was given.
#![no_main]

use hastack_proto::proxy_protocol::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = parse(data) {
        assert!(used <= data.len());
    }
});
