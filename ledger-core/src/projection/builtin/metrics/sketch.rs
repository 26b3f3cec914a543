//! [`Sketch`]: a DDSketch (Masson, Rim, Lee, VLDB 2019), the mergeable
//! quantile summary behind every rollup's p50/p95/p99.
//!
//! A value `x > 0` is counted in bucket `i = ceil(log_γ x)` with
//! `γ = (1 + α) / (1 − α)`, so the bucket covers `(γ^(i−1), γ^i]` and its
//! estimate `2γ^i / (γ + 1)` is within a relative error `α` of every value
//! in it. Negative values are counted the same way by magnitude in their own
//! store; values whose magnitude is below the smallest normal `f64`
//! (including zero) are counted in a zero bucket. Counts are integers, so
//! adding values in any order, or merging sketches in any order and
//! grouping, gives the same buckets and the same serialised bytes: that is
//! what lets hours and days be merged from minutes instead of averaging
//! percentiles.
//!
//! Determinism beyond one machine: the bucket index uses `portable_ln`
//! and estimates use `portable_powi`, built from IEEE add, multiply and
//! divide only (correctly rounded everywhere), instead of the platform's
//! `ln`/`powi`, whose last bit may differ between libms. A replay on another
//! machine therefore puts every value in the same bucket.
//!
//! Bounded size: each store keeps at most [`MAX_BUCKETS`] consecutive
//! indices, ending at the highest index it has seen; counts below that
//! window are added to the window's lowest bucket. The window is a function
//! of the highest index alone, which never decreases, so the collapse gives
//! the same result in any order. For positive values it only happens when a
//! sketch spans more than `γ^2048 ≈ 6·10^17` (e.g. 1 ns and 20 years in the
//! same unit), and only the smallest values lose accuracy.
//!
//! This file knows nothing about metrics, labels or windows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The relative accuracy `α` of every quantile estimate: the estimate `v̂`
/// of a true quantile `v` satisfies `|v̂ − v| ≤ α·|v|` (for values inside the
/// uncollapsed range, up to float rounding).
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// How many consecutive bucket indices each store (positive, negative)
/// keeps before collapsing its lowest ones.
pub const MAX_BUCKETS: i32 = 2048;

/// A DDSketch with relative accuracy [`RELATIVE_ACCURACY`].
///
/// Serialised as `{"zero": n, "pos": {"index": count, ...}, "neg": {...}}`
/// (empty parts omitted), bucket indices in increasing numeric order, so
/// equal sketches have equal bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sketch {
    /// Values whose magnitude is below the smallest normal `f64`.
    #[serde(default, skip_serializing_if = "is_zero")]
    zero: u64,
    /// Positive values by bucket index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pos: BTreeMap<i32, u64>,
    /// Negative values by the bucket index of their magnitude.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    neg: BTreeMap<i32, u64>,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Counts `value`. Non-finite values are ignored (callers validate).
    pub fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let magnitude = value.abs();
        if magnitude < f64::MIN_POSITIVE {
            self.zero = self.zero.saturating_add(1);
            return;
        }
        let store = if value > 0.0 { &mut self.pos } else { &mut self.neg };
        let count = store.entry(bucket_index(magnitude)).or_insert(0);
        *count = count.saturating_add(1);
        collapse(store);
    }

    /// Adds every count of `other` (the sketch of the union of both inputs).
    pub fn merge(&mut self, other: &Sketch) {
        self.zero = self.zero.saturating_add(other.zero);
        for (mine, theirs) in [(&mut self.pos, &other.pos), (&mut self.neg, &other.neg)] {
            for (&index, &count) in theirs {
                let slot = mine.entry(index).or_insert(0);
                *slot = slot.saturating_add(count);
            }
            collapse(mine);
        }
    }

    /// How many values were counted.
    pub fn count(&self) -> u64 {
        let buckets = self.pos.values().chain(self.neg.values());
        buckets.fold(self.zero, |total, &count| total.saturating_add(count))
    }

    /// Whether no value was counted.
    pub fn is_empty(&self) -> bool {
        self.zero == 0 && self.pos.is_empty() && self.neg.is_empty()
    }

    /// Non-empty buckets (zero bucket included), a measure of its size.
    pub fn bucket_count(&self) -> usize {
        self.pos.len() + self.neg.len() + usize::from(self.zero > 0)
    }

    /// Estimate of the `q`-quantile (`0 ≤ q ≤ 1`): the value of rank
    /// `⌊q·(n − 1)⌋` (0-based) in sorted order, within the relative accuracy.
    /// `None` when empty or `q` is outside `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let total = self.count();
        if total == 0 {
            return None;
        }
        // Exact for every count an f64 holds exactly (below 2^53).
        let rank = (q * (total - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        // Most negative first: the negative store by decreasing magnitude.
        for (&index, &count) in self.neg.iter().rev() {
            seen = seen.saturating_add(count);
            if seen > rank {
                return Some(-estimate(index));
            }
        }
        seen = seen.saturating_add(self.zero);
        if seen > rank {
            return Some(0.0);
        }
        for (&index, &count) in &self.pos {
            seen = seen.saturating_add(count);
            if seen > rank {
                return Some(estimate(index));
            }
        }
        // Only reachable if counts saturated: the largest bucket.
        self.pos.keys().next_back().map(|&index| estimate(index))
    }
}

/// `γ = (1 + α) / (1 − α)`.
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// `ln γ`, computed once at compile time with the same portable `ln`.
const LN_GAMMA: f64 = portable_ln(GAMMA);

/// `ceil(log_γ magnitude)` for a positive normal `magnitude`.
fn bucket_index(magnitude: f64) -> i32 {
    // |ln| ≤ 710 and 1/ln γ ≈ 50: the index fits an i32 with room to spare.
    (portable_ln(magnitude) / LN_GAMMA).ceil() as i32
}

/// The estimate for bucket `index`: `γ^(index−1) · 2γ/(γ+1)`, which is
/// `(1 + α)` times the bucket's lower bound (written from the lower bound,
/// which is below the largest `f64`, so it stays finite up to the top).
fn estimate(index: i32) -> f64 {
    let lower = portable_powi(GAMMA, index.saturating_sub(1));
    (lower * (2.0 * GAMMA / (GAMMA + 1.0))).min(f64::MAX)
}

/// Keeps the `MAX_BUCKETS` indices ending at the highest one, adding the
/// counts below into the lowest kept bucket.
fn collapse(store: &mut BTreeMap<i32, u64>) {
    let (Some((&lowest, _)), Some((&highest, _))) = (store.first_key_value(), store.last_key_value()) else {
        return;
    };
    let floor = highest.saturating_sub(MAX_BUCKETS - 1);
    if lowest >= floor {
        return;
    }
    let kept = store.split_off(&floor);
    let folded = store.values().fold(0u64, |total, &count| total.saturating_add(count));
    *store = kept;
    let slot = store.entry(floor).or_insert(0);
    *slot = slot.saturating_add(folded);
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// Natural logarithm of a positive normal `x` from IEEE basic operations
/// only: `x = m·2^e` with `m ∈ [√½, √2)`, then
/// `ln m = 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …)` with `s = (m−1)/(m+1)`,
/// `|s| ≤ 0.172`, where twelve terms reach full double precision.
pub(crate) const fn portable_ln(x: f64) -> f64 {
    const MANTISSA_BITS: u64 = (1 << 52) - 1;
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut mantissa = f64::from_bits((bits & MANTISSA_BITS) | (1023 << 52));
    if mantissa > std::f64::consts::SQRT_2 {
        mantissa /= 2.0;
        exponent += 1;
    }
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    let mut series = 0.0;
    let mut k = 12;
    while k > 0 {
        k -= 1;
        series = series * s2 + 1.0 / (2 * k + 1) as f64;
    }
    2.0 * s * series + exponent as f64 * std::f64::consts::LN_2
}

/// `base^exponent` by repeated squaring (multiplications only, so the same
/// bits everywhere); relative error about `2^17` ulps at the extremes, far
/// below `α`.
pub(crate) fn portable_powi(base: f64, exponent: i32) -> f64 {
    let mut result = 1.0;
    let mut square = base;
    let mut remaining = exponent.unsigned_abs();
    while remaining > 0 {
        if remaining & 1 == 1 {
            result *= square;
        }
        square *= square;
        remaining >>= 1;
    }
    if exponent < 0 { 1.0 / result } else { result }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::builtin::metrics::testkit::Xorshift;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn assert_within_accuracy(estimate: f64, exact: f64, what: &str) {
        let error = (estimate - exact).abs();
        assert!(
            error <= RELATIVE_ACCURACY * exact.abs() * (1.0 + 1e-9),
            "{what}: estimate {estimate} vs exact {exact} (relative error {})",
            error / exact.abs()
        );
    }

    #[test]
    fn portable_math_agrees_with_the_platform() {
        let mut rng = Xorshift(7);
        for _ in 0..10_000 {
            let x = (rng.unit() * 1400.0 - 700.0).exp();
            let (ours, platform) = (portable_ln(x), x.ln());
            assert!(
                (ours - platform).abs() <= 4.0 * f64::EPSILON * platform.abs().max(1.0),
                "ln({x}): {ours} vs {platform}"
            );
        }
        for x in [f64::MIN_POSITIVE, 1.0, std::f64::consts::E, 2.0, f64::MAX] {
            assert!((portable_ln(x) - x.ln()).abs() <= 4.0 * f64::EPSILON * x.ln().abs().max(1.0));
        }
        let gamma = GAMMA;
        for exponent in [-35_000, -1000, -1, 0, 1, 7, 1000, 35_000] {
            let (ours, platform) = (portable_powi(gamma, exponent), gamma.powi(exponent));
            assert!(
                (ours - platform).abs() <= 1e-10 * platform,
                "γ^{exponent}: {ours} vs {platform}"
            );
        }
    }

    #[test]
    fn every_value_is_estimated_within_the_relative_accuracy() {
        let mut rng = Xorshift(11);
        for _ in 0..20_000 {
            let magnitude = (rng.unit() * 80.0 - 40.0).exp();
            for value in [magnitude, -magnitude] {
                let mut sketch = Sketch::new();
                sketch.add(value);
                let estimate = sketch.quantile(0.5).expect("one value");
                assert_within_accuracy(estimate, value, "single value");
            }
        }
        let mut sketch = Sketch::new();
        sketch.add(0.0);
        sketch.add(-0.0);
        sketch.add(1e-320);
        assert_eq!((sketch.count(), sketch.quantile(1.0)), (3, Some(0.0)));
    }

    #[test]
    fn quantiles_of_100k_latencies_are_within_one_percent() {
        // Log-normal-ish request latencies in ms, plus a few negative clock
        // skews and exact zeros, like a real probe produces.
        let mut rng = Xorshift(0x5eed);
        let mut values: Vec<f64> = (0..100_000)
            .map(|i| match i % 1000 {
                0 => 0.0,
                1 => -(rng.unit() * 5.0),
                _ => 12.0 * (rng.unit() * 3.0 + rng.unit() * 2.0).exp(),
            })
            .collect();
        let mut sketch = Sketch::new();
        for &value in &values {
            sketch.add(value);
        }
        values.sort_by(f64::total_cmp);
        assert_eq!(sketch.count(), 100_000);
        for q in [0.0, 0.001, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let estimate = sketch.quantile(q).expect("non-empty");
            assert_within_accuracy(estimate, exact_quantile(&values, q), &format!("q={q}"));
        }
        assert!(sketch.bucket_count() < 600, "{} buckets", sketch.bucket_count());
        assert_eq!(sketch.quantile(1.5), None);
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn adding_and_merging_in_any_order_gives_identical_bytes() -> Result<(), serde_json::Error> {
        let mut rng = Xorshift(42);
        let mut values: Vec<f64> = (0..5000)
            .map(|_| (rng.unit() - 0.3) * 10f64.powf(rng.unit() * 12.0 - 4.0))
            .collect();
        values.extend([0.0, 0.0, -1e-310]);

        let mut forward = Sketch::new();
        values.iter().for_each(|&v| forward.add(v));
        rng.shuffle(&mut values);
        let mut shuffled = Sketch::new();
        values.iter().for_each(|&v| shuffled.add(v));
        assert_eq!(forward, shuffled);

        // Parts merged in two different groupings.
        let parts: Vec<Sketch> = values
            .chunks(97)
            .map(|chunk| {
                let mut part = Sketch::new();
                chunk.iter().for_each(|&v| part.add(v));
                part
            })
            .collect();
        let mut left = Sketch::new();
        parts.iter().for_each(|part| left.merge(part));
        let mut right = Sketch::new();
        for pair in parts.rchunks(2) {
            let mut pair_sketch = Sketch::new();
            pair.iter().for_each(|part| pair_sketch.merge(part));
            right.merge(&pair_sketch);
        }
        assert_eq!(left, forward);
        assert_eq!(right, forward);
        let bytes = serde_json::to_vec(&forward)?;
        assert_eq!(serde_json::to_vec(&shuffled)?, bytes);
        assert_eq!(serde_json::to_vec(&right)?, bytes);
        assert_eq!(serde_json::from_slice::<Sketch>(&bytes)?, forward);
        Ok(())
    }

    #[test]
    fn collapsing_keeps_a_window_below_the_highest_index_in_any_order() {
        // 1e-300 and 1e300 are ~69,000 indices apart: the tiny values fold
        // into the lowest kept bucket whatever the order.
        let values = [1e-300, 3e-200, 1e300, 2.5, 1e-300, 7e250];
        let mut forward = Sketch::new();
        values.iter().for_each(|&v| forward.add(v));
        let mut backward = Sketch::new();
        values.iter().rev().for_each(|&v| backward.add(v));
        let mut merged = Sketch::new();
        for &value in &values {
            let mut single = Sketch::new();
            single.add(value);
            merged.merge(&single);
        }
        assert_eq!(forward, backward);
        assert_eq!(forward, merged);
        assert_eq!(forward.count(), 6);
        let (lowest, highest) = (forward.pos.keys().next(), forward.pos.keys().next_back());
        assert_eq!(lowest.zip(highest).map(|(l, h)| h - l), Some(MAX_BUCKETS - 1));
        // The top of the range keeps its accuracy.
        assert_within_accuracy(forward.quantile(1.0).expect("non-empty"), 1e300, "max");
        // Extremes stay finite.
        let mut extremes = Sketch::new();
        extremes.add(f64::MAX);
        extremes.add(-f64::MAX);
        assert!(extremes.quantile(1.0).is_some_and(f64::is_finite));
        assert!(extremes.quantile(0.0).is_some_and(f64::is_finite));
    }
}
