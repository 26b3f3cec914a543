//! Per-subject seq lists, stored so that a flush rewrites only what grew.
//!
//! Each subject has a **head** row (`<kind>/<id>`) holding its last seq, the
//! number of sealed chunks and the open tail chunk; when the tail reaches
//! [`CHUNK_LEN`] seqs it is written once as a sealed **chunk** row
//! (`<kind>/<id>/<chunk number, 8 hex digits>`) and never touched again. A
//! flush therefore writes, per subject that grew, one head of at most
//! [`CHUNK_LEN`] numbers, plus the chunks sealed since the last flush.
//!
//! Seqs are delta-encoded within a chunk: the first number is the seq
//! itself, each next one the gap to the previous seq. Chunks stand alone, so
//! a range query decodes only the chunks it overlaps.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::projection::Fault;
use crate::projection::table::{Cached, Changes, Table};

/// Seqs per sealed chunk.
pub(super) const CHUNK_LEN: usize = 256;

/// What a subject id names; its prefix starts the row keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Stream,
    Correlation,
    Incident,
    Workstream,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Stream => "stream/",
            Kind::Correlation => "correlation/",
            Kind::Incident => "incident/",
            Kind::Workstream => "workstream/",
        }
    }
}

/// The growing end of one subject's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Head {
    /// The last seq added: appends compute their delta from it, and a seq
    /// not above it is already in (one record naming a subject twice).
    last: u64,
    /// Chunks sealed before the tail, numbered from 0.
    sealed: u32,
    /// Delta-encoded seqs after the sealed chunks (fewer than `CHUNK_LEN`).
    tail: Vec<u64>,
}

/// Every subject's seqs.
#[derive(Clone, Debug)]
pub(super) struct SeqLists {
    heads: Table<Head>,
    chunks: Table<Vec<u64>>,
    /// Reused for head keys: adding a seq allocates nothing in the common
    /// case.
    key: String,
}

impl SeqLists {
    pub(super) fn new() -> SeqLists {
        SeqLists {
            heads: Table::new("head"),
            chunks: Table::new("chunk"),
            key: String::new(),
        }
    }

    /// Adds `seq` to the subject; seqs must come in increasing order, and a
    /// seq not above the subject's last is ignored.
    pub(super) fn push(&mut self, kind: Kind, id: &str, seq: u64) {
        self.set_key(kind, id);
        let Some(head) = self.heads.get_mut(&self.key) else {
            let head = Head {
                last: seq,
                sealed: 0,
                tail: vec![seq],
            };
            self.heads.insert(self.key.clone(), head);
            return;
        };
        if seq <= head.last {
            return;
        }
        let delta = if head.tail.is_empty() { seq } else { seq - head.last };
        head.tail.push(delta);
        head.last = seq;
        if head.tail.len() >= CHUNK_LEN {
            let full = std::mem::take(&mut head.tail);
            let number = head.sealed;
            head.sealed += 1;
            self.chunks.insert(chunk_key(kind, id, number), full);
        }
    }

    /// How many seqs the subject has.
    pub(super) fn len(&self, kind: Kind, id: &str) -> u64 {
        match self.heads.get(&head_key(kind, id)) {
            Some(head) => u64::from(head.sealed) * CHUNK_LEN as u64 + head.tail.len() as u64,
            None => 0,
        }
    }

    /// The subject's seqs within `range`, ascending.
    pub(super) fn seqs_in(&self, kind: Kind, id: &str, range: Range<u64>) -> Vec<u64> {
        let mut out = Vec::new();
        let Some(head) = self.heads.get(&head_key(kind, id)) else {
            return out;
        };
        if range.is_empty() {
            return out;
        }
        let n_chunks = head.sealed as usize + 1;
        // The last chunk starting at or before range.start holds the first
        // seq that can be in range.
        let first_of = |number: usize| self.chunk(&head, kind, id, number).first().copied().unwrap_or(u64::MAX);
        let start = partition_point(n_chunks, |number| first_of(number) <= range.start).saturating_sub(1);
        for number in start..n_chunks {
            let deltas = self.chunk(&head, kind, id, number);
            if deltas.first().is_some_and(|&first| first >= range.end) {
                break;
            }
            let mut seq = 0u64;
            for (i, &delta) in deltas.iter().enumerate() {
                seq = if i == 0 { delta } else { seq.saturating_add(delta) };
                if seq >= range.end {
                    return out;
                }
                if seq >= range.start {
                    out.push(seq);
                }
            }
        }
        out
    }

    pub(super) fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        self.heads.take_changes(changes)?;
        self.chunks.take_changes(changes)
    }

    /// `Ok(true)` when the entry was one of these rows.
    pub(super) fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Fault> {
        Ok(self.heads.restore(key, value)? || self.chunks.restore(key, value)?)
    }

    /// Chunk `number` of a subject: a sealed one, or the tail after them.
    fn chunk<'a>(&'a self, head: &'a Head, kind: Kind, id: &str, number: usize) -> Cow<'a, [u64]> {
        if number < head.sealed as usize {
            // A missing sealed chunk can only come from a damaged store; it
            // reads as empty rather than panicking.
            match self.chunks.get(&chunk_key(kind, id, number as u32)) {
                Some(Cow::Borrowed(chunk)) => Cow::Borrowed(chunk.as_slice()),
                Some(Cow::Owned(chunk)) => Cow::Owned(chunk),
                None => Cow::Borrowed(&[]),
            }
        } else {
            Cow::Borrowed(&head.tail)
        }
    }

    /// Both tables, for the engine to bound.
    pub(super) fn cached(&mut self) -> Vec<&mut dyn Cached> {
        vec![&mut self.heads, &mut self.chunks]
    }

    fn set_key(&mut self, kind: Kind, id: &str) {
        self.key.clear();
        self.key.push_str(kind.prefix());
        self.key.push_str(id);
    }
}

fn head_key(kind: Kind, id: &str) -> String {
    let mut key = String::with_capacity(kind.prefix().len() + id.len());
    key.push_str(kind.prefix());
    key.push_str(id);
    key
}

/// Fixed width at the end, so the key stays unambiguous even when the id
/// itself contains `/`.
fn chunk_key(kind: Kind, id: &str, number: u32) -> String {
    format!("{}{id}/{number:08x}", kind.prefix())
}

/// The first index in `0..n` for which `pred` is false, `pred` being true
/// on a prefix of `0..n` and false after.
pub(super) fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, n);
    while low < high {
        let mid = low + (high - low) / 2;
        if pred(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}
