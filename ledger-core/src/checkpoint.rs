//! Cutting signed checkpoints: the C2SP `tlog-checkpoint` body (origin, tree
//! size, base64 root) plus three extension lines, signed as a `signed-note`
//! through the [`Signer`] trait.
//!
//! Extension lines, in this order (opaque to generic tlog tooling):
//! `hash-alg <blake3|sha256>`, `chain-head <hex record hash of seq size-1,
//! or 64 zeros>`, `recorded-at <RFC 3339 UTC, 9 fraction digits>` (the
//! `recorded_at` of seq size-1, or the ledger's creation time when empty).
//! Every input is a function of the log, so the checkpoint of a given size is
//! reproducible byte for byte with the same key.

use chrono::SecondsFormat;
use ledger_verify::note::{Checkpoint, NoteSignature, key_id};
use ledger_verify::{Hash, HashAlg};

use crate::error::{LedgerError, Result};
use crate::event::from_timestamp_ns;
use crate::signer::Signer;

/// A checkpoint with its signed-note text and the values behind its
/// extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Origin, size, root and extension lines.
    pub checkpoint: Checkpoint,
    /// Record hash of the last record (zero when empty).
    pub chain_head: Hash,
    /// `recorded_at` of the last record, Unix nanoseconds.
    pub recorded_at_ns: i64,
    /// The full signed note, as served and as stored in bundles.
    pub note: String,
}

impl SignedCheckpoint {
    /// Tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// Root hash.
    pub fn root(&self) -> Hash {
        self.checkpoint.root
    }
}

/// The extension lines for a checkpoint.
pub fn extension_lines(tree_hash: HashAlg, chain_head: &Hash, recorded_at_ns: i64) -> Vec<String> {
    vec![
        format!("hash-alg {tree_hash}"),
        format!("chain-head {}", hex::encode(chain_head)),
        format!(
            "recorded-at {}",
            from_timestamp_ns(recorded_at_ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
        ),
    ]
}

/// Builds and signs the checkpoint of a tree.
pub fn sign_checkpoint(
    signer: &dyn Signer,
    origin: &str,
    tree_hash: HashAlg,
    size: u64,
    root: Hash,
    chain_head: Hash,
    recorded_at_ns: i64,
) -> Result<SignedCheckpoint> {
    let checkpoint = Checkpoint {
        origin: origin.to_string(),
        size,
        root,
        extensions: extension_lines(tree_hash, &chain_head, recorded_at_ns),
    };
    checkpoint.validate().map_err(|e| LedgerError::InvalidRequest {
        field: "origin",
        reason: e.to_string(),
    })?;
    let body = checkpoint.to_note_body();
    let signature = NoteSignature {
        name: signer.key_name().to_string(),
        key_id: key_id(signer.key_name(), &signer.public_key()),
        signature: signer.sign(body.as_bytes())?.to_vec(),
    };
    let note = format!("{body}\n{}", signature.to_line());
    Ok(SignedCheckpoint {
        checkpoint,
        chain_head,
        recorded_at_ns,
        note,
    })
}
