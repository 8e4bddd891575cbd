//! Input records: what sources deliver into the dataflow.

use std::sync::Arc;

use crate::ip::Ip16;
use crate::record::{ArrowRecord, record, string_enum};
use crate::time::TimestampNs;

/// The tables of the events the features are computed from, in the order every
/// source, trace and sink lists them: flows, node metrics, TCP events, system-call
/// latencies.
pub const INPUT_TABLES: [&str; 4] = [
    FlowRecord::TABLE,
    NodeMetric::TABLE,
    TcpEvent::TABLE,
    SyscallLatency::TABLE,
];

record! {
    /// One flow (5-tuple) observed between two mesh nodes over `[first_seen, last_seen]`.
    ///
    /// Its event time is `last_seen`: the moment the record is complete.
    table = "flows", version = 1, time = last_seen;
    pub struct FlowRecord {
        /// Mesh node that sent the flow.
        pub src_node: u64,
        /// Mesh node that received the flow.
        pub dst_node: u64,
        /// Source address.
        pub src_ip: Ip16,
        /// Destination address.
        pub dst_ip: Ip16,
        /// Source port (0 when the protocol has none).
        pub src_port: u16,
        /// Destination port (0 when the protocol has none).
        pub dst_port: u16,
        /// IANA L4 protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
        pub protocol: u8,
        /// Bytes sent in the interval.
        pub bytes: u64,
        /// Packets sent in the interval.
        pub packets: u64,
        /// First packet seen.
        pub first_seen: TimestampNs,
        /// Last packet seen; the event time.
        pub last_seen: TimestampNs,
        /// OR of the TCP flags seen (0 for non-TCP).
        pub tcp_flags: u8,
    }
}

record! {
    /// One sample of a named per-node time series: the generic form for counters and gauges.
    table = "node_metrics", version = 1, time = time;
    pub struct NodeMetric {
        /// Sample time.
        pub time: TimestampNs,
        /// The node the sample describes.
        pub node: u64,
        /// Metric name, e.g. `rtt_ms`, `cpu_load`, `xdp_rx_bytes`; shared text, since
        /// every sample of a series repeats it.
        pub metric: Arc<str>,
        /// Sample value.
        pub value: f64,
    }
}

record! {
    /// One link of a given topology, for data that has metrics but no flows (see
    /// `meshflow import metrics --edges`). It holds from `valid_from` on.
    table = "edges", version = 1, time = valid_from;
    pub struct TopologyEdge {
        /// When the link is known to exist: the start of the imported data.
        pub valid_from: TimestampNs,
        /// One end.
        pub src_node: u64,
        /// The other end.
        pub dst_node: u64,
    }
}

record! {
    /// The name a node id stands for, when the input named nodes (a service, a host)
    /// instead of giving addresses or numbers.
    table = "nodes", version = 1, time = first_seen;
    pub struct NodeName {
        /// First time the node appears in the input.
        pub first_seen: TimestampNs,
        /// Node id (see `node_id_of_name`).
        pub node: u64,
        /// The name as given.
        pub name: String,
    }
}

string_enum! {
    /// What a [`TcpEvent`] reports.
    pub enum TcpEventKind {
        /// A segment was retransmitted.
        Retransmit = "retransmit",
        /// A packet was dropped (see `drop_reason`).
        Drop = "drop",
        /// A socket changed TCP state.
        StateChange = "state_change",
    }
}

record! {
    /// A TCP-level event: retransmit, drop with reason, or state change with smoothed RTT.
    table = "tcp_events", version = 1, time = time;
    pub struct TcpEvent {
        /// When the kernel saw it.
        pub time: TimestampNs,
        /// The node that observed it.
        pub node: u64,
        /// The remote node, when known.
        pub peer_node: Option<u64>,
        /// Which kind of event.
        pub kind: TcpEventKind,
        /// Local address.
        pub src_ip: Ip16,
        /// Remote address.
        pub dst_ip: Ip16,
        /// Local port.
        pub src_port: u16,
        /// Remote port.
        pub dst_port: u16,
        /// Kernel drop reason (`skb_drop_reason` name) for drops.
        pub drop_reason: Option<String>,
        /// Previous TCP state for state changes (e.g. `SYN_SENT`).
        pub old_state: Option<String>,
        /// New TCP state for state changes (e.g. `ESTABLISHED`).
        pub new_state: Option<String>,
        /// Smoothed RTT in microseconds, when known.
        pub srtt_us: Option<u32>,
    }
}

record! {
    /// Latency of one network system call (entry to exit) on a node.
    table = "syscall_latency", version = 1, time = time;
    pub struct SyscallLatency {
        /// Exit time of the call.
        pub time: TimestampNs,
        /// The node it ran on.
        pub node: u64,
        /// Process id.
        pub pid: u32,
        /// System call name (`sendto`, `recvmsg`, `connect`, ...).
        pub syscall: String,
        /// Entry-to-exit latency in nanoseconds.
        pub latency_ns: u64,
    }
}

string_enum! {
    /// The chain a payment was seen on.
    pub enum Chain {
        /// TRON (TRC-20 tokens such as USDT).
        Tron = "tron",
        /// The Open Network.
        Ton = "ton",
    }
}

record! {
    /// An incoming payment to a watched wallet. Amounts are integer base units.
    table = "payments", version = 1, time = time;
    pub struct Payment {
        /// Block time of the transaction.
        pub time: TimestampNs,
        /// Chain.
        pub chain: Chain,
        /// Transaction id (hash); with `chain` the dedup key.
        pub tx_id: String,
        /// Sender address.
        pub from_address: String,
        /// Receiving (watched) address.
        pub to_address: String,
        /// Asset symbol (`USDT`, `TON`).
        pub asset: String,
        /// Amount in base units (USDT: 6 decimals, TON: 9).
        pub amount: u64,
        /// Decimals of the asset, to render `amount`.
        pub decimals: u8,
        /// Memo or text comment, used to match an order.
        pub memo: Option<String>,
        /// Whether the chain reports the transaction as final.
        pub confirmed: bool,
        /// Block number (TRON) or logical time (TON).
        pub block: u64,
    }
}
