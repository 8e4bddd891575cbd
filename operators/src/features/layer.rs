//! One neighbourhood layer's state on one worker ([`super::graph`]).
//!
//! A worker keeps the latest value of every node that neighbours one of its own
//! nodes once, however many of its nodes that sender neighbours: a sender's value
//! comes as one message per worker, not one per edge. Each of the worker's nodes
//! lists its neighbours (from the window's edges) with the slot that holds each one's
//! value, and each slot lists the nodes it feeds, so a value that arrives marks just
//! those nodes for aggregating again.

use std::sync::Arc;

use crate::hash::FxHashMap;
use crate::prefetch::{prefetch, prefetch_slice};

/// Dirty nodes between two steps of [`Layer::settle`]'s prefetching.
const STEP: usize = 2;

/// A summary of the values a node's neighbours hold (one layer's aggregate).
pub trait Gather<X>: Sized {
    /// The summary of `values`, which are never empty.
    fn gather<'a>(values: impl Iterator<Item = &'a X>) -> Self
    where
        X: 'a;
}

/// A sender's latest value, kept once for all the worker's nodes it neighbours.
struct Slot<X> {
    /// The sender.
    sender: u64,
    /// Its latest value; `None` until one arrives, or when it has none.
    value: Option<Arc<X>>,
    /// The worker's nodes (local indices) that have the sender as a neighbour.
    receivers: Vec<u32>,
}

/// One of the worker's nodes.
struct Local<Y> {
    /// The node.
    node: u64,
    /// Its neighbours, sorted, each with the slot of its value (so aggregates add
    /// up in the same order on any number of workers).
    from: Vec<(u64, u32)>,
    /// Its current aggregate.
    out: Option<Arc<Y>>,
    /// Whether it is in the dirty list.
    dirty: bool,
    /// Whether it gained a neighbour since it was last settled.
    gained: bool,
}

/// A node whose aggregate was recomputed, as [`Layer::settle`] reports it.
pub struct Settled<'a, Y> {
    /// The node.
    pub node: u64,
    /// The aggregate replaced, when it changed (to retract).
    pub old: Option<Arc<Y>>,
    /// Whether the aggregate changed.
    pub changed: bool,
    /// Whether the node gained a neighbour (which needs the aggregate, changed or
    /// not).
    pub gained: bool,
    /// The node's aggregate now.
    pub out: Option<&'a Arc<Y>>,
    /// Its neighbours now, sorted, each with a slot index (ignore it).
    pub neighbours: &'a [(u64, u32)],
}

/// One layer's state on one worker: what its nodes' neighbours hold, and the nodes'
/// aggregates of that.
pub struct Layer<X, Y> {
    slot_of: FxHashMap<u64, u32>,
    slots: Vec<Slot<X>>,
    free_slots: Vec<u32>,
    local_of: FxHashMap<u64, u32>,
    locals: Vec<Local<Y>>,
    free_locals: Vec<u32>,
    /// Local nodes to aggregate again.
    dirty: Vec<u32>,
    /// Slots that lost a receiver since the last settle (freed then if unused).
    emptied: Vec<u32>,
}

impl<X, Y> Default for Layer<X, Y> {
    fn default() -> Self {
        Self {
            slot_of: FxHashMap::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            local_of: FxHashMap::default(),
            locals: Vec::new(),
            free_locals: Vec::new(),
            dirty: Vec::new(),
            emptied: Vec::new(),
        }
    }
}

impl<X, Y: Gather<X> + PartialEq> Layer<X, Y> {
    /// Makes `u` a neighbour of the worker's node `v` (a link already there is left).
    pub fn link(&mut self, v: u64, u: u64) {
        let lv = self.local(v);
        let local = &mut self.locals[lv as usize];
        let Err(at) = local.from.binary_search_by_key(&u, |f| f.0) else {
            return;
        };
        let su = match self.slot_of.get(&u) {
            Some(&su) => su,
            None => {
                let slot = Slot {
                    sender: u,
                    value: None,
                    receivers: Vec::new(),
                };
                let su = place(&mut self.slots, &mut self.free_slots, slot);
                self.slot_of.insert(u, su);
                su
            }
        };
        local.from.insert(at, (u, su));
        local.gained = true;
        self.slots[su as usize].receivers.push(lv);
        mark(&mut self.locals, &mut self.dirty, lv);
    }

    /// Removes `u` from the neighbours of the worker's node `v` (if it is one).
    pub fn unlink(&mut self, v: u64, u: u64) {
        let Some(&lv) = self.local_of.get(&v) else {
            return;
        };
        let local = &mut self.locals[lv as usize];
        let Ok(at) = local.from.binary_search_by_key(&u, |f| f.0) else {
            return;
        };
        let (_, su) = local.from.remove(at);
        let receivers = &mut self.slots[su as usize].receivers;
        if let Some(i) = receivers.iter().position(|&r| r == lv) {
            receivers.swap_remove(i);
        }
        if receivers.is_empty() {
            self.emptied.push(su);
        }
        mark(&mut self.locals, &mut self.dirty, lv);
    }

    /// Takes `u`'s latest value; ignored when none of the worker's nodes has `u` as a
    /// neighbour.
    pub fn receive(&mut self, u: u64, value: Option<Arc<X>>) {
        let Some(&su) = self.slot_of.get(&u) else {
            return;
        };
        let slot = &mut self.slots[su as usize];
        slot.value = value;
        for &lv in &slot.receivers {
            mark(&mut self.locals, &mut self.dirty, lv);
        }
    }

    /// Aggregates again every node whose neighbours or their values changed since
    /// the last call, reporting each to `report`, and forgets senders and nodes left
    /// without neighbours or aggregate.
    pub fn settle(&mut self, mut report: impl FnMut(Settled<'_, Y>)) {
        for su in self.emptied.drain(..) {
            let slot = &mut self.slots[su as usize];
            if slot.receivers.is_empty() && self.slot_of.get(&slot.sender) == Some(&su) {
                self.slot_of.remove(&slot.sender);
                slot.value = None;
                self.free_slots.push(su);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for (i, &lv) in dirty.iter().enumerate() {
            self.prefetch_ahead(&dirty, i);
            let local = &mut self.locals[lv as usize];
            let slots = &self.slots;
            let mut values = local
                .from
                .iter()
                .filter_map(|&(_, su)| slots[su as usize].value.as_deref())
                .peekable();
            let new = values.peek().is_some().then(|| Y::gather(values));
            let changed = new.as_ref() != local.out.as_deref();
            let old = if changed {
                std::mem::replace(&mut local.out, new.map(Arc::new))
            } else {
                None
            };
            report(Settled {
                node: local.node,
                old,
                changed,
                gained: local.gained,
                out: local.out.as_ref(),
                neighbours: &local.from,
            });
            local.dirty = false;
            local.gained = false;
            if local.from.is_empty() && local.out.is_none() {
                self.local_of.remove(&local.node);
                self.free_locals.push(lv);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Asks, while `dirty[i]` is aggregated, for what later dirty nodes will read, one
    /// step of the pointer chain each: a node, its neighbour list, its neighbours'
    /// slots, their values (each step's address is known once the last has loaded).
    fn prefetch_ahead(&self, dirty: &[u32], i: usize) {
        let local = |ahead: usize| dirty.get(i + ahead).map(|&lv| &self.locals[lv as usize]);
        if let Some(l) = local(4 * STEP) {
            prefetch(l);
        }
        if let Some(l) = local(3 * STEP) {
            prefetch_slice(&l.from);
        }
        if let Some(l) = local(2 * STEP) {
            for &(_, su) in &l.from {
                prefetch(&self.slots[su as usize]);
            }
        }
        if let Some(l) = local(STEP) {
            for &(_, su) in &l.from {
                if let Some(value) = &self.slots[su as usize].value {
                    prefetch(value.as_ref());
                }
            }
        }
    }

    /// Nodes of the worker with a neighbour or an aggregate.
    #[cfg(test)]
    fn nodes(&self) -> usize {
        self.local_of.len()
    }

    /// Senders whose value the worker keeps (or awaits).
    #[cfg(test)]
    fn senders(&self) -> usize {
        self.slot_of.len()
    }

    /// The local index of the worker's node `v`, added if new.
    fn local(&mut self, v: u64) -> u32 {
        if let Some(&lv) = self.local_of.get(&v) {
            return lv;
        }
        let local = Local {
            node: v,
            from: Vec::new(),
            out: None,
            dirty: false,
            gained: false,
        };
        let lv = place(&mut self.locals, &mut self.free_locals, local);
        self.local_of.insert(v, lv);
        lv
    }
}

/// Puts the local node `lv` in the `dirty` list, once.
fn mark<Y>(locals: &mut [Local<Y>], dirty: &mut Vec<u32>, lv: u32) {
    let local = &mut locals[lv as usize];
    if !local.dirty {
        local.dirty = true;
        dirty.push(lv);
    }
}

/// Puts `item` in a free place of `items` (one of `free`, or a new one at the end),
/// returning its index.
fn place<T>(items: &mut Vec<T>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(i) => {
            items[i as usize] = item;
            i
        }
        None => {
            items.push(item);
            u32::try_from(items.len() - 1).expect("fewer than 2^32 entries")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    /// Test summary: the sorted multiset of neighbour values.
    #[derive(Debug, PartialEq)]
    struct Values(Vec<u32>);

    impl Gather<u32> for Values {
        fn gather<'a>(values: impl Iterator<Item = &'a u32>) -> Self {
            let mut v: Vec<u32> = values.copied().collect();
            v.sort_unstable();
            Self(v)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Link(u64, u64),
        Unlink(u64, u64),
        Send(u64, Option<u32>),
        Settle,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..6, 0u64..6).prop_map(|(v, u)| Op::Link(v, u)),
            (0u64..6, 0u64..6).prop_map(|(v, u)| Op::Unlink(v, u)),
            (0u64..6, prop::option::of(0u32..5)).prop_map(|(u, x)| Op::Send(u, x)),
            Just(Op::Settle),
        ]
    }

    proptest! {
        /// After every settle, each node's reported aggregate is the summary of its
        /// current neighbours' latest values (those with one), recomputed from
        /// scratch; senders and nodes without neighbours are forgotten.
        #[test]
        fn aggregates_equal_a_recomputation(ops in prop::collection::vec(op(), 0..80)) {
            let mut layer: Layer<u32, Values> = Layer::default();
            let mut edges: BTreeSet<(u64, u64)> = BTreeSet::new();
            let mut latest: BTreeMap<u64, u32> = BTreeMap::new();
            let mut reported: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
            for op in ops.into_iter().chain([Op::Settle]) {
                match op {
                    Op::Link(v, u) => {
                        layer.link(v, u);
                        edges.insert((v, u));
                    }
                    Op::Unlink(v, u) => {
                        layer.unlink(v, u);
                        edges.remove(&(v, u));
                    }
                    Op::Send(u, x) => {
                        // Only a sender some node neighbours is kept.
                        if edges.iter().any(|e| e.1 == u) {
                            layer.receive(u, x.map(Arc::new));
                            match x {
                                Some(x) => latest.insert(u, x),
                                None => latest.remove(&u),
                            };
                        }
                    }
                    Op::Settle => {
                        layer.settle(|s| {
                            if s.changed {
                                match s.out {
                                    Some(out) => reported.insert(s.node, out.0.clone()),
                                    None => reported.remove(&s.node),
                                };
                            }
                        });
                        // A sender no node neighbours any more has its value forgotten.
                        latest.retain(|u, _| edges.iter().any(|e| e.1 == *u));
                        let mut want: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
                        for &(v, u) in &edges {
                            if let Some(&x) = latest.get(&u) {
                                want.entry(v).or_default().push(x);
                            }
                        }
                        want.values_mut().for_each(|v| v.sort_unstable());
                        prop_assert_eq!(&reported, &want);
                        let receivers: BTreeSet<u64> = edges.iter().map(|e| e.0).collect();
                        let senders: BTreeSet<u64> = edges.iter().map(|e| e.1).collect();
                        prop_assert_eq!(layer.nodes(), receivers.len());
                        prop_assert_eq!(layer.senders(), senders.len());
                    }
                }
            }
        }
    }
}
