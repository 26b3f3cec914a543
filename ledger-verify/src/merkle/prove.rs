//! Proof generation from stored perfect-subtree nodes (RFC 9162 §2.1.3.1
//! PATH and §2.1.4.1 PROOF/SUBPROOF), plus [`MemoryTree`], an in-memory node
//! store for tests, test vectors and small bundles.
//!
//! Generation never rehashes leaves: every hash in a proof is either a stored
//! node or the root of a right-edge subtree assembled from O(log n) stored
//! nodes. This module does not verify proofs (see [`super::verify`]) and does
//! not know how nodes are persisted.

use super::{ProofError, split_point};
use crate::hash::{Hash, HashAlg};

/// Read access to the perfect subtree roots of one append-only tree.
///
/// `node(level, index)` must return the root of the perfect subtree covering
/// leaves `[index << level, (index + 1) << level)`; level 0 is the leaf
/// hashes. Only nodes of complete subtrees are ever asked for, so a store can
/// persist each node once, when it completes (see
/// [`super::Frontier::push`]), and never rewrite it.
pub trait NodeSource {
    /// The store's own error; argument errors found while generating a proof
    /// are converted into it.
    type Error: From<ProofError>;

    /// The root of the perfect subtree at (`level`, `index`).
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }
}

/// The Merkle Tree Hash of leaves `[start, end)`, read from stored nodes.
///
/// An empty range gives the empty-tree root. When `start` is a multiple of
/// the smallest power of two `>= end - start` (true for every subtree that
/// RFC 9162 proofs and roots use, including `[0, size)`), the left half of
/// every split is a stored perfect node, so only the right edge is recursed
/// into and at most 64 nodes are read. Unaligned ranges are still computed
/// correctly, just with more reads.
pub fn subtree_root<S: NodeSource + ?Sized>(src: &S, alg: HashAlg, start: u64, end: u64) -> Result<Hash, S::Error> {
    if start > end {
        return Err(ProofError::InvalidRange { start, end }.into());
    }
    if start == end {
        return Ok(alg.empty_root());
    }
    // Walk down the right edge, remembering each perfect left sibling, then
    // fold back up. Iterative so that the depth bound is obvious.
    let mut lefts: Vec<Hash> = Vec::new();
    let mut lo = start;
    let last = loop {
        let n = end - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let level = n.trailing_zeros();
            break src.node(level, lo >> level)?;
        }
        let k = split_point(n);
        let left = if lo.is_multiple_of(k) {
            let level = k.trailing_zeros();
            src.node(level, lo >> level)?
        } else {
            subtree_root(src, alg, lo, lo + k)?
        };
        lefts.push(left);
        lo += k;
    };
    Ok(lefts.iter().rev().fold(last, |right, left| alg.node_hash(left, &right)))
}

/// The inclusion proof for leaf `index` in the tree of the first `size`
/// leaves (RFC 9162 §2.1.3.1 PATH), ordered from the leaf upwards.
///
/// Errors with [`ProofError::IndexOutOfRange`] unless `index < size`; the
/// store's own error if it lacks a node (for example, `size` exceeds what it
/// holds).
pub fn inclusion_proof<S: NodeSource + ?Sized>(
    src: &S,
    alg: HashAlg,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size }.into());
    }
    // PATH(m, D[lo:hi]) descends towards leaf m; each step contributes the
    // sibling subtree, which RFC 9162 appends after the deeper part.
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            path.push(subtree_root(src, alg, lo + k, hi)?);
            hi = lo + k;
        } else {
            path.push(subtree_root(src, alg, lo, lo + k)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof from the tree of the first `old_size` leaves to the
/// tree of the first `new_size` leaves (RFC 9162 §2.1.4.1 PROOF/SUBPROOF).
///
/// `old_size == new_size` and `old_size == 0` give an empty proof, matching
/// [`super::verify_consistency`]; `old_size > new_size` is
/// [`ProofError::OldSizeGreater`].
pub fn consistency_proof<S: NodeSource + ?Sized>(
    src: &S,
    alg: HashAlg,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    if old_size > new_size {
        return Err(ProofError::OldSizeGreater {
            old: old_size,
            new: new_size,
        }
        .into());
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: `m` is relative to `lo`, and
    // `complete` is b (whether the old tree is the whole of D[0:lo+m]
    // reached only through left turns).
    let mut proof = Vec::new();
    let (mut lo, mut hi) = (0u64, new_size);
    let mut m = old_size;
    let mut complete = true;
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                proof.push(subtree_root(src, alg, lo, hi)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(subtree_root(src, alg, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(subtree_root(src, alg, lo, lo + k)?);
            lo += k;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// An in-memory tree that stores every perfect node, level by level.
///
/// Meant for tests, test vectors and building small proof bundles; a real
/// store implements [`NodeSource`] over its own persistence.
#[derive(Debug, Clone)]
pub struct MemoryTree {
    alg: HashAlg,
    /// `levels[l][i]` is `node(l, i)`; `levels[0]` is the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree hashed with `alg`.
    pub fn new(alg: HashAlg) -> MemoryTree {
        MemoryTree {
            alg,
            levels: vec![Vec::new()],
        }
    }

    /// A tree holding `leaf_hashes` in order.
    pub fn from_leaf_hashes<I: IntoIterator<Item = Hash>>(alg: HashAlg, leaf_hashes: I) -> MemoryTree {
        let mut tree = MemoryTree::new(alg);
        for leaf in leaf_hashes {
            tree.push(leaf);
        }
        tree
    }

    /// The tree's hash algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Appends a leaf hash and stores every perfect node it completes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let len = row.len();
            if len % 2 == 1 {
                break;
            }
            hash = self.alg.node_hash(&row[len - 2], &row[len - 1]);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Merkle Tree Hash of all leaves.
    pub fn root(&self) -> Hash {
        // The right edge is the last node of every level whose bit is set in
        // the size; folding it right-to-left gives the MTH (as in Frontier).
        let size = self.len();
        let mut root: Option<Hash> = None;
        for (level, row) in self.levels.iter().enumerate() {
            if (size >> level) & 1 == 1
                && let Some(node) = row.last()
            {
                root = Some(match root {
                    None => *node,
                    Some(right) => self.alg.node_hash(node, &right),
                });
            }
        }
        root.unwrap_or_else(|| self.alg.empty_root())
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        subtree_root(self, self.alg, 0, size)
    }

    /// [`inclusion_proof`] for this tree, checking `size` against its length.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        inclusion_proof(self, self.alg, index, size)
    }

    /// [`consistency_proof`] for this tree, checking `new_size` against its
    /// length.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new_size)?;
        consistency_proof(self, self.alg, old_size, new_size)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let tree_size = self.len();
        if size > tree_size {
            return Err(ProofError::SizeOutOfRange { size, tree_size });
        }
        Ok(())
    }
}

impl NodeSource for MemoryTree {
    type Error = ProofError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        usize::try_from(level)
            .ok()
            .and_then(|l| self.levels.get(l))
            .and_then(|row| usize::try_from(index).ok().and_then(|i| row.get(i)))
            .copied()
            .ok_or(ProofError::NodeMissing { level, index })
    }
}
