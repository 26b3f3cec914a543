//! The `ledgerd` command line: `serve` runs the gRPC service; `demo`
//! exercises the real ledger end to end on a data directory. The binary is
//! `fn main() { ledger_server::cli::main() }`, kept here so that tests can
//! build the same program as a binary of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogFormat;
use crate::server::load_or_create_key;
use crate::{ServeArgs, ServerConfig, telemetry};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ledger_core::signer::public_key_path;
use ledger_core::{AppendRequest, Event, Ledger, LedgerConfig, Signer};
use ledger_verify::merkle::verify_inclusion;
use ledger_verify::note::open_checkpoint;

#[derive(Debug, Parser)]
#[command(name = "ledgerd", version, about = "Evidence ledger daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the ledger over gRPC (ledger.v1.Ledger, grpc.health.v1, reflection).
    /// On first start, creates the ledger and a development signing key.
    /// Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Append a realistic set of evidence to a ledger, then prove and verify
    /// one record against a signed checkpoint. Safe to run repeatedly: the
    /// event ids are fixed, so a second run is deduplicated, not duplicated.
    Demo {
        /// Ledger data directory (created with a development key if new).
        #[arg(long, env = "LEDGER_DATA", default_value = "./ledger-data")]
        data: PathBuf,
        /// Checkpoint origin for a new ledger.
        #[arg(long, env = "LEDGER_ORIGIN", default_value = "evidence-ledger.local/dev")]
        origin: String,
    },
    /// Manage the ledger signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Replace the signing key (with `ledgerd` stopped). Appends a
    /// `ledger.key_rotated` record signed by both keys, retires the old key
    /// to `<data>/retired-keys/` and keeps every verifier key ever used in
    /// `<data>/ledger-keys.pub`, so bundles signed before keep verifying.
    /// Safe to run again after a crash: it resumes.
    Rotate {
        /// Ledger data directory.
        #[arg(long, env = "LEDGER_DATA", default_value = "./ledger-data")]
        data: PathBuf,
        /// The current key file [default: <data>/ledger.key].
        #[arg(long, env = "LEDGER_KEY_FILE")]
        key_file: Option<PathBuf>,
    },
}

/// Runs `ledgerd` on the process arguments.
pub fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            telemetry::init(config.log_format);
            serve(config)
        }
        Command::Demo { data, origin } => {
            telemetry::init(LogFormat::Text);
            demo(&data, &origin)
        }
        Command::Keys(KeysCommand::Rotate { data, key_file }) => {
            telemetry::init(LogFormat::Text);
            let key_file = key_file.unwrap_or_else(|| data.join("ledger.key"));
            crate::keys::rotate(&data, &key_file)
        }
    }
}

fn serve(config: ServerConfig) -> anyhow::Result<()> {
    // Created here (not inside `run`) so the verifier key reaches stdout.
    dev_key(&config.key_file, &config.ledger.origin)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ledgerd-rt")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        let addr = listener.local_addr().context("listen: no local address")?;
        println!("ledgerd listening on {addr}");
        crate::run(listener, config, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

/// Loads the signing key, creating a development key on first start and
/// printing its verifier key (also written to `<key>.pub`).
fn dev_key(path: &Path, origin: &str) -> anyhow::Result<Arc<dyn Signer>> {
    let created = !path.exists();
    let signer = load_or_create_key(path, origin)?;
    if created {
        println!(
            "created development signing key {} (mode 0600); verifier key (also in {}):\n{}",
            path.display(),
            public_key_path(path).display(),
            signer.verifier_key()?
        );
    }
    Ok(signer)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Fixed, distinct ids so reruns are idempotent retries.
fn demo_id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn demo_events() -> Vec<AppendRequest> {
    let event = |n: u128, stream: &str, event_type: &str, payload: serde_json::Value| {
        let mut event = Event::json(stream, event_type, payload.to_string());
        event.id = demo_id(n);
        event.occurred_at = chrono_free_time(n);
        event.metadata.correlation_id = "CUST-WP-0051".to_string();
        event.metadata.extra.insert("hub".to_string(), "ops-hub".to_string());
        event
    };
    vec![
        AppendRequest::new(vec![
            event(
                1,
                "service/registry",
                "ops.endpoint_verified",
                serde_json::json!({
                "endpoint": "https://registry.example/v2/", "expected_status": 401,
                "observed_header": "Docker-Distribution-Api-Version: registry/2.0"}),
            ),
            event(
                2,
                "service/registry",
                "ops.backup_verified",
                serde_json::json!({
                "backup": "registry-2026-11-23", "bytes": 73_400_320, "checksum_ok": true}),
            ),
        ]),
        AppendRequest::new(vec![event(
            3,
            "task/CUST-WP-0051-T03",
            "task.status_changed",
            serde_json::json!({
            "from": "progress", "to": "done", "evidence": ["service/registry#1"]}),
        )]),
        AppendRequest::new(vec![event(
            4,
            "incident/INC-2026-0042",
            "incident.opened",
            serde_json::json!({
            "severity": "SEV2", "service": "registry", "title": "push latency above SLO"}),
        )]),
    ]
}

/// Demo times: fixed, so reruns send byte-identical events.
fn chrono_free_time(n: u128) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_795_392_000 + n as i64 * 60, 0).unwrap_or_default()
}

fn demo(data: &Path, origin: &str) -> anyhow::Result<()> {
    let key_file = data.join("ledger.key");
    let signer = dev_key(&key_file, origin)?;
    let config = LedgerConfig {
        origin: origin.to_string(),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(data, config, signer)?;
    println!(
        "ledger {} at {} holds {} records",
        ledger.identity().ledger_id,
        data.display(),
        ledger.len()
    );
    let mut proved = None;
    for request in demo_events() {
        let outcome = ledger.append(request)?;
        for receipt in &outcome.receipts {
            println!(
                "{} seq {:>4}  version {:>3}  record {}  {}",
                if outcome.deduplicated { "dedup " } else { "append" },
                receipt.seq,
                receipt.stream_version,
                &hex::encode(receipt.record_hash)[..16],
                receipt.event_id
            );
        }
        proved.get_or_insert(outcome.receipts[0]);
    }
    let checkpoint = ledger.checkpoint();
    println!("\nsigned checkpoint:\n{}", checkpoint.note);
    let key = ledger.verifier_key()?;
    let verified = open_checkpoint(&checkpoint.note, std::slice::from_ref(&key))?;
    let receipt = proved.context("no receipt")?;
    let proof = ledger.inclusion_proof(receipt.seq, verified.size)?;
    let leaf = ledger.identity().tree_hash.leaf_hash(&receipt.record_hash);
    verify_inclusion(
        ledger.identity().tree_hash,
        receipt.seq,
        verified.size,
        &leaf,
        &proof,
        &verified.root,
    )?;
    println!(
        "verified: record seq {} is in the signed tree of size {} ({} proof hashes), key {}",
        receipt.seq,
        verified.size,
        proof.len(),
        key
    );
    ledger.close()?;
    Ok(())
}
