//! The metrics projection in the real engine: alerts appended to the log
//! once, folded back and ignored, and not duplicated by a rebuild that
//! re-emits them.

use std::sync::Arc;
use std::time::Duration;

use crate::config::LedgerConfig;
use crate::event::AppendRequest;
use crate::ledger::Ledger;
use crate::projection::engine::Projections;
use crate::signer::LocalKeySigner;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn the_engine_appends_alerts_once_and_rebuilds_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(LocalKeySigner::from_seed("test.example/ledger", [9; 32]).unwrap());
    let config = LedgerConfig {
        origin: "test.example/ledger".to_string(),
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::open(dir.path().join("ledger"), config, signer).unwrap());
    let observations = alert_scenario_events();
    let n_observations = observations.len() as u64;
    for batch in observations.chunks(40) {
        ledger.append(AppendRequest::new(batch.to_vec())).unwrap();
    }
    let projections = dir.path().join("proj");
    let metrics = || with_rules(vec![latency_rule(10 * MINUTE)]).unwrap();

    // Catch-up emits fired, resolved, fired; the engine appends them and
    // folds them back (ignored).
    let engine = Projections::open(Arc::clone(&ledger), &projections).unwrap();
    let handle = engine.register(metrics()).unwrap();
    assert!(
        handle.wait_applied(n_observations + 3, WAIT),
        "three alert events appended and folded"
    );
    let appended: Vec<Record> = (n_observations..ledger.len())
        .map(|seq| ledger.read(seq).unwrap())
        .collect();
    let types: Vec<&str> = appended.iter().map(|r| r.event_type()).collect();
    assert_eq!(types, [ALERT_FIRED, ALERT_RESOLVED, ALERT_FIRED]);
    assert!(
        appended
            .iter()
            .all(|r| r.stream() == "alert/artifact-store-p95-latency")
    );

    // The same ids as folding the log by hand.
    let by_hand: Vec<Record> = (0..n_observations).map(|seq| ledger.read(seq).unwrap()).collect();
    let emitted = apply_all(&mut metrics(), &by_hand).unwrap();
    let ids = |events: &[Event]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&emitted), appended.iter().map(|r| r.event_id()).collect::<Vec<_>>());
    assert_eq!(handle.faults(0, 10).unwrap(), []);
    let live = handle.read().alerts(None);
    assert_eq!((live[0].fired, live[0].resolved, live[0].firing), (2, 1, true));

    // Live: a fast minute resolves it.
    let t13 = MARCH_2 + 14 * HOUR + 13 * MINUTE;
    let mut fast = Event::json(
        "service/artifact-store",
        METRIC_OBSERVED,
        latency_payload("artifact-store", 90.0, t13),
    );
    fast.occurred_at = at(t13);
    ledger.append(AppendRequest::new(vec![fast])).unwrap();
    assert!(
        handle.wait_applied(n_observations + 5, WAIT),
        "the resolution is appended and folded"
    );
    assert_eq!(ledger.read(n_observations + 4).unwrap().event_type(), ALERT_RESOLVED);
    let digest = handle.digest().unwrap();
    assert_eq!(
        handle.replay(0, |_| {}).unwrap().digest.digest,
        digest.digest,
        "a replay agrees"
    );
    let rollups = |m: &Metrics| {
        m.query(
            "http_request_duration_ms",
            &[],
            Granularity::Minute,
            MARCH_2,
            MARCH_2 + DAY,
        )
    };
    let before = rollups(&handle.read());
    engine.close().unwrap();
    drop((engine, handle));

    // Rebuild from nothing: the live fold re-emits every alert with the
    // same id, and the ledger deduplicates them.
    std::fs::remove_dir_all(&projections).unwrap();
    let engine = Projections::open(Arc::clone(&ledger), &projections).unwrap();
    let handle = engine.register(metrics()).unwrap();
    assert!(handle.wait_applied(ledger.len(), WAIT));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ledger.len(), n_observations + 5, "nothing appended twice");
    assert_eq!(handle.digest().unwrap().digest, digest.digest);
    assert_eq!(rollups(&handle.read()), before);
    engine.close().unwrap();
}
