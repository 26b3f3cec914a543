//! The built-in secret rules: their stable names ([`Rule`]) and the
//! matchers that find them.
//!
//! The matchers are hand-written over bytes rather than regular
//! expressions: every rule starts with a fixed, rare trigger byte (`-` of
//! `-----BEGIN`, `A` of `AKIA`, `g` of `ghp_`, `:` of `://` or of a
//! `key: value` pair, ...), so one table lookup per byte decides whether
//! anything needs a closer look. That keeps the scan a single pass at
//! memory speed and adds no dependency. A matcher reports the byte range of
//! the credential it found; the caller decides whether the allow-list
//! covers it and never copies the bytes anywhere.
//!
//! Two kinds of matchers live here: text matchers ([`scan_text`]), which
//! need nothing but the bytes, and keyed matchers ([`keyed_candidates`]),
//! which also know the name of the field the value sits in.

use std::fmt;
use std::ops::{ControlFlow, Range};

use serde::{Deserialize, Serialize};

use super::entropy::looks_random;
use super::fields::{FieldKind, classify};

/// A built-in secret rule. The names (kebab-case, as in `Display`) are
/// stable: configuration and error messages use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// A PEM private key: `-----BEGIN [RSA |EC |OPENSSH |ENCRYPTED |PGP ...]PRIVATE KEY[ BLOCK]-----`
    /// followed by key material.
    PrivateKeyBlock,
    /// An AWS access key id: `AKIA` or `ASIA` and 16 upper-case letters or
    /// digits.
    AwsAccessKeyId,
    /// A 40-character AWS secret access key in a field named like one.
    AwsSecretAccessKey,
    /// A `private_key` field holding a PEM private key, as in a GCP
    /// service-account key file.
    GcpServiceAccount,
    /// A GitHub token: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`.
    GithubToken,
    /// A GitLab personal access token: `glpat-`.
    GitlabToken,
    /// A Slack token: `xoxa-`, `xoxb-`, `xoxp-`, `xoxo-`, `xoxr-`, `xoxs-`.
    SlackToken,
    /// A live Stripe secret or restricted key: `sk_live_`, `rk_live_`.
    StripeKey,
    /// A signed JSON Web Token: `eyJ...` `.` `eyJ...` `.` signature.
    Jwt,
    /// `Bearer <token>`, or credentials in an `Authorization` header or
    /// field (`Basic ...`, `Token ...`).
    BearerToken,
    /// A URL with a password: `scheme://user:password@host`.
    GenericPasswordUrl,
    /// A random-looking value in a field whose name looks secret
    /// (`password`, `client_secret`, `api_key`, ...).
    HighEntropySecret,
}

impl Rule {
    /// Every built-in rule, in a fixed order.
    pub const ALL: [Rule; 12] = [
        Rule::PrivateKeyBlock,
        Rule::AwsAccessKeyId,
        Rule::AwsSecretAccessKey,
        Rule::GcpServiceAccount,
        Rule::GithubToken,
        Rule::GitlabToken,
        Rule::SlackToken,
        Rule::StripeKey,
        Rule::Jwt,
        Rule::BearerToken,
        Rule::GenericPasswordUrl,
        Rule::HighEntropySecret,
    ];

    /// The rule's stable name, e.g. `aws-access-key-id`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::PrivateKeyBlock => "private-key-block",
            Rule::AwsAccessKeyId => "aws-access-key-id",
            Rule::AwsSecretAccessKey => "aws-secret-access-key",
            Rule::GcpServiceAccount => "gcp-service-account",
            Rule::GithubToken => "github-token",
            Rule::GitlabToken => "gitlab-token",
            Rule::SlackToken => "slack-token",
            Rule::StripeKey => "stripe-key",
            Rule::Jwt => "jwt",
            Rule::BearerToken => "bearer-token",
            Rule::GenericPasswordUrl => "generic-password-url",
            Rule::HighEntropySecret => "high-entropy-secret",
        }
    }

    /// The rule called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of rules, as a bit mask (the scan tests membership per candidate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RuleSet(u16);

impl RuleSet {
    /// Every built-in rule.
    #[cfg(test)]
    pub(crate) fn all() -> RuleSet {
        Rule::ALL.into_iter().collect()
    }

    /// The rules that look only for a fixed prefix or a PEM header: the ones
    /// worth running over binary payloads, where `key=value` pairs, URLs and
    /// entropy mean nothing.
    pub(crate) fn binary() -> RuleSet {
        [
            Rule::PrivateKeyBlock,
            Rule::AwsAccessKeyId,
            Rule::GithubToken,
            Rule::GitlabToken,
            Rule::SlackToken,
            Rule::StripeKey,
            Rule::Jwt,
        ]
        .into_iter()
        .collect()
    }

    pub(crate) fn contains(self, rule: Rule) -> bool {
        self.0 & rule.bit() != 0
    }

    pub(crate) fn remove(&mut self, rule: Rule) {
        self.0 &= !rule.bit();
    }

    pub(crate) fn intersect(self, other: RuleSet) -> RuleSet {
        RuleSet(self.0 & other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Rule> for RuleSet {
    fn from_iter<I: IntoIterator<Item = Rule>>(iter: I) -> RuleSet {
        RuleSet(iter.into_iter().fold(0, |bits, rule| bits | rule.bit()))
    }
}

/// What the matchers need besides the bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    /// The enabled rules.
    pub(crate) rules: RuleSet,
    /// `high-entropy-secret` (and bearer tokens): bits per byte.
    pub(crate) entropy_threshold: f64,
    /// `high-entropy-secret`: shortest value considered.
    pub(crate) min_entropy_length: usize,
    /// Look at `name = value` pairs in text. Off for the nested look at
    /// such a value itself, so that look is one level deep.
    pub(crate) assignments: bool,
}

/// Called with each candidate: the rule and the credential's byte range.
/// `Break` stops the scan (a hit, or a value the allow-list covers whole).
pub(crate) type Sink<'a> = dyn FnMut(Rule, Range<usize>) -> ControlFlow<()> + 'a;

/// Runs the matchers that need the field name and look for one specific
/// format (`gcp-service-account`, `aws-secret-access-key`, credentials in
/// an `Authorization` field) over a value of field kind `kind`. Returns
/// `Break` as soon as `sink` does.
pub(crate) fn keyed_candidates(kind: FieldKind, value: &[u8], params: &Params, sink: &mut Sink<'_>) -> ControlFlow<()> {
    let rules = params.rules;
    if !kind.secret {
        return ControlFlow::Continue(());
    }
    if kind.private_key
        && rules.contains(Rule::GcpServiceAccount)
        && let Some(span) = find_private_key_block(value)
    {
        sink(Rule::GcpServiceAccount, span)?;
    }
    if kind.aws_secret && rules.contains(Rule::AwsSecretAccessKey) && is_aws_secret(value) {
        sink(Rule::AwsSecretAccessKey, 0..value.len())?;
    }
    if kind.authorization
        && rules.contains(Rule::BearerToken)
        && let Some(span) = scheme_credentials(value, 0)
    {
        sink(Rule::BearerToken, span)?;
    }
    ControlFlow::Continue(())
}

/// `high-entropy-secret`: a random-looking value in a secret-looking field.
/// Checked after every other rule, so a value that is a known format is
/// reported under that format's name.
pub(crate) fn is_high_entropy_secret(kind: FieldKind, value: &[u8], params: &Params) -> bool {
    kind.secret
        && params.rules.contains(Rule::HighEntropySecret)
        && looks_random(value, params.entropy_threshold, params.min_entropy_length)
}

/// Runs the text matchers over `text`, calling `sink` for each candidate in
/// order of position. Returns `Break` as soon as `sink` does.
pub(crate) fn scan_text(text: &[u8], params: &Params, sink: &mut Sink<'_>) -> ControlFlow<()> {
    if text.len() < MIN_TEXT_MATCH {
        return ControlFlow::Continue(());
    }
    let mut i = 0;
    let mut prev_alnum = false;
    while i < text.len() {
        let class = CLASS[usize::from(text[i])];
        // Most bytes trigger nothing, and a letter that starts a prefix only
        // counts at the start of a word.
        if (class & ANYWHERE != 0 || (class & WORD_START != 0 && !prev_alnum))
            && let Some((rule, span)) = match_at(text, i, params)
        {
            let next = span.end.max(i + 1);
            sink(rule, span)?;
            prev_alnum = text[next - 1].is_ascii_alphanumeric();
            i = next;
            continue;
        }
        prev_alnum = class & ALNUM != 0;
        i += 1;
    }
    ControlFlow::Continue(())
}

/// The shortest text any text matcher matches: `ab://:y@h`, a password
/// URL. Shorter strings (most JSON keys, many values) are not looked at.
pub(crate) const MIN_TEXT_MATCH: usize = 9;

/// [`CLASS`] bits: a matcher may start at this byte at the start of a word
/// (the known prefixes, `Bearer`, `Authorization`); a matcher may start at
/// this byte anywhere (`-----BEGIN`, `://`, `name=value`, `name: value`);
/// the byte is a letter or digit.
const WORD_START: u8 = 1;
const ANYWHERE: u8 = 2;
const ALNUM: u8 = 4;

/// One lookup per byte tells the scan loop all it needs.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        if (b as u8).is_ascii_alphanumeric() {
            table[b] = ALNUM;
        }
        b += 1;
    }
    let word_start = b"AagxsreBb";
    let mut i = 0;
    while i < word_start.len() {
        table[word_start[i] as usize] |= WORD_START;
        i += 1;
    }
    table[b'-' as usize] |= ANYWHERE;
    table[b':' as usize] |= ANYWHERE;
    table[b'=' as usize] |= ANYWHERE;
    table
};

fn match_at(text: &[u8], i: usize, params: &Params) -> Option<(Rule, Range<usize>)> {
    let rules = params.rules;
    let on = |rule: Rule| rules.contains(rule);
    let boundary = i == 0 || !text[i - 1].is_ascii_alphanumeric();
    match text[i] {
        b'-' if on(Rule::PrivateKeyBlock) => private_key_block_at(text, i).map(|span| (Rule::PrivateKeyBlock, span)),
        b'A' | b'a' if boundary => {
            if on(Rule::AwsAccessKeyId)
                && let Some(span) = aws_access_key_id_at(text, i)
            {
                return Some((Rule::AwsAccessKeyId, span));
            }
            if on(Rule::BearerToken) {
                return authorization_header_at(text, i).map(|span| (Rule::BearerToken, span));
            }
            None
        }
        b'g' if boundary => {
            if on(Rule::GithubToken)
                && let Some(span) = github_token_at(text, i)
            {
                return Some((Rule::GithubToken, span));
            }
            if on(Rule::GitlabToken) {
                return prefixed_token_at(text, i, b"glpat-", 20, is_token_byte_dash).map(|s| (Rule::GitlabToken, s));
            }
            None
        }
        b'x' if boundary && on(Rule::SlackToken) => slack_token_at(text, i).map(|span| (Rule::SlackToken, span)),
        b's' | b'r' if boundary && on(Rule::StripeKey) => {
            let prefix: &[u8] = if text[i] == b's' { b"sk_live_" } else { b"rk_live_" };
            prefixed_token_at(text, i, prefix, 16, u8::is_ascii_alphanumeric).map(|span| (Rule::StripeKey, span))
        }
        b'e' if boundary && on(Rule::Jwt) => jwt_at(text, i).map(|span| (Rule::Jwt, span)),
        b'B' | b'b' if boundary && on(Rule::BearerToken) => {
            bearer_at(text, i, params).map(|span| (Rule::BearerToken, span))
        }
        b':' => {
            if on(Rule::GenericPasswordUrl)
                && let Some(span) = password_url_at(text, i)
            {
                // A token used as the password (`https://x:ghp_...@host`) is
                // reported as what it is.
                let known = first_known(&text[span.clone()], params)
                    .map(|(rule, inner)| (rule, span.start + inner.start..span.start + inner.end));
                return Some(known.unwrap_or((Rule::GenericPasswordUrl, span)));
            }
            if params.assignments {
                return assignment_at(text, i, params);
            }
            None
        }
        b'=' if params.assignments => assignment_at(text, i, params),
        _ => None,
    }
}

/// `-----BEGIN <label>PRIVATE KEY[ BLOCK]-----` at `i`, with at least 16
/// base64 characters of key material within the next 512 bytes (so a
/// documentation placeholder like `MIIE...` is not a key). The range runs
/// to the end of the `-----END ...-----` line when there is one.
fn private_key_block_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let rest = text.get(i..)?;
    if !rest.starts_with(BEGIN) {
        return None;
    }
    let label_start = BEGIN.len();
    let label_len = rest[label_start..]
        .iter()
        .take(64)
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b' ')
        .count();
    let label = &rest[label_start..label_start + label_len];
    let after_label = label_start + label_len;
    if !rest[after_label..].starts_with(b"-----") {
        return None;
    }
    if !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK")) {
        return None;
    }
    let body_start = after_label + 5;
    let window = &rest[body_start..rest.len().min(body_start + 512)];
    let mut run = 0;
    let has_material = window.iter().any(|&b| {
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' {
            run += 1;
        } else {
            run = 0;
        }
        run >= 16
    });
    if !has_material {
        return None;
    }
    let end = find(&rest[body_start..], b"-----END ")
        .and_then(|at| {
            let from = body_start + at + 9;
            find(&rest[from..], b"-----").map(|close| from + close + 5)
        })
        .unwrap_or(rest.len().min(body_start + 512));
    Some(i..i + end)
}

/// The first PEM private key block anywhere in `value`.
pub(crate) fn find_private_key_block(value: &[u8]) -> Option<Range<usize>> {
    let mut from = 0;
    while let Some(at) = find(&value[from..], b"-----BEGIN ") {
        if let Some(span) = private_key_block_at(value, from + at) {
            return Some(span);
        }
        from += at + 1;
    }
    None
}

/// `AKIA`/`ASIA` and exactly 16 upper-case letters or digits.
fn aws_access_key_id_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    let rest = &text[i..];
    if !(rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA")) {
        return None;
    }
    let run = rest[4..]
        .iter()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .count();
    let after = rest.get(4 + run).copied().unwrap_or(b' ');
    (run == 16 && !after.is_ascii_alphanumeric()).then(|| i..i + 20)
}

/// A 40-character AWS secret access key (base64 alphabet).
fn is_aws_secret(value: &[u8]) -> bool {
    value.len() == 40
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'/' || *b == b'+')
        && value.iter().any(u8::is_ascii_digit)
}

fn github_token_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    for prefix in [b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"] {
        if let Some(span) = prefixed_token_at(text, i, prefix, 30, u8::is_ascii_alphanumeric) {
            return Some(span);
        }
    }
    prefixed_token_at(text, i, b"github_pat_", 22, is_token_byte_underscore)
}

fn slack_token_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    let rest = &text[i..];
    if rest.len() < 5 || !rest.starts_with(b"xox") || !b"abpors".contains(&rest[3]) || rest[4] != b'-' {
        return None;
    }
    let run = rest[5..].iter().take_while(|b| is_token_byte_dash(b)).count();
    let token = &rest[5..5 + run];
    (run >= 10 && token.iter().any(u8::is_ascii_digit)).then(|| i..i + 5 + run)
}

/// `prefix` at `i` followed by at least `min` bytes accepted by `body`.
fn prefixed_token_at(text: &[u8], i: usize, prefix: &[u8], min: usize, body: fn(&u8) -> bool) -> Option<Range<usize>> {
    let rest = &text[i..];
    if !rest.starts_with(prefix) {
        return None;
    }
    let run = rest[prefix.len()..].iter().take_while(|b| body(b)).count();
    (run >= min).then(|| i..i + prefix.len() + run)
}

/// `eyJ<b64url>.eyJ<b64url>.<b64url signature>`: header and claims are
/// base64url JSON objects, which always start `eyJ` (`{"`).
fn jwt_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    let segment = |from: usize| text[from..].iter().take_while(|b| is_base64url(b)).count();
    let rest = &text[i..];
    if !rest.starts_with(b"eyJ") {
        return None;
    }
    let header = segment(i);
    let dot1 = i + header;
    if header < 10 || text.get(dot1) != Some(&b'.') || !text[dot1 + 1..].starts_with(b"eyJ") {
        return None;
    }
    let claims = segment(dot1 + 1);
    let dot2 = dot1 + 1 + claims;
    if claims < 10 || text.get(dot2) != Some(&b'.') {
        return None;
    }
    let signature = segment(dot2 + 1);
    (signature >= 10).then(|| i..dot2 + 1 + signature)
}

/// `Bearer <token>` (any case), the token random-looking and 16+ bytes, so
/// prose about bearer tokens and `Bearer realm="..."` challenges pass.
fn bearer_at(text: &[u8], i: usize, params: &Params) -> Option<Range<usize>> {
    if !starts_with_ignore_case(&text[i..], b"bearer") {
        return None;
    }
    let spaces = text[i + 6..]
        .iter()
        .take(4)
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    if spaces == 0 {
        return None;
    }
    let start = i + 6 + spaces;
    let run = text[start..].iter().take_while(|b| is_credential_byte(b)).count();
    let token = &text[start..start + run];
    (looks_random(token, params.entropy_threshold, 16)).then(|| start..start + run)
}

/// `Authorization: <scheme> <credentials>` or `authorization="<scheme> ..."`
/// (any case, optional quotes): the credentials' range.
fn authorization_header_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    const NAME: &[u8] = b"authorization";
    if !starts_with_ignore_case(&text[i..], NAME) {
        return None;
    }
    let mut j = i + NAME.len();
    j += skip(&text[j..], |b| b == b'"' || b == b'\'' || b == b' ');
    if !matches!(text.get(j), Some(b':') | Some(b'=')) {
        return None;
    }
    j += 1;
    j += skip(&text[j..], |b| b == b'"' || b == b'\'' || b == b' ');
    scheme_credentials(text, j)
}

/// `<scheme> <credentials>` at `i` (`Basic dXNlcjpwYXNz`, `Token ...`):
/// the credentials' range, when they are 8+ credential bytes with a digit
/// or mixed case (so `<redacted>`, `$TOKEN` and `REDACTED` pass).
fn scheme_credentials(text: &[u8], i: usize) -> Option<Range<usize>> {
    let scheme = text[i..]
        .iter()
        .take(16)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if scheme < 2 {
        return None;
    }
    let mut j = i + scheme;
    let spaces = skip(&text[j..], |b| b == b' ');
    if spaces == 0 {
        return None;
    }
    j += spaces;
    let run = text[j..].iter().take_while(|b| is_credential_byte(b)).count();
    let token = &text[j..j + run];
    let digit = token.iter().any(u8::is_ascii_digit);
    let mixed = token.iter().any(u8::is_ascii_lowercase) && token.iter().any(u8::is_ascii_uppercase);
    (run >= 8 && (digit || mixed)).then(|| j..j + run)
}

/// `scheme://user:password@host` with `:` at `i`: the password's range.
/// Placeholders (`${DB_PASSWORD}`, `<password>`, `****`, `password`) pass.
fn password_url_at(text: &[u8], i: usize) -> Option<Range<usize>> {
    if !text[i + 1..].starts_with(b"//") {
        return None;
    }
    let scheme_len = text[..i]
        .iter()
        .rev()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
        .count();
    if scheme_len < 2 || !text[i - scheme_len].is_ascii_alphabetic() {
        return None;
    }
    let start = i + 3;
    let userinfo_len = text[start..]
        .iter()
        .take(256)
        .take_while(|b| !matches!(b, b'@' | b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\') && **b > b' ')
        .count();
    let at = start + userinfo_len;
    if text.get(at) != Some(&b'@') {
        return None;
    }
    let host = text.get(at + 1).copied().unwrap_or(b' ');
    if !(host.is_ascii_alphanumeric() || host == b'[') {
        return None;
    }
    let colon = start + text[start..at].iter().position(|b| *b == b':')?;
    let password = &text[colon + 1..at];
    (!password.is_empty() && !is_placeholder(password)).then(|| colon + 1..at)
}

fn is_placeholder(value: &[u8]) -> bool {
    const WORDS: &[&[u8]] = &[b"password", b"passwd", b"pass", b"secret", b"changeme", b"redacted"];
    value.starts_with(b"$")
        || value.starts_with(b"{")
        || value.starts_with(b"%7B")
        || value.starts_with(b"%24")
        || value.iter().all(|b| matches!(b, b'*' | b'x' | b'X' | b'.'))
        || WORDS.iter().any(|w| value.eq_ignore_ascii_case(w))
}

/// `name = value` or `"name": "value"` with the `=`/`:` at `i`: when
/// the name looks secret, the keyed matchers run on the value.
fn assignment_at(text: &[u8], i: usize, params: &Params) -> Option<(Rule, Range<usize>)> {
    let mut name_end = i;
    name_end -= text[..name_end]
        .iter()
        .rev()
        .take(4)
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    if name_end > 0 && matches!(text[name_end - 1], b'"' | b'\'') {
        name_end -= 1;
    }
    let name_len = text[..name_end]
        .iter()
        .rev()
        .take(64)
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        .count();
    if name_len == 0 {
        return None;
    }
    let kind = classify(&text[name_end - name_len..name_end]);
    if !kind.secret {
        return None;
    }
    let mut start = i + 1;
    start += skip(&text[start..], |b| b == b' ' || b == b'\t');
    let quote = match text.get(start) {
        Some(&q @ (b'"' | b'\'')) => {
            start += 1;
            Some(q)
        }
        _ => None,
    };
    let len = match quote {
        Some(q) => text[start..]
            .iter()
            .take(4096)
            .take_while(|b| **b != q && **b != b'\n')
            .count(),
        None => text[start..]
            .iter()
            .take(4096)
            .take_while(|b| **b > b' ' && !matches!(b, b',' | b';' | b'&' | b'"' | b'\'' | b'}' | b']' | b')'))
            .count(),
    };
    let value = &text[start..start + len];
    let mut found = None;
    let _ = keyed_candidates(kind, value, params, &mut |rule, span: Range<usize>| {
        found = Some((rule, start + span.start..start + span.end));
        ControlFlow::Break(())
    });
    if found.is_none() && is_high_entropy_secret(kind, value, params) && first_known(value, params).is_none() {
        // A known format inside the value is reported by its own rule when
        // the scan reaches it; only an unrecognised value is reported here.
        found = Some((Rule::HighEntropySecret, start..start + len));
    }
    found
}

/// The first text-rule match inside `value`, looking no deeper (no
/// `name = value` pairs inside it).
fn first_known(value: &[u8], params: &Params) -> Option<(Rule, Range<usize>)> {
    let nested = Params {
        assignments: false,
        ..*params
    };
    let mut found = None;
    let _ = scan_text(value, &nested, &mut |rule, span| {
        found = Some((rule, span));
        ControlFlow::Break(())
    });
    found
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn skip(text: &[u8], what: impl Fn(u8) -> bool) -> usize {
    text.iter().take(8).take_while(|b| what(**b)).count()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_base64url(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'
}

fn is_token_byte_dash(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'
}

fn is_token_byte_underscore(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'_'
}

/// RFC 6750 `b64token` characters.
fn is_credential_byte(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            rules: RuleSet::all(),
            entropy_threshold: 3.0,
            min_entropy_length: 16,
            assignments: true,
        }
    }

    /// Every candidate in `text`: rule and matched text.
    fn candidates(text: &str) -> Vec<(Rule, String)> {
        let mut found = Vec::new();
        let _ = scan_text(text.as_bytes(), &params(), &mut |rule, span: Range<usize>| {
            found.push((rule, text[span].to_string()));
            ControlFlow::Continue(())
        });
        found
    }

    fn first(text: &str) -> Option<Rule> {
        candidates(text).first().map(|(rule, _)| *rule)
    }

    fn fake(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }

    /// An obviously fake but random-looking 36-character token body.
    const B36: &str = "FAKEx9Qm2Lp7Zr4Tn8Wv1Yb6Hc0Jd5Ke3Gs1";

    #[test]
    fn rule_names_round_trip() {
        assert_eq!(B36.len(), 36);
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.name()), Some(rule));
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.name()));
        }
        assert_eq!(Rule::from_name("nope"), None);
        assert_eq!(RuleSet::all().0.count_ones(), 12);
    }

    #[test]
    fn private_key_block() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAfakefakefakefake\n-----END RSA PRIVATE KEY-----";
        let found = candidates(&format!("key file:\n{key}\ntrailer"));
        assert_eq!(found, vec![(Rule::PrivateKeyBlock, key.to_string())]);
        for label in [
            "OPENSSH PRIVATE KEY",
            "EC PRIVATE KEY",
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
        ] {
            let text = format!("-----BEGIN {label}-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n");
            assert_eq!(first(&text), Some(Rule::PrivateKeyBlock), "{label}");
        }
        let pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0fakefakefakefakefake\n";
        assert_eq!(first(pgp), Some(Rule::PrivateKeyBlock));
        // No key material, or not a private key.
        assert_eq!(first("-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n"), None);
        assert_eq!(
            first("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"),
            None
        );
        assert_eq!(first("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUfake\n"), None);
    }

    #[test]
    fn aws_access_key_id() {
        let id = fake("AKIA", "IOSFODNN7EXAMPLE");
        assert_eq!(
            candidates(&format!("id={id};")),
            vec![(Rule::AwsAccessKeyId, id.clone())]
        );
        assert_eq!(first(&fake("ASIA", "IOSFODNN7EXAMPLE")), Some(Rule::AwsAccessKeyId));
        // Too short, too long, inside a word.
        assert_eq!(first(&fake("AKIA", "IOSFODNN7EXAMPL")), None);
        assert_eq!(first(&fake("AKIA", "IOSFODNN7EXAMPLEX")), None);
        assert_eq!(first(&fake("xAKIA", "IOSFODNN7EXAMPLE")), None);
        assert_eq!(first(&fake("AKIA", "IOSFODNN7EXAMPLEx")), None);
    }

    #[test]
    fn known_prefix_tokens() {
        for (prefix, rule) in [
            ("ghp_", Rule::GithubToken),
            ("gho_", Rule::GithubToken),
            ("ghu_", Rule::GithubToken),
            ("ghs_", Rule::GithubToken),
            ("ghr_", Rule::GithubToken),
            ("github_pat_", Rule::GithubToken),
            ("glpat-", Rule::GitlabToken),
            ("xoxb-", Rule::SlackToken),
            ("xoxp-", Rule::SlackToken),
            ("sk_live_", Rule::StripeKey),
            ("rk_live_", Rule::StripeKey),
        ] {
            let token = fake(prefix, B36);
            assert_eq!(
                candidates(&format!("token: {token} end")).first(),
                Some(&(rule, token.clone())),
                "{prefix}"
            );
            // The bare prefix, a short body, or a prefix inside a word.
            assert_eq!(first(&fake(prefix, "abc")), None, "{prefix} short");
            assert_eq!(first(&format!("x{token}")), None, "{prefix} in a word");
        }
        assert_eq!(first(&fake("sk_test_", B36)), None, "test keys are not live keys");
        assert_eq!(first(&fake("xoxz-", B36)), None);
        assert_eq!(first("risk_live_metrics_dashboard_enabled"), None);
    }

    #[test]
    fn jwt() {
        let jwt = fake(
            "eyJ",
            "hbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlLXVzZXIifQ.ZmFrZS1zaWduYXR1cmUtbm90LXJlYWw",
        );
        assert_eq!(candidates(&format!("token {jwt}")), vec![(Rule::Jwt, jwt)]);
        assert_eq!(
            first("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlLXVzZXIifQ."),
            None,
            "unsigned"
        );
        assert_eq!(first("eyJhbGciOiJIUzI1NiJ9"), None, "a base64 JSON object alone");
    }

    #[test]
    fn bearer_and_authorization() {
        let token = "4f9Xk2LmQ8rT1vZ7wY3sN6pB";
        assert_eq!(
            candidates(&format!("curl -H 'Authorization: Bearer {token}'")),
            vec![(Rule::BearerToken, token.to_string())]
        );
        assert_eq!(first(&format!("bearer {token}")), Some(Rule::BearerToken));
        let basic = "dXNlcjpmYWtlLXBhc3N3b3Jk";
        assert_eq!(
            candidates(&format!("Authorization: Basic {basic}")),
            vec![(Rule::BearerToken, basic.to_string())]
        );
        for benign in [
            "WWW-Authenticate: Bearer realm=\"https://auth.registry.example/token\",service=\"registry\"",
            "Bearer authentication is required",
            "the bearer token-based-authentication-flow",
            "Authorization: Bearer <token>",
            "Authorization: Bearer $TOKEN",
            "Authorization: Basic REDACTED",
            "authorization_mode: rbac",
        ] {
            assert_eq!(first(benign), None, "{benign}");
        }
    }

    #[test]
    fn password_urls() {
        assert_eq!(
            candidates("DATABASE_URL=postgres://ops:Zx9fake42pw@db.internal:5432/ledger"),
            vec![(Rule::GenericPasswordUrl, "Zx9fake42pw".to_string())]
        );
        assert_eq!(first("redis://:Zx9fake42pw@cache:6379"), Some(Rule::GenericPasswordUrl));
        assert_eq!(first("ab://:y@h"), Some(Rule::GenericPasswordUrl), "the shortest match");
        assert_eq!("ab://:y@h".len(), MIN_TEXT_MATCH);
        let token = fake("gho_", B36);
        assert_eq!(
            candidates(&format!("https://x-access-token:{token}@git.example/ops/hub.git")),
            vec![(Rule::GithubToken, token)]
        );
        for benign in [
            "https://registry.example/v2/",
            "ssh://git@git.example/ops/hub.git",
            "https://user@host.example/path",
            "postgres://ops:${DB_PASSWORD}@db/ledger",
            "postgres://ops:<password>@db/ledger",
            "postgres://ops:****@db/ledger",
            "postgres://ops:password@db/ledger",
            "http://[::1]:8080/healthz",
            "https://host.example/a?next=https://other.example/b@c",
            "urn:uuid:0190a5e2-7c1b-7d3e-9f2a-4b6c8d0e1f23",
        ] {
            assert_eq!(first(benign), None, "{benign}");
        }
    }

    #[test]
    fn assignments_in_text() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            candidates(&format!("aws_secret_access_key = {secret}\n")),
            vec![(Rule::AwsSecretAccessKey, secret.to_string())]
        );
        assert_eq!(
            candidates(&format!("{{\"client_secret\": \"{B36}\"}}")),
            vec![(Rule::HighEntropySecret, B36.to_string())]
        );
        assert_eq!(
            first(&format!("DB_PASSWORD={B36} ./run")),
            Some(Rule::HighEntropySecret)
        );
        assert_eq!(
            first(&format!("?access_token={B36}&x=1")),
            Some(Rule::HighEntropySecret)
        );
        for benign in [
            "token_count=1234567890123456789",
            "auth_method: oidc",
            "password: ${DB_PASSWORD}",
            "secret: ops-hub-registry-pull-secret",
            "payload_hash = 3f2a9c1e7b5d4f8a0c6e2b9d1f7a3c5e3f2a9c1e7b5d4f8a0c6e2b9d1f7a3c5e",
            "commit: 9fceb02d0ae598e95dc970b74767f19372d61af8",
        ] {
            assert_eq!(first(benign), None, "{benign}");
        }
    }

    #[test]
    fn keyed_matchers() {
        let run = |name: &str, value: &str| {
            let mut found = None;
            let kind = classify(name.as_bytes());
            let _ = keyed_candidates(kind, value.as_bytes(), &params(), &mut |rule, _span: Range<usize>| {
                found = Some(rule);
                ControlFlow::Break(())
            });
            if found.is_none() && is_high_entropy_secret(kind, value.as_bytes(), &params()) {
                found = Some(Rule::HighEntropySecret);
            }
            found
        };
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        assert_eq!(run("private_key", pem), Some(Rule::GcpServiceAccount));
        assert_eq!(
            run("SecretAccessKey", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            Some(Rule::AwsSecretAccessKey)
        );
        assert_eq!(
            run("Authorization", "Basic dXNlcjpmYWtlLXBhc3N3b3Jk"),
            Some(Rule::BearerToken)
        );
        assert_eq!(run("api_key", B36), Some(Rule::HighEntropySecret));
        assert_eq!(run("auth_method", "oidc"), None);
        assert_eq!(run("payload_hash", B36), None);
        assert_eq!(run("token", "short"), None);
    }

    #[test]
    fn disabled_rules_are_not_reported() {
        let mut params = params();
        params.rules.remove(Rule::AwsAccessKeyId);
        let text = fake("AKIA", "IOSFODNN7EXAMPLE");
        let mut found = 0;
        let _ = scan_text(text.as_bytes(), &params, &mut |_, _| {
            found += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(found, 0);
        assert!(RuleSet::binary().intersect(RuleSet::all()).contains(Rule::Jwt));
        assert!(!RuleSet::binary().contains(Rule::HighEntropySecret));
        assert!(RuleSet::default().is_empty());
    }
}
