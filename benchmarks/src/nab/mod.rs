//! The Numenta Anomaly Benchmark: corpus loading ([`data`]), NAB's scorer
//! ([`score`]), the published `windowedGaussian` baseline ([`gaussian`]) that
//! checks the scorer, and meshflow's threshold learner as a NAB detector
//! ([`learner`]).

pub mod data;
pub mod gaussian;
pub mod learner;
pub mod score;

use std::collections::BTreeMap;

use data::Corpus;
use score::{ScoredSeries, best_threshold, normalise, null_score};

/// How detections are derived from a detector's anomaly scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// Flag rows scoring at least this.
    Fixed(f64),
    /// NAB's method: the corpus-wide threshold that maximises each profile's score.
    Optimised,
}

/// One detector's result under one profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileResult {
    /// Threshold used.
    pub threshold: f64,
    /// Raw NAB score (sum over series).
    pub raw: f64,
    /// Normalised score: 0 = flag nothing, 100 = perfect.
    pub normalised: f64,
    /// Flagged rows inside windows.
    pub tp: u64,
    /// Flagged rows outside windows.
    pub fp: u64,
}

/// Scores `scores` (one anomaly score per row, per series of `corpus` in order)
/// under every profile.
pub fn evaluate(
    corpus: &Corpus,
    scores: &[Vec<f64>],
    threshold: Threshold,
) -> BTreeMap<String, ProfileResult> {
    let mut out = BTreeMap::new();
    for (profile, cost) in &corpus.profiles {
        let prepared: Vec<ScoredSeries> = corpus
            .series
            .iter()
            .map(|s| ScoredSeries::new(s.values.len(), &s.windows, cost))
            .collect();
        let null = null_score(&prepared);
        let perfect = corpus.label_windows as f64 * cost.tp_weight;
        let t = match threshold {
            Threshold::Fixed(t) => t,
            Threshold::Optimised => best_threshold(&prepared, scores).0,
        };
        let (mut raw, mut tp, mut fp) = (0.0, 0, 0);
        for (p, s) in prepared.iter().zip(scores) {
            let r = p.score(|i| s[i] >= t);
            raw += r.score;
            tp += r.tp;
            fp += r.fp;
        }
        out.insert(
            profile.clone(),
            ProfileResult {
                threshold: t,
                raw,
                normalised: normalise(raw, null, perfect),
                tp,
                fp,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests;
