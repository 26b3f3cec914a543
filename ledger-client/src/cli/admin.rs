//! `ledger admin ...`: access administration through the server's
//! `ledger.v1.Admin` service (each change is appended to the ledger before
//! it applies, and the seq is printed), and `ledger producer-key generate`,
//! which makes a producer signing key locally.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::{Client, ProducerKey, proto};

/// `ledger admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Principals with their grants, API key ids and producer keys.
    Principals,
    /// Add a principal and its first API key (printed on stdout, once).
    CreatePrincipal {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// NAMESPACE:PERMISSIONS (read, append, admin; `*` for every
        /// namespace). Repeatable.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// The key expires after this many days (0: never).
        #[arg(long, default_value_t = 0)]
        expires_in_days: u32,
    },
    /// Another API key for a principal (printed on stdout, once).
    CreateKey {
        /// The principal.
        #[arg(long)]
        name: String,
        /// The key expires after this many days (0: never).
        #[arg(long, default_value_t = 0)]
        expires_in_days: u32,
    },
    /// Revoke an API key by id.
    RevokeKey {
        /// The key id (16 hex digits).
        #[arg(long)]
        key_id: String,
    },
    /// Revoke a principal: all its API keys, client certificates and
    /// producer keys, and its grants (the entry stays, for the record).
    RevokePrincipal {
        /// The principal.
        #[arg(long)]
        name: String,
    },
    /// Replace a principal's grants (none given: it may do nothing).
    SetGrants {
        /// The principal.
        #[arg(long)]
        name: String,
        /// NAMESPACE:PERMISSIONS, repeatable.
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// Register or revoke producer signing keys.
    #[command(subcommand)]
    ProducerKey(ProducerKeyAdmin),
    /// Namespace policies and vocabularies.
    Namespaces,
    /// Whether a namespace requires producer signatures.
    NamespacePolicy {
        /// The namespace (the part of stream names before the first `/`).
        #[arg(long)]
        namespace: String,
        /// true or false.
        #[arg(long, action = clap::ArgAction::Set)]
        require_signatures: bool,
    },
    /// Declare the event types a namespace accepts.
    Vocabulary(VocabularyArgs),
    /// Rotate the ledger's checkpoint signing key on the running server.
    /// The new verifier key goes to stdout (give auditors it and the old
    /// one: `<data>/ledger-keys.pub` on the server lists every key).
    RotateSigningKey,
}

/// `ledger admin producer-key ...`.
#[derive(Debug, Subcommand)]
pub enum ProducerKeyAdmin {
    /// Register a public key for a principal's events.
    Add {
        /// The principal whose events it signs.
        #[arg(long)]
        name: String,
        /// The key id events will name.
        #[arg(long)]
        key_id: String,
        /// The ed25519 public key, base64 (as `ledger producer-key generate` prints it).
        #[arg(long)]
        public_key: String,
    },
    /// Revoke a producer key: new events signed with it are refused.
    Revoke {
        /// The key id.
        #[arg(long)]
        key_id: String,
    },
}

/// `ledger admin vocabulary`.
#[derive(Debug, Args)]
pub struct VocabularyArgs {
    /// The namespace.
    #[arg(long)]
    namespace: String,
    /// A declared event type, repeatable.
    #[arg(long = "type")]
    types: Vec<String>,
    /// TYPE=FILE: the JSON Schema (docs/VOCABULARY.md) of a declared
    /// type's payload. Repeatable.
    #[arg(long = "schema")]
    schemas: Vec<String>,
    /// Lift the restriction: any type may be appended.
    #[arg(long, conflicts_with_all = ["types", "schemas"])]
    unrestricted: bool,
}

/// `ledger producer-key ...` (local; no server).
#[derive(Debug, Subcommand)]
pub enum ProducerKeyCommand {
    /// Make a signing key: the secret goes to --out (mode 0600), the public
    /// key (to register with `ledger admin producer-key add`) to stdout.
    Generate {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_change(change: Option<&proto::AdminChange>, json: bool) -> anyhow::Result<()> {
    let Some(change) = change else {
        bail!("the server answered without saying where the change was recorded");
    };
    if json {
        println!(
            "{}",
            json!({"seq": change.seq, "event_id": change.event_id,
                "policy_digest": change.policy_digest, "changes": change.changes})
        );
    } else {
        for line in &change.changes {
            eprintln!("{line}");
        }
        eprintln!(
            "recorded at seq {} (event {}), principals file {}",
            change.seq, change.event_id, change.policy_digest
        );
    }
    Ok(())
}

fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map_or_else(
            || "-".to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// Runs `ledger admin ...`.
pub async fn admin(client: &Client, command: AdminCommand, json: bool) -> anyhow::Result<()> {
    let mut admin = client.admin();
    match command {
        AdminCommand::Principals => {
            let listed = admin
                .list_principals(proto::ListPrincipalsRequest {})
                .await?
                .into_inner();
            for p in listed.principals {
                if json {
                    let keys: Vec<_> = p
                        .keys
                        .iter()
                        .map(|k| {
                            json!({"id": k.id, "created_at": time(k.created_at.as_ref()),
                            "expires_at": time(k.expires_at.as_ref()), "revoked_at": time(k.revoked_at.as_ref())})
                        })
                        .collect();
                    let producer_keys: Vec<_> = p
                        .producer_keys
                        .iter()
                        .map(|k| {
                            json!({"id": k.id, "public_key": crate::sign::base64(&k.public_key),
                            "added_at": time(k.added_at.as_ref()), "revoked_at": time(k.revoked_at.as_ref())})
                        })
                        .collect();
                    println!(
                        "{}",
                        json!({"name": p.name, "grants": p.grants, "keys": keys, "producer_keys": producer_keys})
                    );
                    continue;
                }
                println!("{}  grants: {}", p.name, p.grants.join(" "));
                for k in &p.keys {
                    println!(
                        "  API key {}  created {}  expires {}  revoked {}",
                        k.id,
                        time(k.created_at.as_ref()),
                        time(k.expires_at.as_ref()),
                        time(k.revoked_at.as_ref())
                    );
                }
                for k in &p.producer_keys {
                    println!(
                        "  producer key {}  {}  added {}  revoked {}",
                        k.id,
                        crate::sign::base64(&k.public_key),
                        time(k.added_at.as_ref()),
                        time(k.revoked_at.as_ref())
                    );
                }
            }
            Ok(())
        }
        AdminCommand::CreatePrincipal {
            name,
            grants,
            expires_in_days,
        } => {
            let made = admin
                .create_principal(proto::CreatePrincipalRequest {
                    name,
                    grants,
                    expires_in_days,
                })
                .await?
                .into_inner();
            print_change(made.change.as_ref(), json)?;
            eprintln!("its API key (id {}), shown only now:", made.key_id);
            println!("{}", made.api_key);
            Ok(())
        }
        AdminCommand::CreateKey { name, expires_in_days } => {
            let made = admin
                .create_key(proto::CreateKeyRequest { name, expires_in_days })
                .await?
                .into_inner();
            print_change(made.change.as_ref(), json)?;
            eprintln!("the API key (id {}), shown only now:", made.key_id);
            println!("{}", made.api_key);
            Ok(())
        }
        AdminCommand::RevokeKey { key_id } => {
            let change = admin.revoke_key(proto::RevokeKeyRequest { key_id }).await?.into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::RevokePrincipal { name } => {
            let change = admin
                .revoke_principal(proto::RevokePrincipalRequest { name })
                .await?
                .into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::SetGrants { name, grants } => {
            let change = admin
                .set_grants(proto::SetGrantsRequest { name, grants })
                .await?
                .into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::ProducerKey(ProducerKeyAdmin::Add {
            name,
            key_id,
            public_key,
        }) => {
            let public_key = crate::sign::decode_base64(&public_key).context("--public-key")?;
            let change = admin
                .add_producer_key(proto::AddProducerKeyRequest {
                    name,
                    key_id,
                    public_key,
                })
                .await?
                .into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::ProducerKey(ProducerKeyAdmin::Revoke { key_id }) => {
            let change = admin
                .revoke_producer_key(proto::RevokeProducerKeyRequest { key_id })
                .await?
                .into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::Namespaces => {
            let listed = admin
                .list_namespaces(proto::ListNamespacesRequest {})
                .await?
                .into_inner();
            for n in listed.namespaces {
                let types: Vec<serde_json::Value> = n
                    .types
                    .iter()
                    .map(|t| json!({"type": t.r#type, "schema": serde_json::from_str::<serde_json::Value>(&t.schema).ok()}))
                    .collect();
                if json {
                    println!(
                        "{}",
                        json!({"namespace": n.namespace, "require_signatures": n.require_signatures,
                            "vocabulary_version": n.vocabulary_version,
                            "vocabulary_enforced": n.vocabulary_enforced, "types": types})
                    );
                    continue;
                }
                let vocabulary = if n.vocabulary_enforced {
                    let names: Vec<String> = n
                        .types
                        .iter()
                        .map(|t| {
                            if t.schema.is_empty() {
                                t.r#type.clone()
                            } else {
                                format!("{} (schema)", t.r#type)
                            }
                        })
                        .collect();
                    format!("types {}", names.join(", "))
                } else {
                    "any type".to_string()
                };
                println!(
                    "{:?}  signatures {}  vocabulary v{}: {vocabulary}",
                    n.namespace,
                    if n.require_signatures { "required" } else { "optional" },
                    n.vocabulary_version
                );
            }
            Ok(())
        }
        AdminCommand::NamespacePolicy {
            namespace,
            require_signatures,
        } => {
            let change = admin
                .set_namespace_policy(proto::SetNamespacePolicyRequest {
                    namespace,
                    require_signatures,
                })
                .await?
                .into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::Vocabulary(args) => {
            let request = vocabulary_request(args)?;
            let change = admin.set_vocabulary(request).await?.into_inner();
            print_change(Some(&change), json)
        }
        AdminCommand::RotateSigningKey => {
            let rotated = admin
                .rotate_signing_key(proto::RotateSigningKeyRequest {})
                .await?
                .into_inner();
            let Some(change) = rotated.change else {
                bail!("the server answered without saying where the change was recorded");
            };
            if json {
                println!(
                    "{}",
                    json!({"rotation_seq": rotated.rotation_seq, "old_verifier_key": rotated.old_verifier_key,
                        "new_verifier_key": rotated.new_verifier_key, "resumed": rotated.resumed,
                        "seq": change.seq, "event_id": change.event_id, "policy_digest": change.policy_digest,
                        "changes": change.changes})
                );
                return Ok(());
            }
            eprintln!(
                "rotated the signing key{}: rotation record at seq {}, recorded at seq {} (event {})",
                if rotated.resumed {
                    " (finished an earlier rotation)"
                } else {
                    ""
                },
                rotated.rotation_seq,
                change.seq,
                change.event_id
            );
            eprintln!("retired: {}", rotated.old_verifier_key);
            eprintln!("the new verifier key:");
            println!("{}", rotated.new_verifier_key);
            Ok(())
        }
    }
}

fn vocabulary_request(args: VocabularyArgs) -> anyhow::Result<proto::SetVocabularyRequest> {
    let mut types: Vec<proto::EventTypeRule> = args
        .types
        .iter()
        .map(|t| proto::EventTypeRule {
            r#type: t.clone(),
            schema: String::new(),
        })
        .collect();
    for given in &args.schemas {
        let Some((event_type, file)) = given.split_once('=') else {
            bail!("--schema {given:?}: expected TYPE=FILE");
        };
        let schema = std::fs::read_to_string(file).with_context(|| format!("--schema {event_type}={file}"))?;
        match types.iter_mut().find(|t| t.r#type == event_type) {
            Some(rule) => rule.schema = schema,
            None => types.push(proto::EventTypeRule {
                r#type: event_type.to_string(),
                schema,
            }),
        }
    }
    if types.is_empty() && !args.unrestricted {
        bail!("--type: declare at least one type, or pass --unrestricted to allow any");
    }
    Ok(proto::SetVocabularyRequest {
        namespace: args.namespace,
        types,
        unrestricted: args.unrestricted,
    })
}

/// Runs `ledger producer-key ...`.
pub fn producer_key(command: ProducerKeyCommand) -> anyhow::Result<()> {
    match command {
        ProducerKeyCommand::Generate { out } => generate(&out),
    }
}

fn generate(out: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("random number generator: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("--out {} (an existing key is never overwritten)", out.display()))?;
    file.write_all(ProducerKey::file_text(&seed).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    let key = ProducerKey::from_seed("", seed);
    eprintln!("secret key written to {} (mode 0600); public key:", out.display());
    println!("{}", key.public_key_base64());
    Ok(())
}
