//! Self-learning thresholds over a bounded history, and trend classification.

use serde::{Deserialize, Serialize};

use super::order::{MadHint, OrderIndex};
use super::ring::RingBuffer;
use super::robust::{Quantiles, RobustStats, refresh_interval};
use crate::prefetch::{prefetch, prefetch_slice};

/// How a threshold is learned from a history of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdStrategy {
    /// The `percentile`-th percentile (upper) and its mirror (lower).
    Percentile,
    /// Mean ± `sigma_k` standard deviations.
    Sigma,
    /// Q1 − `iqr_k`·IQR and Q3 + `iqr_k`·IQR (Tukey's fences).
    Iqr,
}

impl ThresholdStrategy {
    /// The name written in the `strategy` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Percentile => "percentile",
            Self::Sigma => "sigma",
            Self::Iqr => "iqr",
        }
    }
}

/// A strategy with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdParams {
    /// The strategy.
    pub strategy: ThresholdStrategy,
    /// Percentile for [`ThresholdStrategy::Percentile`], in `(50, 100]`.
    pub percentile: f64,
    /// Multiplier for [`ThresholdStrategy::Sigma`].
    pub sigma_k: f64,
    /// Multiplier for [`ThresholdStrategy::Iqr`].
    pub iqr_k: f64,
}

impl Default for ThresholdParams {
    fn default() -> Self {
        Self {
            strategy: ThresholdStrategy::Percentile,
            percentile: 99.0,
            sigma_k: 3.0,
            iqr_k: 1.5,
        }
    }
}

/// A learned band: values outside `[lower, upper]` are exceptional.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Lower threshold.
    pub lower: f64,
    /// Upper threshold.
    pub upper: f64,
}

impl ThresholdParams {
    /// The quantiles the band is read from (none for [`ThresholdStrategy::Sigma`]).
    fn band_quantiles(&self) -> [f64; 2] {
        let p = (self.percentile / 100.0).clamp(0.0, 1.0);
        match self.strategy {
            ThresholdStrategy::Percentile => [p, 1.0 - p],
            ThresholdStrategy::Sigma | ThresholdStrategy::Iqr => [0.25, 0.75],
        }
    }

    /// The band of a quantile strategy from the sample's quantiles (`q(p)`, asked
    /// only for [`Self::band_quantiles`]); `None` for [`ThresholdStrategy::Sigma`],
    /// which is not read from quantiles ([`Self::sigma_band`]).
    fn quantile_band(&self, q: impl Fn(f64) -> Option<f64>) -> Option<Bounds> {
        match self.strategy {
            ThresholdStrategy::Percentile => {
                let p = (self.percentile / 100.0).clamp(0.0, 1.0);
                Some(Bounds {
                    upper: q(p)?,
                    lower: q(1.0 - p)?,
                })
            }
            ThresholdStrategy::Sigma => None,
            ThresholdStrategy::Iqr => {
                let (q1, q3) = (q(0.25)?, q(0.75)?);
                let iqr = q3 - q1;
                Some(Bounds {
                    lower: q1 - self.iqr_k * iqr,
                    upper: q3 + self.iqr_k * iqr,
                })
            }
        }
    }

    /// Mean ± `sigma_k` population standard deviations of a non-empty sample (sums
    /// in the sample's order).
    fn sigma_band(&self, values: impl Iterator<Item = f64> + Clone) -> Bounds {
        let n = values.clone().count() as f64;
        let mean = values.clone().sum::<f64>() / n;
        let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let sd = var.sqrt();
        Bounds {
            lower: mean - self.sigma_k * sd,
            upper: mean + self.sigma_k * sd,
        }
    }

    /// The band of `values` (reordered) under this strategy; `None` when empty.
    pub fn bounds(&self, values: &mut [f64]) -> Option<Bounds> {
        if values.is_empty() {
            return None;
        }
        if self.strategy == ThresholdStrategy::Sigma {
            return Some(self.sigma_band(values.iter().copied()));
        }
        let mut q = Quantiles::default();
        q.select(values, &self.band_quantiles());
        self.quantile_band(|p| q.get(p))
    }
}

/// Direction of the recent values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trend {
    /// Rising beyond the noise.
    Increasing,
    /// Falling beyond the noise.
    Decreasing,
    /// Neither.
    Stable,
}

impl Trend {
    /// `increasing`, `decreasing` or `stable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Increasing => "increasing",
            Self::Decreasing => "decreasing",
            Self::Stable => "stable",
        }
    }
}

/// The change a least-squares line predicts across the window must exceed this many
/// residual standard deviations to count as a trend.
pub const TREND_MIN_CHANGE: f64 = 2.0;

/// Classifies the trend of `values` (in time order): the least-squares slope times
/// the window's span, against the residuals' standard deviation. Fewer than 3 values
/// are `Stable`.
pub fn classify_trend<T: Copy + Into<f64>>(values: &[T]) -> Trend {
    let n = values.len();
    let values = values.iter().map(|&v| v.into());
    if n < 3 {
        return Trend::Stable;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = values.clone().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in values.clone().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    let slope = sxy / sxx;
    let resid_var = values
        .enumerate()
        .map(|(i, y)| {
            let r = y - (mean_y + slope * (i as f64 - mean_x));
            r * r
        })
        .sum::<f64>()
        / (nf - 2.0);
    let change = slope * (nf - 1.0);
    let noise = resid_var.sqrt().max(1e-12 * (1.0 + mean_y.abs()));
    if !change.is_finite() || change.abs() <= TREND_MIN_CHANGE * noise {
        Trend::Stable
    } else if change > 0.0 {
        Trend::Increasing
    } else {
        Trend::Decreasing
    }
}

/// A finite value as a learner keeps it: the nearest `f32`, or `f32`'s largest
/// magnitude beyond its range.
fn narrow(x: f64) -> f32 {
    x.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
}

/// What a [`ThresholdLearner`] learned from its history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Learned {
    /// The threshold band under the learner's strategy.
    pub bounds: Bounds,
    /// Median and robust scale, for standardising values.
    pub stats: RobustStats,
}

/// Learns a threshold band and robust statistics from a bounded history of one
/// series.
///
/// Both are recomputed after every [`refresh_interval`] new values (every value for
/// a history under 256), lagging the newest values by under 0.4 % of the history.
/// The history's values are also kept in ascending order ([`OrderIndex`]), so a
/// refresh reads the median, quartiles, MAD and quantile band in `O(log n)` instead
/// of sorting or selecting over the history; only the σ band sums over it. The MAD's
/// search starts where the previous refresh's ended ([`MadHint`]), which a few new
/// values move by about as many ranks.
///
/// A refresh computes the statistics; the band, which fewer readers want, is computed
/// when first asked for, from the history as the refresh saw it (before a new value
/// changes the history, if the band may still be read before the next refresh).
#[derive(Clone, Debug)]
pub struct ThresholdLearner {
    params: ThresholdParams,
    history: RingBuffer<f32>,
    order: OrderIndex,
    /// The statistics of the last refresh, `None` before any value.
    stats: Option<RobustStats>,
    /// The band of the last refresh, `None` until asked for.
    bounds: Option<Bounds>,
    since_refresh: usize,
    /// Where the last refresh's MAD search ended, where the next one starts.
    mad_hint: MadHint,
}

/// Longest history whose ordered values [`ThresholdLearner::prefetch_order`] asks for
/// whole (2 KB): a refresh re-reads a short history's order all over, a long one's in
/// a few places (and a long one refreshes only every few values).
const PREFETCH_MAX: usize = 512;

thread_local! {
    /// Working space for reading an [`OrderIndex`] by rank, shared by the thread's
    /// learners.
    static STARTS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ThresholdLearner {
    /// An empty learner keeping at most `capacity` values.
    pub fn new(params: ThresholdParams, capacity: usize) -> Self {
        Self {
            params,
            history: RingBuffer::new(capacity),
            order: OrderIndex::default(),
            stats: None,
            bounds: None,
            since_refresh: 0,
            mad_hint: MadHint::default(),
        }
    }

    /// The strategy and its parameters.
    pub fn params(&self) -> &ThresholdParams {
        &self.params
    }

    /// Values kept.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// Whether no value was seen yet.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// Adds a value (non-finite values are ignored). It is kept as the nearest `f32`
    /// (beyond `f32`'s range, its largest magnitude).
    pub fn push(&mut self, x: f64) {
        if x.is_finite() {
            let x = narrow(x);
            // A band not computed yet is computed now if it may be read before the
            // next refresh (a refresh is due from then on once it is due at all:
            // `since_refresh` grows by one a value, the interval by one in 256).
            let len = (self.history.len() + 1).min(self.history.capacity());
            if self.stats.is_some()
                && self.bounds.is_none()
                && self.since_refresh + 1 < refresh_interval(len)
            {
                self.bounds = self.compute_bounds();
            }
            if let Some(&oldest) = self.history.oldest_if_full() {
                self.order.remove(oldest);
            }
            self.history.push(x);
            self.order.insert(x);
            self.since_refresh += 1;
        }
    }

    /// Recomputes the statistics when a refresh is due, and forgets the band.
    fn refresh(&mut self) {
        if self.stats.is_some() && self.since_refresh < refresh_interval(self.history.len()) {
            return;
        }
        let hint = &mut self.mad_hint;
        self.stats = STARTS.with_borrow_mut(|starts| {
            let ranked = self.order.ranked(starts);
            let median = ranked.quantile(0.5)?;
            Some(RobustStats::from_parts(
                median,
                || (ranked.quantile(0.25), ranked.quantile(0.75)),
                ranked.mad_near(median, hint)?,
                || ranked.mean_abs_deviation(median),
            ))
        });
        self.bounds = None;
        self.since_refresh = 0;
    }

    /// The band of the history as it is; `None` when empty.
    fn compute_bounds(&self) -> Option<Bounds> {
        if self.history.is_empty() {
            return None;
        }
        if self.params.strategy == ThresholdStrategy::Sigma {
            return Some(
                self.params
                    .sigma_band(self.history.iter().map(|&v| f64::from(v))),
            );
        }
        STARTS.with_borrow_mut(|starts| {
            let ranked = self.order.ranked(starts);
            self.params.quantile_band(|p| ranked.quantile(p))
        })
    }

    /// The median and robust scale learned so far, `None` before any value.
    pub fn stats(&mut self) -> Option<RobustStats> {
        self.refresh();
        self.stats
    }

    /// The current band, `None` before any value.
    pub fn bounds(&mut self) -> Option<Bounds> {
        self.refresh();
        if self.bounds.is_none() && self.stats.is_some() {
            self.bounds = self.compute_bounds();
        }
        self.bounds
    }

    /// What was learned so far, `None` before any value.
    pub fn learned(&mut self) -> Option<Learned> {
        let bounds = self.bounds()?;
        Some(Learned {
            bounds,
            stats: self.stats?,
        })
    }

    /// The robust standardised deviation of `x` from the history (0 before any value).
    pub fn deviation(&mut self, x: f64) -> f64 {
        self.stats().map_or(0.0, |s| s.standardise(x))
    }

    /// As [`ThresholdLearner::deviation`], with the scale at least `min_scale`.
    pub fn deviation_with_floor(&mut self, x: f64, min_scale: f64) -> f64 {
        self.stats().map_or(0.0, |s| {
            RobustStats {
                scale: s.scale.max(min_scale),
                ..s
            }
            .standardise(x)
        })
    }

    /// Asks for what the next value and the next trend of the newest `latest` values
    /// read in the ring (its oldest value when full, and its newest), and for the list
    /// of the order's blocks and their fences, which [`Self::prefetch_order`] follows.
    /// A hint: see [`crate::prefetch`].
    pub fn prefetch_history(&self, latest: usize) {
        let (older, newer) = self.history.latest_parts(latest);
        prefetch_slice(older);
        prefetch_slice(newer);
        if let Some(oldest) = self.history.oldest_if_full() {
            prefetch(oldest);
        }
        self.order.prefetch_list();
    }

    /// Asks for the order's blocks the next refresh and push read, after
    /// [`Self::prefetch_history`] (this follows the list's pointers): all of a short
    /// history's, which a refresh re-reads all over; of a longer one, only the blocks
    /// where `next` (the value to come, when known) goes and where the oldest value
    /// leaves.
    pub fn prefetch_order(&self, next: Option<f64>) {
        if self.len() <= PREFETCH_MAX {
            self.order.prefetch_blocks();
            return;
        }
        if let Some(&oldest) = self.history.oldest_if_full() {
            self.order.prefetch_block_of(oldest);
        }
        if let Some(x) = next.filter(|x| x.is_finite()) {
            self.order.prefetch_block_of(narrow(x));
        }
    }

    /// The trend of the newest `window` values.
    pub fn trend(&self, window: usize) -> Trend {
        match self.history.latest_parts(window) {
            // Unless the ring has wrapped inside them, the values are one run.
            (run, []) => classify_trend(run),
            (older, newer) => classify_trend(&[older, newer].concat()),
        }
    }

    /// The history, oldest first.
    pub fn history(&self) -> &RingBuffer<f32> {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::robust::quantile;
    use proptest::prelude::*;

    /// `values` as a learner keeps them (each the nearest `f32`).
    fn kept_as(values: &[f64]) -> Vec<f64> {
        values.iter().map(|&v| f64::from(v as f32)).collect()
    }

    #[test]
    fn values_are_kept_as_the_nearest_f32_and_saturate() {
        let mut learner = ThresholdLearner::new(ThresholdParams::default(), 8);
        for v in [0.1, 1e300, -1e300, f64::INFINITY, f64::NAN] {
            learner.push(v);
        }
        let kept: Vec<f32> = learner.history().iter().copied().collect();
        assert_eq!(kept, vec![0.1f32, f32::MAX, -f32::MAX]);
        assert_eq!(learner.stats().unwrap().median, f64::from(0.1f32));
    }

    fn params(strategy: ThresholdStrategy) -> ThresholdParams {
        ThresholdParams {
            strategy,
            ..ThresholdParams::default()
        }
    }

    #[test]
    fn percentile_bounds_of_1_to_101() {
        let mut v: Vec<f64> = (1..=101).map(f64::from).collect();
        let b = params(ThresholdStrategy::Percentile)
            .bounds(&mut v)
            .unwrap();
        assert!((b.upper - 100.0).abs() < 1e-9);
        assert!((b.lower - 2.0).abs() < 1e-9);
    }

    #[test]
    fn sigma_and_iqr_bounds_of_a_known_sample() {
        let mut v = vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let b = params(ThresholdStrategy::Sigma).bounds(&mut v).unwrap();
        // Mean 5, population σ 2.
        assert!((b.upper - 11.0).abs() < 1e-9 && (b.lower + 1.0).abs() < 1e-9);
        let b = params(ThresholdStrategy::Iqr).bounds(&mut v).unwrap();
        // Q1 4, Q3 5.5 (linear interpolation), IQR 1.5.
        assert!((b.upper - 7.75).abs() < 1e-9, "{b:?}");
        assert!((b.lower - 1.75).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn an_outlier_does_not_move_the_median() {
        let mut learner = ThresholdLearner::new(ThresholdParams::default(), 100);
        for i in 0..99 {
            learner.push(10.0 + (i % 3) as f64);
        }
        learner.push(1e9);
        learner.push(f64::NAN);
        assert_eq!(learner.len(), 100);
        let s = learner.learned().unwrap().stats;
        assert_eq!(s.median, 11.0);
        assert!(s.scale < 2.0);
        assert!(learner.deviation(11.0).abs() < 1e-12);
        assert_eq!(
            ThresholdLearner::new(ThresholdParams::default(), 5).deviation(3.0),
            0.0
        );
    }

    #[test]
    fn trend_classification() {
        let up: Vec<f64> = (0..50).map(|i| i as f64 + (i % 3) as f64 * 0.1).collect();
        assert_eq!(classify_trend(&up), Trend::Increasing);
        let down: Vec<f64> = up.iter().map(|v| -v).collect();
        assert_eq!(classify_trend(&down), Trend::Decreasing);
        let flat: Vec<f64> = (0..50).map(|i| ((i * 7919) % 13) as f64).collect();
        assert_eq!(classify_trend(&flat), Trend::Stable);
        assert_eq!(classify_trend(&[1.0, 5.0]), Trend::Stable);
        assert_eq!(classify_trend(&[3.0; 20]), Trend::Stable);
    }

    proptest! {
        #[test]
        fn learner_history_is_bounded_and_bounds_bracket_the_median(
            capacity in 1usize..300,
            values in prop::collection::vec(-1e3f64..1e3, 1..600),
            strategy in prop_oneof![
                Just(ThresholdStrategy::Percentile),
                Just(ThresholdStrategy::Sigma),
                Just(ThresholdStrategy::Iqr),
            ],
        ) {
            let mut learner = ThresholdLearner::new(params(strategy), capacity);
            for v in &values {
                learner.push(*v);
                prop_assert!(learner.len() <= capacity);
            }
            // Small histories are refreshed on every value: bounds match a fresh
            // computation over the newest `capacity` values.
            let kept: Vec<f64> = kept_as(&values[values.len().saturating_sub(capacity)..]);
            let b = learner.bounds().unwrap();
            let fresh = params(strategy).bounds(&mut kept.clone()).unwrap();
            if capacity < 256 {
                prop_assert_eq!(b, fresh);
            }
            let median = quantile(&mut kept.clone(), 0.5).unwrap();
            prop_assert!(b.lower <= median + 1e-9 && median <= b.upper + 1e-9);
        }

        #[test]
        fn learned_equals_the_plain_computation(
            values in prop::collection::vec(
                prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from)],
                1..700,
            ),
            strategy in prop_oneof![
                Just(ThresholdStrategy::Percentile),
                Just(ThresholdStrategy::Sigma),
                Just(ThresholdStrategy::Iqr),
            ],
            percentile in 50.0f64..=100.0,
        ) {
            let params = ThresholdParams { percentile, ..params(strategy) };
            let mut learner = ThresholdLearner::new(params, values.len());
            values.iter().for_each(|v| learner.push(*v));
            let got = learner.learned().unwrap();
            let values = kept_as(&values);
            let bounds = params.bounds(&mut values.clone()).unwrap();
            let stats = RobustStats::of(&mut values.clone()).unwrap();
            prop_assert_eq!(got.bounds, bounds);
            prop_assert_eq!(got.stats.median, stats.median);
            // The scale's last fallback (mean absolute deviation) sums in whatever
            // order the selection left the values.
            prop_assert!((got.stats.scale - stats.scale).abs() <= 1e-12 * stats.scale);
        }

        #[test]
        fn a_small_sliding_history_is_exact_after_every_value(
            capacity in 1usize..256,
            values in prop::collection::vec(
                prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from), Just(f64::NAN)],
                1..1500,
            ),
            strategy in prop_oneof![
                Just(ThresholdStrategy::Percentile),
                Just(ThresholdStrategy::Sigma),
                Just(ThresholdStrategy::Iqr),
            ],
        ) {
            let params = params(strategy);
            let mut learner = ThresholdLearner::new(params, capacity);
            let mut kept = std::collections::VecDeque::new();
            for v in &values {
                learner.push(*v);
                if v.is_finite() {
                    kept.push_back(f64::from(*v as f32));
                    if kept.len() > capacity {
                        kept.pop_front();
                    }
                }
                let Some(got) = learner.learned() else {
                    prop_assert!(kept.is_empty());
                    continue;
                };
                let kept: Vec<f64> = kept.iter().copied().collect();
                let stats = RobustStats::of(&mut kept.clone()).unwrap();
                prop_assert_eq!(got.bounds, params.bounds(&mut kept.clone()).unwrap());
                prop_assert_eq!(got.stats.median, stats.median);
                prop_assert!((got.stats.scale - stats.scale).abs() <= 1e-12 * stats.scale);
            }
        }

        #[test]
        fn a_band_asked_for_late_is_the_band_of_its_refresh(
            capacity in 200usize..700,
            values in prop::collection::vec(
                prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from)],
                1..1500,
            ),
            asks in prop::collection::vec(any::<bool>(), 1500),
            strategy in prop_oneof![
                Just(ThresholdStrategy::Percentile),
                Just(ThresholdStrategy::Sigma),
                Just(ThresholdStrategy::Iqr),
            ],
        ) {
            // `eager` computes its band at every refresh; `lazy` only when asked,
            // some values later (histories past 256 values refresh every few).
            let mut eager = ThresholdLearner::new(params(strategy), capacity);
            let mut lazy = ThresholdLearner::new(params(strategy), capacity);
            for (v, ask) in values.iter().zip(&asks) {
                eager.push(*v);
                lazy.push(*v);
                let band = eager.bounds();
                prop_assert_eq!(lazy.stats(), eager.stats());
                if *ask {
                    prop_assert_eq!(lazy.bounds(), band);
                }
            }
        }

        #[test]
        fn a_learners_trend_is_the_trend_of_its_newest_values(
            capacity in 1usize..80,
            values in prop::collection::vec(-1e3f64..1e3, 0..200),
            window in 0usize..100,
        ) {
            let mut learner = ThresholdLearner::new(ThresholdParams::default(), capacity);
            values.iter().for_each(|v| learner.push(*v));
            let kept = kept_as(&values[values.len().saturating_sub(capacity)..]);
            let newest = &kept[kept.len().saturating_sub(window)..];
            prop_assert_eq!(learner.trend(window), classify_trend(newest));
        }

        #[test]
        fn a_shifted_series_has_the_same_trend(
            values in prop::collection::vec(-100f64..100.0, 3..80),
            shift in -1e3f64..1e3,
        ) {
            let shifted: Vec<f64> = values.iter().map(|v| v + shift).collect();
            let (a, b) = (classify_trend(&values), classify_trend(&shifted));
            // Equal unless the change sits on the decision boundary within rounding.
            if a != b {
                prop_assert!(a == Trend::Stable || b == Trend::Stable);
            }
        }
    }
}
