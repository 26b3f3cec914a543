//! Segment files: naming, the 32-byte header, creation with the directory
//! fsync that makes a new segment itself durable.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "EVLDGSEG"
//! 8       1     segment format version (1)
//! 9       1     tree hash code (1 = blake3, 2 = sha256)
//! 10      6     zero
//! 16      8     first_seq u64 LE: seq of the first record in this segment
//! 24      4     CRC-32 (IEEE) of bytes 0..24
//! 28      4     zero
//! ```
//!
//! A segment is named `{first_seq:020}.seg`, so names sort in log order.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use ledger_verify::HashAlg;

use crate::error::{LedgerError, Result};

/// Segment header length.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Segment file magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"EVLDGSEG";
/// Segment format version.
pub const SEGMENT_VERSION: u8 = 1;

/// The parsed header of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Tree hash of the ledger.
    pub tree_hash: HashAlg,
    /// Seq of the first record.
    pub first_seq: u64,
}

impl SegmentHeader {
    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
        out[..8].copy_from_slice(SEGMENT_MAGIC);
        out[8] = SEGMENT_VERSION;
        out[9] = self.tree_hash.code();
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32fast::hash(&out[..24]);
        out[24..28].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses header bytes, naming what is wrong.
    pub fn decode(bytes: &[u8]) -> std::result::Result<SegmentHeader, String> {
        if bytes.len() < SEGMENT_HEADER_LEN as usize {
            return Err(format!(
                "header is {} bytes, expected {SEGMENT_HEADER_LEN}",
                bytes.len()
            ));
        }
        if &bytes[..8] != SEGMENT_MAGIC {
            return Err("bad segment magic".to_string());
        }
        let stored_crc = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        if crc32fast::hash(&bytes[..24]) != stored_crc {
            return Err("segment header checksum mismatch".to_string());
        }
        if bytes[8] != SEGMENT_VERSION {
            return Err(format!("unsupported segment version {}", bytes[8]));
        }
        let tree_hash = HashAlg::from_code(bytes[9]).ok_or_else(|| format!("unknown tree hash code {}", bytes[9]))?;
        let mut first_seq = [0u8; 8];
        first_seq.copy_from_slice(&bytes[16..24]);
        Ok(SegmentHeader {
            tree_hash,
            first_seq: u64::from_le_bytes(first_seq),
        })
    }
}

/// The file name of the segment starting at `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// Segment files in `dir`, sorted by first seq.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LedgerError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LedgerError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        let first_seq = stem.parse::<u64>().map_err(|_| LedgerError::BadLedgerDir {
            path: entry.path(),
            reason: "segment file name is not a sequence number".to_string(),
        })?;
        segments.push((first_seq, entry.path()));
    }
    segments.sort_unstable_by_key(|(first, _)| *first);
    Ok(segments)
}

/// Creates a new segment with its header, fsyncs it and the directory, and
/// returns it opened for appending.
pub fn create_segment(dir: &Path, header: SegmentHeader) -> Result<(File, PathBuf)> {
    let path = dir.join(segment_file_name(header.first_seq));
    let ctx = || format!("creating segment {}", path.display());
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| LedgerError::io(ctx(), e))?;
    use std::io::Write as _;
    file.write_all(&header.encode())
        .map_err(|e| LedgerError::io(ctx(), e))?;
    file.sync_all().map_err(|e| LedgerError::io(ctx(), e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// fsyncs a directory so that entries created or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io(format!("syncing directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_rejections() {
        let header = SegmentHeader {
            tree_hash: HashAlg::Sha256,
            first_seq: 42,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        let mut bad = bytes;
        bad[17] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&bad),
            Err("segment header checksum mismatch".to_string())
        );
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
    }
}
