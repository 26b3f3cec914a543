//! The `ledgerd` command line: `serve` runs the gRPC service; `demo`
//! exercises the real ledger end to end on a data directory; `keys` rotates
//! the signing key; `auth` manages principals, API keys and client
//! certificates. The binary is `fn main() { ledger_server::cli::main() }`,
//! kept here so that tests can build the same program as a binary of their
//! own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::{CertFingerprint, Grant, Principals};
use crate::config::{LogFormat, PRINCIPALS_FILE};
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
    Serve(Box<ServeArgs>),
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
    /// Manage principals, their API keys and client certificates (the
    /// principals file). A running ledgerd picks changes up within a second
    /// or two; one started without principals (development mode) must be
    /// restarted.
    #[command(subcommand)]
    Auth(AuthCommand),
}

/// Where the principals file is.
#[derive(Debug, clap::Args)]
struct PrincipalsFileArgs {
    /// Ledger data directory (the file is <data>/principals.toml).
    #[arg(long, env = "LEDGER_DATA", default_value = "./ledger-data")]
    data: PathBuf,
    /// The principals file [default: <data>/principals.toml].
    #[arg(long, env = "LEDGER_PRINCIPALS")]
    principals: Option<PathBuf>,
}

impl PrincipalsFileArgs {
    fn path(&self) -> PathBuf {
        self.principals
            .clone()
            .unwrap_or_else(|| self.data.join(PRINCIPALS_FILE))
    }
}

/// When a new key stops working.
#[derive(Debug, clap::Args)]
struct ExpiryArgs {
    /// Expiry time, RFC 3339 (e.g. 2027-01-31T00:00:00Z) [default: never].
    #[arg(long, conflicts_with = "expires_in_days")]
    expires_at: Option<String>,
    /// Expiry in days from now [default: never].
    #[arg(long)]
    expires_in_days: Option<u32>,
}

impl ExpiryArgs {
    fn resolve(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        if let Some(days) = self.expires_in_days {
            return Ok(Some(now + chrono::Duration::days(i64::from(days))));
        }
        self.expires_at
            .as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .with_context(|| format!("--expires-at: {t:?} is not an RFC 3339 time"))
            })
            .transpose()
    }
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Add a principal with grants and a first API key. The key is printed
    /// on stdout, once; only its salted hash is written to the file.
    AddPrincipal {
        #[command(flatten)]
        file: PrincipalsFileArgs,
        /// The principal's name (in logs and PERMISSION_DENIED messages).
        #[arg(long)]
        name: String,
        /// NAMESPACE:PERMISSIONS, e.g. ops-hub:append, ci:read,append,
        /// *:admin (every namespace), :read (streams without '/'). Repeatable.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Make another API key for a principal (to rotate keys: create, switch
    /// the client, revoke the old one). Printed on stdout, once.
    CreateKey {
        #[command(flatten)]
        file: PrincipalsFileArgs,
        /// The principal.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    /// Revoke an API key by its id (the 16 hex digits after `lk_`).
    RevokeKey {
        #[command(flatten)]
        file: PrincipalsFileArgs,
        /// The key id.
        #[arg(long)]
        key_id: String,
    },
    /// Bind a client certificate (mutual TLS, `serve --tls-client-ca`) to
    /// a principal by its SHA-256 fingerprint, which is printed on stdout.
    /// A certificate can be bound once, ever (revoked ones included).
    AddCert {
        #[command(flatten)]
        file: PrincipalsFileArgs,
        /// The principal.
        #[arg(long)]
        name: String,
        /// The client's certificate (PEM; of a chain file, the first
        /// certificate, which is the client's own).
        #[arg(long)]
        cert: PathBuf,
    },
    /// Revoke a client certificate by its SHA-256 fingerprint (as `auth
    /// add-cert` or `auth list` print it, or as `openssl x509 -noout
    /// -fingerprint -sha256` does, colons and all).
    RevokeCert {
        #[command(flatten)]
        file: PrincipalsFileArgs,
        /// The fingerprint.
        #[arg(long)]
        sha256: String,
    },
    /// List principals, grants, keys and client certificates (ids,
    /// fingerprints and dates; never secrets).
    List {
        #[command(flatten)]
        file: PrincipalsFileArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Replace the signing key (with `ledgerd` stopped; on a running
    /// `ledgerd`, `ledger admin rotate-signing-key`). Appends a
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
        Command::Auth(command) => auth(command),
    }
}

/// `ledgerd auth ...`: edits the principals file. New keys go to stdout
/// alone (so `KEY=$(ledgerd auth add-principal ...)` works); everything
/// else to stderr.
fn auth(command: AuthCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match command {
        AuthCommand::AddPrincipal {
            file,
            name,
            grants,
            expiry,
        } => {
            let path = file.path();
            let grants = grants
                .iter()
                .map(|g| Grant::parse(g))
                .collect::<Result<Vec<_>, _>>()
                .context("--grant")?;
            let expires_at = expiry.resolve(now)?;
            let _lock = Principals::lock(&path)?;
            let mut principals = Principals::load_or_empty(&path)?;
            principals.add_principal(&name, grants.clone())?;
            let key = principals.add_key(&name, now, expires_at)?;
            principals.save(&path)?;
            let grants: Vec<String> = grants.iter().map(Grant::to_string).collect();
            eprintln!(
                "added principal {name:?} ({}) to {}; its API key (id {}, {}), shown only now:",
                grants.join(" "),
                path.display(),
                key.entry().id,
                expiry_text(key.entry().expires_at),
            );
            println!("{}", key.expose());
        }
        AuthCommand::CreateKey { file, name, expiry } => {
            let path = file.path();
            let expires_at = expiry.resolve(now)?;
            let _lock = Principals::lock(&path)?;
            let mut principals = Principals::load(&path)?;
            let key = principals.add_key(&name, now, expires_at)?;
            principals.save(&path)?;
            eprintln!(
                "new API key for {name:?} in {} (id {}, {}), shown only now:",
                path.display(),
                key.entry().id,
                expiry_text(key.entry().expires_at),
            );
            println!("{}", key.expose());
        }
        AuthCommand::RevokeKey { file, key_id } => {
            let path = file.path();
            let _lock = Principals::lock(&path)?;
            let mut principals = Principals::load(&path)?;
            let name = principals.revoke_key(&key_id.to_ascii_lowercase(), now)?;
            principals.save(&path)?;
            eprintln!("revoked API key {key_id} of {name:?} in {}", path.display());
        }
        AuthCommand::AddCert { file, name, cert } => {
            let path = file.path();
            let pem = std::fs::read(&cert).with_context(|| format!("--cert {}", cert.display()))?;
            let sha256 = CertFingerprint::of_pem(&pem).with_context(|| format!("--cert {}", cert.display()))?;
            let mut principals = Principals::load(&path)?;
            principals.add_cert(&name, sha256, now)?;
            principals.save(&path)?;
            eprintln!(
                "bound client certificate {} to {name:?} in {}; its SHA-256 fingerprint:",
                cert.display(),
                path.display()
            );
            println!("{sha256}");
        }
        AuthCommand::RevokeCert { file, sha256 } => {
            let path = file.path();
            let sha256 = CertFingerprint::parse_lenient(&sha256).context("--sha256")?;
            let mut principals = Principals::load(&path)?;
            let name = principals.revoke_cert(sha256, now)?;
            principals.save(&path)?;
            eprintln!("revoked client certificate {sha256} of {name:?} in {}", path.display());
        }
        AuthCommand::List { file } => {
            let path = file.path();
            let principals = Principals::load(&path)?;
            for p in &principals.principals {
                let grants: Vec<String> = p.grants.iter().map(Grant::to_string).collect();
                println!("{}  grants: {}", p.name, grants.join(" "));
                for k in &p.keys {
                    let state = match k.revoked_at {
                        Some(t) => format!("revoked {}", t.to_rfc3339()),
                        None => expiry_text(k.expires_at),
                    };
                    println!("  key {}  created {}  {state}", k.id, k.created_at.to_rfc3339());
                }
                for c in &p.certs {
                    let state = match c.revoked_at {
                        Some(t) => format!("revoked {}", t.to_rfc3339()),
                        None => "active".to_string(),
                    };
                    println!("  cert sha256:{}  added {}  {state}", c.sha256, c.added_at.to_rfc3339());
                }
            }
        }
    }
    Ok(())
}

fn expiry_text(expires_at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match expires_at {
        Some(t) => format!("expires {}", t.to_rfc3339()),
        None => "never expires".to_string(),
    }
}

fn serve(config: ServerConfig) -> anyhow::Result<()> {
    // Before anything: without principals, nothing but loopback is bound.
    crate::auth::check_listen(config.listen, config.principals_file.is_none())?;
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
