//! Producer signing keys in the principals file: the ed25519 public keys a
//! principal signs its events with.
//!
//! ```toml
//! [[principal.producer_key]]
//! id = "probe-2026-12"                  # what events name in signature.key_id
//! public_key = "<base64 of 32 bytes>"
//! added_at = "2026-12-04T10:00:00Z"
//! revoked_at = "2026-12-05T08:00:00Z"   # optional
//! ```
//!
//! A key belongs to one principal: an event signed with it is accepted only
//! from that principal, so a leaked API key alone cannot produce evidence
//! that verifies as another producer's. A revoked key stays in the file
//! (and in bundles): events it signed before still verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use ledger_core::config::limits::MAX_KEY_ID_BYTES;
use serde::{Deserialize, Serialize};

use super::principals::{rfc3339, time};

/// A registered producer key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerKeyEntry {
    /// Unique among all producer keys.
    pub id: String,
    /// The ed25519 public key.
    pub public_key: VerifyingKey,
    /// When it was registered.
    pub added_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ProducerKeyEntry {
    /// The key as base64, as the file and the admin events write it.
    pub fn public_key_base64(&self) -> String {
        BASE64.encode(self.public_key.as_bytes())
    }
}

/// Checks a producer key id: the ledger's rule for `signature.key_id`
/// (non-empty, at most 128 bytes, no whitespace or control characters).
pub fn check_key_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("producer key id: must not be empty".to_string());
    }
    if id.len() > MAX_KEY_ID_BYTES {
        return Err(format!(
            "producer key id: {} bytes, limit is {MAX_KEY_ID_BYTES}",
            id.len()
        ));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "producer key id {id:?}: whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// Parses 32 bytes of ed25519 public key.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("public_key: {} bytes, an ed25519 public key is 32", bytes.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "public_key: not a valid ed25519 point".to_string())
}

/// `[[principal.producer_key]]` as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProducerKeyToml {
    id: String,
    public_key: String,
    added_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

impl ProducerKeyToml {
    pub(super) fn entry(&self) -> Result<ProducerKeyEntry, String> {
        check_key_id(&self.id)?;
        let context = format!("producer key {:?}", self.id);
        let bytes = BASE64
            .decode(&self.public_key)
            .map_err(|e| format!("{context}: public_key: not base64: {e}"))?;
        let public_key = parse_public_key(&bytes).map_err(|e| format!("{context}: {e}"))?;
        Ok(ProducerKeyEntry {
            id: self.id.clone(),
            public_key,
            added_at: time(&self.added_at, &format!("{context}: added_at"))?,
            revoked_at: self
                .revoked_at
                .as_deref()
                .map(|t| time(t, &format!("{context}: revoked_at")))
                .transpose()?,
        })
    }

    pub(super) fn of(entry: &ProducerKeyEntry) -> ProducerKeyToml {
        ProducerKeyToml {
            id: entry.id.clone(),
            public_key: entry.public_key_base64(),
            added_at: rfc3339(entry.added_at),
            revoked_at: entry.revoked_at.map(rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_follow_the_ledger_rule() {
        assert!(check_key_id("probe-2026-12").is_ok());
        assert!(check_key_id("").is_err());
        assert!(check_key_id("a b").is_err());
        assert!(check_key_id(&"k".repeat(MAX_KEY_ID_BYTES + 1)).is_err());
    }

    #[test]
    fn public_keys_must_be_32_bytes_on_the_curve() {
        let err = parse_public_key(&[1; 31]).err().unwrap_or_default();
        assert!(err.contains("31 bytes"), "{err}");
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(parse_public_key(key.as_bytes()), Ok(key));
    }
}
