//! Rollups: quantiles against exact computation, minutes merging into
//! hours and days, order independence, kinds, retention and queries.

use super::*;

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
            let start = coarse.window_start(series::window_of_key(&key).expect("window key"));
            match merged.get_mut(&start) {
                Some(into) => into.merge(&row),
                None => {
                    merged.insert(start, row.into_owned());
                }
            }
        }
        merged
    };
    let stored = |table: &Table<RollupRow>| -> BTreeMap<i64, RollupRow> {
        table
            .iter()
            .map(|(key, row)| (series::window_of_key(&key).expect("window key"), row.into_owned()))
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

    // A producer clock running a year ahead expires nothing: the reference
    // is capped at the ledger's recorded_at.
    let future = t1 + 365 * DAY;
    apply_all(
        &mut metrics,
        &[record(
            5,
            "service/registry",
            METRIC_OBSERVED,
            &latency_payload("registry", 1.0, future),
            at(t1 + SECOND),
        )],
    )?;
    assert_eq!(metrics.meta().newest_time_ns, Some(t1 + SECOND));
    assert_eq!(minutes(&metrics).len(), 2);

    // The drop is persisted as a deletion.
    flush(&mut metrics, &mut store)?;
    let back = restored(&metrics, &store)?;
    assert_eq!(minutes(&back), [t0 + MINUTE, t1]);
    assert_eq!(rows(&back), rows(&metrics));
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

/// Retention over minute rows evicted to the store drops what it drops
/// over rows all resident: runs of expired rows longer and shorter than
/// the last pass's, several windows at once, deleted rows not yet stored.
#[test]
fn retention_over_evicted_minutes_matches_an_all_resident_fold() -> Result<(), Fault> {
    use std::sync::Arc;

    use crate::projection::pages::PagedTree;
    use crate::projection::table::RowStore;

    let config = MetricsConfig {
        minute_retention_ns: 10 * MINUTE,
        ..MetricsConfig::default()
    };
    let mut plain = Metrics::new(config.clone()).map_err(|e| Fault::new(e.to_string()))?;
    let mut cached = Metrics::new(config).map_err(|e| Fault::new(e.to_string()))?;
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let tree = Arc::new(PagedTree::new(db.open_tree("m").unwrap(), BTreeMap::new()));
    let store = RowStore::new(Arc::clone(&tree));
    for table in cached.cached() {
        table.attach(&store);
    }
    let t0 = MARCH_2 + 6 * HOUR;
    let mut seq = 0;
    let mut rng = Xorshift(5);
    // Window start → series observed in it.
    let mut windows: BTreeMap<i64, u64> = BTreeMap::new();
    let mut skipped = 0;
    for minute in 0..90 {
        // 1 to 200 series a minute; now and then the clock jumps minutes.
        let series = 1 + rng.next_u64() % 200;
        if rng.next_u64().is_multiple_of(10) {
            skipped += 5;
        }
        let time = t0 + (minute + skipped) * MINUTE;
        windows.insert(time, series);
        let records: Vec<Record> = (0..series)
            .map(|n| {
                seq += 1;
                observed(seq, &latency_payload(&format!("s{n:03}"), n as f64, time), time)
            })
            .collect();
        apply_all(&mut plain, &records)?;
        apply_all(&mut cached, &records)?;
        // Flushed and evicted every few minutes; in between, the
        // deletions are resident.
        if minute % 3 == 0 {
            let mut changes = Changes::default();
            cached.take_changes(&mut changes)?;
            tree.apply(&changes, Vec::new()).unwrap();
            for table in cached.cached() {
                table.evict_to(0);
            }
        }
        let minutes = |m: &Metrics| m.minutes.iter().map(|(k, _)| k.into_owned()).collect::<Vec<_>>();
        assert_eq!(minutes(&cached), minutes(&plain), "minute {minute}");
        // Exactly the windows that have not ended by the cutoff are kept.
        let cutoff = plain.minute_cutoff().unwrap();
        let kept: u64 = windows.range(cutoff - MINUTE + 1..).map(|(_, n)| n).sum();
        assert_eq!(minutes(&plain).len() as u64, kept, "minute {minute}");
    }
    assert!(plain.minutes.len() > 200, "the rows kept span the retention");
    assert!(
        !tree.scan_keys(b"minute\0", b"", usize::MAX).unwrap().is_empty(),
        "minute rows were stored (and evicted)"
    );
    assert_eq!(rows(&cached), rows(&plain));
    Ok(())
}
