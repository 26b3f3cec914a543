//! Faults that change nothing, ignored event types, and state through
//! take_changes / restore.

use super::*;

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
