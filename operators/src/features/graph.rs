//! Neighbourhood aggregates (GraphSAGE mean/max, K = 2) and connected components.
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
//! Null values are skipped and an aggregate over no values is null. The 2-hop
//! aggregates are derived from the neighbours' 1-hop aggregates with one more join
//! over the edges, so both layers cost O(edges) per change, never degree².

use differential_dataflow::VecCollection;
use differential_dataflow::algorithms::graphs::propagate::propagate_core;
use serde::{Deserialize, Serialize};

use super::base::{BaseValues, Num};

/// Mean and max of every base feature over a set of nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Agg {
    /// Mean of each feature over the nodes that have it.
    pub mean: BaseValues,
    /// Max of each feature over the nodes that have it.
    pub max: BaseValues,
}

/// Aggregates `(means, maxes, multiplicity)` items: the mean of the means and the
/// max of the maxes, feature by feature, skipping nulls.
fn aggregate<'a>(items: impl Iterator<Item = (&'a BaseValues, &'a BaseValues, isize)>) -> Agg {
    let mut sum = [0.0f64; super::BASE_FEATURE_COUNT];
    let mut n = [0isize; super::BASE_FEATURE_COUNT];
    let mut max: [Option<f64>; super::BASE_FEATURE_COUNT] = [None; super::BASE_FEATURE_COUNT];
    for (means, maxes, count) in items {
        for i in 0..sum.len() {
            if let Some(v) = means[i] {
                sum[i] += v.get() * count as f64;
                n[i] += count;
            }
            if let Some(v) = maxes[i] {
                max[i] = Some(max[i].map_or(v.get(), |m| m.max(v.get())));
            }
        }
    }
    Agg {
        mean: std::array::from_fn(|i| (n[i] > 0).then(|| Num::new(sum[i] / n[i] as f64))),
        max: max.map(|m| m.map(Num::new)),
    }
}

/// Type of a keyed collection of the feature graph.
type Keyed<'s, V> = VecCollection<'s, u64, (u64, V), isize>;

/// The 1-hop and 2-hop aggregates of every node with a neighbour, from the window's
/// symmetric edges `(v, u)` and the nodes' base values.
pub fn neighbourhood<'s>(
    edges: Keyed<'s, u64>,
    values: Keyed<'s, BaseValues>,
) -> (Keyed<'s, Agg>, Keyed<'s, Agg>) {
    let edges = edges.arrange_by_key_named("Arrange: Edges");
    let one_hop = edges
        .clone()
        .join_core(values.arrange_by_key(), |_u, v, x| Some((*v, *x)))
        .reduce_named("OneHop", |_v, input, output| {
            output.push((aggregate(input.iter().map(|(x, c)| (*x, *x, *c))), 1));
        });
    let two_hop = edges
        .join_core(one_hop.clone().arrange_by_key(), |_u, v, agg| {
            Some((*v, *agg))
        })
        .reduce_named("TwoHop", |_v, input, output| {
            output.push((
                aggregate(input.iter().map(|(a, c)| (&a.mean, &a.max, *c))),
                1,
            ));
        });
    (one_hop, two_hop)
}

/// Each node's connected component (the smallest node id it reaches over the
/// symmetric edges), and the number of components, attached to every node.
pub fn components<'s>(
    nodes: VecCollection<'s, u64, u64, isize>,
    edges: Keyed<'s, u64>,
) -> (Keyed<'s, u64>, Keyed<'s, u64>) {
    let labels = propagate_core(edges.arrange_by_key(), nodes.map(|n| (n, n)), |_| 0);
    let count = labels
        .clone()
        .map(|(_, label)| label)
        .distinct()
        .map(|_| ())
        .count();
    let counts = labels
        .clone()
        .map(|(node, _)| ((), node))
        .join_map(count, |_, node, n| (*node, *n as u64));
    (labels, counts)
}
