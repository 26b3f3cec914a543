//! Streaming hash-chain verification (`docs/FORMAT.md` §3, chain rule):
//! feed a [`ChainVerifier`] canonical records in seq order, each with its
//! payload or without it, and it checks every link as it goes, holding only
//! the last record's seq, hash and `recorded_at`.
//!
//! Per record it checks, in this order:
//! 1. the canonical bytes decode strictly ([`RecordRef::parse`]: the same
//!    parser as [`RecordHeader::decode`](crate::record::RecordHeader::decode),
//!    without allocating);
//! 2. its seq is the expected one: 0 for a chain from genesis, else one more
//!    than the previous record's (no gap, no repeat, no reorder);
//! 3. its `prev_hash` is the record hash (BLAKE3 of the canonical bytes) of
//!    the previous record, or all zero for seq 0;
//! 4. its `recorded_at` is not before the previous record's;
//! 5. when the payload is given, its length and BLAKE3 match the header.
//!
//! A chain proves order and integrity relative to its first record only: a
//! chain from genesis is anchored by construction, a chain resumed with
//! [`ChainVerifier::resume`] is as trustworthy as the head it resumes from,
//! and the head hash it ends on means something once compared with a
//! trusted one (a signed checkpoint's `chain-head` line, §5). That
//! comparison, Merkle proofs and signatures are not this module's business.

use crate::hash::{Hash, blake3};
use crate::record::{DecodeError, GENESIS_PREV_HASH, RecordRef};

/// Where a verified chain ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Records verified by this verifier (not counting a resumed head).
    pub count: u64,
    /// Seq of the head: the last record verified, or the resumed head when
    /// none was; `None` for a chain from genesis with no record yet.
    pub seq: Option<u64>,
    /// Record hash of the head ([`GENESIS_PREV_HASH`] before seq 0): what
    /// the next record's `prev_hash` must be.
    pub hash: Hash,
}

/// Why a record does not extend the chain. Every variant names the seq the
/// record was expected to have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The canonical bytes do not decode.
    #[error("seq {seq}: canonical bytes do not decode: {source}")]
    Decode {
        /// The expected seq.
        seq: u64,
        /// Why.
        source: DecodeError,
    },
    /// The record carries another seq than the next one: a gap, a repeat or
    /// a reordering.
    #[error("seq {seq}: the record says seq {found}")]
    SeqMismatch {
        /// The expected seq.
        seq: u64,
        /// The seq in the canonical bytes.
        found: u64,
    },
    /// `prev_hash` is not the previous record's hash (or not all zero at
    /// seq 0): a changed, inserted or removed record before it.
    #[error(
        "seq {seq}: broken chain: prev_hash is {}, the previous record hash is {}",
        hex::encode(found),
        hex::encode(expected)
    )]
    ChainBroken {
        /// The record's seq.
        seq: u64,
        /// The previous record's hash (all zero at seq 0).
        expected: Hash,
        /// The record's `prev_hash`.
        found: Hash,
    },
    /// `recorded_at` is before the previous record's.
    #[error("seq {seq}: recorded_at {recorded_at_ns} is before the previous record's {previous_ns}")]
    RecordedAtBackwards {
        /// The record's seq.
        seq: u64,
        /// The previous record's `recorded_at` (Unix ns).
        previous_ns: i64,
        /// This record's `recorded_at` (Unix ns).
        recorded_at_ns: i64,
    },
    /// The payload given is not as long as the header says.
    #[error("seq {seq}: payload is {actual} bytes, the header says {stated}")]
    PayloadLength {
        /// The record's seq.
        seq: u64,
        /// `payload_len` in the header.
        stated: u64,
        /// Length of the payload given.
        actual: u64,
    },
    /// The payload given does not hash to the header's `payload_hash`.
    #[error("seq {seq}: payload does not match its BLAKE3 hash")]
    PayloadHash {
        /// The record's seq.
        seq: u64,
    },
    /// A record was given after seq `u64::MAX`, which nothing can follow.
    #[error("no record can follow seq {}", u64::MAX)]
    SeqExhausted,
}

impl ChainError {
    /// The seq the failing record was expected to have (`None` only for
    /// [`ChainError::SeqExhausted`]).
    pub fn seq(&self) -> Option<u64> {
        match self {
            ChainError::Decode { seq, .. }
            | ChainError::SeqMismatch { seq, .. }
            | ChainError::ChainBroken { seq, .. }
            | ChainError::RecordedAtBackwards { seq, .. }
            | ChainError::PayloadLength { seq, .. }
            | ChainError::PayloadHash { seq } => Some(*seq),
            ChainError::SeqExhausted => None,
        }
    }
}

/// Checks records one by one as they are fed in seq order (see the module
/// docs for the checks). A record that fails is not taken: the verifier
/// stays at the head before it.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    /// The seq the next record must have; `None` after seq `u64::MAX`.
    next_seq: Option<u64>,
    /// The head: `seq` and hash of the last record (or the anchor).
    head: ChainHead,
    /// `recorded_at` of the last record verified, if any.
    last_recorded_at_ns: Option<i64>,
}

impl Default for ChainVerifier {
    fn default() -> ChainVerifier {
        ChainVerifier::new()
    }
}

impl ChainVerifier {
    /// A verifier for a chain from genesis: the first record must be seq 0
    /// with an all-zero `prev_hash`.
    pub fn new() -> ChainVerifier {
        ChainVerifier {
            next_seq: Some(0),
            head: ChainHead {
                count: 0,
                seq: None,
                hash: GENESIS_PREV_HASH,
            },
            last_recorded_at_ns: None,
        }
    }

    /// A verifier that continues a chain after a head the caller trusts
    /// (e.g. from a signed checkpoint's `chain-head`): the first record must
    /// be `head_seq + 1` with `prev_hash == head_hash`. Its `recorded_at` is
    /// not compared with the head's, which is not known here.
    pub fn resume(head_seq: u64, head_hash: Hash) -> ChainVerifier {
        ChainVerifier {
            next_seq: head_seq.checked_add(1),
            head: ChainHead {
                count: 0,
                seq: Some(head_seq),
                hash: head_hash,
            },
            last_recorded_at_ns: None,
        }
    }

    /// Checks the next record and, if it holds, makes it the head. `payload`
    /// is checked against the header when given (withheld payloads are
    /// fine: the canonical bytes commit to them). Returns the record hash.
    pub fn push(&mut self, canonical: &[u8], payload: Option<&[u8]>) -> Result<Hash, ChainError> {
        let seq = self.next_seq.ok_or(ChainError::SeqExhausted)?;
        let record = RecordRef::parse(canonical).map_err(|source| ChainError::Decode { seq, source })?;
        if record.seq != seq {
            return Err(ChainError::SeqMismatch { seq, found: record.seq });
        }
        if record.prev_hash != self.head.hash {
            return Err(ChainError::ChainBroken {
                seq,
                expected: self.head.hash,
                found: record.prev_hash,
            });
        }
        if let Some(previous_ns) = self.last_recorded_at_ns
            && record.recorded_at_ns < previous_ns
        {
            return Err(ChainError::RecordedAtBackwards {
                seq,
                previous_ns,
                recorded_at_ns: record.recorded_at_ns,
            });
        }
        if let Some(payload) = payload {
            let actual = payload.len() as u64;
            if actual != record.payload_len {
                return Err(ChainError::PayloadLength {
                    seq,
                    stated: record.payload_len,
                    actual,
                });
            }
            if blake3(payload) != record.payload_hash {
                return Err(ChainError::PayloadHash { seq });
            }
        }
        let hash = blake3(canonical);
        self.head = ChainHead {
            count: self.head.count + 1,
            seq: Some(seq),
            hash,
        };
        self.next_seq = seq.checked_add(1);
        self.last_recorded_at_ns = Some(record.recorded_at_ns);
        Ok(hash)
    }

    /// The current head: records verified so far and the last one's hash.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// The seq the next record must have (`None` after seq `u64::MAX`).
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }
}

/// Verifies a whole chain from genesis: `records` yields canonical bytes
/// and optional payloads in seq order. Returns the head.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Result<ChainHead, ChainError> {
    let mut verifier = ChainVerifier::new();
    for (canonical, payload) in records {
        verifier.push(canonical, payload)?;
    }
    Ok(verifier.head())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::record::{EventHeader, Metadata, ProducerSignature, RecordHeader, payload_hash, record_hash};

    /// A valid chain of `n` records from genesis: (canonical, payload).
    fn chain(n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut prev_hash = GENESIS_PREV_HASH;
        for seq in 0..n {
            let payload = format!("{{\"n\":{seq}}}").into_bytes();
            let header = RecordHeader {
                seq,
                stream_version: seq / 2,
                // Two records per group commit share a recorded_at.
                recorded_at_ns: 1_795_000_000_000_000_000 + (seq / 2) as i64,
                prev_hash,
                event: EventHeader {
                    id: [seq as u8; 16],
                    stream: format!("task/T{}", seq % 2),
                    event_type: "task.note_added".into(),
                    occurred_at_ns: 1_794_999_999_000_000_000,
                    content_type: "application/json".into(),
                    payload_len: payload.len() as u64,
                    payload_hash: payload_hash(&payload),
                    metadata: Metadata {
                        correlation_id: "corr".into(),
                        extra: BTreeMap::from([("workplan".to_string(), "WP-1".to_string())]),
                        ..Metadata::default()
                    },
                    signature: (seq % 3 == 0).then(|| ProducerSignature {
                        key_id: "probe-1".into(),
                        signature: [seq as u8; 64],
                    }),
                },
            };
            let canonical = header.encode();
            prev_hash = record_hash(&canonical);
            out.push((canonical, payload));
        }
        out
    }

    /// Where the event type's text starts in canonical bytes.
    fn type_offset(canonical: &[u8]) -> usize {
        let needle = b"task.note_added";
        canonical
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("every test record has this type")
    }

    fn verify(records: &[(Vec<u8>, Vec<u8>)], with_payloads: bool) -> Result<ChainHead, ChainError> {
        verify_chain(
            records
                .iter()
                .map(|(c, p)| (c.as_slice(), with_payloads.then_some(p.as_slice()))),
        )
    }

    #[test]
    fn a_valid_chain_verifies_to_its_head() -> Result<(), ChainError> {
        let records = chain(10);
        let head = verify(&records, true)?;
        let last_hash = record_hash(&records[9].0);
        assert_eq!(
            head,
            ChainHead {
                count: 10,
                seq: Some(9),
                hash: last_hash
            }
        );
        assert_eq!(verify(&records, false)?, head, "payloads may be withheld");
        assert_eq!(
            verify(&[], true)?,
            ChainHead {
                count: 0,
                seq: None,
                hash: GENESIS_PREV_HASH
            }
        );
        Ok(())
    }

    #[test]
    fn push_returns_the_record_hash_and_resume_continues() -> Result<(), ChainError> {
        let records = chain(6);
        let mut verifier = ChainVerifier::new();
        for (canonical, payload) in &records[..3] {
            assert_eq!(verifier.push(canonical, Some(payload))?, record_hash(canonical));
        }
        let head = verifier.head();
        assert_eq!((head.count, head.seq, verifier.next_seq()), (3, Some(2), Some(3)));

        let mut resumed = ChainVerifier::resume(2, head.hash);
        for (canonical, payload) in &records[3..] {
            resumed.push(canonical, Some(payload))?;
        }
        assert_eq!(resumed.head().count, 3);
        assert_eq!(resumed.head().hash, record_hash(&records[5].0));

        // Resuming from a head the records do not extend.
        let mut wrong = ChainVerifier::resume(2, [7; 32]);
        assert_eq!(
            wrong.push(&records[3].0, None),
            Err(ChainError::ChainBroken {
                seq: 3,
                expected: [7; 32],
                found: head.hash
            })
        );
        Ok(())
    }

    #[test]
    fn a_changed_byte_is_caught_at_its_successor_or_in_decoding() {
        let records = chain(5);
        // A letter of seq 2's event type: still decodes, so the next
        // record's link breaks.
        let mut tampered = records.clone();
        let at = type_offset(&tampered[2].0);
        tampered[2].0[at] ^= 0x01;
        let err = verify(&tampered, false).unwrap_err();
        assert_eq!(
            err,
            ChainError::ChainBroken {
                seq: 3,
                expected: record_hash(&tampered[2].0),
                found: record_hash(&records[2].0),
            }
        );
        assert_eq!(err.seq(), Some(3));

        // The last record has no successor: only a trusted head catches it.
        let mut last = records.clone();
        let at = type_offset(&last[4].0);
        last[4].0[at] ^= 0x01;
        let head = verify(&last, false).unwrap();
        assert_ne!(head.hash, record_hash(&records[4].0));

        // The domain tag: does not decode.
        let mut domain = records.clone();
        domain[1].0[0] ^= 0x01;
        assert_eq!(
            verify(&domain, false),
            Err(ChainError::Decode {
                seq: 1,
                source: DecodeError::BadDomain
            })
        );

        // A trailing byte.
        let mut trailing = records;
        trailing[0].0.push(0);
        assert_eq!(
            verify(&trailing, false),
            Err(ChainError::Decode {
                seq: 0,
                source: DecodeError::TrailingBytes(1)
            })
        );
    }

    #[test]
    fn gaps_repeats_and_reorders_are_seq_mismatches() {
        let records = chain(5);
        let mut gap = records.clone();
        gap.remove(2);
        assert_eq!(verify(&gap, true), Err(ChainError::SeqMismatch { seq: 2, found: 3 }));

        let mut repeat = records.clone();
        repeat.insert(2, records[1].clone());
        assert_eq!(verify(&repeat, true), Err(ChainError::SeqMismatch { seq: 2, found: 1 }));

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped, true),
            Err(ChainError::SeqMismatch { seq: 1, found: 2 })
        );

        // Not starting at genesis.
        assert_eq!(
            verify(&records[1..], true),
            Err(ChainError::SeqMismatch { seq: 0, found: 1 })
        );
    }

    #[test]
    fn a_broken_link_is_named_even_with_consistent_seqs() {
        // A fork: seq 2 re-made with another prev_hash, everything after it
        // re-linked, so only the link at seq 2 is wrong.
        let records = chain(4);
        let mut forked = records.clone();
        let mut header = RecordHeader::decode(&forked[2].0).unwrap();
        header.prev_hash = [1; 32];
        forked[2].0 = header.encode();
        let mut header = RecordHeader::decode(&forked[3].0).unwrap();
        header.prev_hash = record_hash(&forked[2].0);
        forked[3].0 = header.encode();
        assert_eq!(
            verify(&forked, true),
            Err(ChainError::ChainBroken {
                seq: 2,
                expected: record_hash(&records[1].0),
                found: [1; 32]
            })
        );

        // Genesis must link to all zero.
        let mut genesis = records;
        let mut header = RecordHeader::decode(&genesis[0].0).unwrap();
        header.prev_hash = [2; 32];
        genesis[0].0 = header.encode();
        assert_eq!(
            verify(&genesis, true),
            Err(ChainError::ChainBroken {
                seq: 0,
                expected: GENESIS_PREV_HASH,
                found: [2; 32]
            })
        );
    }

    #[test]
    fn recorded_at_must_not_go_backwards() {
        let records = chain(3);
        let previous_ns = RecordHeader::decode(&records[0].0).unwrap().recorded_at_ns;
        let mut second = RecordHeader::decode(&records[1].0).unwrap();
        second.recorded_at_ns = previous_ns - 1;
        let mutated = vec![records[0].clone(), (second.encode(), records[1].1.clone())];
        assert_eq!(
            verify(&mutated, true),
            Err(ChainError::RecordedAtBackwards {
                seq: 1,
                previous_ns,
                recorded_at_ns: previous_ns - 1
            })
        );
    }

    #[test]
    fn a_wrong_payload_is_caught_when_given() {
        let records = chain(3);
        let mut longer = records.clone();
        longer[1].1.push(b' ');
        let stated = records[1].1.len() as u64;
        assert_eq!(
            verify(&longer, true),
            Err(ChainError::PayloadLength {
                seq: 1,
                stated,
                actual: stated + 1
            })
        );

        let mut changed = records;
        changed[2].1[0] = b'[';
        assert_eq!(verify(&changed, true), Err(ChainError::PayloadHash { seq: 2 }));
        assert!(verify(&changed, false).is_ok(), "withheld payloads are not checked");
    }

    #[test]
    fn a_failed_record_is_not_taken() -> Result<(), ChainError> {
        let records = chain(2);
        let mut verifier = ChainVerifier::new();
        verifier.push(&records[0].0, None)?;
        let before = verifier.head();
        assert!(verifier.push(&records[1].0, Some(b"wrong")).is_err());
        assert_eq!(verifier.head(), before);
        verifier.push(&records[1].0, Some(&records[1].1))?;
        assert_eq!(verifier.head().count, 2);
        Ok(())
    }

    #[test]
    fn nothing_follows_the_last_seq() {
        let mut verifier = ChainVerifier::resume(u64::MAX, [0; 32]);
        assert_eq!(verifier.next_seq(), None);
        assert_eq!(verifier.push(&chain(1)[0].0, None), Err(ChainError::SeqExhausted));
    }
}
