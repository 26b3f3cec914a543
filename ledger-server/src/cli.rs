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
use ledger_core::Signer;
use ledger_core::signer::public_key_path;

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
    /// The five-minute tour: starts ledgerd in this process on a loopback
    /// port, streams a realistic evidence set, shows the task board, the
    /// incident record and a metrics rollup, makes an audit bundle for the
    /// incident, verifies it offline, then tampers with a copy and shows the
    /// verifier naming the broken record. Safe to run again: event ids are
    /// fixed, so a second run deduplicates instead of adding.
    Demo {
        /// Ledger data directory (created with a development key if new);
        /// the bundles are written here too.
        #[arg(long, default_value = "./ledger-demo")]
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
            telemetry::init_with_default(LogFormat::Text, "warn");
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

/// The tour (`ledger_client::cli::demo`) against a server started in this
/// process on a loopback port, on the data directory `data`.
fn demo(data: &Path, origin: &str) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(data);
    config.ledger.origin = origin.to_string();
    dev_key(&config.key_file, origin)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ledgerd-demo")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let url = format!("http://{}", listener.local_addr().context("no local address")?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::run(listener, config, async move {
            let _ = stopped.await;
        }));
        println!("ledgerd (in-process) serving {url} on {}", data.display());
        let outcome = async {
            let client = ledger_client::Client::connect(&url).await?;
            ledger_client::cli::demo::run(&client, data).await
        }
        .await;
        let _ = stop.send(());
        server.await.context("the server task failed")??;
        outcome?;
        println!(
            "\nThe data stays in {}: `ledgerd serve --data {}` serves it; the `ledger` CLI talks to it.",
            data.display(),
            data.display()
        );
        anyhow::Ok(())
    })
}
