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
//! deltas over the totally ordered windows: a node sends its values when they change
//! (and when it gains a neighbour), once to each worker that owns one of its
//! neighbours, not once per edge; each worker keeps every such sender's latest value
//! once ([`Layer`]) and aggregates again the nodes a new value or an edge change
//! reaches. The edges are symmetric (both ends of a flow are each other's peer), so
//! the nodes a node hears from are its own neighbours, and the 1-hop layer sends its
//! aggregates on the same way for the 2-hop layer. Both layers cost O(edges) per
//! change, never degree².
//!
//! Differential's `join_core` over arranged edges computes the same, but carries a
//! retraction and an insertion per edge for every change and keeps both of its inputs
//! arranged; where every node's values change every slide (as in the simulator) that
//! was twice the records plus the arrangements' merges, for no output the deltas miss
//! (benchmarks/README.md, session 14). Messages per edge, the first delta version,
//! sorted ten times more messages than senders per window and kept a pointer per edge
//! (session 35).

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
use super::layer::{Gather, Layer};
use crate::hash::FxHashMap;
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
    const N: usize = meshflow_schemas::BASE_FEATURE_COUNT;
    let mut sum = [0.0f64; N];
    let mut n = [0u32; N];
    // A null is a NaN, which `f32::max` passes over: the max of no values stays null.
    let mut max = [f32::NAN; N];
    for (means, maxes) in items {
        // No branches per feature, so the compiler can do the features side by side.
        for i in 0..N {
            let v = f32::from_bits(means.0[i]);
            let valid = !v.is_nan();
            sum[i] += if valid { f64::from(v) } else { 0.0 };
            n[i] += u32::from(valid);
            max[i] = max[i].max(f32::from_bits(maxes.0[i]));
        }
    }
    Agg {
        mean: BaseValues::from_values(std::array::from_fn(|i| {
            (n[i] > 0).then(|| sum[i] / f64::from(n[i]))
        })),
        max: BaseValues::from_f32(max),
    }
}

impl Gather<BaseValues> for Agg {
    fn gather<'a>(values: impl Iterator<Item = &'a BaseValues>) -> Self {
        aggregate(values.map(|x| (x, x)))
    }
}

impl Gather<Agg> for Agg {
    fn gather<'a>(values: impl Iterator<Item = &'a Agg>) -> Self {
        aggregate(values.map(|a| (&a.mean, &a.max)))
    }
}

/// A node's value sent to a worker that owns some of its neighbours: `(worker, from,
/// value)`; `None` when `from` has no value.
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
    let values = send_values(base, edges.clone());
    let (one_hop, onward) = gather::<BaseValues, Agg>(values, edges.clone(), "OneHop", true);
    let (two_hop, _) = gather::<Agg, Agg>(onward, edges, "TwoHop", false);
    (one_hop, two_hop)
}

/// The worker that timely's exchange sends a record of hash `hash` to, among `peers`
/// (a mask for a power of two, the remainder otherwise).
fn worker_of(hash: u64, peers: u64) -> u64 {
    if peers.is_power_of_two() {
        hash & (peers - 1)
    } else {
        hash % peers
    }
}

/// Sets `targets` to the workers that own the `neighbours` (the edges' owners: keyed
/// by node, exchanged by its hash), each once, sorted.
fn targets_of(neighbours: impl Iterator<Item = u64>, peers: u64, targets: &mut Vec<u64>) {
    targets.clear();
    if peers == 1 {
        targets.extend(neighbours.take(1).map(|_| 0));
        return;
    }
    targets.extend(neighbours.map(|p| worker_of(p.hashed(), peers)));
    targets.sort_unstable();
    targets.dedup();
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

/// Sends every node's base values, at each window in which they changed or the node
/// gained a neighbour, to every worker that owns one of its neighbours (`None` when
/// the node lost its values).
fn send_values<'s>(
    base: Keyed<'s, Arc<NodeBase>>,
    edges: Keyed<'s, u64>,
) -> Messages<'s, BaseValues> {
    let peers = base.inner.scope().peers() as u64;
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
                let (mut added, mut removed, mut targets) = (Vec::new(), Vec::new(), Vec::new());
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
                            // A worker that lost all of the node's neighbours forgets
                            // its value by itself; one that gained one needs it.
                            if changed || (!added.is_empty() && sender.values.is_some()) {
                                targets_of(sender.neighbours.iter().copied(), peers, &mut targets);
                                for &w in &targets {
                                    session.give(((w, node, sender.values.clone()), t));
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

/// A time's work for [`gather`]: the edge changes `(v, u, diff)` of the worker's
/// nodes, and the values received.
type Due<X> = (Vec<(u64, u64, isize)>, Vec<(u64, Option<Arc<X>>)>);

/// Keeps, per worker, the latest value of every sender that neighbours one of its
/// nodes (messages exchanged by the worker they name) and each node's aggregate of its
/// neighbours' values ([`Layer`]), from the window's edges (on the worker that owns
/// their first node, as the per-node reduce outputs them); emits the aggregates'
/// changes as a collection once the frontier has passed their window. With `onward`,
/// it also sends the aggregates to the workers of the nodes' neighbours as
/// [`send_values`] sends values: the next layer's messages.
fn gather<'s, X, Y>(
    messages: Messages<'s, X>,
    edges: Keyed<'s, u64>,
    name: &str,
    onward: bool,
) -> (Keyed<'s, Arc<Y>>, Messages<'s, Y>)
where
    X: ExchangeData + Sync,
    Y: ExchangeData + Sync + PartialEq + Gather<X>,
{
    let peers = messages.scope().peers() as u64;
    let pact = Exchange::new(|m: &(Message<X>, u64)| (m.0).0);
    let mut builder = OperatorBuilder::new(name.to_owned(), messages.scope());
    let mut input = builder.new_input(messages, pact);
    let mut edge_input = builder.new_input(edges.inner, Pipeline);
    let (changes, changes_stream) = builder.new_output::<Vec<Update<Y>>>();
    let (sent, sent_stream) = builder.new_output::<Vec<(Message<Y>, u64)>>();
    let mut changes = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(changes);
    let mut sent = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(sent);
    builder.build(move |capabilities| {
        // One capability per output, each held back to the earliest time still due.
        let mut capabilities: Vec<Option<Capability<u64>>> =
            capabilities.into_iter().map(Some).collect();
        let mut pending: BTreeMap<u64, Due<X>> = BTreeMap::new();
        let mut layer: Layer<X, Y> = Layer::default();
        let mut targets = Vec::new();
        move |frontiers| {
            input.for_each(|_cap, data| {
                for ((_, from, value), t) in data.drain(..) {
                    pending.entry(t).or_default().1.push((from, value));
                }
            });
            edge_input.for_each(|_cap, data| {
                for ((v, u), t, r) in data.drain(..) {
                    pending.entry(t).or_default().0.push((v, u, r));
                }
            });
            let mut changes = changes.activate();
            let mut sent = sent.activate();
            while let Some(entry) = pending.first_entry() {
                let t = *entry.key();
                if frontiers.iter().any(|f| f.less_equal(&t)) {
                    break;
                }
                let (edges, values) = entry.remove();
                let [Some(change_cap), Some(sent_cap)] = &capabilities[..] else {
                    unreachable!("capabilities held while messages are pending");
                };
                let (change_cap, sent_cap) = (change_cap.delayed(&t), sent_cap.delayed(&t));
                let mut changes = changes.session(&change_cap);
                let mut sent = sent.session(&sent_cap);
                for (v, u, r) in edges {
                    if r > 0 {
                        layer.link(v, u);
                    } else {
                        layer.unlink(v, u);
                    }
                }
                for (from, value) in values {
                    layer.receive(from, value);
                }
                layer.settle(|s| {
                    if s.changed {
                        if let Some(old) = s.old {
                            changes.give(((s.node, old), t, -1));
                        }
                        if let Some(new) = s.out {
                            changes.give(((s.node, new.clone()), t, 1));
                        }
                    }
                    if onward && (s.changed || (s.gained && s.out.is_some())) {
                        let neighbours = s.neighbours.iter().map(|n| n.0);
                        targets_of(neighbours, peers, &mut targets);
                        for &w in &targets {
                            sent.give(((w, s.node, s.out.cloned()), t));
                        }
                    }
                });
            }
            for capability in &mut capabilities {
                hold(
                    capability,
                    std::iter::once(pending.keys().next().copied())
                        .chain(frontiers.iter().map(|f| f.frontier().iter().min().copied())),
                );
            }
        }
    });
    (changes_stream.as_collection(), sent_stream)
}

#[cfg(test)]
mod tests {
    use differential_dataflow::Hashable;
    use timely::dataflow::operators::vec::ToStream;
    use timely::dataflow::operators::{Exchange, Inspect};

    use super::worker_of;

    /// Records routed by a hash land on the worker [`worker_of`] names, for a power
    /// of two and for other worker counts.
    #[test]
    fn worker_of_is_where_the_exchange_routes() {
        for workers in [1, 2, 3] {
            timely::execute(timely::Config::process(workers), move |worker| {
                let me = worker.index() as u64;
                let peers = worker.peers() as u64;
                worker.dataflow::<u64, _, _>(|scope| {
                    (0..200u64)
                        .filter(move |_| me == 0)
                        .to_stream(scope)
                        .exchange(|x: &u64| x.hashed())
                        .inspect(move |x: &u64| assert_eq!(worker_of(x.hashed(), peers), me));
                });
            })
            .expect("timely runs");
        }
    }
}
