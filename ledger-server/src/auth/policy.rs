//! What the ledger accepts beyond grants: whose producer keys sign which
//! events, and which namespaces require signatures.
//!
//! Built from the principals file each time it is (re)loaded, next to the
//! key index, so a revoked producer key or a new namespace rule applies from
//! the next append on. Checked by the append handlers after the grants and
//! before the batch is queued; the signatures themselves are verified by
//! `ledger_core` (one batch verification per append) through
//! [`PolicyKeys`], which resolves key ids from the same snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use ledger_client::proto;
use ledger_core::namespace::namespace_of;
use ledger_core::producer::ProducerKeyResolver;
use tonic::Status;

use super::{Authenticator, Caller, Principals};
use crate::vocab::Vocabulary;

/// A producer key and whose it is.
#[derive(Clone, Debug)]
struct KeyOwner {
    principal: String,
    key: VerifyingKey,
    revoked_at: Option<DateTime<Utc>>,
}

/// The append rules of one principals file.
#[derive(Debug, Default)]
pub struct Policy {
    producer_keys: HashMap<String, KeyOwner>,
    namespaces: HashMap<String, NamespaceRules>,
}

/// One namespace's rules, ready to check.
#[derive(Debug)]
struct NamespaceRules {
    require_signatures: bool,
    /// `None`: any type. A vocabulary that does not compile (the file's
    /// parse refuses those, so only a bug gets here) refuses every event.
    vocabulary: Option<Result<Vocabulary, String>>,
}

impl Policy {
    /// The rules of `principals`.
    pub fn new(principals: &Principals) -> Policy {
        let mut producer_keys = HashMap::new();
        for principal in &principals.principals {
            for key in &principal.producer_keys {
                producer_keys.insert(
                    key.id.clone(),
                    KeyOwner {
                        principal: principal.name.clone(),
                        key: key.public_key,
                        revoked_at: key.revoked_at,
                    },
                );
            }
        }
        let namespaces = principals
            .namespaces
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NamespaceRules {
                        require_signatures: n.require_signatures,
                        vocabulary: n.types.as_ref().map(|types| {
                            Vocabulary::new(
                                n.vocabulary_version,
                                types.iter().map(|t| (t.event_type.clone(), t.schema.clone())),
                            )
                            .map_err(|e| e.to_string())
                        }),
                    },
                )
            })
            .collect();
        Policy {
            producer_keys,
            namespaces,
        }
    }

    /// Refuses an append whose events break a rule, naming the event (its
    /// index and id) and the reason. Grants are checked before this.
    pub fn check_append(&self, caller: &Caller, request: &proto::AppendRequest) -> Result<(), Status> {
        for (i, event) in request.events.iter().enumerate() {
            if let Some(signature) = &event.signature {
                self.check_signer(caller, i, &event.id, &signature.key_id)?;
            }
            let namespace = namespace_of(&event.stream);
            let Some(rules) = self.namespaces.get(namespace) else {
                continue;
            };
            if rules.require_signatures && event.signature.is_none() {
                return Err(Status::invalid_argument(format!(
                    "events[{i}].signature: namespace {namespace:?} requires producer signatures; event {} is unsigned",
                    event.id
                )));
            }
            match &rules.vocabulary {
                None => {}
                Some(Err(reason)) => {
                    return Err(Status::failed_precondition(format!(
                        "events[{i}].type: the vocabulary of namespace {namespace:?} does not compile: {reason}"
                    )));
                }
                Some(Ok(vocabulary)) => {
                    let content_type = if event.content_type.is_empty() {
                        ledger_core::event::JSON
                    } else {
                        event.content_type.as_str()
                    };
                    if let Err(err) = vocabulary.check(&event.r#type, content_type, &event.payload) {
                        let message = match err.field() {
                            Some("type") => format!("events[{i}].type: {err} of namespace {namespace:?}"),
                            _ => format!("events[{i}].{err} (type {:?}, namespace {namespace:?})", event.r#type),
                        };
                        return Err(Status::invalid_argument(message));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_signer(&self, caller: &Caller, i: usize, event_id: &str, key_id: &str) -> Result<(), Status> {
        let field = format!("events[{i}].signature.key_id");
        let Some(owner) = self.producer_keys.get(key_id) else {
            return Err(Status::invalid_argument(format!(
                "{field}: unknown producer key {key_id:?} (event {event_id})"
            )));
        };
        if let Some(revoked_at) = owner.revoked_at {
            return Err(Status::invalid_argument(format!(
                "{field}: producer key {key_id:?} was revoked at {} (event {event_id})",
                revoked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        if owner.principal != caller.name() && !caller.is_development() {
            return Err(Status::permission_denied(format!(
                "{field}: producer key {key_id:?} is not registered to principal {:?} (event {event_id})",
                caller.name()
            )));
        }
        Ok(())
    }
}

/// Resolves producer key ids through the authenticator's current policy,
/// for `ledger_core`'s signature check and for bundles.
#[derive(Debug)]
pub struct PolicyKeys(pub Arc<Authenticator>);

impl ProducerKeyResolver for PolicyKeys {
    fn resolve(&self, key_id: &str) -> Option<VerifyingKey> {
        let policy = self.0.policy();
        let owner = policy.producer_keys.get(key_id)?;
        owner.revoked_at.is_none().then_some(owner.key)
    }

    fn audit_key(&self, key_id: &str) -> Option<VerifyingKey> {
        self.0.policy().producer_keys.get(key_id).map(|owner| owner.key)
    }
}
