//! The payloads of the task and workstream event types, parsed and checked
//! before the fold touches any state.
//!
//! Payloads are read into a JSON object and each field is deserialised on
//! its own with serde, rather than derived in one go: serde_json's derived
//! errors do not name the field for a wrong type ("invalid type: integer,
//! expected a string"), and producers must be told which field is wrong.
//! Unknown fields are refused for the same reason: a misspelt `priorty`
//! silently defaulting the priority is worse than a fault.
//!
//! A payload is read in two passes at most. The first keeps each field as
//! its raw JSON text borrowed from the payload and deserialises only what
//! the event keeps; building a `Map<String, Value>` allocated every key and
//! every string twice. Only when that pass fails (any fault) is the payload
//! read again as a JSON object of values, and that second pass decides the
//! outcome, so faults read exactly as they always did.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::model::{Evidence, Priority, TaskStatus, WorkstreamStatus};
use crate::projection::Fault;
use crate::projection::builtin::Text;

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
        Fields::read(payload, &["id", "title", "owner", "status"], |fields| {
            Ok(WorkstreamCreated {
                id: fields.id("id")?,
                title: fields.text("title")?,
                owner: fields.optional_text("owner")?,
                status: fields.optional("status")?,
            })
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
        Fields::read(payload, &["id", "to", "reason"], |fields| {
            Ok(WorkstreamStatusChanged {
                id: fields.id("id")?,
                to: fields.required("to")?,
                reason: fields.optional_text("reason")?,
            })
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
    const FIELDS: &'static [&'static str] = &["id", "workstream", "title", "status", "priority", "owner", "done_when"];

    pub fn parse(payload: &[u8]) -> Result<Self, Fault> {
        Fields::read(payload, Self::FIELDS, Self::from_fields)
    }

    fn from_fields(fields: &Fields<'_>) -> Result<Self, Fault> {
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
        Fields::read(payload, &["id", "to", "reason"], |fields| {
            Ok(TaskStatusChanged {
                id: fields.id("id")?,
                to: fields.required("to")?,
                reason: fields.optional_text("reason")?,
            })
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
        Fields::read(payload, &["id", "title", "priority", "owner", "done_when"], |fields| {
            let update = TaskUpdated {
                id: fields.id("id")?,
                title: fields.optional_text("title")?,
                priority: fields.optional("priority")?,
                owner: fields.nullable_text("owner")?,
                done_when: fields.nullable_text("done_when")?,
            };
            if update.title.is_none()
                && update.priority.is_none()
                && update.owner.is_none()
                && update.done_when.is_none()
            {
                return Err(Fault::new(
                    "payload: task.updated changes nothing (give title, priority, owner or done_when)",
                ));
            }
            Ok(update)
        })
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
        Fields::read(payload, &["id", "text", "author"], |fields| {
            Ok(TaskNoteAdded {
                id: fields.id("id")?,
                text: fields.text("text")?,
                author: fields.optional_text("author")?,
            })
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
        Fields::read(payload, &["id", "needs_human", "reason"], |fields| {
            Ok(TaskFlagged {
                id: fields.id("id")?,
                needs_human: fields.required("needs_human")?,
                reason: fields.optional_text("reason")?,
            })
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
        Fields::read(payload, &["id", "evidence", "description"], |fields| {
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
        })
    }
}

/// A payload's top-level fields, each read on demand with its name in the
/// error.
enum Fields<'a> {
    /// The first pass: each value as its JSON text in the payload.
    Raw(BTreeMap<Text<'a>, &'a RawValue>),
    /// The second pass, whose faults are the ones reported.
    Tree(Map<String, Value>),
}

impl<'a> Fields<'a> {
    /// Builds an event from the fields of `payload`, whose keys must all be
    /// in `known`: from the raw fields if that works, else from the parsed
    /// values, which decide the fault (see the module docs).
    fn read<T>(payload: &'a [u8], known: &[&str], build: impl Fn(&Fields<'a>) -> Result<T, Fault>) -> Result<T, Fault> {
        if let Ok(fields) = Fields::raw(payload, known)
            && let Ok(built) = build(&fields)
        {
            return Ok(built);
        }
        build(&Fields::parse(payload, known)?)
    }

    fn raw(payload: &'a [u8], known: &[&str]) -> Result<Fields<'a>, Fault> {
        let map: BTreeMap<Text<'a>, &'a RawValue> =
            serde_json::from_slice(payload).map_err(|e| Fault::new(format!("payload: {e}")))?;
        if map.keys().any(|k| !known.contains(&k.as_ref())) {
            return Err(Fault::new("payload: unknown field"));
        }
        Ok(Fields::Raw(map))
    }

    /// Parses `payload` as a JSON object whose keys are all in `known`.
    fn parse(payload: &[u8], known: &[&str]) -> Result<Fields<'a>, Fault> {
        let map: Map<String, Value> =
            serde_json::from_slice(payload).map_err(|e| Fault::new(format!("payload: not a JSON object: {e}")))?;
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Fault::new(format!(
                "{unknown}: unknown field (expected {})",
                known.join(", ")
            )));
        }
        Ok(Fields::Tree(map))
    }

    /// Whether the field is absent or `null`.
    fn is_absent(&self, name: &str) -> bool {
        match self {
            Fields::Raw(map) => map.get(name).is_none_or(|raw| raw.get() == "null"),
            Fields::Tree(map) => matches!(map.get(name), None | Some(Value::Null)),
        }
    }

    /// Whether the field is present (possibly `null`).
    fn is_present(&self, name: &str) -> bool {
        match self {
            Fields::Raw(map) => map.contains_key(name),
            Fields::Tree(map) => map.contains_key(name),
        }
    }

    /// A field that must be present and not `null`.
    fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, Fault> {
        if self.is_absent(name) {
            return Err(Fault::new(format!("{name}: missing")));
        }
        let parsed = match self {
            Fields::Raw(map) => map.get(name).map(|raw| serde_json::from_str(raw.get())),
            Fields::Tree(map) => map.get(name).map(T::deserialize),
        };
        match parsed {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(Fault::new(format!("{name}: {e}"))),
            None => Err(Fault::new(format!("{name}: missing"))),
        }
    }

    /// A field that may be absent or `null`.
    fn optional<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Fault> {
        if self.is_absent(name) {
            return Ok(None);
        }
        self.required(name).map(Some)
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
        if !self.is_present(name) {
            Ok(None)
        } else if self.is_absent(name) {
            Ok(Some(None))
        } else {
            self.text(name).map(|t| Some(Some(t)))
        }
    }
}

fn not_blank(name: &str, text: String) -> Result<String, Fault> {
    if text.trim().is_empty() {
        return Err(Fault::new(format!("{name}: must not be blank")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first pass, alone, reads what the second reads: escapes, nulls,
    /// repeated keys and enums included.
    #[test]
    fn both_passes_read_the_same_events() -> Result<(), Fault> {
        let payloads: [&[u8]; 3] = [
            br#"{"id":"T-1","workstream":"W","title":"a \"quoted\"\n title \u00e9","status":"todo","priority":"P1","owner":null}"#,
            br#"{"id":"T-1","id":"T-2","workstream":"W","title":"x","done_when":"tests pass"}"#,
            br#" { "id" : "T-3" , "workstream" : "W" , "title" : "y" , "owner" : null , "status" : null } "#,
        ];
        for payload in payloads {
            let raw = TaskCreated::from_fields(&Fields::raw(payload, TaskCreated::FIELDS)?)?;
            let tree = TaskCreated::from_fields(&Fields::parse(payload, TaskCreated::FIELDS)?)?;
            assert_eq!(format!("{raw:?}"), format!("{tree:?}"));
        }
        let update = br#"{"id":"T-1","owner":null,"done_when":"now"}"#;
        let fields = Fields::raw(update, &["id", "owner", "done_when", "title"])?;
        assert_eq!(fields.nullable_text("owner")?, Some(None));
        assert_eq!(fields.nullable_text("done_when")?, Some(Some("now".to_string())));
        assert_eq!(fields.nullable_text("title")?, None);
        Ok(())
    }
}
