//! The values and weights of the traffic collection.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

/// Direction of traffic relative to the keyed node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The peer sent to the node.
    In,
    /// The node sent to the peer.
    Out,
}

/// What an update to a node's traffic is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TrafficVal {
    /// The node's traffic totals; the weight carries the sums.
    Totals,
    /// Presence of a peer in one direction; the weight's `presence` counts epochs.
    Peer(u64, Direction),
}

/// The weight of a traffic update: an Abelian group, so windows can retract.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct TrafficDiff {
    /// Epochs in which a peer was seen (for [`TrafficVal::Peer`]).
    pub presence: i64,
    /// Bytes received.
    pub bytes_in: i64,
    /// Bytes sent.
    pub bytes_out: i64,
    /// Packets received.
    pub packets_in: i64,
    /// Packets sent.
    pub packets_out: i64,
    /// Flows received.
    pub flows_in: i64,
    /// Flows sent.
    pub flows_out: i64,
}

impl IsZero for TrafficDiff {
    fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

impl Semigroup for TrafficDiff {
    fn plus_equals(&mut self, rhs: &Self) {
        self.presence += rhs.presence;
        self.bytes_in += rhs.bytes_in;
        self.bytes_out += rhs.bytes_out;
        self.packets_in += rhs.packets_in;
        self.packets_out += rhs.packets_out;
        self.flows_in += rhs.flows_in;
        self.flows_out += rhs.flows_out;
    }
}

impl Monoid for TrafficDiff {
    fn zero() -> Self {
        Self::default()
    }
}

impl Abelian for TrafficDiff {
    fn negate(&mut self) {
        self.presence = -self.presence;
        self.bytes_in = -self.bytes_in;
        self.bytes_out = -self.bytes_out;
        self.packets_in = -self.packets_in;
        self.packets_out = -self.packets_out;
        self.flows_in = -self.flows_in;
        self.flows_out = -self.flows_out;
    }
}
