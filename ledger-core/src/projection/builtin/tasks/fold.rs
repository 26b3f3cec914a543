//! Folding `task.*` and `workstream.*` records into the tasks state.
//!
//! Every handler parses and checks its payload and the ids it names before
//! touching a row (a fault leaves the state, including which rows are
//! marked changed, exactly as it was), then mutates, then re-evaluates the
//! anomalies of what it changed.

use super::Tasks;
use super::anomaly::{self, Transition};
use super::model::{
    Evidence, EvidenceLink, Note, RecordRef, Task, TaskStatusChange, Workstream, WorkstreamStatus,
    WorkstreamStatusChange,
};
use super::payload::{
    TaskCreated, TaskEvidenceLinked, TaskFlagged, TaskNoteAdded, TaskStatusChanged, TaskUpdated, WorkstreamCreated,
    WorkstreamStatusChanged,
};
use crate::projection::Fault;
use crate::record::Record;

impl Tasks {
    /// Folds one record; records of other namespaces cost two prefix checks.
    pub(super) fn fold(&mut self, record: &Record) -> Result<(), Fault> {
        let event_type = record.event_type();
        if let Some(kind) = event_type.strip_prefix("task.") {
            match kind {
                "created" => self.task_created(record),
                "status_changed" => self.task_status_changed(record),
                "updated" => self.task_updated(record),
                "note_added" => self.task_note_added(record),
                "flagged" => self.task_flagged(record),
                "evidence_linked" => self.task_evidence_linked(record),
                _ => Err(unknown_type(event_type)),
            }
        } else if let Some(kind) = event_type.strip_prefix("workstream.") {
            match kind {
                "created" => self.workstream_created(record),
                "status_changed" => self.workstream_status_changed(record),
                _ => Err(unknown_type(event_type)),
            }
        } else {
            Ok(())
        }
    }

    fn workstream_created(&mut self, record: &Record) -> Result<(), Fault> {
        let p = WorkstreamCreated::parse(&record.payload)?;
        if let Some(declared) = self.workstreams.get(&p.id).and_then(|ws| ws.declared.clone()) {
            return Err(Fault::new(format!(
                "id: workstream {} already exists (created at seq {})",
                p.id, declared.seq
            )));
        }
        let at = RecordRef::of(record);
        match self.workstreams.get_mut(&p.id) {
            // Known only from its tasks so far: the declaration fills it in.
            Some(ws) => {
                ws.title = Some(p.title);
                ws.owner = p.owner;
                ws.declared = Some(at.clone());
                if let Some(status) = p.status
                    && status != ws.status
                {
                    ws.history.push(WorkstreamStatusChange {
                        from: ws.status,
                        to: status,
                        reason: None,
                        at: at.clone(),
                    });
                    ws.status = status;
                    ws.status_since_ns = at.at_ns;
                }
                ws.updated_seq = at.seq;
                ws.updated_at_ns = at.at_ns;
            }
            None => {
                let mut ws = implied_workstream(&p.id, &at);
                ws.title = Some(p.title);
                ws.owner = p.owner;
                ws.status = p.status.unwrap_or(WorkstreamStatus::Open);
                ws.declared = Some(at);
                self.workstreams.insert(p.id.clone(), ws);
            }
        }
        self.refresh_workstream(&p.id, record);
        Ok(())
    }

    fn workstream_status_changed(&mut self, record: &Record) -> Result<(), Fault> {
        let p = WorkstreamStatusChanged::parse(&record.payload)?;
        let from = match self.workstreams.get(&p.id) {
            Some(ws) => ws.status,
            None => return Err(unknown_workstream(&p.id)),
        };
        if from == p.to {
            return Ok(());
        }
        let Some(ws) = self.workstreams.get_mut(&p.id) else {
            return Err(unknown_workstream(&p.id));
        };
        let at = RecordRef::of(record);
        ws.status = p.to;
        ws.status_since_ns = at.at_ns;
        ws.updated_seq = at.seq;
        ws.updated_at_ns = at.at_ns;
        ws.history.push(WorkstreamStatusChange {
            from,
            to: p.to,
            reason: p.reason,
            at,
        });
        self.refresh_workstream(&p.id, record);
        Ok(())
    }

    fn task_created(&mut self, record: &Record) -> Result<(), Fault> {
        let p = TaskCreated::parse(&record.payload)?;
        if let Some(existing) = self.tasks.get(&p.id) {
            return Err(Fault::new(format!(
                "id: task {} already exists (created at seq {})",
                p.id, existing.created.seq
            )));
        }
        let at = RecordRef::of(record);
        let ws = self
            .workstreams
            .get_or_insert_with(&p.workstream, || implied_workstream(&p.workstream, &at));
        ws.tasks.insert(p.id.clone());
        ws.updated_seq = at.seq;
        ws.updated_at_ns = at.at_ns;
        let task = Task {
            id: p.id.clone(),
            workstream: p.workstream,
            title: p.title,
            status: p.status,
            priority: p.priority,
            owner: p.owner,
            done_when: p.done_when,
            needs_human: false,
            needs_human_reason: None,
            needs_human_since: None,
            evidence: Vec::new(),
            history: Vec::new(),
            n_notes: 0,
            status_since_ns: at.at_ns,
            updated_seq: at.seq,
            updated_at_ns: at.at_ns,
            created: at,
        };
        self.tasks.insert(p.id.clone(), task);
        self.refresh_task(&p.id, record, true);
        Ok(())
    }

    fn task_status_changed(&mut self, record: &Record) -> Result<(), Fault> {
        let p = TaskStatusChanged::parse(&record.payload)?;
        let from = self.task(&p.id).ok_or_else(|| unknown_task(&p.id))?.status;
        if from == p.to {
            return Ok(());
        }
        let Some(task) = self.tasks.get_mut(&p.id) else {
            return Err(unknown_task(&p.id));
        };
        let at = RecordRef::of(record);
        let legal = from.can_move_to(p.to);
        task.status = p.to;
        task.status_since_ns = at.at_ns;
        task.updated_seq = at.seq;
        task.updated_at_ns = at.at_ns;
        task.history.push(TaskStatusChange {
            from,
            to: p.to,
            reason: p.reason,
            legal,
            at,
        });
        if !legal {
            anomaly::record_illegal(&mut self.anomalies, task, Transition { from, to: p.to }, record);
        }
        self.refresh_task(&p.id, record, true);
        Ok(())
    }

    fn task_updated(&mut self, record: &Record) -> Result<(), Fault> {
        let p = TaskUpdated::parse(&record.payload)?;
        self.task(&p.id).ok_or_else(|| unknown_task(&p.id))?;
        let Some(task) = self.tasks.get_mut(&p.id) else {
            return Err(unknown_task(&p.id));
        };
        if let Some(title) = p.title {
            task.title = title;
        }
        if let Some(priority) = p.priority {
            task.priority = priority;
        }
        if let Some(owner) = p.owner {
            task.owner = owner;
        }
        if let Some(done_when) = p.done_when {
            task.done_when = done_when;
        }
        task.updated_seq = record.header.seq;
        task.updated_at_ns = record.header.event.occurred_at_ns;
        Ok(())
    }

    fn task_note_added(&mut self, record: &Record) -> Result<(), Fault> {
        let p = TaskNoteAdded::parse(&record.payload)?;
        self.task(&p.id).ok_or_else(|| unknown_task(&p.id))?;
        let Some(task) = self.tasks.get_mut(&p.id) else {
            return Err(unknown_task(&p.id));
        };
        task.n_notes = task.n_notes.saturating_add(1);
        task.updated_seq = record.header.seq;
        task.updated_at_ns = record.header.event.occurred_at_ns;
        let key = note_key(&p.id, record.header.seq);
        self.notes.insert(
            key,
            Note {
                task: p.id,
                text: p.text,
                author: p.author,
                at: RecordRef::of(record),
            },
        );
        Ok(())
    }

    fn task_flagged(&mut self, record: &Record) -> Result<(), Fault> {
        let p = TaskFlagged::parse(&record.payload)?;
        self.task(&p.id).ok_or_else(|| unknown_task(&p.id))?;
        let Some(task) = self.tasks.get_mut(&p.id) else {
            return Err(unknown_task(&p.id));
        };
        if p.needs_human {
            task.needs_human_reason = p.reason;
            // Re-flagging an already flagged task updates the reason but
            // keeps the date the need arose.
            if !task.needs_human {
                task.needs_human_since = Some(RecordRef::of(record));
            }
        } else {
            task.needs_human_reason = None;
            task.needs_human_since = None;
        }
        task.needs_human = p.needs_human;
        task.updated_seq = record.header.seq;
        task.updated_at_ns = record.header.event.occurred_at_ns;
        self.refresh_task(&p.id, record, false);
        Ok(())
    }

    fn task_evidence_linked(&mut self, record: &Record) -> Result<(), Fault> {
        let p = TaskEvidenceLinked::parse(&record.payload)?;
        if let Evidence::Seq(seq) = p.evidence
            && seq >= record.header.seq
        {
            return Err(Fault::new(format!(
                "evidence.seq: {seq} is not before this record (seq {})",
                record.header.seq
            )));
        }
        let task = self.task(&p.id).ok_or_else(|| unknown_task(&p.id))?;
        // The same evidence linked twice keeps its first link.
        if task.evidence.iter().any(|link| link.evidence == p.evidence) {
            return Ok(());
        }
        let Some(task) = self.tasks.get_mut(&p.id) else {
            return Err(unknown_task(&p.id));
        };
        task.evidence.push(EvidenceLink {
            evidence: p.evidence,
            description: p.description,
            at: RecordRef::of(record),
        });
        task.updated_seq = record.header.seq;
        task.updated_at_ns = record.header.event.occurred_at_ns;
        self.refresh_task(&p.id, record, false);
        Ok(())
    }

    /// Re-evaluates the anomalies about task `id`, and about its workstream
    /// when `status_changed` (only a task's status affects its workstream's).
    fn refresh_task(&mut self, id: &str, record: &Record, status_changed: bool) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        anomaly::refresh_task(&mut self.anomalies, &task, record);
        if status_changed && let Some(ws) = self.workstreams.get(&task.workstream) {
            anomaly::refresh_workstream(&mut self.anomalies, &ws, &self.tasks, record);
        }
    }

    fn refresh_workstream(&mut self, id: &str, record: &Record) {
        if let Some(ws) = self.workstreams.get(id) {
            anomaly::refresh_workstream(&mut self.anomalies, &ws, &self.tasks, record);
        }
    }
}

/// Row key of the note added at `seq` (zero-padded so a task's notes sort
/// in log order under the prefix `task/`).
pub(super) fn note_key(task: &str, seq: u64) -> String {
    // Built by hand: one note per `task.note_added`, and `format!` cost
    // more than the row insert it keys.
    let mut digits = [b'0'; 20];
    let mut rest = seq;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut key = String::with_capacity(task.len() + 1 + digits.len());
    key.push_str(task);
    key.push('/');
    key.extend(digits.iter().map(|&d| char::from(d)));
    key
}

/// A workstream known only because a task named it, first seen at `at`.
fn implied_workstream(id: &str, at: &RecordRef) -> Workstream {
    Workstream {
        id: id.to_string(),
        title: None,
        owner: None,
        status: WorkstreamStatus::Open,
        declared: None,
        tasks: Default::default(),
        history: Vec::new(),
        created_seq: at.seq,
        status_since_ns: at.at_ns,
        updated_seq: at.seq,
        updated_at_ns: at.at_ns,
    }
}

fn unknown_type(event_type: &str) -> Fault {
    Fault::new(format!(
        "event_type: {event_type:?} is not a task or workstream event type this projection knows"
    ))
}

fn unknown_task(id: &str) -> Fault {
    Fault::new(format!("id: unknown task {id} (no task.created before)"))
}

fn unknown_workstream(id: &str) -> Fault {
    Fault::new(format!(
        "id: unknown workstream {id} (no workstream.created or task.created naming it before)"
    ))
}

#[cfg(test)]
mod key_tests {
    #[test]
    fn note_keys_are_the_task_and_twenty_seq_digits() {
        for seq in [0, 7, 1_234_567, u64::MAX] {
            assert_eq!(super::note_key("CUST-WP-1-T2", seq), format!("CUST-WP-1-T2/{seq:020}"));
        }
    }
}
