//! GTID positions and binlog states from any text; what parses prints and
//! parses back the same, and the comparisons failover makes do not panic.
#![no_main]

use hastack_proto::mysql::gtid::{GtidPos, GtidState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let state = GtidState::parse(text);
    // Two positions from one input: the halves around the first '|'.
    let (a, b) = text.split_once('|').unwrap_or((text, ""));
    let (Ok(a), Ok(b)) = (GtidPos::parse(a), GtidPos::parse(b)) else {
        return;
    };
    assert_eq!(GtidPos::parse(&a.to_string()).as_ref(), Ok(&a));
    let _ = a.beyond(&b);
    let _ = a.covers(&b);
    let _ = a.progress_key(&[&a, &b]);
    let _ = b.progress_key(&[&a, &b]);
    if let Ok(state) = state {
        let _ = state.missing(&a);
        for g in a.iter() {
            let _ = state.holds(g);
        }
    }
});
