//! meshflow's threshold learner as a univariate NAB detector.
//!
//! Each point is looked at through up to three *features*: the value itself, the mean
//! of the last [`DetectorParams::mean_len`] values, and (for series sampled finely
//! enough) the difference from the value one day earlier. For each feature a
//! [`ThresholdLearner`] learns its median over the bounded history, and a second one
//! learns a high percentile of the feature's own past absolute deviations from that
//! median. A feature's *exceedance* is its current deviation divided by that learned
//! percentile: 1 means "as far out as the most extreme 0.1 % of its own past". The
//! point's strength `S` is the largest exceedance; it is flagged when `S > k`, after
//! which scores are held at 0 for `suppress` points (one alarm per event) while
//! learning goes on. Everything is causal and bounded: a score uses only earlier
//! values, and each learner keeps at most `history` of them.

use meshflow_operators::anomaly::ring::RingBuffer;
use meshflow_operators::anomaly::threshold::{ThresholdLearner, ThresholdParams};

/// Detector settings (defaults: the measured best, see `benchmarks/README.md`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorParams {
    /// Ring-buffer capacity of every learner.
    pub history: usize,
    /// Values a feature's median needs before its deviation is defined.
    pub median_warmup: usize,
    /// Past deviations a feature needs before it scores.
    pub threshold_warmup: usize,
    /// Length of the rolling mean feature.
    pub mean_len: usize,
    /// Percentile of past deviations that the value and the rolling mean are scaled by.
    pub percentile: f64,
    /// Percentile for the seasonal difference (100: the largest in the history).
    pub seasonal_percentile: f64,
    /// Seasonal period in seconds (0: no seasonal feature).
    pub period_secs: u64,
    /// Flag level: a point is flagged when its strength exceeds it.
    pub k: f64,
    /// Points after a flag whose score is held at 0.
    pub suppress: usize,
}

impl Default for DetectorParams {
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
            suppress: 35,
        }
    }
}

/// Exceedances above this are clamped, so a constant series that moves scores finitely.
const MAX_EXCEEDANCE: f64 = 1000.0;

/// One feature: its median and the learned percentile of its absolute deviations.
struct Feature {
    level: ThresholdLearner,
    deviations: ThresholdLearner,
    median_warmup: usize,
    threshold_warmup: usize,
}

impl Feature {
    fn new(percentile: f64, p: &DetectorParams) -> Self {
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

    /// The exceedance of `v` (`None` while warming up), then learns `v`.
    fn update(&mut self, v: f64) -> Option<f64> {
        let mut exceedance = None;
        if self.level.len() >= self.median_warmup
            && let Some(stats) = self.level.stats()
        {
            let d = (v - stats.median).abs();
            if self.deviations.len() >= self.threshold_warmup
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
                exceedance = Some(e.min(MAX_EXCEEDANCE));
            }
            self.deviations.push(d);
        }
        self.level.push(v);
        exceedance
    }
}

/// The streaming detector for one series: what it learns. Flagging and suppression
/// ([`scores`]) do not change what is learned, so one pass serves every setting of
/// them.
pub struct Detector {
    mean_len: usize,
    value: Feature,
    mean: Feature,
    seasonal: Feature,
    recent: RingBuffer<f64>,
    /// The last seasonal period of values, when the series has a seasonal feature.
    past: Option<RingBuffer<f64>>,
}

impl Detector {
    /// A detector with no history. `step_secs` is the series' sampling interval (from
    /// its first timestamps), which turns the seasonal period into points; a period
    /// of no points, or of more than `history`, means no seasonal feature.
    pub fn new(p: &DetectorParams, step_secs: Option<f64>) -> Self {
        let period = step_secs
            .filter(|&step| step > 0.0)
            .map(|step| (p.period_secs as f64 / step).round() as usize)
            .filter(|points| (1..=p.history).contains(points));
        Self {
            mean_len: p.mean_len,
            value: Feature::new(p.percentile, p),
            mean: Feature::new(p.percentile, p),
            seasonal: Feature::new(p.seasonal_percentile, p),
            recent: RingBuffer::new(p.mean_len.max(1)),
            past: period.map(RingBuffer::new),
        }
    }

    /// The strength of `x` (the largest exceedance of its features), then learns `x`.
    pub fn strength(&mut self, x: f64) -> f64 {
        let mut s = self.value.update(x).unwrap_or(0.0);
        self.recent.push(x);
        if self.recent.len() == self.mean_len {
            let mean = self.recent.iter().sum::<f64>() / self.mean_len as f64;
            s = s.max(self.mean.update(mean).unwrap_or(0.0));
        }
        if let Some(past) = &mut self.past {
            // Full: its oldest value is one period before `x`.
            if past.len() == past.capacity()
                && let Some(&earlier) = past.iter().next()
            {
                s = s.max(self.seasonal.update(x - earlier).unwrap_or(0.0));
            }
            past.push(x);
        }
        s
    }
}

/// The strengths of `values` (sampled at `timestamps`), in order.
pub fn strengths(values: &[f64], timestamps: &[String], p: &DetectorParams) -> Vec<f64> {
    let mut detector = Detector::new(p, step_secs(timestamps));
    values.iter().map(|&x| detector.strength(x)).collect()
}

/// Anomaly scores in `[0, 1)` from strengths: a flag (`S > k`) scores above 0.5 and
/// anything else at most 0.25, so "score ≥ 0.5" is exactly the detector's own flag
/// even when `S` ties `k` (common on quantised data); after a flag, scores are held at
/// 0 for `suppress` points.
pub fn scores(strengths: &[f64], k: f64, suppress: usize) -> Vec<f64> {
    let mut last_flag: Option<usize> = None;
    strengths
        .iter()
        .enumerate()
        .map(|(t, &s)| {
            if last_flag.is_some_and(|f| t - f <= suppress) {
                0.0
            } else if s > k {
                last_flag = Some(t);
                s / (k + s)
            } else {
                0.5 * s / (k + s)
            }
        })
        .collect()
}

/// The sampling interval in seconds of NAB timestamps (`YYYY-MM-DD HH:MM:SS`), from the
/// span of the first 11; `None` when they cannot be read.
pub fn step_secs(timestamps: &[String]) -> Option<f64> {
    let secs = |t: &String| {
        chrono::NaiveDateTime::parse_from_str(t.get(..19)?, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|d| d.and_utc().timestamp())
    };
    let (first, last) = (secs(timestamps.first()?)?, secs(timestamps.get(10)?)?);
    Some((last - first) as f64 / 10.0)
}

/// Anomaly scores in `[0, 1)` for `values` (sampled at `timestamps`), in order.
pub fn detect(values: &[f64], timestamps: &[String], p: &DetectorParams) -> Vec<f64> {
    scores(&strengths(values, timestamps, p), p.k, p.suppress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(n: usize) -> Vec<String> {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        (0..n)
            .map(|i| {
                (start + chrono::Duration::minutes(5 * i as i64))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_spike_in_noise_is_flagged_once() {
        let values: Vec<f64> = (0..2000).map(|i| ((i * 7919) % 101) as f64).collect();
        let mut spiked = values.clone();
        spiked[1500] = 1e4;
        let p = DetectorParams::default();
        let scores = detect(&spiked, &minutes(2000), &p);
        assert!(scores[1500] > 0.5, "{}", scores[1500]);
        assert!(scores[..120].iter().all(|&s| s == 0.0));
        assert!(scores[1501..=1500 + p.suppress].iter().all(|&s| s == 0.0));
        assert!(scores.iter().all(|s| (0.0..1.0).contains(s)));
        // The same series without the spike is hardly ever flagged.
        let quiet = detect(&values, &minutes(2000), &p);
        let flags = quiet.iter().filter(|&&s| s >= 0.5).count();
        assert!(flags <= 5, "{flags} flags on noise");
    }

    #[test]
    fn a_missing_daily_bump_is_seen_by_the_seasonal_feature() {
        // 5-minute samples: 288 a day, a bump from 12:00 to 13:00 every day but day 20.
        let day = 288;
        let values: Vec<f64> = (0..day * 25)
            .map(|i| {
                let bump = (144..156).contains(&(i % day)) && i / day != 20;
                if bump { 100.0 } else { 0.0 }
            })
            .collect();
        let p = DetectorParams::default();
        let scores = detect(&values, &minutes(values.len()), &p);
        let flagged = |range: std::ops::Range<usize>| range.into_iter().any(|i| scores[i] >= 0.5);
        assert!(flagged(20 * day + 144..20 * day + 156));
        assert!(!flagged(22 * day..25 * day));
        assert_eq!(step_secs(&minutes(20)), Some(300.0));
    }
}
