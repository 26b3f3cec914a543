//! Walks a JSON payload that `serde_json` has already validated, visiting
//! every key and string value with the name of the field it sits in and
//! its path, and stopping when the visitor says so.
//!
//! Why not a serde visitor: validation parses the payload anyway (into
//! `IgnoredAny`, whose error messages clients see), and a serde visitor
//! that hands out every string costs about three times that parse (UTF-8
//! checks, dispatch per value). Over bytes known to be valid JSON the walk
//! is a simple loop: find the structure, borrow each string that has no
//! escapes, unescape the few that do. It keeps its own stack, so nesting
//! depth is not limited, and it builds a path string only when asked (on a
//! hit). Given bytes that are not valid JSON it stops early or visits
//! nonsense, but never panics.

use std::borrow::Cow;
use std::ops::ControlFlow;

use super::path::{self, Segment};
use super::{Finding, Policy};

/// Scans `payload`, valid JSON, under `policy`: the first hit.
pub(crate) fn scan(policy: &Policy, payload: &[u8]) -> Option<Finding> {
    let mut found = None;
    let _ = walk(payload, &mut |string: &Str<'_>| {
        if string.bytes.len() < policy.min_len {
            return ControlFlow::Continue(());
        }
        found = policy.scan_value(string.bytes, string.field, &|| string.path(), string.in_key);
        if found.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

/// A string the walk visits.
pub(crate) struct Str<'a> {
    /// The string, unescaped.
    pub(crate) bytes: &'a [u8],
    /// The name of the field it is the value of (array elements inherit
    /// it: `"tokens": ["...", "..."]`); `None` for keys and at the root.
    pub(crate) field: Option<&'a [u8]>,
    /// It is an object key (its path is the object's).
    pub(crate) in_key: bool,
    stack: &'a [Level<'a>],
}

impl Str<'_> {
    /// `payload.db.password`, `payload.hosts[2]`, ...
    pub(crate) fn path(&self) -> String {
        let levels = if self.in_key {
            &self.stack[..self.stack.len().saturating_sub(1)]
        } else {
            self.stack
        };
        let mut out = String::new();
        path::push(&mut out, Segment::Root("payload"));
        for level in levels {
            match &level.child {
                Child::Key(key) => path::push(&mut out, Segment::Key(&String::from_utf8_lossy(key))),
                Child::Index(index) => path::push(&mut out, Segment::Index(*index)),
            }
        }
        out
    }
}

/// An open object or array.
struct Level<'a> {
    /// Where its current child is: the last key read, or the index.
    child: Child<'a>,
    /// An object waiting for a key (not for a value).
    expect_key: bool,
    /// For arrays, the field name elements inherit.
    field: Option<Cow<'a, [u8]>>,
}

enum Child<'a> {
    Key(Cow<'a, [u8]>),
    Index(usize),
}

/// Visits every key and string value of `json` in document order.
pub(crate) fn walk<'a>(json: &'a [u8], visit: &mut dyn FnMut(&Str<'_>) -> ControlFlow<()>) -> ControlFlow<()> {
    let mut stack: Vec<Level<'a>> = Vec::new();
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => i += 1,
            b'{' | b'[' => {
                let field = match stack.last() {
                    Some(Level {
                        child: Child::Key(key), ..
                    }) => Some(key.clone()),
                    Some(level) => level.field.clone(),
                    None => None,
                };
                let object = json[i] == b'{';
                stack.push(Level {
                    child: if object {
                        Child::Key(Cow::Borrowed(&[]))
                    } else {
                        Child::Index(0)
                    },
                    expect_key: object,
                    field: if object { None } else { field },
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                value_done(&mut stack);
                i += 1;
            }
            b'"' => {
                let (string, end) = read_string(json, i);
                i = end;
                let is_key = stack.last().is_some_and(|level| level.expect_key);
                {
                    let field = match stack.last() {
                        None => None,
                        Some(_) if is_key => None,
                        Some(Level {
                            child: Child::Key(key), ..
                        }) => Some(key.as_ref()),
                        Some(level) => level.field.as_deref(),
                    };
                    visit(&Str {
                        bytes: &string,
                        field,
                        in_key: is_key,
                        stack: &stack,
                    })?;
                }
                match stack.last_mut() {
                    Some(level) if is_key => {
                        level.child = Child::Key(string);
                        level.expect_key = false;
                    }
                    _ => value_done(&mut stack),
                }
            }
            _ => {
                // A number, true, false or null.
                i += json[i..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(json.len() - i);
                value_done(&mut stack);
            }
        }
    }
    ControlFlow::Continue(())
}

/// A value of the innermost container is complete.
fn value_done(stack: &mut [Level<'_>]) {
    if let Some(level) = stack.last_mut() {
        match &mut level.child {
            Child::Index(index) => *index += 1,
            Child::Key(_) => level.expect_key = true,
        }
    }
}

/// The string starting with the quote at `start`, unescaped, and the index
/// after its closing quote. Borrowed unless it has escapes.
fn read_string(json: &[u8], start: usize) -> (Cow<'_, [u8]>, usize) {
    let body = start + 1;
    let Some(stop) = find_quote_or_backslash(&json[body..]) else {
        return (Cow::Borrowed(&json[body..]), json.len());
    };
    if json[body + stop] == b'"' {
        return (Cow::Borrowed(&json[body..body + stop]), body + stop + 1);
    }
    let mut out = json[body..body + stop].to_vec();
    let mut i = body + stop;
    while i < json.len() {
        match json[i] {
            b'"' => return (Cow::Owned(out), i + 1),
            b'\\' => {
                let Some(&escape) = json.get(i + 1) else { break };
                i += 2;
                match escape {
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let (c, used) = unicode_escape(json, i);
                        i += used;
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    // `\"`, `\\`, `\/`.
                    other => out.push(other),
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (Cow::Owned(out), json.len())
}

/// The first `"` or `\\` in `bytes`, eight bytes at a time (strings are
/// most of a payload, and this search is most of the walk).
fn find_quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Nonzero high bit in each byte of `word` equal to `byte` (the classic
    // has-zero-byte test on `word ^ byte * ONES`).
    let has = |word: u64, byte: u8| {
        let x = word ^ (u64::from(byte) * ONES);
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if has(word, b'"') | has(word, b'\\') != 0 {
            // The test can flag a byte after a real match, never before:
            // look at the chunk's bytes for the exact position.
            return chunk.iter().position(|b| *b == b'"' || *b == b'\\').map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| *b == b'"' || *b == b'\\')
        .map(|i| offset + i)
}

/// The character of the `XXXX` of a `\uXXXX` at `at` (a surrogate pair
/// `\uD83D\uDE00` takes both), and how many bytes it used; U+FFFD for a
/// lone surrogate or bad hex.
fn unicode_escape(json: &[u8], at: usize) -> (char, usize) {
    let hex = |at: usize| {
        let digits = json.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let Some(first) = hex(at) else {
        return (char::REPLACEMENT_CHARACTER, 0);
    };
    if (0xD800..0xDC00).contains(&first)
        && json.get(at + 4..at + 6) == Some(b"\\u")
        && let Some(second) = hex(at + 6)
        && (0xDC00..0xE000).contains(&second)
    {
        let c = 0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00);
        return (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 10);
    }
    (
        char::from_u32(u32::from(first)).unwrap_or(char::REPLACEMENT_CHARACTER),
        4,
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// What the walk visits: (path, field name, string, is a key).
    type Visit = (String, Option<String>, String, bool);

    fn visits(json: &[u8]) -> Vec<Visit> {
        let mut out = Vec::new();
        let _ = walk(json, &mut |s: &Str<'_>| {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push((s.path(), s.field.map(text), text(s.bytes), s.in_key));
            ControlFlow::Continue(())
        });
        out
    }

    /// The same, from a parsed `Value` (the reference).
    fn expected(value: &Value) -> Vec<Visit> {
        fn child(parent: &str, segment: Segment<'_>) -> String {
            let mut path = parent.to_string();
            path::push(&mut path, segment);
            path
        }
        fn go(value: &Value, path: &str, field: Option<&str>, out: &mut Vec<Visit>) {
            match value {
                Value::String(s) => out.push((path.to_string(), field.map(str::to_string), s.clone(), false)),
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        go(item, &child(path, Segment::Index(i)), field, out);
                    }
                }
                Value::Object(map) => {
                    for (key, item) in map {
                        out.push((path.to_string(), None, key.clone(), true));
                        go(item, &child(path, Segment::Key(key)), Some(key), out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        go(value, "payload", None, &mut out);
        out
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[a-z_]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner.clone(), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[a-z_.]{0,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_walk_visits_what_serde_json_parses(value in json_value()) {
            let want = expected(&value);
            let compact = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(visits(&compact), want.clone());
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            prop_assert_eq!(visits(&pretty), want);
        }

        #[test]
        fn the_walk_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = visits(&bytes);
        }
    }

    proptest! {
        #[test]
        fn the_word_search_finds_what_the_byte_search_finds(bytes in prop::collection::vec(
            prop_oneof![Just(b'"'), Just(b'\\'), Just(b'a'), Just(0x22 ^ 0x80), Just(0x5c ^ 0x01), any::<u8>()],
            0..40,
        )) {
            prop_assert_eq!(
                find_quote_or_backslash(&bytes),
                bytes.iter().position(|b| *b == b'"' || *b == b'\\')
            );
        }
    }

    #[test]
    fn escapes_are_decoded() {
        let json = br#"{"a\/b":"\u0041KIA\n\"x\"\\ \ud83d\ude00 \ud800 \/"}"#;
        assert_eq!(
            visits(json),
            vec![
                ("payload".to_string(), None, "a/b".to_string(), true),
                (
                    "payload[\"a/b\"]".to_string(),
                    Some("a/b".to_string()),
                    "AKIA\n\"x\"\\ \u{1F600} \u{FFFD} /".to_string(),
                    false
                ),
            ]
        );
    }

    #[test]
    fn paths_fields_and_deep_nesting() {
        let json = br#"{"a":[{"b":"x"},["y"]],"c":{"d":1,"e":"z"},"f":"w"}"#;
        let got: Vec<(String, Option<String>, String)> = visits(json)
            .into_iter()
            .filter(|v| !v.3)
            .map(|(p, f, s, _)| (p, f, s))
            .collect();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            vec![
                ("payload.a[0].b".to_string(), some("b"), "x".to_string()),
                ("payload.a[1][0]".to_string(), some("a"), "y".to_string()),
                ("payload.c.e".to_string(), some("e"), "z".to_string()),
                ("payload.f".to_string(), some("f"), "w".to_string()),
            ]
        );
        let deep = format!("{}\"s\"{}", "[".repeat(10_000), "]".repeat(10_000));
        let visited = visits(deep.as_bytes());
        assert_eq!(visited.len(), 1);
        assert!(visited[0].0.starts_with("payload[0][0]"));
        assert_eq!(
            visits(b"\"top\""),
            vec![("payload".to_string(), None, "top".to_string(), false)]
        );
    }
}
