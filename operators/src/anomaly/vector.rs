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

use std::sync::Arc;

use meshflow_schemas::{BASE_FEATURE_COUNT, NodeFeatures, TimestampNs, node_label};
use serde::{Deserialize, Serialize};

/// What a feature measures; sets the smallest scale its deviations are measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// An event count over the window (bytes, packets, flows, peers, retransmits,
    /// drops): a change of one is never more than one standard deviation.
    Count,
    /// Events per packet (retransmit and drop rates), over the packets `per` counts
    /// (as the feature graph divides them, in `operators/src/features/base.rs`).
    Rate(Per),
    /// A latency in microseconds: sketches of a few samples jump between peers'
    /// round-trip times, so changes under a millisecond mean nothing.
    LatencyUs,
}

/// The packets a rate divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    /// Packets sent.
    PacketsOut,
    /// Packets sent or received.
    Packets,
}

/// The smallest scale of any rate: one event in 10,000 packets.
pub const MIN_RATE_SCALE: f64 = 1e-4;

impl FeatureKind {
    /// Smallest scale (robust σ) of this kind's deviations in the window `f`.
    ///
    /// As for counts, one event more or less is never more than one standard
    /// deviation: a rate's floor is one event over the window's packets (at least
    /// [`MIN_RATE_SCALE`]). A node sending 600 packets a window moves its rate by
    /// 1.7e-3 with each retransmit; a fixed floor of 1e-4 made every such retransmit
    /// a 17σ event and flagged quiet, lightly loaded nodes again and again.
    pub fn min_scale(self, f: &NodeFeatures) -> f64 {
        self.min_scale_of(f.packets_in, f.packets_out)
    }

    /// [`FeatureKind::min_scale`] of a window with these packet counts.
    pub fn min_scale_of(self, packets_in: u64, packets_out: u64) -> f64 {
        match self {
            Self::Count => 1.0,
            Self::Rate(per) => {
                let packets = match per {
                    Per::PacketsOut => packets_out,
                    Per::Packets => packets_out + packets_in,
                };
                if packets == 0 {
                    MIN_RATE_SCALE
                } else {
                    (1.0 / packets as f64).max(MIN_RATE_SCALE)
                }
            }
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
    ("retransmit_rate", 11, FeatureKind::Rate(Per::PacketsOut)),
    ("drop_rate", 12, FeatureKind::Rate(Per::Packets)),
    ("rtt_p50_us", 13, FeatureKind::LatencyUs),
    ("rtt_p99_us", 14, FeatureKind::LatencyUs),
];

/// The values of [`FEATURES`] in one node's window, aligned with it; `None` where
/// the window has no value (no RTT samples, nothing sent).
pub type Vector = [Option<f64>; FEATURES.len()];

/// Each feature's smallest scale in one node's window, aligned with [`FEATURES`].
pub type Floors = [f64; FEATURES.len()];

/// The values of [`FEATURES`] in a `node_features` row.
pub fn feature_vector(f: &NodeFeatures) -> Vector {
    vector_of(&f.base_values())
}

/// The values of [`FEATURES`] among a row's base values (as
/// `NodeFeatures::base_values` orders them).
fn vector_of(values: &[Option<f64>; BASE_FEATURE_COUNT]) -> Vector {
    FEATURES.map(|(_, i, _)| values[i])
}

/// What the scorer reads of a `node_features` row: which node and window, its
/// [`Vector`] and the vector's scale floors (about 240 bytes and one string, against
/// about 1.7 KB and a dozen allocations for the row). All of it comes from the
/// node's own features, so the feature graph hands the scorer these as soon as its
/// per-node reduce is done, before the neighbourhood aggregates
/// ([`crate::features::node_features_scored`]).
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
    /// Their smallest scales in this window ([`FeatureKind::min_scale`]).
    pub floors: Floors,
    /// The window's metric series (name, mean), sorted by name, when its vector
    /// carries no traffic ([`carries_traffic`]); empty otherwise. Such a window
    /// gives the model nothing, so its metric series are scored instead
    /// ([`super::series`]); a window with traffic keeps them out of the scorer.
    pub metrics: Vec<(Arc<str>, f64)>,
}

/// Whether a window's vector has any traffic value other than 0: what the model
/// scores. A node seen only through metric series has none.
pub fn carries_traffic(vector: &Vector) -> bool {
    vector.iter().any(|v| v.is_some_and(|v| v != 0.0))
}

impl ScoreInput {
    /// The input of `node`'s row in the window ending at `window_end`, from the
    /// row's base values (as `NodeFeatures::base_values` orders them) and packet
    /// counts and metric series (name and mean, sorted by name; read only when the
    /// window carries no traffic): the same as `ScoreInput::from` that row.
    pub fn new<M: Iterator<Item = (Arc<str>, f64)>>(
        window_end: TimestampNs,
        node: u64,
        values: &[Option<f64>; BASE_FEATURE_COUNT],
        (packets_in, packets_out): (u64, u64),
        metrics: impl FnOnce() -> M,
    ) -> Self {
        Self::labelled(
            window_end,
            node,
            node_label(node),
            values,
            (packets_in, packets_out),
            metrics,
        )
    }

    /// [`ScoreInput::new`] with the node's label given.
    fn labelled<M: Iterator<Item = (Arc<str>, f64)>>(
        window_end: TimestampNs,
        node: u64,
        node_label: String,
        values: &[Option<f64>; BASE_FEATURE_COUNT],
        (packets_in, packets_out): (u64, u64),
        metrics: impl FnOnce() -> M,
    ) -> Self {
        let vector = vector_of(values);
        let metrics = if carries_traffic(&vector) {
            Vec::new()
        } else {
            metrics().collect()
        };
        Self {
            window_end,
            node,
            node_label,
            vector,
            floors: FEATURES.map(|(_, _, kind)| kind.min_scale_of(packets_in, packets_out)),
            metrics,
        }
    }
}

impl From<&NodeFeatures> for ScoreInput {
    fn from(f: &NodeFeatures) -> Self {
        Self::labelled(
            f.window_end,
            f.node,
            f.node_label.clone(),
            &f.base_values(),
            (f.packets_in, f.packets_out),
            || (f.metric_names.iter().cloned()).zip(f.metric_means.iter().copied()),
        )
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
    fn metrics_reach_the_scorer_only_from_windows_without_traffic() {
        let mut f = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 7);
        f.metric_names = vec![Arc::from("cpu"), Arc::from("mem")];
        f.metric_means = vec![0.5, 12.0];
        f.metric_samples = vec![3, 3];
        let metrics = ScoreInput::from(&f).metrics;
        assert_eq!(
            metrics,
            vec![(Arc::from("cpu"), 0.5), (Arc::from("mem"), 12.0)]
        );
        f.bytes_in = 10;
        assert!(ScoreInput::from(&f).metrics.is_empty());
        f.bytes_in = 0;
        f.rtt_p50_us = Some(800.0);
        assert!(ScoreInput::from(&f).metrics.is_empty());
    }

    #[test]
    fn rates_and_latencies_have_floors_of_their_own_units() {
        let mut f = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 7);
        assert_eq!(FeatureKind::Count.min_scale(&f), 1.0);
        assert!(FeatureKind::LatencyUs.min_scale(&f) >= 100.0);
        let out = FeatureKind::Rate(Per::PacketsOut);
        let all = FeatureKind::Rate(Per::Packets);
        // No packets: the rate has no value, and the floor is the smallest.
        assert_eq!(out.min_scale(&f), MIN_RATE_SCALE);
        // One event in the window's packets, never below the smallest.
        f.packets_out = 500;
        f.packets_in = 300;
        assert_eq!(out.min_scale(&f), 1.0 / 500.0);
        assert_eq!(all.min_scale(&f), 1.0 / 800.0);
        f.packets_out = 1_000_000;
        assert_eq!(out.min_scale(&f), MIN_RATE_SCALE);
        for (name, _, kind) in FEATURES {
            let expected = if name.ends_with("_rate") {
                matches!(kind, FeatureKind::Rate(_))
            } else if name.ends_with("_us") {
                kind == FeatureKind::LatencyUs
            } else {
                kind == FeatureKind::Count
            };
            assert!(expected, "{name}: {kind:?}");
        }
        f.packets_out = 2_000;
        f.packets_in = 2_000;
        let floors = ScoreInput::from(&f).floors;
        let at = |name: &str| floors[FEATURES.iter().position(|(n, ..)| *n == name).unwrap()];
        assert_eq!(at("drop_rate"), 1.0 / 4_000.0);
        assert_eq!(at("retransmit_rate"), 1.0 / 2_000.0);
        assert_eq!(at("bytes_out"), 1.0);
    }
}
