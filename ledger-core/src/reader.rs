//! Reading committed records back from the segments by seq.
//!
//! Reads take the segment list's read lock only long enough to find where
//! to start; the I/O itself is positioned reads on shared handles, so readers
//! never block the writer. Frames are CRC-checked and decoded on the way;
//! chain verification is the open scan's and the verifier's job.

use std::sync::RwLock;

use ledger_verify::record::RecordHeader;

use crate::error::{LedgerError, Result};
use crate::record::Record;
use crate::segment::cursor::{FrameProblem, SegmentCursor};
use crate::segment::frame::split_body;
use crate::segment::index::LogIndex;

/// Up to `limit` records from `from`, stopping at `committed`.
pub(crate) fn read_range(log: &RwLock<LogIndex>, from: u64, limit: usize, committed: u64) -> Result<Vec<Record>> {
    let end = committed.min(from.saturating_add(limit as u64));
    let mut out = Vec::with_capacity((end.saturating_sub(from)) as usize);
    let mut seq = from;
    while seq < end {
        let location = {
            let index = log
                .read()
                .map_err(|_| LedgerError::Poisoned("log index lock poisoned".to_string()))?;
            index.locate(seq)
        };
        let Some(location) = location else {
            return Err(LedgerError::OutOfRange {
                what: "seq",
                requested: seq,
                len: committed,
            });
        };
        let mut cursor = SegmentCursor::new(&location.file, location.offset, location.end);
        let mut cursor_seq = location.start_seq;
        while seq < end {
            let frame = match cursor.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(problem) => {
                    let (offset, reason) = match problem {
                        FrameProblem::Io(e) => {
                            return Err(LedgerError::io(format!("reading {}", location.path.display()), e));
                        }
                        FrameProblem::Incomplete { offset } => (offset, "incomplete frame".to_string()),
                        FrameProblem::AbsurdLength { offset, body_len } => (offset, format!("frame length {body_len}")),
                        FrameProblem::BadCrc { offset, .. } => (offset, "frame fails its checksum".to_string()),
                    };
                    return Err(LedgerError::Corrupt {
                        segment: location.path.clone(),
                        offset,
                        seq: Some(cursor_seq),
                        reason,
                    });
                }
            };
            if cursor_seq >= seq {
                let corrupt = |reason: String| LedgerError::Corrupt {
                    segment: location.path.clone(),
                    offset: frame.offset,
                    seq: Some(cursor_seq),
                    reason,
                };
                let (canonical, payload) = split_body(&frame.body).map_err(corrupt)?;
                let header = RecordHeader::decode(canonical).map_err(|e| corrupt(e.to_string()))?;
                if header.seq != cursor_seq {
                    return Err(corrupt(format!("record says seq {}", header.seq)));
                }
                out.push(Record::from_parts(header, canonical.to_vec(), payload.to_vec()));
                seq += 1;
            }
            cursor_seq += 1;
        }
    }
    Ok(out)
}

/// The record at `seq`.
pub(crate) fn read_one(log: &RwLock<LogIndex>, seq: u64, committed: u64) -> Result<Record> {
    if seq >= committed {
        return Err(LedgerError::OutOfRange {
            what: "seq",
            requested: seq,
            len: committed,
        });
    }
    read_range(log, seq, 1, committed)?
        .pop()
        .ok_or(LedgerError::OutOfRange {
            what: "seq",
            requested: seq,
            len: committed,
        })
}
