//! API keys: their format, generation, and how they are stored and checked.
//!
//! A key is `lk_<id>_<secret>`: `id` is 8 random bytes in hex, which finds
//! the key in one hash-map lookup and may appear in logs; `secret` is 32
//! random bytes in hex, which never leaves the caller after creation. The
//! principals file keeps only a random 16-byte salt and the BLAKE3 hash
//! (derive-key mode, context [`HASH_CONTEXT`]) of salt ‖ id ‖ secret. A
//! 256-bit random secret cannot be guessed, so a fast hash is enough; the
//! salt makes equal secrets hash differently. Hashes are compared as
//! `blake3::Hash`, whose equality is constant-time.

use std::fmt;

use chrono::{DateTime, Utc};

use super::AuthError;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "lk_";
/// BLAKE3 derive-key context of stored key hashes.
pub const HASH_CONTEXT: &str = "evidence-ledger 2026-12 ledgerd API key hash v1";
/// Bytes of a key id.
pub const ID_BYTES: usize = 8;
/// Bytes of a key secret.
pub const SECRET_BYTES: usize = 32;
/// Bytes of a stored salt.
pub const SALT_BYTES: usize = 16;

/// What the principals file keeps of a key: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key id (hex), the lookup part of the key.
    pub id: String,
    /// Random salt hashed with the secret.
    pub salt: [u8; SALT_BYTES],
    /// BLAKE3 (derive-key) of salt ‖ id ‖ secret.
    pub hash: blake3::Hash,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// After this it is refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Since this it is refused.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Whether a key whose secret matched may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Valid,
    /// Past its `expires_at`.
    Expired,
    /// Revoked.
    Revoked,
}

impl KeyEntry {
    /// Whether `secret` is this key's secret, in constant time.
    pub fn verify(&self, secret: &[u8; SECRET_BYTES]) -> bool {
        hash_secret(&self.salt, &self.id, secret) == self.hash
    }

    /// Whether the key may be used at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> KeyState {
        if self.revoked_at.is_some_and(|t| t <= now) {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            KeyState::Expired
        } else {
            KeyState::Valid
        }
    }
}

/// The stored hash of a key secret.
pub fn hash_secret(salt: &[u8; SALT_BYTES], id: &str, secret: &[u8; SECRET_BYTES]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(salt);
    hasher.update(id.as_bytes());
    hasher.update(secret);
    hasher.finalize()
}

/// A key just made: the one moment the whole key exists on the server side.
/// It is printed once and dropped; only [`NewKey::entry`] is stored.
pub struct NewKey {
    entry: KeyEntry,
    key: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("entry", &self.entry)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(bytes)
}

impl NewKey {
    /// A fresh random key, made at `now`.
    pub fn generate(now: DateTime<Utc>, expires_at: Option<DateTime<Utc>>) -> Result<NewKey, AuthError> {
        let id = hex::encode(random::<ID_BYTES>()?);
        let secret = random::<SECRET_BYTES>()?;
        let salt = random::<SALT_BYTES>()?;
        let entry = KeyEntry {
            hash: hash_secret(&salt, &id, &secret),
            id: id.clone(),
            salt,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        Ok(NewKey {
            entry,
            key: format!("{KEY_PREFIX}{id}_{}", hex::encode(secret)),
        })
    }

    /// What is stored.
    pub fn entry(&self) -> &KeyEntry {
        &self.entry
    }

    /// The whole key, to show once to whoever will present it.
    pub fn expose(&self) -> &str {
        &self.key
    }
}

/// A key as presented: its id and secret. Never logged whole.
pub(crate) struct Presented {
    pub(crate) id: String,
    pub(crate) secret: [u8; SECRET_BYTES],
}

/// Splits `lk_<id>_<secret>`; `None` for anything else (which is refused
/// as an invalid key without saying why).
pub(crate) fn parse_key(text: &str) -> Option<Presented> {
    let rest = text.strip_prefix(KEY_PREFIX)?;
    let (id, secret_hex) = rest.split_once('_')?;
    let mut id_bytes = [0u8; ID_BYTES];
    hex::decode_to_slice(id, &mut id_bytes).ok()?;
    let mut secret = [0u8; SECRET_BYTES];
    hex::decode_to_slice(secret_hex, &mut secret).ok()?;
    // Ids are stored in lower case: compare in that form.
    Some(Presented {
        id: hex::encode(id_bytes),
        secret,
    })
}

/// The key of an `authorization` header value: `Bearer <key>` (scheme
/// case-insensitive, as in RFC 9110).
pub(crate) fn parse_bearer(value: &[u8]) -> Option<Presented> {
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, key) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    parse_key(key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_verifies_and_nothing_else_does() -> Result<(), AuthError> {
        let now = Utc::now();
        let key = NewKey::generate(now, None)?;
        let text = key.expose().to_string();
        assert!(text.starts_with("lk_") && text.len() == 3 + 16 + 1 + 64, "{text}");
        let presented = parse_key(&text).ok_or_else(|| AuthError::NoSuchKey(String::new()))?;
        assert_eq!(presented.id, key.entry().id);
        assert!(key.entry().verify(&presented.secret));
        let mut wrong = presented.secret;
        wrong[31] ^= 1;
        assert!(!key.entry().verify(&wrong));
        // The same secret under another salt hashes differently.
        let other = NewKey::generate(now, None)?;
        assert_ne!(other.entry().hash, key.entry().hash);
        assert!(!other.entry().verify(&presented.secret));
        assert!(!format!("{key:?}").contains(&text[20..]), "Debug shows the secret");
        Ok(())
    }

    #[test]
    fn the_stored_hash_is_pinned() {
        // A change here is a change of the principals file format: every
        // stored key would stop verifying.
        let hash = hash_secret(&[1; SALT_BYTES], "0011223344556677", &[2; SECRET_BYTES]);
        assert_eq!(
            hash.to_hex().as_str(),
            "b68ba01115bca88d193331ebd38d826b8ca860660b8ea36770d827ae83dfd7b0"
        );
        // It is BLAKE3's derive_key over salt ‖ id ‖ secret, as documented.
        let material = [&[1u8; SALT_BYTES][..], b"0011223344556677", &[2; SECRET_BYTES]].concat();
        assert_eq!(hash, blake3::Hash::from(blake3::derive_key(HASH_CONTEXT, &material)));
    }

    #[test]
    fn bearer_headers_parse_strictly() -> Result<(), AuthError> {
        let key = NewKey::generate(Utc::now(), None)?;
        let text = key.expose();
        assert!(parse_bearer(format!("Bearer {text}").as_bytes()).is_some());
        assert!(parse_bearer(format!("bearer {text}").as_bytes()).is_some());
        assert!(parse_bearer(text.as_bytes()).is_none());
        assert!(parse_bearer(format!("Basic {text}").as_bytes()).is_none());
        assert!(parse_bearer(format!("Bearer {}", &text[..text.len() - 2]).as_bytes()).is_none());
        assert!(parse_bearer(format!("Bearer {}", text.replacen("lk_", "xx_", 1)).as_bytes()).is_none());
        assert!(parse_bearer(format!("Bearer {}zz", &text[..text.len() - 2]).as_bytes()).is_none());
        assert!(parse_bearer(b"Bearer \xff").is_none());
        Ok(())
    }

    #[test]
    fn expiry_and_revocation_take_effect_at_their_time() -> Result<(), AuthError> {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let mut entry = NewKey::generate(now - hour, Some(now + hour))?.entry().clone();
        assert_eq!(entry.state_at(now), KeyState::Valid);
        assert_eq!(entry.state_at(now + hour), KeyState::Expired);
        entry.revoked_at = Some(now);
        assert_eq!(entry.state_at(now - hour), KeyState::Valid);
        assert_eq!(entry.state_at(now), KeyState::Revoked);
        Ok(())
    }
}
