//! `tokio_util::codec` adapter over [`super::framing`].

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::compress::Compression;
use super::framing::{self, FrameError, Packet};

/// Frames a byte stream into MySQL [`Packet`]s with a reassembly limit,
/// inside compressed frames once [`PacketCodec::compress`] is called.
#[derive(Clone, Debug)]
pub struct PacketCodec {
    max_packet: usize,
    compression: Option<Compression>,
}

impl PacketCodec {
    pub fn new(max_packet: usize) -> Self {
        PacketCodec {
            max_packet,
            compression: None,
        }
    }

    /// Speaks the compressed protocol from now on (both ways): after the
    /// login's OK, when the client asked for CLIENT_COMPRESS.
    pub fn compress(&mut self) {
        self.compression.get_or_insert_with(Compression::default);
    }

    pub fn is_compressed(&self) -> bool {
        self.compression.is_some()
    }

    /// Bytes the codec holds itself (the compressed protocol's inflated
    /// bytes not yet framed), beyond the stream's buffers.
    pub fn buffered(&self) -> usize {
        self.compression.as_ref().map_or(0, |c| c.plain.capacity())
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
        let Some(c) = &mut self.compression else {
            return Ok(framing::decode(src, self.max_packet)?);
        };
        loop {
            if let Some(p) = framing::decode(&mut c.plain, self.max_packet)? {
                return Ok(Some(p));
            }
            if !c.read_frame(src, self.max_packet)? {
                return Ok(None);
            }
        }
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        match &mut self.compression {
            None => framing::encode(&item, dst),
            Some(c) => {
                let mut plain = BytesMut::with_capacity(item.wire_len());
                framing::encode(&item, &mut plain);
                c.write_frames(&plain, dst);
            }
        }
        Ok(())
    }
}
