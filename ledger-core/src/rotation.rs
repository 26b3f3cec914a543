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
//! [`Ledger::rotate_signer`] rotates an open ledger, appends going on: the
//! writer switches keys between two group commits, right after the group
//! the rotation record ends (see its docs). The same call serves
//! `ledgerd keys rotate` (offline) and the `RotateSigningKey` admin call
//! (online); the key files are theirs.
//!
//! The rotation record's event id is derived from the new key, so running
//! a rotation again after a crash appends nothing twice; and a ledger does
//! not open with a key its log retired.

use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ledger_verify::note::{NoteSignature, VerifierKey, key_id, open_note};
use ledger_verify::rotation::{KEY_ROTATED, KEYS_STREAM, KeyRotation, rotation_statement};
use uuid::Uuid;

use crate::checkpoint::SignedCheckpoint;
use crate::error::{LedgerError, Result};
use crate::event::{AppendRequest, Event};
use crate::ledger::{Ledger, write_atomically};
use crate::reader::read_one;
use crate::segment::index::LogIndex;
use crate::signer::Signer;
use crate::store::Store;

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
    /// The checkpoint of tree size `seq + 1` signed by the old key: the
    /// last checkpoint the old key signed. `None` when resuming.
    pub handover: Option<Arc<SignedCheckpoint>>,
}

impl Ledger {
    /// Rotates the signing key of the open ledger to `new`, with appends
    /// going on (`docs/FORMAT.md` §6.1):
    ///
    /// 1. the `ledger.key_rotated` record, signed by the current key and
    ///    `new`, is queued to the writer as a request that ends its group;
    /// 2. the writer commits that group (fdatasync) and signs its tree,
    ///    of size `seq + 1`, with the current key: that checkpoint goes to
    ///    the group's requests, and is the last the old key signs;
    /// 3. before publishing the group, the writer switches to `new`, and
    ///    publishes the same tree signed by `new`. Every later group, and
    ///    every `checkpoint_at` of any size from then on, is signed by
    ///    `new`;
    /// 4. the latest checkpoint, now signed by `new`, is saved to
    ///    `<dir>/checkpoint`, so that the next open under the new key still
    ///    checks the log against it.
    ///
    /// Requests queued after the record go into later groups, so no tree
    /// larger than `seq + 1` is ever signed by the old key.
    ///
    /// Idempotent: the record's id derives from `new`, so once the ledger
    /// signs with `new`, rotating to it again returns the record found
    /// (`resumed`). A ledger whose log says its key was retired does not
    /// open with that key at all ([`LedgerError::RetiredKey`]).
    ///
    /// Blocks until the switch is made; do not call from inside an async
    /// runtime. Only the log side: key files are the caller's business.
    pub fn rotate_signer(&self, new: Arc<dyn Signer>) -> Result<RotationOutcome> {
        let _rotating = self.rotation_lock();
        let old = self.signer();
        let (old_key, new_key) = (old.verifier_key()?, new.verifier_key()?);
        let id = rotation_event_id(&new_key);
        if let Some(record) = self.get_by_id(id)? {
            let rotation = KeyRotation::parse(&record.payload).map_err(|e| LedgerError::Signer(e.to_string()))?;
            if old_key == new_key && rotation.new_key == new_key.to_string() {
                return Ok(RotationOutcome {
                    seq: record.header.seq,
                    rotation,
                    resumed: true,
                    handover: None,
                });
            }
            return Err(LedgerError::InvalidRequest {
                field: "new_key",
                reason: format!(
                    "the log already holds a rotation to this key (seq {}): a key is never taken into use twice",
                    record.header.seq
                ),
            });
        }
        if old_key == new_key {
            return Err(LedgerError::InvalidRequest {
                field: "new_key",
                reason: "the new key is the current key".to_string(),
            });
        }
        let origin = self.identity().origin.clone();
        let (old_text, new_text) = (old_key.to_string(), new_key.to_string());
        let statement = rotation_statement(&origin, &old_text, &new_text);
        let rotation = KeyRotation {
            origin,
            old_key: old_text,
            new_key: new_text,
            old_key_signature: BASE64.encode(old.sign(&statement)?),
            new_key_signature: BASE64.encode(new.sign(&statement)?),
        };
        let payload = serde_json::to_vec(&rotation).map_err(|e| LedgerError::Signer(e.to_string()))?;
        let mut event = Event::json(KEYS_STREAM, KEY_ROTATED, payload);
        event.id = id;
        let outcome = self.append_switching_signer(AppendRequest::new(vec![event]), Arc::clone(&new))?;
        let seq = outcome
            .receipts
            .first()
            .map(|r| r.seq)
            .ok_or_else(|| LedgerError::Signer("the rotation append returned no receipt".to_string()))?;
        if outcome.deduplicated || self.verifier_key()? != new_key {
            return Err(LedgerError::Signer(format!(
                "the rotation record (seq {seq}) is in the log but the writer did not switch keys"
            )));
        }
        self.save_checkpoint()?;
        tracing::info!(seq, old_key = %old_key, new_key = %new_key, "rotated the ledger signing key");
        Ok(RotationOutcome {
            seq,
            rotation,
            resumed: false,
            handover: Some(outcome.checkpoint),
        })
    }
}

/// Refuses to open a ledger with `key` if the log (the first `len` records)
/// holds a valid rotation record retiring it: the old key signs no tree
/// past its rotation. Records in `ledger/keys` that are not a rotation of
/// this ledger signed by both keys retire nothing.
pub(crate) fn check_not_retired(
    store: &dyn Store,
    log: &RwLock<LogIndex>,
    len: u64,
    origin: &str,
    key: &VerifierKey,
) -> Result<()> {
    for (_, seq) in store.stream_range(KEYS_STREAM, 0, usize::MAX)? {
        if seq >= len {
            continue;
        }
        let record = read_one(log, seq, len)?;
        if record.header.event.event_type != KEY_ROTATED {
            continue;
        }
        let checked = KeyRotation::parse(&record.payload)
            .map_err(|e| e.to_string())
            .and_then(|rotation| {
                let (old, _) = rotation.verify().map_err(|e| e.to_string())?;
                Ok((rotation, old))
            });
        let (rotation, old) = match checked {
            Ok(checked) => checked,
            Err(reason) => {
                tracing::warn!(seq, %reason, "a ledger.key_rotated record that does not verify; it retires no key");
                continue;
            }
        };
        if rotation.origin == origin && old == *key {
            return Err(LedgerError::RetiredKey {
                key: rotation.old_key,
                rotation_seq: seq,
                new_key: rotation.new_key,
            });
        }
    }
    Ok(())
}

/// Re-signs the checkpoint a closed ledger in `dir` saved (signed by `old`)
/// with `new`, so the next open, under the new key, still checks the log
/// against it. A missing file is fine (nothing to carry over), and so is
/// one `new` signed already (a rotation made by the open ledger saves it
/// so).
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
    if open_note(&note, &[new.verifier_key()?]).is_ok() {
        return Ok(());
    }
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
