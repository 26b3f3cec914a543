//! Persistence: take_changes → restore round trips (whole and incremental),
//! restore refusing what it does not know, and the real engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::LedgerConfig;
use crate::event::{AppendRequest, Event};
use crate::ledger::Ledger;
use crate::projection::engine::Projections;
use crate::signer::LocalKeySigner;

use super::*;

/// Event types and payloads, in log order.
type Script = Vec<(&'static str, Value)>;

/// The workplan scenario in two halves, so the second resolves anomalies
/// the first stored (deletions must round-trip too), for a log whose first
/// record gets seq `base`. The first half is 10 records; its 9th (seq
/// `base + 8`) declares the workstream done.
fn scenario_halves(base: u64) -> (Script, Script) {
    let backup = base + 10;
    let first = vec![
        (
            "workstream.created",
            json!({"id": WS, "title": "artifact-store restore drill", "owner": "platform-team"}),
        ),
        (
            "task.created",
            json!({"id": T01, "workstream": WS, "title": "Register buckets", "status": "todo", "owner": "alice"}),
        ),
        (
            "task.created",
            json!({"id": T02, "workstream": WS, "title": "Verify nightly backup", "priority": "P0"}),
        ),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "Restore test on staging"}),
        ),
        ("task.status_changed", json!({"id": T01, "to": "progress"})),
        (
            "task.note_added",
            json!({"id": T01, "text": "12 of 14 buckets registered"}),
        ),
        (
            "task.flagged",
            json!({"id": T02, "needs_human": true, "reason": "credentials expired"}),
        ),
        ("task.status_changed", json!({"id": T03, "to": "done"})),
        ("workstream.status_changed", json!({"id": WS, "to": "done"})),
        ("task.status_changed", json!({"id": T02, "to": "cancel"})),
    ];
    let second = vec![
        ("ops.backup_verified", json!({"service": "artifact-store", "runs": 3})),
        ("task.evidence_linked", json!({"id": T03, "evidence": {"seq": backup}})),
        ("task.flagged", json!({"id": T02, "needs_human": false})),
        (
            "task.note_added",
            json!({"id": T01, "text": "all 14 buckets registered"}),
        ),
        ("task.evidence_linked", json!({"id": T01, "evidence": {"seq": backup}})),
        ("task.status_changed", json!({"id": T01, "to": "done"})),
        ("task.updated", json!({"id": T01, "owner": null})),
    ];
    (first, second)
}

#[test]
fn state_round_trips_through_take_changes_and_restore() -> Result<(), Fault> {
    let (first, second) = scenario_halves(40);
    let mut log = Log::new();
    let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut persist = |changes: Changes| {
        for (key, value) in changes.entries() {
            match value {
                Some(value) => stored.insert(key, value),
                None => stored.remove(&key),
            };
        }
    };
    for (event_type, payload) in first {
        log.ok(event_type, payload);
    }
    assert_eq!(
        log.anomalies().len(),
        4,
        "stale flag, illegal move, no evidence, contradiction"
    );
    persist(take(&mut log.tasks));
    for (event_type, payload) in second {
        log.ok(event_type, payload);
    }
    let final_changes = take(&mut log.tasks);
    assert!(
        final_changes.entries().iter().any(|(_, value)| value.is_none()),
        "resolved anomalies are deletions"
    );
    persist(final_changes);
    assert_eq!(log.anomalies().len(), 1, "only the illegal transition stays");

    let mut restored = log.tasks.fresh();
    for (key, value) in &stored {
        restored.restore(key, value)?;
    }
    assert_eq!(queries(&restored), queries(&log.tasks));
    assert_eq!(
        format!("{restored:?}"),
        format!("{:?}", log.tasks),
        "same rows, nothing pending"
    );

    // In one go from a fresh fold, the stored bytes are the same.
    let mut replay = Tasks::new();
    for record in &log.records {
        replay.apply(record, &mut Effects::default())?;
    }
    let replayed: BTreeMap<Vec<u8>, Vec<u8>> = take(&mut replay)
        .entries()
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .collect();
    assert_eq!(replayed, stored);
    Ok(())
}

#[test]
fn restore_refuses_keys_and_rows_it_does_not_know() {
    let mut tasks = Tasks::new();
    let fault = tasks
        .restore(b"incident\0INC-2026-0042", b"{}")
        .expect_err("foreign key");
    assert!(fault.0.contains("tasks projection"), "{fault}");
    let fault = tasks.restore(b"task\0CUST-WP-0051-T01", b"{}").expect_err("bad row");
    assert!(fault.0.contains("table task"), "{fault}");
    assert_eq!((tasks.name(), tasks.version()), ("tasks", 1));
}

#[test]
fn the_engine_folds_persists_replays_and_time_travels_tasks() {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(LocalKeySigner::from_seed("test.example/ledger", [9; 32]).unwrap());
    let config = LedgerConfig {
        origin: "test.example/ledger".to_string(),
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::open(dir.path().join("ledger"), config, signer).unwrap());
    let append = |script: Script| -> Vec<u64> {
        script
            .into_iter()
            .map(|(event_type, payload)| {
                let event = Event::json(stream_of(event_type, &payload), event_type, payload.to_string());
                ledger.append(AppendRequest::new(vec![event])).unwrap().receipts[0].seq
            })
            .collect()
    };
    let (first, second) = scenario_halves(0);
    let first = append(first);

    // Catch-up, then live.
    let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
    let tasks = engine.register(Tasks::new()).unwrap();
    assert!(tasks.wait_applied(ledger.len(), WAIT));
    assert_eq!(tasks.read().anomalies(&AnomalyFilter::default()).len(), 4);
    append(second);
    let bad = append(vec![(
        "task.status_changed",
        json!({"id": "CUST-WP-0051-T99", "to": "done"}),
    )])[0];
    assert!(tasks.wait_applied(ledger.len(), WAIT));
    assert_eq!(
        tasks.faults(0, 10).unwrap(),
        [(
            bad,
            "id: unknown task CUST-WP-0051-T99 (no task.created before)".to_string()
        )]
    );
    let live = queries(&tasks.read());
    assert_eq!(tasks.read().anomalies(&AnomalyFilter::default()).len(), 1);

    // The same as folding the log by hand.
    let mut by_hand = Tasks::new();
    for seq in 0..ledger.len() {
        let _ = by_hand.apply(&ledger.read(seq).unwrap(), &mut Effects::default());
    }
    assert_eq!(queries(&by_hand), live);

    // Time travel to the moment the workstream was declared done.
    let then = tasks.at_seq(first[8]).unwrap();
    let contradiction = then.anomalies(&AnomalyFilter {
        kind: Some(AnomalyKind::WorkstreamDoneWithOpenTasks),
        ..AnomalyFilter::default()
    });
    assert_eq!(contradiction[0].open_tasks, [T01, T02]);
    assert_eq!(contradiction[0].revealed_by.seq, first[8]);
    assert_eq!(then.rollup(WS).unwrap().summary, "1 progress, 1 backlog, 1 done");

    // A replay digests the same; so does the state restored on reopen.
    let digest = tasks.digest().unwrap();
    assert_eq!(tasks.replay(0, |_| {}).unwrap().digest.digest, digest.digest);
    engine.close().unwrap();
    drop((engine, tasks));
    let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
    let tasks = engine.register(Tasks::new()).unwrap();
    assert_eq!(queries(&tasks.read()), live);
    assert_eq!(tasks.digest().unwrap().digest, digest.digest);
    engine.close().unwrap();
}
