//! The result-set reader fed any sequence of payloads; what it accepts
//! re-encodes and reads back the same.
#![no_main]

use hastack_proto::mysql::packets::{text_result_set, Status};
use hastack_proto::mysql::rows::decode_rows;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Payloads separated by a length byte each.
    let mut payloads = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        payloads.push(&tail[..len]);
        rest = &tail[len..];
    }
    let Ok(rows) = decode_rows(&payloads) else {
        return;
    };
    assert!(rows.rows.iter().all(|r| r.len() == rows.columns.len()));
    if rows.columns.is_empty() {
        // An OK: no rows either.
        assert!(rows.rows.is_empty());
        return;
    }
    let names: Vec<&str> = rows.columns.iter().map(String::as_str).collect();
    let again = text_result_set(&names, &rows.rows, Status::empty());
    assert_eq!(decode_rows(&again).ok().as_ref(), Some(&rows));
});
