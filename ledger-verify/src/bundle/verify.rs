//! Verifying a bundle against trusted ledger keys, trusting nothing in the
//! file (`docs/FORMAT.md` §12.4 lists the checks in this order).
//!
//! The order is chosen so that each kind of tampering is reported as
//! itself: records are checked one by one (their bytes, payloads, chain
//! links and proofs) before the digests that cover all of them, so an edited
//! record is named by its seq rather than reported as a digest mismatch.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, VerifyingKey};

use super::digest::{base64_array, contents_digest, hex_hash, manifest_digest, signature_message};
use super::{BUNDLE_FORMAT, Bundle, BundleRecord, FieldError, MAX_BUNDLE_BYTES};
use crate::hash::{Hash, HashAlg, blake3};
use crate::merkle::{verify_consistency, verify_inclusion};
use crate::note::{Checkpoint, NoteError, VerifierKey, open_checkpoint, open_note};
use crate::record::{RecordHeader, record_hash};
use crate::rotation::{KEY_ROTATED, KEYS_STREAM, KeyRotation};

/// What the auditor trusts.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions<'a> {
    /// Ledger verifier keys (any of them may have signed: keys rotate).
    pub keys: &'a [VerifierKey],
    /// Signed checkpoints the auditor already trusts (note text); the
    /// bundle must prove its checkpoint consistent with each.
    pub trusted_checkpoints: &'a [String],
}

/// What a bundle that verified holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records verified.
    pub records: u64,
    /// The checkpoint's tree size.
    pub checkpoint_size: u64,
    /// The ledger's origin.
    pub origin: String,
    /// Records whose payload was present (and matched).
    pub payloads: u64,
    /// Records with a producer signature (all verified).
    pub producer_signatures: u64,
    /// Chain links checked between consecutive records.
    pub chain_links: u64,
    /// Trusted checkpoints the bundle's checkpoint was proven to extend.
    pub consistency_proofs: u64,
    /// Key rotation records checked.
    pub key_rotations: u64,
    /// The key that signed the manifest.
    pub manifest_key: String,
}

/// Why a bundle does not verify: one variant per kind of failure, each
/// naming where (record seq, field, key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle: {0} bytes, larger than the 1 GiB a verifier reads")]
    TooLarge(usize),
    /// Not JSON of the bundle shape.
    #[error("bundle: not a bundle file: {0}")]
    Json(String),
    /// Another format or version.
    #[error("format: {0:?} is not {BUNDLE_FORMAT:?}")]
    Format(String),
    /// A field does not decode (hex, base64, length).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The checkpoint's note does not open with the trusted keys, or its
    /// body does not parse.
    #[error("checkpoint: {0}")]
    Checkpoint(NoteError),
    /// The checkpoint and the manifest disagree.
    #[error("checkpoint: its {field} is {checkpoint:?} but the manifest says {manifest:?}")]
    CheckpointMismatch {
        /// `origin`, `size` or `hash-alg`.
        field: &'static str,
        /// The checkpoint's value.
        checkpoint: String,
        /// The manifest's value.
        manifest: String,
    },
    /// `manifest.record_count` is not the number of records (one removed or
    /// added).
    #[error("manifest: record_count is {stated} but the bundle holds {actual} records")]
    RecordCount {
        /// Stated.
        stated: u64,
        /// Present.
        actual: u64,
    },
    /// Records are not in strictly increasing seq order.
    #[error("records[{index}]: seq {seq} follows seq {previous} (records must be in increasing seq order)")]
    RecordOrder {
        /// Position in the file.
        index: usize,
        /// Its seq.
        seq: u64,
        /// The seq before it.
        previous: u64,
    },
    /// A record's seq is not inside the checkpoint's tree.
    #[error("record seq {seq}: beyond the checkpoint's tree size {size}")]
    BeyondCheckpoint {
        /// The seq.
        seq: u64,
        /// The tree size.
        size: u64,
    },
    /// The canonical bytes do not hash to the stated record hash.
    #[error("record seq {seq}: canonical bytes do not hash to its record_hash (a record field was changed)")]
    RecordHash {
        /// The record.
        seq: u64,
    },
    /// The canonical bytes do not decode.
    #[error("record seq {seq}: canonical bytes do not decode: {reason}")]
    RecordDecode {
        /// The record.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The seq inside the canonical bytes is not the stated one.
    #[error("record seq {seq}: its canonical bytes hold seq {canonical}")]
    SeqMismatch {
        /// Stated.
        seq: u64,
        /// Inside the canonical bytes.
        canonical: u64,
    },
    /// A present payload does not match the length and hash the record
    /// commits to.
    #[error("record seq {seq}: payload does not match the record's payload {what}")]
    Payload {
        /// The record.
        seq: u64,
        /// `length` or `hash`.
        what: &'static str,
    },
    /// `prev_hash` is not the previous record's hash.
    #[error("record seq {seq}: prev_hash is not the record hash of seq {previous} (broken chain)")]
    ChainBroken {
        /// The record.
        seq: u64,
        /// The record before it.
        previous: u64,
    },
    /// The last record of the tree is not the checkpoint's chain head.
    #[error("record seq {seq}: its hash is not the checkpoint's chain-head")]
    ChainHead {
        /// The record.
        seq: u64,
    },
    /// The inclusion proof is for another leaf.
    #[error("record seq {seq}: its inclusion proof is for index {index}")]
    ProofIndex {
        /// The record.
        seq: u64,
        /// The proof's index.
        index: u64,
    },
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("record seq {seq}: inclusion proof fails against the checkpoint root: {reason}")]
    Inclusion {
        /// The record.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A producer signature names a key the bundle does not carry.
    #[error("record seq {seq}: producer key {key_id:?} is not among the bundle's producer_keys")]
    UnknownProducerKey {
        /// The record.
        seq: u64,
        /// The key id.
        key_id: String,
    },
    /// A producer signature does not verify.
    #[error("record seq {seq}: producer signature by {key_id:?} does not verify")]
    ProducerSignature {
        /// The record.
        seq: u64,
        /// The key id.
        key_id: String,
    },
    /// A bundled key rotation record does not check out.
    #[error("key rotation record seq {seq}: {reason}")]
    KeyRotation {
        /// The record.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The checkpoint or the manifest is signed by a key that a bundled
    /// rotation record retired before the checkpoint's size.
    #[error(
        "signed by {key}, retired by the key rotation record at seq {rotation_seq}: it signs no tree larger than {last_size}, this one has {size}"
    )]
    RetiredKey {
        /// The retired key (verifier key text).
        key: String,
        /// Seq of the rotation record.
        rotation_seq: u64,
        /// The largest tree size it may sign.
        last_size: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The contents digest is not the one the manifest states.
    #[error("manifest: contents_digest {stated} does not match the contents ({computed})")]
    ContentsDigest {
        /// Stated.
        stated: String,
        /// Computed.
        computed: String,
    },
    /// The manifest was signed by a key the auditor does not trust.
    #[error("signature: manifest signed by {key_name}+{key_id}, not a trusted key")]
    UntrustedManifestKey {
        /// Key name.
        key_name: String,
        /// Key id (hex).
        key_id: String,
    },
    /// The manifest signature does not verify (the manifest was edited
    /// after signing, or the signature was).
    #[error("signature: the manifest signature by {key_name} does not verify (manifest edited after signing?)")]
    ManifestSignature {
        /// Key name.
        key_name: String,
    },
    /// A trusted checkpoint could not be shown to be extended by the
    /// bundle's checkpoint.
    #[error("consistency with trusted checkpoint of size {old_size}: {reason}")]
    Consistency {
        /// The trusted checkpoint's size.
        old_size: u64,
        /// Why.
        reason: String,
    },
}

impl BundleError {
    /// A short stable name of the failure kind (for `--json` output and
    /// tests).
    pub fn kind(&self) -> &'static str {
        match self {
            BundleError::TooLarge(_) => "too_large",
            BundleError::Json(_) => "json",
            BundleError::Format(_) => "format",
            BundleError::Field(_) => "field",
            BundleError::Checkpoint(_) => "checkpoint",
            BundleError::CheckpointMismatch { .. } => "checkpoint_mismatch",
            BundleError::RecordCount { .. } => "record_count",
            BundleError::RecordOrder { .. } => "record_order",
            BundleError::BeyondCheckpoint { .. } => "beyond_checkpoint",
            BundleError::RecordHash { .. } => "record_hash",
            BundleError::RecordDecode { .. } => "record_decode",
            BundleError::SeqMismatch { .. } => "seq_mismatch",
            BundleError::Payload { .. } => "payload",
            BundleError::ChainBroken { .. } => "chain_broken",
            BundleError::ChainHead { .. } => "chain_head",
            BundleError::ProofIndex { .. } => "proof_index",
            BundleError::Inclusion { .. } => "inclusion",
            BundleError::UnknownProducerKey { .. } => "unknown_producer_key",
            BundleError::ProducerSignature { .. } => "producer_signature",
            BundleError::KeyRotation { .. } => "key_rotation",
            BundleError::RetiredKey { .. } => "retired_key",
            BundleError::ContentsDigest { .. } => "contents_digest",
            BundleError::UntrustedManifestKey { .. } => "untrusted_manifest_key",
            BundleError::ManifestSignature { .. } => "manifest_signature",
            BundleError::Consistency { .. } => "consistency",
        }
    }

    /// The record seq the failure is about, if it is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            BundleError::BeyondCheckpoint { seq, .. }
            | BundleError::RecordHash { seq }
            | BundleError::RecordDecode { seq, .. }
            | BundleError::SeqMismatch { seq, .. }
            | BundleError::Payload { seq, .. }
            | BundleError::ChainBroken { seq, .. }
            | BundleError::ChainHead { seq }
            | BundleError::ProofIndex { seq, .. }
            | BundleError::Inclusion { seq, .. }
            | BundleError::UnknownProducerKey { seq, .. }
            | BundleError::ProducerSignature { seq, .. }
            | BundleError::RecordOrder { seq, .. }
            | BundleError::KeyRotation { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// Parses a bundle file (bounded size, strict fields).
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))?;
    if bundle.format != BUNDLE_FORMAT {
        return Err(BundleError::Format(bundle.format));
    }
    Ok(bundle)
}

/// Verifies the bundle file `bytes` (see the module docs and FORMAT §12.4).
pub fn verify_bundle(bytes: &[u8], options: VerifyOptions<'_>) -> Result<Verified, BundleError> {
    let bundle = parse_bundle(bytes)?;
    verify_parsed(&bundle, options)
}

/// The hash algorithm named by the checkpoint's `hash-alg` line.
fn checkpoint_alg(checkpoint: &Checkpoint) -> Option<&str> {
    checkpoint
        .extensions
        .iter()
        .find_map(|line| line.strip_prefix("hash-alg "))
}

fn checkpoint_chain_head(checkpoint: &Checkpoint) -> Option<&str> {
    checkpoint
        .extensions
        .iter()
        .find_map(|line| line.strip_prefix("chain-head "))
}

/// Verifies an already parsed bundle.
pub fn verify_parsed(bundle: &Bundle, options: VerifyOptions<'_>) -> Result<Verified, BundleError> {
    let manifest = &bundle.manifest;
    let (body, signers) = open_note(&bundle.checkpoint, options.keys).map_err(BundleError::Checkpoint)?;
    let checkpoint = Checkpoint::parse_body(&body).map_err(BundleError::Checkpoint)?;
    let mismatch = |field: &'static str, checkpoint: String, manifest: String| BundleError::CheckpointMismatch {
        field,
        checkpoint,
        manifest,
    };
    if checkpoint.origin != manifest.origin {
        return Err(mismatch("origin", checkpoint.origin, manifest.origin.clone()));
    }
    if checkpoint.size != manifest.checkpoint_size {
        return Err(mismatch(
            "size",
            checkpoint.size.to_string(),
            manifest.checkpoint_size.to_string(),
        ));
    }
    let alg_name = checkpoint_alg(&checkpoint).unwrap_or("(none)");
    if alg_name != manifest.hash_alg {
        return Err(mismatch("hash-alg", alg_name.to_string(), manifest.hash_alg.clone()));
    }
    let alg = HashAlg::from_name(alg_name).ok_or_else(|| {
        BundleError::Field(FieldError::new(
            "manifest.hash_alg",
            format!("{alg_name:?} is not blake3 or sha256"),
        ))
    })?;
    let actual = bundle.records.len() as u64;
    if manifest.record_count != actual {
        return Err(BundleError::RecordCount {
            stated: manifest.record_count,
            actual,
        });
    }

    // Which key was valid when: a retired key signs no tree larger than
    // the one that first covered its rotation record.
    let retired = key_rotations(bundle, &checkpoint, alg)?;
    let mut refusal = None;
    let mut valid_signer = false;
    for signer in &signers {
        match check_not_retired(&retired, signer, checkpoint.size) {
            Ok(()) => valid_signer = true,
            Err(err) => refusal = refusal.or(Some(err)),
        }
    }
    if !valid_signer && let Some(err) = refusal {
        return Err(err);
    }

    let producer_keys = producer_keys(bundle)?;
    let mut previous: Option<(u64, Hash)> = None;
    let mut payloads = 0u64;
    let mut chain_links = 0u64;
    let mut signed: Vec<(u64, String, Vec<u8>, Signature, VerifyingKey)> = Vec::new();
    for (index, record) in bundle.records.iter().enumerate() {
        let seq = record.seq;
        if let Some((prev_seq, _)) = previous
            && seq <= prev_seq
        {
            return Err(BundleError::RecordOrder {
                index,
                seq,
                previous: prev_seq,
            });
        }
        let Checked { header, hash, payload } = check_record(record, &format!("records[{index}]"), &checkpoint)?;
        if payload.is_some() {
            payloads += 1;
        }
        if let Some((prev_seq, prev_hash)) = previous
            && prev_seq + 1 == seq
        {
            if header.prev_hash != prev_hash {
                return Err(BundleError::ChainBroken {
                    seq,
                    previous: prev_seq,
                });
            }
            chain_links += 1;
        }
        check_proof(record, &format!("records[{index}]"), &hash, &checkpoint, alg)?;
        if let Some(signature) = &header.event.signature {
            let key = producer_keys
                .get(signature.key_id.as_str())
                .ok_or_else(|| BundleError::UnknownProducerKey {
                    seq,
                    key_id: signature.key_id.clone(),
                })?;
            signed.push((
                seq,
                signature.key_id.clone(),
                header.event.signing_bytes(),
                Signature::from_bytes(&signature.signature),
                *key,
            ));
        }
        previous = Some((seq, hash));
    }
    verify_producer_signatures(&signed)?;

    let computed = hex::encode(contents_digest(bundle)?);
    if computed != manifest.contents_digest {
        return Err(BundleError::ContentsDigest {
            stated: manifest.contents_digest.clone(),
            computed,
        });
    }
    let manifest_signer = verify_manifest_signature(bundle, options.keys)?;
    check_not_retired(&retired, &manifest_signer, checkpoint.size)?;
    let manifest_key = format!("{}+{}", manifest_signer.name, hex::encode(manifest_signer.key_id));
    let consistency_proofs = verify_trusted_checkpoints(bundle, &checkpoint, alg, options)?;
    Ok(Verified {
        records: actual,
        checkpoint_size: checkpoint.size,
        origin: checkpoint.origin,
        payloads,
        producer_signatures: signed.len() as u64,
        chain_links,
        consistency_proofs,
        key_rotations: retired.len() as u64,
        manifest_key,
    })
}

/// What [`check_record`] established about a record.
struct Checked {
    header: RecordHeader,
    hash: Hash,
    payload: Option<Vec<u8>>,
}

/// The first checks every bundled record gets: inside the tree, its bytes
/// hash to its stated record hash and decode with the stated seq, and a
/// present payload matches.
fn check_record(record: &BundleRecord, field: &str, checkpoint: &Checkpoint) -> Result<Checked, BundleError> {
    let seq = record.seq;
    if seq >= checkpoint.size {
        return Err(BundleError::BeyondCheckpoint {
            seq,
            size: checkpoint.size,
        });
    }
    let stated_hash = hex_hash(&record.record_hash, || format!("{field}.record_hash"))?;
    let canonical = BASE64
        .decode(&record.canonical)
        .map_err(|e| FieldError::new(format!("{field}.canonical"), format!("not base64: {e}")))?;
    let hash = record_hash(&canonical);
    if hash != stated_hash {
        return Err(BundleError::RecordHash { seq });
    }
    let header = RecordHeader::decode(&canonical).map_err(|e| BundleError::RecordDecode {
        seq,
        reason: e.to_string(),
    })?;
    if header.seq != seq {
        return Err(BundleError::SeqMismatch {
            seq,
            canonical: header.seq,
        });
    }
    let payload = match &record.payload {
        None => None,
        Some(payload) => {
            let payload = BASE64
                .decode(payload)
                .map_err(|e| FieldError::new(format!("{field}.payload"), format!("not base64: {e}")))?;
            if payload.len() as u64 != header.event.payload_len {
                return Err(BundleError::Payload { seq, what: "length" });
            }
            if blake3(&payload) != header.event.payload_hash {
                return Err(BundleError::Payload { seq, what: "hash" });
            }
            Some(payload)
        }
    };
    Ok(Checked { header, hash, payload })
}

/// The proof checks of a bundled record (after [`check_record`] and the
/// chain link): the chain head if it is the tree's last record, then its
/// inclusion proof is for it and leads to the checkpoint's root.
fn check_proof(
    record: &BundleRecord,
    field: &str,
    hash: &Hash,
    checkpoint: &Checkpoint,
    alg: HashAlg,
) -> Result<(), BundleError> {
    let seq = record.seq;
    if seq + 1 == checkpoint.size
        && let Some(head) = checkpoint_chain_head(checkpoint)
        && head != hex::encode(hash)
    {
        return Err(BundleError::ChainHead { seq });
    }
    if record.proof.index != seq {
        return Err(BundleError::ProofIndex {
            seq,
            index: record.proof.index,
        });
    }
    let proof = record
        .proof
        .hashes
        .iter()
        .enumerate()
        .map(|(j, h)| hex_hash(h, || format!("{field}.proof.hashes[{j}]")))
        .collect::<Result<Vec<_>, _>>()?;
    verify_inclusion(
        alg,
        seq,
        checkpoint.size,
        &alg.leaf_hash(hash),
        &proof,
        &checkpoint.root,
    )
    .map_err(|e| BundleError::Inclusion {
        seq,
        reason: e.to_string(),
    })
}

/// Checks the bundled key rotation records and returns, per retired key,
/// the largest tree size it may have signed (the size that first covered
/// its rotation record).
fn key_rotations(
    bundle: &Bundle,
    checkpoint: &Checkpoint,
    alg: HashAlg,
) -> Result<Vec<(VerifierKey, u64, u64)>, BundleError> {
    let mut retired = Vec::new();
    let mut previous = None;
    for (index, record) in bundle.key_rotations.iter().enumerate() {
        let seq = record.seq;
        let bad = |reason: String| BundleError::KeyRotation { seq, reason };
        if previous.is_some_and(|p| seq <= p) {
            return Err(bad("key rotation records must be in increasing seq order".to_string()));
        }
        previous = Some(seq);
        let field = format!("key_rotations[{index}]");
        let checked = check_record(record, &field, checkpoint)?;
        check_proof(record, &field, &checked.hash, checkpoint, alg)?;
        let event = &checked.header.event;
        if event.event_type != KEY_ROTATED || event.stream != KEYS_STREAM {
            return Err(bad(format!(
                "a {:?} record on {:?}, not {KEY_ROTATED} on {KEYS_STREAM}",
                event.event_type, event.stream
            )));
        }
        let payload = checked
            .payload
            .ok_or_else(|| bad("its payload is withheld".to_string()))?;
        let rotation = KeyRotation::parse(&payload).map_err(|e| bad(e.to_string()))?;
        if rotation.origin != checkpoint.origin {
            return Err(bad(format!("it rotates the keys of {:?}", rotation.origin)));
        }
        let (old, _) = rotation.verify().map_err(|e| bad(e.to_string()))?;
        retired.push((old, seq, seq + 1));
    }
    Ok(retired)
}

/// Fails when `key` was retired before `size` (by a bundled rotation).
fn check_not_retired(retired: &[(VerifierKey, u64, u64)], key: &VerifierKey, size: u64) -> Result<(), BundleError> {
    match retired.iter().find(|(old, _, last)| old == key && size > *last) {
        Some((_, rotation_seq, last)) => Err(BundleError::RetiredKey {
            key: key.to_string(),
            rotation_seq: *rotation_seq,
            last_size: *last,
            size,
        }),
        None => Ok(()),
    }
}

fn producer_keys(bundle: &Bundle) -> Result<BTreeMap<&str, VerifyingKey>, BundleError> {
    let mut keys = BTreeMap::new();
    for (i, key) in bundle.producer_keys.iter().enumerate() {
        let field = || format!("producer_keys[{i}].public_key");
        let bytes = base64_array::<32>(&key.public_key, field)?;
        let verifying = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| FieldError::new(field(), format!("not an ed25519 key: {e}")))?;
        if keys.insert(key.key_id.as_str(), verifying).is_some() {
            return Err(FieldError::new(format!("producer_keys[{i}].key_id"), "listed twice").into());
        }
    }
    Ok(keys)
}

type Signed = (u64, String, Vec<u8>, Signature, VerifyingKey);

/// Batch-verifies every producer signature; on failure finds the first bad
/// one so the error names its record.
fn verify_producer_signatures(signed: &[Signed]) -> Result<(), BundleError> {
    if signed.is_empty() {
        return Ok(());
    }
    let messages: Vec<&[u8]> = signed.iter().map(|s| s.2.as_slice()).collect();
    let signatures: Vec<Signature> = signed.iter().map(|s| s.3).collect();
    let keys: Vec<VerifyingKey> = signed.iter().map(|s| s.4).collect();
    if crate::batch::verify_batch(&messages, &signatures, &keys) {
        return Ok(());
    }
    let bad = signed
        .iter()
        .find(|(_, _, message, signature, key)| key.verify_strict(message, signature).is_err())
        // Batch verification can be stricter than verify_strict in rare edge
        // cases: never accept what the batch rejected.
        .unwrap_or(&signed[0]);
    Err(BundleError::ProducerSignature {
        seq: bad.0,
        key_id: bad.1.clone(),
    })
}

fn verify_manifest_signature(bundle: &Bundle, keys: &[VerifierKey]) -> Result<VerifierKey, BundleError> {
    let signature = &bundle.signature;
    let key = keys
        .iter()
        .find(|k| k.name == signature.key_name && hex::encode(k.key_id) == signature.key_id)
        .ok_or_else(|| BundleError::UntrustedManifestKey {
            key_name: signature.key_name.clone(),
            key_id: signature.key_id.clone(),
        })?;
    let bytes = base64_array::<64>(&signature.signature, || "signature.signature".to_string())?;
    let digest = manifest_digest(&bundle.manifest)?;
    let verifying = VerifyingKey::from_bytes(&key.public_key).map_err(|_| BundleError::ManifestSignature {
        key_name: key.name.clone(),
    })?;
    verifying
        .verify_strict(&signature_message(&digest), &Signature::from_bytes(&bytes))
        .map_err(|_| BundleError::ManifestSignature {
            key_name: key.name.clone(),
        })?;
    Ok(key.clone())
}

fn verify_trusted_checkpoints(
    bundle: &Bundle,
    checkpoint: &Checkpoint,
    alg: HashAlg,
    options: VerifyOptions<'_>,
) -> Result<u64, BundleError> {
    let mut checked = 0;
    for note in options.trusted_checkpoints {
        let trusted = open_checkpoint(note, options.keys).map_err(|e| BundleError::Consistency {
            old_size: 0,
            reason: format!("the trusted checkpoint does not open: {e}"),
        })?;
        let fail = |reason: String| BundleError::Consistency {
            old_size: trusted.size,
            reason,
        };
        if trusted.origin != checkpoint.origin {
            return Err(fail(format!(
                "it is of origin {:?}, the bundle of {:?}",
                trusted.origin, checkpoint.origin
            )));
        }
        if trusted.size > checkpoint.size {
            return Err(fail(format!(
                "the bundle's checkpoint (size {}) is older than it",
                checkpoint.size
            )));
        }
        // Equal sizes need no proof (the roots must be equal), and every tree
        // extends the empty one (its root must be H("")).
        let (old_root, proof) = if trusted.size == checkpoint.size || trusted.size == 0 {
            (trusted.root, Vec::new())
        } else {
            let step = bundle
                .consistency
                .iter()
                .enumerate()
                .find(|(_, c)| c.old_size == trusted.size)
                .ok_or_else(|| fail("the bundle carries no consistency proof from that size".to_string()))?;
            let (i, step) = step;
            let old_root = hex_hash(&step.old_root, || format!("consistency[{i}].old_root"))?;
            if old_root != trusted.root {
                return Err(fail(
                    "the proof starts from another root than the trusted one (split view)".to_string(),
                ));
            }
            let proof = step
                .hashes
                .iter()
                .enumerate()
                .map(|(j, h)| hex_hash(h, || format!("consistency[{i}].hashes[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            (old_root, proof)
        };
        verify_consistency(alg, trusted.size, checkpoint.size, &old_root, &checkpoint.root, &proof)
            .map_err(|e| fail(e.to_string()))?;
        checked += 1;
    }
    Ok(checked)
}
