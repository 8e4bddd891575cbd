//! The feature vector the anomaly scorer reads from a node's window.
//!
//! This is the one place that decides which `NodeFeatures` columns the model sees:
//! widen `NodeFeatures` and change this function, and everything downstream
//! (standardiser, thresholds, model, explanation) follows.

use meshflow_schemas::NodeFeatures;

/// Smallest scale a feature's deviations are measured in: the features are counts,
/// so a change of one unit is never more than one standard deviation, however
/// constant the feature has been.
pub const MIN_SCALE: f64 = 1.0;

/// Named numeric features of one node's window, in a fixed order.
pub fn feature_vector(f: &NodeFeatures) -> Vec<(&'static str, f64)> {
    vec![
        ("bytes_in", f.bytes_in as f64),
        ("bytes_out", f.bytes_out as f64),
        ("packets_in", f.packets_in as f64),
        ("packets_out", f.packets_out as f64),
        ("flows_in", f.flows_in as f64),
        ("flows_out", f.flows_out as f64),
        ("in_degree", f64::from(f.in_degree)),
        ("out_degree", f64::from(f.out_degree)),
        ("distinct_peers", f64::from(f.distinct_peers)),
    ]
}
