//! What the ledger stores and returns: a [`Record`] is an event plus the
//! ledger-assigned position, time and hashes.
//!
//! A record carries its canonical bytes so that anyone holding it can
//! re-hash it; the typed fields are decoded from those bytes, never the other
//! way round.

use chrono::{DateTime, Utc};
use ledger_verify::Hash;
use ledger_verify::record::{RecordHeader, record_hash};
use uuid::Uuid;

use crate::event::{Event, from_timestamp_ns};

/// A stored event with its position in the log and its hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The decoded canonical fields.
    pub header: RecordHeader,
    /// The canonical bytes exactly as hashed.
    pub canonical: Vec<u8>,
    /// The payload bytes (their BLAKE3 is `header.event.payload_hash`).
    pub payload: Vec<u8>,
    /// BLAKE3 of `canonical`.
    pub record_hash: Hash,
}

impl Record {
    /// Builds a record from its canonical bytes and payload (as read from a
    /// segment); the caller has checked that they match.
    pub(crate) fn from_parts(header: RecordHeader, canonical: Vec<u8>, payload: Vec<u8>) -> Record {
        let record_hash = record_hash(&canonical);
        Record {
            header,
            canonical,
            payload,
            record_hash,
        }
    }

    /// Sets the record hash of a record decoded in place (see
    /// `reader::scan_chunks_reusing`), which takes it from the next
    /// record's chain link instead of hashing; debug builds check it.
    pub(crate) fn set_record_hash(&mut self, record_hash: Hash) {
        debug_assert_eq!(record_hash, ledger_verify::record::record_hash(&self.canonical));
        self.record_hash = record_hash;
    }

    /// Global position: also the Merkle leaf index.
    pub fn seq(&self) -> u64 {
        self.header.seq
    }

    /// Position within the stream, from 0.
    pub fn stream_version(&self) -> u64 {
        self.header.stream_version
    }

    /// When the ledger recorded it.
    pub fn recorded_at(&self) -> DateTime<Utc> {
        from_timestamp_ns(self.header.recorded_at_ns)
    }

    /// Record hash of the previous record (zero for seq 0).
    pub fn prev_hash(&self) -> Hash {
        self.header.prev_hash
    }

    /// The event id.
    pub fn event_id(&self) -> Uuid {
        Uuid::from_bytes(self.header.event.id)
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.header.event.stream
    }

    /// The event type.
    pub fn event_type(&self) -> &str {
        &self.header.event.event_type
    }

    /// The event as its producer sent it.
    pub fn event(&self) -> Event {
        let event = &self.header.event;
        Event {
            id: Uuid::from_bytes(event.id),
            stream: event.stream.clone(),
            event_type: event.event_type.clone(),
            occurred_at: from_timestamp_ns(event.occurred_at_ns),
            payload: self.payload.clone(),
            content_type: event.content_type.clone(),
            metadata: event.metadata.clone(),
            signature: event.signature.clone(),
        }
    }
}
