//! The workplan itself: the transition table, a realistic scenario, the
//! anomaly rules, rollups and task queries.

use super::*;

#[test]
fn transition_table_is_the_documented_one() {
    use TaskStatus::*;
    let allowed = [
        (Backlog, vec![Todo, Progress, Cancel]),
        (Todo, vec![Backlog, Progress, Wait, Done, Cancel]),
        (Progress, vec![Todo, Wait, Done, Cancel]),
        (Wait, vec![Todo, Progress, Done, Cancel]),
        (Done, vec![]),
        (Cancel, vec![]),
    ];
    for (from, to) in allowed {
        for target in TaskStatus::ALL {
            assert_eq!(from.can_move_to(target), to.contains(&target), "{from} -> {target}");
        }
    }
}

#[test]
fn a_workplan_folds_into_tasks_rollups_and_anomalies() {
    let mut log = Log::new();
    log.ok(
        "workstream.created",
        json!({"id": WS, "title": "artifact-store: verified backups and a tested restore", "owner": "platform-team"}),
    );
    log.create_task(
        T01,
        "Register artifact-store buckets in the ops inventory",
        json!({"status": "todo", "priority": "P1", "owner": "alice", "done_when": "all 14 buckets listed in the ops inventory"}),
    );
    log.create_task(
        T02,
        "Verify nightly backup of artifact-store",
        json!({"priority": "P0", "owner": "bob", "done_when": "three clean scheduled backup runs"}),
    );
    log.create_task(T03, "Restore test on staging", json!({"priority": "P1"}));
    log.create_task(
        T04,
        "Update the artifact-store restore runbook",
        json!({"priority": "P3"}),
    );
    log.create_task(T05, "Decommission the old NFS backup target", json!({"status": "todo"}));
    assert_eq!(log.summary(), "2 todo, 3 backlog");
    let t04 = log.tasks.task(T04).expect("created");
    assert_eq!(
        (t04.status, t04.priority, t04.owner.as_deref()),
        (TaskStatus::Backlog, Priority::P3, None)
    );

    // T01 goes through cleanly: progress, a note, evidence, done.
    log.ok(
        "task.status_changed",
        json!({"id": T01, "to": "progress", "reason": "started the inventory sweep"}),
    );
    let note = log.ok(
        "task.note_added",
        json!({"id": T01, "text": "12 of 14 buckets registered; 2 need owner tags", "author": "alice"}),
    );
    let inventory = log.ok(
        "ops.inventory_registered",
        json!({"service": "artifact-store", "buckets": 14, "workplan": WS}),
    );
    log.ok(
        "task.evidence_linked",
        json!({"id": T01, "evidence": {"seq": inventory}, "description": "inventory lists all 14 buckets"}),
    );
    let t01_done = log.status(T01, "done");
    assert_eq!(log.anomalies(), []);
    let t01 = log.tasks.task(T01).expect("created");
    assert_eq!(t01.status, TaskStatus::Done);
    assert_eq!(t01.status_since_ns, crate::event::timestamp_ns(Log::at(t01_done)));
    assert_eq!(t01.history.len(), 2);
    assert!(t01.history.iter().all(|change| change.legal));
    assert_eq!(t01.history[0].reason.as_deref(), Some("started the inventory sweep"));
    assert_eq!(t01.evidence[0].evidence, Evidence::Seq(inventory));
    assert_eq!(t01.n_notes, 1);
    let notes = log.tasks.notes(T01);
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].at.seq, notes[0].author.as_deref()), (note, Some("alice")));
    assert_eq!(notes[0].at.record_hash, hex::encode(log.record(note).record_hash));
    assert_eq!(notes[0].at.at_ns, crate::event::timestamp_ns(Log::at(note)));

    // T02 gets stuck on a human.
    log.status(T02, "todo");
    log.status(T02, "progress");
    let flagged = log.ok(
        "task.flagged",
        json!({"id": T02, "needs_human": true, "reason": "backup credentials expired; rotate them in vault"}),
    );
    log.ok(
        "task.status_changed",
        json!({"id": T02, "to": "wait", "reason": "waiting for credential rotation"}),
    );
    assert_eq!(log.summary(), "1 wait, 1 todo, 2 backlog, 1 done");
    let waiting = log.tasks.tasks(&TaskFilter {
        needs_human: Some(true),
        ..TaskFilter::default()
    });
    assert_eq!(waiting.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [T02]);
    assert_eq!(waiting[0].needs_human_since.as_ref().map(|r| r.seq), Some(flagged));
    let alices = log.tasks.tasks(&TaskFilter {
        owner: Some("alice".into()),
        ..TaskFilter::default()
    });
    assert_eq!(alices.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [T01]);

    // T03 is declared done straight from the backlog, without evidence.
    let t03_done = log.ok(
        "task.status_changed",
        json!({"id": T03, "to": "done", "reason": "restored fine yesterday"}),
    );
    log.status(T05, "cancel");
    assert_eq!(
        log.anomalies(),
        [
            (AnomalyKind::IllegalTransition, T03.to_string(), t03_done),
            (AnomalyKind::DoneWithoutEvidence, T03.to_string(), t03_done),
        ]
    );
    let illegal = log.tasks.anomalies(&AnomalyFilter {
        kind: Some(AnomalyKind::IllegalTransition),
        ..AnomalyFilter::default()
    })[0]
        .clone()
        .into_owned();
    assert_eq!(
        illegal.transition,
        Some(Transition {
            from: TaskStatus::Backlog,
            to: TaskStatus::Done
        })
    );
    assert_eq!(
        log.tasks.task(T03).map(|t| t.status),
        Some(TaskStatus::Done),
        "applied: the log is the truth"
    );

    // The workplan is declared finished while T02 waits and T04 sits in the
    // backlog.
    let ws_done = log.ok(
        "workstream.status_changed",
        json!({"id": WS, "to": "finished", "reason": "drill complete"}),
    );
    let ws = log.tasks.workstream(WS).expect("declared");
    assert_eq!(ws.status, WorkstreamStatus::Done);
    assert_eq!(ws.history[0].reason.as_deref(), Some("drill complete"));
    let contradiction = log.tasks.anomalies(&AnomalyFilter {
        subject: Some(WS.into()),
        ..AnomalyFilter::default()
    })[0]
        .clone()
        .into_owned();
    assert_eq!(contradiction.kind, AnomalyKind::WorkstreamDoneWithOpenTasks);
    assert_eq!(contradiction.revealed_by.seq, ws_done);
    assert_eq!(contradiction.open_tasks, [T02, T04]);
    assert_eq!(
        contradiction.message,
        format!("workstream {WS} is done but 2 of its 5 tasks are open: {T02} wait, {T04} backlog")
    );

    // T02 is finished with evidence, but its flag is left on.
    let backup = log.ok(
        "ops.backup_verified",
        json!({"service": "artifact-store", "runs": 3, "last_run": "2026-03-02T02:00:00Z"}),
    );
    log.status(T02, "progress");
    let backup_hash = hex::encode(log.record(backup).record_hash);
    log.ok(
        "task.evidence_linked",
        json!({"id": T02, "evidence": {"record_hash": backup_hash}}),
    );
    let t02_done = log.status(T02, "done");
    assert_eq!(
        log.anomalies(),
        [
            (AnomalyKind::IllegalTransition, T03.to_string(), t03_done),
            (AnomalyKind::DoneWithoutEvidence, T03.to_string(), t03_done),
            (AnomalyKind::WorkstreamDoneWithOpenTasks, WS.to_string(), ws_done),
            (AnomalyKind::NeedsHumanOnClosedTask, T02.to_string(), t02_done),
        ]
    );
    let still_open = log.tasks.anomalies(&AnomalyFilter {
        kind: Some(AnomalyKind::WorkstreamDoneWithOpenTasks),
        ..AnomalyFilter::default()
    })[0]
        .clone()
        .into_owned();
    assert_eq!(still_open.open_tasks, [T04], "details follow the tasks");
    assert_eq!(
        still_open.revealed_by, contradiction.revealed_by,
        "first revealing record kept"
    );

    // Fixing each problem resolves its anomaly; the illegal transition stays.
    log.ok(
        "task.flagged",
        json!({"id": T02, "needs_human": false, "reason": "credentials rotated"}),
    );
    let t02 = log.tasks.task(T02).expect("created");
    assert_eq!((t02.needs_human, t02.needs_human_since.as_ref()), (false, None));
    let restore = log.ok(
        "ops.restore_tested",
        json!({"service": "artifact-store", "environment": "staging", "backup": "2026-03-01"}),
    );
    let restore_id = log.record(restore).event_id().to_string();
    log.ok(
        "task.evidence_linked",
        json!({"id": T03, "evidence": {"event_id": restore_id.to_uppercase()}, "description": "staging restore"}),
    );
    assert_eq!(
        log.tasks.task(T03).expect("created").evidence[0].evidence,
        Evidence::EventId(restore_id)
    );
    log.status(T04, "todo");
    log.status(T04, "progress");
    let runbook = log.ok(
        "ops.runbook_executed",
        json!({"runbook": "https://runbooks.example/artifact-store/restore", "result": "ok"}),
    );
    log.ok("task.evidence_linked", json!({"id": T04, "evidence": {"seq": runbook}}));
    log.status(T04, "done");
    assert_eq!(
        log.anomalies(),
        [(AnomalyKind::IllegalTransition, T03.to_string(), t03_done)]
    );
    assert_eq!(log.summary(), "4 done, 1 cancel");

    let listed = log.tasks.workstreams();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].rollup.counts.done, 4);
    assert_eq!(listed[0].rollup.total, 5);
    assert_eq!(listed[0].n_anomalies, 1);
    assert_eq!(listed[0].workstream.owner.as_deref(), Some("platform-team"));
}

#[test]
fn illegal_transitions_are_applied_recorded_and_stay() {
    let mut log = small_plan();
    let runbook = log.ok(
        "ops.runbook_executed",
        json!({"runbook": "inventory-sweep", "result": "ok"}),
    );
    log.ok("task.evidence_linked", json!({"id": T01, "evidence": {"seq": runbook}}));
    log.status(T01, "done");
    let reopened = log.ok(
        "task.status_changed",
        json!({"id": T01, "to": "progress", "reason": "two buckets missed"}),
    );
    let t01 = log.tasks.task(T01).expect("created");
    assert_eq!(t01.status, TaskStatus::Progress);
    assert!(!t01.history[1].legal);
    let anomaly = log.tasks.anomalies(&AnomalyFilter::default())[0].clone();
    assert_eq!(
        anomaly.message,
        format!("task {T01} went from done to progress, which the transition table does not allow (done is final)")
    );
    assert_eq!(anomaly.workstream, WS);

    // Moving on legally does not erase it; a second illegal move adds one.
    log.status(T01, "done");
    let wait = log.status(T02, "wait");
    let anomalies = log.anomalies();
    assert_eq!(
        anomalies,
        [
            (AnomalyKind::IllegalTransition, T01.to_string(), reopened),
            (AnomalyKind::IllegalTransition, T02.to_string(), wait),
        ]
    );
    let second = log.tasks.anomalies(&AnomalyFilter {
        subject: Some(T02.into()),
        ..AnomalyFilter::default()
    })[0]
        .clone()
        .into_owned();
    assert!(
        second
            .message
            .ends_with("(backlog may only go to todo, progress, cancel)"),
        "{}",
        second.message
    );
}

#[test]
fn current_anomalies_follow_their_subject() {
    let mut log = small_plan();
    // A task created done reveals a missing-evidence anomaly at once.
    let created_done = log.create_task(T03, "Restore test on staging", json!({"status": "done"}));
    assert_eq!(
        log.anomalies(),
        [(AnomalyKind::DoneWithoutEvidence, T03.to_string(), created_done)]
    );

    // Flagging a closed task is a stale flag from the start.
    let flag = log.ok(
        "task.flagged",
        json!({"id": T03, "needs_human": true, "reason": "confirm with customer"}),
    );
    assert!(
        log.anomalies()
            .contains(&(AnomalyKind::NeedsHumanOnClosedTask, T03.to_string(), flag))
    );

    // Re-flagging keeps the original date and the original revealing record.
    log.ok(
        "task.flagged",
        json!({"id": T03, "needs_human": true, "reason": "customer unreachable"}),
    );
    let t03 = log.tasks.task(T03).expect("created");
    assert_eq!(t03.needs_human_since.as_ref().map(|r| r.seq), Some(flag));
    assert_eq!(t03.needs_human_reason.as_deref(), Some("customer unreachable"));
    let stale = log.tasks.anomalies(&AnomalyFilter {
        kind: Some(AnomalyKind::NeedsHumanOnClosedTask),
        ..AnomalyFilter::default()
    })[0]
        .clone()
        .into_owned();
    assert_eq!(stale.revealed_by.seq, flag);
    assert!(stale.message.ends_with("(customer unreachable)"), "{}", stale.message);

    // Reopening the task (illegal) ends both current anomalies.
    let reopen = log.status(T03, "progress");
    assert_eq!(
        log.anomalies(),
        [(AnomalyKind::IllegalTransition, T03.to_string(), reopen)]
    );

    // A done workstream gains the anomaly when a task is added to it, and
    // loses it when it is reopened.
    log.status(T01, "cancel");
    log.status(T02, "cancel");
    log.status(T03, "cancel");
    log.ok("task.flagged", json!({"id": T03, "needs_human": false}));
    log.ok("workstream.status_changed", json!({"id": WS, "to": "done"}));
    assert_eq!(log.anomalies().len(), 1, "all tasks closed: no contradiction");
    let added = log.create_task(T04, "Update the restore runbook", json!({}));
    assert!(
        log.anomalies()
            .contains(&(AnomalyKind::WorkstreamDoneWithOpenTasks, WS.to_string(), added))
    );
    log.ok(
        "workstream.status_changed",
        json!({"id": WS, "to": "active", "reason": "runbook still to do"}),
    );
    assert_eq!(log.anomalies().len(), 1);
}

#[test]
fn the_contradiction_message_names_at_most_five_tasks() {
    let mut log = Log::new();
    log.ok(
        "workstream.created",
        json!({"id": WS, "title": "Seven todo tasks", "status": "done"}),
    );
    for n in 1..=7 {
        log.create_task(&format!("{WS}-T0{n}"), "Migrate a bucket", json!({"status": "todo"}));
    }
    let anomaly = log.tasks.anomalies(&AnomalyFilter::default())[0].clone().into_owned();
    assert_eq!(anomaly.open_tasks.len(), 7);
    assert!(
        anomaly.message.ends_with(&format!("{WS}-T05 todo, and 2 more")),
        "{}",
        anomaly.message
    );
}

#[test]
fn task_queries_filter_by_every_field() {
    let mut log = small_plan();
    log.ok(
        "task.created",
        json!({"id": "ARTIFACT-STORE-WP-0007-T01", "workstream": "ARTIFACT-STORE-WP-0007", "title": "Rotate keys", "owner": "alice"}),
    );
    log.status(T02, "todo");
    let ids = |filter: TaskFilter| -> Vec<String> { log.tasks.tasks(&filter).iter().map(|t| t.id.clone()).collect() };
    assert_eq!(ids(TaskFilter::default()).len(), 3);
    assert_eq!(
        ids(TaskFilter {
            workstream: Some(WS.into()),
            status: Some(TaskStatus::Todo),
            ..TaskFilter::default()
        }),
        [T01, T02]
    );
    assert_eq!(
        ids(TaskFilter {
            owner: Some("alice".into()),
            ..TaskFilter::default()
        }),
        ["ARTIFACT-STORE-WP-0007-T01"]
    );
    assert_eq!(
        ids(TaskFilter {
            workstream: Some("CUST-WP-0099".into()),
            ..TaskFilter::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(log.tasks.rollup("CUST-WP-0099"), None);
    assert_eq!(
        log.tasks
            .workstreams()
            .iter()
            .map(|w| w.rollup.summary.as_str())
            .collect::<Vec<_>>(),
        ["1 backlog", "2 todo"]
    );
}

#[test]
fn rollup_summary_has_a_fixed_order_and_skips_zeros() {
    let mut counts = StatusCounts::default();
    assert_eq!(counts.summary(), "no tasks");
    for status in [
        TaskStatus::Done,
        TaskStatus::Todo,
        TaskStatus::Wait,
        TaskStatus::Todo,
        TaskStatus::Progress,
    ]
    .into_iter()
    .chain([TaskStatus::Todo; 3])
    .chain([TaskStatus::Progress, TaskStatus::Done])
    {
        counts.add(status);
    }
    assert_eq!(counts.summary(), "1 wait, 2 progress, 5 todo, 2 done");
    counts.add(TaskStatus::Cancel);
    counts.add(TaskStatus::Backlog);
    assert_eq!(
        counts.summary(),
        "1 wait, 2 progress, 5 todo, 1 backlog, 2 done, 1 cancel"
    );
    assert_eq!(counts.total(), 12);
}

/// The worked example of `docs/projections/tasks.md`, seq for seq.
#[test]
fn the_documented_worked_example_holds() {
    let mut log = Log::new();
    assert_eq!(
        log.ok("workstream.created", json!({"id": WS, "title": "restore drill"})),
        40
    );
    log.create_task(T01, "Register buckets", json!({"status": "todo"}));
    for (id, title) in [(T02, "Verify backups"), (T03, "Restore test"), (T04, "Update runbook")] {
        log.create_task(id, title, json!({}));
    }
    assert_eq!(log.summary(), "1 todo, 3 backlog");
    assert_eq!(
        log.ok(
            "task.flagged",
            json!({"id": T02, "needs_human": true, "reason": "credentials expired"})
        ),
        45
    );
    assert_eq!(log.status(T03, "done"), 46);
    let illegal = (AnomalyKind::IllegalTransition, T03.to_string(), 46);
    assert_eq!(
        log.anomalies(),
        [illegal.clone(), (AnomalyKind::DoneWithoutEvidence, T03.to_string(), 46)]
    );
    assert_eq!(
        log.ok("workstream.status_changed", json!({"id": WS, "to": "finished"})),
        47
    );
    let open = |log: &Log| {
        log.tasks.anomalies(&AnomalyFilter {
            subject: Some(WS.into()),
            ..AnomalyFilter::default()
        })[0]
            .open_tasks
            .clone()
    };
    assert_eq!(open(&log), [T01, T02, T04]);
    assert_eq!(log.status(T02, "cancel"), 48);
    assert_eq!(open(&log), [T01, T04]);
    assert!(
        log.anomalies()
            .contains(&(AnomalyKind::WorkstreamDoneWithOpenTasks, WS.to_string(), 47))
    );
    assert!(
        log.anomalies()
            .contains(&(AnomalyKind::NeedsHumanOnClosedTask, T02.to_string(), 48))
    );
    assert_eq!(log.ok("ops.restore_tested", json!({"service": "artifact-store"})), 49);
    log.ok("task.evidence_linked", json!({"id": T03, "evidence": {"seq": 49}}));
    log.ok("task.flagged", json!({"id": T02, "needs_human": false}));
    assert_eq!(log.anomalies().len(), 2);
    log.status(T01, "cancel");
    assert_eq!(log.status(T04, "cancel"), 53);
    assert_eq!(log.anomalies(), [illegal]);
    assert_eq!(log.summary(), "1 done, 3 cancel");
}
