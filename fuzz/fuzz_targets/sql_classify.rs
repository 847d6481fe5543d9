//! The SQL classifier on any text: a class, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let _ = hastack_proto::sql::classify(&sql);
    let _ = hastack_proto::sql::writes_data(&sql);
});
