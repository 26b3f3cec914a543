//! Wire ↔ core conversions. Every rejection names the field as the client
//! wrote it (`events[2].occurred_at`), so a bad request can be fixed from the
//! status message alone.

use chrono::{DateTime, Utc};
use ledger_client::proto;
use ledger_core::checkpoint::SignedCheckpoint;
use ledger_core::{AppendOutcome, AppendRequest, Event, ExpectedVersion, Metadata, ProducerSignature, Receipt, Record};
use tonic::Status;
use uuid::Uuid;

/// A wire request turned into a core one, or `INVALID_ARGUMENT` naming the
/// field.
pub fn append_request(request: proto::AppendRequest) -> Result<AppendRequest, Status> {
    let expected_version = match request.expected_version {
        None => ExpectedVersion::Any,
        Some(proto::append_request::ExpectedVersion::ExpectNoStream(true)) => ExpectedVersion::NoStream,
        Some(proto::append_request::ExpectedVersion::ExpectNoStream(false)) => {
            return Err(Status::invalid_argument(
                "expect_no_stream: must be true when set (leave expected_version unset for no check)",
            ));
        }
        Some(proto::append_request::ExpectedVersion::ExpectVersion(v)) => ExpectedVersion::Exact(v),
    };
    let events = request
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| self::event(index, event))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AppendRequest {
        events,
        expected_version,
    })
}

fn event(index: usize, event: proto::Event) -> Result<Event, Status> {
    let field = |name: &str, reason: &str| Status::invalid_argument(format!("events[{index}].{name}: {reason}"));
    if event.id.is_empty() {
        return Err(field(
            "id",
            "required (a UUID chosen by the client: the idempotency key)",
        ));
    }
    let id = Uuid::parse_str(&event.id).map_err(|e| field("id", &format!("not a UUID: {e}")))?;
    let occurred_at = event.occurred_at.ok_or_else(|| {
        field(
            "occurred_at",
            "required (it is hashed with the event, so retries must send the same time)",
        )
    })?;
    let occurred_at = timestamp(&occurred_at).ok_or_else(|| field("occurred_at", "out of range"))?;
    let metadata = event.metadata.map(metadata).unwrap_or_default();
    let signature = match event.signature {
        None => None,
        Some(sig) => {
            let bytes: [u8; 64] = sig.signature.as_slice().try_into().map_err(|_| {
                field(
                    "signature.signature",
                    &format!("must be 64 bytes (ed25519), got {}", sig.signature.len()),
                )
            })?;
            Some(ProducerSignature {
                key_id: sig.key_id,
                signature: bytes,
            })
        }
    };
    Ok(Event {
        id,
        stream: event.stream,
        event_type: event.r#type,
        occurred_at,
        payload: event.payload,
        content_type: if event.content_type.is_empty() {
            ledger_core::event::JSON.to_string()
        } else {
            event.content_type
        },
        metadata,
        signature,
    })
}

fn metadata(m: proto::Metadata) -> Metadata {
    Metadata {
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
        trace_id: m.trace_id,
        extra: m.extra.into_iter().collect(),
    }
}

fn proto_metadata(m: Metadata) -> Option<proto::Metadata> {
    if m == Metadata::default() {
        return None;
    }
    Some(proto::Metadata {
        correlation_id: m.correlation_id,
        causation_id: m.causation_id,
        trace_id: m.trace_id,
        extra: m.extra.into_iter().collect(),
    })
}

/// Protobuf timestamp → chrono, `None` when out of range.
pub fn timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// Unix nanoseconds → protobuf timestamp.
pub fn proto_timestamp_ns(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// A core receipt on the wire.
pub fn receipt(r: &Receipt) -> proto::Receipt {
    proto::Receipt {
        event_id: r.event_id.to_string(),
        seq: r.seq,
        stream_version: r.stream_version,
        record_hash: r.record_hash.to_vec(),
        recorded_at: Some(proto_timestamp_ns(r.recorded_at_ns)),
        prev_hash: r.prev_hash.to_vec(),
    }
}

/// An append outcome on the wire.
pub fn append_response(outcome: &AppendOutcome, include_checkpoint: bool) -> proto::AppendResponse {
    proto::AppendResponse {
        receipts: outcome.receipts.iter().map(receipt).collect(),
        deduplicated: outcome.deduplicated,
        checkpoint: include_checkpoint.then(|| checkpoint(&outcome.checkpoint)),
        error: None,
    }
}

/// A signed checkpoint on the wire.
pub fn checkpoint(c: &SignedCheckpoint) -> proto::Checkpoint {
    proto::Checkpoint {
        note: c.note.clone(),
        origin: c.checkpoint.origin.clone(),
        size: c.size(),
        root: c.root().to_vec(),
        chain_head: c.chain_head.to_vec(),
        recorded_at: Some(proto_timestamp_ns(c.recorded_at_ns)),
    }
}

/// A stored record on the wire, canonical bytes included. Takes the record
/// by value: payload and canonical bytes move instead of being copied.
pub fn record(r: Record) -> proto::Record {
    let Record {
        header,
        canonical,
        payload,
        record_hash,
    } = r;
    let e = header.event;
    proto::Record {
        seq: header.seq,
        stream_version: header.stream_version,
        recorded_at: Some(proto_timestamp_ns(header.recorded_at_ns)),
        prev_hash: header.prev_hash.to_vec(),
        payload_hash: e.payload_hash.to_vec(),
        record_hash: record_hash.to_vec(),
        event: Some(proto::Event {
            id: Uuid::from_bytes(e.id).to_string(),
            metadata: proto_metadata(e.metadata),
            stream: e.stream,
            r#type: e.event_type,
            occurred_at: Some(proto_timestamp_ns(e.occurred_at_ns)),
            payload,
            content_type: e.content_type,
            signature: e.signature.map(|s| proto::ProducerSignature {
                key_id: s.key_id,
                signature: s.signature.to_vec(),
            }),
        }),
        canonical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_event() -> proto::Event {
        proto::Event {
            id: Uuid::now_v7().to_string(),
            stream: "service/registry".to_string(),
            r#type: "ops.health_checked".to_string(),
            occurred_at: Some(proto_timestamp_ns(1_795_392_000_123_456_789)),
            payload: br#"{"ok":true}"#.to_vec(),
            content_type: String::new(),
            metadata: None,
            signature: None,
        }
    }

    fn rejected(event: proto::Event) -> String {
        let request = proto::AppendRequest {
            events: vec![wire_event(), event],
            ..Default::default()
        };
        match append_request(request) {
            Ok(_) => panic!("accepted"),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
                status.message().to_string()
            }
        }
    }

    #[test]
    fn names_the_field_of_a_bad_event() {
        let msg = rejected(proto::Event {
            id: String::new(),
            ..wire_event()
        });
        assert!(msg.starts_with("events[1].id: required"), "{msg}");
        let msg = rejected(proto::Event {
            id: "not-a-uuid".to_string(),
            ..wire_event()
        });
        assert!(msg.starts_with("events[1].id: not a UUID"), "{msg}");
        let msg = rejected(proto::Event {
            occurred_at: None,
            ..wire_event()
        });
        assert!(msg.starts_with("events[1].occurred_at: required"), "{msg}");
        let msg = rejected(proto::Event {
            occurred_at: Some(prost_types::Timestamp { seconds: 0, nanos: -5 }),
            ..wire_event()
        });
        assert!(msg.starts_with("events[1].occurred_at: out of range"), "{msg}");
        let msg = rejected(proto::Event {
            signature: Some(proto::ProducerSignature {
                key_id: "k".to_string(),
                signature: vec![0; 12],
            }),
            ..wire_event()
        });
        assert!(
            msg.starts_with("events[1].signature.signature: must be 64 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn expect_no_stream_false_is_rejected() {
        let request = proto::AppendRequest {
            events: vec![wire_event()],
            expected_version: Some(proto::append_request::ExpectedVersion::ExpectNoStream(false)),
            include_checkpoint: false,
        };
        let status = append_request(request).err().map(|s| s.message().to_string());
        assert!(status.is_some_and(|m| m.starts_with("expect_no_stream")));
    }

    #[test]
    fn timestamps_round_trip_including_before_1970() {
        for ns in [0, 1, -1, 1_795_392_000_123_456_789, -1_000_000_001] {
            let ts = proto_timestamp_ns(ns);
            assert!((0..1_000_000_000).contains(&ts.nanos));
            let back = timestamp(&ts).and_then(|t| t.timestamp_nanos_opt());
            assert_eq!(back, Some(ns));
        }
    }

    #[test]
    fn empty_content_type_means_json() {
        let request = proto::AppendRequest {
            events: vec![wire_event()],
            ..Default::default()
        };
        let converted = append_request(request).expect("valid");
        assert_eq!(converted.events[0].content_type, "application/json");
    }
}
