//! `[anomaly]`: the anomaly scorer's settings.

use meshflow_schemas::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

use super::health::Hysteresis;
use super::model::{MIN_TRAINING_ROWS, ModelKind};
use super::scorer::{MIN_NODE_HISTORY, MIN_SCORE_HISTORY};
use super::threshold::{ThresholdParams, ThresholdStrategy};
use super::vector::FEATURES;

/// Bytes one history value takes: 4 in its ring and about 5 in its order index
/// (blocks are kept partly full), rounded up (measured at 100k nodes: 9 MB a window
/// for 900,000 new values).
const HISTORY_BYTES_PER_VALUE: u64 = 10;

/// Histories a node keeps: one per feature and one of its scores. The memory budget
/// counts nodes in these units (see [`crate::anomaly::scorer`]).
pub(crate) const HISTORIES_PER_NODE: u64 = FEATURES.len() as u64 + 1;

/// Bytes the histories of `nodes` nodes take when each keeps `values` values.
pub fn history_bytes(values: u64, nodes: u64) -> u64 {
    values
        .saturating_mul(HISTORY_BYTES_PER_VALUE * HISTORIES_PER_NODE)
        .saturating_mul(nodes)
}

/// Settings of the anomaly scorer; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Whether to score at all (and write `anomaly_scores`).
    pub enabled: bool,
    /// The model: `gmm`, `kmeans`, `pca` or `robust` (no fitting).
    pub model: ModelKind,
    /// Mixture components (gmm), centres (kmeans) or kept dimensions (pca).
    pub components: usize,
    /// Windows a node is observed before it is scored, and windows the job scores
    /// before its first model fit.
    pub warmup_windows: u32,
    /// The model is refitted every this many windows, once a quarter of its training
    /// rows are new since the last fit, on a background thread (on every worker
    /// alike: each holds the same model).
    pub refit_every: u32,
    /// Most recent normal feature vectors kept to fit on (over every node: each
    /// worker keeps the same ones).
    pub training_rows: usize,
    /// Capacity of every history ring buffer (per node: each feature and the score).
    pub history: usize,
    /// Memory the histories of all nodes may take together, over all workers. Where
    /// `history` values for every node would take more (at the default, past about
    /// 1,200 nodes), every history keeps fewer, the same number for every node, sized
    /// for the largest window seen so far (see [`AnomalyConfig::history_cap`]).
    pub history_memory: ByteSize,
    /// Threshold strategy for the score: `percentile`, `sigma` or `iqr`.
    pub threshold: ThresholdStrategy,
    /// Percentile for `threshold = "percentile"`.
    pub percentile: f64,
    /// k for `threshold = "sigma"` (mean + k·σ).
    pub sigma_k: f64,
    /// k for `threshold = "iqr"` (Q3 + k·IQR).
    pub iqr_k: f64,
    /// The threshold never drops below this score (1 = the 99th percentile of the
    /// model's training scores), so a node that has only ever been quiet is not
    /// flagged for noise.
    pub min_threshold: f64,
    /// Windows over which trends are classified.
    pub trend_windows: usize,
    /// Features listed in each row's explanation.
    pub top_k: usize,
    /// Consecutive anomalous windows: HEALTHY/RECOVERING → DEGRADED.
    pub degrade_after: u32,
    /// Consecutive anomalous windows: DEGRADED → CRITICAL.
    pub critical_after: u32,
    /// Consecutive normal windows: DEGRADED/CRITICAL → RECOVERING.
    pub recover_after: u32,
    /// Consecutive normal windows: RECOVERING → HEALTHY.
    pub healthy_after: u32,
    /// A node without a window for longer than this (in event time) is forgotten:
    /// its histories, threshold and health state are dropped, and if it comes back it
    /// warms up again. Bounds the scorer's memory where nodes come and go.
    pub forget_after: HumanDuration,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        let h = Hysteresis::default();
        let t = ThresholdParams::default();
        Self {
            enabled: true,
            model: ModelKind::Gmm,
            components: 4,
            warmup_windows: 60,
            refit_every: 120,
            training_rows: 5000,
            history: 10_000,
            history_memory: ByteSize::gib(1),
            threshold: t.strategy,
            percentile: t.percentile,
            sigma_k: t.sigma_k,
            iqr_k: t.iqr_k,
            min_threshold: 2.0,
            trend_windows: 30,
            top_k: 3,
            degrade_after: h.degrade_after,
            critical_after: h.critical_after,
            recover_after: h.recover_after,
            healthy_after: h.healthy_after,
            forget_after: HumanDuration::from_secs(3600),
        }
    }
}

/// An invalid `[anomaly]` value: the key and why.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{key} {reason}")]
pub struct AnomalyConfigError {
    /// The key within `[anomaly]`.
    pub key: &'static str,
    /// Why it is invalid.
    pub reason: String,
}

impl AnomalyConfig {
    /// The threshold strategy with its parameters.
    pub fn threshold_params(&self) -> ThresholdParams {
        ThresholdParams {
            strategy: self.threshold,
            percentile: self.percentile,
            sigma_k: self.sigma_k,
            iqr_k: self.iqr_k,
        }
    }

    /// Values each history keeps when a window holds `nodes` nodes: `history`, or
    /// fewer so that every node's histories fit in `history_memory`, but never fewer
    /// than [`Self::history_floor`]. `nodes == 0` (nothing seen yet) gives `history`.
    pub fn history_cap(&self, nodes: u64) -> usize {
        if nodes == 0 {
            return self.history;
        }
        let fits =
            usize::try_from(self.history_memory.0 / history_bytes(1, nodes)).unwrap_or(usize::MAX);
        fits.min(self.history).max(self.history_floor())
    }

    /// The fewest values a history is cut to, whatever `history_memory` says: enough
    /// for a node to be scored and for its trends (or `history`, if smaller).
    pub fn history_floor(&self) -> usize {
        MIN_NODE_HISTORY
            .max(MIN_SCORE_HISTORY)
            .max(self.trend_windows)
            .min(self.history)
    }

    /// The health hysteresis.
    pub fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            degrade_after: self.degrade_after,
            critical_after: self.critical_after,
            recover_after: self.recover_after,
            healthy_after: self.healthy_after,
        }
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), AnomalyConfigError> {
        let err = |key, reason: String| Err(AnomalyConfigError { key, reason });
        let positive = [
            ("components", self.components as u64),
            ("warmup_windows", u64::from(self.warmup_windows)),
            ("refit_every", u64::from(self.refit_every)),
            ("training_rows", self.training_rows as u64),
            ("history", self.history as u64),
            ("degrade_after", u64::from(self.degrade_after)),
            ("critical_after", u64::from(self.critical_after)),
            ("recover_after", u64::from(self.recover_after)),
            ("healthy_after", u64::from(self.healthy_after)),
        ];
        for (key, value) in positive {
            if value == 0 {
                return err(key, "must be at least 1".into());
            }
        }
        // Below these no model is fitted, or no node is ever scored.
        if self.training_rows < MIN_TRAINING_ROWS {
            return err(
                "training_rows",
                format!(
                    "is {}; a model needs at least {MIN_TRAINING_ROWS} rows to fit",
                    self.training_rows
                ),
            );
        }
        let least_history = MIN_NODE_HISTORY.max(MIN_SCORE_HISTORY);
        if self.history < least_history {
            return err(
                "history",
                format!(
                    "is {}; a node's deviations need at least {least_history} values of its history",
                    self.history
                ),
            );
        }
        if !(self.percentile > 50.0 && self.percentile <= 100.0) {
            return err(
                "percentile",
                format!("is {}; it must be in (50, 100]", self.percentile),
            );
        }
        for (key, v) in [
            ("sigma_k", self.sigma_k),
            ("iqr_k", self.iqr_k),
            ("min_threshold", self.min_threshold),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(key, format!("is {v}; it must be a number ≥ 0"));
            }
        }
        if self.forget_after.0.is_zero() {
            return err("forget_after", "must be longer than 0".into());
        }
        if self.trend_windows < 3 {
            return err(
                "trend_windows",
                format!("is {}; it must be at least 3", self.trend_windows),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(AnomalyConfig::default().validate(), Ok(()));
        let bad = AnomalyConfig {
            percentile: 40.0,
            ..AnomalyConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "percentile");
        let bad = AnomalyConfig {
            refit_every: 0,
            ..AnomalyConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "refit_every");
        let bad = AnomalyConfig {
            forget_after: HumanDuration::from_secs(0),
            ..AnomalyConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "forget_after");
        for (training_rows, history, key) in [(19, 10_000, "training_rows"), (1_000, 9, "history")]
        {
            let bad = AnomalyConfig {
                training_rows,
                history,
                ..AnomalyConfig::default()
            };
            let e = bad.validate().unwrap_err();
            assert_eq!(e.key, key, "{e:?}");
            assert!(e.reason.contains("at least"), "{e:?}");
        }
    }

    #[test]
    fn histories_are_cut_to_fit_their_memory_but_not_below_the_floor() {
        let cfg = AnomalyConfig::default();
        assert_eq!(cfg.history_cap(0), 10_000);
        assert_eq!(cfg.history_cap(1), 10_000);
        // 1 GiB over 10 bytes a value and 9 histories a node.
        assert_eq!(cfg.history_cap(1_000), 10_000);
        assert_eq!(cfg.history_cap(10_000), 1_193);
        assert_eq!(cfg.history_cap(100_000), 119);
        assert_eq!(cfg.history_cap(10_000_000), cfg.trend_windows);
        let small = AnomalyConfig {
            history: 5,
            ..AnomalyConfig::default()
        };
        assert_eq!(small.history_cap(10_000_000), 5);
        let roomy = AnomalyConfig {
            history_memory: ByteSize::gib(100),
            ..AnomalyConfig::default()
        };
        assert_eq!(roomy.history_cap(100_000), 10_000);
    }
}
