//! Neighbourhood aggregates (GraphSAGE mean/max, K = 2).
//!
//! The neighbours `N(v)` of a node are the nodes it exchanged a flow with, in either
//! direction, in the window. For every base feature `f`:
//!
//! - `n1_mean(v)`, `n1_max(v)`: mean and max of `f(u)` over `u ∈ N(v)`;
//! - `n2_mean(v)`: mean over `u ∈ N(v)` of `n1_mean(u)` — the mean aggregator applied
//!   twice, i.e. the average of `f` over 2-step walks from `v`, weighted per neighbour;
//!   it includes `v` itself (walks `v → u → v`);
//! - `n2_max(v)`: max over `u ∈ N(v)` of `n1_max(u)` — the max of `f` over every node a
//!   2-step walk reaches (`v` included, `v`'s direct neighbours only when they are
//!   also 2 steps away).
//!
//! Null values are skipped and an aggregate over no values is null.
//!
//! Each layer is a join of what the nodes hold with the window's edges, maintained as
//! deltas over the totally ordered windows: a node sends its values along its edges
//! when they change (to a new neighbour also when they did not, and an empty message to
//! a neighbour it lost), and every node keeps the latest value from each neighbour and
//! aggregates again when one arrives. The edges are symmetric (both ends of a flow are
//! each other's peer), so the nodes a node hears from are its own neighbours, and the
//! 1-hop layer sends its aggregates on to them for the 2-hop layer. Both layers cost
//! O(edges) per change, never degree².
//!
//! Differential's `join_core` over arranged edges computes the same, but carries a
//! retraction and an insertion per edge for every change and keeps both of its inputs
//! arranged; where every node's values change every slide (as in the simulator) that
//! was twice the records plus the arrangements' merges, for no output the deltas miss
//! (benchmarks/README.md, session 14).

use std::collections::BTreeMap;
use std::sync::Arc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};

use super::Keyed;
use super::base::{BaseValues, NodeBase};
use crate::hash::FxHashMap;
use crate::prefetch::prefetch;
use crate::total::hold;

/// Mean and max of every base feature over a set of nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Agg {
    /// Mean of each feature over the nodes that have it.
    pub mean: BaseValues,
    /// Max of each feature over the nodes that have it.
    pub max: BaseValues,
}

/// Aggregates `(means, maxes)` items: the mean of the means and the max of the maxes,
/// feature by feature, skipping nulls (sums in `f64`, results rounded to `f32` as
/// [`BaseValues`] keeps them).
fn aggregate<'a>(items: impl Iterator<Item = (&'a BaseValues, &'a BaseValues)>) -> Agg {
    let mut sum = [0.0f64; super::BASE_FEATURE_COUNT];
    let mut n = [0u32; super::BASE_FEATURE_COUNT];
    let mut max: [Option<f64>; super::BASE_FEATURE_COUNT] = [None; super::BASE_FEATURE_COUNT];
    for (means, maxes) in items {
        for i in 0..sum.len() {
            if let Some(v) = means.get(i) {
                sum[i] += v;
                n[i] += 1;
            }
            if let Some(v) = maxes.get(i) {
                max[i] = Some(max[i].map_or(v, |m| m.max(v)));
            }
        }
    }
    Agg {
        mean: BaseValues::from_values(std::array::from_fn(|i| {
            (n[i] > 0).then(|| sum[i] / f64::from(n[i]))
        })),
        max: BaseValues::from_values(max),
    }
}

/// A value sent along an edge: `(to, from, value)`; `None` tells `to` that `from` is
/// no longer its neighbour.
type Message<X> = (u64, u64, Option<Arc<X>>);

/// A change of a node's aggregate, as collection data.
type Update<Y> = ((u64, Arc<Y>), u64, isize);

/// Messages, each with the window (time) it belongs to.
type Messages<'s, X> = Stream<'s, u64, Vec<(Message<X>, u64)>>;

/// The 1-hop and 2-hop aggregates of every node with a neighbour, from the nodes' own
/// features and the window's symmetric edges `(v, u)`, both as the per-node reduce
/// outputs them (on the worker that owns `v`).
pub fn neighbourhood<'s>(
    base: Keyed<'s, Arc<NodeBase>>,
    edges: Keyed<'s, u64>,
) -> (Keyed<'s, Arc<Agg>>, Keyed<'s, Arc<Agg>>) {
    let values = send_values(base, edges);
    let (one_hop, onward) = gather(values, "OneHop", true, |from| {
        aggregate(from.iter().map(|(_, x)| (&**x, &**x)))
    });
    let (two_hop, _) = gather(onward, "TwoHop", false, |from| {
        aggregate(from.iter().map(|(_, a)| (&a.mean, &a.max)))
    });
    (one_hop, two_hop)
}

/// A change of a node's row in the per-node reduce's output.
enum NodeChange {
    /// The node's features: the new ones, or `None` for a retraction.
    Base(Option<Arc<NodeBase>>),
    /// A neighbour added (positive weight) or removed.
    Neighbour(u64, isize),
}

/// What [`send_values`] keeps per node.
#[derive(Default)]
struct Sender {
    /// The values last sent.
    values: Option<Arc<BaseValues>>,
    /// The current neighbours, sorted.
    neighbours: Vec<u64>,
}

/// Sends every node's base values to its neighbours at each window in which they
/// changed, and to a neighbour that is new; tells a lost neighbour with `None`.
fn send_values<'s>(
    base: Keyed<'s, Arc<NodeBase>>,
    edges: Keyed<'s, u64>,
) -> Messages<'s, BaseValues> {
    base.inner
        .binary_frontier::<_, CapacityContainerBuilder<Vec<(Message<BaseValues>, u64)>>, _, _, _, _>(
            edges.inner,
            Pipeline,
            Pipeline,
            "SendValues",
            |capability, _info| {
                let mut capability = Some(capability);
                let mut pending: BTreeMap<u64, Vec<(u64, NodeChange)>> = BTreeMap::new();
                let mut senders: FxHashMap<u64, Sender> = FxHashMap::default();
                let (mut added, mut removed) = (Vec::new(), Vec::new());
                move |(base, base_frontier), (edges, edges_frontier), output| {
                    base.for_each(|_cap, data| {
                        for ((n, b), t, r) in data.drain(..) {
                            let change = NodeChange::Base((r > 0).then_some(b));
                            pending.entry(t).or_default().push((n, change));
                        }
                    });
                    edges.for_each(|_cap, data| {
                        for ((n, p), t, r) in data.drain(..) {
                            let change = NodeChange::Neighbour(p, r);
                            pending.entry(t).or_default().push((n, change));
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if base_frontier.less_equal(&t) || edges_frontier.less_equal(&t) {
                            break;
                        }
                        let mut changes = entry.remove();
                        changes.sort_unstable_by_key(|c| c.0);
                        let cap = capability
                            .as_ref()
                            .expect("capability held while changes are pending");
                        let delayed = cap.delayed(&t);
                        let mut session = output.session(&delayed);
                        for group in changes.chunk_by(|a, b| a.0 == b.0) {
                            let node = group[0].0;
                            let mut new_base = None;
                            added.clear();
                            removed.clear();
                            for (_, change) in group {
                                match change {
                                    NodeChange::Base(Some(b)) => new_base = Some(Some(b)),
                                    NodeChange::Base(None) => {
                                        new_base.get_or_insert(None);
                                    }
                                    NodeChange::Neighbour(p, r) if *r > 0 => added.push(*p),
                                    NodeChange::Neighbour(p, _) => removed.push(*p),
                                }
                            }
                            let sender = senders.entry(node).or_default();
                            let changed = new_base.is_some_and(|b| {
                                let values = b.map(|b| Arc::new(b.values()));
                                let changed = values != sender.values;
                                sender.values = values;
                                changed
                            });
                            if !added.is_empty() || !removed.is_empty() {
                                removed.sort_unstable();
                                sender
                                    .neighbours
                                    .retain(|p| removed.binary_search(p).is_err());
                                sender.neighbours.extend_from_slice(&added);
                                sender.neighbours.sort_unstable();
                            }
                            match &sender.values {
                                Some(values) => {
                                    let to = if changed { &sender.neighbours } else { &added };
                                    for &p in to {
                                        session.give(((p, node, Some(values.clone())), t));
                                    }
                                    for &p in &removed {
                                        session.give(((p, node, None), t));
                                    }
                                }
                                None => {
                                    for &p in removed.iter().chain(&sender.neighbours) {
                                        session.give(((p, node, None), t));
                                    }
                                }
                            }
                            if sender.values.is_none() && sender.neighbours.is_empty() {
                                senders.remove(&node);
                            }
                        }
                    }
                    hold(
                        &mut capability,
                        [
                            pending.keys().next().copied(),
                            base_frontier.frontier().iter().min().copied(),
                            edges_frontier.frontier().iter().min().copied(),
                        ],
                    );
                }
            },
        )
}

/// How many messages ahead of its node [`gather`] asks for a message's value.
const PREFETCH_AHEAD: usize = 16;

/// What [`gather`] keeps per node.
struct Held<X, Y> {
    /// The latest value from each neighbour, sorted by neighbour.
    from: Vec<(u64, Arc<X>)>,
    /// The node's current aggregate.
    out: Option<Arc<Y>>,
}

impl<X, Y> Default for Held<X, Y> {
    fn default() -> Self {
        Self {
            from: Vec::new(),
            out: None,
        }
    }
}

/// Keeps, per node, the latest value each neighbour sent (messages exchanged by the
/// receiving node) and the `aggregate` of them, and emits the aggregate's changes as
/// a collection once the frontier has passed their window. With `onward`, it also
/// sends the aggregate to the node's neighbours (the nodes it hears from) as
/// [`send_values`] sends values: the next layer's messages.
fn gather<'s, X, Y, F>(
    messages: Messages<'s, X>,
    name: &str,
    onward: bool,
    aggregate: F,
) -> (Keyed<'s, Arc<Y>>, Messages<'s, Y>)
where
    X: ExchangeData + Sync,
    Y: ExchangeData + Sync + PartialEq,
    F: Fn(&[(u64, Arc<X>)]) -> Y + 'static,
{
    let pact = Exchange::new(|m: &(Message<X>, u64)| (m.0).0.hashed());
    let mut builder = OperatorBuilder::new(name.to_owned(), messages.scope());
    let mut input = builder.new_input(messages, pact);
    let (changes, changes_stream) = builder.new_output::<Vec<Update<Y>>>();
    let (sent, sent_stream) = builder.new_output::<Vec<(Message<Y>, u64)>>();
    let mut changes = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(changes);
    let mut sent = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(sent);
    builder.build(move |capabilities| {
        // One capability per output, each held back to the earliest time still due.
        let mut capabilities: Vec<Option<Capability<u64>>> =
            capabilities.into_iter().map(Some).collect();
        let mut pending: BTreeMap<u64, Vec<Message<X>>> = BTreeMap::new();
        let mut nodes: FxHashMap<u64, Held<X, Y>> = FxHashMap::default();
        let (mut added, mut removed, mut merged) = (Vec::new(), Vec::new(), Vec::new());
        move |frontiers| {
            let frontier = &frontiers[0];
            input.for_each(|_cap, data| {
                for (m, t) in data.drain(..) {
                    pending.entry(t).or_default().push(m);
                }
            });
            let mut changes = changes.activate();
            let mut sent = sent.activate();
            while let Some(entry) = pending.first_entry() {
                let t = *entry.key();
                if frontier.less_equal(&t) {
                    break;
                }
                let mut messages = entry.remove();
                messages.sort_unstable_by_key(|m| (m.0, m.1));
                let [Some(change_cap), Some(sent_cap)] = &capabilities[..] else {
                    unreachable!("capabilities held while messages are pending");
                };
                let (change_cap, sent_cap) = (change_cap.delayed(&t), sent_cap.delayed(&t));
                let mut changes = changes.session(&change_cap);
                let mut sent = sent.session(&sent_cap);
                let (mut start, mut asked) = (0, 0);
                while start < messages.len() {
                    let node = messages[start].0;
                    let end = start + messages[start..].partition_point(|m| m.0 == node);
                    // The values lie scattered over the heap: ask for those a few
                    // messages ahead, so their loads overlap this node's work.
                    let ahead = (end + PREFETCH_AHEAD).min(messages.len());
                    for m in &messages[asked.max(end)..ahead] {
                        if let Some(value) = &m.2 {
                            prefetch(&**value);
                        }
                    }
                    asked = ahead;
                    let group = &mut messages[start..end];
                    start = end;
                    let held = nodes.entry(node).or_default();
                    added.clear();
                    removed.clear();
                    apply(&mut held.from, group, &mut merged, &mut added, &mut removed);
                    let out = (!held.from.is_empty()).then(|| aggregate(&held.from));
                    let changed = out.as_ref() != held.out.as_deref();
                    if changed {
                        if let Some(old) = held.out.take() {
                            changes.give(((node, old), t, -1));
                        }
                        held.out = out.map(Arc::new);
                        if let Some(new) = &held.out {
                            changes.give(((node, new.clone()), t, 1));
                        }
                    }
                    if onward {
                        if let Some(out) = &held.out {
                            let mut send = |p: u64| sent.give(((p, node, Some(out.clone())), t));
                            if changed {
                                held.from.iter().for_each(|f| send(f.0));
                            } else {
                                added.iter().for_each(|&p| send(p));
                            }
                        }
                        for &p in &removed {
                            sent.give(((p, node, None), t));
                        }
                    }
                    if held.from.is_empty() && held.out.is_none() {
                        nodes.remove(&node);
                    }
                }
            }
            for capability in &mut capabilities {
                hold(
                    capability,
                    [
                        pending.keys().next().copied(),
                        frontier.frontier().iter().min().copied(),
                    ],
                );
            }
        }
    });
    (changes_stream.as_collection(), sent_stream)
}

/// Applies one node's messages (sorted by sender, each sender once) to the values it
/// holds (sorted by sender), noting the senders `added` and `removed`; `merged` is
/// scratch.
fn apply<X>(
    held: &mut Vec<(u64, Arc<X>)>,
    messages: &mut [Message<X>],
    merged: &mut Vec<(u64, Arc<X>)>,
    added: &mut Vec<u64>,
    removed: &mut Vec<u64>,
) {
    // Most windows only replace the values of senders already held.
    let in_place = messages
        .iter()
        .all(|m| m.2.is_some() && held.binary_search_by_key(&m.1, |h| h.0).is_ok());
    if in_place {
        for (_, from, value) in messages.iter_mut() {
            if let (Ok(i), Some(value)) = (held.binary_search_by_key(from, |h| h.0), value.take()) {
                held[i].1 = value;
            }
        }
        return;
    }
    merged.clear();
    let mut old = held.drain(..).peekable();
    for (_, from, value) in messages.iter_mut() {
        while let Some(kept) = old.next_if(|h| h.0 < *from) {
            merged.push(kept);
        }
        let had = old.next_if(|h| h.0 == *from).is_some();
        match value.take() {
            Some(value) => {
                if !had {
                    added.push(*from);
                }
                merged.push((*from, value));
            }
            None if had => removed.push(*from),
            None => {}
        }
    }
    merged.extend(old);
    held.append(merged);
}
