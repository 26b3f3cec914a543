//! The admin service end to end over a loopback server: every change is in
//! the ledger (stream `ledger/admin`) before it takes effect and holds no
//! secret; edits made around the service are recorded too; producer keys
//! bound to principals, namespaces requiring signatures, vocabularies with
//! schemas; and the refusals, each naming the field and the reason.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use ledger_client::{Client, ClientError, ProducerKey, proto};
use ledger_server::auth::{Grant, Principals};
use ledger_tests::server::{TestServer, server_config};
use ledger_verify::bundle::{VerifyOptions, verify_bundle};
use serde_json::Value;

const ADMIN_STREAM: &str = "ledger/admin";

/// A server whose principals file holds `root` (`*:admin`); returns its key.
async fn start(dir: &Path) -> anyhow::Result<(TestServer, String)> {
    let path = dir.join("principals.toml");
    let mut principals = Principals::load_or_empty(&path)?;
    let key = if principals.get("root").is_none() {
        principals.add_principal("root", vec![Grant::parse("*:admin")?])?;
        let key = principals.add_key("root", Utc::now(), None)?.expose().to_string();
        principals.save(&path)?;
        key
    } else {
        String::new()
    };
    let mut config = server_config(dir)?;
    config.principals_file = Some(path);
    Ok((TestServer::start(config).await?, key))
}

/// The admin events, as (seq, type, payload) (shared with `rotate_online`).
pub(crate) async fn admin_events(client: &Client) -> anyhow::Result<Vec<(u64, String, Value)>> {
    let mut stream = client
        .read(proto::ReadRequest {
            stream: ADMIN_STREAM.to_string(),
            ..Default::default()
        })
        .await?;
    let mut events = Vec::new();
    while let Some(record) = stream.message().await? {
        let event = record.event.context("record without event")?;
        events.push((record.seq, event.r#type, serde_json::from_slice(&event.payload)?));
    }
    Ok(events)
}

fn code(result: Result<impl Sized, ClientError>) -> String {
    match result {
        Ok(_) => "OK".to_string(),
        Err(ClientError::Status(status)) => ledger_client::code_name(status.code()).to_string(),
        Err(other) => format!("{other}"),
    }
}

fn status<T>(result: Result<T, tonic::Status>) -> anyhow::Result<tonic::Status> {
    match result {
        Ok(_) => bail!("expected a refusal"),
        Err(status) => Ok(status),
    }
}

fn probe_event(n: u64) -> proto::Event {
    ledger_client::event(
        "ops-hub/probe",
        "probe.result",
        format!(r#"{{"run":{n},"status":"ok"}}"#).into_bytes(),
    )
}

fn one(event: proto::Event) -> proto::AppendRequest {
    proto::AppendRequest {
        events: vec![event],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_in_the_ledger_before_it_takes_effect() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, root_key) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;

    // The file in force at the first start is recorded, whole.
    let events = admin_events(&root).await?;
    ensure!(events.len() == 1, "{events:?}");
    ensure!(events[0].1 == "admin.principals_file_loaded", "{events:?}");
    ensure!(events[0].2["state"].to_string().contains("root"), "{events:?}");

    let created = root
        .admin()
        .create_principal(proto::CreatePrincipalRequest {
            name: "probe".to_string(),
            grants: vec!["ops-hub:append".to_string()],
            expires_in_days: 30,
        })
        .await?
        .into_inner();
    let change = created.change.context("no change")?;
    let probe = server.client_with_key(&created.api_key).await?;
    probe.append(one(probe_event(1))).await?;

    // The event came first (a lower seq than the append it allowed), names
    // the actor and the change, and matches the file's digest.
    let events = admin_events(&root).await?;
    let (seq, kind, payload) = events.last().context("no admin event")?;
    ensure!(*seq == change.seq && kind == "admin.principal_created", "{events:?}");
    ensure!(payload["actor"] == "root", "{payload}");
    let file = std::fs::read(dir.path().join("principals.toml"))?;
    ensure!(
        payload["policy_digest"] == blake3::hash(&file).to_hex().as_str(),
        "{payload}"
    );
    ensure!(change.policy_digest == blake3::hash(&file).to_hex().as_str());
    let changes = payload["changes"].to_string();
    ensure!(changes.contains("principal \\\"probe\\\" added"), "{changes}");
    ensure!(changes.contains(&created.key_id), "{changes}");

    // No secret anywhere in the log.
    let secret = created.api_key.rsplit('_').next().context("key format")?;
    let mut everything = root
        .read(proto::ReadRequest {
            from_seq: 0,
            ..Default::default()
        })
        .await?;
    while let Some(record) = everything.message().await? {
        let event = record.event.context("record without event")?;
        ensure!(
            !String::from_utf8_lossy(&event.payload).contains(secret),
            "the API key's secret is in record {}",
            record.seq
        );
    }

    // A revocation holds from the very next call, without waiting for the
    // file poll.
    root.admin()
        .revoke_key(proto::RevokeKeyRequest {
            key_id: created.key_id.clone(),
        })
        .await?;
    ensure!(code(probe.append(one(probe_event(2))).await) == "UNAUTHENTICATED");

    // New grants likewise.
    let second = root
        .admin()
        .create_key(proto::CreateKeyRequest {
            name: "probe".to_string(),
            expires_in_days: 0,
        })
        .await?
        .into_inner();
    let probe = server.client_with_key(&second.api_key).await?;
    ensure!(code(probe.record(0).await) == "PERMISSION_DENIED");
    root.admin()
        .set_grants(proto::SetGrantsRequest {
            name: "probe".to_string(),
            grants: vec!["ops-hub:read,append".to_string(), "ledger:read".to_string()],
        })
        .await?;
    ensure!(code(probe.record(0).await) == "OK");

    // Revoking the principal cuts off every credential it has at once.
    let revoked = root
        .admin()
        .revoke_principal(proto::RevokePrincipalRequest {
            name: "probe".to_string(),
        })
        .await?
        .into_inner();
    ensure!(code(probe.record(0).await) == "UNAUTHENTICATED");
    ensure!(
        revoked
            .changes
            .iter()
            .any(|c| c.contains(&second.key_id) && c.contains("revoked")),
        "{revoked:?}"
    );
    let kinds: Vec<String> = admin_events(&root).await?.into_iter().map(|e| e.1).collect();
    ensure!(
        kinds
            == [
                "admin.principals_file_loaded",
                "admin.principal_created",
                "admin.api_key_revoked",
                "admin.api_key_created",
                "admin.grants_set",
                "admin.principal_revoked"
            ],
        "{kinds:?}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_around_the_service_are_recorded_too() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("principals.toml");
    let (server, root_key) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;

    // As `ledgerd auth add-principal` would, while the server runs.
    {
        let _lock = Principals::lock(&path)?;
        let mut principals = Principals::load(&path)?;
        principals.add_principal("hand-made", vec![Grant::parse("ci:read")?])?;
        principals.save(&path)?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let changed = loop {
        let events = admin_events(&root).await?;
        if let Some(event) = events.iter().find(|e| e.1 == "admin.principals_file_changed") {
            break event.2.clone();
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no file change recorded: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(changed["actor"] == "file", "{changed}");
    ensure!(changed["changes"].to_string().contains("hand-made"), "{changed}");
    server.stop().await?;

    // Edited while ledgerd is down: recorded at the next start, with the
    // digest it replaced. Unchanged: nothing recorded.
    let mut principals = Principals::load(&path)?;
    principals.add_principal("offline", vec![])?;
    principals.save(&path)?;
    let (server, _) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;
    let events = admin_events(&root).await?;
    let loaded: Vec<&Value> = events
        .iter()
        .filter(|e| e.1 == "admin.principals_file_loaded")
        .map(|e| &e.2)
        .collect();
    ensure!(loaded.len() == 2, "{events:?}");
    ensure!(loaded[1]["previous_digest"] == changed["policy_digest"], "{events:?}");
    ensure!(loaded[1]["state"].to_string().contains("offline"), "{events:?}");
    let count = events.len();
    server.stop().await?;
    let (server, _) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;
    ensure!(
        admin_events(&root).await?.len() == count,
        "a restart without edits recorded something"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_keys_sign_for_their_principal_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, root_key) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;
    let mut keys = Vec::new();
    for name in ["probe", "other"] {
        let made = root
            .admin()
            .create_principal(proto::CreatePrincipalRequest {
                name: name.to_string(),
                grants: vec!["ops-hub:append".to_string()],
                expires_in_days: 0,
            })
            .await?
            .into_inner();
        keys.push(server.client_with_key(&made.api_key).await?);
    }
    let (probe, other) = (&keys[0], &keys[1]);
    let probe_key = ProducerKey::from_seed("probe-2026-12", [7; 32]);
    let other_key = ProducerKey::from_seed("other-2026-12", [8; 32]);
    for (name, key) in [("probe", &probe_key), ("other", &other_key)] {
        root.admin()
            .add_producer_key(proto::AddProducerKeyRequest {
                name: name.to_string(),
                key_id: key.key_id().to_string(),
                public_key: key.public_key().to_vec(),
            })
            .await?;
    }

    // Unsigned is fine until the namespace requires signatures.
    probe.append(one(probe_event(1))).await?;
    root.admin()
        .set_namespace_policy(proto::SetNamespacePolicyRequest {
            namespace: "ops-hub".to_string(),
            require_signatures: true,
        })
        .await?;
    let unsigned = probe_event(2);
    let refused = status(probe.raw().append(one(unsigned.clone())).await)?;
    ensure!(refused.code() == tonic::Code::InvalidArgument, "{refused:?}");
    ensure!(
        refused.message().contains("events[0].signature") && refused.message().contains(&unsigned.id),
        "{refused:?}"
    );

    // Signed by its own key: accepted. By another principal's key: refused.
    let mut signed = probe_event(3);
    probe_key.sign(&mut signed)?;
    let receipt = probe.append(one(signed.clone())).await?;
    let signed_seq = receipt.receipts[0].seq;
    let mut borrowed = probe_event(4);
    other_key.sign(&mut borrowed)?;
    let refused = status(probe.raw().append(one(borrowed.clone())).await)?;
    ensure!(refused.code() == tonic::Code::PermissionDenied, "{refused:?}");
    ensure!(refused.message().contains("other-2026-12"), "{refused:?}");
    other.append(one(borrowed)).await?;

    // A signature over other bytes, and an unknown key: refused, naming the event.
    let mut forged = probe_event(5);
    probe_key.sign(&mut forged)?;
    forged.payload = br#"{"run":5,"status":"fail"}"#.to_vec();
    let refused = status(probe.raw().append(one(forged.clone())).await)?;
    ensure!(refused.code() == tonic::Code::InvalidArgument, "{refused:?}");
    ensure!(refused.message().contains(&forged.id), "{refused:?}");
    let mut unknown = probe_event(6);
    ProducerKey::from_seed("nobody", [9; 32]).sign(&mut unknown)?;
    let refused = status(probe.raw().append(one(unknown)).await)?;
    ensure!(refused.message().contains("unknown producer key"), "{refused:?}");

    // Revoked: new events refused; the old one still verifies in a bundle.
    root.admin()
        .revoke_producer_key(proto::RevokeProducerKeyRequest {
            key_id: "probe-2026-12".to_string(),
        })
        .await?;
    let mut late = probe_event(7);
    probe_key.sign(&mut late)?;
    let refused = status(probe.raw().append(one(late)).await)?;
    ensure!(refused.message().contains("revoked"), "{refused:?}");
    let bundle = root
        .create_bundle(proto::CreateBundleRequest {
            selector: [
                ("stream".to_string(), "ops-hub/probe".to_string()),
                ("from_seq".to_string(), signed_seq.to_string()),
                ("to_seq".to_string(), (signed_seq + 1).to_string()),
            ]
            .into(),
            ..Default::default()
        })
        .await?;
    let mut bytes = Vec::new();
    root.get_bundle(&bundle.bundle_id, &mut bytes).await?;
    let keys = [ledger_tests::test_signer()?.verifier_key()?];
    let verified = verify_bundle(
        &bytes,
        VerifyOptions {
            keys: &keys,
            trusted_checkpoints: &[],
        },
    )?;
    ensure!(
        (verified.records, verified.producer_signatures) == (1, 1),
        "{verified:?}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vocabularies_refuse_undeclared_types_and_bad_payloads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, root_key) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;
    let schema = r#"{"type":"object","required":["run","status"],
        "properties":{"run":{"type":"integer","minimum":0},"status":{"enum":["ok","fail"]}}}"#;
    let set = root
        .admin()
        .set_vocabulary(proto::SetVocabularyRequest {
            namespace: "ops-hub".to_string(),
            types: vec![
                proto::EventTypeRule {
                    r#type: "probe.result".to_string(),
                    schema: schema.to_string(),
                },
                proto::EventTypeRule {
                    r#type: "probe.note".to_string(),
                    schema: String::new(),
                },
            ],
            unrestricted: false,
        })
        .await?
        .into_inner();
    ensure!(
        set.changes.iter().any(|c| c.contains("vocabulary version 0 -> 1")),
        "{set:?}"
    );

    root.append(one(probe_event(1))).await?;
    let mut note = ledger_client::event("ops-hub/probe", "probe.note", b"any text".to_vec());
    note.content_type = "text/plain".to_string();
    root.append(one(note)).await?;
    // Other namespaces are not affected.
    root.append(one(ledger_client::event("ci/build", "anything.at_all", b"{}".to_vec())))
        .await?;

    let undeclared = ledger_client::event("ops-hub/probe", "probe.resutl", b"{}".to_vec());
    let refused = status(root.raw().append(one(undeclared)).await)?;
    ensure!(refused.code() == tonic::Code::InvalidArgument, "{refused:?}");
    ensure!(
        refused
            .message()
            .starts_with("events[0].type: event type \"probe.resutl\" is not declared"),
        "{refused:?}"
    );
    let bad = ledger_client::event(
        "ops-hub/probe",
        "probe.result",
        br#"{"run":1,"status":"sk_live_not_a_status"}"#.to_vec(),
    );
    let refused = status(root.raw().append(one(bad)).await)?;
    ensure!(refused.message().contains("events[0].payload.status"), "{refused:?}");
    ensure!(!refused.message().contains("sk_live_not_a_status"), "{refused:?}");

    // A schema that would not be enforced as written is refused, and
    // changes nothing.
    let refused = status(
        root.admin()
            .set_vocabulary(proto::SetVocabularyRequest {
                namespace: "ops-hub".to_string(),
                types: vec![proto::EventTypeRule {
                    r#type: "probe.result".to_string(),
                    schema: r#"{"type":"string","pattern":"^x"}"#.to_string(),
                }],
                unrestricted: false,
            })
            .await,
    )?;
    ensure!(refused.code() == tonic::Code::InvalidArgument, "{refused:?}");
    ensure!(refused.message().contains("pattern"), "{refused:?}");
    root.append(one(probe_event(2))).await?;

    // Lifted: any type again; the version still counts up.
    let lifted = root
        .admin()
        .set_vocabulary(proto::SetVocabularyRequest {
            namespace: "ops-hub".to_string(),
            types: Vec::new(),
            unrestricted: true,
        })
        .await?
        .into_inner();
    ensure!(
        lifted.changes.iter().any(|c| c.contains("1 -> 2: any type")),
        "{lifted:?}"
    );
    root.append(one(ledger_client::event(
        "ops-hub/probe",
        "probe.resutl",
        b"{}".to_vec(),
    )))
    .await?;
    let listed = root
        .admin()
        .list_namespaces(proto::ListNamespacesRequest {})
        .await?
        .into_inner();
    ensure!(
        listed.namespaces.len() == 1
            && listed.namespaces[0].vocabulary_version == 2
            && !listed.namespaces[0].vocabulary_enforced,
        "{listed:?}"
    );
    let kinds: Vec<String> = admin_events(&root).await?.into_iter().map(|e| e.1).collect();
    ensure!(
        kinds.iter().filter(|k| *k == "admin.vocabulary_set").count() == 2,
        "{kinds:?}"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_requests_name_the_field_and_change_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, root_key) = start(dir.path()).await?;
    let root = server.client_with_key(&root_key).await?;
    let before = std::fs::read(dir.path().join("principals.toml"))?;
    let admin = root.admin();
    let cases: Vec<(&str, Result<(), tonic::Status>)> = vec![
        (
            "grants[1]",
            admin
                .clone()
                .create_principal(proto::CreatePrincipalRequest {
                    name: "x".to_string(),
                    grants: vec!["ops-hub:read".to_string(), "ops-hub:write".to_string()],
                    expires_in_days: 0,
                })
                .await
                .map(drop),
        ),
        (
            "already exists",
            admin
                .clone()
                .create_principal(proto::CreatePrincipalRequest {
                    name: "root".to_string(),
                    grants: vec![],
                    expires_in_days: 0,
                })
                .await
                .map(drop),
        ),
        (
            "public_key: 31 bytes",
            admin
                .clone()
                .add_producer_key(proto::AddProducerKeyRequest {
                    name: "root".to_string(),
                    key_id: "k".to_string(),
                    public_key: vec![1; 31],
                })
                .await
                .map(drop),
        ),
        (
            "no principal named \"ghost\"",
            admin
                .clone()
                .set_grants(proto::SetGrantsRequest {
                    name: "ghost".to_string(),
                    grants: vec![],
                })
                .await
                .map(drop),
        ),
        (
            "no API key with id",
            admin
                .clone()
                .revoke_key(proto::RevokeKeyRequest {
                    key_id: "0000000000000000".to_string(),
                })
                .await
                .map(drop),
        ),
        (
            "must not contain '/'",
            admin
                .clone()
                .set_namespace_policy(proto::SetNamespacePolicyRequest {
                    namespace: "a/b".to_string(),
                    require_signatures: true,
                })
                .await
                .map(drop),
        ),
        (
            "types[0].schema: not JSON",
            admin
                .clone()
                .set_vocabulary(proto::SetVocabularyRequest {
                    namespace: "ops-hub".to_string(),
                    types: vec![proto::EventTypeRule {
                        r#type: "t".to_string(),
                        schema: "{".to_string(),
                    }],
                    unrestricted: false,
                })
                .await
                .map(drop),
        ),
        (
            "nothing to change",
            admin
                .clone()
                .set_grants(proto::SetGrantsRequest {
                    name: "root".to_string(),
                    grants: vec!["*:admin".to_string()],
                })
                .await
                .map(drop),
        ),
    ];
    for (expected, result) in cases {
        let refused = status(result)?;
        ensure!(
            refused.message().contains(expected),
            "expected {expected:?} in {refused:?}"
        );
        ensure!(
            matches!(
                refused.code(),
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
            ),
            "{refused:?}"
        );
    }
    ensure!(
        std::fs::read(dir.path().join("principals.toml"))? == before,
        "the file changed"
    );
    ensure!(admin_events(&root).await?.len() == 1, "a refused change was recorded");
    ensure!(
        !dir.path().join("principals.toml.tmp").exists(),
        "a staged file was left behind"
    );
    server.stop().await?;

    // Development mode has no file to change.
    let dev = tempfile::tempdir()?;
    let server = TestServer::start(server_config(dev.path())?).await?;
    let listed = server
        .client()
        .await?
        .admin()
        .list_principals(proto::ListPrincipalsRequest {})
        .await?
        .into_inner();
    ensure!(listed.principals.is_empty(), "{listed:?}");
    let refused = status(
        server
            .client()
            .await?
            .admin()
            .create_principal(proto::CreatePrincipalRequest {
                name: "x".to_string(),
                grants: vec![],
                expires_in_days: 0,
            })
            .await,
    )?;
    ensure!(refused.code() == tonic::Code::FailedPrecondition, "{refused:?}");
    ensure!(refused.message().contains("development mode"), "{refused:?}");
    server.stop().await
}

/// Runs the `ledger` CLI against `url` with `key`; returns stdout, failing
/// with stderr when it exits non-zero.
fn ledger(url: &str, key: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(crate::LEDGER)
        .arg("--server")
        .arg(url)
        .args(args)
        .env("LEDGER_API_KEY", key)
        .env_remove("LEDGER_SIGN_KEY")
        .env_remove("LEDGER_KEY_ID")
        .output()?;
    ensure!(
        out.status.success(),
        "ledger {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_cli_administers_and_signs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, root_key) = start(dir.path()).await?;
    let url = server.url();
    let key = ledger(
        &url,
        &root_key,
        &[
            "admin",
            "create-principal",
            "--name",
            "probe",
            "--grant",
            "ops-hub:read,append",
        ],
    )?;
    let key = key.trim();
    ensure!(
        key.starts_with("lk_") && !key.contains('\n'),
        "stdout is not one key: {key:?}"
    );

    let key_file = dir.path().join("probe.key");
    let key_path = key_file.to_str().context("path")?;
    let public = ledger(&url, "", &["producer-key", "generate", "--out", key_path])?;
    let public = public.trim();
    ensure!(
        std::fs::metadata(&key_file)?.permissions().mode() & 0o777 == 0o600,
        "key file readable by others"
    );
    ensure!(
        ledger(&url, "", &["producer-key", "generate", "--out", key_path]).is_err(),
        "an existing key was overwritten"
    );
    ledger(
        &url,
        &root_key,
        &[
            "admin",
            "producer-key",
            "add",
            "--name",
            "probe",
            "--key-id",
            "probe-1",
            "--public-key",
            public,
        ],
    )?;
    ledger(
        &url,
        &root_key,
        &[
            "admin",
            "namespace-policy",
            "--namespace",
            "ops-hub",
            "--require-signatures",
            "true",
        ],
    )?;
    let unsigned = std::process::Command::new(crate::LEDGER)
        .args([
            "--server",
            &url,
            "append",
            "--stream",
            "ops-hub/probe",
            "--type",
            "probe.result",
        ])
        .env("LEDGER_API_KEY", key)
        .output()?;
    ensure!(!unsigned.status.success(), "an unsigned event was accepted");
    ensure!(
        String::from_utf8_lossy(&unsigned.stderr).contains("requires producer signatures"),
        "{}",
        String::from_utf8_lossy(&unsigned.stderr)
    );
    let receipt = ledger(
        &url,
        key,
        &[
            "--json",
            "append",
            "--stream",
            "ops-hub/probe",
            "--type",
            "probe.result",
            "--payload",
            r#"{"ok":true}"#,
            "--sign-key",
            key_path,
            "--key-id",
            "probe-1",
        ],
    )?;
    let receipt: Value = serde_json::from_str(receipt.trim())?;
    let seq = receipt["seq"].as_u64().context("no seq")?;
    let record = server.client_with_key(key).await?.record(seq).await?;
    let signature = record.event.and_then(|e| e.signature).context("stored unsigned")?;
    ensure!(signature.key_id == "probe-1");

    let listed = ledger(&url, &root_key, &["--json", "admin", "principals"])?;
    ensure!(listed.contains("probe-1") && listed.contains(public), "{listed}");
    ensure!(
        !listed.contains(key.rsplit('_').next().unwrap_or(key)),
        "a secret is listed"
    );
    let namespaces = ledger(&url, &root_key, &["admin", "namespaces"])?;
    ensure!(namespaces.contains("signatures required"), "{namespaces}");
    server.stop().await
}
