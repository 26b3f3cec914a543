//! [`Vocabulary`] as the append path sees it: declared and undeclared
//! types, content types, unparsable payloads, schema violations, and the
//! errors building a vocabulary.

use serde_json::{Value, json};

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn probe_vocabulary() -> Result<Vocabulary, VocabError> {
    let schema = json!({
        "type": "object",
        "required": ["service", "checks"],
        "additionalProperties": false,
        "properties": {
            "service": {"type": "string", "minLength": 1, "maxLength": 64},
            "checks": {"type": "array", "items": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"enum": ["ok", "fail"]}}
            }}
        }
    });
    Vocabulary::new(
        3,
        [
            ("probe.result".to_string(), Some(schema)),
            ("probe.note".to_string(), None),
        ],
    )
}

fn check_err(vocabulary: &Vocabulary, event_type: &str, content_type: &str, payload: &[u8]) -> VocabError {
    match vocabulary.check(event_type, content_type, payload) {
        Ok(()) => panic!("accepted {event_type} {}", String::from_utf8_lossy(payload)),
        Err(err) => err,
    }
}

#[test]
fn valid_event_passes() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    let payload = br#"{"service":"api","checks":[{"status":"ok"},{"status":"fail"}]}"#;
    vocabulary.check("probe.result", "application/json", payload)?;
    vocabulary.check("probe.result", "application/vnd.probe+json; charset=utf-8", payload)?;
    vocabulary.check("probe.result", "Application/JSON", payload)?;
    Ok(())
}

#[test]
fn undeclared_type_is_refused() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    let err = check_err(&vocabulary, "probe.resutl", "application/json", b"{}");
    assert_eq!(
        err,
        VocabError::UndeclaredType {
            event_type: "probe.resutl".to_string(),
            version: 3,
        }
    );
    assert_eq!(err.field(), Some("type"));
    assert_eq!(
        format!("events[3].type: {err}"),
        "events[3].type: event type \"probe.resutl\" is not declared in vocabulary version 3"
    );
    Ok(())
}

#[test]
fn type_without_schema_accepts_anything() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    for (content_type, payload) in [
        ("application/octet-stream", &b"\x00\xff binary"[..]),
        ("application/json", b"not json at all"),
        ("text/plain", b""),
        ("application/json", br#"{"anything": [1, 2]}"#),
    ] {
        vocabulary.check("probe.note", content_type, payload)?;
    }
    Ok(())
}

#[test]
fn schema_type_needs_a_json_content_type() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    for content_type in ["text/plain", "application/octet-stream", "application/jsonx", ""] {
        let err = check_err(&vocabulary, "probe.result", content_type, b"{}");
        assert_eq!(err.field(), Some("payload"));
        assert_eq!(
            err.to_string(),
            format!(
                "payload: type \"probe.result\" has a schema, so content_type must be application/json (or a +json type), got {content_type:?}"
            )
        );
    }
    Ok(())
}

#[test]
fn invalid_json_is_refused_without_echoing_it() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    let secret = "sk_live_0123456789abcdef";
    for payload in [
        format!(r#"{{"service": "{secret}""#),
        format!(r#"{{"service": {secret}}}"#),
        format!(r#"{{"service": "{secret}\x01"}}"#),
        format!(r#"{{"service": "\q{secret}"}}"#),
        secret.to_string(),
        String::new(),
    ] {
        let err = check_err(&vocabulary, "probe.result", "application/json", payload.as_bytes());
        let VocabError::InvalidJson { reason } = &err else {
            return Err(format!("wrong error for {payload:?}: {err}").into());
        };
        assert!(err.to_string().starts_with("payload: not valid JSON: "), "{err}");
        assert!(!reason.contains("sk_live"), "{reason}");
    }
    Ok(())
}

#[test]
fn payload_depth_is_bounded_by_the_parser() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = check_err(&vocabulary, "probe.result", "application/json", deep.as_bytes());
    assert_eq!(
        err.to_string(),
        "payload: not valid JSON: recursion limit exceeded at line 1 column 128"
    );
    Ok(())
}

#[test]
fn violations_name_the_path() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    let cases: [(&[u8], &str); 5] = [
        (br#"[]"#, "payload: expected object, got array"),
        (
            br#"{"checks":[]}"#,
            r#"payload: required property "service" is missing"#,
        ),
        (
            br#"{"service":"api","checks":[{"status":"ok"},{"status":"ok"},{"status":"meh"}]}"#,
            r#"payload.checks[2].status: must be one of ["ok","fail"]"#,
        ),
        (
            br#"{"service":"","checks":[]}"#,
            "payload.service: shorter than 1 characters",
        ),
        (
            br#"{"service":"api","checks":[],"extra":1}"#,
            r#"payload: additional property "extra" is not allowed"#,
        ),
    ];
    for (payload, expected) in cases {
        let err = check_err(&vocabulary, "probe.result", "application/json", payload);
        assert_eq!(err.field(), Some("payload"));
        assert_eq!(err.to_string(), expected);
        assert!(matches!(err, VocabError::Violation(_)), "{err:?}");
    }
    Ok(())
}

#[test]
fn long_secret_is_not_echoed_by_check() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    let secret = "x".repeat(65) + "-ghp_secret";
    let payload = json!({"service": secret, "checks": []}).to_string();
    let err = check_err(&vocabulary, "probe.result", "application/json", payload.as_bytes());
    assert_eq!(err.to_string(), "payload.service: longer than 64 characters");
    Ok(())
}

#[test]
fn type_names_follow_the_ledger_rule() {
    let long = "t".repeat(MAX_TYPE_BYTES + 1);
    let cases = [
        ("", "type \"\": must not be empty".to_string()),
        (
            "probe result",
            "type \"probe result\": contains ' '; whitespace and control characters are not allowed".to_string(),
        ),
        (
            "probe\u{7}",
            "type \"probe\\u{7}\": contains '\\u{7}'; whitespace and control characters are not allowed".to_string(),
        ),
        (
            "probe\u{a0}x",
            "type \"probe\\u{a0}x\": contains '\\u{a0}'; whitespace and control characters are not allowed".to_string(),
        ),
        (long.as_str(), format!("type {long:?}: 129 bytes, limit is 128")),
    ];
    for (name, expected) in cases {
        let err = Vocabulary::new(1, [(name.to_string(), None)]).err();
        assert_eq!(err.map(|err| err.to_string()), Some(expected));
    }
    let longest = "t".repeat(MAX_TYPE_BYTES);
    assert!(Vocabulary::new(1, [(longest, None), ("ünïcode.ok".to_string(), None)]).is_ok());
}

#[test]
fn schema_errors_name_the_type() {
    let err = Vocabulary::new(
        1,
        [(
            "probe.result".to_string(),
            Some(json!({"properties": {"x": {"pattern": "^a"}}})),
        )],
    )
    .err();
    let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        message.starts_with("type \"probe.result\": schema at /properties/x: keyword \"pattern\" is not supported"),
        "{message}"
    );
    assert_eq!(err.and_then(|err| err.field()), None);
}

#[test]
fn duplicate_types_are_refused() {
    let err = Vocabulary::new(1, [("a".to_string(), None), ("a".to_string(), Some(json!({})))]).err();
    assert_eq!(
        err,
        Some(VocabError::DuplicateType {
            event_type: "a".to_string()
        })
    );
}

#[test]
fn sources_are_kept_for_writing_back() -> TestResult {
    let vocabulary = probe_vocabulary()?;
    assert_eq!(vocabulary.version(), 3);
    let names: Vec<&str> = vocabulary.types().keys().map(String::as_str).collect();
    assert_eq!(names, ["probe.note", "probe.result"]);
    let rule = vocabulary.get("probe.result").ok_or("missing")?;
    assert!(rule.schema().is_some());
    assert_eq!(
        rule.schema_source().and_then(|source| source.get("required")),
        Some(&json!(["service", "checks"]))
    );
    let note = vocabulary.get("probe.note").ok_or("missing")?;
    assert_eq!((note.schema(), note.schema_source()), (None, None::<&Value>));
    // Rebuilt from its own sources, it is the same vocabulary.
    let rebuilt = Vocabulary::new(
        vocabulary.version(),
        vocabulary
            .types()
            .iter()
            .map(|(name, rule)| (name.clone(), rule.schema_source().cloned())),
    )?;
    assert_eq!(rebuilt, vocabulary);
    Ok(())
}

#[test]
fn empty_vocabulary_refuses_everything() -> TestResult {
    let vocabulary = Vocabulary::new(0, [])?;
    assert!(vocabulary.check("anything", "application/json", b"{}").is_err());
    Ok(())
}
