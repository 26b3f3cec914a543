//! Compiles a JSON Schema, a documented subset of draft 2020-12, into a
//! tree of small rules that [`Schema::validate`] walks.
//!
//! Every keyword outside the subset is refused, not ignored: a schema is a
//! promise about what a namespace's log holds, and a silently skipped
//! `pattern` or `$ref` would let an operator believe a rule is enforced
//! when it is not. For the same reason a keyword that can never apply
//! (`minimum` under `"type": "string"`) and contradictory bounds are
//! refused. Annotations that never constrain (`title`, `description`, ...)
//! are accepted and dropped. The subset is listed in docs/VOCABULARY.md.
//!
//! Not here: validation itself ([`super::validate`]) and the JSON
//! semantics both share ([`super::json`]).

use serde_json::{Number, Value};

use super::json::{self, JsonType, TypeSet};

/// Deepest nesting of subschemas (`properties`, `items`,
/// `additionalProperties`) plus, below them, of `enum`/`const` values.
/// Validation recurses only along the schema (and, comparing with an
/// `enum`/`const` value, no deeper than that value), so this also bounds
/// validation depth whatever the payload's depth.
pub const MAX_SCHEMA_DEPTH: usize = 64;

/// The keywords that constrain, in the order error messages list them.
pub const SUPPORTED_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "additionalProperties",
];

/// The annotation keywords: accepted (their value's kind is checked) and
/// ignored.
pub const ANNOTATION_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "$comment",
    "examples",
    "default",
];

/// A compiled schema. Compile once (when a vocabulary is loaded), validate
/// many times.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub(super) root: Node,
}

/// Why a schema was refused. `location` is a JSON Pointer to the offending
/// (sub)schema within the whole schema; `""` is the root.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A keyword this subset does not enforce.
    #[error(
        "schema at {}: keyword {keyword:?} is not supported (supported: {}; annotations: {})",
        display_location(location),
        SUPPORTED_KEYWORDS.join(", "),
        ANNOTATION_KEYWORDS.join(", ")
    )]
    UnsupportedKeyword {
        /// Where the keyword is.
        location: String,
        /// The keyword as written.
        keyword: String,
    },
    /// A supported keyword with a value it cannot take.
    #[error("schema at {}: {keyword:?} {reason}", display_location(location))]
    InvalidKeyword {
        /// Where the keyword is.
        location: String,
        /// The keyword.
        keyword: String,
        /// What is wrong with its value, e.g. `must be a non-negative integer, got -1`.
        reason: String,
    },
    /// Keywords that cannot all hold, or a keyword that can never apply
    /// given `type`.
    #[error("schema at {}: {reason}", display_location(location))]
    Contradiction {
        /// Where the keywords are.
        location: String,
        /// Which keywords, and why.
        reason: String,
    },
    /// A schema that is neither an object nor a boolean.
    #[error(
        "schema at {}: must be an object or a boolean, got {got}",
        display_location(location)
    )]
    NotASchema {
        /// Where the value is.
        location: String,
        /// What it is instead, e.g. `an array`.
        got: String,
    },
    /// Subschemas or `enum`/`const` values nested beyond [`MAX_SCHEMA_DEPTH`].
    #[error("schema at {}: nested deeper than {limit} levels", display_location(location))]
    TooDeep {
        /// The first location past the limit.
        location: String,
        /// [`MAX_SCHEMA_DEPTH`].
        limit: usize,
    },
}

impl Schema {
    /// Compiles `source`, an object or boolean schema.
    ///
    /// Keywords are checked in name order, so the error for a schema with
    /// several problems is always the same one.
    pub fn compile(source: &Value) -> Result<Schema, SchemaError> {
        let mut location = String::new();
        let root = compile_node(source, &mut location, 0)?;
        Ok(Schema { root })
    }
}

/// A compiled (sub)schema.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Node {
    /// `true`, `{}`, or only annotations.
    Any,
    /// `false`.
    Never,
    /// At least one constraining keyword.
    Rules(Box<Rules>),
}

/// The constraints of one subschema. Each applies only to values of its
/// kind, as in JSON Schema: `minLength` says nothing about a number.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Rules {
    pub(super) types: Option<TypeSet>,
    pub(super) constant: Option<Value>,
    pub(super) enumeration: Option<Vec<Value>>,
    pub(super) number: NumberBounds,
    /// `minLength`/`maxLength`, in Unicode scalar values.
    pub(super) length: CountBounds,
    /// `minItems`/`maxItems`.
    pub(super) item_count: CountBounds,
    pub(super) items: Option<Node>,
    pub(super) object: Option<ObjectRules>,
}

/// `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct NumberBounds {
    pub(super) minimum: Option<Number>,
    pub(super) maximum: Option<Number>,
    pub(super) exclusive_minimum: Option<Number>,
    pub(super) exclusive_maximum: Option<Number>,
}

/// Inclusive lower and upper bounds on a count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct CountBounds {
    pub(super) min: Option<u64>,
    pub(super) max: Option<u64>,
}

/// `properties`, `required`, `additionalProperties`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ObjectRules {
    /// Sorted by name, for binary search and a deterministic walk.
    pub(super) properties: Vec<(String, Node)>,
    /// Sorted, no duplicates.
    pub(super) required: Vec<String>,
    /// `None` when absent (anything goes).
    pub(super) additional: Option<Node>,
}

impl ObjectRules {
    pub(super) fn property(&self, name: &str) -> Option<&Node> {
        self.properties
            .binary_search_by(|(declared, _)| declared.as_str().cmp(name))
            .ok()
            .and_then(|idx| self.properties.get(idx))
            .map(|(_, node)| node)
    }
}

const NUMBER_TYPES: &[JsonType] = &[JsonType::Number, JsonType::Integer];

fn compile_node(source: &Value, location: &mut String, depth: usize) -> Result<Node, SchemaError> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(SchemaError::TooDeep {
            location: location.clone(),
            limit: MAX_SCHEMA_DEPTH,
        });
    }
    let keywords = match source {
        Value::Bool(true) => return Ok(Node::Any),
        Value::Bool(false) => return Ok(Node::Never),
        Value::Object(keywords) => keywords,
        other => {
            return Err(SchemaError::NotASchema {
                location: location.clone(),
                got: json::describe(other),
            });
        }
    };
    let mut rules = Rules::default();
    // Sorted, so the first error is deterministic whatever map order
    // serde_json was built with.
    let mut sorted: Vec<(&String, &Value)> = keywords.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (keyword, value) in sorted {
        let invalid = |reason: String| SchemaError::InvalidKeyword {
            location: location.clone(),
            keyword: keyword.clone(),
            reason,
        };
        match keyword.as_str() {
            "type" => rules.types = Some(compile_types(value).map_err(invalid)?),
            "enum" => {
                let Value::Array(values) = value else {
                    return Err(invalid(format!("must be an array, got {}", json::describe(value))));
                };
                if values.is_empty() {
                    return Err(invalid("must list at least one value".to_string()));
                }
                for value in values {
                    check_value_depth(value, location, depth)?;
                }
                rules.enumeration = Some(values.clone());
            }
            "const" => {
                check_value_depth(value, location, depth)?;
                rules.constant = Some(value.clone());
            }
            "minimum" => rules.number.minimum = Some(number(value).map_err(invalid)?),
            "maximum" => rules.number.maximum = Some(number(value).map_err(invalid)?),
            "exclusiveMinimum" => rules.number.exclusive_minimum = Some(number(value).map_err(invalid)?),
            "exclusiveMaximum" => rules.number.exclusive_maximum = Some(number(value).map_err(invalid)?),
            "minLength" => rules.length.min = Some(count(value).map_err(invalid)?),
            "maxLength" => rules.length.max = Some(count(value).map_err(invalid)?),
            "minItems" => rules.item_count.min = Some(count(value).map_err(invalid)?),
            "maxItems" => rules.item_count.max = Some(count(value).map_err(invalid)?),
            "items" => {
                if value.is_array() {
                    return Err(invalid(
                        "must be a schema; the array (tuple) form is not supported".to_string(),
                    ));
                }
                rules.items = Some(compile_child(value, location, &["items"], depth)?);
            }
            "properties" => {
                let Value::Object(properties) = value else {
                    return Err(invalid(format!("must be an object, got {}", json::describe(value))));
                };
                let object = rules.object.get_or_insert_with(ObjectRules::default);
                for (name, subschema) in properties {
                    let node = compile_child(subschema, location, &["properties", name], depth)?;
                    object.properties.push((name.clone(), node));
                }
                object.properties.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            }
            "required" => {
                let required = compile_required(value).map_err(invalid)?;
                rules.object.get_or_insert_with(ObjectRules::default).required = required;
            }
            "additionalProperties" => {
                let node = compile_child(value, location, &["additionalProperties"], depth)?;
                rules.object.get_or_insert_with(ObjectRules::default).additional = Some(node);
            }
            "$schema" | "$id" | "title" | "description" | "$comment" => {
                if !value.is_string() {
                    return Err(invalid(format!("must be a string, got {}", json::describe(value))));
                }
            }
            "examples" => {
                if !value.is_array() {
                    return Err(invalid(format!("must be an array, got {}", json::describe(value))));
                }
            }
            "default" => {}
            _ => {
                return Err(SchemaError::UnsupportedKeyword {
                    location: location.clone(),
                    keyword: keyword.clone(),
                });
            }
        }
    }
    check_consistent(&rules).map_err(|reason| SchemaError::Contradiction {
        location: location.clone(),
        reason,
    })?;
    if rules == Rules::default() {
        return Ok(Node::Any);
    }
    Ok(Node::Rules(Box::new(rules)))
}

/// Compiles the subschema at `location` + `steps`, restoring `location`.
fn compile_child(source: &Value, location: &mut String, steps: &[&str], depth: usize) -> Result<Node, SchemaError> {
    let len = location.len();
    for step in steps {
        location.push('/');
        // RFC 6901 escaping: `~` then `/`.
        location.push_str(&step.replace('~', "~0").replace('/', "~1"));
    }
    let node = compile_node(source, location, depth + 1);
    location.truncate(len);
    node
}

fn compile_types(value: &Value) -> Result<TypeSet, String> {
    let parse = |name: &Value| match name {
        Value::String(name) => JsonType::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = JsonType::ALL.iter().map(|t| t.name()).collect();
            format!("names unknown type {name:?} (known: {})", known.join(", "))
        }),
        other => Err(format!("must name types as strings, got {}", json::describe(other))),
    };
    let mut types = TypeSet::EMPTY;
    match value {
        Value::String(_) => {
            types.insert(parse(value)?);
        }
        Value::Array(names) => {
            if names.is_empty() {
                return Err("must name at least one type".to_string());
            }
            for name in names {
                let ty = parse(name)?;
                if !types.insert(ty) {
                    return Err(format!("names {:?} twice", ty.name()));
                }
            }
        }
        other => {
            return Err(format!(
                "must be a type name or an array of them, got {}",
                json::describe(other)
            ));
        }
    }
    Ok(types)
}

fn compile_required(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(names) = value else {
        return Err(format!(
            "must be an array of property names, got {}",
            json::describe(value)
        ));
    };
    let mut required = Vec::with_capacity(names.len());
    for name in names {
        let Value::String(name) = name else {
            return Err(format!(
                "must list property names as strings, got {}",
                json::describe(name)
            ));
        };
        required.push(name.clone());
    }
    required.sort_unstable();
    if let Some(pair) = required.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("lists {:?} twice", pair[0]));
    }
    Ok(required)
}

fn number(value: &Value) -> Result<Number, String> {
    match value {
        Value::Number(n) => Ok(n.clone()),
        other => Err(format!("must be a number, got {}", json::describe(other))),
    }
}

/// A non-negative integer; `2.0` counts, as in JSON Schema.
fn count(value: &Value) -> Result<u64, String> {
    let whole = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    whole.ok_or_else(|| format!("must be a non-negative integer, got {}", json::describe(value)))
}

fn check_value_depth(value: &Value, location: &str, depth: usize) -> Result<(), SchemaError> {
    if json::deeper_than(value, MAX_SCHEMA_DEPTH.saturating_sub(depth)) {
        return Err(SchemaError::TooDeep {
            location: location.to_string(),
            limit: MAX_SCHEMA_DEPTH,
        });
    }
    Ok(())
}

/// Refuses keyword combinations that accept nothing, or that can never
/// apply given `type`: both are mistakes a user would not see otherwise.
fn check_consistent(rules: &Rules) -> Result<(), String> {
    let bounds = [
        ("minLength", "maxLength", rules.length),
        ("minItems", "maxItems", rules.item_count),
    ];
    for (min_name, max_name, CountBounds { min, max }) in bounds {
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(format!("{min_name:?} {min} is greater than {max_name:?} {max}"));
        }
    }
    if let (Some(min), Some(max)) = (&rules.number.minimum, &rules.number.maximum)
        && json::cmp_numbers(min, max) == Some(std::cmp::Ordering::Greater)
    {
        return Err(format!("\"minimum\" {min} is greater than \"maximum\" {max}"));
    }
    if let Some(object) = &rules.object {
        for name in &object.required {
            let never = match object.property(name) {
                Some(node) => *node == Node::Never,
                None => object.additional == Some(Node::Never),
            };
            if never {
                return Err(format!(
                    "required property {name:?} can never be present: \"properties\" or \"additionalProperties\" forbid it"
                ));
            }
        }
    }
    if let Some(types) = rules.types {
        let number = &rules.number;
        let applies = [
            (
                "minimum/maximum/exclusiveMinimum/exclusiveMaximum",
                NUMBER_TYPES,
                number.minimum.is_some()
                    || number.maximum.is_some()
                    || number.exclusive_minimum.is_some()
                    || number.exclusive_maximum.is_some(),
            ),
            (
                "minLength/maxLength",
                &[JsonType::String],
                rules.length != CountBounds::default(),
            ),
            (
                "items/minItems/maxItems",
                &[JsonType::Array],
                rules.items.is_some() || rules.item_count != CountBounds::default(),
            ),
            (
                "properties/required/additionalProperties",
                &[JsonType::Object],
                rules.object.is_some(),
            ),
        ];
        for (keywords, kinds, present) in applies {
            if present && !types.intersects(kinds) {
                let kinds: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
                return Err(format!(
                    "{keywords} apply only to {} values, but \"type\" is {types}",
                    kinds.join("/")
                ));
            }
        }
    }
    Ok(())
}

fn display_location(location: &str) -> &str {
    if location.is_empty() { "the root" } else { location }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn refused(schema: Value) -> String {
        match Schema::compile(&schema) {
            Ok(_) => panic!("compiled, but should be refused: {schema}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn every_supported_and_annotation_keyword_compiles() -> TestResult {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.invalid/probe.result",
            "title": "probe result",
            "description": "one probe run",
            "$comment": "kept short",
            "examples": [{"service": "api"}],
            "default": {},
            "type": "object",
            "required": ["service", "checks"],
            "additionalProperties": false,
            "properties": {
                "service": {"type": "string", "minLength": 1, "maxLength": 64},
                "status": {"enum": ["ok", "fail"]},
                "version": {"const": 2},
                "latency_ms": {"type": "number", "minimum": 0, "maximum": 60000,
                               "exclusiveMinimum": -1, "exclusiveMaximum": 60001},
                "checks": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "null"]}
                }}
            }
        });
        Schema::compile(&schema)?;
        Ok(())
    }

    #[test]
    fn trivial_schemas_compile_to_any_or_never() -> TestResult {
        assert_eq!(Schema::compile(&json!(true))?.root, Node::Any);
        assert_eq!(Schema::compile(&json!({}))?.root, Node::Any);
        assert_eq!(Schema::compile(&json!({"title": "x"}))?.root, Node::Any);
        assert_eq!(Schema::compile(&json!(false))?.root, Node::Never);
        Ok(())
    }

    #[test]
    fn unsupported_keywords_are_refused_with_their_location() {
        for keyword in [
            "pattern",
            "$ref",
            "$defs",
            "definitions",
            "oneOf",
            "anyOf",
            "allOf",
            "not",
            "if",
            "then",
            "else",
            "format",
            "prefixItems",
            "contains",
            "uniqueItems",
            "patternProperties",
            "propertyNames",
            "dependentRequired",
            "dependentSchemas",
            "unevaluatedProperties",
            "unevaluatedItems",
            "minProperties",
            "maxProperties",
            "multipleOf",
            "minContains",
            "maxContains",
            "contentMediaType",
            "$anchor",
            "$dynamicRef",
            "$vocabulary",
            "readOnly",
            "deprecated",
            "nullable",
        ] {
            let schema = json!({"properties": {"status": {keyword: "x"}}});
            let message = refused(schema);
            let expected =
                format!("schema at /properties/status: keyword {keyword:?} is not supported (supported: type,");
            assert!(message.starts_with(&expected), "{message}");
        }
        assert!(refused(json!({"pattern": "^a"})).starts_with("schema at the root: keyword \"pattern\""));
    }

    #[test]
    fn unsupported_keyword_error_names_keyword_and_location() -> TestResult {
        let err = Schema::compile(&json!({"items": {"properties": {"a/b~c": {"format": "uuid"}}}}))
            .err()
            .ok_or("compiled")?;
        assert_eq!(
            err,
            SchemaError::UnsupportedKeyword {
                location: "/items/properties/a~1b~0c".to_string(),
                keyword: "format".to_string(),
            }
        );
        Ok(())
    }

    #[test]
    fn bad_keyword_values_are_refused_with_location_and_reason() {
        let cases = [
            (
                json!({"minLength": -1}),
                "\"minLength\" must be a non-negative integer, got -1",
            ),
            (
                json!({"maxLength": 1.5}),
                "\"maxLength\" must be a non-negative integer, got 1.5",
            ),
            (
                json!({"minItems": "1"}),
                "\"minItems\" must be a non-negative integer, got a string",
            ),
            (
                json!({"maxItems": null}),
                "\"maxItems\" must be a non-negative integer, got null",
            ),
            (
                json!({"required": 3}),
                "\"required\" must be an array of property names, got 3",
            ),
            (
                json!({"required": [1]}),
                "\"required\" must list property names as strings, got 1",
            ),
            (json!({"required": ["a", "a"]}), "\"required\" lists \"a\" twice"),
            (
                json!({"type": "widget"}),
                "\"type\" names unknown type \"widget\" (known: null, boolean, object, array, number, integer, string)",
            ),
            (json!({"type": []}), "\"type\" must name at least one type"),
            (json!({"type": ["string", "string"]}), "\"type\" names \"string\" twice"),
            (json!({"type": [1]}), "\"type\" must name types as strings, got 1"),
            (
                json!({"type": {}}),
                "\"type\" must be a type name or an array of them, got an object",
            ),
            (json!({"enum": []}), "\"enum\" must list at least one value"),
            (json!({"enum": "ok"}), "\"enum\" must be an array, got a string"),
            (json!({"minimum": "0"}), "\"minimum\" must be a number, got a string"),
            (json!({"maximum": true}), "\"maximum\" must be a number, got true"),
            (
                json!({"exclusiveMinimum": true}),
                "\"exclusiveMinimum\" must be a number, got true",
            ),
            (
                json!({"exclusiveMaximum": []}),
                "\"exclusiveMaximum\" must be a number, got an array",
            ),
            (
                json!({"properties": []}),
                "\"properties\" must be an object, got an array",
            ),
            (
                json!({"items": [{}]}),
                "\"items\" must be a schema; the array (tuple) form is not supported",
            ),
            (json!({"title": 1}), "\"title\" must be a string, got 1"),
            (json!({"$schema": {}}), "\"$schema\" must be a string, got an object"),
            (json!({"examples": {}}), "\"examples\" must be an array, got an object"),
        ];
        for (schema, reason) in cases {
            let nested = json!({"properties": {"x": schema.clone()}});
            assert_eq!(
                refused(nested),
                format!("schema at /properties/x: {reason}"),
                "{schema}"
            );
        }
    }

    #[test]
    fn non_schemas_are_refused() {
        assert_eq!(
            refused(json!({"properties": {"x": 3}})),
            "schema at /properties/x: must be an object or a boolean, got 3"
        );
        assert_eq!(
            refused(json!({"additionalProperties": "no"})),
            "schema at /additionalProperties: must be an object or a boolean, got a string"
        );
        assert_eq!(
            refused(json!([])),
            "schema at the root: must be an object or a boolean, got an array"
        );
    }

    #[test]
    fn contradictions_are_refused() {
        let cases = [
            (
                json!({"minLength": 3, "maxLength": 2}),
                "\"minLength\" 3 is greater than \"maxLength\" 2",
            ),
            (
                json!({"minItems": 3, "maxItems": 2}),
                "\"minItems\" 3 is greater than \"maxItems\" 2",
            ),
            (
                json!({"minimum": 3, "maximum": 2.5}),
                "\"minimum\" 3 is greater than \"maximum\" 2.5",
            ),
            (
                json!({"required": ["a"], "additionalProperties": false}),
                "required property \"a\" can never be present: \"properties\" or \"additionalProperties\" forbid it",
            ),
            (
                json!({"required": ["a"], "properties": {"a": false}}),
                "required property \"a\" can never be present: \"properties\" or \"additionalProperties\" forbid it",
            ),
            (
                json!({"type": "string", "minimum": 1}),
                "minimum/maximum/exclusiveMinimum/exclusiveMaximum apply only to number/integer values, but \"type\" is string",
            ),
            (
                json!({"type": ["integer", "null"], "maxLength": 1}),
                "minLength/maxLength apply only to string values, but \"type\" is null or integer",
            ),
            (
                json!({"type": "object", "items": {}}),
                "items/minItems/maxItems apply only to array values, but \"type\" is object",
            ),
            (
                json!({"type": "array", "required": []}),
                "properties/required/additionalProperties apply only to object values, but \"type\" is array",
            ),
        ];
        for (schema, reason) in cases {
            assert_eq!(
                refused(schema.clone()),
                format!("schema at the root: {reason}"),
                "{schema}"
            );
        }
        // Equal bounds and kind-matching keywords are fine.
        for schema in [
            json!({"minLength": 2, "maxLength": 2}),
            json!({"minimum": 2, "maximum": 2.0}),
            json!({"type": "integer", "minimum": 0}),
            json!({"type": ["string", "array"], "maxLength": 3, "maxItems": 3}),
            json!({"required": ["a"], "properties": {"a": true}, "additionalProperties": false}),
        ] {
            assert!(Schema::compile(&schema).is_ok(), "{schema}");
        }
    }

    #[test]
    fn integral_floats_are_counts() -> TestResult {
        let schema = Schema::compile(&json!({"maxLength": 2.0}))?;
        let Node::Rules(rules) = &schema.root else {
            return Err("not rules".into());
        };
        assert_eq!(rules.length.max, Some(2));
        Ok(())
    }

    #[test]
    fn first_compile_error_is_deterministic() {
        // Both "format" and "pattern" are refused; keywords are checked in
        // name order, so "format" is always the one reported.
        let message = refused(json!({"pattern": "x", "format": "uuid", "type": "string"}));
        assert!(
            message.starts_with("schema at the root: keyword \"format\""),
            "{message}"
        );
    }

    fn nested_items(levels: usize) -> Value {
        let mut schema = json!({"type": "string"});
        for _ in 0..levels {
            schema = json!({"items": schema});
        }
        schema
    }

    #[test]
    fn schema_depth_is_bounded() -> TestResult {
        Schema::compile(&nested_items(MAX_SCHEMA_DEPTH))?;
        let err = Schema::compile(&nested_items(MAX_SCHEMA_DEPTH + 1))
            .err()
            .ok_or("compiled")?;
        let SchemaError::TooDeep { location, limit } = err else {
            return Err(format!("wrong error: {err}").into());
        };
        assert_eq!(limit, MAX_SCHEMA_DEPTH);
        assert_eq!(location, "/items".repeat(MAX_SCHEMA_DEPTH + 1));
        // Far past the limit: refused without exhausting the stack.
        assert!(Schema::compile(&nested_items(300)).is_err());
        Ok(())
    }

    #[test]
    fn const_and_enum_value_depth_is_bounded() {
        let mut deep = json!(1);
        for _ in 0..=MAX_SCHEMA_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(
            refused(json!({"const": deep.clone()})),
            format!("schema at the root: nested deeper than {MAX_SCHEMA_DEPTH} levels")
        );
        assert_eq!(
            refused(json!({"enum": [deep]})),
            format!("schema at the root: nested deeper than {MAX_SCHEMA_DEPTH} levels")
        );
    }
}
