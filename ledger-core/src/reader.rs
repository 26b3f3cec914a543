//! Reading committed records back from the segments by seq: point and
//! range reads ([`read_range`]) and the sequential scan projections fold
//! from ([`scan_chunks`]).
//!
//! Reads take the segment list's read lock only long enough to find where
//! to start; the I/O itself is positioned reads on shared handles, so readers
//! never block the writer. Frames are CRC-checked and decoded on the way;
//! chain verification is the open scan's and the verifier's job.

use std::sync::RwLock;

use ledger_verify::record::{EventHeader, Metadata, RecordHeader, record_hash};

use crate::error::{LedgerError, Result};
use crate::record::Record;
use crate::segment::cursor::{FrameProblem, SegmentCursor};
use crate::segment::frame::split_body;
use crate::segment::index::{Location, LogIndex};

/// Up to `limit` records from `from`, stopping at `committed`.
pub(crate) fn read_range(log: &RwLock<LogIndex>, from: u64, limit: usize, committed: u64) -> Result<Vec<Record>> {
    let end = committed.min(from.saturating_add(limit as u64));
    let mut out = Vec::with_capacity((end.saturating_sub(from)) as usize);
    let mut seq = from;
    while seq < end {
        let location = locate(log, seq, committed)?;
        let mut cursor = SegmentCursor::new(&location.file, location.offset, location.end);
        let mut cursor_seq = location.start_seq;
        while seq < end {
            let frame = match cursor.next_frame_ref() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(problem) => return Err(frame_error(&location, cursor_seq, problem)),
            };
            if cursor_seq >= seq {
                let corrupt = |reason: String| LedgerError::Corrupt {
                    segment: location.path.clone(),
                    offset: frame.offset,
                    seq: Some(cursor_seq),
                    reason,
                };
                let (canonical, payload) = split_body(frame.body).map_err(corrupt)?;
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

/// Reads records `from..end` in log order and hands them to `each_chunk`,
/// at most `chunk_records` at a time; stops early when it returns `false`.
/// `end` must not exceed the committed length.
///
/// The sequential reader projections catch up and replay from. Unlike
/// [`read_range`] it walks each segment once with one cursor (reads of up
/// to 1 MiB, frame bodies borrowed rather than copied) and it does not
/// BLAKE3 every record: the hash of record `s` is taken from the
/// `prev_hash` of record `s + 1`, and only the last record of the scan is
/// hashed.
///
/// Why this gives the same [`Record::record_hash`] as hashing, for every
/// record a scan can reach (`s + 1 <` the committed length):
/// - records that were in the log when it was opened passed the open scan
///   (`segment::recovery`), which checks `prev_hash(s + 1) ==
///   record_hash(canonical(s))` for every record and refuses to open
///   otherwise;
/// - records appended since were staged by this process's writer, which
///   computes `record_hash(canonical(s))` and writes it as the next
///   record's `prev_hash` (`commit.rs`);
/// - every frame read here is CRC-checked, as in [`read_range`], so bytes
///   damaged on disk since are refused rather than decoded.
///
/// What it does not do, like [`read_range`] (which hashes the bytes it
/// read but compares them with nothing): detect a segment deliberately
/// rewritten after open with valid CRCs. Hashing here would not catch that
/// either; the chain, the signed checkpoints and `ledger-verify` do. Debug
/// builds assert that the hash taken from the chain is the hash of the
/// canonical bytes.
pub(crate) fn scan_chunks(
    log: &RwLock<LogIndex>,
    from: u64,
    end: u64,
    chunk_records: usize,
    each_chunk: &mut dyn FnMut(Vec<Record>) -> bool,
) -> Result<()> {
    scan_chunks_reusing(log, from, end, chunk_records, &mut || None, each_chunk)
}

/// [`scan_chunks`] decoding into chunks handed back by `spare` (chunks
/// `each_chunk` was given, done with) before it allocates new ones: every
/// record of a spare chunk is overwritten in place, its strings and byte
/// buffers keeping their capacity, so a reader fed its chunks back
/// allocates nothing per record. The projections' catch-up reads millions
/// of records this way (see `projection::pipeline`); allocating each and
/// freeing it on another thread was a large share of its CPU.
///
/// What the chunks hold is the same as with [`scan_chunks`], whatever
/// `spare` returns: any records beyond what is decoded are dropped.
pub(crate) fn scan_chunks_reusing(
    log: &RwLock<LogIndex>,
    from: u64,
    end: u64,
    chunk_records: usize,
    spare: &mut dyn FnMut() -> Option<Vec<Record>>,
    each_chunk: &mut dyn FnMut(Vec<Record>) -> bool,
) -> Result<()> {
    let chunk_records = chunk_records.max(1);
    let chunk_capacity = |seq: u64| (end.saturating_sub(seq)).min(chunk_records as u64) as usize;
    let mut next_chunk = |seq: u64| spare().unwrap_or_else(|| Vec::with_capacity(chunk_capacity(seq)));
    // The chunk being filled: its first `filled` records are decoded, the
    // rest are spare records to decode into.
    let mut chunk: Vec<Record> = if from < end { next_chunk(from) } else { Vec::new() };
    let mut filled = 0;
    // A full chunk whose last record waits for its successor's
    // `prev_hash` (the record hash of that last record).
    let mut full: Option<Vec<Record>> = None;
    let mut seq = from;
    while seq < end {
        let location = locate(log, seq, end)?;
        let mut cursor = SegmentCursor::new(&location.file, location.offset, location.end);
        let mut cursor_seq = location.start_seq;
        while seq < end {
            let frame = match cursor.next_frame_ref() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(problem) => return Err(frame_error(&location, cursor_seq, problem)),
            };
            if cursor_seq < seq {
                cursor_seq += 1;
                continue;
            }
            let corrupt = |reason: String| LedgerError::Corrupt {
                segment: location.path.clone(),
                offset: frame.offset,
                seq: Some(cursor_seq),
                reason,
            };
            let (canonical, payload) = split_body(frame.body).map_err(corrupt)?;
            if filled == chunk.len() {
                chunk.push(empty_record());
            }
            let record = &mut chunk[filled];
            record
                .header
                .decode_into(canonical)
                .map_err(|e| corrupt(e.to_string()))?;
            if record.header.seq != cursor_seq {
                return Err(corrupt(format!("record says seq {}", record.header.seq)));
            }
            record.canonical.clear();
            record.canonical.extend_from_slice(canonical);
            record.payload.clear();
            record.payload.extend_from_slice(payload);
            let hash = record.header.prev_hash;
            if filled > 0 {
                chunk[filled - 1].set_record_hash(hash);
            } else if let Some(mut previous) = full.take() {
                if let Some(last) = previous.last_mut() {
                    last.set_record_hash(hash);
                }
                if !each_chunk(previous) {
                    return Ok(());
                }
            }
            filled += 1;
            seq += 1;
            cursor_seq += 1;
            if filled == chunk_records {
                chunk.truncate(filled);
                let next = if seq < end { next_chunk(seq) } else { Vec::new() };
                full = Some(std::mem::replace(&mut chunk, next));
                filled = 0;
            }
        }
    }
    // The scan's last record has no successor to take its hash from.
    let mut last = full.unwrap_or_else(|| {
        chunk.truncate(filled);
        chunk
    });
    if let Some(record) = last.last_mut() {
        let hash = record_hash(&record.canonical);
        record.set_record_hash(hash);
        each_chunk(last);
    }
    Ok(())
}

/// A record to decode into.
fn empty_record() -> Record {
    Record {
        header: RecordHeader {
            seq: 0,
            stream_version: 0,
            recorded_at_ns: 0,
            prev_hash: [0; 32],
            event: EventHeader {
                id: [0; 16],
                stream: String::new(),
                event_type: String::new(),
                occurred_at_ns: 0,
                content_type: String::new(),
                payload_len: 0,
                payload_hash: [0; 32],
                metadata: Metadata::default(),
                signature: None,
            },
        },
        canonical: Vec::new(),
        payload: Vec::new(),
        record_hash: [0; 32],
    }
}

/// Where to start reading for `seq`, under the index's read lock.
fn locate(log: &RwLock<LogIndex>, seq: u64, committed: u64) -> Result<Location> {
    let index = log
        .read()
        .map_err(|_| LedgerError::Poisoned("log index lock poisoned".to_string()))?;
    index.locate(seq).ok_or(LedgerError::OutOfRange {
        what: "seq",
        requested: seq,
        len: committed,
    })
}

/// The error for a frame that could not be read at `seq`.
fn frame_error(location: &Location, seq: u64, problem: FrameProblem) -> LedgerError {
    let (offset, reason) = match problem {
        FrameProblem::Io(e) => {
            return LedgerError::io(format!("reading {}", location.path.display()), e);
        }
        FrameProblem::Incomplete { offset } => (offset, "incomplete frame".to_string()),
        FrameProblem::AbsurdLength { offset, body_len } => (offset, format!("frame length {body_len}")),
        FrameProblem::BadCrc { offset, .. } => (offset, "frame fails its checksum".to_string()),
    };
    LedgerError::Corrupt {
        segment: location.path.clone(),
        offset,
        seq: Some(seq),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::config::LedgerConfig;
    use crate::event::AppendRequest;
    use crate::ledger::Ledger;
    use crate::record::Record;
    use crate::sample::SampleEvidence;
    use crate::signer::LocalKeySigner;

    fn small_segment_ledger(dir: &std::path::Path) -> Ledger {
        let signer = Arc::new(LocalKeySigner::from_seed("test.example/ledger", [9; 32]).unwrap());
        let config = LedgerConfig {
            origin: "test.example/ledger".to_string(),
            segment_max_bytes: 64 * 1024,
            ..LedgerConfig::default()
        };
        Ledger::open(dir, config, signer).unwrap()
    }

    #[test]
    fn scan_chunks_gives_what_read_range_gives_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = small_segment_ledger(dir.path());
        let mut source = SampleEvidence::new(11);
        // A segment rolls after the group that fills it: many small groups.
        for i in 0..60 {
            let batch = 1 + (i * 37) % 80;
            ledger.append(AppendRequest::new(source.take_events(batch))).unwrap();
        }
        let len = ledger.len();
        assert!(std::fs::read_dir(dir.path().join("log")).unwrap().count() > 10);
        for (from, end, chunk) in [
            (0, len, 100),
            (77, len, 64),
            (130, 131, 5),
            (len - 3, len + 10, 2),
            (5, 5, 3),
        ] {
            let mut chunks: Vec<Vec<Record>> = Vec::new();
            ledger
                .scan_chunks(from, end, chunk, &mut |records| {
                    chunks.push(records);
                    true
                })
                .unwrap();
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= chunk));
            let scanned: Vec<Record> = chunks.into_iter().flatten().collect();
            let end = end.min(len);
            let expected = ledger.read_range(from, (end - from) as usize).unwrap();
            assert_eq!(scanned.len() as u64, end - from);
            // Same bytes, same decoded fields, same record hashes (the
            // scan takes them from the chain, read_range hashes).
            assert_eq!(scanned, expected, "from {from} to {end}");
        }
        // Decoding into spare chunks gives the same records, whatever the
        // spares held: chunks of other ranges, longer and shorter than
        // needed, handed back as soon as the scan gives them out.
        let spares = std::cell::RefCell::new(vec![
            ledger.read_range(len - 300, 300).unwrap(),
            ledger.read_range(3, 7).unwrap(),
            Vec::new(),
        ]);
        for (from, end, chunk) in [(0, len, 100), (77, len, 64), (len - 3, len, 2), (130, 131, 5)] {
            let mut scanned: Vec<Record> = Vec::new();
            ledger
                .scan_chunks_reusing(from, end, chunk, &mut || spares.borrow_mut().pop(), &mut |records| {
                    assert!(!records.is_empty() && records.len() <= chunk);
                    scanned.extend(records.iter().cloned());
                    spares.borrow_mut().insert(0, records);
                    true
                })
                .unwrap();
            let expected = ledger.read_range(from, (end - from) as usize).unwrap();
            assert_eq!(scanned, expected, "reusing, from {from} to {end}");
        }
        // Stopping early.
        let mut calls = 0;
        ledger
            .scan_chunks(0, len, 10, &mut |_| {
                calls += 1;
                calls < 3
            })
            .unwrap();
        assert_eq!(calls, 3);
    }
}
