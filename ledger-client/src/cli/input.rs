//! Events from flags or JSON Lines.
//!
//! One JSON object per line:
//! `{"stream": "...", "type": "...", "payload": <any JSON>, "id": "<uuid>",
//!   "occurred_at": "<RFC 3339>", "content_type": "...",
//!   "payload_base64": "...", "metadata": {"correlation_id": "...",
//!   "causation_id": "...", "trace_id": "...", "extra": {"k": "v"}}}`.
//! `stream` and `type` are required; `id` defaults to a fresh UUIDv7 and
//! `occurred_at` to now. `payload` is re-serialised compactly; give
//! `payload_base64` (with a `content_type`) for non-JSON bytes.

use std::collections::HashMap;

use crate::proto;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    pub id: Option<String>,
    pub stream: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub occurred_at: Option<String>,
    pub payload: Option<serde_json::Value>,
    pub payload_base64: Option<String>,
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: MetadataLine,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataLine {
    #[serde(default)]
    pub correlation_id: String,
    #[serde(default)]
    pub causation_id: String,
    #[serde(default)]
    pub trace_id: String,
    #[serde(default)]
    pub extra: HashMap<String, String>,
}

impl EventLine {
    /// The wire event; errors name the field.
    pub fn into_event(self) -> anyhow::Result<proto::Event> {
        let stream = self.stream.filter(|s| !s.is_empty()).context("stream: required")?;
        let event_type = self.event_type.filter(|s| !s.is_empty()).context("type: required")?;
        let id = match self.id {
            Some(id) => uuid::Uuid::parse_str(&id)
                .map_err(|e| anyhow::anyhow!("id: not a UUID: {e}"))?
                .to_string(),
            None => uuid::Uuid::now_v7().to_string(),
        };
        let occurred_at = match self.occurred_at {
            Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map_err(|e| anyhow::anyhow!("occurred_at: not RFC 3339: {e}"))?
                .with_timezone(&chrono::Utc),
            None => chrono::Utc::now(),
        };
        let payload = match (self.payload, self.payload_base64) {
            (Some(_), Some(_)) => bail!("payload, payload_base64: give one of them"),
            (Some(value), None) => serde_json::to_vec(&value)?,
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| anyhow::anyhow!("payload_base64: {e}"))?,
            (None, None) => b"{}".to_vec(),
        };
        let m = self.metadata;
        let has_metadata =
            !(m.correlation_id.is_empty() && m.causation_id.is_empty() && m.trace_id.is_empty() && m.extra.is_empty());
        Ok(proto::Event {
            id,
            stream,
            r#type: event_type,
            occurred_at: Some(crate::timestamp(occurred_at)),
            payload,
            content_type: self.content_type.unwrap_or_default(),
            metadata: has_metadata.then_some(proto::Metadata {
                correlation_id: m.correlation_id,
                causation_id: m.causation_id,
                trace_id: m.trace_id,
                extra: m.extra,
            }),
            signature: None,
        })
    }
}

/// Parses one JSON Lines line.
pub fn parse_line(line: &str) -> anyhow::Result<proto::Event> {
    let parsed: EventLine = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("not a JSON event: {e}"))?;
    parsed.into_event()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_line() {
        let event = parse_line(
            r#"{"id":"0196a000-0000-7000-8000-000000000001","stream":"service/registry","type":"ops.backup_verified","occurred_at":"2026-11-23T10:00:00.5Z","payload":{"ok": true},"metadata":{"correlation_id":"CUST-WP-0051","extra":{"hub":"ops"}}}"#,
        )
        .expect("valid line");
        assert_eq!(event.id, "0196a000-0000-7000-8000-000000000001");
        assert_eq!(event.payload, br#"{"ok":true}"#);
        assert_eq!(event.occurred_at.map(|t| t.nanos), Some(500_000_000));
        assert_eq!(
            event.metadata.map(|m| m.correlation_id).as_deref(),
            Some("CUST-WP-0051")
        );
    }

    #[test]
    fn names_what_is_wrong() {
        let err = |line: &str| parse_line(line).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err(r#"{"type":"t"}"#), "stream: required");
        assert_eq!(err(r#"{"stream":"s"}"#), "type: required");
        assert!(err(r#"{"stream":"s","type":"t","id":"x"}"#).starts_with("id: not a UUID"));
        assert!(err(r#"{"stream":"s","type":"t","occurred_at":"yesterday"}"#).starts_with("occurred_at"));
        assert!(err(r#"{"stream":"s","type":"t","colour":"red"}"#).contains("unknown field `colour`"));
        assert!(err("not json").starts_with("not a JSON event"));
    }
}
