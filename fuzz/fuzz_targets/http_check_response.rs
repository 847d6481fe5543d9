//! What a server answers lbd's HTTP check, as lbd reads it: any bytes, cut
//! anywhere, give an answer (body within the bound), "read more" or a
//! worded error, never a panic; the verdict on an answer is worded too.
#![no_main]

use lbd::probe::{judge, parse_response, Expect, MAX_BODY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(flags >> 2) % (rest.len() + 1);
    let head_only = flags & 1 == 1;
    for (buf, eof) in [(&rest[..cut], false), (rest, flags & 2 == 2)] {
        match parse_response(buf, eof, head_only) {
            Ok(Some(a)) => {
                assert!(a.body.len() <= MAX_BODY);
                let verdict = judge(a.status, &a.body, &Expect::default());
                let text = verdict.unwrap_or_else(|e| e);
                assert!(!text.trim().is_empty());
            }
            Ok(None) => assert!(!eof),
            Err(e) => assert!(!e.is_empty()),
        }
    }
});
