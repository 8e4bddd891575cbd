//! Self-learning thresholds over a bounded history, and trend classification.

use serde::{Deserialize, Serialize};

pub use meshflow_schemas::Trend;

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

/// The change a least-squares line predicts across the window must exceed this many
/// residual standard deviations to count as a trend.
pub const TREND_MIN_CHANGE: f64 = 2.0;

/// Classifies the trend of `values` (in time order): the least-squares slope times
/// the window's span, against the residuals' standard deviation. Fewer than 3 values
/// are `Stable`.
pub fn classify_trend<T: Copy + Into<f64>>(values: &[T]) -> Trend {
    classify_trend_of(values.len(), values.iter().map(|&v| v.into()))
}

/// [`classify_trend`] of the `n` values `values` yields, in one pass.
///
/// The sums are taken of each value's difference from the first, so a series far
/// from zero keeps its small variations. With `x` the centred index, the slope is
/// `Σxy / Σx²` and the residuals' sum of squares `Σ(y − ȳ)² − slope · Σxy`, the
/// least-squares identities.
fn classify_trend_of(n: usize, mut values: impl Iterator<Item = f64>) -> Trend {
    if n < 3 {
        return Trend::Stable;
    }
    let Some(first) = values.next() else {
        return Trend::Stable;
    };
    let (mut sum, mut sum_sq, mut sum_iy) = (0.0, 0.0, 0.0);
    for (i, y) in (1..).zip(values) {
        let d = y - first;
        sum += d;
        sum_sq += d * d;
        sum_iy += f64::from(i) * d;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_d = sum / nf;
    let sxy = sum_iy - mean_x * sum;
    let sxx = nf * (nf * nf - 1.0) / 12.0;
    let syy = (sum_sq - sum * mean_d).max(0.0);
    let slope = sxy / sxx;
    let resid_var = (syy - slope * sxy).max(0.0) / (nf - 2.0);
    let change = slope * (nf - 1.0);
    let noise = resid_var.sqrt().max(1e-12 * (1.0 + (first + mean_d).abs()));
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
pub(super) fn narrow(x: f64) -> f32 {
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

    /// Whether the statistics are due for a refresh once one more value has joined.
    fn refresh_due_after_push(&self) -> bool {
        let len = (self.history.len() + 1).min(self.history.capacity());
        self.since_refresh + 1 >= refresh_interval(len)
    }

    /// Adds a value (non-finite values are ignored). It is kept as the nearest `f32`
    /// (beyond `f32`'s range, its largest magnitude).
    pub fn push(&mut self, x: f64) {
        if x.is_finite() {
            let x = narrow(x);
            // A band not computed yet is computed now if it may be read before the
            // next refresh (a refresh is due from then on once it is due at all:
            // `since_refresh` grows by one a value, the interval by one in 256).
            if self.stats.is_some() && self.bounds.is_none() && !self.refresh_due_after_push() {
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

    /// Keeps at most `capacity` values from now on, dropping the oldest beyond it.
    /// Statistics and band are recomputed from what is left when next read.
    pub fn set_capacity(&mut self, capacity: usize) {
        let order = &mut self.order;
        let before = self.history.len();
        self.history.set_capacity(capacity, |v| {
            order.remove(v);
        });
        if self.history.len() < before {
            self.stats = None;
            self.bounds = None;
            self.since_refresh = 0;
            self.mad_hint = MadHint::default();
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
    /// leaves, and, when that value makes a refresh due, those the refresh reads.
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
        if self.refresh_due_after_push() {
            self.order.prefetch_for_refresh(&self.mad_hint);
        }
    }

    /// The trend of the newest `window` values.
    pub fn trend(&self, window: usize) -> Trend {
        self.trend_with(window, None)
    }

    /// The trend of the newest `window` values once `next` is pushed (when it is
    /// `Some`): what [`Self::trend`] returns after [`Self::push`], without pushing.
    pub fn trend_with(&self, window: usize, next: Option<f64>) -> Trend {
        let next = next.filter(|x| x.is_finite()).map(narrow);
        let kept = match next {
            Some(_) => (self.history.len() + 1).min(self.history.capacity()),
            None => self.history.len(),
        };
        let n = window.min(kept);
        let (older, newer) = self
            .history
            .latest_parts(n.saturating_sub(usize::from(next.is_some())));
        let values = older.iter().chain(newer).copied().chain(next);
        classify_trend_of(n, values.map(f64::from))
    }

    /// The history, oldest first.
    pub fn history(&self) -> &RingBuffer<f32> {
        &self.history
    }
}

#[cfg(test)]
mod tests;
