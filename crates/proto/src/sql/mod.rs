//! SQL statement classification for read/write splitting.
//!
//! sqlproxyd needs to know, for each statement, whether a replica may run it
//! and what it does to the session (transactions, autocommit, the current
//! schema, session variables, things that tie a session to one server).
//! This is not a SQL parser: it reads the leading keywords and scans the
//! rest for the few constructs that change the answer, skipping comments and
//! quoted text. Anything it does not recognise is a write — the safe side.

mod charset;
mod classify;
mod connection_id;
mod functions;
mod hint;
mod lexer;
mod mentions;

pub use charset::{charset_after, collation_is_unsafe, CharsetChange};
pub use classify::{
    analyze, classify, classify_in, writes_data, writes_data_in, Analysis, Class, Context, Pin,
    SessionResult,
};
pub use connection_id::replace_connection_id;
pub use functions::builtin_names;
pub use hint::Hint;
pub use lexer::{lex, lex_spanned, Dialect, Lexed, Server, Token};
pub use mentions::Mentions;
