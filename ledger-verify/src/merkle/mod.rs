//! RFC 9162 Merkle tree algorithms, parameterised by [`HashAlg`].
//!
//! Three independent pieces live here:
//! - [`verify`]: checking inclusion and consistency proofs against roots
//!   (what an auditor runs), exactly as RFC 9162 §2.1.3.2 and §2.1.4.2;
//! - [`prove`]: generating proofs from stored perfect-subtree nodes through
//!   the [`NodeSource`] trait, with O(log n) node reads and no leaf rehashing;
//! - [`frontier`]: the incremental right-edge state ([`Frontier`]) that a
//!   writer keeps so that appending a leaf and computing the root are cheap.
//!
//! [`root_of`] is the slow, obviously-correct reference MTH that the other
//! pieces are tested against. All functions take leaf *hashes*
//! (`H(0x00 ‖ input)`, see [`HashAlg::leaf_hash`]), never raw leaf inputs.
//! This module does not know about records, storage or checkpoints.

use crate::hash::{Hash, HashAlg};

pub mod frontier;
pub mod prove;
pub mod verify;

pub use frontier::Frontier;
pub use prove::{MemoryTree, NodeSource, consistency_proof, inclusion_proof, subtree_root};
pub use verify::{root_from_inclusion_proof, verify_consistency, verify_inclusion};

/// Why a Merkle proof could not be produced or did not verify.
///
/// Argument errors (sizes, indices) are distinguished from cryptographic
/// failures (root mismatches) so that callers can tell a confused client
/// from a lying server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A leaf index is not inside the tree it is claimed to be in.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The size of the tree.
        size: u64,
    },
    /// A proof was requested for a tree larger than the one stored.
    #[error("tree size {size} is larger than the stored tree size {tree_size}")]
    SizeOutOfRange {
        /// The requested tree size.
        size: u64,
        /// The size of the tree actually available.
        tree_size: u64,
    },
    /// A consistency proof was requested from a larger tree to a smaller one.
    #[error("old tree size {old} is greater than new tree size {new}")]
    OldSizeGreater {
        /// The old (supposedly earlier) tree size.
        old: u64,
        /// The new (supposedly later) tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the claimed sizes.
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength {
        /// The number of hashes such a proof must have.
        expected: usize,
        /// The number of hashes the proof has.
        actual: usize,
    },
    /// The inclusion proof leads to a different root than the trusted one.
    #[error(
        "root mismatch: expected {}, computed {}",
        hex::encode(.expected),
        hex::encode(.computed)
    )]
    RootMismatch {
        /// The trusted root.
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },
    /// The consistency proof does not reproduce the trusted old root.
    #[error(
        "old root mismatch: expected {}, computed {}",
        hex::encode(.expected),
        hex::encode(.computed)
    )]
    OldRootMismatch {
        /// The trusted old root.
        expected: Hash,
        /// The old root the proof leads to.
        computed: Hash,
    },
    /// The consistency proof does not reproduce the trusted new root.
    #[error(
        "new root mismatch: expected {}, computed {}",
        hex::encode(.expected),
        hex::encode(.computed)
    )]
    NewRootMismatch {
        /// The trusted new root.
        expected: Hash,
        /// The new root the proof leads to.
        computed: Hash,
    },
    /// Two roots claimed for the same tree size differ: a fork.
    #[error(
        "two different roots for tree size {size}: {} and {}",
        hex::encode(.old),
        hex::encode(.new)
    )]
    SameSizeRootsDiffer {
        /// The tree size both roots claim.
        size: u64,
        /// The old root.
        old: Hash,
        /// The new root.
        new: Hash,
    },
    /// A leaf range with its start after its end.
    #[error("invalid leaf range [{start}, {end})")]
    InvalidRange {
        /// First leaf of the range.
        start: u64,
        /// One past the last leaf of the range.
        end: u64,
    },
    /// A node store does not hold a node that a proof needs.
    #[error("node at level {level}, index {index} is not stored")]
    NodeMissing {
        /// Height of the node above the leaves (0 = leaf).
        level: u32,
        /// Position of the node within its level.
        index: u64,
    },
    /// The tree already holds 2^64 - 1 leaves; its size would overflow.
    #[error("tree is full at size {size}")]
    TreeFull {
        /// The current size.
        size: u64,
    },
    /// A persisted frontier has the wrong number of hashes for its size.
    #[error("frontier for size {size} needs {expected} hashes, got {actual}")]
    FrontierMismatch {
        /// The persisted tree size.
        size: u64,
        /// One hash per set bit of `size`.
        expected: usize,
        /// The number of hashes supplied.
        actual: usize,
    },
}

/// The reference Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves.
///
/// Recomputes everything from the leaves, so it is O(n): use it in tests and
/// for small trees; stores should use [`Frontier`] or [`subtree_root`].
pub fn root_of(alg: HashAlg, leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => alg.empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split_point(leaf_hashes.len() as u64) as usize;
            let (left, right) = leaf_hashes.split_at(k);
            alg.node_hash(&root_of(alg, left), &root_of(alg, right))
        }
    }
}

/// The largest power of two strictly less than `n` (`n >= 2`): where RFC 9162
/// splits a tree of `n` leaves into its left and right subtrees.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Number of bits needed to write `x`: `bits.Len64` in Go.
pub(crate) fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
