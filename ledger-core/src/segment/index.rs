//! Where each record lives: the list of segments and, per segment, the byte
//! offset of every 64th record, so a read seeks to within 63 frames of any
//! seq without a per-record index. Kept in memory, rebuilt by the open scan.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// One in 64 records has its offset kept.
pub const SPARSE_EVERY: u64 = 64;

/// A segment as the readers see it.
#[derive(Debug)]
pub struct SegmentInfo {
    /// Seq of its first record.
    pub first_seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// A read handle (positioned reads only, so it is shared freely).
    pub file: Arc<File>,
    /// Records it holds that are committed.
    pub n_records: u64,
    /// Committed bytes (header included).
    pub len_bytes: u64,
    /// Offset of record `first_seq + i * SPARSE_EVERY` at index `i`.
    pub sparse: Vec<u64>,
}

impl SegmentInfo {
    /// Notes a committed record at `offset` ending at `end`.
    pub fn push(&mut self, offset: u64, end: u64) {
        if self.n_records.is_multiple_of(SPARSE_EVERY) {
            self.sparse.push(offset);
        }
        self.n_records += 1;
        self.len_bytes = end;
    }
}

/// All segments, in order.
#[derive(Debug, Default)]
pub struct LogIndex {
    /// Segments by increasing first seq.
    pub segments: Vec<SegmentInfo>,
}

/// Where to start reading to reach a seq.
#[derive(Debug)]
pub struct Location {
    /// The segment's read handle.
    pub file: Arc<File>,
    /// Path, for error messages.
    pub path: PathBuf,
    /// Offset of the frame of `start_seq`.
    pub offset: u64,
    /// Seq of the frame at `offset` (at most 63 before the one wanted).
    pub start_seq: u64,
    /// Committed end of the segment.
    pub end: u64,
}

impl LogIndex {
    /// Records held.
    pub fn n_records(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.first_seq + s.n_records)
    }

    /// Where to start reading for `seq`, or `None` past the end.
    pub fn locate(&self, seq: u64) -> Option<Location> {
        let idx = self.segments.partition_point(|s| s.first_seq <= seq).checked_sub(1)?;
        let segment = &self.segments[idx];
        if seq >= segment.first_seq + segment.n_records {
            return None;
        }
        let sparse_idx = (seq - segment.first_seq) / SPARSE_EVERY;
        let offset = *segment.sparse.get(sparse_idx as usize)?;
        Some(Location {
            file: Arc::clone(&segment.file),
            path: segment.path.clone(),
            offset,
            start_seq: segment.first_seq + sparse_idx * SPARSE_EVERY,
            end: segment.len_bytes,
        })
    }
}
