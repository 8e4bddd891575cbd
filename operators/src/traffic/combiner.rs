//! Worker-local pre-aggregation of flow records before they enter differential.

use std::collections::BTreeMap;

use differential_dataflow::difference::{Abelian, Semigroup};

use crate::hash::FxHashMap;
use crate::window::WindowSpec;

use super::diff::{Direction, TrafficDiff, TrafficVal};

#[derive(Clone, Copy, Default)]
struct Pending {
    /// Net weight to send at this time: inserts minus retractions scheduled here.
    net: TrafficDiff,
    /// The insert part alone, to be retracted when the window slides past.
    inserted: TrafficDiff,
}

/// Folds flow records into per-node traffic updates, keyed by the window time at
/// which they take effect.
///
/// Inserts are held until [`TrafficCombiner::flush`]; at that point their
/// retraction is scheduled `length` later, where it nets against later inserts of the
/// same key. Peer presence counts once per key and flush, so a steady edge adds and
/// retracts the same amount and disappears from the update stream.
pub struct TrafficCombiner {
    spec: WindowSpec,
    pending: BTreeMap<u64, FxHashMap<(u64, TrafficVal), Pending>>,
}

impl TrafficCombiner {
    /// A combiner for the given window geometry.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            pending: BTreeMap::new(),
        }
    }

    /// Adds one flow observed at `epoch` from `src` to `dst`.
    pub fn add_flow(&mut self, epoch: u64, src: u64, dst: u64, bytes: u64, packets: u64) {
        let time = self.spec.first_window(epoch);
        let bucket = self.pending.entry(time).or_default();
        let (bytes, packets) = (bytes as i64, packets as i64);

        let out = &mut bucket.entry((src, TrafficVal::Totals)).or_default();
        let sent = TrafficDiff {
            bytes_out: bytes,
            packets_out: packets,
            flows_out: 1,
            ..Default::default()
        };
        add(out, &sent);
        let into = &mut bucket.entry((dst, TrafficVal::Totals)).or_default();
        let received = TrafficDiff {
            bytes_in: bytes,
            packets_in: packets,
            flows_in: 1,
            ..Default::default()
        };
        add(into, &received);

        if src != dst {
            for key in [
                (src, TrafficVal::Peer(dst, Direction::Out)),
                (dst, TrafficVal::Peer(src, Direction::In)),
            ] {
                let entry = bucket.entry(key).or_default();
                if entry.inserted.presence == 0 {
                    add(
                        entry,
                        &TrafficDiff {
                            presence: 1,
                            ..Default::default()
                        },
                    );
                }
            }
        }
    }

    /// Emits every pending update at a time before `before`, scheduling the
    /// retractions of its inserts. Call it before advancing the input to `before`.
    pub fn flush(
        &mut self,
        before: u64,
        mut emit: impl FnMut((u64, TrafficVal), u64, TrafficDiff),
    ) {
        while let Some(entry) = self.pending.first_entry() {
            let time = *entry.key();
            if time >= before {
                break;
            }
            let bucket = entry.remove();
            let retire = self.spec.retire(time);
            for (key, p) in bucket {
                if p.inserted != TrafficDiff::default() {
                    let mut retraction = p.inserted;
                    retraction.negate();
                    let later = self
                        .pending
                        .entry(retire)
                        .or_default()
                        .entry(key)
                        .or_default();
                    later.net.plus_equals(&retraction);
                }
                if p.net != TrafficDiff::default() {
                    emit(key, time, p.net);
                }
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

fn add(entry: &mut Pending, diff: &TrafficDiff) {
    entry.net.plus_equals(diff);
    entry.inserted.plus_equals(diff);
}
