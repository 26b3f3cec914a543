//! Rotating the signing key of an open ledger while other threads append
//! (`Ledger::rotate_signer`, `docs/FORMAT.md` §6.1): every checkpoint the
//! ledger hands out or re-cuts is signed by the key that was valid for its
//! tree size, the rotation is idempotent, the saved checkpoint carries the
//! new key, and the ledger reopens with the new key only.

// Helpers as well as tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ledger_core::bundle::{BundleOptions, assemble};
use ledger_core::{AppendRequest, Event, Ledger, LedgerConfig, LedgerError, LocalKeySigner, Signer as _};
use ledger_verify::bundle::{VerifyOptions, verify_bundle};
use ledger_verify::note::{VerifierKey, open_checkpoint};
use ledger_verify::rotation::{KEY_ROTATED, KEYS_STREAM, KeyRotation};

const ORIGIN: &str = "test.example/rotation";

fn config() -> LedgerConfig {
    LedgerConfig {
        origin: ORIGIN.to_string(),
        ..LedgerConfig::default()
    }
}

fn signer(seed: u8) -> Arc<LocalKeySigner> {
    Arc::new(LocalKeySigner::from_seed(ORIGIN, [seed; 32]).unwrap())
}

fn event(producer: usize, n: u64) -> Event {
    Event::json(
        format!("ops/producer-{producer}"),
        "ops.ticked",
        format!("{{\"n\":{n}}}").into_bytes(),
    )
}

/// Whether `note` verifies under `key` alone.
fn signed_by(note: &str, key: &VerifierKey) -> bool {
    open_checkpoint(note, std::slice::from_ref(key)).is_ok()
}

#[test]
fn rotating_while_others_append_signs_every_tree_with_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (signer(1), signer(2));
    let (old_key, new_key) = (old.verifier_key().unwrap(), new.verifier_key().unwrap());
    let ledger = Arc::new(Ledger::open(dir.path(), config(), old.clone()).unwrap());
    for n in 0..5 {
        ledger.append(AppendRequest::new(vec![event(9, n)])).unwrap();
    }

    // Producers append without pause (one or two events a batch), keeping
    // every checkpoint they are acknowledged with.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..3)
        .map(|producer| {
            let (ledger, stop, acks) = (Arc::clone(&ledger), Arc::clone(&stop), Arc::clone(&acks));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let events = (0..=(n % 2)).map(|i| event(producer, n * 2 + i)).collect();
                    let outcome = ledger.append(AppendRequest::new(events)).unwrap();
                    acks.lock().unwrap().push(outcome.checkpoint);
                    n += 1;
                }
            })
        })
        .collect();
    while acks.lock().unwrap().len() < 30 {
        std::thread::yield_now();
    }
    let outcome = ledger.rotate_signer(new.clone()).unwrap();
    let after_rotation = acks.lock().unwrap().len();
    while acks.lock().unwrap().len() < after_rotation + 30 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        producer.join().unwrap();
    }
    let seq = outcome.seq;
    assert!(!outcome.resumed);
    assert_eq!(ledger.verifier_key().unwrap(), new_key);

    // The record: in `ledger/keys`, signed by both keys.
    let record = ledger.read(seq).unwrap();
    assert_eq!(record.header.event.stream, KEYS_STREAM);
    assert_eq!(record.header.event.event_type, KEY_ROTATED);
    let rotation = KeyRotation::parse(&record.payload).unwrap();
    assert_eq!(rotation.verify().unwrap(), (old_key.clone(), new_key.clone()));

    // The hand-over: the tree of size seq + 1, signed by the old key.
    let handover = outcome.handover.unwrap();
    assert_eq!(handover.size(), seq + 1);
    assert!(signed_by(&handover.note, &old_key));

    // Every acknowledgement: the old key up to seq + 1, the new one after.
    let acks = acks.lock().unwrap();
    let (mut before, mut past) = (0, 0);
    for checkpoint in acks.iter() {
        if checkpoint.size() <= seq + 1 {
            assert!(signed_by(&checkpoint.note, &old_key), "size {}", checkpoint.size());
            before += 1;
        } else {
            assert!(signed_by(&checkpoint.note, &new_key), "size {}", checkpoint.size());
            assert!(!signed_by(&checkpoint.note, &old_key), "size {}", checkpoint.size());
            past += 1;
        }
    }
    assert!(before >= 30 && past >= 30, "{before} before, {past} past the rotation");

    // The latest checkpoint and every re-cut one: the new key only.
    let latest = ledger.checkpoint();
    assert!(latest.size() > seq + 1);
    assert!(signed_by(&latest.note, &new_key) && !signed_by(&latest.note, &old_key));
    for size in [0, 1, seq - 1, seq, seq + 1, seq + 2, seq + 3, latest.size()] {
        let checkpoint = ledger.checkpoint_at(size).unwrap();
        assert!(signed_by(&checkpoint.note, &new_key), "size {size}");
        assert!(!signed_by(&checkpoint.note, &old_key), "size {size}");
    }
    // Re-cut at the rotation's size, the tree is the one the old key signed.
    assert_eq!(ledger.checkpoint_at(seq + 1).unwrap().checkpoint, handover.checkpoint);

    // A bundle sealed now carries the rotation and verifies with both keys
    // (and with the new key alone), not with the old key alone.
    let bundle = assemble(&ledger, &[0, seq, seq + 1], &BundleOptions::default()).unwrap();
    let bytes = serde_json::to_vec(&bundle).unwrap();
    let verify = |keys: &[VerifierKey]| {
        verify_bundle(
            &bytes,
            VerifyOptions {
                keys,
                trusted_checkpoints: &[],
            },
        )
    };
    assert_eq!(verify(&[old_key.clone(), new_key.clone()]).unwrap().key_rotations, 1);
    assert!(verify(std::slice::from_ref(&new_key)).is_ok());
    assert!(verify(std::slice::from_ref(&old_key)).is_err());

    // Rotating to the same key again: found, nothing appended.
    let len = ledger.len();
    let again = ledger.rotate_signer(new.clone()).unwrap();
    assert!(again.resumed && again.seq == seq && again.handover.is_none());
    assert_eq!(ledger.len(), len);

    // Closed: the saved checkpoint is the new key's.
    let latest = ledger.checkpoint();
    Arc::into_inner(ledger).unwrap().close().unwrap();
    let saved = std::fs::read_to_string(dir.path().join("checkpoint")).unwrap();
    assert!(signed_by(&saved, &new_key) && !signed_by(&saved, &old_key));
    assert_eq!(saved, latest.note);

    // The retired key no longer opens the ledger; the new one does.
    let err = Ledger::open(dir.path(), config(), old.clone()).unwrap_err();
    assert!(
        matches!(err, LedgerError::RetiredKey { rotation_seq, ref new_key, .. } if rotation_seq == seq && *new_key == rotation.new_key),
        "{err}"
    );
    let ledger = Ledger::open(dir.path(), config(), new.clone()).unwrap();
    assert_eq!(ledger.len(), latest.size());
    assert_eq!(
        *ledger.checkpoint(),
        *latest,
        "reopened on the same tree, same key: the same note"
    );
    ledger.append(AppendRequest::new(vec![event(9, 99)])).unwrap();
    assert!(signed_by(&ledger.checkpoint().note, &new_key));
    ledger.close().unwrap();
}

#[test]
fn a_key_is_never_taken_into_use_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, third) = (signer(1), signer(2), signer(3));
    let ledger = Ledger::open(dir.path(), config(), first.clone()).unwrap();
    let err = ledger.rotate_signer(first.clone()).unwrap_err();
    assert!(
        matches!(err, LedgerError::InvalidRequest { field: "new_key", .. }),
        "{err}"
    );

    let to_second = ledger.rotate_signer(second.clone()).unwrap();
    // An empty ledger's rotation record is its first record.
    assert_eq!(to_second.seq, 0);
    let to_third = ledger.rotate_signer(third.clone()).unwrap();
    assert_eq!(to_third.seq, 1);
    assert_eq!(to_third.handover.unwrap().size(), 2);
    // Back to a key the ledger used before: refused.
    let err = ledger.rotate_signer(second.clone()).unwrap_err();
    assert!(
        matches!(err, LedgerError::InvalidRequest { field: "new_key", .. }),
        "{err}"
    );
    // The first key was never the key a rotation handed over to, but it is
    // retired all the same.
    ledger.close().unwrap();
    drop(ledger);
    for retired in [first, second] {
        let err = Ledger::open(dir.path(), config(), retired).unwrap_err();
        assert!(matches!(err, LedgerError::RetiredKey { .. }), "{err}");
    }
    let ledger = Ledger::open(dir.path(), config(), third).unwrap();
    assert_eq!(ledger.len(), 2);
}

#[test]
fn a_forged_rotation_record_retires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (current, stranger) = (signer(1), signer(4));
    let ledger = Ledger::open(dir.path(), config(), current.clone()).unwrap();
    // A rotation "from" the current key that only the stranger signed: the
    // old key's signature is the stranger's.
    let statement = ledger_verify::rotation::rotation_statement(
        ORIGIN,
        &current.verifier_key().unwrap().to_string(),
        &stranger.verifier_key().unwrap().to_string(),
    );
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::STANDARD.encode(stranger.sign(&statement).unwrap());
    let forged = KeyRotation {
        origin: ORIGIN.to_string(),
        old_key: current.verifier_key().unwrap().to_string(),
        new_key: stranger.verifier_key().unwrap().to_string(),
        old_key_signature: signature.clone(),
        new_key_signature: signature,
    };
    let payload = serde_json::to_vec(&forged).unwrap();
    ledger
        .append(AppendRequest::new(vec![Event::json(KEYS_STREAM, KEY_ROTATED, payload)]))
        .unwrap();
    ledger.close().unwrap();
    drop(ledger);
    let ledger = Ledger::open(dir.path(), config(), current).unwrap();
    assert_eq!(ledger.len(), 1);
}
