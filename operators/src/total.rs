//! `reduce` for totally ordered times, without arrangements.
//!
//! Window indices are totally ordered, so the contents of a collection at time `t` are
//! its contents at the time before plus the updates at `t`. [`reduce_total`] keeps, per
//! key, just those current contents and the current output, applies each time's
//! updates once the frontier has passed it, and emits the output's changes. Unlike
//! differential's `reduce`, it keeps no arranged history of the input and output (two
//! spines of batches that hold old and new records until they merge), so a key costs
//! one consolidated copy of its values, and a change costs a merge into the key's
//! sorted values rather than cursor walks over several batches.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::difference::Semigroup;
use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::chunked::Chunked;
use crate::hash::FxHashMap;

/// What [`reduce_total`] keeps for one key.
struct KeyState<V, R, O> {
    /// The key's input at the last processed time, consolidated and sorted.
    values: Vec<(V, R)>,
    /// The key's output at the last processed time, consolidated and sorted.
    output: Vec<(O, isize)>,
}

impl<V, R, O> Default for KeyState<V, R, O> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            output: Vec::new(),
        }
    }
}

/// A keyed input update of [`reduce_total`] and its weight, as it waits for its time.
type InputUpdate<V, R> = ((u64, V), R);

/// A time's pending input, each update taken (`None`) once grouped by key.
type Pending<V, R> = Chunked<Option<InputUpdate<V, R>>>;

/// An output update of [`reduce_total`].
type OutputUpdate<O> = ((u64, O), u64, isize);

/// Like differential's `reduce` on a collection keyed by `u64` with totally ordered
/// `u64` times: for every key whose input changed at a time, `logic(key, input,
/// output)` is called with the key's whole input at that time (sorted, consolidated,
/// never empty) and fills the output, and the difference from the key's previous
/// output is emitted at that time. A key with no input has no output.
///
/// Updates are exchanged by the key's hash, as differential's arrangements are, so a
/// key's updates meet on one worker and nothing is global.
pub fn reduce_total<'s, V, R, O, L>(
    input: VecCollection<'s, u64, (u64, V), R>,
    name: &str,
    mut logic: L,
) -> VecCollection<'s, u64, (u64, O), isize>
where
    V: ExchangeData,
    R: ExchangeData + Semigroup,
    O: ExchangeData,
    L: FnMut(&u64, &[(V, R)], &mut Vec<(O, isize)>) + 'static,
{
    let pact = Exchange::new(|update: &((u64, V), u64, R)| (update.0).0.hashed());
    input
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<OutputUpdate<O>>>, _, _, _>(
            pact,
            name,
            move |capability, _info| {
                let mut capability = Some(capability);
                let mut pending: BTreeMap<u64, Pending<V, R>> = BTreeMap::new();
                let mut state: FxHashMap<u64, KeyState<V, R, O>> = FxHashMap::default();
                let mut fresh: Vec<(O, isize)> = Vec::new();
                let mut order: Vec<(u64, u32, u32)> = Vec::new();
                let (mut incoming, mut merged) = (Vec::new(), Vec::new());

                move |(input, frontier), output| {
                    input.for_each(|_cap, data| {
                        for (kv, t, r) in data.drain(..) {
                            pending.entry(t).or_default().push(Some((kv, r)));
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.less_equal(&t) {
                            break;
                        }
                        // Group the updates by key through a small sorted index, so
                        // each (possibly large) update moves a fixed number of times.
                        let mut chunks = entry.remove();
                        order.clear();
                        for (c, chunk) in chunks.chunks().iter().enumerate() {
                            order.extend(chunk.iter().enumerate().filter_map(|(i, u)| {
                                let ((k, _), _) = u.as_ref()?;
                                Some((*k, c as u32, i as u32))
                            }));
                        }
                        order.sort_unstable();
                        let cap = capability
                            .as_ref()
                            .expect("capability held while updates are pending");
                        let delayed = cap.delayed(&t);
                        let mut session = output.session(&delayed);
                        for group in order.chunk_by(|a, b| a.0 == b.0) {
                            let key = group[0].0;
                            incoming.clear();
                            incoming.extend(group.iter().filter_map(|&(_, c, i)| {
                                chunks.chunks_mut()[c as usize][i as usize]
                                    .take()
                                    .map(|((_, v), r)| (v, r))
                            }));
                            consolidate(&mut incoming);
                            let keyed = state.entry(key).or_default();
                            merge(&mut keyed.values, &mut incoming, &mut merged);
                            fresh.clear();
                            if !keyed.values.is_empty() {
                                logic(&key, &keyed.values, &mut fresh);
                                consolidate(&mut fresh);
                            }
                            changes(&mut keyed.output, &fresh, |o, r| {
                                session.give(((key, o), t, r));
                            });
                            std::mem::swap(&mut keyed.output, &mut fresh);
                            if keyed.values.is_empty() && keyed.output.is_empty() {
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

/// Adds `incoming` (sorted, consolidated; left empty) to `values` (sorted,
/// consolidated), dropping values whose weight becomes zero; `merged` is scratch.
///
/// Most changes only move the weight of values the key already holds (a node's
/// traffic totals, every window): those are added in place, by binary search, and
/// the key's values are rebuilt by a merge only when one appears or disappears.
fn merge<V: Ord, R: Semigroup>(
    values: &mut Vec<(V, R)>,
    incoming: &mut Vec<(V, R)>,
    merged: &mut Vec<(V, R)>,
) {
    if incoming.len() * 4 <= values.len() && adds_in_place(values, incoming) {
        incoming.clear();
        return;
    }
    merged.clear();
    let mut old = values.drain(..).peekable();
    let mut new = incoming.drain(..).peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        let next = match order {
            Ordering::Less => old.next(),
            Ordering::Greater => new.next(),
            Ordering::Equal => old
                .next()
                .zip(new.next())
                .and_then(|((v, mut r), (_, add))| {
                    r.plus_equals(&add);
                    (!r.is_zero()).then_some((v, r))
                }),
        };
        merged.extend(next);
    }
    drop(old);
    // The key keeps an allocation of its own, sized to what it holds: swapping in the
    // scratch vector handed one key's capacity to the next, and key states carried up
    // to twice the memory they needed.
    if values.capacity() > 2 * merged.len() {
        *values = Vec::new();
    }
    values.reserve_exact(merged.len());
    values.append(merged);
}

/// Adds every update of `incoming` to the weight `values` holds for its value, if
/// each value is held and no weight becomes zero; otherwise changes nothing and
/// returns `false` (the caller merges).
fn adds_in_place<V: Ord, R: Semigroup>(values: &mut [(V, R)], incoming: &[(V, R)]) -> bool {
    let position = |values: &[(V, R)], v: &V| values.binary_search_by(|probe| probe.0.cmp(v));
    let fits = incoming.iter().all(|(v, add)| {
        position(values, v).is_ok_and(|i| {
            let mut sum = values[i].1.clone();
            sum.plus_equals(add);
            !sum.is_zero()
        })
    });
    if fits {
        for (v, add) in incoming {
            if let Ok(i) = position(values, v) {
                values[i].1.plus_equals(add);
            }
        }
    }
    fits
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

    use super::{changes, merge, reduce_total};

    /// `(time, key, value, diff)`, sorted by time.
    type Updates = Vec<(u64, u64, u8, isize)>;

    /// The reduce under test: the key's values with a positive count, and their
    /// weighted sum (so both a changed set and a changed total show).
    fn logic(input: &[(u8, isize)], output: &mut Vec<((u8, i64), isize)>) {
        let sum: i64 = input.iter().map(|(v, r)| i64::from(*v) * *r as i64).sum();
        output.extend(
            input
                .iter()
                .filter(|(_, r)| *r > 0)
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
                reduce_total(session.to_collection(scope), "Test", |_k, input, output| {
                    logic(input, output)
                })
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
                for (k, values) in input {
                    let values: Vec<(u8, isize)> =
                        values.into_iter().filter(|(_, r)| *r != 0).collect();
                    if values.is_empty() {
                        continue;
                    }
                    let mut output = Vec::new();
                    logic(&values, &mut output);
                    rows.extend(output.into_iter().map(|(o, _)| (k, o)));
                }
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

    proptest! {
        /// Few updates of held values take the in-place path, others the rebuild;
        /// both equal adding weights in a map.
        #[test]
        fn merge_equals_adding_in_a_map(
            held in prop::collection::btree_map(0u8..40, -3isize..4, 0..30),
            incoming in prop::collection::btree_map(0u8..40, -3isize..4, 0..8),
        ) {
            let held: Vec<(u8, isize)> = held.into_iter().filter(|e| e.1 != 0).collect();
            let incoming: Vec<(u8, isize)> = incoming.into_iter().filter(|e| e.1 != 0).collect();
            let mut expect: BTreeMap<u8, isize> = held.iter().copied().collect();
            for (v, r) in &incoming {
                *expect.entry(*v).or_default() += r;
            }
            let expect: Vec<(u8, isize)> = expect.into_iter().filter(|e| e.1 != 0).collect();
            let mut values = held;
            merge(&mut values, &mut incoming.clone(), &mut Vec::new());
            prop_assert_eq!(values, expect);
        }
    }

    #[test]
    fn merge_adds_weights_and_drops_zeros() {
        let mut values = vec![(1, 1isize), (3, 2), (5, 1)];
        let mut incoming = vec![(0, 4isize), (3, -2), (5, 1), (9, -1)];
        merge(&mut values, &mut incoming, &mut Vec::new());
        assert_eq!(values, vec![(0, 4), (1, 1), (5, 2), (9, -1)]);
        assert!(incoming.is_empty());
    }
}
