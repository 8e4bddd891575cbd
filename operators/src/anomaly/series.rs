//! A univariate detector for one metric series: meshflow's threshold learners
//! arranged as measured on the NAB corpus (`benchmarks/README.md`, "NAB").
//!
//! Each value is looked at through up to three *views*: the value itself, the mean
//! of the last [`SeriesParams::mean_len`] values, and (for series sampled finely
//! enough) the difference from the value one seasonal period earlier. For each view
//! a [`ThresholdLearner`] learns its median over the bounded history, and a second
//! one learns a high percentile of the view's own past absolute deviations from that
//! median. A view's *exceedance* is its current deviation divided by that learned
//! percentile: 1 means "as far out as the most extreme 0.1 % of its own past". The
//! value's strength is the largest exceedance of its views; it is flagged when the
//! strength exceeds [`SeriesParams::k`]. Everything is causal and bounded: an
//! exceedance uses only earlier values, and each learner keeps at most `history` of
//! them.
//!
//! The anomaly scorer scores the metric series of a node whose window carries no
//! traffic with this detector ([`super::scorer`]); `meshflow-bench nab` measures it.

use super::ring::RingBuffer;
use super::threshold::{ThresholdLearner, ThresholdParams, Trend};

/// Detector settings (defaults: the best measured on NAB).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesParams {
    /// Ring-buffer capacity of every learner.
    pub history: usize,
    /// Values a view's median needs before its deviation is defined.
    pub median_warmup: usize,
    /// Past deviations a view needs before it scores.
    pub threshold_warmup: usize,
    /// Length of the rolling-mean view.
    pub mean_len: usize,
    /// Percentile of past deviations that the value and the rolling mean are scaled by.
    pub percentile: f64,
    /// Percentile for the seasonal difference (100: the largest in the history).
    pub seasonal_percentile: f64,
    /// Seasonal period in seconds (0: no seasonal view).
    pub period_secs: u64,
    /// Flag level: a value is flagged when its strength exceeds it.
    pub k: f64,
}

impl Default for SeriesParams {
    fn default() -> Self {
        Self {
            history: 10_000,
            median_warmup: 20,
            threshold_warmup: 100,
            mean_len: 5,
            percentile: 99.9,
            seasonal_percentile: 100.0,
            period_secs: 86_400,
            k: 1.1,
        }
    }
}

impl SeriesParams {
    /// Values a series learns before the next one is scored: the value view's warm-up.
    pub fn warmup(&self) -> usize {
        self.median_warmup + self.threshold_warmup
    }
}

/// Exceedances above this are clamped, so a constant series that moves scores finitely.
pub const MAX_EXCEEDANCE: f64 = 1000.0;

/// Which view of a series an exceedance is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesView {
    /// The value itself.
    Value,
    /// The mean of the last [`SeriesParams::mean_len`] values.
    Mean,
    /// The difference from the value one seasonal period earlier.
    Seasonal,
}

/// How far out one value of a series is, through the view that is furthest out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exceedance {
    /// The view.
    pub view: SeriesView,
    /// The view's value (the value, the rolling mean, or the seasonal difference).
    pub value: f64,
    /// Deviation from the view's median over the learned percentile of its past
    /// deviations, signed (negative below the median), clamped to
    /// ±[`MAX_EXCEEDANCE`].
    pub exceedance: f64,
    /// The view's value at exceedance 1 on the side the value is on: its median
    /// plus or minus the learned percentile.
    pub threshold: f64,
}

/// One view: its median and the learned percentile of its absolute deviations.
#[derive(Clone, Debug)]
struct View {
    level: ThresholdLearner,
    deviations: ThresholdLearner,
    median_warmup: usize,
    threshold_warmup: usize,
}

impl View {
    fn new(percentile: f64, p: &SeriesParams) -> Self {
        let threshold = ThresholdParams {
            percentile,
            ..ThresholdParams::default()
        };
        Self {
            level: ThresholdLearner::new(ThresholdParams::default(), p.history),
            deviations: ThresholdLearner::new(threshold, p.history),
            median_warmup: p.median_warmup,
            threshold_warmup: p.threshold_warmup,
        }
    }

    /// The exceedance of `v` and the view's value at exceedance 1 on its side
    /// (`None` while warming up), then learns `v`.
    fn update(&mut self, v: f64) -> Option<(f64, f64)> {
        let mut out = None;
        // A history cut below a warm-up (to fit the memory budget) is warm when full.
        let cap = |l: &ThresholdLearner| l.history().capacity();
        if self.level.len() >= self.median_warmup.min(cap(&self.level))
            && let Some(stats) = self.level.stats()
        {
            let d = (v - stats.median).abs();
            if self.deviations.len() >= self.threshold_warmup.min(cap(&self.deviations))
                && let Some(bounds) = self.deviations.bounds()
            {
                let q = bounds.upper;
                let e = if q > 0.0 {
                    d / q
                } else if d > 0.0 {
                    MAX_EXCEEDANCE
                } else {
                    0.0
                };
                let below = v < stats.median;
                let e = e.min(MAX_EXCEEDANCE);
                let threshold = if below {
                    stats.median - q
                } else {
                    stats.median + q
                };
                out = Some((if below { -e } else { e }, threshold));
            }
            self.deviations.push(d);
        }
        self.level.push(v);
        out
    }

    fn set_capacity(&mut self, capacity: usize) {
        self.level.set_capacity(capacity);
        self.deviations.set_capacity(capacity);
    }
}

/// The streaming detector of one series.
#[derive(Clone, Debug)]
pub struct SeriesDetector {
    mean_len: usize,
    value: View,
    mean: View,
    seasonal: View,
    recent: RingBuffer<f64>,
    /// The last seasonal period of values, when the series has a seasonal view.
    past: Option<RingBuffer<f64>>,
}

impl SeriesDetector {
    /// A detector with no history. `step_secs` is the series' sampling interval,
    /// which turns the seasonal period into values; a period of no values, or of more
    /// than `history`, means no seasonal view.
    pub fn new(p: &SeriesParams, step_secs: Option<f64>) -> Self {
        let period = step_secs
            .filter(|&step| step > 0.0)
            .map(|step| (p.period_secs as f64 / step).round() as usize)
            .filter(|values| (1..=p.history).contains(values));
        Self {
            mean_len: p.mean_len,
            value: View::new(p.percentile, p),
            mean: View::new(p.percentile, p),
            seasonal: View::new(p.seasonal_percentile, p),
            recent: RingBuffer::new(p.mean_len.max(1)),
            past: period.map(RingBuffer::new),
        }
    }

    /// The exceedance of `x` through the view furthest out (the first of equals:
    /// value, mean, seasonal), `None` while no view is past its warm-up; then learns
    /// `x`.
    pub fn observe(&mut self, x: f64) -> Option<Exceedance> {
        let mut best: Option<Exceedance> = None;
        let mut consider = |view, value, found: Option<(f64, f64)>| {
            if let Some((exceedance, threshold)) = found
                && best.is_none_or(|b| exceedance.abs() > b.exceedance.abs())
            {
                best = Some(Exceedance {
                    view,
                    value,
                    exceedance,
                    threshold,
                });
            }
        };
        consider(SeriesView::Value, x, self.value.update(x));
        self.recent.push(x);
        if self.recent.len() == self.mean_len {
            let mean = self.recent.iter().sum::<f64>() / self.mean_len as f64;
            consider(SeriesView::Mean, mean, self.mean.update(mean));
        }
        if let Some(past) = &mut self.past {
            // Full: its oldest value is one period before `x`.
            if past.len() == past.capacity()
                && let Some(&earlier) = past.iter().next()
            {
                let change = x - earlier;
                consider(SeriesView::Seasonal, change, self.seasonal.update(change));
            }
            past.push(x);
        }
        best
    }

    /// The strength of `x` (its largest absolute exceedance, 0 while warming up),
    /// then learns `x`.
    pub fn strength(&mut self, x: f64) -> f64 {
        self.observe(x).map_or(0.0, |e| e.exceedance.abs())
    }

    /// The trend of the newest `window` values once `next` joins them.
    pub fn trend_with(&self, window: usize, next: Option<f64>) -> Trend {
        self.value.level.trend_with(window, next)
    }

    /// Keeps at most `capacity` values in every learner from now on; a seasonal
    /// period longer than that is dropped, with its view, as if never there.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.value.set_capacity(capacity);
        self.mean.set_capacity(capacity);
        self.seasonal.set_capacity(capacity);
        if self.past.as_ref().is_some_and(|p| p.capacity() > capacity) {
            self.past = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_is_seen_through_the_value_with_its_side_and_band() {
        let p = SeriesParams::default();
        let mut d = SeriesDetector::new(&p, Some(60.0));
        let noise = |i: usize| ((i * 7919) % 101) as f64;
        for i in 0..p.warmup() {
            assert_eq!(d.observe(noise(i)), None, "value {i} is in the warm-up");
        }
        let quiet = d.observe(50.0).expect("past the warm-up");
        assert!(quiet.exceedance.abs() < 1.0, "{quiet:?}");
        for i in 0..400 {
            d.observe(noise(i));
        }
        let up = d.observe(1e4).unwrap();
        assert_eq!(up.view, SeriesView::Value);
        assert_eq!(up.value, 1e4);
        assert!(up.exceedance > p.k, "{up:?}");
        assert!(up.threshold > 50.0 && up.threshold < 110.0, "{up:?}");
        let down = d.observe(-1e4).unwrap();
        assert!(down.exceedance < -p.k, "{down:?}");
        assert!(down.threshold < 50.0, "{down:?}");
    }

    #[test]
    fn a_flat_series_that_moves_is_clamped_not_infinite() {
        let p = SeriesParams::default();
        let mut d = SeriesDetector::new(&p, None);
        for _ in 0..200 {
            assert_eq!(d.strength(3.0), 0.0);
        }
        assert_eq!(d.strength(4.0), MAX_EXCEEDANCE);
    }
}
