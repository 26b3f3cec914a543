//! The `ledger` CLI against a real `ledgerd` child process.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use ledger_tests::server::Ledgerd;

fn ledger(server: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    let mut child = Command::new(crate::LEDGER)
        .arg("--server")
        .arg(server)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(text) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    Ok(child.wait_with_output()?)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn append_read_checkpoint_and_prove_from_the_command_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let ledgerd = Ledgerd::spawn(crate::LEDGERD, &data)?;
    let url = ledgerd.url();

    let one = ledger(
        &url,
        &[
            "--json",
            "append",
            "--stream",
            "task/CUST-WP-0051-T03",
            "--type",
            "task.status_changed",
            "--payload",
            r#"{"to":"done"}"#,
        ],
        None,
    )?;
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let receipt: serde_json::Value = serde_json::from_str(stdout(&one).trim())?;
    assert_eq!(receipt["seq"], 0);
    assert_eq!(receipt["stream_version"], 0);
    assert_eq!(receipt["record_hash"].as_str().map(str::len), Some(64));

    let lines: String = (0..25)
        .map(|n| {
            format!(
                "{{\"stream\":\"incident/INC-2026-0042\",\"type\":\"incident.note_added\",\"payload\":{{\"n\":{n}}}}}\n"
            )
        })
        .collect();
    let many = ledger(
        &url,
        &["--json", "append", "--file", "-", "--batch", "10"],
        Some(&lines),
    )?;
    assert!(many.status.success(), "{}", String::from_utf8_lossy(&many.stderr));
    let seqs: Vec<u64> = stdout(&many)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).map(|v| v["seq"].as_u64().unwrap_or(u64::MAX)))
        .collect::<Result<_, _>>()?;
    assert_eq!(seqs, (1..26).collect::<Vec<_>>());

    let read = ledger(
        &url,
        &[
            "--json",
            "read",
            "--stream",
            "incident/INC-2026-0042",
            "--from-version",
            "20",
        ],
        None,
    )?;
    assert!(read.status.success());
    let records: Vec<serde_json::Value> = stdout(&read)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 5);
    assert_eq!(records[0]["payload"]["n"], 20);

    // The checkpoint is printed exactly as signed: it opens with the key
    // written beside the server's key file.
    let checkpoint = ledger(&url, &["checkpoint"], None)?;
    assert!(checkpoint.status.success());
    let note = stdout(&checkpoint);
    let key_text = std::fs::read_to_string(data.join("ledger.key.pub"))?;
    let key = ledger_verify::note::VerifierKey::parse(key_text.trim())?;
    let opened = ledger_verify::note::open_checkpoint(&note, &[key])?;
    assert_eq!(opened.size, 26);

    let key_file = data.join("ledger.key.pub");
    let key_arg = key_file.to_string_lossy();
    let prove = ledger(&url, &["--json", "prove", "7", "--key", &key_arg], None)?;
    assert!(prove.status.success(), "{}", String::from_utf8_lossy(&prove.stderr));
    let proved: serde_json::Value = serde_json::from_str(stdout(&prove).trim())?;
    assert_eq!(
        (proved["verified"].as_bool(), proved["seq"].as_u64()),
        (Some(true), Some(7))
    );
    let consistency = ledger(&url, &["prove", "--consistency", "3", "--key", &key_arg], None)?;
    assert!(consistency.status.success());
    assert!(stdout(&consistency).starts_with("verified: tree of size 3 is a prefix"));

    // A proof checked against a key the ledger did not sign with fails.
    let stranger = ledger_core::LocalKeySigner::from_seed(ledger_tests::TEST_ORIGIN, [9; 32])?;
    let stranger_key = ledger_core::Signer::verifier_key(&stranger)?.to_string();
    let refused = ledger(&url, &["prove", "7", "--key", &stranger_key], None)?;
    assert!(!refused.status.success());
    Ok(())
}

#[test]
fn failures_exit_non_zero_with_one_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledgerd = Ledgerd::spawn(crate::LEDGERD, dir.path())?;
    let url = ledgerd.url();
    let cases: [(&[&str], Option<&str>, &str); 7] = [
        (
            &["append", "--stream", "s", "--type", "t", "--expect-version", "3"],
            None,
            "expected version 3",
        ),
        (
            &["append", "--file", "-"],
            Some("{\"stream\":\"s\"}\n"),
            "line 1: type: required",
        ),
        (&["get", "12345"], None, "12345 is beyond the log"),
        // Time travel: a seq past the log, a time that is not one.
        (&["tasks", "--at", "12345"], None, "as_of.seq: 12345 is beyond the log"),
        (
            &["incidents", "--at", "2026-13-01T00:00:00Z"],
            None,
            "--at: \"2026-13-01T00:00:00Z\" is neither a seq nor an RFC 3339 time",
        ),
        (&["workstreams", "--at=-1"], None, "--at: -1 is not a seq"),
        (
            &["append", "--stream", "s", "--type", "t", "--payload", "{nope"],
            None,
            "--payload: not JSON",
        ),
    ];
    for (args, input, expected) in cases {
        let output = ledger(&url, args, input)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} lacks {expected:?}");
    }
    let unreachable = ledger("http://127.0.0.1:1", &["info"], None)?;
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).starts_with("ledger: cannot connect"));
    Ok(())
}
