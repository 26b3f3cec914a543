//! Projection replay rate: the four built-ins (tasks, incidents, subjects,
//! metrics) folding a generated log together, beside the raw segment read
//! rate measured in the same run, with RSS and the projection store's size.
//! Prints Markdown tables.
//!
//! ```text
//! cargo run --release -p ledger-benches --bin replay_report [-- --records N]... [--quick] [--json FILE]
//! ```
//!
//! For each size (default 1 M and 10 M records; `--quick`: 100 k) it fills a
//! fresh ledger in a temporary directory (`LEDGER_BENCH_DIR` respected) with
//! `ledger_core::sample::SampleEvidence` events, 1024 per append, reopens it
//! (the open scan verifies every frame, hash and chain link: timed), then
//! measures, in this order and on a warm page cache:
//!
//! 1. **raw segment read**: the segment files read sequentially in 4 MiB
//!    chunks, every frame's length and CRC checked and its body split; no
//!    record decoding, no projection. The physical baseline;
//! 2. **record reader**: `Ledger::read_range` in chunks of 2048 (decode and
//!    record hash per record) and the engine's sequential reader
//!    (`Ledger::scan_chunks`), both without folding;
//! 3. **catch-up of all four**: a `Projections` engine on an empty store,
//!    `Builtins` registered (metrics without alert rules), timed until every
//!    projection has applied all N records, then until `close()` has
//!    persisted them. VmRSS is sampled meanwhile; VmHWM is reset just
//!    before (`/proc/self/clear_refs` = 5) so it is this phase's peak;
//! 4. **replay of each projection alone** (`ProjectionHandle::replay(0)`),
//!    checking that it reproduces the caught-up state's digest; only up to
//!    1 M records (a replay holds a second copy of the state);
//! 5. with `--time-travel`, **time travel of each projection**:
//!    `at_seq(N/2)`, `at_seq(N-1)` and `at_time` of record N/2's
//!    `recorded_at`, each a scratch fold from seq 0 (flushed into a
//!    scratch store on disk and evicted down to the resident budget as it
//!    goes, like a replay). For each: wall time, records folded per
//!    second, the growth over the VmRSS before it of VmHWM (reset before
//!    each fold, after `mi_collect` has handed the previous fold's memory
//!    back) and of VmRSS while the returned state is held (trimmed again):
//!    the heap the rows really take, which the tables' own
//!    `Cached::resident_bytes` only estimates (the kernel's cache of the
//!    scratch file is not in either).
//!
//! The log is appended with `unsafe_no_sync` (filling is not what is
//! measured; the bytes are the same). `--keep-logs DIR` keeps each size's
//! ledger in `DIR/<N>` and reuses it on the next run (the open scan still
//! verifies it), so that runs compare on the very same log; `--no-singles`
//! skips phase 4 at every size; `--time-travel` adds phase 5 (off by
//! default, as at 10 M records each fold takes ten times as long;
//! `benches/run.sh` turns it on for its one size: ~10-15 s at 1 M).
//! `--resident-mib N` bounds each projection's resident state to N MiB
//! (`ProjectionsConfig`; the engine's default otherwise), `--round-mib N`
//! bounds how far a catch-up round may grow them before an early flush
//! (`ProjectionsConfig::round_bytes`). `--json FILE`
//! also writes the figures as JSON, for the one-command report
//! (`benches/run.sh`).

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledger_benches::{bench_config, bench_dir, dir_bytes, open_ledger_with};
use ledger_core::projection::builtin::Builtins;
use ledger_core::projection::{Projection, ProjectionHandle, Projections, ProjectionsConfig, StateDigest};
use ledger_core::sample::SampleEvidence;
use ledger_core::segment::file::SEGMENT_HEADER_LEN;
use ledger_core::segment::frame::{FRAME_HEADER_LEN, FrameHeader, split_body};
use ledger_core::{AppendRequest, Ledger, LedgerConfig};

/// The allocator `ledgerd` runs on (ledger-server/src/main.rs says why), so
/// that the catch-up measured here costs what the server's does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Events per append while filling.
const FILL_BATCH: usize = 1024;
/// Records per `read_range` call (the engine's old chunk size).
const READ_CHUNK: usize = 2048;
/// Seed of the sample evidence.
const SEED: u64 = 42;
/// Phase 4 (each projection replayed alone) runs up to this size.
const SINGLES_MAX_RECORDS: u64 = 1_000_000;
/// Longest any phase may take before the report gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(3600);

/// What one size measured.
#[derive(Debug)]
struct SizeReport {
    records: u64,
    log_bytes: u64,
    fill: Duration,
    open_scan: Duration,
    raw_read: Duration,
    read_range: Duration,
    scan_chunks: Duration,
    catch_up: Duration,
    catch_up_closed: Duration,
    /// CPU seconds (user + system, every thread) the catch-up used.
    catch_up_cpu: Option<f64>,
    rss_before_kib: u64,
    rss_peak_sampled_kib: u64,
    hwm_kib: Option<u64>,
    store_bytes: u64,
    singles: Vec<Single>,
    time_travel: Vec<TimeTravel>,
    digests: Vec<StateDigest>,
}

/// One time-travel fold of one projection.
#[derive(Debug)]
struct TimeTravel {
    name: &'static str,
    /// `at_seq(N)` or `at_time(...)`.
    point: String,
    /// Records folded into the scratch state.
    records: u64,
    elapsed: Duration,
    rss_before_kib: u64,
    /// VmRSS with the returned state still held, after `mi_collect`.
    rss_held_kib: u64,
    /// VmHWM of the fold (reset just before it), if the kernel allows the
    /// reset.
    hwm_kib: Option<u64>,
}

impl TimeTravel {
    fn held_growth_bytes(&self) -> u64 {
        self.rss_held_kib.saturating_sub(self.rss_before_kib) * 1024
    }

    fn peak_growth_bytes(&self) -> Option<u64> {
        self.hwm_kib.map(|hwm| hwm.saturating_sub(self.rss_before_kib) * 1024)
    }
}

/// One projection replayed alone.
#[derive(Debug)]
struct Single {
    name: &'static str,
    seconds: f64,
    same_digest: bool,
}

fn main() -> AnyResult<()> {
    let mut sizes = Vec::new();
    let mut quick = false;
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => sizes.push(
                args.next()
                    .and_then(|n| n.replace('_', "").parse::<u64>().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| io::Error::other("--records needs a positive number"))?,
            ),
            "--quick" => quick = true,
            "--json" => {
                options.json = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| io::Error::other("--json needs a file"))?,
                );
            }
            "--no-singles" => options.no_singles = true,
            "--time-travel" => options.time_travel = true,
            "--resident-mib" => {
                options.resident_mib = Some(
                    args.next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or_else(|| io::Error::other("--resident-mib needs a number of MiB"))?,
                );
            }
            "--round-mib" => {
                options.round_mib = Some(
                    args.next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| io::Error::other("--round-mib needs a positive number of MiB"))?,
                );
            }
            "--keep-logs" => {
                options.keep_logs = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| io::Error::other("--keep-logs needs a directory"))?,
                );
            }
            other => return Err(io::Error::other(format!("unknown argument {other:?}")).into()),
        }
    }
    if sizes.is_empty() {
        sizes = if quick {
            vec![100_000]
        } else {
            vec![1_000_000, 10_000_000]
        };
    }

    let mut reports = Vec::new();
    for &records in &sizes {
        eprintln!("{records} records: filling (or reusing) the log…");
        reports.push(run_size(records, &options)?);
    }
    print_reports(&reports);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports_json(&reports))?)?;
    }
    Ok(())
}

/// The figures of every size, for `--json`: seconds per phase and records/s.
fn reports_json(reports: &[SizeReport]) -> serde_json::Value {
    let phase = |records: u64, elapsed: Duration| serde_json::json!({"seconds": elapsed.as_secs_f64(), "records_per_s": rate(records, elapsed)});
    let sizes: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "records": r.records,
                "log_bytes": r.log_bytes,
                "raw_read": phase(r.records, r.raw_read),
                "read_range": phase(r.records, r.read_range),
                "scan_chunks": phase(r.records, r.scan_chunks),
                "open_scan": phase(r.records, r.open_scan),
                "catch_up": phase(r.records, r.catch_up),
                "catch_up_closed": phase(r.records, r.catch_up_closed),
                "catch_up_cpu_seconds": r.catch_up_cpu,
                "rss_before_bytes": r.rss_before_kib * 1024,
                "rss_peak_sampled_bytes": r.rss_peak_sampled_kib * 1024,
                "rss_hwm_bytes": r.hwm_kib.map(|k| k * 1024),
                "store_bytes": r.store_bytes,
                "singles": r.singles.iter().map(|s| serde_json::json!({
                    "name": s.name,
                    "seconds": s.seconds,
                    "records_per_s": r.records as f64 / s.seconds,
                    "same_digest": s.same_digest,
                })).collect::<Vec<_>>(),
                "time_travel": r.time_travel.iter().map(|t| serde_json::json!({
                    "name": t.name,
                    "point": t.point,
                    "records": t.records,
                    "seconds": t.elapsed.as_secs_f64(),
                    "records_per_s": rate(t.records, t.elapsed),
                    "rss_before_bytes": t.rss_before_kib * 1024,
                    "rss_held_growth_bytes": t.held_growth_bytes(),
                    "rss_peak_growth_bytes": t.peak_growth_bytes(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "sizes": sizes })
}

/// Command-line switches besides the sizes.
#[derive(Debug, Default)]
struct Options {
    keep_logs: Option<PathBuf>,
    no_singles: bool,
    /// Phase 5: `at_seq` / `at_time` of each projection.
    time_travel: bool,
    /// Resident state per projection (`ProjectionsConfig::resident_bytes`),
    /// in MiB; the engine's default when absent.
    resident_mib: Option<usize>,
    /// `--round-mib`: each projection's catch-up round bound
    /// ([`ProjectionsConfig::round_bytes`]) in MiB; the default when absent.
    round_mib: Option<usize>,
    json: Option<PathBuf>,
}

fn run_size(records: u64, options: &Options) -> AnyResult<SizeReport> {
    let dir = bench_dir()?;
    let ledger_dir = match &options.keep_logs {
        Some(keep) => keep.join(records.to_string()),
        None => dir.path().join("ledger"),
    };
    let fill = if ledger_dir.join("log").exists() {
        Duration::ZERO
    } else {
        fill_ledger(&ledger_dir, records)?
    };
    let log_dir = ledger_dir.join("log");
    let log_bytes = dir_bytes(&log_dir)?;

    let start = Instant::now();
    let ledger = Arc::new(open_ledger_with(&ledger_dir, bench_config())?);
    let open_scan = start.elapsed();
    if ledger.len() != records {
        return Err(io::Error::other(format!("the ledger holds {} records, not {records}", ledger.len())).into());
    }

    eprintln!("{records} records: reading…");
    let (frames, raw_read) = raw_segment_read(&log_dir)?;
    if frames != records {
        return Err(io::Error::other(format!("read {frames} frames, expected {records}")).into());
    }
    let read_range = read_range_all(&ledger, records)?;
    let scan_chunks = scan_chunks_all(&ledger, records)?;

    eprintln!("{records} records: catching up…");
    let proj_dir = dir.path().join("projections");
    let rss_before_kib = proc_status_kib("VmRSS:").unwrap_or(0);
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let sampler = RssSampler::start();
    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let mut config = ProjectionsConfig::default();
    if let Some(mib) = options.resident_mib {
        config.resident_bytes = mib << 20;
    }
    if let Some(mib) = options.round_mib {
        config.round_bytes = mib << 20;
    }
    let engine = Projections::open_with(Arc::clone(&ledger), &proj_dir, config)?;
    // tasks, incidents, subjects and metrics (without alert rules).
    let builtins = Builtins::register(&engine)?;
    let all_applied = builtins.tasks.wait_applied(records, PHASE_TIMEOUT)
        && builtins.incidents.wait_applied(records, PHASE_TIMEOUT)
        && builtins.subjects.wait_applied(records, PHASE_TIMEOUT)
        && builtins.metrics.wait_applied(records, PHASE_TIMEOUT);
    let catch_up = start.elapsed();
    let catch_up_cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    if !all_applied {
        return Err(io::Error::other("the projections did not catch up").into());
    }
    // `close` stops the engine thread after a final flush and syncs the
    // store: everything folded is then persisted. The handles stay usable
    // for digests and replays, which run on this thread.
    engine.close()?;
    let catch_up_closed = start.elapsed();
    let rss_peak_sampled_kib = sampler.stop();
    let hwm_kib = if hwm_reset { proc_status_kib("VmHWM:") } else { None };
    let digests = vec![
        builtins.tasks.digest()?,
        builtins.incidents.digest()?,
        builtins.subjects.digest()?,
        builtins.metrics.digest()?,
    ];

    // A replay folds a second copy of the state beside the live one: at
    // 10 M records that is several GiB more, so sizes above
    // SINGLES_MAX_RECORDS skip it.
    let singles = if options.no_singles || records > SINGLES_MAX_RECORDS {
        Vec::new()
    } else {
        eprintln!("{records} records: replaying each projection…");
        vec![
            replay_one(&builtins.tasks, &digests[0])?,
            replay_one(&builtins.incidents, &digests[1])?,
            replay_one(&builtins.subjects, &digests[2])?,
            replay_one(&builtins.metrics, &digests[3])?,
        ]
    };
    let time_travel = if options.time_travel {
        eprintln!("{records} records: time travel of each projection…");
        let mut runs = time_travel(&builtins.tasks, &ledger)?;
        runs.extend(time_travel(&builtins.incidents, &ledger)?);
        runs.extend(time_travel(&builtins.subjects, &ledger)?);
        runs.extend(time_travel(&builtins.metrics, &ledger)?);
        runs
    } else {
        Vec::new()
    };
    drop((builtins, engine));
    let store_bytes = dir_bytes(&proj_dir)?;
    if let Ok(ledger) = Arc::try_unwrap(ledger) {
        ledger.close()?;
    }
    Ok(SizeReport {
        records,
        log_bytes,
        fill,
        open_scan,
        raw_read,
        read_range,
        scan_chunks,
        catch_up,
        catch_up_closed,
        catch_up_cpu,
        rss_before_kib,
        rss_peak_sampled_kib,
        hwm_kib,
        store_bytes,
        singles,
        time_travel,
        digests,
    })
}

/// Appends `records` sample events, [`FILL_BATCH`] per append, and closes
/// the ledger once its index has caught up.
fn fill_ledger(dir: &Path, records: u64) -> AnyResult<Duration> {
    let config = LedgerConfig {
        unsafe_no_sync: true,
        ..bench_config()
    };
    let ledger = open_ledger_with(dir, config)?;
    let mut source = SampleEvidence::new(SEED);
    let start = Instant::now();
    let mut left = records;
    while left > 0 {
        let n = left.min(FILL_BATCH as u64);
        ledger.append(AppendRequest::new(source.take_events(n as usize)))?;
        left -= n;
    }
    ledger.wait_indexed()?;
    let elapsed = start.elapsed();
    ledger.close()?;
    Ok(elapsed)
}

/// Reads every segment of `log_dir` front to back in 4 MiB chunks, checks
/// each frame's length and CRC and splits its body. Returns the frames read
/// and the time taken.
fn raw_segment_read(log_dir: &Path) -> AnyResult<(u64, Duration)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(log_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.retain(|p| p.extension().is_some_and(|ext| ext == "seg"));
    paths.sort();
    let start = Instant::now();
    let mut buf = vec![0u8; 4 << 20];
    let mut frames = 0u64;
    let mut canonical_bytes = 0u64;
    for (i, path) in paths.iter().enumerate() {
        let is_last = i + 1 == paths.len();
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(SEGMENT_HEADER_LEN))?;
        let (mut pos, mut end, mut eof) = (0usize, 0usize, false);
        loop {
            let avail = &buf[pos..end];
            let mut need = FRAME_HEADER_LEN;
            if avail.len() >= FRAME_HEADER_LEN {
                let mut head = [0u8; FRAME_HEADER_LEN];
                head.copy_from_slice(&avail[..FRAME_HEADER_LEN]);
                // An open ledger keeps zeros preallocated past the tail
                // segment's last frame (`segment/prealloc.rs`); a frame's
                // body holds at least its canonical length, so a zero
                // header is no frame: the frames end there.
                if is_last && head.iter().all(|&b| b == 0) {
                    break;
                }
                let header = FrameHeader::parse(&head);
                need = FRAME_HEADER_LEN + header.body_len as usize;
                if avail.len() >= need {
                    let body = &avail[FRAME_HEADER_LEN..need];
                    if !header.crc_matches(body) {
                        return Err(io::Error::other(format!("{}: bad CRC", path.display())).into());
                    }
                    let (canonical, _payload) = split_body(body).map_err(io::Error::other)?;
                    canonical_bytes += canonical.len() as u64;
                    frames += 1;
                    pos += need;
                    continue;
                }
            }
            if eof {
                if pos != end {
                    return Err(io::Error::other(format!("{}: torn frame", path.display())).into());
                }
                break;
            }
            buf.copy_within(pos..end, 0);
            end -= pos;
            pos = 0;
            if need > buf.len() {
                buf.resize(need, 0);
            }
            let n = file.read(&mut buf[end..])?;
            eof = n == 0;
            end += n;
        }
    }
    std::hint::black_box(canonical_bytes);
    Ok((frames, start.elapsed()))
}

/// `Ledger::read_range` over the whole log, nothing folded.
fn read_range_all(ledger: &Ledger, records: u64) -> AnyResult<Duration> {
    let start = Instant::now();
    let mut seq = 0;
    while seq < records {
        let chunk = ledger.read_range(seq, READ_CHUNK)?;
        if chunk.is_empty() {
            return Err(io::Error::other("read_range returned nothing").into());
        }
        seq += chunk.len() as u64;
        std::hint::black_box(&chunk);
    }
    Ok(start.elapsed())
}

/// The engine's sequential reader over the whole log, nothing folded.
fn scan_chunks_all(ledger: &Ledger, records: u64) -> AnyResult<Duration> {
    let start = Instant::now();
    let mut n = 0u64;
    ledger.scan_chunks(0, records, READ_CHUNK, &mut |chunk| {
        n += chunk.len() as u64;
        std::hint::black_box(chunk);
        true
    })?;
    if n != records {
        return Err(io::Error::other(format!("scan_chunks read {n} records, expected {records}")).into());
    }
    Ok(start.elapsed())
}

fn replay_one<P: Projection>(handle: &ProjectionHandle<P>, before: &StateDigest) -> AnyResult<Single> {
    let outcome = handle.replay(0, |_| {})?;
    Ok(Single {
        name: handle.read().name(),
        seconds: outcome.seconds,
        same_digest: outcome.digest.digest == before.digest && outcome.digest.entries == before.entries,
    })
}

/// CPU seconds this process has used (user + system, all threads), from
/// `/proc/self/stat` in clock ticks of 1/100 s.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `at_seq(N/2)`, `at_seq(N-1)` and `at_time` of record N/2's
/// `recorded_at` of one projection, each measured alone.
fn time_travel<P: Projection>(handle: &ProjectionHandle<P>, ledger: &Ledger) -> AnyResult<Vec<TimeTravel>> {
    let len = ledger.len();
    let half = len / 2;
    let at_ns = ledger.read(half)?.header.recorded_at_ns;
    let at = chrono::DateTime::from_timestamp_nanos(at_ns);
    let points = [
        (format!("at_seq({half})"), Some(half)),
        (format!("at_seq({})", len - 1), Some(len - 1)),
        (
            format!("at_time({})", at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            None,
        ),
    ];
    let mut runs = Vec::new();
    for (point, seq) in points {
        trim_heap();
        let rss_before_kib = proc_status_kib("VmRSS:").unwrap_or(0);
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let start = Instant::now();
        let (state, records) = match seq {
            Some(seq) => (handle.at_seq(seq)?, seq + 1),
            None => handle
                .at_time_with_len(at)?
                .ok_or_else(|| io::Error::other("at_time folded nothing"))?,
        };
        let elapsed = start.elapsed();
        let hwm_kib = if hwm_reset { proc_status_kib("VmHWM:") } else { None };
        // What the fold freed (the reader's chunks) leaves; the state stays.
        trim_heap();
        let rss_held_kib = proc_status_kib("VmRSS:").unwrap_or(0);
        let name = state.name();
        drop(std::hint::black_box(state));
        eprintln!("  {name} {point}: {records} records in {:.2} s", elapsed.as_secs_f64());
        runs.push(TimeTravel {
            name,
            point,
            records,
            elapsed,
            rss_before_kib,
            rss_held_kib,
            hwm_kib,
        });
    }
    trim_heap();
    Ok(runs)
}

/// Hands the heap's free pages back to the kernel now rather than after
/// mimalloc's purge delay, so that the next fold's RSS growth is not hidden
/// by memory the previous one freed.
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: `mi_collect` takes a flag and only frees and purges the
    // allocator's own free memory; no pointer is passed or returned.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`).
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Samples VmRSS every 20 ms on a thread of its own, keeping the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if let Some(rss) = proc_status_kib("VmRSS:") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        RssSampler { stop, peak, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

fn rate(records: u64, elapsed: Duration) -> f64 {
    records as f64 / elapsed.as_secs_f64()
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn mib1(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print_reports(reports: &[SizeReport]) {
    println!("| records | phase | time | events/s | vs raw segment read |");
    println!("|---:|---|---:|---:|---:|");
    for r in reports {
        let raw = rate(r.records, r.raw_read);
        let rows = [
            ("raw segment read (length + CRC, no decoding)", r.raw_read),
            ("`Ledger::read_range` (decode + record hash), no folding", r.read_range),
            ("engine reader `Ledger::scan_chunks`, no folding", r.scan_chunks),
            ("open scan (verifies CRC, hashes, chain)", r.open_scan),
            ("**all four built-ins, catch-up (applied)**", r.catch_up),
            ("all four, catch-up + `close()` (state persisted)", r.catch_up_closed),
        ];
        for (label, elapsed) in rows {
            let events = rate(r.records, elapsed);
            println!(
                "| {} | {label} | {:.2} s | {} | {:.0} % |",
                r.records,
                elapsed.as_secs_f64(),
                fmt_rate(events),
                100.0 * events / raw
            );
        }
        if let Some(cpu) = r.catch_up_cpu {
            println!(
                "| {} | catch-up CPU: {:.2} s over all threads, {:.2} µs per record, {:.2} cores busy | | | |",
                r.records,
                cpu,
                cpu * 1e6 / r.records as f64,
                cpu / r.catch_up.as_secs_f64()
            );
        }
        for single in &r.singles {
            let events = r.records as f64 / single.seconds;
            println!(
                "| {} | `{}` alone (`replay(0)`){} | {:.2} s | {} | {:.0} % |",
                r.records,
                single.name,
                if single.same_digest { "" } else { " **DIGEST DIFFERS**" },
                single.seconds,
                fmt_rate(events),
                100.0 * events / raw
            );
        }
    }
    println!();
    println!(
        "| records | log size | fill (not durable) | RSS before catch-up | peak RSS during catch-up (sampled / VmHWM) | projection store |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in reports {
        let hwm = r.hwm_kib.map_or("n/a".to_string(), |k| mib(k * 1024));
        let fill = if r.fill.is_zero() {
            "reused".to_string()
        } else {
            format!("{:.1} s", r.fill.as_secs_f64())
        };
        println!(
            "| {} | {} | {fill} | {} | {} / {} | {} |",
            r.records,
            mib(r.log_bytes),
            mib(r.rss_before_kib * 1024),
            mib(r.rss_peak_sampled_kib * 1024),
            hwm,
            mib(r.store_bytes),
        );
    }
    if reports.iter().any(|r| !r.time_travel.is_empty()) {
        println!();
        println!(
            "| records | projection | time travel | records folded | time | records/s | peak RSS growth (VmHWM) | RSS growth, state held |"
        );
        println!("|---:|---|---|---:|---:|---:|---:|---:|");
        for r in reports {
            for t in &r.time_travel {
                println!(
                    "| {} | `{}` | `{}` | {} | {:.2} s | {} | {} | {} |",
                    r.records,
                    t.name,
                    t.point,
                    t.records,
                    t.elapsed.as_secs_f64(),
                    fmt_rate(rate(t.records, t.elapsed)),
                    t.peak_growth_bytes().map_or("n/a".to_string(), mib1),
                    mib1(t.held_growth_bytes()),
                );
            }
        }
    }
    println!();
    println!("State digests after catch-up (docs/FORMAT.md §9.1):");
    println!();
    for r in reports {
        for d in &r.digests {
            println!(
                "- {} records, `{}`: {} entries, `{}`",
                r.records, d.name, d.entries, d.digest
            );
        }
    }
}
