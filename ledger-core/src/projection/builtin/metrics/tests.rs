//! Fold-level tests of the metrics projection: real records through
//! `apply`, state through `take_changes` / `restore`.

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
    for (key, value) in changes.entries {
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
    fn dump<V: Serialize + serde::de::DeserializeOwned>(table: &Table<V>, out: &mut BTreeMap<String, String>) {
        for (key, row) in table.iter() {
            let json = serde_json::to_string(row).expect("rows serialise");
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

#[test]
fn a_day_of_latencies_rolls_up_with_quantiles_within_one_percent() -> Result<(), Fault> {
    let observations = a_day_of_latencies();
    let records: Vec<Record> = observations
        .iter()
        .enumerate()
        .map(|(i, &(value, time))| observed(i as u64, &latency_payload("artifact-store", value, time), time))
        .collect();
    let mut metrics = Metrics::default();
    assert!(apply_all(&mut metrics, &records)?.is_empty());

    let days = metrics.query(
        "http_request_duration_ms",
        &[],
        Granularity::Day,
        MARCH_2,
        MARCH_2 + DAY,
    );
    assert_eq!(days.len(), 1);
    let day = &days[0];
    let mut values: Vec<f64> = observations.iter().map(|&(v, _)| v).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!((day.count, day.start_ns, day.end_ns), (100_000, MARCH_2, MARCH_2 + DAY));
    assert_eq!((day.min, day.max), (values[0], values[values.len() - 1]));
    let exact_sum: f64 = values.iter().sum();
    assert!(
        (day.sum - exact_sum).abs() <= 1e-9 * exact_sum,
        "{} vs {exact_sum}",
        day.sum
    );
    assert_close(day.p50, exact_quantile(&values, 0.50), "day p50");
    assert_close(day.p95, exact_quantile(&values, 0.95), "day p95");
    assert_close(day.p99, exact_quantile(&values, 0.99), "day p99");
    let (last_value, last_time) = observations.iter().copied().max_by_key(|&(_, t)| t).expect("non-empty");
    assert_eq!((day.last, day.last_time_ns), (last_value, last_time));

    // Every hour too, against its own exact quantiles.
    let hours = metrics.query(
        "http_request_duration_ms",
        &[],
        Granularity::Hour,
        MARCH_2,
        MARCH_2 + DAY,
    );
    assert_eq!(hours.len(), 24);
    for hour in &hours {
        let mut in_hour: Vec<f64> = observations
            .iter()
            .filter(|&&(_, t)| (hour.start_ns..hour.end_ns).contains(&t))
            .map(|&(v, _)| v)
            .collect();
        in_hour.sort_by(f64::total_cmp);
        assert_eq!(hour.count, in_hour.len() as u64);
        for (q, estimate) in [(0.50, hour.p50), (0.95, hour.p95), (0.99, hour.p99)] {
            assert_close(
                estimate,
                exact_quantile(&in_hour, q),
                &format!("hour {} q{q}", hour.start_ns),
            );
        }
    }
    assert_eq!(
        metrics
            .query(
                "http_request_duration_ms",
                &[],
                Granularity::Minute,
                MARCH_2,
                MARCH_2 + DAY
            )
            .len(),
        1440
    );
    Ok(())
}

#[test]
fn hours_and_days_equal_their_minutes_merged() -> Result<(), Fault> {
    let records: Vec<Record> = a_day_of_latencies()
        .iter()
        .take(20_000)
        .enumerate()
        .map(|(i, &(value, time))| observed(i as u64, &latency_payload("artifact-store", value, time), time))
        .collect();
    let mut metrics = Metrics::default();
    apply_all(&mut metrics, &records)?;

    let merge_into = |coarse: Granularity, fine: &Table<RollupRow>| {
        let mut merged: BTreeMap<i64, RollupRow> = BTreeMap::new();
        for (key, row) in fine.iter() {
            let start = coarse.window_start(series::window_of_key(key).expect("window key"));
            match merged.get_mut(&start) {
                Some(into) => into.merge(row),
                None => {
                    merged.insert(start, row.clone());
                }
            }
        }
        merged
    };
    let stored = |table: &Table<RollupRow>| -> BTreeMap<i64, RollupRow> {
        table
            .iter()
            .map(|(key, row)| (series::window_of_key(key).expect("window key"), row.clone()))
            .collect()
    };
    for (merged, direct) in [
        (merge_into(Granularity::Hour, &metrics.minutes), stored(&metrics.hours)),
        (merge_into(Granularity::Day, &metrics.minutes), stored(&metrics.days)),
        (merge_into(Granularity::Day, &metrics.hours), stored(&metrics.days)),
    ] {
        assert_eq!(merged.keys().collect::<Vec<_>>(), direct.keys().collect::<Vec<_>>());
        for (start, merged) in &merged {
            let direct = &direct[start];
            // Bucket for bucket, and every order-independent field exactly.
            assert_eq!(merged.sketch, direct.sketch, "window {start}");
            assert_eq!(
                (
                    merged.count,
                    merged.min,
                    merged.max,
                    merged.last,
                    merged.last_time_ns,
                    merged.last_seq
                ),
                (
                    direct.count,
                    direct.min,
                    direct.max,
                    direct.last,
                    direct.last_time_ns,
                    direct.last_seq
                )
            );
            assert!((merged.sum - direct.sum).abs() <= 1e-9 * direct.sum.abs());
        }
    }
    Ok(())
}

#[test]
fn folding_in_any_order_gives_identical_stored_bytes() -> Result<(), Fault> {
    // Whole-number values: float sums are exact, so every byte must agree.
    let mut rng = Xorshift(99);
    let mut records: Vec<Record> = (0..3000u64)
        .map(|seq| {
            let time = MARCH_2 + 9 * HOUR + (rng.next_u64() % (3 * HOUR as u64)) as i64;
            let service = ["artifact-store", "ops-hub", "registry"][(seq % 3) as usize];
            let value = (rng.next_u64() % 5000) as f64;
            observed(seq, &latency_payload(service, value, time), time)
        })
        .collect();
    // Same time, different seqs, after every other one: `last` must break
    // the tie by seq.
    let tie = MARCH_2 + 12 * HOUR + 30 * SECOND;
    records.push(observed(3000, &latency_payload("ops-hub", 1.0, tie), tie));
    records.push(observed(3001, &latency_payload("ops-hub", 2.0, tie), tie));

    let mut in_order = Metrics::default();
    apply_all(&mut in_order, &records)?;
    let mut in_order_store = Store::new();
    flush(&mut in_order, &mut in_order_store)?;

    rng.shuffle(&mut records);
    let mut shuffled = Metrics::default();
    apply_all(&mut shuffled, &records)?;
    let mut shuffled_store = Store::new();
    flush(&mut shuffled, &mut shuffled_store)?;

    assert_eq!(in_order_store.len(), shuffled_store.len());
    assert!(in_order_store == shuffled_store, "stored bytes differ");
    let minute = in_order.query(
        "http_request_duration_ms",
        &[Matcher::eq("service", "ops-hub")],
        Granularity::Minute,
        tie,
        tie + 1,
    );
    assert_eq!((minute[0].last, minute[0].last_seq), (2.0, 3001));
    Ok(())
}

#[test]
fn counters_sum_increments_gauges_keep_the_latest_level() -> Result<(), Fault> {
    let t = MARCH_2 + 14 * HOUR + 2 * MINUTE;
    let budget = |value: &str, offset: i64| {
        format!(
            r#"{{"name":"budget_usage_usd","labels":{{"workplan":"CUST-WP-0051"}},"value":{value},"kind":"counter","time":{}}}"#,
            t + offset
        )
    };
    let backlog = |value: &str, offset: i64| {
        format!(
            r#"{{"name":"queue_depth","labels":{{"service":"ops-hub"}},"value":{value},"kind":"gauge","time":{}}}"#,
            t + offset
        )
    };
    let records = [
        observed(1, &budget("1.25", 0), t),
        observed(2, &budget("0.5", 10 * SECOND), t),
        observed(3, &budget("0", 20 * SECOND), t),
        observed(4, &backlog("12", 30 * SECOND), t),
        // Arrives later but happened earlier: not the last level.
        observed(5, &backlog("40", 50 * SECOND), t),
        observed(6, &backlog("17", 5 * SECOND), t),
    ];
    let mut metrics = Metrics::default();
    apply_all(&mut metrics, &records)?;

    let spent = metrics.query("budget_usage_usd", &[], Granularity::Minute, t, t + MINUTE);
    assert_eq!((spent[0].kind, spent[0].count, spent[0].sum), (Kind::Counter, 3, 1.75));
    let depth = metrics.query("queue_depth", &[], Granularity::Hour, t, t + 1);
    assert_eq!(
        (depth[0].kind, depth[0].last, depth[0].min, depth[0].max),
        (Kind::Gauge, 40.0, 12.0, 40.0)
    );
    assert_eq!(depth[0].last_seq, 5);

    // A negative counter increment is refused, naming the field.
    let fault = metrics.apply(&observed(7, &budget("-3", 0), t), &mut Effects::default());
    assert!(
        fault.as_ref().is_err_and(|f| f.0.starts_with("value: a counter")),
        "{fault:?}"
    );
    // The same value as a gauge is fine elsewhere.
    let below_zero = r#"{"name":"clock_skew_ms","value":-3,"kind":"gauge"}"#;
    metrics.apply(&observed(8, below_zero, t), &mut Effects::default())?;
    assert_eq!(metrics.series(Some("clock_skew_ms"))[0].observations, 1);
    Ok(())
}

#[test]
fn a_series_keeps_its_kind_and_flags_conflicting_observations() -> Result<(), Fault> {
    let t = MARCH_2 + HOUR;
    let as_gauge = r#"{"name":"disk_used_bytes","labels":{"host":"backup-01"},"value":100,"kind":"gauge"}"#;
    let as_counter = r#"{"name":"disk_used_bytes","labels":{"host":"backup-01"},"value":5,"kind":"counter"}"#;
    let mut metrics = Metrics::default();
    apply_all(&mut metrics, &[observed(1, as_gauge, t), observed(2, as_counter, t)])?;

    let conflicts = metrics.kind_conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (
            conflicts[0].kind,
            conflicts[0].observations,
            conflicts[0].kind_conflicts
        ),
        (Kind::Gauge, 1, 1)
    );
    let evidence = conflicts[0].last_kind_conflict.as_ref().expect("evidence");
    assert_eq!((evidence.seq, evidence.kind), (2, Kind::Counter));
    assert_eq!(evidence.record_hash.len(), 64);
    let rows = metrics.query("disk_used_bytes", &[], Granularity::Minute, t - HOUR, t + HOUR);
    assert_eq!((rows[0].count, rows[0].sum), (1, 100.0));
    assert_eq!(metrics.meta().kind_conflicts, 1);
    Ok(())
}

#[test]
fn malformed_payloads_fault_naming_the_field_and_change_nothing() -> Result<(), Fault> {
    let t = MARCH_2 + 3 * HOUR;
    let mut metrics = Metrics::default();
    apply_all(
        &mut metrics,
        &[observed(1, &latency_payload("artifact-store", 41.0, t), t)],
    )?;
    let mut store = Store::new();
    flush(&mut metrics, &mut store)?;
    let before = rows(&metrics);

    let cases = [
        (r#"{"labels":{},"value":1,"kind":"gauge"}"#, "name: missing"),
        (r#"{"name":"","value":1,"kind":"gauge"}"#, "name: must not be empty"),
        (
            r#"{"name":"x","value":"fast","kind":"gauge"}"#,
            "value: expected a number",
        ),
        (
            r#"{"name":"x","value":1e999,"kind":"gauge"}"#,
            "payload: not valid JSON",
        ),
        (r#"{"name":"x","value":1,"kind":"summary"}"#, "kind: unknown kind"),
        (
            r#"{"name":"x","labels":{"region":["eu"]},"value":1,"kind":"gauge"}"#,
            "labels.region: expected a string",
        ),
        (
            r#"{"name":"x","value":1,"kind":"gauge","time":"14:02"}"#,
            "time: \"14:02\" is not RFC 3339",
        ),
        (
            r#"{"name":"x","value":1,"kind":"gauge","unit":"ms"}"#,
            "unit: unknown field",
        ),
        (r#"{"name":"x""#, "payload: not valid JSON"),
    ];
    for (seq, (payload, expected)) in (2..).zip(cases) {
        let mut effects = Effects::default();
        let fault = metrics.apply(&observed(seq, payload, t), &mut effects);
        assert!(
            fault.as_ref().is_err_and(|f| f.0.starts_with(expected)),
            "{payload}: {fault:?}"
        );
        assert!(effects.events().is_empty());
    }
    assert_eq!(rows(&metrics), before);
    assert_eq!(flush(&mut metrics, &mut store)?, 0, "a faulting record dirties nothing");
    Ok(())
}

#[test]
fn other_event_types_and_returning_alerts_are_ignored() -> Result<(), Fault> {
    let t = MARCH_2;
    let mut metrics = Metrics::default();
    let records = [
        record(
            1,
            "task/CUST-WP-0051-T03",
            "task.status_changed",
            r#"{"status":"done"}"#,
            at(t),
        ),
        record(2, "alert/latency", ALERT_FIRED, r#"{"rule":"latency"}"#, at(t)),
        record(3, "service/ops-hub", "metric.observed.v2", "not even json", at(t)),
    ];
    assert!(apply_all(&mut metrics, &records)?.is_empty());
    assert!(rows(&metrics).is_empty());
    Ok(())
}

#[test]
fn minutes_past_retention_are_dropped_hours_and_days_kept() -> Result<(), Fault> {
    let config = MetricsConfig {
        minute_retention_ns: 2 * HOUR,
        ..MetricsConfig::default()
    };
    let mut metrics = Metrics::new(config).map_err(|e| Fault::new(e.to_string()))?;
    let mut store = Store::new();
    let t0 = MARCH_2 + 6 * HOUR;
    apply_all(
        &mut metrics,
        &[
            observed(1, &latency_payload("registry", 10.0, t0), t0),
            observed(2, &latency_payload("registry", 20.0, t0 + MINUTE), t0 + MINUTE),
        ],
    )?;
    flush(&mut metrics, &mut store)?;
    assert_eq!(metrics.minutes.len(), 2);

    // Newest time moves 2 h 1 min past t0: the first minute ended exactly
    // 2 h before it and goes; the second stays.
    let t1 = t0 + 2 * HOUR + MINUTE;
    apply_all(&mut metrics, &[observed(3, &latency_payload("registry", 30.0, t1), t1)])?;
    let minutes = |m: &Metrics| -> Vec<i64> {
        m.query("http_request_duration_ms", &[], Granularity::Minute, t0 - DAY, t1 + DAY)
            .iter()
            .map(|r| r.start_ns)
            .collect()
    };
    assert_eq!(minutes(&metrics), [t0 + MINUTE, t1]);

    // A late observation for the dropped minute counts in its hour and day
    // but makes no minute row.
    let late = t0 + 30 * SECOND;
    apply_all(
        &mut metrics,
        &[observed(4, &latency_payload("registry", 5.0, late), late)],
    )?;
    assert_eq!(minutes(&metrics), [t0 + MINUTE, t1]);
    let hours = metrics.query("http_request_duration_ms", &[], Granularity::Hour, t0, t0 + HOUR);
    assert_eq!((hours[0].count, hours[0].min), (3, 5.0));
    let days = metrics.query("http_request_duration_ms", &[], Granularity::Day, t0, t0 + 1);
    assert_eq!(days[0].count, 4);

    // The drop is persisted as a deletion.
    flush(&mut metrics, &mut store)?;
    let back = restored(&metrics, &store)?;
    assert_eq!(minutes(&back), [t0 + MINUTE, t1]);
    assert_eq!(rows(&back), rows(&metrics));
    Ok(())
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
fn alert_scenario() -> Vec<Record> {
    let t0 = MARCH_2 + 14 * HOUR;
    let minutes = [(0, 100.0), (1, 900.0), (2, 100.0), (3, 900.0), (12, 900.0)];
    let mut records = Vec::new();
    for (minute, latency) in minutes {
        for i in 0..20 {
            let time = t0 + minute * MINUTE + i * SECOND;
            let seq = records.len() as u64;
            records.push(observed(
                seq,
                &latency_payload("artifact-store", latency + i as f64, time),
                time,
            ));
            records.push(observed(seq + 1, &latency_payload("registry", 2000.0, time), time));
        }
    }
    records
}

#[test]
fn alerts_fire_resolve_and_respect_the_cooldown() -> Result<(), Fault> {
    let records = alert_scenario();
    let mut metrics = with_rules(vec![latency_rule(10 * MINUTE)])?;
    let events = apply_all(&mut metrics, &records)?;

    let t0 = MARCH_2 + 14 * HOUR;
    let summary: Vec<(&str, DateTime<Utc>)> = events.iter().map(|e| (e.event_type.as_str(), e.occurred_at)).collect();
    assert_eq!(
        summary,
        [
            (ALERT_FIRED, at(t0 + MINUTE)),
            (ALERT_RESOLVED, at(t0 + 2 * MINUTE)),
            (ALERT_FIRED, at(t0 + 12 * MINUTE)),
        ]
    );
    let fired = &events[0];
    assert_eq!(fired.stream, "alert/artifact-store-p95-latency");
    assert_eq!(fired.id.get_version_num(), 8);
    let payload: serde_json::Value = serde_json::from_slice(&fired.payload).map_err(|e| Fault::new(e.to_string()))?;
    assert_eq!(payload["rule"], "artifact-store-p95-latency");
    assert_eq!(payload["state"], "fired");
    assert_eq!(payload["series"]["labels"]["service"], "artifact-store");
    assert_eq!(payload["window"]["start"], "2026-03-02T14:01:00Z");
    assert_eq!(payload["window"]["end_ns"], t0 + 2 * MINUTE);
    assert_eq!(
        (payload["statistic"].as_str(), payload["comparison"].as_str()),
        (Some("p95"), Some(">"))
    );
    assert_eq!(payload["threshold"], 500.0);
    assert!(payload["value"].as_f64().is_some_and(|v| v > 500.0 && v < 1000.0));
    // The first slow observation of minute 1 fired it.
    let trigger_seq = payload["trigger"]["seq"].as_u64().expect("seq");
    assert_eq!(trigger_seq, 40);
    assert_eq!(fired.metadata.causation_id, records[40].event_id().to_string());

    let state = &metrics.alerts(Some("artifact-store-p95-latency"))[0];
    assert_eq!(
        (state.firing, state.fired, state.resolved, state.suppressed),
        (true, 2, 1, 20)
    );
    assert_eq!(state.last_fired_ns, Some(t0 + 12 * MINUTE));
    assert_eq!(
        state.last_transition.as_ref().map(|t| t.event_id.clone()),
        Some(events[2].id.to_string())
    );
    assert_eq!(metrics.firing().len(), 1);
    assert_eq!(metrics.alerts(None).len(), 1, "the registry series is not watched");

    // Without a cooldown, minute 3 fires (and minute 12 stays firing).
    let mut eager = with_rules(vec![latency_rule(0)])?;
    let eager_events = apply_all(&mut eager, &records)?;
    assert_eq!(eager_events.len(), 3);
    assert_eq!(eager_events[2].occurred_at, at(t0 + 3 * MINUTE));

    // The emitted events come back through the log: ignored.
    let before = rows(&metrics);
    let echoes: Vec<Record> = events
        .iter()
        .enumerate()
        .map(|(i, e)| record_of(1000 + i as u64, e))
        .collect();
    assert!(apply_all(&mut metrics, &echoes)?.is_empty());
    assert_eq!(rows(&metrics), before);
    Ok(())
}

#[test]
fn alert_ids_are_deterministic_across_replays_and_restarts() -> Result<(), Fault> {
    let records = alert_scenario();
    let mut live = with_rules(vec![latency_rule(10 * MINUTE)])?;
    let events = apply_all(&mut live, &records)?;
    let replayed = apply_all(&mut live.fresh(), &records)?;
    assert_eq!(events, replayed, "same ids, times and payload bytes");

    // Stop after any record, persist, reopen from the store and go on: the
    // events before and after the stop are exactly the uninterrupted ones,
    // so whatever the engine re-folds after a crash re-emits the same ids.
    for persisted_upto in [39usize, 59, 85] {
        let mut first = live.fresh();
        let early = apply_all(&mut first, &records[..=persisted_upto])?;
        let mut store = Store::new();
        flush(&mut first, &mut store)?;
        let mut reopened = restored(&live, &store)?;
        let late = apply_all(&mut reopened, &records[persisted_upto + 1..])?;
        let together: Vec<Event> = early.into_iter().chain(late).collect();
        assert_eq!(together, events, "restart after record {persisted_upto}");
        assert_eq!(rows(&reopened), rows(&live));
    }
    // A different rule name gives different ids.
    let mut renamed_rule = latency_rule(10 * MINUTE);
    renamed_rule.name = "latency-renamed".to_string();
    let renamed = apply_all(&mut with_rules(vec![renamed_rule])?, &records)?;
    assert!(renamed.iter().zip(&events).all(|(a, b)| a.id != b.id));
    Ok(())
}

#[test]
fn state_round_trips_through_incremental_flushes() -> Result<(), Fault> {
    let mut records = alert_scenario();
    let t = MARCH_2 + 20 * HOUR;
    let gauge = r#"{"name":"queue_depth","labels":{"service":"ops-hub"},"value":7,"kind":"gauge"}"#;
    records.push(observed(500, gauge, t));
    records.push(observed(
        501,
        r#"{"name":"queue_depth","labels":{"service":"ops-hub"},"value":1,"kind":"counter"}"#,
        t,
    ));
    let config = MetricsConfig {
        rules: vec![latency_rule(10 * MINUTE)],
        minute_retention_ns: 3 * HOUR,
    };
    let mut metrics = Metrics::new(config).map_err(|e| Fault::new(e.to_string()))?;
    let mut store = Store::new();
    let middle = records.len() / 2;
    apply_all(&mut metrics, &records[..middle])?;
    flush(&mut metrics, &mut store)?;
    apply_all(&mut metrics, &records[middle..])?;
    flush(&mut metrics, &mut store)?;

    let back = restored(&metrics, &store)?;
    assert_eq!(rows(&back), rows(&metrics));
    for granularity in Granularity::ALL {
        for name in ["http_request_duration_ms", "queue_depth"] {
            let query = |m: &Metrics| m.query(name, &[], granularity, MARCH_2, MARCH_2 + DAY);
            assert_eq!(query(&back), query(&metrics), "{name} {granularity:?}");
            assert!(!query(&back).is_empty() || granularity == Granularity::Minute);
        }
    }
    assert_eq!(back.series(None), metrics.series(None));
    assert_eq!(back.alerts(None), metrics.alerts(None));
    assert_eq!(back.meta(), metrics.meta());
    assert_eq!(back.kind_conflicts().len(), 1);
    // Nothing left to flush, and a stray key is a fault.
    assert_eq!(flush(&mut metrics, &mut store)?, 0);
    assert!(back.fresh().restore(b"unknown\0x", b"{}").is_err());
    Ok(())
}

#[test]
fn queries_select_by_name_labels_and_overlapping_windows() -> Result<(), Fault> {
    let t = MARCH_2 + 14 * HOUR;
    let mut records = Vec::new();
    for (i, service) in ["artifact-store", "ops-hub", "registry"].iter().enumerate() {
        for minute in 0..3 {
            let time = t + minute * MINUTE;
            let value = 10.0 * (i as f64 + 1.0) + minute as f64;
            records.push(observed(
                records.len() as u64,
                &latency_payload(service, value, time),
                time,
            ));
        }
    }
    let mut metrics = Metrics::default();
    apply_all(&mut metrics, &records)?;

    let name = "http_request_duration_ms";
    let services = |rollups: &[Rollup]| -> Vec<(String, i64)> {
        rollups
            .iter()
            .map(|r| (r.labels["service"].clone(), (r.start_ns - t) / MINUTE))
            .collect()
    };
    // A window overlapping [from, to) is selected, even if it starts before.
    let two = metrics.query(
        name,
        &[Matcher::eq("service", "ops-hub")],
        Granularity::Minute,
        t + MINUTE + SECOND,
        t + 2 * MINUTE + 1,
    );
    assert_eq!(services(&two), [("ops-hub".to_string(), 1), ("ops-hub".to_string(), 2)]);
    let others = metrics.query(
        name,
        &[Matcher::ne("service", "ops-hub")],
        Granularity::Minute,
        t,
        t + MINUTE,
    );
    assert_eq!(
        services(&others),
        [("artifact-store".to_string(), 0), ("registry".to_string(), 0)]
    );
    assert!(metrics.query(name, &[], Granularity::Minute, t, t).is_empty());
    assert!(
        metrics
            .query("http_request", &[], Granularity::Day, i64::MIN, i64::MAX)
            .is_empty()
    );
    assert_eq!(metrics.query(name, &[], Granularity::Day, i64::MIN, i64::MAX).len(), 3);

    let listed: Vec<String> = metrics
        .series(Some(name))
        .iter()
        .map(|s| s.labels["service"].clone())
        .collect();
    assert_eq!(listed, ["artifact-store", "ops-hub", "registry"]);
    assert_eq!(metrics.series(None).len(), 3);
    assert!(metrics.series(Some("http")).is_empty());

    let summary = metrics
        .summary(
            name,
            &[Matcher::ne("service", "registry")],
            Granularity::Minute,
            t,
            t + HOUR,
        )
        .expect("rows");
    assert_eq!((summary.series, summary.windows, summary.count), (2, 6, 6));
    assert_eq!((summary.min, summary.max, summary.sum), (10.0, 22.0, 96.0));
    assert_close(summary.p50, 12.0, "summary p50");
    assert_eq!(
        metrics.summary(name, &[Matcher::eq("service", "nope")], Granularity::Hour, t, t + HOUR),
        None
    );
    Ok(())
}

#[test]
fn invalid_configurations_are_refused() {
    let rule = latency_rule(0);
    let refused = |mutate: fn(&mut AlertRule)| {
        let mut rule = latency_rule(0);
        mutate(&mut rule);
        Metrics::new(MetricsConfig {
            rules: vec![rule],
            ..MetricsConfig::default()
        })
        .err()
    };
    assert!(matches!(
        refused(|r| r.name = "p95 latency".into()),
        Some(ConfigError::Rule { field: "name", .. })
    ));
    assert!(matches!(
        refused(|r| r.name = String::new()),
        Some(ConfigError::Rule { field: "name", .. })
    ));
    assert!(matches!(
        refused(|r| r.threshold = f64::NAN),
        Some(ConfigError::Rule { field: "threshold", .. })
    ));
    assert!(matches!(
        refused(|r| r.cooldown_ns = -1),
        Some(ConfigError::Rule {
            field: "cooldown_ns",
            ..
        })
    ));
    assert!(matches!(
        refused(|r| r.metric = String::new()),
        Some(ConfigError::Rule { field: "metric", .. })
    ));
    assert_eq!(
        Metrics::new(MetricsConfig {
            rules: vec![rule.clone(), rule],
            ..MetricsConfig::default()
        })
        .err(),
        Some(ConfigError::DuplicateRule("artifact-store-p95-latency".to_string()))
    );
    assert_eq!(
        Metrics::new(MetricsConfig {
            minute_retention_ns: 0,
            ..MetricsConfig::default()
        })
        .err(),
        Some(ConfigError::Retention(0))
    );
}

#[test]
fn configuration_reads_from_json() -> Result<(), serde_json::Error> {
    let config: MetricsConfig = serde_json::from_str(
        r#"{"rules":[{"name":"backup-restore-slow","metric":"restore_duration_s","matchers":[{"label":"service","op":"=","value":"artifact-store"}],
            "granularity":"day","statistic":"max","comparison":">=","threshold":3600,"cooldown_ns":86400000000000}]}"#,
    )?;
    assert_eq!(config.minute_retention_ns, DEFAULT_MINUTE_RETENTION_NS);
    assert_eq!(config.rules[0].comparison, Comparison::Ge);
    assert_eq!(config.rules[0].statistic, Statistic::Max);
    assert_eq!(config.validate(), Ok(()));
    Ok(())
}
