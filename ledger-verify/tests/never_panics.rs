//! The verifier reads untrusted files: whatever the bytes, `verify_bundle`
//! and `open_checkpoint` return, never panic. Arbitrary bytes, byte-level
//! mutations of the good fixture (which must not verify unless they leave
//! the bundle's meaning unchanged, e.g. JSON whitespace), and field-level
//! mutations of what is hashed or signed (which must never verify). The
//! `fuzz/` targets run the same entry points under libFuzzer.

// Helpers as well as tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ledger_verify::bundle::{Bundle, VerifyOptions, parse_bundle, verify_bundle};
use ledger_verify::note::{VerifierKey, open_checkpoint};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../testdata/bundles/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Fixtures {
    good: Vec<u8>,
    bundle: Bundle,
    keys: Vec<VerifierKey>,
    trusted: Vec<String>,
}

fn fixtures() -> Fixtures {
    let good = fixture("good.bundle.json");
    let key = String::from_utf8(fixture("ledger.pub")).unwrap();
    Fixtures {
        bundle: parse_bundle(&good).unwrap(),
        good,
        keys: vec![VerifierKey::parse(key.trim_end()).unwrap()],
        trusted: vec![String::from_utf8(fixture("trusted.checkpoint")).unwrap()],
    }
}

impl Fixtures {
    fn options(&self) -> VerifyOptions<'_> {
        VerifyOptions {
            keys: &self.keys,
            trusted_checkpoints: &self.trusted,
        }
    }
}

/// Flips bits of a byte in base64 `text` (decoded), at `at` modulo length.
fn flip_base64(text: &mut String, at: usize, bits: u8) {
    let mut bytes = BASE64.decode(&*text).unwrap();
    if bytes.is_empty() {
        bytes.push(bits);
    } else {
        let i = at % bytes.len();
        bytes[i] ^= bits;
    }
    *text = BASE64.encode(bytes);
}

/// Flips bits of a byte in a hex hash.
fn flip_hex(text: &mut String, at: usize, bits: u8) {
    let mut bytes = hex::decode(&*text).unwrap();
    let i = at % bytes.len();
    bytes[i] ^= bits;
    *text = hex::encode(bytes);
}

/// One edit of something the manifest, a record hash, a proof or a
/// signature covers: `what` picks the field, `at` and `bits` the change
/// (`bits` is never 0, so every edit changes the bundle).
fn mutate(bundle: &mut Bundle, what: u8, at: usize, bits: u8) {
    let n = bundle.records.len();
    let record = &mut bundle.records[at % n];
    match what % 16 {
        0 => flip_base64(&mut record.canonical, at / 7, bits),
        1 => flip_base64(record.payload.as_mut().unwrap(), at / 7, bits),
        2 => flip_hex(&mut record.record_hash, at / 7, bits),
        3 => {
            let hashes = &mut record.proof.hashes;
            let j = (at / 7) % hashes.len();
            flip_hex(&mut hashes[j], at / 11, bits);
        }
        4 => record.seq ^= u64::from(bits),
        5 => record.proof.index ^= u64::from(bits),
        6 => {
            let record = bundle.records.remove(at % n);
            bundle.records.insert((at / 7) % n, record.clone());
            if bundle.records[at % n] == record {
                // Moved to where it was: duplicate it instead.
                bundle.records.push(record);
            }
        }
        7 => {
            let mut note = bundle.checkpoint.clone().into_bytes();
            let i = at % note.len();
            note[i] ^= bits;
            bundle.checkpoint = String::from_utf8_lossy(&note).into_owned();
        }
        8 => bundle.manifest.checkpoint_size ^= u64::from(bits),
        9 => bundle.manifest.record_count ^= u64::from(bits),
        10 => flip_hex(&mut bundle.manifest.contents_digest, at, bits),
        11 => flip_base64(&mut bundle.signature.signature, at, bits),
        12 => flip_base64(&mut bundle.producer_keys[0].public_key, at, bits),
        13 => flip_hex(&mut bundle.consistency[0].hashes[0], at, bits),
        14 => bundle.manifest.created_at.push(char::from(b'0' + bits % 10)),
        _ => bundle.records.truncate(at % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = fixtures();
        prop_assert!(verify_bundle(&bytes, f.options()).is_err());
        let _ = open_checkpoint(&String::from_utf8_lossy(&bytes), &f.keys);
    }

    #[test]
    fn byte_edits_of_a_good_bundle_never_verify_a_changed_bundle(
        edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
    ) {
        let f = fixtures();
        let mut bytes = f.good.clone();
        for (at, bits) in edits {
            let i = at % bytes.len();
            bytes[i] ^= bits;
        }
        if verify_bundle(&bytes, f.options()).is_ok() {
            // Only an edit that changes no field (JSON whitespace) may pass.
            prop_assert_eq!(parse_bundle(&bytes).unwrap(), f.bundle.clone());
        }
    }

    #[test]
    fn field_edits_never_verify(what in any::<u8>(), at in any::<usize>(), bits in 1u8..=255) {
        let f = fixtures();
        let mut bundle = f.bundle.clone();
        mutate(&mut bundle, what, at, bits);
        let bytes = serde_json::to_vec(&bundle).unwrap();
        let result = verify_bundle(&bytes, f.options());
        prop_assert!(result.is_err(), "edit {} at {} by {:#x} verifies", what % 16, at, bits);
    }

    #[test]
    fn checkpoint_edits_never_open(edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let f = fixtures();
        let mut note = f.trusted[0].clone().into_bytes();
        for (at, bits) in edits {
            let i = at % note.len();
            note[i] ^= bits;
        }
        if let Ok(text) = String::from_utf8(note) {
            // Two flips of one byte may cancel out.
            if text != f.trusted[0] {
                prop_assert!(open_checkpoint(&text, &f.keys).is_err());
            }
        }
    }
}
