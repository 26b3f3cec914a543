// A failing unwrap is the test failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::event::Event;
use crate::projection::testing::{record, record_of};

const INC: &str = "INC-2026-0042";

/// 14 March 2026, `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, h, m, s).unwrap()
}

fn ns(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap()
}

/// A log under construction: records get consecutive seqs.
#[derive(Default)]
struct Log {
    records: Vec<Record>,
}

impl Log {
    fn push(&mut self, stream: &str, event_type: &str, payload: &str, time: DateTime<Utc>) -> &Record {
        let seq = self.records.len() as u64;
        self.records.push(record(seq, stream, event_type, payload, time));
        self.records.last().unwrap()
    }

    fn push_with_metadata(
        &mut self,
        stream: &str,
        event_type: &str,
        payload: &str,
        time: DateTime<Utc>,
        extra: &[(&str, &str)],
    ) -> &Record {
        let mut event = Event::json(stream, event_type, payload.as_bytes().to_vec());
        event.occurred_at = time;
        for (key, value) in extra {
            event.metadata.extra.insert(key.to_string(), value.to_string());
        }
        let seq = self.records.len() as u64;
        self.records.push(record_of(seq, &event));
        self.records.last().unwrap()
    }

    /// An incident's life, with a note, a severity bump and evidence from
    /// the ops hub.
    fn full_incident() -> Log {
        let mut log = Log::default();
        let stream = format!("incident/{INC}");
        log.push(
            &stream,
            "incident.opened",
            r#"{"incident_id": "INC-2026-0042", "severity": "SEV2", "title": "Artifact uploads fail with 503",
                "service": "artifact-store", "runbooks": ["https://runbooks.example/artifact-store/503"],
                "by": "probe-eu-1"}"#,
            at(14, 2, 0),
        );
        log.push(
            "service/ops-hub",
            "ops.health_checked",
            r#"{"service": "registry", "ok": true}"#,
            at(14, 3, 0),
        );
        log.push(
            &stream,
            "incident.acknowledged",
            r#"{"incident_id": "INC-2026-0042", "by": "oncall-alice"}"#,
            at(14, 5, 30),
        );
        log.push(
            &stream,
            "incident.severity_changed",
            r#"{"incident_id": "INC-2026-0042", "to": "SEV1", "reason": "uploads fail in every region", "by": "oncall-alice"}"#,
            at(14, 10, 0),
        );
        log.push(
            &stream,
            "incident.note_added",
            r#"{"incident_id": "INC-2026-0042", "text": "disk full on artifact-store-2; rotating logs", "by": "oncall-alice"}"#,
            at(14, 12, 0),
        );
        log.push_with_metadata(
            "service/ops-hub",
            "ops.runbook_executed",
            r#"{"runbook": "https://runbooks.example/artifact-store/503", "outcome": "ok"}"#,
            at(14, 15, 0),
            &[("incident_id", INC), ("workplan", "artifact-store-wp-0007")],
        );
        log.push(
            &stream,
            "incident.mitigated",
            r#"{"incident_id": "INC-2026-0042", "note": "traffic moved to artifact-store-1"}"#,
            at(14, 20, 0),
        );
        log.push(
            &stream,
            "incident.resolved",
            r#"{"incident_id": "INC-2026-0042"}"#,
            at(14, 45, 0),
        );
        log.push(
            &stream,
            "incident.closed",
            r#"{"incident_id": "INC-2026-0042", "note": "postmortem PM-0042 filed"}"#,
            at(16, 0, 0),
        );
        log
    }
}

fn fold(log: &Log) -> Incidents {
    let mut incidents = Incidents::new();
    let mut effects = Effects::default();
    for record in &log.records {
        incidents.apply(record, &mut effects).unwrap();
    }
    assert!(effects.events().is_empty());
    incidents
}

/// Everything the queries return, as one comparable value.
fn snapshot(incidents: &Incidents) -> String {
    serde_json::to_string(&(
        incidents.incidents(&IncidentFilter::default()),
        incidents.orphans(),
        incidents.flags(),
    ))
    .unwrap()
}

fn flush(incidents: &mut Incidents, stored: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut changes = Changes::default();
    incidents.take_changes(&mut changes).unwrap();
    for (key, value) in changes.entries() {
        match value {
            Some(value) => stored.insert(key, value),
            None => stored.remove(&key),
        };
    }
}

fn restored(stored: &BTreeMap<Vec<u8>, Vec<u8>>) -> Incidents {
    let mut incidents = Incidents::new().fresh();
    for (key, value) in stored {
        incidents.restore(key, value).unwrap();
    }
    incidents
}

#[test]
fn an_incident_from_open_to_closed_keeps_timeline_and_response_times() {
    let log = Log::full_incident();
    let incidents = fold(&log);
    let incident = incidents.incident(INC).unwrap();

    assert_eq!(incident.state, IncidentState::Closed);
    assert_eq!(incident.severity, Severity::Sev1);
    assert_eq!(incident.service, "artifact-store");
    assert_eq!(incident.title, "Artifact uploads fail with 503");
    assert_eq!(incident.runbooks, ["https://runbooks.example/artifact-store/503"]);
    assert_eq!(incident.opened.at_ns, ns(at(14, 2, 0)));
    assert_eq!(incident.opened.by.as_deref(), Some("probe-eu-1"));
    let acknowledged = incident.acknowledged.as_ref().unwrap();
    assert_eq!(
        (acknowledged.seq, acknowledged.by.as_deref()),
        (2, Some("oncall-alice"))
    );
    assert_eq!(
        incident.mitigated.as_ref().unwrap().note.as_deref(),
        Some("traffic moved to artifact-store-1")
    );
    assert_eq!(incident.resolved.as_ref().unwrap().seq, 7);
    assert_eq!(incident.closed.as_ref().unwrap().at_ns, ns(at(16, 0, 0)));

    // 14:02:00 → 14:05:30 and 14:02:00 → 14:45:00.
    assert_eq!(incident.time_to_acknowledge_ns, Some(210 * 1_000_000_000));
    assert_eq!(incident.time_to_resolve_ns, Some(43 * 60 * 1_000_000_000));

    let history: Vec<_> = incident
        .severity_history
        .iter()
        .map(|c| (c.seq, c.from, c.to))
        .collect();
    assert_eq!(
        history,
        [(0, None, Severity::Sev2), (3, Some(Severity::Sev2), Severity::Sev1)]
    );
    assert_eq!(
        incident.severity_history[1].reason.as_deref(),
        Some("uploads fail in every region")
    );
    assert_eq!(incident.notes.len(), 1);
    assert_eq!(incident.notes[0].text, "disk full on artifact-store-2; rotating logs");

    // Every related record, in log order, with its hash; the unrelated
    // health check is not in it.
    let timeline: Vec<_> = incident
        .timeline
        .iter()
        .map(|e| (e.seq, e.event_type.as_str()))
        .collect();
    assert_eq!(
        timeline,
        [
            (0, "incident.opened"),
            (2, "incident.acknowledged"),
            (3, "incident.severity_changed"),
            (4, "incident.note_added"),
            (5, "ops.runbook_executed"),
            (6, "incident.mitigated"),
            (7, "incident.resolved"),
            (8, "incident.closed"),
        ]
    );
    for entry in &incident.timeline {
        let record = &log.records[entry.seq as usize];
        assert_eq!(entry.record_hash, hex::encode(record.record_hash));
        assert_eq!(entry.at_ns, record.header.event.occurred_at_ns);
    }
    let summaries: Vec<_> = incident.timeline.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(
        summaries[0],
        "opened by probe-eu-1 SEV2 on artifact-store: Artifact uploads fail with 503"
    );
    assert_eq!(
        summaries[2],
        "severity SEV2 -> SEV1 by oncall-alice: uploads fail in every region"
    );
    assert_eq!(summaries[4], "ops.runbook_executed on service/ops-hub");
    assert!(incident.flags.is_empty(), "{:?}", incident.flags);
    assert!(incidents.flags().is_empty());
}

#[test]
fn response_times_stay_empty_until_reached() {
    let mut log = Log::full_incident();
    log.records.truncate(2);
    let incidents = fold(&log);
    let incident = incidents.incident(INC).unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(
        (incident.time_to_acknowledge_ns, incident.time_to_resolve_ns),
        (None, None)
    );
    assert_eq!(incident.milestone(IncidentState::Open), Some(&incident.opened));
    assert_eq!(incident.milestone(IncidentState::Acknowledged), None);
}

fn opened(log: &mut Log, id: &str, severity: &str, service: &str, time: DateTime<Utc>) {
    let payload = format!(
        r#"{{"incident_id": "{id}", "severity": "{severity}", "title": "probe failing", "service": "{service}"}}"#
    );
    log.push("service/pager", "incident.opened", &payload, time);
}

fn step(log: &mut Log, id: &str, event_type: &str, time: DateTime<Utc>) {
    log.push(
        "service/pager",
        event_type,
        &format!(r#"{{"incident_id": "{id}"}}"#),
        time,
    );
}

fn flag_kinds(incident: &Incident) -> Vec<(u64, FlagKind)> {
    incident.flags.iter().map(|f| (f.seq, f.kind)).collect()
}

#[test]
fn skipping_ahead_is_applied_and_flagged() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0050", "SEV3", "ci-runner", at(9, 0, 0));
    step(&mut log, "INC-2026-0050", "incident.resolved", at(9, 30, 0));
    opened(&mut log, "INC-2026-0051", "SEV4", "ci-runner", at(9, 0, 0));
    step(&mut log, "INC-2026-0051", "incident.acknowledged", at(9, 1, 0));
    step(&mut log, "INC-2026-0051", "incident.closed", at(9, 2, 0));
    let incidents = fold(&log);

    let resolved = incidents.incident("INC-2026-0050").unwrap();
    assert_eq!(resolved.state, IncidentState::Resolved);
    assert_eq!(
        (resolved.acknowledged.as_ref(), resolved.mitigated.as_ref()),
        (None, None)
    );
    assert_eq!(resolved.time_to_acknowledge_ns, None);
    assert_eq!(resolved.time_to_resolve_ns, Some(30 * 60 * 1_000_000_000));
    assert_eq!(flag_kinds(&resolved), [(1, FlagKind::SkippedStates)]);
    assert_eq!(
        resolved.flags[0].message,
        "incident.resolved while open: skipped acknowledged, mitigated"
    );

    // Closed before it was ever resolved.
    let closed = incidents.incident("INC-2026-0051").unwrap();
    assert_eq!(closed.state, IncidentState::Closed);
    assert_eq!((closed.resolved.as_ref(), closed.time_to_resolve_ns), (None, None));
    assert_eq!(flag_kinds(&closed), [(4, FlagKind::SkippedStates)]);
    assert_eq!(
        closed.flags[0].message,
        "incident.closed while acknowledged: skipped mitigated, resolved"
    );
}

#[test]
fn going_backwards_or_repeating_is_flagged_and_not_applied() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0060", "SEV2", "artifact-store", at(10, 0, 0));
    step(&mut log, "INC-2026-0060", "incident.acknowledged", at(10, 1, 0));
    step(&mut log, "INC-2026-0060", "incident.acknowledged", at(10, 2, 0));
    step(&mut log, "INC-2026-0060", "incident.mitigated", at(10, 3, 0));
    step(&mut log, "INC-2026-0060", "incident.resolved", at(10, 4, 0));
    step(&mut log, "INC-2026-0060", "incident.acknowledged", at(10, 5, 0));
    let incidents = fold(&log);
    let incident = incidents.incident("INC-2026-0060").unwrap();

    assert_eq!(incident.state, IncidentState::Resolved);
    assert_eq!(
        incident.acknowledged.as_ref().unwrap().seq,
        1,
        "the first acknowledgement stands"
    );
    assert_eq!(incident.time_to_acknowledge_ns, Some(60_000_000_000));
    assert_eq!(
        flag_kinds(&incident),
        [(2, FlagKind::Repeated), (5, FlagKind::Backwards)]
    );
    assert_eq!(
        incident.flags[1].message,
        "incident.acknowledged while resolved: state stays resolved"
    );
    // Flagged records are still part of the story.
    assert_eq!(incident.timeline.len(), 6);
}

#[test]
fn a_state_change_dated_before_the_previous_one_is_flagged_and_applied() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0070", "SEV2", "registry", at(11, 0, 0));
    step(&mut log, "INC-2026-0070", "incident.acknowledged", at(11, 5, 0));
    // A producer with a skewed clock, or a late report.
    step(&mut log, "INC-2026-0070", "incident.mitigated", at(11, 3, 30));
    let incidents = fold(&log);
    let incident = incidents.incident("INC-2026-0070").unwrap();

    assert_eq!(incident.state, IncidentState::Mitigated);
    assert_eq!(flag_kinds(&incident), [(2, FlagKind::TimeBeforePrevious)]);
    assert_eq!(
        incident.flags[0].message,
        "incident.mitigated occurred 90000 ms before the previous state change (acknowledged at seq 1); applied"
    );
}

#[test]
fn a_second_open_is_flagged_and_ignored() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0080", "SEV3", "registry", at(12, 0, 0));
    opened(&mut log, "INC-2026-0080", "SEV1", "artifact-store", at(12, 1, 0));
    let incidents = fold(&log);
    let incident = incidents.incident("INC-2026-0080").unwrap();

    assert_eq!(
        (incident.severity, incident.service.as_str()),
        (Severity::Sev3, "registry")
    );
    assert_eq!(incident.opened.seq, 0);
    assert_eq!(flag_kinds(&incident), [(1, FlagKind::DuplicateOpen)]);
    assert_eq!(incident.timeline.len(), 2);
}

#[test]
fn events_for_an_unopened_incident_are_orphans_until_it_opens() {
    let mut log = Log::default();
    step(&mut log, "INC-2026-0099", "incident.acknowledged", at(13, 0, 0));
    log.push(
        "service/pager",
        "incident.note_added",
        r#"{"incident_id": "INC-2026-0099", "text": "paged before the incident was filed"}"#,
        at(13, 0, 30),
    );
    let incidents = fold(&log);
    assert_eq!(incidents.incident("INC-2026-0099"), None);
    let orphans = incidents.orphans();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].timeline.len(), 2);
    let flags = incidents.flags();
    assert_eq!(flags.len(), 2);
    assert_eq!(
        (flags[0].incident_id.as_str(), flags[0].opened, flags[0].kind),
        ("INC-2026-0099", false, FlagKind::UnknownIncident)
    );
    assert_eq!(
        flags[0].message,
        "incident.acknowledged for INC-2026-0099, which was never opened: not applied"
    );

    // Once opened, the earlier records and their flags move to the incident,
    // whose state starts at open: the early acknowledgement is not applied.
    opened(&mut log, "INC-2026-0099", "SEV2", "artifact-store", at(13, 1, 0));
    let incidents = fold(&log);
    assert!(incidents.orphans().is_empty());
    let incident = incidents.incident("INC-2026-0099").unwrap();
    assert_eq!(incident.state, IncidentState::Open);
    assert_eq!(incident.timeline.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        flag_kinds(&incident),
        [(0, FlagKind::UnknownIncident), (1, FlagKind::UnknownIncident)]
    );
    assert!(incidents.flags().iter().all(|flag| flag.opened));
}

#[test]
fn malformed_records_fault_naming_the_field_and_change_nothing() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "incident/INC-2026-0042",
            "incident.acknowledged",
            "not json",
            "payload: not valid JSON",
        ),
        (
            "incident/INC-2026-0042",
            "incident.acknowledged",
            "[1, 2]",
            "payload: expected a JSON object, got an array",
        ),
        (
            "service/pager",
            "incident.opened",
            r#"{"incident_id": "INC-2026-0043", "severity": "SEV2", "service": "registry"}"#,
            "title: missing",
        ),
        (
            "service/pager",
            "incident.opened",
            r#"{"incident_id": "INC-2026-0043", "severity": "SEV5", "title": "t", "service": "registry"}"#,
            r#"severity: unknown severity "SEV5" (expected SEV1, SEV2, SEV3 or SEV4)"#,
        ),
        (
            "service/pager",
            "incident.opened",
            r#"{"incident_id": "INC-2026-0043", "severity": 2, "title": "t", "service": "registry"}"#,
            "severity: expected a string, got a number",
        ),
        (
            "service/pager",
            "incident.opened",
            r#"{"incident_id": "INC-2026-0043", "severity": "SEV2", "title": "t", "service": " "}"#,
            "service: must not be empty",
        ),
        (
            "service/pager",
            "incident.opened",
            r#"{"incident_id": "INC-2026-0043", "severity": "SEV2", "title": "t", "service": "s", "runbooks": ["https://r", 7]}"#,
            "runbooks[1]: expected a string, got a number",
        ),
        (
            "service/pager",
            "incident.opened",
            r#"{"incident_id": "INC-2026-0043", "severity": "SEV2", "title": "t", "service": "s", "runbooks": "https://r"}"#,
            "runbooks: expected an array of strings, got a string",
        ),
        (
            "service/pager",
            "incident.acknowledged",
            r#"{"by": "alice"}"#,
            "incident_id: missing",
        ),
        (
            "service/pager",
            "incident.acknowledged",
            r#"{"incident_id": "INC 42"}"#,
            r#"incident_id: "INC 42" (from the payload field incident_id) is not an incident id"#,
        ),
        (
            "incident/INC-2026-0041",
            "incident.acknowledged",
            r#"{"incident_id": "INC-2026-0042"}"#,
            r#"incident_id: payload field incident_id says "INC-2026-0042" but stream says "INC-2026-0041""#,
        ),
        (
            "incident/INC-2026-0042",
            "incident.acknowledged",
            r#"{"by": 7}"#,
            "by: expected a string, got a number",
        ),
        (
            "incident/INC-2026-0042",
            "incident.note_added",
            r#"{"text": ""}"#,
            "text: must not be empty",
        ),
        (
            "incident/INC-2026-0042",
            "incident.severity_changed",
            r#"{"reason": "r"}"#,
            "to: missing",
        ),
        (
            "incident/INC-2026-0042",
            "incident.escalated",
            r#"{}"#,
            r#"event_type: "incident.escalated" is not an incident event type"#,
        ),
    ];
    let mut log = Log::full_incident();
    log.records.truncate(4);
    let mut incidents = fold(&log);
    let mut stored = BTreeMap::new();
    flush(&mut incidents, &mut stored);
    let before = snapshot(&incidents);

    for (n, (stream, event_type, payload, expected)) in cases.iter().enumerate() {
        let bad = record(100 + n as u64, stream, event_type, payload, at(15, 0, 0));
        let fault = incidents.apply(&bad, &mut Effects::default()).unwrap_err();
        assert!(fault.0.starts_with(expected), "{event_type} {payload}: {fault}");
        assert_eq!(snapshot(&incidents), before, "{event_type} {payload} changed the state");
        let mut changes = Changes::default();
        incidents.take_changes(&mut changes).unwrap();
        assert!(changes.is_empty(), "{event_type} {payload} dirtied a row");
    }
}

#[test]
fn the_incident_id_may_come_from_metadata_or_stream_alone() {
    let mut log = Log::default();
    log.push(
        "incident/INC-2026-0100",
        "incident.opened",
        r#"{"severity": "SEV4", "title": "stale cache", "service": "docs-site"}"#,
        at(8, 0, 0),
    );
    log.push_with_metadata(
        "service/pager",
        "incident.acknowledged",
        "{}",
        at(8, 1, 0),
        &[("incident_id", "INC-2026-0100")],
    );
    let incidents = fold(&log);
    let incident = incidents.incident("INC-2026-0100").unwrap();
    assert_eq!(incident.state, IncidentState::Acknowledged);
    assert_eq!(incident.timeline.len(), 2);
}

#[test]
fn filters_pick_by_state_severity_service_and_activity() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0001", "SEV1", "artifact-store", at(1, 0, 0));
    opened(&mut log, "INC-2026-0002", "SEV2", "artifact-store", at(2, 0, 0));
    step(&mut log, "INC-2026-0002", "incident.acknowledged", at(2, 5, 0));
    opened(&mut log, "INC-2026-0003", "SEV2", "registry", at(3, 0, 0));
    step(&mut log, "INC-2026-0003", "incident.resolved", at(3, 5, 0));
    let incidents = fold(&log);
    let ids =
        |filter: IncidentFilter| -> Vec<String> { incidents.incidents(&filter).iter().map(|i| i.id.clone()).collect() };

    assert_eq!(
        ids(IncidentFilter::default()),
        ["INC-2026-0001", "INC-2026-0002", "INC-2026-0003"]
    );
    assert_eq!(
        ids(IncidentFilter {
            open_only: true,
            ..Default::default()
        }),
        ["INC-2026-0001", "INC-2026-0002"]
    );
    assert_eq!(
        ids(IncidentFilter {
            severity: Some(Severity::Sev2),
            ..Default::default()
        }),
        ["INC-2026-0002", "INC-2026-0003"]
    );
    assert_eq!(
        ids(IncidentFilter {
            service: Some("artifact-store".into()),
            state: Some(IncidentState::Acknowledged),
            ..Default::default()
        }),
        ["INC-2026-0002"]
    );
    assert_eq!(
        ids(IncidentFilter {
            service: Some("registry".into()),
            open_only: true,
            ..Default::default()
        }),
        Vec::<String>::new()
    );
}

#[test]
fn flags_are_listed_across_incidents_in_log_order() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0002", "SEV2", "registry", at(1, 0, 0));
    opened(&mut log, "INC-2026-0001", "SEV2", "registry", at(1, 0, 0));
    step(&mut log, "INC-2026-0002", "incident.closed", at(1, 1, 0));
    step(&mut log, "INC-2026-0003", "incident.resolved", at(1, 2, 0));
    step(&mut log, "INC-2026-0001", "incident.mitigated", at(1, 3, 0));
    let flags = fold(&log).flags();
    let listed: Vec<_> = flags.iter().map(|f| (f.seq, f.incident_id.as_str(), f.kind)).collect();
    assert_eq!(
        listed,
        [
            (2, "INC-2026-0002", FlagKind::SkippedStates),
            (3, "INC-2026-0003", FlagKind::UnknownIncident),
            (4, "INC-2026-0001", FlagKind::SkippedStates),
        ]
    );
}

#[test]
fn records_of_other_types_are_ignored_unless_they_name_an_open_incident() {
    let mut log = Log::default();
    log.push(
        "service/ops-hub",
        "ops.backup_verified",
        r#"{"backup": "nightly"}"#,
        at(1, 0, 0),
    );
    log.push_with_metadata(
        "service/ops-hub",
        "ops.drift_detected",
        "{}",
        at(1, 1, 0),
        &[("incident_id", "INC-2026-0404")],
    );
    log.push("incident/INC-2026-0404", "ops.risk_raised", "{}", at(1, 2, 0));
    let mut incidents = fold(&log);
    let mut changes = Changes::default();
    incidents.take_changes(&mut changes).unwrap();
    assert!(changes.is_empty());
    assert!(incidents.flags().is_empty());
}

#[test]
fn restore_after_incremental_flushes_gives_the_same_answers() {
    let mut log = Log::full_incident();
    opened(&mut log, "INC-2026-0043", "SEV3", "registry", at(17, 0, 0));
    step(&mut log, "INC-2026-0043", "incident.closed", at(17, 5, 0));
    step(&mut log, "INC-2026-0044", "incident.acknowledged", at(17, 6, 0));
    step(&mut log, "INC-2026-0045", "incident.acknowledged", at(17, 7, 0));
    opened(&mut log, "INC-2026-0045", "SEV1", "ci-runner", at(17, 8, 0));
    let whole = fold(&log);

    // Flush midway (one orphan still pending, later adopted and deleted),
    // then at the end; apply both change sets in order.
    let mut incremental = Incidents::new();
    let mut stored = BTreeMap::new();
    let mut effects = Effects::default();
    for (n, record) in log.records.iter().enumerate() {
        incremental.apply(record, &mut effects).unwrap();
        if n == 5 || n == 12 {
            flush(&mut incremental, &mut stored);
        }
    }
    flush(&mut incremental, &mut stored);
    let from_store = restored(&stored);
    assert_eq!(snapshot(&from_store), snapshot(&whole));
    assert_eq!(from_store.incident(INC), whole.incident(INC));

    // The stored bytes are those of a single flush of a full replay.
    let mut replayed = fold(&log);
    let mut once = BTreeMap::new();
    flush(&mut replayed, &mut once);
    assert_eq!(stored, once);

    // A restored instance folds on exactly like one that never stopped.
    let mut resumed = Incidents::new();
    let mut stored = BTreeMap::new();
    for record in &log.records[..10] {
        resumed.apply(record, &mut effects).unwrap();
    }
    flush(&mut resumed, &mut stored);
    let mut resumed = restored(&stored);
    for record in &log.records[10..] {
        resumed.apply(record, &mut effects).unwrap();
    }
    assert_eq!(snapshot(&resumed), snapshot(&whole));
}

#[test]
fn a_stored_key_of_no_table_is_a_fault() {
    let mut incidents = Incidents::new();
    let fault = incidents.restore(b"elsewhere\0x", b"{}").unwrap_err();
    assert!(fault.0.contains("belongs to no table"), "{fault}");
}

#[test]
fn long_notes_are_shortened_in_the_timeline_but_kept_in_full() {
    let mut log = Log::default();
    opened(&mut log, "INC-2026-0200", "SEV3", "registry", at(1, 0, 0));
    let text = "line one\n".to_string() + &"x".repeat(300);
    let payload = serde_json::json!({"incident_id": "INC-2026-0200", "text": text}).to_string();
    log.push("service/pager", "incident.note_added", &payload, at(1, 1, 0));
    let incidents = fold(&log);
    let incident = incidents.incident("INC-2026-0200").unwrap();
    assert_eq!(incident.notes[0].text, text);
    let summary = &incident.timeline[1].summary;
    assert!(summary.starts_with("note: line one x"), "{summary}");
    assert_eq!(summary.chars().count(), SUMMARY_CHARS + 1);
    assert!(summary.ends_with('…'));
}
