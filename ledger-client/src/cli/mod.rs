//! The `ledger` command line (feature `cli`): the binary is
//! `fn main() { ledger_client::cli::main() }`, kept here so that tests can
//! build the same program as a binary of their own.
//!
//! Every command exits 0 on success and non-zero with a one-line reason on
//! stderr otherwise; `--json` makes every command print machine-readable
//! lines on stdout.

mod admin;
mod bench;
mod bundle;
pub mod demo;
mod input;
mod output;
mod views;

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::check::{check_consistency, check_inclusion, check_record};
use crate::{Client, proto};
use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use ledger_verify::note::VerifierKey;
use tokio_stream::StreamExt as _;

#[derive(Debug, Parser)]
#[command(
    name = "ledger",
    version,
    about = "Command-line client for the evidence ledger (ledgerd)"
)]
struct Cli {
    /// ledgerd address [default: http://127.0.0.1:50051].
    #[arg(long, global = true, env = "LEDGER_SERVER")]
    server: Option<String>,
    /// API key (from `ledgerd auth add-principal` or `create-key`); prefer
    /// the environment variable, which other users cannot see in `ps`.
    #[arg(long, global = true, env = "LEDGER_API_KEY", hide_env_values = true)]
    api_key: Option<Secret>,
    /// CA certificate (PEM) that the server's TLS certificate must chain
    /// to; needs an https:// --server.
    #[arg(long, global = true, env = "LEDGER_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, bound to a principal with
    /// `ledgerd auth add-cert`: authenticates without an API key. Needs
    /// --client-key and --ca-cert.
    #[arg(long, global = true, env = "LEDGER_CLIENT_CERT")]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, global = true, env = "LEDGER_CLIENT_KEY")]
    client_key: Option<PathBuf>,
    /// Machine-readable output: one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// A command-line secret: `Debug` (and so any dump of the parsed
/// arguments) does not show it.
#[derive(Clone)]
struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append one event from flags, or many from a JSON Lines file or stdin.
    Append(AppendArgs),
    /// Read records: a seq range, or one stream.
    Read(ReadArgs),
    /// Follow the log live (catch-up first when --from-seq is given).
    Tail(TailArgs),
    /// Print one record, by seq or event id.
    Get {
        /// A seq number or an event id (UUID).
        key: String,
    },
    /// Print the signed checkpoint note, byte for byte as signed.
    Checkpoint {
        /// Tree size (default: the latest).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Fetch and verify, locally, a proof against signed checkpoints.
    Prove(ProveArgs),
    /// Origin, tree hash, verifier key and size of the ledger.
    Info,
    /// Tasks (table, or one task in full), from the tasks projection.
    Tasks(views::TasksArgs),
    /// Workstreams with their rollups ("1 wait, 2 progress, 5 todo").
    Workstreams(views::WorkstreamsArgs),
    /// Hygiene anomalies of tasks and workstreams.
    Anomalies(views::AnomaliesArgs),
    /// Incidents (table, or one with its timeline), or their flags.
    Incidents(views::IncidentsArgs),
    /// Metrics rollups (per minute, hour, day), series and alerts.
    #[command(subcommand)]
    Metrics(views::MetricsCommand),
    /// Any projection view by name, with KEY=VALUE filters (JSON rows).
    Query(views::QueryArgs),
    /// Projection status, faults and replay.
    #[command(subcommand)]
    Projections(views::ProjectionsCommand),
    /// The five-minute tour: evidence, task board, incident, metrics, a
    /// bundle verified offline and a tampered copy refused. Without
    /// --server it runs `ledgerd demo` (found beside this binary), which
    /// starts the server in its own process on a loopback port with --out
    /// as the data directory.
    Demo {
        /// Where to write the bundles and the verifier key (and, without
        /// --server, the ledger's data).
        #[arg(long, default_value = "ledger-demo-out")]
        out: std::path::PathBuf,
        /// The ledgerd binary to run without --server [default: the one
        /// beside this binary].
        #[arg(long, env = "LEDGERD_BIN")]
        ledgerd: Option<PathBuf>,
    },
    /// Audit bundles: create (select, assemble, sign, download), get, list.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Access administration (needs admin): principals, API keys, grants,
    /// producer keys, namespace policies and vocabularies, and the ledger's
    /// signing key. Every change is appended to the ledger (stream
    /// ledger/admin).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Producer signing keys, made locally (no server).
    #[command(subcommand)]
    ProducerKey(admin::ProducerKeyCommand),
    /// Load generator: producers (streaming or unary, paced or flat out,
    /// optionally signed) and live subscribers; events/s, ack and
    /// append→delivery latency percentiles. Without --server it starts the
    /// ledgerd beside this binary on a temporary directory and also reports
    /// its RSS and disk bytes per event.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Args)]
struct AppendArgs {
    /// JSON Lines file of events ("-" for stdin). Without it, one event from flags.
    #[arg(long, short = 'f', conflicts_with_all = ["stream", "event_type", "payload"])]
    file: Option<PathBuf>,
    /// Events per atomic batch when reading a file.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Stream of the event.
    #[arg(long, required_unless_present = "file")]
    stream: Option<String>,
    /// Type of the event.
    #[arg(long = "type", required_unless_present = "file")]
    event_type: Option<String>,
    /// JSON payload.
    #[arg(long, default_value = "{}")]
    payload: Option<String>,
    /// Event id (default: a fresh UUIDv7).
    #[arg(long)]
    id: Option<String>,
    /// When it happened, RFC 3339 (default: now).
    #[arg(long)]
    occurred_at: Option<String>,
    /// Correlation id.
    #[arg(long)]
    correlation_id: Option<String>,
    /// Require the stream to be at this version (optimistic concurrency).
    #[arg(long, conflicts_with = "expect_no_stream")]
    expect_version: Option<u64>,
    /// Require the stream to have no events yet.
    #[arg(long)]
    expect_no_stream: bool,
    /// Pipelined batches on the stream.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Sign every event with this producer key file (from `ledger
    /// producer-key generate`); needs --key-id.
    #[arg(long, env = "LEDGER_SIGN_KEY", requires = "key_id")]
    sign_key: Option<PathBuf>,
    /// The id the ledger knows the signing key by (`ledger admin
    /// producer-key add`).
    #[arg(long, env = "LEDGER_KEY_ID", requires = "sign_key")]
    key_id: Option<String>,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// First seq (global read).
    #[arg(long, default_value_t = 0)]
    from_seq: u64,
    /// Read only this stream.
    #[arg(long)]
    stream: Option<String>,
    /// First stream version (with --stream).
    #[arg(long, default_value_t = 0)]
    from_version: u64,
    /// Most records (0: to the end).
    #[arg(long, default_value_t = 0)]
    limit: u64,
}

#[derive(Debug, Args)]
struct TailArgs {
    /// First seq to deliver (default: only new records).
    #[arg(long)]
    from_seq: Option<u64>,
    /// Only this stream.
    #[arg(long)]
    stream: Option<String>,
    /// Only streams with this prefix.
    #[arg(long)]
    stream_prefix: Option<String>,
    /// Only these event types (repeatable).
    #[arg(long = "type")]
    types: Vec<String>,
    /// Exit after this many records.
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Debug, Args)]
struct ProveArgs {
    /// The record to prove included.
    #[arg(required_unless_present = "consistency")]
    seq: Option<u64>,
    /// Tree size to prove against (default: the latest checkpoint).
    #[arg(long)]
    tree_size: Option<u64>,
    /// Prove instead that the tree of this size is a prefix of --tree-size.
    #[arg(long, conflicts_with = "seq")]
    consistency: Option<u64>,
    /// Trusted verifier key, or a file holding it (repeatable). Without one
    /// the server's own key is used, which only proves self-consistency.
    #[arg(long)]
    key: Vec<String>,
}

/// Runs the `ledger` command line on the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ledger: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // An input thread may still be blocked on a dead stream: do not wait.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ledger: {}", format!("{err:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let (None, Command::Demo { out, ledgerd }) = (&cli.server, &cli.command) {
        return demo::run_with_ledgerd(out, ledgerd.as_deref()).await;
    }
    if let Command::ProducerKey(command) = cli.command {
        return admin::producer_key(command);
    }
    if cli.server.is_none()
        && let Command::Bench(args) = cli.command
    {
        return bench::run(None, args, cli.json).await;
    }
    let server = cli.server.as_deref().unwrap_or(crate::DEFAULT_SERVER);
    let read_file =
        |flag: &str, path: &std::path::Path| std::fs::read(path).with_context(|| format!("{flag} {}", path.display()));
    let identity = match (&cli.client_cert, &cli.client_key) {
        (None, None) => None,
        (Some(_), None) => bail!("--client-key (LEDGER_CLIENT_KEY): needed with --client-cert"),
        (None, Some(_)) => bail!("--client-cert (LEDGER_CLIENT_CERT): needed with --client-key"),
        (Some(cert), Some(key)) => Some((read_file("--client-cert", cert)?, read_file("--client-key", key)?)),
    };
    let client = match (&cli.ca_cert, identity) {
        (Some(path), Some((cert, key))) => {
            Client::connect_mtls(server, &read_file("--ca-cert", path)?, &cert, &key).await?
        }
        (Some(path), None) => Client::connect_tls(server, &read_file("--ca-cert", path)?).await?,
        (None, Some(_)) => {
            bail!("--ca-cert (LEDGER_CA_CERT): needed with --client-cert, which is sent over TLS only")
        }
        (None, None) => Client::connect(server).await?,
    };
    let client = match cli.api_key.as_ref().filter(|k| !k.0.is_empty()) {
        Some(key) => client.with_api_key(crate::ApiKey::new(&key.0)?),
        None => client,
    };
    let json = cli.json;
    match cli.command {
        Command::Append(args) => append(&client, args, json).await,
        Command::Read(args) => read(&client, args, json).await,
        Command::Tail(args) => tail(&client, args, json).await,
        Command::Get { key } => {
            let record = match key.parse::<u64>() {
                Ok(seq) => client.record(seq).await?,
                Err(_) => client.record_by_id(&key).await?,
            };
            check_record(&record)?;
            print_record(&record, json)
        }
        Command::Checkpoint { size } => {
            let checkpoint = client.checkpoint(size).await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", output::checkpoint_json(&checkpoint))?;
            } else {
                out.write_all(checkpoint.note.as_bytes())?;
            }
            Ok(())
        }
        Command::Prove(args) => prove(&client, args, json).await,
        Command::Tasks(args) => views::tasks(&client, args, json).await,
        Command::Workstreams(args) => views::workstreams(&client, args, json).await,
        Command::Anomalies(args) => views::anomalies(&client, args, json).await,
        Command::Incidents(args) => views::incidents(&client, args, json).await,
        Command::Metrics(command) => views::metrics(&client, command, json).await,
        Command::Query(args) => views::raw_query(&client, args).await,
        Command::Projections(command) => views::projections(&client, command, json).await,
        Command::Bundle(command) => bundle::bundle(&client, command, json).await,
        Command::Admin(command) => admin::admin(&client, command, json).await,
        Command::ProducerKey(command) => admin::producer_key(command),
        Command::Bench(args) => bench::run(Some(client), args, json).await,
        Command::Demo { out, .. } => demo::run(&client, &out).await,
        Command::Info => {
            let info = client.info().await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"origin": info.origin, "hash_alg": info.hash_alg,
                        "verifier_key": info.verifier_key, "size": info.size})
                );
            } else {
                println!("origin        {}", info.origin);
                println!("tree hash     {}", info.hash_alg);
                println!("records       {}", info.size);
                println!("verifier key  {}", info.verifier_key);
            }
            Ok(())
        }
    }
}

fn print_record(record: &proto::Record, json: bool) -> anyhow::Result<()> {
    let line = if json {
        output::record_json(record).to_string()
    } else {
        output::record_text(record)
    };
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

fn print_receipts(response: &proto::AppendResponse, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for receipt in &response.receipts {
        if json {
            writeln!(out, "{}", output::receipt_json(receipt, response.deduplicated))?;
        } else {
            writeln!(out, "{}", output::receipt_text(receipt, response.deduplicated))?;
        }
    }
    // Receipts are promises kept: make them visible before anything else
    // can happen to this process.
    out.flush()?;
    Ok(())
}

async fn append(client: &Client, args: AppendArgs, json: bool) -> anyhow::Result<()> {
    let expected_version = match (args.expect_version, args.expect_no_stream) {
        (Some(v), _) => Some(proto::append_request::ExpectedVersion::ExpectVersion(v)),
        (None, true) => Some(proto::append_request::ExpectedVersion::ExpectNoStream(true)),
        (None, false) => None,
    };
    let signer = match (&args.sign_key, &args.key_id) {
        (Some(path), Some(key_id)) => Some(crate::ProducerKey::from_file(key_id.clone(), path)?),
        _ => None,
    };
    let Some(file) = args.file else {
        let line = input::EventLine {
            id: args.id,
            stream: args.stream,
            event_type: args.event_type,
            occurred_at: args.occurred_at,
            payload: Some(
                serde_json::from_str(args.payload.as_deref().unwrap_or("{}"))
                    .map_err(|e| anyhow::anyhow!("--payload: not JSON: {e}"))?,
            ),
            metadata: input::MetadataLine {
                correlation_id: args.correlation_id.unwrap_or_default(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut event = line.into_event()?;
        if let Some(key) = &signer {
            key.sign(&mut event)?;
        }
        let response = client
            .append(proto::AppendRequest {
                events: vec![event],
                expected_version,
                include_checkpoint: false,
            })
            .await?;
        return print_receipts(&response, json);
    };
    if args.batch == 0 {
        bail!("--batch: must be at least 1");
    }
    let reader: Box<dyn std::io::BufRead + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&file).with_context(|| format!("--file {}", file.display()))?,
        ))
    };
    let progress = if std::io::stderr().is_terminal() && !json {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} events appended ({per_sec}) {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        Some(bar)
    } else {
        None
    };
    let (sink, mut receipts) = client.append_stream(args.window).await?;
    // Read and send on one task, print receipts on this one: both sides
    // move at once, and the window bounds what is in flight.
    let sender = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let handle = tokio::runtime::Handle::current();
        let mut batch = Vec::with_capacity(args.batch);
        let mut sent = 0u64;
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("reading line {}", n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut event = input::parse_line(&line).with_context(|| format!("line {}", n + 1))?;
            if let Some(key) = &signer {
                key.sign(&mut event).with_context(|| format!("line {}", n + 1))?;
            }
            batch.push(event);
            if batch.len() == args.batch {
                let events = std::mem::replace(&mut batch, Vec::with_capacity(args.batch));
                handle.block_on(sink.send(proto::AppendRequest {
                    events,
                    expected_version,
                    include_checkpoint: false,
                }))?;
                sent += 1;
            }
        }
        if !batch.is_empty() {
            handle.block_on(sink.send(proto::AppendRequest {
                events: batch,
                expected_version,
                include_checkpoint: false,
            }))?;
            sent += 1;
        }
        sink.finish();
        Ok(sent)
    });
    let mut failure = None;
    let mut appended = 0u64;
    while let Some(response) = receipts.next().await {
        match response {
            Ok(response) => {
                appended += response.receipts.len() as u64;
                print_receipts(&response, json)?;
                if let Some(bar) = &progress {
                    bar.inc(response.receipts.len() as u64);
                }
            }
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if let Some(err) = failure {
        bail!("append failed after {appended} events were appended: {err}");
    }
    sender.await.context("input task failed")??;
    if !json && progress.is_none() {
        eprintln!("appended {appended} events");
    }
    Ok(())
}

async fn read(client: &Client, args: ReadArgs, json: bool) -> anyhow::Result<()> {
    let mut records = client
        .read(proto::ReadRequest {
            from_seq: args.from_seq,
            stream: args.stream.unwrap_or_default(),
            from_version: args.from_version,
            limit: args.limit,
        })
        .await?;
    while let Some(record) = records.next().await {
        let record = record?;
        check_record(&record)?;
        print_record(&record, json)?;
    }
    Ok(())
}

async fn tail(client: &Client, args: TailArgs, json: bool) -> anyhow::Result<()> {
    let from_seq = match args.from_seq {
        Some(seq) => seq,
        None => client.info().await?.size,
    };
    let records = client.subscribe(proto::SubscribeRequest {
        from_seq,
        stream: args.stream.unwrap_or_default(),
        stream_prefix: args.stream_prefix.unwrap_or_default(),
        types: args.types,
    });
    tokio::pin!(records);
    let mut seen = 0u64;
    while args.count.is_none_or(|count| seen < count) {
        let Some(record) = records.next().await else { break };
        let record = record?;
        check_record(&record)?;
        print_record(&record, json)?;
        std::io::stdout().flush()?;
        seen += 1;
    }
    Ok(())
}

/// Verifier keys from `--key` values (a key, or a file holding one per line).
fn trusted_keys(values: &[String]) -> anyhow::Result<Vec<VerifierKey>> {
    let mut keys = Vec::new();
    for value in values {
        let text = if std::path::Path::new(value).is_file() {
            std::fs::read_to_string(value).with_context(|| format!("--key {value}"))?
        } else {
            value.clone()
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            keys.push(VerifierKey::parse(line.trim()).map_err(|e| anyhow::anyhow!("--key {value}: {e}"))?);
        }
    }
    Ok(keys)
}

async fn prove(client: &Client, args: ProveArgs, json: bool) -> anyhow::Result<()> {
    let mut keys = trusted_keys(&args.key)?;
    if keys.is_empty() {
        let info = client.info().await?;
        keys.push(VerifierKey::parse(&info.verifier_key).map_err(|e| anyhow::anyhow!("server verifier key: {e}"))?);
        if !json {
            eprintln!("note: trusting the server's own key; pin it with --key to prove anything to a third party");
        }
    }
    if let Some(old_size) = args.consistency {
        let proof = client.consistency_proof(old_size, args.tree_size).await?;
        let (old, new) = check_consistency(&proof, &keys)?;
        if json {
            println!(
                "{}",
                serde_json::json!({"verified": true, "old_size": old.size, "new_size": new.size,
                    "old_root": hex::encode(old.root), "new_root": hex::encode(new.root),
                    "proof": proof.hashes.iter().map(hex::encode).collect::<Vec<_>>()})
            );
        } else {
            println!(
                "verified: tree of size {} is a prefix of the signed tree of size {} ({} proof hashes)",
                old.size,
                new.size,
                proof.hashes.len()
            );
        }
        return Ok(());
    }
    let seq = args.seq.context("seq: required")?;
    let proof = client.inclusion_proof(seq, args.tree_size).await?;
    let record = client.record(seq).await?;
    check_record(&record)?;
    if record.record_hash != proof.record_hash {
        bail!(
            "seq {seq}: the proof is for record hash {}, the record's is {}",
            hex::encode(&proof.record_hash),
            hex::encode(&record.record_hash)
        );
    }
    let checkpoint = check_inclusion(&proof, &keys)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"verified": true, "seq": seq, "tree_size": checkpoint.size,
                "record_hash": hex::encode(&proof.record_hash), "root": hex::encode(checkpoint.root),
                "proof": proof.hashes.iter().map(hex::encode).collect::<Vec<_>>(),
                "checkpoint": proof.checkpoint.as_ref().map(|c| c.note.clone())})
        );
    } else {
        println!(
            "verified: seq {seq} (record {}) is in the signed tree of size {} ({} proof hashes)",
            hex::encode(&proof.record_hash),
            checkpoint.size,
            proof.hashes.len()
        );
    }
    Ok(())
}
