//! Proof verification: RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
//! (consistency), step for step, plus the two edge cases the RFC leaves out
//! (equal sizes and the empty old tree).
//!
//! Proof lengths are checked up front against the length the sizes imply, so
//! a truncated or padded proof is reported as such rather than as a root
//! mismatch. This module only checks; it never needs stored nodes.

use super::{ProofError, bit_len};
use crate::hash::{Hash, HashAlg};

/// The length of the inclusion proof for leaf `index` in a tree of `size`
/// leaves (`index < size`), split as (levels below the point where the leaf's
/// path leaves the right edge, levels on the right edge above it).
fn inclusion_decomposition(index: u64, size: u64) -> (u32, u32) {
    let inner = bit_len(index ^ (size - 1));
    let border = (index >> inner).count_ones();
    (inner, border)
}

/// The number of hashes in an inclusion proof for `index` in a tree of `size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (inner, border) = inclusion_decomposition(index, size);
    (inner + border) as usize
}

/// The number of hashes in a consistency proof for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let shift = old.trailing_zeros();
    let (inner, border) = inclusion_decomposition(old - 1, new);
    // The RFC prepends the old root itself when `old` is a power of two;
    // otherwise the proof carries the seed hash explicitly.
    let seed = usize::from(!old.is_power_of_two());
    seed + (inner - shift + border) as usize
}

/// Computes the root that an inclusion proof leads to, without comparing it.
///
/// Useful when the trusted root is checked elsewhere (for example against a
/// signed checkpoint). Errors if `index >= size` or the proof length does not
/// match `(index, size)`.
pub fn root_from_inclusion_proof(
    alg: HashAlg,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    // Step 1.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    // Steps 2-3.
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = alg.node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = alg.node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    Ok(r)
}

/// Checks that the leaf with hash `leaf_hash` is at `index` in the tree of
/// `size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    alg: HashAlg,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(alg, index, size, leaf_hash, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the
/// tree of `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
///
/// The RFC only defines `0 < old_size < new_size`; the edge cases are:
/// - `old_size > new_size`: [`ProofError::OldSizeGreater`].
/// - `old_size == new_size`: the proof must be empty and the roots equal
///   (unequal roots are [`ProofError::SameSizeRootsDiffer`], i.e. a fork).
/// - `old_size == 0` (and `new_size > 0`): the proof must be empty and
///   `old_root` must be the empty-tree root; every tree extends the empty
///   tree, so `new_root` is not constrained.
pub fn verify_consistency(
    alg: HashAlg,
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeGreater {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_size == 0 {
            let empty = alg.empty_root();
            if *old_root != empty {
                return Err(ProofError::OldRootMismatch {
                    expected: *old_root,
                    computed: empty,
                });
            }
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::SameSizeRootsDiffer {
                size: old_size,
                old: *old_root,
                new: *new_root,
            });
        }
        return Ok(());
    }

    let expected = consistency_proof_len(old_size, new_size);
    // Step 1 (an empty proof is always of the wrong length here).
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    // Step 2: a power-of-two old tree is itself a node of the new tree, so
    // the proof omits it and the verifier supplies it.
    let (seed, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => {
                return Err(ProofError::WrongProofLength { expected, actual: 0 });
            }
        }
    };
    // Step 3.
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    // Step 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let mut fr = seed;
    let mut sr = seed;
    // Step 6.
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = alg.node_hash(c, &fr);
            sr = alg.node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = alg.node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            expected: *old_root,
            computed: fr,
        });
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch {
            expected: *new_root,
            computed: sr,
        });
    }
    Ok(())
}
