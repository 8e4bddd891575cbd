//! Seeded mesh simulator: meshflow's embedded default input.
//!
//! [`Simulator::new`] builds a mesh ([`Topology`]) and a fault schedule (with
//! [`GroundTruth`]) from a [`SimConfig`]; [`Simulator::partition`] then yields, tick by
//! tick, the flows, per-node metrics and TCP events of one worker's share of the nodes.
//!
//! Output depends only on the config: every random choice is keyed by
//! `(seed, node, tick)` (or `(seed, src, dst, tick)` for facts both ends of a flow share),
//! so the union of all workers' output is the same for any number of workers.
//!
//! Each tick, every node sends one flow to most neighbours (bytes: a lognormal per-edge
//! rate × a daily sinusoid × lognormal noise), reports `rtt_ms`, `cpu_load`,
//! `retransmits` and `drops`, and observes retransmits, drops and connection set-ups as
//! [`TcpEvent`]s; `retransmits` and `drops` equal the events it observed that tick.
//!
//! # Faults and ground truth
//!
//! `faults.count` faults, kinds cycling through `faults.kinds`, are placed after the
//! warmup, one per equal time slot (so they never overlap), on distinct root nodes, with
//! whole-tick durations in `[min_duration, max_duration]` (clipped to the slot). A
//! [`GroundTruth`] row lists every node whose telemetry the fault changes, root first,
//! with the delay after `start` at which it is hit; `end` is exclusive.
//!
//! - `link_degradation` on edge `(root, peer)`: 20% loss and ×4.5 latency on that edge,
//!   so many retransmits both ways, `rtt_ms` ×2.5 at both ends, ×0.7 bytes on the edge.
//!   Affected: root, peer.
//! - `node_overload` at the root: `cpu_load` ≥ 0.9, `rtt_ms` ×4, many `QDISC_DROP`s,
//!   bytes out ×0.6, more retransmits. Affected: root.
//! - `traffic_flood` from the root: ×20 bytes and packets to every neighbour, mostly UDP;
//!   the neighbours see the bytes and drop some (`SOCKET_RCVBUFF`). Affected: root,
//!   then its neighbours.
//! - `cascading_failure` at the root: the root is overloaded from `start`, nodes `h`
//!   hops away (BFS, `h ≤ cascade_hops`, at most 10 nodes) from `start + h·cascade_lag`,
//!   all until `end`. Affected: root, hop-1 nodes, hop-2 nodes, ... with their delays.

mod clock;
mod config;
mod faults;
mod rng;
mod shape;
mod topology;
mod traffic;

#[cfg(test)]
mod tests_config;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_output;
#[cfg(test)]
mod tests_topology;

use std::net::Ipv4Addr;
use std::sync::Arc;

use meshflow_schemas::{FlowRecord, GroundTruth, Ip16, NodeMetric, TcpEvent, TimestampNs};

pub use config::{FaultPlan, MAX_NODES, Pace, SimConfig, SimError, TopologyKind};
pub use topology::Topology;

use faults::{Clock, FaultSchedule};
use traffic::{Model, Scratch};

/// Metric name of a node's smoothed round-trip time, milliseconds.
pub const METRIC_RTT_MS: &str = "rtt_ms";
/// Metric name of a node's CPU load, `0..=1`.
pub const METRIC_CPU_LOAD: &str = "cpu_load";
/// Metric name of the retransmits a node observed in the tick.
pub const METRIC_RETRANSMITS: &str = "retransmits";
/// Metric name of the drops a node observed in the tick.
pub const METRIC_DROPS: &str = "drops";

/// The address of simulated node `node`: IPv4 `10.a.b.c` from its low 24 bits, IPv4-mapped.
pub fn node_ip(node: u64) -> Ip16 {
    let [_, a, b, c] = ((node & 0x00ff_ffff) as u32).to_be_bytes();
    Ip16::from(Ipv4Addr::new(10, a, b, c))
}

/// A configured simulation: topology, baselines and fault schedule, built once.
///
/// Cloning is cheap (shared state), so each worker can hold its own copy.
#[derive(Clone, Debug)]
pub struct Simulator {
    cfg: Arc<SimConfig>,
    model: Arc<Model>,
}

impl Simulator {
    /// Validates `cfg` and builds the topology and fault schedule from its seed.
    pub fn new(cfg: SimConfig) -> Result<Simulator, SimError> {
        cfg.validate()?;
        let start = cfg.start_time()?.0;
        let tick = cfg.tick.as_nanos_i64();
        let clock = Clock {
            start,
            end: start + cfg.duration.as_nanos_i64(),
            tick,
            ticks: cfg.tick_count(),
        };
        let topo = Topology::generate(
            cfg.topology,
            cfg.nodes,
            cfg.mean_degree,
            rng::splitmix64(cfg.seed ^ rng::SALT_TOPOLOGY),
        );
        let faults = FaultSchedule::build(&cfg, &topo, clock);
        let model = Model::new(cfg.seed, topo, clock, faults);
        tracing::debug!(
            nodes = model.topo.nodes,
            edges = model.topo.edges.len(),
            ticks = clock.ticks,
            faults = model.faults.truth.len(),
            "mesh simulator built"
        );
        Ok(Simulator {
            cfg: Arc::new(cfg),
            model: Arc::new(model),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The simulated mesh.
    pub fn topology(&self) -> &Topology {
        &self.model.topo
    }

    /// The injected faults, in start order (`fault_id` is the index).
    pub fn ground_truth(&self) -> &[GroundTruth] {
        &self.model.faults.truth
    }

    /// First instant of the run.
    pub fn start_time(&self) -> TimestampNs {
        TimestampNs(self.model.clock.start)
    }

    /// Exclusive end of the run (`start + duration`).
    pub fn end_time(&self) -> TimestampNs {
        TimestampNs(self.model.clock.end)
    }

    /// Length of a tick in nanoseconds (the last tick may be shorter).
    pub fn tick_ns(&self) -> i64 {
        self.model.clock.tick
    }

    /// Number of ticks in the run.
    pub fn ticks(&self) -> u64 {
        self.model.clock.ticks
    }

    /// The share of worker `worker` of `peers`: the nodes with `node % peers == worker`.
    ///
    /// # Panics
    /// If `peers` is 0 or `worker >= peers`.
    pub fn partition(&self, worker: usize, peers: usize) -> SimPartition {
        assert!(
            peers > 0 && worker < peers,
            "worker {worker} is not one of {peers} peers"
        );
        SimPartition {
            model: Arc::clone(&self.model),
            worker,
            peers,
            next: 0,
            scratch: Scratch::default(),
        }
    }
}

/// One worker's share of a simulation, generated tick by tick.
#[derive(Debug)]
pub struct SimPartition {
    model: Arc<Model>,
    worker: usize,
    peers: usize,
    /// The next tick to generate.
    next: u64,
    /// Reused buffers: active fault effects, sort keys, unsorted flows.
    scratch: Scratch,
}

impl SimPartition {
    /// Generates the next tick's events for this partition's nodes into `out`
    /// (cleared first, buffers reused); returns `false`, with `out` emptied, after the last tick.
    ///
    /// A partition emits the flows its nodes send, and the metrics and TCP events its
    /// nodes observe. Flows are ordered by `(last_seen, src_node, dst_node)`, TCP events
    /// by time then node, metrics by node; every record lies in `[out.start, out.end)`.
    pub fn next_tick(&mut self, out: &mut Tick) -> bool {
        if self.next >= self.model.clock.ticks {
            out.flows.clear();
            out.metrics.clear();
            out.tcp_events.clear();
            return false;
        }
        let k = self.next;
        self.model.faults.active(k, &mut self.scratch.active);
        self.model
            .fill_tick(k, (self.worker, self.peers), &mut self.scratch, out);
        self.next += 1;
        true
    }

    /// Index of the next tick [`next_tick`](Self::next_tick) will generate.
    pub fn next_tick_index(&self) -> u64 {
        self.next
    }

    /// Start of the next tick, or `None` when the run is over (for pacing).
    pub fn next_tick_start(&self) -> Option<TimestampNs> {
        (self.next < self.model.clock.ticks)
            .then(|| TimestampNs(self.model.clock.tick_start(self.next)))
    }
}

/// The records of one tick of one partition; reuse one across calls to avoid allocation.
#[derive(Clone, Debug, Default)]
pub struct Tick {
    /// Start of the tick; every record's event time lies in `[start, end)`.
    pub start: TimestampNs,
    /// Exclusive end of the tick: `start + tick`, or the end of the run for a short last tick.
    pub end: TimestampNs,
    /// Flows sent by the partition's nodes, by `(last_seen, src_node, dst_node)`.
    pub flows: Vec<FlowRecord>,
    /// Four metrics per node (`rtt_ms`, `cpu_load`, `retransmits`, `drops`), stamped `start`.
    pub metrics: Vec<NodeMetric>,
    /// TCP events observed by the partition's nodes, by time.
    pub tcp_events: Vec<TcpEvent>,
}
