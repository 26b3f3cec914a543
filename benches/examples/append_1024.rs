//! The report's batch-1024 workload alone, once, for profilers:
//!
//! ```text
//! cargo build --release -p ledger-benches --example append_1024
//! perf record -g --call-graph dwarf target/release/examples/append_1024 [BATCHES] [--no-sync] [--memtable IDS]
//! ```
//!
//! Appends `BATCHES` (default 196, as in the report) batches of 1024 events
//! to a fresh ledger, built before the clock starts, and prints the rate.
//! `--no-sync` sets `unsafe_no_sync` (NOT durable: the CPU ceiling).
//! `--memtable IDS` sets `id_memtable_ids` (a huge value keeps every id in
//! memory, as before the id index had run files: an A/B of its cost).

use ledger_benches::{EventSource, append_all, bench_config, bench_dir, open_ledger_with};
use ledger_core::LedgerConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut batches = 196usize;
    let mut no_sync = false;
    let mut memtable = LedgerConfig::default().id_memtable_ids;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-sync" => no_sync = true,
            "--memtable" => memtable = args.next().ok_or("--memtable needs a number")?.parse()?,
            n => batches = n.parse()?,
        }
    }
    let dir = bench_dir()?;
    let config = LedgerConfig {
        unsafe_no_sync: no_sync,
        id_memtable_ids: memtable,
        ..bench_config()
    };
    let ledger = open_ledger_with(dir.path(), config)?;
    let requests = EventSource::default().requests(batches, 1024);
    let elapsed = append_all(&ledger, requests)?;
    let events = batches * 1024;
    println!("id index: {:?}", ledger.id_index_stats());
    println!(
        "{events} events in {:.2} s: {:.0} events/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    ledger.close()?;
    Ok(())
}
