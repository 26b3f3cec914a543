//! Checked-in test vectors: Merkle roots and proofs (BLAKE3 and SHA-256
//! trees), a signed checkpoint and a short chain of canonical records, under
//! `testdata/vectors/` (described in `docs/FORMAT.md`, "Test vectors").
//!
//! The test regenerates every vector from the code and requires the files to
//! match byte for byte, so any change to hashing, proof generation or note
//! formatting shows up as a diff; `UPDATE_VECTORS=1` rewrites the files
//! instead. It also re-verifies every entry *read from the files* with the
//! verification functions, so the files are checked, not just compared. It
//! does not test error paths (the unit tests do).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use ledger_verify::hash::blake3;
use ledger_verify::merkle::{MemoryTree, root_of, verify_consistency, verify_inclusion};
use ledger_verify::note::{Checkpoint, VerifierKey, open_checkpoint, sign_note};
use ledger_verify::record::{
    EventHeader, GENESIS_PREV_HASH, Metadata, ProducerSignature, RecordHeader, payload_hash, record_hash,
};
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

/// Seed input of the producer key that signs one record vector (a test
/// key: its seed is published in the vector).
const PRODUCER_SEED_INPUT: &str = "evidence-ledger test vector producer key";
/// The producer key id carried in the signed record (free text, resolved by
/// the ledger's producer key registry).
const PRODUCER_KEY_ID: &str = "ops-hub/probe-eu-1";

#[derive(Debug, Serialize, Deserialize)]
struct RecordVectors {
    description: String,
    producer_key: ProducerKeyVector,
    records: Vec<RecordEntry>,
    tree: TreeVector,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProducerKeyVector {
    key_id: String,
    seed_hex: String,
    public_key_hex: String,
}

/// One record: its decoded fields, then the bytes and hashes derived from
/// them.
#[derive(Debug, Serialize, Deserialize)]
struct RecordEntry {
    seq: u64,
    stream_version: u64,
    recorded_at_ns: i64,
    id_hex: String,
    id_uuid: String,
    stream: String,
    #[serde(rename = "type")]
    event_type: String,
    occurred_at_ns: i64,
    content_type: String,
    payload: String,
    payload_hex: String,
    payload_len: u64,
    metadata: MetadataEntry,
    signature: Option<SignatureEntry>,
    payload_hash: String,
    prev_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_signing_bytes_hex: Option<String>,
    canonical_hex: String,
    record_hash: String,
    leaf_hash: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MetadataEntry {
    correlation_id: String,
    causation_id: String,
    trace_id: String,
    extra: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SignatureEntry {
    key_id: String,
    signature_hex: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TreeVector {
    hash: String,
    size: u64,
    root: String,
}

/// What a producer sends for one record vector, plus the ledger-assigned
/// time (the writer stamps a whole group commit with one `recorded_at`).
struct RecordSpec {
    id_hex: &'static str,
    stream: &'static str,
    event_type: &'static str,
    occurred_at_ns: i64,
    recorded_at_ns: i64,
    payload: &'static str,
    correlation_id: &'static str,
    causation_id: &'static str,
    trace_id: &'static str,
    extra: &'static [(&'static str, &'static str)],
    signed: bool,
}

/// Four records on two streams: seq 0 has free metadata entries, seq 1 is
/// producer-signed, seq 2 has empty metadata (and a non-ASCII payload),
/// seqs 1 and 2 share one group commit's `recorded_at`.
const RECORD_SPECS: [RecordSpec; 4] = [
    RecordSpec {
        id_hex: "01a207af1734716c84cdf4386ae15fee",
        stream: "task/CUST-WP-0051-T03",
        event_type: "task.created",
        occurred_at_ns: 1_795_425_244_980_000_000,
        recorded_at_ns: 1_795_425_245_120_000_000,
        payload: r#"{"task":"CUST-WP-0051-T03","workplan":"CUST-WP-0051","title":"Verify the registry endpoint answers with the Docker v2 header","status":"todo","priority":"high","needs_human":false,"done_when":"GET /v2/ returns 401 with Docker-Distribution-Api-Version"}"#,
        correlation_id: "CUST-WP-0051",
        causation_id: "",
        trace_id: "",
        extra: &[
            ("actor", "planner@ops-hub"),
            ("namespace", "task"),
            ("workplan", "CUST-WP-0051"),
        ],
        signed: false,
    },
    RecordSpec {
        id_hex: "01a207b007907c978c121a37e664a6cc",
        stream: "service/ops-hub",
        event_type: "ops.endpoint_verified",
        occurred_at_ns: 1_795_425_306_512_000_000,
        recorded_at_ns: 1_795_425_307_004_512_000,
        payload: r#"{"endpoint":"https://registry.example/v2/","expected_status":401,"observed_status":401,"observed_header":"Docker-Distribution-Api-Version: registry/2.0"}"#,
        correlation_id: "CUST-WP-0051",
        causation_id: "01a207af-1734-716c-84cd-f4386ae15fee",
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        extra: &[("hub", "ops-hub"), ("probe", "registry-v2")],
        signed: true,
    },
    RecordSpec {
        id_hex: "01a207b0090a71918904440c3a567c05",
        stream: "task/CUST-WP-0051-T03",
        event_type: "task.status_changed",
        occurred_at_ns: 1_795_425_306_890_000_000,
        recorded_at_ns: 1_795_425_307_004_512_000,
        payload: "{\"task\":\"CUST-WP-0051-T03\",\"from\":\"todo\",\"to\":\"done\",\"note\":\"2026-11-23 \u{2014} registry answers 401 with Docker-Distribution-Api-Version: registry/2.0\",\"evidence\":[\"01a207b0-0790-7c97-8c12-1a37e664a6cc\"]}",
        correlation_id: "",
        causation_id: "",
        trace_id: "",
        extra: &[],
        signed: false,
    },
    RecordSpec {
        id_hex: "01a207e6dca07b088c811619ab6a2824",
        stream: "service/ops-hub",
        event_type: "ops.backup_verified",
        occurred_at_ns: 1_795_428_900_000_000_000,
        recorded_at_ns: 1_795_428_905_250_000_000,
        payload: r#"{"backup":"registry-db-2026-11-23T09:00Z","target":"s3://backups.example/registry/","size_bytes":734003200,"checksum_verified":true}"#,
        correlation_id: "CUST-WP-0051",
        causation_id: "",
        trace_id: "",
        extra: &[("workplan", "CUST-WP-0051")],
        signed: false,
    },
];

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/")).join(name)
}

fn leaf_inputs() -> Vec<Hash> {
    (0..LEAVES).map(|i| blake3(format!("leaf-{i}").as_bytes())).collect()
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
        verifier_key: VerifierKey::from_signing_key(KEY_NAME, &key).unwrap().to_string(),
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
    let leaves: Vec<Hash> = unhex_all(&v.leaves).iter().map(|l| alg.leaf_hash(l)).collect();
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

fn producer_key() -> SigningKey {
    SigningKey::from_bytes(&blake3(PRODUCER_SEED_INPUT.as_bytes()))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower-case (RFC 9562 text form).
fn uuid_text(id: &[u8; 16]) -> String {
    let h = hex::encode(id);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn generate_records() -> RecordVectors {
    let producer = producer_key();
    let alg = HashAlg::Blake3;
    let mut prev_hash = GENESIS_PREV_HASH;
    let mut stream_heads: BTreeMap<&str, u64> = BTreeMap::new();
    let mut records = Vec::new();
    let mut leaves = Vec::new();
    for (seq, spec) in RECORD_SPECS.iter().enumerate() {
        let id: [u8; 16] = hex::decode(spec.id_hex).unwrap().try_into().unwrap();
        let payload = spec.payload.as_bytes();
        let stream_version = stream_heads.get(spec.stream).map_or(0, |v| v + 1);
        stream_heads.insert(spec.stream, stream_version);
        let mut event = EventHeader {
            id,
            stream: spec.stream.to_owned(),
            event_type: spec.event_type.to_owned(),
            occurred_at_ns: spec.occurred_at_ns,
            content_type: "application/json".to_owned(),
            payload_len: payload.len() as u64,
            payload_hash: payload_hash(payload),
            metadata: Metadata {
                correlation_id: spec.correlation_id.to_owned(),
                causation_id: spec.causation_id.to_owned(),
                trace_id: spec.trace_id.to_owned(),
                extra: spec
                    .extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            signature: None,
        };
        let signing_bytes = spec.signed.then(|| event.signing_bytes());
        if let Some(bytes) = &signing_bytes {
            event.signature = Some(ProducerSignature {
                key_id: PRODUCER_KEY_ID.to_owned(),
                signature: producer.sign(bytes).to_bytes(),
            });
        }
        let header = RecordHeader {
            seq: seq as u64,
            stream_version,
            recorded_at_ns: spec.recorded_at_ns,
            prev_hash,
            event,
        };
        let canonical = header.encode();
        let hash = record_hash(&canonical);
        let leaf = alg.leaf_hash(&hash);
        leaves.push(leaf);
        let event = &header.event;
        records.push(RecordEntry {
            seq: header.seq,
            stream_version,
            recorded_at_ns: header.recorded_at_ns,
            id_hex: hex::encode(event.id),
            id_uuid: uuid_text(&event.id),
            stream: event.stream.clone(),
            event_type: event.event_type.clone(),
            occurred_at_ns: event.occurred_at_ns,
            content_type: event.content_type.clone(),
            payload: spec.payload.to_owned(),
            payload_hex: hex::encode(payload),
            payload_len: event.payload_len,
            metadata: MetadataEntry {
                correlation_id: event.metadata.correlation_id.clone(),
                causation_id: event.metadata.causation_id.clone(),
                trace_id: event.metadata.trace_id.clone(),
                extra: event.metadata.extra.clone(),
            },
            signature: event.signature.as_ref().map(|sig| SignatureEntry {
                key_id: sig.key_id.clone(),
                signature_hex: hex::encode(sig.signature),
            }),
            payload_hash: hex::encode(event.payload_hash),
            prev_hash: hex::encode(prev_hash),
            event_signing_bytes_hex: signing_bytes.map(hex::encode),
            canonical_hex: hex::encode(&canonical),
            record_hash: hex::encode(hash),
            leaf_hash: hex::encode(leaf),
        });
        prev_hash = hash;
    }
    RecordVectors {
        description: format!(
            "A chain of {n} records as docs/FORMAT.md specifies them. canonical_hex is the canonical \
             record encoding of the decoded fields; record_hash = BLAKE3(canonical); payload_hash = \
             BLAKE3(payload bytes), payload being the UTF-8 bytes of the payload string (payload_hex); \
             prev_hash is the previous record's record_hash (32 zero bytes for seq 0); leaf_hash = \
             BLAKE3(0x00 || record_hash), the Merkle leaf of a ledger whose tree hash is blake3 (the \
             default), and tree.root is the RFC 9162 root of the {n} leaves. The signed record carries an \
             Ed25519 signature over event_signing_bytes_hex by the producer key, whose seed is \
             BLAKE3(\"{PRODUCER_SEED_INPUT}\") (a test key). Hashes are lower-case hex.",
            n = RECORD_SPECS.len()
        ),
        producer_key: ProducerKeyVector {
            key_id: PRODUCER_KEY_ID.to_owned(),
            seed_hex: hex::encode(producer.to_bytes()),
            public_key_hex: hex::encode(producer.verifying_key().to_bytes()),
        },
        tree: TreeVector {
            hash: alg.name().to_owned(),
            size: leaves.len() as u64,
            root: hex::encode(root_of(alg, &leaves)),
        },
        records,
    }
}

/// Verifies the record vectors from the file's decoded fields alone: the
/// encoding, the decoding, every hash, the chain and the producer signature.
fn check_records_file(text: &str) {
    let v: RecordVectors = serde_json::from_str(text).unwrap();
    let seed: [u8; 32] = hex::decode(&v.producer_key.seed_hex).unwrap().try_into().unwrap();
    let public: [u8; 32] = hex::decode(&v.producer_key.public_key_hex).unwrap().try_into().unwrap();
    assert_eq!(SigningKey::from_bytes(&seed).verifying_key().to_bytes(), public);
    let producer = VerifyingKey::from_bytes(&public).unwrap();
    let alg = HashAlg::Blake3;
    assert_eq!(v.tree.hash, alg.name());

    let mut prev_hash = GENESIS_PREV_HASH;
    let mut leaves = Vec::new();
    for (i, e) in v.records.iter().enumerate() {
        let ctx = format!("record {i}");
        assert_eq!(e.seq, i as u64, "{ctx}");
        let id: [u8; 16] = hex::decode(&e.id_hex).unwrap().try_into().unwrap();
        assert_eq!(e.id_uuid, uuid_text(&id), "{ctx}");
        let payload = e.payload.as_bytes();
        assert_eq!(e.payload_hex, hex::encode(payload), "{ctx}");
        assert_eq!(e.payload_len, payload.len() as u64, "{ctx}");
        assert_eq!(unhex(&e.payload_hash), blake3(payload), "{ctx}: payload hash");
        assert_eq!(unhex(&e.prev_hash), prev_hash, "{ctx}: chain");
        let signature = e.signature.as_ref().map(|s| ProducerSignature {
            key_id: s.key_id.clone(),
            signature: hex::decode(&s.signature_hex).unwrap().try_into().unwrap(),
        });
        let fields = RecordHeader {
            seq: e.seq,
            stream_version: e.stream_version,
            recorded_at_ns: e.recorded_at_ns,
            prev_hash,
            event: EventHeader {
                id,
                stream: e.stream.clone(),
                event_type: e.event_type.clone(),
                occurred_at_ns: e.occurred_at_ns,
                content_type: e.content_type.clone(),
                payload_len: e.payload_len,
                payload_hash: unhex(&e.payload_hash),
                metadata: Metadata {
                    correlation_id: e.metadata.correlation_id.clone(),
                    causation_id: e.metadata.causation_id.clone(),
                    trace_id: e.metadata.trace_id.clone(),
                    extra: e.metadata.extra.clone(),
                },
                signature,
            },
        };
        let canonical = hex::decode(&e.canonical_hex).unwrap();
        assert_eq!(RecordHeader::decode(&canonical), Ok(fields.clone()), "{ctx}: decode");
        assert_eq!(fields.encode(), canonical, "{ctx}: encode");
        let hash = record_hash(&canonical);
        assert_eq!(hash, blake3(&canonical), "{ctx}");
        assert_eq!(unhex(&e.record_hash), hash, "{ctx}: record hash");
        let leaf = alg.leaf_hash(&hash);
        assert_eq!(unhex(&e.leaf_hash), leaf, "{ctx}: leaf hash");
        leaves.push(leaf);

        match (&fields.event.signature, &e.event_signing_bytes_hex) {
            (Some(sig), Some(signing_hex)) => {
                let signing_bytes = hex::decode(signing_hex).unwrap();
                assert_eq!(fields.event.signing_bytes(), signing_bytes, "{ctx}: signing bytes");
                assert_eq!(sig.key_id, v.producer_key.key_id, "{ctx}");
                let signature = Signature::from_bytes(&sig.signature);
                producer
                    .verify_strict(&signing_bytes, &signature)
                    .unwrap_or_else(|err| panic!("{ctx}: producer signature: {err}"));
                // The signature binds the event: any other event fails.
                let mut other = signing_bytes.clone();
                let last = other.len() - 1;
                other[last] ^= 1;
                assert!(producer.verify_strict(&other, &signature).is_err(), "{ctx}");
            }
            (None, None) => {}
            _ => panic!("{ctx}: event_signing_bytes_hex must be present exactly when signed"),
        }
        prev_hash = hash;
    }
    assert_eq!(v.tree.size, leaves.len() as u64);
    assert_eq!(unhex(&v.tree.root), root_of(alg, &leaves));

    // The vectors keep covering what docs/FORMAT.md promises they cover.
    let records = &v.records;
    assert!(records.len() >= 3);
    assert!(records.iter().any(|r| r.signature.is_some()));
    assert!(records.iter().any(|r| !r.metadata.extra.is_empty()));
    assert!(records.iter().any(|r| {
        let m = &r.metadata;
        m.correlation_id.is_empty() && m.causation_id.is_empty() && m.trace_id.is_empty() && m.extra.is_empty()
    }));
}

/// With `UPDATE_VECTORS=1`, writes `generated` to the vector file `name`;
/// either way returns the file's contents.
fn load_or_update(name: &str, generated: &str) -> String {
    let path = vector_path(name);
    if std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generated).unwrap();
    }
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (generate with UPDATE_VECTORS=1)", path.display()))
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
        ("merkle-blake3.json", to_json(&generate_merkle(HashAlg::Blake3))),
        ("merkle-sha256.json", to_json(&generate_merkle(HashAlg::Sha256))),
        ("checkpoint.json", to_json(&generate_checkpoint())),
    ];
    let on_disk: Vec<String> = files
        .iter()
        .map(|(name, generated)| load_or_update(name, generated))
        .collect();
    check_merkle_file(&on_disk[0], HashAlg::Blake3);
    check_merkle_file(&on_disk[1], HashAlg::Sha256);
    check_checkpoint_file(&on_disk[2], &on_disk[0]);
    for ((name, generated), text) in files.iter().zip(&on_disk) {
        assert_same(&vector_path(name), text, generated);
    }
}

#[test]
fn record_vectors_match_the_code_and_verify() {
    let name = "records.json";
    let generated = to_json(&generate_records());
    let on_disk = load_or_update(name, &generated);
    check_records_file(&on_disk);
    assert_same(&vector_path(name), &on_disk, &generated);
}
