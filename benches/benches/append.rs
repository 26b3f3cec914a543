//! Append throughput: the durable ledger vs. a raw append+fdatasync file
//! and BLAKE3, in one run. Throughput is reported per event.
//!
//! ```text
//! cargo bench -p ledger-benches                 # full run (a few minutes)
//! cargo bench -p ledger-benches -- --test       # CI smoke: each bench once
//! cargo bench -p ledger-benches -- raw_baseline # one suite
//! ```
//!
//! Suites:
//! - `ledger_append/batch_{1,64,1024}`: `Ledger::append` (blocking, fsync
//!   on) of 256-byte JSON events, one thread; `batch_1_x8_threads`: eight
//!   threads appending single events at once (group commit).
//! - `raw_baseline/append_fdatasync_{1,64,1024}`: the same framed bytes
//!   appended to a plain file, one `write_all` + `sync_data` per batch;
//!   `..._busy`: the same with one core kept busy by a spinning thread (on
//!   the VM this was written on, fdatasync is often several times slower
//!   when every core is idle; the ledger always has a busy thread, see
//!   `BusyCore`).
//! - `raw_baseline/blake3_256b`: BLAKE3 of one 256-byte payload.
//!
//! Each ledger bench opens its own ledger in a fresh temporary directory;
//! events (fresh v7 ids) are built outside the timed section.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ledger_benches::{
    BusyCore, EventSource, RawLog, append_concurrently, bench_dir, health_payload, open_ledger, raw_append_all,
    raw_frames,
};

const BATCHES: [usize; 3] = [1, 64, 1024];

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

fn ledger_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger_append");
    configure(&mut group);
    for batch in BATCHES {
        let dir = bench_dir().expect("creating a temp dir");
        let ledger = open_ledger(dir.path()).expect("opening the bench ledger");
        let mut source = EventSource::default();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || source.request(batch),
                |request| ledger.append(request).expect("append"),
                BatchSize::SmallInput,
            );
        });
        // Dropping closes the ledger: waits for the indexer to catch up
        // (outside any measurement) before the directory is removed.
        drop(ledger);
    }

    let dir = bench_dir().expect("creating a temp dir");
    let ledger = open_ledger(dir.path()).expect("opening the bench ledger");
    let mut source = EventSource::default();
    group.throughput(Throughput::Elements(1));
    group.bench_function("batch_1_x8_threads", |b| {
        b.iter_custom(|iters| {
            let requests = source.requests(iters as usize, 1);
            append_concurrently(&ledger, requests).expect("concurrent append")
        });
    });
    drop(ledger);
    group.finish();
}

fn raw_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_baseline");
    configure(&mut group);
    let mut source = EventSource::default();
    for busy in [false, true] {
        for batch in BATCHES {
            let dir = bench_dir().expect("creating a temp dir");
            let mut raw = RawLog::create(dir.path()).expect("creating the raw log");
            let frames = raw_frames(&source.events(batch));
            let (suffix, spinner) = if busy {
                ("_busy", Some(BusyCore::start()))
            } else {
                ("", None)
            };
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("append_fdatasync_{batch}{suffix}"), |b| {
                b.iter_custom(|iters| raw_append_all(&mut raw, &frames, iters).expect("raw append"));
            });
            drop(spinner);
        }
    }

    let payloads: Vec<Vec<u8>> = (0..1024).map(health_payload).collect();
    let mut next = 0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("blake3_256b", |b| {
        b.iter(|| {
            next = (next + 1) % payloads.len();
            ledger_verify::hash::blake3(black_box(&payloads[next]))
        });
    });
    group.finish();
}

criterion_group!(benches, ledger_append, raw_baseline);
criterion_main!(benches);
