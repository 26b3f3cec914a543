//! Segment framing: how one record is laid out in a segment file.
//!
//! ```text
//! offset  size  field
//! 0       4     body_len   u32 LE, bytes of `body`
//! 4       4     crc        u32 LE, CRC-32 (IEEE) of flags ‖ body
//! 8       1     flags      bit 0: last record of its append batch
//! 9       n     body       u32 LE canonical_len ‖ canonical record ‖ payload
//! ```
//!
//! The CRC detects torn and partial writes; it is not a security
//! mechanism (the hash chain and the Merkle tree are). The batch-end flag lets
//! recovery drop a batch that was only partly written, so appends stay
//! atomic across crashes. This module only encodes and decodes bytes.

/// Bytes before the body.
pub const FRAME_HEADER_LEN: usize = 9;
/// Flag: this record closes its append batch.
pub const FLAG_BATCH_END: u8 = 0x01;
/// Largest body accepted when reading: anything larger is garbage, not a
/// record (payloads are limited far below this).
pub const MAX_BODY_LEN: u32 = 256 * 1024 * 1024;

/// Appends one framed record to `out`.
pub fn encode_frame(out: &mut Vec<u8>, flags: u8, canonical: &[u8], payload: &[u8]) {
    let start = begin_frame(out, flags);
    out.extend_from_slice(canonical);
    end_canonical(out, start);
    out.extend_from_slice(payload);
    finish_frame(out, start);
}

/// Starts a frame at the end of `out`; the caller then appends the
/// canonical bytes, calls [`end_canonical`], appends the payload and calls
/// [`finish_frame`]. The writer encodes each record's canonical bytes
/// straight into its group buffer this way, without a buffer of their own.
/// Returns the frame's start.
pub fn begin_frame(out: &mut Vec<u8>, flags: u8) -> usize {
    let start = out.len();
    // body_len, crc (both written by finish_frame), flags, canonical_len
    // (written by end_canonical).
    out.extend_from_slice(&[0u8; 8]);
    out.push(flags);
    out.extend_from_slice(&[0u8; 4]);
    start
}

/// Marks the end of the canonical bytes of the frame begun at `start`.
pub fn end_canonical(out: &mut [u8], start: usize) {
    let canonical_at = start + FRAME_HEADER_LEN + 4;
    // Lengths are bounded by validation (payload <= limit, names bounded).
    let canonical_len = (out.len() - canonical_at) as u32;
    out[canonical_at - 4..canonical_at].copy_from_slice(&canonical_len.to_le_bytes());
}

/// Writes the body length and the CRC of the frame begun at `start`, whose
/// body now ends at the end of `out`.
pub fn finish_frame(out: &mut [u8], start: usize) {
    let body_len = (out.len() - start - FRAME_HEADER_LEN) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The fixed part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Length of the body.
    pub body_len: u32,
    /// Stored CRC.
    pub crc: u32,
    /// Flags byte.
    pub flags: u8,
}

impl FrameHeader {
    /// Parses the 9 header bytes.
    pub fn parse(bytes: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            body_len: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            crc: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            flags: bytes[8],
        }
    }

    /// Whether `body` matches the stored CRC.
    pub fn crc_matches(&self, body: &[u8]) -> bool {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[self.flags]);
        hasher.update(body);
        hasher.finalize() == self.crc
    }
}

/// Splits a body into canonical bytes and payload, or says why it cannot.
pub fn split_body(body: &[u8]) -> Result<(&[u8], &[u8]), String> {
    if body.len() < 4 {
        return Err(format!("body of {} bytes has no canonical length", body.len()));
    }
    let canonical_len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let rest = &body[4..];
    if canonical_len > rest.len() {
        return Err(format!(
            "canonical length {canonical_len} exceeds the {} body bytes left",
            rest.len()
        ));
    }
    Ok(rest.split_at(canonical_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_crc_covers_flags() {
        let mut out = Vec::new();
        encode_frame(&mut out, FLAG_BATCH_END, b"canon", b"payload");
        let mut head = [0u8; FRAME_HEADER_LEN];
        head.copy_from_slice(&out[..FRAME_HEADER_LEN]);
        let header = FrameHeader::parse(&head);
        let body = &out[FRAME_HEADER_LEN..];
        assert_eq!(header.body_len as usize, body.len());
        assert!(header.crc_matches(body));
        assert_eq!(split_body(body), Ok((&b"canon"[..], &b"payload"[..])));
        let flipped = FrameHeader { flags: 0, ..header };
        assert!(!flipped.crc_matches(body));
    }

    #[test]
    fn frames_built_in_place_follow_one_another() {
        let mut out = Vec::new();
        encode_frame(&mut out, 0, b"first", b"{}");
        let second = out.len();
        let start = begin_frame(&mut out, FLAG_BATCH_END);
        assert_eq!(start, second);
        out.extend_from_slice(b"second");
        end_canonical(&mut out, start);
        out.extend_from_slice(b"abc");
        finish_frame(&mut out, start);
        let mut alone = Vec::new();
        encode_frame(&mut alone, FLAG_BATCH_END, b"second", b"abc");
        assert_eq!(&out[second..], &alone[..]);
    }

    #[test]
    fn split_body_rejects_bad_lengths() {
        assert!(split_body(&[1, 0]).is_err());
        assert!(split_body(&[9, 0, 0, 0, 1]).is_err());
    }
}
