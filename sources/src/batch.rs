//! The unit every source hands to the dataflow: one batch of mixed events.

use meshflow_schemas::{FlowRecord, NodeMetric, SyscallLatency, TcpEvent, TimestampNs};

use crate::replay::FlowColumns;

/// A batch of events from one source: flows (column-wise, the hot path) and the
/// rarer per-node records. Reused between reads; [`SourceBatch::clear`] keeps capacity.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// Flow records, column-wise: what the dataflow aggregates.
    pub flows: FlowColumns,
    /// The same flows as whole records (addresses, ports, protocol, flags), from
    /// sources that have them, for the `flows` input table.
    pub flow_records: Vec<FlowRecord>,
    /// Per-node metric samples.
    pub metrics: Vec<NodeMetric>,
    /// TCP retransmits, drops and state changes.
    pub tcp: Vec<TcpEvent>,
    /// System-call latency samples.
    pub syscalls: Vec<SyscallLatency>,
}

impl SourceBatch {
    /// Events of every kind in the batch (a flow counts once, though it may be held
    /// both column-wise and as a record).
    pub fn len(&self) -> usize {
        self.flows.len() + self.metrics.len() + self.tcp.len() + self.syscalls.len()
    }

    /// Whether the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.flows.clear();
        self.flow_records.clear();
        self.metrics.clear();
        self.tcp.clear();
        self.syscalls.clear();
    }

    /// Drops every event before `time`, returning how many were dropped (a flow held
    /// both column-wise and as a record counts once).
    pub fn retain_from(&mut self, time: TimestampNs) -> usize {
        let before = self.len();
        // Live batches after the hand-off rarely hold an earlier flow: rebuild the
        // columns only when one does.
        if self.flows.last_seen.iter().any(|t| *t < time) {
            let mut kept = FlowColumns::default();
            for i in 0..self.flows.len() {
                if self.flows.last_seen[i] >= time {
                    kept.extend_from(&self.flows, i..i + 1);
                }
            }
            self.flows = kept;
        }
        self.flow_records.retain(|f| f.last_seen >= time);
        self.metrics.retain(|m| m.time >= time);
        self.tcp.retain(|t| t.time >= time);
        self.syscalls.retain(|s| s.time >= time);
        before - self.len()
    }

    /// Moves every event of `other` into `self`, leaving `other` empty.
    pub fn append(&mut self, other: &mut SourceBatch) {
        self.flows.append(&mut other.flows);
        self.flow_records.append(&mut other.flow_records);
        self.metrics.append(&mut other.metrics);
        self.tcp.append(&mut other.tcp);
        self.syscalls.append(&mut other.syscalls);
    }
}
