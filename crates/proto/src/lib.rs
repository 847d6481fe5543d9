//! Wire formats shared by the hastack daemons.
//!
//! Everything here is pure: bytes in, values out (and back), no sockets, no
//! clock, no runtime. That keeps every decoder fuzzable and every daemon's
//! I/O shell thin. The `codec` feature adds `tokio_util::codec` adapters.

#![forbid(unsafe_code)]

pub mod health;
pub mod mysql;
pub mod proxy_protocol;
pub mod sql;
pub mod vrrp;
