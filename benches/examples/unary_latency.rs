//! Experiment: in-process `append_async` latency at a paced open-loop rate
//! (no gRPC), to split unary latency between the ledger and the transport.
//! `cargo run --release -p ledger-benches --features grpc --example unary_latency -- [--rate EVENTS_PER_S] [--calls N] [--no-sync]`
//! (defaults: 25,000 events/s, 20,000 calls; `--no-sync` skips fdatasync,
//! to split the disk's share from the rest).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_benches::{EventSource, bench_config, bench_dir, open_ledger_with, positive_arg};

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = bench_dir()?;
    let mut rate = 25_000.0;
    let mut calls = 20_000;
    let mut config = bench_config();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rate" => rate = positive_arg(args.next(), "--rate")? as f64,
            "--calls" => calls = positive_arg(args.next(), "--calls")?,
            "--no-sync" => config.unsafe_no_sync = true,
            other => anyhow::bail!("unknown argument {other:?} (--rate N, --calls N, --no-sync)"),
        }
    }
    let ledger = Arc::new(open_ledger_with(dir.path(), config)?);
    let mut source = EventSource::default();
    let batch = 10;
    let producers = 8;
    let requests = source.requests(calls, batch);
    let interval = Duration::from_secs_f64(batch as f64 * producers as f64 / rate);
    let mut shares: Vec<Vec<_>> = (0..producers).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        shares[i % producers].push(r);
    }
    let mut lat: Vec<u128> = rt.block_on(async {
        let mut tasks = Vec::new();
        for (p, share) in shares.into_iter().enumerate() {
            let ledger = Arc::clone(&ledger);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(interval.mul_f64(p as f64 / producers as f64)).await;
                let mut ticks = tokio::time::interval(interval);
                let mut calls = tokio::task::JoinSet::new();
                for r in share {
                    ticks.tick().await;
                    let ledger = Arc::clone(&ledger);
                    calls.spawn(async move {
                        let t = Instant::now();
                        ledger.append_async(r).await.map(|_| t.elapsed().as_micros())
                    });
                }
                let mut out = Vec::new();
                while let Some(c) = calls.join_next().await {
                    if let Ok(Ok(us)) = c {
                        out.push(us);
                    }
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all
    });
    lat.sort_unstable();
    let q = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "in-process append_async, {producers} producers, batch {batch}, open loop {rate} ev/s: p50 {:.2} ms p90 {:.2} p99 {:.2} max {:.2} ({} calls)",
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        lat.len()
    );
    Ok(())
}
