//! Rotating the ledger signing key (`docs/FORMAT.md` §6.1).
//!
//! While the old key still signs, the ledger appends a `ledger.key_rotated`
//! record (stream `ledger/keys`) whose payload both keys sign, so the log
//! itself says which key took over and when: checkpoints up to and
//! including the one covering the rotation record carry the old key's
//! signature; after the rotation the ledger signs with the new key only.
//! Old verifier keys stay published, so bundles signed before the rotation
//! keep verifying.
//!
//! The rotation record's event id is derived from the new key, so running
//! a rotation again after a crash appends nothing twice.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ledger_verify::note::{NoteSignature, VerifierKey, key_id, open_note};
use ledger_verify::rotation::{KEY_ROTATED, KEYS_STREAM, KeyRotation, rotation_statement};
use uuid::Uuid;

use crate::error::{LedgerError, Result};
use crate::event::{AppendRequest, Event};
use crate::ledger::{Ledger, write_atomically};
use crate::signer::Signer;

/// The id of the rotation record handing over to `new_key`.
pub fn rotation_event_id(new_key: &VerifierKey) -> Uuid {
    let hash = blake3::derive_key(
        "evidence-ledger key rotation event id v1",
        new_key.to_string().as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    Uuid::new_v8(bytes)
}

/// Where a rotation left the log.
#[derive(Clone, Debug)]
pub struct RotationOutcome {
    /// Seq of the `ledger.key_rotated` record.
    pub seq: u64,
    /// The payload appended (or found, when resuming).
    pub rotation: KeyRotation,
    /// Whether the record was already in the log (a resumed rotation).
    pub resumed: bool,
}

/// Appends the rotation record from the ledger's current key (the one it
/// was opened with) to `new`, signed by both; if the log already holds it,
/// returns it instead.
pub fn append_rotation(ledger: &Ledger, new: &dyn Signer) -> Result<RotationOutcome> {
    let old_key = ledger.verifier_key()?;
    let new_key = new.verifier_key()?;
    if old_key == new_key {
        return Err(LedgerError::InvalidRequest {
            field: "new_key",
            reason: "the new key is the current key".to_string(),
        });
    }
    let id = rotation_event_id(&new_key);
    if let Some(record) = ledger.get_by_id(id)? {
        let rotation = KeyRotation::parse(&record.payload).map_err(|e| LedgerError::Signer(e.to_string()))?;
        return Ok(RotationOutcome {
            seq: record.header.seq,
            rotation,
            resumed: true,
        });
    }
    let origin = ledger.identity().origin.clone();
    let (old_text, new_text) = (old_key.to_string(), new_key.to_string());
    let statement = rotation_statement(&origin, &old_text, &new_text);
    let rotation = KeyRotation {
        origin,
        old_key: old_text,
        new_key: new_text,
        old_key_signature: BASE64.encode(ledger.signer().sign(&statement)?),
        new_key_signature: BASE64.encode(new.sign(&statement)?),
    };
    let payload = serde_json::to_vec(&rotation).map_err(|e| LedgerError::Signer(e.to_string()))?;
    let mut event = Event::json(KEYS_STREAM, KEY_ROTATED, payload);
    event.id = id;
    let outcome = ledger.append(AppendRequest::new(vec![event]))?;
    let seq = outcome
        .receipts
        .first()
        .map(|r| r.seq)
        .ok_or_else(|| LedgerError::Signer("the rotation append returned no receipt".to_string()))?;
    Ok(RotationOutcome {
        seq,
        rotation,
        resumed: false,
    })
}

/// Re-signs the checkpoint a closed ledger in `dir` saved (signed by `old`)
/// with `new`, so the next open, under the new key, still checks the log
/// against it. A missing file is fine (nothing to carry over).
pub fn resign_saved_checkpoint(dir: &Path, old: &VerifierKey, new: &dyn Signer) -> Result<()> {
    let path = dir.join("checkpoint");
    let note = match std::fs::read_to_string(&path) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(LedgerError::Io {
                context: format!("reading {}", path.display()),
                source,
            });
        }
    };
    let (body, _) = open_note(&note, std::slice::from_ref(old)).map_err(|e| LedgerError::Corrupt {
        segment: path.clone(),
        offset: 0,
        seq: None,
        reason: format!("the saved checkpoint is not signed by the current key: {e}"),
    })?;
    let signature = NoteSignature {
        name: new.key_name().to_string(),
        key_id: key_id(new.key_name(), &new.public_key()),
        signature: new.sign(body.as_bytes())?.to_vec(),
    };
    write_atomically(dir, "checkpoint", format!("{body}\n{}", signature.to_line()).as_bytes())
}
