//! Walks a JSON payload once, without building a tree, scanning every key
//! and string value with the name of the field it sits in, and stopping at
//! the first hit.
//!
//! The walk is a serde visitor over `serde_json`'s borrowing parser: keys
//! without escapes are borrowed from the payload, the path to the current
//! value is a chain of stack frames, and a path string is only built when a
//! rule matches. The walk also parses the payload, so validation does not
//! parse it a second time when the scan runs.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::path::{self, Segment};
use super::{Finding, Policy};

/// How a walk ended.
pub(crate) enum JsonScan {
    /// Parsed, nothing found.
    Clean,
    /// A rule matched (the parse stopped there).
    Found(Finding),
    /// The parser refused the payload (or its nesting is deeper than the
    /// parser's recursion limit).
    Invalid,
}

/// Scans `payload` as JSON under `policy`.
pub(crate) fn scan(policy: &Policy, payload: &[u8]) -> JsonScan {
    let mut walk = Walk { policy, found: None };
    let root = Frame {
        parent: None,
        segment: Segment::Root("payload"),
    };
    let mut de = serde_json::Deserializer::from_slice(payload);
    let parsed = Node {
        walk: &mut walk,
        frame: &root,
        key: None,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (walk.found, parsed) {
        (Some(finding), _) => JsonScan::Found(finding),
        (None, Ok(())) => JsonScan::Clean,
        (None, Err(_)) => JsonScan::Invalid,
    }
}

/// The message of the error that stops the parser at a hit; never shown.
const STOP: &str = "secret rule matched";

struct Walk<'p> {
    policy: &'p Policy,
    found: Option<Finding>,
}

/// One step of the path to the current value, linked to its parent.
#[derive(Clone, Copy)]
struct Frame<'a> {
    parent: Option<&'a Frame<'a>>,
    segment: Segment<'a>,
}

impl Frame<'_> {
    fn path(&self) -> String {
        let mut segments = Vec::new();
        let mut frame = Some(self);
        while let Some(f) = frame {
            segments.push(f.segment);
            frame = f.parent;
        }
        let mut out = String::new();
        for segment in segments.into_iter().rev() {
            path::push(&mut out, segment);
        }
        out
    }
}

/// A value to visit: where it is, and the name of the field it is in
/// (array elements inherit it: `"tokens": ["...", "..."]`).
struct Node<'w, 'p, 'f> {
    walk: &'w mut Walk<'p>,
    frame: &'f Frame<'f>,
    key: Option<&'f str>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        if value.len() < self.walk.policy.min_len {
            return Ok(());
        }
        let frame = self.frame;
        match self
            .walk
            .policy
            .scan_value(value.as_bytes(), self.key, &|| frame.path(), false)
        {
            Some(finding) => {
                self.walk.found = Some(finding);
                Err(E::custom(STOP))
            }
            None => Ok(()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let child = Frame {
                parent: Some(self.frame),
                segment: Segment::Index(index),
            };
            let node = Node {
                walk: &mut *self.walk,
                frame: &child,
                key: self.key,
            };
            if seq.next_element_seed(node)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let frame = self.frame;
            if key.len() >= self.walk.policy.min_len
                && let Some(finding) = self
                    .walk
                    .policy
                    .scan_value(key.as_bytes(), None, &|| frame.path(), true)
            {
                self.walk.found = Some(finding);
                return Err(de::Error::custom(STOP));
            }
            let child = Frame {
                parent: Some(self.frame),
                segment: Segment::Key(&key),
            };
            map.next_value_seed(Node {
                walk: &mut *self.walk,
                frame: &child,
                key: Some(&key),
            })?;
        }
        Ok(())
    }
}

/// An object key, borrowed from the payload when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key))
    }
}
