//! Worker-local pre-aggregation of events before they enter differential.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use differential_dataflow::difference::{Abelian, Semigroup};

use crate::hash::FxHashMap;
use crate::window::WindowSpec;

use super::diff::{Direction, FeatureDiff, FeatureVal};

/// A feature update's key: the node and what the update is about.
type Key = (u64, FeatureVal);

/// A directed link `(src, dst)`: the peer presence of both its ends, `src`'s peer
/// `dst` out and `dst`'s peer `src` in, which always come and go together. The bulk
/// of the updates, and always a count of one, so it is kept apart from the other
/// keys, without a weight, and once for both ends.
type LinkKey = (u64, u64);

/// A key's inserts at one time, and the retraction of an earlier time's inserts due
/// at that time once merged in: what is emitted is their difference, and the inserts
/// are what a later time retracts.
#[derive(Clone, Copy, Debug, Default)]
struct Both<W> {
    inserted: W,
    due: W,
}

/// A metric series' samples at one time: the key, how many, and their sum.
type Sums = (Key, i64, i128);

/// What one time holds until it is flushed, each kind of value kept apart, keyed and
/// weighted no larger than it needs: traffic totals by node alone (the hot key, one
/// per flow end), links (both ends' peer presence) as two flags, drops and sketch
/// buckets as a count, metric series as a count and a sum.
#[derive(Default)]
struct Bucket {
    totals: FxHashMap<u64, Both<FeatureDiff>>,
    links: FxHashMap<LinkKey, Both<bool>>,
    counts: FxHashMap<Key, Both<i64>>,
    /// Metric samples as they come. A series has about one sample per slide, so a
    /// map would hold each sample once anyway, at a cache miss or two per sample in
    /// a table of every series; a list is appended to in order and compacted
    /// ([`Bucket::compact_sums`]) when the worker would otherwise wait and at the flush.
    sums: Vec<Sums>,
    /// How many of `sums` are compacted already (sorted, each key once).
    sums_compacted: usize,
    /// The retraction of an earlier time's metric sums due at this time: sorted
    /// ([`sums_order`]), each key once (see [`Retractions::sums`]).
    due_sums: Vec<Sums>,
    /// Whether the retractions due at this time are in (see
    /// [`FeatureCombiner::prepare`]); until then they wait in `retractions`.
    merged: bool,
}

impl Bucket {
    /// Sorts `sums` ([`sums_order`]) and adds up each key's entries into one, leaving
    /// out keys that add up to nothing. Past the first time, the work is sorting what
    /// came since and merging it in (a stable sort finds the sorted run).
    fn compact_sums(&mut self) {
        let sums = &mut self.sums;
        if sums.len() == self.sums_compacted {
            return;
        }
        sums.sort_by(|a, b| sums_order(&a.0, &b.0));
        sums.dedup_by(|next, kept| {
            let same = sums_order(&next.0, &kept.0).is_eq();
            if same {
                kept.1 += next.1;
                kept.2 += next.2;
            }
            same
        });
        sums.retain(|s| (s.1, s.2) != (0, 0));
        self.sums_compacted = sums.len();
    }

    /// Adds the retractions `due` to the keys' `due` parts.
    fn merge(&mut self, due: Retractions) {
        // Most keys are due and inserted alike: room for the due ones up front when
        // the inserts are yet to come (merged ahead), none when they are in already.
        self.totals
            .reserve(due.totals.len().saturating_sub(self.totals.len()));
        self.links
            .reserve(due.links.len().saturating_sub(self.links.len()));
        self.counts
            .reserve(due.counts.len().saturating_sub(self.counts.len()));
        for (node, diff) in due.totals {
            self.totals.entry(node).or_default().due.plus_equals(&diff);
        }
        for key in due.links {
            self.links.entry(key).or_default().due = true;
        }
        for (key, count) in due.counts {
            self.counts.entry(key).or_default().due += count;
        }
        debug_assert!(self.due_sums.is_empty());
        self.due_sums = due.sums;
    }
}

/// The inserts of one time kept until their retraction is due: they wait a whole
/// window length, so a node holds `length / slide` times its updates per slide. Each
/// kind keeps what its insert held (a steady mesh of `E` directed edges holds
/// `E × length / slide` link entries at any time).
#[derive(Default)]
struct Retractions {
    totals: Vec<(u64, FeatureDiff)>,
    links: Vec<LinkKey>,
    counts: Vec<(Key, i64)>,
    /// Sorted by key ([`sums_order`]), each key once, so that it nets against its
    /// time's sorted inserts in one merge.
    sums: Vec<Sums>,
}

impl Retractions {
    fn is_empty(&self) -> bool {
        self.totals.is_empty()
            && self.links.is_empty()
            && self.counts.is_empty()
            && self.sums.is_empty()
    }
}

/// Folds events into per-node feature updates, keyed by the window time at which
/// they take effect.
///
/// Inserts are held until [`FeatureCombiner::flush`]; at that point their
/// retraction is scheduled `length` later, where it nets against later inserts of the
/// same key. A link counts once per key and flush, so a steady edge adds and
/// retracts the same amount and disappears from the update stream. The netting can be
/// done ahead of the flush ([`FeatureCombiner::prepare`]), while the worker is idle,
/// so that a window's close only has to walk its keys.
pub struct FeatureCombiner {
    spec: WindowSpec,
    /// Inserts not yet flushed, per time, with the retractions merged in.
    pending: BTreeMap<u64, Bucket>,
    /// Retractions scheduled and not yet merged into their time's bucket, per time.
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

    fn bucket(&mut self, epoch: u64) -> &mut Bucket {
        let time = self.spec.first_window(epoch);
        self.pending.entry(time).or_default()
    }

    /// Adds one flow observed at `epoch` from `src` to `dst`.
    pub fn add_flow(&mut self, epoch: u64, src: u64, dst: u64, bytes: u64, packets: u64) {
        let bucket = self.bucket(epoch);
        let (bytes, packets) = (bytes as i64, packets as i64);
        let sent = &mut bucket.totals.entry(src).or_default().inserted;
        sent.bytes_out += bytes;
        sent.packets_out += packets;
        sent.flows_out += 1;
        let received = &mut bucket.totals.entry(dst).or_default().inserted;
        received.bytes_in += bytes;
        received.packets_in += packets;
        received.flows_in += 1;
        link(bucket, src, dst);
    }

    /// Adds the link `src -> dst` at `epoch` without traffic: a given topology's edge,
    /// counted in degrees and neighbourhoods like a flow's.
    pub fn add_link(&mut self, epoch: u64, src: u64, dst: u64) {
        link(self.bucket(epoch), src, dst);
    }

    /// Adds `diff` to `node`'s `val` at `epoch`, for any value but
    /// [`FeatureVal::Peer`], whose presence only [`FeatureCombiner::add_flow`] and
    /// [`FeatureCombiner::add_link`] maintain. Only the fields the value is read for
    /// are kept: all of them for [`FeatureVal::Totals`], `count` and `sum` for
    /// [`FeatureVal::Metric`], `count` for the others.
    pub fn add(&mut self, epoch: u64, node: u64, val: FeatureVal, diff: FeatureDiff) {
        debug_assert!(!matches!(val, FeatureVal::Peer(..)));
        let bucket = self.bucket(epoch);
        match val {
            FeatureVal::Totals => {
                let totals = &mut bucket.totals.entry(node).or_default().inserted;
                totals.plus_equals(&diff);
            }
            FeatureVal::Metric(_) => bucket.sums.push(((node, val), diff.count, diff.sum)),
            _ => bucket.counts.entry((node, val)).or_default().inserted += diff.count,
        }
    }

    /// Merges the retractions due at times up to `upto` into those times' inserts,
    /// so that their [`FeatureCombiner::flush`] only walks the keys. It changes no
    /// update; call it when the worker would otherwise wait, with the next time to be
    /// flushed.
    pub fn prepare(&mut self, upto: u64) {
        while let Some(time) = self.retractions.range(..=upto).next().map(|(&t, _)| t) {
            self.merge_due(time);
        }
        for bucket in self.pending.range_mut(..=upto).map(|(_, b)| b) {
            bucket.compact_sums();
        }
    }

    /// Merges the retractions due at `time` into its bucket, which this creates.
    fn merge_due(&mut self, time: u64) {
        let bucket = self.pending.entry(time).or_default();
        if !bucket.merged {
            if let Some(due) = self.retractions.remove(&time) {
                bucket.merge(due);
            }
            bucket.merged = true;
        }
    }

    /// Schedules `inserts` to be retracted at `time`. Only one earlier time retires
    /// at `time`, and it is flushed before `time`'s retractions can be merged (they do
    /// not exist until now), so none are there yet.
    fn schedule(&mut self, time: u64, inserts: Retractions) {
        if inserts.is_empty() {
            return;
        }
        debug_assert!(!self.pending.get(&time).is_some_and(|b| b.merged));
        let earlier = self.retractions.insert(time, inserts);
        debug_assert!(earlier.is_none(), "two times retire at {time}");
    }

    /// Emits every pending update at a time before `before`, scheduling the
    /// retractions of its inserts. Call it before advancing the input to `before`.
    pub fn flush(&mut self, before: u64, mut emit: impl FnMut(Key, u64, FeatureDiff)) {
        while let Some(time) = self.next_time().filter(|&t| t < before) {
            self.merge_due(time);
            let mut bucket = self.pending.remove(&time).unwrap_or_default();
            bucket.compact_sums();
            let mut later = Retractions {
                totals: Vec::with_capacity(bucket.totals.len()),
                links: Vec::with_capacity(bucket.links.len()),
                counts: Vec::with_capacity(bucket.counts.len()),
                sums: Vec::new(),
            };
            // A link is inserted at most once per time, and retracted at most once
            // (from one earlier time).
            for (key, both) in bucket.links {
                if both.inserted {
                    later.links.push(key);
                }
                let count = i64::from(both.inserted) - i64::from(both.due);
                if count != 0 {
                    let (src, dst) = key;
                    let diff = FeatureDiff::count(count);
                    emit((src, FeatureVal::Peer(dst, Direction::Out)), time, diff);
                    emit((dst, FeatureVal::Peer(src, Direction::In)), time, diff);
                }
            }
            for (node, both) in bucket.totals {
                if both.inserted != FeatureDiff::default() {
                    later.totals.push((node, both.inserted));
                }
                let mut net = both.due;
                net.negate();
                net.plus_equals(&both.inserted);
                if net != FeatureDiff::default() {
                    emit((node, FeatureVal::Totals), time, net);
                }
            }
            for (key, both) in bucket.counts {
                let count = both.inserted - both.due;
                if both.inserted != 0 {
                    later.counts.push((key.clone(), both.inserted));
                }
                if count != 0 {
                    emit(key, time, FeatureDiff::count(count));
                }
            }
            later.sums = net_sums(bucket.sums, bucket.due_sums, |key, count, sum| {
                let diff = FeatureDiff {
                    count,
                    sum,
                    ..Default::default()
                };
                emit(key, time, diff);
            });
            self.schedule(self.spec.retire(time), later);
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

/// The order of metric sums' keys: by node, then by the name's hash, and only for
/// equal hashes by text. Any total order groups equal keys; this one rarely reads a
/// name, where sorting by text compared two names of a node at nearly every step.
fn sums_order(a: &Key, b: &Key) -> Ordering {
    let hash = |val: &FeatureVal| match val {
        FeatureVal::Metric(name) => name.text_hash(),
        _ => 0,
    };
    (a.0, hash(&a.1))
        .cmp(&(b.0, hash(&b.1)))
        .then_with(|| a.1.cmp(&b.1))
}

/// Nets a time's compacted metric sums `summed` ([`Bucket::compact_sums`]) against the
/// retraction `due` (compacted too): emits each key's nonzero difference, and
/// returns `summed`, for its own retraction later.
fn net_sums(summed: Vec<Sums>, due: Vec<Sums>, mut emit: impl FnMut(Key, i64, i128)) -> Vec<Sums> {
    let mut due = due.into_iter().peekable();
    for (key, count, sum) in &summed {
        while let Some(d) = due.next_if(|d| sums_order(&d.0, key).is_lt()) {
            emit(d.0, -d.1, -d.2);
        }
        let (count, sum) = match due.next_if(|d| sums_order(&d.0, key).is_eq()) {
            Some(d) => (count - d.1, sum - d.2),
            None => (*count, *sum),
        };
        if (count, sum) != (0, 0) {
            emit(key.clone(), count, sum);
        }
    }
    for d in due {
        emit(d.0, -d.1, -d.2);
    }
    summed
}

/// Marks the link `src -> dst` in `bucket`, once per key (a self-loop is no link).
fn link(bucket: &mut Bucket, src: u64, dst: u64) {
    if src != dst {
        bucket.links.entry((src, dst)).or_default().inserted = true;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use differential_dataflow::difference::Semigroup;
    use proptest::prelude::*;

    use super::{FeatureCombiner, Key};
    use crate::features::diff::{FeatureDiff, FeatureVal, Name};
    use crate::window::WindowSpec;

    /// A combiner input: a flow `(src, dst, bytes)` or a value added to a node.
    #[derive(Clone, Debug)]
    enum Input {
        Flow(u64, u64, u64),
        Add(u64, FeatureVal, FeatureDiff),
    }

    fn input() -> impl Strategy<Value = Input> {
        let val = crate::features::tests::non_peer_value();
        let add = (0u64..4, val, -2i64..3, -3i128..4).prop_map(|(node, val, count, sum)| {
            let diff = match val {
                FeatureVal::Totals => FeatureDiff {
                    retransmits: count,
                    ..Default::default()
                },
                FeatureVal::Metric(_) => FeatureDiff {
                    count,
                    sum,
                    ..Default::default()
                },
                _ => FeatureDiff::count(count),
            };
            Input::Add(node, val, diff)
        });
        prop_oneof![
            (0u64..4, 0u64..4, 0u64..50).prop_map(|(s, d, b)| Input::Flow(s, d, b)),
            add,
        ]
    }

    /// Window `w`'s contents straight from the inputs: the sum of each key's weights
    /// over the inputs whose first window is one of the `length` ending at `w`, with
    /// a peer counted once per first window.
    fn direct(inputs: &[(u64, Input)], spec: WindowSpec, w: u64) -> BTreeMap<Key, FeatureDiff> {
        let mut sums: BTreeMap<Key, FeatureDiff> = BTreeMap::new();
        let mut peers = BTreeSet::new();
        for (epoch, input) in inputs {
            let first = spec.first_window(*epoch);
            if first > w || spec.retire(first) <= w {
                continue;
            }
            match input {
                Input::Flow(src, dst, bytes) => {
                    let (b, p) = (*bytes as i64, 3);
                    let mut add = |node, diff: FeatureDiff| {
                        sums.entry((node, FeatureVal::Totals))
                            .or_default()
                            .plus_equals(&diff)
                    };
                    let sent = FeatureDiff {
                        bytes_out: b,
                        packets_out: p,
                        flows_out: 1,
                        ..Default::default()
                    };
                    add(*src, sent);
                    let received = FeatureDiff {
                        bytes_in: b,
                        packets_in: p,
                        flows_in: 1,
                        ..Default::default()
                    };
                    add(*dst, received);
                    if src != dst {
                        use crate::features::diff::Direction::{In, Out};
                        peers.insert((first, *src, FeatureVal::Peer(*dst, Out)));
                        peers.insert((first, *dst, FeatureVal::Peer(*src, In)));
                    }
                }
                Input::Add(node, val, diff) => sums
                    .entry((*node, val.clone()))
                    .or_default()
                    .plus_equals(diff),
            }
        }
        for (_, node, val) in peers {
            sums.entry((node, val))
                .or_default()
                .plus_equals(&FeatureDiff::count(1));
        }
        sums.retain(|_, d| *d != FeatureDiff::default());
        sums
    }

    /// A steady metric series (the same samples every slide) nets out once the window
    /// is full: its inserts and retractions meet in the sorted lists, whether a
    /// slide's list was compacted ahead or only at the flush, and whatever order the
    /// series arrive in.
    #[test]
    fn a_steady_series_nets_out() {
        let spec = WindowSpec::new(1, 3, 1).unwrap();
        let mut combiner = FeatureCombiner::new(spec);
        // The window is full from the first inserts' retraction on.
        let full = spec.retire(spec.first_window(0));
        let mut late = Vec::new();
        for epoch in 0..12u64 {
            combiner.flush(spec.first_window(epoch), |k, t, d| {
                if t >= full {
                    late.push((k, t, d));
                }
            });
            let names = ["m", "n", "o"];
            for i in 0..18u64 {
                // Each of 3 nodes' 3 series twice, in a different order each slide.
                let k = (i * 4 + epoch) % 9;
                let (node, name) = (k / 3, Name::from(names[(k % 3) as usize]));
                let diff = FeatureDiff {
                    count: 1,
                    sum: i128::from(node as u8) * 10,
                    ..Default::default()
                };
                combiner.add(epoch, node, FeatureVal::Metric(name), diff);
                if (i + epoch) % 4 == 0 {
                    combiner.prepare(spec.first_window(epoch));
                }
            }
        }
        assert_eq!(late, Vec::new());
    }

    proptest! {
        /// The updates the combiner emits up to each window add up to that window's
        /// contents, computed straight from the inputs, wherever the retractions were
        /// netted ahead.
        #[test]
        fn updates_add_up_to_each_window(
            mut inputs in prop::collection::vec((0u64..12, input()), 0..60),
            (slide, mult) in (1u64..3, 1u64..4),
            prepares in prop::collection::vec(prop::option::of(0u64..30), 60),
        ) {
            let spec = WindowSpec::new(1, (slide * mult) as i64, slide as i64).unwrap();
            inputs.sort_by_key(|i| i.0);
            let mut combiner = FeatureCombiner::new(spec);
            let mut updates: Vec<(Key, u64, FeatureDiff)> = Vec::new();
            for ((epoch, input), prepare) in inputs.iter().zip(&prepares) {
                combiner.flush(spec.first_window(*epoch), |k, t, d| updates.push((k, t, d)));
                // Netting ahead, up to any time (even one still taking inserts),
                // changes no update.
                if let Some(upto) = prepare {
                    combiner.prepare(*upto);
                }
                match input {
                    Input::Flow(s, d, b) => combiner.add_flow(*epoch, *s, *d, *b, 3),
                    Input::Add(node, val, diff) => combiner.add(*epoch, *node, val.clone(), *diff),
                }
            }
            combiner.flush(u64::MAX, |k, t, d| updates.push((k, t, d)));
            prop_assert!(combiner.is_empty());
            for w in 0..24 {
                let mut got: BTreeMap<Key, FeatureDiff> = BTreeMap::new();
                for (k, t, d) in &updates {
                    if *t <= w {
                        got.entry(k.clone()).or_default().plus_equals(d);
                    }
                }
                got.retain(|_, d| *d != FeatureDiff::default());
                prop_assert_eq!(got, direct(&inputs, spec, w), "window {}", w);
            }
        }
    }
}
