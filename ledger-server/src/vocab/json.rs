//! The JSON semantics JSON Schema needs and `serde_json` does not give:
//! the seven schema types, mathematical number comparison (`1 == 1.0`,
//! exact for integers beyond 2^53) and equality built on it, and a depth
//! probe that cannot itself overflow the stack.
//!
//! Type tests, comparison and equality do not allocate: they run on the
//! validation success path.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

/// One of the seven JSON Schema types. `Integer` is the subset of numbers
/// with no fractional part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JsonType {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    Integer,
    String,
}

impl JsonType {
    /// All types, in the order messages list them.
    pub(super) const ALL: [JsonType; 7] = [
        JsonType::Null,
        JsonType::Boolean,
        JsonType::Object,
        JsonType::Array,
        JsonType::Number,
        JsonType::Integer,
        JsonType::String,
    ];

    /// The name a schema's `type` keyword uses.
    pub(super) fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::String => "string",
        }
    }

    /// The type a schema names, if it is one of the seven.
    pub(super) fn from_name(name: &str) -> Option<JsonType> {
        JsonType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The most precise type of `value`: `Integer` for whole numbers.
    pub(super) fn of(value: &Value) -> JsonType {
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Object(_) => JsonType::Object,
            Value::Array(_) => JsonType::Array,
            Value::Number(n) if is_integral(n) => JsonType::Integer,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`JsonType`]s, as a bit set: the compiled `type` keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TypeSet(u8);

impl TypeSet {
    /// The empty set.
    pub(super) const EMPTY: TypeSet = TypeSet(0);

    /// Adds `ty`; false if it was already there.
    pub(super) fn insert(&mut self, ty: JsonType) -> bool {
        let fresh = !self.contains(ty);
        self.0 |= ty.bit();
        fresh
    }

    /// True if `ty` itself is in the set (no number/integer subsumption).
    pub(super) fn contains(self, ty: JsonType) -> bool {
        self.0 & ty.bit() != 0
    }

    /// True if the set holds any of `types`: which keywords can apply.
    pub(super) fn intersects(self, types: &[JsonType]) -> bool {
        types.iter().any(|&ty| self.contains(ty))
    }

    /// JSON Schema's `type` test: `number` admits integers too.
    pub(super) fn accepts(self, value: &Value) -> bool {
        match JsonType::of(value) {
            JsonType::Integer => self.contains(JsonType::Integer) || self.contains(JsonType::Number),
            ty => self.contains(ty),
        }
    }
}

/// `string`, `string or null`, `null, number or string`.
impl fmt::Display for TypeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = JsonType::ALL.iter().filter(|&&t| self.contains(t)).count();
        for (idx, ty) in JsonType::ALL.into_iter().filter(|&t| self.contains(t)).enumerate() {
            if idx > 0 {
                f.write_str(if idx + 1 == count { " or " } else { ", " })?;
            }
            f.write_str(ty.name())?;
        }
        Ok(())
    }
}

/// A whole number: an `i64`/`u64`, or a float with no fractional part.
pub(super) fn is_integral(n: &Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Compares two JSON numbers by value, exactly: `u64::MAX` is not equal to
/// the float it rounds to. `None` only for NaN, which JSON cannot carry.
pub(super) fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (Exact::of(a), Exact::of(b)) {
        (Exact::Int(x), Exact::Int(y)) => Some(x.cmp(&y)),
        (Exact::Float(x), Exact::Float(y)) => x.partial_cmp(&y),
        (Exact::Int(x), Exact::Float(y)) => cmp_int_float(x, y),
        (Exact::Float(x), Exact::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
    }
}

/// JSON Schema equality (`enum`, `const`): numbers by value, objects by
/// key set regardless of order, everything else structurally.
///
/// Recursion stops where the two values' shapes differ, so it is bounded
/// by the depth of the schema's value, which compile time bounds.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(key, x)| y.get(key).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// True if `value` nests more than `limit` arrays/objects deep. Recurses at
/// most `limit` frames, so a hostile value cannot overflow the stack here.
pub(super) fn deeper_than(value: &Value, limit: usize) -> bool {
    match value {
        Value::Array(items) => limit == 0 || items.iter().any(|item| deeper_than(item, limit - 1)),
        Value::Object(map) => limit == 0 || map.values().any(|item| deeper_than(item, limit - 1)),
        _ => false,
    }
}

/// A short description of a schema value for compile errors: numbers and
/// booleans verbatim, other kinds by name (a schema is not secret, but an
/// object would make an unreadable message).
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// A number as an exact integer where it is one, else its float.
enum Exact {
    Int(i128),
    Float(f64),
}

impl Exact {
    fn of(n: &Number) -> Exact {
        if let Some(i) = n.as_i64() {
            Exact::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Exact::Int(i128::from(u))
        } else {
            Exact::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }
}

/// Exact integer/float comparison: no rounding of the integer to f64.
fn cmp_int_float(int: i128, float: f64) -> Option<Ordering> {
    if float.is_nan() {
        return None;
    }
    // ±2^127 bound i128; past them the sign decides (and the casts below
    // stay exact inside them).
    if float >= i128::MAX as f64 {
        return Some(Ordering::Less);
    }
    if float < i128::MIN as f64 {
        return Some(Ordering::Greater);
    }
    let floor = float.floor();
    let whole = floor as i128;
    Some(match int.cmp(&whole) {
        Ordering::Equal if floor == float => Ordering::Equal,
        // int == floor(float) < float.
        Ordering::Equal => Ordering::Less,
        // int >= floor + 1 > float, or int < floor <= float.
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn num(value: Value) -> Number {
        match value {
            Value::Number(n) => n,
            other => panic!("not a number: {other}"),
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        let cases = [
            (json!(1), json!(1.0), Ordering::Equal),
            (json!(1), json!(1.5), Ordering::Less),
            (json!(2), json!(1.5), Ordering::Greater),
            (json!(-1), json!(-1.5), Ordering::Greater),
            (json!(-2), json!(-1.5), Ordering::Less),
            (json!(-1), json!(0u64), Ordering::Less),
            (json!(u64::MAX), json!(i64::MIN), Ordering::Greater),
            // u64::MAX rounds to 2^64 as f64: exactly, it is one less.
            (json!(u64::MAX), json!(18446744073709551616.0), Ordering::Less),
            (json!(9007199254740993u64), json!(9007199254740992.0), Ordering::Greater),
            (json!(0), json!(1e300), Ordering::Less),
            (json!(0), json!(-1e300), Ordering::Greater),
            (json!(0.5), json!(0.25), Ordering::Greater),
        ];
        for (a, b, expected) in cases {
            assert_eq!(
                cmp_numbers(&num(a.clone()), &num(b.clone())),
                Some(expected),
                "{a} vs {b}"
            );
            assert_eq!(
                cmp_numbers(&num(b.clone()), &num(a.clone())),
                Some(expected.reverse()),
                "{b} vs {a}"
            );
        }
    }

    #[test]
    fn integral_numbers() {
        assert!(is_integral(&num(json!(3))));
        assert!(is_integral(&num(json!(-3))));
        assert!(is_integral(&num(json!(3.0))));
        assert!(is_integral(&num(json!(1e20))));
        assert!(!is_integral(&num(json!(3.5))));
    }

    #[test]
    fn equality_is_mathematical_for_numbers_and_deep_otherwise() {
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!({"a": [1, 2]}), &json!({"a": [1, 2, 3]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!({"a": 1, "c": 2}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!("1"), &json!(1)));
        assert!(!json_eq(&json!(true), &json!(1)));
        assert!(json_eq(&json!(null), &json!(null)));
    }

    #[test]
    fn type_sets_accept_and_print() {
        let mut set = TypeSet::EMPTY;
        assert!(set.insert(JsonType::Number));
        assert!(!set.insert(JsonType::Number));
        assert!(set.accepts(&json!(1)));
        assert!(set.accepts(&json!(1.5)));
        assert!(!set.accepts(&json!("1")));
        let mut integer = TypeSet::EMPTY;
        integer.insert(JsonType::Integer);
        assert!(integer.accepts(&json!(2.0)));
        assert!(!integer.accepts(&json!(2.5)));
        integer.insert(JsonType::Null);
        assert_eq!(integer.to_string(), "null or integer");
        integer.insert(JsonType::String);
        assert_eq!(integer.to_string(), "null, integer or string");
    }

    #[test]
    fn depth_probe() {
        let mut value = json!(1);
        for _ in 0..10 {
            value = json!([value]);
        }
        assert!(!deeper_than(&value, 10));
        assert!(deeper_than(&value, 9));
        assert!(!deeper_than(&json!("flat"), 0));
        assert!(deeper_than(&json!({}), 0));
    }
}
