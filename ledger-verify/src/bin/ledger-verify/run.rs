//! Running one `ledger-verify` command: reading its inputs (the only I/O the
//! verifier does) and turning the library's answer into an [`Outcome`]. This
//! module prints nothing; `main.rs` does.

use std::io::Read as _;
use std::path::Path;

use ledger_verify::bundle::{BundleError, MAX_BUNDLE_BYTES, VerifyOptions, verify_bundle};
use ledger_verify::note::{Checkpoint, VerifierKey, open_note};
use ledger_verify::proof_json::{ConsistencyProofJson, InclusionProofJson, ProofJsonError};
use serde_json::{Value, json};

use crate::args::Command;

/// A command's verdict.
#[derive(Debug)]
pub enum Outcome {
    /// Everything held.
    Verified {
        /// The text output (one or more lines, no trailing newline).
        text: String,
        /// The `--json` object's fields after `"ok": true`, in order.
        json: Vec<(&'static str, Value)>,
    },
    /// Something did not hold.
    Failed {
        /// The stable failure kind (e.g. `BundleError::kind()`).
        kind: &'static str,
        /// The record the failure is about, if any.
        seq: Option<u64>,
        /// One line naming what failed and where.
        error: String,
    },
}

/// An input that could not be read or a key that does not parse: exit 2.
#[derive(Debug)]
pub struct InputError(pub String);

/// Runs a check command (not `Help`/`Version`).
pub fn run(command: &Command) -> Result<Outcome, InputError> {
    match command {
        Command::Bundle {
            file,
            keys,
            trusted_checkpoints,
        } => {
            let keys = resolve_keys(keys)?;
            let trusted = trusted_checkpoints
                .iter()
                .map(|path| read_text(path, "--trusted-checkpoint"))
                .collect::<Result<Vec<_>, _>>()?;
            let bytes = read(file, "bundle")?;
            let options = VerifyOptions {
                keys: &keys,
                trusted_checkpoints: &trusted,
            };
            Ok(match verify_bundle(&bytes, options) {
                Ok(verified) => Outcome::Verified {
                    text: format!(
                        "verified: {} records, checkpoint size {}",
                        verified.records, verified.checkpoint_size
                    ),
                    json: vec![
                        ("records", json!(verified.records)),
                        ("checkpoint_size", json!(verified.checkpoint_size)),
                        ("origin", json!(verified.origin)),
                        ("payloads", json!(verified.payloads)),
                        ("producer_signatures", json!(verified.producer_signatures)),
                        ("chain_links", json!(verified.chain_links)),
                        ("consistency_proofs", json!(verified.consistency_proofs)),
                        ("key_rotations", json!(verified.key_rotations)),
                        ("manifest_key", json!(verified.manifest_key)),
                    ],
                },
                Err(error) => bundle_failure(&error),
            })
        }
        Command::Checkpoint { file, keys } => {
            let keys = resolve_keys(keys)?;
            let text = read_text(file, "checkpoint")?;
            Ok(check_checkpoint(&text, &keys))
        }
        Command::Inclusion { file } => {
            let bytes = read(file, "proof")?;
            Ok(
                match InclusionProofJson::parse(&bytes).and_then(|p| p.verify().map(|()| p)) {
                    Ok(proof) => Outcome::Verified {
                        text: format!(
                            "verified: inclusion of index {} in tree size {}",
                            proof.index, proof.tree_size
                        ),
                        json: vec![
                            ("index", json!(proof.index)),
                            ("tree_size", json!(proof.tree_size)),
                            ("root", json!(hex::encode(proof.root))),
                        ],
                    },
                    Err(error) => proof_failure(&error),
                },
            )
        }
        Command::Consistency { file } => {
            let bytes = read(file, "proof")?;
            Ok(
                match ConsistencyProofJson::parse(&bytes).and_then(|p| p.verify().map(|()| p)) {
                    Ok(proof) => Outcome::Verified {
                        text: format!(
                            "verified: tree size {} is a prefix of tree size {}",
                            proof.old_size, proof.new_size
                        ),
                        json: vec![
                            ("old_size", json!(proof.old_size)),
                            ("new_size", json!(proof.new_size)),
                            ("new_root", json!(hex::encode(proof.new_root))),
                        ],
                    },
                    Err(error) => proof_failure(&error),
                },
            )
        }
        Command::Help | Command::Version => Err(InputError("not a check command".to_string())),
    }
}

fn bundle_failure(error: &BundleError) -> Outcome {
    Outcome::Failed {
        kind: error.kind(),
        seq: error.seq(),
        error: error.to_string(),
    }
}

fn proof_failure(error: &ProofJsonError) -> Outcome {
    Outcome::Failed {
        kind: error.kind(),
        seq: None,
        error: error.to_string(),
    }
}

fn check_checkpoint(text: &str, keys: &[VerifierKey]) -> Outcome {
    let opened = open_note(text, keys).and_then(|(body, signers)| Ok((Checkpoint::parse_body(&body)?, signers)));
    match opened {
        Ok((checkpoint, signers)) => {
            let signers: Vec<String> = signers.iter().map(VerifierKey::to_string).collect();
            let mut lines = vec![
                format!("origin: {}", checkpoint.origin),
                format!("size: {}", checkpoint.size),
                format!("root: {}", hex::encode(checkpoint.root)),
            ];
            lines.extend(checkpoint.extensions.iter().map(|line| format!("extension: {line}")));
            lines.extend(signers.iter().map(|key| format!("signed-by: {key}")));
            Outcome::Verified {
                text: lines.join("\n"),
                json: vec![
                    ("origin", json!(checkpoint.origin)),
                    ("size", json!(checkpoint.size)),
                    ("root", json!(hex::encode(checkpoint.root))),
                    ("extensions", json!(checkpoint.extensions)),
                    ("signed_by", json!(signers)),
                ],
            }
        }
        Err(error) => Outcome::Failed {
            kind: "checkpoint",
            seq: None,
            error: format!("checkpoint: {error}"),
        },
    }
}

/// `--key` values: key text, or a file with one key per line.
fn resolve_keys(values: &[String]) -> Result<Vec<VerifierKey>, InputError> {
    let mut keys = Vec::new();
    for value in values {
        match VerifierKey::parse(value) {
            Ok(key) => keys.push(key),
            Err(text_error) => {
                let text = std::fs::read_to_string(value).map_err(|io_error| {
                    InputError(format!(
                        "--key {value}: not a verifier key ({text_error}) and not a readable file ({io_error})"
                    ))
                })?;
                let before = keys.len();
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    keys.push(
                        VerifierKey::parse(line)
                            .map_err(|e| InputError(format!("--key {value}: line {}: {e}", n + 1)))?,
                    );
                }
                if keys.len() == before {
                    return Err(InputError(format!("--key {value}: the file holds no key")));
                }
            }
        }
    }
    Ok(keys)
}

/// Reads `path` (`-`: standard input), at most one byte more than the
/// largest bundle (the library reports what is too large).
fn read(path: &Path, what: &str) -> Result<Vec<u8>, InputError> {
    let limit = MAX_BUNDLE_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let result = if path == Path::new("-") {
        std::io::stdin().take(limit).read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|file| file.take(limit).read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| InputError(format!("{what} {}: {e}", path.display())))?;
    Ok(bytes)
}

fn read_text(path: &Path, what: &str) -> Result<String, InputError> {
    String::from_utf8(read(path, what)?).map_err(|_| InputError(format!("{what} {}: not UTF-8 text", path.display())))
}
