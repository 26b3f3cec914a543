//! Fold-level tests of the metrics projection: real records through
//! `apply`, state through `take_changes` / `restore`; `engine` runs it in
//! the real engine.

mod alerts;
mod engine;
mod persistence;
mod rollups;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::testkit::Xorshift;
use super::*;
use crate::event::Event;
use crate::projection::testing::{record, record_of};

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-03-02T00:00:00Z.
const MARCH_2: i64 = 1_772_409_600 * SECOND;

type Store = BTreeMap<Vec<u8>, Vec<u8>>;

fn at(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn latency_payload(service: &str, value: f64, time_ns: i64) -> String {
    format!(
        r#"{{"name":"http_request_duration_ms","labels":{{"service":"{service}","route":"/v2/"}},"value":{value},"kind":"histogram","time":{time_ns}}}"#
    )
}

/// A `metric.observed` record at `seq` whose payload carries its own time
/// (occurred_at is a second later, as a batching producer would send).
fn observed(seq: u64, payload: &str, time_ns: i64) -> Record {
    record(
        seq,
        "service/artifact-store",
        METRIC_OBSERVED,
        payload,
        at(time_ns + SECOND),
    )
}

fn apply_all(metrics: &mut Metrics, records: &[Record]) -> Result<Vec<Event>, Fault> {
    let mut effects = Effects::default();
    for record in records {
        metrics.apply(record, &mut effects)?;
    }
    Ok(effects.take())
}

/// Flushes changes into `store` the way the engine persists them.
fn flush(metrics: &mut Metrics, store: &mut Store) -> Result<usize, Fault> {
    let mut changes = Changes::default();
    metrics.take_changes(&mut changes)?;
    let n_changes = changes.len();
    for (key, value) in changes.entries() {
        match value {
            Some(value) => store.insert(key, value),
            None => store.remove(&key),
        };
    }
    Ok(n_changes)
}

fn restored(template: &Metrics, store: &Store) -> Result<Metrics, Fault> {
    let mut metrics = template.fresh();
    for (key, value) in store {
        metrics.restore(key, value)?;
    }
    Ok(metrics)
}

/// Every row of every table as JSON, to compare whole states.
fn rows(metrics: &Metrics) -> BTreeMap<String, String> {
    fn dump<V: Serialize + serde::de::DeserializeOwned + Clone>(table: &Table<V>, out: &mut BTreeMap<String, String>) {
        for (key, row) in table.iter() {
            let json = serde_json::to_string(&row).expect("rows serialise");
            out.insert(format!("{}/{key}", table.name()), json);
        }
    }
    let mut out = BTreeMap::new();
    dump(&metrics.series, &mut out);
    dump(&metrics.minutes, &mut out);
    dump(&metrics.hours, &mut out);
    dump(&metrics.days, &mut out);
    dump(&metrics.alerts, &mut out);
    dump(&metrics.meta, &mut out);
    out
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn assert_close(estimate: f64, exact: f64, what: &str) {
    let error = (estimate - exact).abs();
    assert!(
        error <= sketch::RELATIVE_ACCURACY * exact.abs() * (1.0 + 1e-9),
        "{what}: estimate {estimate} vs exact {exact}"
    );
}

/// 100,000 artifact-store latencies spread over 2026-03-02, busier in
/// the afternoon, with a slow tail.
fn a_day_of_latencies() -> Vec<(f64, i64)> {
    let mut rng = Xorshift(0x0a77_1fac);
    (0..100_000)
        .map(|i| {
            let time = MARCH_2 + (i as i64) * (DAY / 100_000) + (rng.next_u64() % 800_000_000) as i64;
            let hour = (time - MARCH_2) / HOUR;
            let load = if (12..18).contains(&hour) { 2.0 } else { 1.0 };
            let value = 8.0 * load * (rng.unit() * 2.5).exp() * if rng.unit() < 0.02 { 20.0 } else { 1.0 };
            ((value * 1000.0).round() / 1000.0, time)
        })
        .collect()
}

fn latency_rule(cooldown_ns: i64) -> AlertRule {
    AlertRule {
        name: "artifact-store-p95-latency".to_string(),
        metric: "http_request_duration_ms".to_string(),
        matchers: vec![Matcher::eq("service", "artifact-store")],
        granularity: Granularity::Minute,
        statistic: Statistic::P95,
        comparison: Comparison::Gt,
        threshold: 500.0,
        cooldown_ns,
    }
}

fn with_rules(rules: Vec<AlertRule>) -> Result<Metrics, Fault> {
    Metrics::new(MetricsConfig {
        rules,
        ..MetricsConfig::default()
    })
    .map_err(|e| Fault::new(e.to_string()))
}

/// Minute by minute: fast, slow (fires), fast (resolves), slow within the
/// 10 min cooldown (suppressed), slow after it (fires again). Each minute
/// has 20 observations; a registry series is slow throughout but unwatched.
fn alert_scenario_events() -> Vec<Event> {
    let t0 = MARCH_2 + 14 * HOUR;
    let minutes = [(0, 100.0), (1, 900.0), (2, 100.0), (3, 900.0), (12, 900.0)];
    let mut events = Vec::new();
    for (minute, latency) in minutes {
        for i in 0..20 {
            let time = t0 + minute * MINUTE + i * SECOND;
            for (service, value) in [("artifact-store", latency + i as f64), ("registry", 2000.0)] {
                let payload = latency_payload(service, value, time);
                let mut event = Event::json(format!("service/{service}"), METRIC_OBSERVED, payload.into_bytes());
                event.occurred_at = at(time + SECOND);
                events.push(event);
            }
        }
    }
    events
}

fn alert_scenario() -> Vec<Record> {
    alert_scenario_events()
        .iter()
        .enumerate()
        .map(|(seq, event)| record_of(seq as u64, event))
        .collect()
}
