//! `ledgerd` killed with SIGKILL in the middle of a projection replay: on
//! restart the projection serves its old state (same generation, digest and
//! answers), the half-written generation is gone, and a new replay runs to
//! completion with the same digest.

use std::time::{Duration, Instant};

use ledger_client::{Client, proto};
use ledger_core::Event;
use ledger_core::sample::SampleEvidence;
use ledger_tests::server::Ledgerd;
use tokio_stream::StreamExt as _;

/// Records in the log: a replay reports progress every 65,536 records, so
/// the kill (on the first report) lands with most of the fold still ahead.
const RECORDS: u64 = 300_000;
/// Events per append.
const BATCH: usize = 5_000;
const SEED: u64 = 7;
/// The projection replayed and killed; the queries below read it.
const REPLAYED: &str = "tasks";
/// Longest the projections may take to fold the log before the test calls
/// them hung.
const CATCH_UP: Duration = Duration::from_secs(600);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn proto_event(event: Event) -> proto::Event {
    proto::Event {
        id: event.id.to_string(),
        stream: event.stream,
        r#type: event.event_type,
        occurred_at: Some(ledger_client::timestamp(event.occurred_at)),
        payload: event.payload,
        content_type: event.content_type,
        metadata: Some(proto::Metadata {
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            trace_id: event.metadata.trace_id,
            extra: event.metadata.extra.into_iter().collect(),
        }),
        signature: None,
    }
}

/// Every projection's status with its digest, once all have folded the
/// whole log.
async fn caught_up(client: &Client) -> anyhow::Result<Vec<proto::ProjectionStatus>> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let statuses = client.projection_status("", false).await?;
        if statuses.iter().all(|s| s.applied == RECORDS && s.log_len == RECORDS) {
            return Ok(client.projection_status("", true).await?);
        }
        anyhow::ensure!(Instant::now() < deadline, "projections did not catch up: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Answers of the views over the replayed projection: (applied, rows).
async fn answers(client: &Client) -> anyhow::Result<Vec<(u64, Vec<String>)>> {
    let asks: [(&str, &[(&str, &str)]); 5] = [
        ("workstreams", &[]),
        ("anomalies", &[]),
        ("tasks", &[("status", "wait")]),
        ("task", &[("id", "CUST-WP-0001-T01")]),
        ("workstream", &[("id", "CUST-WP-0010")]),
    ];
    let mut out = Vec::new();
    for (view, filter) in asks {
        let response = client
            .query(proto::QueryRequest {
                view: view.to_string(),
                filter: filter.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                as_of: None,
            })
            .await?;
        anyhow::ensure!(!response.rows_json.is_empty(), "{view} {filter:?}: no rows");
        out.push((response.applied, response.rows_json));
    }
    Ok(out)
}

/// The status fields a restart must not change (no replay running).
fn settled(statuses: &[proto::ProjectionStatus]) -> Vec<proto::ProjectionStatus> {
    statuses
        .iter()
        .map(|s| proto::ProjectionStatus {
            replay: None,
            ..s.clone()
        })
        .collect()
}

#[test]
fn sigkill_during_a_replay_keeps_the_old_state_and_the_replay_restartable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let rt = runtime()?;

    let mut ledgerd = Ledgerd::spawn(crate::LEDGERD, &data)?;
    let (before, asked) = rt.block_on(async {
        let client = Client::connect(&ledgerd.url()).await?;
        let mut source = SampleEvidence::new(SEED);
        for _ in 0..RECORDS / BATCH as u64 {
            let events = source.take_events(BATCH).into_iter().map(proto_event).collect();
            client
                .append(proto::AppendRequest {
                    events,
                    ..Default::default()
                })
                .await?;
        }
        let before = caught_up(&client).await?;
        anyhow::Ok((before, answers(&client).await?))
    })?;
    let replayed = before
        .iter()
        .find(|s| s.name == REPLAYED)
        .ok_or_else(|| anyhow::anyhow!("no {REPLAYED} projection"))?
        .clone();
    assert!(replayed.digest_entries > 0, "{replayed:?}");
    assert!(before.iter().all(|s| s.replay.is_none()));

    // Replay, and pull the plug on the first progress report.
    let seen = rt.block_on(async {
        let client = Client::connect(&ledgerd.url()).await?;
        let mut progress = client.replay(REPLAYED, 0).await?;
        let first = progress
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("the replay stream ended at once"))??;
        ledgerd.child.kill()?;
        ledgerd.child.wait()?;
        let mut seen = vec![first];
        // What was already on the wire, then the broken stream.
        while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), progress.next()).await {
            seen.push(message);
        }
        anyhow::Ok(seen)
    })?;
    drop(ledgerd);
    assert!(
        seen.iter().all(|m| !m.finished && m.done < RECORDS),
        "the kill must land before the replay finishes: {seen:?}"
    );

    let ledgerd = Ledgerd::spawn(crate::LEDGERD, &data)?;
    rt.block_on(async {
        let client = Client::connect(&ledgerd.url()).await?;
        assert_eq!(client.info().await?.size, RECORDS);
        // The old generation, with the old digest, serves the old answers;
        // the other projections are as they were too.
        let after = caught_up(&client).await?;
        assert_eq!(settled(&after), settled(&before), "state after the restart");
        assert!(after.iter().all(|s| s.replay.is_none()), "{after:?}");
        assert_eq!(answers(&client).await?, asked, "answers after the restart");

        // A new replay runs to the end, to the same digest.
        let mut progress = client.replay(REPLAYED, 0).await?;
        let mut last = None;
        while let Some(message) = progress.next().await {
            last = Some(message?);
        }
        let last = last.ok_or_else(|| anyhow::anyhow!("the replay reported nothing"))?;
        assert!(last.finished, "{last:?}");
        assert_eq!((last.done, last.faults), (RECORDS, replayed.faults));
        assert_eq!(last.digest, replayed.digest);
        let now = client.projection_status(REPLAYED, true).await?.remove(0);
        assert_eq!(
            (now.generation, now.digest.as_str(), now.digest_entries, now.replay),
            (
                replayed.generation + 1,
                replayed.digest.as_str(),
                replayed.digest_entries,
                None
            )
        );
        assert_eq!(answers(&client).await?, asked, "answers after the second replay");
        anyhow::Ok(())
    })?;
    ledgerd.kill9()
}
