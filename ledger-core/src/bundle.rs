//! Assembling audit bundles (`docs/FORMAT.md` §12): the records at given
//! seqs, each with its inclusion proof against one signed checkpoint, the
//! producer keys they reference, optional consistency proofs from older
//! checkpoints, sealed with the ledger key's signature over the manifest.
//!
//! Which seqs belong to a subject is the bundle index's business (the
//! `subjects` projection); this module only turns seqs into a verifiable
//! file. `ledger_verify::bundle` is the other half and the specification
//! both follow.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{SecondsFormat, Utc};
use ledger_verify::bundle::{
    BUNDLE_FORMAT, Bundle, BundleRecord, ConsistencyProof, InclusionProof, Manifest, ManifestSignature, ProducerKey,
    seal,
};
use ledger_verify::rotation::{KEY_ROTATED, KEYS_STREAM};
use uuid::Uuid;

use crate::error::{LedgerError, Result};
use crate::ledger::Ledger;
use crate::record::Record;

/// Most records one bundle holds.
pub const MAX_BUNDLE_RECORDS: usize = 1_000_000;

/// What to put in a bundle besides the records.
#[derive(Clone, Debug, Default)]
pub struct BundleOptions {
    /// The selector that chose the records, recorded in the manifest
    /// (e.g. `incident → INC-2026-0042`).
    pub selector: BTreeMap<String, String>,
    /// Leave payloads out (hashes only): selective disclosure.
    pub withhold_payloads: bool,
    /// Prove the checkpoint consistent with the trees of these sizes (older
    /// checkpoints an auditor may already trust).
    pub consistency_from: Vec<u64>,
}

/// Builds and seals a bundle of the records at `seqs` (any order; duplicates
/// are merged) against the ledger's latest checkpoint.
pub fn assemble(ledger: &Ledger, seqs: &[u64], options: &BundleOptions) -> Result<Bundle> {
    let seqs: BTreeSet<u64> = seqs.iter().copied().collect();
    if seqs.len() > MAX_BUNDLE_RECORDS {
        return Err(LedgerError::InvalidRequest {
            field: "selector",
            reason: format!(
                "selects {} records; a bundle holds at most {MAX_BUNDLE_RECORDS}",
                seqs.len()
            ),
        });
    }
    let checkpoint = ledger.checkpoint();
    let size = checkpoint.size();
    if let Some(&last) = seqs.last()
        && last >= size
    {
        return Err(LedgerError::OutOfRange {
            what: "seq",
            requested: last,
            len: size,
        });
    }
    let bundled = |record: &Record, with_payload: bool| -> Result<BundleRecord> {
        let seq = record.header.seq;
        let proof = ledger.inclusion_proof(seq, size)?;
        Ok(BundleRecord {
            seq,
            record_hash: hex::encode(record.record_hash),
            canonical: BASE64.encode(&record.canonical),
            payload: with_payload.then(|| BASE64.encode(&record.payload)),
            proof: InclusionProof {
                index: seq,
                hashes: proof.iter().map(hex::encode).collect(),
            },
        })
    };
    let mut records = Vec::with_capacity(seqs.len());
    let mut key_ids = BTreeSet::new();
    for &seq in &seqs {
        let record = ledger.read(seq)?;
        if let Some(signature) = &record.header.event.signature {
            key_ids.insert(signature.key_id.clone());
        }
        records.push(bundled(&record, !options.withhold_payloads)?);
    }
    // Every key rotation inside the tree, so a verifier can tell which
    // ledger key was valid for which tree sizes.
    let mut key_rotations = Vec::new();
    for record in ledger.read_stream(KEYS_STREAM, 0, usize::MAX)? {
        if record.header.seq < size && record.header.event.event_type == KEY_ROTATED {
            key_rotations.push(bundled(&record, true)?);
        }
    }
    let mut producer_keys = Vec::with_capacity(key_ids.len());
    for key_id in key_ids {
        let key = ledger
            .producer_key_for_audit(&key_id)
            .ok_or_else(|| LedgerError::UnknownProducerKey {
                event_id: Uuid::nil(),
                key_id: key_id.clone(),
            })?;
        producer_keys.push(ProducerKey {
            key_id,
            public_key: BASE64.encode(key.as_bytes()),
        });
    }
    let mut consistency = Vec::new();
    for &old_size in BTreeSet::from_iter(options.consistency_from.iter().copied()).iter() {
        if old_size == 0 || old_size >= size {
            continue; // Nothing to prove: the empty tree, or the same tree.
        }
        consistency.push(ConsistencyProof {
            old_size,
            old_root: hex::encode(ledger.root_at(old_size)?),
            hashes: ledger
                .consistency_proof(old_size, size)?
                .iter()
                .map(hex::encode)
                .collect(),
        });
    }
    let identity = ledger.identity();
    let mut bundle = Bundle {
        format: BUNDLE_FORMAT.to_string(),
        manifest: Manifest {
            bundle_id: Uuid::now_v7().to_string(),
            created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true),
            origin: identity.origin.clone(),
            hash_alg: identity.tree_hash.to_string(),
            selector: options.selector.clone(),
            record_count: 0,
            checkpoint_size: size,
            contents_digest: String::new(),
        },
        checkpoint: checkpoint.note.clone(),
        records,
        producer_keys,
        key_rotations,
        consistency,
        signature: ManifestSignature {
            key_name: String::new(),
            key_id: String::new(),
            signature: String::new(),
        },
    };
    let signer = ledger.signer();
    seal(&mut bundle, signer.key_name(), &signer.public_key(), |message| {
        signer.sign(message)
    })
    .map_err(|e| LedgerError::Signer(e.to_string()))?;
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ed25519_dalek::{Signer as _, SigningKey};
    use ledger_verify::bundle::{BundleError, VerifyOptions, verify_bundle};

    use super::*;
    use crate::config::LedgerConfig;
    use crate::event::{AppendRequest, Event};
    use crate::producer::StaticProducerKeys;
    use crate::signer::LocalKeySigner;
    use crate::signer::Signer as _;
    use ledger_verify::record::ProducerSignature;

    const ORIGIN: &str = "test.example/bundles";

    fn ledger(dir: &std::path::Path) -> Ledger {
        let signer = Arc::new(LocalKeySigner::from_seed(ORIGIN, [5; 32]).unwrap());
        let config = LedgerConfig {
            origin: ORIGIN.to_string(),
            ..LedgerConfig::default()
        };
        Ledger::open(dir, config, signer).unwrap()
    }

    fn bytes(bundle: &Bundle) -> Vec<u8> {
        serde_json::to_vec_pretty(bundle).unwrap()
    }

    #[test]
    fn assembled_bundles_verify_with_the_ledger_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        let producer = SigningKey::from_bytes(&[7; 32]);
        let mut keys = StaticProducerKeys::new();
        keys.insert("probe-1", producer.verifying_key());
        ledger.set_producer_keys(Some(Arc::new(keys)));
        for i in 0..40u32 {
            let mut event = Event::json(
                format!("incident/INC-{}", i % 3),
                "incident.note_added",
                format!("{{\"n\":{i}}}"),
            );
            if i % 5 == 0 {
                let signature = producer.sign(&event.signing_bytes()).to_bytes();
                event.signature = Some(ProducerSignature {
                    key_id: "probe-1".to_string(),
                    signature,
                });
            }
            ledger.append(AppendRequest::new(vec![event])).unwrap();
        }
        let trusted = ledger.checkpoint_at(17).unwrap().note;
        let key = ledger.verifier_key().unwrap();
        let keys = [key];
        let options = BundleOptions {
            selector: BTreeMap::from([("incident".to_string(), "INC-0".to_string())]),
            consistency_from: vec![17],
            ..BundleOptions::default()
        };
        // Consecutive runs (chain links), gaps, the last record (chain head).
        let seqs = [3, 0, 1, 2, 10, 25, 39, 38];
        let bundle = assemble(&ledger, &seqs, &options).unwrap();
        assert_eq!(
            bundle.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3, 10, 25, 38, 39]
        );
        let trusted_checkpoints = [trusted];
        let verified = verify_bundle(
            &bytes(&bundle),
            VerifyOptions {
                keys: &keys,
                trusted_checkpoints: &trusted_checkpoints,
            },
        )
        .unwrap();
        assert_eq!((verified.records, verified.checkpoint_size), (8, 40));
        assert_eq!(
            (verified.payloads, verified.chain_links, verified.consistency_proofs),
            (8, 4, 1)
        );
        assert_eq!(verified.producer_signatures, 3, "seqs 0, 10 and 25 are signed");

        // Payloads withheld: still verifies; stripping them from a sealed
        // bundle too.
        let withheld = assemble(
            &ledger,
            &seqs,
            &BundleOptions {
                withhold_payloads: true,
                ..options.clone()
            },
        )
        .unwrap();
        let only_keys = VerifyOptions {
            keys: &keys,
            trusted_checkpoints: &[],
        };
        assert_eq!(verify_bundle(&bytes(&withheld), only_keys).unwrap().payloads, 0);
        let mut stripped = bundle.clone();
        stripped.records[2].payload = None;
        assert_eq!(verify_bundle(&bytes(&stripped), only_keys).unwrap().payloads, 7);

        // Another ledger key: nothing verifies.
        let stranger = LocalKeySigner::from_seed(ORIGIN, [6; 32])
            .unwrap()
            .verifier_key()
            .unwrap();
        let err = verify_bundle(
            &bytes(&bundle),
            VerifyOptions {
                keys: &[stranger],
                trusted_checkpoints: &[],
            },
        )
        .unwrap_err();
        assert!(matches!(err, BundleError::Checkpoint(_)), "{err}");

        // Out of range and unknown producer keys are refused.
        assert!(matches!(
            assemble(&ledger, &[40], &options),
            Err(LedgerError::OutOfRange { .. })
        ));
        ledger.set_producer_keys(None);
        assert!(matches!(
            assemble(&ledger, &[0], &options),
            Err(LedgerError::UnknownProducerKey { .. })
        ));
        ledger.close().unwrap();
    }
}
