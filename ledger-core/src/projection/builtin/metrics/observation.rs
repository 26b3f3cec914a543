//! The `metric.observed` payload: parsing and validation into an
//! [`Observation`], with faults that name the offending field.
//!
//! Valid payloads take one typed serde pass. Only a payload that fails it is
//! parsed a second time, as a generic JSON value, to say which field is
//! wrong: the common case pays for no diagnosis. This file knows nothing
//! about rollups.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::DateTime;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::projection::Fault;
use crate::projection::builtin::Text;

/// The event type this projection folds.
pub const METRIC_OBSERVED: &str = "metric.observed";

/// What an observed value means (see `docs/projections/metrics.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An increment (≥ 0) since the producer's previous report: `sum` is
    /// the total increase in the window.
    Counter,
    /// A sampled level: `last` is the level at the end of the window.
    Gauge,
    /// One measurement of a distribution (a latency, a size): the
    /// quantiles are the point.
    Histogram,
}

impl Kind {
    /// The name used in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A validated observation, borrowing its name and labels from the payload
/// where JSON escapes allow: the fold keeps them only for a new series (or
/// a rule watching the name), so copying them for every observation was
/// most of the parse's allocations.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observation<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) labels: BTreeMap<Text<'a>, Text<'a>>,
    /// Finite; `-0.0` normalised to `0.0` so min/max are order-independent.
    pub(crate) value: f64,
    pub(crate) kind: Kind,
    /// Unix nanoseconds: the payload's `time`, else the event's occurred_at.
    pub(crate) time_ns: i64,
}

impl Observation<'_> {
    /// The labels as the rows keep them.
    pub(crate) fn owned_labels(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .map(|(label, value)| (label.0.to_string(), value.0.to_string()))
            .collect()
    }
}

/// Parses and validates a `metric.observed` payload.
pub(crate) fn parse(payload: &[u8], occurred_at_ns: i64) -> Result<Observation<'_>, Fault> {
    let parsed: Payload = match serde_json::from_slice(payload) {
        Ok(parsed) => parsed,
        Err(err) => return Err(diagnose(payload, &err)),
    };
    if parsed.name.is_empty() {
        return Err(Fault::new("name: must not be empty"));
    }
    let labels = parsed.labels.unwrap_or_default();
    if let Some(value) = labels.get("") {
        return Err(Fault::new(format!(
            "labels: a label name is empty (value {:?})",
            value.0
        )));
    }
    if !parsed.value.is_finite() {
        return Err(Fault::new("value: must be a finite number"));
    }
    if parsed.kind == Kind::Counter && parsed.value < 0.0 {
        return Err(Fault::new(format!(
            "value: a counter reports an increment, which cannot be negative ({})",
            parsed.value
        )));
    }
    Ok(Observation {
        name: parsed.name,
        labels,
        // Adding +0.0 turns -0.0 into +0.0 and changes nothing else.
        value: parsed.value + 0.0,
        kind: parsed.kind,
        time_ns: parsed.time.map_or(occurred_at_ns, |time| time.0),
    })
}

const FIELDS: [&str; 5] = ["name", "labels", "value", "kind", "time"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    labels: Option<BTreeMap<Text<'a>, Text<'a>>>,
    value: f64,
    kind: Kind,
    #[serde(default)]
    time: Option<Time>,
}

/// `time`: RFC 3339 text or integer Unix nanoseconds.
struct Time(i64);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Time, D::Error> {
        deserializer.deserialize_any(TimeVisitor)
    }
}

struct TimeVisitor;

impl Visitor<'_> for TimeVisitor {
    type Value = Time;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TIME_EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, ns: i64) -> Result<Time, E> {
        Ok(Time(ns))
    }

    fn visit_u64<E: de::Error>(self, ns: u64) -> Result<Time, E> {
        i64::try_from(ns).map(Time).map_err(|_| E::custom(TIME_RANGE))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Time, E> {
        parse_rfc3339(text).map(Time).map_err(E::custom)
    }
}

const TIME_EXPECTED: &str = "an RFC 3339 string or integer Unix nanoseconds";
const TIME_RANGE: &str = "outside the years 1678..2262 (Unix nanoseconds must fit an i64)";

fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let time = DateTime::parse_from_rfc3339(text).map_err(|e| format!("{text:?} is not RFC 3339: {e}"))?;
    time.timestamp_nanos_opt().ok_or_else(|| TIME_RANGE.to_string())
}

/// Names the first wrong field of a payload the typed pass rejected.
fn diagnose(payload: &[u8], err: &serde_json::Error) -> Fault {
    let value: Value = match serde_json::from_slice(payload) {
        Ok(value) => value,
        Err(parse_err) => return Fault::new(format!("payload: not valid JSON: {parse_err}")),
    };
    let Some(object) = value.as_object() else {
        return Fault::new("payload: expected a JSON object");
    };
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Fault::new(format!("{unknown}: unknown field (expected {})", FIELDS.join(", ")));
    }
    match object.get("name") {
        None => return Fault::new("name: missing"),
        Some(Value::String(_)) => {}
        Some(_) => return Fault::new("name: expected a string"),
    }
    match object.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            if let Some((key, _)) = labels.iter().find(|(_, v)| !v.is_string()) {
                return Fault::new(format!("labels.{key}: expected a string"));
            }
        }
        Some(_) => return Fault::new("labels: expected an object of string values"),
    }
    match object.get("value") {
        None => return Fault::new("value: missing"),
        Some(Value::Number(_)) => {}
        Some(_) => return Fault::new("value: expected a number"),
    }
    match object.get("kind") {
        None => return Fault::new("kind: missing"),
        Some(Value::String(kind)) => {
            if !["counter", "gauge", "histogram"].contains(&kind.as_str()) {
                return Fault::new(format!(
                    "kind: unknown kind {kind:?} (expected counter, gauge or histogram)"
                ));
            }
        }
        Some(_) => return Fault::new("kind: expected a string"),
    }
    match object.get("time") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if let Err(reason) = parse_rfc3339(text) {
                return Fault::new(format!("time: {reason}"));
            }
        }
        Some(Value::Number(number)) if number.is_i64() => {}
        Some(Value::Number(number)) if number.is_u64() => return Fault::new(format!("time: {TIME_RANGE}")),
        Some(_) => return Fault::new(format!("time: expected {TIME_EXPECTED}")),
    }
    Fault::new(format!("payload: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_772_460_120_000_000_000; // 2026-03-02T14:02:00Z

    fn fault(payload: &str) -> String {
        match parse(payload.as_bytes(), AT) {
            Ok(observation) => panic!("{payload} parsed as {observation:?}"),
            Err(fault) => fault.0,
        }
    }

    #[test]
    fn a_full_payload_parses_and_time_defaults_to_occurred_at() -> Result<(), Fault> {
        let observation = parse(
            br#"{"name":"http_request_duration_ms","labels":{"service":"artifact-store","route":"/v2/"},"value":41.5,"kind":"histogram","time":"2026-03-02T14:02:07.25Z"}"#,
            AT,
        )?;
        assert_eq!(observation.name, "http_request_duration_ms");
        assert_eq!(
            observation.labels.get("service").map(AsRef::as_ref),
            Some("artifact-store")
        );
        assert_eq!((observation.value, observation.kind), (41.5, Kind::Histogram));
        assert_eq!(observation.time_ns, AT + 7_250_000_000);

        let minimal = parse(
            br#"{"name":"backup_bytes","value":-0.0,"kind":"gauge","labels":null,"time":null}"#,
            AT,
        )?;
        assert!(minimal.labels.is_empty());
        assert_eq!(minimal.time_ns, AT);
        assert!(minimal.value.is_sign_positive(), "-0.0 is normalised");

        let by_ns = parse(
            br#"{"name":"budget_usd","value":3,"kind":"counter","time":1772460127000000000}"#,
            AT,
        )?;
        assert_eq!(by_ns.time_ns, AT + 7_000_000_000);
        let before_1970 = parse(br#"{"name":"x","value":1,"kind":"gauge","time":-5}"#, AT)?;
        assert_eq!(before_1970.time_ns, -5);
        Ok(())
    }

    #[test]
    fn escaped_and_plain_text_parse_alike() -> Result<(), Fault> {
        let plain = parse(
            br#"{"name":"q\"s","labels":{"b":"2","a":"x\u0041"},"value":1,"kind":"gauge"}"#,
            AT,
        )?;
        assert_eq!(plain.name, "q\"s");
        let labels = plain.owned_labels();
        let expected: BTreeMap<String, String> = [("a", "xA"), ("b", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(labels, expected);
        assert!(matches!(plain.labels.get("b").map(|v| &v.0), Some(Cow::Borrowed("2"))));
        assert_eq!(
            fault(r#"{"name":"x","labels":{"":"v\n"},"value":1,"kind":"gauge"}"#),
            "labels: a label name is empty (value \"v\\n\")"
        );
        Ok(())
    }

    #[test]
    fn every_malformed_field_is_named() {
        let cases = [
            (r#"not json"#, "payload: not valid JSON"),
            (r#"[1,2]"#, "payload: expected a JSON object"),
            (r#"{"value":1,"kind":"gauge"}"#, "name: missing"),
            (r#"{"name":7,"value":1,"kind":"gauge"}"#, "name: expected a string"),
            (r#"{"name":"","value":1,"kind":"gauge"}"#, "name: must not be empty"),
            (
                r#"{"name":"x","labels":["a"],"value":1,"kind":"gauge"}"#,
                "labels: expected an object",
            ),
            (
                r#"{"name":"x","labels":{"region":3},"value":1,"kind":"gauge"}"#,
                "labels.region: expected a string",
            ),
            (
                r#"{"name":"x","labels":{"":"a"},"value":1,"kind":"gauge"}"#,
                "labels: a label name is empty",
            ),
            (r#"{"name":"x","kind":"gauge"}"#, "value: missing"),
            (
                r#"{"name":"x","value":"12","kind":"gauge"}"#,
                "value: expected a number",
            ),
            (
                r#"{"name":"x","value":-2,"kind":"counter"}"#,
                "value: a counter reports an increment",
            ),
            (r#"{"name":"x","value":1}"#, "kind: missing"),
            (
                r#"{"name":"x","value":1,"kind":"summary"}"#,
                "kind: unknown kind \"summary\"",
            ),
            (r#"{"name":"x","value":1,"kind":2}"#, "kind: expected a string"),
            (
                r#"{"name":"x","value":1,"kind":"gauge","time":"yesterday"}"#,
                "time: \"yesterday\" is not RFC 3339",
            ),
            (
                r#"{"name":"x","value":1,"kind":"gauge","time":1.5}"#,
                "time: expected an RFC 3339 string",
            ),
            (
                r#"{"name":"x","value":1,"kind":"gauge","time":18446744073709551615}"#,
                "time: outside the years",
            ),
            (
                r#"{"name":"x","value":1,"kind":"gauge","time":"9999-01-01T00:00:00Z"}"#,
                "time: outside the years",
            ),
            (
                r#"{"name":"x","lables":{},"value":1,"kind":"gauge"}"#,
                "lables: unknown field",
            ),
        ];
        for (payload, expected) in cases {
            let fault = fault(payload);
            assert!(
                fault.starts_with(expected),
                "{payload}: {fault:?} should start with {expected:?}"
            );
        }
    }
}
