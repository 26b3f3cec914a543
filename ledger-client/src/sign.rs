//! Producer signatures, made where the evidence is produced.
//!
//! A producer holding an ed25519 key signs each event's signing bytes
//! (`docs/FORMAT.md`: the event domain tag, the encoding version and the
//! event fields as the record encodes them, without the signature), so its
//! evidence verifies as its own in any bundle, whoever relayed it. The
//! server accepts a signature only by a key registered to the appending
//! principal (`ledger admin producer-key add`), and a namespace may require
//! one.
//!
//! The bytes are computed from the wire event exactly as `ledgerd` converts
//! it (an empty content type is `application/json`), with the encoder of
//! `ledger-verify`, the crate auditors use: there is one definition of the
//! bytes.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use ledger_verify::record::{EventHeader, Metadata};

use crate::error::{ClientError, Result};
use crate::proto;

/// The content type an empty `content_type` stands for.
const JSON: &str = "application/json";

/// A producer's signing key and the id the ledger knows it by.
#[derive(Clone)]
pub struct ProducerKey {
    key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for ProducerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ClientError {
    ClientError::InvalidInput {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl ProducerKey {
    /// The key with secret `seed` (32 bytes), known as `key_id`.
    pub fn from_seed(key_id: impl Into<String>, seed: [u8; 32]) -> ProducerKey {
        ProducerKey {
            key_id: key_id.into(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Reads a key file: the 32-byte seed in base64 on one line (what
    /// `ledger producer-key generate` writes).
    pub fn from_file(key_id: impl Into<String>, path: &Path) -> Result<ProducerKey> {
        let field = "sign_key";
        let text =
            std::fs::read_to_string(path).map_err(|e| invalid(field, format!("reading {}: {e}", path.display())))?;
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| invalid(field, format!("{}: not base64: {e}", path.display())))?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            invalid(
                field,
                format!("{}: {} bytes, an ed25519 seed is 32", path.display(), bytes.len()),
            )
        })?;
        Ok(ProducerKey::from_seed(key_id, seed))
    }

    /// The text of a key file for `seed`.
    pub fn file_text(seed: &[u8; 32]) -> String {
        format!("{}\n", BASE64.encode(seed))
    }

    /// The id events name in `signature.key_id`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, to register with the ledger.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key in base64.
    pub fn public_key_base64(&self) -> String {
        BASE64.encode(self.public_key())
    }

    /// Signs `event` in place (replacing any signature it had).
    pub fn sign(&self, event: &mut proto::Event) -> Result<()> {
        let bytes = signing_bytes(event)?;
        event.signature = Some(proto::ProducerSignature {
            key_id: self.key_id.clone(),
            signature: self.key.sign(&bytes).to_bytes().to_vec(),
        });
        Ok(())
    }
}

/// Standard base64, as keys are written in files and admin listings.
pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes standard base64.
pub fn decode_base64(text: &str) -> Result<Vec<u8>> {
    BASE64
        .decode(text.trim())
        .map_err(|e| invalid("base64", format!("not base64: {e}")))
}

/// The bytes a producer signs for `event`.
pub fn signing_bytes(event: &proto::Event) -> Result<Vec<u8>> {
    let id = uuid::Uuid::parse_str(&event.id).map_err(|e| invalid("id", format!("not a UUID: {e}")))?;
    let occurred_at = event
        .occurred_at
        .as_ref()
        .ok_or_else(|| invalid("occurred_at", "required (it is signed)"))?;
    let nanos = u32::try_from(occurred_at.nanos).map_err(|_| invalid("occurred_at", "negative nanos"))?;
    let occurred_at_ns = chrono::DateTime::from_timestamp(occurred_at.seconds, nanos)
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| invalid("occurred_at", "out of range"))?;
    let metadata = event.metadata.clone().unwrap_or_default();
    let header = EventHeader {
        id: *id.as_bytes(),
        stream: event.stream.clone(),
        event_type: event.r#type.clone(),
        occurred_at_ns,
        content_type: if event.content_type.is_empty() {
            JSON.to_string()
        } else {
            event.content_type.clone()
        },
        payload_len: event.payload.len() as u64,
        payload_hash: ledger_verify::hash::blake3(&event.payload),
        metadata: Metadata {
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            trace_id: metadata.trace_id,
            extra: metadata.extra.into_iter().collect(),
        },
        signature: None,
    };
    Ok(header.signing_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_over_the_signing_bytes_and_binds_the_payload() -> Result<()> {
        let key = ProducerKey::from_seed("probe-1", [9; 32]);
        let mut event = crate::event("ops-hub/probe", "probe.result", br#"{"ok":true}"#.to_vec());
        key.sign(&mut event)?;
        let signature = event.signature.clone().ok_or_else(|| invalid("signature", "missing"))?;
        assert_eq!(signature.key_id, "probe-1");
        let public = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key())
            .map_err(|e| invalid("public_key", e.to_string()))?;
        let sig = ed25519_dalek::Signature::from_slice(&signature.signature)
            .map_err(|e| invalid("signature", e.to_string()))?;
        assert!(public.verify_strict(&signing_bytes(&event)?, &sig).is_ok());
        event.payload = br#"{"ok":false}"#.to_vec();
        assert!(public.verify_strict(&signing_bytes(&event)?, &sig).is_err());
        Ok(())
    }

    #[test]
    fn an_event_without_id_or_time_cannot_be_signed() {
        let key = ProducerKey::from_seed("k", [1; 32]);
        let mut event = crate::event("s", "t", Vec::new());
        event.occurred_at = None;
        assert!(matches!(key.sign(&mut event), Err(ClientError::InvalidInput { field, .. }) if field == "occurred_at"));
        let mut event = crate::event("s", "t", Vec::new());
        event.id = "nope".to_string();
        assert!(matches!(key.sign(&mut event), Err(ClientError::InvalidInput { field, .. }) if field == "id"));
    }
}
