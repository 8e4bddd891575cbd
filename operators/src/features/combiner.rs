//! Worker-local pre-aggregation of events before they enter differential.

use std::collections::BTreeMap;

use differential_dataflow::difference::{Abelian, Semigroup};

use crate::hash::{FxHashMap, FxHashSet};
use crate::window::WindowSpec;

use super::diff::{Direction, FeatureDiff, FeatureVal};

/// A feature update's key: the node and what the update is about.
type Key = (u64, FeatureVal);

/// Peer presence `(node, peer, direction)`: the bulk of the updates, and always a
/// count of one, so it is kept apart from the other keys, without a weight.
type PeerKey = (u64, u64, Direction);

/// The inserts of one time. Peer presence is a 24-byte set entry rather than a
/// map entry of key and weight (112 bytes); everything else sums into `other`.
#[derive(Default)]
struct Inserts {
    peers: FxHashSet<PeerKey>,
    other: FxHashMap<Key, FeatureDiff>,
}

/// The retractions due at one time, each kept with the weight it needs: they wait a
/// whole window length, so a node holds `length / slide` times its updates per slide.
/// Peer presence, the bulk of them, always retracts a count of one, so it is kept as
/// `(node, peer, direction)` alone: a steady mesh of `E` directed edges holds
/// `2 E × length / slide` of these at any time. Sketch buckets and drops retract a
/// count (40 bytes instead of a 112-byte key and full weight), metric series a count
/// and a sum (64 bytes); only traffic totals keep the full weight.
#[derive(Default)]
struct Retractions {
    peers: Vec<PeerKey>,
    counts: Vec<(Key, i64)>,
    sums: Vec<(Key, i64, i128)>,
    other: Vec<(Key, FeatureDiff)>,
}

impl Retractions {
    /// Schedules the retraction of `inserted` at `key`.
    fn schedule(&mut self, key: &Key, inserted: &FeatureDiff) {
        let count_and_sum = FeatureDiff {
            count: inserted.count,
            sum: inserted.sum,
            ..Default::default()
        };
        if *inserted == FeatureDiff::count(inserted.count) {
            self.counts.push((key.clone(), -inserted.count));
        } else if *inserted == count_and_sum {
            self.sums
                .push((key.clone(), -inserted.count, -inserted.sum));
        } else {
            let mut retraction = *inserted;
            retraction.negate();
            self.other.push((key.clone(), retraction));
        }
    }

    /// Every retraction other than peer presence, with its full weight.
    fn weighted(self) -> impl Iterator<Item = (Key, FeatureDiff)> {
        let counts = self
            .counts
            .into_iter()
            .map(|(key, count)| (key, FeatureDiff::count(count)));
        let sums = self.sums.into_iter().map(|(key, count, sum)| {
            (
                key,
                FeatureDiff {
                    count,
                    sum,
                    ..Default::default()
                },
            )
        });
        counts.chain(sums).chain(self.other)
    }
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
    pending: BTreeMap<u64, Inserts>,
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

    fn bucket(&mut self, epoch: u64) -> &mut Inserts {
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
            .other
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
            .other
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
            .other
            .entry((node, val))
            .or_default()
            .plus_equals(&diff);
    }

    /// Emits every pending update at a time before `before`, scheduling the
    /// retractions of its inserts. Call it before advancing the input to `before`.
    pub fn flush(&mut self, before: u64, mut emit: impl FnMut(Key, u64, FeatureDiff)) {
        while let Some(time) = self.next_time().filter(|&t| t < before) {
            let Inserts {
                mut peers,
                other: mut net,
            } = self.pending.remove(&time).unwrap_or_default();
            // Schedule the retraction of every insert of this time.
            if !peers.is_empty() || !net.is_empty() {
                let later = self.retractions.entry(self.spec.retire(time)).or_default();
                later.peers.extend(peers.iter().copied());
                for (key, inserted) in &net {
                    later.schedule(key, inserted);
                }
            }
            // Net the retractions due now against the inserts. A peer is inserted at
            // most once per time, and retracted at most once (from one earlier time).
            if let Some(mut due) = self.retractions.remove(&time) {
                for (node, peer, direction) in std::mem::take(&mut due.peers) {
                    if !peers.remove(&(node, peer, direction)) {
                        emit(
                            (node, FeatureVal::Peer(peer, direction)),
                            time,
                            FeatureDiff::count(-1),
                        );
                    }
                }
                for (key, retraction) in due.weighted() {
                    net.entry(key).or_default().plus_equals(&retraction);
                }
            }
            for (node, peer, direction) in peers {
                emit(
                    (node, FeatureVal::Peer(peer, direction)),
                    time,
                    FeatureDiff::count(1),
                );
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
fn peers(bucket: &mut Inserts, src: u64, dst: u64) {
    if src == dst {
        return;
    }
    bucket.peers.insert((src, dst, Direction::Out));
    bucket.peers.insert((dst, src, Direction::In));
}
