//! The metrics rollups projection: `metric.observed` events folded into
//! per-minute, per-hour and per-day windows per series (count, sum, min,
//! max, last, p50/p95/p99 from a mergeable [`Sketch`]), with threshold
//! rules that turn windows back into `alert.fired` / `alert.resolved`
//! events. Producers' view of it: `docs/projections/metrics.md`.
//!
//! Each observation is added to its minute, hour and day row directly; with
//! integer sketch counts this is, bucket for bucket, the merge of the
//! minutes' sketches (tests check it), and cheaper than re-merging sixty
//! minutes on every observation. Percentiles are never averaged.
//!
//! Memory: minute rows are dropped once their window ended the configured
//! retention (default 7 days) before the newest observation time seen;
//! hours, days, series and alert states are kept. An observation dated
//! after the ledger recorded it counts as recorded then for this purpose, so
//! one producer with a clock (or a `time`) far ahead cannot expire every
//! series' minutes.
//!
//! The fold ignores every other event type, including the `alert.*` events
//! it emits itself when they come back through the log.

mod config;
mod observation;
mod rollup;
mod rules;
mod series;
pub mod sketch;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use config::{ConfigError, DEFAULT_MINUTE_RETENTION_NS, MetricsConfig};
pub use observation::{Kind, METRIC_OBSERVED};
pub use rollup::{Granularity, Rollup, Statistic, Summary};
pub use rules::{ALERT_FIRED, ALERT_RESOLVED, ALERT_STREAM_PREFIX, AlertRule, AlertState, AlertTransition, Comparison};
pub use series::{KindConflict, MatchOp, Matcher, Series};
pub use sketch::Sketch;

use crate::projection::{Cached, Changes, Effects, Fault, Projection, Table};
use crate::record::Record;
use observation::Observation;
use rollup::{RollupRow, SummaryBuilder};
use rules::AlertContext;

/// The metrics rollups projection (see the module docs).
#[derive(Debug)]
pub struct Metrics {
    config: MetricsConfig,
    /// Series key → series.
    series: Table<Series>,
    /// Window key (`hex start | series key`) → row, one table per
    /// granularity.
    minutes: Table<RollupRow>,
    hours: Table<RollupRow>,
    days: Table<RollupRow>,
    /// `["rule",series key...]` → where the rule stands for the series.
    alerts: Table<AlertState>,
    /// One row, [`META_KEY`]: totals and the newest observation time.
    meta: Table<Meta>,
    /// Reused for window keys (not state).
    window_key: String,
    /// Window start of the first minute row, `Some(None)` when there is
    /// none, `None` when not known (not state): retention looks for rows
    /// to drop only once the cutoff passes it, not on every observation.
    oldest_minute: Option<Option<i64>>,
    /// The last minute row retention dropped (not state): every row up to
    /// it is gone for good (a new row is never already expired, so sorts
    /// after it), and the next search starts after it instead of walking
    /// over the deletions not yet stored.
    dropped_until: Option<String>,
    /// How many rows the last retention pass dropped (not state): a
    /// window's rows, one per series, expire together, and the next pass
    /// asks for about as many keys at once.
    last_dropped: usize,
}

/// Totals over everything folded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Observations rolled up.
    pub observations: u64,
    /// Observations refused because their series has another kind.
    pub kind_conflicts: u64,
    /// Newest observation time seen, each capped at its record's
    /// `recorded_at` (Unix ns): the minute retention's reference.
    pub newest_time_ns: Option<i64>,
}

const META_KEY: &str = "meta";

impl Default for Metrics {
    /// No rules, 7 days of minutes.
    fn default() -> Metrics {
        Metrics::with_valid_config(MetricsConfig::default())
    }
}

impl Metrics {
    /// A projection with `config`, once it validates.
    pub fn new(config: MetricsConfig) -> Result<Metrics, ConfigError> {
        config.validate()?;
        Ok(Metrics::with_valid_config(config))
    }

    fn with_valid_config(config: MetricsConfig) -> Metrics {
        Metrics {
            config,
            series: Table::new("series"),
            minutes: Table::new("minute"),
            hours: Table::new("hour"),
            days: Table::new("day"),
            alerts: Table::new("alert"),
            meta: Table::new("meta"),
            window_key: String::new(),
            oldest_minute: None,
            dropped_until: None,
            last_dropped: 0,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &MetricsConfig {
        &self.config
    }

    /// Totals and the newest observation time.
    pub fn meta(&self) -> Meta {
        self.meta.get(META_KEY).map(Cow::into_owned).unwrap_or_default()
    }

    /// Every series, or those named `name`, in key order (name, then
    /// labels).
    pub fn series(&self, name: Option<&str>) -> Vec<Series> {
        match name {
            Some(name) => {
                let prefix = series::name_prefix(name);
                self.series.with_prefix(&prefix).map(|(_, s)| s.into_owned()).collect()
            }
            None => self.series.iter().map(|(_, s)| s.into_owned()).collect(),
        }
    }

    /// Series that refused observations of another kind (an anomaly a
    /// producer must fix).
    pub fn kind_conflicts(&self) -> Vec<Series> {
        self.series
            .iter()
            .filter(|(_, s)| s.kind_conflicts > 0)
            .map(|(_, s)| s.into_owned())
            .collect()
    }

    /// The `granularity` windows overlapping `[from_ns, to_ns)` of every
    /// series named `name` whose labels satisfy all `matchers`: one
    /// [`Rollup`] per series and window with observations, ordered by
    /// series (labels) then window start. Minute rows past retention are
    /// gone.
    pub fn query(
        &self,
        name: &str,
        matchers: &[Matcher],
        granularity: Granularity,
        from_ns: i64,
        to_ns: i64,
    ) -> Vec<Rollup> {
        let mut rollups = Vec::new();
        self.each_row(name, matchers, granularity, from_ns, to_ns, |_, series, start, row| {
            rollups.push(Rollup::new(series, granularity, start, row));
        });
        rollups
    }

    /// The same selection as [`Metrics::query`] merged into one summary
    /// (sketches merged, never percentiles averaged); `None` when nothing
    /// matches.
    pub fn summary(
        &self,
        name: &str,
        matchers: &[Matcher],
        granularity: Granularity,
        from_ns: i64,
        to_ns: i64,
    ) -> Option<Summary> {
        let mut builder = SummaryBuilder::default();
        let mut previous_series = None;
        self.each_row(name, matchers, granularity, from_ns, to_ns, |series_idx, _, _, row| {
            if previous_series != Some(series_idx) {
                previous_series = Some(series_idx);
                builder.next_series();
            }
            builder.add(row);
        });
        builder.finish()
    }

    /// Where every rule stands per series, or only rule `rule`'s.
    pub fn alerts(&self, rule: Option<&str>) -> Vec<AlertState> {
        self.alerts
            .iter()
            .map(|(_, state)| state)
            .filter(|state| rule.is_none_or(|rule| state.rule == rule))
            .map(Cow::into_owned)
            .collect()
    }

    /// The (rule, series) pairs whose alert is firing.
    pub fn firing(&self) -> Vec<AlertState> {
        self.alerts
            .iter()
            .map(|(_, state)| state)
            .filter(|state| state.firing)
            .map(Cow::into_owned)
            .collect()
    }

    fn table(&self, granularity: Granularity) -> &Table<RollupRow> {
        match granularity {
            Granularity::Minute => &self.minutes,
            Granularity::Hour => &self.hours,
            Granularity::Day => &self.days,
        }
    }

    /// Calls `visit(series_idx, series, window start, row)` for every stored
    /// row selected as in [`Metrics::query`], series by series. Looks windows up one by one between the series'
    /// first and last observation, so the cost follows the windows asked
    /// for, not the size of the table.
    fn each_row(
        &self,
        name: &str,
        matchers: &[Matcher],
        granularity: Granularity,
        from_ns: i64,
        to_ns: i64,
        mut visit: impl FnMut(usize, &Series, i64, &RollupRow),
    ) {
        if from_ns >= to_ns {
            return;
        }
        let table = self.table(granularity);
        let width = granularity.width_ns();
        let mut first = granularity.window_start(from_ns);
        if granularity == Granularity::Minute
            && let Some(cutoff) = self.minute_cutoff()
        {
            first = first.max(granularity.window_start(cutoff));
        }
        let last = granularity.window_start(to_ns - 1);
        let prefix = series::name_prefix(name);
        let selected = self
            .series
            .with_prefix(&prefix)
            .filter(|(_, s)| series::matches_all(matchers, &s.labels));
        for (series_idx, (key, series)) in selected.enumerate() {
            let mut start = first.max(granularity.window_start(series.first_time_ns));
            let end = last.min(granularity.window_start(series.last_time_ns));
            while start <= end {
                if let Some(row) = table.get(&series::window_key(start, &key)) {
                    visit(series_idx, &series, start, &row);
                }
                let Some(next) = start.checked_add(width) else { break };
                start = next;
            }
        }
    }

    /// Minute windows ending at or before this time are dropped.
    fn minute_cutoff(&self) -> Option<i64> {
        let newest = self.meta.get(META_KEY)?.newest_time_ns?;
        Some(newest.saturating_sub(self.config.minute_retention_ns))
    }

    fn observe(&mut self, record: &Record, observation: Observation<'_>, effects: &mut Effects) {
        let key = series::series_key(&observation.name, &observation.labels);
        let seq = record.header.seq;
        let time_ns = observation.time_ns;

        if let Some(existing) = self.series.get(&key)
            && existing.kind != observation.kind
        {
            let conflict = KindConflict {
                seq,
                record_hash: crate::projection::hex_hash(&record.record_hash),
                kind: observation.kind,
            };
            if let Some(series) = self.series.get_mut(&key) {
                series.kind_conflicts = series.kind_conflicts.saturating_add(1);
                series.last_kind_conflict = Some(conflict);
            }
            let meta = self.meta.get_or_insert_with(META_KEY, Meta::default);
            meta.kind_conflicts = meta.kind_conflicts.saturating_add(1);
            return;
        }

        if !self.meta.contains(META_KEY) {
            self.meta.insert(META_KEY, Meta::default());
        }
        let reference_ns = time_ns.min(record.header.recorded_at_ns);
        let mut advanced = false;
        if let Some(meta) = self.meta.get_mut(META_KEY) {
            meta.observations = meta.observations.saturating_add(1);
            if meta.newest_time_ns.is_none_or(|newest| reference_ns > newest) {
                meta.newest_time_ns = Some(reference_ns);
                advanced = true;
            }
        }
        if advanced {
            self.drop_expired_minutes();
        }

        match self.series.get_mut(&key) {
            Some(series) => {
                series.observations = series.observations.saturating_add(1);
                series.first_time_ns = series.first_time_ns.min(time_ns);
                series.last_time_ns = series.last_time_ns.max(time_ns);
                series.first_seq = series.first_seq.min(seq);
                series.last_seq = series.last_seq.max(seq);
            }
            None => {
                let series = Series {
                    name: observation.name.to_string(),
                    labels: observation.owned_labels(),
                    kind: observation.kind,
                    observations: 1,
                    first_time_ns: time_ns,
                    last_time_ns: time_ns,
                    first_seq: seq,
                    last_seq: seq,
                    kind_conflicts: 0,
                    last_kind_conflict: None,
                };
                self.series.insert(key.clone(), series);
            }
        }

        let cutoff = self.minute_cutoff();
        for granularity in Granularity::ALL {
            let start = granularity.window_start(time_ns);
            if granularity == Granularity::Minute
                && cutoff.is_some_and(|cutoff| start.saturating_add(granularity.width_ns()) <= cutoff)
            {
                // A late observation past retention: its hour and day count
                // it, a minute row would be dropped at once.
                continue;
            }
            let table = match granularity {
                Granularity::Minute => &mut self.minutes,
                Granularity::Hour => &mut self.hours,
                Granularity::Day => &mut self.days,
            };
            series::write_window_key(&mut self.window_key, start, &key);
            match table.get_mut(&self.window_key) {
                Some(row) => row.add(observation.value, time_ns, seq),
                None => {
                    table.insert(self.window_key.clone(), RollupRow::new(observation.value, time_ns, seq));
                    if granularity == Granularity::Minute {
                        self.oldest_minute = match self.oldest_minute {
                            Some(Some(oldest)) => Some(Some(oldest.min(start))),
                            Some(None) => Some(Some(start)),
                            None => None,
                        };
                    }
                }
            }
            self.evaluate_rules(record, &observation, &key, granularity, start, effects);
        }
    }

    /// Evaluates the rules watching `granularity` windows of this series
    /// against the window that just changed.
    fn evaluate_rules(
        &mut self,
        record: &Record,
        observation: &Observation<'_>,
        series_key: &str,
        granularity: Granularity,
        window_start_ns: i64,
        effects: &mut Effects,
    ) {
        let Metrics {
            config,
            alerts,
            minutes,
            hours,
            days,
            ..
        } = self;
        let table = match granularity {
            Granularity::Minute => &*minutes,
            Granularity::Hour => &*hours,
            Granularity::Day => &*days,
        };
        let mut named = config
            .rules
            .iter()
            .filter(|rule| rule.granularity == granularity && rule.metric == observation.name)
            .peekable();
        if named.peek().is_none() {
            return;
        }
        // Owned labels only for a series some rule watches the name of.
        let labels = observation.owned_labels();
        let watching = named.filter(|rule| series::matches_all(&rule.matchers, &labels));
        for rule in watching {
            let Some(row) = table.get(&series::window_key(window_start_ns, series_key)) else {
                continue;
            };
            let value = row.statistic(rule.statistic);
            let alert_key = alert_key(&rule.name, series_key);
            let state = alerts.get_or_insert_with(&alert_key, || {
                AlertState::new(&rule.name, &observation.name, &labels, window_start_ns)
            });
            let Some(transition) = state.evaluate(rule, window_start_ns, value, observation.time_ns) else {
                continue;
            };
            let context = AlertContext {
                rule,
                series_key,
                name: &observation.name,
                labels: &labels,
                window_start_ns,
                value,
                time_ns: observation.time_ns,
                trigger: record,
            };
            let (event, evidence) = context.event(transition);
            state.last_transition = Some(evidence);
            effects.emit(event);
        }
    }

    /// Drops minute rows whose window ended at or before the cutoff (they
    /// sort by window start, so they are at the front).
    fn drop_expired_minutes(&mut self) {
        let Some(cutoff) = self.minute_cutoff() else { return };
        let width = Granularity::Minute.width_ns();
        match self.oldest_minute {
            Some(None) => return,
            Some(Some(oldest)) if oldest.saturating_add(width) > cutoff => return,
            _ => {}
        }
        // Keys come in batches, the first as many as the last pass dropped
        // and one more, to stop at; the next ones growing, so that a run
        // longer than the last costs few store reads too.
        let mut batch = (self.last_dropped + self.last_dropped / 8 + 1).clamp(16, 1 << 16);
        let mut dropped = 0;
        loop {
            let keys = self.minutes.keys_after(self.dropped_until.as_deref(), batch);
            let last_batch = keys.len() < batch;
            for key in keys {
                let start = series::window_of_key(&key);
                let expired = start.is_some_and(|start| start.saturating_add(width) <= cutoff);
                if !expired {
                    self.oldest_minute = start.map(Some);
                    self.last_dropped = dropped;
                    return;
                }
                self.minutes.delete(&key);
                self.dropped_until = Some(key);
                dropped += 1;
            }
            if last_batch {
                self.oldest_minute = Some(None);
                self.last_dropped = dropped;
                return;
            }
            batch = (batch * 4).min(batch.max(4096));
        }
    }

    fn tables_restore(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Fault> {
        Ok(self.series.restore(key, value)?
            || self.minutes.restore(key, value)?
            || self.hours.restore(key, value)?
            || self.days.restore(key, value)?
            || self.alerts.restore(key, value)?
            || self.meta.restore(key, value)?)
    }
}

impl Projection for Metrics {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn version(&self) -> u32 {
        1
    }

    fn fresh(&self) -> Metrics {
        Metrics::with_valid_config(self.config.clone())
    }

    fn apply(&mut self, record: &Record, effects: &mut Effects) -> Result<(), Fault> {
        if record.header.event.event_type != METRIC_OBSERVED {
            return Ok(());
        }
        let observation = observation::parse(&record.payload, record.header.event.occurred_at_ns)?;
        self.observe(record, observation, effects);
        Ok(())
    }

    fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        self.series.take_changes(changes)?;
        self.minutes.take_changes(changes)?;
        self.hours.take_changes(changes)?;
        self.days.take_changes(changes)?;
        self.alerts.take_changes(changes)?;
        self.meta.take_changes(changes)
    }

    fn cached(&mut self) -> Vec<&mut dyn Cached> {
        vec![
            &mut self.series,
            &mut self.minutes,
            &mut self.hours,
            &mut self.days,
            &mut self.alerts,
            &mut self.meta,
        ]
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault> {
        if self.tables_restore(key, value)? {
            Ok(())
        } else {
            Err(Fault::new(format!(
                "metrics: stored key {:?} belongs to no table",
                String::from_utf8_lossy(key)
            )))
        }
    }
}

/// The key of a rule's state for a series: `["rule",["name",{labels}]]`.
fn alert_key(rule: &str, series_key: &str) -> String {
    let mut key = String::with_capacity(rule.len() + series_key.len() + 4);
    key.push('[');
    series::push_json_string(&mut key, rule);
    key.push(',');
    key.push_str(series_key);
    key.push(']');
    key
}

#[cfg(test)]
pub(crate) mod testkit {
    /// Deterministic pseudo-random numbers (xorshift64*), no dependency.
    pub(crate) struct Xorshift(pub(crate) u64);

    impl Xorshift {
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform in [0, 1).
        pub(crate) fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Fisher–Yates.
        pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                let j = (self.next_u64() % (i as u64 + 1)) as usize;
                items.swap(i, j);
            }
        }
    }
}
