//! Bundles end to end over a real loopback server: evidence appended
//! through gRPC, a bundle selected from the bundle index, sealed, stored,
//! streamed back and verified offline with `ledger_verify` and nothing but
//! the ledger's public key; bad requests get precise status codes; the CLI
//! writes the same file.

use std::process::Command;

use ledger_client::{Client, ClientError, proto};
use ledger_tests::server::{TestServer, server_config};
use ledger_verify::bundle::{BundleError, VerifyOptions, parse_bundle, verify_bundle};
use tonic::Code;

fn ev(stream: &str, event_type: &str, payload: serde_json::Value) -> proto::Event {
    ledger_client::event(stream, event_type, payload.to_string().into_bytes())
}

fn incident_evidence(id: &str, service: &str) -> Vec<proto::Event> {
    let stream = format!("incident/{id}");
    vec![
        ev(
            &stream,
            "incident.opened",
            serde_json::json!({"incident_id": id, "severity": "SEV2", "title": "5xx", "service": service}),
        ),
        ev(
            &format!("service/{service}"),
            "ops.health_checked",
            serde_json::json!({"ok": false}),
        ),
        ev(&stream, "incident.acknowledged", serde_json::json!({"incident_id": id})),
        ev(&stream, "incident.resolved", serde_json::json!({"incident_id": id})),
    ]
}

fn status_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Code, String) {
    match result {
        Err(ClientError::Status(status)) => (status.code(), status.message().to_string()),
        other => panic!("expected an error status, got {other:?}"),
    }
}

async fn fetch(client: &Client, id: &str) -> Result<Vec<u8>, ClientError> {
    let mut bytes = Vec::new();
    client.get_bundle(id, &mut bytes).await?;
    Ok(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_made_served_and_verify_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_config(dir.path()).unwrap()).await.unwrap();
    let client = server.client().await.unwrap();
    let key = ledger_tests::test_signer().unwrap().verifier_key().unwrap();
    let keys = [key];
    let options = VerifyOptions {
        keys: &keys,
        trusted_checkpoints: &[],
    };
    let mut events = incident_evidence("INC-2026-0042", "registry");
    events.extend(incident_evidence("INC-2026-0043", "ops-hub"));
    client
        .append(proto::AppendRequest {
            events,
            ..Default::default()
        })
        .await
        .unwrap();
    let trusted = client.checkpoint(None).await.unwrap().note;
    // Evidence after the checkpoint the auditor trusts.
    client
        .append(proto::AppendRequest {
            events: incident_evidence("INC-2026-0044", "registry"),
            ..Default::default()
        })
        .await
        .unwrap();

    // Created right after the append: the index catches up first.
    let created = client
        .create_bundle(proto::CreateBundleRequest {
            selector: [("incident".to_string(), "INC-2026-0042".to_string())].into(),
            consistency_from: vec![8],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((created.record_count, created.checkpoint_size), (3, 12));
    let bytes = fetch(&client, &created.bundle_id).await.unwrap();
    assert_eq!(bytes.len() as u64, created.bytes);
    let trusted_checkpoints = [trusted];
    let verified = verify_bundle(
        &bytes,
        VerifyOptions {
            keys: &keys,
            trusted_checkpoints: &trusted_checkpoints,
        },
    )
    .unwrap();
    assert_eq!(
        (verified.records, verified.payloads, verified.consistency_proofs),
        (3, 3, 1)
    );
    let bundle = parse_bundle(&bytes).unwrap();
    assert_eq!(bundle.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 2, 3]);
    assert_eq!(bundle.manifest.selector["incident"], "INC-2026-0042");
    assert_eq!(created.contents_digest, bundle.manifest.contents_digest);

    // Combined selectors, time ranges and withheld payloads.
    let withheld = client
        .create_bundle(proto::CreateBundleRequest {
            selector: [
                ("stream".to_string(), "service/registry".to_string()),
                ("from_seq".to_string(), "4".to_string()),
            ]
            .into(),
            withhold_payloads: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let bytes = fetch(&client, &withheld.bundle_id).await.unwrap();
    let verified = verify_bundle(&bytes, options).unwrap();
    assert_eq!((verified.records, verified.payloads), (1, 0), "seq 9 only");

    // Tampered in transit: the verifier names the record.
    let mut tampered = parse_bundle(&fetch(&client, &created.bundle_id).await.unwrap()).unwrap();
    tampered.records.swap(0, 1);
    let err = verify_bundle(&serde_json::to_vec(&tampered).unwrap(), options).unwrap_err();
    assert!(matches!(err, BundleError::RecordOrder { seq: 0, .. }), "{err}");

    let list = client.list_bundles().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|b| b.payloads_withheld).count(), 1);
    assert!(
        list.iter()
            .any(|b| b.bundle_id == created.bundle_id && b.record_count == 3)
    );

    // Bad requests.
    let create = |selector: &[(&str, &str)], consistency_from: Vec<u64>| {
        client.create_bundle(proto::CreateBundleRequest {
            selector: selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            consistency_from,
            ..Default::default()
        })
    };
    let (code, message) = status_of(create(&[], vec![]).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("selector:"), "{message}");
    let (code, message) = status_of(create(&[("colour", "red")], vec![]).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("selector.colour:"), "{message}");
    let (code, message) = status_of(create(&[("from_seq", "x")], vec![]).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("selector.from_seq:"), "{message}");
    let (code, _) = status_of(create(&[("incident", "INC-1999-0001")], vec![]).await);
    assert_eq!(code, Code::NotFound);
    let (code, message) = status_of(create(&[("incident", "INC-2026-0042")], vec![99]).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("consistency_from:"), "{message}");
    let mut sink = Vec::new();
    let (code, message) = status_of(client.get_bundle("../../etc/passwd", &mut sink).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("bundle_id:"), "{message}");
    let (code, _) = status_of(
        client
            .get_bundle("0193a1b2-0000-7000-8000-000000000000", &mut sink)
            .await,
    );
    assert_eq!(code, Code::NotFound);

    // The CLI writes a file that verifies.
    let out = dir.path().join("incident.bundle.json");
    let output = Command::new(crate::LEDGER)
        .args([
            "--server",
            &server.url(),
            "bundle",
            "create",
            "--incident",
            "INC-2026-0044",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("3 records, checkpoint size 12"));
    let verified = verify_bundle(&std::fs::read(&out).unwrap(), options).unwrap();
    assert_eq!(verified.records, 3);
    let output = Command::new(crate::LEDGER)
        .args(["--server", &server.url(), "bundle", "create"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--incident"));
    let output = Command::new(crate::LEDGER)
        .args(["--server", &server.url(), "bundle", "list"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        4,
        "header + 3 bundles"
    );

    server.stop().await.unwrap();
}
