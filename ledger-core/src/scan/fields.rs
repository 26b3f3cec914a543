//! Which field names look like they hold a secret.
//!
//! A name is split into words (at non-alphanumerics, lower-to-upper case
//! changes and letter/digit changes: `dbPassword`, `DB_PASSWORD`,
//! `x-api-key`, `SecretAccessKey`), and what counts is the **last** word:
//! `password`, `client_secret`, `access_token` and `api_key` hold secrets,
//! while `token_count`, `auth_method`, `password_hash` or `secret_name` are
//! about one and hold ordinary evidence. `author` is one word, not `auth`.
//! A few qualifiers turn a secret word ordinary again (`next_token`,
//! `page_token`, `idempotency_token` are opaque but not credentials).

/// What a field name says about its value. All false for ordinary fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldKind {
    /// The value is a secret if it looks random (`high-entropy-secret`).
    pub(crate) secret: bool,
    /// An AWS secret access key field (`aws_secret_access_key`,
    /// `SecretAccessKey`).
    pub(crate) aws_secret: bool,
    /// A `private_key` field (GCP service-account JSON and friends).
    pub(crate) private_key: bool,
    /// An `Authorization`-style field whose value is `<scheme> <credentials>`.
    pub(crate) authorization: bool,
}

/// Last words that make a field secret on their own.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "creds",
    "cookie",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "auth",
    "authorization",
];

/// Words before `token` that make it an opaque handle, not a credential.
const ORDINARY_TOKEN_QUALIFIERS: &[&str] = &[
    "page",
    "next",
    "prev",
    "previous",
    "continuation",
    "pagination",
    "cursor",
    "idempotency",
    "client",
    "sync",
    "resume",
    "request",
    "change",
    "cancellation",
    "marker",
];

/// Words before `key` that make it a secret key (a bare `key` is usually a
/// lookup key, and `public_key`, `key_id` are public).
const SECRET_KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "signing",
    "encryption",
    "master",
    "auth",
    "client",
    "account",
    "shared",
    "session",
    "webhook",
    "license",
    "deploy",
    "ssh",
    "app",
    "subscription",
    "storage",
];

/// Most words looked at (the last ones of a longer name).
const MAX_WORDS: usize = 8;

/// Classifies a field name (a JSON key, a metadata key, or the name before
/// `=`/`:` in text).
pub(crate) fn classify(name: &[u8]) -> FieldKind {
    if !may_be_secret(name) {
        return FieldKind::default();
    }
    let mut words = Words::default();
    split_words(name, &mut words);
    let n = words.len;
    if n == 0 {
        return FieldKind::default();
    }
    let word = |i: usize| {
        let (start, end) = words.ranges[i];
        &name[start..end]
    };
    let is = |w: &[u8], list: &[&str]| list.iter().any(|s| w.eq_ignore_ascii_case(s.as_bytes()));
    let last = word(n - 1);
    let prev = if n >= 2 { Some(word(n - 2)) } else { None };
    let token = last.eq_ignore_ascii_case(b"token") || last.eq_ignore_ascii_case(b"tokens");
    let key = last.eq_ignore_ascii_case(b"key") || last.eq_ignore_ascii_case(b"keys");
    let secret = is(last, SECRET_WORDS)
        || (token && !prev.is_some_and(|p| is(p, ORDINARY_TOKEN_QUALIFIERS)))
        || (key && prev.is_some_and(|p| is(p, SECRET_KEY_QUALIFIERS)));
    if !secret {
        return FieldKind::default();
    }
    let any = |s: &str| (0..n).any(|i| word(i).eq_ignore_ascii_case(s.as_bytes()));
    FieldKind {
        secret,
        aws_secret: (any("secret") || last.eq_ignore_ascii_case(b"secretkey")) && (any("access") || any("aws")),
        private_key: last.eq_ignore_ascii_case(b"privatekey")
            || (key && prev.is_some_and(|p| p.eq_ignore_ascii_case(b"private"))),
        authorization: last.eq_ignore_ascii_case(b"authorization") || last.eq_ignore_ascii_case(b"auth"),
    }
}

/// A fast filter run on every field name: a secret name's last word ends
/// the name (bar trailing digits and separators), so a name that ends in
/// none of the possible last words ([`SECRET_WORDS`], `token(s)`,
/// `key(s)`) is ordinary without being split. The candidates are grouped by
/// their last letter, so most names are settled by one lookup.
fn may_be_secret(name: &[u8]) -> bool {
    let Some(last) = name.iter().rposition(u8::is_ascii_alphabetic) else {
        return false;
    };
    let candidates: &[&str] = match name[last].to_ascii_lowercase() {
        b'd' => &["password", "passwd", "pwd"],
        b'e' => &["passphrase", "cookie"],
        b't' => &["secret"],
        b's' => &["secrets", "credentials", "creds", "tokens", "keys"],
        b'l' => &["credential"],
        b'y' => &["key"],
        b'h' => &["auth"],
        b'n' => &["authorization", "token"],
        _ => return false,
    };
    let name = &name[..=last];
    candidates
        .iter()
        .any(|word| name.len() >= word.len() && name[name.len() - word.len()..].eq_ignore_ascii_case(word.as_bytes()))
}

/// The last [`MAX_WORDS`] alphabetic words of a name, as byte ranges.
#[derive(Default)]
struct Words {
    ranges: [(usize, usize); MAX_WORDS],
    len: usize,
}

impl Words {
    fn push(&mut self, start: usize, end: usize) {
        if self.len == MAX_WORDS {
            self.ranges.copy_within(1.., 0);
            self.len -= 1;
        }
        self.ranges[self.len] = (start, end);
        self.len += 1;
    }
}

/// Splits at non-alphanumerics, lower-to-upper changes (`dbPassword`), the
/// last capital of an acronym before a lower-case letter (`APIKey` is
/// `API`, `Key`) and letter/digit changes. Numeric words are dropped, so
/// `password2` ends in `password`.
fn split_words(name: &[u8], words: &mut Words) {
    let mut start: Option<usize> = None;
    let mut keep = false;
    for (i, &b) in name.iter().enumerate() {
        let boundary = match start {
            None => false,
            Some(_) => {
                let prev = name[i - 1];
                let next = name.get(i + 1).copied().unwrap_or(b' ');
                !b.is_ascii_alphanumeric()
                    || (prev.is_ascii_lowercase() && b.is_ascii_uppercase())
                    || (prev.is_ascii_uppercase() && b.is_ascii_uppercase() && next.is_ascii_lowercase())
                    || (prev.is_ascii_digit() != b.is_ascii_digit())
            }
        };
        if boundary && let Some(s) = start.take() {
            if keep {
                words.push(s, i);
            }
            keep = false;
        }
        if b.is_ascii_alphanumeric() {
            if start.is_none() {
                start = Some(i);
            }
            keep |= b.is_ascii_alphabetic();
        }
    }
    if let Some(s) = start
        && keep
    {
        words.push(s, name.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str) -> bool {
        classify(name.as_bytes()).secret
    }

    #[test]
    fn secret_looking_names() {
        for name in [
            "password",
            "db_password",
            "DB_PASSWORD",
            "dbPassword",
            "passwd",
            "secret",
            "client_secret",
            "clientSecret",
            "token",
            "access_token",
            "refreshToken",
            "SessionToken",
            "api_key",
            "apikey",
            "apiKey",
            "APIKey",
            "x-api-key",
            "access_key",
            "private_key",
            "privateKey",
            "credential",
            "credentials",
            "auth",
            "Authorization",
            "aws_secret_access_key",
            "SecretAccessKey",
            "password2",
            "registry.password",
        ] {
            assert!(secret(name), "{name} should look secret");
        }
    }

    #[test]
    fn ordinary_names() {
        for name in [
            "token_count",
            "auth_method",
            "author",
            "authority",
            "password_hash",
            "password_changed_at",
            "secret_name",
            "secretRef",
            "token_id",
            "next_token",
            "NextToken",
            "page_token",
            "idempotency_token",
            "ClientToken",
            "key",
            "key_id",
            "public_key",
            "AccessKeyId",
            "payload_hash",
            "commit",
            "digest",
            "id",
            "tokenizer",
            "passage",
            "",
            "_",
            "42",
        ] {
            assert!(!secret(name), "{name} should be ordinary");
        }
    }

    #[test]
    fn special_kinds() {
        assert!(classify(b"aws_secret_access_key").aws_secret);
        assert!(classify(b"SecretAccessKey").aws_secret);
        assert!(classify(b"AWS_SECRET_ACCESS_KEY").aws_secret);
        assert!(!classify(b"client_secret").aws_secret);
        assert!(classify(b"private_key").private_key);
        assert!(classify(b"privateKey").private_key);
        assert!(!classify(b"private_key_id").private_key);
        assert!(classify(b"Authorization").authorization);
        assert!(classify(b"proxy-authorization").authorization);
        assert!(!classify(b"auth_method").authorization);
    }

    #[test]
    fn the_fast_filter_knows_every_last_letter() {
        for word in SECRET_WORDS.iter().chain(&["token", "tokens", "key", "keys"]) {
            assert!(may_be_secret(word.as_bytes()), "{word}");
            assert!(may_be_secret(word.to_ascii_uppercase().as_bytes()), "{word}");
        }
        assert!(!may_be_secret(b"service"));
        assert!(!may_be_secret(b"123"));
    }

    #[test]
    fn long_names_keep_their_last_words() {
        assert!(secret("a_b_c_d_e_f_g_h_i_j_k_password"));
        assert!(!secret("password_a_b_c_d_e_f_g_h_i_j_k"));
    }
}
