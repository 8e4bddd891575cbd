//! Worker-local pre-aggregation of events before they enter differential.

use std::collections::BTreeMap;

use differential_dataflow::difference::{Abelian, Semigroup};

use crate::hash::FxHashMap;
use crate::window::WindowSpec;

use super::diff::{Direction, FeatureDiff, FeatureVal};

/// A feature update's key: the node and what the update is about.
type Key = (u64, FeatureVal);

/// The retractions due at one time. Peer presence, the bulk of them, always retracts
/// a count of one, so it is kept as `(node, peer, direction)` alone: a steady mesh of
/// `E` directed edges holds `2 E × length / slide` of these at any time.
#[derive(Default)]
struct Retractions {
    peers: Vec<(u64, u64, Direction)>,
    other: Vec<(Key, FeatureDiff)>,
}

/// Folds events into per-node feature updates, keyed by the window time at which
/// they take effect.
///
/// Inserts are held until [`FeatureCombiner::flush`]; at that point their
/// retraction is scheduled `length` later, where it nets against later inserts of the
/// same key. Peer presence counts once per key and flush, so a steady edge adds and
/// retracts the same amount and disappears from the update stream.
pub struct FeatureCombiner {
    spec: WindowSpec,
    /// Inserts not yet flushed, per time.
    pending: BTreeMap<u64, FxHashMap<Key, FeatureDiff>>,
    /// Retractions scheduled, per time.
    retractions: BTreeMap<u64, Retractions>,
}

impl FeatureCombiner {
    /// A combiner for the given window geometry.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            pending: BTreeMap::new(),
            retractions: BTreeMap::new(),
        }
    }

    fn bucket(&mut self, epoch: u64) -> &mut FxHashMap<Key, FeatureDiff> {
        let time = self.spec.first_window(epoch);
        self.pending.entry(time).or_default()
    }

    /// Adds one flow observed at `epoch` from `src` to `dst`.
    pub fn add_flow(&mut self, epoch: u64, src: u64, dst: u64, bytes: u64, packets: u64) {
        let bucket = self.bucket(epoch);
        let (bytes, packets) = (bytes as i64, packets as i64);
        let sent = FeatureDiff {
            bytes_out: bytes,
            packets_out: packets,
            flows_out: 1,
            ..Default::default()
        };
        bucket
            .entry((src, FeatureVal::Totals))
            .or_default()
            .plus_equals(&sent);
        let received = FeatureDiff {
            bytes_in: bytes,
            packets_in: packets,
            flows_in: 1,
            ..Default::default()
        };
        bucket
            .entry((dst, FeatureVal::Totals))
            .or_default()
            .plus_equals(&received);

        peers(bucket, src, dst);
    }

    /// Adds the link `src -> dst` at `epoch` without traffic: a given topology's edge,
    /// counted in degrees and neighbourhoods like a flow's.
    pub fn add_link(&mut self, epoch: u64, src: u64, dst: u64) {
        peers(self.bucket(epoch), src, dst);
    }

    /// Adds `diff` to `node`'s `val` at `epoch` (any value but [`FeatureVal::Peer`],
    /// whose presence only [`FeatureCombiner::add_flow`] and
    /// [`FeatureCombiner::add_link`] maintain).
    pub fn add(&mut self, epoch: u64, node: u64, val: FeatureVal, diff: FeatureDiff) {
        debug_assert!(!matches!(val, FeatureVal::Peer(..)));
        self.bucket(epoch)
            .entry((node, val))
            .or_default()
            .plus_equals(&diff);
    }

    /// Emits every pending update at a time before `before`, scheduling the
    /// retractions of its inserts. Call it before advancing the input to `before`.
    pub fn flush(&mut self, before: u64, mut emit: impl FnMut(Key, u64, FeatureDiff)) {
        while let Some(time) = self.next_time().filter(|&t| t < before) {
            let mut net = self.pending.remove(&time).unwrap_or_default();
            // Schedule the retraction of every insert of this time.
            if !net.is_empty() {
                let later = self.retractions.entry(self.spec.retire(time)).or_default();
                for (key, inserted) in &net {
                    match key {
                        (node, FeatureVal::Peer(peer, direction)) => {
                            later.peers.push((*node, *peer, *direction))
                        }
                        _ => {
                            let mut retraction = *inserted;
                            retraction.negate();
                            later.other.push((key.clone(), retraction));
                        }
                    }
                }
            }
            // Net the retractions due now against the inserts.
            if let Some(due) = self.retractions.remove(&time) {
                for (node, peer, direction) in due.peers {
                    let key = (node, FeatureVal::Peer(peer, direction));
                    net.entry(key).or_default().count -= 1;
                }
                for (key, retraction) in due.other {
                    net.entry(key).or_default().plus_equals(&retraction);
                }
            }
            for (key, diff) in net {
                if diff != FeatureDiff::default() {
                    emit(key, time, diff);
                }
            }
        }
        // Inserts still pending (at or after `before`) keep counting presence once.
    }

    /// The earliest time with a pending insert or retraction, if any.
    pub fn next_time(&self) -> Option<u64> {
        [self.pending.keys().next(), self.retractions.keys().next()]
            .into_iter()
            .flatten()
            .min()
            .copied()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.retractions.is_empty()
    }
}

/// Marks `src` and `dst` as peers in `bucket`, once per key (a self-loop is no peer).
fn peers(bucket: &mut FxHashMap<Key, FeatureDiff>, src: u64, dst: u64) {
    if src == dst {
        return;
    }
    for key in [
        (src, FeatureVal::Peer(dst, Direction::Out)),
        (dst, FeatureVal::Peer(src, Direction::In)),
    ] {
        bucket.entry(key).or_default().count = 1;
    }
}
