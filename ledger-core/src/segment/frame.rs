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
    let body_len = 4 + canonical.len() + payload.len();
    let start = out.len();
    // Lengths are bounded by validation (payload <= limit, names bounded).
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.push(flags);
    out.extend_from_slice(&(canonical.len() as u32).to_le_bytes());
    out.extend_from_slice(canonical);
    out.extend_from_slice(payload);
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
    fn split_body_rejects_bad_lengths() {
        assert!(split_body(&[1, 0]).is_err());
        assert!(split_body(&[9, 0, 0, 0, 1]).is_err());
    }
}
