//! `ledger bundle create|get|list`: audit bundles made by the server from
//! the bundle index, fetched as files an auditor checks with
//! `ledger-verify bundle FILE --key KEY`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::{Client, proto};

/// `ledger bundle ...`.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Select records, have the server assemble and sign a bundle, and
    /// write it to a file.
    Create(CreateArgs),
    /// Fetch a stored bundle.
    Get {
        /// The bundle id (from `create` or `list`).
        id: String,
        /// Write it here (default: `<id>.bundle.json`).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// The bundles stored on the server, newest first.
    List,
}

/// `ledger bundle create`: at least one selector.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Records of this incident (e.g. INC-2026-0042).
    #[arg(long)]
    incident: Option<String>,
    /// Records of this workstream (e.g. CUST-WP-0051).
    #[arg(long)]
    workstream: Option<String>,
    /// Records of this stream.
    #[arg(long)]
    stream: Option<String>,
    /// Records with this correlation id.
    #[arg(long)]
    correlation: Option<String>,
    /// Seqs from this one (inclusive).
    #[arg(long)]
    from_seq: Option<u64>,
    /// Seqs before this one.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Recorded at or after this RFC 3339 time.
    #[arg(long)]
    from_time: Option<String>,
    /// Recorded before this RFC 3339 time.
    #[arg(long)]
    to_time: Option<String>,
    /// Leave the payloads out (hashes only), for selective disclosure.
    #[arg(long)]
    withhold_payloads: bool,
    /// Also prove consistency with the checkpoint of this tree size, one you
    /// already trust (repeatable).
    #[arg(long, value_name = "SIZE")]
    consistency_from: Vec<u64>,
    /// Write the bundle here (default: `<id>.bundle.json`).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

impl CreateArgs {
    fn selector(&self) -> HashMap<String, String> {
        let text = [
            ("incident", self.incident.clone()),
            ("workstream", self.workstream.clone()),
            ("stream", self.stream.clone()),
            ("correlation", self.correlation.clone()),
            ("from_seq", self.from_seq.map(|s| s.to_string())),
            ("to_seq", self.to_seq.map(|s| s.to_string())),
            ("from_time", self.from_time.clone()),
            ("to_time", self.to_time.clone()),
        ];
        text.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    }
}

/// Streams bundle `id` into `path` through a temporary file, so a failed
/// download never leaves a partial bundle under the final name.
async fn download(client: &Client, id: &str, path: &Path) -> anyhow::Result<u64> {
    let tmp = path.with_extension("part");
    let mut file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = client.get_bundle(id, &mut file).await;
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    file.sync_all().with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(bytes)
}

/// `ledger bundle ...`.
pub async fn bundle(client: &Client, command: BundleCommand, json: bool) -> anyhow::Result<()> {
    match command {
        BundleCommand::Create(args) => {
            let selector = args.selector();
            if selector.is_empty() {
                bail!(
                    "choose records with at least one of --incident, --workstream, --stream, --correlation, \
                     --from-seq/--to-seq, --from-time/--to-time"
                );
            }
            let created = client
                .create_bundle(proto::CreateBundleRequest {
                    selector,
                    withhold_payloads: args.withhold_payloads,
                    consistency_from: args.consistency_from.clone(),
                })
                .await?;
            let path = args
                .output
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.bundle.json", created.bundle_id)));
            download(client, &created.bundle_id, &path).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"bundle_id": created.bundle_id, "file": path, "records": created.record_count,
                        "checkpoint_size": created.checkpoint_size, "bytes": created.bytes,
                        "manifest_digest": created.manifest_digest, "contents_digest": created.contents_digest})
                );
            } else {
                println!(
                    "bundle {}: {} records, checkpoint size {}, {} bytes -> {}\nmanifest digest {}",
                    created.bundle_id,
                    created.record_count,
                    created.checkpoint_size,
                    created.bytes,
                    path.display(),
                    created.manifest_digest
                );
            }
            Ok(())
        }
        BundleCommand::Get { id, output } => {
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{id}.bundle.json")));
            let bytes = download(client, &id, &path).await?;
            if json {
                println!("{}", serde_json::json!({"bundle_id": id, "file": path, "bytes": bytes}));
            } else {
                println!("{bytes} bytes -> {}", path.display());
            }
            Ok(())
        }
        BundleCommand::List => {
            let list = client.list_bundles().await?;
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(
                    out,
                    "{:<36}  {:<30}  {:>8}  {:>10}  SELECTOR",
                    "BUNDLE", "CREATED", "RECORDS", "CHECKPOINT"
                )?;
            }
            for b in list {
                let mut selector: Vec<String> = b.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                selector.sort();
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"bundle_id": b.bundle_id, "created_at": b.created_at,
                            "selector": b.selector, "records": b.record_count, "checkpoint_size": b.checkpoint_size,
                            "bytes": b.bytes, "manifest_digest": b.manifest_digest,
                            "payloads_withheld": b.payloads_withheld})
                    )?;
                } else {
                    writeln!(
                        out,
                        "{:<36}  {:<30}  {:>8}  {:>10}  {}{}",
                        b.bundle_id,
                        b.created_at,
                        b.record_count,
                        b.checkpoint_size,
                        selector.join(","),
                        if b.payloads_withheld {
                            " (payloads withheld)"
                        } else {
                            ""
                        }
                    )?;
                }
            }
            Ok(())
        }
    }
}
