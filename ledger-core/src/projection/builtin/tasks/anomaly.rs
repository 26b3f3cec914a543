//! Hygiene anomalies: well-formed records that leave the workplan in a state
//! an operator must see (a workstream done with open tasks, a stale
//! `needs_human` flag, an illegal transition, a task done without evidence).
//!
//! Anomalies are state, not faults: the records are applied, and the
//! anomaly says what is wrong and which record revealed it. Three kinds
//! describe the *current* state and are re-evaluated whenever their subject
//! changes, so they disappear once fixed; illegal transitions are facts
//! about history and stay. This module only decides and stores them; the
//! fold calls [`refresh_task`] and [`refresh_workstream`] after every change.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{RecordRef, Task, TaskStatus, Workstream, WorkstreamStatus};
use crate::projection::Table;
use crate::record::Record;

/// What kind of hygiene problem an [`Anomaly`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// The workstream is `done` while some of its tasks are neither `done`
    /// nor `cancel`. Subject: the workstream. Current.
    WorkstreamDoneWithOpenTasks,
    /// `needs_human` is still set on a `done` or `cancel` task. Subject:
    /// the task. Current.
    NeedsHumanOnClosedTask,
    /// A task moved along a transition the table does not allow (it was
    /// applied). Subject: the task. Historical: never resolved.
    IllegalTransition,
    /// The task is `done` and no evidence is linked to it. Subject: the
    /// task. Current.
    DoneWithoutEvidence,
}

impl AnomalyKind {
    /// The name used in stored keys and over the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::WorkstreamDoneWithOpenTasks => "workstream_done_with_open_tasks",
            AnomalyKind::NeedsHumanOnClosedTask => "needs_human_on_closed_task",
            AnomalyKind::IllegalTransition => "illegal_transition",
            AnomalyKind::DoneWithoutEvidence => "done_without_evidence",
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status change that broke the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Status before.
    pub from: TaskStatus,
    /// Status after.
    pub to: TaskStatus,
}

/// A hygiene problem, with the record that revealed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What is wrong.
    pub kind: AnomalyKind,
    /// The task or workstream id it is about.
    pub subject: String,
    /// The workstream concerned (the subject itself for workstream kinds).
    pub workstream: String,
    /// The record that made it hold. A current anomaly that keeps holding
    /// keeps its first revealing record while its details are updated.
    pub revealed_by: RecordRef,
    /// A sentence for the operator.
    pub message: String,
    /// For `illegal_transition`: the transition; otherwise `None`.
    pub transition: Option<Transition>,
    /// For `workstream_done_with_open_tasks`: the open task ids, sorted;
    /// otherwise empty.
    pub open_tasks: Vec<String>,
}

/// Which anomalies [`Tasks::anomalies`](super::Tasks::anomalies) returns:
/// every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyFilter {
    /// Only anomalies of this workstream (about it or its tasks).
    pub workstream: Option<String>,
    /// Only anomalies about this task or workstream id.
    pub subject: Option<String>,
    /// Only anomalies of this kind.
    pub kind: Option<AnomalyKind>,
}

impl AnomalyFilter {
    /// Whether `anomaly` passes the filter.
    pub fn matches(&self, anomaly: &Anomaly) -> bool {
        self.workstream.as_ref().is_none_or(|ws| *ws == anomaly.workstream)
            && self.subject.as_ref().is_none_or(|s| *s == anomaly.subject)
            && self.kind.is_none_or(|k| k == anomaly.kind)
    }
}

/// How many open task ids a message names before "and N more".
const MESSAGE_TASKS: usize = 5;

/// Re-evaluates the current anomalies about `task` after `record` changed it.
pub(super) fn refresh_task(anomalies: &mut Table<Anomaly>, task: &Task, record: &Record) {
    let stale_flag = (task.needs_human && task.status.is_closed()).then(|| Anomaly {
        kind: AnomalyKind::NeedsHumanOnClosedTask,
        subject: task.id.clone(),
        workstream: task.workstream.clone(),
        revealed_by: RecordRef::of(record),
        message: format!(
            "task {} is {} but still flagged needs_human{}",
            task.id,
            task.status,
            task.needs_human_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        transition: None,
        open_tasks: Vec::new(),
    });
    keep_current(anomalies, AnomalyKind::NeedsHumanOnClosedTask, &task.id, stale_flag);

    let unproven = (task.status == TaskStatus::Done && task.evidence.is_empty()).then(|| Anomaly {
        kind: AnomalyKind::DoneWithoutEvidence,
        subject: task.id.clone(),
        workstream: task.workstream.clone(),
        revealed_by: RecordRef::of(record),
        message: format!("task {} is done but no evidence is linked to it", task.id),
        transition: None,
        open_tasks: Vec::new(),
    });
    keep_current(anomalies, AnomalyKind::DoneWithoutEvidence, &task.id, unproven);
}

/// Re-evaluates the current anomalies about `workstream` after `record`
/// changed it or one of its tasks.
pub(super) fn refresh_workstream(
    anomalies: &mut Table<Anomaly>,
    workstream: &Workstream,
    tasks: &Table<Task>,
    record: &Record,
) {
    let mut current = None;
    if workstream.status == WorkstreamStatus::Done {
        let open: Vec<std::borrow::Cow<'_, Task>> = workstream
            .tasks
            .iter()
            .filter_map(|id| tasks.get(id))
            .filter(|t| !t.status.is_closed())
            .collect();
        if !open.is_empty() {
            let mut named: Vec<String> = open
                .iter()
                .take(MESSAGE_TASKS)
                .map(|t| format!("{} {}", t.id, t.status))
                .collect();
            if open.len() > MESSAGE_TASKS {
                named.push(format!("and {} more", open.len() - MESSAGE_TASKS));
            }
            current = Some(Anomaly {
                kind: AnomalyKind::WorkstreamDoneWithOpenTasks,
                subject: workstream.id.clone(),
                workstream: workstream.id.clone(),
                revealed_by: RecordRef::of(record),
                message: format!(
                    "workstream {} is done but {} of its {} tasks {} open: {}",
                    workstream.id,
                    open.len(),
                    workstream.tasks.len(),
                    if open.len() == 1 { "is" } else { "are" },
                    named.join(", ")
                ),
                transition: None,
                open_tasks: open.iter().map(|t| t.id.clone()).collect(),
            });
        }
    }
    keep_current(
        anomalies,
        AnomalyKind::WorkstreamDoneWithOpenTasks,
        &workstream.id,
        current,
    );
}

/// Records that `record` moved `task` along an illegal transition: a
/// historical anomaly, one per record.
pub(super) fn record_illegal(anomalies: &mut Table<Anomaly>, task: &Task, transition: Transition, record: &Record) {
    let allowed = transition.from.allowed_next();
    let rule = if allowed.is_empty() {
        format!("{} is final", transition.from)
    } else {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        format!("{} may only go to {}", transition.from, names.join(", "))
    };
    let anomaly = Anomaly {
        kind: AnomalyKind::IllegalTransition,
        subject: task.id.clone(),
        workstream: task.workstream.clone(),
        revealed_by: RecordRef::of(record),
        message: format!(
            "task {} went from {} to {}, which the transition table does not allow ({rule})",
            task.id, transition.from, transition.to
        ),
        transition: Some(transition),
        open_tasks: Vec::new(),
    };
    anomalies.insert(historical_key(&task.id, record.header.seq), anomaly);
}

/// Row key of the current anomaly of `kind` about `subject`. Ids never
/// contain `/`, so a subject's anomalies share the prefix `subject/`.
fn current_key(kind: AnomalyKind, subject: &str) -> String {
    // Built by hand: `format!` through `Display` cost more than the lookup
    // it serves, and every task change looks two of these up.
    let kind = kind.as_str();
    let mut key = String::with_capacity(subject.len() + 1 + kind.len());
    key.push_str(subject);
    key.push('/');
    key.push_str(kind);
    key
}

/// Row key of the illegal transition revealed at `seq` (zero-padded so a
/// subject's transitions sort in log order).
fn historical_key(subject: &str, seq: u64) -> String {
    format!("{subject}/{}/{seq:020}", AnomalyKind::IllegalTransition)
}

/// Makes the stored current anomaly match `current`: inserts it, updates its
/// details (keeping the record that first revealed it), or resolves it.
/// Writes nothing when nothing changed, so unchanged rows are not re-stored.
fn keep_current(anomalies: &mut Table<Anomaly>, kind: AnomalyKind, subject: &str, current: Option<Anomaly>) {
    let key = current_key(kind, subject);
    match (anomalies.get(&key), current) {
        (None, None) => {}
        (Some(_), None) => {
            anomalies.remove(&key);
        }
        (None, Some(anomaly)) => {
            anomalies.insert(key, anomaly);
        }
        (Some(stored), Some(mut anomaly)) => {
            anomaly.revealed_by = stored.revealed_by.clone();
            if *stored != anomaly {
                anomalies.insert(key, anomaly);
            }
        }
    }
}
