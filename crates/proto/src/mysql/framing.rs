//! The MySQL packet layer.
//!
//! On the wire every frame is a 3-byte little-endian payload length, a 1-byte
//! sequence id and the payload. A logical packet of 0xFF_FFFF bytes or more
//! is sent as consecutive full frames (each 0xFF_FFFF bytes) closed by a
//! shorter frame, possibly empty; sequence ids increase by one per frame,
//! wrapping at 256. This module turns frames into logical [`Packet`]s and
//! back, checking the sequence and a size limit so a hostile peer can make
//! us neither buffer without bound nor panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest payload one frame can carry; a frame this full means "more follows".
pub const MAX_FRAME_PAYLOAD: usize = 0xFF_FFFF;

/// Length of a frame header: 3 bytes length + 1 byte sequence id.
pub const HEADER_LEN: usize = 4;

/// Default limit on a reassembled packet: MariaDB's largest `max_allowed_packet` (1 GiB).
pub const DEFAULT_MAX_PACKET: usize = 1 << 30;

/// One logical packet: the payload after reassembly, and the sequence id of
/// its first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Bytes,
}

impl Packet {
    pub fn new(seq: u8, payload: impl Into<Bytes>) -> Self {
        Packet {
            seq,
            payload: payload.into(),
        }
    }

    /// Number of frames this packet occupies on the wire.
    pub fn frame_count(&self) -> usize {
        self.payload.len() / MAX_FRAME_PAYLOAD + 1
    }

    /// Sequence id the peer's next packet must carry.
    pub fn next_seq(&self) -> u8 {
        // frame_count is at most 1 GiB / 16 MiB + 1 in practice; the
        // sequence wraps at 256 by definition, so truncation is intended.
        self.seq.wrapping_add((self.frame_count() % 256) as u8)
    }

    /// Size on the wire, headers included.
    pub fn wire_len(&self) -> usize {
        self.payload.len() + HEADER_LEN * self.frame_count()
    }
}

/// Why a byte stream is not a valid sequence of MySQL packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "packet of at least {len} bytes exceeds the limit of {max} bytes (max_allowed_packet)"
    )]
    Oversized { len: usize, max: usize },
    #[error(
        "packet sequence out of order inside a split packet: expected id {expected}, got {got}"
    )]
    SequenceGap { expected: u8, got: u8 },
    #[error(
        "a compressed frame that does not inflate to the {stated} bytes it states (got {got})"
    )]
    BadCompressedFrame { stated: usize, got: usize },
}

/// Decodes one logical packet from the front of `src`.
///
/// Returns `Ok(None)` when `src` does not yet hold a whole packet (nothing is
/// consumed), `Ok(Some(packet))` after consuming it, or an error once the
/// input can no longer become a valid packet (the limit is checked frame by
/// frame, before the payload has arrived).
pub fn decode(src: &mut BytesMut, max_packet: usize) -> Result<Option<Packet>, FrameError> {
    let mut offset = 0;
    let mut total = 0usize;
    let mut frames = 0usize;
    let mut first_seq = 0u8;
    loop {
        let Some(header) = src.get(offset..offset + HEADER_LEN) else {
            return Ok(None);
        };
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let seq = header[3];
        if frames == 0 {
            first_seq = seq;
        } else {
            let expected = first_seq.wrapping_add((frames % 256) as u8);
            if seq != expected {
                return Err(FrameError::SequenceGap { expected, got: seq });
            }
        }
        total += len;
        if total > max_packet {
            return Err(FrameError::Oversized {
                len: total,
                max: max_packet,
            });
        }
        frames += 1;
        offset += HEADER_LEN + len;
        if src.len() < offset {
            // Make room for the rest of this frame in one allocation.
            src.reserve(offset - src.len());
            return Ok(None);
        }
        if len < MAX_FRAME_PAYLOAD {
            break;
        }
    }

    let payload = if frames == 1 {
        src.advance(HEADER_LEN);
        src.split_to(total).freeze()
    } else {
        let mut joined = BytesMut::with_capacity(total);
        for _ in 0..frames {
            let len = usize::from(src[0]) | usize::from(src[1]) << 8 | usize::from(src[2]) << 16;
            src.advance(HEADER_LEN);
            joined.put(src.split_to(len));
        }
        joined.freeze()
    };
    Ok(Some(Packet {
        seq: first_seq,
        payload,
    }))
}

/// Appends `packet` to `dst` as frames, splitting at [`MAX_FRAME_PAYLOAD`].
pub fn encode(packet: &Packet, dst: &mut BytesMut) {
    dst.reserve(packet.wire_len());
    let mut seq = packet.seq;
    let mut rest = &packet.payload[..];
    loop {
        let len = rest.len().min(MAX_FRAME_PAYLOAD);
        // len < 2^24 by construction, so the 3 low bytes are the whole length.
        dst.put_uint_le(len as u64, 3);
        dst.put_u8(seq);
        dst.put_slice(&rest[..len]);
        rest = &rest[len..];
        seq = seq.wrapping_add(1);
        if len < MAX_FRAME_PAYLOAD {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(packet: &Packet) -> BytesMut {
        let mut buf = BytesMut::new();
        encode(packet, &mut buf);
        buf
    }

    #[test]
    fn small_packet_is_one_frame() {
        let buf = encoded(&Packet::new(3, &b"\x03SELECT 1"[..]));
        assert_eq!(&buf[..4], &[9, 0, 0, 3]);
        assert_eq!(&buf[4..], b"\x03SELECT 1");
    }

    #[test]
    fn empty_packet_is_a_bare_header() {
        let buf = encoded(&Packet::new(7, Bytes::new()));
        assert_eq!(&buf[..], &[0, 0, 0, 7]);
        let mut src = buf;
        assert_eq!(
            decode(&mut src, 16).unwrap(),
            Some(Packet::new(7, Bytes::new()))
        );
        assert!(src.is_empty());
    }

    #[test]
    fn exact_multiple_of_max_frame_gets_an_empty_trailer() {
        let packet = Packet::new(255, vec![0xAB; MAX_FRAME_PAYLOAD]);
        let buf = encoded(&packet);
        assert_eq!(buf.len(), MAX_FRAME_PAYLOAD + 2 * HEADER_LEN);
        assert_eq!(&buf[..4], &[0xFF, 0xFF, 0xFF, 255]);
        assert_eq!(
            &buf[buf.len() - 4..],
            &[0, 0, 0, 0],
            "trailer wraps seq to 0"
        );
        assert_eq!(packet.next_seq(), 1);
        let mut src = buf;
        assert_eq!(decode(&mut src, DEFAULT_MAX_PACKET).unwrap(), Some(packet));
    }

    #[test]
    fn sixteen_mib_and_more_round_trips_through_three_frames() {
        let payload: Vec<u8> = (0..2 * MAX_FRAME_PAYLOAD + 10).map(|i| i as u8).collect();
        let packet = Packet::new(0, payload);
        assert_eq!(packet.frame_count(), 3);
        let mut src = encoded(&packet);
        src.extend_from_slice(&[1, 0, 0, 3, 0x0e]); // a following COM_PING
        assert_eq!(decode(&mut src, DEFAULT_MAX_PACKET).unwrap(), Some(packet));
        assert_eq!(
            decode(&mut src, DEFAULT_MAX_PACKET).unwrap(),
            Some(Packet::new(3, &[0x0e][..]))
        );
        assert!(src.is_empty());
    }

    #[test]
    fn oversized_is_refused_from_the_header_alone() {
        let mut src = BytesMut::from(&[0x00, 0x10, 0x00, 0][..]); // claims 4096 bytes
        assert_eq!(
            decode(&mut src, 1024),
            Err(FrameError::Oversized {
                len: 4096,
                max: 1024
            })
        );
    }

    #[test]
    fn split_packet_with_a_wrong_sequence_id_is_refused() {
        let mut src = encoded(&Packet::new(0, vec![0; MAX_FRAME_PAYLOAD + 1]));
        src[HEADER_LEN + MAX_FRAME_PAYLOAD + 3] = 9;
        assert_eq!(
            decode(&mut src, DEFAULT_MAX_PACKET),
            Err(FrameError::SequenceGap {
                expected: 1,
                got: 9
            })
        );
    }

    proptest! {
        #[test]
        fn round_trip(seq in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let packet = Packet::new(seq, payload);
            let mut src = encoded(&packet);
            prop_assert_eq!(decode(&mut src, DEFAULT_MAX_PACKET).unwrap(), Some(packet));
            prop_assert!(src.is_empty());
        }

        /// Feeding the bytes in two pieces, split anywhere, gives nothing
        /// until the packet is whole and then exactly the packet.
        #[test]
        fn any_split_point_reassembles(seq in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let packet = Packet::new(seq, payload);
            let wire = encoded(&packet);
            let cut = cut.index(wire.len());
            let mut src = BytesMut::from(&wire[..cut]);
            prop_assert_eq!(decode(&mut src, DEFAULT_MAX_PACKET).unwrap(), None);
            prop_assert_eq!(src.len(), cut, "nothing consumed while incomplete");
            src.extend_from_slice(&wire[cut..]);
            prop_assert_eq!(decode(&mut src, DEFAULT_MAX_PACKET).unwrap(), Some(packet));
        }

        /// Any bytes at all: a packet, a wait or an error, never a panic;
        /// whatever is returned respects the limit.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..64) {
            let mut src = BytesMut::from(&bytes[..]);
            while let Ok(Some(p)) = decode(&mut src, max) {
                prop_assert!(p.payload.len() <= max);
            }
        }
    }

    /// Every cut of a three-frame packet, checked at and around each frame boundary.
    #[test]
    fn split_at_every_frame_boundary() {
        let packet = Packet::new(10, vec![7u8; 2 * MAX_FRAME_PAYLOAD + 5]);
        let wire = encoded(&packet);
        let boundaries = [
            HEADER_LEN,
            HEADER_LEN + MAX_FRAME_PAYLOAD,
            2 * (HEADER_LEN + MAX_FRAME_PAYLOAD),
        ];
        for b in boundaries {
            for cut in [b - 1, b, b + 1, b + 3, b + 4] {
                let mut src = BytesMut::from(&wire[..cut]);
                assert_eq!(
                    decode(&mut src, DEFAULT_MAX_PACKET).unwrap(),
                    None,
                    "cut {cut}"
                );
                src.extend_from_slice(&wire[cut..]);
                assert_eq!(
                    decode(&mut src, DEFAULT_MAX_PACKET).unwrap().as_ref(),
                    Some(&packet),
                    "cut {cut}"
                );
            }
        }
    }
}
