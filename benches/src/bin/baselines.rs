//! Physical baselines the one-command report (`benches/run.sh`) divides our
//! figures by, measured in the same run on the same machine, over the same
//! bytes the ledger handles. Prints one JSON object on stdout.
//!
//! ```text
//! cargo run --release -p ledger-benches --bin baselines [-- --quick]
//! ```
//!
//! Why each one:
//!
//! - **ed25519** `sign`, `verify_strict` and `verify_batch` (batches of 64
//!   and 1024), one thread, over the `Event::signing_bytes` of the bench's
//!   health events: signed ingest can go no faster than the server can
//!   batch-verify per core times the cores it has; beside `verify_batch`,
//!   the server's own `ledger_core::producer::verify_batch` (one term per
//!   distinct key, so about half the curve work for one producer's batch);
//! - **raw append + fdatasync at batch 100**: the shape `ledger bench`
//!   streams (requests of 100 events), with the same framed bytes as the
//!   `report` binary's raw baseline (batches 1/64/1024 are there), idle and
//!   with one core busy (see `BusyCore`);
//! - **sled**: a plain `sled::Tree` insert loop with the events' 16-byte
//!   ids as keys and their 256-byte payloads as values, one insert at a
//!   time and in batches of 1024 (`apply_batch`), with one `flush` at the
//!   end, and batched with a `flush` per batch (durable per batch, like an
//!   append). The ledger's index and projections live in sled, so this is
//!   what an "just put it in sled" design would get.
//!
//! Every rate is the median of `--runs` runs (default 3; `--quick`: 1 run
//! and a tenth of the counts), with min and max beside it.

use std::io;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use ledger_benches::{BusyCore, EventSource, PAYLOAD_BYTES, RawLog, bench_dir, raw_append_all, raw_frames};
use serde_json::{Value, json};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Seed of the producer key the signatures are made with.
const PRODUCER_SEED: [u8; 32] = [11; 32];
/// Events per request in `ledger bench` (its `--batch` default).
const GRPC_BATCH: usize = 100;
/// Events per `apply_batch` in the batched sled baselines.
const SLED_BATCH: usize = 1024;

fn main() -> AnyResult<()> {
    let mut runs = 3usize;
    let mut scale = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = ledger_benches::positive_arg(args.next(), "--runs")?;
            }
            "--quick" => {
                scale = 10;
                runs = 1;
            }
            other => return Err(io::Error::other(format!("unknown argument {other:?}")).into()),
        }
    }

    eprintln!("baselines: ed25519…");
    let ed25519 = ed25519_rates(runs, 20_000 / scale)?;
    eprintln!("baselines: raw append + fdatasync at batch {GRPC_BATCH}…");
    let raw = raw_rates(runs, 300 / scale)?;
    eprintln!("baselines: sled…");
    let sled = sled_rates(runs, 200_000 / scale)?;
    let out = json!({
        "runs": runs,
        "payload_bytes": PAYLOAD_BYTES,
        "ed25519": ed25519,
        "raw_append": raw,
        "sled": sled,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Median, min and max of `rates`, as JSON.
fn stats(mut rates: Vec<f64>) -> Value {
    rates.sort_by(f64::total_cmp);
    json!({
        "median": rates[rates.len() / 2],
        "min": rates[0],
        "max": rates[rates.len() - 1],
    })
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Runs `f` `runs` times; `count` items per run over each run's time.
fn rates(runs: usize, count: usize, mut f: impl FnMut() -> AnyResult<()>) -> AnyResult<Value> {
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        out.push(per_second(count, start.elapsed()));
    }
    Ok(stats(out))
}

fn ed25519_rates(runs: usize, count: usize) -> AnyResult<Value> {
    let key = SigningKey::from_bytes(&PRODUCER_SEED);
    let public: VerifyingKey = key.verifying_key();
    let messages: Vec<Vec<u8>> = EventSource::default()
        .events(count)
        .iter()
        .map(|e| e.signing_bytes())
        .collect();
    let message_bytes = messages.iter().map(Vec::len).sum::<usize>() / count;
    let mut signatures: Vec<Signature> = Vec::with_capacity(count);
    let sign = rates(runs, count, || {
        signatures = messages.iter().map(|m| key.sign(m)).collect();
        Ok(())
    })?;
    let verify = rates(runs, count, || {
        for (message, signature) in messages.iter().zip(&signatures) {
            public.verify_strict(message, signature)?;
        }
        Ok(())
    })?;
    let mut batch = serde_json::Map::new();
    let mut grouped = serde_json::Map::new();
    for size in [64usize, 1024] {
        let whole = count - count % size;
        let keys = vec![public; size];
        let rate = rates(runs, whole, || {
            for (ms, sigs) in messages[..whole].chunks(size).zip(signatures[..whole].chunks(size)) {
                let ms: Vec<&[u8]> = ms.iter().map(Vec::as_slice).collect();
                ed25519_dalek::verify_batch(&ms, sigs, &keys)?;
            }
            Ok(())
        })?;
        batch.insert(size.to_string(), rate);
        // The server's own batch verification: one term per distinct key.
        let rate = rates(runs, whole, || {
            for (ms, sigs) in messages[..whole].chunks(size).zip(signatures[..whole].chunks(size)) {
                let ms: Vec<&[u8]> = ms.iter().map(Vec::as_slice).collect();
                if !ledger_core::producer::verify_batch(&ms, sigs, &keys) {
                    return Err("ledger_core::producer::verify_batch refused valid signatures".into());
                }
            }
            Ok(())
        })?;
        grouped.insert(size.to_string(), rate);
    }
    Ok(json!({
        "threads": 1,
        "signatures": count,
        "message_bytes": message_bytes,
        "sign_per_s": sign,
        "verify_per_s": verify,
        "verify_batch_per_s": batch,
        "verify_batch_grouped_per_s": grouped,
    }))
}

fn raw_rates(runs: usize, batches: usize) -> AnyResult<Value> {
    let frames = raw_frames(&EventSource::default().events(GRPC_BATCH));
    let mut out = serde_json::Map::new();
    for busy in [false, true] {
        let mut rates = Vec::with_capacity(runs);
        for _ in 0..runs {
            let _spinner = busy.then(BusyCore::start);
            let dir = bench_dir()?;
            let mut raw = RawLog::create(dir.path())?;
            let elapsed = raw_append_all(&mut raw, &frames, batches as u64)?;
            rates.push(per_second(batches * GRPC_BATCH, elapsed));
        }
        out.insert(if busy { "busy" } else { "idle" }.to_string(), stats(rates));
    }
    Ok(json!({
        "batch": GRPC_BATCH,
        "events": batches * GRPC_BATCH,
        "bytes_per_event": frames.len() / GRPC_BATCH,
        "events_per_s": out,
    }))
}

/// How the sled baseline writes.
#[derive(Clone, Copy)]
enum SledMode {
    /// `insert` per event, one `flush` at the end.
    Unbatched,
    /// `apply_batch` of [`SLED_BATCH`], one `flush` at the end.
    Batched,
    /// `apply_batch` of [`SLED_BATCH`] and a `flush` after each.
    BatchedFlushed,
}

fn sled_rates(runs: usize, count: usize) -> AnyResult<Value> {
    let events = EventSource::default().events(count);
    let pairs: Vec<([u8; 16], &[u8])> = events
        .iter()
        .map(|e| (*e.id.as_bytes(), e.payload.as_slice()))
        .collect();
    let mut out = serde_json::Map::new();
    for (name, mode, n) in [
        ("unbatched", SledMode::Unbatched, count),
        ("batched", SledMode::Batched, count),
        // Durable per batch: slower, so fewer events.
        ("batched_flush_each", SledMode::BatchedFlushed, count / 4),
    ] {
        let mut rates = Vec::with_capacity(runs);
        for _ in 0..runs {
            let dir = bench_dir()?;
            let db = sled::Config::new().path(dir.path().join("sled")).open()?;
            let tree = db.open_tree("events")?;
            let start = Instant::now();
            match mode {
                SledMode::Unbatched => {
                    for (key, value) in &pairs[..n] {
                        tree.insert(key, *value)?;
                    }
                }
                SledMode::Batched | SledMode::BatchedFlushed => {
                    for chunk in pairs[..n].chunks(SLED_BATCH) {
                        let mut batch = sled::Batch::default();
                        for (key, value) in chunk {
                            batch.insert(key, *value);
                        }
                        tree.apply_batch(batch)?;
                        if matches!(mode, SledMode::BatchedFlushed) {
                            tree.flush()?;
                        }
                    }
                }
            }
            tree.flush()?;
            rates.push(per_second(n, start.elapsed()));
        }
        out.insert(name.to_string(), json!({"events": n, "events_per_s": stats(rates)}));
    }
    Ok(json!({
        "key_bytes": 16,
        "value_bytes": PAYLOAD_BYTES,
        "batch": SLED_BATCH,
        "modes": out,
    }))
}
