//! A node's own features in one window, from the combined updates.

use std::sync::Arc;

use differential_dataflow::difference::Semigroup;
use meshflow_schemas::{BASE_FEATURE_COUNT, NodeFeatures};
use serde::{Deserialize, Serialize};

use super::diff::{Direction, FeatureDiff, FeatureVal, Name, metric_mean};
use crate::prefetch::{prefetch, prefetch_slice};
use crate::sketch::{quantile_bucket, value_of};
use crate::total::Accumulate;

/// The base features of a node as collection data, aligned with `BASE_FEATURES`: what
/// every neighbourhood join carries per edge, so it is kept small. Each value is an
/// `f32` (seven significant digits; the aggregates derived from it are accurate to
/// about 1e-7 relative), stored as its bits so the record is `Ord`; a null is a NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BaseValues(pub [u32; BASE_FEATURE_COUNT]);

/// The bits that stand for a null value (an `f32` NaN, which no feature takes).
const NULL_BITS: u32 = 0x7fc0_0000;

impl BaseValues {
    /// Packs values (rounded to `f32`); `None` and NaN become null.
    pub fn from_values(values: [Option<f64>; BASE_FEATURE_COUNT]) -> Self {
        Self(values.map(|v| match v {
            Some(v) if !v.is_nan() => (v as f32).to_bits(),
            _ => NULL_BITS,
        }))
    }

    /// Packs `f32` values; NaN becomes null.
    pub fn from_f32(values: [f32; BASE_FEATURE_COUNT]) -> Self {
        Self(values.map(|v| if v.is_nan() { NULL_BITS } else { v.to_bits() }))
    }

    /// Value `i`, or `None` if it is null.
    pub fn get(&self, i: usize) -> Option<f64> {
        let v = f32::from_bits(self.0[i]);
        (!v.is_nan()).then_some(f64::from(v))
    }

    /// All values.
    pub fn values(&self) -> [Option<f64>; BASE_FEATURE_COUNT] {
        std::array::from_fn(|i| self.get(i))
    }
}

/// One node's own features in one window, as exact integers and sketch buckets (the
/// floats are derived when the row is written).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeBase {
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
    /// Distinct peers that sent to the node.
    pub in_degree: u32,
    /// Distinct peers the node sent to.
    pub out_degree: u32,
    /// Distinct peers in either direction.
    pub distinct_peers: u32,
    /// TCP retransmits.
    pub retransmits: u64,
    /// Drops per reason, sorted by reason.
    pub drops: Vec<(Name, u64)>,
    /// Sketch bucket of the median RTT.
    pub rtt_p50: Option<i32>,
    /// Sketch bucket of the 99th percentile RTT.
    pub rtt_p99: Option<i32>,
    /// Sketch bucket of the 99th percentile system-call latency (ns).
    pub syscall_p99: Option<i32>,
    /// Per metric series, sorted by name: sum of nano-units and sample count.
    pub metrics: Vec<(Name, i128, u64)>,
}

/// What the per-node reduce outputs: the node's features, and one record per
/// neighbour (the window's undirected edges, keyed by their first end).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeOut {
    /// The node has a row in this window (stable while it does, unlike `Base`).
    Present,
    /// The node's own features, behind a pointer: the reduce keeps every node's
    /// output, and an inline `NodeBase` would make each of its neighbour records as
    /// large; shared, so emitting a change copies the pointer, not the features.
    Base(Arc<NodeBase>),
    /// A neighbour: a node that exchanged a flow with this one in either direction.
    Neighbour(u64),
}

/// One node's input in the current window, added up: what the per-node reduce keeps
/// instead of the window's updates. Each kind keeps only the numbers its features
/// read (a count, and a sum for metric series), in a small sorted vector, so an update
/// is a binary search and an addition, and the node's features are read off directly.
/// It also notes which neighbours came and went, so that the reduce reports the
/// window's edges by their changes instead of listing every node's neighbours every
/// window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeTally {
    /// Traffic totals and retransmits.
    totals: FeatureDiff,
    /// Presence of each peer and direction, counted.
    peers: Vec<((u64, Direction), i64)>,
    /// Neighbours gained (`1`) and lost (`-1`) since last taken, in update order: a
    /// peer is a neighbour while either direction counts above zero.
    neighbour_changes: Vec<(u64, isize)>,
    /// Drops per reason.
    drops: Vec<(Name, i64)>,
    /// RTT samples per sketch bucket.
    rtt: Vec<(i32, i64)>,
    /// System-call latency samples per sketch bucket.
    syscalls: Vec<(i32, i64)>,
    /// Per metric series: sample count and sum of nano-units.
    metrics: Vec<(Name, (i64, i128))>,
}

/// Adds to the weight `entries` (sorted by key) hold for `key`, keeping the entry
/// only while its weight is not zero.
fn tally<K: Ord + Clone, W: Default + PartialEq>(
    entries: &mut Vec<(K, W)>,
    key: &K,
    add: impl FnOnce(&mut W),
) {
    let at = entries.binary_search_by(|e| e.0.cmp(key));
    tally_at(entries, at, key, add);
}

/// [`tally`] with `key`'s place found: `Ok` its entry, `Err` where it would go.
fn tally_at<K: Clone, W: Default + PartialEq>(
    entries: &mut Vec<(K, W)>,
    at: Result<usize, usize>,
    key: &K,
    add: impl FnOnce(&mut W),
) {
    match at {
        Ok(i) => {
            add(&mut entries[i].1);
            if entries[i].1 == W::default() {
                entries.remove(i);
            }
        }
        Err(i) => {
            let mut w = W::default();
            add(&mut w);
            if w != W::default() {
                entries.insert(i, (key.clone(), w));
            }
        }
    }
}

/// [`tally`] for entries keyed by name: a node has a few names, mostly the same
/// text in memory as the update's, so they are first matched by pointer, without the
/// text comparisons of a binary search.
fn tally_named<W: Default + PartialEq>(
    entries: &mut Vec<(Name, W)>,
    key: &Name,
    add: impl FnOnce(&mut W),
) {
    let at = match entries.iter().position(|e| e.0.same(key)) {
        Some(i) => Ok(i),
        None => entries.binary_search_by(|e| e.0.cmp(key)),
    };
    tally_at(entries, at, key, add);
}

impl Accumulate<FeatureVal, FeatureDiff> for NodeTally {
    fn add(&mut self, value: &FeatureVal, diff: &FeatureDiff) {
        let count = diff.count;
        match value {
            FeatureVal::Totals => self.totals.plus_equals(diff),
            FeatureVal::Peer(peer, direction) => self.add_peer(*peer, *direction, count),
            FeatureVal::Drop(reason) => tally_named(&mut self.drops, reason, |c| *c += count),
            FeatureVal::Rtt(bucket) => tally(&mut self.rtt, bucket, |c| *c += count),
            FeatureVal::Syscall(bucket) => tally(&mut self.syscalls, bucket, |c| *c += count),
            FeatureVal::Metric(name) => tally_named(&mut self.metrics, name, |(c, s)| {
                *c += count;
                *s += diff.sum;
            }),
        }
    }

    fn is_empty(&self) -> bool {
        self.totals == FeatureDiff::default()
            && self.peers.is_empty()
            && self.drops.is_empty()
            && self.rtt.is_empty()
            && self.syscalls.is_empty()
            && self.metrics.is_empty()
    }

    fn prefetch(&self) {
        prefetch_slice(&self.peers);
        prefetch_slice(&self.drops);
        prefetch_slice(&self.rtt);
        prefetch_slice(&self.syscalls);
        prefetch_slice(&self.metrics);
    }
}

impl NodeTally {
    /// Adds `count` to the presence of `(peer, direction)`, noting whether `peer`
    /// became or stopped being a neighbour.
    fn add_peer(&mut self, peer: u64, direction: Direction, count: i64) {
        // A peer's entries (at most one per direction) lie side by side.
        let at = self.peers.partition_point(|e| e.0.0 < peer);
        let linked = |peers: &[((u64, Direction), i64)]| {
            (peers[at..].iter().take(2))
                .take_while(|e| e.0.0 == peer)
                .any(|e| e.1 > 0)
        };
        let before = linked(&self.peers);
        // Entries before `at` are below `peer`, so the tally leaves them in place.
        tally(&mut self.peers, &(peer, direction), |c| *c += count);
        let after = linked(&self.peers);
        if before != after {
            self.neighbour_changes
                .push((peer, if after { 1 } else { -1 }));
        }
    }

    /// The neighbours gained (`1`) and lost (`-1`) since last taken; a neighbour lost
    /// and gained back in between appears twice.
    pub fn take_neighbour_changes(&mut self) -> std::vec::Drain<'_, (u64, isize)> {
        self.neighbour_changes.drain(..)
    }
}

/// The sketch buckets of `counts` that hold samples, for [`quantile_bucket`].
fn samples(counts: &[(i32, i64)]) -> impl Iterator<Item = (i32, u64)> + Clone + '_ {
    counts
        .iter()
        .filter(|e| e.1 > 0)
        .map(|&(bucket, count)| (bucket, count as u64))
}

impl NodeBase {
    /// Reads one node's features off its window's tally.
    pub fn fold(input: &NodeTally) -> Self {
        let clamp = |v: i64| v.max(0) as u64;
        let t = &input.totals;
        let mut b = NodeBase {
            bytes_in: clamp(t.bytes_in),
            bytes_out: clamp(t.bytes_out),
            packets_in: clamp(t.packets_in),
            packets_out: clamp(t.packets_out),
            flows_in: clamp(t.flows_in),
            flows_out: clamp(t.flows_out),
            retransmits: clamp(t.retransmits),
            ..Default::default()
        };
        let mut last = None;
        for &((peer, direction), count) in &input.peers {
            if count <= 0 {
                continue;
            }
            match direction {
                Direction::In => b.in_degree += 1,
                Direction::Out => b.out_degree += 1,
            }
            if last != Some(peer) {
                b.distinct_peers += 1;
                last = Some(peer);
            }
        }
        b.drops = (input.drops.iter())
            .filter(|d| d.1 > 0)
            .map(|(reason, count)| (reason.clone(), *count as u64))
            .collect();
        b.metrics = (input.metrics.iter())
            .filter(|m| m.1.0 > 0)
            .map(|(name, (count, sum))| (name.clone(), *sum, *count as u64))
            .collect();
        b.rtt_p50 = quantile_bucket(samples(&input.rtt), 0.5);
        b.rtt_p99 = quantile_bucket(samples(&input.rtt), 0.99);
        b.syscall_p99 = quantile_bucket(samples(&input.syscalls), 0.99);
        b
    }

    /// Asks for the features and their lists (a hint that changes nothing), ahead of
    /// writing them into a row.
    pub fn prefetch(&self) {
        prefetch(self);
        prefetch_slice(&self.drops);
        prefetch_slice(&self.metrics);
    }

    /// Drops in the window, all reasons.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(|d| d.1).sum()
    }

    /// The derived (float) base features: retransmit rate, drop rate, RTT p50 and
    /// p99 (µs), system-call p99 (µs). The rates' denominators are also the anomaly
    /// scorer's ([`crate::anomaly::vector::Per`]).
    fn derived(&self) -> [Option<f64>; 5] {
        let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        [
            ratio(self.retransmits, self.packets_out),
            ratio(self.drops_total(), self.packets_in + self.packets_out),
            self.rtt_p50.map(value_of),
            self.rtt_p99.map(value_of),
            self.syscall_p99.map(|b| value_of(b) / 1_000.0),
        ]
    }

    /// Writes the node's own features into `row`.
    pub fn fill(&self, row: &mut NodeFeatures) {
        row.bytes_in = self.bytes_in;
        row.bytes_out = self.bytes_out;
        row.packets_in = self.packets_in;
        row.packets_out = self.packets_out;
        row.flows_in = self.flows_in;
        row.flows_out = self.flows_out;
        row.in_degree = self.in_degree;
        row.out_degree = self.out_degree;
        row.distinct_peers = self.distinct_peers;
        row.retransmits = self.retransmits;
        row.drops = self.drops_total();
        [
            row.retransmit_rate,
            row.drop_rate,
            row.rtt_p50_us,
            row.rtt_p99_us,
            row.syscall_p99_us,
        ] = self.derived();
        (row.drop_reasons, row.drop_counts) = self
            .drops
            .iter()
            .map(|(reason, n)| (reason.shared(), *n))
            .unzip();
        row.metric_names = self.metrics.iter().map(|m| m.0.shared()).collect();
        row.metric_means = self.metrics.iter().map(|m| metric_mean(m.1, m.2)).collect();
        row.metric_samples = self.metrics.iter().map(|m| m.2).collect();
    }

    /// The base features as collection data (what neighbours aggregate): the values
    /// of `NodeFeatures::base_values` of a row filled from this, rounded to `f32`.
    pub fn values(&self) -> BaseValues {
        BaseValues::from_values(self.row_values())
    }

    /// The values of `NodeFeatures::base_values` of a row filled from this
    /// ([`NodeBase::fill`]), without the row.
    pub fn row_values(&self) -> [Option<f64>; BASE_FEATURE_COUNT] {
        let count = |v: u64| Some(v as f64);
        let [r, d, p50, p99, s99] = self.derived();
        [
            count(self.bytes_in),
            count(self.bytes_out),
            count(self.packets_in),
            count(self.packets_out),
            count(self.flows_in),
            count(self.flows_out),
            count(self.in_degree.into()),
            count(self.out_degree.into()),
            count(self.distinct_peers.into()),
            count(self.retransmits),
            count(self.drops_total()),
            r,
            d,
            p50,
            p99,
            s99,
        ]
    }
}
