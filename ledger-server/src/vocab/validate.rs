//! Checks a JSON value against a compiled [`Schema`] and reports the first
//! [`Violation`]: where (`payload.checks[2].status`) and which rule.
//!
//! Deterministic: within a value, `type` comes first, then `const`, `enum`,
//! the kind's own keywords, then for arrays the items in index order and
//! for objects `required`, declared properties in name order, and
//! undeclared properties in name order. The same payload always gets the
//! same message, whatever map order serde_json was built with.
//!
//! A violation never quotes the payload's values (they may hold secrets):
//! only the schema's own values (`enum`, `const`, bounds), the types seen,
//! and property names.
//!
//! The success path allocates nothing; the path is built only on failure,
//! frame by frame on the way back up.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::json::{self, JsonType};
use super::schema::{CountBounds, Node, NumberBounds, ObjectRules, Rules, Schema};

/// The root of every violation path.
pub const ROOT: &str = "payload";

/// Most `enum` values a violation lists before eliding the rest.
const MAX_LISTED_VALUES: usize = 16;

/// The first rule a value breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {rule}")]
pub struct Violation {
    /// Where, from [`ROOT`]: `payload`, `payload.checks[2].status`,
    /// `payload["trace-id"]` (names that are not identifiers are quoted).
    pub path: String,
    /// Why, without the offending value: `expected integer, got string`,
    /// `required property "service" is missing`.
    pub rule: String,
}

impl Schema {
    /// Checks `value`; the error is the first violation in the order the
    /// module documentation gives.
    pub fn validate(&self, value: &Value) -> Result<(), Violation> {
        check(&self.root, value).map_err(Failure::into_violation)
    }
}

/// A violation on its way up: steps are pushed innermost first.
#[derive(Debug)]
struct Failure<'a> {
    steps: Vec<Step<'a>>,
    rule: String,
}

#[derive(Debug)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Failure<'a> {
    fn new(rule: String) -> Failure<'a> {
        Failure {
            steps: Vec::new(),
            rule,
        }
    }

    fn at(mut self, step: Step<'a>) -> Failure<'a> {
        self.steps.push(step);
        self
    }

    fn into_violation(self) -> Violation {
        let mut path = String::from(ROOT);
        for step in self.steps.iter().rev() {
            match step {
                Step::Key(key) if is_identifier(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Key(key) => path.push_str(&format!("[{key:?}]")),
                Step::Index(idx) => path.push_str(&format!("[{idx}]")),
            }
        }
        Violation { path, rule: self.rule }
    }
}

type Checked<'a> = Result<(), Failure<'a>>;

fn fail<'a>(rule: String) -> Checked<'a> {
    Err(Failure::new(rule))
}

fn check<'a>(node: &'a Node, value: &'a Value) -> Checked<'a> {
    let rules = match node {
        Node::Any => return Ok(()),
        Node::Never => return fail("no value is allowed here (the schema is false)".to_string()),
        Node::Rules(rules) => rules,
    };
    if let Some(types) = rules.types
        && !types.accepts(value)
    {
        return fail(format!("expected {types}, got {}", JsonType::of(value).name()));
    }
    if let Some(constant) = &rules.constant
        && !json::json_eq(constant, value)
    {
        return fail(format!("must equal {constant}"));
    }
    if let Some(values) = &rules.enumeration
        && !values.iter().any(|allowed| json::json_eq(allowed, value))
    {
        return fail(format!("must be one of {}", list(values)));
    }
    match value {
        Value::Number(n) => check_number(&rules.number, n),
        Value::String(s) => check_length(rules.length, s),
        Value::Array(items) => check_array(rules, items),
        Value::Object(map) => match &rules.object {
            Some(object) => check_object(object, map),
            None => Ok(()),
        },
        Value::Null | Value::Bool(_) => Ok(()),
    }
}

fn check_number<'a>(bounds: &NumberBounds, n: &Number) -> Checked<'a> {
    // `cmp_numbers` is None only for NaN, which JSON cannot carry: refuse.
    let cmp = |bound: &Number| json::cmp_numbers(n, bound);
    if let Some(min) = &bounds.minimum
        && !matches!(cmp(min), Some(Ordering::Greater | Ordering::Equal))
    {
        return fail(format!("must be at least {min}"));
    }
    if let Some(max) = &bounds.maximum
        && !matches!(cmp(max), Some(Ordering::Less | Ordering::Equal))
    {
        return fail(format!("must be at most {max}"));
    }
    if let Some(min) = &bounds.exclusive_minimum
        && cmp(min) != Some(Ordering::Greater)
    {
        return fail(format!("must be greater than {min}"));
    }
    if let Some(max) = &bounds.exclusive_maximum
        && cmp(max) != Some(Ordering::Less)
    {
        return fail(format!("must be less than {max}"));
    }
    Ok(())
}

/// Lengths in Unicode scalar values; the byte length settles most cases
/// without counting (a string has at least as many bytes as chars).
fn check_length<'a>(bounds: CountBounds, s: &str) -> Checked<'a> {
    if bounds == CountBounds::default() {
        return Ok(());
    }
    let bytes = s.len() as u64;
    if let Some(min) = bounds.min
        && (bytes < min || (s.chars().count() as u64) < min)
    {
        return fail(format!("shorter than {min} characters"));
    }
    if let Some(max) = bounds.max
        && bytes > max
        && (s.chars().count() as u64) > max
    {
        return fail(format!("longer than {max} characters"));
    }
    Ok(())
}

fn check_array<'a>(rules: &'a Rules, items: &'a [Value]) -> Checked<'a> {
    let len = items.len() as u64;
    if let Some(min) = rules.item_count.min
        && len < min
    {
        return fail(format!("fewer than {min} items"));
    }
    if let Some(max) = rules.item_count.max
        && len > max
    {
        return fail(format!("more than {max} items"));
    }
    if let Some(node) = &rules.items {
        for (idx, item) in items.iter().enumerate() {
            check(node, item).map_err(|failure| failure.at(Step::Index(idx)))?;
        }
    }
    Ok(())
}

fn check_object<'a>(object: &'a ObjectRules, map: &'a Map<String, Value>) -> Checked<'a> {
    for name in &object.required {
        if !map.contains_key(name) {
            return fail(format!("required property {name:?} is missing"));
        }
    }
    for (name, node) in &object.properties {
        if let Some(value) = map.get(name) {
            check(node, value).map_err(|failure| failure.at(Step::Key(name)))?;
        }
    }
    let additional = match &object.additional {
        None | Some(Node::Any) => return Ok(()),
        Some(node) => node,
    };
    // The smallest failing undeclared name, whatever order the map
    // iterates in: later names that sort after it are not even checked.
    let mut first: Option<(&'a str, Failure<'a>)> = None;
    for (key, value) in map {
        if object.property(key).is_some() || first.as_ref().is_some_and(|(best, _)| *best <= key.as_str()) {
            continue;
        }
        let failure = match additional {
            Node::Never => Failure::new(format!("additional property {key:?} is not allowed")),
            node => match check(node, value) {
                Ok(()) => continue,
                Err(failure) => failure.at(Step::Key(key)),
            },
        };
        first = Some((key, failure));
    }
    match first {
        Some((_, failure)) => Err(failure),
        None => Ok(()),
    }
}

/// `["ok","fail"]`: JSON, so strings read as they are written in the
/// schema; long lists are elided.
fn list(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().take(MAX_LISTED_VALUES).map(Value::to_string).collect();
    let mut out = format!("[{}", shown.join(","));
    if values.len() > MAX_LISTED_VALUES {
        out.push_str(&format!(",... ({} more)", values.len() - MAX_LISTED_VALUES));
    }
    out.push(']');
    out
}

/// Names printed bare after a dot: ASCII letters, digits and `_`, not
/// starting with a digit. Anything else is quoted in brackets.
fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The violation `payload` gets from `schema`, as `path: rule`.
    fn violation(schema: Value, payload: Value) -> Result<String, Box<dyn std::error::Error>> {
        let schema = Schema::compile(&schema)?;
        match schema.validate(&payload) {
            Ok(()) => Err(format!("accepted {payload}").into()),
            Err(violation) => Ok(violation.to_string()),
        }
    }

    fn accepts(schema: Value, payload: Value) -> TestResult {
        Schema::compile(&schema)?.validate(&payload)?;
        Ok(())
    }

    #[test]
    fn type_accepts_and_refuses() -> TestResult {
        let cases = [
            ("null", json!(null), json!(0)),
            ("boolean", json!(false), json!("true")),
            ("object", json!({}), json!([])),
            ("array", json!([]), json!({})),
            ("number", json!(1.5), json!("1.5")),
            ("number", json!(7), json!(null)),
            ("integer", json!(7), json!(7.5)),
            ("integer", json!(7.0), json!(true)),
            ("integer", json!(-7), json!("7")),
            ("integer", json!(u64::MAX), json!([7])),
            ("string", json!(""), json!(1)),
        ];
        for (ty, good, bad) in cases {
            accepts(json!({"type": ty}), good)?;
            let got = JsonType::of(&bad).name();
            assert_eq!(
                violation(json!({"type": ty}), bad)?,
                format!("payload: expected {ty}, got {got}")
            );
        }
        accepts(json!({"type": ["string", "null"]}), json!(null))?;
        assert_eq!(
            violation(json!({"type": ["string", "null"]}), json!(1.5))?,
            "payload: expected null or string, got number"
        );
        Ok(())
    }

    #[test]
    fn enum_and_const_accept_and_refuse() -> TestResult {
        accepts(json!({"enum": ["ok", "fail"]}), json!("ok"))?;
        accepts(json!({"enum": [1, {"a": [null]}]}), json!({"a": [null]}))?;
        accepts(json!({"enum": [1]}), json!(1.0))?;
        assert_eq!(
            violation(json!({"enum": ["ok", "fail"]}), json!("OK"))?,
            r#"payload: must be one of ["ok","fail"]"#
        );
        assert_eq!(
            violation(json!({"enum": [1]}), json!("1"))?,
            "payload: must be one of [1]"
        );
        accepts(json!({"const": 2}), json!(2.0))?;
        accepts(json!({"const": {"a": 1}}), json!({"a": 1}))?;
        assert_eq!(
            violation(json!({"const": "v2"}), json!("v3"))?,
            r#"payload: must equal "v2""#
        );
        let many: Vec<u32> = (0..20).collect();
        assert_eq!(
            violation(json!({"enum": many}), json!(99))?,
            "payload: must be one of [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,... (4 more)]"
        );
        Ok(())
    }

    #[test]
    fn numeric_bounds_accept_and_refuse() -> TestResult {
        let schema = json!({"minimum": 0, "maximum": 10.5, "exclusiveMinimum": -1, "exclusiveMaximum": 11});
        for good in [json!(0), json!(0.0), json!(10.5), json!(5)] {
            accepts(schema.clone(), good)?;
        }
        assert_eq!(violation(schema.clone(), json!(-0.5))?, "payload: must be at least 0");
        assert_eq!(violation(schema.clone(), json!(11))?, "payload: must be at most 10.5");
        assert_eq!(
            violation(json!({"exclusiveMinimum": 0}), json!(0))?,
            "payload: must be greater than 0"
        );
        assert_eq!(
            violation(json!({"exclusiveMaximum": 0}), json!(0.0))?,
            "payload: must be less than 0"
        );
        accepts(json!({"exclusiveMinimum": 0}), json!(1e-9))?;
        accepts(json!({"maximum": 9007199254740992u64}), json!(9007199254740992u64))?;
        assert_eq!(
            violation(json!({"maximum": 9007199254740992u64}), json!(9007199254740993u64))?,
            "payload: must be at most 9007199254740992"
        );
        // Bounds apply to numbers only.
        accepts(json!({"minimum": 5}), json!("3"))?;
        Ok(())
    }

    #[test]
    fn lengths_count_unicode_scalar_values() -> TestResult {
        let schema = json!({"minLength": 2, "maxLength": 3});
        for good in ["ab", "abc", "éé", "日本語", "🦀🦀🦀"] {
            accepts(schema.clone(), json!(good))?;
        }
        assert_eq!(
            violation(schema.clone(), json!("a"))?,
            "payload: shorter than 2 characters"
        );
        // Two bytes per char, so the byte length alone would pass it.
        assert_eq!(
            violation(schema.clone(), json!("é"))?,
            "payload: shorter than 2 characters"
        );
        assert_eq!(
            violation(schema.clone(), json!("abcd"))?,
            "payload: longer than 3 characters"
        );
        assert_eq!(
            violation(schema.clone(), json!("🦀🦀🦀🦀"))?,
            "payload: longer than 3 characters"
        );
        accepts(schema, json!(12345))?;
        Ok(())
    }

    #[test]
    fn items_and_counts_accept_and_refuse() -> TestResult {
        let schema = json!({"minItems": 1, "maxItems": 3, "items": {"type": "integer"}});
        accepts(schema.clone(), json!([1, 2, 3]))?;
        assert_eq!(violation(schema.clone(), json!([]))?, "payload: fewer than 1 items");
        assert_eq!(
            violation(schema.clone(), json!([1, 2, 3, 4]))?,
            "payload: more than 3 items"
        );
        assert_eq!(
            violation(schema, json!([1, "2", 3.5]))?,
            "payload[1]: expected integer, got string"
        );
        Ok(())
    }

    #[test]
    fn objects_accept_and_refuse() -> TestResult {
        let schema = json!({
            "required": ["service"],
            "properties": {"service": {"type": "string"}, "n": {"type": "integer"}},
            "additionalProperties": false
        });
        accepts(schema.clone(), json!({"service": "api"}))?;
        accepts(schema.clone(), json!({"service": "api", "n": 3}))?;
        assert_eq!(
            violation(schema.clone(), json!({"n": 3}))?,
            r#"payload: required property "service" is missing"#
        );
        assert_eq!(
            violation(schema.clone(), json!({"service": "api", "foo": 1}))?,
            r#"payload: additional property "foo" is not allowed"#
        );
        assert_eq!(
            violation(schema, json!({"service": 1}))?,
            "payload.service: expected string, got integer"
        );
        let typed_extra = json!({"properties": {"a": true}, "additionalProperties": {"type": "string"}});
        accepts(typed_extra.clone(), json!({"a": 1, "b": "x"}))?;
        assert_eq!(
            violation(typed_extra, json!({"a": 1, "b": 2}))?,
            "payload.b: expected string, got integer"
        );
        // Without additionalProperties, undeclared properties pass.
        accepts(json!({"properties": {"a": {"type": "null"}}}), json!({"b": 1}))?;
        assert_eq!(
            violation(json!({"properties": {"a": false}}), json!({"a": 1}))?,
            "payload.a: no value is allowed here (the schema is false)"
        );
        assert_eq!(
            violation(json!(false), json!(null))?,
            "payload: no value is allowed here (the schema is false)"
        );
        Ok(())
    }

    #[test]
    fn paths_through_nested_objects_and_arrays() -> TestResult {
        let schema = json!({
            "properties": {
                "checks": {"items": {"properties": {
                    "status": {"enum": ["ok", "fail"]},
                    "trace-id": {"maxLength": 4},
                    "matrix": {"items": {"items": {"type": "number"}}}
                }}}
            }
        });
        let ok = json!({"status": "ok"});
        assert_eq!(
            violation(schema.clone(), json!({"checks": [ok, ok, {"status": "maybe"}]}))?,
            r#"payload.checks[2].status: must be one of ["ok","fail"]"#
        );
        assert_eq!(
            violation(schema.clone(), json!({"checks": [{"trace-id": "12345"}]}))?,
            r#"payload.checks[0]["trace-id"]: longer than 4 characters"#
        );
        assert_eq!(
            violation(schema, json!({"checks": [ok, {"matrix": [[1], [2, null]]}]}))?,
            "payload.checks[1].matrix[1][1]: expected number, got null"
        );
        Ok(())
    }

    #[test]
    fn first_violation_is_deterministic() -> TestResult {
        let schema = json!({
            "required": ["z", "y"],
            "properties": {"b": {"type": "string"}, "a": {"type": "string"}},
            "additionalProperties": {"type": "string"}
        });
        // Required before properties, required in name order.
        assert_eq!(
            violation(schema.clone(), json!({"a": 1, "b": 1}))?,
            r#"payload: required property "y" is missing"#
        );
        // Declared properties in name order, before undeclared ones.
        assert_eq!(
            violation(schema.clone(), json!({"z": 1, "y": "", "b": 1, "a": 1, "c": 1}))?,
            "payload.a: expected string, got integer"
        );
        // Undeclared in name order.
        assert_eq!(
            violation(schema.clone(), json!({"z": 1, "y": 2, "x": 3}))?,
            "payload.x: expected string, got integer"
        );
        // Same input, same answer, every time.
        let payload = json!({"z": 1, "y": [], "b": 2, "a": null, "q": false});
        let first = violation(schema.clone(), payload.clone())?;
        for _ in 0..20 {
            assert_eq!(violation(schema.clone(), payload.clone())?, first);
        }
        // Type is checked before anything else.
        assert_eq!(
            violation(json!({"type": "string", "enum": ["a"], "maxLength": 0}), json!(["a"]))?,
            "payload: expected string, got array"
        );
        Ok(())
    }

    #[test]
    fn no_payload_string_is_ever_echoed() -> TestResult {
        let secrets = [
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "hunter2-correct-horse",
            "-----BEGIN PRIVATE KEY-----",
            "pässwörd-ünïcode-🔑",
        ];
        let schemas = [
            json!({"type": "integer"}),
            json!({"enum": ["ok", "fail"]}),
            json!({"const": "ok"}),
            json!({"maxLength": 3}),
            json!({"minLength": 100}),
            json!({"type": "object"}),
            json!({"items": {"type": "number"}}),
            json!({"properties": {"token": {"maxLength": 2}}}),
            json!({"properties": {"token": {"enum": [1]}}, "required": ["other"]}),
            json!({"additionalProperties": {"const": 1}}),
            json!({"minimum": 0}),
        ];
        for secret in secrets {
            let payloads = [
                json!(secret),
                json!([secret]),
                json!({"token": secret}),
                json!({"token": secret, "other": secret}),
            ];
            for schema in &schemas {
                let compiled = Schema::compile(schema)?;
                for payload in &payloads {
                    if let Err(violation) = compiled.validate(payload) {
                        let message = violation.to_string();
                        assert!(!message.contains(secret), "{schema} echoed the secret: {message}");
                        // Nor a fragment of it.
                        assert!(!message.contains(&secret[..6]), "{schema} echoed part of it: {message}");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn validation_depth_follows_the_schema_not_the_payload() -> TestResult {
        // A payload far deeper than any schema (400 levels; serde_json's
        // parser stops at 128): validation stops where the schema does.
        let mut payload = json!("leaf");
        for _ in 0..200 {
            payload = json!({"a": [payload]});
        }
        let mut schema = json!({"type": "object", "required": ["a"]});
        for _ in 0..30 {
            schema = json!({"properties": {"a": {"items": schema}}});
        }
        accepts(schema.clone(), payload.clone())?;
        // Deep enough to compare a deep payload with a shallow const.
        assert_eq!(
            violation(json!({"const": {"a": [1]}}), payload)?,
            r#"payload: must equal {"a":[1]}"#
        );
        Ok(())
    }

    #[test]
    fn non_identifier_names_are_quoted() -> TestResult {
        for (name, rendered) in [
            ("x", ".x"),
            ("_x1", "._x1"),
            ("1x", "[\"1x\"]"),
            ("a b", "[\"a b\"]"),
            ("", "[\"\"]"),
            ("a\"b", "[\"a\\\"b\"]"),
        ] {
            let schema = json!({"properties": {name: {"type": "null"}}});
            assert_eq!(
                violation(schema, json!({name: 1}))?,
                format!("payload{rendered}: expected null, got integer")
            );
        }
        Ok(())
    }
}
