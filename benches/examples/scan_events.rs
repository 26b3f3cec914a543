//! The scan report's scanner workload alone, for profilers:
//!
//! ```text
//! cargo build --release -p ledger-benches --example scan_events
//! perf record -g target/release/examples/scan_events [PASSES] [--sample]
//! ```
//!
//! Scans 10 k bench events (256-byte `ops.health_checked` JSON; with
//! `--sample`, `SampleEvidence`) `PASSES` times (default 100) with the
//! default `SecretScanner` and prints the rate.

use std::time::Instant;

use ledger_benches::EventSource;
use ledger_core::SecretScanner;
use ledger_core::sample::SampleEvidence;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut passes = 100usize;
    let mut sample = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--sample" => sample = true,
            n => passes = n.parse()?,
        }
    }
    let events = if sample {
        SampleEvidence::new(42).take_events(10_000)
    } else {
        EventSource::default().events(10_000)
    };
    let scanner = SecretScanner::default();
    let start = Instant::now();
    for _ in 0..passes {
        scanner.scan_batch(&events)?;
    }
    let elapsed = start.elapsed();
    let n = (events.len() * passes) as f64;
    println!(
        "{:.0} events/s ({:.0} ns/event)",
        n / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / n
    );
    Ok(())
}
