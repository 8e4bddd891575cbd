//! The feature vector the anomaly scorer reads from a node's window.
//!
//! This is the one place that decides which `NodeFeatures` columns the model sees:
//! widen `NodeFeatures` and change [`FEATURES`], and everything downstream
//! (standardiser, thresholds, model, explanation) follows.
//!
//! The scorer sees eight of the node's own base features (see [`FEATURES`]). The
//! neighbourhood aggregates (`_n1_*`, `_n2_*`) are left out: a fault at one node
//! moves its neighbours' aggregates as much as its own features, so scoring them
//! would flag every neighbour of a faulty node, which the simulator's ground truth
//! counts as false alarms (not measured yet). A cascade is found through the
//! features of each node it reaches.

use meshflow_schemas::{NodeFeatures, TimestampNs};
use serde::{Deserialize, Serialize};

/// What a feature measures; sets the smallest scale its deviations are measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// An event count over the window (bytes, packets, flows, peers, retransmits,
    /// drops): a change of one is never more than one standard deviation.
    Count,
    /// Events per packet (retransmit and drop rates): a node sends a few thousand
    /// packets per window, so one event is about 1e-4.
    Rate,
    /// A latency in microseconds: sketches of a few samples jump between peers'
    /// round-trip times, so changes under a millisecond mean nothing.
    LatencyUs,
}

impl FeatureKind {
    /// Smallest scale (robust σ) of this kind's deviations.
    pub fn min_scale(self) -> f64 {
        match self {
            Self::Count => 1.0,
            Self::Rate => 1e-4,
            Self::LatencyUs => 1_000.0,
        }
    }
}

/// The features the scorer sees, in vector order: each one's name, its index in
/// [`meshflow_schemas::BASE_FEATURES`] and its kind.
///
/// Chosen by measurement on the simulator (`benchmarks/README.md`): traffic in and
/// out (floods and their receivers), retransmits and drops as counts and per packet
/// (degraded links, overloads), and the RTT percentiles (overloads). Packets
/// duplicate bytes; flows, degrees and peers are near-constant counts whose ±1
/// noise only raised false alarms (all 16 base features: F1 0.857 against 0.913).
pub const FEATURES: [(&str, usize, FeatureKind); 8] = [
    ("bytes_in", 0, FeatureKind::Count),
    ("bytes_out", 1, FeatureKind::Count),
    ("retransmits", 9, FeatureKind::Count),
    ("drops", 10, FeatureKind::Count),
    ("retransmit_rate", 11, FeatureKind::Rate),
    ("drop_rate", 12, FeatureKind::Rate),
    ("rtt_p50_us", 13, FeatureKind::LatencyUs),
    ("rtt_p99_us", 14, FeatureKind::LatencyUs),
];

/// The values of [`FEATURES`] in one node's window, aligned with it; `None` where
/// the window has no value (no RTT samples, nothing sent).
pub type Vector = [Option<f64>; FEATURES.len()];

/// The values of [`FEATURES`] in a `node_features` row.
pub fn feature_vector(f: &NodeFeatures) -> Vector {
    let values = f.base_values();
    FEATURES.map(|(_, i, _)| values[i])
}

/// What the scorer reads of a `node_features` row: which node and window, and its
/// [`Vector`] (about 170 bytes and one string, against about 1.7 KB and a dozen
/// allocations for the row), so the job passes the scorer these instead of a clone
/// of every row ([`crate::fork`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreInput {
    /// End of the window.
    pub window_end: TimestampNs,
    /// Node id.
    pub node: u64,
    /// Readable node name.
    pub node_label: String,
    /// The values of [`FEATURES`].
    pub vector: Vector,
}

impl From<&NodeFeatures> for ScoreInput {
    fn from(f: &NodeFeatures) -> Self {
        Self {
            window_end: f.window_end,
            node: f.node,
            node_label: f.node_label.clone(),
            vector: feature_vector(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use meshflow_schemas::BASE_FEATURES;

    use super::*;

    #[test]
    fn values_follow_the_names_and_nulls_stay_missing() {
        let mut f = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 7);
        f.bytes_out = 1234;
        f.retransmits = 9;
        f.retransmit_rate = Some(0.02);
        f.rtt_p99_us = Some(45_000.0);
        let v = feature_vector(&f);
        assert_eq!(v.len(), FEATURES.len());
        let get = |name: &str| v[FEATURES.iter().position(|(n, ..)| *n == name).unwrap()];
        assert_eq!(get("bytes_out"), Some(1234.0));
        assert_eq!(get("retransmits"), Some(9.0));
        assert_eq!(get("retransmit_rate"), Some(0.02));
        assert_eq!(get("rtt_p99_us"), Some(45_000.0));
        assert_eq!(get("rtt_p50_us"), None);
        assert_eq!(get("drop_rate"), None);
        for (name, i, _) in FEATURES {
            assert_eq!(BASE_FEATURES[i], name);
        }
        f.node_label = "n7".into();
        let compact = ScoreInput::from(&f);
        assert_eq!(
            (
                compact.node,
                compact.window_end,
                compact.node_label.as_str()
            ),
            (f.node, f.window_end, f.node_label.as_str())
        );
        assert_eq!(compact.vector, feature_vector(&f));
    }

    #[test]
    fn rates_and_latencies_have_floors_of_their_own_units() {
        assert_eq!(FeatureKind::Count.min_scale(), 1.0);
        assert!(FeatureKind::Rate.min_scale() < 1e-3);
        assert!(FeatureKind::LatencyUs.min_scale() >= 100.0);
        for (name, _, kind) in FEATURES {
            let expected = if name.ends_with("_rate") {
                FeatureKind::Rate
            } else if name.ends_with("_us") {
                FeatureKind::LatencyUs
            } else {
                FeatureKind::Count
            };
            assert_eq!(kind, expected, "{name}");
        }
    }
}
