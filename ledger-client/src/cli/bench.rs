//! `ledger bench`: a load generator against a running `ledgerd`, or one it
//! starts on a temporary directory (the `ledgerd` beside this binary).
//!
//! Producers stream batches of events (`AppendStream`, a window of requests
//! in flight each) or, with `--unary`, send `Append` calls, optionally
//! paced to a total rate and optionally producer-signed. Subscribers each
//! follow one stream of the run, so `--subscribers 1000 --rate 10000` is
//! the fan-out scenario: a thousand live subscriptions sharing 10 k
//! events/s. Every payload carries its send time, so a subscriber measures
//! append→delivery latency without any clock but this machine's.
//!
//! Ack latency is per request, from the moment it is handed to the
//! transport to its response, in an HDR histogram. The raw generated client
//! is used (no client-side receipt checks), so the figures are the
//! server's and the wire's. With a server it started, the report adds the
//! server's peak RSS and the data directory's bytes per event, measured
//! after a graceful stop (SIGTERM): a running server keeps up to
//! `preallocate_bytes` of synced zeros at the end of its tail segment,
//! which it cuts off when it stops.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_stream::StreamExt as _;

use crate::{Client, ProducerKey, proto};

/// `ledger bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent producers.
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Requests in flight per producer (streaming).
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Seconds to run (unless --count ends it first).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many events in all.
    #[arg(long)]
    count: Option<u64>,
    /// Total events per second, spread over the producers (0: as fast as
    /// the server takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Unary `Append` calls instead of `AppendStream`.
    #[arg(long)]
    unary: bool,
    /// Live subscribers, each following one stream of the run.
    #[arg(long, default_value_t = 0)]
    subscribers: usize,
    /// Sign every event with this producer key file (needs --key-id and a
    /// key registered to the caller).
    #[arg(long, requires = "key_id", conflicts_with = "signed")]
    sign_key: Option<PathBuf>,
    /// Sign every event with a fresh producer key. Without --server only:
    /// the started ledgerd gets a principal (`ledgerd auth add-principal`)
    /// to which the key is registered through the admin service.
    #[arg(long, conflicts_with = "sign_key")]
    signed: bool,
    /// The producer key's id.
    #[arg(long, requires = "sign_key")]
    key_id: Option<String>,
    /// With --signed or --sign-key, and --count: build and sign every
    /// request before the clock starts, so that the measured run is the
    /// server verifying, not this client signing on the same cores.
    /// Payload send times are then stale, so no subscribers.
    #[arg(long, requires = "count")]
    presign: bool,
    /// Without --server: the ledgerd to start [default: the one beside this
    /// binary].
    #[arg(long, env = "LEDGERD_BIN")]
    ledgerd: Option<PathBuf>,
}

/// A `ledgerd` this command started, and its data directory.
struct Started {
    child: std::process::Child,
    url: String,
    data: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Started {
    /// CPU seconds the server has used so far (user + system).
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        cpu_seconds_of_stat(&stat)
    }

    /// Peak and current resident set of the server, in bytes.
    fn rss(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// Stops the server as an operator would (SIGTERM through `kill`) and
    /// waits up to `timeout` for it to exit; false if it did not.
    async fn stop(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + timeout;
        while sent && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn disk_bytes(&self) -> u64 {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.data)
    }
}

/// User + system CPU seconds from a `/proc/<pid>/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from its closing parenthesis; utime and stime are fields 14 and 15, in
/// clock ticks of 1/100 s (Linux's `USER_HZ` on every architecture we run).
fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The principal a `--signed` run appends as.
const BENCH_PRINCIPAL: &str = "bench";

/// Starts ledgerd on a fresh directory; with `principal`, first adds a
/// principal holding `*:admin` and returns its API key too.
fn start_ledgerd(path: Option<&std::path::Path>, principal: bool) -> anyhow::Result<(Started, Option<String>)> {
    use std::io::BufRead as _;
    let ledgerd = super::demo::find_ledgerd(path)?;
    let data = std::env::temp_dir().join(format!("ledger-bench-{}", uuid::Uuid::now_v7()));
    let api_key = if principal {
        let out = std::process::Command::new(&ledgerd)
            .args([
                "auth",
                "add-principal",
                "--name",
                BENCH_PRINCIPAL,
                "--grant",
                "*:admin",
                "--data",
            ])
            .arg(&data)
            .output()
            .with_context(|| format!("running {} auth add-principal", ledgerd.display()))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&data);
            bail!(
                "ledgerd auth add-principal: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Some(String::from_utf8(out.stdout)?.trim().to_string())
    } else {
        None
    };
    let mut child = std::process::Command::new(&ledgerd)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("LEDGER_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", ledgerd.display()))?;
    let stdout = child.stdout.take().context("ledgerd without stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            bail!("{} exited before listening", ledgerd.display());
        };
        if let Some(addr) = line?.strip_prefix("ledgerd listening on ") {
            break addr.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let started = Started {
        child,
        url: format!("http://{addr}"),
        data,
    };
    Ok((started, api_key))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One request of `batch` events to `stream`.
fn request(
    stream: &str,
    batch: usize,
    payload_bytes: usize,
    key: Option<&ProducerKey>,
) -> anyhow::Result<proto::AppendRequest> {
    let events = (0..batch)
        .map(|_| event(stream, payload_bytes, key))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(proto::AppendRequest {
        events,
        ..Default::default()
    })
}

/// One event of the run: its payload carries the send time.
fn event(stream: &str, payload_bytes: usize, key: Option<&ProducerKey>) -> anyhow::Result<proto::Event> {
    let head = format!("{{\"t\":{},\"pad\":\"", now_ns());
    let pad = payload_bytes.saturating_sub(head.len() + 2);
    let mut payload = head.into_bytes();
    payload.resize(payload.len() + pad, b'x');
    payload.extend_from_slice(b"\"}");
    let mut event = crate::event(stream, "bench.event", payload);
    if let Some(key) = key {
        key.sign(&mut event)?;
    }
    Ok(event)
}

/// Quantiles reported in `--json` as `[quantile, ms]` pairs, so that a
/// report can draw a latency percentile curve (`benches/report/render.py`)
/// rather than only the p50/p95/p99 the summary fields carry.
const PERCENTILES: [f64; 12] = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0];

/// `[quantile, ms]` for each of [`PERCENTILES`]; empty with no samples.
fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return json!([]);
    }
    PERCENTILES
        .iter()
        .map(|&q| json!([q, h.value_at_quantile(q) as f64 / 1000.0]))
        .collect()
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")
}

/// What every task adds to.
struct Shared {
    acks: Mutex<Histogram<u64>>,
    /// Recorded per delivery (subscribers are aborted at the end, so they
    /// cannot hand a histogram of their own back).
    delivery: std::sync::Mutex<Histogram<u64>>,
    appended: AtomicU64,
    delivered: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// Runs `ledger bench` with `client` (connected as the command line says),
/// or against a ledgerd it starts when there is none.
pub async fn run(client: Option<Client>, args: BenchArgs, json: bool) -> anyhow::Result<()> {
    if args.producers == 0 || args.batch == 0 || args.window == 0 {
        bail!("--producers, --batch and --window: must be at least 1");
    }
    if !args.duration.is_finite() || args.duration <= 0.0 {
        bail!("--duration: must be greater than 0");
    }
    if args.presign && !(args.signed || args.sign_key.is_some()) {
        bail!("--presign: needs --signed or --sign-key (it pre-signs the events)");
    }
    if args.presign && args.subscribers > 0 {
        bail!("--presign: not with --subscribers (delivery latency needs send times stamped at send)");
    }
    let (client, mut started) = match client {
        Some(_) if args.signed => bail!("--signed: only without --server (use --sign-key and --key-id with one)"),
        Some(client) => (client, None),
        None => {
            let (path, signed) = (args.ledgerd.clone(), args.signed);
            let (started, api_key) =
                tokio::task::spawn_blocking(move || start_ledgerd(path.as_deref(), signed)).await??;
            let client = Client::connect(&started.url).await?;
            let client = match api_key {
                Some(key) => client.with_api_key(crate::ApiKey::new(&key)?),
                None => client,
            };
            (client, Some(started))
        }
    };
    let url = started
        .as_ref()
        .map_or_else(|| "(--server)".to_string(), |s| s.url.clone());
    let key = match (&args.sign_key, &args.key_id) {
        (Some(path), Some(id)) => Some(Arc::new(ProducerKey::from_file(id.clone(), path)?)),
        _ if args.signed => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random number generator: {e}"))?;
            let key = ProducerKey::from_seed("bench-producer", seed);
            client
                .admin()
                .add_producer_key(proto::AddProducerKeyRequest {
                    name: BENCH_PRINCIPAL.to_string(),
                    key_id: key.key_id().to_string(),
                    public_key: key.public_key().to_vec(),
                })
                .await
                .context("registering the bench producer key")?;
            Some(Arc::new(key))
        }
        _ => None,
    };
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let streams = args.subscribers.max(args.producers);
    let stream_name = |k: usize| format!("bench/{run_id}-{k}");
    let shared = Arc::new(Shared {
        acks: Mutex::new(histogram()?),
        delivery: std::sync::Mutex::new(histogram()?),
        appended: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    // Subscribers first, so they see every event.
    let mut subscriber_tasks = Vec::new();
    for k in 0..args.subscribers {
        let (client, shared, stream) = (client.clone(), Arc::clone(&shared), stream_name(k));
        subscriber_tasks.push(tokio::spawn(async move {
            let mut records = Box::pin(client.subscribe(proto::SubscribeRequest {
                stream,
                ..Default::default()
            }));
            while let Some(record) = records.next().await {
                let record = record?;
                let sent = record
                    .event
                    .as_ref()
                    .and_then(|e| serde_json::from_slice::<serde_json::Value>(&e.payload).ok())
                    .and_then(|v| v["t"].as_u64());
                if let Some(sent) = sent
                    && let Ok(mut delivery) = shared.delivery.lock()
                {
                    delivery.saturating_record((now_ns().saturating_sub(sent) / 1000).max(1));
                }
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    if args.subscribers > 0 {
        // Let the subscriptions open before the first event.
        tokio::time::sleep(Duration::from_millis(200 + args.subscribers as u64)).await;
    }

    let per_producer_rate = (args.rate > 0).then(|| args.rate as f64 / args.producers as f64);
    let per_producer_count = args.count.map(|c| c.div_ceil(args.producers as u64));
    let producer_streams =
        |p: usize| -> Vec<String> { (p..streams).step_by(args.producers).map(stream_name).collect() };
    // --presign: every producer's requests, built and signed on the
    // blocking pool (all cores) before the clock starts.
    let mut presigned: Vec<Option<VecDeque<proto::AppendRequest>>> = (0..args.producers).map(|_| None).collect();
    if let (true, Some(count)) = (args.presign, per_producer_count) {
        let presign_begin = Instant::now();
        let mut jobs = Vec::new();
        for p in 0..args.producers {
            let (streams, key, batch, payload_bytes) =
                (producer_streams(p), key.clone(), args.batch, args.payload_bytes);
            jobs.push(tokio::task::spawn_blocking(move || {
                let requests = count.div_ceil(batch as u64) as usize;
                (0..requests)
                    .map(|turn| request(&streams[turn % streams.len()], batch, payload_bytes, key.as_deref()))
                    .collect::<anyhow::Result<VecDeque<_>>>()
            }));
        }
        for (p, job) in jobs.into_iter().enumerate() {
            presigned[p] = Some(job.await??);
        }
        if !json {
            eprintln!(
                "presigned {} requests in {:.1} s",
                presigned.iter().flatten().map(VecDeque::len).sum::<usize>(),
                presign_begin.elapsed().as_secs_f64()
            );
        }
    }

    let cpu_before = started.as_ref().and_then(Started::cpu_seconds);
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs_f64(args.duration);
    let mut producers = Vec::new();
    for (p, mut presigned) in presigned.into_iter().enumerate() {
        let raw = client.raw();
        let shared = Arc::clone(&shared);
        let key = key.clone();
        let streams = producer_streams(p);
        let (batch, window, payload_bytes, unary) = (args.batch, args.window, args.payload_bytes, args.unary);
        producers.push(tokio::spawn(async move {
            let pacing = per_producer_rate.map(|rate| Duration::from_secs_f64(batch as f64 / rate));
            let mut next_send = Instant::now();
            let mut sent_events = 0u64;
            let mut local = histogram()?;
            let mut turn = 0usize;
            let mut make = |turn: usize| -> anyhow::Result<proto::AppendRequest> {
                match presigned.as_mut() {
                    Some(ready) => ready.pop_front().context("--presign: ran out of presigned requests"),
                    None => request(&streams[turn % streams.len()], batch, payload_bytes, key.as_deref()),
                }
            };
            let more = |sent: u64| Instant::now() < deadline && per_producer_count.is_none_or(|c| sent < c);
            if unary {
                let mut raw = raw;
                while more(sent_events) {
                    if let Some(pace) = pacing {
                        tokio::time::sleep_until(next_send.into()).await;
                        next_send += pace;
                    }
                    let request = make(turn)?;
                    turn += 1;
                    let at = Instant::now();
                    match raw.append(request).await {
                        Ok(_) => {
                            local.saturating_record(at.elapsed().as_micros().max(1) as u64);
                            shared.appended.fetch_add(batch as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent_events += batch as u64;
                }
            } else {
                let (tx, rx) = tokio::sync::mpsc::channel::<proto::AppendRequest>(window);
                let in_flight = Arc::new(std::sync::Mutex::new(VecDeque::<Instant>::new()));
                let mut raw = raw;
                let mut responses = raw
                    .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map({
                        let in_flight = Arc::clone(&in_flight);
                        move |request| {
                            if let Ok(mut q) = in_flight.lock() {
                                q.push_back(Instant::now());
                            }
                            request
                        }
                    }))
                    .await?
                    .into_inner();
                let permits = Arc::new(tokio::sync::Semaphore::new(window));
                let reader = {
                    let (shared, permits, in_flight) =
                        (Arc::clone(&shared), Arc::clone(&permits), Arc::clone(&in_flight));
                    tokio::spawn(async move {
                        let mut local = histogram()?;
                        while let Some(response) = responses.message().await? {
                            let at = in_flight.lock().ok().and_then(|mut q| q.pop_front());
                            if let Some(at) = at {
                                local.saturating_record(at.elapsed().as_micros().max(1) as u64);
                            }
                            match response.error {
                                Some(_) => shared.errors.fetch_add(1, Ordering::Relaxed),
                                None => shared
                                    .appended
                                    .fetch_add(response.receipts.len() as u64, Ordering::Relaxed),
                            };
                            permits.add_permits(1);
                        }
                        anyhow::Ok(local)
                    })
                };
                while more(sent_events) {
                    if let Some(pace) = pacing {
                        tokio::time::sleep_until(next_send.into()).await;
                        next_send += pace;
                    }
                    permits.acquire().await?.forget();
                    let request = make(turn)?;
                    turn += 1;
                    if tx.send(request).await.is_err() {
                        break;
                    }
                    sent_events += batch as u64;
                }
                drop(tx);
                local = reader.await??;
            }
            shared.acks.lock().await.add(&local).ok();
            anyhow::Ok(())
        }));
    }

    let progress = (!json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let ticker = progress.clone().map(|bar| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let secs = begin.elapsed().as_secs_f64();
                let n = shared.appended.load(Ordering::Relaxed);
                bar.set_message(format!(
                    "{n} events appended, {:.0}/s, {} delivered, {:.1} s",
                    n as f64 / secs,
                    shared.delivered.load(Ordering::Relaxed),
                    secs
                ));
                bar.tick();
            }
        })
    });
    let mut failure = None;
    for producer in producers {
        if let Err(err) = producer.await.map_err(anyhow::Error::from).and_then(|r| r) {
            failure.get_or_insert(err);
        }
    }
    let elapsed = begin.elapsed().as_secs_f64();
    let server_cpu = match (cpu_before, started.as_ref().and_then(Started::cpu_seconds)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    // Give subscribers a moment to receive the tail, then stop them.
    if !subscriber_tasks.is_empty() {
        let appended = shared.appended.load(Ordering::Relaxed);
        let wait_until = Instant::now() + Duration::from_secs(10);
        while shared.delivered.load(Ordering::Relaxed) < appended && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shared.stop.store(true, Ordering::Relaxed);
        for task in subscriber_tasks {
            task.abort();
        }
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(err) = failure {
        return Err(err.context("a producer failed"));
    }

    let appended = shared.appended.load(Ordering::Relaxed);
    let acks = shared.acks.lock().await;
    let delivery = shared
        .delivery
        .lock()
        .map_err(|_| anyhow::anyhow!("a subscriber panicked"))?
        .clone();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let rss = started.as_ref().and_then(Started::rss);
    let mut stopped = false;
    if let Some(server) = started.as_mut() {
        stopped = server.stop(Duration::from_secs(30)).await;
        if !stopped {
            eprintln!("the started ledgerd did not stop within 30 s; disk bytes include its preallocated zeros");
        }
    }
    let disk = started.as_ref().map(Started::disk_bytes);
    let summary = json!({
        "server": url,
        "mode": if args.unary { "unary" } else { "stream" },
        "producers": args.producers,
        "batch": args.batch,
        "window": args.window,
        "payload_bytes": args.payload_bytes,
        "signed": key.is_some(),
        "target_rate": args.rate,
        "subscribers": args.subscribers,
        "seconds": elapsed,
        "events": appended,
        "events_per_sec": appended as f64 / elapsed,
        "errors": shared.errors.load(Ordering::Relaxed),
        "ack_ms": {"p50": ms(&acks, 0.5), "p95": ms(&acks, 0.95), "p99": ms(&acks, 0.99), "max": acks.max() as f64 / 1000.0, "count": acks.len()},
        "delivery_ms": (args.subscribers > 0).then(|| json!({"p50": ms(&delivery, 0.5), "p95": ms(&delivery, 0.95), "p99": ms(&delivery, 0.99), "max": delivery.max() as f64 / 1000.0, "count": delivery.len()})),
        "presigned": args.presign,
        "server_cpu_seconds": server_cpu,
        "server_cores_busy": server_cpu.map(|cpu| cpu / elapsed),
        "events_per_server_cpu_second": server_cpu.filter(|&cpu| cpu > 0.0).map(|cpu| appended as f64 / cpu),
        "server_rss_bytes": rss.map(|(peak, now)| json!({"peak": peak, "now": now})),
        "disk_bytes_per_event": disk.filter(|_| appended > 0).map(|d| d as f64 / appended as f64),
        "disk_measured_after_stop": stopped,
        "ack_percentiles_ms": percentiles(&acks),
        "delivery_percentiles_ms": (args.subscribers > 0).then(|| percentiles(&delivery)),
    });
    if json {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "{} producers ({}, batch {}, {} B payloads{}{}): {appended} events in {elapsed:.1} s = {:.0} events/s, {} errors",
        args.producers,
        if args.unary { "unary" } else { "streaming" },
        args.batch,
        args.payload_bytes,
        if key.is_some() { ", signed" } else { "" },
        if args.rate > 0 {
            format!(", paced to {}/s", args.rate)
        } else {
            String::new()
        },
        appended as f64 / elapsed,
        shared.errors.load(Ordering::Relaxed),
    );
    println!(
        "ack latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  ({} requests)",
        ms(&acks, 0.5),
        ms(&acks, 0.95),
        ms(&acks, 0.99),
        acks.max() as f64 / 1000.0,
        acks.len()
    );
    if args.subscribers > 0 {
        println!(
            "{} subscribers, append→delivery ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  ({} deliveries)",
            args.subscribers,
            ms(&delivery, 0.5),
            ms(&delivery, 0.95),
            ms(&delivery, 0.99),
            delivery.max() as f64 / 1000.0,
            delivery.len()
        );
    }
    if let Some(cpu) = server_cpu {
        println!(
            "server CPU: {cpu:.1} s ({:.2} cores busy), {:.0} events per server CPU second",
            cpu / elapsed,
            appended as f64 / cpu.max(f64::MIN_POSITIVE)
        );
    }
    if let Some((peak, now)) = rss {
        println!("server RSS: peak {} MiB, now {} MiB", peak >> 20, now >> 20);
    }
    if let Some(bytes) = disk.filter(|_| appended > 0) {
        println!(
            "disk: {:.0} bytes per event (data directory)",
            bytes as f64 / appended as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_seconds_of_stat;

    #[test]
    fn cpu_seconds_count_fields_after_the_command_name() {
        // Fields 14 and 15 (utime 250, stime 75 ticks) after a command name
        // holding a space and a parenthesis.
        let stat = "4242 (led gerd) x) S 1 4242 4242 0 -1 4194560 3 0 0 0 250 75 0 0 20 0 18 0 100 1000 200";
        assert_eq!(cpu_seconds_of_stat(stat), Some(3.25));
        assert_eq!(cpu_seconds_of_stat("4242 (ledgerd) S 1 2"), None, "a truncated line");
        assert_eq!(cpu_seconds_of_stat("no parenthesis"), None);
    }
}
