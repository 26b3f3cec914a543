//! `ledgerd` as a real child process, killed with SIGKILL: acknowledged
//! appends survive, and retries after a restart are idempotent.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ledger_client::{Client, proto};
use ledger_tests::server::Ledgerd;
use tokio_stream::StreamExt as _;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

#[test]
fn retry_after_kill_and_restart_returns_the_original_receipts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rt = runtime()?;
    let events: Vec<proto::Event> = (0..10)
        .map(|n| ledger_client::event("ci/deploy", "ci.deployed", format!("{{\"run\":{n}}}").into_bytes()))
        .collect();
    let request = proto::AppendRequest {
        events,
        ..Default::default()
    };

    let ledgerd = Ledgerd::spawn(crate::LEDGERD, dir.path())?;
    let first = rt.block_on(async { Client::connect(&ledgerd.url()).await?.append(request.clone()).await })?;
    assert!(!first.deduplicated);
    ledgerd.kill9()?;

    let ledgerd = Ledgerd::spawn(crate::LEDGERD, dir.path())?;
    let retry = rt.block_on(async { Client::connect(&ledgerd.url()).await?.append(request.clone()).await })?;
    assert!(retry.deduplicated, "the retry must not append twice");
    assert_eq!(retry.receipts, first.receipts);
    let size = rt
        .block_on(async { Client::connect(&ledgerd.url()).await?.info().await })?
        .size;
    assert_eq!(size, 10);
    Ok(())
}

/// Every receipt the CLI printed before the server died must be in the log
/// after a restart, with the same event id and record hash.
#[test]
fn sigkill_during_a_cli_streaming_append_loses_no_printed_receipt() -> anyhow::Result<()> {
    const EVENTS: usize = 200_000;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("events.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for n in 0..EVENTS {
        writeln!(
            file,
            r#"{{"stream":"service/s{}","type":"ops.health_checked","payload":{{"probe_run":{n},"ok":true}}}}"#,
            n % 16
        )?;
    }
    file.flush()?;
    drop(file);

    let data = dir.path().join("data");
    let ledgerd = Ledgerd::spawn(crate::LEDGERD, &data)?;
    let mut cli = Command::new(crate::LEDGER)
        .args([
            "--json",
            "--server",
            &ledgerd.url(),
            "append",
            "--batch",
            "50",
            "--file",
        ])
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = cli.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut receipts = Vec::new();
    // Let a few thousand events be acknowledged, then pull the plug.
    while receipts.len() < 3_000 {
        let line = lines.next().ok_or_else(|| anyhow::anyhow!("CLI ended early"))??;
        receipts.push(serde_json::from_str::<serde_json::Value>(&line)?);
    }
    ledgerd.kill9()?;
    // Collect the rest on a thread, so a CLI that hangs fails the test
    // instead of hanging it.
    let rest = std::thread::spawn(move || lines.collect::<Result<Vec<String>, _>>());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = cli.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            cli.kill()?;
            anyhow::bail!("the CLI did not exit after the server died");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest = rest.join().map_err(|_| anyhow::anyhow!("stdout reader panicked"))??;
    for line in rest {
        receipts.push(serde_json::from_str::<serde_json::Value>(&line)?);
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(
        &mut cli.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?,
        &mut stderr,
    )?;
    assert!(!status.success(), "the CLI must fail when the server dies");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one-line reason: {stderr:?}");
    assert!(stderr.starts_with("ledger: "), "{stderr:?}");
    assert!(receipts.len() < EVENTS, "the kill must land mid-stream");

    let ledgerd = Ledgerd::spawn(crate::LEDGERD, &data)?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = Client::connect(&ledgerd.url()).await?;
        let size = client.info().await?.size;
        assert!(size >= receipts.len() as u64, "log of {size} lost acknowledged events");
        let mut records = client
            .read(proto::ReadRequest {
                limit: receipts.len() as u64,
                ..Default::default()
            })
            .await?;
        for (i, receipt) in receipts.iter().enumerate() {
            let seq = receipt["seq"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("receipt without seq"))?;
            assert_eq!(seq, i as u64, "receipts are printed in seq order");
            let record = records
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("seq {seq} missing"))??;
            assert_eq!(record.seq, seq);
            let event = record
                .event
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("record without event"))?;
            assert_eq!(receipt["event_id"].as_str(), Some(event.id.as_str()));
            assert_eq!(
                receipt["record_hash"].as_str(),
                Some(hex_of(&record.record_hash).as_str())
            );
        }
        anyhow::Ok(())
    })?;
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
