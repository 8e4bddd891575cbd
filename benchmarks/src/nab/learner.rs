//! meshflow's threshold learner as a univariate NAB detector.
//!
//! For each value: its robust deviation (median/MAD over the bounded history, see
//! `meshflow_operators::anomaly::threshold::ThresholdLearner`) and that of its first difference; the
//! larger magnitude is the point's *strength*. A [`ThresholdLearner`] learns the
//! upper threshold `U` of past strengths (percentile, σ or IQR); the anomaly score is
//! `s / (s + U)`, so a point is flagged (score above 0.5) exactly when its strength
//! exceeds the learned threshold. After a flag, scores are held at 0 for
//! `suppress` points: one alarm per event.

use meshflow_operators::anomaly::threshold::{ThresholdLearner, ThresholdParams};

/// Detector settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnerParams {
    /// History kept by the standardisers and the threshold learner.
    pub history: usize,
    /// The threshold strategy.
    pub threshold: ThresholdParams,
    /// Values seen before any score is given.
    pub warmup: usize,
    /// Points after a flag whose score is held at 0.
    pub suppress: usize,
}

impl Default for LearnerParams {
    fn default() -> Self {
        Self {
            history: 10_000,
            threshold: ThresholdParams::default(),
            warmup: 100,
            suppress: 0,
        }
    }
}

/// Per point: its strength `s` and the learned threshold `U` it is compared with
/// (`None` while warming up). Suppression does not change what is learned, so one
/// pass serves every `suppress` setting ([`scores`]).
pub fn strengths(values: &[f64], p: &LearnerParams) -> Vec<Option<(f64, f64)>> {
    let mut level = ThresholdLearner::new(p.threshold, p.history);
    let mut change = ThresholdLearner::new(p.threshold, p.history);
    let mut learned = ThresholdLearner::new(p.threshold, p.history);
    let mut previous: Option<f64> = None;
    let mut out = Vec::with_capacity(values.len());
    for &x in values {
        let diff = previous.map(|prev| x - prev);
        let mut point = None;
        if level.len() >= p.warmup {
            let s = level
                .deviation(x)
                .abs()
                .max(diff.map_or(0.0, |d| change.deviation(d).abs()));
            if learned.len() >= p.warmup
                && let Some(bounds) = learned.bounds()
            {
                point = Some((s, bounds.upper.max(1e-9)));
            }
            learned.push(s);
        }
        level.push(x);
        if let Some(d) = diff {
            change.push(d);
        }
        previous = Some(x);
        out.push(point);
    }
    out
}

/// Anomaly scores in `[0, 1)`: `s / (s + U)`, held at 0 for `suppress` points after
/// each flag (`s > U`).
pub fn scores(points: &[Option<(f64, f64)>], suppress: usize) -> Vec<f64> {
    let mut last_flag: Option<usize> = None;
    points
        .iter()
        .enumerate()
        .map(|(t, point)| {
            let Some((s, u)) = *point else { return 0.0 };
            if last_flag.is_some_and(|f| t - f <= suppress) {
                return 0.0;
            }
            if s > u {
                last_flag = Some(t);
            }
            s / (s + u)
        })
        .collect()
}

/// Anomaly scores in `[0, 1)` for `values`, in order.
pub fn detect(values: &[f64], p: &LearnerParams) -> Vec<f64> {
    scores(&strengths(values, p), p.suppress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_in_noise_is_flagged_once() {
        let mut values: Vec<f64> = (0..2000).map(|i| ((i * 7919) % 101) as f64).collect();
        values[1500] = 1e4;
        let p = LearnerParams {
            suppress: 50,
            ..LearnerParams::default()
        };
        let scores = detect(&values, &p);
        assert!(scores[1500] > 0.5);
        assert!(scores[..100].iter().all(|&s| s == 0.0));
        assert!(scores[1501..1551].iter().all(|&s| s == 0.0));
        assert!(scores.iter().all(|s| (0.0..1.0).contains(s)));
    }
}
