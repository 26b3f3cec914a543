//! Recovery and corruption, from the checked-in `testdata/fixtures/ledger-v1`
//! (a 9-record ledger in batches of 3, 1, 2, 3): a torn tail recovers, a
//! flipped byte refuses to open and names where, a deleted index rebuilds.

use std::path::{Path, PathBuf};

use ledger_core::segment::cursor::SegmentCursor;
use ledger_core::segment::file::SEGMENT_HEADER_LEN;
use ledger_core::{AppendRequest, ExpectedVersion, LedgerError};
use ledger_tests::{health_batch, health_event, open};

const SEGMENT: &str = "log/00000000000000000000.seg";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fixtures/ledger-v1")
}

/// Regenerates the fixture with `UPDATE_FIXTURES=1`; otherwise checks it
/// exists. The fixture pins format v1: later code must keep opening it.
#[test]
fn fixture_v1_opens_and_verifies() -> anyhow::Result<()> {
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let dir = fixture_dir();
        let _ = std::fs::remove_dir_all(&dir);
        let ledger = open(&dir)?;
        for (start, n) in [(0, 3), (3, 1), (4, 2), (6, 3)] {
            ledger.append(health_batch("ops-hub", start, n))?;
        }
        drop(ledger);
        for derived in ["index", "LOCK", "checkpoint"] {
            let path = dir.join(derived);
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
    let work = copy_fixture()?;
    let ledger = open(work.path())?;
    assert_eq!(ledger.len(), 9);
    let records = ledger.read_range(0, 9)?;
    assert_eq!(records[8].stream_version(), 8);
    assert_eq!(ledger.get_by_id(records[4].event_id())?.map(|r| r.seq()), Some(4));
    Ok(())
}

fn copy_fixture() -> anyhow::Result<tempfile::TempDir> {
    let work = tempfile::tempdir()?;
    std::fs::create_dir_all(work.path().join("log"))?;
    std::fs::copy(fixture_dir().join("ledger.json"), work.path().join("ledger.json"))?;
    std::fs::copy(fixture_dir().join(SEGMENT), work.path().join(SEGMENT))?;
    Ok(work)
}

/// `(offset, end)` of every frame in the fixture segment.
fn frames(segment: &Path) -> anyhow::Result<Vec<(u64, u64)>> {
    let file = std::fs::File::open(segment)?;
    let len = file.metadata()?.len();
    let mut cursor = SegmentCursor::new(&file, SEGMENT_HEADER_LEN, len);
    let mut out = Vec::new();
    loop {
        let offset = cursor.offset();
        match cursor.next_frame() {
            Ok(Some(_)) => out.push((offset, cursor.offset())),
            Ok(None) => return Ok(out),
            Err(problem) => anyhow::bail!("fixture unreadable: {problem:?}"),
        }
    }
}

fn corrupt_error(err: LedgerError) -> (PathBuf, u64, Option<u64>, String) {
    match err {
        LedgerError::Corrupt {
            segment,
            offset,
            seq,
            reason,
        } => (segment, offset, seq, reason),
        other => panic!("expected Corrupt, got {other}"),
    }
}

fn truncate(path: &Path, len: u64) -> anyhow::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path)?.set_len(len)?;
    Ok(())
}

#[test]
fn torn_final_frame_drops_its_whole_batch() -> anyhow::Result<()> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let frames = frames(&segment)?;
    // Cut the last frame in half: the last batch (seqs 6, 7, 8) must go
    // entirely, since appends are atomic.
    let (offset, end) = frames[8];
    truncate(&segment, offset + (end - offset) / 2)?;
    let ledger = open(work.path())?;
    assert_eq!(ledger.len(), 6);
    // Truncated to the end of seq 5; the writer may already have put its
    // preallocated zeros after it.
    let bytes = std::fs::read(&segment)?;
    assert!(bytes.len() as u64 >= frames[5].1, "truncated below seq 5");
    assert!(
        bytes[frames[5].1 as usize..].iter().all(|&b| b == 0),
        "truncated to the end of seq 5"
    );
    // The ledger keeps going from there.
    let outcome = ledger.append(health_batch("ops-hub", 100, 2))?;
    assert_eq!(outcome.receipts[0].seq, 6);
    assert_eq!(ledger.read(6)?.prev_hash(), ledger.read(5)?.record_hash);
    Ok(())
}

#[test]
fn complete_frames_without_their_batch_end_are_dropped() -> anyhow::Result<()> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let frames = frames(&segment)?;
    // Exactly at a frame boundary inside the last batch: seqs 6 and 7 are
    // complete frames, but their batch never finished.
    truncate(&segment, frames[7].1)?;
    let ledger = open(work.path())?;
    assert_eq!(ledger.len(), 6);
    // The checkpoint cut at open takes its time from the surviving records,
    // not from the dropped ones.
    assert_eq!(ledger.checkpoint().note, ledger.checkpoint_at(6)?.note);
    Ok(())
}

#[test]
fn final_frame_with_bad_checksum_is_a_torn_tail() -> anyhow::Result<()> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let frames = frames(&segment)?;
    let mut bytes = std::fs::read(&segment)?;
    let last = frames[8].1 as usize - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&segment, bytes)?;
    assert_eq!(open(work.path())?.len(), 6);
    Ok(())
}

#[test]
fn flipped_byte_mid_segment_refuses_to_open_and_names_it() -> anyhow::Result<()> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let frames = frames(&segment)?;
    let mut bytes = std::fs::read(&segment)?;
    let (offset, end) = frames[4];
    bytes[(end - 3) as usize] ^= 0x01; // inside seq 4's payload
    std::fs::write(&segment, &bytes)?;
    let err = open(work.path()).expect_err("must refuse");
    let err = err.downcast::<LedgerError>()?;
    let message = err.to_string();
    let (path, at, seq, reason) = corrupt_error(err);
    assert_eq!(path, segment);
    assert_eq!(at, offset);
    assert_eq!(seq, Some(4));
    assert!(reason.contains("checksum"), "{reason}");
    assert!(
        message.contains("00000000000000000000.seg") && message.contains("seq 4"),
        "{message}"
    );
    // Refusing changed nothing on disk.
    assert_eq!(std::fs::read(&segment)?, bytes);
    Ok(())
}

#[test]
fn tampered_payload_with_fixed_checksum_is_caught_by_its_hash() -> anyhow::Result<()> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let frames = frames(&segment)?;
    let mut bytes = std::fs::read(&segment)?;
    let (offset, end) = frames[2];
    let (offset, end) = (offset as usize, end as usize);
    bytes[end - 3] ^= 0x01;
    // A tamperer recomputes the CRC over flags ‖ body.
    let crc = crc32(&bytes[offset + 8..end]);
    bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, &bytes)?;
    let err = open(work.path()).expect_err("must refuse").downcast::<LedgerError>()?;
    let (_, at, seq, reason) = corrupt_error(err);
    assert_eq!((at, seq), (offset as u64, Some(2)));
    assert!(reason.contains("payload does not match"), "{reason}");
    Ok(())
}

#[test]
fn deleted_index_is_rebuilt_from_the_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ids, root, head) = {
        let ledger = open(dir.path())?;
        let mut ids = Vec::new();
        for i in 0..20 {
            let outcome = ledger.append(health_batch(&format!("svc-{}", i % 3), i * 5, 5))?;
            ids.extend(outcome.receipts.iter().map(|r| (r.event_id, r.seq)));
        }
        ledger.wait_indexed()?;
        (ids, ledger.root_at(100)?, ledger.stream_head("service/svc-1")?)
    };
    delete_index(dir.path())?;
    let ledger = open(dir.path())?;
    assert_eq!(ledger.len(), 100);
    for (id, seq) in ids {
        assert_eq!(ledger.get_by_id(id)?.map(|r| r.seq()), Some(seq));
    }
    assert_eq!(ledger.root_at(100)?, root);
    assert_eq!(ledger.stream_head("service/svc-1")?, head);
    assert_eq!(ledger.read_stream("service/svc-1", 0, 100)?.len(), 35);
    Ok(())
}

#[test]
fn deleted_index_still_catches_retries_and_conflicts() -> anyhow::Result<()> {
    // Event ids are indexed in memory from the log, not in sled: deleting
    // the index must not weaken idempotency.
    let dir = tempfile::tempdir()?;
    let batch = health_batch("ops-hub", 0, 3);
    let (original, long_head) = {
        let ledger = open(dir.path())?;
        let original = ledger.append(batch.clone())?;
        ledger.append(health_batch("long", 3, 70))?;
        (original, ledger.stream_head("service/long")?)
    };
    assert_eq!(long_head, Some(69));
    delete_index(dir.path())?;
    let ledger = open(dir.path())?;
    let retry = ledger.append(batch.clone())?;
    assert!(retry.deduplicated);
    assert_eq!(retry.receipts, original.receipts);
    let mut changed = batch.events[1].clone();
    changed.payload = br#"{"tampered":true}"#.to_vec();
    let err = ledger.append(AppendRequest::new(vec![changed])).expect_err("conflict");
    assert!(
        matches!(err, LedgerError::IdConflict { event_id, seq: 1 } if event_id == batch.events[1].id),
        "{err}"
    );
    let partial = AppendRequest::new(vec![batch.events[2].clone(), health_event("ops-hub", 99)]);
    let err = ledger.append(partial).expect_err("partial");
    assert!(matches!(err, LedgerError::PartialDuplicate { seq: 2, .. }), "{err}");
    assert_eq!(ledger.len(), 73);
    // The rebuilt stream index continues the long stream where it was.
    let next = AppendRequest {
        expected_version: ExpectedVersion::Exact(69),
        ..health_batch("long", 100, 1)
    };
    assert_eq!(ledger.append(next)?.receipts[0].stream_version, 70);
    Ok(())
}

#[test]
fn torn_tail_may_not_cut_records_the_index_saw_committed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let ledger = open(dir.path())?;
        ledger.append(health_batch("ops-hub", 0, 3))?;
        ledger.wait_indexed()?;
    }
    let segment = dir.path().join(SEGMENT);
    let frames = frames(&segment)?;
    truncate(&segment, frames[2].1 - 1)?;
    let err = open(dir.path())
        .expect_err("acknowledged records are gone")
        .downcast::<LedgerError>()?;
    let (_, _, seq, reason) = corrupt_error(err);
    assert_eq!(seq, Some(0));
    assert!(reason.contains("refusing to drop acknowledged records"), "{reason}");
    Ok(())
}

#[test]
fn rewritten_last_record_is_caught_by_the_saved_checkpoint() -> anyhow::Result<()> {
    // Without the index, only the signed checkpoint remembers what the last
    // record was. Rewrite seq 2's recorded_at, fixing its CRC: the chain has
    // no successor to catch it.
    let dir = three_records_closed_without_index()?;
    let segment = dir.path().join(SEGMENT);
    let frames = frames(&segment)?;
    let mut bytes = std::fs::read(&segment)?;
    let (offset, end) = (frames[2].0 as usize, frames[2].1 as usize);
    // body: u32 canonical_len, then canonical: 23-byte domain, version,
    // seq (8), stream_version (8), recorded_at (8).
    let recorded_at = offset + 9 + 4 + 23 + 1 + 8 + 8;
    bytes[recorded_at] = bytes[recorded_at].wrapping_add(1);
    let crc = crc32(&bytes[offset + 8..end]);
    bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, &bytes)?;
    let err = open(dir.path()).expect_err("rewritten").downcast::<LedgerError>()?;
    let (_, _, _, reason) = corrupt_error(err);
    assert!(reason.contains("differs from the signed checkpoint"), "{reason}");
    Ok(())
}

#[test]
fn a_second_process_cannot_open_the_same_ledger() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let _first = open(dir.path())?;
    let err = open(dir.path()).expect_err("locked").downcast::<LedgerError>()?;
    assert!(matches!(err, LedgerError::BadLedgerDir { .. }), "{err}");
    Ok(())
}

/// A cleanly closed 3-record ledger (so its checkpoint is saved) whose
/// index directory was then deleted.
fn three_records_closed_without_index() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    {
        let ledger = open(dir.path())?;
        ledger.append(health_batch("ops-hub", 0, 3))?;
    }
    delete_index(dir.path())?;
    Ok(dir)
}

/// CRC-32 (IEEE), bitwise: the tests do not share the implementation they
/// check against.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn zero_filled_tail_is_a_torn_tail() -> anyhow::Result<()> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let mut bytes = std::fs::read(&segment)?;
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&segment, &bytes)?;
    let ledger = open(work.path())?;
    assert_eq!(ledger.len(), 9);
    // The checkpoint cut at open comes from the surviving records only.
    assert_eq!(ledger.checkpoint().note, ledger.checkpoint_at(9)?.note);
    Ok(())
}

#[test]
fn signed_checkpoint_forbids_truncating_what_it_covers() -> anyhow::Result<()> {
    // Without the index, the saved signed checkpoint is what remembers that
    // three records were committed: a "torn" last frame must not be cut.
    let dir = three_records_closed_without_index()?;
    let segment = dir.path().join(SEGMENT);
    let before = std::fs::read(&segment)?;
    let mut bytes = before.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&segment, &bytes)?;
    let err = open(dir.path()).expect_err("refuses").downcast::<LedgerError>()?;
    let (_, _, _, reason) = corrupt_error(err);
    assert!(reason.contains("refusing to drop acknowledged records"), "{reason}");
    assert_eq!(std::fs::read(&segment)?, bytes, "nothing was truncated");
    Ok(())
}

/// Deletes the sled index as an operator would after the process exited.
/// In-process, sled's background I/O threads can still be finishing a write
/// for a moment after the last handle is dropped (a file appears while the
/// directory is being removed: ENOTEMPTY), so retry briefly.
fn delete_index(dir: &std::path::Path) -> std::io::Result<()> {
    let index = dir.join("index");
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir_all(&index) {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 50 && err.kind() != std::io::ErrorKind::NotFound => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => return Err(err),
        }
    }
}

/// The fixture's last batch (seqs 6–8) torn the way power loss tears a
/// write into preallocated zeros: a page of it never reached the disk
/// (zeros in the middle), the bytes after that did. `zeros_after` bytes of
/// preallocated space follow.
fn torn_into_preallocated(zeros_after: usize) -> anyhow::Result<tempfile::TempDir> {
    let work = copy_fixture()?;
    let segment = work.path().join(SEGMENT);
    let frames = frames(&segment)?;
    let mut bytes = std::fs::read(&segment)?;
    let (hole_start, hole_end) = (frames[7].0 as usize, frames[7].1 as usize);
    bytes[hole_start..hole_end].fill(0);
    assert_ne!(
        bytes[frames[8].0 as usize..].iter().max(),
        Some(&0),
        "seq 8 still has its bytes"
    );
    bytes.extend(std::iter::repeat_n(0u8, zeros_after));
    std::fs::write(&segment, &bytes)?;
    Ok(work)
}

#[test]
fn write_torn_into_preallocated_zeros_is_a_torn_tail() -> anyhow::Result<()> {
    let work = torn_into_preallocated(8192)?;
    let segment = work.path().join(SEGMENT);
    let frames = frames_of_fixture()?;
    let ledger = open(work.path())?;
    assert_eq!(ledger.len(), 6, "the torn batch goes whole, the rest stays");
    assert_eq!(ledger.checkpoint().note, ledger.checkpoint_at(6)?.note);
    // Closed, it ends at seq 5 (open, it may hold preallocated zeros).
    drop(ledger);
    assert_eq!(std::fs::metadata(&segment)?.len(), frames[5].1);
    Ok(())
}

#[test]
fn a_hole_without_preallocated_zeros_after_it_is_corruption() -> anyhow::Result<()> {
    // Fewer zero bytes at the end than the writer always keeps: the file
    // does not end in preallocated space, so the hole is damage.
    let work = torn_into_preallocated(100)?;
    let frames = frames_of_fixture()?;
    let err = open(work.path()).expect_err("must refuse").downcast::<LedgerError>()?;
    let (segment, offset, seq, reason) = corrupt_error(err);
    assert!(segment.ends_with(SEGMENT), "{}", segment.display());
    assert_eq!((offset, seq), (frames[7].0, Some(7)), "{reason}");
    Ok(())
}

/// `(offset, end)` of every frame of the untouched fixture segment.
fn frames_of_fixture() -> anyhow::Result<Vec<(u64, u64)>> {
    frames(&fixture_dir().join(SEGMENT))
}

#[test]
fn the_writer_keeps_zeros_ahead_and_cuts_them_off_on_close() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let segment = dir.path().join(SEGMENT);
    let ledger = open(dir.path())?;
    ledger.append(health_batch("ops-hub", 0, 3))?;
    let started = std::time::Instant::now();
    while std::fs::metadata(&segment)?.len() < 4 * 1024 * 1024 {
        anyhow::ensure!(
            started.elapsed().as_secs() < 10,
            "no zeros preallocated ahead of the writer"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(ledger);
    let frames = frames(&segment)?;
    assert_eq!(frames.len(), 3);
    assert_eq!(
        std::fs::metadata(&segment)?.len(),
        frames[2].1,
        "zeros cut off on close"
    );
    // And it reopens, appends and closes the same way.
    let ledger = open(dir.path())?;
    assert_eq!(ledger.append(health_batch("ops-hub", 3, 2))?.receipts[0].seq, 3);
    drop(ledger);
    assert_eq!(std::fs::metadata(&segment)?.len(), frames_end(&segment)?);
    Ok(())
}

fn frames_end(segment: &Path) -> anyhow::Result<u64> {
    Ok(frames(segment)?.last().map_or(SEGMENT_HEADER_LEN, |f| f.1))
}
