//! Batch verification of ed25519 signatures in which each distinct public
//! key enters the multiscalar multiplication once.
//!
//! `ed25519_dalek::verify_batch` checks
//! `[-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]Aᵢ = 0` with one multiscalar
//! multiplication over 2n + 1 points. A producer signs a whole request
//! with one key, and a bundle holds few producers, so the n `Aᵢ` are
//! usually a few points: collecting `Σ zᵢhᵢ` per distinct key gives the
//! same sum over n + 1 + k points (k distinct keys), about half the curve
//! work of a one-key batch. The equation, the canonical-`s` check and the
//! 128-bit weights `zᵢ` are those of the batch verification in Bernstein et
//! al., "High-speed high-security signatures" (2011), §5, and of
//! ed25519-dalek; only the grouping of equal terms differs, and that is
//! exact algebra.
//!
//! The weights are derived, as ed25519-dalek 3 derives them, from a hash of
//! every signature's `hᵢ = H(Rᵢ ‖ Aᵢ ‖ Mᵢ)` and `sᵢ` (here BLAKE3 in XOF
//! mode), not drawn at random: the verdict is then the same on every
//! machine and every run, which an auditor re-checking a bundle expects,
//! and a forger who wants bad signatures to cancel out must find inputs
//! whose own hash gives cancelling weights, a 2⁻¹²⁸ chance per try.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// Whether every `signatures[i]` is a valid signature of `messages[i]` by
/// `keys[i]` (slices of unequal length are not). Accepts what
/// `ed25519_dalek::verify_batch` accepts, except with the negligible
/// chance (≤ 2⁻¹²⁸ per batch) either one has of accepting a bad batch;
/// a batch it refuses may still hold valid signatures (a key or `R` with a
/// small-order component), so callers that must name the bad one check
/// them one at a time afterwards.
pub fn verify_batch(messages: &[&[u8]], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    let n = signatures.len();
    if messages.len() != n || keys.len() != n {
        return false;
    }
    if n == 0 {
        return true;
    }
    // First pass: the scalars that the weights are derived from.
    let mut signed = Vec::with_capacity(n);
    let mut transcript = blake3::Hasher::new_derive_key("evidence-ledger 2026 ed25519 batch weights");
    for ((message, signature), key) in messages.iter().zip(signatures).zip(keys) {
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes())) else {
            return false;
        };
        let mut hasher = Sha512::new();
        hasher.update(signature.r_bytes());
        hasher.update(key.as_bytes());
        hasher.update(message);
        let h = Scalar::from_bytes_mod_order_wide(&hasher.finalize().into());
        transcript.update(h.as_bytes());
        transcript.update(signature.s_bytes());
        signed.push((s, h));
    }
    let mut weights = transcript.finalize_xof();
    let mut b_coefficient = Scalar::ZERO;
    let mut r_coefficients = Vec::with_capacity(n);
    let mut rs = Vec::with_capacity(n);
    // One entry per distinct key, in order of first appearance.
    let mut key_coefficients: Vec<Scalar> = Vec::new();
    let mut key_points: Vec<EdwardsPoint> = Vec::new();
    let mut key_slots: HashMap<[u8; 32], usize> = HashMap::new();
    let mut last: Option<(&[u8; 32], usize)> = None;
    for ((signature, key), (s, h)) in signatures.iter().zip(keys).zip(signed) {
        let mut z = [0u8; 32];
        weights.fill(&mut z[..16]);
        let z = Scalar::from_bytes_mod_order(z);
        b_coefficient += z * s;
        r_coefficients.push(z);
        rs.push(CompressedEdwardsY(*signature.r_bytes()));
        let slot = match last {
            Some((bytes, slot)) if bytes == key.as_bytes() => slot,
            _ => *key_slots.entry(*key.as_bytes()).or_insert_with(|| {
                key_coefficients.push(Scalar::ZERO);
                key_points.push(key.to_edwards());
                key_points.len() - 1
            }),
        };
        last = Some((key.as_bytes(), slot));
        key_coefficients[slot] += z * h;
    }
    let scalars = std::iter::once(-b_coefficient)
        .chain(r_coefficients)
        .chain(key_coefficients);
    let points = std::iter::once(Some(ED25519_BASEPOINT_POINT))
        .chain(rs.iter().map(CompressedEdwardsY::decompress))
        .chain(key_points.into_iter().map(Some));
    EdwardsPoint::optional_multiscalar_mul(scalars, points).is_some_and(|sum| sum.is_identity())
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// `count` messages signed round-robin by `signers`.
    fn batch(count: usize, signers: &[SigningKey]) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        let mut messages = Vec::new();
        let mut signatures = Vec::new();
        let mut keys = Vec::new();
        for i in 0..count {
            let signer = &signers[i % signers.len()];
            let message = format!("event {i}: {}", "x".repeat(i % 50)).into_bytes();
            signatures.push(signer.sign(&message));
            keys.push(signer.verifying_key());
            messages.push(message);
        }
        (messages, signatures, keys)
    }

    fn both(messages: &[Vec<u8>], signatures: &[Signature], keys: &[VerifyingKey]) -> (bool, bool) {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        (
            verify_batch(&refs, signatures, keys),
            ed25519_dalek::verify_batch(&refs, signatures, keys).is_ok(),
        )
    }

    #[test]
    fn valid_batches_pass_with_one_or_many_keys() {
        for signers in [vec![key(1)], vec![key(1), key(2)], (1..=7).map(key).collect()] {
            for count in [1, 2, 3, 64, 100] {
                let (m, s, k) = batch(count, &signers);
                assert_eq!(
                    both(&m, &s, &k),
                    (true, true),
                    "{count} signatures by {} keys",
                    signers.len()
                );
            }
        }
        assert!(verify_batch(&[], &[], &[]));
    }

    #[test]
    fn any_altered_message_signature_or_key_fails_the_batch() {
        let signers = [key(3), key(4)];
        let (m, s, k) = batch(20, &signers);
        for i in [0, 7, 19] {
            let mut m2 = m.clone();
            m2[i][0] ^= 1;
            assert_eq!(both(&m2, &s, &k), (false, false), "message {i}");
            for byte in [0, 31, 32, 40] {
                let mut s2 = s.clone();
                let mut bytes = s2[i].to_bytes();
                bytes[byte] ^= 0x10;
                s2[i] = Signature::from_bytes(&bytes);
                assert_eq!(both(&m, &s2, &k), (false, false), "signature {i} byte {byte}");
            }
            let mut k2 = k.clone();
            k2[i] = if k2[i] == signers[0].verifying_key() {
                signers[1].verifying_key()
            } else {
                signers[0].verifying_key()
            };
            assert_eq!(both(&m, &s, &k2), (false, false), "key {i}");
        }
    }

    #[test]
    fn the_verdict_is_the_same_every_time() {
        let (m, mut s, k) = batch(30, &[key(9), key(10)]);
        s.swap(4, 8);
        let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
        for _ in 0..5 {
            assert!(!verify_batch(&refs, &s, &k));
        }
        s.swap(4, 8);
        for _ in 0..5 {
            assert!(verify_batch(&refs, &s, &k));
        }
    }

    #[test]
    fn two_wrong_signatures_cannot_cancel_out() {
        // Swapping two signatures of the same key keeps the multiset of
        // (R, s) and of A; only the random weights tell them apart.
        let (m, mut s, k) = batch(10, &[key(5)]);
        s.swap(2, 6);
        assert_eq!(both(&m, &s, &k), (false, false));
    }

    #[test]
    fn a_non_canonical_s_is_refused() {
        let (m, mut s, k) = batch(4, &[key(6)]);
        let mut bytes = s[1].to_bytes();
        // s + ℓ: the same value mod ℓ, the malleated encoding.
        let ell = Scalar::ZERO - Scalar::ONE; // ℓ - 1
        let mut carry = 1u16;
        let mut sum = [0u8; 32];
        let (s_bytes, ell_bytes) = (&bytes[32..], ell.to_bytes());
        for j in 0..32 {
            let v = u16::from(s_bytes[j]) + u16::from(ell_bytes[j]) + carry;
            sum[j] = v as u8;
            carry = v >> 8;
        }
        bytes[32..].copy_from_slice(&sum);
        s[1] = Signature::from_bytes(&bytes);
        assert_eq!(both(&m, &s, &k), (false, false));
    }

    #[test]
    fn an_r_off_the_curve_is_refused() {
        let (m, mut s, k) = batch(4, &[key(7)]);
        let mut bytes = s[2].to_bytes();
        // y = 2 is not the y of any point on edwards25519.
        bytes[..32].copy_from_slice(&{
            let mut y = [0u8; 32];
            y[0] = 2;
            y
        });
        assert!(
            CompressedEdwardsY(bytes[..32].try_into().expect("32"))
                .decompress()
                .is_none()
        );
        s[2] = Signature::from_bytes(&bytes);
        assert_eq!(both(&m, &s, &k), (false, false));
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let (m, s, k) = batch(3, &[key(8)]);
        let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
        assert!(!verify_batch(&refs[..2], &s, &k));
        assert!(!verify_batch(&refs, &s[..2], &k));
        assert!(!verify_batch(&refs, &s, &k[..2]));
    }

    #[test]
    fn rfc8032_test_vector_2_verifies() {
        // RFC 8032 §7.1, TEST 2: one-byte message 0x72.
        let public: [u8; 32] = hex::decode("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
            .expect("hex")[..]
            .try_into()
            .expect("32");
        let signature: [u8; 64] = hex::decode(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        )
        .expect("hex")[..]
            .try_into()
            .expect("64");
        let key = VerifyingKey::from_bytes(&public).expect("key");
        let signature = Signature::from_bytes(&signature);
        assert!(verify_batch(&[&[0x72]], &[signature], &[key]));
        assert!(!verify_batch(&[&[0x73]], &[signature], &[key]));
    }
}
