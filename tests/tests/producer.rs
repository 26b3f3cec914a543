//! Producer signatures and bad input: each a specific error, nothing written.

use std::sync::Arc;

use ed25519_dalek::{Signer as _, SigningKey};
use ledger_core::producer::StaticProducerKeys;
use ledger_core::{AppendRequest, LedgerConfig, LedgerError, ProducerSignature};
use ledger_tests::{health_event, open, test_signer};

fn signed(key: &SigningKey, key_id: &str, n: u64) -> ledger_core::Event {
    let mut event = health_event("probe", n);
    let signature = key.sign(&event.signing_bytes()).to_bytes();
    event.signature = Some(ProducerSignature {
        key_id: key_id.to_string(),
        signature,
    });
    event
}

#[test]
fn producer_signatures_are_checked_per_event() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = open(dir.path())?;
    let probe = SigningKey::from_bytes(&[5; 32]);
    let mut keys = StaticProducerKeys::new();
    keys.insert("probe-1", probe.verifying_key());
    ledger.set_producer_keys(Some(Arc::new(keys)));

    let good: Vec<_> = (0..4).map(|n| signed(&probe, "probe-1", n)).collect();
    let outcome = ledger.append(AppendRequest::new(good))?;
    assert_eq!(outcome.receipts.len(), 4);
    let stored = ledger.read(0)?;
    assert_eq!(
        stored.header.event.signature.as_ref().map(|s| s.key_id.as_str()),
        Some("probe-1")
    );

    let mut forged = signed(&probe, "probe-1", 10);
    forged.payload = br#"{"forged":true}"#.to_vec();
    let forged_id = forged.id;
    let batch = vec![signed(&probe, "probe-1", 11), forged];
    let err = ledger.append(AppendRequest::new(batch)).expect_err("forged");
    assert!(
        matches!(&err, LedgerError::BadProducerSignature { event_id, key_id } if *event_id == forged_id && key_id == "probe-1"),
        "{err}"
    );
    let unknown = signed(&probe, "probe-2", 12);
    let err = ledger
        .append(AppendRequest::new(vec![unknown]))
        .expect_err("unknown key");
    assert!(
        matches!(&err, LedgerError::UnknownProducerKey { key_id, .. } if key_id == "probe-2"),
        "{err}"
    );
    assert_eq!(ledger.len(), 4, "rejected batches wrote nothing");
    Ok(())
}

#[test]
fn bad_input_is_rejected_whole_and_names_the_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = LedgerConfig {
        max_payload_bytes: 512,
        ..ledger_tests::test_config()
    };
    let ledger = ledger_core::Ledger::open(dir.path(), config, test_signer()?)?;
    let mut big = health_event("ops-hub", 1);
    big.content_type = "application/octet-stream".to_string();
    big.payload = vec![0; 513];
    let batch = vec![health_event("ops-hub", 0), big];
    let err = ledger.append(AppendRequest::new(batch)).expect_err("too big");
    assert!(
        matches!(
            err,
            LedgerError::PayloadTooLarge {
                index: 1,
                size: 513,
                limit: 512,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("max_payload_bytes"), "{err}");

    let mut no_stream = health_event("ops-hub", 2);
    no_stream.stream.clear();
    let err = ledger
        .append(AppendRequest::new(vec![no_stream]))
        .expect_err("empty stream");
    assert!(
        matches!(
            err,
            LedgerError::InvalidEvent {
                field: "stream",
                index: 0,
                ..
            }
        ),
        "{err}"
    );

    let mut no_type = health_event("ops-hub", 3);
    no_type.event_type.clear();
    let err = ledger
        .append(AppendRequest::new(vec![no_type]))
        .expect_err("empty type");
    assert!(matches!(err, LedgerError::InvalidEvent { field: "type", .. }), "{err}");

    assert_eq!(ledger.len(), 0, "nothing was written");
    // Closed, the segment has shed the writer's preallocated zeros.
    drop(ledger);
    assert_eq!(
        std::fs::metadata(dir.path().join("log/00000000000000000000.seg"))?.len(),
        32
    );
    Ok(())
}
