//! Shared helpers for the behaviour tests in `tests/tests/`: opening a
//! ledger on a directory with a fixed test key, and making realistic events.

use std::path::Path;
use std::sync::Arc;

use ledger_core::{AppendRequest, Event, Ledger, LedgerConfig, LocalKeySigner, Signer};

pub mod server;

/// Origin and key name used by every test ledger.
pub const TEST_ORIGIN: &str = "evidence-ledger.test/log";

/// Seed of the deterministic test signing key.
pub const TEST_SEED: [u8; 32] = [42; 32];

/// The deterministic test signing key.
pub fn test_signer() -> anyhow::Result<Arc<dyn Signer>> {
    Ok(Arc::new(LocalKeySigner::from_seed(TEST_ORIGIN, TEST_SEED)?))
}

/// Default config with the test origin.
pub fn test_config() -> LedgerConfig {
    LedgerConfig {
        origin: TEST_ORIGIN.to_string(),
        ..LedgerConfig::default()
    }
}

/// Opens (or creates) a ledger in `dir` with the test key and config.
pub fn open(dir: &Path) -> anyhow::Result<Ledger> {
    Ok(Ledger::open(dir, test_config(), test_signer()?)?)
}

/// An ops-hub style event: `ops.health_checked` on `service/<service>`.
pub fn health_event(service: &str, n: u64) -> Event {
    let payload = serde_json::json!({
        "endpoint": format!("https://{service}.example/healthz"),
        "expected_status": 200,
        "observed_status": 200,
        "probe_run": n,
    });
    let mut event = Event::json(format!("service/{service}"), "ops.health_checked", payload.to_string());
    event.metadata.correlation_id = format!("run-{n}");
    event
        .metadata
        .extra
        .insert("workplan".to_string(), "CUST-WP-0051".to_string());
    event
}

/// A batch of `n` health events.
pub fn health_batch(service: &str, start: u64, n: u64) -> AppendRequest {
    AppendRequest::new((start..start + n).map(|i| health_event(service, i)).collect())
}

/// Every projection's digest, in the engine's order.
pub fn digests(
    engine: &ledger_core::projection::Projections,
) -> anyhow::Result<Vec<ledger_core::projection::StateDigest>> {
    engine
        .names()
        .into_iter()
        .map(|name| Ok(engine.digest(name)?))
        .collect()
}
