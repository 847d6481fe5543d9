//! SQL statement classification for read/write splitting.
//!
//! sqlproxyd needs to know, for each statement, whether a replica may run it
//! and what it does to the session (transactions, autocommit, the current
//! schema, session variables, things that tie a session to one server).
//! This is not a SQL parser: it reads the leading keywords and scans the
//! rest for the few constructs that change the answer, skipping comments and
//! quoted text. Anything it does not recognise is a write — the safe side.

mod classify;
mod hint;
mod lexer;

pub use classify::{classify, writes_data, Class, Pin, SessionResult};
pub use hint::Hint;
