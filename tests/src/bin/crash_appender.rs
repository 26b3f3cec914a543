//! Child process for the crash test: appends batches from several threads
//! until it is killed, printing one `ack` line per acknowledged batch.
//!
//! Usage: `crash-appender <ledger dir> <threads>`. Each line is
//! `ack <batch id> <seq>:<event id> ...`, written and flushed only after
//! `Ledger::append` returned Ok — so every printed event was acknowledged.
//! Every event carries `batch` and `batch_len` metadata so the parent can
//! check that batches survive whole or not at all.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use ledger_core::{AppendRequest, Event};
use uuid::Uuid;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: crash-appender <dir> <threads>"))?;
    let threads: usize = args.next().unwrap_or_else(|| "4".to_string()).parse()?;
    let ledger = Arc::new(ledger_tests::open(std::path::Path::new(&dir))?);
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    println!("ready {}", ledger.len());
    let mut handles = Vec::new();
    for thread in 0..threads {
        let ledger = Arc::clone(&ledger);
        let stdout = Arc::clone(&stdout);
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            for round in 0u64.. {
                let batch_len = 1 + (round as usize + thread) % 7;
                let batch = Uuid::now_v7().to_string();
                let events: Vec<Event> = (0..batch_len)
                    .map(|i| {
                        let mut event = ledger_tests::health_event(&format!("probe-{thread}"), round * 10 + i as u64);
                        event.metadata.extra.insert("batch".to_string(), batch.clone());
                        event
                            .metadata
                            .extra
                            .insert("batch_len".to_string(), batch_len.to_string());
                        event
                    })
                    .collect();
                let outcome = ledger.append(AppendRequest::new(events))?;
                let mut line = format!("ack {batch}");
                for receipt in &outcome.receipts {
                    line.push_str(&format!(" {}:{}", receipt.seq, receipt.event_id));
                }
                let mut out = stdout.lock().map_err(|_| anyhow::anyhow!("stdout lock"))?;
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            Ok(())
        }));
    }
    for handle in handles {
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("appender thread panicked"))??;
    }
    Ok(())
}
