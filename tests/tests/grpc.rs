//! End to end over a real loopback gRPC server (`ledger_server::run` on
//! `127.0.0.1:0`) with the real `ledger-client`.

use std::time::Duration;

use ledger_client::check::{check_consistency, check_inclusion, check_record};
use ledger_client::{ClientError, proto};
use ledger_tests::server::{TestServer, server_config};
use ledger_tests::test_signer;
use tokio_stream::StreamExt as _;
use tonic::Code;

fn wire_event(stream: &str, n: u64) -> proto::Event {
    let payload = serde_json::json!({
        "endpoint": format!("https://{stream}.example/healthz"),
        "expected_status": 200,
        "probe_run": n,
    });
    let mut event = ledger_client::event(stream, "ops.health_checked", payload.to_string().into_bytes());
    event.metadata = Some(proto::Metadata {
        correlation_id: format!("run-{n}"),
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

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> (Code, String) {
    match result {
        Ok(value) => panic!("expected an error status, got {value:?}"),
        Err(ClientError::Status(status)) => (status.code(), status.message().to_string()),
        Err(other) => panic!("expected an error status, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_read_subscribe_get_and_prove() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let client = server.client().await?;
    let trusted = [test_signer()?.verifier_key()?];

    let events: Vec<_> = (0..3).map(|n| wire_event("service/registry", n)).collect();
    let mut request = batch(events.clone());
    request.include_checkpoint = true;
    let response = client.append(request.clone()).await?;
    let seqs: Vec<u64> = response.receipts.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(!response.deduplicated);
    let checkpoint = response.checkpoint.clone().expect("checkpoint asked for");
    assert_eq!(checkpoint.size, 3);
    ledger_client::check::check_checkpoint(&checkpoint, &trusted)?;

    // The same batch again is an idempotent retry: same receipts.
    let again = client.append(request).await?;
    assert!(again.deduplicated);
    assert_eq!(again.receipts, response.receipts);

    let mut read = client.read(proto::ReadRequest::default()).await?;
    let mut records = Vec::new();
    while let Some(record) = read.next().await {
        let record = record?;
        check_record(&record)?;
        records.push(record);
    }
    assert_eq!(records.len(), 3);
    for (record, event) in records.iter().zip(&events) {
        // As sent, with the default content type made explicit.
        let expected = proto::Event {
            content_type: "application/json".to_string(),
            ..event.clone()
        };
        assert_eq!(
            record.event.as_ref(),
            Some(&expected),
            "the record carries the event as sent"
        );
    }

    let live = client.subscribe(proto::SubscribeRequest::default());
    tokio::pin!(live);
    for seq in 0..3 {
        let record = live.next().await.expect("catch-up record")?;
        assert_eq!(record.seq, seq);
    }
    let fourth = client.append(batch(vec![wire_event("service/billing", 3)])).await?;
    let record = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await?
        .expect("live record")?;
    assert_eq!(record.seq, 3);
    assert_eq!(record.record_hash, fourth.receipts[0].record_hash);

    let by_id = client.record_by_id(&events[1].id).await?;
    assert_eq!(by_id.seq, 1);
    assert_eq!(client.record(1).await?, by_id);

    let proof = client.inclusion_proof(1, None).await?;
    assert_eq!(proof.tree_size, 4);
    check_inclusion(&proof, &trusted)?;
    let old = client.inclusion_proof(0, Some(2)).await?;
    assert_eq!(check_inclusion(&old, &trusted)?.size, 2);
    let consistency = client.consistency_proof(2, None).await?;
    let (from, to) = check_consistency(&consistency, &trusted)?;
    assert_eq!((from.size, to.size), (2, 4));
    // A checkpoint of a past size is the one cut back then, byte for byte.
    assert_eq!(client.checkpoint(Some(3)).await?.note, checkpoint.note);

    let info = client.info().await?;
    assert_eq!(info.size, 4);
    assert_eq!(info.verifier_key, trusted[0].to_string());

    let stream = client
        .read(proto::ReadRequest {
            stream: "service/registry".to_string(),
            from_version: 1,
            ..Default::default()
        })
        .await?
        .collect::<Result<Vec<_>, _>>()
        .await?;
    let versions: Vec<u64> = stream.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, [1, 2]);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_stream_of_100k_events_answers_in_order() -> anyhow::Result<()> {
    const REQUESTS: u64 = 5_000;
    const PER_REQUEST: u64 = 20;
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let client = server.client().await?;
    let (sink, mut receipts) = client.append_stream(64).await?;
    let sender = tokio::spawn(async move {
        for r in 0..REQUESTS {
            let events = (0..PER_REQUEST)
                .map(|i| wire_event(&format!("service/s{}", (r + i) % 8), r * PER_REQUEST + i))
                .collect();
            sink.send(batch(events)).await?;
        }
        sink.finish();
        anyhow::Ok(())
    });
    let mut next_seq = 0;
    let mut responses = 0;
    while let Some(response) = receipts.next().await {
        // `next` has already checked each receipt against the event sent.
        let response = response?;
        for receipt in &response.receipts {
            assert_eq!(receipt.seq, next_seq, "receipts arrive in request order");
            next_seq += 1;
        }
        responses += 1;
    }
    sender.await??;
    assert_eq!(responses, REQUESTS);
    assert_eq!(next_seq, REQUESTS * PER_REQUEST);
    assert_eq!(client.info().await?.size, REQUESTS * PER_REQUEST);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_hands_over_from_catch_up_to_live_without_gap_or_duplicate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let client = server.client().await?;
    for b in 0..10 {
        client
            .append(batch((0..50).map(|i| wire_event("service/seed", b * 50 + i)).collect()))
            .await?;
    }
    let everything = client.subscribe(proto::SubscribeRequest::default());
    let billing_only = client.subscribe(proto::SubscribeRequest {
        from_seq: 0,
        stream: "service/billing".to_string(),
        ..Default::default()
    });
    // Four producers append while both subscriptions catch up.
    let mut producers = Vec::new();
    for p in 0..4u64 {
        let client = client.clone();
        producers.push(tokio::spawn(async move {
            let stream = if p == 0 { "service/billing" } else { "service/registry" };
            for b in 0..100 {
                let events = (0..4).map(|i| wire_event(stream, p * 1000 + b * 4 + i)).collect();
                client.append(batch(events)).await?;
            }
            anyhow::Ok(())
        }));
    }
    let total = 500 + 4 * 100 * 4;
    let seqs: Vec<u64> = tokio::time::timeout(
        Duration::from_secs(120),
        everything
            .take(total)
            .map(|r| r.map(|r| r.seq))
            .collect::<Result<Vec<_>, _>>(),
    )
    .await??;
    assert_eq!(seqs, (0..total as u64).collect::<Vec<_>>(), "every seq once, in order");
    for producer in producers {
        producer.await??;
    }
    let billing: Vec<proto::Record> = tokio::time::timeout(
        Duration::from_secs(60),
        billing_only.take(400).collect::<Result<Vec<_>, _>>(),
    )
    .await??;
    let versions: Vec<u64> = billing.iter().map(|r| r.stream_version).collect();
    assert_eq!(versions, (0..400).collect::<Vec<_>>());
    assert!(
        billing
            .iter()
            .all(|r| r.event.as_ref().is_some_and(|e| e.stream == "service/billing"))
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_precise_status_and_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = server_config(dir.path())?;
    config.ledger.max_batch_events = 5;
    config.ledger.max_payload_bytes = 1024;
    config.max_message_bytes = 64 * 1024;
    config.max_concurrent_streams = 2;
    let server = TestServer::start(config).await?;
    let client = server.client().await?;
    let first = client
        .append(proto::AppendRequest {
            events: vec![wire_event("task/T1", 0)],
            expected_version: Some(proto::append_request::ExpectedVersion::ExpectNoStream(true)),
            include_checkpoint: false,
        })
        .await?;
    let len = || async { client.info().await.map(|i| i.size) };
    assert_eq!(len().await?, 1);

    let cases: Vec<(&str, proto::AppendRequest, Code, &str)> = vec![
        (
            "empty stream",
            batch(vec![wire_event("", 1)]),
            Code::InvalidArgument,
            "events[0].stream",
        ),
        (
            "missing id",
            batch(vec![proto::Event {
                id: String::new(),
                ..wire_event("task/T1", 1)
            }]),
            Code::InvalidArgument,
            "events[0].id: required",
        ),
        (
            "payload not JSON",
            batch(vec![proto::Event {
                payload: b"{not json".to_vec(),
                ..wire_event("task/T1", 1)
            }]),
            Code::InvalidArgument,
            "events[0].payload",
        ),
        (
            "payload over max_payload_bytes",
            batch(vec![proto::Event {
                payload: format!("\"{}\"", "x".repeat(2000)).into_bytes(),
                ..wire_event("task/T1", 1)
            }]),
            Code::ResourceExhausted,
            "max_payload_bytes (1024)",
        ),
        (
            "batch over max_batch_events",
            batch((0..6).map(|n| wire_event("task/T1", n)).collect()),
            Code::ResourceExhausted,
            "max_batch_events (5)",
        ),
        (
            "message over max_message_bytes",
            batch(vec![proto::Event {
                payload: vec![b' '; 100 * 1024],
                ..wire_event("task/T1", 1)
            }]),
            Code::ResourceExhausted,
            "max_message_bytes (65536)",
        ),
        (
            "wrong expected version",
            proto::AppendRequest {
                events: vec![wire_event("task/T1", 1)],
                expected_version: Some(proto::append_request::ExpectedVersion::ExpectVersion(7)),
                include_checkpoint: false,
            },
            Code::FailedPrecondition,
            "expected version 7",
        ),
        (
            "id reused with other content",
            batch(vec![proto::Event {
                id: first.receipts[0].event_id.clone(),
                ..wire_event("task/T1", 99)
            }]),
            Code::AlreadyExists,
            "already exists at seq 0",
        ),
        (
            "same id twice in a batch",
            {
                let event = wire_event("task/T1", 1);
                batch(vec![event.clone(), event])
            },
            Code::InvalidArgument,
            "appears twice",
        ),
    ];
    for (what, request, want_code, want_text) in cases {
        let (got, message) = code(client.append(request).await);
        assert_eq!(got, want_code, "{what}: {message}");
        assert!(message.contains(want_text), "{what}: {message:?} lacks {want_text:?}");
        assert_eq!(len().await?, 1, "{what}: nothing may be written");
    }

    let (got, message) = code(client.record_by_id(&uuid::Uuid::now_v7().to_string()).await);
    assert_eq!(got, Code::NotFound, "{message}");
    let (got, message) = code(client.record(1_000).await);
    assert_eq!(got, Code::OutOfRange, "{message}");
    let (got, message) = code(client.record_by_id("nope").await);
    assert_eq!(
        (got, message.starts_with("event_id: not a UUID")),
        (Code::InvalidArgument, true)
    );
    let (got, _) = code(client.inclusion_proof(5, Some(3)).await);
    assert_eq!(got, Code::OutOfRange);
    let (got, _) = code(client.consistency_proof(3, Some(2)).await);
    assert_eq!(got, Code::InvalidArgument);
    let (got, message) = code(client.checkpoint(Some(9)).await);
    assert_eq!(got, Code::OutOfRange, "{message}");
    let mut raw = client.raw();
    let status = raw
        .subscribe(proto::SubscribeRequest {
            stream: "a".to_string(),
            stream_prefix: "b".to_string(),
            ..Default::default()
        })
        .await
        .expect_err("both filters rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("stream, stream_prefix"));
    let status = raw
        .subscribe(proto::SubscribeRequest {
            from_seq: 50,
            ..Default::default()
        })
        .await
        .expect_err("a subscription beyond the log is refused");
    assert_eq!(status.code(), Code::OutOfRange);

    // Inside a stream, a bad request is answered in its place and the
    // stream goes on.
    let (sink, mut receipts) = client.append_stream(8).await?;
    sink.send(batch(vec![wire_event("task/T2", 1)])).await?;
    sink.send(batch(vec![wire_event("", 2)])).await?;
    sink.send(batch(vec![wire_event("task/T2", 3)])).await?;
    sink.finish();
    assert_eq!(receipts.next().await.expect("first")?.receipts[0].seq, 1);
    let (got, message) = code(receipts.next().await.expect("second"));
    assert_eq!(got, Code::InvalidArgument, "{message}");
    assert_eq!(receipts.next().await.expect("third")?.receipts[0].seq, 2);
    assert!(receipts.next().await.is_none());

    // Streaming calls beyond max_concurrent_streams are refused by name.
    let _a = raw.subscribe(proto::SubscribeRequest::default()).await?;
    let _b = raw.subscribe(proto::SubscribeRequest::default()).await?;
    let status = raw
        .subscribe(proto::SubscribeRequest::default())
        .await
        .expect_err("third stream refused");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("max_concurrent_streams (2)"),
        "{}",
        status.message()
    );
    drop((_a, _b));

    server.stop().await?;
    // With the server gone, calls fail as UNAVAILABLE (which the client
    // retries, then reports).
    let client = client.with_retry(ledger_client::RetryPolicy {
        retries: 1,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    });
    let (got, _) = code(client.append(batch(vec![wire_event("task/T1", 5)])).await);
    assert_eq!(got, Code::Unavailable);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_resumes_across_a_server_restart_without_gap_or_duplicate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let addr = server.addr;
    let client = server.client().await?;
    for n in 0..5 {
        client.append(batch(vec![wire_event("service/registry", n)])).await?;
    }
    let records = ledger_client::Client::connect_lazy(&server.url())?.subscribe(proto::SubscribeRequest::default());
    tokio::pin!(records);
    for seq in 0..5 {
        assert_eq!(records.next().await.expect("record")?.seq, seq);
    }
    // Graceful shutdown ends the subscription with UNAVAILABLE; the client
    // keeps retrying until the server is back on the same address.
    server.stop().await?;
    let mut config = server_config(dir.path())?;
    config.listen = addr;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let restarted = tokio::spawn(ledger_server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let client = ledger_client::Client::connect_lazy(&format!("http://{addr}"))?;
    for n in 5..10 {
        client.append(batch(vec![wire_event("service/registry", n)])).await?;
    }
    for seq in 5..10 {
        let record = tokio::time::timeout(Duration::from_secs(30), records.next())
            .await?
            .expect("record after resume")?;
        assert_eq!(record.seq, seq, "resumed from the last seq + 1");
    }
    let _ = stop.send(());
    restarted.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_and_shutdown_ends_open_streams() -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let channel = tonic::transport::Endpoint::from_shared(server.url())?.connect().await?;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "ledger.v1.Ledger".to_string(),
        })
        .await?
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let services = match answers.next().await.expect("an answer")?.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    };
    assert!(services.iter().any(|s| s == "ledger.v1.Ledger"), "{services:?}");
    assert!(services.iter().any(|s| s == "grpc.health.v1.Health"), "{services:?}");

    // An open subscription must not keep the server from stopping; it ends
    // with UNAVAILABLE so clients know to resume.
    let mut open = server
        .client()
        .await?
        .raw()
        .subscribe(proto::SubscribeRequest::default())
        .await?
        .into_inner();
    let stopping = tokio::spawn(server.stop());
    let ended = tokio::time::timeout(Duration::from_secs(30), open.next()).await?;
    match ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status}"),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(30), stopping).await???;
    Ok(())
}
