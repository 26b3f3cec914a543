//! The audit-bundle fixtures in `testdata/bundles/` (`docs/FORMAT.md` §12.6):
//! a good bundle assembled from a real ledger, and one tampered copy per
//! kind of tampering, which `ledger-verify/tests/bundles.rs` checks with the
//! verifier alone.
//!
//! The ledger itself is checked in (`testdata/bundles/ledger/`, made once:
//! `recorded_at` is wall-clock time), so everything derived from it is
//! deterministic: Ed25519 signatures are, and the bundle's random
//! `bundle_id` and `created_at` are overwritten with fixed values and the
//! bundle re-sealed with the same ledger key. This test regenerates every
//! file from the checked-in ledger and requires the files to match byte for
//! byte; `UPDATE_BUNDLES=1` rewrites them instead (and creates the ledger
//! first if `testdata/bundles/ledger/` does not exist: delete it to make a
//! new one).

// Helpers as well as tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey};
use ledger_core::bundle::{BundleOptions, assemble};
use ledger_core::producer::StaticProducerKeys;
use ledger_core::{AppendRequest, Event, Ledger, LedgerConfig, LocalKeySigner, ProducerSignature, Signer as _};
use ledger_verify::HashAlg;
use ledger_verify::bundle::{Bundle, VerifyOptions, seal, verify_bundle};
use ledger_verify::hash::blake3;
use ledger_verify::merkle::MemoryTree;
use ledger_verify::note::{Checkpoint, VerifierKey, open_checkpoint, sign_note};
use ledger_verify::record::{RecordHeader, record_hash};

const ORIGIN: &str = "evidence-ledger.test/bundles";
/// The ledger key's seed is `BLAKE3(LEDGER_SEED_INPUT)`: a test key, public.
const LEDGER_SEED_INPUT: &str = "evidence-ledger bundle fixture ledger key";
/// A key nobody trusts, with the ledger's key name.
const STRANGER_SEED_INPUT: &str = "evidence-ledger bundle fixture stranger key";
const PRODUCER_SEED_INPUT: &str = "evidence-ledger bundle fixture producer key";
const OTHER_PRODUCER_SEED_INPUT: &str = "evidence-ledger bundle fixture other producer key";
const PRODUCER_KEY_ID: &str = "ops-hub/probe-eu-1";

const INCIDENT: &str = "INC-2026-0042";
/// The records of `INCIDENT` (what the good bundle selects); the last one is
/// the ledger's last record, so the chain-head check runs.
const SELECTED: [u64; 8] = [0, 1, 2, 3, 6, 9, 10, 11];
const LEDGER_SIZE: u64 = 12;
/// The size of the older checkpoint an auditor already trusts.
const TRUSTED_SIZE: u64 = 5;
/// Group commits: `(first seq, events)`.
const BATCHES: [(u64, u64); 4] = [(0, 4), (4, 1), (5, 3), (8, 4)];

const BUNDLE_ID: &str = "01900000-0000-7000-8000-000000000042";
const CREATED_AT: &str = "2026-11-23T12:00:00.000000000Z";

fn seed(input: &str) -> [u8; 32] {
    blake3(input.as_bytes())
}

fn bundles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/bundles")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_BUNDLES").is_some_and(|v| v == "1")
}

fn signer(seed_input: &str) -> Arc<LocalKeySigner> {
    Arc::new(LocalKeySigner::from_seed(ORIGIN, seed(seed_input)).unwrap())
}

fn producer_keys() -> Arc<StaticProducerKeys> {
    let mut keys = StaticProducerKeys::new();
    keys.insert(
        PRODUCER_KEY_ID,
        SigningKey::from_bytes(&seed(PRODUCER_SEED_INPUT)).verifying_key(),
    );
    Arc::new(keys)
}

fn open(dir: &Path) -> Ledger {
    let config = LedgerConfig {
        origin: ORIGIN.to_string(),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(dir, config, signer(LEDGER_SEED_INPUT)).unwrap();
    ledger.set_producer_keys(Some(producer_keys()));
    ledger
}

/// Record `seq`: the incident's records in `SELECTED`, others on another
/// incident and a service stream; every fourth (seq 1, 5, 9) signed by the
/// producer. Payload lengths differ from record to record.
fn event(seq: u64) -> Event {
    let stream = if SELECTED.contains(&seq) {
        format!("incident/{INCIDENT}")
    } else if seq.is_multiple_of(2) {
        "incident/INC-2026-0043".to_string()
    } else {
        "service/ops-hub".to_string()
    };
    let note = "checked ".repeat(seq as usize + 1);
    let payload = format!("{{\"seq_hint\":{seq},\"note\":\"{}\"}}", note.trim_end());
    let mut event = Event::json(stream, "incident.note_added", payload);
    if seq % 4 == 1 {
        let producer = SigningKey::from_bytes(&seed(PRODUCER_SEED_INPUT));
        event.signature = Some(ProducerSignature {
            key_id: PRODUCER_KEY_ID.to_string(),
            signature: producer.sign(&event.signing_bytes()).to_bytes(),
        });
    }
    event
}

/// Makes the checked-in ledger (only with `UPDATE_BUNDLES=1`, only if it is
/// missing), keeping just its source of truth: `ledger.json` and `log/`.
fn create_ledger(dir: &Path) {
    let ledger = open(dir);
    for (start, n) in BATCHES {
        ledger
            .append(AppendRequest::new((start..start + n).map(event).collect()))
            .unwrap();
    }
    ledger.close().unwrap();
    drop(ledger);
    for derived in ["index", "LOCK", "checkpoint"] {
        let path = dir.join(derived);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
    }
}

/// A scratch copy of the checked-in ledger (opening writes derived files).
fn copy_ledger(from: &Path) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("log")).unwrap();
    std::fs::copy(from.join("ledger.json"), work.path().join("ledger.json")).unwrap();
    for entry in std::fs::read_dir(from.join("log")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), work.path().join("log").join(entry.file_name())).unwrap();
    }
    work
}

/// Re-seals `bundle` with the key from `seed_input` (named like the ledger
/// key).
fn reseal(bundle: &mut Bundle, seed_input: &str) {
    let key = SigningKey::from_bytes(&seed(seed_input));
    seal(bundle, ORIGIN, &key.verifying_key().to_bytes(), |message| {
        Ok::<_, Infallible>(key.sign(message).to_bytes())
    })
    .unwrap();
}

fn to_json(bundle: &Bundle) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(bundle).unwrap();
    text.push(b'\n');
    text
}

fn index_of(bundle: &Bundle, seq: u64) -> usize {
    bundle.records.iter().position(|r| r.seq == seq).unwrap()
}

fn decode(text: &str) -> Vec<u8> {
    BASE64.decode(text).unwrap()
}

/// Replaces the first occurrence of `from` in `bytes` with `to` (same
/// length).
fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + from.len()].copy_from_slice(to);
}

/// The checkpoint note with its body's line `line` (0-based) replaced and
/// the original signature kept.
fn edit_note_line(note: &str, line: usize, text: &str) -> String {
    let (body, signatures) = note.split_once("\n\n").unwrap();
    let mut lines: Vec<&str> = body.lines().collect();
    lines[line] = text;
    format!("{}\n\n{signatures}", lines.join("\n"))
}

/// The body of `note` re-signed by the key from `seed_input` alone.
fn resign_note(note: &str, seed_input: &str) -> String {
    let (body, _) = note.split_once("\n\n").unwrap();
    sign_note(&format!("{body}\n"), ORIGIN, &SigningKey::from_bytes(&seed(seed_input))).unwrap()
}

/// A checkpoint of size `TRUSTED_SIZE` signed by the ledger key, over a tree
/// the ledger never had: what a ledger showing another auditor a forked
/// history would have given them.
fn forked_checkpoint(trusted: &str, key: &VerifierKey) -> String {
    let genuine = open_checkpoint(trusted, std::slice::from_ref(key)).unwrap();
    let leaves = (0..TRUSTED_SIZE).map(|i| HashAlg::Blake3.leaf_hash(&blake3(format!("fork-{i}").as_bytes())));
    let fork = Checkpoint {
        root: MemoryTree::from_leaf_hashes(HashAlg::Blake3, leaves).root(),
        ..genuine
    };
    sign_note(
        &fork.to_note_body(),
        ORIGIN,
        &SigningKey::from_bytes(&seed(LEDGER_SEED_INPUT)),
    )
    .unwrap()
}

/// Every fixture file: name → bytes.
fn generate(ledger_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let work = copy_ledger(ledger_dir);
    let ledger = open(work.path());
    assert_eq!(ledger.len(), LEDGER_SIZE);
    let key = ledger.verifier_key().unwrap();
    let trusted = ledger.checkpoint_at(TRUSTED_SIZE).unwrap().note;
    let options = BundleOptions {
        selector: BTreeMap::from([("incident".to_string(), INCIDENT.to_string())]),
        consistency_from: vec![TRUSTED_SIZE],
        ..BundleOptions::default()
    };
    let mut good = assemble(&ledger, &SELECTED, &options).unwrap();
    good.manifest.bundle_id = BUNDLE_ID.to_string();
    good.manifest.created_at = CREATED_AT.to_string();
    reseal(&mut good, LEDGER_SEED_INPUT);
    // The ledger's own seal is the one we recompute.
    let mut check = assemble(&ledger, &SELECTED, &options).unwrap();
    check.manifest.bundle_id = BUNDLE_ID.to_string();
    check.manifest.created_at = CREATED_AT.to_string();
    let signer = signer(LEDGER_SEED_INPUT);
    seal(&mut check, signer.key_name(), &signer.public_key(), |m| signer.sign(m)).unwrap();
    assert_eq!(check, good);
    ledger.close().unwrap();

    let mut files = BTreeMap::new();
    files.insert("ledger.pub".to_string(), format!("{key}\n").into_bytes());
    files.insert("trusted.checkpoint".to_string(), trusted.clone().into_bytes());
    files.insert(
        "forked.checkpoint".to_string(),
        forked_checkpoint(&trusted, &key).into_bytes(),
    );
    files.insert("good.bundle.json".to_string(), to_json(&good));
    let mut withheld = good.clone();
    for record in &mut withheld.records {
        record.payload = None;
    }
    files.insert("good-withheld.bundle.json".to_string(), to_json(&withheld));

    for (name, tamper) in tampers(&good, &trusted) {
        let mut bundle = good.clone();
        tamper(&mut bundle);
        assert_ne!(bundle, good, "{name}");
        files.insert(format!("{name}.bundle.json"), to_json(&bundle));
    }
    files
}

type Tamper<'a> = Box<dyn Fn(&mut Bundle) + 'a>;

/// One tampered copy per kind of tampering (the kinds each yields are in
/// `ledger-verify/tests/bundles.rs`).
fn tampers<'a>(good: &'a Bundle, trusted: &'a str) -> Vec<(&'static str, Tamper<'a>)> {
    vec![
        (
            "payload-byte-changed",
            Box::new(|b: &mut Bundle| {
                let record = &mut b.records[index_of(good, 2)];
                let mut payload = decode(record.payload.as_deref().unwrap());
                replace(&mut payload, b"checked", b"CHECKED");
                record.payload = Some(BASE64.encode(payload));
            }),
        ),
        (
            "record-field-changed",
            Box::new(|b: &mut Bundle| {
                // Moved to another incident: the canonical stream edited.
                let record = &mut b.records[index_of(good, 3)];
                let mut canonical = decode(&record.canonical);
                replace(&mut canonical, b"INC-2026-0042", b"INC-2026-0043");
                record.canonical = BASE64.encode(canonical);
            }),
        ),
        (
            "record-removed",
            Box::new(|b: &mut Bundle| {
                b.records.remove(index_of(good, 6));
            }),
        ),
        (
            "record-removed-recounted",
            Box::new(|b: &mut Bundle| {
                b.records.remove(index_of(good, 6));
                b.manifest.record_count -= 1;
            }),
        ),
        (
            "records-reordered",
            Box::new(|b: &mut Bundle| b.records.swap(index_of(good, 3), index_of(good, 6))),
        ),
        (
            "proof-hash-flipped",
            Box::new(|b: &mut Bundle| {
                let proof = &mut b.records[index_of(good, 6)].proof.hashes;
                let mut hash = hex::decode(&proof[0]).unwrap();
                hash[0] ^= 0x01;
                proof[0] = hex::encode(hash);
            }),
        ),
        (
            "proof-other-index",
            Box::new(|b: &mut Bundle| {
                b.records[index_of(good, 6)].proof = good.records[index_of(good, 9)].proof.clone();
            }),
        ),
        (
            "checkpoint-size-changed",
            Box::new(|b: &mut Bundle| {
                // A genuine, older checkpoint in place of the stated one.
                b.checkpoint = trusted.to_string();
            }),
        ),
        (
            "checkpoint-root-changed",
            Box::new(|b: &mut Bundle| {
                let mut root = decode(b.checkpoint.lines().nth(2).unwrap());
                root[31] ^= 0x01;
                b.checkpoint = edit_note_line(&b.checkpoint, 2, &BASE64.encode(root));
            }),
        ),
        (
            "checkpoint-unknown-key",
            Box::new(|b: &mut Bundle| b.checkpoint = resign_note(&b.checkpoint, STRANGER_SEED_INPUT)),
        ),
        (
            "manifest-unknown-key",
            Box::new(|b: &mut Bundle| reseal(b, STRANGER_SEED_INPUT)),
        ),
        (
            "manifest-edited",
            Box::new(|b: &mut Bundle| {
                b.manifest
                    .selector
                    .insert("incident".to_string(), "INC-2026-0043".to_string());
            }),
        ),
        (
            "payloads-swapped",
            Box::new(|b: &mut Bundle| {
                let (i, j) = (index_of(good, 9), index_of(good, 10));
                let payload = b.records[i].payload.take();
                b.records[i].payload = b.records[j].payload.replace(payload.unwrap());
            }),
        ),
        (
            "producer-key-substituted",
            Box::new(|b: &mut Bundle| {
                let other = SigningKey::from_bytes(&seed(OTHER_PRODUCER_SEED_INPUT));
                b.producer_keys[0].public_key = BASE64.encode(other.verifying_key().as_bytes());
            }),
        ),
        (
            "producer-key-missing",
            Box::new(|b: &mut Bundle| b.producer_keys.clear()),
        ),
        (
            "record-from-fork",
            Box::new(|b: &mut Bundle| {
                // Seq 10 of a history that differs from seq 9 on: a record
                // that is internally consistent (its record_hash recomputed)
                // but does not link to the bundle's seq 9.
                let record = &mut b.records[index_of(good, 10)];
                let mut header = RecordHeader::decode(&decode(&record.canonical)).unwrap();
                header.prev_hash = blake3(b"a forked seq 9");
                let canonical = header.encode();
                record.record_hash = hex::encode(record_hash(&canonical));
                record.canonical = BASE64.encode(canonical);
            }),
        ),
        (
            "seq-edited",
            Box::new(|b: &mut Bundle| {
                // Seq 6 claimed to be seq 7 (with a proof for 7 it could
                // never have).
                let record = &mut b.records[index_of(good, 6)];
                record.seq = 7;
                record.proof.index = 7;
            }),
        ),
        (
            "consistency-proof-flipped",
            Box::new(|b: &mut Bundle| {
                let hashes = &mut b.consistency[0].hashes;
                let last = hashes.len() - 1;
                let mut hash = hex::decode(&hashes[last]).unwrap();
                hash[0] ^= 0x01;
                hashes[last] = hex::encode(hash);
            }),
        ),
    ]
}

fn on_disk_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "README.md")
        .collect();
    names.sort();
    names
}

#[test]
fn bundle_fixtures_match_the_ledger_and_the_code() {
    let dir = bundles_dir();
    let ledger_dir = dir.join("ledger");
    if updating() && !ledger_dir.exists() {
        create_ledger(&ledger_dir);
    }
    let files = generate(&ledger_dir);
    if updating() {
        for name in on_disk_files(&dir) {
            if !files.contains_key(&name) {
                std::fs::remove_file(dir.join(&name)).unwrap();
            }
        }
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    assert_eq!(
        on_disk_files(&dir),
        files.keys().cloned().collect::<Vec<_>>(),
        "testdata/bundles/ holds other files than the generator makes (regenerate with UPDATE_BUNDLES=1)"
    );
    for (name, bytes) in &files {
        let on_disk = std::fs::read(dir.join(name)).unwrap();
        assert!(
            on_disk == *bytes,
            "testdata/bundles/{name} differs from what the code generates; \
             if the change is intended, rerun with UPDATE_BUNDLES=1 and review the diff"
        );
    }

    // The library's own view (the detailed kinds are checked in
    // ledger-verify/tests/bundles.rs): the good bundles verify with the
    // ledger key and the trusted checkpoint, no tampered one does.
    let key = VerifierKey::parse(std::str::from_utf8(&files["ledger.pub"]).unwrap().trim_end()).unwrap();
    let keys = [key];
    let trusted = [String::from_utf8(files["trusted.checkpoint"].clone()).unwrap()];
    let options = VerifyOptions {
        keys: &keys,
        trusted_checkpoints: &trusted,
    };
    for (name, bytes) in &files {
        if !name.ends_with(".bundle.json") {
            continue;
        }
        let result = verify_bundle(bytes, options);
        if name.starts_with("good") {
            let verified = result.unwrap();
            assert_eq!(
                (verified.records, verified.checkpoint_size, verified.consistency_proofs),
                (SELECTED.len() as u64, LEDGER_SIZE, 1)
            );
        } else {
            assert!(result.is_err(), "{name} verifies");
        }
    }
}
