//! Proofs and checkpoints served by a real ledger, checked only with
//! `ledger-verify` (the auditor's code), for both tree hashes.

use std::sync::Arc;

use ledger_core::{HashAlg, Ledger, LedgerConfig, LedgerError};
use ledger_tests::{TEST_ORIGIN, health_batch, test_signer};
use ledger_verify::merkle::{ProofError, root_of, verify_consistency, verify_inclusion};
use ledger_verify::note::open_checkpoint;

fn ledger_with(alg: HashAlg, dir: &std::path::Path) -> anyhow::Result<Ledger> {
    let config = LedgerConfig {
        origin: TEST_ORIGIN.to_string(),
        tree_hash: alg,
        ..LedgerConfig::default()
    };
    Ok(Ledger::open(dir, config, test_signer()?)?)
}

fn check_all_proofs(alg: HashAlg) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = ledger_with(alg, dir.path())?;
    let key = ledger.verifier_key()?;
    let mut notes = Vec::new();
    let mut n = 0;
    // 145 records: past two runs of 64 leaves and trees of 7 levels, so
    // that derived (levels 1..=5) and stored nodes both serve proofs.
    for batch in [1, 2, 3, 5, 8, 13, 1, 1, 7, 64, 40] {
        let outcome = ledger.append(health_batch("ops-hub", n, batch))?;
        n += batch;
        notes.push(outcome.checkpoint.note.clone());
        let checkpoint = open_checkpoint(&outcome.checkpoint.note, std::slice::from_ref(&key))?;
        assert_eq!(checkpoint.size, n);
        assert_eq!(checkpoint.origin, TEST_ORIGIN);
        assert!(checkpoint.extensions.contains(&format!("hash-alg {alg}")));
    }
    let records = ledger.read_range(0, n as usize)?;
    let leaves: Vec<_> = records.iter().map(|r| alg.leaf_hash(&r.record_hash)).collect();
    for size in 1..=n {
        let root = ledger.root_at(size)?;
        assert_eq!(root, root_of(alg, &leaves[..size as usize]), "root at {size}");
        for seq in 0..size {
            let proof = ledger.inclusion_proof(seq, size)?;
            verify_inclusion(alg, seq, size, &leaves[seq as usize], &proof, &root)?;
        }
        for old in 1..=size {
            let proof = ledger.consistency_proof(old, size)?;
            verify_consistency(alg, old, size, &ledger.root_at(old)?, &root, &proof)?;
        }
    }
    // Each checkpoint handed out at commit time is reproduced byte for byte.
    for note in notes {
        let size = open_checkpoint(&note, std::slice::from_ref(&key))?.size;
        assert_eq!(ledger.checkpoint_at(size)?.note, note);
    }
    Ok(())
}

#[test]
fn every_proof_verifies_blake3() -> anyhow::Result<()> {
    check_all_proofs(HashAlg::Blake3)
}

#[test]
fn every_proof_verifies_sha256() -> anyhow::Result<()> {
    check_all_proofs(HashAlg::Sha256)
}

#[test]
fn proofs_beyond_the_log_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = ledger_with(HashAlg::Blake3, dir.path())?;
    ledger.append(health_batch("ops-hub", 0, 4))?;
    let err = ledger.inclusion_proof(0, 5).expect_err("size 5 > 4");
    assert!(
        matches!(
            err,
            LedgerError::OutOfRange {
                requested: 5,
                len: 4,
                ..
            }
        ),
        "{err}"
    );
    let err = ledger.inclusion_proof(4, 4).expect_err("seq 4 not in size 4");
    assert!(
        matches!(
            err,
            LedgerError::Proof(ProofError::IndexOutOfRange { index: 4, size: 4 })
        ),
        "{err}"
    );
    let err = ledger.consistency_proof(3, 2).expect_err("old > new");
    assert!(
        matches!(err, LedgerError::Proof(ProofError::OldSizeGreater { old: 3, new: 2 })),
        "{err}"
    );
    Ok(())
}

#[test]
fn checkpoints_are_signed_by_the_ledger_key_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = ledger_with(HashAlg::Blake3, dir.path())?;
    ledger.append(health_batch("ops-hub", 0, 2))?;
    let note = ledger.checkpoint().note.clone();
    let other = Arc::new(ledger_core::LocalKeySigner::from_seed(TEST_ORIGIN, [9; 32])?);
    let other_key = ledger_core::Signer::verifier_key(other.as_ref())?;
    assert!(open_checkpoint(&note, &[other_key]).is_err());
    let tampered = note.replacen("\n2\n", "\n3\n", 1);
    assert!(open_checkpoint(&tampered, &[ledger.verifier_key()?]).is_err());
    Ok(())
}
