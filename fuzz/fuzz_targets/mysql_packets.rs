//! The packet readers: a handshake and a command reply, from any bytes.
#![no_main]

use hastack_proto::mysql::packets::{parse_reply, Handshake};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Handshake::parse(data);
    let _ = parse_reply(data);
});
