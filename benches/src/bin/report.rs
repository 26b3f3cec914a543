//! Runs the `append` bench workloads without criterion, for a fixed number
//! of events, and prints a Markdown table: ledger events/s vs. the raw
//! append+fdatasync baseline from the same run, with the ratio.
//!
//! ```text
//! cargo run --release -p ledger-benches --bin report [-- --runs N] [--quick] [--json FILE]
//! ```
//!
//! Every workload runs `--runs` times (default 3), each time on a fresh
//! ledger (or raw file) in a fresh temporary directory; the table shows the
//! median rate and the min–max range. `--quick` divides every event count
//! by 10 (a smoke test, not a measurement). `--json FILE` also writes the
//! figures as JSON, for the one-command report (`benches/run.sh`) to divide
//! other figures by them.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ledger_benches::{
    BusyCore, EventSource, GROUP_THREADS, PAYLOAD_BYTES, RawLog, append_all, append_from_threads, bench_config,
    bench_dir, dir_bytes, health_payload, open_ledger, open_ledger_with, raw_append_all, raw_frames,
};
use ledger_core::LedgerConfig;
use ledger_core::store::{IndexBatch, IndexedEvent, SledStore, Store as _, TreeNode};
use ledger_verify::HashAlg;
use ledger_verify::merkle::Frontier;
use serde_json::{Value, json};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One ledger workload: `batches` appends of `batch` events each, from
/// `threads` threads at once (each appending one batch at a time).
#[derive(Clone, Copy, Debug)]
struct Workload {
    label: &'static str,
    batch: usize,
    batches: usize,
    threads: usize,
}

impl Workload {
    fn events(&self) -> usize {
        self.batch * self.batches
    }

    fn threaded(&self) -> bool {
        self.threads > 1
    }
}

/// Median, min and max of a set of rates.
#[derive(Clone, Copy, Debug)]
struct Rates {
    median: f64,
    min: f64,
    max: f64,
}

impl Rates {
    fn of(mut rates: Vec<f64>) -> Rates {
        rates.sort_by(f64::total_cmp);
        Rates {
            median: rates[rates.len() / 2],
            min: rates[0],
            max: rates[rates.len() - 1],
        }
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max})
    }

    fn cell(&self) -> String {
        format!(
            "{} ({}–{})",
            fmt_rate(self.median),
            fmt_rate(self.min),
            fmt_rate(self.max)
        )
    }
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.0}k", rate / 1000.0)
    } else if rate >= 1000.0 {
        format!("{:.1}k", rate / 1000.0)
    } else {
        format!("{rate:.0}")
    }
}

fn per_second(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

/// One ledger run: fresh ledger, events built first, then timed appends.
/// Returns (events/s, log bytes per event).
fn ledger_run(workload: Workload, config: LedgerConfig) -> AnyResult<(f64, f64)> {
    let dir = bench_dir()?;
    let ledger = open_ledger_with(dir.path(), config)?;
    let log_before = dir_bytes(&dir.path().join("log"))?;
    let requests = EventSource::default().requests(workload.batches, workload.batch);
    let elapsed = if workload.threaded() {
        append_from_threads(&ledger, requests, workload.threads)?
    } else {
        append_all(&ledger, requests)?
    };
    let bytes = dir_bytes(&dir.path().join("log"))? - log_before;
    ledger.close()?;
    Ok((
        per_second(workload.events(), elapsed),
        bytes as f64 / workload.events() as f64,
    ))
}

/// The raw baseline for a workload: same batch size, same event count,
/// same framed bytes, one writer (for the threaded workload too: one
/// fdatasync per event is what eight uncoordinated writers would get).
/// `busy`: with one core kept busy meanwhile (see [`BusyCore`]).
fn raw_run(workload: Workload, busy: bool) -> AnyResult<f64> {
    let _spinner = busy.then(BusyCore::start);
    let dir = bench_dir()?;
    let mut raw = RawLog::create(dir.path())?;
    let frames = raw_frames(&EventSource::default().events(workload.batch));
    let elapsed = raw_append_all(&mut raw, &frames, workload.batches as u64)?;
    Ok(per_second(workload.events(), elapsed))
}

fn blake3_rate(count: usize) -> f64 {
    let payloads: Vec<Vec<u8>> = (0..1024).map(health_payload).collect();
    let start = Instant::now();
    for i in 0..count {
        std::hint::black_box(ledger_verify::hash::blake3(std::hint::black_box(
            &payloads[i % payloads.len()],
        )));
    }
    per_second(count, start.elapsed())
}

/// Diagnostic: the index store alone. Applies `groups` index batches of
/// 1024 events (what the indexer gets per group commit: stream entries
/// plus the Merkle nodes the group completes) to a fresh `SledStore`, then
/// flushes it. Returns (events, apply time, apply + flush time).
fn index_store_run(groups: usize) -> AnyResult<(usize, Duration, Duration)> {
    let dir = bench_dir()?;
    let store = SledStore::open(&dir.path().join("index"))?;
    let mut frontier = Frontier::new(HashAlg::Blake3);
    let mut versions = std::collections::HashMap::new();
    let mut source = EventSource::default();
    let mut batches = Vec::with_capacity(groups);
    let mut seq = 0u64;
    for _ in 0..groups {
        let mut batch = IndexBatch::default();
        for event in source.events(1024) {
            let version = versions.entry(event.stream.clone()).or_insert(0u64);
            let leaf = HashAlg::Blake3.leaf_hash(&ledger_verify::hash::blake3(event.id.as_bytes()));
            for (level, index, hash) in frontier.push(leaf)? {
                batch.nodes.push(TreeNode { level, index, hash });
            }
            batch.events.push(IndexedEvent {
                stream: event.stream,
                stream_version: *version,
                seq,
            });
            *version += 1;
            seq += 1;
        }
        batch.log_len_after = seq;
        batches.push(batch);
    }
    let start = Instant::now();
    for batch in &batches {
        store.apply(batch)?;
    }
    let applied = start.elapsed();
    store.flush()?;
    Ok((groups * 1024, applied, start.elapsed()))
}

/// One long run at batch 1024: the append phase alone, then until the
/// index store has caught up. Returns (events, append time, total time).
fn sustained_run(batches: usize) -> AnyResult<(usize, Duration, Duration)> {
    let dir = bench_dir()?;
    let ledger = open_ledger(dir.path())?;
    let requests = EventSource::default().requests(batches, 1024);
    let start = Instant::now();
    append_all(&ledger, requests)?;
    let appended = start.elapsed();
    ledger.wait_indexed()?;
    let total = start.elapsed();
    ledger.close()?;
    Ok((batches * 1024, appended, total))
}

fn main() -> AnyResult<()> {
    let mut runs = 3usize;
    let mut scale = 1usize;
    let mut json_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = ledger_benches::positive_arg(args.next(), "--runs")?;
            }
            "--quick" => scale = 10,
            "--json" => {
                json_path = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| io::Error::other("--json needs a file"))?,
                );
            }
            other => return Err(io::Error::other(format!("unknown argument {other:?}")).into()),
        }
    }

    // Each single-thread workload must come before the threaded one of the
    // same batch size (whose raw baseline it provides).
    let workloads = [
        Workload {
            label: "batch 1024",
            batch: 1024,
            batches: 196 / scale,
            threads: 1,
        },
        // How the server uses it: more than one producer's batch at a
        // time, so one caller checks its batch while the other's is
        // written and fsynced.
        Workload {
            label: "batch 1024 × 2 callers",
            batch: 1024,
            batches: 196 / scale,
            threads: 2,
        },
        Workload {
            label: "batch 64",
            batch: 64,
            batches: 313 / scale,
            threads: 1,
        },
        Workload {
            label: "batch 1",
            batch: 1,
            batches: 2000 / scale,
            threads: 1,
        },
        Workload {
            label: "batch 1 × 8 threads",
            batch: 1,
            batches: 20_000 / scale,
            threads: GROUP_THREADS,
        },
        // What the gRPC service will see: eight producers sending batches.
        Workload {
            label: "batch 64 × 8 threads",
            batch: 64,
            batches: 626 / scale,
            threads: GROUP_THREADS,
        },
    ];

    println!(
        "| workload | events | ledger events/s | raw events/s, idle cores | raw events/s, one core busy \
         | ledger / raw idle | ledger / raw busy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut bytes_per_event = 0.0;
    let mut json_rows = Vec::new();
    let mut raw_by_batch: std::collections::HashMap<usize, (Rates, Rates)> = std::collections::HashMap::new();
    for workload in workloads {
        let (mut ledger_rates, mut idle_rates, mut busy_rates) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            // Interleave so drift on a noisy machine hits all three alike.
            let (rate, bytes) = ledger_run(workload, bench_config())?;
            ledger_rates.push(rate);
            bytes_per_event = bytes;
            if !workload.threaded() {
                idle_rates.push(raw_run(workload, false)?);
                busy_rates.push(raw_run(workload, true)?);
            }
        }
        let ledger = Rates::of(ledger_rates);
        let (idle, busy) = match (workload.threaded(), raw_by_batch.get(&workload.batch)) {
            // The raw baseline of a threaded workload is the single-thread
            // one of the same batch size.
            (true, Some(&raw)) => raw,
            _ => (Rates::of(idle_rates), Rates::of(busy_rates)),
        };
        if !workload.threaded() {
            raw_by_batch.insert(workload.batch, (idle, busy));
        }
        let raw_label = if workload.threaded() {
            format!(" (raw: batch {}, 1 writer)", workload.batch)
        } else {
            String::new()
        };
        json_rows.push(json!({
            "label": workload.label,
            "batch": workload.batch,
            "threads": workload.threads,
            "events": workload.events(),
            "ledger_events_per_s": ledger.json(),
            "raw_idle_events_per_s": idle.json(),
            "raw_busy_events_per_s": busy.json(),
        }));
        println!(
            "| {}{} | {} | {} | {} | {} | {:.0} % | {:.0} % |",
            workload.label,
            raw_label,
            workload.events(),
            ledger.cell(),
            idle.cell(),
            busy.cell(),
            100.0 * ledger.median / idle.median,
            100.0 * ledger.median / busy.median,
        );
    }
    println!();

    // Diagnostic: the same batch-1024 workload without fdatasync, i.e. the
    // CPU-bound ceiling of everything but the disk.
    let no_sync = LedgerConfig {
        unsafe_no_sync: true,
        ..bench_config()
    };
    let mut no_sync_rates = Vec::new();
    for _ in 0..runs {
        no_sync_rates.push(ledger_run(workloads[0], no_sync.clone())?.0);
    }
    let no_sync = Rates::of(no_sync_rates);
    println!(
        "Diagnostic, batch 1024 with `unsafe_no_sync` (NOT durable; CPU ceiling): {} events/s",
        no_sync.cell()
    );
    let blake3 = Rates::of((0..runs).map(|_| blake3_rate(4_000_000 / scale)).collect());
    println!(
        "BLAKE3 of a {PAYLOAD_BYTES}-byte payload: {} hashes/s ({:.0} MB/s)",
        blake3.cell(),
        blake3.median * PAYLOAD_BYTES as f64 / 1e6
    );
    println!("Ledger log bytes per event (frame + canonical header + payload): {bytes_per_event:.0}");
    println!();

    let (index_events, applied, flushed) = index_store_run(196 / scale)?;
    println!(
        "Diagnostic, index store alone (sled `apply` of {index_events} events in 1024-event batches, one thread): \
         {} events/s; {} events/s including the final flush",
        fmt_rate(per_second(index_events, applied)),
        fmt_rate(per_second(index_events, flushed))
    );
    println!();

    let index_store = json!({
        "events": index_events,
        "apply_events_per_s": per_second(index_events, applied),
        "with_flush_events_per_s": per_second(index_events, flushed),
    });
    let (events, appended, total) = sustained_run(489 / scale)?;
    println!("Sustained, batch 1024, {events} events, one run, fresh ledger:");
    println!();
    println!("| phase | time | events/s |");
    println!("|---|---:|---:|");
    println!(
        "| append (acknowledged, durable) | {:.2} s | {} |",
        appended.as_secs_f64(),
        fmt_rate(per_second(events, appended))
    );
    println!(
        "| append + `wait_indexed()` (index caught up) | {:.2} s | {} |",
        total.as_secs_f64(),
        fmt_rate(per_second(events, total))
    );
    println!();
    println!(
        "Runs per workload: {runs}; cells are median (min–max). Threads in the group-commit workload: {GROUP_THREADS}."
    );
    if let Some(path) = json_path {
        let out = json!({
            "runs": runs,
            "payload_bytes": PAYLOAD_BYTES,
            "log_bytes_per_event": bytes_per_event,
            "workloads": json_rows,
            "no_sync_batch_1024_events_per_s": no_sync.json(),
            "blake3_256b_per_s": blake3.json(),
            "index_store": index_store,
            "sustained": {
                "events": events,
                "append_events_per_s": per_second(events, appended),
                "indexed_events_per_s": per_second(events, total),
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}
