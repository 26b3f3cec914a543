//! [`ScanConfig`]: which rules run where, what is allowed through, and the
//! entropy settings; and why one is refused ([`ScanConfigError`]).
//!
//! Plain data, deserializable (`ledgerd` reads it from the `[secret_scan]`
//! section of its config file). The default scans every namespace with
//! every built-in rule and allows nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::Rule;

/// Default `entropy_threshold`, in bits per byte: below the 1st percentile
/// of random 32-hex-character values (3.25) and of random 16-character
/// base64 ones (3.38). `entropy.rs` explains why entropy is not the only
/// test.
pub const DEFAULT_ENTROPY_THRESHOLD: f64 = 3.0;

/// Default `min_entropy_length`: 16 bytes, 96 bits of base64.
pub const DEFAULT_MIN_ENTROPY_LENGTH: usize = 16;

/// The secret scan's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Scan at all (namespaces may override).
    pub enabled: bool,
    /// The rules that run; every built-in rule by default.
    pub rules: Vec<Rule>,
    /// Rules removed from `rules` (handier than listing the rest).
    pub disable_rules: Vec<Rule>,
    /// `high-entropy-secret`: least Shannon entropy, in bits per byte, of a
    /// value in a secret-looking field for it to count as a secret.
    pub entropy_threshold: f64,
    /// `high-entropy-secret`: shorter values are never secrets.
    pub min_entropy_length: usize,
    /// What passes even though a rule matches it, in every namespace.
    pub allow: AllowList,
    /// Per-namespace overrides, by namespace (the part of a stream name
    /// before its first `/`; `""` for streams without one).
    pub namespaces: BTreeMap<String, NamespaceScan>,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            enabled: true,
            rules: Rule::ALL.to_vec(),
            disable_rules: Vec::new(),
            entropy_threshold: DEFAULT_ENTROPY_THRESHOLD,
            min_entropy_length: DEFAULT_MIN_ENTROPY_LENGTH,
            allow: AllowList::default(),
            namespaces: BTreeMap::new(),
        }
    }
}

impl ScanConfig {
    /// Scanning turned off everywhere.
    pub fn disabled() -> ScanConfig {
        ScanConfig {
            enabled: false,
            ..ScanConfig::default()
        }
    }
}

/// One namespace's differences from the top-level settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamespaceScan {
    /// Overrides the top-level `enabled`.
    pub enabled: Option<bool>,
    /// Replaces the top-level rule set (before `disable_rules` of either
    /// level are removed from it).
    pub rules: Option<Vec<Rule>>,
    /// Rules removed in this namespace.
    pub disable_rules: Vec<Rule>,
    /// Allowed in this namespace, on top of the top-level allow-list.
    pub allow: AllowList,
}

/// What passes a matching rule.
///
/// A value is allowed when its bytes are listed: the credential a rule
/// matched or the whole string it sits in. List it as the lowercase hex
/// BLAKE3 hash (`value_hashes`, so the config never holds the secret), or
/// literally (`values`, meant for published example credentials such as
/// AWS's `AKIAIOSFODNN7EXAMPLE`). A path is allowed with everything below
/// it (`payload.examples` covers `payload.examples[0].token`); `[*]` stands
/// for any array index and `.*` for any plain key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowList {
    /// Field paths not reported, e.g. `payload.example_key`.
    pub paths: Vec<String>,
    /// Exact values not reported.
    pub values: Vec<String>,
    /// BLAKE3 hashes (64 lowercase hex digits) of values not reported.
    pub value_hashes: Vec<String>,
}

impl AllowList {
    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.values.is_empty() && self.value_hashes.is_empty()
    }
}

/// Why a [`ScanConfig`] is refused. Never names a listed value: those may
/// be secrets.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanConfigError {
    /// `entropy_threshold` is not a number of bits per byte (0 to 8).
    #[error("entropy_threshold: {0} is not between 0 and 8 bits per byte")]
    EntropyThreshold(f64),
    /// `min_entropy_length` is 0.
    #[error("min_entropy_length: must be greater than 0")]
    MinEntropyLength,
    /// An allow-list path can never match.
    #[error("{scope}allow.paths: {path:?} {reason}")]
    AllowPath {
        /// `""` or `namespaces.<name>.`.
        scope: String,
        /// The path as written.
        path: String,
        /// Why it cannot match.
        reason: String,
    },
    /// An allow-list value hash is not 64 hex digits.
    #[error("{scope}allow.value_hashes[{index}]: not a BLAKE3 hash (64 hex digits)")]
    ValueHash {
        /// `""` or `namespaces.<name>.`.
        scope: String,
        /// Position in the list.
        index: usize,
    },
    /// An allow-listed value is empty (it would match nothing).
    #[error("{scope}allow.values[{index}]: must not be empty")]
    EmptyValue {
        /// `""` or `namespaces.<name>.`.
        scope: String,
        /// Position in the list.
        index: usize,
    },
    /// A namespace name holds a `/`, so no stream is in it.
    #[error(
        "namespaces.{0:?}: a namespace is the part of a stream name before its first '/', so it cannot contain '/'"
    )]
    Namespace(String),
}
