//! The MySQL client/server protocol, as far as the daemons need it.
//!
//! - [`framing`]: the packet layer (3-byte length, sequence id, 16 MiB split).
//! - [`compress`]: the compressed protocol's frames around it.
//! - [`packets`]: the few packets a proxy or checker builds itself, built on
//!   `mysql_common` where it has them.
//! - [`response`]: where a server's reply to one command ends.
//! - [`auth`]: mysql_native_password, the server's side.
//! - [`client`]: a login, the client's side (pure).
//! - [`conn`]: a small async client on top of it (log in, query, quit), for
//!   the checkers; with the `codec` feature.
//! - [`rows`]: text result sets read back, for a daemon's own queries.
//! - [`gtid`]: MariaDB GTID positions, compared for failover.

pub mod auth;
pub mod client;
pub mod compress;
pub mod framing;
pub mod gtid;
pub mod packets;
pub mod response;
pub mod rows;

#[cfg(feature = "codec")]
pub mod codec;
#[cfg(feature = "codec")]
pub mod conn;

pub use framing::{decode, encode, FrameError, Packet, DEFAULT_MAX_PACKET, MAX_FRAME_PAYLOAD};
