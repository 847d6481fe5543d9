//! A checker's answer as lbd reads it: any status and body bytes give a
//! verdict and a short reason, never a panic; what checkd writes reads back.
#![no_main]

use hastack_proto::health::Health;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&hi, rest)) = data.split_first() else {
        return;
    };
    let status = 100 + u16::from(hi) * 2;
    let (up, reason) = Health::from_response(status, rest);
    assert_eq!(up, (200..300).contains(&status));
    assert!(!reason.trim().is_empty());
    let h = Health {
        up,
        service: String::from_utf8_lossy(rest).into_owned(),
        check: "c".into(),
        detail: "d".into(),
        took_ms: 1.0,
    };
    let (up2, _) = Health::from_response(h.status_code(), h.json().as_bytes());
    assert_eq!(up2, up);
});
