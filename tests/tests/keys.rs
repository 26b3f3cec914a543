//! Key rotation with the real binary: `ledgerd keys rotate` appends a
//! rotation record signed by both keys, keeps the old verifier key
//! published, and the ledger signs with the new key from then on; a bundle
//! sealed before the rotation still verifies with the old key alone; and
//! running it again finishes a rotation a crash interrupted.

use std::process::Command;

use ledger_client::proto;
use ledger_core::Signer as _;
use ledger_tests::server::{TestServer, server_config};
use ledger_verify::bundle::{BundleError, VerifyOptions, parse_bundle, seal, verify_bundle};
use ledger_verify::note::{NoteSignature, VerifierKey, open_note};
use ledger_verify::rotation::{KEY_ROTATED, KEYS_STREAM, KeyRotation};
use tokio_stream::StreamExt as _;

/// An incident opened and resolved (shared with `rotate_online`).
pub(crate) fn incident(id: &str) -> Vec<proto::Event> {
    ["incident.opened", "incident.resolved"]
        .iter()
        .map(|t| {
            let payload = serde_json::json!({"incident_id": id, "severity": "SEV3", "title": "x", "service": "s"});
            ledger_client::event(format!("incident/{id}"), *t, payload.to_string().into_bytes())
        })
        .collect()
}

/// Appends incident `id` and returns the bytes of a bundle of it (shared
/// with `rotate_online`).
pub(crate) async fn bundle_of(client: &ledger_client::Client, id: &str) -> anyhow::Result<Vec<u8>> {
    client
        .append(proto::AppendRequest {
            events: incident(id),
            ..Default::default()
        })
        .await?;
    let created = client
        .create_bundle(proto::CreateBundleRequest {
            selector: [("incident".to_string(), id.to_string())].into(),
            ..Default::default()
        })
        .await?;
    let mut bytes = Vec::new();
    client.get_bundle(&created.bundle_id, &mut bytes).await?;
    Ok(bytes)
}

fn rotate(dir: &std::path::Path) -> std::io::Result<std::process::Output> {
    Command::new(crate::LEDGERD)
        .args(["keys", "rotate", "--data"])
        .arg(dir)
        .output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_recorded_and_old_bundles_keep_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let old_key = ledger_tests::test_signer().unwrap().verifier_key().unwrap();

    let server = TestServer::start(server_config(dir.path()).unwrap()).await.unwrap();
    let before = bundle_of(&server.client().await.unwrap(), "INC-2026-0100")
        .await
        .unwrap();
    // While ledgerd runs, the directory is locked: no rotation.
    let output = rotate(dir.path()).unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("still running"));
    server.stop().await.unwrap();

    let output = rotate(dir.path()).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("rotation record at seq 2"), "{stdout}");
    let history = std::fs::read_to_string(dir.path().join("ledger-keys.pub")).unwrap();
    let keys: Vec<VerifierKey> = history.lines().map(|l| VerifierKey::parse(l).unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], old_key);
    let new_key = keys[1].clone();
    assert_ne!(new_key, old_key);
    let current = std::fs::read_to_string(dir.path().join("ledger.key.pub")).unwrap();
    assert_eq!(current.trim_end(), new_key.to_string());

    // Restarted on the same directory: the new key signs.
    let server = TestServer::start(server_config(dir.path()).unwrap()).await.unwrap();
    let client = server.client().await.unwrap();
    let checkpoint = client.checkpoint(None).await.unwrap();
    ledger_verify::note::open_checkpoint(&checkpoint.note, std::slice::from_ref(&new_key)).unwrap();
    assert!(ledger_verify::note::open_checkpoint(&checkpoint.note, std::slice::from_ref(&old_key)).is_err());

    // The rotation record, in the log, signed by both keys.
    let mut records = client
        .read(proto::ReadRequest {
            stream: KEYS_STREAM.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    let record = records.next().await.unwrap().unwrap();
    let event = record.event.unwrap();
    assert_eq!((record.seq, event.r#type.as_str()), (2, KEY_ROTATED));
    let rotation = KeyRotation::parse(&event.payload).unwrap();
    assert_eq!(rotation.verify().unwrap(), (old_key.clone(), new_key.clone()));

    // Old bundle: old key. New bundle: new key. Both keys: both.
    let after = bundle_of(&server.client().await.unwrap(), "INC-2026-0101")
        .await
        .unwrap();
    server.stop().await.unwrap();
    let with = |keys: &[VerifierKey], bytes: &[u8]| {
        verify_bundle(
            bytes,
            VerifyOptions {
                keys,
                trusted_checkpoints: &[],
            },
        )
    };
    assert!(with(std::slice::from_ref(&old_key), &before).is_ok());
    // The new bundle carries the rotation record: which key was valid when.
    assert_eq!(with(std::slice::from_ref(&new_key), &after).unwrap().key_rotations, 1);
    // A retired key that signs a later tree (stolen, say) is refused, even
    // by an auditor who still trusts it.
    let old_signer = ledger_tests::test_signer().unwrap();
    let mut forged = parse_bundle(&after).unwrap();
    let (body, _) = open_note(&forged.checkpoint, std::slice::from_ref(&new_key)).unwrap();
    let signature = NoteSignature {
        name: old_key.name.clone(),
        key_id: old_key.key_id,
        signature: old_signer.sign(body.as_bytes()).unwrap().to_vec(),
    };
    forged.checkpoint = format!("{body}\n{}", signature.to_line());
    seal(&mut forged, &old_key.name, &old_key.public_key, |m| old_signer.sign(m)).unwrap();
    let forged = serde_json::to_vec(&forged).unwrap();
    let err = with(&keys, &forged).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::RetiredKey {
                rotation_seq: 2,
                last_size: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = with(std::slice::from_ref(&old_key), &after).unwrap_err();
    assert!(matches!(err, BundleError::Checkpoint(_)), "{err}");
    assert!(with(std::slice::from_ref(&new_key), &after).is_ok());
    assert!(with(&keys, &before).is_ok() && with(&keys, &after).is_ok());

    // Running it again rotates again (a new key), recorded the same way.
    let output = rotate(dir.path()).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let history = std::fs::read_to_string(dir.path().join("ledger-keys.pub")).unwrap();
    assert_eq!(history.lines().count(), 3);
    assert_eq!(
        std::fs::read_dir(dir.path().join("retired-keys")).unwrap().count(),
        4,
        "two keys, two .pub"
    );
}

/// A rotation stopped after the log switched keys (steps 1 and 2 done, no
/// key file moved): the retired key no longer opens the ledger, and running
/// `ledgerd keys rotate` again finishes that rotation instead of starting
/// another. Stopped between the two renames (no `ledger.key`), it installs
/// the new key and does nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_it_again_finishes_an_interrupted_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let config = server_config(dir.path()).unwrap();
    let server = TestServer::start(config.clone()).await.unwrap();
    bundle_of(&server.client().await.unwrap(), "INC-2026-0110")
        .await
        .unwrap();
    server.stop().await.unwrap();

    let data = config.data_dir.clone();
    let key_file = config.key_file.clone();
    let (new_key, seq) = tokio::task::spawn_blocking(move || {
        let old = ledger_tests::test_signer().unwrap();
        let (new, _) = ledger_server::keys::stage_new_key(&key_file, old.key_name()).unwrap();
        let new_key = new.verifier_key().unwrap();
        let ledger = ledger_core::Ledger::open(&data, ledger_core::LedgerConfig::default(), old).unwrap();
        let outcome = ledger.rotate_signer(std::sync::Arc::new(new)).unwrap();
        drop(ledger);
        (new_key, outcome.seq)
    })
    .await
    .unwrap();

    let output = rotate(dir.path()).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("(resumed): rotation record at seq {seq}")),
        "{stdout}"
    );
    let current = std::fs::read_to_string(dir.path().join("ledger.key.pub")).unwrap();
    assert_eq!(current.trim_end(), new_key.to_string());
    assert!(!dir.path().join("ledger.key.new").exists());

    // Interrupted between the renames of the next rotation's last step.
    let output = rotate(dir.path()).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let third = std::fs::read_to_string(dir.path().join("ledger.key.pub")).unwrap();
    std::fs::rename(dir.path().join("ledger.key"), dir.path().join("ledger.key.new")).unwrap();
    std::fs::rename(dir.path().join("ledger.key.pub"), dir.path().join("ledger.key.new.pub")).unwrap();
    let output = rotate(dir.path()).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("finished an interrupted rotation"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ledger.key.pub")).unwrap(),
        third
    );
    let history = std::fs::read_to_string(dir.path().join("ledger-keys.pub")).unwrap();
    assert_eq!(history.lines().count(), 3);

    let server = TestServer::start(server_config(dir.path()).unwrap()).await.unwrap();
    let info = server.client().await.unwrap().info().await.unwrap();
    assert_eq!(format!("{}\n", info.verifier_key), third);
    server.stop().await.unwrap();
}
