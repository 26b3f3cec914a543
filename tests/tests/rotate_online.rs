//! Rotating the signing key of a running `ledgerd` through the Admin
//! service (`RotateSigningKey`) while a producer keeps appending: bundles
//! from before and after verify offline with both keys, every checkpoint is
//! signed by the key valid for its tree size, the change is recorded, and a
//! restart comes up with the new key. Also: development mode, the `ledger`
//! CLI, and a rotation interrupted before its key files were installed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::admin::admin_events;
use crate::keys::{bundle_of, incident};
use anyhow::{Context as _, ensure};
use chrono::Utc;
use ledger_client::{Client, proto};
use ledger_core::{Ledger, LedgerConfig, LedgerError, LocalKeySigner, Signer as _};
use ledger_server::auth::{Grant, Principals};
use ledger_tests::server::{TestServer, server_config};
use ledger_verify::bundle::{BundleError, VerifyOptions, verify_bundle};
use ledger_verify::note::{VerifierKey, open_checkpoint};

/// A server with principals `root` (`*:admin`) and `producer`
/// (`ops-hub:append`); returns it and both keys.
async fn start_with_principals(dir: &Path) -> anyhow::Result<(TestServer, String, String)> {
    let path = dir.join("principals.toml");
    let mut principals = Principals::default();
    principals.add_principal("root", vec![Grant::parse("*:admin")?])?;
    let root = principals.add_key("root", Utc::now(), None)?.expose().to_string();
    principals.add_principal("producer", vec![Grant::parse("ops-hub:append")?])?;
    let producer = principals.add_key("producer", Utc::now(), None)?.expose().to_string();
    principals.save(&path)?;
    Ok((restart(dir).await?, root, producer))
}

/// The server on `dir` again (principals file kept, if any).
async fn restart(dir: &Path) -> anyhow::Result<TestServer> {
    let mut config = server_config(dir)?;
    let path = dir.join("principals.toml");
    if path.exists() {
        config.principals_file = Some(path);
    }
    TestServer::start(config).await
}

fn verify(bytes: &[u8], keys: &[VerifierKey]) -> Result<ledger_verify::bundle::Verified, BundleError> {
    verify_bundle(
        bytes,
        VerifyOptions {
            keys,
            trusted_checkpoints: &[],
        },
    )
}

fn signed_by(note: &str, key: &VerifierKey) -> bool {
    open_checkpoint(note, std::slice::from_ref(key)).is_ok()
}

async fn rotate(client: &Client) -> anyhow::Result<proto::RotateSigningKeyResponse> {
    Ok(client
        .admin()
        .rotate_signing_key(proto::RotateSigningKeyRequest {})
        .await?
        .into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_running_ledger_while_a_producer_appends() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let old_key = ledger_tests::test_signer()?.verifier_key()?;
    let (server, root, producer) = start_with_principals(dir.path()).await?;
    let admin = server.client_with_key(&root).await?;
    let before = bundle_of(&admin, "INC-2026-0200").await?;

    // The producer appends without pause, keeping each acknowledgement's
    // checkpoint.
    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (client, stop) = (server.client_with_key(&producer).await?, Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .append(proto::AppendRequest {
                        events: vec![ledger_client::event(
                            "ops-hub/probe",
                            "probe.result",
                            format!(r#"{{"run":{n}}}"#).into_bytes(),
                        )],
                        include_checkpoint: true,
                        ..Default::default()
                    })
                    .await?;
                acks.push(response.checkpoint.context("no checkpoint")?);
                n += 1;
            }
            anyhow::Ok(acks)
        })
    };
    let wait_for = |records: u64| {
        let client = admin.clone();
        async move {
            while client.info().await?.size < records {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            anyhow::Ok(())
        }
    };
    let start = admin.info().await?.size;
    wait_for(start + 20).await?;
    let rotated = rotate(&admin).await?;
    let seq = rotated.rotation_seq;
    wait_for(seq + 21).await?;
    stop.store(true, Ordering::Relaxed);
    let acks = producing.await??;

    let new_key = VerifierKey::parse(&rotated.new_verifier_key)?;
    ensure!(rotated.old_verifier_key == old_key.to_string(), "{rotated:?}");
    ensure!(new_key != old_key && new_key.name == old_key.name, "{rotated:?}");
    ensure!(!rotated.resumed);
    let change = rotated.change.context("no change")?;
    ensure!(change.seq > seq && !change.policy_digest.is_empty(), "{change:?}");
    ensure!(admin.info().await?.verifier_key == new_key.to_string());

    // Every acknowledgement: the old key up to the rotation's tree, the new
    // key alone after it.
    let (mut early, mut late) = (0, 0);
    for ack in &acks {
        if ack.size <= seq + 1 {
            ensure!(signed_by(&ack.note, &old_key), "size {}", ack.size);
            early += 1;
        } else {
            ensure!(signed_by(&ack.note, &new_key), "size {}", ack.size);
            ensure!(!signed_by(&ack.note, &old_key), "size {}", ack.size);
            late += 1;
        }
    }
    ensure!(early > 0 && late > 0, "{early} acks before the rotation, {late} after");
    // The latest checkpoint, and any re-cut, only under the new key.
    let latest = admin.checkpoint(None).await?;
    ensure!(latest.size > seq + 1);
    ensure!(signed_by(&latest.note, &new_key) && !signed_by(&latest.note, &old_key));
    for size in [seq, seq + 1, seq + 2] {
        let note = admin.checkpoint(Some(size)).await?.note;
        ensure!(signed_by(&note, &new_key) && !signed_by(&note, &old_key), "size {size}");
    }

    // Bundles: the one from before verifies with the old key (alone or with
    // the new one); the one from after carries the rotation record and
    // verifies with the new key, and not with the old one alone.
    let after = bundle_of(&admin, "INC-2026-0201").await?;
    let both = [old_key.clone(), new_key.clone()];
    ensure!(verify(&before, std::slice::from_ref(&old_key)).is_ok());
    ensure!(verify(&before, &both)?.key_rotations == 0);
    ensure!(verify(&after, &both)?.key_rotations == 1);
    ensure!(verify(&after, std::slice::from_ref(&new_key)).is_ok());
    ensure!(verify(&after, std::slice::from_ref(&old_key)).is_err());

    // The admin event, and the files.
    let events = admin_events(&admin).await?;
    let (event_seq, _, payload) = events
        .iter()
        .find(|(_, t, _)| t == "admin.signing_key_rotated")
        .context("no admin.signing_key_rotated")?;
    ensure!(*event_seq == change.seq);
    ensure!(payload["actor"] == "root", "{payload}");
    ensure!(payload["old_key"] == old_key.to_string().as_str(), "{payload}");
    ensure!(payload["new_key"] == new_key.to_string().as_str(), "{payload}");
    ensure!(payload["rotation_seq"] == seq, "{payload}");
    ensure!(payload["policy_digest"] == change.policy_digest.as_str(), "{payload}");
    let history = std::fs::read_to_string(dir.path().join("ledger-keys.pub"))?;
    ensure!(history == format!("{old_key}\n{new_key}\n"), "{history}");
    let current = std::fs::read_to_string(dir.path().join("ledger.key.pub"))?;
    ensure!(current.trim_end() == new_key.to_string());
    ensure!(!dir.path().join("ledger.key.new").exists());
    ensure!(
        std::fs::read_dir(dir.path().join("retired-keys"))?.count() == 2,
        "the key and its .pub"
    );
    let n_admin_events = events.len();
    server.stop().await?;

    // Restarted on the same directory: the new key, and nothing re-recorded
    // (the event carried the principals file's digest forward).
    let server = restart(dir.path()).await?;
    let admin = server.client_with_key(&root).await?;
    ensure!(admin.info().await?.verifier_key == new_key.to_string());
    admin
        .append(proto::AppendRequest {
            events: incident("INC-2026-0202"),
            ..Default::default()
        })
        .await?;
    let latest = admin.checkpoint(None).await?;
    ensure!(signed_by(&latest.note, &new_key) && !signed_by(&latest.note, &old_key));
    ensure!(admin_events(&admin).await?.len() == n_admin_events);

    // Only an admin of every namespace may rotate.
    let refused = server
        .client_with_key(&producer)
        .await?
        .admin()
        .rotate_signing_key(proto::RotateSigningKeyRequest {})
        .await
        .err()
        .context("the producer rotated the key")?;
    ensure!(refused.code() == tonic::Code::PermissionDenied, "{refused:?}");
    ensure!(admin.info().await?.verifier_key == new_key.to_string());
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_rotates_too_and_the_cli_prints_the_new_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let old_key = ledger_tests::test_signer()?.verifier_key()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let client = server.client().await?;
    let before = bundle_of(&client, "INC-2026-0300").await?;

    let out = std::process::Command::new(crate::LEDGER)
        .arg("--server")
        .arg(server.url())
        .args(["admin", "rotate-signing-key"])
        .env_remove("LEDGER_API_KEY")
        .output()?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout)?;
    let new_key = VerifierKey::parse(printed.trim_end())?;
    ensure!(new_key != old_key);
    ensure!(client.info().await?.verifier_key == new_key.to_string());

    // Recorded, with the development caller as the actor and no principals
    // file to name.
    let events = admin_events(&client).await?;
    let (_, _, payload) = events
        .iter()
        .find(|(_, t, _)| t == "admin.signing_key_rotated")
        .context("no admin.signing_key_rotated")?;
    ensure!(payload["actor"] == "development", "{payload}");
    ensure!(payload.get("policy_digest").is_none(), "{payload}");
    ensure!(payload["new_key"] == new_key.to_string().as_str(), "{payload}");

    // Again: a second rotation, to a third key.
    let again = rotate(&client).await?;
    ensure!(again.old_verifier_key == new_key.to_string() && !again.resumed);
    let third = VerifierKey::parse(&again.new_verifier_key)?;
    ensure!(again.change.context("no change")?.policy_digest.is_empty());
    let after = bundle_of(&client, "INC-2026-0301").await?;
    server.stop().await?;

    let every: Vec<VerifierKey> = std::fs::read_to_string(dir.path().join("ledger-keys.pub"))?
        .lines()
        .map(VerifierKey::parse)
        .collect::<Result<_, _>>()?;
    ensure!(every == [old_key.clone(), new_key.clone(), third.clone()]);
    ensure!(verify(&before, &every).is_ok() && verify(&after, &every)?.key_rotations == 2);
    ensure!(verify(&after, std::slice::from_ref(&new_key)).is_err());

    let server = restart(dir.path()).await?;
    ensure!(server.client().await?.info().await?.verifier_key == third.to_string());
    server.stop().await
}

/// A rotation that stopped after the log switched keys but before the key
/// files were put in place (a crash): the old key no longer opens the
/// ledger, and `ledgerd` finishes the rotation when it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_finishes_a_rotation_interrupted_before_the_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = server_config(dir.path())?;
    let old_key = ledger_tests::test_signer()?.verifier_key()?;
    let server = TestServer::start(config.clone()).await?;
    bundle_of(&server.client().await?, "INC-2026-0400").await?;
    server.stop().await?;

    // Steps 1 and 2 of a rotation, then "the crash".
    let (key_file, data) = (config.key_file.clone(), config.data_dir.clone());
    let (new_key, seq) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (new, resumed) = ledger_server::keys::stage_new_key(&key_file, &old_key.name)?;
        ensure!(!resumed);
        let new_key = new.verifier_key()?;
        let ledger = Ledger::open(&data, LedgerConfig::default(), ledger_tests::test_signer()?)?;
        let outcome = ledger.rotate_signer(Arc::new(new))?;
        ledger.close()?;
        drop(ledger);
        let err = Ledger::open(&data, LedgerConfig::default(), ledger_tests::test_signer()?)
            .err()
            .context("the retired key opened the ledger")?;
        ensure!(matches!(err, LedgerError::RetiredKey { .. }), "{err}");
        Ok((new_key, outcome.seq))
    })
    .await??;
    ensure!(dir.path().join("ledger.key.new").exists());

    let server = TestServer::start(server_config(dir.path())?).await?;
    let client = server.client().await?;
    ensure!(client.info().await?.verifier_key == new_key.to_string());
    ensure!(!dir.path().join("ledger.key.new").exists());
    let current = LocalKeySigner::load(&dir.path().join("ledger.key"))?;
    ensure!(current.verifier_key()? == new_key);
    let history = std::fs::read_to_string(dir.path().join("ledger-keys.pub"))?;
    ensure!(history.lines().count() == 2, "{history}");
    // The rotation is the log's; a second call finds it done, rotates anew.
    let rotated = rotate(&client).await?;
    ensure!(rotated.old_verifier_key == new_key.to_string() && rotated.rotation_seq > seq);
    server.stop().await
}

/// The key files cannot be put in place (here: `retired-keys` is a file):
/// the call fails after the ledger switched keys; calling again finishes
/// the same rotation and records it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_whose_files_failed_is_finished_by_calling_again() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let old_key = ledger_tests::test_signer()?.verifier_key()?;
    let server = TestServer::start(server_config(dir.path())?).await?;
    let client = server.client().await?;
    bundle_of(&client, "INC-2026-0500").await?;
    let blocker = dir.path().join("retired-keys");
    std::fs::write(&blocker, b"in the way")?;

    let failed = client
        .admin()
        .rotate_signing_key(proto::RotateSigningKeyRequest {})
        .await
        .err()
        .context("rotated without a place to retire the old key")?;
    ensure!(failed.code() == tonic::Code::Internal, "{failed:?}");
    // The log switched: the new key (still in ledger.key.new) signs.
    let staged = LocalKeySigner::load(&dir.path().join("ledger.key.new"))?.verifier_key()?;
    ensure!(client.info().await?.verifier_key == staged.to_string());
    ensure!(LocalKeySigner::load(&dir.path().join("ledger.key"))?.verifier_key()? == old_key);

    std::fs::remove_file(&blocker)?;
    let finished = rotate(&client).await?;
    ensure!(finished.resumed, "{finished:?}");
    ensure!(finished.old_verifier_key == old_key.to_string());
    ensure!(finished.new_verifier_key == staged.to_string());
    ensure!(LocalKeySigner::load(&dir.path().join("ledger.key"))?.verifier_key()? == staged);
    ensure!(!dir.path().join("ledger.key.new").exists());
    let rotated: Vec<_> = admin_events(&client)
        .await?
        .into_iter()
        .filter(|(_, t, _)| t == "admin.signing_key_rotated")
        .collect();
    ensure!(rotated.len() == 1, "{rotated:?}");
    ensure!(rotated[0].2["resumed"] == true && rotated[0].2["rotation_seq"] == finished.rotation_seq);
    // Exactly one rotation record in the log.
    let mut keys = client
        .read(proto::ReadRequest {
            stream: "ledger/keys".to_string(),
            ..Default::default()
        })
        .await?;
    let mut n_rotations = 0;
    while keys.message().await?.is_some() {
        n_rotations += 1;
    }
    ensure!(n_rotations == 1);
    server.stop().await?;
    let server = restart(dir.path()).await?;
    ensure!(server.client().await?.info().await?.verifier_key == staged.to_string());
    server.stop().await
}
