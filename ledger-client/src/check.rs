//! Client-side checks: trust nothing the server says that can be recomputed.
//!
//! A receipt is checked by rebuilding the canonical record from the event
//! the client sent plus the four fields the ledger added (seq, stream
//! version, recorded_at, prev_hash) and hashing it: a match means the
//! ledger recorded exactly what was sent. A record is checked by hashing
//! its canonical bytes and comparing every served field with them.

use std::collections::BTreeMap;

use ledger_verify::merkle::{verify_consistency, verify_inclusion};
use ledger_verify::note::{Checkpoint, VerifierKey, open_checkpoint};
use ledger_verify::record::{EventHeader, Metadata, ProducerSignature, RecordHeader, payload_hash, record_hash};
use ledger_verify::{Hash, HashAlg};

use crate::error::{ClientError, Result};
use crate::proto;

/// Default payload content type, as the server applies it.
pub const JSON: &str = "application/json";

fn hash32(bytes: &[u8], what: &str) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| ClientError::Verification(format!("{what} is {} bytes, not 32", bytes.len())))
}

fn proof_hashes(hashes: &[Vec<u8>]) -> Result<Vec<Hash>> {
    hashes.iter().map(|h| hash32(h, "proof hash")).collect()
}

/// Unix nanoseconds of a protobuf timestamp.
pub fn timestamp_ns(ts: Option<&prost_types::Timestamp>, what: &str) -> Result<i64> {
    let ts = ts.ok_or_else(|| ClientError::InvalidInput {
        field: what.to_string(),
        reason: "required".to_string(),
    })?;
    ts.seconds
        .checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(i64::from(ts.nanos)))
        .ok_or_else(|| ClientError::InvalidInput {
            field: what.to_string(),
            reason: "out of range".to_string(),
        })
}

/// The canonical event header of a wire event, as the ledger will hash it.
pub fn event_header(event: &proto::Event) -> Result<EventHeader> {
    let id = uuid::Uuid::parse_str(&event.id).map_err(|e| ClientError::InvalidInput {
        field: "id".to_string(),
        reason: format!("not a UUID: {e}"),
    })?;
    let metadata = event
        .metadata
        .as_ref()
        .map(|m| Metadata {
            correlation_id: m.correlation_id.clone(),
            causation_id: m.causation_id.clone(),
            trace_id: m.trace_id.clone(),
            extra: m
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        })
        .unwrap_or_default();
    let signature = match &event.signature {
        None => None,
        Some(sig) => Some(ProducerSignature {
            key_id: sig.key_id.clone(),
            signature: sig
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| ClientError::InvalidInput {
                    field: "signature.signature".to_string(),
                    reason: format!("must be 64 bytes, got {}", sig.signature.len()),
                })?,
        }),
    };
    Ok(EventHeader {
        id: *id.as_bytes(),
        stream: event.stream.clone(),
        event_type: event.r#type.clone(),
        occurred_at_ns: timestamp_ns(event.occurred_at.as_ref(), "occurred_at")?,
        content_type: if event.content_type.is_empty() {
            JSON.to_string()
        } else {
            event.content_type.clone()
        },
        payload_len: event.payload.len() as u64,
        payload_hash: payload_hash(&event.payload),
        metadata,
        signature,
    })
}

/// Checks that `receipt` records exactly `event`.
pub fn check_receipt(event: &proto::Event, receipt: &proto::Receipt) -> Result<()> {
    if receipt.event_id != event.id {
        return Err(ClientError::Verification(format!(
            "receipt for event {} answers event {}",
            receipt.event_id, event.id
        )));
    }
    let header = RecordHeader {
        seq: receipt.seq,
        stream_version: receipt.stream_version,
        recorded_at_ns: timestamp_ns(receipt.recorded_at.as_ref(), "receipt.recorded_at")?,
        prev_hash: hash32(&receipt.prev_hash, "receipt.prev_hash")?,
        event: event_header(event)?,
    };
    let expected = record_hash(&header.encode());
    if expected.as_slice() != receipt.record_hash.as_slice() {
        return Err(ClientError::Verification(format!(
            "event {}: receipt record hash {} is not the hash of the event sent ({}) at seq {}",
            event.id,
            hex::encode(&receipt.record_hash),
            hex::encode(expected),
            receipt.seq
        )));
    }
    Ok(())
}

/// Checks every receipt of a response against the request's events.
pub fn check_response(events: &[proto::Event], response: &proto::AppendResponse) -> Result<()> {
    if response.receipts.len() != events.len() {
        return Err(ClientError::Verification(format!(
            "{} receipts for {} events",
            response.receipts.len(),
            events.len()
        )));
    }
    events
        .iter()
        .zip(&response.receipts)
        .try_for_each(|(event, receipt)| check_receipt(event, receipt))
}

/// Checks a served record against its canonical bytes; returns the decoded
/// canonical header.
pub fn check_record(record: &proto::Record) -> Result<RecordHeader> {
    let bad = |what: &str| ClientError::Verification(format!("record seq {}: {what}", record.seq));
    let header = RecordHeader::decode(&record.canonical)?;
    if record_hash(&record.canonical).as_slice() != record.record_hash.as_slice() {
        return Err(bad("record_hash is not BLAKE3 of the canonical bytes"));
    }
    let event = record.event.as_ref().ok_or_else(|| bad("no event"))?;
    let served = RecordHeader {
        seq: record.seq,
        stream_version: record.stream_version,
        recorded_at_ns: timestamp_ns(record.recorded_at.as_ref(), "recorded_at")?,
        prev_hash: hash32(&record.prev_hash, "prev_hash")?,
        event: event_header(event)?,
    };
    if served != header {
        return Err(bad("served fields or payload differ from the canonical bytes"));
    }
    if header.event.payload_hash.as_slice() != record.payload_hash.as_slice() {
        return Err(bad("payload_hash differs from the canonical bytes"));
    }
    Ok(header)
}

/// Opens a served checkpoint with trusted keys and checks the parsed fields
/// the server sent beside the note.
pub fn check_checkpoint(checkpoint: &proto::Checkpoint, keys: &[VerifierKey]) -> Result<Checkpoint> {
    let opened = open_checkpoint(&checkpoint.note, keys)?;
    if opened.size != checkpoint.size || opened.root.as_slice() != checkpoint.root.as_slice() {
        return Err(ClientError::Verification(
            "checkpoint fields differ from its signed note".to_string(),
        ));
    }
    Ok(opened)
}

/// The tree hash named by a checkpoint's `hash-alg` extension line (BLAKE3
/// when absent).
pub fn tree_hash_of(checkpoint: &Checkpoint) -> Result<HashAlg> {
    match checkpoint
        .extensions
        .iter()
        .find_map(|line| line.strip_prefix("hash-alg "))
    {
        None => Ok(HashAlg::Blake3),
        Some(name) => HashAlg::from_name(name)
            .ok_or_else(|| ClientError::Verification(format!("unknown hash-alg {name:?} in checkpoint"))),
    }
}

/// Verifies an inclusion proof against its signed checkpoint.
pub fn check_inclusion(proof: &proto::InclusionProof, keys: &[VerifierKey]) -> Result<Checkpoint> {
    let served = proof
        .checkpoint
        .as_ref()
        .ok_or_else(|| ClientError::Verification("inclusion proof without checkpoint".to_string()))?;
    let checkpoint = check_checkpoint(served, keys)?;
    if checkpoint.size != proof.tree_size {
        return Err(ClientError::Verification(format!(
            "proof is for tree size {} but its checkpoint is for {}",
            proof.tree_size, checkpoint.size
        )));
    }
    let alg = tree_hash_of(&checkpoint)?;
    let hashes = proof_hashes(&proof.hashes)?;
    let leaf = alg.leaf_hash(&proof.record_hash);
    verify_inclusion(alg, proof.seq, proof.tree_size, &leaf, &hashes, &checkpoint.root)?;
    Ok(checkpoint)
}

/// Verifies a consistency proof between its two signed checkpoints.
pub fn check_consistency(proof: &proto::ConsistencyProof, keys: &[VerifierKey]) -> Result<(Checkpoint, Checkpoint)> {
    let missing = || ClientError::Verification("consistency proof without its checkpoints".to_string());
    let old = check_checkpoint(proof.old_checkpoint.as_ref().ok_or_else(missing)?, keys)?;
    let new = check_checkpoint(proof.new_checkpoint.as_ref().ok_or_else(missing)?, keys)?;
    if old.size != proof.old_size || new.size != proof.new_size {
        return Err(ClientError::Verification(
            "proof sizes differ from its checkpoints".to_string(),
        ));
    }
    let alg = tree_hash_of(&new)?;
    let hashes = proof_hashes(&proof.hashes)?;
    verify_consistency(alg, old.size, new.size, &old.root, &new.root, &hashes)?;
    Ok((old, new))
}
