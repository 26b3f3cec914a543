//! The error type of `ledger-core`: one enum, every variant carrying the data
//! an operator or a client needs (the event, the field, the seq, the hashes).
//!
//! Servers map these to wire status codes in one place; this crate knows
//! nothing about gRPC.

use std::path::PathBuf;

use uuid::Uuid;

use crate::event::ExpectedVersion;
use crate::scan::{ScanConfigError, SecretHit};

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// An event field failed validation; nothing was written.
    #[error("event {index} ({event_id}): invalid {field}: {reason}")]
    InvalidEvent {
        /// Position of the event in its batch.
        index: usize,
        /// The event's id.
        event_id: Uuid,
        /// The offending field, e.g. `stream` or `payload`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The request as a whole is malformed (empty batch, too many events,
    /// an expected version over several streams).
    #[error("invalid append request: {field}: {reason}")]
    InvalidRequest {
        /// The offending request field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A payload exceeds the configured limit.
    #[error("event {index} ({event_id}): payload is {size} bytes, limit is {limit} (max_payload_bytes)")]
    PayloadTooLarge {
        /// Position of the event in its batch.
        index: usize,
        /// The event's id.
        event_id: Uuid,
        /// Payload size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A batch holds more events than the configured limit.
    #[error("batch holds {count} events, limit is {limit} (max_batch_events)")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Optimistic concurrency failed: the stream is not where the caller
    /// expected it to be.
    #[error("stream {stream:?}: expected version {expected}, current version is {}", match actual { Some(v) => v.to_string(), None => "none (no stream)".to_string() })]
    WrongExpectedVersion {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's last version, `None` when it has no events.
        actual: Option<u64>,
    },
    /// An event id is already in the log with different content.
    #[error("event id {event_id} already exists at seq {seq} with different content")]
    IdConflict {
        /// The reused id.
        event_id: Uuid,
        /// Where the original is.
        seq: u64,
    },
    /// Some events of the batch are already in the log and others are not: a
    /// retry must resend exactly the batch that was acknowledged.
    #[error(
        "event id {event_id} already exists at seq {seq} but other events of the batch do not; a batch is appended whole or not at all"
    )]
    PartialDuplicate {
        /// An id that is already stored.
        event_id: Uuid,
        /// Where it is.
        seq: u64,
    },
    /// The same id appears twice in one batch.
    #[error("event id {event_id} appears twice in the batch (positions {first} and {second})")]
    DuplicateIdInBatch {
        /// The repeated id.
        event_id: Uuid,
        /// First position.
        first: usize,
        /// Second position.
        second: usize,
    },
    /// A payload or metadata value matches a secret rule; nothing of the
    /// batch was written. Names the event, field path and rule, never the
    /// value.
    #[error(transparent)]
    SecretDetected(#[from] SecretHit),
    /// The secret-scan configuration does not validate.
    #[error("secret_scan: {0}")]
    ScanConfig(#[from] ScanConfigError),
    /// A producer signature names a key the resolver does not know.
    #[error("event {event_id}: unknown producer key {key_id:?}")]
    UnknownProducerKey {
        /// The event.
        event_id: Uuid,
        /// The key id it names.
        key_id: String,
    },
    /// A producer signature does not verify.
    #[error("event {event_id}: producer signature by key {key_id:?} does not verify")]
    BadProducerSignature {
        /// The event.
        event_id: Uuid,
        /// The key id it names.
        key_id: String,
    },
    /// Stored bytes are corrupt (not a torn tail): the ledger refuses to open.
    #[error("corrupt log: segment {}, offset {offset}, seq {}: {reason}", segment.display(), seq.map_or("?".to_string(), |s| s.to_string()))]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the bad frame in the segment.
        offset: u64,
        /// The seq of the bad record, when known.
        seq: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// The ledger directory holds something this version cannot use.
    #[error("ledger directory {}: {reason}", path.display())]
    BadLedgerDir {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A seq or tree size beyond the committed log was asked for.
    #[error("{what} {requested} is beyond the log, which holds {len} records")]
    OutOfRange {
        /// What was asked for: `seq`, `tree size`, ...
        what: &'static str,
        /// The value asked for.
        requested: u64,
        /// Records in the log.
        len: u64,
    },
    /// A Merkle proof could not be produced for these arguments.
    #[error("proof: {0}")]
    Proof(#[from] ledger_verify::merkle::ProofError),
    /// A previous write or fsync failed; the log refuses further appends
    /// until reopened (the failed batch may or may not be on disk).
    #[error("ledger is poisoned by an earlier storage failure: {0}")]
    Poisoned(String),
    /// The ledger has been closed.
    #[error("ledger is closed")]
    Closed,
    /// I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The derived index store failed.
    #[error("index store: {0}")]
    Store(String),
    /// The signer could not sign.
    #[error("signer: {0}")]
    Signer(String),
    /// A key file is malformed.
    #[error("key file {}: {reason}", path.display())]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ledger was opened with a key that a key rotation record in its
    /// log retired (`docs/FORMAT.md` §6.1): that key signs no tree past
    /// the rotation, so the ledger does not open with it.
    #[error(
        "the signing key {key} was retired by the key rotation record at seq {rotation_seq}; open the ledger with the new key {new_key}"
    )]
    RetiredKey {
        /// The retired key (verifier key text).
        key: String,
        /// Seq of the rotation record.
        rotation_seq: u64,
        /// The key it handed over to (verifier key text).
        new_key: String,
    },
}

impl LedgerError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LedgerError {
        LedgerError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
