//! Field paths: how a hit names where it is (`payload.db.password`,
//! `payload.hosts[2].token`, `metadata.api_key`), and how allow-list paths
//! match them.
//!
//! A key made of letters, digits, `_` and `-` is written `.key`; any other
//! key is written `["key"]`, escaped and cut at 64 characters, so a path
//! prints on one line whatever the key holds. Keys on the path of a hit
//! have all been scanned themselves before (a scan stops at the first
//! hit), so the path never holds a credential that a rule knows.

use std::fmt::Write as _;

/// Longest key written in full in a path, in characters.
const MAX_KEY_CHARS: usize = 64;

/// One step of a path.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Segment<'a> {
    /// The root: `payload` or `metadata`.
    Root(&'static str),
    /// An object key or metadata key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

/// Appends `segment` to `path` in the form described in the module docs.
pub(crate) fn push(path: &mut String, segment: Segment<'_>) {
    match segment {
        Segment::Root(name) => path.push_str(name),
        Segment::Key(key) if is_plain(key) => {
            path.push('.');
            path.push_str(key);
        }
        Segment::Key(key) => {
            let cut: String = key.chars().take(MAX_KEY_CHARS).collect();
            let ellipsis = if cut.len() < key.len() { "…" } else { "" };
            let _ = write!(path, "[{cut:?}{ellipsis}]");
        }
        Segment::Index(index) => {
            let _ = write!(path, "[{index}]");
        }
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why an allow-list path can never match.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), String> {
    let root_len = if pattern.starts_with("payload") {
        "payload".len()
    } else if pattern.starts_with("metadata") {
        "metadata".len()
    } else {
        return Err("must start with `payload` or `metadata`".to_string());
    };
    match pattern.as_bytes().get(root_len) {
        None | Some(b'.') | Some(b'[') => Ok(()),
        Some(_) => Err("must start with `payload` or `metadata`".to_string()),
    }
}

/// True when allow-list `pattern` covers `path`: the same path or a path
/// below it (`payload.examples` covers `payload.examples[0].token`), where
/// `[*]` in the pattern stands for any array index and `.*` for any plain
/// key.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let (p, h) = (pattern.as_bytes(), path.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        if p[i..].starts_with(b"[*]") {
            if h.get(j) != Some(&b'[') {
                return false;
            }
            let digits = h[j + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || h.get(j + 1 + digits) != Some(&b']') {
                return false;
            }
            i += 3;
            j += digits + 2;
        } else if p[i..].starts_with(b".*") && matches!(p.get(i + 2), None | Some(b'.') | Some(b'[')) {
            if h.get(j) != Some(&b'.') {
                return false;
            }
            let key = h[j + 1..].iter().take_while(|b| **b != b'.' && **b != b'[').count();
            if key == 0 {
                return false;
            }
            i += 2;
            j += key + 1;
        } else {
            if h.get(j) != Some(&p[i]) {
                return false;
            }
            i += 1;
            j += 1;
        }
    }
    matches!(h.get(j), None | Some(b'.') | Some(b'['))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segments: &[Segment<'_>]) -> String {
        let mut out = String::new();
        for segment in segments {
            push(&mut out, *segment);
        }
        out
    }

    #[test]
    fn paths_print_plain_keys_dotted_and_others_quoted() {
        use Segment::*;
        assert_eq!(
            path(&[Root("payload"), Key("credentials"), Key("aws"), Key("secret")]),
            "payload.credentials.aws.secret"
        );
        assert_eq!(
            path(&[Root("payload"), Key("hosts"), Index(2), Key("token")]),
            "payload.hosts[2].token"
        );
        assert_eq!(path(&[Root("metadata"), Key("a b.c")]), "metadata[\"a b.c\"]");
        assert_eq!(
            path(&[Root("metadata"), Key("line\nbreak")]),
            "metadata[\"line\\nbreak\"]"
        );
        let long = "k".repeat(100);
        let printed = path(&[Root("payload"), Key(&long)]);
        assert!(printed.ends_with("…]") && printed.len() < 80, "{printed}");
        assert_eq!(path(&[Root("payload"), Key("")]), "payload[\"\"]");
    }

    #[test]
    fn patterns_cover_paths_below_them() {
        assert!(matches("payload.example_key", "payload.example_key"));
        assert!(matches("payload.examples", "payload.examples[0].token"));
        assert!(matches("payload.examples", "payload.examples.aws"));
        assert!(!matches("payload.examples", "payload.examples_other"));
        assert!(!matches("payload.example_key", "payload.example"));
        assert!(matches("payload.hosts[*].token", "payload.hosts[12].token"));
        assert!(!matches("payload.hosts[*].token", "payload.hosts.token"));
        assert!(matches("payload.*.password", "payload.db.password"));
        assert!(!matches("payload.*.password", "payload.db.user"));
        assert!(matches("metadata.ci_token", "metadata.ci_token"));
        assert!(matches("payload", "payload"));
        assert!(!matches("metadata", "payload.metadata"));
    }

    #[test]
    fn patterns_must_name_a_root() {
        assert!(check_pattern("payload.x").is_ok());
        assert!(check_pattern("metadata").is_ok());
        assert!(check_pattern("payloads.x").is_err());
        assert!(check_pattern("x.payload").is_err());
    }
}
