//! Every daemon's config loader, on any text: errors, never a panic.
#![no_main]

use std::path::Path;

use hastack_rt::config::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("fuzz.yaml");
    let _ = parse::<vrrpd::config::Config>(file, text);
    let _ = parse::<lbd::config::Config>(file, text);
    let _ = parse::<sqlproxyd::config::Config>(file, text);
    let _ = parse::<checkd::config::Config>(file, text);
});
