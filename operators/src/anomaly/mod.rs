//! Anomaly scores with explanations: robust standardisation, self-learning
//! thresholds, a per-node health state, and a model fitted off the hot path.
//!
//! - [`ring`]: the bounded history every learner keeps.
//! - [`order`]: a history's values kept in ascending order, read by rank.
//! - [`robust`]: quantiles, median/MAD and the per-feature robust standardiser.
//! - [`threshold`]: percentile, σ and IQR thresholds over a bounded history, and
//!   trend classification.
//! - [`health`]: HEALTHY → DEGRADED → CRITICAL → RECOVERING with hysteresis.
//! - [`explain`]: the top-k features by |standardised deviation|.
//! - [`vector`]: the feature vector read from `NodeFeatures`.
//! - [`series`]: the detector of one metric series (nodes that carry only metrics).
//! - [`model`]: GMM, k-means and PCA scorers fitted with linfa, calibrated.
//! - [`scorer`]: one worker's per-node state, window by window.
//! - [`shared`]: the model every worker holds alike, and its training rows.
//! - [`scoring`]: the scorer on a helper thread, or on the worker.
//! - [`operator`]: the timely operator around it.
//! - [`config`]: the `[anomaly]` settings.

pub mod config;
pub mod explain;
pub mod health;
pub mod model;
pub mod operator;
pub mod order;
pub mod ring;
pub mod robust;
pub mod scorer;
pub mod scoring;
pub mod series;
pub mod shared;
pub mod threshold;
pub mod vector;

pub use config::AnomalyConfig;
pub use operator::anomaly_scores;
