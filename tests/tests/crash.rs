//! Durability shown, not claimed: a real child process appends from several
//! threads and is killed with SIGKILL at random moments, many rounds over the
//! same ledger. After each kill the ledger must reopen, hold every
//! acknowledged event at its acknowledged seq, hold only whole batches, and
//! keep accepting appends.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

/// xorshift: random kill delays without a rand dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_never_loses_an_acknowledged_event() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let exe = env!("CARGO_BIN_EXE_crash-appender");
    let mut acked: HashMap<u64, Uuid> = HashMap::new();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let rounds = 25;
    for round in 0..rounds {
        let mut child = Command::new(exe)
            .arg(dir.path())
            .arg("4")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child has opened the ledger, then let it run a
        // random while before killing it mid-append.
        let ready = lines_rx.recv_timeout(Duration::from_secs(60))?;
        assert!(ready.starts_with("ready "), "unexpected first line {ready:?}");
        let delay = 20 + next_random(&mut seed) % 300;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill()?; // SIGKILL on Unix
        child.wait()?;
        reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
        let mut new_acks = 0;
        for line in lines_rx.try_iter() {
            let mut parts = line.split_whitespace();
            assert_eq!(parts.next(), Some("ack"), "bad line {line:?}");
            parts.next();
            for pair in parts {
                let (seq, id) = pair.split_once(':').ok_or_else(|| anyhow::anyhow!("bad pair {pair}"))?;
                let previous = acked.insert(seq.parse()?, Uuid::parse_str(id)?);
                assert!(previous.is_none(), "seq {seq} acknowledged twice");
                new_acks += 1;
            }
        }
        // Reopen in this process and check.
        let ledger = ledger_tests::open(dir.path())?;
        let len = ledger.len();
        let records = ledger.read_range(0, len as usize)?;
        for (&seq, &id) in &acked {
            assert!(
                seq < len,
                "round {round}: acknowledged seq {seq} missing (log has {len})"
            );
            assert_eq!(
                records[seq as usize].event_id(),
                id,
                "round {round}: seq {seq} holds another event"
            );
        }
        let mut batches: HashMap<String, (usize, usize)> = HashMap::new();
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.seq(), i as u64);
            if i > 0 {
                assert_eq!(record.prev_hash(), records[i - 1].record_hash, "chain broken at {i}");
            }
            let extra = &record.header.event.metadata.extra;
            if let (Some(batch), Some(batch_len)) = (extra.get("batch"), extra.get("batch_len")) {
                let entry = batches.entry(batch.clone()).or_insert((0, batch_len.parse()?));
                entry.0 += 1;
            }
        }
        for (batch, (found, expected)) in &batches {
            assert_eq!(found, expected, "round {round}: batch {batch} is partial");
        }
        // And it keeps accepting appends.
        let outcome = ledger.append(ledger_tests::health_batch("after-crash", round, 1))?;
        assert_eq!(outcome.receipts[0].seq, len);
        acked.insert(len, outcome.receipts[0].event_id);
        ledger.close()?;
        eprintln!(
            "round {round}: killed after {delay} ms, {new_acks} new acks, log has {} records",
            len + 1
        );
    }
    assert!(acked.len() > rounds as usize, "the child never acknowledged anything");
    Ok(())
}
