//! What producers send: [`Event`], batched into an [`AppendRequest`], and the
//! stateless checks every event passes before it reaches the writer.
//!
//! Validation here needs no ledger state, so it runs on the caller's thread
//! (in parallel across callers); checks that need state (idempotency,
//! expected versions) happen in the writer. The secret scan
//! ([`crate::scan`]) is part of it: it costs CPU per byte, so it belongs
//! here, spread over callers, and never in the single writer thread.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use chrono::{DateTime, Utc};
use ledger_verify::record::{EventHeader, Metadata, ProducerSignature, payload_hash};
use uuid::Uuid;

use crate::config::{LedgerConfig, limits};
use crate::error::{LedgerError, Result};
use crate::helpers;
use crate::ids::IdMap;
use crate::scan::{ScanStop, SecretScanner};

/// Default payload content type.
pub const JSON: &str = "application/json";

/// A fact a producer wants recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Client-chosen id: the idempotency key.
    pub id: Uuid,
    /// e.g. `task/CUST-WP-0051-T03`.
    pub stream: String,
    /// e.g. `task.status_changed`.
    pub event_type: String,
    /// When it happened, per the producer.
    pub occurred_at: DateTime<Utc>,
    /// The evidence itself.
    pub payload: Vec<u8>,
    /// MIME type of `payload`; JSON payloads are checked to parse.
    pub content_type: String,
    /// Correlation/causation/trace ids and free key/values.
    pub metadata: Metadata,
    /// Optional ed25519 signature by the producer.
    pub signature: Option<ProducerSignature>,
}

impl Event {
    /// A JSON event with a fresh v7 id, occurring now, with no metadata.
    pub fn json(stream: impl Into<String>, event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Event {
        Event {
            id: Uuid::now_v7(),
            stream: stream.into(),
            event_type: event_type.into(),
            occurred_at: Utc::now(),
            payload: payload.into(),
            content_type: JSON.to_string(),
            metadata: Metadata::default(),
            signature: None,
        }
    }

    /// The hashed form of this event (payload reduced to length and hash).
    pub fn header(&self) -> EventHeader {
        EventHeader {
            id: *self.id.as_bytes(),
            stream: self.stream.clone(),
            event_type: self.event_type.clone(),
            occurred_at_ns: timestamp_ns(self.occurred_at),
            content_type: self.content_type.clone(),
            payload_len: self.payload.len() as u64,
            payload_hash: payload_hash(&self.payload),
            metadata: self.metadata.clone(),
            signature: self.signature.clone(),
        }
    }

    /// The bytes a producer signs for this event.
    pub fn signing_bytes(&self) -> Vec<u8> {
        self.header().signing_bytes()
    }

    /// [`Event::header`] by move, for the append path: the names and the
    /// metadata move into the header instead of being copied per event.
    fn into_prepared(self) -> PreparedEvent {
        let header = EventHeader {
            id: *self.id.as_bytes(),
            stream: self.stream,
            event_type: self.event_type,
            occurred_at_ns: timestamp_ns(self.occurred_at),
            content_type: self.content_type,
            payload_len: self.payload.len() as u64,
            payload_hash: payload_hash(&self.payload),
            metadata: self.metadata,
            signature: self.signature,
        };
        PreparedEvent {
            header,
            payload: self.payload,
        }
    }
}

/// Optimistic concurrency on the stream of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    #[default]
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no-stream"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// An atomic batch: all events are appended, or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendRequest {
    /// The events, in order.
    pub events: Vec<Event>,
    /// Checked against the stream of the events; anything but `Any`
    /// requires every event of the batch to be in one stream.
    pub expected_version: ExpectedVersion,
}

impl AppendRequest {
    /// A batch with no version check.
    pub fn new(events: Vec<Event>) -> AppendRequest {
        AppendRequest {
            events,
            expected_version: ExpectedVersion::Any,
        }
    }
}

/// Proof that an event is in the log: where, and with which hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The event's id.
    pub event_id: Uuid,
    /// Global position (Merkle leaf index).
    pub seq: u64,
    /// Position in its stream.
    pub stream_version: u64,
    /// The record hash.
    pub record_hash: ledger_verify::Hash,
    /// When the ledger recorded it (Unix nanoseconds). With `seq`,
    /// `stream_version` and `prev_hash` this is everything the ledger added
    /// to the event, so a producer can rebuild the canonical record and
    /// check `record_hash` against what it sent.
    pub recorded_at_ns: i64,
    /// Record hash of `seq - 1` (zero for seq 0).
    pub prev_hash: ledger_verify::Hash,
}

/// An event that passed stateless validation, with its header computed.
#[derive(Debug)]
pub(crate) struct PreparedEvent {
    pub(crate) header: EventHeader,
    pub(crate) payload: Vec<u8>,
}

/// What the stateless checks need: the ledger's limits and its secret scan,
/// behind an `Arc` so that helper threads can check part of a batch.
#[derive(Debug)]
pub(crate) struct Checks {
    pub(crate) config: LedgerConfig,
    pub(crate) scanner: SecretScanner,
}

/// Batches of at least this many events are shared with idle helper
/// threads: a 256-byte JSON event costs ~1 µs to check, scan and hash, so a
/// batch of 1024 is ~1 ms on the caller's thread while the writer waits
/// for it.
const PARALLEL_MIN_EVENTS: usize = 256;

/// Runs every stateless check on a request, the secret scan included, and
/// computes the headers.
pub(crate) fn prepare(request: AppendRequest, checks: &Arc<Checks>) -> Result<(Vec<PreparedEvent>, ExpectedVersion)> {
    let config = &checks.config;
    let AppendRequest {
        events,
        expected_version,
    } = request;
    if events.is_empty() {
        return Err(LedgerError::InvalidRequest {
            field: "events",
            reason: "a batch needs at least one event".to_string(),
        });
    }
    if events.len() > config.max_batch_events {
        return Err(LedgerError::BatchTooLarge {
            count: events.len(),
            limit: config.max_batch_events,
        });
    }
    // The error reported is the one the events would give checked one by
    // one in order (a field error of event i before a repeat of its id, a
    // repeat at i before anything wrong with a later event), then the
    // batch-wide expected-version rule: so find the first repeated id
    // first, and validate the events up to it.
    let mut first_position: IdMap<usize> = IdMap::with_capacity(events.len());
    let mut repeat = None;
    for (index, event) in events.iter().enumerate() {
        if let Some(first) = first_position.insert(*event.id.as_bytes(), index) {
            repeat = Some((
                index,
                LedgerError::DuplicateIdInBatch {
                    event_id: event.id,
                    first,
                    second: index,
                },
            ));
            break;
        }
    }
    let mixed_streams = if expected_version == ExpectedVersion::Any {
        None
    } else {
        events
            .iter()
            .find(|e| e.stream != events[0].stream)
            .map(|other| LedgerError::InvalidRequest {
                field: "expected_version",
                reason: format!(
                    "an expected version needs all events in one stream, but the batch has {:?} and {:?}",
                    events[0].stream, other.stream
                ),
            })
    };
    let validate_up_to = repeat.as_ref().map_or(events.len(), |(index, _)| index + 1);
    let prepared = prepare_events(events, validate_up_to, checks)?;
    if let Some((_, err)) = repeat {
        return Err(err);
    }
    if let Some(err) = mixed_streams {
        return Err(err);
    }
    Ok((prepared, expected_version))
}

/// Validates and prepares the first `count` events (the rest are dropped);
/// the error is the first invalid event's. A large batch is cut into
/// chunks of [`CHUNK_EVENTS`] that the caller and any idle helper take in
/// turn, so the caller never waits for a chunk nobody has started: on a
/// machine whose cores are busy elsewhere it checks (nearly) the whole batch
/// itself, as without helpers.
fn prepare_events(mut events: Vec<Event>, count: usize, checks: &Arc<Checks>) -> Result<Vec<PreparedEvent>> {
    events.truncate(count);
    if events.len() < PARALLEL_MIN_EVENTS || helpers::count() == 0 {
        return prepare_chunk(0, events, &checks.config, &checks.scanner);
    }
    let mut chunks = Vec::with_capacity(events.len().div_ceil(CHUNK_EVENTS));
    while !events.is_empty() {
        let at = (events.len() - 1) / CHUNK_EVENTS * CHUNK_EVENTS;
        chunks.push(Mutex::new(ChunkState::Todo(events.split_off(at))));
    }
    chunks.reverse();
    let shared = Arc::new(SharedChunks {
        checks: Arc::clone(checks),
        next: AtomicUsize::new(0),
        chunks,
        finished: Mutex::new(0),
        changed: Condvar::new(),
    });
    for _ in 0..helpers::count() {
        let shared = Arc::clone(&shared);
        if helpers::offer(Box::new(move || shared.work())).is_err() {
            break;
        }
    }
    shared.work();
    let n_chunks = shared.chunks.len();
    let mut finished = lock(&shared.finished);
    while *finished < n_chunks {
        finished = match shared.changed.wait(finished) {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
    }
    drop(finished);
    let mut prepared = Vec::with_capacity(count);
    for chunk in &shared.chunks {
        match std::mem::replace(&mut *lock(chunk), ChunkState::Taken) {
            ChunkState::Done(Ok(Ok(more))) => prepared.extend(more),
            ChunkState::Done(Ok(Err(err))) => return Err(err),
            ChunkState::Done(Err(panic)) => std::panic::resume_unwind(panic),
            ChunkState::Todo(_) | ChunkState::Taken => {
                unreachable!("every chunk is done once `finished` counts them all")
            }
        }
    }
    Ok(prepared)
}

/// Events per chunk of a batch checked in parallel: ~50–100 µs of work, the
/// longest a caller waits for a helper that took the last chunk.
const CHUNK_EVENTS: usize = 64;

/// A chunk of a batch checked in parallel.
enum ChunkState {
    Todo(Vec<Event>),
    Taken,
    Done(std::thread::Result<Result<Vec<PreparedEvent>>>),
}

/// A batch being checked by its caller and helpers.
struct SharedChunks {
    checks: Arc<Checks>,
    /// The next chunk nobody has taken.
    next: AtomicUsize,
    chunks: Vec<Mutex<ChunkState>>,
    /// Chunks done.
    finished: Mutex<usize>,
    changed: Condvar,
}

impl SharedChunks {
    /// Takes and checks chunks until none is left.
    fn work(&self) {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = self.chunks.get(index) else { return };
            let ChunkState::Todo(events) = std::mem::replace(&mut *lock(chunk), ChunkState::Taken) else {
                continue;
            };
            let offset = index * CHUNK_EVENTS;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                prepare_chunk(offset, events, &self.checks.config, &self.checks.scanner)
            }));
            *lock(chunk) = ChunkState::Done(result);
            *lock(&self.finished) += 1;
            self.changed.notify_all();
        }
    }
}

/// A lock whose holder cannot have left its data half-changed: every
/// critical section here is a single assignment.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// [`prepare_events`] on one thread: `offset` is the index of the chunk's
/// first event in its batch.
fn prepare_chunk(
    offset: usize,
    events: Vec<Event>,
    config: &LedgerConfig,
    scanner: &SecretScanner,
) -> Result<Vec<PreparedEvent>> {
    let mut prepared = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        validate(offset + i, &event, config, scanner)?;
        prepared.push(event.into_prepared());
    }
    Ok(prepared)
}

fn validate(index: usize, event: &Event, config: &LedgerConfig, scanner: &SecretScanner) -> Result<()> {
    let invalid = |field: &'static str, reason: String| LedgerError::InvalidEvent {
        index,
        event_id: event.id,
        field,
        reason,
    };
    if event.id.is_nil() {
        return Err(invalid("id", "must not be the nil UUID".to_string()));
    }
    check_name(&event.stream, limits::MAX_STREAM_BYTES).map_err(|reason| invalid("stream", reason))?;
    check_name(&event.event_type, limits::MAX_TYPE_BYTES).map_err(|reason| invalid("type", reason))?;
    // Content types may hold parameters with spaces (`; charset=utf-8`).
    if event.content_type.trim().is_empty() {
        return Err(invalid("content_type", "must not be empty".to_string()));
    }
    check_text(&event.content_type, limits::MAX_CONTENT_TYPE_BYTES)
        .map_err(|reason| invalid("content_type", reason))?;
    if event.payload.len() > config.max_payload_bytes {
        return Err(LedgerError::PayloadTooLarge {
            index,
            event_id: event.id,
            size: event.payload.len(),
            limit: config.max_payload_bytes,
        });
    }
    // Nanosecond timestamps are i64: keep occurred_at inside that range.
    if event.occurred_at.timestamp_nanos_opt().is_none() {
        return Err(invalid("occurred_at", "outside the years 1678..2262".to_string()));
    }
    let metadata = &event.metadata;
    for (field, value) in [
        ("metadata.correlation_id", &metadata.correlation_id),
        ("metadata.causation_id", &metadata.causation_id),
        ("metadata.trace_id", &metadata.trace_id),
    ] {
        check_text(value, limits::MAX_METADATA_KEY_BYTES).map_err(|reason| invalid(field, reason))?;
    }
    if metadata.extra.len() > limits::MAX_METADATA_ENTRIES {
        return Err(invalid(
            "metadata",
            format!(
                "{} entries, limit is {}",
                metadata.extra.len(),
                limits::MAX_METADATA_ENTRIES
            ),
        ));
    }
    for (key, value) in &metadata.extra {
        if key.is_empty() {
            return Err(invalid("metadata", "a key is empty".to_string()));
        }
        check_text(key, limits::MAX_METADATA_KEY_BYTES)
            .map_err(|reason| invalid("metadata", format!("key {key:?}: {reason}")))?;
        check_text(value, limits::MAX_METADATA_VALUE_BYTES)
            .map_err(|reason| invalid("metadata", format!("value of {key:?}: {reason}")))?;
    }
    if let Some(signature) = &event.signature {
        check_name(&signature.key_id, limits::MAX_KEY_ID_BYTES)
            .map_err(|reason| invalid("signature.key_id", reason))?;
    }
    let not_json = |err: serde_json::Error| {
        invalid(
            "payload",
            format!(
                "content type is {} but the payload is not valid JSON: {err}",
                event.content_type
            ),
        )
    };
    // The scan validates a JSON payload before walking it: when it did,
    // the payload parsed.
    let parsed = match scanner.scan_for_append(index, event) {
        Ok(parsed) => parsed,
        Err(ScanStop::Secret(hit)) => return Err(LedgerError::SecretDetected(hit)),
        Err(ScanStop::NotJson(err)) => return Err(not_json(err)),
    };
    if !parsed
        && is_json(&event.content_type)
        && let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&event.payload)
    {
        return Err(not_json(err));
    }
    Ok(())
}

/// True for `application/json` and `+json` suffixed types.
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(JSON) || essence.to_ascii_lowercase().ends_with("+json")
}

/// Names (streams, types, key ids): non-empty, bounded, no whitespace or
/// control characters, so they print unambiguously and never contain the
/// 0x00 byte that separates index keys.
fn check_name(value: &str, max: usize) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    if value.len() > max {
        return Err(format!("{} bytes, limit is {max}", value.len()));
    }
    // Fast path: printable ASCII (0x21..=0x7e) holds neither whitespace nor
    // control characters, and is what names almost always are; per-char
    // Unicode checks showed up in append profiles.
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "contains {c:?}; whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// Free text: bounded, no control characters.
fn check_text(value: &str, max: usize) -> std::result::Result<(), String> {
    if value.len() > max {
        return Err(format!("{} bytes, limit is {max}", value.len()));
    }
    // Fast path: ASCII without C0 controls or DEL has no control characters.
    if value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Ok(());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(format!("contains control character {c:?}"));
    }
    Ok(())
}

/// Unix nanoseconds; callers have checked the range.
pub(crate) fn timestamp_ns(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Inverse of [`timestamp_ns`].
pub(crate) fn from_timestamp_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LedgerConfig {
        LedgerConfig::default()
    }

    fn scanner() -> SecretScanner {
        SecretScanner::default()
    }

    fn with(config: LedgerConfig, scanner: SecretScanner) -> Arc<Checks> {
        Arc::new(Checks { config, scanner })
    }

    fn field_of(err: LedgerError) -> &'static str {
        match err {
            LedgerError::InvalidEvent { field, .. } | LedgerError::InvalidRequest { field, .. } => field,
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        let good = Event::json("task/CUST-WP-0051-T03", "task.created", b"{}".to_vec());
        type Mutation = Box<dyn Fn(&mut Event)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("stream", Box::new(|e| e.stream.clear())),
            ("stream", Box::new(|e| e.stream = "a b".into())),
            ("type", Box::new(|e| e.event_type.clear())),
            ("content_type", Box::new(|e| e.content_type.clear())),
            ("payload", Box::new(|e| e.payload = b"{not json".to_vec())),
            ("id", Box::new(|e| e.id = Uuid::nil())),
            (
                "metadata",
                Box::new(|e| {
                    e.metadata.extra.insert(String::new(), "x".into());
                }),
            ),
            ("metadata.trace_id", Box::new(|e| e.metadata.trace_id = "a\nb".into())),
        ];
        for (field, mutate) in cases {
            let mut event = good.clone();
            mutate(&mut event);
            let err = prepare(AppendRequest::new(vec![event]), &with(config(), scanner())).expect_err(field);
            assert_eq!(field_of(err), field);
        }
    }

    #[test]
    fn rejects_oversized_payload_and_batches() {
        let mut config = config();
        config.max_payload_bytes = 8;
        config.max_batch_events = 2;
        let mut event = Event::json("s", "t", b"[1,2,3,4,5]".to_vec());
        event.content_type = "application/octet-stream".into();
        let err = prepare(AppendRequest::new(vec![event]), &with(config.clone(), scanner())).expect_err("too large");
        assert!(
            matches!(err, LedgerError::PayloadTooLarge { size: 11, limit: 8, .. }),
            "{err}"
        );
        let events = (0..3).map(|_| Event::json("s", "t", b"1".to_vec())).collect();
        let err = prepare(AppendRequest::new(events), &with(config.clone(), scanner())).expect_err("too many");
        assert!(
            matches!(err, LedgerError::BatchTooLarge { count: 3, limit: 2 }),
            "{err}"
        );
        let err = prepare(AppendRequest::new(vec![]), &with(config.clone(), scanner())).expect_err("empty");
        assert_eq!(field_of(err), "events");
    }

    #[test]
    fn rejects_repeated_ids_and_mixed_stream_expectations() {
        let a = Event::json("s", "t", b"1".to_vec());
        let err = prepare(
            AppendRequest::new(vec![a.clone(), a.clone()]),
            &with(config(), scanner()),
        )
        .expect_err("dup");
        assert!(
            matches!(
                err,
                LedgerError::DuplicateIdInBatch {
                    first: 0,
                    second: 1,
                    ..
                }
            ),
            "{err}"
        );
        let b = Event::json("other", "t", b"1".to_vec());
        let request = AppendRequest {
            events: vec![a, b],
            expected_version: ExpectedVersion::NoStream,
        };
        assert_eq!(
            field_of(prepare(request, &with(config(), scanner())).expect_err("mixed")),
            "expected_version"
        );
    }

    fn large_batch() -> Vec<Event> {
        (0..1000)
            .map(|i| Event::json(format!("s/{}", i % 7), "t", format!("{{\"n\":{i}}}").into_bytes()))
            .collect()
    }

    #[test]
    fn a_large_batch_is_prepared_in_order() {
        let events = large_batch();
        assert!(events.len() >= PARALLEL_MIN_EVENTS);
        let (prepared, _) = prepare(AppendRequest::new(events.clone()), &with(config(), scanner())).expect("valid");
        assert_eq!(prepared.len(), events.len());
        for (event, prepared) in events.iter().zip(&prepared) {
            assert_eq!(prepared.header, event.header());
        }
    }

    #[test]
    fn a_large_batch_reports_the_error_events_in_order_would_give() {
        let index_of = |err: LedgerError| match err {
            LedgerError::InvalidEvent { index, .. } => ("invalid", index),
            LedgerError::DuplicateIdInBatch { second, .. } => ("repeat", second),
            other => panic!("unexpected error {other}"),
        };
        let run = |events: Vec<Event>| {
            index_of(prepare(AppendRequest::new(events), &with(config(), scanner())).expect_err("invalid"))
        };
        // Two bad events in different chunks: the first one.
        let mut events = large_batch();
        events[700].stream.clear();
        events[900].event_type.clear();
        assert_eq!(run(events.clone()), ("invalid", 700));
        events[300].payload = b"{".to_vec();
        assert_eq!(run(events), ("invalid", 300));
        // A repeated id before a bad event wins; a bad event before a
        // repeat wins; an event that is both is reported as bad.
        let mut events = large_batch();
        events[800].id = events[10].id;
        events[900].stream.clear();
        assert_eq!(run(events.clone()), ("repeat", 800));
        events[500].stream.clear();
        assert_eq!(run(events.clone()), ("invalid", 500));
        events[500].stream = "s/1".into();
        events[800].stream.clear();
        assert_eq!(run(events), ("invalid", 800));
        // A secret far into the batch is named by its index in the batch.
        let mut events = large_batch();
        events[600].payload = br#"{"env":{"AWS_ACCESS_KEY_ID":"AKIAIOSFODNN7EXAMPLE"}}"#.to_vec();
        match prepare(AppendRequest::new(events.clone()), &with(config(), scanner())) {
            Err(LedgerError::SecretDetected(hit)) => assert_eq!((hit.index, hit.event_id), (600, events[600].id)),
            other => panic!("expected a secret hit, got {other:?}"),
        }
        // Mixed streams under an expected version come after both.
        let mut events = large_batch();
        events[999].stream.clear();
        let request = AppendRequest {
            events,
            expected_version: ExpectedVersion::NoStream,
        };
        let err = prepare(request, &with(config(), scanner())).expect_err("invalid");
        assert_eq!(index_of(err), ("invalid", 999));
    }

    #[test]
    fn the_secret_scan_is_part_of_validation() {
        let clean = Event::json(
            "ops-hub/deploy-42",
            "ops.release_observed",
            br#"{"version":"1.4.2"}"#.to_vec(),
        );
        let leaky = Event::json(
            "ops-hub/deploy-42",
            "ops.release_observed",
            br#"{"env":{"AWS_ACCESS_KEY_ID":"AKIAIOSFODNN7EXAMPLE"}}"#.to_vec(),
        );
        let request = AppendRequest::new(vec![clean.clone(), leaky.clone()]);
        match prepare(request.clone(), &with(config(), scanner())) {
            Err(LedgerError::SecretDetected(hit)) => {
                assert_eq!((hit.index, hit.event_id), (1, leaky.id));
                assert_eq!(hit.field_path, "payload.env.AWS_ACCESS_KEY_ID");
                assert_eq!(hit.rule, crate::scan::Rule::AwsAccessKeyId);
            }
            other => panic!("expected a secret hit, got {other:?}"),
        }
        assert!(prepare(request, &with(config(), SecretScanner::disabled())).is_ok());
    }

    #[test]
    fn invalid_json_is_refused_with_or_without_the_scan() {
        let mut event = Event::json("s", "t", b"{\"a\": }".to_vec());
        for scanner in [scanner(), SecretScanner::disabled()] {
            let err = prepare(AppendRequest::new(vec![event.clone()]), &with(config(), scanner)).expect_err("not json");
            assert!(err.to_string().contains("not valid JSON"), "{err}");
            assert_eq!(field_of(err), "payload");
        }
        event.content_type = "text/plain".into();
        assert!(prepare(AppendRequest::new(vec![event]), &with(config(), scanner())).is_ok());
    }

    #[test]
    fn prepared_header_is_the_public_header() {
        let mut event = Event::json("task/T1", "task.created", br#"{"a":1}"#.to_vec());
        event.metadata.correlation_id = "corr".into();
        event.metadata.extra.insert("k".into(), "v".into());
        event.signature = Some(ProducerSignature {
            key_id: "producer-1".into(),
            signature: [7; 64],
        });
        let prepared = event.clone().into_prepared();
        assert_eq!(prepared.header, event.header());
        assert_eq!(prepared.payload, event.payload);
    }

    #[test]
    fn name_and_text_checks_agree_with_the_unicode_rules() {
        for name in ["service/ops-hub", "task/CUST-WP-0051-T03", "ünïcode/名前", "a"] {
            assert_eq!(check_name(name, 256), Ok(()), "{name:?}");
        }
        for bad in ["a b", "a\tb", "a\u{0}b", "a\u{7f}", "a\u{a0}b", "a\u{2003}b", "a\u{85}"] {
            assert!(check_name(bad, 256).is_err(), "{bad:?}");
        }
        for text in ["", "run 42", "ünïcode text", "~!@# $%^"] {
            assert_eq!(check_text(text, 256), Ok(()), "{text:?}");
        }
        for bad in ["a\nb", "a\u{7f}", "a\u{0}", "a\u{85}b", "a\u{9f}"] {
            assert!(check_text(bad, 256).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/vnd.ops+json"));
        assert!(!is_json("text/plain"));
    }
}
