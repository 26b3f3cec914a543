//! A projection of your own, registered with the engine next to the
//! built-ins: deploys per service, with the last version deployed.
//!
//! It gets everything the built-ins get: catch-up on open, live folding,
//! state persisted with the seq it reflects, faults listed by seq, a state
//! digest, replay into a fresh state and time travel.
//!
//! `cargo run -p ledger-core --example custom_projection`

use std::sync::Arc;
use std::time::Duration;

use ledger_core::projection::{Changes, Effects, Fault, Projection, Projections, Table};
use ledger_core::{AppendRequest, Event, Ledger, LedgerConfig, LocalKeySigner, Record};
use serde::{Deserialize, Serialize};

/// One row per service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Deploys {
    count: u64,
    last_version: String,
    last_seq: u64,
}

/// The state: a [`Table`] tracks which rows changed, so the engine persists
/// only those.
struct DeploysPerService {
    services: Table<Deploys>,
}

#[derive(Deserialize)]
struct DeployPayload {
    service: String,
    version: String,
}

impl Projection for DeploysPerService {
    fn name(&self) -> &'static str {
        "deploys"
    }

    fn version(&self) -> u32 {
        1
    }

    fn fresh(&self) -> Self {
        DeploysPerService {
            services: Table::new("services"),
        }
    }

    fn apply(&mut self, record: &Record, _effects: &mut Effects) -> Result<(), Fault> {
        if record.header.event.event_type != "deploy.finished" {
            return Ok(());
        }
        // Validate before mutating: a faulting record leaves the state as it was.
        let payload: DeployPayload =
            serde_json::from_slice(&record.payload).map_err(|e| Fault::new(format!("payload: {e}")))?;
        let row = self.services.get_or_insert_with(&payload.service, Deploys::default);
        row.count += 1;
        row.last_version = payload.version;
        row.last_seq = record.header.seq;
        Ok(())
    }

    fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        self.services.take_changes(changes)
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault> {
        if self.services.restore(key, value)? {
            Ok(())
        } else {
            Err(Fault::new("a stored key of no table"))
        }
    }
}

fn deploy(service: &str, version: &str) -> Event {
    let payload = serde_json::json!({"service": service, "version": version});
    Event::json(format!("deploy/{service}"), "deploy.finished", payload.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let signer = Arc::new(LocalKeySigner::generate("example.invalid/ledger")?);
    let config = LedgerConfig {
        origin: "example.invalid/ledger".to_string(),
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::open(dir.path().join("ledger"), config, signer)?);
    ledger.append(AppendRequest::new(vec![
        deploy("registry", "1.4.0"),
        deploy("ops-hub", "0.9.2"),
        deploy("registry", "1.4.1"),
    ]))?;

    let engine = Projections::open(Arc::clone(&ledger), dir.path().join("projections"))?;
    let deploys = engine.register(DeploysPerService {
        services: Table::new("services"),
    })?;

    // Live: appended records are folded on the engine's thread.
    let malformed = Event::json(
        "deploy/registry",
        "deploy.finished",
        b"{\"service\":\"registry\"}".to_vec(),
    );
    ledger.append(AppendRequest::new(vec![malformed, deploy("registry", "1.5.0")]))?;
    if !deploys.wait_applied(5, Duration::from_secs(10)) {
        return Err("the engine did not fold 5 records within 10 s".into());
    }

    for (service, row) in deploys.read().services.iter() {
        println!(
            "{service}: {} deploys, last {} at seq {}",
            row.count, row.last_version, row.last_seq
        );
    }
    let status = deploys.status()?;
    println!(
        "applied {}, lag {}, faults {}",
        status.applied, status.lag, status.faults
    );
    for (seq, reason) in deploys.faults(0, 10)? {
        println!("fault at seq {seq}: {reason}");
    }

    // Time travel: the state as of seq 2 (records 0..=2).
    let then = deploys.at_seq(2)?;
    let registry = then.services.get("registry").map(|r| r.last_version.clone());
    println!("as of seq 2, registry was at {registry:?}");

    // Replay into a fresh state, swapped in when complete: same digest.
    let before = deploys.digest()?;
    let outcome = deploys.replay(0, |_| {})?;
    println!(
        "replayed {} records, digest {} (live state had {})",
        outcome.records, outcome.digest.digest, before.digest
    );
    assert_eq!(outcome.digest.digest, before.digest);

    engine.close()?;
    ledger.close()?;
    Ok(())
}
