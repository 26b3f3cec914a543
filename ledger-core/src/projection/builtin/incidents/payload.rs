//! Reading `incident.*` records into typed events, with faults that name
//! the field. Nothing here touches projection state.
//!
//! Payloads are read into a `serde_json` object and checked field by field,
//! rather than into a derived struct, because serde's derived errors say
//! "invalid type: integer, expected a string" without saying which field.
//! Unknown fields are ignored so producers can add their own.

use serde_json::{Map, Value};

use super::{IncidentState, METADATA_KEY, STREAM_PREFIX, Severity, TYPE_PREFIX};
use crate::projection::Fault;
use crate::record::Record;

/// Longest incident id accepted, in bytes.
pub(super) const MAX_ID_LEN: usize = 128;

/// An `incident.*` record, read and checked.
#[derive(Debug)]
pub(super) struct IncidentEvent {
    pub(super) incident_id: String,
    pub(super) parsed: Parsed,
}

/// What the event says, by type.
#[derive(Debug)]
pub(super) enum Parsed {
    Opened {
        severity: Severity,
        title: String,
        service: String,
        runbooks: Vec<String>,
        by: Option<String>,
    },
    /// `acknowledged`, `mitigated`, `resolved`, `closed`.
    Lifecycle {
        to: IncidentState,
        by: Option<String>,
        note: Option<String>,
    },
    Note {
        text: String,
        by: Option<String>,
    },
    SeverityChanged {
        to: Severity,
        reason: Option<String>,
        by: Option<String>,
    },
}

/// Reads an `incident.*` record, or says which field is wrong.
pub(super) fn parse(record: &Record) -> Result<IncidentEvent, Fault> {
    let event_type = record.event_type();
    let kind = event_type.strip_prefix(TYPE_PREFIX).unwrap_or(event_type);
    let lifecycle = match kind {
        "acknowledged" => Some(IncidentState::Acknowledged),
        "mitigated" => Some(IncidentState::Mitigated),
        "resolved" => Some(IncidentState::Resolved),
        "closed" => Some(IncidentState::Closed),
        "opened" | "note_added" | "severity_changed" => None,
        _ => {
            return Err(Fault::new(format!(
                "event_type: {event_type:?} is not an incident event type (opened, acknowledged, mitigated, \
                 resolved, closed, note_added, severity_changed)"
            )));
        }
    };
    let fields = Fields::parse(&record.payload)?;
    let incident_id = incident_id(&fields, record)?;
    let parsed = match (kind, lifecycle) {
        (_, Some(to)) => Parsed::Lifecycle {
            to,
            by: fields.optional_text("by")?,
            note: fields.optional_text("note")?,
        },
        ("opened", _) => Parsed::Opened {
            severity: fields.severity("severity")?,
            title: fields.required_text("title")?,
            service: fields.required_text("service")?,
            runbooks: fields.text_list("runbooks")?,
            by: fields.optional_text("by")?,
        },
        ("note_added", _) => Parsed::Note {
            text: fields.required_text("text")?,
            by: fields.optional_text("by")?,
        },
        _ => Parsed::SeverityChanged {
            to: fields.severity("to")?,
            reason: fields.optional_text("reason")?,
            by: fields.optional_text("by")?,
        },
    };
    Ok(IncidentEvent { incident_id, parsed })
}

/// The incident an `incident.*` record is about: the payload field
/// `incident_id`, the metadata key `incident_id` or the stream
/// `incident/<id>`. Any of them may be absent, but those present must agree.
fn incident_id(fields: &Fields, record: &Record) -> Result<String, Fault> {
    let from_payload = fields.optional_str("incident_id")?;
    let from_metadata = record.header.event.metadata.extra.get(METADATA_KEY).map(String::as_str);
    let from_stream = record.stream().strip_prefix(STREAM_PREFIX);
    let sources = [
        ("payload field incident_id", from_payload),
        ("metadata incident_id", from_metadata),
        ("stream", from_stream),
    ];
    let mut chosen: Option<(&str, &str)> = None;
    for (source, id) in sources {
        let Some(id) = id else { continue };
        match chosen {
            None => chosen = Some((source, id)),
            Some((first_source, first)) if first != id => {
                return Err(Fault::new(format!(
                    "incident_id: {first_source} says {first:?} but {source} says {id:?}"
                )));
            }
            Some(_) => {}
        }
    }
    let Some((source, id)) = chosen else {
        return Err(Fault::new(
            "incident_id: missing (set the payload field incident_id, or append to stream incident/<id>)",
        ));
    };
    if !is_valid_id(id) {
        return Err(Fault::new(format!(
            "incident_id: {id:?} (from the {source}) is not an incident id: 1 to {MAX_ID_LEN} characters, \
             ASCII letters, digits, '-', '_', '.' or ':'"
        )));
    }
    Ok(id.to_string())
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A JSON object payload, read field by field.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(payload: &[u8]) -> Result<Fields, Fault> {
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| Fault::new(format!("payload: not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(Fault::new(format!(
                "payload: expected a JSON object, got {}",
                describe(&other)
            ))),
        }
    }

    /// A string field; absent and `null` are `None`.
    fn optional_str(&self, name: &str) -> Result<Option<&str>, Fault> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(Fault::new(format!(
                "{name}: expected a string, got {}",
                describe(other)
            ))),
        }
    }

    /// A string field; absent, `null` and blank are `None`.
    fn optional_text(&self, name: &str) -> Result<Option<String>, Fault> {
        Ok(self
            .optional_str(name)?
            .filter(|text| !text.trim().is_empty())
            .map(str::to_string))
    }

    /// A string field that must be present and not blank.
    fn required_text(&self, name: &str) -> Result<String, Fault> {
        match self.optional_str(name)? {
            None => Err(Fault::new(format!("{name}: missing"))),
            Some(text) if text.trim().is_empty() => Err(Fault::new(format!("{name}: must not be empty"))),
            Some(text) => Ok(text.to_string()),
        }
    }

    /// A required severity, `SEV1` to `SEV4`.
    fn severity(&self, name: &str) -> Result<Severity, Fault> {
        let text = self.required_text(name)?;
        Severity::parse(&text).ok_or_else(|| {
            Fault::new(format!(
                "{name}: unknown severity {text:?} (expected SEV1, SEV2, SEV3 or SEV4)"
            ))
        })
    }

    /// An optional array of non-blank strings; absent and `null` are empty.
    fn text_list(&self, name: &str) -> Result<Vec<String>, Fault> {
        let items = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(Fault::new(format!(
                    "{name}: expected an array of strings, got {}",
                    describe(other)
                )));
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
                Value::String(_) => Err(Fault::new(format!("{name}[{i}]: must not be empty"))),
                other => Err(Fault::new(format!(
                    "{name}[{i}]: expected a string, got {}",
                    describe(other)
                ))),
            })
            .collect()
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
