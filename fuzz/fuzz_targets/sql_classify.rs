//! The SQL classifier on any text: a class, never a panic; on a connection
//! whose charset hides quotes, non-ASCII text is always a write.
#![no_main]

use hastack_proto::sql::{charset_after, classify, classify_in, writes_data, writes_data_in, Class, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let _ = classify(&sql);
    let _ = writes_data(&sql);
    let _ = charset_after(&sql);
    let gbk = Context {
        unsafe_charset: true,
        ..Context::default()
    };
    let (class, _) = classify_in(&sql, &gbk);
    if !sql.is_ascii() {
        assert_eq!(class, Class::Write);
        assert!(writes_data_in(&sql, &gbk));
    }
});
