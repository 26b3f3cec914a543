//! The incremental right edge of an append-only Merkle tree ("compact
//! range"): enough state to append leaves and compute the RFC 9162 root in
//! O(log n) without reading any stored node.
//!
//! A [`Frontier`] is what a writer keeps in memory; [`Frontier::push`] reports
//! each perfect node that an append completes so the store can persist it for
//! later proof generation. This module does not store nodes or generate
//! proofs.

use super::{NodeSource, ProofError};
use crate::hash::{Hash, HashAlg};

/// The roots of the perfect subtrees along the right edge of a tree.
///
/// For a tree of `size` leaves there is one hash per set bit of `size`,
/// largest (leftmost) subtree first, so never more than 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    alg: HashAlg,
    size: u64,
    /// `hashes[j]` is the root of the j-th perfect subtree from the left.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new(alg: HashAlg) -> Frontier {
        Frontier {
            alg,
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// Restores a frontier persisted from [`Frontier::size`] and
    /// [`Frontier::hashes`]; errors if the hash count does not match `size`.
    pub fn from_parts(alg: HashAlg, size: u64, hashes: Vec<Hash>) -> Result<Frontier, ProofError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(ProofError::FrontierMismatch {
                size,
                expected,
                actual: hashes.len(),
            });
        }
        Ok(Frontier { alg, size, hashes })
    }

    /// Rebuilds the frontier of the first `size` leaves from stored nodes
    /// (recovery after a restart): one node read per set bit of `size`.
    pub fn at_size<S: NodeSource + ?Sized>(src: &S, alg: HashAlg, size: u64) -> Result<Frontier, S::Error> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                hashes.push(src.node(level, start >> level)?);
                start += width;
            }
        }
        Ok(Frontier { alg, size, hashes })
    }

    /// The tree's hash algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge subtree roots, largest subtree first (what to persist).
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The right-edge subtrees as `(level, index, hash)` node coordinates,
    /// largest first.
    pub fn nodes(&self) -> Vec<(u32, u64, Hash)> {
        let mut out = Vec::with_capacity(self.hashes.len());
        let mut start = 0u64;
        let mut hashes = self.hashes.iter();
        for level in (0..64u32).rev() {
            let width = 1u64 << level;
            if self.size & width != 0 {
                if let Some(hash) = hashes.next() {
                    out.push((level, start >> level, *hash));
                }
                start += width;
            }
        }
        out
    }

    /// Appends a leaf hash and returns every node that became complete, as
    /// `(level, index, hash)` in bottom-up order, starting with the leaf
    /// itself at `(0, old_size)`. Persisting all of them is exactly what a
    /// [`NodeSource`] needs to serve proofs.
    ///
    /// Errors, leaving the frontier unchanged, only if the tree already has
    /// `u64::MAX` leaves (the hash count is fixed by the constructors).
    pub fn push(&mut self, leaf_hash: Hash) -> Result<Vec<(u32, u64, Hash)>, ProofError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(ProofError::TreeFull { size: self.size })?;
        // Each trailing one bit of the old size is a right-edge subtree of
        // the same height as the node being built, which it now pairs with.
        let merges = index.trailing_ones() as usize;
        let keep = self
            .hashes
            .len()
            .checked_sub(merges)
            .ok_or(ProofError::FrontierMismatch {
                size: self.size,
                expected: self.size.count_ones() as usize,
                actual: self.hashes.len(),
            })?;
        let mut completed = Vec::with_capacity(merges + 1);
        let mut hash = leaf_hash;
        completed.push((0, index, hash));
        for (level, left) in (1u32..).zip(self.hashes.drain(keep..).rev()) {
            hash = self.alg.node_hash(&left, &hash);
            completed.push((level, index >> level, hash));
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(completed)
    }

    /// The Merkle Tree Hash of all leaves so far (the empty-tree root when
    /// there are none).
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        match iter.next() {
            None => self.alg.empty_root(),
            Some(last) => iter.fold(*last, |right, left| self.alg.node_hash(left, &right)),
        }
    }
}
