//! How records, receipts and checkpoints are printed: short text lines for
//! people, one JSON object per line with `--json` for programs.

use crate::proto;
use base64::Engine as _;
use serde_json::{Value, json};

fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Value {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)))
        .unwrap_or(Value::Null)
}

pub fn receipt_json(receipt: &proto::Receipt, deduplicated: bool) -> Value {
    json!({
        "event_id": receipt.event_id,
        "seq": receipt.seq,
        "stream_version": receipt.stream_version,
        "record_hash": hex::encode(&receipt.record_hash),
        "recorded_at": rfc3339(receipt.recorded_at.as_ref()),
        "deduplicated": deduplicated,
    })
}

pub fn receipt_text(receipt: &proto::Receipt, deduplicated: bool) -> String {
    format!(
        "{} seq {}  version {}  record {}  id {}",
        if deduplicated { "dedup " } else { "append" },
        receipt.seq,
        receipt.stream_version,
        hex::encode(&receipt.record_hash),
        receipt.event_id
    )
}

fn payload_value(event: &proto::Event) -> (&'static str, Value) {
    let is_json = event.content_type.is_empty() || event.content_type.starts_with("application/json");
    if is_json && let Ok(value) = serde_json::from_slice::<Value>(&event.payload) {
        return ("payload", value);
    }
    (
        "payload_base64",
        Value::String(base64::engine::general_purpose::STANDARD.encode(&event.payload)),
    )
}

pub fn record_json(record: &proto::Record) -> Value {
    let event = record.event.clone().unwrap_or_default();
    let (payload_key, payload) = payload_value(&event);
    let metadata = event.metadata.clone().unwrap_or_default();
    let mut value = json!({
        "seq": record.seq,
        "stream_version": record.stream_version,
        "recorded_at": rfc3339(record.recorded_at.as_ref()),
        "event_id": event.id,
        "stream": event.stream,
        "type": event.r#type,
        "occurred_at": rfc3339(event.occurred_at.as_ref()),
        "content_type": event.content_type,
        "metadata": {
            "correlation_id": metadata.correlation_id,
            "causation_id": metadata.causation_id,
            "trace_id": metadata.trace_id,
            "extra": metadata.extra,
        },
        "payload_hash": hex::encode(&record.payload_hash),
        "prev_hash": hex::encode(&record.prev_hash),
        "record_hash": hex::encode(&record.record_hash),
    });
    value[payload_key] = payload;
    if let Some(sig) = &event.signature {
        value["signature"] = json!({"key_id": sig.key_id, "signature": hex::encode(&sig.signature)});
    }
    value
}

pub fn record_text(record: &proto::Record) -> String {
    let event = record.event.clone().unwrap_or_default();
    let (_, payload) = payload_value(&event);
    let mut payload = payload.to_string();
    if payload.len() > 120 {
        let mut end = 117;
        while !payload.is_char_boundary(end) {
            end -= 1;
        }
        payload.truncate(end);
        payload.push_str("...");
    }
    format!(
        "{:>8}  {}  {}@{}  {}  {}",
        record.seq,
        rfc3339(record.recorded_at.as_ref()).as_str().unwrap_or("?"),
        event.stream,
        record.stream_version,
        event.r#type,
        payload
    )
}

pub fn checkpoint_json(checkpoint: &proto::Checkpoint) -> Value {
    json!({
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "root": hex::encode(&checkpoint.root),
        "chain_head": hex::encode(&checkpoint.chain_head),
        "recorded_at": rfc3339(checkpoint.recorded_at.as_ref()),
        "note": checkpoint.note,
    })
}
