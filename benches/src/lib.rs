//! Workloads shared by the `append` criterion bench (`benches/append.rs`)
//! and the `report` binary (`src/bin/report.rs`), so both measure exactly
//! the same thing:
//!
//! - the events: ops-hub `ops.health_checked` events with a 256-byte JSON
//!   payload and a fresh v7 id each, built before the timed section;
//! - the ledger: default [`LedgerConfig`] (fsync on) with the bench origin,
//!   opened in a fresh temporary directory;
//! - the raw baseline: the same framed bytes the ledger writes for those
//!   events (same frame layout, same canonical header sizes), appended to a
//!   plain file with `write_all` + `sync_data` per batch.
//!
//! Set `LEDGER_BENCH_DIR` to put the temporary directories somewhere other
//! than the system temp dir (e.g. on the disk under test).

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_core::segment::frame::{FLAG_BATCH_END, encode_frame};
use ledger_core::{AppendRequest, Event, Ledger, LedgerConfig, LocalKeySigner};
use ledger_verify::record::RecordHeader;
use tempfile::TempDir;

/// Checkpoint origin (and signing key name) of every bench ledger.
pub const ORIGIN: &str = "bench.example/log";

/// Seed of the deterministic bench signing key.
pub const KEY_SEED: [u8; 32] = [7; 32];

/// Size of every event payload, in bytes.
pub const PAYLOAD_BYTES: usize = 256;

/// Appending threads in the group-commit workload.
pub const GROUP_THREADS: usize = 8;

/// The services the health checks rotate over (one stream each).
const SERVICES: [&str; 8] = [
    "billing-api",
    "checkout",
    "search",
    "auth",
    "inventory",
    "notifications",
    "reporting",
    "gateway",
];

fn service(n: u64) -> &'static str {
    SERVICES[(n % SERVICES.len() as u64) as usize]
}

/// A realistic `ops.health_checked` JSON payload for probe run `n`, padded
/// with a `"pad"` string to exactly [`PAYLOAD_BYTES`] bytes.
pub fn health_payload(n: u64) -> Vec<u8> {
    let service = service(n);
    let head = format!(
        concat!(
            r#"{{"service":"{service}","endpoint":"https://{service}.ops.example/healthz","#,
            r#""check":"http","expected_status":200,"observed_status":200,"latency_ms":{latency},"#,
            r#""probe_run":{n},"region":"eu-west-1","prober":"ops-hub/prober-{prober}","pad":""#
        ),
        service = service,
        latency = 3 + n % 97,
        n = n,
        prober = n % 4,
    );
    const TAIL: &str = "\"}";
    let pad = PAYLOAD_BYTES
        .checked_sub(head.len() + TAIL.len())
        .expect("the payload prefix fits in PAYLOAD_BYTES for every u64 probe run");
    let mut payload = String::with_capacity(PAYLOAD_BYTES);
    payload.push_str(&head);
    payload.extend(std::iter::repeat_n('.', pad));
    payload.push_str(TAIL);
    payload.into_bytes()
}

/// An ops-hub `ops.health_checked` event on `service/<name>` with a fresh
/// v7 id, the 256-byte payload and the metadata ops-hub sets.
pub fn health_event(n: u64) -> Event {
    let mut event = Event::json(
        format!("service/{}", service(n)),
        "ops.health_checked",
        health_payload(n),
    );
    event.metadata.correlation_id = format!("run-{n}");
    event
        .metadata
        .extra
        .insert("workplan".to_string(), "CUST-WP-0051".to_string());
    event
}

/// Hands out events with consecutive probe-run numbers.
#[derive(Debug, Default)]
pub struct EventSource {
    next: u64,
}

impl EventSource {
    /// The next `n` events.
    pub fn events(&mut self, n: usize) -> Vec<Event> {
        let start = self.next;
        self.next += n as u64;
        (start..self.next).map(health_event).collect()
    }

    /// The next `n` events as one append batch.
    pub fn request(&mut self, n: usize) -> AppendRequest {
        AppendRequest::new(self.events(n))
    }

    /// `count` batches of `batch` events each.
    pub fn requests(&mut self, count: usize, batch: usize) -> Vec<AppendRequest> {
        (0..count).map(|_| self.request(batch)).collect()
    }
}

/// The ledger configuration under test: the defaults (fsync on, group
/// commit, asynchronous indexing) with the bench origin.
pub fn bench_config() -> LedgerConfig {
    LedgerConfig {
        origin: ORIGIN.to_string(),
        ..LedgerConfig::default()
    }
}

/// Opens (creates) a ledger in `dir` with the bench config and key.
pub fn open_ledger(dir: &Path) -> ledger_core::Result<Ledger> {
    open_ledger_with(dir, bench_config())
}

/// Opens (creates) a ledger in `dir` with the bench key and `config`.
pub fn open_ledger_with(dir: &Path, config: LedgerConfig) -> ledger_core::Result<Ledger> {
    let signer = Arc::new(LocalKeySigner::from_seed(ORIGIN, KEY_SEED)?);
    Ledger::open(dir, config, signer)
}

/// The value after a numeric flag such as `--runs`: a positive integer, or
/// an error naming the flag.
pub fn positive_arg(value: Option<String>, flag: &str) -> io::Result<usize> {
    value
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| io::Error::other(format!("{flag} needs a positive number")))
}

/// A fresh temporary directory, under `LEDGER_BENCH_DIR` if set.
pub fn bench_dir() -> io::Result<TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("ledger-bench-");
    match std::env::var_os("LEDGER_BENCH_DIR") {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
}

/// Frames `events` exactly as the ledger's writer does (canonical record
/// header + payload in a CRC'd frame, batch-end flag on the last one), so
/// the raw baseline writes the same number of bytes per event. Chain
/// fields are placeholders: only the sizes matter here.
pub fn raw_frames(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * (PAYLOAD_BYTES + 384));
    for (i, event) in events.iter().enumerate() {
        let header = RecordHeader {
            seq: i as u64,
            stream_version: i as u64,
            recorded_at_ns: 1_750_000_000_000_000_000,
            prev_hash: [0; 32],
            event: event.header(),
        };
        let flags = if i + 1 == events.len() { FLAG_BATCH_END } else { 0 };
        encode_frame(&mut out, flags, &header.encode(), &event.payload);
    }
    out
}

/// The raw baseline: a plain append-only file, fdatasync'd per batch.
#[derive(Debug)]
pub struct RawLog {
    file: File,
}

impl RawLog {
    /// Creates `raw.log` in `dir`.
    pub fn create(dir: &Path) -> io::Result<RawLog> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join("raw.log"))?;
        Ok(RawLog { file })
    }

    /// Appends one batch of frames durably: one `write_all`, one `sync_data`.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        self.file.write_all(frames)?;
        self.file.sync_data()
    }
}

/// Keeps one core busy (a spinning thread) while alive.
///
/// On the VM these benches were written on, an fdatasync issued while every
/// core is idle takes several times longer than one issued while some core
/// is busy (the I/O completion waits for an idle vCPU to wake up). The
/// ledger always has a busy thread (the indexer) while appending; the raw
/// baseline has none, so it is also measured beside a `BusyCore` to compare
/// like with like.
#[derive(Debug)]
pub struct BusyCore {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusyCore {
    /// Starts the spinning thread.
    pub fn start() -> BusyCore {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        BusyCore {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends each request in turn on this thread; the time it took.
pub fn append_all(ledger: &Ledger, requests: Vec<AppendRequest>) -> ledger_core::Result<Duration> {
    let start = Instant::now();
    for request in requests {
        std::hint::black_box(ledger.append(request)?);
    }
    Ok(start.elapsed())
}

/// Appends `requests` from [`GROUP_THREADS`] threads at once (dealt out
/// round-robin); the wall time from the moment all threads are ready.
pub fn append_concurrently(ledger: &Ledger, requests: Vec<AppendRequest>) -> ledger_core::Result<Duration> {
    append_from_threads(ledger, requests, GROUP_THREADS)
}

/// [`append_concurrently`] from `threads` threads.
pub fn append_from_threads(
    ledger: &Ledger,
    requests: Vec<AppendRequest>,
    threads: usize,
) -> ledger_core::Result<Duration> {
    let mut per_thread: Vec<Vec<AppendRequest>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, request) in requests.into_iter().enumerate() {
        per_thread[i % threads].push(request);
    }
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = per_thread
            .into_iter()
            .map(|requests| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for request in requests {
                        std::hint::black_box(ledger.append(request)?);
                    }
                    Ok::<(), ledger_core::LedgerError>(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for worker in workers {
            match worker.join() {
                Ok(result) => result?,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(start.elapsed())
    })
}

/// Appends the same batch of frames `times` times; the time it took.
pub fn raw_append_all(raw: &mut RawLog, frames: &[u8], times: u64) -> io::Result<Duration> {
    let start = Instant::now();
    for _ in 0..times {
        raw.append(frames)?;
    }
    Ok(start.elapsed())
}

/// Bytes used by the files in `dir` (recursively).
pub fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_256_bytes_of_json() {
        for n in [0, 1, 9, 10, 99_999, 1 << 40, u64::MAX] {
            let payload = health_payload(n);
            assert_eq!(payload.len(), PAYLOAD_BYTES, "probe run {n}");
            let text = std::str::from_utf8(&payload).expect("utf-8");
            assert!(text.starts_with('{') && text.ends_with("\"}"), "{text}");
        }
    }

    #[test]
    fn events_have_distinct_v7_ids() {
        let events = EventSource::default().events(1000);
        let ids: std::collections::HashSet<uuid::Uuid> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), events.len());
        assert!(events.iter().all(|e| e.id.get_version_num() == 7));
    }

    #[test]
    fn ledger_accepts_the_events_and_raw_frames_match_its_bytes() {
        let dir = bench_dir().expect("temp dir");
        // Sizes of the closed ledger: open, its tail segment also holds
        // the writer's preallocated zeros.
        drop(open_ledger(dir.path()).expect("open"));
        let before = dir_bytes(&dir.path().join("log")).expect("size");
        let ledger = open_ledger(dir.path()).expect("reopen");
        let mut source = EventSource::default();
        let events = source.events(64);
        let frames = raw_frames(&events);
        let outcome = ledger.append(AppendRequest::new(events)).expect("append");
        assert_eq!(outcome.receipts.len(), 64);
        drop(ledger);
        let after = dir_bytes(&dir.path().join("log")).expect("size");
        assert_eq!(after - before, frames.len() as u64);
    }
}
