//! Namespace policies in the principals file: whether a namespace requires
//! producer signatures, and the vocabulary of event types it accepts.
//!
//! ```toml
//! [[namespace]]
//! name = "ops-hub"
//! require_signatures = true
//! vocabulary_version = 2        # bumped by every vocabulary change
//!
//! [[namespace.types]]           # absent: any type; `types = []`: none
//! type = "probe.result"
//! schema = '{"type": "object", "required": ["status"]}'   # optional
//!
//! [[namespace.types]]
//! type = "probe.heartbeat"
//! ```
//!
//! The schema is JSON text (the subset of JSON Schema in
//! `docs/VOCABULARY.md`); it is compiled when the file loads, so a schema
//! that would not be enforced as written stops the load instead.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EVERY_NAMESPACE;
use crate::vocab::Vocabulary;

/// One namespace's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// The namespace (`""` is the default one, of streams without `/`).
    pub name: String,
    /// Every event must carry a producer signature by a key of the
    /// appending principal.
    pub require_signatures: bool,
    /// Bumped by every vocabulary change; 0 if never declared.
    pub vocabulary_version: u64,
    /// The declared event types; `None`: any type.
    pub types: Option<Vec<TypeDeclaration>>,
}

/// A declared event type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDeclaration {
    /// The event type.
    pub event_type: String,
    /// A JSON Schema its payload must satisfy.
    pub schema: Option<Value>,
}

/// Checks a namespace name: what [`ledger_core::namespace_of`] can return
/// (no `/`), and not the `*` of grants.
pub fn check_namespace(name: &str) -> Result<(), String> {
    if name.contains('/') {
        return Err(format!("namespace {name:?}: must not contain '/'"));
    }
    if name == EVERY_NAMESPACE {
        return Err("namespace \"*\": a policy names one namespace".to_string());
    }
    if name.len() > 256 {
        return Err(format!("namespace: {} bytes, limit is 256", name.len()));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "namespace {name:?}: whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// `[[namespace]]` as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamespaceToml {
    name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    require_signatures: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    vocabulary_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    types: Option<Vec<TypeToml>>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeToml {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
}

impl NamespaceToml {
    pub(super) fn policy(&self) -> Result<NamespacePolicy, String> {
        check_namespace(&self.name)?;
        let types = match &self.types {
            None => None,
            Some(types) => Some(
                types
                    .iter()
                    .map(|t| {
                        let schema = t
                            .schema
                            .as_deref()
                            .map(|text| {
                                serde_json::from_str(text).map_err(|e| {
                                    format!(
                                        "namespace {:?}: type {:?}: schema is not JSON: {e}",
                                        self.name, t.event_type
                                    )
                                })
                            })
                            .transpose()?;
                        Ok(TypeDeclaration {
                            event_type: t.event_type.clone(),
                            schema,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            ),
        };
        if let Some(types) = &types {
            Vocabulary::new(
                self.vocabulary_version,
                types
                    .iter()
                    .map(|t: &TypeDeclaration| (t.event_type.clone(), t.schema.clone())),
            )
            .map_err(|e| format!("namespace {:?}: {e}", self.name))?;
        }
        Ok(NamespacePolicy {
            name: self.name.clone(),
            require_signatures: self.require_signatures,
            vocabulary_version: self.vocabulary_version,
            types,
        })
    }

    pub(super) fn of(policy: &NamespacePolicy) -> NamespaceToml {
        NamespaceToml {
            name: policy.name.clone(),
            require_signatures: policy.require_signatures,
            vocabulary_version: policy.vocabulary_version,
            types: policy.types.as_ref().map(|types| {
                types
                    .iter()
                    .map(|t| TypeToml {
                        event_type: t.event_type.clone(),
                        schema: t.schema.as_ref().map(Value::to_string),
                    })
                    .collect()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_what_streams_can_be_in() {
        assert!(check_namespace("ops-hub").is_ok());
        assert!(check_namespace("").is_ok());
        assert!(check_namespace("a/b").is_err());
        assert!(check_namespace("*").is_err());
        assert!(check_namespace("a b").is_err());
    }
}
