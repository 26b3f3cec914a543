//! Projections end to end over a real loopback server: evidence appended
//! through gRPC is folded by the built-ins, answered by `Query`, replayed to
//! the same digest, and bad queries get precise status codes. The `ledger`
//! CLI prints the same views.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use ledger_client::{Client, ClientError, proto};
use ledger_tests::server::{TestServer, server_config};
use serde_json::Value;
use tokio_stream::StreamExt as _;
use tonic::Code;

fn ev(stream: &str, event_type: &str, payload: Value) -> proto::Event {
    ledger_client::event(stream, event_type, payload.to_string().into_bytes())
}

/// A workplan: CUST-WP-0051 with three tasks, marked done while one task is
/// still todo (a hygiene anomaly); and an incident from open to closed.
fn evidence() -> Vec<proto::Event> {
    let ws = "CUST-WP-0051";
    vec![
        ev(
            "workstream/CUST-WP-0051",
            "workstream.created",
            serde_json::json!({"id": ws, "title": "Registry migration"}),
        ),
        ev(
            "task/CUST-WP-0051-T01",
            "task.created",
            serde_json::json!({"id": "CUST-WP-0051-T01", "workstream": ws, "title": "Verify backups", "status": "todo"}),
        ),
        ev(
            "task/CUST-WP-0051-T02",
            "task.created",
            serde_json::json!({"id": "CUST-WP-0051-T02", "workstream": ws, "title": "Switch DNS", "status": "todo"}),
        ),
        ev(
            "task/CUST-WP-0051-T03",
            "task.created",
            serde_json::json!({"id": "CUST-WP-0051-T03", "workstream": ws, "title": "Decommission", "status": "todo"}),
        ),
        ev(
            "task/CUST-WP-0051-T01",
            "task.status_changed",
            serde_json::json!({"id": "CUST-WP-0051-T01", "to": "progress"}),
        ),
        ev(
            "task/CUST-WP-0051-T01",
            "task.evidence_linked",
            serde_json::json!({"id": "CUST-WP-0051-T01", "evidence": {"seq": 0}}),
        ),
        ev(
            "task/CUST-WP-0051-T01",
            "task.status_changed",
            serde_json::json!({"id": "CUST-WP-0051-T01", "to": "done"}),
        ),
        ev(
            "task/CUST-WP-0051-T02",
            "task.status_changed",
            serde_json::json!({"id": "CUST-WP-0051-T02", "to": "wait"}),
        ),
        ev(
            "workstream/CUST-WP-0051",
            "workstream.status_changed",
            serde_json::json!({"id": ws, "to": "done"}),
        ),
        ev(
            "incident/INC-2026-0042",
            "incident.opened",
            serde_json::json!({"incident_id": "INC-2026-0042", "severity": "SEV2", "title": "registry 5xx", "service": "registry"}),
        ),
        ev(
            "incident/INC-2026-0042",
            "incident.acknowledged",
            serde_json::json!({"incident_id": "INC-2026-0042", "by": "oncall"}),
        ),
        ev(
            "incident/INC-2026-0042",
            "incident.resolved",
            serde_json::json!({"incident_id": "INC-2026-0042"}),
        ),
        // Malformed for the tasks projection (no `to`): a fault, not a stop.
        ev(
            "task/CUST-WP-0051-T03",
            "task.status_changed",
            serde_json::json!({"id": "CUST-WP-0051-T03"}),
        ),
    ]
}

async fn caught_up(client: &Client) -> Result<Vec<proto::ProjectionStatus>, ClientError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses = client.projection_status("", false).await?;
        if statuses.iter().all(|s| s.lag == 0) || Instant::now() > deadline {
            return Ok(statuses);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn query(
    client: &Client,
    view: &str,
    filter: &[(&str, &str)],
    as_of: Option<u64>,
) -> Result<Vec<Value>, ClientError> {
    let response = client
        .query(proto::QueryRequest {
            view: view.to_string(),
            filter: filter
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            as_of: as_of.map(|seq| proto::AsOf {
                point: Some(proto::as_of::Point::Seq(seq)),
            }),
        })
        .await?;
    Ok(response
        .rows_json
        .iter()
        .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
        .collect())
}

fn status_of(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Status(status)) => (status.code(), status.message().to_string()),
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_ins_fold_query_replay_and_refuse_bad_queries() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_config(dir.path()).unwrap()).await.unwrap();
    let client = server.client().await.unwrap();
    let events = evidence();
    let n = events.len() as u64;
    client
        .append(proto::AppendRequest {
            events,
            ..Default::default()
        })
        .await
        .unwrap();

    let statuses = caught_up(&client).await.unwrap();
    let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tasks", "incidents", "subjects", "metrics"]);
    for status in &statuses {
        assert_eq!((status.applied, status.lag), (n, 0), "{status:?}");
    }
    let tasks = statuses.iter().find(|s| s.name == "tasks").unwrap();
    assert_eq!(tasks.faults, 1);
    let faults = client.projection_faults("tasks", 0, 10).await.unwrap();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].seq, n - 1);
    assert!(faults[0].reason.contains("to"), "{}", faults[0].reason);

    // Rollup and the contradictory "done" workstream.
    let workstreams = query(&client, "workstreams", &[], None).await.unwrap();
    assert_eq!(workstreams.len(), 1);
    assert_eq!(workstreams[0]["rollup"]["summary"], "1 wait, 1 todo, 1 done");
    let anomalies = query(
        &client,
        "anomalies",
        &[("kind", "workstream_done_with_open_tasks")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    assert_eq!(anomalies[0]["subject"], "CUST-WP-0051");
    let waiting = query(&client, "tasks", &[("status", "wait")], None).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["id"], "CUST-WP-0051-T02");

    // Time travel: before the workstream was marked done, no anomaly.
    let before = query(
        &client,
        "anomalies",
        &[("kind", "workstream_done_with_open_tasks")],
        Some(7),
    )
    .await
    .unwrap();
    assert!(before.is_empty(), "{before:?}");

    // The incident, with its timeline and time to acknowledge.
    let incident = query(&client, "incident", &[("id", "INC-2026-0042")], None)
        .await
        .unwrap();
    assert_eq!(incident[0]["state"], "resolved");
    assert_eq!(incident[0]["timeline"].as_array().unwrap().len(), 3);
    assert!(incident[0]["time_to_acknowledge_ns"].is_i64());

    // The bundle index: the incident's records.
    let subjects = query(&client, "subjects", &[("incident", "INC-2026-0042")], None)
        .await
        .unwrap();
    assert_eq!(subjects[0]["seqs"], serde_json::json!([9, 10, 11]));

    // Replay over gRPC: progress, then the same digest as the live state.
    let before = client.projection_status("tasks", true).await.unwrap().remove(0);
    let mut progress = client.replay("tasks", 0).await.unwrap();
    let mut last = None;
    while let Some(message) = progress.next().await {
        last = Some(message.unwrap());
    }
    let last = last.unwrap();
    assert!(last.finished);
    assert_eq!((last.done, last.faults), (n, 1));
    assert_eq!(last.digest, before.digest);
    let after = client.projection_status("tasks", true).await.unwrap().remove(0);
    assert_eq!((after.digest, after.generation), (before.digest, before.generation + 1));

    // Bad queries: each a precise status naming what is wrong.
    let (code, message) = status_of(query(&client, "nonsense", &[], None).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("view:"), "{message}");
    let (code, message) = status_of(query(&client, "tasks", &[("colour", "red")], None).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("filter.colour:"), "{message}");
    let (code, message) = status_of(query(&client, "tasks", &[("status", "finished-ish")], None).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("filter.status:"), "{message}");
    let (code, _) = status_of(query(&client, "task", &[("id", "CUST-WP-9999-T01")], None).await);
    assert_eq!(code, Code::NotFound);
    let (code, message) = status_of(query(&client, "task", &[], None).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("filter.id:"), "{message}");
    let (code, message) = status_of(query(&client, "tasks", &[], Some(n)).await);
    assert_eq!(code, Code::OutOfRange);
    assert!(message.starts_with("as_of.seq:"), "{message}");
    let (code, _) = status_of(client.projection_status("nope", false).await);
    assert_eq!(code, Code::NotFound);
    let (code, _) = status_of(client.replay("nope", 0).await);
    assert_eq!(code, Code::NotFound);

    // The CLI prints the same views.
    let url = server.url();
    let output = Command::new(crate::LEDGER)
        .args(["--server", &url, "workstreams"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("CUST-WP-0051") && text.contains("1 wait, 1 todo, 1 done"),
        "{text}"
    );
    let output = Command::new(crate::LEDGER)
        .args(["--server", &url, "--json", "anomalies", "--workstream", "CUST-WP-0051"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8(output.stdout).unwrap().lines().count() >= 1);
    let output = Command::new(crate::LEDGER)
        .args(["--server", &url, "tasks", "--at", "not-a-time"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--at"));

    server.stop().await.unwrap();
}

fn observation(service: &str, value: f64, time: &str) -> proto::Event {
    ev(
        &format!("metrics/{service}"),
        "metric.observed",
        serde_json::json!({"name": "http_request_duration_ms", "labels": {"service": service},
            "value": value, "kind": "histogram", "time": time}),
    )
}

/// Metrics over gRPC: rollups per window with quantiles, a merged summary,
/// series, and a configured rule whose `alert.fired` / `alert.resolved`
/// come back as records of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_roll_up_alert_through_the_log_and_refuse_bad_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path()).unwrap();
    config.metrics = serde_json::from_value(serde_json::json!({"rules": [{
        "name": "registry-p95", "metric": "http_request_duration_ms", "matchers": ["service=registry"],
        "granularity": "minute", "statistic": "p95", "comparison": ">", "threshold": 500.0}]}))
    .unwrap();
    let server = TestServer::start(config).await.unwrap();
    let client = server.client().await.unwrap();

    // Minute 10:00: 1..=100 ms; 10:01: one slow request (fires); 10:02: fast
    // again (resolves). One observation of another service.
    let mut events: Vec<proto::Event> = (1..=100)
        .map(|v| observation("registry", f64::from(v), &format!("2026-11-01T10:00:{:02}Z", v % 60)))
        .collect();
    events.push(observation("registry", 2_000.0, "2026-11-01T10:01:30Z"));
    events.push(observation("registry", 10.0, "2026-11-01T10:02:05Z"));
    events.push(observation("api", 7.0, "2026-11-01T10:00:01Z"));
    client
        .append(proto::AppendRequest {
            events,
            ..Default::default()
        })
        .await
        .unwrap();

    // The alerts come back through the log (appended by the engine).
    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let mut stream = client
            .read(proto::ReadRequest {
                stream: "alert/registry-p95".to_string(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut types = Vec::new();
        while let Some(record) = stream.next().await {
            types.push(record.unwrap().event.unwrap().r#type);
        }
        if types.len() >= 2 || Instant::now() > deadline {
            break types;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alerts, ["alert.fired", "alert.resolved"]);
    caught_up(&client).await.unwrap();

    let name = ("name", "http_request_duration_ms");
    let minutes = query(&client, "metrics", &[name, ("match", "service=registry")], None)
        .await
        .unwrap();
    assert_eq!(minutes.len(), 3, "{minutes:?}");
    let first = &minutes[0];
    assert_eq!(
        (first["count"].as_u64(), first["min"].as_f64(), first["max"].as_f64()),
        (Some(100), Some(1.0), Some(100.0))
    );
    for (q, exact) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
        let estimate = first[q].as_f64().unwrap();
        assert!((estimate - exact).abs() / exact <= 0.02, "{q}: {estimate} vs {exact}");
    }
    let hours = query(&client, "metrics", &[name, ("granularity", "hour")], None)
        .await
        .unwrap();
    let counts: Vec<u64> = hours.iter().map(|r| r["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, [1, 102], "api first (labels order), then registry");
    let windowed = query(
        &client,
        "metrics",
        &[
            name,
            ("match", "service!=api"),
            ("from", "2026-11-01T10:01:00Z"),
            ("to", "2026-11-01T10:02:00Z"),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(windowed.len(), 1);
    assert_eq!(windowed[0]["max"].as_f64(), Some(2_000.0));
    let summary = query(&client, "metric_summary", &[name, ("granularity", "day")], None)
        .await
        .unwrap();
    assert_eq!(
        (summary[0]["series"].as_u64(), summary[0]["count"].as_u64()),
        (Some(2), Some(103))
    );
    assert_eq!(query(&client, "series", &[], None).await.unwrap().len(), 2);
    let states = query(&client, "alerts", &[("rule", "registry-p95")], None)
        .await
        .unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0]["fired"].as_u64(), states[0]["resolved"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        query(&client, "alerts", &[("firing", "true")], None)
            .await
            .unwrap()
            .is_empty()
    );

    // Bad queries name the filter.
    for (filter, field) in [
        (vec![("match", "service=registry")], "filter.name"),
        (vec![name, ("match", "service")], "filter.match"),
        (vec![name, ("granularity", "week")], "filter.granularity"),
        (vec![name, ("from", "yesterday")], "filter.from"),
        (
            vec![name, ("from", "2026-11-02T00:00:00Z"), ("to", "2026-11-01T00:00:00Z")],
            "filter.to",
        ),
    ] {
        let (code, message) = status_of(query(&client, "metrics", &filter, None).await);
        assert_eq!(code, Code::InvalidArgument, "{filter:?}");
        assert!(message.starts_with(field), "{filter:?}: {message}");
    }

    // The CLI table.
    let url = server.url();
    let output = Command::new(crate::LEDGER)
        .args([
            "--server",
            &url,
            "metrics",
            "query",
            "http_request_duration_ms",
            "-m",
            "service=registry",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("http_request_duration_ms{service=registry}") && text.contains("2026-11-01T10:01:00Z"),
        "{text}"
    );
    let output = Command::new(crate::LEDGER)
        .args(["--server", &url, "metrics", "alerts"])
        .output()
        .unwrap();
    assert!(String::from_utf8(output.stdout).unwrap().contains("registry-p95"));
    let output = Command::new(crate::LEDGER)
        .args(["--server", &url, "metrics", "query", "x", "-m", "a=1,b=2"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--match"));

    server.stop().await.unwrap();
}
