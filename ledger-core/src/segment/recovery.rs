//! The open scan: reads every segment once, re-verifies every frame, record
//! hash, payload hash and chain link, truncates a torn tail and refuses any
//! other damage with the segment, offset and seq.
//!
//! What counts as a torn tail (see docs/FORMAT.md, "Crash recovery"): in the
//! last segment only, an incomplete final frame, a final frame whose CRC fails
//! and that ends exactly at end of file, or complete frames after the last
//! batch-end flag (a batch cut short). Everything is truncated back to the
//! last batch end. Anything else — a bad CRC with bytes after it, a broken
//! chain, a payload that does not match its hash, a gap between segments — is
//! corruption. So is a "torn tail" that would cut below `min_len`, the number
//! of records the derived index or a saved signed checkpoint already saw
//! committed: those were acknowledged, so losing them is damage, not a crash
//! artefact. A zero-filled tail in the last segment (power loss after block
//! allocation) is a torn tail too, and so is a damaged frame in a last
//! segment that still ends in the writer's preallocated zeros: power loss
//! during a write into them can persist its pages in any order.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger_verify::record::{GENESIS_PREV_HASH, RecordHeader, payload_hash, record_hash};
use ledger_verify::{Hash, HashAlg};

use super::cursor::{FrameProblem, SegmentCursor};
use super::file::{SEGMENT_HEADER_LEN, SegmentHeader, create_segment, list_segments, sync_dir};
use super::frame::{FLAG_BATCH_END, split_body};
use super::index::{LogIndex, SegmentInfo};
use crate::error::{LedgerError, Result};

/// What the scan tells the index about each committed record.
#[derive(Clone, Debug)]
pub struct ScannedRecord {
    /// Global position.
    pub seq: u64,
    /// Event id bytes.
    pub id: [u8; 16],
    /// Stream name.
    pub stream: String,
    /// Position in the stream.
    pub stream_version: u64,
    /// Record hash.
    pub record_hash: Hash,
}

/// The verified log after the scan.
#[derive(Debug)]
pub struct ScanOutcome {
    /// Where every record is.
    pub index: LogIndex,
    /// Records in the log.
    pub n_records: u64,
    /// Record hash of the last record (zero when empty).
    pub last_hash: Hash,
    /// `recorded_at` of the last record (0 when empty).
    pub last_recorded_at_ns: i64,
    /// The segment to append to, and its length.
    pub tail: (PathBuf, u64),
    /// Bytes cut from a torn tail (0 after a clean shutdown).
    pub truncated_bytes: u64,
}

/// Scans `dir`, calling `on_batch` with each complete append batch in order.
pub fn scan_log(
    dir: &Path,
    tree_hash: HashAlg,
    min_len: u64,
    on_batch: &mut dyn FnMut(&[ScannedRecord]) -> Result<()>,
) -> Result<ScanOutcome> {
    let mut segments = list_segments(dir)?;
    remove_unfinished_last_segment(dir, &mut segments)?;
    if segments.is_empty() {
        let header = SegmentHeader {
            tree_hash,
            first_seq: 0,
        };
        let (_, path) = create_segment(dir, header)?;
        segments.push((0, path));
    }
    let mut state = ScanState {
        next_seq: 0,
        last_hash: GENESIS_PREV_HASH,
        last_recorded_at_ns: 0,
        pending_recorded_at_ns: 0,
        pending: Vec::new(),
        index: LogIndex::default(),
    };
    let n_segments = segments.len();
    let mut truncated_bytes = 0;
    for (i, (first_seq, path)) in segments.into_iter().enumerate() {
        let is_last = i + 1 == n_segments;
        truncated_bytes += scan_segment(&mut state, &path, first_seq, tree_hash, is_last, min_len, on_batch)?;
    }
    let tail = state
        .index
        .segments
        .last()
        .map(|s| (s.path.clone(), s.len_bytes))
        .ok_or_else(|| LedgerError::BadLedgerDir {
            path: dir.to_path_buf(),
            reason: "no segment after scan".to_string(),
        })?;
    if state.next_seq < min_len {
        return Err(LedgerError::Corrupt {
            segment: tail.0.clone(),
            offset: tail.1,
            seq: Some(state.next_seq),
            reason: format!(
                "the log ends at {} records but the index or a signed checkpoint saw {min_len} committed: \
                 acknowledged records are missing",
                state.next_seq
            ),
        });
    }
    Ok(ScanOutcome {
        n_records: state.next_seq,
        last_hash: state.last_hash,
        last_recorded_at_ns: state.last_recorded_at_ns,
        index: state.index,
        tail,
        truncated_bytes,
    })
}

struct ScanState {
    next_seq: u64,
    last_hash: Hash,
    last_recorded_at_ns: i64,
    /// `recorded_at` of the last pending record: committed with its batch.
    pending_recorded_at_ns: i64,
    /// Records of the current batch, not yet closed by a batch-end flag.
    pending: Vec<(ScannedRecord, u64, u64)>,
    index: LogIndex,
}

/// A crash while creating a segment can leave it shorter than its header;
/// it holds no records, so it is removed (it is always the last one).
fn remove_unfinished_last_segment(dir: &Path, segments: &mut Vec<(u64, PathBuf)>) -> Result<()> {
    let Some((_, path)) = segments.last() else {
        return Ok(());
    };
    let len = std::fs::metadata(path)
        .map_err(|e| LedgerError::io(format!("stat {}", path.display()), e))?
        .len();
    if len >= SEGMENT_HEADER_LEN {
        return Ok(());
    }
    tracing::warn!(segment = %path.display(), len, "removing a segment cut short during creation");
    std::fs::remove_file(path).map_err(|e| LedgerError::io(format!("removing {}", path.display()), e))?;
    sync_dir(dir)?;
    segments.pop();
    Ok(())
}

/// Scans one segment; returns the bytes truncated from it.
fn scan_segment(
    state: &mut ScanState,
    path: &Path,
    first_seq: u64,
    tree_hash: HashAlg,
    is_last: bool,
    min_len: u64,
    on_batch: &mut dyn FnMut(&[ScannedRecord]) -> Result<()>,
) -> Result<u64> {
    let corrupt = |offset: u64, seq: Option<u64>, reason: String| LedgerError::Corrupt {
        segment: path.to_path_buf(),
        offset,
        seq,
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| LedgerError::io(format!("opening {}", path.display()), e))?;
    let file_len = file
        .metadata()
        .map_err(|e| LedgerError::io(format!("stat {}", path.display()), e))?
        .len();
    let mut header_bytes = [0u8; SEGMENT_HEADER_LEN as usize];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut header_bytes, 0)
        .map_err(|e| LedgerError::io(format!("reading header of {}", path.display()), e))?;
    let header = SegmentHeader::decode(&header_bytes).map_err(|reason| corrupt(0, None, reason))?;
    if header.tree_hash != tree_hash {
        return Err(corrupt(
            0,
            None,
            format!(
                "segment uses tree hash {}, the ledger uses {tree_hash}",
                header.tree_hash
            ),
        ));
    }
    if header.first_seq != first_seq {
        return Err(corrupt(
            0,
            None,
            format!("header says first seq {}, file name says {first_seq}", header.first_seq),
        ));
    }
    if first_seq != state.next_seq {
        return Err(corrupt(
            0,
            Some(state.next_seq),
            format!(
                "segment starts at seq {first_seq} but the previous one ends at {}: records are missing",
                state.next_seq
            ),
        ));
    }
    let file = Arc::new(file);
    state.index.segments.push(SegmentInfo {
        first_seq,
        path: path.to_path_buf(),
        file: Arc::clone(&file),
        n_records: 0,
        len_bytes: SEGMENT_HEADER_LEN,
        sparse: Vec::new(),
    });
    let mut cursor = SegmentCursor::new(&file, SEGMENT_HEADER_LEN, file_len);
    let mut batch_end_offset = SEGMENT_HEADER_LEN;
    let tear: Option<(u64, String)> = loop {
        let frame = match cursor.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(FrameProblem::Io(e)) => return Err(LedgerError::io(format!("reading {}", path.display()), e)),
            Err(FrameProblem::Incomplete { offset }) if is_last => {
                break Some((offset, "incomplete final frame".to_string()));
            }
            Err(FrameProblem::BadCrc {
                offset,
                ends_at_eof: true,
            }) if is_last => {
                break Some((offset, "final frame fails its checksum".to_string()));
            }
            Err(FrameProblem::AbsurdLength { offset, .. } | FrameProblem::BadCrc { offset, .. })
                if is_last && all_zero_from(&file, offset, file_len)? =>
            {
                // Power loss can leave allocated but unwritten (zeroed)
                // blocks after the last write: a torn tail, not damage.
                break Some((offset, "zero-filled tail".to_string()));
            }
            Err(FrameProblem::AbsurdLength { offset, .. } | FrameProblem::BadCrc { offset, .. })
                if is_last && ends_in_zeros(&file, offset, file_len)? =>
            {
                // The writer's preallocated zeros (`prealloc.rs`) still end
                // the file, so the crash hit a write into them, and power
                // loss persists such a write's pages in any order: the
                // group that was torn was never acknowledged.
                break Some((offset, "torn write into preallocated zeros".to_string()));
            }
            Err(problem) => {
                let (offset, reason) = match problem {
                    FrameProblem::Incomplete { offset } => (offset, "incomplete frame in a closed segment".to_string()),
                    FrameProblem::AbsurdLength { offset, body_len } => {
                        (offset, format!("frame length {body_len} is not a record"))
                    }
                    FrameProblem::BadCrc { offset, .. } => {
                        (offset, "frame fails its checksum and more data follows".to_string())
                    }
                    FrameProblem::Io(_) => (cursor.offset(), "read error".to_string()),
                };
                return Err(corrupt(
                    offset,
                    Some(state.next_seq + state.pending.len() as u64),
                    reason,
                ));
            }
        };
        let seq = state.next_seq + state.pending.len() as u64;
        let (canonical, payload) =
            split_body(&frame.body).map_err(|reason| corrupt(frame.offset, Some(seq), reason))?;
        let record = RecordHeader::decode(canonical).map_err(|e| corrupt(frame.offset, Some(seq), e.to_string()))?;
        if record.seq != seq {
            return Err(corrupt(
                frame.offset,
                Some(seq),
                format!("record says seq {}, expected {seq}", record.seq),
            ));
        }
        let prev = state.pending.last().map_or(state.last_hash, |(r, _, _)| r.record_hash);
        if record.prev_hash != prev {
            return Err(corrupt(
                frame.offset,
                Some(seq),
                format!(
                    "broken chain: prev_hash is {}, the previous record hash is {}",
                    hex::encode(record.prev_hash),
                    hex::encode(prev)
                ),
            ));
        }
        if record.event.payload_len != payload.len() as u64 || record.event.payload_hash != payload_hash(payload) {
            return Err(corrupt(
                frame.offset,
                Some(seq),
                "payload does not match its length and hash".to_string(),
            ));
        }
        if record.recorded_at_ns < state.last_recorded_at_ns.max(state.pending_recorded_at_ns) {
            return Err(corrupt(
                frame.offset,
                Some(seq),
                "recorded_at goes backwards".to_string(),
            ));
        }
        state.pending_recorded_at_ns = record.recorded_at_ns;
        let scanned = ScannedRecord {
            seq,
            id: record.event.id,
            stream: record.event.stream,
            stream_version: record.stream_version,
            record_hash: record_hash(canonical),
        };
        state.pending.push((scanned, frame.offset, cursor.offset()));
        if frame.flags & FLAG_BATCH_END != 0 {
            commit_pending(state, on_batch)?;
            batch_end_offset = cursor.offset();
        }
    };
    let tear = match tear {
        Some(tear) => Some(tear),
        None if !state.pending.is_empty() => {
            Some((state.pending[0].1, "batch cut short before its last record".to_string()))
        }
        None => None,
    };
    let Some((offset, reason)) = tear else {
        return Ok(0);
    };
    if !is_last {
        return Err(corrupt(
            offset,
            Some(state.next_seq),
            format!("{reason} in a closed segment"),
        ));
    }
    if state.next_seq < min_len {
        return Err(corrupt(
            offset,
            Some(state.next_seq),
            format!(
                "{reason}, but the index or a signed checkpoint saw {min_len} records committed: \
                 refusing to drop acknowledged records"
            ),
        ));
    }
    let cut = file_len - batch_end_offset;
    tracing::warn!(segment = %path.display(), offset = batch_end_offset, bytes = cut, dropped_records = state.pending.len(), %reason, "truncating torn tail");
    state.pending.clear();
    let writable = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LedgerError::io(format!("opening {} to truncate", path.display()), e))?;
    writable
        .set_len(batch_end_offset)
        .and_then(|()| writable.sync_all())
        .map_err(|e| LedgerError::io(format!("truncating {}", path.display()), e))?;
    Ok(cut)
}

fn commit_pending(state: &mut ScanState, on_batch: &mut dyn FnMut(&[ScannedRecord]) -> Result<()>) -> Result<()> {
    let pending = std::mem::take(&mut state.pending);
    let Some(segment) = state.index.segments.last_mut() else {
        return Ok(());
    };
    for (_, offset, end) in &pending {
        segment.push(*offset, *end);
    }
    let records: Vec<ScannedRecord> = pending.into_iter().map(|(r, _, _)| r).collect();
    if let Some(last) = records.last() {
        state.last_hash = last.record_hash;
        state.next_seq = last.seq + 1;
        state.last_recorded_at_ns = state.pending_recorded_at_ns;
    }
    on_batch(&records)
}

/// Whether every byte from `offset` to `end` is zero.
fn all_zero_from(file: &File, offset: u64, end: u64) -> Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = offset;
    while at < end {
        let n = ((end - at) as usize).min(buf.len());
        std::os::unix::fs::FileExt::read_exact_at(file, &mut buf[..n], at)
            .map_err(|e| LedgerError::io("reading a segment tail", e))?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Bytes at the end of a file that, all zero, show the writer's
/// preallocated space (at least this much of it is always kept).
pub(crate) const PREALLOCATED_EVIDENCE: u64 = 4096;

/// Whether the last [`PREALLOCATED_EVIDENCE`] bytes of the file, all after
/// `offset`, are zero.
fn ends_in_zeros(file: &File, offset: u64, end: u64) -> Result<bool> {
    match end.checked_sub(PREALLOCATED_EVIDENCE) {
        Some(from) if from > offset => all_zero_from(file, from, end),
        _ => Ok(false),
    }
}

/// Opens the tail segment for appending at `len`.
pub fn open_tail(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| LedgerError::io(format!("opening {} for append", path.display()), e))
}
