//! `tokio_util::codec` adapter over [`super::framing`].

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::framing::{self, FrameError, Packet};

/// Frames a byte stream into MySQL [`Packet`]s with a reassembly limit.
#[derive(Clone, Debug)]
pub struct PacketCodec {
    max_packet: usize,
}

impl PacketCodec {
    pub fn new(max_packet: usize) -> Self {
        PacketCodec { max_packet }
    }

    /// Changes the limit for the packets decoded from now on (a server
    /// allows less before login than after).
    pub fn set_max_packet(&mut self, max_packet: usize) {
        self.max_packet = max_packet;
    }
}

impl Default for PacketCodec {
    fn default() -> Self {
        PacketCodec::new(framing::DEFAULT_MAX_PACKET)
    }
}

/// A framing error or the I/O error underneath it.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        Ok(framing::decode(src, self.max_packet)?)
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        framing::encode(&item, dst);
        Ok(())
    }
}
