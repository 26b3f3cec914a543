//! Appends: receipts, idempotency, expected versions, bad input.

use ledger_core::{AppendRequest, ExpectedVersion, LedgerError};
use ledger_tests::{health_batch, health_event, open};

#[test]
fn appends_get_sequential_receipts_and_read_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let first = ledger.append(health_batch("ops-hub", 0, 3))?;
    assert_eq!(first.receipts.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(
        first.receipts.iter().map(|r| r.stream_version).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(!first.deduplicated);
    assert_eq!(first.checkpoint.size(), 3);
    let second = ledger.append(health_batch("registry", 3, 2))?;
    assert_eq!(second.receipts[0].seq, 3);
    assert_eq!(second.receipts[0].stream_version, 0);
    assert_eq!(ledger.len(), 5);
    let records = ledger.read_range(0, 10)?;
    assert_eq!(records.len(), 5);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.seq(), i as u64);
        if i > 0 {
            assert_eq!(record.prev_hash(), records[i - 1].record_hash);
        }
    }
    assert_eq!(records[3].record_hash, second.receipts[0].record_hash);
    let stream = ledger.read_stream("service/registry", 0, 10)?;
    assert_eq!(stream.iter().map(|r| r.seq()).collect::<Vec<_>>(), vec![3, 4]);
    let by_id = ledger.get_by_id(first.receipts[1].event_id)?;
    assert_eq!(by_id.map(|r| r.seq()), Some(1));
    Ok(())
}

#[test]
fn retry_returns_original_receipts_and_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let batch = health_batch("ops-hub", 0, 4);
    let original = ledger.append(batch.clone())?;
    let retry = ledger.append(batch.clone())?;
    assert!(retry.deduplicated);
    assert_eq!(retry.receipts, original.receipts);
    assert_eq!(ledger.len(), 4);
    drop(ledger);
    let ledger = open(dir.path())?;
    let after_restart = ledger.append(batch)?;
    assert!(after_restart.deduplicated);
    assert_eq!(after_restart.receipts, original.receipts);
    assert_eq!(ledger.len(), 4);
    Ok(())
}

#[test]
fn reused_id_with_other_content_is_rejected() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let event = health_event("ops-hub", 1);
    let original = ledger.append(AppendRequest::new(vec![event.clone()]))?;
    let mut changed = event.clone();
    changed.payload = br#"{"tampered":true}"#.to_vec();
    let err = ledger.append(AppendRequest::new(vec![changed])).expect_err("conflict");
    assert!(
        matches!(err, LedgerError::IdConflict { event_id, seq: 0 } if event_id == event.id),
        "{err}"
    );
    let mixed = AppendRequest::new(vec![event.clone(), health_event("ops-hub", 2)]);
    let err = ledger.append(mixed).expect_err("partial");
    assert!(matches!(err, LedgerError::PartialDuplicate { seq: 0, .. }), "{err}");
    assert_eq!(ledger.len(), 1);
    assert_eq!(original.receipts[0].seq, 0);
    Ok(())
}

/// Requests queued while the writer is busy are committed as one group:
/// a later request repeating an earlier one's id is a retry (deduplicated)
/// or a conflict, exactly as across groups, whichever request of the group
/// it is.
#[test]
fn ids_repeated_across_the_requests_of_one_group() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    for round in 0..20u64 {
        let base = 10_000 * round;
        let event = health_event("ops-hub", base + 1);
        let mut changed = event.clone();
        changed.payload = br#"{"tampered":true}"#.to_vec();
        let (busy, first, retry, conflict, after) = rt.block_on(async {
            // A large batch keeps the writer busy while the rest queue.
            let busy = ledger.submit(health_batch("busy", base + 100, 1000)).await?;
            let first = ledger.submit(AppendRequest::new(vec![event.clone()])).await?;
            let retry = ledger.submit(AppendRequest::new(vec![event.clone()])).await?;
            let conflict = ledger.submit(AppendRequest::new(vec![changed.clone()])).await?;
            let after = ledger
                .submit(AppendRequest::new(vec![health_event("ops-hub", base + 2)]))
                .await?;
            anyhow::Ok((busy.await, first.await, retry.await, conflict.await, after.await))
        })?;
        busy?;
        let first = first?;
        let retry = retry?;
        assert!(!first.deduplicated);
        assert!(retry.deduplicated, "round {round}");
        assert_eq!(retry.receipts, first.receipts);
        match conflict {
            Err(LedgerError::IdConflict { event_id, seq }) => {
                assert_eq!(event_id, event.id);
                assert_eq!(seq, first.receipts[0].seq);
            }
            other => panic!("round {round}: expected IdConflict, got {other:?}"),
        }
        assert_eq!(after?.receipts[0].seq, first.receipts[0].seq + 1);
    }
    assert_eq!(ledger.len(), 20 * 1002);
    let records = ledger.read_range(0, 20 * 1002)?;
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash(), pair[0].record_hash);
    }
    ledger.wait_indexed()?;
    let checkpoint = ledger.checkpoint();
    assert_eq!(checkpoint.size(), ledger.len());
    assert_eq!(ledger.root_at(checkpoint.size())?, checkpoint.root());
    Ok(())
}

#[test]
fn expected_version_is_enforced() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let stream = "service/ops-hub";
    let mut request = health_batch("ops-hub", 0, 2);
    request.expected_version = ExpectedVersion::NoStream;
    ledger.append(request)?;
    let mut again = health_batch("ops-hub", 2, 1);
    again.expected_version = ExpectedVersion::NoStream;
    let err = ledger.append(again).expect_err("stream exists");
    assert!(
        matches!(&err, LedgerError::WrongExpectedVersion { stream: s, expected: ExpectedVersion::NoStream, actual: Some(1) } if s == stream),
        "{err}"
    );
    let mut stale = health_batch("ops-hub", 3, 1);
    stale.expected_version = ExpectedVersion::Exact(0);
    let err = ledger.append(stale).expect_err("stale");
    assert!(
        matches!(err, LedgerError::WrongExpectedVersion { actual: Some(1), .. }),
        "{err}"
    );
    let mut exact = health_batch("ops-hub", 4, 1);
    exact.expected_version = ExpectedVersion::Exact(1);
    assert_eq!(ledger.append(exact)?.receipts[0].stream_version, 2);
    assert_eq!(ledger.len(), 3);
    // Survives a restart: the head comes from the rebuilt index.
    drop(ledger);
    let ledger = open(dir.path())?;
    let mut after = health_batch("ops-hub", 5, 1);
    after.expected_version = ExpectedVersion::Exact(1);
    let err = ledger.append(after).expect_err("head is 2 after restart");
    assert!(
        matches!(err, LedgerError::WrongExpectedVersion { actual: Some(2), .. }),
        "{err}"
    );
    Ok(())
}

#[test]
fn long_streams_read_back_in_order_across_batches_and_restarts() -> anyhow::Result<()> {
    // The stream index packs versions 64 to a chunk: fill chunks across
    // batches of several sizes, interleaved with another stream.
    let dir = tempfile::tempdir()?;
    let mut seqs = Vec::new();
    {
        let ledger = open(dir.path())?;
        let mut n = 0;
        for size in [1, 7, 64, 1, 128, 3] {
            let outcome = ledger.append(health_batch("long", n, size))?;
            seqs.extend(outcome.receipts.iter().map(|r| r.seq));
            ledger.append(health_batch("other", 1000 + n, 2))?;
            n += size;
        }
        assert_eq!(seqs.len(), 204);
        assert_eq!(ledger.stream_head("service/long")?, Some(203));
        check_stream(&ledger, &seqs)?;
    }
    let ledger = open(dir.path())?;
    check_stream(&ledger, &seqs)?;
    let next = AppendRequest {
        expected_version: ExpectedVersion::Exact(203),
        ..health_batch("long", 5000, 1)
    };
    assert_eq!(ledger.append(next)?.receipts[0].stream_version, 204);
    Ok(())
}

fn check_stream(ledger: &ledger_core::Ledger, seqs: &[u64]) -> anyhow::Result<()> {
    let read = |from: u64, limit: usize| -> anyhow::Result<Vec<u64>> {
        Ok(ledger
            .read_stream("service/long", from, limit)?
            .iter()
            .map(|r| r.seq())
            .collect())
    };
    assert_eq!(read(0, 1000)?, seqs);
    assert_eq!(read(63, 3)?, seqs[63..66]);
    assert_eq!(read(128, 64)?, seqs[128..192]);
    assert_eq!(read(200, 10)?, seqs[200..]);
    assert_eq!(read(204, 10)?, Vec::<u64>::new());
    let versions: Vec<u64> = ledger
        .read_stream("service/long", 60, 10)?
        .iter()
        .map(|r| r.header.stream_version)
        .collect();
    assert_eq!(versions, (60..70).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn segments_roll_and_reads_cross_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ledger_core::LedgerConfig {
        segment_max_bytes: 4096,
        ..ledger_tests::test_config()
    };
    let signer = ledger_tests::test_signer()?;
    let ledger = ledger_core::Ledger::open(dir.path(), config.clone(), signer.clone())?;
    for i in 0..40 {
        ledger.append(health_batch("ops-hub", i * 5, 5))?;
    }
    let n_segments = std::fs::read_dir(dir.path().join("log"))?.count();
    assert!(n_segments > 5, "only {n_segments} segments");
    let root = ledger.root_at(200)?;
    drop(ledger);
    let ledger = ledger_core::Ledger::open(dir.path(), config, signer)?;
    assert_eq!(ledger.len(), 200);
    let records = ledger.read_range(0, 200)?;
    for (i, record) in records.iter().enumerate().skip(1) {
        assert_eq!(record.seq(), i as u64);
        assert_eq!(record.prev_hash(), records[i - 1].record_hash);
    }
    assert_eq!(ledger.read(137)?.seq(), 137);
    assert_eq!(ledger.root_at(200)?, root);
    Ok(())
}

#[test]
fn concurrent_appenders_get_distinct_contiguous_seqs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = std::sync::Arc::new(open(dir.path())?);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let ledger = std::sync::Arc::clone(&ledger);
            std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    let outcome = ledger.append(health_batch(&format!("probe-{t}"), i, 1 + i % 3))?;
                    seqs.extend(outcome.receipts.iter().map(|r| r.seq));
                }
                Ok(seqs)
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.join().map_err(|_| anyhow::anyhow!("thread panicked"))??);
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(all, expected);
    assert_eq!(ledger.len(), all.len() as u64);
    Ok(())
}
