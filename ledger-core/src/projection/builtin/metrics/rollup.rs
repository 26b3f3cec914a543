//! One window of one series: the stored [`RollupRow`], its public view
//! [`Rollup`], the [`Granularity`] of windows and the [`Statistic`]s that
//! rules compare.
//!
//! Every field of a row is an order-independent function of the
//! observations in the window (count, min, max, the sketch; `last` by the
//! greatest `(time, seq)`), except `sum`, a float sum in log order:
//! deterministic for a replay, and exact whenever the values and partial
//! sums are integers below 2^53.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::observation::Kind;
use super::sketch::Sketch;

/// The width of a rollup window. Windows are aligned to the Unix epoch, so
/// they are UTC minutes, hours and days (Unix time has no leap seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// 60 s.
    Minute,
    /// 3600 s.
    Hour,
    /// 86 400 s.
    Day,
}

impl Granularity {
    /// All of them, finest first.
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    /// The window width in nanoseconds.
    pub fn width_ns(self) -> i64 {
        const SECOND: i64 = 1_000_000_000;
        match self {
            Granularity::Minute => 60 * SECOND,
            Granularity::Hour => 3600 * SECOND,
            Granularity::Day => 86_400 * SECOND,
        }
    }

    /// The start of the window holding `time_ns`.
    pub fn window_start(self, time_ns: i64) -> i64 {
        time_ns.saturating_sub(time_ns.rem_euclid(self.width_ns()))
    }

    /// The name used in rules and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }
}

/// A value of a window that a rule can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Number of observations.
    Count,
    /// Sum of the values.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Value of the latest observation.
    Last,
    /// Median estimate.
    P50,
    /// 95th percentile estimate.
    P95,
    /// 99th percentile estimate.
    P99,
}

impl Statistic {
    /// The name used in rules and alert payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Count => "count",
            Statistic::Sum => "sum",
            Statistic::Min => "min",
            Statistic::Max => "max",
            Statistic::Last => "last",
            Statistic::P50 => "p50",
            Statistic::P95 => "p95",
            Statistic::P99 => "p99",
        }
    }
}

/// What is stored per (series, granularity, window).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RollupRow {
    pub(crate) count: u64,
    /// Saturates at ±`f64::MAX` instead of overflowing to infinity, which
    /// JSON cannot hold.
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) last: f64,
    pub(crate) last_time_ns: i64,
    pub(crate) last_seq: u64,
    pub(crate) sketch: Sketch,
}

impl RollupRow {
    /// A window holding one observation.
    pub(crate) fn new(value: f64, time_ns: i64, seq: u64) -> RollupRow {
        let mut sketch = Sketch::new();
        sketch.add(value);
        RollupRow {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last: value,
            last_time_ns: time_ns,
            last_seq: seq,
            sketch,
        }
    }

    /// Counts one more observation.
    pub(crate) fn add(&mut self, value: f64, time_ns: i64, seq: u64) {
        self.count = self.count.saturating_add(1);
        self.sum = (self.sum + value).clamp(-f64::MAX, f64::MAX);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if (time_ns, seq) >= (self.last_time_ns, self.last_seq) {
            self.last = value;
            self.last_time_ns = time_ns;
            self.last_seq = seq;
        }
        self.sketch.add(value);
    }

    /// Folds another window's row in (e.g. minutes into an hour).
    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &RollupRow) {
        self.count = self.count.saturating_add(other.count);
        self.sum = (self.sum + other.sum).clamp(-f64::MAX, f64::MAX);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if (other.last_time_ns, other.last_seq) >= (self.last_time_ns, self.last_seq) {
            self.last = other.last;
            self.last_time_ns = other.last_time_ns;
            self.last_seq = other.last_seq;
        }
        self.sketch.merge(&other.sketch);
    }

    /// The `q`-quantile estimate, clamped to the exact `[min, max]` (which
    /// only brings it closer to the truth).
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        self.sketch
            .quantile(q)
            .map_or(self.last, |estimate| estimate.clamp(self.min, self.max))
    }

    /// The value of `statistic` for this window.
    pub(crate) fn statistic(&self, statistic: Statistic) -> f64 {
        match statistic {
            Statistic::Count => self.count as f64,
            Statistic::Sum => self.sum,
            Statistic::Min => self.min,
            Statistic::Max => self.max,
            Statistic::Last => self.last,
            Statistic::P50 => self.quantile(0.50),
            Statistic::P95 => self.quantile(0.95),
            Statistic::P99 => self.quantile(0.99),
        }
    }
}

/// One window of one series, as queries return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// Metric name.
    pub name: String,
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The series' kind.
    pub kind: Kind,
    /// Window width.
    pub granularity: Granularity,
    /// Window start, inclusive (Unix ns).
    pub start_ns: i64,
    /// Window end, exclusive (Unix ns).
    pub end_ns: i64,
    /// Number of observations.
    pub count: u64,
    /// Sum of the values (a counter's increase over the window).
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Value of the observation with the greatest time (ties: greatest seq).
    pub last: f64,
    /// Its time (Unix ns).
    pub last_time_ns: i64,
    /// Its record.
    pub last_seq: u64,
    /// Median estimate (relative error ≤ 1%).
    pub p50: f64,
    /// 95th percentile estimate (relative error ≤ 1%).
    pub p95: f64,
    /// 99th percentile estimate (relative error ≤ 1%).
    pub p99: f64,
}

impl Rollup {
    pub(crate) fn new(series: &super::Series, granularity: Granularity, start_ns: i64, row: &RollupRow) -> Rollup {
        Rollup {
            name: series.name.clone(),
            labels: series.labels.clone(),
            kind: series.kind,
            granularity,
            start_ns,
            end_ns: start_ns.saturating_add(granularity.width_ns()),
            count: row.count,
            sum: row.sum,
            min: row.min,
            max: row.max,
            last: row.last,
            last_time_ns: row.last_time_ns,
            last_seq: row.last_seq,
            p50: row.quantile(0.50),
            p95: row.quantile(0.95),
            p99: row.quantile(0.99),
        }
    }
}

/// Many windows (and series) merged: what a dashboard tile shows for "the
/// last 7 days of artifact-store latency".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Series that contributed.
    pub series: u64,
    /// Windows that contributed.
    pub windows: u64,
    /// Number of observations.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Median estimate over all of them (merged sketches).
    pub p50: f64,
    /// 95th percentile estimate over all of them.
    pub p95: f64,
    /// 99th percentile estimate over all of them.
    pub p99: f64,
}

/// Accumulates rows into a [`Summary`].
#[derive(Debug, Default)]
pub(crate) struct SummaryBuilder {
    series: u64,
    windows: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    sketch: Sketch,
}

impl SummaryBuilder {
    pub(crate) fn next_series(&mut self) {
        self.series += 1;
    }

    pub(crate) fn add(&mut self, row: &RollupRow) {
        if self.windows == 0 {
            (self.min, self.max) = (row.min, row.max);
        }
        self.windows += 1;
        self.count = self.count.saturating_add(row.count);
        self.sum = (self.sum + row.sum).clamp(-f64::MAX, f64::MAX);
        self.min = self.min.min(row.min);
        self.max = self.max.max(row.max);
        self.sketch.merge(&row.sketch);
    }

    pub(crate) fn finish(self) -> Option<Summary> {
        if self.windows == 0 {
            return None;
        }
        let quantile = |q| {
            self.sketch
                .quantile(q)
                .map_or(self.min, |v: f64| v.clamp(self.min, self.max))
        };
        Some(Summary {
            series: self.series,
            windows: self.windows,
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            p50: quantile(0.50),
            p95: quantile(0.95),
            p99: quantile(0.99),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_utc_aligned_even_before_1970() {
        let t = 1_772_460_127_250_000_000; // 2026-03-02T14:02:07.25Z
        assert_eq!(Granularity::Minute.window_start(t), 1_772_460_120_000_000_000);
        assert_eq!(Granularity::Hour.window_start(t), 1_772_460_000_000_000_000);
        assert_eq!(Granularity::Day.window_start(t), 1_772_409_600_000_000_000);
        assert_eq!(Granularity::Minute.window_start(-1), -60_000_000_000);
        assert_eq!(Granularity::Day.window_start(i64::MIN), i64::MIN);
    }

    #[test]
    fn last_is_the_greatest_time_then_seq_in_any_order() {
        let observations = [(5.0, 100, 1), (7.0, 300, 2), (9.0, 300, 3), (1.0, 200, 4)];
        let mut forward = RollupRow::new(observations[0].0, observations[0].1, observations[0].2);
        observations[1..].iter().for_each(|&(v, t, s)| forward.add(v, t, s));
        let mut backward = RollupRow::new(1.0, 200, 4);
        observations[..3]
            .iter()
            .rev()
            .for_each(|&(v, t, s)| backward.add(v, t, s));
        assert_eq!(forward, backward);
        assert_eq!((forward.last, forward.last_time_ns, forward.last_seq), (9.0, 300, 3));
        assert_eq!(
            (forward.count, forward.sum, forward.min, forward.max),
            (4, 22.0, 1.0, 9.0)
        );
    }

    #[test]
    fn stored_floats_parse_back_to_the_same_bits() -> Result<(), serde_json::Error> {
        // Needs serde_json's float_roundtrip: its default parser may be an
        // ulp off, and a restored state would then differ from the folded one.
        let mut bits = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let value = f64::from_bits(bits);
            if !value.is_finite() {
                continue;
            }
            let row = RollupRow::new(value, 0, 0);
            let back: RollupRow = serde_json::from_slice(&serde_json::to_vec(&row)?)?;
            assert_eq!(back.sum.to_bits(), value.to_bits(), "{value:e}");
        }
        Ok(())
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        let mut row = RollupRow::new(f64::MAX, 0, 0);
        row.add(f64::MAX, 1, 1);
        assert_eq!(row.sum, f64::MAX);
        assert!(serde_json::to_string(&row).is_ok_and(|json| !json.contains("null")));
    }
}
