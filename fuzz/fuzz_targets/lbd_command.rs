//! The runtime API's command parser, on any text: commands or errors that
//! say something, never a panic.
#![no_main]

use lbd::command::{parse, parse_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    for result in parse_line(line) {
        if let Err(e) = result {
            assert!(!e.to_string().trim().is_empty());
        }
    }
    // Without separators or escapes a line is one command, the same either way.
    if !line.contains([';', '\\']) && !line.trim().is_empty() {
        assert_eq!(parse_line(line), vec![parse(line)]);
    }
});
