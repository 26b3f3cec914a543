//! Threshold alerts: [`AlertRule`]s, the per (rule, series) [`AlertState`]
//! with its transition table, and the `alert.fired` / `alert.resolved`
//! events they emit.
//!
//! Emitted events depend only on the triggering record and the state: the
//! id is a UUIDv8 from BLAKE3 over the rule, the series, the window, the
//! transition and the triggering seq, and `occurred_at` is the triggering
//! observation's time. When the engine re-folds records after a restart
//! (state persisted before the events were appended, or after), the same
//! events come out with the same ids and the append is an idempotent no-op.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use ledger_verify::record::Metadata;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::config::ConfigError;
use super::rollup::{Granularity, Statistic};
use super::series::Matcher;
use crate::config::limits;
use crate::event::{Event, JSON};
use crate::record::Record;

/// Event type emitted when a rule's condition starts holding for a series.
pub const ALERT_FIRED: &str = "alert.fired";
/// Event type emitted when it stops holding.
pub const ALERT_RESOLVED: &str = "alert.resolved";
/// Stream of a rule's events: `alert/<rule name>`.
pub const ALERT_STREAM_PREFIX: &str = "alert/";

/// A threshold on one statistic of the windows of the matching series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique name, used in the stream (`alert/<name>`) and event ids: no
    /// whitespace or control characters, at most 250 bytes.
    pub name: String,
    /// The metric name it watches.
    pub metric: String,
    /// Label conditions a series must satisfy (all of them).
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Which windows it compares.
    pub granularity: Granularity,
    /// Which value of the window.
    pub statistic: Statistic,
    /// How the value is compared with the threshold.
    pub comparison: Comparison,
    /// The threshold (finite).
    pub threshold: f64,
    /// After an `alert.fired`, no other one for the same series until this
    /// much observation time has passed (ns, ≥ 0).
    #[serde(default)]
    pub cooldown_ns: i64,
}

/// `value <op> threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
}

impl Comparison {
    /// Whether `value <op> threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
        }
    }

    /// `>`, `>=`, `<` or `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        }
    }
}

impl AlertRule {
    /// Checks the fields a rule cannot work without.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Rule {
            rule: self.name.clone(),
            field,
            reason,
        };
        if self.name.is_empty() {
            return Err(invalid("name", "must not be empty".to_string()));
        }
        let max_name = limits::MAX_STREAM_BYTES - ALERT_STREAM_PREFIX.len();
        if self.name.len() > max_name {
            return Err(invalid(
                "name",
                format!("{} bytes, limit is {max_name}", self.name.len()),
            ));
        }
        if let Some(c) = self.name.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("name", format!("contains {c:?}; it names a stream")));
        }
        if self.metric.is_empty() {
            return Err(invalid("metric", "must not be empty".to_string()));
        }
        if self.matchers.iter().any(|m| m.label.is_empty()) {
            return Err(invalid("matchers", "a label name is empty".to_string()));
        }
        if !self.threshold.is_finite() {
            return Err(invalid("threshold", "must be finite".to_string()));
        }
        if self.cooldown_ns < 0 {
            return Err(invalid(
                "cooldown_ns",
                format!("must not be negative, got {}", self.cooldown_ns),
            ));
        }
        Ok(())
    }
}

/// Where one rule stands for one series.
///
/// Transitions, on each evaluation (a change of a window the rule watches,
/// not older than the last window evaluated):
///
/// | firing | condition | cooldown passed | action |
/// |---|---|---|---|
/// | no  | holds   | yes | emit `alert.fired`, firing |
/// | no  | holds   | no  | `suppressed += 1`, stays not firing |
/// | yes | fails   | –   | emit `alert.resolved`, not firing |
/// | any | same as state | – | nothing |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// The rule's name.
    pub rule: String,
    /// The series' metric name.
    pub name: String,
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Whether the condition holds and `alert.fired` was emitted.
    pub firing: bool,
    /// Start of the latest window evaluated (Unix ns); changes to older
    /// windows (late observations) are not evaluated.
    pub window_start_ns: i64,
    /// The statistic at the latest evaluation.
    pub value: f64,
    /// Observation time of the `alert.fired` of the current firing.
    pub firing_since_ns: Option<i64>,
    /// Observation time of the latest `alert.fired`: the cooldown's origin.
    pub last_fired_ns: Option<i64>,
    /// `alert.fired` events emitted.
    pub fired: u64,
    /// `alert.resolved` events emitted.
    pub resolved: u64,
    /// Evaluations where the condition held but the cooldown held the
    /// alert back.
    pub suppressed: u64,
    /// The latest event emitted, as evidence.
    pub last_transition: Option<AlertTransition>,
}

/// An emitted alert event and the record that caused it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertTransition {
    /// `alert.fired` or `alert.resolved`.
    pub event_type: String,
    /// The emitted event's id.
    pub event_id: String,
    /// Its `occurred_at` (Unix ns): the triggering observation's time.
    pub at_ns: i64,
    /// Seq of the triggering record.
    pub seq: u64,
    /// Hex record hash of the triggering record.
    pub record_hash: String,
}

/// A change of firing state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    Fired,
    Resolved,
}

impl Transition {
    fn event_type(self) -> &'static str {
        match self {
            Transition::Fired => ALERT_FIRED,
            Transition::Resolved => ALERT_RESOLVED,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Transition::Fired => "fired",
            Transition::Resolved => "resolved",
        }
    }
}

impl AlertState {
    /// The state before the first evaluation.
    pub(crate) fn new(rule: &str, name: &str, labels: &BTreeMap<String, String>, window_start_ns: i64) -> AlertState {
        AlertState {
            rule: rule.to_string(),
            name: name.to_string(),
            labels: labels.clone(),
            firing: false,
            window_start_ns,
            value: 0.0,
            firing_since_ns: None,
            last_fired_ns: None,
            fired: 0,
            resolved: 0,
            suppressed: 0,
            last_transition: None,
        }
    }

    /// Applies the transition table to window `window_start_ns` whose
    /// statistic is now `value`, after an observation at `time_ns`.
    pub(crate) fn evaluate(
        &mut self,
        rule: &AlertRule,
        window_start_ns: i64,
        value: f64,
        time_ns: i64,
    ) -> Option<Transition> {
        if window_start_ns < self.window_start_ns {
            return None;
        }
        self.window_start_ns = window_start_ns;
        self.value = value;
        let holds = rule.comparison.holds(value, rule.threshold);
        match (self.firing, holds) {
            (false, true) => {
                let cooling = self
                    .last_fired_ns
                    .is_some_and(|last| time_ns.saturating_sub(last) < rule.cooldown_ns);
                if cooling {
                    self.suppressed = self.suppressed.saturating_add(1);
                    return None;
                }
                self.firing = true;
                self.firing_since_ns = Some(time_ns);
                self.last_fired_ns = Some(time_ns);
                self.fired = self.fired.saturating_add(1);
                Some(Transition::Fired)
            }
            (true, false) => {
                self.firing = false;
                self.firing_since_ns = None;
                self.resolved = self.resolved.saturating_add(1);
                Some(Transition::Resolved)
            }
            _ => None,
        }
    }
}

/// Everything an alert event is built from.
pub(crate) struct AlertContext<'a> {
    pub(crate) rule: &'a AlertRule,
    pub(crate) series_key: &'a str,
    pub(crate) name: &'a str,
    pub(crate) labels: &'a BTreeMap<String, String>,
    pub(crate) window_start_ns: i64,
    pub(crate) value: f64,
    pub(crate) time_ns: i64,
    pub(crate) trigger: &'a Record,
}

impl AlertContext<'_> {
    /// The event for `transition`, and the evidence kept in the state.
    pub(crate) fn event(&self, transition: Transition) -> (Event, AlertTransition) {
        let rule = self.rule;
        let trigger = &self.trigger.header;
        let id = self.event_id(transition);
        let window_end_ns = self.window_start_ns.saturating_add(rule.granularity.width_ns());
        let record_hash = crate::projection::hex_hash(&self.trigger.record_hash);

        let labels: Map<String, Value> = self
            .labels
            .iter()
            .map(|(label, value)| (label.clone(), Value::from(value.as_str())))
            .collect();
        let payload = object([
            ("rule", Value::from(rule.name.as_str())),
            ("state", Value::from(transition.as_str())),
            (
                "series",
                object([("name", Value::from(self.name)), ("labels", Value::Object(labels))]),
            ),
            ("granularity", Value::from(rule.granularity.as_str())),
            (
                "window",
                object([
                    ("start", Value::from(rfc3339(self.window_start_ns))),
                    ("end", Value::from(rfc3339(window_end_ns))),
                    ("start_ns", Value::from(self.window_start_ns)),
                    ("end_ns", Value::from(window_end_ns)),
                ]),
            ),
            ("statistic", Value::from(rule.statistic.as_str())),
            ("comparison", Value::from(rule.comparison.as_str())),
            ("value", Value::from(self.value)),
            ("threshold", Value::from(rule.threshold)),
            (
                "trigger",
                object([
                    ("seq", Value::from(trigger.seq)),
                    ("record_hash", Value::from(record_hash.as_str())),
                    ("event_id", Value::from(self.trigger.event_id().to_string())),
                ]),
            ),
        ]);
        let event = Event {
            id,
            stream: format!("{ALERT_STREAM_PREFIX}{}", rule.name),
            event_type: transition.event_type().to_string(),
            occurred_at: DateTime::from_timestamp_nanos(self.time_ns),
            payload: payload.to_string().into_bytes(),
            content_type: JSON.to_string(),
            metadata: Metadata {
                correlation_id: trigger.event.metadata.correlation_id.clone(),
                causation_id: self.trigger.event_id().to_string(),
                trace_id: trigger.event.metadata.trace_id.clone(),
                extra: BTreeMap::new(),
            },
            signature: None,
        };
        let evidence = AlertTransition {
            event_type: transition.event_type().to_string(),
            event_id: id.to_string(),
            at_ns: self.time_ns,
            seq: trigger.seq,
            record_hash,
        };
        (event, evidence)
    }

    /// UUIDv8 from BLAKE3 (derive-key mode, so it can collide with no other
    /// use of BLAKE3 here) over length-prefixed fields.
    fn event_id(&self, transition: Transition) -> Uuid {
        let mut hasher = blake3::Hasher::new_derive_key("evidence-ledger metrics alert event id v1");
        for field in [
            self.rule.name.as_bytes(),
            self.series_key.as_bytes(),
            self.rule.granularity.as_str().as_bytes(),
            transition.as_str().as_bytes(),
        ] {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
        hasher.update(&self.window_start_ns.to_le_bytes());
        hasher.update(&self.trigger.header.seq.to_le_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
