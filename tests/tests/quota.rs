//! Per-principal abuse limits over a real loopback server with principals:
//! a flooding principal is refused with a retry hint while another keeps
//! every append; refused appends write nothing; an AppendStream slightly
//! above its rate is slowed rather than refused; a principal at its stream
//! limit is refused while another still opens streams.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use ledger_client::proto;
use ledger_client::{Client, ClientError, RetryPolicy};
use ledger_server::auth::{Grant, Principals};
use ledger_server::quota::{LimitOverrides, Limits, RETRY_AFTER_MS};
use ledger_tests::server::{TestServer, server_config};
use tokio_stream::StreamExt as _;
use tonic::Code;

/// Guards against a hang; never an assertion on how long anything takes.
const HANG: Duration = Duration::from_secs(120);

/// The server-wide events-per-second limit of these tests: every principal
/// gets it, so the steady principal is limited exactly like the flooder.
const EVENTS_PER_SEC: u64 = 200;

/// Adds principal `name` with `grants`, `limits` and one key; returns the key.
fn add(principals: &mut Principals, name: &str, grants: &[&str], limits: LimitOverrides) -> anyhow::Result<String> {
    let grants = grants.iter().map(|g| Grant::parse(g)).collect::<Result<Vec<_>, _>>()?;
    principals.add_principal(name, grants)?;
    principals
        .principals
        .iter_mut()
        .find(|p| p.name == name)
        .context("the principal just added")?
        .limits = limits;
    Ok(principals.add_key(name, Utc::now(), None)?.expose().to_string())
}

/// A server limiting every principal to [`EVENTS_PER_SEC`] and at most
/// `max_streams` streaming calls, with `principals` saved in `dir`.
async fn start(dir: &Path, principals: &Principals, max_streams: u32) -> anyhow::Result<TestServer> {
    let path = dir.join("principals.toml");
    principals.save(&path)?;
    let mut config = server_config(dir)?;
    config.principals_file = Some(path);
    config.principal_limits = Limits {
        events_per_sec: EVENTS_PER_SEC,
        bytes_per_sec: 0,
        max_streams,
    };
    TestServer::start(config).await
}

fn batch(stream: &str, events: usize) -> proto::AppendRequest {
    proto::AppendRequest {
        events: (0..events)
            .map(|n| ledger_client::event(stream, "ops.health_checked", format!("{{\"n\":{n}}}").into_bytes()))
            .collect(),
        ..Default::default()
    }
}

/// Records of `stream`, read as a caller allowed to.
async fn count(client: &Client, stream: &str) -> anyhow::Result<u64> {
    let mut records = client
        .read(proto::ReadRequest {
            stream: stream.to_string(),
            ..Default::default()
        })
        .await?;
    let mut n = 0;
    while let Some(record) = records.next().await {
        record?;
        n += 1;
    }
    Ok(n)
}

/// Checks a rate refusal: the code, the principal and limit named, and the
/// same wait in the message and in `retry-after-ms`.
fn check_rate_refusal(status: &tonic::Status, principal: &str) -> anyhow::Result<()> {
    ensure!(status.code() == Code::ResourceExhausted, "unexpected status {status:?}");
    let expected = format!("principal {principal}: events per second limit {EVENTS_PER_SEC} exceeded, retry after ");
    ensure!(status.message().starts_with(&expected), "{:?}", status.message());
    let hinted: u64 = status
        .metadata()
        .get(RETRY_AFTER_MS)
        .context("no retry-after-ms metadata")?
        .to_str()?
        .parse()?;
    ensure!(hinted >= 1, "a zero retry hint");
    ensure!(
        status.message().ends_with(&format!("retry after {hinted} ms")),
        "message and metadata disagree: {:?} vs {hinted}",
        status.message()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_principal_is_refused_with_a_hint_while_another_keeps_every_append() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let flood = add(&mut principals, "flood", &["ops-hub:append"], LimitOverrides::default())?;
    let steady = add(&mut principals, "steady", &["ci:append"], LimitOverrides::default())?;
    let admin = add(&mut principals, "admin", &["*:admin"], LimitOverrides::default())?;
    let server = start(dir.path(), &principals, 64).await?;
    // Neither client retries refusals, so each one is seen here.
    let flooder = server.client_with_key(&flood).await?.with_retry(RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    });
    let steady = server.client_with_key(&steady).await?.with_retry(RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    });

    // A batch above the one-second burst can never be admitted: refused
    // at once, without a retry hint, and nothing of it is written.
    match flooder
        .append(batch("ops-hub/probe", EVENTS_PER_SEC as usize + 1))
        .await
    {
        Err(ClientError::Status(s)) => {
            ensure!(s.code() == Code::ResourceExhausted, "{s:?}");
            ensure!(
                s.message()
                    .contains("principal flood: a batch of 201 exceeds the one-second burst")
                    && s.message().contains("split it"),
                "{:?}",
                s.message()
            );
            ensure!(
                s.metadata().get(RETRY_AFTER_MS).is_none(),
                "a hint for a batch that never fits"
            );
        }
        other => bail!("an over-burst batch was not refused: {other:?}"),
    }

    // The flood: 16 appenders of 10-event batches without pause, far
    // above 200 events/s; meanwhile `steady` appends one event every 50 ms
    // (20/s, a tenth of the same limit) on its own connection.
    let done = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for _ in 0..16 {
        let (client, done, accepted, refused) = (
            flooder.clone(),
            Arc::clone(&done),
            Arc::clone(&accepted),
            Arc::clone(&refused),
        );
        flooders.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                match client.append(batch("ops-hub/probe", 10)).await {
                    Ok(response) => {
                        accepted.fetch_add(response.receipts.len() as u64, Ordering::Relaxed);
                    }
                    Err(ClientError::Status(status)) => {
                        check_rate_refusal(&status, "flood")?;
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(other) => bail!("flood append failed otherwise: {other}"),
                }
            }
            anyhow::Ok(())
        }));
    }
    let mut steady_appends = 0u64;
    let steady_run = async {
        for n in 0..40 {
            let response = steady
                .append(batch("ci/build", 1))
                .await
                .with_context(|| format!("steady append {n} while the flood runs"))?;
            ensure!(response.receipts.len() == 1);
            steady_appends += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    };
    let steady_result = tokio::time::timeout(HANG, steady_run).await;
    done.store(true, Ordering::Relaxed);
    for task in flooders {
        tokio::time::timeout(HANG, task).await???;
    }
    steady_result??;
    ensure!(steady_appends == 40);
    let refused = refused.load(Ordering::Relaxed);
    let accepted = accepted.load(Ordering::Relaxed);
    ensure!(refused > 0, "the flood was never refused ({accepted} events accepted)");

    // A refused append wrote nothing: the log holds exactly the accepted
    // events of each principal.
    let admin = server.client_with_key(&admin).await?;
    ensure!(
        count(&admin, "ops-hub/probe").await? == accepted,
        "flood records != accepted events"
    );
    ensure!(count(&admin, "ci/build").await? == 40, "steady records != its appends");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_retries_a_rate_limited_append_after_the_hint() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let key = add(
        &mut principals,
        "slow",
        &["ops-hub:append"],
        LimitOverrides {
            events_per_sec: Some(10),
            ..LimitOverrides::default()
        },
    )?;
    let server = start(dir.path(), &principals, 64).await?;
    let once = server.client_with_key(&key).await?.with_retry(RetryPolicy {
        retries: 0,
        ..RetryPolicy::default()
    });
    // The override wins over the server-wide 200/s: 10 events drain it.
    once.append(batch("ops-hub/probe", 10)).await?;
    match once.append(batch("ops-hub/probe", 10)).await {
        Err(ClientError::Status(s)) => {
            ensure!(s.code() == Code::ResourceExhausted, "{s:?}");
            ensure!(
                s.message()
                    .starts_with("principal slow: events per second limit 10 exceeded"),
                "{:?}",
                s.message()
            );
            ensure!(ledger_client::retry_after(&s).is_some(), "no hint: {s:?}");
        }
        other => bail!("the drained bucket admitted a batch: {other:?}"),
    }
    // The default policy waits for the hint and then succeeds.
    let retrying = server.client_with_key(&key).await?;
    let response = tokio::time::timeout(HANG, retrying.append(batch("ops-hub/probe", 10))).await??;
    ensure!(response.receipts.len() == 10);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_stream_above_its_rate_is_slowed_and_a_long_shortage_is_refused_in_place() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let key = add(
        &mut principals,
        "producer",
        &["ops-hub:append"],
        LimitOverrides::default(),
    )?;
    let server = start(dir.path(), &principals, 64).await?;
    let client = server.client_with_key(&key).await?;

    // 20 batches of 20 events: 400 events at 200/s. Each shortage is at
    // most 100 ms, below the 250 ms the stream waits: all admitted.
    let (sink, mut receipts) = client.append_stream(4).await?;
    let sender = tokio::spawn(async move {
        for _ in 0..20 {
            sink.send(batch("ops-hub/probe", 20)).await?;
        }
        sink.finish();
        anyhow::Ok(())
    });
    let mut ok = 0;
    while let Some(response) = tokio::time::timeout(HANG, receipts.next()).await? {
        ensure!(response?.receipts.len() == 20);
        ok += 1;
    }
    tokio::time::timeout(HANG, sender).await???;
    ensure!(ok == 20, "{ok} of 20 batches admitted");

    // Batches of 150 events: once the burst is spent each needs 750 ms of
    // refill, more than the stream waits: refused in place with the hint
    // in the message, and the stream goes on.
    let (sink, mut receipts) = client.append_stream(4).await?;
    for _ in 0..3 {
        sink.send(batch("ops-hub/probe", 150)).await?;
    }
    sink.finish();
    let mut outcomes = Vec::new();
    while let Some(response) = tokio::time::timeout(HANG, receipts.next()).await? {
        outcomes.push(response);
    }
    ensure!(outcomes.len() == 3, "{} responses", outcomes.len());
    let refused: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Err(ClientError::Status(s)) => Some(s),
            _ => None,
        })
        .collect();
    ensure!(!refused.is_empty(), "no batch was refused: {outcomes:?}");
    for status in refused {
        ensure!(status.code() == Code::ResourceExhausted, "{status:?}");
        ensure!(
            status
                .message()
                .starts_with("principal producer: events per second limit 200 exceeded, retry after "),
            "{:?}",
            status.message()
        );
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_at_its_stream_limit_is_refused_while_another_opens_streams() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut principals = Principals::default();
    let hog = add(
        &mut principals,
        "hog",
        &["ops-hub:read"],
        LimitOverrides {
            max_streams: Some(2),
            ..LimitOverrides::default()
        },
    )?;
    let other = add(&mut principals, "other", &["ci:read"], LimitOverrides::default())?;
    let server = start(dir.path(), &principals, 64).await?;
    let hog = server.client_with_key(&hog).await?;
    let other = server.client_with_key(&other).await?;
    let subscribe = |client: &Client, stream: &str| {
        let mut raw = client.raw();
        let request = proto::SubscribeRequest {
            stream: stream.to_string(),
            ..Default::default()
        };
        async move { raw.subscribe(request).await }
    };

    let first = subscribe(&hog, "ops-hub/probe").await?;
    let second = subscribe(&hog, "ops-hub/probe").await?;
    match subscribe(&hog, "ops-hub/probe").await {
        Err(status) => {
            ensure!(status.code() == Code::ResourceExhausted, "{status:?}");
            ensure!(
                status
                    .message()
                    .starts_with("principal hog: principal_max_streams limit 2 exceeded"),
                "{:?}",
                status.message()
            );
        }
        Ok(_) => bail!("a third stream of a principal limited to 2 was opened"),
    }
    // A Read is a stream too.
    let read = hog
        .read(proto::ReadRequest {
            stream: "ops-hub/probe".to_string(),
            ..Default::default()
        })
        .await;
    ensure!(
        matches!(&read, Err(ClientError::Status(s)) if s.code() == Code::ResourceExhausted),
        "{read:?}"
    );
    // Another principal is not affected.
    let others = subscribe(&other, "ci/build").await?;

    // Closing a stream frees its slot (once the server sees it closed).
    drop(first);
    let reopened = tokio::time::timeout(HANG, async {
        loop {
            match subscribe(&hog, "ops-hub/probe").await {
                Ok(stream) => return anyhow::Ok(stream),
                Err(status) if status.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(status) => bail!("{status:?}"),
            }
        }
    })
    .await??;
    drop((second, reopened, others));
    server.stop().await
}
