//! Ledger key rotation records (`docs/FORMAT.md` §6.1): the payload of the
//! `ledger.key_rotated` event a ledger appends, signed by its old key,
//! before it starts signing with a new one. Both keys sign a statement
//! naming the origin and both keys, so the record proves the old key
//! handed over to a key whose holder agreed.
//!
//! ```text
//! statement = "evidence-ledger:key-rotation" 0x00 ‖ 0x01
//!           ‖ string(origin) ‖ string(old verifier key) ‖ string(new verifier key)
//! ```
//! (`string` = u32 little-endian byte length, then UTF-8.)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::note::{NoteError, VerifierKey};

/// Event type of a rotation record.
pub const KEY_ROTATED: &str = "ledger.key_rotated";
/// Stream the rotation records are appended to.
pub const KEYS_STREAM: &str = "ledger/keys";
/// Domain tag of the statement both keys sign.
pub const ROTATION_DOMAIN: &[u8] = b"evidence-ledger:key-rotation\x00";

/// The payload of a `ledger.key_rotated` event (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    /// The ledger's origin.
    pub origin: String,
    /// The retiring key, verifier key text form.
    pub old_key: String,
    /// The new key, verifier key text form.
    pub new_key: String,
    /// Base64 ed25519 signature of the old key over the statement.
    pub old_key_signature: String,
    /// Base64 ed25519 signature of the new key over the statement.
    pub new_key_signature: String,
}

/// Why a rotation record does not check out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The payload is not a rotation record.
    #[error("rotation record: {0}")]
    Json(String),
    /// A key does not parse.
    #[error("rotation record: {field}: {source}")]
    Key {
        /// `old_key` or `new_key`.
        field: &'static str,
        /// Why.
        source: NoteError,
    },
    /// A signature is malformed or does not verify.
    #[error("rotation record: {0} does not verify")]
    Signature(&'static str),
}

/// The bytes both keys sign.
pub fn rotation_statement(origin: &str, old_key: &str, new_key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROTATION_DOMAIN.len() + 1 + 12 + origin.len() + old_key.len() + new_key.len());
    out.extend_from_slice(ROTATION_DOMAIN);
    out.push(1);
    for text in [origin, old_key, new_key] {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out
}

impl KeyRotation {
    /// Parses a `ledger.key_rotated` payload.
    pub fn parse(payload: &[u8]) -> Result<KeyRotation, RotationError> {
        serde_json::from_slice(payload).map_err(|e| RotationError::Json(e.to_string()))
    }

    /// Checks both signatures; returns the old and the new key.
    pub fn verify(&self) -> Result<(VerifierKey, VerifierKey), RotationError> {
        let old = VerifierKey::parse(&self.old_key).map_err(|source| RotationError::Key {
            field: "old_key",
            source,
        })?;
        let new = VerifierKey::parse(&self.new_key).map_err(|source| RotationError::Key {
            field: "new_key",
            source,
        })?;
        let statement = rotation_statement(&self.origin, &self.old_key, &self.new_key);
        for (key, signature, what) in [
            (&old, &self.old_key_signature, "old_key_signature"),
            (&new, &self.new_key_signature, "new_key_signature"),
        ] {
            let bytes: [u8; 64] = BASE64
                .decode(signature)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(RotationError::Signature(what))?;
            VerifyingKey::from_bytes(&key.public_key)
                .and_then(|k| k.verify_strict(&statement, &Signature::from_bytes(&bytes)))
                .map_err(|_| RotationError::Signature(what))?;
        }
        Ok((old, new))
    }
}
