//! The MySQL client/server protocol, as far as the daemons need it.
//!
//! - [`framing`]: the packet layer (3-byte length, sequence id, 16 MiB split).
//! - [`packets`]: the few packets a proxy or checker builds itself, built on
//!   `mysql_common` where it has them.

pub mod framing;
pub mod packets;

#[cfg(feature = "codec")]
pub mod codec;

pub use framing::{decode, encode, FrameError, Packet, DEFAULT_MAX_PACKET, MAX_FRAME_PAYLOAD};
