//! The canonical binary encoding of events and records: the exact bytes that
//! are hashed (record hash, chain) and signed (producer signatures).
//!
//! Never protobuf or JSON: those encodings are not canonical. Everything here
//! is explicit little-endian, length-prefixed, versioned and
//! domain-separated; `docs/FORMAT.md` specifies it byte by byte. The payload
//! itself is not part of the canonical bytes, only its length and BLAKE3
//! hash, so a record can be verified with its payload withheld (selective
//! disclosure). This module does no I/O and knows nothing of segments.

use std::collections::BTreeMap;

use crate::hash::{Hash, blake3};

/// Domain tag that starts every canonical record encoding.
pub const RECORD_DOMAIN: &[u8] = b"evidence-ledger:record\x00";
/// Domain tag that starts the bytes a producer signs.
pub const EVENT_DOMAIN: &[u8] = b"evidence-ledger:event\x00";
/// Version of the canonical encoding written after the domain tag.
pub const ENCODING_VERSION: u8 = 1;
/// `prev_hash` of the record at seq 0.
pub const GENESIS_PREV_HASH: Hash = [0u8; 32];

/// Event metadata: correlation, causation and trace ids plus free key/values.
/// Empty strings mean "absent"; `extra` is ordered so its encoding is unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Groups the events of one operation or workflow.
    pub correlation_id: String,
    /// The event (id) that caused this one.
    pub causation_id: String,
    /// Distributed-tracing id, copied from the producer's span.
    pub trace_id: String,
    /// Free key/value pairs, encoded in byte order of the keys.
    pub extra: BTreeMap<String, String>,
}

/// A producer's ed25519 signature over the event's signing bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerSignature {
    /// Which producer key signed: resolved by the ledger's key registry.
    pub key_id: String,
    /// ed25519 signature over [`EventHeader::signing_bytes`].
    pub signature: [u8; 64],
}

/// Everything about an event that is hashed, with the payload reduced to its
/// length and BLAKE3 hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// Client-chosen UUID (16 bytes, RFC 9562 byte order): the idempotency key.
    pub id: [u8; 16],
    /// Stream name, e.g. `task/CUST-WP-0051-T03`.
    pub stream: String,
    /// Event type, e.g. `ops.backup_verified`.
    pub event_type: String,
    /// When the fact happened, per the producer: Unix time in nanoseconds.
    pub occurred_at_ns: i64,
    /// MIME type of the payload, e.g. `application/json`.
    pub content_type: String,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// BLAKE3 of the payload bytes.
    pub payload_hash: Hash,
    /// Correlation/causation/trace ids and free key/values.
    pub metadata: Metadata,
    /// Optional producer signature over [`EventHeader::signing_bytes`].
    pub signature: Option<ProducerSignature>,
}

/// A record as hashed: the ledger-assigned fields plus the event header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Global position, from 0; also the record's Merkle leaf index.
    pub seq: u64,
    /// Position within its stream, from 0.
    pub stream_version: u64,
    /// When the ledger recorded it: Unix time in nanoseconds, never
    /// decreasing along the log.
    pub recorded_at_ns: i64,
    /// Record hash of seq - 1 (all zero for seq 0): the hash chain.
    pub prev_hash: Hash,
    /// The event as sent by its producer.
    pub event: EventHeader,
}

/// Why canonical bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the named field is complete.
    #[error("canonical record truncated while reading {field} at byte {offset}")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Byte offset where it starts.
        offset: usize,
    },
    /// The domain tag is not the record domain.
    #[error("canonical record does not start with the record domain tag")]
    BadDomain,
    /// An encoding version this verifier does not know.
    #[error("unsupported canonical encoding version {0}")]
    UnsupportedVersion(u8),
    /// A string field holds invalid UTF-8.
    #[error("field {field} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Field being read.
        field: &'static str,
        /// Byte offset where it starts.
        offset: usize,
    },
    /// Metadata keys are not strictly increasing (unsorted or repeated).
    #[error("metadata key {key:?} is out of order or repeated")]
    UnsortedMetadata {
        /// The offending key.
        key: String,
    },
    /// The signature flag is neither 0 nor 1.
    #[error("signature flag is {0}, expected 0 or 1")]
    BadSignatureFlag(u8),
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes after the canonical record")]
    TrailingBytes(usize),
}

impl EventHeader {
    /// The bytes a producer signs: the event domain tag, the version, then
    /// the event fields exactly as in the record encoding, without the
    /// signature itself.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.encoded_len_hint());
        out.extend_from_slice(EVENT_DOMAIN);
        out.push(ENCODING_VERSION);
        self.encode_fields(&mut out);
        out
    }

    fn encoded_len_hint(&self) -> usize {
        self.stream.len()
            + self.event_type.len()
            + self.content_type.len()
            + self.metadata.correlation_id.len()
            + self.metadata.causation_id.len()
            + self.metadata.trace_id.len()
            + self
                .metadata
                .extra
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
    }

    /// Appends the part of the canonical record bytes that depends on the
    /// event alone: everything after [`encode_record_prefix`]. With it a
    /// writer encodes records straight into a larger buffer (its frames)
    /// instead of allocating a `Vec` per record.
    pub fn encode_record_tail(&self, out: &mut Vec<u8>) {
        self.encode_fields(out);
        match &self.signature {
            None => out.push(0),
            Some(sig) => {
                out.push(1);
                put_str(out, &sig.key_id);
                out.extend_from_slice(&sig.signature);
            }
        }
    }

    fn encode_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        put_str(out, &self.stream);
        put_str(out, &self.event_type);
        out.extend_from_slice(&self.occurred_at_ns.to_le_bytes());
        put_str(out, &self.content_type);
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.payload_hash);
        put_str(out, &self.metadata.correlation_id);
        put_str(out, &self.metadata.causation_id);
        put_str(out, &self.metadata.trace_id);
        put_u32(out, self.metadata.extra.len());
        for (key, value) in &self.metadata.extra {
            put_str(out, key);
            put_str(out, value);
        }
    }
}

impl RecordHeader {
    /// The canonical record bytes: what [`record_hash`] hashes. They are
    /// [`encode_record_prefix`] followed by [`EventHeader::encode_record_tail`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.event.encoded_len_hint());
        encode_record_prefix(
            &mut out,
            self.seq,
            self.stream_version,
            self.recorded_at_ns,
            &self.prev_hash,
        );
        self.event.encode_record_tail(&mut out);
        out
    }

    /// Decodes canonical record bytes strictly: every byte must be accounted
    /// for, so two different byte strings never decode to the same record.
    ///
    /// Accepts exactly the byte strings [`RecordRef::parse`] accepts, with
    /// the same errors: both run the same parser.
    pub fn decode(bytes: &[u8]) -> Result<RecordHeader, DecodeError> {
        let mut extra = BTreeMap::new();
        let record = parse_with(bytes, |key, value| {
            extra.insert(key.to_string(), value.to_string());
        })?;
        Ok(RecordHeader {
            seq: record.seq,
            stream_version: record.stream_version,
            recorded_at_ns: record.recorded_at_ns,
            prev_hash: record.prev_hash,
            event: EventHeader {
                id: record.id,
                stream: record.stream.to_string(),
                event_type: record.event_type.to_string(),
                occurred_at_ns: record.occurred_at_ns,
                content_type: record.content_type.to_string(),
                payload_len: record.payload_len,
                payload_hash: record.payload_hash,
                metadata: Metadata {
                    correlation_id: record.correlation_id.to_string(),
                    causation_id: record.causation_id.to_string(),
                    trace_id: record.trace_id.to_string(),
                    extra,
                },
                signature: record.signature.map(|(key_id, signature)| ProducerSignature {
                    key_id: key_id.to_string(),
                    signature,
                }),
            },
        })
    }
}

impl RecordHeader {
    /// [`RecordHeader::decode`] into `self`, reusing the capacity of its
    /// strings and metadata: a reader decoding millions of records into the
    /// same few headers (the projections' sequential scan) then allocates
    /// nothing per record. Accepts and refuses exactly what
    /// [`RecordHeader::decode`] does; after an error `self` holds a mix of
    /// old and new fields and must be decoded into again before use.
    pub fn decode_into(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let extra = &mut self.event.metadata.extra;
        extra.clear();
        let record = parse_with(bytes, |key, value| {
            extra.insert(key.to_string(), value.to_string());
        })?;
        self.seq = record.seq;
        self.stream_version = record.stream_version;
        self.recorded_at_ns = record.recorded_at_ns;
        self.prev_hash = record.prev_hash;
        let event = &mut self.event;
        event.id = record.id;
        replace_str(&mut event.stream, record.stream);
        replace_str(&mut event.event_type, record.event_type);
        event.occurred_at_ns = record.occurred_at_ns;
        replace_str(&mut event.content_type, record.content_type);
        event.payload_len = record.payload_len;
        event.payload_hash = record.payload_hash;
        replace_str(&mut event.metadata.correlation_id, record.correlation_id);
        replace_str(&mut event.metadata.causation_id, record.causation_id);
        replace_str(&mut event.metadata.trace_id, record.trace_id);
        match (record.signature, &mut event.signature) {
            (None, signature) => *signature = None,
            (Some((key_id, signature)), Some(kept)) => {
                replace_str(&mut kept.key_id, key_id);
                kept.signature = signature;
            }
            (Some((key_id, signature)), kept @ None) => {
                *kept = Some(ProducerSignature {
                    key_id: key_id.to_string(),
                    signature,
                });
            }
        }
        Ok(())
    }
}

/// Sets `to` to `text` in the capacity it has.
fn replace_str(to: &mut String, text: &str) {
    to.clear();
    to.push_str(text);
}

/// Length of the bytes [`encode_record_prefix`] appends.
pub const RECORD_PREFIX_LEN: usize = RECORD_DOMAIN.len() + 1 + 8 + 8 + 8 + 32;

/// Appends the start of the canonical record bytes: the domain tag, the
/// version and the fields the ledger assigns (seq, stream version,
/// `recorded_at`, `prev_hash`). The event's own part follows it
/// ([`EventHeader::encode_record_tail`]).
pub fn encode_record_prefix(out: &mut Vec<u8>, seq: u64, stream_version: u64, recorded_at_ns: i64, prev_hash: &Hash) {
    out.extend_from_slice(RECORD_DOMAIN);
    out.push(ENCODING_VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&stream_version.to_le_bytes());
    out.extend_from_slice(&recorded_at_ns.to_le_bytes());
    out.extend_from_slice(prev_hash);
}

/// Canonical record bytes decoded without copying: the strings borrow from
/// the bytes, and the free metadata pairs are validated (UTF-8, strictly
/// increasing keys) but not kept, only counted. For hot loops that need a
/// few fixed fields of every record, such as chain verification
/// ([`crate::chain`]); [`RecordHeader::decode`] gives the owned record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Global position.
    pub seq: u64,
    /// Position within its stream.
    pub stream_version: u64,
    /// When the ledger recorded it (Unix ns).
    pub recorded_at_ns: i64,
    /// Record hash of seq - 1 (all zero for seq 0).
    pub prev_hash: Hash,
    /// The event id.
    pub id: [u8; 16],
    /// Stream name.
    pub stream: &'a str,
    /// Event type.
    pub event_type: &'a str,
    /// When the fact happened, per the producer (Unix ns).
    pub occurred_at_ns: i64,
    /// MIME type of the payload.
    pub content_type: &'a str,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// BLAKE3 of the payload bytes.
    pub payload_hash: Hash,
    /// Correlation id ("" when absent).
    pub correlation_id: &'a str,
    /// Causation id ("" when absent).
    pub causation_id: &'a str,
    /// Trace id ("" when absent).
    pub trace_id: &'a str,
    /// Number of free metadata key/value pairs.
    pub n_extra: u32,
    /// The producer signature's key id and bytes, if signed.
    pub signature: Option<(&'a str, [u8; 64])>,
}

impl<'a> RecordRef<'a> {
    /// Parses canonical record bytes as strictly as [`RecordHeader::decode`]
    /// (same checks, same errors) without allocating, except for the key
    /// named by an [`DecodeError::UnsortedMetadata`] error.
    pub fn parse(bytes: &'a [u8]) -> Result<RecordRef<'a>, DecodeError> {
        parse_with(bytes, |_, _| {})
    }
}

/// The one strict parser of canonical record bytes: hands each free
/// metadata pair to `on_extra` (in order, after checking it) and returns the
/// other fields borrowed.
fn parse_with<'a>(bytes: &'a [u8], mut on_extra: impl FnMut(&'a str, &'a str)) -> Result<RecordRef<'a>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let domain = r.take(RECORD_DOMAIN.len(), "domain tag")?;
    if domain != RECORD_DOMAIN {
        return Err(DecodeError::BadDomain);
    }
    let version = r.u8("version")?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let seq = r.u64("seq")?;
    let stream_version = r.u64("stream_version")?;
    let recorded_at_ns = r.i64("recorded_at")?;
    let prev_hash = r.hash("prev_hash")?;
    let id = r.array::<16>("event id")?;
    let stream = r.str("stream")?;
    let event_type = r.str("type")?;
    let occurred_at_ns = r.i64("occurred_at")?;
    let content_type = r.str("content_type")?;
    let payload_len = r.u64("payload_len")?;
    let payload_hash = r.hash("payload_hash")?;
    let correlation_id = r.str("correlation_id")?;
    let causation_id = r.str("causation_id")?;
    let trace_id = r.str("trace_id")?;
    let n_extra = r.u32("metadata count")?;
    let mut last_key: Option<&str> = None;
    for _ in 0..n_extra {
        let key = r.str("metadata key")?;
        let value = r.str("metadata value")?;
        if last_key.is_some_and(|last| last.as_bytes() >= key.as_bytes()) {
            return Err(DecodeError::UnsortedMetadata { key: key.to_string() });
        }
        last_key = Some(key);
        on_extra(key, value);
    }
    let signature = match r.u8("signature flag")? {
        0 => None,
        1 => {
            let key_id = r.str("signature key id")?;
            let signature = r.array::<64>("signature")?;
            Some((key_id, signature))
        }
        flag => return Err(DecodeError::BadSignatureFlag(flag)),
    };
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - r.pos));
    }
    Ok(RecordRef {
        seq,
        stream_version,
        recorded_at_ns,
        prev_hash,
        id,
        stream,
        event_type,
        occurred_at_ns,
        content_type,
        payload_len,
        payload_hash,
        correlation_id,
        causation_id,
        trace_id,
        n_extra,
        signature,
    })
}

/// Record hash: BLAKE3 of the canonical record bytes. The domain tag inside
/// the bytes keeps it apart from every other hash in the system.
pub fn record_hash(canonical: &[u8]) -> Hash {
    blake3(canonical)
}

/// Payload hash: plain BLAKE3 of the payload bytes, so `b3sum` agrees.
pub fn payload_hash(payload: &[u8]) -> Hash {
    blake3(payload)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Callers bound every length far below 4 GiB (validation rejects larger).
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                field,
                offset: self.pos,
            });
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn hash(&mut self, field: &'static str) -> Result<Hash, DecodeError> {
        self.array::<32>(field)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let offset = self.pos;
        let len = self.u32(field)? as usize;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { field, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordHeader {
        let mut extra = BTreeMap::new();
        extra.insert("workplan".to_string(), "CUST-WP-0051".to_string());
        extra.insert("hub".to_string(), "ops-hub".to_string());
        RecordHeader {
            seq: 3,
            stream_version: 1,
            recorded_at_ns: 1_795_000_000_000_000_000,
            prev_hash: [9; 32],
            event: EventHeader {
                id: [1; 16],
                stream: "service/ops-hub".into(),
                event_type: "ops.endpoint_verified".into(),
                occurred_at_ns: 1_794_999_999_000_000_000,
                content_type: "application/json".into(),
                payload_len: 2,
                payload_hash: payload_hash(b"{}"),
                metadata: Metadata {
                    correlation_id: "corr-1".into(),
                    causation_id: String::new(),
                    trace_id: "trace".into(),
                    extra,
                },
                signature: Some(ProducerSignature {
                    key_id: "probe-1".into(),
                    signature: [4; 64],
                }),
            },
        }
    }

    #[test]
    fn encode_decode_round_trip() -> Result<(), DecodeError> {
        let record = sample();
        let bytes = record.encode();
        assert_eq!(RecordHeader::decode(&bytes)?, record);
        let mut unsigned = record.clone();
        unsigned.event.signature = None;
        assert_eq!(RecordHeader::decode(&unsigned.encode())?, unsigned);
        Ok(())
    }

    #[test]
    fn prefix_and_tail_split_the_record_at_the_event() -> Result<(), DecodeError> {
        let record = sample();
        let mut prefix = Vec::new();
        encode_record_prefix(
            &mut prefix,
            record.seq,
            record.stream_version,
            record.recorded_at_ns,
            &record.prev_hash,
        );
        assert_eq!(prefix.len(), RECORD_PREFIX_LEN);
        let mut tail = Vec::new();
        record.event.encode_record_tail(&mut tail);
        // The tail is the event's own bytes: the same whatever the seq.
        let mut moved = record.clone();
        moved.seq = 99;
        moved.prev_hash = [1; 32];
        assert_eq!(moved.encode()[RECORD_PREFIX_LEN..], tail[..]);
        prefix.extend_from_slice(&tail);
        assert_eq!(RecordHeader::decode(&prefix)?, record);
        Ok(())
    }

    #[test]
    fn decode_into_overwrites_every_field_of_another_record() -> Result<(), DecodeError> {
        let signed = sample();
        let mut plain = sample();
        plain.seq = 4;
        plain.prev_hash = [2; 32];
        plain.event.stream = "s".into();
        plain.event.event_type = "a.much.longer.event.type.than.before".into();
        plain.event.metadata = Metadata::default();
        plain.event.signature = None;
        let mut other_key = sample();
        other_key.event.signature = Some(ProducerSignature {
            key_id: "another-producer".into(),
            signature: [7; 64],
        });
        // Every pair of (previous content, record): signed over unsigned,
        // unsigned over signed, metadata over none and none over some.
        let mut header = plain.clone();
        for record in [&signed, &plain, &plain, &other_key, &signed, &plain] {
            header.decode_into(&record.encode())?;
            assert_eq!(&header, record);
        }
        // Bad bytes are refused as by decode.
        let bytes = signed.encode();
        for len in [0, 10, bytes.len() - 1] {
            assert_eq!(
                header.decode_into(&bytes[..len]),
                RecordHeader::decode(&bytes[..len]).map(|_| ())
            );
        }
        Ok(())
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(RecordHeader::decode(&bytes[..len]).is_err(), "prefix {len} decoded");
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(RecordHeader::decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn bad_domain_and_version_are_rejected() {
        let mut bytes = sample().encode();
        bytes[0] ^= 1;
        assert_eq!(RecordHeader::decode(&bytes), Err(DecodeError::BadDomain));
        let mut bytes = sample().encode();
        bytes[RECORD_DOMAIN.len()] = 2;
        assert_eq!(RecordHeader::decode(&bytes), Err(DecodeError::UnsupportedVersion(2)));
    }

    #[test]
    fn signing_bytes_exclude_the_signature_and_bind_the_event() {
        let record = sample();
        let mut other = record.event.clone();
        other.signature = None;
        assert_eq!(record.event.signing_bytes(), other.signing_bytes());
        other.metadata.trace_id.push('x');
        assert_ne!(record.event.signing_bytes(), other.signing_bytes());
        assert!(record.event.signing_bytes().starts_with(EVENT_DOMAIN));
    }

    /// The borrowed view names the same fields as the owned decode, and
    /// refuses exactly what it refuses, with the same error.
    #[test]
    fn record_ref_agrees_with_decode_on_every_single_byte_change() {
        fn agree(bytes: &[u8]) {
            match (RecordHeader::decode(bytes), RecordRef::parse(bytes)) {
                (Ok(owned), Ok(view)) => {
                    assert_eq!(
                        (owned.seq, owned.stream_version, owned.recorded_at_ns, owned.prev_hash),
                        (view.seq, view.stream_version, view.recorded_at_ns, view.prev_hash)
                    );
                    let event = &owned.event;
                    assert_eq!(
                        (event.id, event.stream.as_str(), event.event_type.as_str()),
                        (view.id, view.stream, view.event_type)
                    );
                    assert_eq!(
                        (event.occurred_at_ns, event.content_type.as_str()),
                        (view.occurred_at_ns, view.content_type)
                    );
                    assert_eq!(
                        (event.payload_len, event.payload_hash),
                        (view.payload_len, view.payload_hash)
                    );
                    let metadata = &event.metadata;
                    assert_eq!(
                        (
                            metadata.correlation_id.as_str(),
                            metadata.causation_id.as_str(),
                            metadata.trace_id.as_str(),
                            metadata.extra.len()
                        ),
                        (
                            view.correlation_id,
                            view.causation_id,
                            view.trace_id,
                            view.n_extra as usize
                        )
                    );
                    assert_eq!(
                        event.signature.as_ref().map(|s| (s.key_id.as_str(), s.signature)),
                        view.signature
                    );
                }
                (Err(owned), Err(view)) => assert_eq!(owned, view),
                (owned, view) => panic!("decode {owned:?} but parse {view:?}"),
            }
        }
        let mut unsigned = sample();
        unsigned.event.signature = None;
        for record in [sample(), unsigned] {
            let bytes = record.encode();
            agree(&bytes);
            for i in 0..bytes.len() {
                for value in [0x00, 0x01, 0x80, 0xff, bytes[i] ^ 0x20] {
                    let mut changed = bytes.clone();
                    changed[i] = value;
                    agree(&changed);
                }
                agree(&bytes[..i]);
            }
        }
    }
}
