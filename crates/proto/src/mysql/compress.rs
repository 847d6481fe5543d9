//! The compressed protocol (CLIENT_COMPRESS), pure: after the login's OK
//! both sides wrap the packet stream in compressed frames: 3 bytes of
//! compressed length, a sequence id of its own, 3 bytes of uncompressed
//! length (0: the body is stored as is), then the body (zlib). A frame's
//! body holds any part of the packet stream: several packets, or a piece
//! of one.
//!
//! The compressed sequence id restarts at 0 with each command the client
//! sends, and the reply's frames go on from the client's last one:
//! [`Compression`] answers with the id after the last frame it read.

use std::io::Read;

use bytes::{BufMut, BytesMut};
use flate2::read::{ZlibDecoder, ZlibEncoder};

use super::framing::{FrameError, HEADER_LEN, MAX_FRAME_PAYLOAD};

/// A compressed frame's header: lengths and sequence id.
pub const COMPRESSED_HEADER_LEN: usize = 7;

/// Bodies shorter than this go out stored (as MariaDB's
/// MIN_COMPRESS_LENGTH): compressing them costs more than it saves.
pub const MIN_COMPRESS_LENGTH: usize = 50;

/// One side's compression state.
#[derive(Clone, Debug, Default)]
pub struct Compression {
    /// Decompressed bytes not yet framed into packets.
    pub plain: BytesMut,
    /// The sequence id of the next frame sent.
    next_seq: u8,
}

impl Compression {
    /// Takes one compressed frame off `src` into [`Compression::plain`]:
    /// `Ok(false)` when `src` holds no whole frame yet (nothing consumed).
    /// A frame claiming more than `max_packet` bytes, or whose body does
    /// not inflate to exactly its stated length, is an error: a client
    /// cannot make the proxy allocate or inflate more than that.
    pub fn read_frame(
        &mut self,
        src: &mut BytesMut,
        max_packet: usize,
    ) -> Result<bool, FrameError> {
        if src.len() < COMPRESSED_HEADER_LEN {
            return Ok(false);
        }
        let stored = u24(&src[0..3]);
        let seq = src[3];
        let plain_len = u24(&src[4..7]);
        let limit = max_packet.saturating_add(HEADER_LEN);
        if stored.max(plain_len) > limit {
            return Err(FrameError::Oversized {
                len: stored.max(plain_len),
                max: limit,
            });
        }
        if src.len() < COMPRESSED_HEADER_LEN + stored {
            return Ok(false);
        }
        let frame = src.split_to(COMPRESSED_HEADER_LEN + stored);
        let body = &frame[COMPRESSED_HEADER_LEN..];
        if plain_len == 0 {
            self.plain.extend_from_slice(body);
        } else {
            // Inflated straight onto `plain`; one byte more than stated is
            // asked for: a body that inflates past its length is refused
            // rather than cut.
            let before = self.plain.len();
            let mut out = std::mem::take(&mut self.plain).writer();
            let read = std::io::copy(
                &mut ZlibDecoder::new(body).take(plain_len as u64 + 1),
                &mut out,
            );
            self.plain = out.into_inner();
            let got = self.plain.len() - before;
            if read.is_err() || got != plain_len {
                return Err(FrameError::BadCompressedFrame {
                    stated: plain_len,
                    got,
                });
            }
        }
        self.next_seq = seq.wrapping_add(1);
        Ok(true)
    }

    /// Wraps `plain` (whole packets, already framed) into compressed
    /// frames on `dst`.
    pub fn write_frames(&mut self, plain: &[u8], dst: &mut BytesMut) {
        for chunk in plain.chunks(MAX_FRAME_PAYLOAD) {
            let compressed = (chunk.len() >= MIN_COMPRESS_LENGTH)
                .then(|| {
                    let mut out = Vec::with_capacity(chunk.len() / 2 + 16);
                    // The fast level: the proxy deflates every reply of
                    // every compressing client, on its own cores.
                    ZlibEncoder::new(chunk, flate2::Compression::fast())
                        .read_to_end(&mut out)
                        .ok()?;
                    // Stored when deflate does not help.
                    (out.len() < chunk.len()).then_some(out)
                })
                .flatten();
            let (body, plain_len) = match &compressed {
                Some(c) => (&c[..], chunk.len()),
                None => (chunk, 0),
            };
            dst.reserve(COMPRESSED_HEADER_LEN + body.len());
            put_u24(dst, body.len());
            dst.put_u8(self.next_seq);
            put_u24(dst, plain_len);
            dst.put_slice(body);
            self.next_seq = self.next_seq.wrapping_add(1);
        }
    }
}

fn u24(b: &[u8]) -> usize {
    usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16
}

fn put_u24(dst: &mut BytesMut, n: usize) {
    let b = (n as u32).to_le_bytes();
    dst.put_slice(&b[..3]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::framing::{decode, encode, Packet};

    fn packets(ps: &[Packet]) -> BytesMut {
        let mut b = BytesMut::new();
        for p in ps {
            encode(p, &mut b);
        }
        b
    }

    #[test]
    fn frames_round_trip_whole_split_and_stored() {
        let ps = vec![
            Packet::new(0, vec![3u8; 10]),
            Packet::new(1, b"SELECT 'x'".repeat(40)),
            Packet::new(2, Vec::new()),
        ];
        let plain = packets(&ps);
        let mut out = Compression::default();
        let mut wire = BytesMut::new();
        out.write_frames(&plain[..20], &mut wire);
        out.write_frames(&plain[20..], &mut wire);
        // The short piece is stored, the long one deflated.
        assert_eq!(u24(&wire[4..7]), 0);
        let second = COMPRESSED_HEADER_LEN + u24(&wire[0..3]);
        assert_eq!(wire[3], 0);
        assert_eq!(wire[second + 3], 1);
        assert_ne!(u24(&wire[second + 4..second + 7]), 0);
        assert!(wire.len() < plain.len());
        let mut back = Compression::default();
        // Fed a byte at a time: no frame before it is whole.
        let mut src = BytesMut::new();
        for &b in wire.iter() {
            src.put_u8(b);
            while back.read_frame(&mut src, 1 << 20).unwrap() {}
        }
        assert!(src.is_empty());
        let mut got = Vec::new();
        while let Some(p) = decode(&mut back.plain, 1 << 20).unwrap() {
            got.push(p);
        }
        assert_eq!(got, ps);
        // The reply goes on from the last frame read.
        let mut reply = BytesMut::new();
        back.write_frames(b"ok", &mut reply);
        assert_eq!(reply[3], 2);
    }

    #[test]
    fn lies_about_lengths_are_refused() {
        let mut c = Compression::default();
        // Over the limit, refused from the header alone.
        let mut huge = BytesMut::from(&[0xff, 0xff, 0x0f, 0, 0, 0, 0][..]);
        assert!(c.read_frame(&mut huge, 1000).is_err());
        // A body that inflates to more (or less) than stated.
        let mut body = Vec::new();
        ZlibEncoder::new(&[7u8; 1000][..], flate2::Compression::default())
            .read_to_end(&mut body)
            .unwrap();
        for stated in [999usize, 1001] {
            let mut f = BytesMut::new();
            put_u24(&mut f, body.len());
            f.put_u8(0);
            put_u24(&mut f, stated);
            f.put_slice(&body);
            assert!(Compression::default().read_frame(&mut f, 1 << 20).is_err());
        }
        // Not zlib at all.
        let mut junk = BytesMut::from(&[3, 0, 0, 0, 9, 0, 0, 1, 2, 3][..]);
        assert!(c.read_frame(&mut junk, 1 << 20).is_err());
    }
}
