//! Audit bundles: one self-contained JSON file holding selected records,
//! an inclusion proof for each against one signed checkpoint, the
//! checkpoint, the producer keys referenced, and the ledger's signature over
//! a manifest that commits to all of it (`docs/FORMAT.md` §12).
//!
//! JSON is only the container. Everything that is hashed or signed is a
//! binary encoding defined in [`digest`]; the JSON fields carry the bytes
//! (base64) and hashes (hex) those encodings are computed from, so nothing
//! depends on how a JSON library orders keys or writes numbers.
//!
//! Payloads are not signed by the bundle: each record's canonical bytes
//! commit to its payload's length and BLAKE3 hash, and a verifier checks
//! every payload that is present against them. Payloads can therefore be
//! left out (selective disclosure) when the bundle is made, or stripped from
//! a signed bundle later, without breaking any signature.

pub mod digest;
pub mod verify;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use digest::{contents_digest, manifest_bytes, manifest_digest, seal, signature_message};
pub use verify::{BundleError, Verified, VerifyOptions, parse_bundle, verify_bundle, verify_parsed};

/// The `format` of every bundle this crate writes and reads.
pub const BUNDLE_FORMAT: &str = "evidence-ledger-bundle/v1";

/// Largest bundle file a verifier reads (1 GiB): a bound on memory for
/// untrusted input.
pub const MAX_BUNDLE_BYTES: usize = 1 << 30;

/// A bundle file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// What was selected, from which ledger, and the digest of the contents.
    pub manifest: Manifest,
    /// The signed checkpoint (a C2SP signed note, `docs/FORMAT.md` §5) every
    /// inclusion proof leads to.
    pub checkpoint: String,
    /// The selected records, in strictly increasing seq order.
    pub records: Vec<BundleRecord>,
    /// The public keys of the producers whose signatures the records carry.
    pub producer_keys: Vec<ProducerKey>,
    /// The ledger's key rotation records (`ledger.key_rotated`, stream
    /// `ledger/keys`) inside the checkpoint's tree, payloads included, each
    /// with its proof: they say which signing key was valid for which tree
    /// sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_rotations: Vec<BundleRecord>,
    /// Optional proofs that the checkpoint extends older ones an auditor may
    /// already trust (not covered by the manifest: each is checked against
    /// checkpoints the auditor supplies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<ConsistencyProof>,
    /// The ledger's signature over the manifest digest.
    pub signature: ManifestSignature,
}

/// What the ledger signs (through [`manifest_digest`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// A UUID naming the bundle.
    pub bundle_id: String,
    /// When it was made: RFC 3339 UTC with nine fraction digits and `Z`.
    pub created_at: String,
    /// The ledger's origin (the checkpoint's first line).
    pub origin: String,
    /// The Merkle tree hash: `blake3` or `sha256`.
    pub hash_alg: String,
    /// The selector used, as `name → value` (e.g. `incident → INC-2026-0042`).
    /// A name given twice is refused: which value was signed would depend
    /// on the JSON library.
    #[serde(deserialize_with = "unique_keys")]
    pub selector: BTreeMap<String, String>,
    /// Number of records.
    pub record_count: u64,
    /// The checkpoint's tree size.
    pub checkpoint_size: u64,
    /// Hex BLAKE3 [`contents_digest`] of the checkpoint, the records' hashes
    /// and proofs, and the producer keys.
    pub contents_digest: String,
}

/// One record with its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    /// Its seq (the Merkle leaf index).
    pub seq: u64,
    /// Hex BLAKE3 of `canonical`: the record hash.
    pub record_hash: String,
    /// Base64 canonical record bytes (`docs/FORMAT.md` §3).
    pub canonical: String,
    /// Base64 payload, or absent when withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The inclusion proof of the record in the checkpoint's tree.
    pub proof: InclusionProof,
}

/// An RFC 9162 inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The leaf index it proves (must equal the record's seq).
    pub index: u64,
    /// The audit path, hex, leaf to root.
    pub hashes: Vec<String>,
}

/// A producer's ed25519 public key, as referenced by records' `key_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerKey {
    /// The key id records name.
    pub key_id: String,
    /// Base64 of the 32-byte ed25519 public key.
    pub public_key: String,
}

/// An RFC 9162 consistency proof from an older tree to the bundle's
/// checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub old_size: u64,
    /// The older tree's root, hex.
    pub old_root: String,
    /// The proof hashes, hex.
    pub hashes: Vec<String>,
}

/// The ledger's signature over the manifest digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// The signing key's name (as on checkpoint signature lines).
    pub key_name: String,
    /// Its 4-byte note key id, 8 lower-case hex digits.
    pub key_id: String,
    /// Base64 of the 64-byte ed25519 signature over [`signature_message`].
    pub signature: String,
}

/// Deserializes a JSON object into a map, refusing duplicate keys (serde's
/// own map impl keeps the last one silently).
fn unique_keys<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of strings")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = BTreeMap::new();
            while let Some((key, value)) = access.next_entry::<String, String>()? {
                if map.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!("duplicate selector key {key:?}")));
                }
                map.insert(key, value);
            }
            Ok(map)
        }
    }
    deserializer.deserialize_map(Visitor)
}

/// A bundle field that does not decode, named by its JSON path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// E.g. `records[3].proof.hashes[1]`.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
