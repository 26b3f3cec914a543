//! The bytes a bundle's digests and signature are computed over
//! (`docs/FORMAT.md` §12.3). Integers are little-endian; `string` is a u32
//! byte length then UTF-8; hashes are 32 raw bytes.
//!
//! ```text
//! contents  = "evidence-ledger:bundle-contents" 0x00 ‖ 0x01
//!           ‖ string(checkpoint note)
//!           ‖ u64(record count)
//!           ‖ per record: u64(seq) ‖ record_hash[32] ‖ u64(proof index)
//!                         ‖ u32(proof length) ‖ proof hash[32]...
//!           ‖ u32(producer key count)
//!           ‖ per key: string(key_id) ‖ public_key[32]
//!           ‖ u32(key rotation record count)
//!           ‖ per rotation record: as per record above
//! manifest  = "evidence-ledger:bundle-manifest" 0x00 ‖ 0x01
//!           ‖ string(bundle_id) ‖ string(created_at) ‖ string(origin)
//!           ‖ string(hash_alg) ‖ u32(selector entries)
//!           ‖ per entry, keys in byte order: string(key) ‖ string(value)
//!           ‖ u64(record_count) ‖ u64(checkpoint_size)
//!           ‖ contents_digest[32]
//! signed    = "evidence-ledger:bundle-signature" 0x00 ‖ 0x01
//!           ‖ BLAKE3(manifest)[32]
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Bundle, BundleRecord, FieldError, Manifest, ManifestSignature};
use crate::hash::{Hash, blake3};
use crate::note::key_id;

/// Domain tag of the contents encoding.
pub const CONTENTS_DOMAIN: &[u8] = b"evidence-ledger:bundle-contents\x00";
/// Domain tag of the manifest encoding.
pub const MANIFEST_DOMAIN: &[u8] = b"evidence-ledger:bundle-manifest\x00";
/// Domain tag of the signed message.
pub const SIGNATURE_DOMAIN: &[u8] = b"evidence-ledger:bundle-signature\x00";
/// Version byte after each domain tag.
pub const BUNDLE_ENCODING_VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, text: &str) -> Result<(), FieldError> {
    let len = u32::try_from(text.len()).map_err(|_| FieldError::new("string", "longer than 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_u32(out: &mut Vec<u8>, n: usize, field: &str) -> Result<(), FieldError> {
    let n = u32::try_from(n).map_err(|_| FieldError::new(field, "more than 2^32 entries"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Decodes a hex hash field.
pub(crate) fn hex_hash(text: &str, field: impl Fn() -> String) -> Result<Hash, FieldError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).map_err(|e| FieldError::new(field(), format!("not 64 hex digits: {e}")))?;
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(FieldError::new(field(), "hex must be lower-case"));
    }
    Ok(hash)
}

/// Decodes a base64 field of exactly `N` bytes.
pub(crate) fn base64_array<const N: usize>(text: &str, field: impl Fn() -> String) -> Result<[u8; N], FieldError> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| FieldError::new(field(), format!("not base64: {e}")))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| FieldError::new(field(), format!("{len} bytes, expected {N}")))
}

/// BLAKE3 over the contents encoding of `bundle` (module docs): what
/// `manifest.contents_digest` must state.
pub fn contents_digest(bundle: &Bundle) -> Result<Hash, FieldError> {
    let mut out = Vec::with_capacity(64 + bundle.checkpoint.len() + bundle.records.len() * 64);
    out.extend_from_slice(CONTENTS_DOMAIN);
    out.push(BUNDLE_ENCODING_VERSION);
    put_str(&mut out, &bundle.checkpoint)?;
    out.extend_from_slice(&(bundle.records.len() as u64).to_le_bytes());
    put_records(&mut out, &bundle.records, "records")?;
    put_u32(&mut out, bundle.producer_keys.len(), "producer_keys")?;
    for (i, key) in bundle.producer_keys.iter().enumerate() {
        put_str(&mut out, &key.key_id)?;
        out.extend_from_slice(&base64_array::<32>(&key.public_key, || {
            format!("producer_keys[{i}].public_key")
        })?);
    }
    put_u32(&mut out, bundle.key_rotations.len(), "key_rotations")?;
    put_records(&mut out, &bundle.key_rotations, "key_rotations")?;
    Ok(blake3(&out))
}

/// Per record: u64(seq) ‖ record_hash[32] ‖ u64(proof index) ‖
/// u32(proof length) ‖ proof hashes.
fn put_records(out: &mut Vec<u8>, records: &[BundleRecord], field: &str) -> Result<(), FieldError> {
    for (i, record) in records.iter().enumerate() {
        out.extend_from_slice(&record.seq.to_le_bytes());
        out.extend_from_slice(&hex_hash(&record.record_hash, || format!("{field}[{i}].record_hash"))?);
        out.extend_from_slice(&record.proof.index.to_le_bytes());
        put_u32(out, record.proof.hashes.len(), "proof.hashes")?;
        for (j, hash) in record.proof.hashes.iter().enumerate() {
            out.extend_from_slice(&hex_hash(hash, || format!("{field}[{i}].proof.hashes[{j}]"))?);
        }
    }
    Ok(())
}

/// The manifest encoding (module docs).
pub fn manifest_bytes(manifest: &Manifest) -> Result<Vec<u8>, FieldError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MANIFEST_DOMAIN);
    out.push(BUNDLE_ENCODING_VERSION);
    put_str(&mut out, &manifest.bundle_id)?;
    put_str(&mut out, &manifest.created_at)?;
    put_str(&mut out, &manifest.origin)?;
    put_str(&mut out, &manifest.hash_alg)?;
    put_u32(&mut out, manifest.selector.len(), "manifest.selector")?;
    // A BTreeMap<String, _> iterates keys in byte order.
    for (key, value) in &manifest.selector {
        put_str(&mut out, key)?;
        put_str(&mut out, value)?;
    }
    out.extend_from_slice(&manifest.record_count.to_le_bytes());
    out.extend_from_slice(&manifest.checkpoint_size.to_le_bytes());
    out.extend_from_slice(&hex_hash(&manifest.contents_digest, || {
        "manifest.contents_digest".to_string()
    })?);
    Ok(out)
}

/// BLAKE3 of [`manifest_bytes`].
pub fn manifest_digest(manifest: &Manifest) -> Result<Hash, FieldError> {
    Ok(blake3(&manifest_bytes(manifest)?))
}

/// The message the ledger key signs for a manifest digest.
pub fn signature_message(manifest_digest: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 33);
    out.extend_from_slice(SIGNATURE_DOMAIN);
    out.push(BUNDLE_ENCODING_VERSION);
    out.extend_from_slice(manifest_digest);
    out
}

/// Fills in `manifest.record_count`, `manifest.contents_digest` and the
/// signature of a bundle whose other fields are final, signing with `sign`
/// (the ledger key named `key_name` with public key `public_key`).
pub fn seal<E>(
    bundle: &mut Bundle,
    key_name: &str,
    public_key: &[u8; 32],
    sign: impl FnOnce(&[u8]) -> Result<[u8; 64], E>,
) -> Result<(), SealError<E>> {
    bundle.manifest.record_count = bundle.records.len() as u64;
    bundle.manifest.contents_digest = hex::encode(contents_digest(bundle).map_err(SealError::Field)?);
    let digest = manifest_digest(&bundle.manifest).map_err(SealError::Field)?;
    let signature = sign(&signature_message(&digest)).map_err(SealError::Sign)?;
    bundle.signature = ManifestSignature {
        key_name: key_name.to_string(),
        key_id: hex::encode(key_id(key_name, public_key)),
        signature: BASE64.encode(signature),
    };
    Ok(())
}

/// Why [`seal`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError<E> {
    /// A field of the bundle is malformed.
    #[error(transparent)]
    Field(FieldError),
    /// The signer failed.
    #[error("signing the manifest: {0}")]
    Sign(E),
}
