//! Live subscriptions through the server's shared fan-out: many
//! subscriptions of many streams each get exactly their records, in order,
//! while producers append; a subscription too slow for its buffer is
//! dropped from the fan-out and catches up from the log without a gap or a
//! duplicate; one opened mid-stream hands over from the log to live cleanly.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use ledger_client::{Client, proto};
use ledger_tests::server::{TestServer, server_config};
use tokio_stream::StreamExt as _;

const STREAMS: usize = 40;
const PER_STREAM: usize = 60;
const HANG: Duration = Duration::from_secs(120);

/// Takes `count` records of a subscription; returns their (seq, payload).
async fn take(
    client: Client,
    request: proto::SubscribeRequest,
    count: usize,
    pause: Duration,
) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
    let mut records = Box::pin(client.subscribe(request));
    let mut got = Vec::with_capacity(count);
    if !pause.is_zero() {
        // Opened, then not read: its buffers fill and the fan-out drops it.
        let first = tokio::time::timeout(HANG, records.next()).await?.context("ended")??;
        got.push((first.seq, first.event.context("event")?.payload));
        tokio::time::sleep(pause).await;
    }
    while got.len() < count {
        let record = tokio::time::timeout(HANG, records.next())
            .await?
            .context("subscription ended")??;
        got.push((record.seq, record.event.context("event")?.payload));
    }
    Ok(got)
}

fn stream(k: usize) -> String {
    format!("fan/s{k}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscription_gets_exactly_its_records_in_order() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = server_config(dir.path())?;
    config.subscriber_buffer = 4;
    let server = TestServer::start(config).await?;
    let client = server.client().await?;
    // A few records before anyone subscribes: the wide subscriptions start
    // from seq 0 and hand over from the log to live.
    for k in 0..3 {
        client
            .append(proto::AppendRequest {
                events: vec![ledger_client::event(
                    stream(k),
                    "fan.event",
                    b"{\"early\":true}".to_vec(),
                )],
                ..Default::default()
            })
            .await?;
    }
    let total = 3 + STREAMS * PER_STREAM;
    let mut subscribers = Vec::new();
    for k in 0..STREAMS {
        let request = proto::SubscribeRequest {
            stream: stream(k),
            ..Default::default()
        };
        let count = PER_STREAM + usize::from(k < 3);
        subscribers.push(tokio::spawn(take(client.clone(), request, count, Duration::ZERO)));
    }
    let everything = proto::SubscribeRequest {
        stream_prefix: "fan/".to_string(),
        from_seq: 0,
        ..Default::default()
    };
    let wide = tokio::spawn(take(client.clone(), everything.clone(), total, Duration::ZERO));
    let slow = tokio::spawn(take(client.clone(), everything, total, Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Producers: each event names its stream and its number in it.
    let mut producers = Vec::new();
    for p in 0..4 {
        let client = client.clone();
        producers.push(tokio::spawn(async move {
            for round in 0..PER_STREAM {
                let events = (0..STREAMS)
                    .filter(|k| k % 4 == p)
                    .map(|k| ledger_client::event(stream(k), "fan.event", format!("{{\"n\":{round}}}").into_bytes()))
                    .collect();
                client
                    .append(proto::AppendRequest {
                        events,
                        ..Default::default()
                    })
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for producer in producers {
        producer.await??;
    }

    for (k, subscriber) in subscribers.into_iter().enumerate() {
        let got = subscriber.await??;
        let numbers: Vec<String> = got
            .iter()
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect();
        let expected: Vec<String> = (k < 3)
            .then(|| "{\"early\":true}".to_string())
            .into_iter()
            .chain((0..PER_STREAM).map(|n| format!("{{\"n\":{n}}}")))
            .collect();
        ensure!(numbers == expected, "stream {k}: {numbers:?}");
        ensure!(got.windows(2).all(|w| w[0].0 < w[1].0), "stream {k}: seqs out of order");
    }
    for (name, task) in [("wide", wide), ("slow", slow)] {
        let got = task.await??;
        let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
        ensure!(
            seqs == (0..total as u64).collect::<Vec<_>>(),
            "{name}: not every seq exactly once, in order"
        );
    }
    server.stop().await
}
