//! Per-node traffic aggregation over sliding windows.
//!
//! Flow records are first folded by a worker-local [`TrafficCombiner`] into two kinds
//! of update per node: traffic totals (bytes, packets, flows, in and out) and peer
//! presence `(peer, direction)`. Each enters at its first window and is retracted when
//! the window slides past it; the combiner nets an entry against a pending retraction
//! of the same key, so a stable edge costs nothing once its window is full. A
//! differential `reduce` keyed by node then maintains [`NodeTraffic`] per window.

mod combiner;
mod diff;
mod input;

pub use combiner::TrafficCombiner;
pub use diff::{Direction, TrafficDiff, TrafficVal};
pub use input::{Late, TrafficInput};

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

/// The collection the combiner feeds: `(node, value)` with a [`TrafficDiff`] weight.
pub type TrafficUpdates<'s> = VecCollection<'s, u64, (u64, TrafficVal), TrafficDiff>;

/// One node's traffic in one window.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeTraffic {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Flow records received.
    pub flows_in: u64,
    /// Flow records sent.
    pub flows_out: u64,
    /// Distinct peers that sent to the node.
    pub in_degree: u32,
    /// Distinct peers the node sent to.
    pub out_degree: u32,
    /// Distinct peers in either direction.
    pub distinct_peers: u32,
}

/// Maintains [`NodeTraffic`] per node for every window, from combiner updates.
///
/// The result is a collection whose contents at time `W` are the traffic of window `W`.
pub fn node_traffic<'s>(
    updates: TrafficUpdates<'s>,
) -> VecCollection<'s, u64, (u64, NodeTraffic), isize> {
    updates.reduce_named("NodeTraffic", |_node, input, output| {
        let mut t = NodeTraffic::default();
        let mut last_peer = None;
        for (val, diff) in input {
            match val {
                TrafficVal::Totals => {
                    let clamp = |v: i64| v.max(0) as u64;
                    t.bytes_in = clamp(diff.bytes_in);
                    t.bytes_out = clamp(diff.bytes_out);
                    t.packets_in = clamp(diff.packets_in);
                    t.packets_out = clamp(diff.packets_out);
                    t.flows_in = clamp(diff.flows_in);
                    t.flows_out = clamp(diff.flows_out);
                }
                TrafficVal::Peer(peer, direction) if diff.presence > 0 => {
                    match direction {
                        Direction::In => t.in_degree += 1,
                        Direction::Out => t.out_degree += 1,
                    }
                    if last_peer != Some(*peer) {
                        t.distinct_peers += 1;
                        last_peer = Some(*peer);
                    }
                }
                TrafficVal::Peer(..) => {}
            }
        }
        if t != NodeTraffic::default() {
            output.push((t, 1));
        }
    })
}

#[cfg(test)]
mod tests;
