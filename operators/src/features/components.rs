//! Connected components of each window's mesh, by union-find in two steps.
//!
//! Components are global: one edge anywhere can join two of them. Differential's label
//! propagation finds them with an iterative scope whose rounds run for every window and
//! whose arrangements keep every proposal, which made it the feature graph's most
//! expensive operator. Here instead:
//!
//! 1. every worker keeps the multiset of the window's edges it holds (exchanged by
//!    their first end, so the edges spread over workers), and for every window in which
//!    they changed finds their components by union-find and emits them as a star per
//!    component: `(node, smallest id)` for every other node. A star has fewer pairs than
//!    the component has nodes, whatever its edges;
//! 2. one worker takes the stars of all workers and every node `(n, n)`, and finds the
//!    global components the same way, with their count.
//!
//! Each step keeps its input maintained by inserts and retractions and emits only the
//! changes of its output, so a window in which no component changed costs one pass of
//! union-find over the first step's share of the edges, and nothing downstream. The
//! global step sees at most `nodes × (workers + 1)` pairs, not the edges.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::hash::FxHashMap;
use crate::total::hold;

/// A collection of node pairs, keyed by the first.
type Pairs<'s> = VecCollection<'s, u64, (u64, u64), isize>;

/// A time's pair updates, waiting for the frontier to pass it.
type Pending = BTreeMap<u64, Vec<((u64, u64), isize)>>;

/// Union-find over node ids, finding the smallest id of every node's component.
#[derive(Default)]
struct UnionFind {
    /// Node id → dense index.
    index: FxHashMap<u64, u32>,
    /// Dense index → node id.
    ids: Vec<u64>,
    /// Dense index → parent index (a root is its own parent).
    parent: Vec<u32>,
}

impl UnionFind {
    fn clear(&mut self) {
        self.index.clear();
        self.ids.clear();
        self.parent.clear();
    }

    fn node(&mut self, id: u64) -> u32 {
        let next = self.ids.len() as u32;
        let i = *self.index.entry(id).or_insert(next);
        if i == next {
            self.ids.push(id);
            self.parent.push(i);
        }
        i
    }

    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let grand = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = grand;
            i = grand;
        }
        i
    }

    /// Joins the components of `a` and `b`; the root is the smaller id, so every root
    /// is its component's smallest id.
    fn union(&mut self, a: u64, b: u64) {
        let (a, b) = (self.node(a), self.node(b));
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (keep, join) = if self.ids[ra as usize] < self.ids[rb as usize] {
                (ra, rb)
            } else {
                (rb, ra)
            };
            self.parent[join as usize] = keep;
        }
    }

    /// Points every node straight at its root; returns the number of components.
    fn flatten(&mut self) -> u64 {
        let mut count = 0;
        for i in 0..self.ids.len() as u32 {
            let root = self.find(i);
            self.parent[i as usize] = root;
            count += u64::from(root == i);
        }
        count
    }

    /// Every node and its component label (its smallest id); call after `flatten`.
    fn labels(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ids
            .iter()
            .zip(&self.parent)
            .map(|(&id, &root)| (id, self.ids[root as usize]))
    }
}

/// One union-find step: maintains the pairs routed to this worker by `route`, and for
/// every window in which they changed emits the changes of `out(node, label, count)`
/// over the nodes the pairs mention (`None`: no output for that node).
fn step<'s, O, F>(
    pairs: Pairs<'s>,
    name: &str,
    route: fn(&(u64, u64)) -> u64,
    out: F,
) -> VecCollection<'s, u64, (u64, O), isize>
where
    O: differential_dataflow::ExchangeData,
    F: Fn(u64, u64, u64) -> Option<O> + 'static,
{
    let pact = Exchange::new(move |update: &((u64, u64), u64, isize)| route(&update.0));
    pairs
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<((u64, O), u64, isize)>>, _, _, _>(
            pact,
            name,
            move |capability, _info| {
                let mut capability = Some(capability);
                let mut pending = Pending::new();
                let mut held: FxHashMap<(u64, u64), isize> = FxHashMap::default();
                let mut current: FxHashMap<u64, O> = FxHashMap::default();
                let mut fresh: FxHashMap<u64, O> = FxHashMap::default();
                let mut forest = UnionFind::default();
                move |(input, frontier), output| {
                    input.for_each(|_cap, data| {
                        for (pair, t, r) in data.drain(..) {
                            pending.entry(t).or_default().push((pair, r));
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.less_equal(&t) {
                            break;
                        }
                        let mut changed = false;
                        for (pair, r) in entry.remove() {
                            let count = held.entry(pair).or_insert(0);
                            let before = *count > 0;
                            *count += r;
                            changed |= before != (*count > 0);
                            if *count == 0 {
                                held.remove(&pair);
                            }
                        }
                        if !changed {
                            continue;
                        }
                        forest.clear();
                        for (&(a, b), &r) in &held {
                            if r > 0 {
                                forest.union(a, b);
                            }
                        }
                        let count = forest.flatten();
                        fresh.clear();
                        fresh.extend(
                            forest
                                .labels()
                                .filter_map(|(node, label)| Some((node, out(node, label, count)?))),
                        );
                        let cap = capability
                            .as_ref()
                            .expect("capability held while updates are pending");
                        let delayed = cap.delayed(&t);
                        let mut session = output.session(&delayed);
                        for (node, old) in &current {
                            if fresh.get(node) != Some(old) {
                                session.give(((*node, old.clone()), t, -1));
                            }
                        }
                        for (node, new) in &fresh {
                            if current.get(node) != Some(new) {
                                session.give(((*node, new.clone()), t, 1));
                            }
                        }
                        std::mem::swap(&mut current, &mut fresh);
                    }
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

/// Every node's component (the smallest node id it reaches over the edges) and the
/// number of components in the window, from the window's nodes and its edges `(v, u)`.
pub fn components<'s>(
    nodes: VecCollection<'s, u64, u64, isize>,
    edges: Pairs<'s>,
) -> VecCollection<'s, u64, (u64, (u64, u64)), isize> {
    let stars = step(
        edges,
        "ComponentsLocal",
        |pair| pair.0.hashed(),
        |node, label, _| (node != label).then_some(label),
    );
    step(
        stars.concat(nodes.map(|n| (n, n))),
        "ComponentsGlobal",
        |_| 0,
        |_, label, count| Some((label, count)),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use differential_dataflow::input::InputSession;
    use timely::dataflow::operators::probe::Handle;

    use super::components;

    /// Per time, the (node, (label, count)) updates the operator emitted, netted.
    type Emitted = BTreeMap<u64, BTreeMap<(u64, (u64, u64)), isize>>;

    /// A window's nodes and its edges (each pair once).
    type Window = (Vec<u64>, Vec<(u64, u64)>);

    /// The updates that replace every node's `(label, count)` in `before` by `after`.
    fn replaced(
        before: &[(u64, u64)],
        old: u64,
        after: &[(u64, u64)],
        new: u64,
    ) -> BTreeMap<(u64, (u64, u64)), isize> {
        let mut updates = BTreeMap::new();
        for &(n, l) in before {
            updates.insert((n, (l, old)), -1);
        }
        for &(n, l) in after {
            updates.insert((n, (l, new)), 1);
        }
        updates
    }

    /// Runs `components` over windows 0, 1, 2, … of the given (nodes, edges), the edges
    /// given once per pair, on `workers` workers; every worker feeds a share.
    fn run(windows: Vec<Window>, workers: usize) -> Emitted {
        let out = Arc::new(Mutex::new(Emitted::new()));
        let sink = out.clone();
        let windows = Arc::new(windows);
        timely::execute(timely::Config::process(workers), move |worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let (mut nodes, mut edges) = (InputSession::new(), InputSession::new());
            let sink = sink.clone();
            let probe = Handle::new();
            worker.dataflow::<u64, _, _>(|scope| {
                components(nodes.to_collection(scope), edges.to_collection(scope))
                    .inspect(move |((node, value), t, r)| {
                        let mut emitted = sink.lock().unwrap();
                        let at = emitted.entry(*t).or_default();
                        *at.entry((*node, *value)).or_default() += r;
                        at.retain(|_, r| *r != 0);
                    })
                    .probe_with(&probe);
            });
            let (mut held_nodes, mut held_edges) = (Vec::new(), Vec::new());
            for (t, (ns, es)) in windows.iter().enumerate() {
                let t = t as u64;
                nodes.advance_to(t);
                edges.advance_to(t);
                let mine = |x: &u64| *x as usize % peers == index;
                for n in held_nodes.drain(..) {
                    nodes.remove(n);
                }
                for e in held_edges.drain(..) {
                    edges.remove(e);
                }
                held_nodes.extend(ns.iter().copied().filter(mine));
                held_edges.extend(es.iter().copied().filter(|e| mine(&e.0)));
                for n in &held_nodes {
                    nodes.insert(*n);
                }
                for e in &held_edges {
                    edges.insert(*e);
                }
            }
            nodes.close();
            edges.close();
            worker.step_while(|| !probe.done());
        })
        .unwrap();
        Arc::try_unwrap(out).ok().unwrap().into_inner().unwrap()
    }

    #[test]
    fn a_bridge_removed_splits_and_a_new_edge_merges_emitting_only_changes() {
        let nodes = vec![1, 2, 3, 4, 5];
        let windows = vec![
            // 1-2-3 and 4-5: two components.
            (nodes.clone(), vec![(1, 2), (2, 3), (4, 5)]),
            // The same, with another edge inside 1-2-3: nothing changes.
            (nodes.clone(), vec![(1, 2), (2, 3), (1, 3), (4, 5)]),
            // 2-3 and 1-3 gone: 3 is alone, three components.
            (nodes.clone(), vec![(1, 2), (4, 5)]),
            // 3-4 joins 3 with 4-5: labels 3, 4, 5 become 3; two components.
            (nodes, vec![(1, 2), (3, 4), (4, 5)]),
        ];
        for workers in [1, 2] {
            let got = run(windows.clone(), workers);
            let at = |t: u64| got.get(&t).cloned().unwrap_or_default();
            let first = [(1, 1), (2, 1), (3, 1), (4, 4), (5, 4)];
            let split = [(1, 1), (2, 1), (3, 3), (4, 4), (5, 4)];
            let merged = [(1, 1), (2, 1), (3, 3), (4, 3), (5, 3)];
            assert_eq!(at(0), replaced(&[], 0, &first, 2), "{workers} workers");
            assert_eq!(at(1), BTreeMap::new(), "{workers} workers");
            assert_eq!(at(2), replaced(&first, 2, &split, 3), "{workers} workers");
            assert_eq!(at(3), replaced(&split, 3, &merged, 2), "{workers} workers");
        }
    }
}
