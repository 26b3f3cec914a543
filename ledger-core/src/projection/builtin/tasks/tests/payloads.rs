//! Records the fold must refuse (faults naming the field, state untouched),
//! ignore, or treat as repeats; unknown ids; partial updates.

use super::*;

#[test]
fn malformed_payloads_fault_naming_the_field_and_change_nothing() {
    let mut log = small_plan();
    let hash = "ab".repeat(32);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("task.created", json!({"workstream": WS, "title": "x"}), "id: missing"),
        (
            "task.created",
            json!({"id": "CUST WP 0051", "workstream": WS, "title": "x"}),
            "id: \"CUST WP 0051\" is not an id",
        ),
        (
            "task.created",
            json!({"id": 7, "workstream": WS, "title": "x"}),
            "id: invalid type",
        ),
        (
            "task.created",
            json!({"id": "a/b", "workstream": WS, "title": "x"}),
            "id: \"a/b\" is not an id",
        ),
        ("task.created", json!({"id": T03, "title": "x"}), "workstream: missing"),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "  "}),
            "title: must not be blank",
        ),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "x", "status": "finished"}),
            "status: unknown variant",
        ),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "x", "priority": "P5"}),
            "priority: unknown variant",
        ),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "x", "priority": 1}),
            "priority: invalid type",
        ),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "x", "priorty": "P0"}),
            "priorty: unknown field",
        ),
        (
            "task.created",
            json!({"id": T03, "workstream": WS, "title": "x", "owner": ""}),
            "owner: must not be blank",
        ),
        (
            "task.created",
            json!({"id": T01, "workstream": WS, "title": "again"}),
            "id: task CUST-WP-0051-T01 already exists",
        ),
        ("task.status_changed", json!({"id": T01}), "to: missing"),
        (
            "task.status_changed",
            json!({"id": T01, "to": "doing"}),
            "to: unknown variant",
        ),
        (
            "task.status_changed",
            json!({"id": "CUST-WP-0051-T99", "to": "done"}),
            "id: unknown task",
        ),
        (
            "task.updated",
            json!({"id": T01}),
            "payload: task.updated changes nothing",
        ),
        (
            "task.updated",
            json!({"id": T01, "title": null}),
            "payload: task.updated changes nothing",
        ),
        (
            "task.updated",
            json!({"id": T01, "owner": " "}),
            "owner: must not be blank",
        ),
        (
            "task.updated",
            json!({"id": "CUST-WP-0051-T99", "priority": "P0"}),
            "id: unknown task",
        ),
        (
            "task.note_added",
            json!({"id": T01, "text": ""}),
            "text: must not be blank",
        ),
        (
            "task.note_added",
            json!({"id": T01, "text": ["a"]}),
            "text: invalid type",
        ),
        (
            "task.flagged",
            json!({"id": T01, "needs_human": "yes"}),
            "needs_human: invalid type",
        ),
        ("task.flagged", json!({"id": T01}), "needs_human: missing"),
        ("task.evidence_linked", json!({"id": T01}), "evidence: missing"),
        (
            "task.evidence_linked",
            json!({"id": T01, "evidence": {"sha": hash}}),
            "evidence: unknown variant",
        ),
        (
            "task.evidence_linked",
            json!({"id": T01, "evidence": "seq 12"}),
            "evidence: unknown variant",
        ),
        (
            "task.evidence_linked",
            json!({"id": T01, "evidence": {"record_hash": "abc"}}),
            "evidence.record_hash:",
        ),
        (
            "task.evidence_linked",
            json!({"id": T01, "evidence": {"event_id": "not-a-uuid"}}),
            "evidence.event_id:",
        ),
        (
            "task.evidence_linked",
            json!({"id": T01, "evidence": {"seq": 100_000}}),
            "evidence.seq: 100000 is not before",
        ),
        (
            "task.evidence_linked",
            json!({"id": T01, "evidence": {"seq": -1}}),
            "evidence: invalid value",
        ),
        (
            "task.evidence_linked",
            json!({"id": "CUST-WP-0051-T99", "evidence": {"seq": 1}}),
            "id: unknown task",
        ),
        ("task.deleted", json!({"id": T01}), "event_type: \"task.deleted\""),
        (
            "workstream.created",
            json!({"id": WS, "title": "again"}),
            "id: workstream CUST-WP-0051 already exists (created at seq 40)",
        ),
        ("workstream.created", json!({"id": "CUST-WP-0052"}), "title: missing"),
        (
            "workstream.status_changed",
            json!({"id": WS, "to": "closed"}),
            "to: unknown variant",
        ),
        (
            "workstream.status_changed",
            json!({"id": "CUST-WP-0099", "to": "done"}),
            "id: unknown workstream",
        ),
        ("workstream.archived", json!({"id": WS}), "event_type:"),
    ];
    for (event_type, payload, expected) in cases {
        let before = format!("{:?}", log.tasks);
        let (seq, result) = log.push(event_type, payload.clone());
        let fault = result.expect_err(&format!("{event_type} {payload} should fault"));
        assert!(fault.0.starts_with(expected), "{event_type} {payload}: {fault}");
        assert_eq!(
            format!("{:?}", log.tasks),
            before,
            "{event_type} at seq {seq} changed the state"
        );
    }

    // Payloads that are not JSON objects at all.
    for raw in ["not json", "[1, 2]", "", "null"] {
        let before = format!("{:?}", log.tasks);
        let seq = log.next_seq;
        log.next_seq += 1;
        let record = record(seq, "task/x", "task.note_added", raw, Log::at(seq));
        let fault = log.tasks.apply(&record, &mut Effects::default()).expect_err(raw);
        assert!(fault.0.starts_with("payload: not a JSON object"), "{raw:?}: {fault}");
        assert_eq!(format!("{:?}", log.tasks), before);
    }
}

#[test]
fn records_of_other_namespaces_are_ignored() {
    let mut log = small_plan();
    take(&mut log.tasks);
    for event_type in [
        "ops.backup_verified",
        "taskforce.created",
        "tasks.created",
        "incident.opened",
        "task",
    ] {
        log.ok(event_type, json!({"id": T01, "to": "done"}));
    }
    assert!(take(&mut log.tasks).is_empty());
}

#[test]
fn a_task_may_name_its_workstream_before_it_is_declared() {
    let mut log = Log::new();
    let first = log.create_task(T01, "Register buckets", json!({}));
    let ws = log.tasks.workstream(WS).expect("implied");
    assert_eq!(
        (ws.title.as_ref(), ws.declared.as_ref(), ws.created_seq),
        (None, None, first)
    );
    assert_eq!(log.summary(), "1 backlog");
    log.ok("workstream.status_changed", json!({"id": WS, "to": "active"}));

    // The declaration fills it in and keeps its tasks and status.
    let declared = log.ok(
        "workstream.created",
        json!({"id": WS, "title": "artifact-store restore drill", "owner": "platform-team"}),
    );
    let ws = log.tasks.workstream(WS).expect("declared");
    assert_eq!(ws.title.as_deref(), Some("artifact-store restore drill"));
    assert_eq!(ws.declared.as_ref().map(|r| r.seq), Some(declared));
    assert_eq!(ws.status, WorkstreamStatus::Active);
    assert_eq!(ws.tasks.iter().collect::<Vec<_>>(), [T01]);

    // Only once: a second declaration is a fault.
    let (_, result) = log.push("workstream.created", json!({"id": WS, "title": "again"}));
    assert!(result.is_err());
}

#[test]
fn repeats_change_nothing() {
    let mut log = small_plan();
    let runbook = log.ok("ops.runbook_executed", json!({"runbook": "inventory-sweep"}));
    log.ok(
        "task.evidence_linked",
        json!({"id": T01, "evidence": {"seq": runbook}, "description": "first"}),
    );
    take(&mut log.tasks);

    log.status(T01, "todo");
    log.ok(
        "task.evidence_linked",
        json!({"id": T01, "evidence": {"seq": runbook}, "description": "second"}),
    );
    log.ok("workstream.status_changed", json!({"id": WS, "to": "open"}));
    assert!(take(&mut log.tasks).is_empty());
    let t01 = log.tasks.task(T01).expect("created");
    assert_eq!((t01.history.len(), t01.evidence.len()), (0, 1));
    assert_eq!(t01.evidence[0].description.as_deref(), Some("first"));
}

#[test]
fn task_updated_changes_only_the_named_fields() {
    let mut log = small_plan();
    log.ok(
        "task.updated",
        json!({"id": T02, "owner": "carol", "priority": "P0", "done_when": "three clean runs"}),
    );
    let update = log.ok(
        "task.updated",
        json!({"id": T02, "owner": null, "title": "Verify nightly and weekly backups"}),
    );
    let t02 = log.tasks.task(T02).expect("created");
    assert_eq!(t02.owner, None);
    assert_eq!(t02.priority, Priority::P0);
    assert_eq!(t02.done_when.as_deref(), Some("three clean runs"));
    assert_eq!(t02.title, "Verify nightly and weekly backups");
    assert_eq!(t02.updated_seq, update);
}
