//! Secret scanning at ingest: the corpus (`testdata/secrets/`: every known
//! credential format caught under its rule, ordinary evidence passing), a
//! refused batch writing nothing, and end to end over `ledgerd`: the status
//! names event, field path and rule, and neither it nor the server's log
//! holds the secret.

use std::path::PathBuf;

use ledger_client::{ClientError, proto};
use ledger_core::scan::{AllowList, NamespaceScan, Rule, ScanConfig};
use ledger_core::{AppendRequest, Event, LedgerError, SecretScanner};
use ledger_tests::open;
use ledger_tests::server::{Ledgerd, TestServer, server_config};
use serde_json::Value;
use tonic::Code;

use crate::LEDGERD;

/// One line of a corpus file.
struct Case {
    note: String,
    /// Expected rule and field path (positives only).
    expected: Option<(Rule, String)>,
    event: Event,
}

fn corpus(file: &str) -> anyhow::Result<Vec<Case>> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/secrets/")).join(file);
    let text = std::fs::read_to_string(&path)?;
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{file}:{}: {e}", n + 1))?;
        let field = |name: &str| case.get(name).and_then(Value::as_str).map(str::to_string);
        let note = field("note").ok_or_else(|| anyhow::anyhow!("{file}:{}: no note", n + 1))?;
        let mut event = match (case.get("json"), field("text")) {
            (Some(json), None) => Event::json("ops-hub/corpus", "ops.evidence_recorded", serde_json::to_vec(json)?),
            (None, Some(text)) => {
                let mut event = Event::json("ops-hub/corpus", "ops.evidence_recorded", text.into_bytes());
                event.content_type = "text/plain; charset=utf-8".to_string();
                event
            }
            _ => anyhow::bail!("{file}:{}: needs exactly one of json and text", n + 1),
        };
        if let Some(metadata) = case.get("metadata").and_then(Value::as_object) {
            for (key, value) in metadata {
                let value = value
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("{file}:{}: metadata", n + 1))?;
                event.metadata.extra.insert(key.clone(), value.to_string());
            }
        }
        let expected = match (field("rule"), field("path")) {
            (Some(rule), Some(path)) => {
                let rule = Rule::from_name(&rule).ok_or_else(|| anyhow::anyhow!("{file}:{}: rule {rule}", n + 1))?;
                Some((rule, path))
            }
            (None, None) => None,
            _ => anyhow::bail!("{file}:{}: rule and path go together", n + 1),
        };
        cases.push(Case { note, expected, event });
    }
    Ok(cases)
}

#[test]
fn corpus_positives_are_caught_and_negatives_pass() -> anyhow::Result<()> {
    let scanner = SecretScanner::default();
    let positives = corpus("positives.jsonl")?;
    let negatives = corpus("negatives.jsonl")?;
    let mut missed = Vec::new();
    for case in &positives {
        let expected = case
            .expected
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{}: no rule", case.note))?;
        match scanner.scan_event(0, &case.event) {
            Err(hit) if (hit.rule, hit.field_path.clone()) == expected => {}
            other => missed.push(format!(
                "{}: expected {} at {}, got {other:?}",
                case.note, expected.0, expected.1
            )),
        }
    }
    let mut rules_covered: Vec<Rule> = positives
        .iter()
        .filter_map(|c| c.expected.clone())
        .map(|e| e.0)
        .collect();
    rules_covered.sort();
    rules_covered.dedup();
    let false_positives: Vec<String> = negatives
        .iter()
        .filter_map(|case| {
            scanner
                .scan_event(0, &case.event)
                .err()
                .map(|hit| format!("{}: {} at {}", case.note, hit.rule, hit.field_path))
        })
        .collect();
    println!(
        "secret-scan corpus: {}/{} positives caught ({} rules), {} negatives, {} false positives",
        positives.len() - missed.len(),
        positives.len(),
        rules_covered.len(),
        negatives.len(),
        false_positives.len()
    );
    for fp in &false_positives {
        println!("  false positive: {fp}");
    }
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
    assert_eq!(rules_covered, Rule::ALL.to_vec(), "every rule has a positive");
    assert!(
        negatives.len() >= 30,
        "the negative corpus is {} lines",
        negatives.len()
    );
    assert_eq!(false_positives, Vec::<String>::new());
    Ok(())
}

#[test]
fn a_refused_batch_writes_nothing_and_clean_evidence_appends() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let negatives: Vec<Event> = corpus("negatives.jsonl")?.into_iter().map(|c| c.event).collect();
    let n_negatives = negatives.len() as u64;
    ledger.append(AppendRequest::new(negatives))?;
    assert_eq!(ledger.len(), n_negatives);
    for case in corpus("positives.jsonl")? {
        let clean = Event::json("ops-hub/corpus", "ops.evidence_recorded", b"{\"ok\":true}".to_vec());
        let clean_id = clean.id;
        let leaky_id = case.event.id;
        match ledger.append(AppendRequest::new(vec![clean, case.event])) {
            Err(LedgerError::SecretDetected(hit)) => {
                assert_eq!((hit.index, hit.event_id), (1, leaky_id), "{}", case.note);
            }
            other => panic!("{}: expected a secret hit, got {other:?}", case.note),
        }
        assert_eq!(ledger.len(), n_negatives, "{}: nothing of the batch written", case.note);
        assert!(ledger.get_by_id(clean_id)?.is_none(), "{}", case.note);
    }
    Ok(())
}

/// A fake GitHub token and a fake client secret, and where each goes.
const TOKEN: &str = "ghp_FAKEx9Qm2Lp7Zr4Tn8Wv1Yb6Hc0Jd5Ke3Gs1";
const CLIENT_SECRET: &str = "FAKEs3cr3tQm2Lp7Zr4Tn8Wv1Yb6Hc0";

fn wire_event(stream: &str, payload: Value) -> proto::Event {
    let mut event = ledger_client::event(stream, "ops.deploy_observed", payload.to_string().into_bytes());
    event.metadata = Some(proto::Metadata {
        correlation_id: "deploy-42".to_string(),
        extra: [("workplan".to_string(), "CUST-WP-0051".to_string())].into(),
        ..Default::default()
    });
    event
}

fn batch(events: Vec<proto::Event>) -> proto::AppendRequest {
    proto::AppendRequest {
        events,
        ..Default::default()
    }
}

fn status_of(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Ok(value) => panic!("expected an error status, got {value:?}"),
        Err(ClientError::Status(status)) => (status.code(), status.message().to_string()),
        Err(other) => panic!("expected an error status, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_refuses_a_secret_naming_event_path_and_rule_and_never_logs_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Debug logging: the most a production operator would turn on.
    let (ledgerd, log) = Ledgerd::spawn_logged(LEDGERD, dir.path(), &["--log-format", "json"], "debug")?;
    let client = ledger_client::Client::connect(&ledgerd.url()).await?;
    client
        .append(batch(vec![wire_event(
            "ops-hub/deploy-42",
            serde_json::json!({"step": 1}),
        )]))
        .await?;
    assert_eq!(client.info().await?.size, 1);

    // Unary Append: the second event holds a token.
    let clean = wire_event("ops-hub/deploy-42", serde_json::json!({"step": 2}));
    let leaky = wire_event(
        "ops-hub/deploy-42",
        serde_json::json!({"step": 3, "ci": {"runner": "hub-1", "token": TOKEN}}),
    );
    let (code, message) = status_of(client.append(batch(vec![clean.clone(), leaky.clone()])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert_eq!(
        message,
        format!(
            "events[1] (id {}): payload.ci.token matches secret rule github-token; \
             remove the credential (the value is not logged)",
            leaky.id
        )
    );
    assert_eq!(client.info().await?.size, 1, "nothing of the batch was written");
    let (code, _) = status_of(client.record_by_id(&clean.id).await);
    assert_eq!(code, Code::NotFound);

    // AppendStream: a refused request is answered in place; the others go on.
    let (sink, mut receipts) = client.append_stream(4).await?;
    let mut in_metadata = wire_event("ops-hub/deploy-42", serde_json::json!({"step": 5}));
    if let Some(metadata) = in_metadata.metadata.as_mut() {
        metadata
            .extra
            .insert("client_secret".to_string(), CLIENT_SECRET.to_string());
    }
    let in_metadata_id = in_metadata.id.clone();
    sink.send(batch(vec![wire_event(
        "ops-hub/deploy-42",
        serde_json::json!({"step": 4}),
    )]))
    .await?;
    sink.send(batch(vec![in_metadata])).await?;
    sink.send(batch(vec![wire_event(
        "ops-hub/deploy-42",
        serde_json::json!({"step": 6}),
    )]))
    .await?;
    sink.finish();
    let first = receipts.next().await.ok_or_else(|| anyhow::anyhow!("no response"))??;
    assert_eq!(first.receipts[0].seq, 1);
    let refused = receipts.next().await.ok_or_else(|| anyhow::anyhow!("no response"))?;
    let (code, message) = status_of(refused);
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        message,
        format!(
            "events[0] (id {in_metadata_id}): metadata.client_secret matches secret rule high-entropy-secret; \
             remove the credential (the value is not logged)"
        )
    );
    let third = receipts.next().await.ok_or_else(|| anyhow::anyhow!("no response"))??;
    assert_eq!(third.receipts[0].seq, 2);
    assert!(receipts.next().await.is_none());

    // A batch large enough to be checked on the blocking pool.
    let filler = "evidence ".repeat(120);
    let mut large: Vec<proto::Event> = (0..100)
        .map(|n| wire_event("ops-hub/bulk", serde_json::json!({"n": n, "note": filler})))
        .collect();
    large[99] = wire_event(
        "ops-hub/bulk",
        serde_json::json!({"n": 99, "note": filler, "auth": {"github": TOKEN}}),
    );
    let payload_bytes: usize = large.iter().map(|e| e.payload.len()).sum();
    assert!(payload_bytes >= ledger_server::BLOCKING_CHECK_BYTES, "{payload_bytes}");
    let (code, message) = status_of(client.append(batch(large)).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.starts_with("events[99] (id ")
            && message.contains("payload.auth.github matches secret rule github-token"),
        "{message}"
    );
    assert_eq!(client.info().await?.size, 3);

    drop(client);
    ledgerd.kill9()?;
    let log = log.text()?;
    // The refusals were logged (so the log was captured on that path)...
    assert!(log.contains("append refused"), "{log}");
    assert!(
        log.contains("payload.ci.token") && log.contains("github-token"),
        "{log}"
    );
    assert!(log.contains("metadata.client_secret"), "{log}");
    // ...and no secret, nor a telling part of one, reached it.
    for secret in [TOKEN, CLIENT_SECRET, &TOKEN[4..24], &CLIENT_SECRET[..16]] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_switches_and_allow_lists_let_events_through() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = server_config(dir.path())?;
    let scan = &mut config.ledger.secret_scan;
    scan.allow = AllowList {
        values: vec!["AKIAIOSFODNN7EXAMPLE".to_string()],
        paths: vec!["payload.example_key".to_string()],
        ..AllowList::default()
    };
    scan.namespaces.insert(
        "sandbox".to_string(),
        NamespaceScan {
            enabled: Some(false),
            ..NamespaceScan::default()
        },
    );
    let server = TestServer::start(config).await?;
    let client = server.client().await?;
    let leaky = |stream: &str| wire_event(stream, serde_json::json!({"ci": {"token": TOKEN}}));

    let (code, message) = status_of(client.append(batch(vec![leaky("ops-hub/ci")])).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(
        message.contains("payload.ci.token matches secret rule github-token"),
        "{message}"
    );
    client.append(batch(vec![leaky("sandbox/ci")])).await?;

    let documented = wire_event(
        "ops-hub/docs",
        serde_json::json!({"aws_example": "AKIAIOSFODNN7EXAMPLE", "example_key": {"token": TOKEN}}),
    );
    client.append(batch(vec![documented])).await?;
    let other_key = wire_event("ops-hub/docs", serde_json::json!({"aws": "ASIAIOSFODNN7EXAMPLE"}));
    let (code, message) = status_of(client.append(batch(vec![other_key])).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("payload.aws matches secret rule aws-access-key-id"),
        "{message}"
    );
    assert_eq!(client.info().await?.size, 2);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_off_accepts_what_it_would_refuse() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = server_config(dir.path())?;
    config.ledger.secret_scan = ScanConfig::disabled();
    let server = TestServer::start(config).await?;
    let client = server.client().await?;
    client
        .append(batch(vec![wire_event(
            "ops-hub/ci",
            serde_json::json!({"token": TOKEN}),
        )]))
        .await?;
    assert_eq!(client.info().await?.size, 1);
    server.stop().await
}
