//! Checked-in test vectors: Merkle roots and proofs (BLAKE3 and SHA-256
//! trees) and a signed checkpoint, under `testdata/vectors/`.
//!
//! The test regenerates every vector from the code and requires the files to
//! match byte for byte, so any change to hashing, proof generation or note
//! formatting shows up as a diff; `UPDATE_VECTORS=1` rewrites the files
//! instead. It also re-verifies every entry *read from the files* with the
//! verification functions, so the files are checked, not just compared. It
//! does not test error paths (the unit tests do).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;
use ledger_verify::hash::blake3;
use ledger_verify::merkle::{MemoryTree, root_of, verify_consistency, verify_inclusion};
use ledger_verify::note::{Checkpoint, VerifierKey, open_checkpoint, sign_note};
use ledger_verify::{Hash, HashAlg};
use serde::{Deserialize, Serialize};

/// Number of leaves in the Merkle vectors: enough for every shape of
/// unbalanced tree up to two levels past a power of two.
const LEAVES: u64 = 17;

const VECTOR_NOTE: &str = "Leaf i's input is the 32-byte BLAKE3 hash of the ASCII string \"leaf-<i>\" \
(in the ledger, leaf inputs are 32-byte record hashes); its leaf hash is H(0x00 || input) and \
interior nodes are H(0x01 || left || right), as in RFC 9162, with H the named hash. Indices are \
0-based. Proofs are ordered from the leaf upwards as in RFC 9162; every (index, size) with \
index < size <= 17 and every (old, new) with 1 <= old <= new <= 17 is listed.";

const KEY_SEED_INPUT: &str = "evidence-ledger test vector key";
const ORIGIN: &str = "evidence-ledger.example/vectors";
const KEY_NAME: &str = "evidence-ledger.example/vectors";

#[derive(Debug, Serialize, Deserialize)]
struct MerkleVectors {
    note: String,
    hash: String,
    leaves: Vec<String>,
    roots: Vec<RootEntry>,
    inclusion: Vec<InclusionEntry>,
    consistency: Vec<ConsistencyEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RootEntry {
    size: u64,
    root: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct InclusionEntry {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConsistencyEntry {
    old: u64,
    new: u64,
    proof: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointVector {
    description: String,
    note: String,
    verifier_key: String,
    origin: String,
    size: u64,
    root_b64: String,
    extensions: Vec<String>,
}

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/")).join(name)
}

fn leaf_inputs() -> Vec<Hash> {
    (0..LEAVES)
        .map(|i| blake3(format!("leaf-{i}").as_bytes()))
        .collect()
}

fn hex_all(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

fn unhex(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn unhex_all(texts: &[String]) -> Vec<Hash> {
    texts.iter().map(|t| unhex(t)).collect()
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    text
}

fn generate_merkle(alg: HashAlg) -> MerkleVectors {
    let inputs = leaf_inputs();
    let tree = MemoryTree::from_leaf_hashes(alg, inputs.iter().map(|l| alg.leaf_hash(l)));
    let roots = (0..=LEAVES)
        .map(|size| RootEntry {
            size,
            root: hex::encode(tree.root_at(size).unwrap()),
        })
        .collect();
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for size in 1..=LEAVES {
        for index in 0..size {
            inclusion.push(InclusionEntry {
                index,
                size,
                proof: hex_all(&tree.inclusion_proof(index, size).unwrap()),
            });
        }
    }
    for old in 1..=LEAVES {
        for new in old..=LEAVES {
            consistency.push(ConsistencyEntry {
                old,
                new,
                proof: hex_all(&tree.consistency_proof(old, new).unwrap()),
            });
        }
    }
    MerkleVectors {
        note: VECTOR_NOTE.to_owned(),
        hash: alg.name().to_owned(),
        leaves: hex_all(&inputs),
        roots,
        inclusion,
        consistency,
    }
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&blake3(KEY_SEED_INPUT.as_bytes()))
}

fn checkpoint() -> Checkpoint {
    let alg = HashAlg::Blake3;
    let leaves: Vec<Hash> = leaf_inputs().iter().map(|l| alg.leaf_hash(l)).collect();
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size: LEAVES,
        root: root_of(alg, &leaves),
        extensions: vec![
            "hash-alg blake3".to_owned(),
            format!(
                "chain-head {}",
                hex::encode(blake3(b"evidence-ledger test vector chain head"))
            ),
            "recorded-at 2026-11-23T00:00:00.000000000Z".to_owned(),
        ],
    }
}

fn generate_checkpoint() -> CheckpointVector {
    let key = signing_key();
    let cp = checkpoint();
    CheckpointVector {
        description: format!(
            "Ed25519 signing key seed = BLAKE3(\"{KEY_SEED_INPUT}\"); root = the size-{LEAVES} root of \
             merkle-blake3.json; the extension lines are opaque to the checkpoint format."
        ),
        note: sign_note(&cp.to_note_body(), KEY_NAME, &key).unwrap(),
        verifier_key: VerifierKey::from_signing_key(KEY_NAME, &key)
            .unwrap()
            .to_string(),
        origin: cp.origin,
        size: cp.size,
        root_b64: BASE64.encode(cp.root),
        extensions: cp.extensions,
    }
}

/// Verifies a Merkle vector file's contents with the verification functions
/// only, independently of how the file was produced.
fn check_merkle_file(text: &str, alg: HashAlg) {
    let v: MerkleVectors = serde_json::from_str(text).unwrap();
    assert_eq!(v.hash, alg.name());
    let leaves: Vec<Hash> = unhex_all(&v.leaves)
        .iter()
        .map(|l| alg.leaf_hash(l))
        .collect();
    assert_eq!(leaves.len() as u64, LEAVES);

    assert_eq!(v.roots.len() as u64, LEAVES + 1);
    let mut roots = Vec::new();
    for (n, entry) in v.roots.iter().enumerate() {
        assert_eq!(entry.size, n as u64);
        let root = unhex(&entry.root);
        assert_eq!(root, root_of(alg, &leaves[..n]), "root of size {n}");
        roots.push(root);
    }
    assert_eq!(roots[0], alg.empty_root());

    assert_eq!(v.inclusion.len() as u64, LEAVES * (LEAVES + 1) / 2);
    for e in &v.inclusion {
        let proof = unhex_all(&e.proof);
        verify_inclusion(
            alg,
            e.index,
            e.size,
            &leaves[e.index as usize],
            &proof,
            &roots[e.size as usize],
        )
        .unwrap_or_else(|err| panic!("inclusion ({}, {}): {err}", e.index, e.size));
    }

    assert_eq!(v.consistency.len() as u64, LEAVES * (LEAVES + 1) / 2);
    for e in &v.consistency {
        let proof = unhex_all(&e.proof);
        verify_consistency(
            alg,
            e.old,
            e.new,
            &roots[e.old as usize],
            &roots[e.new as usize],
            &proof,
        )
        .unwrap_or_else(|err| panic!("consistency ({}, {}): {err}", e.old, e.new));
    }
}

/// Verifies the checkpoint vector's note against its own verifier key and
/// fields, and its root against the BLAKE3 Merkle vectors.
fn check_checkpoint_file(text: &str, blake3_merkle: &str) {
    let v: CheckpointVector = serde_json::from_str(text).unwrap();
    let key = VerifierKey::parse(&v.verifier_key).unwrap();
    assert_eq!(key.name, KEY_NAME);
    let cp = open_checkpoint(&v.note, &[key]).unwrap();
    assert_eq!(cp.origin, v.origin);
    assert_eq!(cp.size, v.size);
    assert_eq!(BASE64.encode(cp.root), v.root_b64);
    assert_eq!(cp.extensions, v.extensions);

    let merkle: MerkleVectors = serde_json::from_str(blake3_merkle).unwrap();
    let root = &merkle.roots[v.size as usize];
    assert_eq!(root.size, v.size);
    assert_eq!(hex::encode(cp.root), root.root);
}

/// Points at the first differing line, since the files are long.
fn assert_same(path: &Path, on_disk: &str, generated: &str) {
    if on_disk == generated {
        return;
    }
    let line = on_disk
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
    panic!(
        "{} differs from the vectors generated by the code, first at line {} \
         (file: {:?}, generated: {:?}); if the change is intended, rerun with UPDATE_VECTORS=1",
        path.display(),
        line + 1,
        on_disk.lines().nth(line),
        generated.lines().nth(line),
    );
}

#[test]
fn vectors_match_the_code_and_verify() {
    let files = [
        (
            "merkle-blake3.json",
            to_json(&generate_merkle(HashAlg::Blake3)),
        ),
        (
            "merkle-sha256.json",
            to_json(&generate_merkle(HashAlg::Sha256)),
        ),
        ("checkpoint.json", to_json(&generate_checkpoint())),
    ];
    let update = std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1");
    let mut on_disk = Vec::new();
    for (name, generated) in &files {
        let path = vector_path(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, generated).unwrap();
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (generate with UPDATE_VECTORS=1)", path.display()));
        on_disk.push(text);
    }
    check_merkle_file(&on_disk[0], HashAlg::Blake3);
    check_merkle_file(&on_disk[1], HashAlg::Sha256);
    check_checkpoint_file(&on_disk[2], &on_disk[0]);
    for ((name, generated), text) in files.iter().zip(&on_disk) {
        assert_same(&vector_path(name), text, generated);
    }
}
