//! The classifier against a real MariaDB, without end: each input is a
//! generated statement (or, after a 0 byte, raw text), classified and run
//! on the server at $HASTACK_FUZZ_MARIADB_SOCKET (root, a scratch server:
//! schema `d` is dropped and made anew). A text classified as a read that
//! writes or changes the session is a crash. See fuzz/README.md.
#![no_main]

use std::sync::{Mutex, OnceLock};

use hastack_it::classifier_oracle::{Oracle, SQL_MODES};
use hastack_it::sqlgen::SqlGen;
use libfuzzer_sys::fuzz_target;
use mysql::OptsBuilder;

static ORACLE: OnceLock<Mutex<Oracle>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let oracle = ORACLE.get_or_init(|| {
        let socket = std::env::var("HASTACK_FUZZ_MARIADB_SOCKET")
            .expect("set HASTACK_FUZZ_MARIADB_SOCKET to a scratch MariaDB's socket (root)");
        let opts = OptsBuilder::new().socket(Some(socket)).user(Some("root"));
        Mutex::new(Oracle::new(opts.into()).expect("setting up schema d"))
    });
    let sql = match data.split_first() {
        Some((0, raw)) => String::from_utf8_lossy(raw).into_owned(),
        _ => SqlGen::from_bytes(data).statement(),
    };
    let mode = SQL_MODES[data.len() % SQL_MODES.len()];
    let mut oracle = oracle.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(finding) = oracle.judge(&sql, mode).expect("the server answers") {
        panic!("{finding}");
    }
});
