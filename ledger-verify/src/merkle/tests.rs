//! Tests for the Merkle module: RFC 6962 known answers (SHA-256), exhaustive
//! small-tree checks, node-read bounds, and proptest properties including
//! proof mutations. Test vectors shared with other implementations live in
//! `tests/vectors.rs`, not here.

use std::cell::Cell;

use proptest::prelude::*;

use super::*;

const ALGS: [HashAlg; 2] = [HashAlg::Blake3, HashAlg::Sha256];

/// Distinct leaf hashes, derived the way the ledger does: leaf inputs are
/// 32-byte record hashes.
fn leaves(alg: HashAlg, n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| alg.leaf_hash(&crate::hash::blake3(format!("leaf-{i}").as_bytes())))
        .collect()
}

/// The RFC 6962 test leaves used by the Go and Trillian test suites.
fn rfc6962_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        (0x60..=0x6f).collect(),
    ]
}

#[test]
fn rfc6962_sha256_known_roots() {
    let alg = HashAlg::Sha256;
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let leaf_hashes: Vec<Hash> = rfc6962_leaves().iter().map(|l| alg.leaf_hash(l)).collect();
    let mut frontier = Frontier::new(alg);
    assert_eq!(
        hex::encode(frontier.root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    for (n, want) in expected.iter().enumerate() {
        frontier.push(leaf_hashes[n]).unwrap();
        assert_eq!(hex::encode(root_of(alg, &leaf_hashes[..=n])), *want, "size {}", n + 1);
        assert_eq!(hex::encode(frontier.root()), *want, "size {}", n + 1);
    }
}

#[test]
fn rfc6962_sha256_known_proofs() {
    let alg = HashAlg::Sha256;
    let leaf_hashes: Vec<Hash> = rfc6962_leaves().iter().map(|l| alg.leaf_hash(l)).collect();
    let tree = MemoryTree::from_leaf_hashes(alg, leaf_hashes);
    // (index, size, proof) with 0-based indices.
    let inclusion: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, want) in inclusion {
        let got: Vec<String> = tree
            .inclusion_proof(index, size)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(got, want, "inclusion ({index}, {size})");
    }
    let consistency: [(u64, u64, &[&str]); 3] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, want) in consistency {
        let got: Vec<String> = tree
            .consistency_proof(old, new)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(got, want, "consistency ({old}, {new})");
    }
}

#[test]
fn empty_tree() {
    for alg in ALGS {
        assert_eq!(root_of(alg, &[]), alg.empty_root());
        assert_eq!(Frontier::new(alg).root(), alg.empty_root());
        let tree = MemoryTree::new(alg);
        assert!(tree.is_empty());
        assert_eq!(tree.root(), alg.empty_root());
        assert_eq!(tree.root_at(0).unwrap(), alg.empty_root());
        assert_eq!(subtree_root(&tree, alg, 0, 0).unwrap(), alg.empty_root());
    }
}

/// The 8-leaf tree spelled out node by node, independently of `root_of`.
#[test]
fn eight_leaf_structure() {
    for alg in ALGS {
        let l = leaves(alg, 8);
        let n = |a: &Hash, b: &Hash| alg.node_hash(a, b);
        let (a, b, c, d) = (n(&l[0], &l[1]), n(&l[2], &l[3]), n(&l[4], &l[5]), n(&l[6], &l[7]));
        let (ab, cd) = (n(&a, &b), n(&c, &d));
        let root8 = n(&ab, &cd);
        assert_eq!(root_of(alg, &l), root8);
        // Unbalanced sizes: the right subtree is the remainder, not padded.
        assert_eq!(root_of(alg, &l[..3]), n(&a, &l[2]));
        assert_eq!(root_of(alg, &l[..5]), n(&ab, &l[4]));
        assert_eq!(root_of(alg, &l[..6]), n(&ab, &c));
        assert_eq!(root_of(alg, &l[..7]), n(&ab, &n(&c, &l[6])));

        let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
        assert_eq!(tree.node(3, 0).unwrap(), root8);
        assert_eq!(tree.node(2, 1).unwrap(), cd);
        assert_eq!(tree.node(1, 2).unwrap(), c);
        assert_eq!(tree.node(3, 1), Err(ProofError::NodeMissing { level: 3, index: 1 }));
        assert_eq!(tree.inclusion_proof(2, 8).unwrap(), vec![l[3], a, cd]);
        assert_eq!(tree.inclusion_proof(6, 7).unwrap(), vec![c, ab]);
        assert_eq!(tree.inclusion_proof(4, 5).unwrap(), vec![ab]);
        assert_eq!(tree.consistency_proof(3, 8).unwrap(), vec![l[2], l[3], a, cd]);
        assert_eq!(tree.consistency_proof(4, 8).unwrap(), vec![cd]);
        assert_eq!(tree.consistency_proof(6, 7).unwrap(), vec![c, l[6], ab]);
    }
}

#[test]
fn exhaustive_small_trees() {
    for alg in ALGS {
        let l = leaves(alg, 40);
        let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
        let roots: Vec<Hash> = (0..=40).map(|n| root_of(alg, &l[..n])).collect();
        for n in 0..=40u64 {
            assert_eq!(tree.root_at(n).unwrap(), roots[n as usize]);
            for i in 0..n {
                let proof = tree.inclusion_proof(i, n).unwrap();
                verify_inclusion(alg, i, n, &l[i as usize], &proof, &roots[n as usize]).unwrap();
            }
            for m in 0..=n {
                let proof = tree.consistency_proof(m, n).unwrap();
                verify_consistency(alg, m, n, &roots[m as usize], &roots[n as usize], &proof).unwrap();
            }
        }
    }
}

#[test]
fn frontier_tracks_root_and_reports_nodes() {
    for alg in ALGS {
        let l = leaves(alg, 300);
        let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
        let mut frontier = Frontier::new(alg);
        let mut reported = MemoryTree::new(alg);
        let mut nodes: std::collections::BTreeMap<(u32, u64), Hash> = Default::default();
        for (i, leaf) in l.iter().enumerate() {
            reported.push(*leaf);
            for (level, index, hash) in frontier.push(*leaf).unwrap() {
                assert_eq!(tree.node(level, index).unwrap(), hash, "node ({level}, {index})");
                assert!(nodes.insert((level, index), hash).is_none(), "node reported twice");
            }
            let size = i as u64 + 1;
            assert_eq!(frontier.size(), size);
            assert_eq!(frontier.root(), root_of(alg, &l[..=i]), "size {size}");
            assert_eq!(reported.root(), frontier.root());
            assert_eq!(Frontier::at_size(&tree, alg, size).unwrap(), frontier);
            let restored = Frontier::from_parts(alg, size, frontier.hashes().to_vec()).unwrap();
            assert_eq!(restored, frontier);
            for (level, index, hash) in frontier.nodes() {
                assert_eq!(tree.node(level, index).unwrap(), hash);
            }
        }
        // Every stored node of the full tree was reported exactly once.
        let stored: usize = (0..10u32)
            .map(|level| (0..).take_while(|&i| tree.node(level, i).is_ok()).count())
            .sum();
        assert_eq!(nodes.len(), stored);
    }
}

#[test]
fn frontier_from_parts_checks_count() {
    let alg = HashAlg::Blake3;
    assert_eq!(
        Frontier::from_parts(alg, 5, vec![[0; 32]]),
        Err(ProofError::FrontierMismatch {
            size: 5,
            expected: 2,
            actual: 1
        })
    );
    let full = Frontier::from_parts(alg, u64::MAX, vec![[0; 32]; 64]).unwrap();
    let mut copy = full.clone();
    assert_eq!(copy.push([1; 32]), Err(ProofError::TreeFull { size: u64::MAX }));
    assert_eq!(copy, full);
}

/// A node source that counts reads, to hold generation to O(log n).
struct Counting<'a> {
    tree: &'a MemoryTree,
    reads: Cell<u32>,
}

impl NodeSource for Counting<'_> {
    type Error = ProofError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.reads.set(self.reads.get() + 1);
        self.tree.node(level, index)
    }
}

#[test]
fn generation_reads_logarithmically_many_nodes() {
    let alg = HashAlg::Blake3;
    let l = leaves(alg, 1000);
    let tree = MemoryTree::from_leaf_hashes(alg, l);
    let src = Counting {
        tree: &tree,
        reads: Cell::new(0),
    };
    let mut worst = 0;
    for n in (1..=1000u64).step_by(7) {
        let bound = 2 * (64 - n.leading_zeros()) + 1;
        for i in (0..n).step_by(13) {
            src.reads.set(0);
            inclusion_proof(&src, alg, i, n).unwrap();
            assert!(
                src.reads.get() <= bound,
                "inclusion ({i}, {n}): {} reads",
                src.reads.get()
            );
            worst = worst.max(src.reads.get());
        }
        for m in (1..=n).step_by(11) {
            src.reads.set(0);
            consistency_proof(&src, alg, m, n).unwrap();
            assert!(
                src.reads.get() <= bound,
                "consistency ({m}, {n}): {} reads",
                src.reads.get()
            );
        }
        src.reads.set(0);
        subtree_root(&src, alg, 0, n).unwrap();
        assert!(src.reads.get() <= n.count_ones());
    }
    assert!(worst > 0);
}

#[test]
fn unaligned_subtree_root_is_still_correct() {
    let alg = HashAlg::Sha256;
    let l = leaves(alg, 20);
    let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
    for start in 0..20u64 {
        for end in start..=20 {
            assert_eq!(
                subtree_root(&tree, alg, start, end).unwrap(),
                root_of(alg, &l[start as usize..end as usize]),
                "[{start}, {end})"
            );
        }
    }
    assert_eq!(
        subtree_root(&tree, alg, 5, 4),
        Err(ProofError::InvalidRange { start: 5, end: 4 })
    );
}

#[test]
fn argument_errors() {
    let alg = HashAlg::Blake3;
    let l = leaves(alg, 10);
    let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
    let root = tree.root();
    assert_eq!(
        tree.inclusion_proof(10, 10),
        Err(ProofError::IndexOutOfRange { index: 10, size: 10 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 11),
        Err(ProofError::SizeOutOfRange {
            size: 11,
            tree_size: 10
        })
    );
    assert_eq!(
        inclusion_proof(&tree, alg, 0, 11),
        Err(ProofError::NodeMissing { level: 0, index: 10 })
    );
    assert_eq!(
        tree.consistency_proof(5, 4),
        Err(ProofError::OldSizeGreater { old: 5, new: 4 })
    );
    assert_eq!(
        verify_inclusion(alg, 10, 10, &l[0], &[], &root),
        Err(ProofError::IndexOutOfRange { index: 10, size: 10 })
    );
    assert_eq!(
        verify_consistency(alg, 5, 4, &root, &root, &[]),
        Err(ProofError::OldSizeGreater { old: 5, new: 4 })
    );
}

#[test]
fn consistency_edge_cases() {
    let alg = HashAlg::Blake3;
    let l = leaves(alg, 10);
    let r10 = root_of(alg, &l);
    let r9 = root_of(alg, &l[..9]);
    let empty = alg.empty_root();
    // Same size: empty proof and equal roots.
    verify_consistency(alg, 10, 10, &r10, &r10, &[]).unwrap();
    assert_eq!(
        verify_consistency(alg, 10, 10, &r10, &r10, &[r9]),
        Err(ProofError::WrongProofLength { expected: 0, actual: 1 })
    );
    assert_eq!(
        verify_consistency(alg, 10, 10, &r9, &r10, &[]),
        Err(ProofError::SameSizeRootsDiffer {
            size: 10,
            old: r9,
            new: r10
        })
    );
    // Empty old tree: consistent with anything, but only under the empty root.
    verify_consistency(alg, 0, 10, &empty, &r10, &[]).unwrap();
    verify_consistency(alg, 0, 0, &empty, &empty, &[]).unwrap();
    assert_eq!(
        verify_consistency(alg, 0, 10, &r9, &r10, &[]),
        Err(ProofError::OldRootMismatch {
            expected: r9,
            computed: empty
        })
    );
    assert_eq!(
        verify_consistency(alg, 0, 10, &empty, &r10, &[r9]),
        Err(ProofError::WrongProofLength { expected: 0, actual: 1 })
    );
    // Proper sizes with an empty proof.
    assert_eq!(
        verify_consistency(alg, 4, 10, &root_of(alg, &l[..4]), &r10, &[]),
        Err(ProofError::WrongProofLength { expected: 2, actual: 0 })
    );
}

#[test]
fn error_messages_are_one_line_and_show_hex() {
    let e = ProofError::RootMismatch {
        expected: [0xab; 32],
        computed: [0x01; 32],
    };
    let text = e.to_string();
    assert!(!text.contains('\n'));
    assert!(text.contains(&"ab".repeat(32)), "{text}");
    assert!(text.contains(&"01".repeat(32)), "{text}");
    assert_eq!(
        ProofError::IndexOutOfRange { index: 3, size: 2 }.to_string(),
        "leaf index 3 is out of range for tree size 2"
    );
}

/// Every single-hash byte flip, drop and insertion of `proof`, each of which
/// must be rejected.
fn mutations(proof: &[Hash], filler: Hash) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for byte in [0, 17, 31] {
            let mut p = proof.to_vec();
            p[i][byte] ^= 0x01;
            out.push(p);
        }
        let mut p = proof.to_vec();
        p.remove(i);
        out.push(p);
    }
    for i in 0..=proof.len() {
        let mut p = proof.to_vec();
        p.insert(i, filler);
        out.push(p);
        if i < proof.len() {
            let mut p = proof.to_vec();
            p.insert(i, proof[i]);
            out.push(p);
        }
    }
    out
}

fn flip(hash: &Hash) -> Hash {
    let mut h = *hash;
    h[9] ^= 0x80;
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frontier_and_memory_tree_agree_with_root_of(n in 0u64..300, sha in any::<bool>()) {
        let alg = if sha { HashAlg::Sha256 } else { HashAlg::Blake3 };
        let l = leaves(alg, n);
        let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
        let mut frontier = Frontier::new(alg);
        for leaf in &l {
            frontier.push(*leaf).unwrap();
        }
        let want = root_of(alg, &l);
        prop_assert_eq!(frontier.root(), want);
        prop_assert_eq!(tree.root(), want);
        prop_assert_eq!(tree.root_at(n).unwrap(), want);
        prop_assert_eq!(Frontier::at_size(&tree, alg, n).unwrap(), frontier);
    }

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        (n, i) in (1u64..300).prop_flat_map(|n| (Just(n), 0..n)),
        sha in any::<bool>(),
    ) {
        let alg = if sha { HashAlg::Sha256 } else { HashAlg::Blake3 };
        let l = leaves(alg, 300);
        let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
        let roots: Vec<Hash> = (0..=300).map(|k| tree.root_at(k).unwrap()).collect();
        let root = root_of(alg, &l[..n as usize]);
        prop_assert_eq!(root, roots[n as usize]);
        let leaf = l[i as usize];
        let proof = tree.inclusion_proof(i, n).unwrap();
        prop_assert_eq!(verify_inclusion(alg, i, n, &leaf, &proof, &root), Ok(()));
        prop_assert_eq!(root_from_inclusion_proof(alg, i, n, &leaf, &proof), Ok(root));

        for bad in mutations(&proof, l[(i as usize + 1) % 300]) {
            prop_assert!(verify_inclusion(alg, i, n, &leaf, &bad, &root).is_err());
        }
        // Wrong leaf, wrong root.
        prop_assert!(verify_inclusion(alg, i, n, &flip(&leaf), &proof, &root).is_err());
        prop_assert!(verify_inclusion(alg, i, n, &l[(i as usize + 1) % 300], &proof, &root).is_err());
        prop_assert_eq!(
            verify_inclusion(alg, i, n, &leaf, &proof, &flip(&root)),
            Err(ProofError::RootMismatch { expected: flip(&root), computed: root })
        );
        // Every other index in the same tree.
        for j in 0..n {
            if j != i {
                prop_assert!(verify_inclusion(alg, j, n, &leaf, &proof, &root).is_err(), "index {}", j);
            }
        }
        // Every other size, paired with that size's true root.
        for m in (i + 1)..=300 {
            if m != n {
                let other = roots[m as usize];
                prop_assert!(verify_inclusion(alg, i, m, &leaf, &proof, &other).is_err(), "size {}", m);
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        (n, m) in (1u64..300).prop_flat_map(|n| (Just(n), 1..=n)),
        sha in any::<bool>(),
    ) {
        let alg = if sha { HashAlg::Sha256 } else { HashAlg::Blake3 };
        let l = leaves(alg, 300);
        let tree = MemoryTree::from_leaf_hashes(alg, l.clone());
        let roots: Vec<Hash> = (0..=300).map(|k| tree.root_at(k).unwrap()).collect();
        let (old_root, new_root) = (roots[m as usize], roots[n as usize]);
        let proof = tree.consistency_proof(m, n).unwrap();
        prop_assert_eq!(verify_consistency(alg, m, n, &old_root, &new_root, &proof), Ok(()));

        for bad in mutations(&proof, l[0]) {
            prop_assert!(verify_consistency(alg, m, n, &old_root, &new_root, &bad).is_err());
        }
        prop_assert!(verify_consistency(alg, m, n, &flip(&old_root), &new_root, &proof).is_err());
        prop_assert!(verify_consistency(alg, m, n, &old_root, &flip(&new_root), &proof).is_err());
        // Other old sizes and other new sizes, each with its true root.
        for k in 1..=n {
            if k != m {
                prop_assert!(
                    verify_consistency(alg, k, n, &roots[k as usize], &new_root, &proof).is_err(),
                    "old size {}", k
                );
            }
        }
        for k in m..=300 {
            if k != n {
                prop_assert!(
                    verify_consistency(alg, m, k, &old_root, &roots[k as usize], &proof).is_err(),
                    "new size {}", k
                );
            }
        }
    }
}
