//! Projections: deterministic folds of the log into the views people act on
//! (task state, incidents, metrics rollups, the bundle index).
//!
//! A [`Projection`] owns its state and folds records into it one at a time.
//! Its [`Table`]s, once the engine attaches them to the store, keep a
//! bounded set of rows in memory and read the others back from the store
//! (see [`table`]); a projection's state is therefore not bounded by RAM. The [`engine`] feeds it every committed record in seq order,
//! persists the entries it changed to sled **in one batch with the seq they
//! reflect** (so a crash never leaves state and position apart), serves it
//! while it follows the log live, replays it from zero into a fresh instance
//! swapped in only when complete, and folds scratch copies for time travel.
//!
//! The log stays the only memory: projection state is derived, can be
//! deleted, and is rebuilt on open when its version changes.
//!
//! Rules for a fold, so replays agree byte for byte:
//! - it depends only on the records (never the wall clock, randomness or
//!   iteration order of a hash map);
//! - a record it cannot use (unknown type it claims, malformed payload,
//!   impossible transition) returns a [`Fault`], which the engine lists with
//!   the record's seq; the fold goes on. A faulting record must leave the
//!   state as it was, so validate before mutating. Impossible transitions a
//!   user should see (e.g. a task reopened after done) are better kept in
//!   the state as anomalies; faults are for records the fold cannot apply.

pub mod builtin;
pub mod engine;
mod filter;
mod pages;
mod pipeline;
mod scratch;
pub mod table;

pub use engine::{
    DEFAULT_RESIDENT_BYTES, ProjectionError, ProjectionHandle, ProjectionStatus, Projections, ProjectionsConfig,
    ReplayOutcome, ReplayProgress, StateDigest,
};

pub use table::{Cached, Changes, RowStore, Table};

use crate::event::Event;
use crate::record::Record;

/// A deterministic fold of records into state.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the key of its stored state, status and digest.
    fn name(&self) -> &'static str;

    /// Bump it when the fold or the stored layout changes: state stored by
    /// another version is discarded and rebuilt from the log.
    fn version(&self) -> u32;

    /// A fresh, empty instance with the same configuration: what replays
    /// and time travel fold into.
    fn fresh(&self) -> Self
    where
        Self: Sized;

    /// Folds one record. Records arrive in seq order, each exactly once.
    /// Events in `effects` are appended to the ledger by the live engine
    /// (never by replays or time travel), so their ids must be derived from
    /// the records that caused them: re-emitting one after a restart is then
    /// an idempotent no-op.
    fn apply(&mut self, record: &Record, effects: &mut Effects) -> Result<(), Fault>;

    /// Moves every entry changed since the last call into `changes`.
    fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault>;

    /// Restores one stored entry (on open, in key order), as written by
    /// `take_changes`. The tables listed by [`Projection::cached`] are
    /// attached to the store before, and keep none of their rows: they
    /// read them back when asked.
    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault>;

    /// The tables holding the projection's state, so that the engine can
    /// back them with its store and bound what stays in memory (see
    /// [`Table`]). A projection listing none keeps its whole state in
    /// memory.
    fn cached(&mut self) -> Vec<&mut dyn Cached> {
        Vec::new()
    }
}

/// Why a record could not be folded (or an entry restored).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fault(pub String);

impl Fault {
    /// A fault with a reason.
    pub fn new(reason: impl Into<String>) -> Fault {
        Fault(reason.into())
    }
}

/// A record hash in lowercase hex, as `hex::encode` writes it. Folds keep
/// one with every timeline entry they store; `hex::encode` builds it a char
/// at a time through an iterator collected into a growing `String`, which
/// showed in a catch-up's profile (tasks, incidents).
pub(crate) fn hex_hash(hash: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for &byte in hash {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Events a fold asks the live engine to append.
#[derive(Debug, Default)]
pub struct Effects {
    pub(crate) events: Vec<Event>,
}

impl Effects {
    /// Asks for `event` to be appended (once: its id makes it idempotent).
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The events emitted so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Takes the emitted events out.
    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_hash_is_hex_encode() {
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(37).wrapping_add(0xa5);
        }
        for hash in [hash, [0; 32], [0xff; 32]] {
            assert_eq!(super::hex_hash(&hash), hex::encode(hash));
        }
    }
}

/// Records built the way the writer builds them, for fold tests.
#[cfg(test)]
#[allow(dead_code)] // Not every helper is used by every fold test.
pub(crate) mod testing {
    use chrono::{DateTime, Utc};
    use ledger_verify::record::RecordHeader;

    use crate::event::{Event, timestamp_ns};
    use crate::record::Record;

    /// The record the ledger would write for a JSON event at `seq`,
    /// occurring and recorded at `at`.
    pub(crate) fn record(seq: u64, stream: &str, event_type: &str, payload: &str, at: DateTime<Utc>) -> Record {
        let mut event = Event::json(stream, event_type, payload.as_bytes().to_vec());
        event.occurred_at = at;
        record_of(seq, &event)
    }

    /// The record of `event` at `seq` (stream version = seq, no chain).
    pub(crate) fn record_of(seq: u64, event: &Event) -> Record {
        let header = RecordHeader {
            seq,
            stream_version: seq,
            recorded_at_ns: timestamp_ns(event.occurred_at),
            prev_hash: [0; 32],
            event: event.header(),
        };
        let canonical = header.encode();
        Record::from_parts(header, canonical, event.payload.clone())
    }
}
