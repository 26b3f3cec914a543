//! Tests of the tasks projection, with the helpers they share: a log
//! written and folded record by record, and a snapshot of every query.

mod payloads;
mod persistence;
mod workplan;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::projection::testing::record;

const WS: &str = "CUST-WP-0051";
const T01: &str = "CUST-WP-0051-T01";
const T02: &str = "CUST-WP-0051-T02";
const T03: &str = "CUST-WP-0051-T03";
const T04: &str = "CUST-WP-0051-T04";
const T05: &str = "CUST-WP-0051-T05";

/// A log being written and folded as it goes: every pushed record gets the
/// next seq (even one that faults: it is in the log all the same).
struct Log {
    tasks: Tasks,
    records: Vec<Record>,
    next_seq: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            tasks: Tasks::new(),
            records: Vec::new(),
            next_seq: 40,
        }
    }

    /// One minute per seq from 09:00 on 2 March 2026.
    fn at(seq: u64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("valid date") + Duration::minutes(seq as i64)
    }

    fn push(&mut self, event_type: &str, payload: Value) -> (u64, Result<(), Fault>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let record = record(
            seq,
            &stream_of(event_type, &payload),
            event_type,
            &payload.to_string(),
            Log::at(seq),
        );
        let result = self.tasks.apply(&record, &mut Effects::default());
        self.records.push(record);
        (seq, result)
    }

    /// Pushes a record that must fold cleanly; returns its seq.
    fn ok(&mut self, event_type: &str, payload: Value) -> u64 {
        let (seq, result) = self.push(event_type, payload.clone());
        if let Err(fault) = result {
            panic!("{event_type} {payload} faulted: {fault}");
        }
        seq
    }

    fn record(&self, seq: u64) -> &Record {
        self.records.iter().find(|r| r.header.seq == seq).expect("pushed")
    }

    fn status(&mut self, id: &str, to: &str) -> u64 {
        self.ok("task.status_changed", json!({"id": id, "to": to}))
    }

    fn create_task(&mut self, id: &str, title: &str, extra: Value) -> u64 {
        let mut payload = json!({"id": id, "workstream": WS, "title": title});
        if let (Some(payload), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            payload.extend(extra);
        }
        self.ok("task.created", payload)
    }

    fn anomalies(&self) -> Vec<(AnomalyKind, String, u64)> {
        self.tasks
            .anomalies(&AnomalyFilter::default())
            .into_iter()
            .map(|a| (a.kind, a.subject.clone(), a.revealed_by.seq))
            .collect()
    }

    fn summary(&self) -> String {
        self.tasks.rollup(WS).expect("workstream exists").summary
    }
}

/// The stream a producer would use: `task/<id>`, `workstream/<id>`, or the
/// ops hub's own for other evidence.
fn stream_of(event_type: &str, payload: &Value) -> String {
    match (event_type.split('.').next(), payload.get("id").and_then(Value::as_str)) {
        (Some(prefix @ ("task" | "workstream")), Some(id)) => format!("{prefix}/{id}"),
        _ => "service/ops-hub".to_string(),
    }
}

/// Everything the queries return, as one JSON document.
fn queries(tasks: &Tasks) -> String {
    let all = tasks.tasks(&TaskFilter::default());
    let notes: Vec<Vec<std::borrow::Cow<'_, Note>>> = all.iter().map(|t| tasks.notes(&t.id)).collect();
    json!({
        "tasks": all,
        "notes": notes,
        "workstreams": tasks.workstreams(),
        "anomalies": tasks.anomalies(&AnomalyFilter::default()),
    })
    .to_string()
}

fn take(tasks: &mut Tasks) -> Changes {
    let mut changes = Changes::default();
    tasks.take_changes(&mut changes).expect("rows serialise");
    changes
}

/// A workstream with two tasks created, as the base of smaller tests.
fn small_plan() -> Log {
    let mut log = Log::new();
    log.ok(
        "workstream.created",
        json!({"id": WS, "title": "artifact-store: verified backups and a tested restore"}),
    );
    log.create_task(
        T01,
        "Register artifact-store buckets in the ops inventory",
        json!({"status": "todo"}),
    );
    log.create_task(T02, "Verify nightly backup of artifact-store", json!({}));
    log
}
