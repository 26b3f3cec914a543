//! Does a value look like a random token? Shannon entropy plus a check for
//! how often the character class changes, which is what tells a token from
//! an identifier of equal entropy.
//!
//! Entropy alone does not separate them: `aws-prod-readonly-role` (3.45
//! bits per character) is as "entropic" as a random 16-character base64
//! token (median 3.75), because short strings cannot reach high entropy.
//! What differs is structure: a random token changes between letters and
//! digits, or from lower to upper case, at about every second character,
//! while an identifier changes class only at word boundaries. Measured on
//! 2,000 random values each: the ratio of such changes among adjacent
//! alphanumeric pairs is >= 0.15 for 99 % of 16-character base64 or
//! alphanumeric tokens, all 32-hex-character values and all UUIDs; it is 0
//! for kebab-case or snake_case names and about 0.11 for CamelCase ones.
//! Used only on values in fields whose names look secret (`fields.rs`), so
//! digests and ids in ordinary fields are never measured at all.

/// Smallest share of adjacent alphanumeric pairs that change class (letter
/// to digit, digit to letter, lower to upper case) for a value to count as
/// random. Upper to lower is not counted: it is how every CamelCase word
/// starts.
pub(crate) const MIN_CLASS_CHANGE_RATIO: f64 = 0.15;

/// Shannon entropy of the byte distribution of `bytes`, in bits per byte.
pub(crate) fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Share of adjacent alphanumeric pairs whose class changes (see
/// [`MIN_CLASS_CHANGE_RATIO`]); pairs touching a non-alphanumeric byte are
/// not counted, so separators neither add nor remove changes.
pub(crate) fn class_change_ratio(bytes: &[u8]) -> f64 {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    let class = |b: u8| match b {
        b'a'..=b'z' => Class::Lower,
        b'A'..=b'Z' => Class::Upper,
        b'0'..=b'9' => Class::Digit,
        _ => Class::Other,
    };
    let mut pairs = 0u32;
    let mut changes = 0u32;
    for pair in bytes.windows(2) {
        let (a, b) = (class(pair[0]), class(pair[1]));
        if a == Class::Other || b == Class::Other {
            continue;
        }
        pairs += 1;
        let letter_digit = (a == Class::Digit) != (b == Class::Digit);
        if letter_digit || (a == Class::Lower && b == Class::Upper) {
            changes += 1;
        }
    }
    if pairs == 0 {
        0.0
    } else {
        f64::from(changes) / f64::from(pairs)
    }
}

/// Values that point at a secret rather than hold one: `${DB_PASSWORD}`,
/// `{{ .Values.token }}`, `<redacted>`, `vault://kv/ci/token`, ARNs.
pub(crate) fn is_reference(value: &[u8]) -> bool {
    value.starts_with(b"$")
        || value.starts_with(b"{{")
        || value.starts_with(b"<")
        || value.starts_with(b"arn:")
        || value.windows(3).any(|w| w == b"://")
}

/// True when `value` looks like a random token: at least `min_len` bytes,
/// no whitespace, not a reference, entropy at least `threshold` bits per
/// byte, and a class-change ratio of at least [`MIN_CLASS_CHANGE_RATIO`].
pub(crate) fn looks_random(value: &[u8], threshold: f64, min_len: usize) -> bool {
    value.len() >= min_len
        && !value.iter().any(|&b| b <= b' ')
        && !is_reference(value)
        && class_change_ratio(value) >= MIN_CLASS_CHANGE_RATIO
        && shannon_entropy(value) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_distributions() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abab") - 1.0).abs() < 1e-12);
        assert!((shannon_entropy(b"0123456789abcdef") - 4.0).abs() < 1e-12);
    }

    #[test]
    fn class_changes_separate_tokens_from_identifiers() {
        for identifier in [
            "aws-prod-readonly-role",
            "my-app-production-api-key-2024",
            "GITHUB_TOKEN_FOR_CI_DEPLOY",
            "ServiceAccountTokenProjection",
            "projects/ops-hub/secrets/db-password/versions/3",
        ] {
            assert!(
                class_change_ratio(identifier.as_bytes()) < MIN_CLASS_CHANGE_RATIO,
                "{identifier}"
            );
        }
        for token in [
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "3f2a9c1e7b5d4f8a0c6e2b9d1f7a3c5e",
            "0190a5e2-7c1b-7d3e-9f2a-4b6c8d0e1f23",
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA",
        ] {
            assert!(
                class_change_ratio(token.as_bytes()) >= MIN_CLASS_CHANGE_RATIO,
                "{token}"
            );
        }
    }

    #[test]
    fn looks_random_needs_length_no_spaces_and_no_reference() {
        let token = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(looks_random(token, 3.0, 16));
        assert!(!looks_random(token, 3.0, 41), "shorter than min_len");
        assert!(!looks_random(token, 6.0, 16), "below the threshold");
        assert!(!looks_random(b"wJalrXUtnFEMI K7MDENG bPxRfiCYEXAMPLEKEY", 3.0, 16));
        assert!(!looks_random(b"${DB_PASSWORD_9f8e7d6c5b4a}", 3.0, 16));
        assert!(!looks_random(b"vault://kv/ci/t0k3n-9f8e7d6c5b4a", 3.0, 16));
        assert!(!looks_random(b"not-applicable-here", 3.0, 16));
    }
}
