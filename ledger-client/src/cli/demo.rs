//! The newcomer's first five minutes, against a running `ledgerd`: stream a
//! realistic evidence set, show the task board, the incident record and a
//! metrics rollup, make a bundle for the incident, verify it offline, then
//! tamper with a copy and watch the verifier name the broken record.
//!
//! `ledgerd demo` runs this against an in-process server on its own data
//! directory; `ledger demo --server URL` against any server, and `ledger
//! demo` alone hands over to `ledgerd demo` (this crate cannot link the
//! server: the server links this crate). Event ids and
//! times are fixed, so running it again deduplicates instead of adding.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ledger_verify::bundle::{VerifyOptions, parse_bundle, verify_bundle};
use ledger_verify::note::VerifierKey;
use serde_json::{Value, json};

use super::views::{print_rows, query_rows};
use crate::{Client, proto};

/// The demo's workplan, incident and services.
const WORKPLAN: &str = "CUST-WP-0051";
const INCIDENT: &str = "INC-2026-0042";
const SERVICES: [&str; 3] = ["registry", "artifact-store", "ops-hub"];
/// 2026-11-23T09:00:00Z: every demo event is dated from here.
const START_S: i64 = 1_795_424_400;

/// Builds the evidence in log order.
struct Evidence {
    events: Vec<proto::Event>,
}

impl Evidence {
    fn id(n: usize) -> String {
        let hash = ledger_verify::hash::blake3(format!("evidence-ledger demo event {n}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash[..16]);
        uuid::Uuid::new_v8(bytes).to_string()
    }

    /// Adds an event `seconds` after the start; returns its id.
    fn add(&mut self, seconds: i64, stream: &str, event_type: &str, payload: Value) -> String {
        let id = Evidence::id(self.events.len());
        let time = chrono::DateTime::from_timestamp(START_S + seconds, 0).unwrap_or_default();
        self.events.push(proto::Event {
            id: id.clone(),
            stream: stream.to_string(),
            r#type: event_type.to_string(),
            occurred_at: Some(crate::timestamp(time)),
            payload: payload.to_string().into_bytes(),
            content_type: String::new(),
            metadata: Some(proto::Metadata {
                correlation_id: WORKPLAN.to_string(),
                ..Default::default()
            }),
            signature: None,
        });
        id
    }

    fn task(&mut self, at: i64, id: &str, event_type: &str, payload: Value) -> String {
        self.add(at, &format!("task/{id}"), event_type, payload)
    }

    fn incident(&mut self, at: i64, event_type: &str, mut payload: Value) -> String {
        payload["incident_id"] = json!(INCIDENT);
        self.add(at, &format!("incident/{INCIDENT}"), event_type, payload)
    }
}

/// A deterministic latency in ms: a few ms of noise around `base`.
fn latency(n: u64, base: f64) -> f64 {
    let x = n
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407)
        >> 33;
    (base + (x % 1000) as f64 / 1000.0 * base * 0.6).round()
}

fn evidence() -> Vec<proto::Event> {
    let mut e = Evidence { events: Vec::new() };
    let ws = WORKPLAN;
    e.add(
        0,
        &format!("workstream/{ws}"),
        "workstream.created",
        json!({"id": ws, "title": "Registry migration to v2"}),
    );
    for (n, title) in [
        "Verify registry backups",
        "Switch registry DNS",
        "Confirm the v2 API",
        "Decommission the old registry",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("{ws}-T0{}", n + 1);
        e.task(
            10,
            &id,
            "task.created",
            json!({"id": id, "workstream": ws, "title": title, "status": "todo", "priority": "P1",
            "owner": if n == 1 { "sam" } else { "dana" }}),
        );
    }
    // Health checks every 5 minutes and latency observations every 30 s.
    for minute in (0..60).step_by(5) {
        for service in SERVICES {
            e.add(
                minute * 60,
                &format!("service/{service}"),
                "ops.health_checked",
                json!({"endpoint": format!("https://{service}.example/healthz"), "expected_status": 200, "observed_status": 200}),
            );
        }
    }
    for tick in 0..120u64 {
        let at = tick as i64 * 30;
        for (i, service) in SERVICES[..2].iter().enumerate() {
            // The registry's latency spikes during the incident (minutes 20..35).
            let spike = i == 0 && (40..70).contains(&tick);
            let value = latency(tick * 2 + i as u64, if spike { 900.0 } else { 40.0 });
            e.add(
                at,
                &format!("metrics/{service}"),
                "metric.observed",
                json!({"name": "http_request_duration_ms",
                "labels": {"service": service}, "value": value, "kind": "histogram"}),
            );
        }
    }
    // Tasks move to done with evidence.
    let t = |n: u32| format!("{ws}-T0{n}");
    e.task(300, &t(1), "task.status_changed", json!({"id": t(1), "to": "progress"}));
    let backup = e.add(
        600,
        "service/registry",
        "ops.backup_verified",
        json!({"backup": "registry-2026-11-23", "bytes": 73_400_320, "checksum_ok": true}),
    );
    e.task(
        610,
        &t(1),
        "task.evidence_linked",
        json!({"id": t(1), "evidence": {"event_id": backup}, "description": "restore test passed"}),
    );
    e.task(620, &t(1), "task.status_changed", json!({"id": t(1), "to": "done"}));
    e.task(700, &t(2), "task.status_changed", json!({"id": t(2), "to": "progress"}));
    e.task(
        710,
        &t(2),
        "task.note_added",
        json!({"id": t(2), "text": "DNS TTL lowered to 60 s; waiting for the change window", "author": "sam"}),
    );
    e.task(720, &t(2), "task.status_changed", json!({"id": t(2), "to": "wait"}));
    e.task(900, &t(3), "task.status_changed", json!({"id": t(3), "to": "progress"}));
    let endpoint = e.add(
        950,
        "service/registry",
        "ops.endpoint_verified",
        json!({"endpoint": "https://registry.example/v2/",
        "expected_status": 401, "observed_header": "Docker-Distribution-Api-Version: registry/2.0"}),
    );
    e.task(
        960,
        &t(3),
        "task.evidence_linked",
        json!({"id": t(3), "evidence": {"event_id": endpoint}}),
    );
    e.task(970, &t(3), "task.status_changed", json!({"id": t(3), "to": "done"}));
    // The incident, open to closed.
    e.incident(
        1_230,
        "incident.opened",
        json!({"severity": "SEV2", "title": "push latency above SLO", "service": "registry"}),
    );
    e.incident(1_470, "incident.acknowledged", json!({"by": "oncall-dana"}));
    e.incident(
        1_500,
        "incident.note_added",
        json!({"text": "p95 push latency 1.2 s; storage backend throttling", "by": "oncall-dana"}),
    );
    e.incident(1_800, "incident.mitigated", json!({"by": "oncall-dana"}));
    e.incident(2_100, "incident.resolved", json!({"by": "oncall-dana"}));
    e.incident(3_000, "incident.closed", json!({"by": "sre-lead"}));
    e.events
        .sort_by_key(|ev| ev.occurred_at.as_ref().map(|t| t.seconds).unwrap_or_default());
    e.events
}

async fn caught_up(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = client.projection_status("", false).await?;
        if statuses.iter().all(|s| s.lag == 0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the projections did not catch up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// `ledger demo` without a server: runs `ledgerd demo --data OUT`, the
/// `ledgerd` installed beside this binary (as cargo builds and installs
/// them), so a newcomer needs no running server.
pub async fn run_with_ledgerd(out: &Path, ledgerd: Option<&Path>) -> anyhow::Result<()> {
    let ledgerd = find_ledgerd(ledgerd)?;
    let mut command = std::process::Command::new(&ledgerd);
    command.arg("demo").arg("--data").arg(out);
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .context("waiting for ledgerd demo")?
        .with_context(|| format!("running {}", ledgerd.display()))?;
    if !status.success() {
        bail!("ledgerd demo failed ({status})");
    }
    Ok(())
}

/// `ledgerd`: `given`, or the one beside this binary.
pub fn find_ledgerd(given: Option<&Path>) -> anyhow::Result<std::path::PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    exe.parent()
        .map(|dir| dir.join(format!("ledgerd{}", std::env::consts::EXE_SUFFIX)))
        .filter(|path| path.is_file())
        .with_context(|| {
            format!(
                "no ledgerd beside {}: build it (`cargo build -p ledger-server`), \
                 pass --ledgerd PATH, or pass --server URL",
                exe.display()
            )
        })
}

/// Runs the demo against `client`, writing bundles into `out`.
pub async fn run(client: &Client, out: &Path) -> anyhow::Result<()> {
    let info = client.info().await?;
    println!(
        "ledger {} ({} tree), {} records so far",
        info.origin, info.hash_alg, info.size
    );

    heading("1. Streaming evidence: a workplan, health checks, latency metrics, an incident");
    let events = evidence();
    let total = events.len();
    let (mut appended, mut deduplicated) = (0, 0);
    for chunk in events.chunks(100) {
        let response = client
            .append(proto::AppendRequest {
                events: chunk.to_vec(),
                ..Default::default()
            })
            .await?;
        if response.deduplicated {
            deduplicated += chunk.len();
        } else {
            appended += chunk.len();
        }
    }
    let checkpoint = client.checkpoint(None).await?;
    println!(
        "{total} events: {appended} appended, {deduplicated} already there (fixed ids); signed checkpoint at size {}",
        checkpoint.size
    );
    caught_up(client).await?;

    heading(&format!(
        "2. The task board (ledger workstreams; ledger tasks --workstream {WORKPLAN})"
    ));
    let rows = query_rows(client, "workstreams", HashMap::new()).await?;
    print_rows(&rows, super::views::WORKSTREAM_COLUMNS, false)?;
    println!();
    let filter = HashMap::from([("workstream".to_string(), WORKPLAN.to_string())]);
    print_rows(
        &query_rows(client, "tasks", filter).await?,
        super::views::TASK_COLUMNS,
        false,
    )?;

    heading(&format!("3. The incident record (ledger incidents {INCIDENT})"));
    let filter = HashMap::from([("id".to_string(), INCIDENT.to_string())]);
    let incident = query_rows(client, "incident", filter).await?;
    let incident = incident.first().context("the incident is missing")?;
    let minutes = |field: &str| {
        incident[field]
            .as_i64()
            .map_or("-".to_string(), |ns| format!("{:.1} min", ns as f64 / 60e9))
    };
    println!(
        "{INCIDENT} {} {} on {}: {}; time to acknowledge {}, to resolve {}; timeline of {} records",
        incident["severity"].as_str().unwrap_or("?"),
        incident["state"].as_str().unwrap_or("?"),
        incident["service"].as_str().unwrap_or("?"),
        incident["title"].as_str().unwrap_or("?"),
        minutes("time_to_acknowledge_ns"),
        minutes("time_to_resolve_ns"),
        incident["timeline"].as_array().map_or(0, Vec::len)
    );

    heading("4. A metrics rollup (ledger metrics query http_request_duration_ms --granularity hour)");
    let filter = HashMap::from([
        ("name".to_string(), "http_request_duration_ms".to_string()),
        ("granularity".to_string(), "hour".to_string()),
    ]);
    let rollups = query_rows(client, "metrics", filter).await?;
    for row in &rollups {
        println!(
            "{:<16} count {:>3}  p50 {:>6} ms  p95 {:>6} ms  p99 {:>6} ms  max {:>6} ms",
            row["labels"]["service"].as_str().unwrap_or("?"),
            row["count"],
            row["p50"].as_f64().map_or(0.0, f64::round),
            row["p95"].as_f64().map_or(0.0, f64::round),
            row["p99"].as_f64().map_or(0.0, f64::round),
            row["max"]
        );
    }

    heading(&format!(
        "5. An audit bundle for {INCIDENT} (ledger bundle create --incident {INCIDENT})"
    ));
    let created = client
        .create_bundle(proto::CreateBundleRequest {
            selector: HashMap::from([("incident".to_string(), INCIDENT.to_string())]),
            ..Default::default()
        })
        .await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("incident.bundle.json");
    let mut bytes = Vec::new();
    client.get_bundle(&created.bundle_id, &mut bytes).await?;
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    let key_path = out.join("ledger-verifier.pub");
    std::fs::write(&key_path, format!("{}\n", info.verifier_key))
        .with_context(|| format!("writing {}", key_path.display()))?;
    println!(
        "{} records with inclusion proofs against checkpoint {}, signed: {} ({} bytes)",
        created.record_count,
        created.checkpoint_size,
        path.display(),
        bytes.len()
    );

    heading("6. The auditor verifies it offline, trusting only the public key");
    let key = VerifierKey::parse(&info.verifier_key).context("the server's verifier key does not parse")?;
    let keys = [key];
    let options = VerifyOptions {
        keys: &keys,
        trusted_checkpoints: &[],
    };
    let verified = verify_bundle(&bytes, options)?;
    println!(
        "verified: {} records, checkpoint size {}",
        verified.records, verified.checkpoint_size
    );
    println!(
        "(same as: cargo run -p ledger-verify -- bundle {} --key {})",
        path.display(),
        key_path.display()
    );

    heading("7. Someone edits one payload byte in a copy");
    let mut bundle = parse_bundle(&bytes)?;
    let record = bundle
        .records
        .iter_mut()
        .find(|r| r.payload.is_some())
        .context("the bundle has no payload to tamper with")?;
    let mut payload = BASE64.decode(record.payload.as_deref().unwrap_or_default())?;
    let middle = payload.len() / 2;
    payload[middle] ^= 0x01;
    record.payload = Some(BASE64.encode(&payload));
    let tampered = serde_json::to_vec_pretty(&bundle)?;
    let tampered_path = out.join("incident.tampered.bundle.json");
    std::fs::write(&tampered_path, &tampered).with_context(|| format!("writing {}", tampered_path.display()))?;
    match verify_bundle(&tampered, options) {
        Ok(_) => bail!("the tampered bundle verified: this is a bug"),
        Err(err) => println!("{}: not verified: {err}", tampered_path.display()),
    }
    println!("\nNext: ledger --help, ledger-verify --help, docs/FORMAT.md §12 (the bundle format).");
    Ok(())
}
