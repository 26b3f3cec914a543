//! The event-id index beyond its in-memory table: idempotency, conflicts and
//! `get_by_id` for ids that live in run files, before and after a restart,
//! and with the `ids/` directory deleted while the ledger is closed.

use ledger_core::{AppendRequest, Ledger, LedgerConfig, LedgerError};
use ledger_tests::{health_batch, health_event, test_config, test_signer};

/// A tiny memtable, so a few hundred events make several runs and merges.
fn small_memtable() -> LedgerConfig {
    LedgerConfig {
        id_memtable_ids: 50,
        ..test_config()
    }
}

fn open_small(dir: &std::path::Path) -> anyhow::Result<Ledger> {
    Ok(Ledger::open(dir, small_memtable(), test_signer()?)?)
}

#[test]
fn ids_in_runs_stay_idempotent_across_restarts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let batches: Vec<AppendRequest> = (0..20).map(|b| health_batch("ops-hub", b * 30, 30)).collect();
    let ledger = open_small(dir.path())?;
    let mut originals = Vec::new();
    for batch in &batches {
        originals.push(ledger.append(batch.clone())?);
    }
    // A full memtable is frozen and written out by a flusher thread, and
    // `memtable_ids` counts a frozen table until its run replaces it: wait
    // (bounded) for the flusher, then only the live memtable is in memory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut stats = ledger.id_index_stats();
    while stats.memtable_ids >= 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        stats = ledger.id_index_stats();
    }
    assert_eq!(stats.memtable_ids + stats.run_ids, 600, "{stats:?}");
    assert!(stats.runs >= 1 && stats.memtable_ids < 50, "{stats:?}");
    assert!(stats.run_memory_bytes > 0, "{stats:?}");

    // The first batch's ids are in the oldest run: an exact retry gets the
    // original receipts and writes nothing.
    let retry = ledger.append(batches[0].clone())?;
    assert!(retry.deduplicated);
    assert_eq!(retry.receipts, originals[0].receipts);
    // A reused id with other content is refused with its seq.
    let mut changed = batches[3].events[7].clone();
    changed.payload = br#"{"tampered":true}"#.to_vec();
    let err = ledger.append(AppendRequest::new(vec![changed])).expect_err("conflict");
    assert!(matches!(err, LedgerError::IdConflict { seq: 97, .. }), "{err}");
    // A batch mixing a known id and a new one is refused whole.
    let mixed = AppendRequest::new(vec![batches[5].events[0].clone(), health_event("ops-hub", 10_000)]);
    let err = ledger.append(mixed).expect_err("partial");
    assert!(matches!(err, LedgerError::PartialDuplicate { seq: 150, .. }), "{err}");
    assert_eq!(ledger.len(), 600, "nothing written by the refusals");
    for (b, original) in originals.iter().enumerate() {
        let receipt = &original.receipts[b % 30];
        let record = ledger.get_by_id(receipt.event_id)?.expect("found by id");
        assert_eq!(record.seq(), receipt.seq);
    }
    assert!(ledger.get_by_id(health_event("ops-hub", 20_000).id)?.is_none());
    ledger.close()?;
    drop(ledger);
    reopen_and_check(dir.path(), &batches, &originals)
}

/// After a restart (and again with `ids/` deleted): every id is found, and
/// new appends still work.
fn reopen_and_check(
    dir: &std::path::Path,
    batches: &[AppendRequest],
    originals: &[ledger_core::AppendOutcome],
) -> anyhow::Result<()> {
    for pass in ["reopened", "ids dir deleted"] {
        if pass == "ids dir deleted" {
            std::fs::remove_dir_all(dir.join("ids"))?;
        }
        let ledger = open_small(dir)?;
        let stats = ledger.id_index_stats();
        assert_eq!(
            stats.memtable_ids + stats.run_ids,
            600 + usize::from(pass == "ids dir deleted"),
            "{pass}: {stats:?}"
        );
        for (batch, original) in batches.iter().zip(originals) {
            let retry = ledger.append(batch.clone())?;
            assert!(retry.deduplicated, "{pass}");
            assert_eq!(retry.receipts, original.receipts, "{pass}");
        }
        let mut changed = batches[19].events[29].clone();
        changed.payload = br#"{"tampered":true}"#.to_vec();
        let err = ledger.append(AppendRequest::new(vec![changed])).expect_err("conflict");
        assert!(matches!(err, LedgerError::IdConflict { seq: 599, .. }), "{pass}: {err}");
        if pass == "reopened" {
            let fresh = ledger.append(AppendRequest::new(vec![health_event("ops-hub", 30_000)]))?;
            assert_eq!(fresh.receipts[0].seq, 600);
        }
        assert_eq!(ledger.len(), 601, "{pass}");
        ledger.close()?;
    }
    Ok(())
}
