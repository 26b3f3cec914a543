// A failing unwrap is the test failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::lists::CHUNK_LEN;
use super::*;
use crate::event::Event;
use crate::projection::testing::record_of;

/// 14 March 2026, `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, h, m, s).unwrap()
}

fn ns(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap()
}

fn stream(id: &str) -> Subject {
    Subject::Stream(id.into())
}

fn incident(id: &str) -> Subject {
    Subject::Incident(id.into())
}

fn workstream(id: &str) -> Subject {
    Subject::Workstream(id.into())
}

fn correlation(id: &str) -> Subject {
    Subject::Correlation(id.into())
}

/// A log under construction: records get consecutive seqs.
#[derive(Default)]
struct Log {
    records: Vec<Record>,
}

/// One event to append.
struct Ev<'a> {
    stream: &'a str,
    event_type: &'a str,
    payload: &'a str,
    time: DateTime<Utc>,
    correlation: &'a str,
    extra: &'a [(&'a str, &'a str)],
}

fn ev<'a>(stream: &'a str, event_type: &'a str, payload: &'a str, time: DateTime<Utc>) -> Ev<'a> {
    Ev {
        stream,
        event_type,
        payload,
        time,
        correlation: "",
        extra: &[],
    }
}

impl<'a> Ev<'a> {
    fn correlated(mut self, id: &'a str) -> Ev<'a> {
        self.correlation = id;
        self
    }

    fn extra(mut self, extra: &'a [(&'a str, &'a str)]) -> Ev<'a> {
        self.extra = extra;
        self
    }
}

impl Log {
    fn push(&mut self, ev: Ev<'_>) -> u64 {
        let mut event = Event::json(ev.stream, ev.event_type, ev.payload.as_bytes().to_vec());
        event.occurred_at = ev.time;
        event.metadata.correlation_id = ev.correlation.to_string();
        for (key, value) in ev.extra {
            event.metadata.extra.insert(key.to_string(), value.to_string());
        }
        let seq = self.records.len() as u64;
        self.records.push(record_of(seq, &event));
        seq
    }

    /// A morning of evidence: a workplan with tasks, an incident with its
    /// pages and runbook, ops-hub checks, one deploy correlated across
    /// services.
    fn morning() -> Log {
        let mut log = Log::default();
        let wp = [("workplan", "CUST-WP-0051")];
        let inc = [("incident_id", "INC-2026-0042")];
        log.push(ev(
            "workstream/CUST-WP-0051",
            "workstream.created",
            r#"{"id": "CUST-WP-0051", "title": "Registry migration"}"#,
            at(9, 0, 5),
        ));
        log.push(ev(
            "task/CUST-WP-0051-T03",
            "task.created",
            r#"{"id": "CUST-WP-0051-T03", "workstream": "CUST-WP-0051", "title": "Verify registry endpoint"}"#,
            at(9, 0, 40),
        ));
        log.push(
            ev(
                "service/ops-hub",
                "ops.endpoint_verified",
                r#"{"endpoint": "https://registry.example/v2/", "expected_status": 401}"#,
                at(9, 1, 10),
            )
            .extra(&wp),
        );
        log.push(ev(
            "task/CUST-WP-0051-T03",
            "task.status_changed",
            r#"{"id": "CUST-WP-0051-T03", "to": "progress"}"#,
            at(9, 1, 50),
        ));
        log.push(
            ev(
                "service/ci",
                "ci.deploy_started",
                r#"{"service": "artifact-store", "version": "2.4.1"}"#,
                at(9, 2, 0),
            )
            .correlated("deploy-7731"),
        );
        log.push(
            ev(
                "incident/INC-2026-0042",
                "incident.opened",
                r#"{"incident_id": "INC-2026-0042", "severity": "SEV2", "title": "uploads fail", "service": "artifact-store"}"#,
                at(9, 4, 0),
            )
            .correlated("deploy-7731"),
        );
        log.push(ev(
            "service/pager",
            "incident.acknowledged",
            r#"{"incident_id": "INC-2026-0042", "by": "oncall-alice"}"#,
            at(9, 4, 30),
        ));
        log.push(
            ev(
                "service/ops-hub",
                "ops.runbook_executed",
                r#"{"runbook": "rollback"}"#,
                at(9, 5, 0),
            )
            .correlated("deploy-7731")
            .extra(&inc),
        );
        log.push(
            ev(
                "service/ci",
                "ci.rollback_finished",
                r#"{"service": "artifact-store", "version": "2.4.0"}"#,
                at(9, 5, 20),
            )
            .correlated("deploy-7731"),
        );
        log.push(ev("incident/INC-2026-0042", "incident.resolved", "{}", at(9, 8, 0)));
        log.push(ev(
            "task/CUST-WP-0051-T03",
            "task.status_changed",
            r#"{"id": "CUST-WP-0051-T03", "to": "done"}"#,
            at(9, 8, 0),
        ));
        log.push(ev(
            "service/ops-hub",
            "ops.health_checked",
            r#"{"service": "registry", "ok": true}"#,
            at(9, 9, 59),
        ));
        log
    }
}

fn fold(records: &[Record]) -> Subjects {
    let mut subjects = Subjects::new();
    let mut effects = Effects::default();
    for record in records {
        subjects.apply(record, &mut effects).unwrap();
    }
    subjects
}

fn flush(subjects: &mut Subjects, stored: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<String> {
    let mut changes = Changes::default();
    subjects.take_changes(&mut changes).unwrap();
    let mut keys = Vec::new();
    for (key, value) in changes.entries() {
        keys.push(String::from_utf8_lossy(&key).replace('\0', "|"));
        match value {
            Some(value) => stored.insert(key, value),
            None => stored.remove(&key),
        };
    }
    keys
}

fn restored(stored: &BTreeMap<Vec<u8>, Vec<u8>>) -> Subjects {
    let mut subjects = Subjects::new().fresh();
    for (key, value) in stored {
        subjects.restore(key, value).unwrap();
    }
    subjects
}

#[test]
fn every_record_is_indexed_by_stream_and_correlation() {
    let log = Log::morning();
    let subjects = fold(&log.records);
    assert_eq!(subjects.seqs(&stream("task/CUST-WP-0051-T03")), [1, 3, 10]);
    assert_eq!(subjects.seqs(&stream("service/ops-hub")), [2, 7, 11]);
    assert_eq!(subjects.seqs(&correlation("deploy-7731")), [4, 5, 7, 8]);
    assert_eq!(subjects.count(&correlation("deploy-7731")), 4);
    assert_eq!(subjects.seqs(&stream("service/nobody")), Vec::<u64>::new());
    assert_eq!(subjects.count(&stream("service/nobody")), 0);
    assert_eq!(subjects.seq_bounds(), Some(0..=11));
}

#[test]
fn incident_ids_come_from_payload_metadata_and_stream() {
    let subjects = fold(&Log::morning().records);
    // 5: payload and stream, 6: payload only, 7: metadata only, 9: stream only.
    assert_eq!(subjects.seqs(&incident("INC-2026-0042")), [5, 6, 7, 9]);
}

#[test]
fn workstream_ids_come_from_payloads_metadata_and_remembered_tasks() {
    let mut log = Log::morning();
    // A task payload Tasks cannot read is still indexed by its stream.
    let bad = log.push(ev(
        "task/CUST-WP-0051-T04",
        "task.created",
        r#"{"id": 4, "workstream": "CUST-WP-0051"}"#,
        at(9, 10, 0),
    ));
    let other = log.push(ev(
        "task/ART-WP-0007-T01",
        "task.created",
        r#"{"task_id": "ART-WP-0007-T01", "workstream_id": "artifact-store-wp-0007"}"#,
        at(9, 10, 1),
    ));
    let subjects = fold(&log.records);
    // 0: workstream.created, 1: task with its workstream, 2: metadata
    // workplan, 3 and 10: later events of the task (workstream remembered).
    assert_eq!(subjects.seqs(&workstream("CUST-WP-0051")), [0, 1, 2, 3, 10]);
    assert_eq!(subjects.seqs(&stream("task/CUST-WP-0051-T04")), [bad]);
    assert_eq!(subjects.seqs(&workstream("artifact-store-wp-0007")), [other]);
    assert_eq!(
        subjects.workstream_of_task("CUST-WP-0051-T03").as_deref(),
        Some("CUST-WP-0051")
    );
    assert_eq!(
        subjects.workstream_of_task("ART-WP-0007-T01").as_deref(),
        Some("artifact-store-wp-0007")
    );
}

#[test]
fn selectors_intersect_subjects_and_ranges() {
    let subjects = fold(&Log::morning().records);
    let select = |selector: Selector| subjects.select(&selector);

    assert_eq!(select(Selector::default()), (0..12).collect::<Vec<_>>());
    assert_eq!(
        select(Selector::default().with(incident("INC-2026-0042"))),
        [5, 6, 7, 9]
    );
    assert_eq!(
        select(
            Selector::default()
                .with(incident("INC-2026-0042"))
                .with(correlation("deploy-7731"))
        ),
        [5, 7]
    );
    assert_eq!(
        select(
            Selector::default()
                .with(correlation("deploy-7731"))
                .with(stream("service/ci"))
                .with(stream("service/ci"))
        ),
        [4, 8]
    );
    assert_eq!(
        select(Selector::default().with(workstream("CUST-WP-0051")).seqs_in(2..10)),
        [2, 3]
    );
    assert_eq!(
        select(
            Selector::default()
                .with(stream("service/ops-hub"))
                .with(stream("service/ci"))
        ),
        Vec::<u64>::new()
    );
    assert_eq!(
        select(Selector::default().with(stream("service/unknown"))),
        Vec::<u64>::new()
    );
    // 09:04:00 to 09:05:00 covers the minute 09:04 only.
    assert_eq!(
        select(
            Selector::default()
                .with(incident("INC-2026-0042"))
                .recorded_in(ns(at(9, 4, 0))..ns(at(9, 5, 0)))
        ),
        [5, 6]
    );
    assert_eq!(
        select(Selector::default().recorded_in(ns(at(9, 4, 0))..ns(at(9, 5, 0)))),
        [5, 6]
    );
    assert_eq!(
        select(
            Selector::default()
                .recorded_in(ns(at(9, 0, 0))..ns(at(9, 2, 0)))
                .seqs_in(1..100)
        ),
        [1, 2, 3]
    );
    assert_eq!(select(Selector::default().seqs_in(20..30)), Vec::<u64>::new());
    assert_eq!(Subjects::new().select(&Selector::default()), Vec::<u64>::new());
}

#[test]
fn time_ranges_map_to_seq_ranges_rounded_out_to_minutes() {
    let subjects = fold(&Log::morning().records);
    let range = |from: DateTime<Utc>, to: DateTime<Utc>| subjects.seq_range_for_time(ns(from), ns(to));

    // Minutes 09:00 (0, 1), 09:01 (2, 3), 09:02 (4), 09:04 (5, 6), 09:05
    // (7, 8), 09:08 (9, 10), 09:09 (11).
    assert_eq!(range(at(9, 1, 0), at(9, 2, 0)), 2..4);
    assert_eq!(range(at(9, 1, 30), at(9, 1, 31)), 2..4, "rounded out to the minute");
    assert_eq!(range(at(9, 1, 0), at(9, 2, 0) + Duration::nanoseconds(1)), 2..5);
    assert_eq!(range(at(9, 3, 0), at(9, 4, 0)), 5..5, "a minute without records");
    assert_eq!(range(at(9, 2, 30), at(9, 8, 1)), 4..11);
    assert_eq!(range(at(8, 0, 0), at(9, 0, 0)), 0..0, "before the first record");
    assert_eq!(range(at(8, 0, 0), at(23, 0, 0)), 0..12);
    assert_eq!(range(at(10, 0, 0), at(11, 0, 0)), 12..12, "after the last record");
    assert_eq!(range(at(9, 5, 0), at(9, 5, 0)), 12..12, "empty");
    assert_eq!(range(at(9, 6, 0), at(9, 5, 0)), 12..12, "reversed");
    assert_eq!(subjects.seq_range_for_time(i64::MIN, i64::MAX), 0..12);
    assert_eq!(Subjects::new().seq_range_for_time(i64::MIN, i64::MAX), 0..0);
}

#[test]
fn many_minutes_span_time_chunks() {
    // One record every 30 s for three hours: 360 records, 180 minutes, so
    // the marks fill sealed chunks and a tail.
    let mut log = Log::default();
    let start = at(6, 0, 0);
    for n in 0..360 {
        log.push(ev(
            "service/scheduler",
            "ops.health_checked",
            "{}",
            start + Duration::seconds(30 * n),
        ));
    }
    let subjects = fold(&log.records);
    for minute in [0i64, 63, 64, 65, 127, 128, 179] {
        let from = start + Duration::minutes(minute);
        let to = from + Duration::minutes(1);
        let expected = (2 * minute as u64)..(2 * minute as u64 + 2);
        assert_eq!(
            subjects.seq_range_for_time(ns(from), ns(to)),
            expected,
            "minute {minute}"
        );
    }
    assert_eq!(
        subjects.seq_range_for_time(ns(start + Duration::minutes(50)), ns(start + Duration::minutes(140))),
        100..280
    );
}

#[test]
fn a_subject_past_chunk_boundaries_keeps_every_seq_and_flushes_only_its_tail() {
    let mut log = Log::default();
    let start = at(10, 0, 0);
    for n in 0..1200 {
        let stream = if n % 2 == 0 {
            "service/ops-hub"
        } else {
            "service/scheduler"
        };
        log.push(ev(stream, "ops.health_checked", "{}", start + Duration::seconds(n)));
    }
    let mut subjects = Subjects::new();
    let mut stored = BTreeMap::new();
    let mut effects = Effects::default();
    for record in &log.records[..1100] {
        subjects.apply(record, &mut effects).unwrap();
    }
    let written = flush(&mut subjects, &mut stored);
    assert!(
        written.contains(&"chunk|stream/service/ops-hub/00000001".to_string()),
        "{written:?}"
    );

    // Ten more records touch two heads and the meta row: no sealed chunk
    // is rewritten.
    for record in &log.records[1100..1110] {
        subjects.apply(record, &mut effects).unwrap();
    }
    let written = flush(&mut subjects, &mut stored);
    assert_eq!(
        written,
        [
            "head|stream/service/ops-hub",
            "head|stream/service/scheduler",
            "meta|meta"
        ],
        "{written:?}"
    );
    for record in &log.records[1110..] {
        subjects.apply(record, &mut effects).unwrap();
    }
    flush(&mut subjects, &mut stored);

    let hub = stream("service/ops-hub");
    let evens: Vec<u64> = (0..1200).step_by(2).collect();
    assert_eq!(subjects.count(&hub), 600);
    assert_eq!(subjects.seqs(&hub), evens);
    // 600 seqs: two sealed chunks and a tail of 88.
    let chunk_rows = stored
        .keys()
        .filter(|key| key.starts_with(b"chunk\0stream/service/ops-hub/"))
        .count();
    assert_eq!(chunk_rows, 600 / CHUNK_LEN);

    // Ranges across the chunk boundaries (chunk 0 ends at seq 510).
    let around = Selector::default().with(hub.clone()).seqs_in(505..517);
    assert_eq!(subjects.select(&around), [506, 508, 510, 512, 514, 516]);
    let tail_only = Selector::default().with(hub.clone()).seqs_in(1190..5000);
    assert_eq!(subjects.select(&tail_only), [1190, 1192, 1194, 1196, 1198]);
    let both = Selector::default().with(hub).with(stream("service/scheduler"));
    assert_eq!(subjects.select(&both), Vec::<u64>::new());

    let from_store = restored(&stored);
    assert_eq!(from_store.seqs(&stream("service/ops-hub")), evens);
    assert_eq!(from_store.select(&around), [506, 508, 510, 512, 514, 516]);
    assert_eq!(
        from_store.seq_range_for_time(ns(start), ns(start + Duration::minutes(2))),
        0..120
    );
}

#[test]
fn a_record_naming_a_subject_twice_is_listed_once() {
    let mut log = Log::default();
    log.push(
        ev(
            "incident/INC-2026-0042",
            "incident.note_added",
            r#"{"incident_id": "INC-2026-0042", "text": "x"}"#,
            at(9, 0, 0),
        )
        .extra(&[("incident_id", "INC-2026-0042")]),
    );
    let subjects = fold(&log.records);
    assert_eq!(subjects.seqs(&incident("INC-2026-0042")), [0]);
}

#[test]
fn a_record_out_of_seq_order_is_a_fault_and_changes_nothing() {
    let log = Log::morning();
    let mut subjects = fold(&log.records);
    let mut stored = BTreeMap::new();
    flush(&mut subjects, &mut stored);
    let fault = subjects.apply(&log.records[3], &mut Effects::default()).unwrap_err();
    assert_eq!(
        fault.0,
        "seq: 3 arrives after 11; records must come in increasing seq order"
    );
    assert!(flush(&mut subjects, &mut stored).is_empty());
    assert_eq!(subjects.seqs(&stream("task/CUST-WP-0051-T03")), [1, 3, 10]);
}

/// Every query answer over a log, for comparing two instances.
fn answers(subjects: &Subjects, log: &Log) -> String {
    let mut all: Vec<Subject> = Vec::new();
    for record in &log.records {
        let event = &record.header.event;
        all.push(stream(&event.stream));
        all.push(correlation(&event.metadata.correlation_id));
    }
    all.extend([
        incident("INC-2026-0042"),
        workstream("CUST-WP-0051"),
        workstream("artifact-store-wp-0007"),
    ]);
    all.sort();
    all.dedup();
    let seqs: Vec<_> = all.iter().map(|s| (s, subjects.seqs(s), subjects.count(s))).collect();
    let first = log.records.first().map_or(0, |r| r.header.recorded_at_ns);
    let times: Vec<_> = (0..40)
        .map(|n| {
            let from = first + n * 13 * 1_000_000_000;
            subjects.seq_range_for_time(from, from + 95 * 1_000_000_000)
        })
        .collect();
    let selected = subjects.select(
        &Selector::default()
            .with(correlation("deploy-7731"))
            .with(incident("INC-2026-0042"))
            .recorded_in(first..first + 600 * 1_000_000_000),
    );
    serde_json::to_string(&(
        seqs,
        times,
        selected,
        subjects.seq_bounds(),
        subjects.workstream_of_task("CUST-WP-0051-T03"),
    ))
    .unwrap()
}

/// The morning, then a long run of scheduler checks and correlated deploys
/// (past chunk boundaries), then more task events.
fn long_day() -> Log {
    let mut log = Log::morning();
    let start = at(10, 0, 0);
    for n in 0..700 {
        let time = start + Duration::seconds(7 * n);
        if n % 3 == 0 {
            log.push(ev("service/ci", "ci.deploy_finished", "{}", time).correlated("deploy-7731"));
        } else {
            log.push(ev("service/scheduler", "ops.health_checked", "{}", time).extra(&[("workplan", "CUST-WP-0051")]));
        }
    }
    log.push(ev(
        "task/CUST-WP-0051-T03",
        "task.note_added",
        r#"{"id": "CUST-WP-0051-T03", "text": "verified"}"#,
        at(12, 0, 0),
    ));
    log.push(ev("incident/INC-2026-0042", "incident.closed", "{}", at(12, 1, 0)));
    log
}

#[test]
fn restore_after_incremental_flushes_gives_the_same_answers() {
    let log = long_day();
    let whole = fold(&log.records);

    let mut incremental = Subjects::new();
    let mut stored = BTreeMap::new();
    let mut effects = Effects::default();
    for (n, record) in log.records.iter().enumerate() {
        incremental.apply(record, &mut effects).unwrap();
        if n == 5 || n == 300 || n == 530 {
            flush(&mut incremental, &mut stored);
        }
    }
    flush(&mut incremental, &mut stored);
    let from_store = restored(&stored);
    assert_eq!(answers(&from_store, &log), answers(&whole, &log));

    // The stored bytes are those of a single flush of a full replay.
    let mut replayed = fold(&log.records);
    let mut once = BTreeMap::new();
    flush(&mut replayed, &mut once);
    assert_eq!(stored, once);

    // A restored instance folds on exactly like one that never stopped.
    let mut stored = BTreeMap::new();
    let mut resumed = fold(&log.records[..400]);
    flush(&mut resumed, &mut stored);
    let mut resumed = restored(&stored);
    for record in &log.records[400..] {
        resumed.apply(record, &mut effects).unwrap();
    }
    assert_eq!(answers(&resumed, &log), answers(&whole, &log));
    let mut resumed_store = stored.clone();
    flush(&mut resumed, &mut resumed_store);
    assert_eq!(resumed_store, once);
}

#[test]
fn a_stored_key_of_no_table_is_a_fault() {
    let mut subjects = Subjects::new();
    let fault = subjects.restore(b"elsewhere\0x", b"{}").unwrap_err();
    assert!(fault.0.contains("belongs to no table"), "{fault}");
}
