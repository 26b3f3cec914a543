//! The payloads of the task and workstream event types, parsed and checked
//! before the fold touches any state.
//!
//! Payloads are read into a JSON object and each field is deserialised on
//! its own with serde, rather than derived in one go: serde_json's derived
//! errors do not name the field for a wrong type ("invalid type: integer,
//! expected a string"), and producers must be told which field is wrong.
//! Unknown fields are refused for the same reason: a misspelt `priorty`
//! silently defaulting the priority is worse than a fault.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::model::{Evidence, Priority, TaskStatus, WorkstreamStatus};
use crate::projection::Fault;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// `workstream.created`.
#[derive(Debug)]
pub(super) struct WorkstreamCreated {
    pub id: String,
    pub title: String,
    pub owner: Option<String>,
    pub status: Option<WorkstreamStatus>,
}

impl WorkstreamCreated {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "title", "owner", "status"])?;
        Ok(WorkstreamCreated {
            id: fields.id("id")?,
            title: fields.text("title")?,
            owner: fields.optional_text("owner")?,
            status: fields.optional("status")?,
        })
    }
}

/// `workstream.status_changed`.
#[derive(Debug)]
pub(super) struct WorkstreamStatusChanged {
    pub id: String,
    pub to: WorkstreamStatus,
    pub reason: Option<String>,
}

impl WorkstreamStatusChanged {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "to", "reason"])?;
        Ok(WorkstreamStatusChanged {
            id: fields.id("id")?,
            to: fields.required("to")?,
            reason: fields.optional_text("reason")?,
        })
    }
}

/// `task.created`.
#[derive(Debug)]
pub(super) struct TaskCreated {
    pub id: String,
    pub workstream: String,
    pub title: String,
    pub status: TaskStatus,
    pub priority: Priority,
    pub owner: Option<String>,
    pub done_when: Option<String>,
}

impl TaskCreated {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(
            payload,
            &["id", "workstream", "title", "status", "priority", "owner", "done_when"],
        )?;
        Ok(TaskCreated {
            id: fields.id("id")?,
            workstream: fields.id("workstream")?,
            title: fields.text("title")?,
            status: fields.optional("status")?.unwrap_or(TaskStatus::Backlog),
            priority: fields.optional("priority")?.unwrap_or_default(),
            owner: fields.optional_text("owner")?,
            done_when: fields.optional_text("done_when")?,
        })
    }
}

/// `task.status_changed`.
#[derive(Debug)]
pub(super) struct TaskStatusChanged {
    pub id: String,
    pub to: TaskStatus,
    pub reason: Option<String>,
}

impl TaskStatusChanged {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "to", "reason"])?;
        Ok(TaskStatusChanged {
            id: fields.id("id")?,
            to: fields.required("to")?,
            reason: fields.optional_text("reason")?,
        })
    }
}

/// `task.updated`: only the named fields change; `owner` and `done_when`
/// may be `null` to clear them.
#[derive(Debug)]
pub(super) struct TaskUpdated {
    pub id: String,
    pub title: Option<String>,
    pub priority: Option<Priority>,
    pub owner: Option<Option<String>>,
    pub done_when: Option<Option<String>>,
}

impl TaskUpdated {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "title", "priority", "owner", "done_when"])?;
        let update = TaskUpdated {
            id: fields.id("id")?,
            title: fields.optional_text("title")?,
            priority: fields.optional("priority")?,
            owner: fields.nullable_text("owner")?,
            done_when: fields.nullable_text("done_when")?,
        };
        if update.title.is_none() && update.priority.is_none() && update.owner.is_none() && update.done_when.is_none() {
            return Err(Fault::new(
                "payload: task.updated changes nothing (give title, priority, owner or done_when)",
            ));
        }
        Ok(update)
    }
}

/// `task.note_added`.
#[derive(Debug)]
pub(super) struct TaskNoteAdded {
    pub id: String,
    pub text: String,
    pub author: Option<String>,
}

impl TaskNoteAdded {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "text", "author"])?;
        Ok(TaskNoteAdded {
            id: fields.id("id")?,
            text: fields.text("text")?,
            author: fields.optional_text("author")?,
        })
    }
}

/// `task.flagged`.
#[derive(Debug)]
pub(super) struct TaskFlagged {
    pub id: String,
    pub needs_human: bool,
    pub reason: Option<String>,
}

impl TaskFlagged {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "needs_human", "reason"])?;
        Ok(TaskFlagged {
            id: fields.id("id")?,
            needs_human: fields.required("needs_human")?,
            reason: fields.optional_text("reason")?,
        })
    }
}

/// `task.evidence_linked`. `evidence` is normalised (lowercase hash,
/// hyphenated lowercase UUID); whether a seq points backwards is checked by
/// the fold, which knows the record's own seq.
#[derive(Debug)]
pub(super) struct TaskEvidenceLinked {
    pub id: String,
    pub evidence: Evidence,
    pub description: Option<String>,
}

impl TaskEvidenceLinked {
    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        let fields = Fields::parse(payload, &["id", "evidence", "description"])?;
        let id = fields.id("id")?;
        let evidence = match fields.required::<Evidence>("evidence")? {
            Evidence::Seq(seq) => Evidence::Seq(seq),
            Evidence::RecordHash(hash) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Fault::new(format!(
                        "evidence.record_hash: {hash:?} is not 64 hex digits"
                    )));
                }
                Evidence::RecordHash(hash.to_ascii_lowercase())
            }
            Evidence::EventId(id) => match uuid::Uuid::parse_str(&id) {
                Ok(uuid) => Evidence::EventId(uuid.hyphenated().to_string()),
                Err(e) => return Err(Fault::new(format!("evidence.event_id: {id:?} is not a UUID: {e}"))),
            },
        };
        Ok(TaskEvidenceLinked {
            id,
            evidence,
            description: fields.optional_text("description")?,
        })
    }
}

/// A payload's top-level fields, each read on demand with its name in the
/// error.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Parses `payload` as a JSON object whose keys are all in `known`.
    fn parse(payload: &[u8], known: &[&str]) -> Result<Fields, Fault> {
        let map: Map<String, Value> =
            serde_json::from_slice(payload).map_err(|e| Fault::new(format!("payload: not a JSON object: {e}")))?;
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Fault::new(format!(
                "{unknown}: unknown field (expected {})",
                known.join(", ")
            )));
        }
        Ok(Fields { map })
    }

    /// A field that must be present and not `null`.
    fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, Fault> {
        match self.map.get(name) {
            None | Some(Value::Null) => Err(Fault::new(format!("{name}: missing"))),
            Some(value) => T::deserialize(value).map_err(|e| Fault::new(format!("{name}: {e}"))),
        }
    }

    /// A field that may be absent or `null`.
    fn optional<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Fault> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.required(name).map(Some),
        }
    }

    /// An id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-`, `_` or `.`.
    /// Ids become row keys, where `/` separates parts.
    fn id(&self, name: &str) -> Result<String, Fault> {
        let id: String = self.required(name)?;
        let valid = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(Fault::new(format!(
                "{name}: {id:?} is not an id (1 to {MAX_ID_LEN} ASCII letters, digits, '-', '_' or '.')"
            )));
        }
        Ok(id)
    }

    /// A required string with something besides whitespace.
    fn text(&self, name: &str) -> Result<String, Fault> {
        let text: String = self.required(name)?;
        not_blank(name, text)
    }

    /// An optional string; when given, it must not be blank.
    fn optional_text(&self, name: &str) -> Result<Option<String>, Fault> {
        self.optional::<String>(name)?.map(|t| not_blank(name, t)).transpose()
    }

    /// Absent: `None` (leave it); `null`: `Some(None)` (clear it); a
    /// string: `Some(Some(text))`.
    fn nullable_text(&self, name: &str) -> Result<Option<Option<String>>, Fault> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(_) => self.text(name).map(|t| Some(Some(t))),
        }
    }
}

fn not_blank(name: &str, text: String) -> Result<String, Fault> {
    if text.trim().is_empty() {
        return Err(Fault::new(format!("{name}: must not be blank")));
    }
    Ok(text)
}
