//! `vrrpd import-keepalived` on any text: a config vrrpd loads, or an error
//! that says something, never a panic. Includes are never read.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vrrpd::config::Config;
use vrrpd::import_keepalived::convert;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut no_files = |_: &Path| Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    match convert("/etc/keepalived/keepalived.conf", text, &mut no_files) {
        Ok(out) => assert_eq!(
            hastack_rt::config::error_lines::<Config>("imported.yaml", &out.yaml),
            Vec::<String>::new(),
            "{}",
            out.yaml
        ),
        Err(e) => assert!(!e.message.trim().is_empty()),
    }
});
