//! Architecture invariant, checked: the verifier depends on no async
//! runtime, no storage engine and no gRPC stack, so an auditor can read what
//! it runs in an afternoon.

use std::process::Command;

#[test]
fn verifier_has_no_runtime_storage_or_grpc_dependencies() -> Result<(), Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "ledger-verify",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()?;
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout)?;
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(
        crates.contains(&"ledger-verify"),
        "unexpected cargo tree output:\n{tree}"
    );
    for forbidden in ["tokio", "sled", "tonic", "prost", "hyper", "mio"] {
        assert!(
            !crates.contains(&forbidden),
            "ledger-verify depends on {forbidden}:\n{tree}"
        );
    }
    Ok(())
}
