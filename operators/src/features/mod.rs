//! Per-node features over sliding windows, with neighbourhood aggregates and
//! connected components.
//!
//! Events (flows, TCP events, system-call latencies, metric samples) are first folded
//! by a worker-local [`FeatureCombiner`] into updates per node and window: traffic
//! totals, peer presence `(peer, direction)`, drops per reason, sketch buckets of RTT
//! and system-call latency ([`crate::sketch`]), and per-series metric sums. Each enters
//! at its first window and is retracted when the window slides past; the combiner nets
//! an entry against a pending retraction of the same key, so a steady edge costs
//! nothing once its window is full. Then, in differential dataflow:
//!
//! 1. a `reduce` keyed by node ([`reduce_total`]) adds a node's updates up in a
//!    [`NodeTally`], reads its [`NodeBase`] off it and reports the neighbours it
//!    gained and lost (the changes of the window's edges);
//! 2. joins with the edges give the 1-hop and 2-hop aggregates ([`graph`]);
//! 3. union-find over the edges, in two steps, gives connected components
//!    ([`components`]);
//! 4. [`emit_windows`] puts each node's parts together and writes one
//!    [`NodeFeatures`] per node for every closed window.
//!
//! Work is per node (and per edge) and window, never per event.

mod base;
mod combiner;
mod components;
mod diff;
pub mod graph;
mod input;
mod layer;

pub use base::{BaseValues, NodeBase, NodeOut, NodeTally};
pub use combiner::FeatureCombiner;
pub use diff::{
    Direction, FeatureDiff, FeatureVal, METRIC_SCALE, Name, Names, metric_mean, quantize_metric,
};
pub use input::{
    DataEndInput, FeatureInput, FeatureSession, Late, Link, Refusals, Refused, UNKNOWN_DROP_REASON,
};

use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use meshflow_schemas::{NodeFeatures, TimestampNs};
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::operators::vec::Partition;

use crate::anomaly::vector::ScoreInput;
use crate::emit::{Assemble, emit_windows};
use crate::prefetch::prefetch;
use crate::total::{Accumulate, reduce_total};
use crate::window::WindowSpec;
use graph::Agg;

/// The collection the combiner feeds: `(node, value)` with a [`FeatureDiff`] weight.
pub type FeatureUpdates<'s> = VecCollection<'s, u64, (u64, FeatureVal), FeatureDiff>;

/// A part of a node's row in one window, as collection data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Part {
    /// The node's own features, shared with the reduce that keeps them (a window's
    /// change then copies a pointer, not the features).
    Base(Arc<NodeBase>),
    /// 1-hop aggregates (absent without neighbours), shared with the reduce.
    OneHop(Arc<Agg>),
    /// 2-hop aggregates (absent without neighbours), shared with the reduce.
    TwoHop(Arc<Agg>),
    /// Smallest node id of the node's connected component.
    Component(u64),
    /// Connected components in the window.
    Components(u64),
}

/// Everything known about one node in one window: the parts [`node_parts`] maintains,
/// put together by [`emit_windows`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeRow {
    /// The node's own features; the node has a row while they are present.
    pub base: Option<Arc<NodeBase>>,
    /// 1-hop aggregates; `None` without neighbours.
    pub one_hop: Option<Arc<Agg>>,
    /// 2-hop aggregates; `None` without neighbours.
    pub two_hop: Option<Arc<Agg>>,
    /// Smallest node id of the node's connected component.
    pub component: Option<u64>,
    /// Connected components in the window.
    pub components: Option<u64>,
}

impl Assemble for NodeRow {
    type Part = Part;

    fn clear(&mut self, part: &Part) {
        match part {
            Part::Base(_) => self.base = None,
            Part::OneHop(_) => self.one_hop = None,
            Part::TwoHop(_) => self.two_hop = None,
            Part::Component(_) => self.component = None,
            Part::Components(_) => self.components = None,
        }
    }

    fn set(&mut self, part: Part) {
        match part {
            Part::Base(b) => self.base = Some(b),
            Part::OneHop(a) => self.one_hop = Some(a),
            Part::TwoHop(a) => self.two_hop = Some(a),
            Part::Component(c) => self.component = Some(c),
            Part::Components(c) => self.components = Some(c),
        }
    }

    fn is_empty(&self) -> bool {
        self.base.is_none()
            && self.one_hop.is_none()
            && self.two_hop.is_none()
            && self.component.is_none()
            && self.components.is_none()
    }

    fn is_complete(&self) -> bool {
        self.base.is_some()
    }

    fn prefetch(&self) {
        if let Some(base) = &self.base {
            base.prefetch();
        }
        for agg in [&self.one_hop, &self.two_hop].into_iter().flatten() {
            prefetch(agg.as_ref());
        }
    }
}

impl NodeRow {
    /// The output row of `node` for window `w` (call it on a complete row).
    pub fn to_features(&self, spec: WindowSpec, w: u64, node: u64) -> NodeFeatures {
        let mut row = NodeFeatures::empty(spec.window_start(w), spec.window_end(w), node);
        if let Some(base) = &self.base {
            base.fill(&mut row);
        }
        let (one, two) = (self.one_hop.as_deref(), self.two_hop.as_deref());
        let get = |agg: Option<&Agg>, mean: bool, i: usize| {
            agg.and_then(|a| if mean { a.mean.get(i) } else { a.max.get(i) })
        };
        row.set_all_aggregates(std::array::from_fn(|i| {
            [
                get(one, true, i),
                get(one, false, i),
                get(two, true, i),
                get(two, false, i),
            ]
        }));
        row.component = self.component.unwrap_or(node);
        row.components = self.components.unwrap_or(1);
        row
    }
}

/// A keyed collection of the feature graph: contents at time `W` are window `W`'s.
type Keyed<'s, V> = VecCollection<'s, u64, (u64, V), isize>;

/// Maintains the [`Part`]s of every node's row for every window from combiner
/// updates: the collection's contents at time `W` are window `W`'s parts. Also
/// returns the nodes' own features alone, which are ready before the rest.
pub fn node_parts<'s>(updates: FeatureUpdates<'s>) -> (Keyed<'s, Part>, Keyed<'s, Arc<NodeBase>>) {
    let per_node = reduce_total(
        updates,
        "NodeBase",
        |_node, input: &mut NodeTally, output, direct| {
            // The neighbours change by a few a window: their changes go out as they
            // are, not the whole list to be diffed against the last.
            let changes = input.take_neighbour_changes();
            direct.extend(changes.map(|(n, r)| (NodeOut::Neighbour(n), r)));
            if !input.is_empty() {
                output.push((NodeOut::Present, 1));
                output.push((NodeOut::Base(Arc::new(NodeBase::fold(input))), 1));
            }
        },
    );
    // Each output record goes to the one stream of its kind, moved: cloning every
    // record for three readers that each keep one kind would copy it twice for
    // nothing.
    let [nodes, base, edges] = split_kinds(per_node);
    let nodes = nodes.flat_map(|(n, o)| matches!(o, NodeOut::Present).then_some(n));
    let base = base.flat_map(|(n, o)| match o {
        NodeOut::Base(b) => Some((n, b)),
        _ => None,
    });
    let edges = edges.flat_map(|(n, o)| match o {
        NodeOut::Neighbour(p) => Some((n, p)),
        _ => None,
    });
    // The edges are symmetric: components need each once.
    let labels = components::components(nodes, edges.clone().filter(|(v, u)| v < u));
    let (one_hop, two_hop) = graph::neighbourhood(base.clone(), edges);
    let parts = base
        .clone()
        .map(|(n, b)| (n, Part::Base(b)))
        .concat(one_hop.map(|(n, a)| (n, Part::OneHop(a))))
        .concat(two_hop.map(|(n, a)| (n, Part::TwoHop(a))))
        .concat(labels.flat_map(|(n, (label, count))| {
            [(n, Part::Component(label)), (n, Part::Components(count))]
        }));
    (parts, base)
}

/// The per-node reduce's output split by kind: presence, own features, neighbours.
fn split_kinds<'s>(
    per_node: VecCollection<'s, u64, (u64, NodeOut), isize>,
) -> [VecCollection<'s, u64, (u64, NodeOut), isize>; 3] {
    let streams = per_node
        .inner
        .partition(3, |update: ((u64, NodeOut), u64, isize)| {
            let kind = match &(update.0).1 {
                NodeOut::Present => 0,
                NodeOut::Base(_) => 1,
                NodeOut::Neighbour(_) => 2,
            };
            (kind, update)
        });
    let mut streams = streams.into_iter().map(AsCollection::as_collection);
    std::array::from_fn(|_| streams.next().expect("three partitions"))
}

/// The `node_features` rows of every closed window, from combiner updates.
pub fn node_features<'s>(
    updates: FeatureUpdates<'s>,
    spec: WindowSpec,
) -> Stream<'s, u64, Vec<NodeFeatures>> {
    rows(node_parts(updates).0, spec)
}

/// The `node_features` rows of every closed window, and each row's input to the
/// anomaly scorer at the same window time ([`ScoreInput::from`] the row).
///
/// The scorer reads only a node's own features, so its inputs are emitted from the
/// per-node reduce's output, while the neighbourhood layers, the components and
/// the rows are still being computed: the scorer (on helper threads, where the job
/// has cores for them) scores a window alongside the rest of its feature work
/// instead of after it.
pub fn node_features_scored<'s>(
    updates: FeatureUpdates<'s>,
    spec: WindowSpec,
) -> (
    Stream<'s, u64, Vec<NodeFeatures>>,
    Stream<'s, u64, Vec<ScoreInput>>,
) {
    let (parts, base) = node_parts(updates);
    let inputs = emit_windows(base, spec, move |w, node: &u64, own: &OwnRow| {
        let base = own.0.as_deref().expect("complete rows have their features");
        ScoreInput::new(
            spec.window_end(w),
            *node,
            &base.row_values(),
            (base.packets_in, base.packets_out),
            || (base.metrics.iter()).map(|m| (m.0.shared(), metric_mean(m.1, m.2))),
        )
    });
    (rows(parts, spec), inputs)
}

/// Each closed window's rows from their parts.
fn rows<'s>(parts: Keyed<'s, Part>, spec: WindowSpec) -> Stream<'s, u64, Vec<NodeFeatures>> {
    emit_windows(parts, spec, move |w, node: &u64, row: &NodeRow| {
        row.to_features(spec, w, *node)
    })
}

/// A node's own features alone: what [`node_features_scored`] assembles the scorer's
/// inputs from.
#[derive(Default)]
struct OwnRow(Option<Arc<NodeBase>>);

impl Assemble for OwnRow {
    type Part = Arc<NodeBase>;

    fn clear(&mut self, _: &Arc<NodeBase>) {
        self.0 = None;
    }

    fn set(&mut self, base: Arc<NodeBase>) {
        self.0 = Some(base);
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn is_complete(&self) -> bool {
        self.0.is_some()
    }

    fn prefetch(&self) {
        if let Some(base) = &self.0 {
            base.prefetch();
        }
    }
}

/// The least event time between two partition warnings: on sparse traffic the
/// component count rises and falls from window to window, and one warning per window
/// buried the log (240 lines for a 1,431-flow trace).
pub const PARTITION_WARN_EVERY_NS: i64 = 60_000_000_000;

/// A rise in the number of connected components: the mesh partitioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshPartition {
    /// Components in the window before.
    pub before: u64,
    /// Components in this window.
    pub now: u64,
    /// Rises since the last one reported, not reported themselves.
    pub unreported: u64,
}

/// Watches the `components` column of successive windows (rows in window order, as
/// one worker emits them) and reports when it rises: the mesh partitioned. A rise
/// within [`PARTITION_WARN_EVERY_NS`] of event time after a reported one is counted,
/// and the count goes with the next report.
#[derive(Clone, Debug, Default)]
pub struct PartitionWatch {
    last: Option<(TimestampNs, u64)>,
    reported: Option<TimestampNs>,
    unreported: u64,
}

impl PartitionWatch {
    /// Observes a row; returns the partition at the first row of a window that has
    /// more components than the window before it, unless one was reported less than
    /// [`PARTITION_WARN_EVERY_NS`] before.
    pub fn observe(&mut self, row: &NodeFeatures) -> Option<MeshPartition> {
        let (_, before) = match self.last {
            Some((w, _)) if w == row.window_end => return None,
            previous => {
                self.last = Some((row.window_end, row.components));
                previous?
            }
        };
        if row.components <= before {
            return None;
        }
        let due = self
            .reported
            .is_none_or(|at| row.window_end.0 - at.0 >= PARTITION_WARN_EVERY_NS);
        if !due {
            self.unreported += 1;
            return None;
        }
        self.reported = Some(row.window_end);
        Some(MeshPartition {
            before,
            now: row.components,
            unreported: std::mem::take(&mut self.unreported),
        })
    }
}

#[cfg(test)]
mod batch;
#[cfg(test)]
mod tests;
