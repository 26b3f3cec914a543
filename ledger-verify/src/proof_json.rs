//! Merkle proofs as standalone JSON documents, so a proof from any source
//! (the `ledger` CLI, a gRPC response, another implementation) can be
//! checked with `ledger-verify inclusion|consistency FILE`
//! (`docs/FORMAT.md` §12.7).
//!
//! Parsing is strict: an object with exactly the listed fields, integers as
//! JSON integers, hashes as 64 lower-case hex digits; every error names the
//! field. This module only parses, prints and checks; it does not know where
//! a proof came from or whether its root is trusted (a root is only as good
//! as the signed checkpoint it came from).

use serde_json::{Map, Value};

use crate::bundle::FieldError;
use crate::hash::{Hash, HashAlg};
use crate::merkle::{ProofError, verify_consistency, verify_inclusion};

/// Largest proof document read (1 MiB; a real proof is under 10 KiB).
pub const MAX_PROOF_JSON_BYTES: usize = 1 << 20;

/// Most hashes a proof may list: two per tree level of a `u64`-sized tree.
pub const MAX_PROOF_HASHES: usize = 128;

/// The leaf an inclusion proof is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// `leaf_hash`: the Merkle leaf hash `H(0x00 ‖ record_hash)` itself.
    LeafHash(Hash),
    /// `record_hash`: the record hash; the leaf hash is computed from it.
    RecordHash(Hash),
}

/// An inclusion proof document:
/// `{"hash_alg","index","tree_size","leaf_hash"|"record_hash","root","proof"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProofJson {
    /// The tree hash.
    pub hash_alg: HashAlg,
    /// The leaf index (the record's seq).
    pub index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The leaf.
    pub leaf: Leaf,
    /// The root of the tree of `tree_size` leaves.
    pub root: Hash,
    /// The audit path, leaf to root.
    pub proof: Vec<Hash>,
}

/// A consistency proof document:
/// `{"hash_alg","old_size","new_size","old_root","new_root","proof"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProofJson {
    /// The tree hash.
    pub hash_alg: HashAlg,
    /// The older tree size.
    pub old_size: u64,
    /// The newer tree size.
    pub new_size: u64,
    /// The older root.
    pub old_root: Hash,
    /// The newer root.
    pub new_root: Hash,
    /// The proof hashes (RFC 9162 order).
    pub proof: Vec<Hash>,
}

/// Why a proof document does not parse or its proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofJsonError {
    /// Larger than [`MAX_PROOF_JSON_BYTES`].
    #[error("proof document: {0} bytes, larger than the 1 MiB a verifier reads")]
    TooLarge(usize),
    /// Not JSON, or not a JSON object.
    #[error("proof document: {0}")]
    Json(String),
    /// A field is missing, unknown, of the wrong type or does not decode.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The proof does not verify.
    #[error("{what} proof does not verify: {error}")]
    Proof {
        /// `inclusion` or `consistency`.
        what: &'static str,
        /// Why.
        error: ProofError,
    },
}

impl ProofJsonError {
    /// A short stable name of the failure kind (for `--json` output).
    pub fn kind(&self) -> &'static str {
        match self {
            ProofJsonError::TooLarge(_) => "too_large",
            ProofJsonError::Json(_) => "json",
            ProofJsonError::Field(_) => "field",
            ProofJsonError::Proof { .. } => "proof",
        }
    }
}

impl InclusionProofJson {
    /// Parses a document (strict; see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<InclusionProofJson, ProofJsonError> {
        let mut fields = Fields::parse(bytes)?;
        let hash_alg = fields.hash_alg()?;
        let index = fields.u64("index")?;
        let tree_size = fields.u64("tree_size")?;
        let leaf = match (fields.optional_hash("leaf_hash")?, fields.optional_hash("record_hash")?) {
            (Some(hash), None) => Leaf::LeafHash(hash),
            (None, Some(hash)) => Leaf::RecordHash(hash),
            (Some(_), Some(_)) => {
                return Err(FieldError::new("record_hash", "give leaf_hash or record_hash, not both").into());
            }
            (None, None) => return Err(FieldError::new("leaf_hash", "missing (or give record_hash)").into()),
        };
        let root = fields.hash("root")?;
        let proof = fields.hashes("proof")?;
        fields.finish()?;
        Ok(InclusionProofJson {
            hash_alg,
            index,
            tree_size,
            leaf,
            root,
            proof,
        })
    }

    /// The Merkle leaf hash the proof starts from.
    pub fn leaf_hash(&self) -> Hash {
        match self.leaf {
            Leaf::LeafHash(hash) => hash,
            Leaf::RecordHash(hash) => self.hash_alg.leaf_hash(&hash),
        }
    }

    /// Checks the proof (RFC 9162 §2.1.3.2).
    pub fn verify(&self) -> Result<(), ProofJsonError> {
        verify_inclusion(
            self.hash_alg,
            self.index,
            self.tree_size,
            &self.leaf_hash(),
            &self.proof,
            &self.root,
        )
        .map_err(|error| ProofJsonError::Proof {
            what: "inclusion",
            error,
        })
    }

    /// The document (one line of JSON, fields in the order above).
    pub fn to_json(&self) -> String {
        let (leaf_field, leaf) = match self.leaf {
            Leaf::LeafHash(hash) => ("leaf_hash", hash),
            Leaf::RecordHash(hash) => ("record_hash", hash),
        };
        let mut map = Map::new();
        map.insert("hash_alg".into(), self.hash_alg.name().into());
        map.insert("index".into(), self.index.into());
        map.insert("tree_size".into(), self.tree_size.into());
        map.insert(leaf_field.into(), hex::encode(leaf).into());
        map.insert("root".into(), hex::encode(self.root).into());
        map.insert("proof".into(), hex_list(&self.proof));
        Value::Object(map).to_string()
    }
}

impl ConsistencyProofJson {
    /// Parses a document (strict; see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<ConsistencyProofJson, ProofJsonError> {
        let mut fields = Fields::parse(bytes)?;
        let proof = ConsistencyProofJson {
            hash_alg: fields.hash_alg()?,
            old_size: fields.u64("old_size")?,
            new_size: fields.u64("new_size")?,
            old_root: fields.hash("old_root")?,
            new_root: fields.hash("new_root")?,
            proof: fields.hashes("proof")?,
        };
        fields.finish()?;
        Ok(proof)
    }

    /// Checks the proof (RFC 9162 §2.1.4.2, plus the edge cases of
    /// [`verify_consistency`]).
    pub fn verify(&self) -> Result<(), ProofJsonError> {
        verify_consistency(
            self.hash_alg,
            self.old_size,
            self.new_size,
            &self.old_root,
            &self.new_root,
            &self.proof,
        )
        .map_err(|error| ProofJsonError::Proof {
            what: "consistency",
            error,
        })
    }

    /// The document (one line of JSON, fields in the order above).
    pub fn to_json(&self) -> String {
        let mut map = Map::new();
        map.insert("hash_alg".into(), self.hash_alg.name().into());
        map.insert("old_size".into(), self.old_size.into());
        map.insert("new_size".into(), self.new_size.into());
        map.insert("old_root".into(), hex::encode(self.old_root).into());
        map.insert("new_root".into(), hex::encode(self.new_root).into());
        map.insert("proof".into(), hex_list(&self.proof));
        Value::Object(map).to_string()
    }
}

fn hex_list(hashes: &[Hash]) -> Value {
    Value::Array(hashes.iter().map(|h| Value::String(hex::encode(h))).collect())
}

/// The fields of a document's top-level object, taken one by one; whatever
/// is left at the end is an unknown field.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(bytes: &[u8]) -> Result<Fields, ProofJsonError> {
        if bytes.len() > MAX_PROOF_JSON_BYTES {
            return Err(ProofJsonError::TooLarge(bytes.len()));
        }
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(ProofJsonError::Json("not a JSON object".to_string())),
            Err(e) => Err(ProofJsonError::Json(format!("not JSON: {e}"))),
        }
    }

    fn take(&mut self, name: &str) -> Result<Value, FieldError> {
        self.0.remove(name).ok_or_else(|| FieldError::new(name, "missing"))
    }

    fn hash_alg(&mut self) -> Result<HashAlg, FieldError> {
        match self.take("hash_alg")? {
            Value::String(name) => HashAlg::from_name(&name)
                .ok_or_else(|| FieldError::new("hash_alg", format!("{name:?} is not blake3 or sha256"))),
            other => Err(wrong_type("hash_alg", "a string", &other)),
        }
    }

    fn u64(&mut self, name: &str) -> Result<u64, FieldError> {
        let value = self.take(name)?;
        value
            .as_u64()
            .ok_or_else(|| wrong_type(name, "an integer from 0 to 2^64-1", &value))
    }

    fn hash(&mut self, name: &str) -> Result<Hash, FieldError> {
        let value = self.take(name)?;
        hash_value(&value, name)
    }

    fn optional_hash(&mut self, name: &str) -> Result<Option<Hash>, FieldError> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(value) => hash_value(&value, name).map(Some),
        }
    }

    fn hashes(&mut self, name: &str) -> Result<Vec<Hash>, FieldError> {
        let Value::Array(items) = self.take(name)? else {
            return Err(FieldError::new(name, "not an array of hex hashes"));
        };
        if items.len() > MAX_PROOF_HASHES {
            return Err(FieldError::new(
                name,
                format!("{} hashes; no proof has more than {MAX_PROOF_HASHES}", items.len()),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| hash_value(item, &format!("{name}[{i}]")))
            .collect()
    }

    fn finish(self) -> Result<(), FieldError> {
        match self.0.keys().next() {
            Some(unknown) => Err(FieldError::new(unknown.clone(), "unknown field")),
            None => Ok(()),
        }
    }
}

fn hash_value(value: &Value, name: &str) -> Result<Hash, FieldError> {
    let Value::String(text) = value else {
        return Err(wrong_type(name, "a string of 64 lower-case hex digits", value));
    };
    crate::bundle::digest::hex_hash(text, || name.to_string())
}

fn wrong_type(name: &str, expected: &str, value: &Value) -> FieldError {
    let found = match value {
        Value::Null => "null".to_string(),
        Value::Bool(_) => "a boolean".to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    };
    FieldError::new(name, format!("expected {expected}, found {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::blake3;
    use crate::merkle::MemoryTree;

    fn tree() -> MemoryTree {
        MemoryTree::from_leaf_hashes(
            HashAlg::Blake3,
            (0..7u8).map(|i| HashAlg::Blake3.leaf_hash(&blake3(&[i]))),
        )
    }

    fn inclusion() -> InclusionProofJson {
        let tree = tree();
        InclusionProofJson {
            hash_alg: HashAlg::Blake3,
            index: 3,
            tree_size: 7,
            leaf: Leaf::RecordHash(blake3(&[3])),
            root: tree.root(),
            proof: tree.inclusion_proof(3, 7).unwrap(),
        }
    }

    fn consistency() -> ConsistencyProofJson {
        let tree = tree();
        ConsistencyProofJson {
            hash_alg: HashAlg::Blake3,
            old_size: 3,
            new_size: 7,
            old_root: tree.root_at(3).unwrap(),
            new_root: tree.root(),
            proof: tree.consistency_proof(3, 7).unwrap(),
        }
    }

    fn field_of(error: ProofJsonError) -> String {
        match error {
            ProofJsonError::Field(field) => field.field,
            other => panic!("not a field error: {other}"),
        }
    }

    /// `to_json` with `edit` applied to the object.
    fn edited(json: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut value: Value = serde_json::from_str(json).unwrap();
        edit(value.as_object_mut().unwrap());
        value.to_string().into_bytes()
    }

    #[test]
    fn documents_round_trip_and_verify() -> Result<(), ProofJsonError> {
        let proof = inclusion();
        let parsed = InclusionProofJson::parse(proof.to_json().as_bytes())?;
        assert_eq!(parsed, proof);
        parsed.verify()?;
        let by_leaf = InclusionProofJson {
            leaf: Leaf::LeafHash(proof.leaf_hash()),
            ..proof
        };
        InclusionProofJson::parse(by_leaf.to_json().as_bytes())?.verify()?;

        let proof = consistency();
        let parsed = ConsistencyProofJson::parse(proof.to_json().as_bytes())?;
        assert_eq!(parsed, proof);
        parsed.verify()
    }

    #[test]
    fn wrong_proofs_fail_as_proofs() {
        let mut proof = inclusion();
        proof.index = 4;
        assert_eq!(proof.verify().unwrap_err().kind(), "proof");
        let mut proof = consistency();
        proof.old_root[0] ^= 1;
        assert!(matches!(
            proof.verify(),
            Err(ProofJsonError::Proof {
                what: "consistency",
                error: ProofError::OldRootMismatch { .. }
            })
        ));
    }

    type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;

    #[test]
    fn parse_errors_name_the_field() {
        let json = inclusion().to_json();
        let cases: Vec<(&str, Edit)> = vec![
            (
                "hash_alg",
                Box::new(|m| drop(m.insert("hash_alg".into(), "md5".into()))),
            ),
            ("index", Box::new(|m| drop(m.insert("index".into(), (-1).into())))),
            (
                "tree_size",
                Box::new(|m| drop(m.insert("tree_size".into(), 7.5.into()))),
            ),
            (
                "tree_size",
                Box::new(|m| drop(m.insert("tree_size".into(), "7".into()))),
            ),
            ("root", Box::new(|m| drop(m.remove("root")))),
            (
                "root",
                Box::new(|m| drop(m.insert("root".into(), "AB".repeat(32).into()))),
            ),
            ("proof[1]", Box::new(|m| m["proof"][1] = "00".into())),
            ("proof", Box::new(|m| drop(m.insert("proof".into(), "x".into())))),
            ("leaf_hash", Box::new(|m| drop(m.remove("record_hash")))),
            (
                "record_hash",
                Box::new(|m| drop(m.insert("leaf_hash".into(), "00".repeat(32).into()))),
            ),
            ("extra", Box::new(|m| drop(m.insert("extra".into(), 1.into())))),
        ];
        for (field, edit) in cases {
            let error = InclusionProofJson::parse(&edited(&json, edit)).unwrap_err();
            assert_eq!(field_of(error), field);
        }
        let json = consistency().to_json();
        let error = ConsistencyProofJson::parse(&edited(&json, |m| drop(m.remove("new_root")))).unwrap_err();
        assert_eq!(field_of(error), "new_root");
        assert_eq!(ConsistencyProofJson::parse(b"[1]").unwrap_err().kind(), "json");
        assert_eq!(ConsistencyProofJson::parse(b"{").unwrap_err().kind(), "json");
    }
}
