//! Hash algorithms and the RFC 6962/9162 tree hashing primitives.
//!
//! A ledger picks its tree hash once, at creation: BLAKE3 (the default) or
//! SHA-256 (byte-exact RFC 6962, so transparency-log tooling can check it).
//! Record and payload hashes are always BLAKE3; only the Merkle tree varies.
//! This module does not know about records or checkpoints.

use sha2::Digest as _;

/// A 32-byte digest: every hash in the ledger is this size.
pub type Hash = [u8; 32];

/// RFC 6962 §2.1: prefix of a leaf hash input.
pub const LEAF_PREFIX: u8 = 0x00;
/// RFC 6962 §2.1: prefix of an interior node hash input.
pub const NODE_PREFIX: u8 = 0x01;

/// The hash function of a ledger's Merkle tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// BLAKE3 with 32-byte output: the default, ~3x faster than SHA-256 here.
    Blake3,
    /// SHA-256: byte-exact RFC 6962 trees for interoperability.
    Sha256,
}

impl HashAlg {
    /// The name used in files, checkpoints and test vectors: `blake3` or `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Blake3 => "blake3",
            HashAlg::Sha256 => "sha256",
        }
    }

    /// Parses a name written by [`HashAlg::name`].
    pub fn from_name(name: &str) -> Option<HashAlg> {
        match name {
            "blake3" => Some(HashAlg::Blake3),
            "sha256" => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// The one-byte code stored in segment headers: 1 = blake3, 2 = sha256.
    pub fn code(self) -> u8 {
        match self {
            HashAlg::Blake3 => 1,
            HashAlg::Sha256 => 2,
        }
    }

    /// Inverse of [`HashAlg::code`].
    pub fn from_code(code: u8) -> Option<HashAlg> {
        match code {
            1 => Some(HashAlg::Blake3),
            2 => Some(HashAlg::Sha256),
            _ => None,
        }
    }

    /// Hash of the concatenation of `parts`.
    pub fn hash(self, parts: &[&[u8]]) -> Hash {
        match self {
            HashAlg::Blake3 => {
                let mut hasher = blake3::Hasher::new();
                for part in parts {
                    hasher.update(part);
                }
                *hasher.finalize().as_bytes()
            }
            HashAlg::Sha256 => {
                let mut hasher = sha2::Sha256::new();
                for part in parts {
                    hasher.update(part);
                }
                hasher.finalize().into()
            }
        }
    }

    /// Root of the empty tree: the hash of the empty string.
    pub fn empty_root(self) -> Hash {
        self.hash(&[])
    }

    /// Leaf hash: `H(0x00 ‖ leaf_input)`. For records the leaf input is the
    /// 32-byte record hash.
    pub fn leaf_hash(self, leaf_input: &[u8]) -> Hash {
        self.hash(&[&[LEAF_PREFIX], leaf_input])
    }

    /// Interior node hash: `H(0x01 ‖ left ‖ right)`.
    pub fn node_hash(self, left: &Hash, right: &Hash) -> Hash {
        self.hash(&[&[NODE_PREFIX], left, right])
    }
}

impl std::fmt::Display for HashAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// BLAKE3 of `bytes`: payload hashes and record hashes use it regardless of
/// the tree's algorithm.
pub fn blake3(bytes: &[u8]) -> Hash {
    *blake3::hash(bytes).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_empty_root_is_rfc6962() {
        assert_eq!(
            hex::encode(HashAlg::Sha256.empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn names_and_codes_round_trip() {
        for alg in [HashAlg::Blake3, HashAlg::Sha256] {
            assert_eq!(HashAlg::from_name(alg.name()), Some(alg));
            assert_eq!(HashAlg::from_code(alg.code()), Some(alg));
        }
        assert_eq!(HashAlg::from_name("md5"), None);
        assert_eq!(HashAlg::from_code(0), None);
    }

    #[test]
    fn leaf_and_node_are_domain_separated() {
        let h = [7u8; 32];
        let mut both = [0u8; 64];
        both[..32].copy_from_slice(&h);
        both[32..].copy_from_slice(&h);
        assert_ne!(HashAlg::Blake3.leaf_hash(&both), HashAlg::Blake3.node_hash(&h, &h));
    }
}
