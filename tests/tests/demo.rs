//! The newcomer's tour, run as the real binary (`ledgerd demo`): it must
//! finish, show the views, verify the incident's bundle and refuse the
//! tampered copy naming the record, and be safe to run again.

use std::process::Command;

use ledger_verify::bundle::{VerifyOptions, verify_bundle};
use ledger_verify::note::VerifierKey;

#[test]
fn the_demo_tours_the_product_and_reruns_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let run = || {
        Command::new(crate::LEDGERD)
            .arg("demo")
            .arg("--data")
            .arg(&data)
            .output()
    };

    let output = run().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "298 events: 298 appended",
        "CUST-WP-0051  open    0          1 wait, 1 todo, 2 done",
        "INC-2026-0042 SEV2 closed on registry",
        "time to acknowledge 4.0 min",
        "verified: 6 records, checkpoint size 298",
        "not verified: record seq",
        "payload does not match",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // What it wrote verifies with the key it printed, and only the copy fails.
    let key = std::fs::read_to_string(data.join("ledger-verifier.pub")).unwrap();
    let keys = [VerifierKey::parse(key.trim_end()).unwrap()];
    let options = VerifyOptions {
        keys: &keys,
        trusted_checkpoints: &[],
    };
    let good = std::fs::read(data.join("incident.bundle.json")).unwrap();
    assert_eq!(verify_bundle(&good, options).unwrap().records, 6);
    let tampered = std::fs::read(data.join("incident.tampered.bundle.json")).unwrap();
    assert!(verify_bundle(&tampered, options).is_err());

    let output = run().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("298 events: 0 appended, 298 already there"), "{stdout}");
}

/// `ledger demo` with no server hands over to `ledgerd demo` on --out.
#[test]
fn ledger_demo_without_a_server_runs_ledgerd_demo() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tour");
    let output = Command::new(crate::LEDGER)
        .args(["demo", "--ledgerd", crate::LEDGERD, "--out"])
        .arg(&out)
        .env_remove("LEDGER_SERVER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("verified: 6 records, checkpoint size 298"), "{stdout}");
    assert!(out.join("incident.bundle.json").is_file());
    assert!(out.join("ledger.key").is_file(), "the ledger's data lives in --out");

    // A ledgerd that is not there: one line naming it, non-zero exit.
    let missing = dir.path().join("no-such-ledgerd");
    let output = Command::new(crate::LEDGER)
        .args(["demo", "--out"])
        .arg(dir.path().join("other"))
        .arg("--ledgerd")
        .arg(&missing)
        .env_remove("LEDGER_SERVER")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-ledgerd"), "{stderr}");
}
