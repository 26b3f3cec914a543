//! Per-namespace event-type vocabularies: which event types a namespace
//! accepts and, optionally, a JSON Schema each type's payload must meet.
//!
//! Why: the ledger is an immutable log. A mistyped event type
//! (`probe.resutl`) or a malformed payload cannot be taken back once
//! appended; every reader and projection lives with it forever. So a
//! namespace may declare its vocabulary, and an append is checked against
//! it before anything is written.
//!
//! This module is pure: no I/O, no ledger state, no gRPC. Loading a
//! vocabulary from the policy file, serving it over the admin API and
//! calling [`Vocabulary::check`] on the append path live elsewhere.
//! Schemas are a documented subset of JSON Schema 2020-12 (see
//! docs/VOCABULARY.md); anything outside it is refused when the
//! vocabulary is built, never silently ignored.

use std::collections::BTreeMap;

use ledger_core::config::limits::MAX_TYPE_BYTES;
use serde_json::Value;

mod json;
mod schema;
mod validate;

pub use schema::{ANNOTATION_KEYWORDS, MAX_SCHEMA_DEPTH, SUPPORTED_KEYWORDS, Schema, SchemaError};
pub use validate::{ROOT, Violation};

/// The event types one namespace accepts, at one version.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocabulary {
    version: u64,
    types: BTreeMap<String, TypeRule>,
}

/// What one declared event type requires of its payload.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeRule {
    schema: Option<Schema>,
    /// Kept verbatim so the declaration can be written back to a file,
    /// listed by an admin, or recorded in the ledger as an event.
    schema_source: Option<Value>,
}

/// Why a vocabulary could not be built, or why an event does not fit it.
///
/// The `check` variants are worded to follow a field prefix:
/// `events[3].type: ` + [`VocabError::UndeclaredType`], and
/// `events[3].` + the payload variants, which start with `payload`.
/// [`VocabError::field`] says which field an error is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VocabError {
    /// The event's type is not declared. The caller adds the namespace.
    #[error("event type {event_type:?} is not declared in vocabulary version {version}")]
    UndeclaredType {
        /// The type the event carried.
        event_type: String,
        /// The vocabulary version it was checked against.
        version: u64,
    },
    /// The type has a schema but the payload is not declared as JSON.
    #[error(
        "payload: type {event_type:?} has a schema, so content_type must be application/json (or a +json type), got {content_type:?}"
    )]
    NotJson {
        /// The event's type.
        event_type: String,
        /// The content type it carried.
        content_type: String,
    },
    /// The type has a schema but the payload does not parse.
    #[error("payload: not valid JSON: {reason}")]
    InvalidJson {
        /// serde_json's syntax error and position; never the input.
        reason: String,
    },
    /// The payload breaks the type's schema.
    #[error(transparent)]
    Violation(#[from] Violation),
    /// A declared type name the ledger would refuse as an event type.
    #[error("type {event_type:?}: {reason}")]
    InvalidTypeName {
        /// The name as declared.
        event_type: String,
        /// Why it is refused.
        reason: String,
    },
    /// The same type declared twice.
    #[error("type {event_type:?} is declared twice")]
    DuplicateType {
        /// The name declared twice.
        event_type: String,
    },
    /// A declared type's schema was refused.
    #[error("type {event_type:?}: {source}")]
    Schema {
        /// The type whose schema it is.
        event_type: String,
        /// Why.
        source: SchemaError,
    },
}

impl VocabError {
    /// The event field a [`Vocabulary::check`] error is about (`type` or
    /// `payload`); `None` for errors building a vocabulary.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            VocabError::UndeclaredType { .. } => Some("type"),
            VocabError::NotJson { .. } | VocabError::InvalidJson { .. } | VocabError::Violation(_) => Some("payload"),
            VocabError::InvalidTypeName { .. } | VocabError::DuplicateType { .. } | VocabError::Schema { .. } => None,
        }
    }
}

impl Vocabulary {
    /// Builds a vocabulary from `(type, optional schema)` declarations,
    /// checking every type name as the ledger checks event types and
    /// compiling every schema. Declaration order does not matter; a type
    /// declared twice is refused.
    pub fn new(
        version: u64,
        declarations: impl IntoIterator<Item = (String, Option<Value>)>,
    ) -> Result<Vocabulary, VocabError> {
        let mut types = BTreeMap::new();
        for (event_type, schema_source) in declarations {
            if let Err(reason) = check_type_name(&event_type) {
                return Err(VocabError::InvalidTypeName { event_type, reason });
            }
            if types.contains_key(&event_type) {
                return Err(VocabError::DuplicateType { event_type });
            }
            let rule = match TypeRule::new(schema_source) {
                Ok(rule) => rule,
                Err(source) => return Err(VocabError::Schema { event_type, source }),
            };
            types.insert(event_type, rule);
        }
        Ok(Vocabulary { version, types })
    }

    /// The version this vocabulary was declared as.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every declared type, in name order.
    pub fn types(&self) -> &BTreeMap<String, TypeRule> {
        &self.types
    }

    /// The rule for `event_type`, if declared.
    pub fn get(&self, event_type: &str) -> Option<&TypeRule> {
        self.types.get(event_type)
    }

    /// Checks one event: its type must be declared and, if the type has a
    /// schema, its payload must be JSON that meets it. A declared type
    /// without a schema accepts any payload.
    ///
    /// Cost: a map lookup; with a schema, one parse of the payload into a
    /// [`Value`] plus a walk bounded by the schema's size.
    pub fn check(&self, event_type: &str, content_type: &str, payload: &[u8]) -> Result<(), VocabError> {
        let rule = self.types.get(event_type).ok_or_else(|| VocabError::UndeclaredType {
            event_type: event_type.to_string(),
            version: self.version,
        })?;
        let Some(schema) = &rule.schema else {
            return Ok(());
        };
        if !is_json(content_type) {
            return Err(VocabError::NotJson {
                event_type: event_type.to_string(),
                content_type: content_type.to_string(),
            });
        }
        // serde_json's default recursion limit (128) bounds the parse;
        // its syntax errors name a position, never the input.
        let value: Value = serde_json::from_slice(payload).map_err(|err| VocabError::InvalidJson {
            reason: err.to_string(),
        })?;
        schema.validate(&value)?;
        Ok(())
    }
}

impl TypeRule {
    /// Compiles `schema_source`, if any.
    pub fn new(schema_source: Option<Value>) -> Result<TypeRule, SchemaError> {
        let schema = schema_source.as_ref().map(Schema::compile).transpose()?;
        Ok(TypeRule { schema, schema_source })
    }

    /// The compiled schema, if the type has one.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// The schema as declared, if the type has one.
    pub fn schema_source(&self) -> Option<&Value> {
        self.schema_source.as_ref()
    }
}

/// True for `application/json` and `+json` types, parameters ignored.
/// Mirrors `ledger_core::event::is_json`, which is crate-private.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json") || essence.to_ascii_lowercase().ends_with("+json")
}

/// The ledger's rule for event types: non-empty, at most
/// [`MAX_TYPE_BYTES`], no whitespace or control characters. Mirrors
/// `ledger_core::event::check_name` (crate-private), so a vocabulary never
/// declares a type no event could carry.
fn check_type_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_TYPE_BYTES {
        return Err(format!("{} bytes, limit is {MAX_TYPE_BYTES}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "contains {c:?}; whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
