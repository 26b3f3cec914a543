//! The rows the tasks projection keeps and returns: tasks, workstreams,
//! notes, evidence links, the status sets with the task transition table,
//! and per-workstream rollups.
//!
//! Rows are plain serialisable values (they are what the engine stores and
//! what gRPC and the CLI will return); the rules that change them live in
//! `fold.rs` and `anomaly.rs`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// Where a task stands. The set is fixed by the workplans this ledger
/// serves; [`TaskStatus::allowed_next`] is the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Known, not planned yet.
    Backlog,
    /// Planned, not started.
    Todo,
    /// Being worked on.
    Progress,
    /// Blocked on someone or something outside the task.
    Wait,
    /// Finished; final.
    Done,
    /// Abandoned; final.
    Cancel,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Backlog,
        TaskStatus::Todo,
        TaskStatus::Progress,
        TaskStatus::Wait,
        TaskStatus::Done,
        TaskStatus::Cancel,
    ];

    /// The order rollups are rendered in: what needs attention first
    /// ("1 wait, 2 progress, 5 todo, 2 done").
    pub const ROLLUP_ORDER: [TaskStatus; 6] = [
        TaskStatus::Wait,
        TaskStatus::Progress,
        TaskStatus::Todo,
        TaskStatus::Backlog,
        TaskStatus::Done,
        TaskStatus::Cancel,
    ];

    /// The name used in payloads and rollups.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Backlog => "backlog",
            TaskStatus::Todo => "todo",
            TaskStatus::Progress => "progress",
            TaskStatus::Wait => "wait",
            TaskStatus::Done => "done",
            TaskStatus::Cancel => "cancel",
        }
    }

    /// Done or cancelled: nothing more is expected of the task.
    pub fn is_closed(self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Cancel)
    }

    /// The transition table: the statuses a task may legally move to from
    /// this one. `done` and `cancel` are final, so a reopened task shows up
    /// as an illegal transition rather than silently rewriting history.
    pub fn allowed_next(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Backlog => &[Todo, Progress, Cancel],
            Todo => &[Backlog, Progress, Wait, Done, Cancel],
            Progress => &[Todo, Wait, Done, Cancel],
            Wait => &[Todo, Progress, Done, Cancel],
            Done | Cancel => &[],
        }
    }

    /// Whether moving from this status to `to` is in the transition table.
    pub fn can_move_to(self, to: TaskStatus) -> bool {
        self.allowed_next().contains(&to)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Task priority, `P0` most urgent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Drop everything.
    P0,
    /// Next up.
    P1,
    /// Normal: the default when a task names none.
    #[default]
    P2,
    /// When there is time.
    P3,
}

impl Priority {
    /// The name used in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P0 => "P0",
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }
}

/// Where a workstream (workplan) stands. Workstreams have no transition
/// table: plans get reopened and that is not a hygiene problem by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkstreamStatus {
    /// Planned, not started.
    Open,
    /// Being worked on.
    Active,
    /// Finished (producers may also write `finished`).
    #[serde(alias = "finished")]
    Done,
    /// Abandoned.
    Cancel,
}

impl WorkstreamStatus {
    /// The name used in payloads and stored rows.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkstreamStatus::Open => "open",
            WorkstreamStatus::Active => "active",
            WorkstreamStatus::Done => "done",
            WorkstreamStatus::Cancel => "cancel",
        }
    }
}

impl fmt::Display for WorkstreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record a fact came from, so every timeline entry can be proven
/// against a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    /// Global position of the record.
    pub seq: u64,
    /// Hex BLAKE3 record hash.
    pub record_hash: String,
    /// When it happened, per the producer (`occurred_at`), Unix ns.
    pub at_ns: i64,
}

impl RecordRef {
    /// The reference to `record`.
    pub fn of(record: &Record) -> RecordRef {
        RecordRef {
            seq: record.header.seq,
            record_hash: crate::projection::hex_hash(&record.record_hash),
            at_ns: record.header.event.occurred_at_ns,
        }
    }
}

/// One unit of work in a workstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// e.g. `CUST-WP-0051-T03`.
    pub id: String,
    /// The workstream it belongs to, e.g. `CUST-WP-0051`.
    pub workstream: String,
    /// What the task is.
    pub title: String,
    /// Current status.
    pub status: TaskStatus,
    /// Current priority.
    pub priority: Priority,
    /// Who is on it, if anyone.
    pub owner: Option<String>,
    /// The "done when" criteria, if given.
    pub done_when: Option<String>,
    /// Whether a human must act before the task can move on.
    pub needs_human: bool,
    /// Why, as given by the last `task.flagged` that set the flag.
    pub needs_human_reason: Option<String>,
    /// The record that set the flag (kept while it stays set), so stale
    /// flags can be dated.
    pub needs_human_since: Option<RecordRef>,
    /// Evidence linked to the task, in link order.
    pub evidence: Vec<EvidenceLink>,
    /// Every status change, legal or not, in log order.
    pub history: Vec<TaskStatusChange>,
    /// How many notes were added (see [`Tasks::notes`](super::Tasks::notes)).
    pub n_notes: u64,
    /// The `task.created` record.
    pub created: RecordRef,
    /// When the current status was entered (occurred_at, Unix ns).
    pub status_since_ns: i64,
    /// Seq of the last record that changed the task.
    pub updated_seq: u64,
    /// occurred_at of that record, Unix ns.
    pub updated_at_ns: i64,
}

/// One status change of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatusChange {
    /// Status before.
    pub from: TaskStatus,
    /// Status after (applied even when illegal: the log is the truth).
    pub to: TaskStatus,
    /// Why, as the producer said.
    pub reason: Option<String>,
    /// Whether the transition table allows it.
    pub legal: bool,
    /// The `task.status_changed` record.
    pub at: RecordRef,
}

/// A dated progress note on a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The task it is about.
    pub task: String,
    /// The note.
    pub text: String,
    /// Who wrote it, if said.
    pub author: Option<String>,
    /// The `task.note_added` record (its `at_ns` dates the note).
    pub at: RecordRef,
}

/// What a piece of evidence points at: a record of this ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// By global position.
    Seq(u64),
    /// By hex record hash (64 lowercase hex digits).
    RecordHash(String),
    /// By event id (hyphenated lowercase UUID).
    EventId(String),
}

/// Evidence linked to a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLink {
    /// The record it points at.
    pub evidence: Evidence,
    /// What it shows, if said.
    pub description: Option<String>,
    /// The `task.evidence_linked` record.
    pub at: RecordRef,
}

/// A workstream (workplan) and the tasks that name it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workstream {
    /// e.g. `CUST-WP-0051`.
    pub id: String,
    /// Title from `workstream.created`; `None` until it arrives.
    pub title: Option<String>,
    /// Owner from `workstream.created`, if any.
    pub owner: Option<String>,
    /// Current status.
    pub status: WorkstreamStatus,
    /// The `workstream.created` record; `None` while the workstream is only
    /// known because tasks name it.
    pub declared: Option<RecordRef>,
    /// Ids of its tasks, sorted.
    pub tasks: BTreeSet<String>,
    /// Every status change, in log order.
    pub history: Vec<WorkstreamStatusChange>,
    /// Seq of the first record that named the workstream.
    pub created_seq: u64,
    /// When the current status was entered (occurred_at, Unix ns).
    pub status_since_ns: i64,
    /// Seq of the last record that changed the workstream row.
    pub updated_seq: u64,
    /// occurred_at of that record, Unix ns.
    pub updated_at_ns: i64,
}

/// One status change of a workstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstreamStatusChange {
    /// Status before.
    pub from: WorkstreamStatus,
    /// Status after.
    pub to: WorkstreamStatus,
    /// Why, as the producer said.
    pub reason: Option<String>,
    /// The record that changed it.
    pub at: RecordRef,
}

/// How many tasks are in each status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Tasks in `backlog`.
    pub backlog: u32,
    /// Tasks in `todo`.
    pub todo: u32,
    /// Tasks in `progress`.
    pub progress: u32,
    /// Tasks in `wait`.
    pub wait: u32,
    /// Tasks in `done`.
    pub done: u32,
    /// Tasks in `cancel`.
    pub cancel: u32,
}

impl StatusCounts {
    /// The count for `status`.
    pub fn get(&self, status: TaskStatus) -> u32 {
        match status {
            TaskStatus::Backlog => self.backlog,
            TaskStatus::Todo => self.todo,
            TaskStatus::Progress => self.progress,
            TaskStatus::Wait => self.wait,
            TaskStatus::Done => self.done,
            TaskStatus::Cancel => self.cancel,
        }
    }

    /// Counts one more task in `status`.
    pub fn add(&mut self, status: TaskStatus) {
        let count = match status {
            TaskStatus::Backlog => &mut self.backlog,
            TaskStatus::Todo => &mut self.todo,
            TaskStatus::Progress => &mut self.progress,
            TaskStatus::Wait => &mut self.wait,
            TaskStatus::Done => &mut self.done,
            TaskStatus::Cancel => &mut self.cancel,
        };
        *count = count.saturating_add(1);
    }

    /// All tasks counted.
    pub fn total(&self) -> u32 {
        TaskStatus::ALL
            .iter()
            .fold(0u32, |sum, s| sum.saturating_add(self.get(*s)))
    }

    /// The operator's one-liner, in [`TaskStatus::ROLLUP_ORDER`] with zero
    /// counts left out: `"1 wait, 2 progress, 5 todo, 2 done"`, or
    /// `"no tasks"`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = TaskStatus::ROLLUP_ORDER
            .iter()
            .filter(|s| self.get(**s) > 0)
            .map(|s| format!("{} {}", self.get(*s), s.as_str()))
            .collect();
        if parts.is_empty() {
            "no tasks".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A workstream's tasks counted by status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// The workstream.
    pub workstream: String,
    /// Tasks per status.
    pub counts: StatusCounts,
    /// All its tasks.
    pub total: u32,
    /// [`StatusCounts::summary`], e.g. `"1 wait, 2 progress, 5 todo, 2 done"`.
    pub summary: String,
}

/// A workstream with its rollup, as listed by
/// [`Tasks::workstreams`](super::Tasks::workstreams).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkstreamSummary {
    /// The workstream row.
    pub workstream: Workstream,
    /// Its tasks counted by status.
    pub rollup: Rollup,
    /// How many current anomalies concern it or its tasks.
    pub n_anomalies: u32,
}

/// Which tasks [`Tasks::tasks`](super::Tasks::tasks) returns: every set
/// field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only tasks of this workstream.
    pub workstream: Option<String>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks owned by this owner.
    pub owner: Option<String>,
    /// Only tasks whose `needs_human` flag is this.
    pub needs_human: Option<bool>,
}

impl TaskFilter {
    /// Whether `task` passes the filter.
    pub fn matches(&self, task: &Task) -> bool {
        self.workstream.as_ref().is_none_or(|ws| *ws == task.workstream)
            && self.status.is_none_or(|s| s == task.status)
            && self.owner.as_ref().is_none_or(|o| task.owner.as_ref() == Some(o))
            && self.needs_human.is_none_or(|n| n == task.needs_human)
    }
}
