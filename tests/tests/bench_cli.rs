//! `ledger bench`, the load generator, run for real: against an in-process
//! server, and against a `ledgerd` it starts itself (whose RSS and disk use
//! it then reports). Only that it measures what happened is checked here;
//! how fast is for BENCHMARKS.md.

use anyhow::{Context as _, ensure};
use ledger_tests::server::{TestServer, server_config};
use serde_json::Value;

fn bench(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(crate::LEDGER)
        .arg("--json")
        .arg("bench")
        .args(args)
        .env_remove("LEDGER_SERVER")
        .env_remove("LEDGER_API_KEY")
        .output()?)
}

fn summary(out: &std::process::Output) -> anyhow::Result<Value> {
    ensure!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone())?;
    Ok(serde_json::from_str(text.trim())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_counts_what_the_server_acknowledged_and_delivered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        bench(&[
            "--server",
            &url,
            "--duration",
            "1",
            "--producers",
            "2",
            "--batch",
            "10",
            "--subscribers",
            "3",
            "--rate",
            "2000",
        ])
    })
    .await??;
    let s = summary(&out)?;
    let events = s["events"].as_u64().context("events")?;
    ensure!(events > 0 && s["errors"] == 0, "{s}");
    ensure!(
        s["delivery_ms"]["count"].as_u64() == Some(events),
        "every event delivered once: {s}"
    );
    ensure!(s["ack_ms"]["count"].as_u64() == Some(events / 10), "{s}");
    // The percentile curves `benches/report/render.py` plots: quantiles
    // rising to 1, latencies never falling, the last one the max.
    for (curve, max) in [
        ("ack_percentiles_ms", "ack_ms"),
        ("delivery_percentiles_ms", "delivery_ms"),
    ] {
        let points = s[curve].as_array().context("percentiles")?;
        let pairs: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
            .collect();
        ensure!(pairs.len() == points.len() && !pairs.is_empty(), "{curve}: {s}");
        ensure!(
            pairs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{curve}: {s}"
        );
        ensure!(pairs.last().map(|p| p.0) == Some(1.0), "{curve}: {s}");
        ensure!(pairs.last().map(|p| p.1) == s[max]["max"].as_f64(), "{curve}: {s}");
    }
    // The log holds exactly what was acknowledged.
    let info = server.client().await?.info().await?;
    ensure!(info.size == events, "log size {} vs {events} acknowledged", info.size);
    server.stop().await
}

#[test]
fn bench_starts_its_own_ledgerd_and_reports_its_footprint() -> anyhow::Result<()> {
    let s = summary(&bench(&[
        "--ledgerd",
        crate::LEDGERD,
        "--duration",
        "1",
        "--producers",
        "1",
        "--unary",
        "--batch",
        "5",
        "--signed",
    ])?)?;
    ensure!(s["mode"] == "unary" && s["events"].as_u64() > Some(0), "{s}");
    ensure!(s["signed"] == true && s["errors"] == 0, "{s}");
    ensure!(s["server_rss_bytes"]["peak"].as_u64() > Some(0), "{s}");
    ensure!(s["disk_bytes_per_event"].as_f64() > Some(256.0), "{s}");
    // Measured after SIGTERM, once the server cut its preallocated zeros.
    ensure!(s["disk_measured_after_stop"] == true, "{s}");
    Ok(())
}

#[test]
fn bench_refuses_a_load_it_cannot_run() -> anyhow::Result<()> {
    for (args, named) in [
        (&["--producers", "0"][..], "--producers"),
        (&["--duration", "0"][..], "--duration"),
        (&["--sign-key", "k"][..], "--key-id"),
        (&["--signed", "--sign-key", "k", "--key-id", "i"][..], "--signed"),
    ] {
        let out = bench(&[&["--ledgerd", crate::LEDGERD][..], args].concat())?;
        ensure!(!out.status.success(), "{args:?} ran");
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(stderr.contains(named), "{args:?}: {stderr}");
    }
    Ok(())
}
