//! The scanner as a whole: JSON paths, text and binary payloads, metadata,
//! namespaces, allow-lists, configuration errors.

use super::*;
use crate::sample::SampleEvidence;

/// AWS's documented example key id.
const AWS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// A random-looking, obviously fake secret.
const FAKE_SECRET: &str = "FAKEx9Qm2Lp7Zr4Tn8Wv1Yb6Hc0Jd5Ke3Gs1";

fn event(stream: &str, payload: &str) -> Event {
    Event::json(stream, "ops.config_observed", payload.as_bytes().to_vec())
}

fn hit(scanner: &SecretScanner, event: &Event) -> Option<(String, Rule)> {
    scanner.scan_event(0, event).err().map(|hit| (hit.field_path, hit.rule))
}

fn scanner(config: ScanConfig) -> SecretScanner {
    SecretScanner::new(&config).expect("valid config")
}

#[test]
fn json_hits_name_the_field_path() {
    let scanner = SecretScanner::default();
    let payload = format!(r#"{{"credentials":{{"aws":{{"key_id":"{AWS_KEY_ID}"}}}}}}"#);
    assert_eq!(
        hit(&scanner, &event("ops-hub/x", &payload)),
        Some(("payload.credentials.aws.key_id".to_string(), Rule::AwsAccessKeyId))
    );
    let payload = format!(r#"{{"db":{{"host":"db.internal","password":"{FAKE_SECRET}"}}}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload.db.password".to_string(), Rule::HighEntropySecret))
    );
    let payload = format!(r#"{{"hosts":[{{"name":"a"}},{{"name":"b","token":"{FAKE_SECRET}"}}]}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload.hosts[1].token".to_string(), Rule::HighEntropySecret))
    );
    // Array elements inherit the field name.
    let payload = format!(r#"{{"api_keys":["{FAKE_SECRET}"]}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload.api_keys[0]".to_string(), Rule::HighEntropySecret))
    );
    let payload = format!(r#"{{"odd key.name":"{AWS_KEY_ID}"}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload[\"odd key.name\"]".to_string(), Rule::AwsAccessKeyId))
    );
    assert_eq!(
        hit(&scanner, &event("s", &format!("\"{AWS_KEY_ID}\""))),
        Some(("payload".to_string(), Rule::AwsAccessKeyId))
    );
    // Escapes are decoded before matching.
    let escaped = r#"{"k":"\u0041KIAIOSFODNN7EXAMPLE"}"#;
    assert_eq!(
        hit(&scanner, &event("s", escaped)),
        Some(("payload.k".to_string(), Rule::AwsAccessKeyId))
    );
}

#[test]
fn a_secret_in_a_key_is_reported_without_the_key() {
    let scanner = SecretScanner::default();
    let payload = format!(r#"{{"grants":{{"{AWS_KEY_ID}":"read"}}}}"#);
    let err = scanner.scan_event(2, &event("s", &payload)).expect_err("key hit");
    assert_eq!(err.field_path, "payload.grants");
    assert!(err.in_key);
    let message = err.to_string();
    assert!(message.contains("payload.grants (an object key) matches secret rule aws-access-key-id"));
    assert!(!message.contains(AWS_KEY_ID), "{message}");
}

#[test]
fn the_report_names_event_path_and_rule_but_not_the_value() {
    let scanner = SecretScanner::default();
    let e = event("s", &format!(r#"{{"db":{{"password":"{FAKE_SECRET}"}}}}"#));
    let err = scanner.scan_event(3, &e).expect_err("hit");
    assert_eq!(
        err.to_string(),
        format!(
            "events[3] (id {}): payload.db.password matches secret rule high-entropy-secret; \
             remove the credential (the value is not logged)",
            e.id
        )
    );
    assert!(!format!("{err:?}").contains(FAKE_SECRET));
}

#[test]
fn the_known_format_wins_over_entropy() {
    let scanner = SecretScanner::default();
    let token = format!("ghp_{FAKE_SECRET}");
    let payload = format!(r#"{{"token":"{token}"}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload.token".to_string(), Rule::GithubToken))
    );
    let pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCfake\\n-----END PRIVATE KEY-----\\n";
    let payload = format!(r#"{{"type":"service_account","private_key":"{pem}"}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload.private_key".to_string(), Rule::GcpServiceAccount))
    );
    let payload = format!(r#"{{"key_material":"{pem}"}}"#);
    assert_eq!(
        hit(&scanner, &event("s", &payload)),
        Some(("payload.key_material".to_string(), Rule::PrivateKeyBlock))
    );
}

#[test]
fn ordinary_evidence_passes() {
    let scanner = SecretScanner::default();
    let payload = r#"{
        "payload_hash": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "id": "0190a5e2-7c1b-7d3e-9f2a-4b6c8d0e1f23",
        "content_digest": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "token_count": 1234,
        "auth_method": "oidc",
        "author": "oncall",
        "pod": "ops-hub-7d9f8c6b5-x2x4k",
        "endpoint": "https://registry.example/v2/",
        "observed_header": "WWW-Authenticate: Bearer realm=\"https://auth.registry.example/token\"",
        "secret_name": "ops-hub-registry-pull-secret",
        "next_token": "eyJsYXN0IjoiMDE5MGE1ZTIifQ",
        "public_key": "ed25519:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"
    }"#;
    assert_eq!(hit(&scanner, &event("ops-hub/deploy-42", payload)), None);
}

#[test]
fn sample_evidence_passes() {
    let scanner = SecretScanner::default();
    let mut sample = SampleEvidence::new(7);
    let events = sample.take_events(5_000);
    assert_eq!(scanner.scan_batch(&events), Ok(()));
}

#[test]
fn text_binary_and_metadata() {
    let scanner = SecretScanner::default();
    let mut text = event("s", &format!("deploy log\nexport AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n"));
    text.content_type = "text/plain".to_string();
    assert_eq!(
        hit(&scanner, &text),
        Some(("payload".to_string(), Rule::AwsAccessKeyId))
    );

    let mut binary = event("s", "");
    binary.content_type = "application/octet-stream".to_string();
    binary.payload = vec![0xff, 0xfe, 0x00];
    binary
        .payload
        .extend_from_slice(format!("ghp_{FAKE_SECRET}").as_bytes());
    binary.payload.push(0x80);
    assert_eq!(hit(&scanner, &binary), Some(("payload".to_string(), Rule::GithubToken)));
    // Binary payloads skip the rules that need text structure.
    binary.payload = vec![0xff];
    binary
        .payload
        .extend_from_slice(format!("password={FAKE_SECRET}").as_bytes());
    assert_eq!(hit(&scanner, &binary), None);

    let mut meta = event("s", "{}");
    meta.metadata.extra.insert("workplan".into(), "CUST-WP-0051".into());
    assert_eq!(hit(&scanner, &meta), None);
    meta.metadata.extra.insert("api_key".into(), FAKE_SECRET.into());
    assert_eq!(
        hit(&scanner, &meta),
        Some(("metadata.api_key".to_string(), Rule::HighEntropySecret))
    );
    let mut meta = event("s", "{}");
    meta.metadata.trace_id = format!("Bearer {FAKE_SECRET}");
    assert_eq!(
        hit(&scanner, &meta),
        Some(("metadata.trace_id".to_string(), Rule::BearerToken))
    );
    let mut meta = event("s", "{}");
    meta.metadata.extra.insert(AWS_KEY_ID.into(), "x".into());
    let err = scanner.scan_event(0, &meta).expect_err("key hit");
    assert_eq!((err.field_path.as_str(), err.in_key), ("metadata", true));
}

#[test]
fn malformed_json_is_reported_to_validation_and_scanned_as_text_otherwise() {
    let scanner = SecretScanner::default();
    let bad = event("s", &format!("{{\"k\": \"{AWS_KEY_ID}\""));
    assert!(matches!(scanner.scan_for_append(0, &bad), Err(ScanStop::NotJson(_))));
    assert_eq!(hit(&scanner, &bad), Some(("payload".to_string(), Rule::AwsAccessKeyId)));
    let good = event("s", r#"{"a":1}"#);
    assert!(matches!(scanner.scan_for_append(0, &good), Ok(true)));
    let mut text = good.clone();
    text.content_type = "text/plain".to_string();
    assert!(matches!(scanner.scan_for_append(0, &text), Ok(false)));
    // Nesting deeper than serde's recursion limit is walked all the same.
    let deep = format!("{}\"{AWS_KEY_ID}\"{}", "[".repeat(200), "]".repeat(200));
    let err = scanner.scan_event(0, &event("s", &deep)).expect_err("hit");
    assert_eq!(err.rule, Rule::AwsAccessKeyId);
    assert!(err.field_path.starts_with("payload[0][0][0]"), "{}", err.field_path);
}

#[test]
fn namespaces_override_the_top_level() {
    let payload = format!(r#"{{"key_id":"{AWS_KEY_ID}","password":"{FAKE_SECRET}"}}"#);
    let config: ScanConfig = serde_json::from_value(serde_json::json!({
        "namespaces": {
            "sandbox": { "enabled": false },
            "ci": { "disable_rules": ["aws-access-key-id"] },
            "": { "rules": ["high-entropy-secret"] },
        }
    }))
    .expect("parses");
    let scanner = scanner(config);
    assert!(!scanner.scans("sandbox/anything"));
    assert_eq!(hit(&scanner, &event("sandbox/x", &payload)), None);
    assert_eq!(
        hit(&scanner, &event("ci/build-7", &payload)),
        Some(("payload.password".to_string(), Rule::HighEntropySecret))
    );
    assert_eq!(
        hit(&scanner, &event("no-namespace", &payload)),
        Some(("payload.password".to_string(), Rule::HighEntropySecret))
    );
    assert_eq!(
        hit(&scanner, &event("ops-hub/x", &payload)),
        Some(("payload.key_id".to_string(), Rule::AwsAccessKeyId))
    );

    let off: ScanConfig = serde_json::from_value(serde_json::json!({
        "enabled": false,
        "namespaces": { "prod": { "enabled": true } },
    }))
    .expect("parses");
    let scanner = self::scanner(off);
    assert_eq!(hit(&scanner, &event("dev/x", &payload)), None);
    assert!(hit(&scanner, &event("prod/x", &payload)).is_some());
    assert_eq!(SecretScanner::disabled().scan_event(0, &event("s", &payload)), Ok(()));
}

#[test]
fn allow_lists_by_value_hash_literal_and_path() {
    let payload = format!(r#"{{"example":{{"key_id":"{AWS_KEY_ID}"}},"db":{{"password":"{FAKE_SECRET}"}}}}"#);
    let by_hash = ScanConfig {
        allow: AllowList {
            value_hashes: vec![blake3::hash(AWS_KEY_ID.as_bytes()).to_hex().to_string()],
            ..AllowList::default()
        },
        ..ScanConfig::default()
    };
    assert_eq!(
        hit(&scanner(by_hash), &event("s", &payload)),
        Some(("payload.db.password".to_string(), Rule::HighEntropySecret))
    );
    let by_literal_and_path = ScanConfig {
        allow: AllowList {
            values: vec![AWS_KEY_ID.to_string()],
            paths: vec!["payload.db".to_string()],
            ..AllowList::default()
        },
        ..ScanConfig::default()
    };
    assert_eq!(hit(&scanner(by_literal_and_path), &event("s", &payload)), None);
    // An allowed credential does not hide another one in the same string.
    let two = format!("{{\"note\":\"{AWS_KEY_ID} and ASIAIOSFODNN7EXAMPLE\"}}");
    let allow_one = ScanConfig {
        allow: AllowList {
            values: vec![AWS_KEY_ID.to_string()],
            ..AllowList::default()
        },
        ..ScanConfig::default()
    };
    assert_eq!(
        hit(&scanner(allow_one), &event("s", &two)),
        Some(("payload.note".to_string(), Rule::AwsAccessKeyId))
    );
    // A namespace's allow-list adds to the top-level one, there only.
    let per_namespace: ScanConfig = serde_json::from_value(serde_json::json!({
        "namespaces": { "docs": { "allow": { "paths": ["payload.example", "payload.db"] } } }
    }))
    .expect("parses");
    let scanner = scanner(per_namespace);
    assert_eq!(hit(&scanner, &event("docs/aws", &payload)), None);
    assert!(hit(&scanner, &event("ops/aws", &payload)).is_some());
}

#[test]
fn bad_configs_are_named_without_their_values() {
    let err = |config: ScanConfig| {
        SecretScanner::new(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        err(ScanConfig {
            entropy_threshold: 9.0,
            ..ScanConfig::default()
        }),
        "entropy_threshold: 9 is not between 0 and 8 bits per byte"
    );
    assert!(
        err(ScanConfig {
            entropy_threshold: f64::NAN,
            ..ScanConfig::default()
        })
        .starts_with("entropy_threshold")
    );
    assert_eq!(
        err(ScanConfig {
            min_entropy_length: 0,
            ..ScanConfig::default()
        }),
        "min_entropy_length: must be greater than 0"
    );
    let msg = err(ScanConfig {
        allow: AllowList {
            value_hashes: vec!["abc".into()],
            ..AllowList::default()
        },
        ..ScanConfig::default()
    });
    assert_eq!(msg, "allow.value_hashes[0]: not a BLAKE3 hash (64 hex digits)");
    let msg = err(ScanConfig {
        allow: AllowList {
            paths: vec!["body.x".into()],
            ..AllowList::default()
        },
        ..ScanConfig::default()
    });
    assert!(msg.starts_with("allow.paths: \"body.x\""), "{msg}");
    let mut namespaces = std::collections::BTreeMap::new();
    namespaces.insert(
        "ops".to_string(),
        NamespaceScan {
            allow: AllowList {
                values: vec![String::new()],
                ..AllowList::default()
            },
            ..NamespaceScan::default()
        },
    );
    let msg = err(ScanConfig {
        namespaces: namespaces.clone(),
        ..ScanConfig::default()
    });
    assert_eq!(msg, "namespaces.ops.allow.values[0]: must not be empty");
    namespaces.clear();
    namespaces.insert("a/b".to_string(), NamespaceScan::default());
    assert!(
        err(ScanConfig {
            namespaces,
            ..ScanConfig::default()
        })
        .starts_with("namespaces.\"a/b\"")
    );
    let unknown = serde_json::from_value::<ScanConfig>(serde_json::json!({ "rules": ["no-such-rule"] }));
    assert!(unknown.is_err());
}

#[test]
fn the_default_config_is_valid_and_scans_everything() {
    assert!(SecretScanner::new(&ScanConfig::default()).is_ok());
    let scanner = SecretScanner::default();
    assert!(scanner.scans("anything") && scanner.scans("ops-hub/x"));
    assert!(!SecretScanner::new(&ScanConfig::disabled()).expect("valid").scans("x"));
}
