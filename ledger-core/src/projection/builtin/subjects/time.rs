//! The time index: for each minute in which records were recorded, the seq
//! of the first of them. Because `recorded_at` never decreases along the
//! log, the records of any run of minutes form one seq range, found by
//! binary search.
//!
//! It holds one mark per minute that saw records, however many records a
//! minute holds (at most 525,600 marks a year). The price is precision:
//! ranges are rounded out to whole minutes.
//!
//! Marks are stored like seq lists: sealed chunks of [`TIME_CHUNK_LEN`]
//! marks written once, and an open tail kept in the projection's meta row.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::lists::partition_point;
use crate::projection::table::Table;

/// Width of a time bucket.
pub const TIME_BUCKET_NS: i64 = 60 * 1_000_000_000;
/// Marks per sealed chunk (about an hour of busy minutes).
pub(super) const TIME_CHUNK_LEN: usize = 64;

/// `(minute since the Unix epoch, first seq recorded in it)`.
pub(super) type Mark = (i64, u64);

/// The open end of the time index; the rest is in sealed chunk rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TimeIndex {
    /// Chunks sealed before the tail, numbered from 0.
    sealed: u32,
    /// Marks after the sealed chunks (fewer than `TIME_CHUNK_LEN`).
    tail: Vec<Mark>,
    /// Bucket of the last record, kept so a record needs no chunk lookup.
    last_bucket: Option<i64>,
}

impl TimeIndex {
    /// Notes that `seq` was recorded at `recorded_at_ns`. A time earlier
    /// than the last (which the ledger never writes) counts as the last
    /// minute, so the index stays sorted.
    pub(super) fn note(&mut self, recorded_at_ns: i64, seq: u64, chunks: &mut Table<Vec<Mark>>) {
        let bucket = recorded_at_ns.div_euclid(TIME_BUCKET_NS);
        if self.last_bucket.is_some_and(|last| bucket <= last) {
            return;
        }
        self.last_bucket = Some(bucket);
        self.tail.push((bucket, seq));
        if self.tail.len() >= TIME_CHUNK_LEN {
            let full = std::mem::take(&mut self.tail);
            chunks.insert(chunk_key(self.sealed), full);
            self.sealed += 1;
        }
    }

    /// The seqs recorded in the minutes that overlap `from_ns..to_ns`, given
    /// that `next_seq` is the seq after the last record folded.
    pub(super) fn seq_range(&self, from_ns: i64, to_ns: i64, next_seq: u64, chunks: &Table<Vec<Mark>>) -> Range<u64> {
        if from_ns >= to_ns {
            return next_seq..next_seq;
        }
        let first_bucket = from_ns.div_euclid(TIME_BUCKET_NS);
        let last_bucket = (to_ns - 1).div_euclid(TIME_BUCKET_NS);
        let start = self.first_seq_from(first_bucket, next_seq, chunks);
        let end = match last_bucket.checked_add(1) {
            Some(after) => self.first_seq_from(after, next_seq, chunks),
            None => next_seq,
        };
        start..end.max(start)
    }

    /// The seq of the first record in `bucket` or later, else `next_seq`.
    fn first_seq_from(&self, bucket: i64, next_seq: u64, chunks: &Table<Vec<Mark>>) -> u64 {
        let len = self.len();
        let at = partition_point(len, |i| self.mark(i, chunks).is_some_and(|(b, _)| b < bucket));
        match self.mark(at, chunks) {
            Some((_, seq)) if at < len => seq,
            _ => next_seq,
        }
    }

    fn len(&self) -> usize {
        self.sealed as usize * TIME_CHUNK_LEN + self.tail.len()
    }

    fn mark(&self, i: usize, chunks: &Table<Vec<Mark>>) -> Option<Mark> {
        let (number, offset) = (i / TIME_CHUNK_LEN, i % TIME_CHUNK_LEN);
        if number < self.sealed as usize {
            chunks.get(&chunk_key(number as u32))?.get(offset).copied()
        } else {
            self.tail.get(i - self.sealed as usize * TIME_CHUNK_LEN).copied()
        }
    }
}

fn chunk_key(number: u32) -> String {
    format!("{number:08x}")
}
