//! Replay determinism at scale: a million generated records
//! ([`SampleEvidence`]) folded by every built-in projection give, per
//! projection, one digest — live, after a replay from seq 0, and in a
//! second engine that folds the same log into a fresh store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::projection::builtin::Builtins;
use ledger_core::projection::{ProjectionStatus, Projections};
use ledger_core::sample::SampleEvidence;
use ledger_core::{AppendRequest, Ledger};
use ledger_tests::digests;

/// Records in the log: the issue asks for at least a million.
const RECORDS: u64 = 1_000_000;
/// Events per append.
const BATCH: usize = 10_000;
const SEED: u64 = 20_261_101;
/// Longest a fold may take before the test calls it hung.
const CATCH_UP: Duration = Duration::from_secs(900);

/// Opens an engine on `dir` with the four built-ins.
fn open_engine(ledger: &Arc<Ledger>, dir: &Path) -> anyhow::Result<Projections> {
    let engine = Projections::open(Arc::clone(ledger), dir)?;
    Builtins::register(&engine)?;
    Ok(engine)
}

/// Waits until every projection has folded the whole log.
fn wait_caught_up(engine: &Projections, ledger: &Ledger) -> anyhow::Result<()> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let len = ledger.len();
        if engine.status()?.iter().all(|s| s.applied == len) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "projections did not catch up: {:?}",
            engine.status()?
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_million_records_replay_to_the_same_digests_in_two_engines() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = Arc::new(ledger_tests::open(&dir.path().join("ledger"))?);
    let mut source = SampleEvidence::new(SEED);
    let mut appended = 0;
    while appended < RECORDS {
        let n = BATCH.min((RECORDS - appended) as usize);
        ledger.append(AppendRequest::new(source.take_events(n)))?;
        appended += n as u64;
    }

    let engine = open_engine(&ledger, &dir.path().join("projections-a"))?;
    wait_caught_up(&engine, &ledger)?;
    // The default metrics config has no alert rules, so nothing was emitted.
    assert_eq!(ledger.len(), RECORDS);
    let live = digests(&engine)?;
    let names: Vec<&str> = live.iter().map(|d| d.name.as_str()).collect();
    for name in ["tasks", "incidents", "subjects", "metrics"] {
        assert!(names.contains(&name), "{name} is not registered: {names:?}");
    }
    for digest in &live {
        assert_eq!(digest.applied, RECORDS, "{digest:?}");
        assert!(digest.entries > 0, "an empty state proves nothing: {digest:?}");
    }
    let live_status = engine.status()?;

    // A second engine, sharing nothing with the first but the log, folds
    // it while the first one replays.
    let other = open_engine(&ledger, &dir.path().join("projections-b"))?;

    for (before, status) in live.iter().zip(&live_status) {
        let name = before.name.as_str();
        assert_eq!(status.name, name);
        let mut reports = 0;
        let outcome = engine.replay(name, 0, |_| reports += 1)?;
        assert!(reports >= 2, "{name}: progress was reported {reports} times");
        assert_eq!(outcome.records, RECORDS, "{name}");
        assert_eq!(outcome.faults, status.faults, "{name}: the replay met other faults");
        assert_eq!(&outcome.digest, before, "{name}: the replay's digest");
        let after = engine.status()?.into_iter().find(|s| s.name == name);
        let after = after.ok_or_else(|| anyhow::anyhow!("{name} vanished"))?;
        assert_eq!(
            (after.generation, after.applied, after.faults, after.replay),
            (status.generation + 1, RECORDS, status.faults, None),
            "{name}: status after the replay"
        );
        assert_eq!(&engine.digest(name)?, before, "{name}: the live digest after the swap");
    }

    wait_caught_up(&other, &ledger)?;
    assert_eq!(digests(&other)?, live, "a second engine over the same log");
    let faults = |statuses: Vec<ProjectionStatus>| -> Vec<(String, u64)> {
        statuses.into_iter().map(|s| (s.name, s.faults)).collect()
    };
    assert_eq!(
        faults(other.status()?),
        faults(live_status),
        "faults met by the second engine"
    );
    other.close()?;
    engine.close()?;
    Ok(())
}
