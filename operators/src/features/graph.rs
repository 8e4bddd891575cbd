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
//! Null values are skipped and an aggregate over no values is null. The 2-hop
//! aggregates are derived from the neighbours' 1-hop aggregates with one more join
//! over the edges, so both layers cost O(edges) per change, never degree².

use std::sync::Arc;

use differential_dataflow::VecCollection;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::ValSpine;
use serde::{Deserialize, Serialize};

use super::base::BaseValues;
use crate::total::reduce_total;

/// Mean and max of every base feature over a set of nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Agg {
    /// Mean of each feature over the nodes that have it.
    pub mean: BaseValues,
    /// Max of each feature over the nodes that have it.
    pub max: BaseValues,
}

/// Aggregates `(means, maxes, multiplicity)` items: the mean of the means and the
/// max of the maxes, feature by feature, skipping nulls (sums in `f64`, results
/// rounded to `f32` as [`BaseValues`] keeps them).
fn aggregate<'a>(items: impl Iterator<Item = (&'a BaseValues, &'a BaseValues, isize)>) -> Agg {
    let mut sum = [0.0f64; super::BASE_FEATURE_COUNT];
    let mut n = [0isize; super::BASE_FEATURE_COUNT];
    let mut max: [Option<f64>; super::BASE_FEATURE_COUNT] = [None; super::BASE_FEATURE_COUNT];
    for (means, maxes, count) in items {
        for i in 0..sum.len() {
            if let Some(v) = means.get(i) {
                sum[i] += v * count as f64;
                n[i] += count;
            }
            if let Some(v) = maxes.get(i) {
                max[i] = Some(max[i].map_or(v, |m| m.max(v)));
            }
        }
    }
    Agg {
        mean: BaseValues::from_values(std::array::from_fn(|i| {
            (n[i] > 0).then(|| sum[i] / n[i] as f64)
        })),
        max: BaseValues::from_values(max),
    }
}

/// Type of a keyed collection of the feature graph.
type Keyed<'s, V> = VecCollection<'s, u64, (u64, V), isize>;

/// The window's symmetric edges `(v, u)`, arranged by `v` once for both joins.
pub type Edges<'s> = Arranged<'s, TraceAgent<ValSpine<u64, u64, u64, isize>>>;

/// The 1-hop and 2-hop aggregates of every node with a neighbour, from the window's
/// symmetric edges `(v, u)` (arranged by `v`) and the nodes' base values.
///
/// Each layer joins the edges with what the neighbours hold and aggregates per node
/// with [`reduce_total`], which keeps one copy of a node's joined values instead of
/// arranged batches of old and new per-edge records. Values and aggregates travel
/// behind an `Arc`: every edge copies a pointer, not 64 or 128 bytes, through the
/// join's output, the exchange and the reduce.
pub fn neighbourhood<'s>(
    edges: Edges<'s>,
    values: Keyed<'s, Arc<BaseValues>>,
) -> (Keyed<'s, Arc<Agg>>, Keyed<'s, Arc<Agg>>) {
    let one_hop = reduce_total(
        edges
            .clone()
            .join_core(values.arrange_by_key(), |_u, v, x| Some((*v, x.clone()))),
        "OneHop",
        |_v, input, output| {
            let agg = aggregate(input.iter().map(|(x, c)| (&**x, &**x, *c)));
            output.push((Arc::new(agg), 1));
        },
    );
    let two_hop = reduce_total(
        edges.join_core(one_hop.clone().arrange_by_key(), |_u, v, agg| {
            Some((*v, agg.clone()))
        }),
        "TwoHop",
        |_v, input, output| {
            let agg = aggregate(input.iter().map(|(a, c)| (&a.mean, &a.max, *c)));
            output.push((Arc::new(agg), 1));
        },
    );
    (one_hop, two_hop)
}
