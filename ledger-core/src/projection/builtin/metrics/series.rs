//! Series identity (a metric name plus its sorted labels), the row kept per
//! series, label [`Matcher`]s, and the string keys rows are stored under.
//!
//! Keys are built from JSON text (`["name",{"label":"value"}]`), which is
//! unambiguous for any name or label without an escaping scheme of our own;
//! labels come from a `BTreeMap`, so they are sorted by name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::config::ConfigError;
use super::observation::Kind;

/// One series: every observation with the same name and labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Metric name, e.g. `http_request_duration_ms`.
    pub name: String,
    /// Label name → value, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The kind of its first observation; later ones must agree.
    pub kind: Kind,
    /// Observations rolled up.
    pub observations: u64,
    /// Earliest observation time (Unix ns).
    pub first_time_ns: i64,
    /// Latest observation time (Unix ns).
    pub last_time_ns: i64,
    /// Lowest seq of an observation rolled up.
    pub first_seq: u64,
    /// Highest seq of an observation rolled up.
    pub last_seq: u64,
    /// Observations of this series with another kind: not rolled up, since
    /// mixing counter increments with gauge levels means nothing.
    pub kind_conflicts: u64,
    /// The latest of them, as evidence.
    pub last_kind_conflict: Option<KindConflict>,
}

/// An observation whose kind disagreed with its series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindConflict {
    /// Its record.
    pub seq: u64,
    /// Hex BLAKE3 record hash.
    pub record_hash: String,
    /// The kind it claimed.
    pub kind: Kind,
}

/// A condition on one label, as in PromQL: `label=value` or `label!=value`.
///
/// `!=` also matches series without the label.
///
/// Deserialises from `{"label": …, "op": "=" | "!=", "value": …}` or from
/// the text form `"label=value"` / `"label!=value"` (handier in a TOML
/// config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MatcherForm")]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// `=` or `!=`.
    pub op: MatchOp,
    /// Value compared exactly.
    pub value: String,
}

/// The forms a [`Matcher`] deserialises from.
#[derive(Deserialize)]
#[serde(untagged)]
enum MatcherForm {
    Text(String),
    #[serde(rename_all = "lowercase")]
    Full {
        label: String,
        op: MatchOp,
        value: String,
    },
}

impl TryFrom<MatcherForm> for Matcher {
    type Error = ConfigError;

    fn try_from(form: MatcherForm) -> Result<Matcher, ConfigError> {
        match form {
            MatcherForm::Text(text) => text.parse(),
            MatcherForm::Full { label, .. } if label.is_empty() => Err(ConfigError::Matcher {
                input: String::new(),
                reason: "the label name is empty".to_string(),
            }),
            MatcherForm::Full { label, op, value } => Ok(Matcher { label, op, value }),
        }
    }
}

/// How a [`Matcher`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    /// The label is present with this value.
    #[serde(rename = "=")]
    Eq,
    /// The label is absent or has another value.
    #[serde(rename = "!=")]
    Ne,
}

impl Matcher {
    /// `label=value`.
    pub fn eq(label: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            label: label.into(),
            op: MatchOp::Eq,
            value: value.into(),
        }
    }

    /// `label!=value`.
    pub fn ne(label: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            label: label.into(),
            op: MatchOp::Ne,
            value: value.into(),
        }
    }

    /// Whether a series with `labels` satisfies it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let equal = labels.get(&self.label) == Some(&self.value);
        match self.op {
            MatchOp::Eq => equal,
            MatchOp::Ne => !equal,
        }
    }
}

/// Parses `label=value` or `label!=value` (the CLI form).
impl FromStr for Matcher {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Matcher, ConfigError> {
        let invalid = |reason: &str| ConfigError::Matcher {
            input: text.to_string(),
            reason: reason.to_string(),
        };
        let (label, op, value) = match text.split_once("!=") {
            Some((label, value)) => (label, MatchOp::Ne, value),
            None => {
                let (label, value) = text
                    .split_once('=')
                    .ok_or_else(|| invalid("expected label=value or label!=value"))?;
                (label, MatchOp::Eq, value)
            }
        };
        if label.is_empty() {
            return Err(invalid("the label name is empty"));
        }
        Ok(Matcher {
            label: label.to_string(),
            op,
            value: value.to_string(),
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
        };
        write!(f, "{}{op}{}", self.label, self.value)
    }
}

/// Whether `labels` satisfy every matcher.
pub(crate) fn matches_all(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

/// The key of a series: `["name",{"label":"value",...}]`.
pub(crate) fn series_key<K: AsRef<str>, V: AsRef<str>>(name: &str, labels: &BTreeMap<K, V>) -> String {
    let mut key = String::with_capacity(
        8 + name.len()
            + labels
                .iter()
                .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 6)
                .sum::<usize>(),
    );
    key.push('[');
    push_json_string(&mut key, name);
    key.push_str(",{");
    for (index, (label, value)) in labels.iter().enumerate() {
        if index > 0 {
            key.push(',');
        }
        push_json_string(&mut key, label.as_ref());
        key.push(':');
        push_json_string(&mut key, value.as_ref());
    }
    key.push_str("}]");
    key
}

/// The prefix shared by the keys of every series named `name`.
pub(crate) fn name_prefix(name: &str) -> String {
    let mut prefix = String::with_capacity(name.len() + 4);
    prefix.push('[');
    push_json_string(&mut prefix, name);
    prefix.push(',');
    prefix
}

/// Appends `text` as a JSON string literal (the escapes serde_json uses).
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    // Most names and labels need no escape: copied in one go.
    if !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The key of a row about a window: `hex(start) | series key`, so rows sort
/// by window start first (retention drops from the front) and the start
/// prefix finds every series of one window.
pub(crate) fn window_key(start_ns: i64, series_key: &str) -> String {
    let mut key = String::with_capacity(17 + series_key.len());
    write_window_key(&mut key, start_ns, series_key);
    key
}

/// [`window_key`] into `key` (cleared first): the fold builds three per
/// observation and allocates only for a new row.
pub(crate) fn write_window_key(key: &mut String, start_ns: i64, series_key: &str) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    key.clear();
    // `start_ns` as 16 hex digits that sort like the signed value; by
    // hand, as `write!` through the formatter cost more than the lookup
    // the key serves (three per observation).
    let ordered = (start_ns as u64) ^ (1 << 63);
    for shift in (0..16).rev() {
        key.push(char::from(DIGITS[((ordered >> (shift * 4)) & 0xf) as usize]));
    }
    key.push('|');
    key.push_str(series_key);
}

/// The window start of a [`window_key`].
pub(crate) fn window_of_key(key: &str) -> Option<i64> {
    let hex = key.get(..16)?;
    let ordered = u64::from_str_radix(hex, 16).ok()?;
    Some((ordered ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_deserialise_from_text_or_fields() {
        let parsed: Vec<Matcher> =
            serde_json::from_str(r#"["service=api", "region!=eu", {"label": "az", "op": "!=", "value": "b"}]"#)
                .unwrap();
        assert_eq!(
            parsed,
            [
                Matcher::eq("service", "api"),
                Matcher::ne("region", "eu"),
                Matcher::ne("az", "b")
            ]
        );
        for bad in [
            r#""noequals""#,
            r#""=api""#,
            r#"{"label": "", "op": "=", "value": "x"}"#,
            r#"{"label": "a", "op": "~", "value": "x"}"#,
        ] {
            assert!(serde_json::from_str::<Matcher>(bad).is_err(), "{bad} must be refused");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn keys_are_unambiguous_and_sort_by_window() {
        let a = series_key("x", &labels(&[("a", "b,c")]));
        let b = series_key("x", &labels(&[("a", "b"), ("c", "")]));
        assert_ne!(a, b);
        assert_eq!(a, r#"["x",{"a":"b,c"}]"#);
        // The same text serde_json writes, so keys read as JSON.
        let odd = labels(&[("a\"b", "c\\d\n\u{1}\u{8}\u{c}\té")]);
        let key = series_key("x\u{7f}", &odd);
        assert_eq!(
            serde_json::from_str::<(String, BTreeMap<String, String>)>(&key).ok(),
            Some(("x\u{7f}".to_string(), odd.clone()))
        );
        assert_eq!(key, serde_json::to_string(&("x\u{7f}", &odd)).unwrap());
        assert!(series_key("x\",", &BTreeMap::<String, String>::new()).starts_with(&name_prefix("x\",")));
        assert!(!series_key("x\",", &BTreeMap::<String, String>::new()).starts_with(&name_prefix("x")));

        let starts = [i64::MIN, -60_000_000_000, -1, 0, 1, 60_000_000_000, i64::MAX];
        let keys: Vec<String> = starts.iter().map(|&s| window_key(s, &a)).collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "{keys:?}");
        let decoded: Vec<Option<i64>> = keys.iter().map(|k| window_of_key(k)).collect();
        assert_eq!(decoded, starts.map(Some));
        // The stored layout: 16 lowercase hex digits of the start with its
        // sign bit flipped, a bar, the series key.
        for (start, key) in starts.iter().zip(&keys) {
            assert_eq!(*key, format!("{:016x}|{a}", (*start as u64) ^ (1 << 63)));
        }
    }

    #[test]
    fn matchers_parse_and_match_like_promql() -> Result<(), ConfigError> {
        let series = labels(&[("service", "artifact-store"), ("region", "eu-west-1")]);
        let eq: Matcher = "service=artifact-store".parse()?;
        let ne: Matcher = "region!=us-east-1".parse()?;
        let absent: Matcher = "canary!=true".parse()?;
        assert_eq!(eq, Matcher::eq("service", "artifact-store"));
        assert_eq!(ne.to_string(), "region!=us-east-1");
        assert!(matches_all(&[eq, ne, absent], &series));
        assert!(!Matcher::eq("canary", "true").matches(&series));
        assert!(!Matcher::ne("region", "eu-west-1").matches(&series));
        assert!("service".parse::<Matcher>().is_err());
        assert!("=x".parse::<Matcher>().is_err());
        Ok(())
    }
}
