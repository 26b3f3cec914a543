//! The secret scan's cost: the scanner's raw rate, and in-process ingest
//! with and without it, measured in one run. Prints one Markdown table.
//!
//! ```text
//! cargo run --release -p ledger-benches --bin scan_report [-- --runs N] [--quick]
//! ```
//!
//! Events are built before the clock starts. Timed, each `--runs` times
//! (default 5), median and min–max, with the "on" and "off" variants of a
//! row interleaved run by run so load drift hits both alike:
//!
//! 1. **scanner alone** (`SecretScanner::scan_batch`, default config) over
//!    the bench's 256-byte `ops.health_checked` events, over
//!    `SampleEvidence` (the demo's mix of workplans, incidents, metrics
//!    and ops-hub events) and over 64 KiB `text/plain` deploy logs, beside
//!    two baselines over the same bytes: `serde_json` parsing into
//!    `IgnoredAny` (the JSON check validation does without the scan, which
//!    the scan's own walk replaces) and BLAKE3 (the payload hash every
//!    append computes). MB/s counts payload plus metadata bytes;
//! 2. **`Ledger::check`** (every stateless check, the scan included, no
//!    writer) of batches of 1024 bench events, scan on and off;
//! 3. **`Ledger::append`** of the bench events in batches of 1024 and of 64
//!    with `unsafe_no_sync` (CPU-bound: where the scan's cost shows), and
//!    in batches of 1024 with fsync (the default), scan on and off, a fresh
//!    ledger per run.
//!
//! `--quick`: a tenth of the events, one run (a smoke test).

use std::io;
use std::time::{Duration, Instant};

use ledger_benches::{EventSource, append_all, bench_config, bench_dir, open_ledger_with};
use ledger_core::sample::SampleEvidence;
use ledger_core::{AppendRequest, Event, LedgerConfig, ScanConfig, SecretScanner};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let mut runs = 5usize;
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = ledger_benches::positive_arg(args.next(), "--runs")?;
            }
            "--quick" => quick = true,
            other => return Err(io::Error::other(format!("unknown argument {other:?}")).into()),
        }
    }
    let scale = if quick {
        runs = 1;
        10
    } else {
        1
    };
    let mut table = Table::default();

    eprintln!("scanner alone…");
    let scanner = SecretScanner::default();
    let health = EventSource::default().events(200_000 / scale);
    let sample = SampleEvidence::new(42).take_events(200_000 / scale);
    let logs: Vec<Event> = (0..2_000 / scale).map(deploy_log).collect();
    for (name, events) in [
        ("256 B `ops.health_checked` JSON", &health),
        ("`SampleEvidence` mix (JSON)", &sample),
        ("64 KiB `text/plain` deploy logs", &logs),
    ] {
        scanner_rows(&mut table, &scanner, name, events, runs)?;
    }

    eprintln!("Ledger::check…");
    check_rows(&mut table, 200_000 / scale, runs)?;

    eprintln!("Ledger::append…");
    for (batch, sync, events) in [(1024, false, 200_000), (64, false, 100_000), (1024, true, 50_000)] {
        append_rows(&mut table, batch, sync, events / scale, runs)?;
    }

    table.print();
    println!();
    println!(
        "Runs per row: {runs}; cells are median (min–max). \"vs\" compares median rates with the named row \
         (for scan-on rows: the scan-off row of the same workload)."
    );
    Ok(())
}

/// A 64 KiB deploy log: timestamps, commands, digests, URLs; no secrets.
fn deploy_log(n: usize) -> Event {
    let mut text = String::with_capacity(64 * 1024 + 256);
    let mut line = 0usize;
    while text.len() < 64 * 1024 {
        text.push_str(&format!(
            "2026-01-12T14:{:02}:{:02}Z run {n} step {line}: pulled registry.example/ops/hub@sha256:\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 from https://registry.example/v2/ \
             (commit 9fceb02d0ae598e95dc970b74767f19372d61af8) token_count={line} auth=oidc status=ok\n",
            line / 60 % 60,
            line % 60
        ));
        line += 1;
    }
    let mut event = Event::json("ops-hub/deploy", "ops.deploy_logged", text.into_bytes());
    event.content_type = "text/plain; charset=utf-8".to_string();
    event
}

fn scanned_bytes(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| {
            let m = &e.metadata;
            e.payload.len()
                + m.correlation_id.len()
                + m.causation_id.len()
                + m.trace_id.len()
                + m.extra.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        })
        .sum()
}

fn scanner_rows(
    table: &mut Table,
    scanner: &SecretScanner,
    name: &str,
    events: &[Event],
    runs: usize,
) -> AnyResult<()> {
    let bytes = scanned_bytes(events);
    let (mut scan, mut parse, mut hash) = (Vec::new(), Vec::new(), Vec::new());
    let json = events.iter().all(|e| e.content_type == "application/json");
    for _ in 0..runs {
        let start = Instant::now();
        scanner
            .scan_batch(events)
            .map_err(|hit| io::Error::other(format!("false positive in the bench data: {hit}")))?;
        scan.push(start.elapsed());
        if json {
            let start = Instant::now();
            for event in events {
                std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(&event.payload)?);
            }
            parse.push(start.elapsed());
        }
        let start = Instant::now();
        for event in events {
            std::hint::black_box(ledger_verify::hash::blake3(&event.payload));
        }
        hash.push(start.elapsed());
    }
    let n = events.len() as u64;
    let label = format!("{name}: {} events, {:.1} MiB", n, bytes as f64 / (1024.0 * 1024.0));
    let blake3 = Rates::of(&hash, n);
    table.row(&format!("BLAKE3 of the payloads — {label}"), n, &hash, bytes, None);
    if json {
        table.row(
            &format!("`serde_json` → `IgnoredAny` (validation's parse) — {label}"),
            n,
            &parse,
            bytes,
            Some(("BLAKE3", blake3.median)),
        );
        let parse_rate = Rates::of(&parse, n).median;
        table.row(
            &format!("**scanner** — {label}"),
            n,
            &scan,
            bytes,
            Some(("the parse", parse_rate)),
        );
    } else {
        table.row(
            &format!("**scanner** — {label}"),
            n,
            &scan,
            bytes,
            Some(("BLAKE3", blake3.median)),
        );
    }
    Ok(())
}

fn config(scan: bool, sync: bool) -> LedgerConfig {
    LedgerConfig {
        unsafe_no_sync: !sync,
        secret_scan: if scan {
            ScanConfig::default()
        } else {
            ScanConfig::disabled()
        },
        ..bench_config()
    }
}

fn check_rows(table: &mut Table, events: usize, runs: usize) -> AnyResult<()> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let dirs = (bench_dir()?, bench_dir()?);
    let ledger_on = open_ledger_with(dirs.0.path(), config(true, false))?;
    let ledger_off = open_ledger_with(dirs.1.path(), config(false, false))?;
    for _ in 0..runs {
        for (ledger, times) in [(&ledger_on, &mut on), (&ledger_off, &mut off)] {
            let requests = EventSource::default().requests(events / 1024, 1024);
            let start = Instant::now();
            for request in requests {
                std::hint::black_box(ledger.check(request)?);
            }
            times.push(start.elapsed());
        }
    }
    ledger_on.close()?;
    ledger_off.close()?;
    let n = (events / 1024 * 1024) as u64;
    let bytes = n as usize * ledger_benches::PAYLOAD_BYTES;
    let off_rate = Rates::of(&off, n).median;
    table.row("`Ledger::check`, batches of 1024, scan **off**", n, &off, bytes, None);
    table.row(
        "`Ledger::check`, batches of 1024, scan **on**",
        n,
        &on,
        bytes,
        Some(("scan off", off_rate)),
    );
    Ok(())
}

fn append_rows(table: &mut Table, batch: usize, sync: bool, events: usize, runs: usize) -> AnyResult<()> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (scan, times) in [(true, &mut on), (false, &mut off)] {
            let dir = bench_dir()?;
            let ledger = open_ledger_with(dir.path(), config(scan, sync))?;
            let requests: Vec<AppendRequest> = EventSource::default().requests(events / batch, batch);
            times.push(append_all(&ledger, requests)?);
            ledger.close()?;
        }
    }
    let n = (events / batch * batch) as u64;
    let bytes = n as usize * ledger_benches::PAYLOAD_BYTES;
    let mode = if sync { "fsync" } else { "`unsafe_no_sync`" };
    let off_rate = Rates::of(&off, n).median;
    table.row(
        &format!("`Ledger::append`, batches of {batch}, {mode}, scan **off**"),
        n,
        &off,
        bytes,
        None,
    );
    table.row(
        &format!("`Ledger::append`, batches of {batch}, {mode}, scan **on**"),
        n,
        &on,
        bytes,
        Some(("scan off", off_rate)),
    );
    Ok(())
}

/// Median, min and max of a row's rates.
struct Rates {
    median: f64,
    min: f64,
    max: f64,
}

impl Rates {
    fn of(times: &[Duration], units: u64) -> Rates {
        let mut rates: Vec<f64> = times.iter().map(|t| units as f64 / t.as_secs_f64()).collect();
        rates.sort_by(f64::total_cmp);
        Rates {
            median: rates[rates.len() / 2],
            min: rates[0],
            max: rates[rates.len() - 1],
        }
    }
}

/// The Markdown table, printed at the end so progress messages (stderr)
/// do not interleave with it.
#[derive(Default)]
struct Table {
    rows: Vec<String>,
}

impl Table {
    fn row(&mut self, label: &str, events: u64, times: &[Duration], bytes: usize, baseline: Option<(&str, f64)>) {
        let rates = Rates::of(times, events);
        let mb = Rates::of(times, bytes as u64);
        let ratio = baseline.map_or(String::new(), |(name, rate)| {
            format!("{:.0} % of {name}", 100.0 * rates.median / rate)
        });
        self.rows.push(format!(
            "| {label} | {} ({}–{}) | {:.0} ({:.0}–{:.0}) | {ratio} |",
            fmt_rate(rates.median),
            fmt_rate(rates.min),
            fmt_rate(rates.max),
            mb.median / 1e6,
            mb.min / 1e6,
            mb.max / 1e6,
        ));
    }

    fn print(&self) {
        println!("| what | events/s | MB/s | vs |");
        println!("|---|---:|---:|---:|");
        for row in &self.rows {
            println!("{row}");
        }
    }
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.0} k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    }
}
