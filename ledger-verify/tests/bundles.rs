//! The audit-bundle fixtures in `testdata/bundles/` (generated from a real
//! ledger by `ledger-core/tests/bundle_fixtures.rs`), checked with the
//! verifier alone: the good bundles verify, and each tampered copy fails
//! with the failure kind (and record seq) that names its tampering. The
//! table below is the one in `docs/FORMAT.md` §12.6. Also runs the
//! `ledger-verify` binary on some of them.

// Helpers as well as tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ed25519_dalek::SigningKey;
use ledger_verify::bundle::{Bundle, BundleError, Verified, VerifyOptions, parse_bundle, verify_bundle};
use ledger_verify::note::{Checkpoint, VerifierKey, open_checkpoint, sign_note};
use ledger_verify::proof_json::{ConsistencyProofJson, InclusionProofJson, Leaf};
use ledger_verify::{Hash, HashAlg};

fn path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/bundles/")).join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap()
}

fn ledger_key() -> VerifierKey {
    VerifierKey::parse(text("ledger.pub").trim_end()).unwrap()
}

/// Verifies fixture `name` with the ledger key and the given trusted
/// checkpoint fixtures.
fn verify(name: &str, trusted: &[&str]) -> Result<Verified, BundleError> {
    let keys = [ledger_key()];
    let trusted: Vec<String> = trusted.iter().map(|t| text(t)).collect();
    verify_bundle(
        &read(name),
        VerifyOptions {
            keys: &keys,
            trusted_checkpoints: &trusted,
        },
    )
}

/// Each tampered fixture: the kind it must fail with, the seq the error
/// must name (if it is about a record), and a piece of the message.
///
/// Where two classes share a kind, the format leaves no other choice: an
/// edited checkpoint note and a note signed by a stranger both fail to
/// open (`checkpoint`, told apart by the message); a changed payload and
/// swapped payloads both fail the payload check (`payload`, told apart by
/// `hash` vs `length`).
const TAMPERED: &[(&str, &str, Option<u64>, &str)] = &[
    // A payload byte changed: it no longer matches the hash its record
    // commits to.
    ("payload-byte-changed", "payload", Some(2), "payload hash"),
    // A record field changed inside the canonical bytes (moved to another
    // incident): the bytes no longer hash to the record hash.
    (
        "record-field-changed",
        "record_hash",
        Some(3),
        "a record field was changed",
    ),
    // A record removed: the manifest's record count no longer fits.
    (
        "record-removed",
        "record_count",
        None,
        "record_count is 8 but the bundle holds 7",
    ),
    // A record removed and the count edited to match: the contents digest
    // (and so the signed manifest) no longer fits.
    ("record-removed-recounted", "contents_digest", None, "contents_digest"),
    // Two records swapped: seqs must increase.
    ("records-reordered", "record_order", Some(3), "seq 3 follows seq 6"),
    // One hash of an inclusion proof flipped.
    ("proof-hash-flipped", "inclusion", Some(6), "root mismatch"),
    // Another record's inclusion proof (index and hashes) copied in.
    ("proof-other-index", "proof_index", Some(6), "is for index 9"),
    // A genuine older checkpoint in place of the one the manifest names.
    (
        "checkpoint-size-changed",
        "checkpoint_mismatch",
        None,
        "size is \"5\" but the manifest says \"12\"",
    ),
    // The checkpoint's root line edited: the ledger's signature fails.
    ("checkpoint-root-changed", "checkpoint", None, "does not verify"),
    // The checkpoint re-signed by a key the auditor does not trust.
    (
        "checkpoint-unknown-key",
        "checkpoint",
        None,
        "no signature by a trusted key",
    ),
    // The manifest sealed by a key the auditor does not trust (same name).
    (
        "manifest-unknown-key",
        "untrusted_manifest_key",
        None,
        "not a trusted key",
    ),
    // The manifest's selector edited after sealing.
    (
        "manifest-edited",
        "manifest_signature",
        None,
        "manifest edited after signing",
    ),
    // The payloads of seq 9 and seq 10 swapped (their lengths differ).
    ("payloads-swapped", "payload", Some(9), "payload length"),
    // The producer's public key replaced by another key.
    (
        "producer-key-substituted",
        "producer_signature",
        Some(1),
        "ops-hub/probe-eu-1",
    ),
    // The producer key left out.
    (
        "producer-key-missing",
        "unknown_producer_key",
        Some(1),
        "ops-hub/probe-eu-1",
    ),
    // Seq 10 replaced by a record from a forked history (its record hash
    // recomputed, so only the chain link shows it).
    ("record-from-fork", "chain_broken", Some(10), "broken chain"),
    // Seq 6 relabelled seq 7 (with proof index 7).
    ("seq-edited", "seq_mismatch", Some(7), "hold seq 6"),
    // A consistency proof hash flipped; fails only against a trusted
    // checkpoint (consistency proofs are not covered by the manifest).
    (
        "consistency-proof-flipped",
        "consistency",
        None,
        "trusted checkpoint of size 5",
    ),
];

#[test]
fn good_bundles_verify() {
    let verified = verify("good.bundle.json", &["trusted.checkpoint"]).unwrap();
    assert_eq!(
        verified,
        Verified {
            records: 8,
            checkpoint_size: 12,
            origin: "evidence-ledger.test/bundles".to_string(),
            payloads: 8,
            producer_signatures: 2,
            chain_links: 5,
            consistency_proofs: 1,
            key_rotations: 0,
            manifest_key: format!("{}+{}", ledger_key().name, hex::encode(ledger_key().key_id)),
        }
    );
    // No trusted checkpoint: nothing to be consistent with.
    assert_eq!(verify("good.bundle.json", &[]).unwrap().consistency_proofs, 0);
    // The same bundle with every payload withheld (selective disclosure):
    // same signature, nothing about the records lost but the payloads.
    let withheld = verify("good-withheld.bundle.json", &["trusted.checkpoint"]).unwrap();
    assert_eq!((withheld.records, withheld.payloads), (8, 0));
    let good = parse_bundle(&read("good.bundle.json")).unwrap();
    let stripped = parse_bundle(&read("good-withheld.bundle.json")).unwrap();
    assert_eq!(good.signature, stripped.signature);
}

#[test]
fn every_tampered_bundle_fails_with_its_kind() {
    let mut kinds = Vec::new();
    for &(name, kind, seq, message) in TAMPERED {
        let file = format!("{name}.bundle.json");
        let error = verify(&file, &["trusted.checkpoint"])
            .err()
            .unwrap_or_else(|| panic!("{file} verifies"));
        assert_eq!((error.kind(), error.seq()), (kind, seq), "{file}: {error}");
        assert!(error.to_string().contains(message), "{file}: {error}");
        kinds.push(kind);
    }
    // The two pairs documented above are the only shared kinds.
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), TAMPERED.len() - 2);

    // Every tampered fixture is covered by the table.
    let mut on_disk: Vec<String> = std::fs::read_dir(path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bundle.json") && !n.starts_with("good"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TAMPERED.iter().map(|t| format!("{}.bundle.json", t.0)).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn consistency_proofs_are_checked_only_against_trusted_checkpoints() {
    // Not covered by the manifest: without a trusted checkpoint the flipped
    // proof is never used.
    assert!(verify("consistency-proof-flipped.bundle.json", &[]).is_ok());
    // A checkpoint of size 5 signed by the ledger key over another tree (the
    // ledger showed that auditor a fork): the good bundle's proof starts
    // from another root.
    let error = verify("good.bundle.json", &["forked.checkpoint"]).unwrap_err();
    assert_eq!(error.kind(), "consistency");
    assert!(error.to_string().contains("split view"), "{error}");
    // The bundle's own checkpoint as the trusted one: equal sizes, no proof
    // needed.
    let bundle = parse_bundle(&read("good.bundle.json")).unwrap();
    let keys = [ledger_key()];
    let own = [bundle.checkpoint.clone()];
    let options = VerifyOptions {
        keys: &keys,
        trusted_checkpoints: &own,
    };
    assert_eq!(
        verify_bundle(&read("good.bundle.json"), options)
            .unwrap()
            .consistency_proofs,
        1
    );
}

#[test]
fn the_empty_tree_needs_no_consistency_proof() {
    // The ledger's size-0 checkpoint (its key's seed is published in
    // FORMAT.md §12.6): every tree extends it.
    let bundle = parse_bundle(&read("good.bundle.json")).unwrap();
    let keys = [ledger_key()];
    let current = open_checkpoint(&bundle.checkpoint, &keys).unwrap();
    let empty = Checkpoint {
        size: 0,
        root: HashAlg::Blake3.empty_root(),
        ..current
    };
    let seed = ledger_verify::hash::blake3(b"evidence-ledger bundle fixture ledger key");
    let note = sign_note(&empty.to_note_body(), &keys[0].name, &SigningKey::from_bytes(&seed)).unwrap();
    let trusted = [note];
    let options = VerifyOptions {
        keys: &keys,
        trusted_checkpoints: &trusted,
    };
    let verified = verify_bundle(&read("good.bundle.json"), options).unwrap();
    assert_eq!(verified.consistency_proofs, 1);
}

#[test]
fn nothing_verifies_without_the_ledger_key() {
    let error = verify_bundle(&read("good.bundle.json"), VerifyOptions::default()).unwrap_err();
    assert_eq!(error.kind(), "checkpoint");
}

// The binary.

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger-verify"))
        .args(args)
        .current_dir(path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn cli_verifies_the_good_bundle() {
    let key_text = text("ledger.pub");
    // The key as a file and as text.
    for key in ["ledger.pub", key_text.trim_end()] {
        let output = run(
            &[
                "bundle",
                "good.bundle.json",
                "--key",
                key,
                "--trusted-checkpoint",
                "trusted.checkpoint",
            ],
            None,
        );
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(stdout(&output), "verified: 8 records, checkpoint size 12\n");
        assert!(output.stderr.is_empty());
    }
    let output = run(
        &["bundle", "-", "--key", "ledger.pub", "--json"],
        Some(&read("good.bundle.json")),
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout(&output).starts_with(r#"{"ok":true,"records":8,"checkpoint_size":12,"#));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        (
            &json["ok"],
            &json["records"],
            &json["checkpoint_size"],
            &json["payloads"]
        ),
        (&true.into(), &8.into(), &12.into(), &8.into())
    );
}

#[test]
fn cli_names_what_failed_in_one_line() {
    for (name, kind, seq, message) in [
        (
            "proof-other-index",
            "proof_index",
            Some(6),
            "record seq 6: its inclusion proof is for index 9",
        ),
        (
            "manifest-edited",
            "manifest_signature",
            None,
            "signature: the manifest signature",
        ),
        (
            "payload-byte-changed",
            "payload",
            Some(2),
            "record seq 2: payload does not match",
        ),
    ] {
        let file = format!("{name}.bundle.json");
        let output = run(&["bundle", &file, "--key", "ledger.pub"], None);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let out = stdout(&output);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with(&format!("not verified: {message}")), "{out}");

        let output = run(&["bundle", &file, "--key", "ledger.pub", "--json"], None);
        assert_eq!(output.status.code(), Some(1));
        assert!(stdout(&output).starts_with(&format!(r#"{{"ok":false,"kind":"{kind}","seq":"#)));
        let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["kind"], kind);
        assert_eq!(json["seq"], serde_json::to_value(seq).unwrap());
        assert!(json["error"].as_str().unwrap().starts_with(message), "{json}");
    }
    // Consistency against a forked trusted checkpoint.
    let output = run(
        &[
            "bundle",
            "good.bundle.json",
            "--key",
            "ledger.pub",
            "--trusted-checkpoint",
            "forked.checkpoint",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("split view"));
}

#[test]
fn cli_usage_and_input_errors_exit_2() {
    for (args, message) in [
        (&["bundle", "good.bundle.json"][..], "at least one --key"),
        (
            &["bundle", "no-such.bundle.json", "--key", "ledger.pub"],
            "no-such.bundle.json",
        ),
        (
            &["bundle", "good.bundle.json", "--key", "no-such.pub"],
            "not a readable file",
        ),
        (&["bundle", "good.bundle.json", "--key", "good.bundle.json"], "line 1"),
        (&["frobnicate", "x"], "unknown subcommand"),
    ] {
        let output = run(args, None);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty());
        let err = String::from_utf8(output.stderr).unwrap();
        assert!(err.contains(message), "{args:?}: {err}");
    }
    let output = run(&["bundle", "good.bundle.json", "--json"], None);
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!((&json["ok"], &json["kind"]), (&false.into(), &"usage".into()));
}

#[test]
fn cli_opens_checkpoints() {
    let output = run(&["checkpoint", "trusted.checkpoint", "--key", "ledger.pub"], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let out = stdout(&output);
    let checkpoint = open_checkpoint(&text("trusted.checkpoint"), &[ledger_key()]).unwrap();
    assert!(out.starts_with(&format!(
        "origin: evidence-ledger.test/bundles\nsize: 5\nroot: {}\nextension: hash-alg blake3\n",
        hex::encode(checkpoint.root)
    )));
    assert!(out.ends_with(&format!("signed-by: {}\n", ledger_key())), "{out}");

    let bundle: Bundle = parse_bundle(&read("checkpoint-root-changed.bundle.json")).unwrap();
    let output = run(
        &["checkpoint", "-", "--key", "ledger.pub"],
        Some(bundle.checkpoint.as_bytes()),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("not verified: checkpoint: signature by key"));
}

fn checkpoint_root(note: &str) -> Hash {
    open_checkpoint(note, &[ledger_key()]).unwrap().root
}

fn unhex(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

#[test]
fn cli_checks_proof_documents() {
    let bundle = parse_bundle(&read("good.bundle.json")).unwrap();
    let record = &bundle.records[4];
    let inclusion = InclusionProofJson {
        hash_alg: HashAlg::Blake3,
        index: record.seq,
        tree_size: 12,
        leaf: Leaf::RecordHash(unhex(&record.record_hash)),
        root: checkpoint_root(&bundle.checkpoint),
        proof: record.proof.hashes.iter().map(|h| unhex(h)).collect(),
    };
    let output = run(&["inclusion", "-"], Some(inclusion.to_json().as_bytes()));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(stdout(&output), "verified: inclusion of index 6 in tree size 12\n");
    let wrong = InclusionProofJson { index: 7, ..inclusion };
    let output = run(&["inclusion", "-", "--json"], Some(wrong.to_json().as_bytes()));
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["kind"], "proof");

    let step = &bundle.consistency[0];
    let consistency = ConsistencyProofJson {
        hash_alg: HashAlg::Blake3,
        old_size: step.old_size,
        new_size: 12,
        old_root: checkpoint_root(&text("trusted.checkpoint")),
        new_root: checkpoint_root(&bundle.checkpoint),
        proof: step.hashes.iter().map(|h| unhex(h)).collect(),
    };
    assert_eq!(consistency.old_root, unhex(&step.old_root));
    let output = run(&["consistency", "-"], Some(consistency.to_json().as_bytes()));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(stdout(&output), "verified: tree size 5 is a prefix of tree size 12\n");
    let forked = ConsistencyProofJson {
        old_root: checkpoint_root(&text("forked.checkpoint")),
        ..consistency
    };
    let output = run(&["consistency", "-"], Some(forked.to_json().as_bytes()));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("not verified: consistency proof does not verify: old root mismatch"));
    // Strict parsing names the field.
    let output = run(&["consistency", "-"], Some(br#"{"hash_alg":"blake3","old_size":"5"}"#));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "not verified: old_size: expected an integer from 0 to 2^64-1, found a string\n"
    );
}

#[test]
fn a_selector_name_given_twice_is_refused() {
    let good = text("good.bundle.json");
    let doubled = good.replacen(
        r#""incident": "INC-2026-0042""#,
        r#""incident": "INC-2026-0042", "incident": "INC-2026-0043""#,
        1,
    );
    assert_ne!(doubled, good);
    let error = parse_bundle(doubled.as_bytes()).unwrap_err();
    assert_eq!(error.kind(), "json");
    assert!(
        error.to_string().contains("duplicate selector key \"incident\""),
        "{error}"
    );
}
