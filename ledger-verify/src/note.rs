//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys, and
//! the tlog-checkpoint body they carry (<https://c2sp.org/tlog-checkpoint>).
//!
//! A signed note is a UTF-8 body, a blank line, and one or more signature
//! lines `— <key name> <base64(4-byte key id ‖ signature)>`. Parsing is
//! strict and every failure names the line, key name or key id involved, so
//! an auditor can tell what exactly was wrong. Only Ed25519 (signature type
//! 0x01) keys can verify; signatures by other keys are parsed and ignored.
//! This module does not decide which keys to trust, and does not know how a
//! checkpoint's root relates to records (see [`crate::merkle`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::Digest as _;

use crate::hash::Hash;

/// The signature type byte of Ed25519 keys in key ids and verifier keys.
pub const ED25519_KEY_TYPE: u8 = 0x01;

/// The start of every signature line: U+2014 EM DASH and a space.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// Notes with more signatures than this are rejected, bounding the work an
/// untrusted note can cause (the same limit as the Go implementation).
pub const MAX_SIGNATURES: usize = 100;

/// Why a key, signed note or checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key name is empty, contains whitespace or contains `+`.
    #[error("invalid key name {name:?}: must be non-empty, without whitespace or '+'")]
    BadKeyName {
        /// The offending name.
        name: String,
    },
    /// A verifier key is not of the form `<name>+<key id>+<key>`.
    #[error("verifier key is not of the form <name>+<8 hex digit key id>+<base64 key>")]
    MalformedVerifierKey,
    /// The key id field of a verifier key is not 8 hex digits.
    #[error("verifier key {name:?}: key id {text:?} is not 8 hex digits")]
    BadKeyIdHex {
        /// The key's name.
        name: String,
        /// The key id field as written.
        text: String,
    },
    /// The key field of a verifier key is not valid standard base64.
    #[error("verifier key {name:?}: key is not valid base64")]
    BadKeyBase64 {
        /// The key's name.
        name: String,
    },
    /// The key is not an Ed25519 key (its type byte is not 0x01).
    #[error("verifier key {name:?}: unsupported key type 0x{key_type:02x}")]
    UnsupportedKeyType {
        /// The key's name.
        name: String,
        /// The type byte found.
        key_type: u8,
    },
    /// The key has the Ed25519 type byte but not 32 bytes of key.
    #[error("verifier key {name:?}: key is {len} bytes, expected 1 + 32")]
    BadKeyLength {
        /// The key's name.
        name: String,
        /// Decoded length including the type byte.
        len: usize,
    },
    /// The key id written in a verifier key does not match its name and key.
    #[error(
        "verifier key {name:?}: key id {} does not match computed {}",
        hex::encode(.stated),
        hex::encode(.computed)
    )]
    KeyIdMismatch {
        /// The key's name.
        name: String,
        /// The key id as written.
        stated: [u8; 4],
        /// The key id computed from name and key.
        computed: [u8; 4],
    },
    /// The 32 key bytes are not a valid Ed25519 public key.
    #[error("verifier key {name:?}: not a valid Ed25519 public key")]
    InvalidPublicKey {
        /// The key's name.
        name: String,
    },
    /// The note text does not end with a newline.
    #[error("note does not end with a newline")]
    UnterminatedNote,
    /// The note has no blank line followed by signature lines.
    #[error("note has no signatures (no blank line followed by signature lines)")]
    MissingSignatures,
    /// The note body is empty.
    #[error("note body is empty")]
    EmptyBody,
    /// A control character other than newline appears in the note.
    #[error("line {line}: control character in note")]
    ControlCharacter {
        /// 1-based line number in the note text.
        line: usize,
    },
    /// A signature line does not start with "— " or lacks a space between
    /// the key name and the signature.
    #[error("line {line}: malformed signature line, expected \"\u{2014} <name> <base64>\"")]
    MalformedSignatureLine {
        /// 1-based line number in the note text.
        line: usize,
    },
    /// A signature line names an invalid key name.
    #[error("line {line}: invalid key name {name:?} in signature line")]
    BadSignatureName {
        /// 1-based line number in the note text.
        line: usize,
        /// The offending name.
        name: String,
    },
    /// A signature line's signature is not valid standard base64.
    #[error("line {line}: signature is not valid base64")]
    BadSignatureBase64 {
        /// 1-based line number in the note text.
        line: usize,
    },
    /// A signature line decodes to too few bytes for a key id and signature.
    #[error("line {line}: signature is {len} bytes, too short for a key id and signature")]
    SignatureTooShort {
        /// 1-based line number in the note text.
        line: usize,
        /// Decoded length.
        len: usize,
    },
    /// The note carries more than [`MAX_SIGNATURES`] signatures.
    #[error("note has {count} signatures, more than the limit of {MAX_SIGNATURES}")]
    TooManySignatures {
        /// Number of signature lines.
        count: usize,
    },
    /// A signature by a trusted key is not 64 bytes.
    #[error(
        "signature by key {name:?} ({}) is {len} bytes, expected 64",
        hex::encode(.key_id)
    )]
    BadSignatureLength {
        /// The trusted key's name.
        name: String,
        /// The trusted key's id.
        key_id: [u8; 4],
        /// Signature length (without the key id).
        len: usize,
    },
    /// A signature by a trusted key does not verify: the note was altered or
    /// the signature forged.
    #[error("signature by key {name:?} ({}) does not verify", hex::encode(.key_id))]
    InvalidSignature {
        /// The trusted key's name.
        name: String,
        /// The trusted key's id.
        key_id: [u8; 4],
    },
    /// No signature is by a trusted key; `signers` lists the
    /// `<name>+<key id>` of the signatures present.
    #[error("no signature by a trusted key (signed by: {})", .signers.join(", "))]
    NoTrustedSignature {
        /// `<name>+<key id hex>` of each signature in the note.
        signers: Vec<String>,
    },
    /// A checkpoint body does not end with a newline.
    #[error("checkpoint body does not end with a newline")]
    UnterminatedBody,
    /// A checkpoint body lacks one of its three mandatory lines.
    #[error("checkpoint body is missing line {line} (origin, tree size, root hash)")]
    MissingCheckpointLine {
        /// 1-based number of the missing line.
        line: usize,
    },
    /// The checkpoint origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The checkpoint tree size is not a canonical decimal u64.
    #[error("checkpoint tree size {text:?} is not a decimal number without leading zeros")]
    BadTreeSize {
        /// The size line as written.
        text: String,
    },
    /// The checkpoint root is not canonical padded base64 of 32 bytes.
    #[error("checkpoint root hash {text:?} is not padded base64 of 32 bytes")]
    BadRootHash {
        /// The root line as written.
        text: String,
    },
    /// A checkpoint extension line is empty.
    #[error("line {line}: empty checkpoint extension line")]
    EmptyExtensionLine {
        /// 1-based line number in the body.
        line: usize,
    },
}

/// The 4-byte key id of an Ed25519 key: the first bytes of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key). It lets a verifier pick the key
/// for a signature line without trying every key.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = sha2::Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519_KEY_TYPE]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest[..4]);
    id
}

/// Whether `name` can be a key name: non-empty, no Unicode whitespace, no
/// `+` (which separates the fields of a verifier key).
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::BadKeyName { name: name.to_owned() })
    }
}

/// A trusted Ed25519 public key with its name, as configured by an auditor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    /// The key name that signature lines must carry.
    pub name: String,
    /// [`key_id`] of `name` and `public_key`.
    pub key_id: [u8; 4],
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

impl VerifierKey {
    /// A verifier key for `public_key` under `name`; rejects bad names and
    /// byte strings that are not Ed25519 public keys.
    pub fn from_public(name: &str, public_key: [u8; 32]) -> Result<VerifierKey, NoteError> {
        check_name(name)?;
        VerifyingKey::from_bytes(&public_key).map_err(|_| NoteError::InvalidPublicKey { name: name.to_owned() })?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            public_key,
        })
    }

    /// The verifier key matching a signing key, so signers can publish it.
    pub fn from_signing_key(name: &str, key: &SigningKey) -> Result<VerifierKey, NoteError> {
        VerifierKey::from_public(name, key.verifying_key().to_bytes())
    }

    /// Parses the text form `<name>+<8 hex digit key id>+<base64(0x01 ‖ key)>`.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        // Base64 may itself contain '+', so only the first two separate.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedVerifierKey);
        };
        check_name(name)?;
        let mut stated = [0u8; 4];
        if id_hex.len() != 8 || hex::decode_to_slice(id_hex, &mut stated).is_err() {
            return Err(NoteError::BadKeyIdHex {
                name: name.to_owned(),
                text: id_hex.to_owned(),
            });
        }
        let key = BASE64
            .decode(key_b64)
            .map_err(|_| NoteError::BadKeyBase64 { name: name.to_owned() })?;
        match key.first() {
            Some(&ED25519_KEY_TYPE) => {}
            Some(&key_type) => {
                return Err(NoteError::UnsupportedKeyType {
                    name: name.to_owned(),
                    key_type,
                });
            }
            None => {
                return Err(NoteError::BadKeyLength {
                    name: name.to_owned(),
                    len: 0,
                });
            }
        }
        let public_key: [u8; 32] = key[1..].try_into().map_err(|_| NoteError::BadKeyLength {
            name: name.to_owned(),
            len: key.len(),
        })?;
        let computed = key_id(name, &public_key);
        if computed != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                computed,
            });
        }
        VerifierKey::from_public(name, public_key)
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_KEY_TYPE);
        key.extend_from_slice(&self.public_key);
        write!(f, "{}+{}+{}", self.name, hex::encode(self.key_id), BASE64.encode(key))
    }
}

impl std::str::FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<VerifierKey, NoteError> {
        VerifierKey::parse(s)
    }
}

/// One signature line of a note, not yet checked against any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name on the line.
    pub name: String,
    /// The key id prefix of the decoded signature.
    pub key_id: [u8; 4],
    /// The signature bytes after the key id: 64 bytes for Ed25519, other
    /// lengths for other key types (for example witness cosignatures), which
    /// is why this is not a fixed-size array.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, including its trailing newline.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id);
        bytes.extend_from_slice(&self.signature);
        format!("{SIGNATURE_LINE_PREFIX}{} {}\n", self.name, BASE64.encode(bytes))
    }
}

/// Whether `c` is an ASCII control character other than newline, which the
/// signed-note format forbids (the same rule as the Go implementation).
fn is_forbidden(c: char) -> bool {
    c < '\u{20}' && c != '\n'
}

/// Rejects forbidden control characters, reporting the 1-based line number
/// (`first_line` for the first line of `text`).
fn check_text(text: &str, first_line: usize) -> Result<(), NoteError> {
    for (i, line) in text.split('\n').enumerate() {
        if line.chars().any(is_forbidden) {
            return Err(NoteError::ControlCharacter { line: first_line + i });
        }
    }
    Ok(())
}

fn check_body(body: &str) -> Result<(), NoteError> {
    if body.is_empty() {
        return Err(NoteError::EmptyBody);
    }
    if !body.ends_with('\n') {
        return Err(NoteError::UnterminatedNote);
    }
    check_text(body, 1)
}

/// Splits a signed note into its body (everything before the blank line,
/// including the body's final newline) and its signature lines, without
/// checking any signature.
///
/// The separator is the *last* blank line, as in the Go implementation.
pub fn parse_note(text: &str) -> Result<(String, Vec<NoteSignature>), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::UnterminatedNote);
    }
    let split = text.rfind("\n\n").ok_or(NoteError::MissingSignatures)?;
    let body = &text[..=split];
    let block = &text[split + 2..];
    check_body(body)?;
    // Line numbers: the body has one line per '\n', then the blank line.
    let first_sig_line = body.matches('\n').count() + 2;
    let lines: Vec<&str> = block.split_terminator('\n').collect();
    if lines.is_empty() {
        return Err(NoteError::MissingSignatures);
    }
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures { count: lines.len() });
    }
    let mut signatures = Vec::with_capacity(lines.len());
    for (i, line_text) in lines.iter().enumerate() {
        let line = first_sig_line + i;
        check_text(line_text, line)?;
        let rest = line_text
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or(NoteError::MalformedSignatureLine { line })?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::MalformedSignatureLine { line })?;
        if !is_valid_key_name(name) {
            return Err(NoteError::BadSignatureName {
                line,
                name: name.to_owned(),
            });
        }
        let bytes = BASE64.decode(b64).map_err(|_| NoteError::BadSignatureBase64 { line })?;
        if bytes.len() < 5 {
            return Err(NoteError::SignatureTooShort { line, len: bytes.len() });
        }
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&bytes[..4]);
        signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id,
            signature: bytes[4..].to_vec(),
        });
    }
    Ok((body.to_owned(), signatures))
}

/// Verifies a signed note against trusted keys and returns its body and the
/// trusted keys whose signatures verified (each once).
///
/// A signature counts as by a trusted key when both its name and key id
/// match; signatures by other keys are ignored (notes may carry cosignatures
/// this verifier does not know). A signature by a trusted key that does not
/// verify is an error rather than skipped, since it means tampering. At least
/// one trusted signature must verify.
pub fn open_note(text: &str, keys: &[VerifierKey]) -> Result<(String, Vec<VerifierKey>), NoteError> {
    let (body, signatures) = parse_note(text)?;
    let mut verified: Vec<VerifierKey> = Vec::new();
    for sig in &signatures {
        let Some(key) = keys.iter().find(|k| k.name == sig.name && k.key_id == sig.key_id) else {
            continue;
        };
        let signature: [u8; 64] = sig
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| NoteError::BadSignatureLength {
                name: key.name.clone(),
                key_id: key.key_id,
                len: sig.signature.len(),
            })?;
        let verifying = VerifyingKey::from_bytes(&key.public_key)
            .map_err(|_| NoteError::InvalidPublicKey { name: key.name.clone() })?;
        verifying
            .verify_strict(body.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| NoteError::InvalidSignature {
                name: key.name.clone(),
                key_id: key.key_id,
            })?;
        if !verified.contains(key) {
            verified.push(key.clone());
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoTrustedSignature {
            signers: signatures
                .iter()
                .map(|s| format!("{}+{}", s.name, hex::encode(s.key_id)))
                .collect(),
        });
    }
    Ok((body, verified))
}

fn signature_line(body: &str, name: &str, key: &SigningKey) -> NoteSignature {
    let signature = key.sign(body.as_bytes());
    NoteSignature {
        name: name.to_owned(),
        key_id: key_id(name, &key.verifying_key().to_bytes()),
        signature: signature.to_bytes().to_vec(),
    }
}

/// Signs `body` with `key` under `name`, producing a complete signed note.
///
/// Errors if `body` is empty, does not end with a newline or contains
/// control characters, or if `name` is not a valid key name: such a note
/// could not be parsed back.
pub fn sign_note(body: &str, name: &str, key: &SigningKey) -> Result<String, NoteError> {
    check_body(body)?;
    check_name(name)?;
    let line = signature_line(body, name, key).to_line();
    Ok(format!("{body}\n{line}"))
}

/// Adds a signature by `key` under `name` to an existing signed note (for
/// example a cosignature), after checking that the note parses.
pub fn add_signature(note: &str, name: &str, key: &SigningKey) -> Result<String, NoteError> {
    let (body, _) = parse_note(note)?;
    check_name(name)?;
    let line = signature_line(&body, name, key).to_line();
    Ok(format!("{note}{line}"))
}

/// A tlog checkpoint: the signed statement "the tree called `origin` has
/// `size` leaves and root `root`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name, by convention a schema-less URL.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 9162 root of the first `size` leaves.
    pub root: Hash,
    /// Opaque extra lines, signed with the rest (each non-empty).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body: origin, size, base64 root and extension lines, each
    /// newline-terminated. Only well-formed checkpoints (see
    /// [`Checkpoint::validate`]) parse back to themselves.
    pub fn to_note_body(&self) -> String {
        let mut body = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Checks that the origin and extension lines are non-empty and free of
    /// newlines and ASCII control characters, so the body parses back unchanged.
    pub fn validate(&self) -> Result<(), NoteError> {
        if self.origin.is_empty() {
            return Err(NoteError::EmptyOrigin);
        }
        if self.origin.contains(|c| is_forbidden(c) || c == '\n') {
            return Err(NoteError::ControlCharacter { line: 1 });
        }
        for (i, ext) in self.extensions.iter().enumerate() {
            if ext.is_empty() {
                return Err(NoteError::EmptyExtensionLine { line: 4 + i });
            }
            if ext.contains(|c| is_forbidden(c) || c == '\n') {
                return Err(NoteError::ControlCharacter { line: 4 + i });
            }
        }
        Ok(())
    }

    /// Parses a checkpoint note body strictly: non-empty origin, decimal size
    /// without sign or leading zeros, root as canonical padded base64 of
    /// exactly 32 bytes, non-empty extension lines, final newline.
    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let content = body.strip_suffix('\n').ok_or(NoteError::UnterminatedBody)?;
        check_text(content, 1)?;
        let mut lines = content.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(NoteError::EmptyOrigin);
        }
        let size_text = lines.next().ok_or(NoteError::MissingCheckpointLine { line: 2 })?;
        let size = parse_size(size_text).ok_or_else(|| NoteError::BadTreeSize {
            text: size_text.to_owned(),
        })?;
        let root_text = lines.next().ok_or(NoteError::MissingCheckpointLine { line: 3 })?;
        let root = parse_root(root_text).ok_or_else(|| NoteError::BadRootHash {
            text: root_text.to_owned(),
        })?;
        let mut extensions = Vec::new();
        for (i, ext) in lines.enumerate() {
            if ext.is_empty() {
                return Err(NoteError::EmptyExtensionLine { line: 4 + i });
            }
            extensions.push(ext.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn parse_root(text: &str) -> Option<Hash> {
    let bytes = BASE64.decode(text).ok()?;
    let root: Hash = bytes.try_into().ok()?;
    // The engine already rejects non-canonical padding and trailing bits;
    // re-encoding makes "exactly one spelling per root" explicit.
    (BASE64.encode(root) == text).then_some(root)
}

/// Verifies a signed checkpoint against trusted keys and parses its body.
pub fn open_checkpoint(text: &str, keys: &[VerifierKey]) -> Result<Checkpoint, NoteError> {
    let (body, _) = open_note(text, keys)?;
    Checkpoint::parse_body(&body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example key and note from the Go `golang.org/x/mod/sumdb/note`
    /// documentation: an interoperability known answer.
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SKEY_B64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_BODY: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn go_signing_key() -> SigningKey {
        let bytes = BASE64.decode(GO_SKEY_B64).unwrap();
        assert_eq!(bytes[0], ED25519_KEY_TYPE);
        SigningKey::from_bytes(&bytes[1..].try_into().unwrap())
    }

    fn test_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 17,
            root: [0x5a; 32],
            extensions: vec!["hash-alg blake3".to_owned(), "x y z".to_owned()],
        }
    }

    #[test]
    fn key_id_known_answer() {
        // SHA-256("a\n" ‖ 0x01 ‖ 32 zero bytes), computed directly.
        let mut input = b"a\n\x01".to_vec();
        input.extend_from_slice(&[0u8; 32]);
        let digest = sha2::Sha256::digest(&input);
        assert_eq!(key_id("a", &[0u8; 32]), digest[..4]);
        // And the Go documentation's key.
        let key = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(hex::encode(key.key_id), "c74f20a3");
        assert_eq!(key.key_id, key_id("PeterNeumann", &key.public_key));
    }

    #[test]
    fn go_example_interoperates() {
        let key = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(key.to_string(), GO_VKEY);
        assert_eq!(
            VerifierKey::from_signing_key("PeterNeumann", &go_signing_key()).unwrap(),
            key
        );
        let note = format!("{GO_BODY}\n{GO_SIG_LINE}");
        let (body, keys) = open_note(&note, std::slice::from_ref(&key)).unwrap();
        assert_eq!(body, GO_BODY);
        assert_eq!(keys, vec![key]);
        assert_eq!(sign_note(GO_BODY, "PeterNeumann", &go_signing_key()).unwrap(), note);
    }

    #[test]
    fn verifier_key_round_trip_and_errors() {
        // Keys whose base64 contains '+' must parse too.
        let plus = (0u8..=255)
            .map(|seed| VerifierKey::from_signing_key("log.example/a", &test_key(seed)).unwrap())
            .find(|k| k.to_string().matches('+').count() > 2)
            .unwrap();
        assert_eq!(VerifierKey::parse(&plus.to_string()).unwrap(), plus);

        let key = VerifierKey::from_signing_key("log.example/a", &test_key(1)).unwrap();
        let text = key.to_string();
        assert_eq!(VerifierKey::parse(&text).unwrap(), key);
        assert_eq!(text.parse::<VerifierKey>().unwrap(), key);

        let (name, rest) = text.split_once('+').unwrap();
        let (id, b64) = rest.split_once('+').unwrap();
        let key_bytes = BASE64.decode(b64).unwrap();
        let with_type = |t: u8| {
            let mut k = key_bytes.clone();
            k[0] = t;
            BASE64.encode(k)
        };
        let cases = [
            ("nope".to_owned(), NoteError::MalformedVerifierKey),
            (format!("{name}+{id}"), NoteError::MalformedVerifierKey),
            (format!("{text}+x"), NoteError::BadKeyBase64 { name: name.to_owned() }),
            (format!("+{id}+{b64}"), NoteError::BadKeyName { name: String::new() }),
            (
                format!("a b+{id}+{b64}"),
                NoteError::BadKeyName { name: "a b".to_owned() },
            ),
            (
                format!("{name}+{}+{b64}", &id[..7]),
                NoteError::BadKeyIdHex {
                    name: name.to_owned(),
                    text: id[..7].to_owned(),
                },
            ),
            (
                format!("{name}+zzzzzzzz+{b64}"),
                NoteError::BadKeyIdHex {
                    name: name.to_owned(),
                    text: "zzzzzzzz".to_owned(),
                },
            ),
            (
                format!("{name}+{id}+{}", &b64[1..]),
                NoteError::BadKeyBase64 { name: name.to_owned() },
            ),
            (
                format!("{name}+{id}+{}", with_type(0x02)),
                NoteError::UnsupportedKeyType {
                    name: name.to_owned(),
                    key_type: 0x02,
                },
            ),
            (
                format!("{name}+{id}+{}", BASE64.encode(&key_bytes[..32])),
                NoteError::BadKeyLength {
                    name: name.to_owned(),
                    len: 32,
                },
            ),
            (
                format!("{name}+{id}+"),
                NoteError::BadKeyLength {
                    name: name.to_owned(),
                    len: 0,
                },
            ),
            (
                format!("{name}+00000000+{b64}"),
                NoteError::KeyIdMismatch {
                    name: name.to_owned(),
                    stated: [0; 4],
                    computed: key.key_id,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(VerifierKey::parse(&input), Err(want), "{input}");
        }
        // A key with the right id but bytes that are not a curve point
        // (about half of all y coordinates have no matching x).
        let bad_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .unwrap();
        let mut k = vec![ED25519_KEY_TYPE];
        k.extend_from_slice(&bad_point);
        let id = hex::encode(key_id("n", &bad_point));
        assert_eq!(
            VerifierKey::parse(&format!("n+{id}+{}", BASE64.encode(k))),
            Err(NoteError::InvalidPublicKey { name: "n".to_owned() })
        );
        assert_eq!(
            VerifierKey::from_public("n", bad_point),
            Err(NoteError::InvalidPublicKey { name: "n".to_owned() })
        );
    }

    #[test]
    fn checkpoint_round_trip() {
        let signing = test_key(7);
        let key = VerifierKey::from_signing_key("example.com/log", &signing).unwrap();
        let cp = checkpoint();
        cp.validate().unwrap();
        let body = cp.to_note_body();
        assert_eq!(
            body,
            format!(
                "example.com/log\n17\n{}\nhash-alg blake3\nx y z\n",
                BASE64.encode([0x5a; 32])
            )
        );
        let note = sign_note(&body, "example.com/log", &signing).unwrap();
        assert!(note.starts_with(&format!("{body}\n\u{2014} example.com/log ")));
        assert!(note.ends_with('\n'));
        assert_eq!(open_checkpoint(&note, std::slice::from_ref(&key)).unwrap(), cp);

        let (parsed_body, sigs) = parse_note(&note).unwrap();
        assert_eq!(parsed_body, body);
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].name, "example.com/log");
        assert_eq!(sigs[0].key_id, key.key_id);
        assert_eq!(sigs[0].signature.len(), 64);
        assert_eq!(format!("{body}\n{}", sigs[0].to_line()), note);
    }

    #[test]
    fn cosignatures_and_unknown_keys() {
        let (k1, k2, k3) = (test_key(1), test_key(2), test_key(3));
        let v1 = VerifierKey::from_signing_key("one", &k1).unwrap();
        let v2 = VerifierKey::from_signing_key("two", &k2).unwrap();
        let body = checkpoint().to_note_body();
        let note = sign_note(&body, "one", &k1).unwrap();
        let note = add_signature(&note, "three", &k3).unwrap();
        let note = add_signature(&note, "two", &k2).unwrap();
        // Unknown "three" is ignored; both trusted keys are reported.
        let (_, keys) = open_note(&note, &[v2.clone(), v1.clone()]).unwrap();
        assert_eq!(keys, vec![v1.clone(), v2.clone()]);
        // Only an unknown signature: rejected, naming who did sign.
        let only3 = sign_note(&body, "three", &k3).unwrap();
        let id3 = hex::encode(key_id("three", &k3.verifying_key().to_bytes()));
        assert_eq!(
            open_note(&only3, &[v1.clone(), v2.clone()]),
            Err(NoteError::NoTrustedSignature {
                signers: vec![format!("three+{id3}")]
            })
        );
        // Same name, different key: a different key id, so not trusted.
        let impostor = sign_note(&body, "one", &k3).unwrap();
        assert!(matches!(
            open_note(&impostor, std::slice::from_ref(&v1)),
            Err(NoteError::NoTrustedSignature { .. })
        ));
        // A trusted signature that fails is an error even if another verifies.
        let forged = note.replacen(
            &parse_note(&note).unwrap().1[2].to_line(),
            &NoteSignature {
                signature: vec![0x11; 64],
                ..parse_note(&note).unwrap().1[2].clone()
            }
            .to_line(),
            1,
        );
        assert_eq!(
            open_note(&forged, &[v1, v2.clone()]),
            Err(NoteError::InvalidSignature {
                name: "two".to_owned(),
                key_id: v2.key_id
            })
        );
    }

    #[test]
    fn tampering_is_detected() {
        let signing = test_key(9);
        let key = VerifierKey::from_signing_key("log", &signing).unwrap();
        let keys = std::slice::from_ref(&key);
        let body = checkpoint().to_note_body();
        let note = sign_note(&body, "log", &signing).unwrap();
        let invalid = Err(NoteError::InvalidSignature {
            name: "log".to_owned(),
            key_id: key.key_id,
        });

        // Flip one bit in every body byte position that keeps it parseable.
        let mut tampered = 0;
        for i in 0..body.len() {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= 0x01;
            if let Ok(text) = String::from_utf8(bytes) {
                if parse_note(&text).is_err() {
                    continue;
                }
                assert_eq!(open_note(&text, keys).map(|_| ()), invalid.clone(), "byte {i}");
                tampered += 1;
            }
        }
        assert!(
            tampered > body.len() / 2,
            "only {tampered} tampered bodies were checked"
        );
        // Tamper with the signature bytes (not the key id).
        let (_, sigs) = parse_note(&note).unwrap();
        for i in [0, 31, 63] {
            let mut sig = sigs[0].clone();
            sig.signature[i] ^= 0x04;
            let text = format!("{body}\n{}", sig.to_line());
            assert_eq!(open_note(&text, keys).map(|_| ()), invalid.clone(), "sig byte {i}");
        }
        let mut short = sigs[0].clone();
        short.signature.pop();
        assert_eq!(
            open_note(&format!("{body}\n{}", short.to_line()), keys),
            Err(NoteError::BadSignatureLength {
                name: "log".to_owned(),
                key_id: key.key_id,
                len: 63
            })
        );
        // Wrong key under the right name and id.
        let other = VerifierKey {
            public_key: test_key(10).verifying_key().to_bytes(),
            ..key.clone()
        };
        assert_eq!(open_note(&note, &[other]).map(|_| ()), invalid);
    }

    #[test]
    fn malformed_notes_are_rejected_specifically() {
        let signing = test_key(4);
        let body = "a\nb\n";
        let note = sign_note(body, "k", &signing).unwrap();
        let line = parse_note(&note).unwrap().1[0].to_line();
        let b64 = line.trim_end().rsplit(' ').next().unwrap().to_owned();
        let cases: Vec<(String, NoteError)> = vec![
            (note.trim_end().to_owned(), NoteError::UnterminatedNote),
            (format!("{body}{line}"), NoteError::MissingSignatures),
            (format!("{body}\n"), NoteError::MissingSignatures),
            (format!("a\tb\n\n{line}"), NoteError::ControlCharacter { line: 1 }),
            (format!("a\nb\r\n\n{line}"), NoteError::ControlCharacter { line: 2 }),
            (
                format!("{body}\n- k {b64}\n"),
                NoteError::MalformedSignatureLine { line: 4 },
            ),
            (
                format!("{body}\n{line}\u{2014} k\n"),
                NoteError::MalformedSignatureLine { line: 5 },
            ),
            (
                format!("{body}\n\u{2014} k+1 {b64}\n"),
                NoteError::BadSignatureName {
                    line: 4,
                    name: "k+1".to_owned(),
                },
            ),
            (
                format!("{body}\n\u{2014}  {b64}\n"),
                NoteError::BadSignatureName {
                    line: 4,
                    name: String::new(),
                },
            ),
            (
                format!("{body}\n\u{2014} k {}\n", &b64[1..]),
                NoteError::BadSignatureBase64 { line: 4 },
            ),
            (
                format!("{body}\n\u{2014} k {b64} \n"),
                NoteError::BadSignatureBase64 { line: 4 },
            ),
            (
                format!("{body}\n\u{2014} k AAAAAA==\n"),
                NoteError::SignatureTooShort { line: 4, len: 4 },
            ),
            (
                format!("{body}\n{line}\u{2014} k {b64}\x07\n"),
                NoteError::ControlCharacter { line: 5 },
            ),
            (
                format!("{body}\n{}", line.repeat(101)),
                NoteError::TooManySignatures { count: 101 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_note(&text).map(|_| ()), Err(want), "{text:?}");
        }
        // The Display texts are single lines naming what failed.
        let e = NoteError::InvalidSignature {
            name: "k".to_owned(),
            key_id: [0xde, 0xad, 0xbe, 0xef],
        };
        assert_eq!(e.to_string(), "signature by key \"k\" (deadbeef) does not verify");

        let key = VerifierKey::from_signing_key("k", &signing).unwrap();
        assert_eq!(sign_note("", "k", &signing), Err(NoteError::EmptyBody));
        assert_eq!(sign_note("a", "k", &signing), Err(NoteError::UnterminatedNote));
        assert_eq!(
            sign_note("a\x00\n", "k", &signing),
            Err(NoteError::ControlCharacter { line: 1 })
        );
        assert_eq!(
            sign_note(body, "k k", &signing),
            Err(NoteError::BadKeyName { name: "k k".to_owned() })
        );
        // A body with a blank line inside still splits at the last blank line.
        let blank = sign_note("a\n\nb\n", "k", &signing).unwrap();
        assert_eq!(open_note(&blank, &[key]).unwrap().0, "a\n\nb\n");
    }

    #[test]
    fn checkpoint_bodies_are_parsed_strictly() {
        let root = BASE64.encode([0x5a; 32]);
        let ok = Checkpoint::parse_body(&format!("o\n0\n{root}\n")).unwrap();
        assert_eq!((ok.size, ok.extensions.len()), (0, 0));
        let max = Checkpoint::parse_body(&format!("o\n{}\n{root}\n", u64::MAX)).unwrap();
        assert_eq!(max.size, u64::MAX);

        let mut other_bits = root.clone().into_bytes();
        // Last base64 char before '=' carries 2 unused bits for 32 bytes.
        let idx = other_bits.len() - 2;
        other_bits[idx] = b'b';
        let noncanonical = String::from_utf8(other_bits).unwrap();

        let size_err = |t: &str| NoteError::BadTreeSize { text: t.to_owned() };
        let root_err = |t: &str| NoteError::BadRootHash { text: t.to_owned() };
        let cases: Vec<(String, NoteError)> = vec![
            (format!("o\n1\n{root}"), NoteError::UnterminatedBody),
            (format!("\n1\n{root}\n"), NoteError::EmptyOrigin),
            ("o\n".to_owned(), NoteError::MissingCheckpointLine { line: 2 }),
            ("o\n1\n".to_owned(), NoteError::MissingCheckpointLine { line: 3 }),
            (format!("o\n01\n{root}\n"), size_err("01")),
            (format!("o\n+1\n{root}\n"), size_err("+1")),
            (format!("o\n-1\n{root}\n"), size_err("-1")),
            (format!("o\n\n{root}\n"), size_err("")),
            (format!("o\n1 \n{root}\n"), size_err("1 ")),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                size_err("18446744073709551616"),
            ),
            (
                format!("o\n1\n{}\n", root.trim_end_matches('=')),
                root_err(root.trim_end_matches('=')),
            ),
            (format!("o\n1\n{noncanonical}\n"), root_err(&noncanonical)),
            (
                format!("o\n1\n{}\n", BASE64.encode([1u8; 31])),
                root_err(&BASE64.encode([1u8; 31])),
            ),
            (
                format!("o\n1\n{}\n", BASE64.encode([1u8; 33])),
                root_err(&BASE64.encode([1u8; 33])),
            ),
            ("o\n1\nAA\n".to_owned(), root_err("AA")),
            (format!("o\n1\n{root}\n\n"), NoteError::EmptyExtensionLine { line: 4 }),
            (
                format!("o\n1\n{root}\next\n\nmore\n"),
                NoteError::EmptyExtensionLine { line: 5 },
            ),
            (format!("o\n1\n{root}\ne\tx\n"), NoteError::ControlCharacter { line: 4 }),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse_body(&text), Err(want), "{text:?}");
        }

        let mut cp = checkpoint();
        cp.extensions.push("two\nlines".to_owned());
        assert_eq!(cp.validate(), Err(NoteError::ControlCharacter { line: 6 }));
        cp.extensions[2] = String::new();
        assert_eq!(cp.validate(), Err(NoteError::EmptyExtensionLine { line: 6 }));
        cp.origin = String::new();
        assert_eq!(cp.validate(), Err(NoteError::EmptyOrigin));
    }
}
