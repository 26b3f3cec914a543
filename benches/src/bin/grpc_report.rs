//! gRPC ingest over loopback, beside the in-process append rate measured in
//! the same run.
//!
//! `cargo run --release -p ledger-benches --features grpc --bin grpc_report [-- --quick]`
//!
//! - in-process: `Ledger::append` of the same batches from 8 threads;
//! - streaming: P producers (1, 8, 64), each with one `AppendStream`
//!   carrying batches of `BATCH` 256-byte events, `WINDOW` requests in
//!   flight per producer; ack latency is measured per request, from send to
//!   its response;
//! - unary at half load: 8 producers sending unary `Append` calls of
//!   `UNARY_BATCH` events, paced to half the 8-producer streaming rate.
//!
//! Every run uses a fresh ledger in a fresh temp dir, fsync on.
//!
//! `--peer [--events N] [--tsv FILE]` runs only the streaming rows with 1
//! and 8 producers, on more events (1 M, 200 k with `--quick`), for
//! `benches/pg/run.sh`, which sets them beside the PostgreSQL peer
//! (`pg_peer`) measured in the same run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use ledger_benches::{EventSource, GROUP_THREADS, ORIGIN, append_concurrently, bench_dir, open_ledger};
use ledger_client::{Client, proto};
use ledger_core::Event;
use ledger_server::ServerConfig;

const BATCH: usize = 100;
const WINDOW: usize = 8;
const UNARY_BATCH: usize = 10;
/// At least one unary request per producer, however short the run.
const MIN_UNARY_REQUESTS: usize = 8;

fn wire(event: &Event) -> proto::Event {
    proto::Event {
        id: event.id.to_string(),
        stream: event.stream.clone(),
        r#type: event.event_type.clone(),
        occurred_at: Some(ledger_client::timestamp(event.occurred_at)),
        payload: event.payload.clone(),
        content_type: String::new(),
        metadata: Some(proto::Metadata {
            correlation_id: event.metadata.correlation_id.clone(),
            causation_id: event.metadata.causation_id.clone(),
            trace_id: event.metadata.trace_id.clone(),
            extra: event
                .metadata
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        signature: None,
    }
}

fn wire_requests(source: &mut EventSource, count: usize, batch: usize) -> Vec<proto::AppendRequest> {
    (0..count)
        .map(|_| proto::AppendRequest {
            events: source.events(batch).iter().map(wire).collect(),
            ..Default::default()
        })
        .collect()
}

struct Server {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// The server gets a runtime of its own, as it would in its own process:
/// client tasks never sit in its run queues.
fn server_runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if RUNTIME.get().is_none() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("ledgerd-rt")
            .enable_all()
            .build()?;
        let _ = RUNTIME.set(runtime);
    }
    RUNTIME.get().context("server runtime")
}

async fn start_server() -> anyhow::Result<Server> {
    let dir = bench_dir()?;
    let mut config = ServerConfig::new(dir.path());
    config.ledger.origin = ORIGIN.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, addr) = tokio::sync::oneshot::channel();
    let task = server_runtime()?.spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let _ = bound.send(listener.local_addr()?);
        ledger_server::run(listener, config, async move {
            let _ = stopped.await;
        })
        .await?;
        anyhow::Ok(())
    });
    let url = format!("http://{}", addr.await?);
    for _ in 0..400 {
        if let Ok(client) = Client::connect(&url).await
            && client.info().await.is_ok()
        {
            return Ok(Server {
                url,
                stop,
                task,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("server did not start")
}

impl Server {
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

struct Outcome {
    events: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// P producers, one AppendStream each, all requests dealt round-robin.
async fn streaming(producers: usize, requests: Vec<proto::AppendRequest>) -> anyhow::Result<Outcome> {
    let server = start_server().await?;
    let client = Client::connect(&server.url).await?;
    let events: u64 = requests.iter().map(|r| r.events.len() as u64).sum();
    let shares = deal(requests, producers);
    let barrier = Arc::new(tokio::sync::Barrier::new(producers + 1));
    let mut tasks = Vec::new();
    for share in shares {
        let client = client.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let (sink, mut receipts) = client.append_stream(WINDOW).await?;
            let mut latency = histogram()?;
            let sent_at = Arc::new(std::sync::Mutex::new(VecDeque::new()));
            let n = share.len();
            barrier.wait().await;
            let sending = {
                let sent_at = Arc::clone(&sent_at);
                tokio::spawn(async move {
                    for request in share {
                        if let Ok(mut times) = sent_at.lock() {
                            times.push_back(Instant::now());
                        }
                        sink.send(request).await?;
                    }
                    sink.finish();
                    anyhow::Ok(())
                })
            };
            for _ in 0..n {
                receipts.next().await.context("stream ended early")??;
                let start = sent_at.lock().ok().and_then(|mut t| t.pop_front());
                if let Some(start) = start {
                    latency.record(start.elapsed().as_micros().max(1) as u64)?;
                }
            }
            sending.await??;
            anyhow::Ok(latency)
        }));
    }
    barrier.wait().await;
    finish(server, events, Instant::now(), tasks).await
}

type Producer = tokio::task::JoinHandle<anyhow::Result<Histogram<u64>>>;

/// Waits for the producers, merges their latencies, stops the server.
async fn finish(server: Server, events: u64, start: Instant, producers: Vec<Producer>) -> anyhow::Result<Outcome> {
    let mut latency_us = histogram()?;
    for producer in producers {
        latency_us.add(producer.await??)?;
    }
    let elapsed = start.elapsed();
    server.stop().await?;
    Ok(Outcome {
        events,
        elapsed,
        latency_us,
    })
}

/// Deals requests round-robin to `n` producers.
fn deal(requests: Vec<proto::AppendRequest>, n: usize) -> Vec<Vec<proto::AppendRequest>> {
    let mut shares: Vec<Vec<proto::AppendRequest>> = (0..n).map(|_| Vec::new()).collect();
    for (i, request) in requests.into_iter().enumerate() {
        shares[i % n].push(request);
    }
    shares
}

/// 8 producers of unary appends, paced (open loop) to `rate` events/s in
/// total.
async fn unary_paced(rate: f64, requests: Vec<proto::AppendRequest>) -> anyhow::Result<Outcome> {
    let server = start_server().await?;
    let client = Client::connect(&server.url).await?;
    let events: u64 = requests.iter().map(|r| r.events.len() as u64).sum();
    let per_request = requests.first().map_or(1, |r| r.events.len());
    let start = Instant::now();
    let tasks = paced(rate, per_request, requests, move |request| {
        let client = client.clone();
        async move {
            client.append(request).await?;
            Ok(())
        }
    });
    finish(server, events, start, tasks).await
}

/// The gRPC round-trip floor: `GetLedgerInfo` (no disk, no ledger work) at
/// the request rate unary appends of `per_request` events make at `rate`.
async fn info_paced(rate: f64, per_request: usize, requests: usize) -> anyhow::Result<Outcome> {
    let server = start_server().await?;
    let client = Client::connect(&server.url).await?;
    let start = Instant::now();
    let tasks = paced(rate, per_request, vec![(); requests], move |()| {
        let client = client.clone();
        async move {
            client.info().await?;
            Ok(())
        }
    });
    finish(server, (requests * per_request) as u64, start, tasks).await
}

/// The ledger without gRPC: `Ledger::append_async` from the same paced
/// producers, on a fresh ledger.
async fn in_process_paced(
    rate: f64,
    source: &mut EventSource,
    requests: usize,
    batch: usize,
) -> anyhow::Result<Outcome> {
    let dir = bench_dir()?;
    let ledger = Arc::new(open_ledger(dir.path())?);
    let start = Instant::now();
    let calls = source.requests(requests, batch);
    let tasks = {
        let ledger = Arc::clone(&ledger);
        paced(rate, batch, calls, move |request| {
            let ledger = Arc::clone(&ledger);
            async move {
                ledger.append_async(request).await?;
                Ok(())
            }
        })
    };
    let mut latency_us = histogram()?;
    for task in tasks {
        latency_us.add(task.await??)?;
    }
    let elapsed = start.elapsed();
    let ledger = Arc::into_inner(ledger).context("ledger still shared")?;
    ledger.close()?;
    Ok(Outcome {
        events: (requests * batch) as u64,
        elapsed,
        latency_us,
    })
}

/// Eight producers making `call`s of `per_request` events each, paced
/// (open loop) to `rate` events/s in total; each returns its latencies.
fn paced<T, F, Fut>(rate: f64, per_request: usize, items: Vec<T>, call: F) -> Vec<Producer>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    const PRODUCERS: usize = 8;
    let interval = Duration::from_secs_f64(per_request as f64 * PRODUCERS as f64 / rate);
    let mut shares: Vec<Vec<T>> = (0..PRODUCERS).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        shares[i % PRODUCERS].push(item);
    }
    let mut tasks = Vec::new();
    for (p, share) in shares.into_iter().enumerate() {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram()?;
            // Stagger the producers across one interval.
            tokio::time::sleep(interval.mul_f64(p as f64 / PRODUCERS as f64)).await;
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Open loop: a request leaves at its tick whether or not the
            // previous one is answered, so a slow answer cannot lower the
            // offered load (no coordinated omission).
            let mut calls = tokio::task::JoinSet::new();
            for item in share {
                ticks.tick().await;
                let call = call.clone();
                calls.spawn(async move {
                    let sent = Instant::now();
                    call(item).await?;
                    anyhow::Ok(sent.elapsed())
                });
            }
            while let Some(done) = calls.join_next().await {
                latency.record(done??.as_micros().max(1) as u64)?;
            }
            anyhow::Ok(latency)
        }));
    }
    tasks
}

fn k(rate: f64) -> String {
    format!("{:.1}k", rate / 1000.0)
}

/// `--unary`: only the unary scenario at 25k events/s, three times, each
/// beside the same paced load on the ledger in-process and the gRPC
/// round-trip floor (`GetLedgerInfo`), to split the latency between ledger,
/// transport and server plumbing.
fn unary_only() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut source = EventSource::default();
    let rate = 25_000.0;
    println!(
        "8 producers, batches of {UNARY_BATCH}, open loop at 25k events/s ({} requests/s)",
        rate as usize / UNARY_BATCH
    );
    println!();
    println!("| run | workload | events/s | ack p50 ms | ack p90 ms | ack p99 ms | ack max ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let row = |run: usize, what: &str, outcome: &Outcome| {
        println!(
            "| {run} | {what} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            k(outcome.rate()),
            outcome.ms(0.5),
            outcome.ms(0.9),
            outcome.ms(0.99),
            outcome.latency_us.max() as f64 / 1000.0
        );
    };
    for run in 1..=3 {
        let count = ((rate * 8.0) as usize / UNARY_BATCH).max(MIN_UNARY_REQUESTS);
        let in_process = runtime.block_on(in_process_paced(rate, &mut source, count, UNARY_BATCH))?;
        row(run, "in-process `append_async`", &in_process);
        let floor = runtime.block_on(info_paced(rate, UNARY_BATCH, count))?;
        row(run, "gRPC `GetLedgerInfo` (round-trip floor)", &floor);
        let unary = runtime.block_on(unary_paced(rate, wire_requests(&mut source, count, UNARY_BATCH)))?;
        row(run, "gRPC unary `Append`", &unary);
    }
    Ok(())
}

/// The value after `flag` on the command line, if any.
fn flag_value(flag: &str) -> anyhow::Result<Option<String>> {
    let mut args = std::env::args().skip_while(|a| a != flag);
    match args.next() {
        None => Ok(None),
        Some(_) => Ok(Some(args.next().with_context(|| format!("{flag} needs a value"))?)),
    }
}

/// `--peer`: AppendStream with 1 and 8 producers, batches of [`BATCH`], as
/// a table and, with `--tsv FILE`, as tab-separated lines appended to FILE
/// in `pg_peer`'s format (`ours`, workload, producers, events per request,
/// events, seconds, events/s, ack p50 ms, ack p99 ms).
fn peer_rows(quick: bool) -> anyhow::Result<()> {
    let events: usize = match flag_value("--events")? {
        Some(n) => n.parse().context("--events")?,
        None if quick => 200_000,
        None => 1_000_000,
    };
    let requests = (events / BATCH).max(8);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut source = EventSource::default();
    println!(
        "gRPC ingest over loopback: {} events of 256 B per workload, batches of {BATCH}, {WINDOW} requests in flight per producer; fsync on",
        requests * BATCH
    );
    println!();
    println!("| workload | events/s | ack p50 ms | ack p99 ms | ack max ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut tsv = String::new();
    for producers in [1usize, 8] {
        let outcome = runtime.block_on(streaming(producers, wire_requests(&mut source, requests, BATCH)))?;
        println!(
            "| gRPC AppendStream, {producers} producer(s), batch {BATCH} | {} | {:.2} | {:.2} | {:.2} |",
            k(outcome.rate()),
            outcome.ms(0.5),
            outcome.ms(0.99),
            outcome.latency_us.max() as f64 / 1000.0
        );
        tsv.push_str(&format!(
            "ours\tstreaming\t{producers}\t{BATCH}\t{}\t{:.3}\t{:.1}\t{:.3}\t{:.3}\n",
            outcome.events,
            outcome.elapsed.as_secs_f64(),
            outcome.rate(),
            outcome.ms(0.5),
            outcome.ms(0.99)
        ));
    }
    if let Some(path) = flag_value("--tsv")? {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {path}"))?;
        file.write_all(tsv.as_bytes())?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--unary") {
        return unary_only();
    }
    if std::env::args().any(|a| a == "--peer") {
        return peer_rows(quick);
    }
    let events: usize = if quick { 20_000 } else { 200_000 };
    let requests = events / BATCH;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut source = EventSource::default();

    println!(
        "gRPC ingest over loopback: {events} events of 256 B per workload, batches of {BATCH}, {WINDOW} requests in flight per producer; fsync on"
    );
    println!();

    let in_process = {
        let dir = bench_dir()?;
        let ledger = open_ledger(dir.path())?;
        let elapsed = append_concurrently(&ledger, source.requests(requests, BATCH))?;
        ledger.close()?;
        events as f64 / elapsed.as_secs_f64()
    };
    println!("| workload | events/s | vs in-process | ack p50 ms | ack p99 ms | ack max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| in-process `Ledger::append`, {GROUP_THREADS} threads, batch {BATCH} | {} | 100 % | – | – | – |",
        k(in_process)
    );
    let mut rate_8 = None;
    for producers in [1usize, 8, 64] {
        let wire_requests = wire_requests(&mut source, requests, BATCH);
        let outcome = runtime.block_on(streaming(producers, wire_requests))?;
        if producers == 8 {
            rate_8 = Some(outcome.rate());
        }
        println!(
            "| gRPC AppendStream, {producers} producer(s), batch {BATCH} | {} | {:.0} % | {:.2} | {:.2} | {:.2} |",
            k(outcome.rate()),
            100.0 * outcome.rate() / in_process,
            outcome.ms(0.5),
            outcome.ms(0.99),
            outcome.latency_us.max() as f64 / 1000.0
        );
    }
    let half = rate_8.context("no 8-producer run")? / 2.0;
    let unary_seconds = if quick { 2.0 } else { 8.0 };
    // Half the 50k target, then half of what streaming reached.
    for (rate, what) in [
        (25_000.0, "half the 50k target"),
        (half, "half the 8-producer streaming rate"),
    ] {
        let count = ((rate * unary_seconds) as usize / UNARY_BATCH).max(MIN_UNARY_REQUESTS);
        let unary = runtime.block_on(unary_paced(rate, wire_requests(&mut source, count, UNARY_BATCH)))?;
        println!(
            "| gRPC unary Append, 8 producers, batch {UNARY_BATCH}, open loop at {} events/s ({what}) | {} | {:.0} % | {:.2} | {:.2} | {:.2} |",
            k(rate),
            k(unary.rate()),
            100.0 * unary.rate() / in_process,
            unary.ms(0.5),
            unary.ms(0.99),
            unary.latency_us.max() as f64 / 1000.0
        );
    }
    Ok(())
}
