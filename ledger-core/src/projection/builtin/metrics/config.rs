//! [`MetricsConfig`]: the alert rules and the minute retention a
//! [`Metrics`](super::Metrics) projection is built with, and why one is
//! refused ([`ConfigError`]).
//!
//! Configuration is not state: it is not persisted, and `fresh()` copies
//! it. State folded under one configuration is only reproduced by a replay
//! under the same one, so change rules or retention together with a replay.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rules::AlertRule;

/// Minute rows are kept this long behind the newest observation: 7 days.
pub const DEFAULT_MINUTE_RETENTION_NS: i64 = 7 * 86_400 * 1_000_000_000;

/// How a [`Metrics`](super::Metrics) projection rolls up and alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Threshold rules, evaluated whenever a window they watch changes.
    pub rules: Vec<AlertRule>,
    /// Minute rows whose window ended this long (or longer) before the
    /// newest observation time seen are dropped; hours and days are kept.
    pub minute_retention_ns: i64,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            rules: Vec::new(),
            minute_retention_ns: DEFAULT_MINUTE_RETENTION_NS,
        }
    }
}

impl MetricsConfig {
    /// Checks every rule and the retention.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.minute_retention_ns <= 0 {
            return Err(ConfigError::Retention(self.minute_retention_ns));
        }
        let mut names = BTreeSet::new();
        for rule in &self.rules {
            rule.validate()?;
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError::DuplicateRule(rule.name.clone()));
            }
        }
        Ok(())
    }
}

/// Why a configuration (or a matcher given on a command line) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field of a rule is invalid.
    #[error("rule {rule:?}: {field}: {reason}")]
    Rule {
        /// The rule's name.
        rule: String,
        /// The field, e.g. `threshold`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Two rules share a name (alert state and event ids are keyed by it).
    #[error("rule {0:?} is defined twice")]
    DuplicateRule(String),
    /// The minute retention is not positive.
    #[error("minute_retention_ns: must be positive, got {0}")]
    Retention(i64),
    /// A label matcher does not parse.
    #[error("matcher {input:?}: {reason}")]
    Matcher {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}
