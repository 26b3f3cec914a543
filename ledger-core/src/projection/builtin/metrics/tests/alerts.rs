//! Threshold alerts: firing, resolving, cooldown, deterministic ids, and
//! rule configuration.

use super::*;

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
