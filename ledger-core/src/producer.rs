//! Producer signatures: resolving a producer's key id to its ed25519 public
//! key, and checking every signed event of a batch with one batch
//! verification in which each distinct key is one term (`ledger_verify::batch`;
//! about twice the single-verify rate, and half the curve work of
//! `ed25519_dalek::verify_batch` when one producer signed the batch).
//!
//! Which keys exist and who may use them is the caller's policy (the server's
//! key registry); this module only checks signatures against what the
//! resolver returns.

use std::collections::HashMap;
use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use uuid::Uuid;

use crate::error::{LedgerError, Result};
use crate::event::PreparedEvent;

pub use ledger_verify::batch::verify_batch;

/// Maps a producer key id to its public key.
pub trait ProducerKeyResolver: Send + Sync + fmt::Debug {
    /// The key for `key_id`, or `None` when unknown (or revoked).
    fn resolve(&self, key_id: &str) -> Option<VerifyingKey>;

    /// The key for `key_id` as bundles publish it: also a revoked key, so
    /// events signed before the revocation keep verifying.
    fn audit_key(&self, key_id: &str) -> Option<VerifyingKey> {
        self.resolve(key_id)
    }
}

/// A fixed set of producer keys.
#[derive(Clone, Debug, Default)]
pub struct StaticProducerKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl StaticProducerKeys {
    /// An empty set.
    pub fn new() -> StaticProducerKeys {
        StaticProducerKeys::default()
    }

    /// Adds or replaces a key.
    pub fn insert(&mut self, key_id: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(key_id.into(), key);
    }
}

impl ProducerKeyResolver for StaticProducerKeys {
    fn resolve(&self, key_id: &str) -> Option<VerifyingKey> {
        self.keys.get(key_id).copied()
    }
}

/// Verifies every producer signature in a prepared batch; the first bad or
/// unresolvable one rejects the whole batch, naming the event.
pub(crate) fn verify_signatures(events: &[PreparedEvent], resolver: Option<&dyn ProducerKeyResolver>) -> Result<()> {
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    let mut keys = Vec::new();
    let mut owners = Vec::new();
    for event in events {
        let Some(signature) = &event.header.signature else {
            continue;
        };
        let event_id = Uuid::from_bytes(event.header.id);
        let key =
            resolver
                .and_then(|r| r.resolve(&signature.key_id))
                .ok_or_else(|| LedgerError::UnknownProducerKey {
                    event_id,
                    key_id: signature.key_id.clone(),
                })?;
        messages.push(event.header.signing_bytes());
        signatures.push(Signature::from_bytes(&signature.signature));
        keys.push(key);
        owners.push((event_id, signature.key_id.clone()));
    }
    if messages.is_empty() {
        return Ok(());
    }
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if verify_batch(&message_refs, &signatures, &keys) {
        return Ok(());
    }
    // The batch failed: find the culprit so the error names it.
    for (i, (event_id, key_id)) in owners.into_iter().enumerate() {
        if keys[i].verify_strict(message_refs[i], &signatures[i]).is_err() {
            return Err(LedgerError::BadProducerSignature { event_id, key_id });
        }
    }
    // Batch verification is stricter than verify_strict in rare edge cases
    // (small-order components); never accept what the batch rejected.
    let (event_id, key_id) = events
        .iter()
        .find_map(|e| {
            e.header
                .signature
                .as_ref()
                .map(|s| (Uuid::from_bytes(e.header.id), s.key_id.clone()))
        })
        .unwrap_or_default();
    Err(LedgerError::BadProducerSignature { event_id, key_id })
}
