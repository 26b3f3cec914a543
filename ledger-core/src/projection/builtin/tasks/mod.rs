//! The task-state projection: workstreams (workplans), their tasks, dated
//! notes, evidence links, per-workstream rollups and hygiene anomalies,
//! folded from `workstream.*` and `task.*` events.
//!
//! It answers the questions operators ask of a workplan ("what is still
//! open in CUST-WP-0051?", "which done tasks have no evidence?"), not the
//! ones the log answers better (who sent what when). Payload schemas, the
//! transition table and the anomaly rules are specified for producers in
//! `docs/projections/tasks.md`; this module emits no events.
//!
//! State lives in four [`Table`]s, so everything a query returns survives
//! `take_changes` → `restore`:
//! - `task`: one [`Task`] per task id;
//! - `workstream`: one [`Workstream`] per workstream id;
//! - `note`: one [`Note`] per `task id/seq` (kept out of the task row so a
//!   chatty task does not rewrite a large row on every note);
//! - `anomaly`: current anomalies under `subject/kind`, illegal transitions
//!   under `subject/illegal_transition/seq`.

mod anomaly;
mod fold;
mod model;
mod payload;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use anomaly::{Anomaly, AnomalyFilter, AnomalyKind, Transition};
pub use model::{
    Evidence, EvidenceLink, Note, Priority, RecordRef, Rollup, StatusCounts, Task, TaskFilter, TaskStatus,
    TaskStatusChange, Workstream, WorkstreamStatus, WorkstreamStatusChange, WorkstreamSummary,
};
pub use payload::MAX_ID_LEN;

use crate::projection::{Cached, Changes, Effects, Fault, Projection, Table};
use crate::record::Record;

/// The projection's name: the key of its stored state.
pub const NAME: &str = "tasks";
/// The fold and stored layout version.
pub const VERSION: u32 = 1;

/// Task state: see the module documentation.
#[derive(Clone, Debug)]
pub struct Tasks {
    tasks: Table<Task>,
    workstreams: Table<Workstream>,
    notes: Table<Note>,
    anomalies: Table<Anomaly>,
}

impl Default for Tasks {
    fn default() -> Tasks {
        Tasks {
            tasks: Table::new("task"),
            workstreams: Table::new("workstream"),
            notes: Table::new("note"),
            anomalies: Table::new("anomaly"),
        }
    }
}

impl Tasks {
    /// An empty projection.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// The task `id`.
    pub fn task(&self, id: &str) -> Option<Cow<'_, Task>> {
        self.tasks.get(id)
    }

    /// The tasks passing `filter`, in id order.
    pub fn tasks(&self, filter: &TaskFilter) -> Vec<Cow<'_, Task>> {
        match &filter.workstream {
            // A workstream knows its tasks: no need to scan them all.
            Some(ws) => self
                .workstreams
                .get(ws)
                .into_iter()
                .flat_map(|ws| ws.tasks.iter().filter_map(|id| self.tasks.get(id)).collect::<Vec<_>>())
                .filter(|task| filter.matches(task))
                .collect(),
            None => self
                .tasks
                .iter()
                .map(|(_, task)| task)
                .filter(|task| filter.matches(task))
                .collect(),
        }
    }

    /// The notes of task `id`, oldest first (empty for an unknown task).
    pub fn notes(&self, id: &str) -> Vec<Cow<'_, Note>> {
        let prefix = format!("{id}/");
        self.notes.with_prefix(&prefix).map(|(_, note)| note).collect()
    }

    /// The workstream `id`.
    pub fn workstream(&self, id: &str) -> Option<Cow<'_, Workstream>> {
        self.workstreams.get(id)
    }

    /// Every workstream with its rollup and anomaly count, in id order.
    pub fn workstreams(&self) -> Vec<WorkstreamSummary> {
        let mut n_anomalies: BTreeMap<String, u32> = BTreeMap::new();
        for (_, anomaly) in self.anomalies.iter() {
            *n_anomalies.entry(anomaly.workstream.clone()).or_default() += 1;
        }
        self.workstreams
            .iter()
            .map(|(id, ws)| WorkstreamSummary {
                rollup: self.rollup_of(&ws),
                n_anomalies: n_anomalies.get(&*id).copied().unwrap_or(0),
                workstream: ws.into_owned(),
            })
            .collect()
    }

    /// Workstream `id`'s tasks counted by status, with the one-line summary
    /// ("1 wait, 2 progress, 5 todo, 2 done").
    pub fn rollup(&self, id: &str) -> Option<Rollup> {
        self.workstreams.get(id).map(|ws| self.rollup_of(&ws))
    }

    /// The anomalies passing `filter`, in the order they were revealed
    /// (seq, then subject, then kind).
    pub fn anomalies(&self, filter: &AnomalyFilter) -> Vec<Cow<'_, Anomaly>> {
        let mut found: Vec<Cow<'_, Anomaly>> = self
            .anomalies
            .iter()
            .map(|(_, anomaly)| anomaly)
            .filter(|anomaly| filter.matches(anomaly))
            .collect();
        found.sort_by(|a, b| (a.revealed_by.seq, &a.subject, a.kind).cmp(&(b.revealed_by.seq, &b.subject, b.kind)));
        found
    }

    fn rollup_of(&self, ws: &Workstream) -> Rollup {
        let mut counts = StatusCounts::default();
        for task in ws.tasks.iter().filter_map(|id| self.tasks.get(id)) {
            counts.add(task.status);
        }
        Rollup {
            workstream: ws.id.clone(),
            total: counts.total(),
            summary: counts.summary(),
            counts,
        }
    }
}

impl Projection for Tasks {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn fresh(&self) -> Tasks {
        Tasks::default()
    }

    fn apply(&mut self, record: &Record, _effects: &mut Effects) -> Result<(), Fault> {
        self.fold(record)
    }

    fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        self.tasks.take_changes(changes)?;
        self.workstreams.take_changes(changes)?;
        self.notes.take_changes(changes)?;
        self.anomalies.take_changes(changes)
    }

    fn cached(&mut self) -> Vec<&mut dyn Cached> {
        vec![
            &mut self.tasks,
            &mut self.workstreams,
            &mut self.notes,
            &mut self.anomalies,
        ]
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault> {
        if self.tasks.restore(key, value)?
            || self.workstreams.restore(key, value)?
            || self.notes.restore(key, value)?
            || self.anomalies.restore(key, value)?
        {
            return Ok(());
        }
        Err(Fault::new(format!(
            "stored key {:?} belongs to no table of the tasks projection",
            String::from_utf8_lossy(key)
        )))
    }
}
