//! Emitting complete rows for each closed window.

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::hash::FxHashMap;
use crate::window::WindowSpec;

/// Turns a windowed collection (one value per key, contents at time `W` = window `W`)
/// into complete rows for every window once the frontier has passed it.
///
/// Differential reports only changes; a window whose contents equal the previous
/// one's produces no updates, yet needs its rows. This operator keeps the current
/// value per key and, for each closed window end (every `slide` while any key is
/// present), calls `row(window, key, value)` for every key. Rows of window `W` are
/// emitted at timely time `W`. State is per worker and keyed by the collection's
/// own partitioning, so nothing is global.
pub fn emit_windows<'s, K, V, O, F>(
    collection: VecCollection<'s, u64, (K, V), isize>,
    spec: WindowSpec,
    mut row: F,
) -> Stream<'s, u64, Vec<O>>
where
    K: Clone + Eq + std::hash::Hash + Ord + 'static,
    V: Clone + 'static,
    O: Clone + 'static,
    F: FnMut(u64, &K, &V) -> O + 'static,
{
    collection
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<O>>, _, _, _>(
            Pipeline,
            "EmitWindows",
            move |capability, _info| {
                let mut capability = Some(capability);
                let mut pending: BTreeMap<u64, Vec<(K, V, isize)>> = BTreeMap::new();
                let mut current: FxHashMap<K, V> = FxHashMap::default();
                let mut next_window: Option<u64> = None;
                let mut keys: Vec<K> = Vec::new();

                move |(input, frontier), output| {
                    input.for_each(|_cap, data| {
                        for ((k, v), t, r) in data.drain(..) {
                            pending.entry(t).or_default().push((k, v, r));
                        }
                    });
                    loop {
                        // The next window worth emitting: the next slide while keys are
                        // present, else the next time anything changes.
                        let candidate =
                            match (current.is_empty(), next_window, pending.keys().next()) {
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
                            // Retractions before insertions, so a key's new value replaces the old.
                            updates.sort_by_key(|u| u.2);
                            for (k, v, r) in updates {
                                if r < 0 {
                                    current.remove(&k);
                                } else {
                                    current.insert(k, v);
                                }
                            }
                        }
                        if !current.is_empty() {
                            let cap = capability
                                .as_ref()
                                .expect("capability held while output is pending");
                            let delayed = cap.delayed(&w);
                            let mut session = output.session(&delayed);
                            keys.clear();
                            keys.extend(current.keys().cloned());
                            keys.sort();
                            for k in &keys {
                                session.give(row(w, k, &current[k]));
                            }
                            next_window = Some(w + spec.slide);
                        } else {
                            next_window = None;
                        }
                    }
                    // Hold the capability no later than anything we may still emit.
                    let lower = [
                        next_window.filter(|_| !current.is_empty()),
                        pending.keys().next().copied(),
                        frontier.frontier().iter().min().copied(),
                    ]
                    .into_iter()
                    .flatten()
                    .min();
                    match lower {
                        Some(t) => {
                            if let Some(cap) = capability.as_mut()
                                && *cap.time() < t
                            {
                                cap.downgrade(&t);
                            }
                        }
                        None => capability = None,
                    }
                }
            },
        )
}
