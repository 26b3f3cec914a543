//! Secret scanning at ingest: an immutable log cannot un-leak a credential,
//! so a batch holding one is refused before anything of it is written.
//!
//! [`SecretScanner`] is built from a [`ScanConfig`] and checks an event's
//! payload and metadata against the built-in [`Rule`]s: PEM private keys,
//! cloud and SaaS tokens with known prefixes, JWTs, bearer credentials,
//! passwords in URLs, and random-looking values in fields whose names look
//! secret. JSON payloads are walked structurally (a hit names the field,
//! `payload.db.password`); other UTF-8 payloads are scanned as text
//! (`payload`); binary payloads only for private keys and known prefixes.
//! Metadata values are scanned under `metadata.<key>`.
//!
//! A hit ([`SecretHit`]) names the event, the field path and the rule, and
//! never carries the matched bytes: matches are byte ranges, checked
//! against the allow-list by hash and then dropped, so no error, status or
//! log line built from a hit can leak the credential.
//!
//! This module does no I/O and knows nothing of the writer: the ledger runs
//! it during stateless validation, on the caller's thread, before a batch
//! is queued for group commit.

mod config;
mod entropy;
mod fields;
mod json;
mod path;
mod rules;

use std::collections::{HashMap, HashSet};
use std::ops::{ControlFlow, Range};

use uuid::Uuid;

pub use config::{
    AllowList, DEFAULT_ENTROPY_THRESHOLD, DEFAULT_MIN_ENTROPY_LENGTH, NamespaceScan, ScanConfig, ScanConfigError,
};
pub use rules::Rule;

use crate::event::{Event, is_json};
use crate::namespace::namespace_of;
use fields::{FieldKind, classify};
use path::Segment;
use rules::{Params, RuleSet, is_high_entropy_secret, keyed_candidates, scan_text};

/// A credential found in an event. Holds where it is and which rule
/// matched, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "events[{index}] (id {event_id}): {field_path}{} matches secret rule {rule}; remove the credential (the value is not logged)",
    if *in_key { " (an object key)" } else { "" }
)]
pub struct SecretHit {
    /// Position of the event in its batch.
    pub index: usize,
    /// The event's id.
    pub event_id: Uuid,
    /// Where in the event: `payload`, `payload.db.password`,
    /// `payload.hosts[2].token`, `metadata.api_key`.
    pub field_path: String,
    /// The rule that matched.
    pub rule: Rule,
    /// The match is in an object key at `field_path`, not in a value.
    pub in_key: bool,
}

/// The compiled scan: a policy per namespace.
#[derive(Debug)]
pub struct SecretScanner {
    /// For namespaces without an override; `None` when scanning is off.
    default: Option<Policy>,
    /// Namespaces with an override.
    namespaces: HashMap<String, Option<Policy>>,
}

impl Default for SecretScanner {
    /// Every built-in rule, everywhere, nothing allowed.
    fn default() -> SecretScanner {
        // What `SecretScanner::new(&ScanConfig::default())` builds, without
        // its checks (there is nothing to check).
        let config = ScanConfig::default();
        SecretScanner {
            default: Some(Policy::new(&config, Rule::ALL.into_iter().collect(), Allow::default())),
            namespaces: HashMap::new(),
        }
    }
}

impl SecretScanner {
    /// Checks `config` and compiles it.
    pub fn new(config: &ScanConfig) -> Result<SecretScanner, ScanConfigError> {
        if !(0.0..=8.0).contains(&config.entropy_threshold) {
            return Err(ScanConfigError::EntropyThreshold(config.entropy_threshold));
        }
        if config.min_entropy_length == 0 {
            return Err(ScanConfigError::MinEntropyLength);
        }
        let top_allow = Allow::compile(&config.allow, "")?;
        let mut top_rules: RuleSet = config.rules.iter().copied().collect();
        for rule in &config.disable_rules {
            top_rules.remove(*rule);
        }
        let policy = |enabled: bool, rules: RuleSet, allow: Allow| {
            (enabled && !rules.is_empty()).then(|| Policy::new(config, rules, allow))
        };
        let mut namespaces = HashMap::with_capacity(config.namespaces.len());
        for (name, over) in &config.namespaces {
            if name.contains('/') {
                return Err(ScanConfigError::Namespace(name.clone()));
            }
            let mut rules = match &over.rules {
                Some(rules) => {
                    let mut set: RuleSet = rules.iter().copied().collect();
                    for rule in &config.disable_rules {
                        set.remove(*rule);
                    }
                    set
                }
                None => top_rules,
            };
            for rule in &over.disable_rules {
                rules.remove(*rule);
            }
            let mut allow = Allow::compile(&over.allow, &format!("namespaces.{name}."))?;
            allow.extend(&top_allow);
            namespaces.insert(
                name.clone(),
                policy(over.enabled.unwrap_or(config.enabled), rules, allow),
            );
        }
        Ok(SecretScanner {
            default: policy(config.enabled, top_rules, top_allow),
            namespaces,
        })
    }

    /// A scanner that scans nothing.
    pub fn disabled() -> SecretScanner {
        SecretScanner {
            default: None,
            namespaces: HashMap::new(),
        }
    }

    /// True when events of `stream` are scanned.
    pub fn scans(&self, stream: &str) -> bool {
        self.policy_for(stream).is_some()
    }

    /// Scans one event (`index` is its position in its batch, for the
    /// report). A payload declared JSON that does not parse is scanned as
    /// text.
    pub fn scan_event(&self, index: usize, event: &Event) -> Result<(), SecretHit> {
        let Some(policy) = self.policy_for(&event.stream) else {
            return Ok(());
        };
        let found = match policy.scan_event(event) {
            Ok(_) => None,
            Err(ScanStop::Secret(finding)) => Some(finding),
            Err(ScanStop::NotJson(_)) => policy
                .scan_text_payload(&event.payload)
                .or_else(|| policy.scan_metadata(event)),
        };
        match found {
            Some(finding) => Err(finding.into_hit(index, event.id)),
            None => Ok(()),
        }
    }

    /// Scans a batch; the first hit, in batch order.
    pub fn scan_batch(&self, events: &[Event]) -> Result<(), SecretHit> {
        events
            .iter()
            .enumerate()
            .try_for_each(|(index, event)| self.scan_event(index, event))
    }

    /// The scan as validation runs it: `Ok(true)` when the scan parsed the
    /// payload as JSON (so validation need not parse it again), and the
    /// parser's error when a payload declared JSON is not JSON.
    pub(crate) fn scan_for_append(&self, index: usize, event: &Event) -> Result<bool, ScanStop<SecretHit>> {
        let Some(policy) = self.policy_for(&event.stream) else {
            return Ok(false);
        };
        policy.scan_event(event).map_err(|stop| match stop {
            ScanStop::Secret(finding) => ScanStop::Secret(finding.into_hit(index, event.id)),
            ScanStop::NotJson(err) => ScanStop::NotJson(err),
        })
    }

    fn policy_for(&self, stream: &str) -> Option<&Policy> {
        if self.namespaces.is_empty() {
            return self.default.as_ref();
        }
        match self.namespaces.get(namespace_of(stream)) {
            Some(policy) => policy.as_ref(),
            None => self.default.as_ref(),
        }
    }
}

/// Why the scan of an event stopped.
#[derive(Debug)]
pub(crate) enum ScanStop<S> {
    /// A rule matched.
    Secret(S),
    /// The payload is declared JSON and is not.
    NotJson(serde_json::Error),
}

/// Where a rule matched, before the event is known.
#[derive(Debug)]
pub(crate) struct Finding {
    rule: Rule,
    path: String,
    in_key: bool,
}

impl Finding {
    fn into_hit(self, index: usize, event_id: Uuid) -> SecretHit {
        SecretHit {
            index,
            event_id,
            field_path: self.path,
            rule: self.rule,
            in_key: self.in_key,
        }
    }
}

/// The scan of one namespace.
#[derive(Debug)]
pub(crate) struct Policy {
    params: Params,
    /// `params` for binary payloads: known prefixes and PEM blocks only.
    binary: Params,
    allow: Allow,
    /// Shorter values cannot match a keyed rule, so their field name is
    /// not classified.
    min_keyed_len: usize,
    /// Shorter strings cannot match any rule and are not looked at.
    pub(crate) min_len: usize,
}

impl Policy {
    fn new(config: &ScanConfig, rules: RuleSet, allow: Allow) -> Policy {
        let params = Params {
            rules,
            entropy_threshold: config.entropy_threshold,
            min_entropy_length: config.min_entropy_length,
            assignments: true,
        };
        Policy {
            params,
            binary: Params {
                rules: rules.intersect(RuleSet::binary()),
                assignments: false,
                ..params
            },
            allow,
            // `<scheme> <8 credential bytes>` is the shortest keyed match.
            min_keyed_len: config.min_entropy_length.min(11),
            min_len: config.min_entropy_length.min(11).min(rules::MIN_TEXT_MATCH),
        }
    }

    fn scan_event(&self, event: &Event) -> Result<bool, ScanStop<Finding>> {
        let parsed_json = if event.payload.is_empty() {
            false
        } else if is_json(&event.content_type) {
            // Validation's own parse (its errors are what clients see);
            // the walk relies on it.
            if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(&event.payload) {
                return Err(ScanStop::NotJson(err));
            }
            if let Some(finding) = json::scan(self, &event.payload) {
                return Err(ScanStop::Secret(finding));
            }
            true
        } else {
            if let Some(finding) = self.scan_text_payload(&event.payload) {
                return Err(ScanStop::Secret(finding));
            }
            false
        };
        match self.scan_metadata(event) {
            Some(finding) => Err(ScanStop::Secret(finding)),
            None => Ok(parsed_json),
        }
    }

    /// A payload that is not (or not treated as) JSON: UTF-8 as text,
    /// anything else with the binary rules.
    fn scan_text_payload(&self, payload: &[u8]) -> Option<Finding> {
        let root = || "payload".to_string();
        match std::str::from_utf8(payload) {
            Ok(_) => self.scan_with(&self.params, payload, FieldKind::default(), &root, false),
            Err(_) => self.scan_with(&self.binary, payload, FieldKind::default(), &root, false),
        }
    }

    fn scan_metadata(&self, event: &Event) -> Option<Finding> {
        let metadata = &event.metadata;
        for (name, value) in [
            ("correlation_id", &metadata.correlation_id),
            ("causation_id", &metadata.causation_id),
            ("trace_id", &metadata.trace_id),
        ] {
            if let Some(finding) = self.scan_value(value.as_bytes(), None, &|| metadata_path(name), false) {
                return Some(finding);
            }
        }
        for (key, value) in &metadata.extra {
            if let Some(finding) = self.scan_value(key.as_bytes(), None, &|| "metadata".to_string(), true) {
                return Some(finding);
            }
            if let Some(finding) =
                self.scan_value(value.as_bytes(), Some(key.as_bytes()), &|| metadata_path(key), false)
            {
                return Some(finding);
            }
        }
        None
    }

    /// Scans one string: a JSON key or value, or a metadata key or value.
    /// `key` is the name of the field it is in; `path` names it, and is
    /// only called when a rule matches.
    pub(crate) fn scan_value(
        &self,
        value: &[u8],
        key: Option<&[u8]>,
        path: &dyn Fn() -> String,
        in_key: bool,
    ) -> Option<Finding> {
        let kind = match key {
            Some(key) if value.len() >= self.min_keyed_len => classify(key),
            _ => FieldKind::default(),
        };
        self.scan_with(&self.params, value, kind, path, in_key)
    }

    fn scan_with(
        &self,
        params: &Params,
        value: &[u8],
        kind: FieldKind,
        path: &dyn Fn() -> String,
        in_key: bool,
    ) -> Option<Finding> {
        if value.len() < rules::MIN_TEXT_MATCH && !kind.secret {
            return None;
        }
        let mut hit = None;
        let mut path_text: Option<String> = None;
        let mut value_allowed: Option<bool> = None;
        let mut sink = |rule: Rule, span: Range<usize>| {
            if !self.allow.is_empty() {
                let field_path = path_text.get_or_insert_with(path);
                if self.allow.covers_path(field_path)
                    || *value_allowed.get_or_insert_with(|| self.allow.covers_value(value))
                {
                    return ControlFlow::Break(());
                }
                if self.allow.covers_value(&value[span]) {
                    return ControlFlow::Continue(());
                }
            }
            hit = Some(rule);
            ControlFlow::Break(())
        };
        if keyed_candidates(kind, value, params, &mut sink).is_continue()
            && scan_text(value, params, &mut sink).is_continue()
            && is_high_entropy_secret(kind, value, params)
        {
            let _ = sink(Rule::HighEntropySecret, 0..value.len());
        }
        hit.map(|rule| Finding {
            rule,
            path: path_text.unwrap_or_else(path),
            in_key,
        })
    }
}

fn metadata_path(key: &str) -> String {
    let mut out = String::new();
    path::push(&mut out, Segment::Root("metadata"));
    path::push(&mut out, Segment::Key(key));
    out
}

/// A compiled allow-list: value hashes and path patterns.
#[derive(Debug, Default)]
struct Allow {
    hashes: HashSet<[u8; 32]>,
    paths: Vec<String>,
}

impl Allow {
    fn compile(list: &AllowList, scope: &str) -> Result<Allow, ScanConfigError> {
        let mut allow = Allow::default();
        for path in &list.paths {
            path::check_pattern(path).map_err(|reason| ScanConfigError::AllowPath {
                scope: scope.to_string(),
                path: path.clone(),
                reason,
            })?;
            allow.paths.push(path.clone());
        }
        for (index, value) in list.values.iter().enumerate() {
            if value.is_empty() {
                return Err(ScanConfigError::EmptyValue {
                    scope: scope.to_string(),
                    index,
                });
            }
            allow.hashes.insert(*blake3::hash(value.as_bytes()).as_bytes());
        }
        for (index, hash) in list.value_hashes.iter().enumerate() {
            let bad = || ScanConfigError::ValueHash {
                scope: scope.to_string(),
                index,
            };
            let bytes = hex::decode(hash).map_err(|_| bad())?;
            allow.hashes.insert(bytes.try_into().map_err(|_| bad())?);
        }
        Ok(allow)
    }

    fn extend(&mut self, other: &Allow) {
        self.hashes.extend(other.hashes.iter().copied());
        self.paths.extend(other.paths.iter().cloned());
    }

    fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.paths.is_empty()
    }

    fn covers_path(&self, field_path: &str) -> bool {
        self.paths.iter().any(|pattern| path::matches(pattern, field_path))
    }

    fn covers_value(&self, value: &[u8]) -> bool {
        !self.hashes.is_empty() && self.hashes.contains(blake3::hash(value).as_bytes())
    }
}

#[cfg(test)]
mod tests;
