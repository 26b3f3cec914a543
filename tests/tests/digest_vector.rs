//! The projection state digest test vector,
//! `testdata/vectors/projection-digest.json` (docs/FORMAT.md §9.1).
//!
//! The cases are generated here from [`digest_entries`] and must match the
//! file byte for byte (`UPDATE_VECTORS=1` rewrites it). Each case read from
//! the file is then checked twice: by `digest_entries`, and by hashing the
//! preimage built from the FORMAT.md text alone, so code, document and file
//! cannot drift apart.

use std::path::PathBuf;

use ledger_core::projection::engine::digest_entries;
use ledger_verify::hash::blake3;
use serde_json::{Value, json};

const FILE: &str = "projection-digest.json";
const DOMAIN_TAG: &[u8] = b"evidence-ledger/projection-digest/v1\n";

const DESCRIPTION: &str = "Projection state digests (docs/FORMAT.md 9.1). Each case lists stored \
entries (key and value bytes in hex, and as text where they are UTF-8) in byte order of the keys. \
digest = BLAKE3(\"evidence-ledger/projection-digest/v1\\n\" || for each entry whose key does not \
start with 0xFF: u32 LE len(key) || key || u32 LE len(value) || value), lower-case hex; preimage_hex \
is the hashed input and entries the number of entries it covers. Keys starting with 0xFF are the \
engine's (applied length, faults): listed, but not hashed.";

struct Case {
    name: &'static str,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn applied_key() -> Vec<u8> {
    b"\xFFapplied".to_vec()
}

fn fault_key(seq: u64) -> Vec<u8> {
    let mut key = b"\xFFfault".to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn row(table: &str, key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    let mut stored = table.as_bytes().to_vec();
    stored.push(0);
    stored.extend_from_slice(key.as_bytes());
    (stored, value.as_bytes().to_vec())
}

/// The inputs, in key order.
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty state",
            entries: vec![],
        },
        Case {
            name: "engine keys only: digests as the empty state",
            entries: vec![
                (applied_key(), 3u64.to_be_bytes().to_vec()),
                (fault_key(2), b"task.status_changed: missing \"to\"".to_vec()),
            ],
        },
        Case {
            name: "one row",
            entries: vec![row(
                "task",
                "CUST-WP-0051-T01",
                r#"{"id":"CUST-WP-0051-T01","workstream":"CUST-WP-0051","status":"done"}"#,
            )],
        },
        Case {
            name: "rows of several tables, an empty value, non-ASCII text and engine keys",
            entries: vec![
                row(
                    "incident",
                    "INC-2026-00042",
                    r#"{"incident_id":"INC-2026-00042","severity":"SEV2","state":"resolved"}"#,
                ),
                row("note", "CUST-WP-0051-T01", ""),
                row(
                    "task",
                    "CUST-WP-0051-T01",
                    r#"{"id":"CUST-WP-0051-T01","title":"Vérifier les sauvegardes — région eu-west","status":"done"}"#,
                ),
                row(
                    "task",
                    "CUST-WP-0051-T02",
                    r#"{"id":"CUST-WP-0051-T02","title":"Switch DNS","status":"wait"}"#,
                ),
                row("workstream", "CUST-WP-0051", r#"{"id":"CUST-WP-0051","status":"done"}"#),
                (applied_key(), 13u64.to_be_bytes().to_vec()),
                (fault_key(12), b"task.status_changed: missing \"to\"".to_vec()),
            ],
        },
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(text.len().is_multiple_of(2), "odd-length hex {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&text[i..i + 2], 16)?))
        .collect()
}

/// What §9.1 says is hashed, written from the document, not the code.
fn preimage(entries: &[(Vec<u8>, Vec<u8>)]) -> (Vec<u8>, u64) {
    let mut out = DOMAIN_TAG.to_vec();
    let mut n = 0;
    for (key, value) in entries {
        if key.first() == Some(&0xFF) {
            continue;
        }
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        n += 1;
    }
    (out, n)
}

fn code_digest(entries: &[(Vec<u8>, Vec<u8>)]) -> (String, u64) {
    digest_entries(entries.iter().map(|(k, v)| (&k[..], &v[..])))
}

fn bytes_json(field: &str, bytes: &[u8]) -> Vec<(String, Value)> {
    let mut out = vec![(format!("{field}_hex"), Value::String(hex(bytes)))];
    // Text where it reads as text: UTF-8 without control characters but the
    // NUL between table name and row key.
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.chars().any(|c| c.is_control() && c != '\0')
    {
        out.push((field.to_string(), Value::String(text.to_string())));
    }
    out
}

fn generate() -> String {
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|case| {
            let (digest, n) = code_digest(&case.entries);
            let (preimage, _) = preimage(&case.entries);
            let entries: Vec<Value> = case
                .entries
                .iter()
                .map(|(k, v)| Value::Object(bytes_json("key", k).into_iter().chain(bytes_json("value", v)).collect()))
                .collect();
            json!({
                "name": case.name,
                "entries": entries,
                "preimage_hex": hex(&preimage),
                "digest": digest,
                "digest_entries": n,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&json!({
        "description": DESCRIPTION,
        "cases": cases,
    }))
    .unwrap_or_default();
    text.push('\n');
    text
}

fn str_field<'a>(value: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    value[field]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{field}: missing or not a string in {value}"))
}

/// One entry's bytes from the file; the text form, where given, must agree.
fn entry_bytes(entry: &Value, field: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = unhex(str_field(entry, &format!("{field}_hex"))?)?;
    if let Some(text) = entry.get(field) {
        assert_eq!(text.as_str().map(str::as_bytes), Some(&bytes[..]), "{entry}");
    }
    Ok(bytes)
}

#[test]
fn projection_digest_vector_matches_the_code_and_the_spec() -> anyhow::Result<()> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/")).join(FILE);
    let generated = generate();
    if std::env::var_os("UPDATE_VECTORS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)?;
    }
    let on_disk = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (generate with UPDATE_VECTORS=1)", path.display()))?;
    assert!(
        on_disk == generated,
        "{} differs from what digest_entries gives; if the change is intended, rerun with UPDATE_VECTORS=1",
        path.display()
    );

    // Recheck the file's own contents.
    let file: Value = serde_json::from_str(&on_disk)?;
    let cases = file["cases"].as_array().ok_or_else(|| anyhow::anyhow!("no cases"))?;
    let empty = blake3(DOMAIN_TAG);
    let mut saw_empty = false;
    for case in cases {
        let name = str_field(case, "name")?;
        let entries: Vec<(Vec<u8>, Vec<u8>)> = case["entries"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("{name}: no entries"))?
            .iter()
            .map(|e| Ok((entry_bytes(e, "key")?, entry_bytes(e, "value")?)))
            .collect::<anyhow::Result<_>>()?;
        assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: entries must be in byte order of their keys, once each"
        );
        let digest = str_field(case, "digest")?;
        let n = case["digest_entries"].as_u64();
        let (spec_preimage, spec_n) = preimage(&entries);
        assert_eq!(
            hex(&spec_preimage),
            str_field(case, "preimage_hex")?,
            "{name}: preimage"
        );
        assert_eq!(hex(&blake3(&spec_preimage)), digest, "{name}: digest by the spec");
        assert_eq!(
            code_digest(&entries),
            (digest.to_string(), spec_n),
            "{name}: digest by the code"
        );
        assert_eq!(n, Some(spec_n), "{name}: digest_entries");
        if spec_n == 0 {
            assert_eq!(digest, hex(&empty), "{name}: no state digests as the tag alone");
            saw_empty = true;
        }
    }
    assert!(saw_empty && cases.len() >= 3, "the vector keeps an empty-state case");
    Ok(())
}
