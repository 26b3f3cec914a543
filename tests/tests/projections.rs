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
    assert_eq!(names, ["tasks", "incidents", "subjects"]);
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
