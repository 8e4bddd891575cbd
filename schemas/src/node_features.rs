//! `node_features`: one row per node and window, with neighbourhood aggregates.
//!
//! The numeric features are listed once in [`BASE_FEATURES`] and [`FEATURE_NAMES`], so a
//! consumer (the anomaly scorer) can read them by name with [`NodeFeatures::feature_vector`].

use std::sync::Arc;

use crate::record::record;
use crate::time::TimestampNs;

record! {
    /// Features of one node over one sliding window `[window_start, window_end)`.
    ///
    /// Neighbours are the nodes that exchanged a flow with the node (either direction)
    /// in the window. For each base feature `f`: `f_n1_mean`/`f_n1_max` are the mean/max
    /// of `f` over the neighbours; `f_n2_mean` is the mean over the neighbours of their
    /// `f_n1_mean`, and `f_n2_max` the max over the neighbours of their `f_n1_max` (the
    /// max over every node a 2-step walk reaches, the node itself included). Nulls are
    /// skipped; an aggregate with no value is null.
    table = "node_features", version = 2, time = window_end;
    pub struct NodeFeatures {
        /// Exclusive end of the window; the row's event time.
        pub window_end: TimestampNs,
        /// Inclusive start of the window.
        pub window_start: TimestampNs,
        /// Node id.
        pub node: u64,
        /// Readable node name (see `node_label`).
        pub node_label: String,
        /// Bytes received.
        pub bytes_in: u64,
        /// Bytes sent.
        pub bytes_out: u64,
        /// Packets received.
        pub packets_in: u64,
        /// Packets sent.
        pub packets_out: u64,
        /// Flow records received.
        pub flows_in: u64,
        /// Flow records sent.
        pub flows_out: u64,
        /// In-degree: distinct peers that sent to this node.
        pub in_degree: u32,
        /// Out-degree: distinct peers this node sent to.
        pub out_degree: u32,
        /// Distinct peers in either direction.
        pub distinct_peers: u32,
        /// TCP retransmits the node observed.
        pub retransmits: u64,
        /// Packet drops the node observed, all reasons.
        pub drops: u64,
        /// Retransmits per packet sent; null when nothing was sent.
        pub retransmit_rate: Option<f64>,
        /// Drops per packet sent or received; null when no packets.
        pub drop_rate: Option<f64>,
        /// Median smoothed RTT (µs) of the node's TCP events, from a 1%-accurate sketch; null without samples.
        pub rtt_p50_us: Option<f64>,
        /// 99th percentile smoothed RTT (µs), as `rtt_p50_us`.
        pub rtt_p99_us: Option<f64>,
        /// 99th percentile network system-call latency (µs), from a 1%-accurate sketch; null without samples.
        pub syscall_p99_us: Option<f64>,
        /// `bytes_in`: mean over the 1-hop neighbours.
        pub bytes_in_n1_mean: Option<f64>,
        /// `bytes_in`: max over the 1-hop neighbours.
        pub bytes_in_n1_max: Option<f64>,
        /// `bytes_in`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub bytes_in_n2_mean: Option<f64>,
        /// `bytes_in`: max over neighbours of their `_n1_max` (2-hop max).
        pub bytes_in_n2_max: Option<f64>,
        /// `bytes_out`: mean over the 1-hop neighbours.
        pub bytes_out_n1_mean: Option<f64>,
        /// `bytes_out`: max over the 1-hop neighbours.
        pub bytes_out_n1_max: Option<f64>,
        /// `bytes_out`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub bytes_out_n2_mean: Option<f64>,
        /// `bytes_out`: max over neighbours of their `_n1_max` (2-hop max).
        pub bytes_out_n2_max: Option<f64>,
        /// `packets_in`: mean over the 1-hop neighbours.
        pub packets_in_n1_mean: Option<f64>,
        /// `packets_in`: max over the 1-hop neighbours.
        pub packets_in_n1_max: Option<f64>,
        /// `packets_in`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub packets_in_n2_mean: Option<f64>,
        /// `packets_in`: max over neighbours of their `_n1_max` (2-hop max).
        pub packets_in_n2_max: Option<f64>,
        /// `packets_out`: mean over the 1-hop neighbours.
        pub packets_out_n1_mean: Option<f64>,
        /// `packets_out`: max over the 1-hop neighbours.
        pub packets_out_n1_max: Option<f64>,
        /// `packets_out`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub packets_out_n2_mean: Option<f64>,
        /// `packets_out`: max over neighbours of their `_n1_max` (2-hop max).
        pub packets_out_n2_max: Option<f64>,
        /// `flows_in`: mean over the 1-hop neighbours.
        pub flows_in_n1_mean: Option<f64>,
        /// `flows_in`: max over the 1-hop neighbours.
        pub flows_in_n1_max: Option<f64>,
        /// `flows_in`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub flows_in_n2_mean: Option<f64>,
        /// `flows_in`: max over neighbours of their `_n1_max` (2-hop max).
        pub flows_in_n2_max: Option<f64>,
        /// `flows_out`: mean over the 1-hop neighbours.
        pub flows_out_n1_mean: Option<f64>,
        /// `flows_out`: max over the 1-hop neighbours.
        pub flows_out_n1_max: Option<f64>,
        /// `flows_out`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub flows_out_n2_mean: Option<f64>,
        /// `flows_out`: max over neighbours of their `_n1_max` (2-hop max).
        pub flows_out_n2_max: Option<f64>,
        /// `in_degree`: mean over the 1-hop neighbours.
        pub in_degree_n1_mean: Option<f64>,
        /// `in_degree`: max over the 1-hop neighbours.
        pub in_degree_n1_max: Option<f64>,
        /// `in_degree`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub in_degree_n2_mean: Option<f64>,
        /// `in_degree`: max over neighbours of their `_n1_max` (2-hop max).
        pub in_degree_n2_max: Option<f64>,
        /// `out_degree`: mean over the 1-hop neighbours.
        pub out_degree_n1_mean: Option<f64>,
        /// `out_degree`: max over the 1-hop neighbours.
        pub out_degree_n1_max: Option<f64>,
        /// `out_degree`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub out_degree_n2_mean: Option<f64>,
        /// `out_degree`: max over neighbours of their `_n1_max` (2-hop max).
        pub out_degree_n2_max: Option<f64>,
        /// `distinct_peers`: mean over the 1-hop neighbours.
        pub distinct_peers_n1_mean: Option<f64>,
        /// `distinct_peers`: max over the 1-hop neighbours.
        pub distinct_peers_n1_max: Option<f64>,
        /// `distinct_peers`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub distinct_peers_n2_mean: Option<f64>,
        /// `distinct_peers`: max over neighbours of their `_n1_max` (2-hop max).
        pub distinct_peers_n2_max: Option<f64>,
        /// `retransmits`: mean over the 1-hop neighbours.
        pub retransmits_n1_mean: Option<f64>,
        /// `retransmits`: max over the 1-hop neighbours.
        pub retransmits_n1_max: Option<f64>,
        /// `retransmits`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub retransmits_n2_mean: Option<f64>,
        /// `retransmits`: max over neighbours of their `_n1_max` (2-hop max).
        pub retransmits_n2_max: Option<f64>,
        /// `drops`: mean over the 1-hop neighbours.
        pub drops_n1_mean: Option<f64>,
        /// `drops`: max over the 1-hop neighbours.
        pub drops_n1_max: Option<f64>,
        /// `drops`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub drops_n2_mean: Option<f64>,
        /// `drops`: max over neighbours of their `_n1_max` (2-hop max).
        pub drops_n2_max: Option<f64>,
        /// `retransmit_rate`: mean over the 1-hop neighbours.
        pub retransmit_rate_n1_mean: Option<f64>,
        /// `retransmit_rate`: max over the 1-hop neighbours.
        pub retransmit_rate_n1_max: Option<f64>,
        /// `retransmit_rate`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub retransmit_rate_n2_mean: Option<f64>,
        /// `retransmit_rate`: max over neighbours of their `_n1_max` (2-hop max).
        pub retransmit_rate_n2_max: Option<f64>,
        /// `drop_rate`: mean over the 1-hop neighbours.
        pub drop_rate_n1_mean: Option<f64>,
        /// `drop_rate`: max over the 1-hop neighbours.
        pub drop_rate_n1_max: Option<f64>,
        /// `drop_rate`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub drop_rate_n2_mean: Option<f64>,
        /// `drop_rate`: max over neighbours of their `_n1_max` (2-hop max).
        pub drop_rate_n2_max: Option<f64>,
        /// `rtt_p50_us`: mean over the 1-hop neighbours.
        pub rtt_p50_us_n1_mean: Option<f64>,
        /// `rtt_p50_us`: max over the 1-hop neighbours.
        pub rtt_p50_us_n1_max: Option<f64>,
        /// `rtt_p50_us`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub rtt_p50_us_n2_mean: Option<f64>,
        /// `rtt_p50_us`: max over neighbours of their `_n1_max` (2-hop max).
        pub rtt_p50_us_n2_max: Option<f64>,
        /// `rtt_p99_us`: mean over the 1-hop neighbours.
        pub rtt_p99_us_n1_mean: Option<f64>,
        /// `rtt_p99_us`: max over the 1-hop neighbours.
        pub rtt_p99_us_n1_max: Option<f64>,
        /// `rtt_p99_us`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub rtt_p99_us_n2_mean: Option<f64>,
        /// `rtt_p99_us`: max over neighbours of their `_n1_max` (2-hop max).
        pub rtt_p99_us_n2_max: Option<f64>,
        /// `syscall_p99_us`: mean over the 1-hop neighbours.
        pub syscall_p99_us_n1_mean: Option<f64>,
        /// `syscall_p99_us`: max over the 1-hop neighbours.
        pub syscall_p99_us_n1_max: Option<f64>,
        /// `syscall_p99_us`: mean over neighbours of their `_n1_mean` (2-hop mean).
        pub syscall_p99_us_n2_mean: Option<f64>,
        /// `syscall_p99_us`: max over neighbours of their `_n1_max` (2-hop max).
        pub syscall_p99_us_n2_max: Option<f64>,
        /// Drop reasons (kernel `skb_drop_reason` names), sorted.
        pub drop_reasons: Vec<Arc<str>>,
        /// Drops per reason, aligned with `drop_reasons`.
        pub drop_counts: Vec<u64>,
        /// Names of the `NodeMetric` series seen for the node in the window, sorted.
        pub metric_names: Vec<Arc<str>>,
        /// Mean of each series over the window, aligned with `metric_names`.
        pub metric_means: Vec<f64>,
        /// Samples of each series in the window, aligned with `metric_names`.
        pub metric_samples: Vec<u64>,
        /// Connected component: the smallest node id reachable over the window's flows.
        pub component: u64,
        /// Connected components in the window (all nodes with a row); more than usual
        /// means the mesh is partitioned.
        pub components: u64,
    }
}

/// Number of base features (the node's own numeric features).
pub const BASE_FEATURE_COUNT: usize = 16;
/// Number of numeric features: base features and their four neighbourhood aggregates.
pub const FEATURE_COUNT: usize = 80;

/// Declares the base features once, in column order, each with its four aggregate
/// fields: the name lists and the by-index accessors all follow from this one list.
macro_rules! features {
    ($($base:ident => [$n1_mean:ident, $n1_max:ident, $n2_mean:ident, $n2_max:ident]),* $(,)?) => {
        /// Names of the base features, in column order.
        pub const BASE_FEATURES: [&str; BASE_FEATURE_COUNT] = [$(stringify!($base)),*];

        /// Names of every numeric feature (base features, then each one's `_n1_mean`,
        /// `_n1_max`, `_n2_mean`, `_n2_max`), aligned with [`NodeFeatures::feature_values`].
        pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
            $(stringify!($base),)*
            $(stringify!($n1_mean), stringify!($n1_max), stringify!($n2_mean), stringify!($n2_max),)*
        ];

        impl NodeFeatures {
            /// Every numeric feature, aligned with [`FEATURE_NAMES`] (null stays `None`).
            pub fn feature_values(&self) -> [Option<f64>; FEATURE_COUNT] {
                let mut out = [None; FEATURE_COUNT];
                out[..BASE_FEATURE_COUNT].copy_from_slice(&self.base_values());
                let aggregates = [$([self.$n1_mean, self.$n1_max, self.$n2_mean, self.$n2_max]),*];
                for (chunk, a) in out[BASE_FEATURE_COUNT..].chunks_mut(4).zip(aggregates) {
                    chunk.copy_from_slice(&a);
                }
                out
            }

            /// Sets the aggregates of base feature `i` (index into [`BASE_FEATURES`]):
            /// `[n1_mean, n1_max, n2_mean, n2_max]`.
            pub fn set_aggregates(&mut self, i: usize, values: [Option<f64>; 4]) {
                let mut k = 0;
                $(
                    if i == k {
                        [self.$n1_mean, self.$n1_max, self.$n2_mean, self.$n2_max] = values;
                        return;
                    }
                    k += 1;
                )*
                panic!("base feature index {i} out of range (of {k})");
            }

            /// Sets the aggregates of every base feature at once (what
            /// [`Self::set_aggregates`] sets, for each index in turn): one move per
            /// field, where the hot path would otherwise search each field's index.
            pub fn set_all_aggregates(&mut self, values: [[Option<f64>; 4]; BASE_FEATURE_COUNT]) {
                let [$($base),*] = values;
                $([self.$n1_mean, self.$n1_max, self.$n2_mean, self.$n2_max] = $base;)*
            }
        }
    };
}

features! {
    bytes_in => [bytes_in_n1_mean, bytes_in_n1_max, bytes_in_n2_mean, bytes_in_n2_max],
    bytes_out => [bytes_out_n1_mean, bytes_out_n1_max, bytes_out_n2_mean, bytes_out_n2_max],
    packets_in => [packets_in_n1_mean, packets_in_n1_max, packets_in_n2_mean, packets_in_n2_max],
    packets_out => [packets_out_n1_mean, packets_out_n1_max, packets_out_n2_mean, packets_out_n2_max],
    flows_in => [flows_in_n1_mean, flows_in_n1_max, flows_in_n2_mean, flows_in_n2_max],
    flows_out => [flows_out_n1_mean, flows_out_n1_max, flows_out_n2_mean, flows_out_n2_max],
    in_degree => [in_degree_n1_mean, in_degree_n1_max, in_degree_n2_mean, in_degree_n2_max],
    out_degree => [out_degree_n1_mean, out_degree_n1_max, out_degree_n2_mean, out_degree_n2_max],
    distinct_peers => [distinct_peers_n1_mean, distinct_peers_n1_max, distinct_peers_n2_mean, distinct_peers_n2_max],
    retransmits => [retransmits_n1_mean, retransmits_n1_max, retransmits_n2_mean, retransmits_n2_max],
    drops => [drops_n1_mean, drops_n1_max, drops_n2_mean, drops_n2_max],
    retransmit_rate => [retransmit_rate_n1_mean, retransmit_rate_n1_max, retransmit_rate_n2_mean, retransmit_rate_n2_max],
    drop_rate => [drop_rate_n1_mean, drop_rate_n1_max, drop_rate_n2_mean, drop_rate_n2_max],
    rtt_p50_us => [rtt_p50_us_n1_mean, rtt_p50_us_n1_max, rtt_p50_us_n2_mean, rtt_p50_us_n2_max],
    rtt_p99_us => [rtt_p99_us_n1_mean, rtt_p99_us_n1_max, rtt_p99_us_n2_mean, rtt_p99_us_n2_max],
    syscall_p99_us => [syscall_p99_us_n1_mean, syscall_p99_us_n1_max, syscall_p99_us_n2_mean, syscall_p99_us_n2_max],
}

impl NodeFeatures {
    /// A row with every feature zero or null and no neighbours, in its own component.
    pub fn empty(window_start: TimestampNs, window_end: TimestampNs, node: u64) -> Self {
        Self {
            window_end,
            window_start,
            node,
            node_label: crate::ip::node_label(node),
            bytes_in: 0,
            bytes_out: 0,
            packets_in: 0,
            packets_out: 0,
            flows_in: 0,
            flows_out: 0,
            in_degree: 0,
            out_degree: 0,
            distinct_peers: 0,
            retransmits: 0,
            drops: 0,
            retransmit_rate: None,
            drop_rate: None,
            rtt_p50_us: None,
            rtt_p99_us: None,
            syscall_p99_us: None,
            bytes_in_n1_mean: None,
            bytes_in_n1_max: None,
            bytes_in_n2_mean: None,
            bytes_in_n2_max: None,
            bytes_out_n1_mean: None,
            bytes_out_n1_max: None,
            bytes_out_n2_mean: None,
            bytes_out_n2_max: None,
            packets_in_n1_mean: None,
            packets_in_n1_max: None,
            packets_in_n2_mean: None,
            packets_in_n2_max: None,
            packets_out_n1_mean: None,
            packets_out_n1_max: None,
            packets_out_n2_mean: None,
            packets_out_n2_max: None,
            flows_in_n1_mean: None,
            flows_in_n1_max: None,
            flows_in_n2_mean: None,
            flows_in_n2_max: None,
            flows_out_n1_mean: None,
            flows_out_n1_max: None,
            flows_out_n2_mean: None,
            flows_out_n2_max: None,
            in_degree_n1_mean: None,
            in_degree_n1_max: None,
            in_degree_n2_mean: None,
            in_degree_n2_max: None,
            out_degree_n1_mean: None,
            out_degree_n1_max: None,
            out_degree_n2_mean: None,
            out_degree_n2_max: None,
            distinct_peers_n1_mean: None,
            distinct_peers_n1_max: None,
            distinct_peers_n2_mean: None,
            distinct_peers_n2_max: None,
            retransmits_n1_mean: None,
            retransmits_n1_max: None,
            retransmits_n2_mean: None,
            retransmits_n2_max: None,
            drops_n1_mean: None,
            drops_n1_max: None,
            drops_n2_mean: None,
            drops_n2_max: None,
            retransmit_rate_n1_mean: None,
            retransmit_rate_n1_max: None,
            retransmit_rate_n2_mean: None,
            retransmit_rate_n2_max: None,
            drop_rate_n1_mean: None,
            drop_rate_n1_max: None,
            drop_rate_n2_mean: None,
            drop_rate_n2_max: None,
            rtt_p50_us_n1_mean: None,
            rtt_p50_us_n1_max: None,
            rtt_p50_us_n2_mean: None,
            rtt_p50_us_n2_max: None,
            rtt_p99_us_n1_mean: None,
            rtt_p99_us_n1_max: None,
            rtt_p99_us_n2_mean: None,
            rtt_p99_us_n2_max: None,
            syscall_p99_us_n1_mean: None,
            syscall_p99_us_n1_max: None,
            syscall_p99_us_n2_mean: None,
            syscall_p99_us_n2_max: None,
            drop_reasons: Vec::new(),
            drop_counts: Vec::new(),
            metric_names: Vec::new(),
            metric_means: Vec::new(),
            metric_samples: Vec::new(),
            component: node,
            components: 1,
        }
    }

    /// The base features as numbers, aligned with [`BASE_FEATURES`] (null stays `None`).
    pub fn base_values(&self) -> [Option<f64>; BASE_FEATURE_COUNT] {
        [
            Some(self.bytes_in as f64),
            Some(self.bytes_out as f64),
            Some(self.packets_in as f64),
            Some(self.packets_out as f64),
            Some(self.flows_in as f64),
            Some(self.flows_out as f64),
            Some(self.in_degree as f64),
            Some(self.out_degree as f64),
            Some(self.distinct_peers as f64),
            Some(self.retransmits as f64),
            Some(self.drops as f64),
            self.retransmit_rate,
            self.drop_rate,
            self.rtt_p50_us,
            self.rtt_p99_us,
            self.syscall_p99_us,
        ]
    }

    /// The numeric features that have a value, by name, for anomaly scoring (a null
    /// feature, such as RTT without samples, is left out rather than invented).
    pub fn feature_vector(&self) -> Vec<(&'static str, f64)> {
        FEATURE_NAMES
            .iter()
            .zip(self.feature_values())
            .filter_map(|(name, v)| v.map(|v| (*name, v)))
            .collect()
    }
}
