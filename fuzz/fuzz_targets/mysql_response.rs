//! The reply-end tracker fed any packets, for every command shape.
#![no_main]

use hastack_proto::mysql::response::{Expect, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let expect = match kind % 5 {
        0 => Expect::ResultSets,
        1 => Expect::Prepare,
        2 => Expect::FieldList,
        3 => Expect::Fetch,
        _ => Expect::OnePacket,
    };
    let mut reply = Reply::new(expect);
    // Packets separated by a length byte each.
    let mut rest = rest;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        if reply.step(&tail[..len]).is_err() {
            break;
        }
        rest = &tail[len..];
    }
});
