//! Worker-local pre-aggregation of events before they enter differential.

use std::collections::BTreeMap;

use differential_dataflow::difference::{Abelian, Semigroup};

use crate::hash::FxHashMap;
use crate::window::WindowSpec;

use super::diff::{Direction, FeatureDiff, FeatureVal};

#[derive(Clone, Copy, Default)]
struct Pending {
    /// Net weight to send at this time: inserts minus retractions scheduled here.
    net: FeatureDiff,
    /// The insert part alone, to be retracted when the window slides past.
    inserted: FeatureDiff,
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
    pending: BTreeMap<u64, FxHashMap<(u64, FeatureVal), Pending>>,
}

impl FeatureCombiner {
    /// A combiner for the given window geometry.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            pending: BTreeMap::new(),
        }
    }

    fn bucket(&mut self, epoch: u64) -> &mut FxHashMap<(u64, FeatureVal), Pending> {
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
        add(bucket.entry((src, FeatureVal::Totals)).or_default(), &sent);
        let received = FeatureDiff {
            bytes_in: bytes,
            packets_in: packets,
            flows_in: 1,
            ..Default::default()
        };
        add(
            bucket.entry((dst, FeatureVal::Totals)).or_default(),
            &received,
        );

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
        add(self.bucket(epoch).entry((node, val)).or_default(), &diff);
    }

    /// Emits every pending update at a time before `before`, scheduling the
    /// retractions of its inserts. Call it before advancing the input to `before`.
    pub fn flush(
        &mut self,
        before: u64,
        mut emit: impl FnMut((u64, FeatureVal), u64, FeatureDiff),
    ) {
        while let Some(entry) = self.pending.first_entry() {
            let time = *entry.key();
            if time >= before {
                break;
            }
            let bucket = entry.remove();
            // The retractions all go to one later bucket: take it out once.
            let retire = self.spec.retire(time);
            let mut later = self.pending.remove(&retire).unwrap_or_default();
            later.reserve(bucket.len());
            for (key, p) in bucket {
                let send = p.net != FeatureDiff::default();
                if p.inserted != FeatureDiff::default() {
                    let mut retraction = p.inserted;
                    retraction.negate();
                    if send {
                        let slot = later.entry(key.clone()).or_default();
                        slot.net.plus_equals(&retraction);
                        emit(key, time, p.net);
                    } else {
                        later.entry(key).or_default().net.plus_equals(&retraction);
                    }
                } else if send {
                    emit(key, time, p.net);
                }
            }
            if !later.is_empty() {
                self.pending.insert(retire, later);
            }
        }
        // Inserts still pending (at or after `before`) keep counting presence once.
    }

    /// The earliest time with a pending update, if any.
    pub fn next_time(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Marks `src` and `dst` as peers in `bucket`, once per key (a self-loop is no peer).
fn peers(bucket: &mut FxHashMap<(u64, FeatureVal), Pending>, src: u64, dst: u64) {
    if src == dst {
        return;
    }
    for key in [
        (src, FeatureVal::Peer(dst, Direction::Out)),
        (dst, FeatureVal::Peer(src, Direction::In)),
    ] {
        let entry = bucket.entry(key).or_default();
        if entry.inserted.count == 0 {
            add(entry, &FeatureDiff::count(1));
        }
    }
}

fn add(entry: &mut Pending, diff: &FeatureDiff) {
    entry.net.plus_equals(diff);
    entry.inserted.plus_equals(diff);
}
