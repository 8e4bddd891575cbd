//! `reduce` for totally ordered times, without arrangements.
//!
//! Window indices are totally ordered, so the contents of a collection at time `t` are
//! its contents at the time before plus the updates at `t`. [`reduce_total`] keeps, per
//! key, just those current contents, added up in the form its logic reads (an
//! [`Accumulate`]: bucket counts, a sorted set, sums), and the current output. It
//! applies each time's updates once the frontier has passed it, and emits the
//! output's changes (those its logic tracks itself, from its input's changes, it emits
//! directly instead of listing its whole output). Unlike differential's `reduce`, it
//! keeps no arranged history of the input and output (two spines of batches that
//! hold old and new records until they merge), and a change costs a few additions to
//! the key's state rather than cursor walks over several batches or a merge of the
//! key's sorted values.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::chunked::Chunked;
use crate::hash::FxHashMap;
use crate::prefetch::prefetch;

/// A key's input as [`reduce_total`] keeps it: every update so far, added up.
///
/// Updates arrive in any order within a time, so `add` must commute; an update and
/// its negation must cancel, leaving the state as it was.
pub trait Accumulate<V, R>: Default {
    /// Adds one update.
    fn add(&mut self, value: &V, diff: &R);
    /// Whether every update has cancelled (the key then has no input).
    fn is_empty(&self) -> bool;

    /// Asks for the memory that `add` and the reduce's logic will read (a hint that
    /// changes nothing): [`reduce_total`] calls it a few keys ahead of their turn.
    fn prefetch(&self) {}
}

/// What [`reduce_total`] keeps for one key.
struct KeyState<S, O> {
    /// The key's input at the last processed time.
    input: S,
    /// The key's output at the last processed time, consolidated and sorted.
    output: Vec<(O, isize)>,
}

impl<S: Default, O> Default for KeyState<S, O> {
    fn default() -> Self {
        Self {
            input: S::default(),
            output: Vec::new(),
        }
    }
}

/// A keyed input update of [`reduce_total`] and its weight, as it waits for its time.
type InputUpdate<V, R> = ((u64, V), R);

/// An output update of [`reduce_total`].
type OutputUpdate<O> = ((u64, O), u64, isize);

/// Like differential's `reduce` on a collection keyed by `u64` with totally ordered
/// `u64` times: for every key whose input changed at a time, `logic(key, input,
/// output, direct)` is called with the key's whole input at that time (accumulated
/// in an `S`, possibly empty) and fills `output`, and the difference from the key's
/// previous output is emitted at that time; the changes it puts in `direct` are
/// emitted as they are (consolidated), for outputs the logic tracks from its input's
/// changes, where listing and diffing them every time would cost their whole size. A
/// key with no input has no output: with an empty input, `output` must stay empty and
/// `direct` must retract what remains of the direct outputs.
///
/// Updates are exchanged by the key's hash, as differential's arrangements are, so a
/// key's updates meet on one worker and nothing is global.
pub fn reduce_total<'s, V, R, S, O, L>(
    input: VecCollection<'s, u64, (u64, V), R>,
    name: &str,
    mut logic: L,
) -> VecCollection<'s, u64, (u64, O), isize>
where
    V: ExchangeData,
    R: ExchangeData,
    S: Accumulate<V, R> + 'static,
    O: ExchangeData,
    L: FnMut(&u64, &mut S, &mut Vec<(O, isize)>, &mut Vec<(O, isize)>) + 'static,
{
    let pact = Exchange::new(|update: &((u64, V), u64, R)| (update.0).0.hashed());
    input
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<OutputUpdate<O>>>, _, _, _>(
            pact,
            name,
            move |capability, _info| {
                let mut capability = Some(capability);
                let mut pending: BTreeMap<u64, Chunked<InputUpdate<V, R>>> = BTreeMap::new();
                let mut state: FxHashMap<u64, KeyState<S, O>> = FxHashMap::default();
                let mut fresh: Vec<(O, isize)> = Vec::new();
                let mut direct: Vec<(O, isize)> = Vec::new();
                let mut order: Vec<(u64, u32, u32)> = Vec::new();

                move |(input, frontier), output| {
                    input.for_each(|_cap, data| {
                        for (kv, t, r) in data.drain(..) {
                            pending.entry(t).or_default().push((kv, r));
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.less_equal(&t) {
                            break;
                        }
                        // Group the updates by key through a small sorted index, so
                        // each key's state is visited once and its output built once.
                        let chunks = entry.remove();
                        order.clear();
                        for (c, chunk) in chunks.chunks().iter().enumerate() {
                            order.extend(
                                chunk
                                    .iter()
                                    .enumerate()
                                    .map(|(i, ((k, _), _))| (*k, c as u32, i as u32)),
                            );
                        }
                        order.sort_unstable();
                        let cap = capability
                            .as_ref()
                            .expect("capability held while updates are pending");
                        let delayed = cap.delayed(&t);
                        let mut session = output.session(&delayed);
                        let update =
                            |&(_, c, i): &(u64, u32, u32)| &chunks.chunks()[c as usize][i as usize];
                        let mut visited = 0;
                        let groups = order.chunk_by(|a, b| a.0 == b.0);
                        let mut later_groups = groups.clone().skip(KEYS_AHEAD);
                        for group in groups {
                            let key = group[0].0;
                            // A key's state lies wherever the map put it, and its
                            // lists elsewhere again: ask for a later key's now.
                            if let Some(later) = later_groups.next()
                                && let Some(keyed) = state.get(&later[0].0)
                            {
                                prefetch(keyed);
                                keyed.input.prefetch();
                            }
                            let keyed = state.entry(key).or_default();
                            for entry in group {
                                // The updates lie scattered over the chunks: ask for
                                // one a little ahead, so its load overlaps this work.
                                if let Some(ahead) = order.get(visited + PREFETCH_AHEAD) {
                                    prefetch(update(ahead));
                                }
                                visited += 1;
                                let ((_, v), r) = update(entry);
                                keyed.input.add(v, r);
                            }
                            fresh.clear();
                            logic(&key, &mut keyed.input, &mut fresh, &mut direct);
                            consolidate(&mut fresh);
                            debug_assert!(
                                !keyed.input.is_empty() || fresh.is_empty(),
                                "a key with no input has no output"
                            );
                            changes(&mut keyed.output, &fresh, |o, r| {
                                session.give(((key, o), t, r));
                            });
                            consolidate(&mut direct);
                            for (o, r) in direct.drain(..) {
                                session.give(((key, o), t, r));
                            }
                            std::mem::swap(&mut keyed.output, &mut fresh);
                            if keyed.input.is_empty() && keyed.output.is_empty() {
                                state.remove(&key);
                            }
                        }
                    }
                    // Hold the capability no later than any time still to be output.
                    hold(
                        &mut capability,
                        [
                            pending.keys().next().copied(),
                            frontier.frontier().iter().min().copied(),
                        ],
                    );
                }
            },
        )
        .as_collection()
}

/// How many updates ahead of its use [`reduce_total`] asks for an update's memory.
const PREFETCH_AHEAD: usize = 16;

/// How many keys ahead of its turn [`reduce_total`] asks for a key's state.
const KEYS_AHEAD: usize = 4;

/// Downgrades `capability` to the earliest of `candidates` (the times still to be
/// output, and the input frontier), or drops it when there is none.
pub(crate) fn hold(
    capability: &mut Option<Capability<u64>>,
    candidates: impl IntoIterator<Item = Option<u64>>,
) {
    match candidates.into_iter().flatten().min() {
        Some(t) => {
            if let Some(cap) = capability.as_mut()
                && *cap.time() < t
            {
                cap.downgrade(&t);
            }
        }
        None => *capability = None,
    }
}

/// Calls `emit` with the updates that turn `old` into `new` (both sorted and
/// consolidated), and leaves `old` empty: a retraction moves the old value out, and
/// only what is new is cloned.
fn changes<O: Ord + Clone>(
    old: &mut Vec<(O, isize)>,
    new: &[(O, isize)],
    mut emit: impl FnMut(O, isize),
) {
    let mut old = old.drain(..).peekable();
    let mut new = new.iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => {
                if let Some((o, r)) = old.next() {
                    emit(o, -r);
                }
            }
            Ordering::Greater => {
                if let Some((o, r)) = new.next() {
                    emit(o.clone(), *r);
                }
            }
            Ordering::Equal => {
                if let (Some((_, was)), Some((o, r))) = (old.next(), new.next())
                    && was != *r
                {
                    emit(o.clone(), r - was);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use differential_dataflow::input::InputSession;
    use proptest::prelude::*;
    use timely::dataflow::operators::{Inspect, Probe};

    use super::{Accumulate, changes, reduce_total};

    /// `(time, key, value, diff)`, sorted by time.
    type Updates = Vec<(u64, u64, u8, isize)>;

    /// A test key's input: the weight of each value, zeros dropped, and the changes
    /// of which values have a positive weight since the logic last took them.
    #[derive(Default)]
    struct Weights {
        weights: BTreeMap<u8, isize>,
        changed: Vec<(u8, isize)>,
    }

    impl Accumulate<u8, isize> for Weights {
        fn add(&mut self, value: &u8, diff: &isize) {
            let w = self.weights.entry(*value).or_default();
            let before = *w > 0;
            *w += diff;
            if before != (*w > 0) {
                self.changed.push((*value, if before { -1 } else { 1 }));
            }
            if *w == 0 {
                self.weights.remove(value);
            }
        }

        fn is_empty(&self) -> bool {
            self.weights.is_empty()
        }
    }

    /// The second value of a direct output, which no weighted sum takes here.
    const DIRECT: i64 = i64::MIN;

    /// The reduce under test: the key's values with a positive count, and their
    /// weighted sum (so both a changed set and a changed total show); and, directly
    /// from the input's changes, each value with a positive count marked [`DIRECT`].
    fn logic(
        input: &mut Weights,
        output: &mut Vec<((u8, i64), isize)>,
        direct: &mut Vec<((u8, i64), isize)>,
    ) {
        direct.extend(input.changed.drain(..).map(|(v, r)| ((v, DIRECT), r)));
        let sum: i64 = (input.weights.iter())
            .map(|(v, r)| i64::from(*v) * *r as i64)
            .sum();
        output.extend(
            (input.weights.iter())
                .filter(|(_, r)| **r > 0)
                .map(|(v, _)| ((*v, sum), 1)),
        );
    }

    /// Runs `reduce_total` on `workers` threads and returns, for every time up to
    /// `last`, the accumulated output.
    fn incremental(updates: &Updates, last: u64, workers: usize) -> Vec<Vec<(u64, (u8, i64))>> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let updates = Arc::new(updates.clone());
        timely::execute(timely::Config::process(workers), move |worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let sink = sink.clone();
            let mut session = InputSession::new();
            let probe = worker.dataflow::<u64, _, _>(|scope| {
                reduce_total(
                    session.to_collection(scope),
                    "Test",
                    |_k, input: &mut Weights, output, direct| logic(input, output, direct),
                )
                .inner
                .inspect(move |update| sink.lock().unwrap().push(*update))
                .probe()
                .0
            });
            for (i, (t, k, v, r)) in updates.iter().enumerate() {
                session.advance_to(*t);
                if i % peers == index {
                    session.update((*k, *v), *r);
                }
                session.flush();
                worker.step();
            }
            session.close();
            worker.step_while(|| !probe.done());
        })
        .unwrap();
        let log = out.lock().unwrap().clone();
        (0..=last)
            .map(|t| {
                let mut acc: BTreeMap<(u64, (u8, i64)), isize> = BTreeMap::new();
                for ((k, o), time, r) in &log {
                    if *time <= t {
                        *acc.entry((*k, *o)).or_default() += r;
                    }
                }
                acc.into_iter()
                    .filter(|(_, r)| *r != 0)
                    .flat_map(|(ko, r)| {
                        assert_eq!(r, 1, "output counts stay 0 or 1");
                        Some(ko)
                    })
                    .collect()
            })
            .collect()
    }

    /// The same reduce recomputed from scratch at every time.
    fn batch(updates: &Updates, last: u64) -> Vec<Vec<(u64, (u8, i64))>> {
        (0..=last)
            .map(|t| {
                let mut input: BTreeMap<u64, BTreeMap<u8, isize>> = BTreeMap::new();
                for (_, k, v, r) in updates.iter().filter(|u| u.0 <= t) {
                    *input.entry(*k).or_default().entry(*v).or_default() += r;
                }
                let mut rows = Vec::new();
                for (k, mut values) in input {
                    values.retain(|_, r| *r != 0);
                    if values.is_empty() {
                        continue;
                    }
                    // The direct outputs straight from the weights, not from changes.
                    rows.extend(
                        (values.iter())
                            .filter(|(_, r)| **r > 0)
                            .map(|(v, _)| (k, (*v, DIRECT))),
                    );
                    let mut output = Vec::new();
                    let mut weights = Weights {
                        weights: values,
                        changed: Vec::new(),
                    };
                    logic(&mut weights, &mut output, &mut Vec::new());
                    rows.extend(output.into_iter().map(|(o, _)| (k, o)));
                }
                rows.sort();
                rows
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn reduce_total_equals_a_batch_recomputation(
            mut updates in prop::collection::vec((0u64..12, 0u64..5, 0u8..6, -2isize..3), 0..80),
        ) {
            updates.sort_by_key(|u| u.0);
            for workers in [1, 2] {
                prop_assert_eq!(incremental(&updates, 12, workers), batch(&updates, 12), "workers {}", workers);
            }
        }
    }

    #[test]
    fn a_time_with_more_updates_than_a_chunk_equals_the_batch_recomputation() {
        // Two and a half chunks at time 1, a few retractions at 2, one chunk at 3.
        let mut updates: Updates = Vec::new();
        for (t, n) in [(1u64, 10_000u64), (2, 300), (3, 4_096)] {
            updates.extend((0..n).map(|i| {
                let h = (i * 7 + t * 13).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                let diff = if t == 2 { -1 } else { 1 };
                (t, h % 40, (h % 6) as u8, diff)
            }));
        }
        for workers in [1, 2] {
            assert_eq!(
                incremental(&updates, 3, workers),
                batch(&updates, 3),
                "workers {workers}"
            );
        }
    }

    fn collect(old: &[(i32, isize)], new: &[(i32, isize)]) -> Vec<(i32, isize)> {
        let mut out = Vec::new();
        changes(&mut old.to_vec(), new, |o, r| out.push((o, r)));
        out
    }

    #[test]
    fn changes_turn_the_old_output_into_the_new() {
        let old = [(1, 1), (3, 2), (5, 1)];
        let new = [(2, 1), (3, 1), (5, 1), (7, 4)];
        assert_eq!(collect(&old, &new), vec![(1, -1), (2, 1), (3, -1), (7, 4)]);
        assert_eq!(collect(&old, &[]), vec![(1, -1), (3, -2), (5, -1)]);
        assert!(collect(&new, &new).is_empty());
    }
}
