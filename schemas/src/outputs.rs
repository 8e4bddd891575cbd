//! Output records: what the dataflow writes to sinks.

use std::borrow::Cow;

use crate::record::{record, string_enum};
use crate::time::TimestampNs;

string_enum! {
    /// Health state of a node, with hysteresis between states.
    pub enum HealthState {
        /// Behaving normally.
        Healthy = "HEALTHY",
        /// Anomalous for a short while.
        Degraded = "DEGRADED",
        /// Persistently anomalous.
        Critical = "CRITICAL",
        /// Back under threshold, not yet trusted.
        Recovering = "RECOVERING",
    }
}

string_enum! {
    /// Direction of a series' recent values, as a least-squares line through them
    /// sees it against their noise.
    pub enum Trend {
        /// Rising beyond the noise.
        Increasing = "increasing",
        /// Falling beyond the noise.
        Decreasing = "decreasing",
        /// Neither.
        Stable = "stable",
    }
}

record! {
    /// Anomaly score of one node in one window, with the reason it was flagged.
    ///
    /// Version 2 adds `score_trend`, `top_values`, `top_thresholds` and `top_trends`.
    table = "anomaly_scores", version = 2, time = window_end;
    pub struct AnomalyScore {
        /// End of the scored window.
        pub window_end: TimestampNs,
        /// Node id.
        pub node: u64,
        /// Readable node name.
        pub node_label: String,
        /// Model score (higher is more anomalous), calibrated on the model's training
        /// windows: 0 is their median score, 1 their 99th percentile.
        pub score: f64,
        /// Learned threshold the score was compared with.
        pub threshold: f64,
        /// Whether `score` exceeded `threshold`.
        pub is_anomaly: bool,
        /// Health state after this window.
        pub state: HealthState,
        /// Threshold strategy (`percentile`, `sigma`, `iqr`) and model, e.g. `percentile/gmm`:
        /// the same text on every row of a job, so a constant there.
        pub strategy: Cow<'static, str>,
        /// Trend of the node's recent scores: `increasing`, `decreasing` or `stable`.
        pub score_trend: Trend,
        /// The most deviating features, most deviating first (constants from a
        /// fixed list where the scorer writes them).
        pub top_features: Vec<Cow<'static, str>>,
        /// Their robust standardised deviations (median/MAD of the node's own
        /// history), aligned with `top_features`.
        pub top_deviations: Vec<f64>,
        /// Their values in this window.
        pub top_values: Vec<f64>,
        /// Their learned thresholds on the side of the deviation (upper when above
        /// the median, lower when below), in the feature's own units.
        pub top_thresholds: Vec<f64>,
        /// Their recent trends: `increasing`, `decreasing` or `stable`.
        pub top_trends: Vec<Trend>,
    }
}

record! {
    /// A directed causal correlation between two nodes' anomalies.
    table = "causal_edges", version = 1, time = window_end;
    pub struct CausalEdge {
        /// End of the window the edge was inferred at.
        pub window_end: TimestampNs,
        /// Node whose anomaly leads.
        pub cause_node: u64,
        /// Node whose anomaly follows.
        pub effect_node: u64,
        /// Lag between them, in windows.
        pub lag_windows: u32,
        /// Strength of the correlation in `[0, 1]`.
        pub strength: f64,
        /// How it was inferred.
        pub method: String,
    }
}

record! {
    /// A group of related anomalies treated as one operational incident.
    table = "incidents", version = 1, time = start;
    pub struct Incident {
        /// Stable incident id.
        pub incident_id: String,
        /// First anomalous window end.
        pub start: TimestampNs,
        /// Last anomalous window end, or null while open.
        pub end: Option<TimestampNs>,
        /// Nodes involved.
        pub nodes: Vec<u64>,
        /// Severity (`minor`, `major`, `critical`).
        pub severity: String,
        /// One-line description for an operator.
        pub summary: String,
    }
}

record! {
    /// A ranked root-cause candidate for an incident.
    table = "root_causes", version = 1, time = time;
    pub struct RootCause {
        /// When the ranking was produced.
        pub time: TimestampNs,
        /// Incident it explains.
        pub incident_id: String,
        /// Rank, 1 being most likely.
        pub rank: u32,
        /// Candidate node.
        pub node: u64,
        /// Confidence in `[0, 1]`.
        pub confidence: f64,
        /// Why this node is suspected.
        pub reason: String,
        /// What an operator should try.
        pub remediation: String,
    }
}

string_enum! {
    /// Outcome of matching payments to an order.
    pub enum VerificationStatus {
        /// Seen but not yet final.
        Pending = "pending",
        /// Paid in full and final.
        Confirmed = "confirmed",
        /// Final, but less than expected.
        Underpaid = "underpaid",
        /// Final, and more than expected.
        Overpaid = "overpaid",
        /// No matching payment before the deadline.
        Expired = "expired",
    }
}

record! {
    /// Verification of one order against the payments seen for it.
    table = "payment_verifications", version = 1, time = time;
    pub struct PaymentVerification {
        /// When the verdict was reached.
        pub time: TimestampNs,
        /// The order being paid.
        pub order_id: String,
        /// Chain the payment is expected on.
        pub chain: crate::inputs::Chain,
        /// Matched transaction ids.
        pub tx_ids: Vec<String>,
        /// Expected amount in base units.
        pub expected_amount: u64,
        /// Received amount in base units.
        pub received_amount: u64,
        /// Verdict.
        pub status: VerificationStatus,
    }
}

string_enum! {
    /// Kind of fault the simulator injects.
    pub enum FaultKind {
        /// Loss and latency on one edge.
        LinkDegradation = "link_degradation",
        /// One node overloaded: high load, latency, drops.
        NodeOverload = "node_overload",
        /// One node floods its neighbours with traffic.
        TrafficFlood = "traffic_flood",
        /// A fault at the root spreads to downstream neighbours with a lag.
        CascadingFailure = "cascading_failure",
    }
}

record! {
    /// Ground truth of one injected fault, written by the simulator.
    table = "ground_truth", version = 1, time = start;
    pub struct GroundTruth {
        /// Fault id, unique within a trace.
        pub fault_id: u64,
        /// Kind of fault.
        pub kind: FaultKind,
        /// Node where the fault originates.
        pub root_node: u64,
        /// The other end of the degraded edge, for link faults.
        pub peer_node: Option<u64>,
        /// Every node whose behaviour the fault changes (root first).
        pub affected_nodes: Vec<u64>,
        /// For each affected node, how long after `start` it is hit (a cascade's lag; 0 otherwise).
        pub affected_delays_ns: Vec<u64>,
        /// Fault start.
        pub start: TimestampNs,
        /// Fault end (exclusive).
        pub end: TimestampNs,
    }
}
