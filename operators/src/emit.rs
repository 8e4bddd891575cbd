//! Emitting complete rows for each closed window.

use std::collections::BTreeMap;

use differential_dataflow::Hashable;
use differential_dataflow::VecCollection;
use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::batches::RowBatches;
use crate::chunked::Chunked;
use crate::hash::FxHashMap;
use crate::total::hold;
use crate::window::WindowSpec;

/// How many rows ahead of its turn [`emit_windows`] asks for a row's parts.
const ROWS_AHEAD: usize = 4;

/// A keyed part and its weight, as the operator buffers it until its window closes.
type Update<K, P> = ((K, P), isize);

/// A row put together from parts: what [`emit_windows`] keeps per key.
pub trait Assemble: Default + 'static {
    /// One part of the row, as the collection carries it.
    type Part;
    /// Clears the part's kind (a retraction of its value).
    fn clear(&mut self, part: &Self::Part);
    /// Sets the part's kind to the part (an insertion).
    fn set(&mut self, part: Self::Part);
    /// Whether every part is clear, so the key can be forgotten.
    fn is_empty(&self) -> bool;
    /// Whether the parts make a row (e.g. the node's own features are present).
    fn is_complete(&self) -> bool;

    /// Asks for the memory the row will be built from (a hint that changes nothing):
    /// [`emit_windows`] calls it a few rows ahead of their turn.
    fn prefetch(&self) {}
}

/// Turns a windowed collection of row parts (contents at time `W` = window `W`, at
/// most one value per key and part kind) into complete rows for every window once the
/// frontier has passed it. At each time, a key's part kind may change by at most the
/// retraction of its old value and the insertion of its new one, in either order (as
/// a reduce's output changes, or a value split into parts, are).
///
/// Differential reports only changes; a window whose contents equal the previous
/// one's produces no updates, yet needs its rows. This operator keeps the current
/// parts per key and, for each closed window end (every `slide` while any key is
/// present), calls `row(window, key, parts)` for every key with a complete row. Rows
/// of window `W` are emitted at timely time `W`. The parts are exchanged by key (the
/// hash differential's own arrangements use), so a key's parts meet on one worker
/// and nothing is global. Assembling here, rather than in a `reduce`, keeps no
/// arranged copy of every row.
pub fn emit_windows<'s, K, S, O, F>(
    collection: VecCollection<'s, u64, (K, S::Part), isize>,
    spec: WindowSpec,
    mut row: F,
) -> Stream<'s, u64, Vec<O>>
where
    K: ExchangeData + Clone + Eq + std::hash::Hash + Ord + Hashable,
    S: Assemble,
    S::Part: ExchangeData + Ord,
    O: Clone + 'static,
    F: FnMut(u64, &K, &S) -> O + 'static,
{
    let pact = Exchange::new(|update: &((K, S::Part), u64, isize)| (update.0).0.hashed().into());
    collection.inner.unary_frontier::<RowBatches<O>, _, _, _>(
        pact,
        "EmitWindows",
        move |capability, _info| {
            let mut capability = Some(capability);
            let mut pending: BTreeMap<u64, Chunked<Update<K, S::Part>>> = BTreeMap::new();
            let mut current: FxHashMap<K, S> = FxHashMap::default();
            let mut next_window: Option<u64> = None;

            move |(input, frontier), output| {
                input.for_each(|_cap, data| {
                    for ((k, v), t, r) in data.drain(..) {
                        pending.entry(t).or_default().push(((k, v), r));
                    }
                });
                loop {
                    // The next window worth emitting: the next slide while keys are
                    // present, else the next time anything changes.
                    let candidate = match (current.is_empty(), next_window, pending.keys().next()) {
                        (false, Some(w), first) => Some(first.map_or(w, |&f| f.min(w))),
                        (_, _, Some(&f)) => Some(f),
                        _ => None,
                    };
                    let Some(w) = candidate else { break };
                    if frontier.less_equal(&w) {
                        break;
                    }
                    while let Some(entry) = pending.first_entry() {
                        if *entry.key() > w {
                            break;
                        }
                        let mut updates = entry.remove();
                        // Retractions first, then insertions, so a part's new value
                        // replaces the old; parts (large) move once, when set.
                        for ((k, part), _) in updates.chunks().iter().flatten().filter(|u| u.1 < 0)
                        {
                            if let Some(parts) = current.get_mut(k) {
                                parts.clear(part);
                                if parts.is_empty() {
                                    current.remove(k);
                                }
                            }
                        }
                        for chunk in updates.chunks_mut() {
                            for ((k, part), r) in chunk.drain(..) {
                                if r > 0 {
                                    current.entry(k).or_default().set(part);
                                }
                            }
                        }
                    }
                    if !current.is_empty() {
                        let cap = capability
                            .as_ref()
                            .expect("capability held while output is pending");
                        let delayed = cap.delayed(&w);
                        let mut session = output.session_with_builder(&delayed);
                        // Each row's parts by reference, so a key is looked up
                        // once; in key order, for output that does not depend on
                        // the map's.
                        let mut rows: Vec<(K, &S)> = (current.iter())
                            .filter(|(_, parts)| parts.is_complete())
                            .map(|(k, parts)| (k.clone(), parts))
                            .collect();
                        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                        for (i, (k, parts)) in rows.iter().enumerate() {
                            // The parts lie wherever the map and the allocator
                            // put them: ask for a later row's now.
                            if let Some((_, later)) = rows.get(i + ROWS_AHEAD) {
                                later.prefetch();
                            }
                            session.give(row(w, k, parts));
                        }
                        next_window = Some(w + spec.slide);
                    } else {
                        next_window = None;
                    }
                }
                // Hold the capability no later than anything we may still emit.
                hold(
                    &mut capability,
                    [
                        next_window.filter(|_| !current.is_empty()),
                        pending.keys().next().copied(),
                        frontier.frontier().iter().min().copied(),
                    ],
                );
            }
        },
    )
}
