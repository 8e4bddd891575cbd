//! The traffic model: what each node sends, observes and reports in one tick.
//!
//! A node's output in tick `k` depends only on the seed, the node, `k` and the fault
//! schedule. Random magnitudes come from a stream keyed by `(seed, node, k)`; the facts
//! both ends of a flow must agree on (does it exist, TCP or UDP, ports) come from a hash
//! of `(seed, src, dst, k)`, so the receiver's drop events name the sender's real flows.

use std::sync::Arc;

use meshflow_schemas::{FlowRecord, NodeMetric, TcpEvent, TcpEventKind, TimestampNs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::faults::{Active, Clock, Effect, FaultSchedule, NodeState};
use super::rng::{
    Poisson, SALT_EDGE_RATE, SALT_NODE_BASE, hash_normal, hash2, normal_pair, poisson, unit,
};
use super::shape::{Hashes, SYN};
use super::topology::Topology;
use super::{METRIC_CPU_LOAD, METRIC_DROPS, METRIC_RETRANSMITS, METRIC_RTT_MS, Tick, node_ip};

/// Median over edges of an edge's base rate, bytes per second.
const MEDIAN_EDGE_RATE: f64 = 100_000.0;
/// Log-scale spread of base rates across edges.
const EDGE_RATE_SIGMA: f64 = 1.0;
/// Log-scale noise of a flow's bytes around its edge's rate.
const FLOW_NOISE_SIGMA: f64 = 0.25;
/// Mean packet size, bytes.
const MEAN_PACKET_BYTES: f64 = 800.0;
/// Log-scale noise of the packet size.
const PACKET_NOISE_SIGMA: f64 = 0.1;
// Event rates below are per second of a tick (for a tick of 1s, per tick), so a
// run's event rate does not depend on the tick length.

/// Baseline retransmit events per TCP flow.
const RETRANSMIT_RATE: f64 = 0.02;
/// Extra retransmits per TCP flow from an overloaded sender.
const OVERLOAD_RETRANSMIT_RATE: f64 = 0.3;
/// Packet loss on a degraded link.
const LINK_LOSS: f64 = 0.2;
/// Cap on retransmit events per flow on a degraded link.
const LINK_RETRANSMIT_CAP: f64 = 20.0;
/// Floor of retransmit events per flow on a degraded link: even a small flow
/// losing a fifth of its segments retransmits, and retransmits again on timeouts.
const LINK_RETRANSMIT_FLOOR: f64 = 3.0;
/// RTT multiplier on a degraded link.
const LINK_LATENCY_FACTOR: f64 = 4.5;
/// Bytes multiplier on a degraded link.
const LINK_BYTES_FACTOR: f64 = 0.7;
/// `rtt_ms` multiplier of a node with a degraded link.
const DEGRADED_NODE_RTT_FACTOR: f64 = 2.5;
/// `rtt_ms` multiplier of an overloaded node.
const OVERLOAD_RTT_FACTOR: f64 = 4.0;
/// Bytes-out multiplier of an overloaded node.
const OVERLOAD_BYTES_FACTOR: f64 = 0.6;
/// Floor of an overloaded node's `cpu_load`.
const OVERLOAD_CPU: f64 = 0.9;
/// Bytes and packets multiplier of a flooding node.
const FLOOD_FACTOR: f64 = 20.0;
/// Baseline egress queue drops per sent flow.
const EGRESS_DROP_RATE: f64 = 0.005;
/// Egress queue drops at an overloaded node, spread over its flows.
const OVERLOAD_DROPS: f64 = 8.0;
/// Floor of the egress queue drops per flow at an overloaded node.
const OVERLOAD_DROP_RATE: f64 = 1.5;
/// Baseline ingress drops per received flow.
const INGRESS_DROP_RATE: f64 = 0.01;
/// Ingress drops per flood flow at a flooded neighbour.
const FLOOD_DROP_RATE: f64 = 2.0;

/// Traffic level over the day: `1 + 0.5·sin`, lowest at 02:00 UTC and highest at 14:00.
fn daily_shape(t: i64) -> f64 {
    const DAY: i64 = 86_400_000_000_000;
    let day_fraction = t.rem_euclid(DAY) as f64 / DAY as f64;
    1.0 + 0.5 * (std::f64::consts::TAU * (day_fraction - 8.0 / 24.0)).sin()
}

/// A uniform instant in `[from, to]`.
#[inline]
fn instant_in(rng: &mut ChaCha8Rng, from: i64, to: i64) -> i64 {
    let span = to - from;
    from + ((rng.random::<f64>() * (span + 1) as f64) as i64).min(span)
}

/// The names of the four metrics, made once per partition and shared by its samples.
#[derive(Debug)]
struct MetricNames {
    rtt_ms: Arc<str>,
    cpu_load: Arc<str>,
    retransmits: Arc<str>,
    drops: Arc<str>,
}

impl Default for MetricNames {
    fn default() -> Self {
        Self {
            rtt_ms: METRIC_RTT_MS.into(),
            cpu_load: METRIC_CPU_LOAD.into(),
            retransmits: METRIC_RETRANSMITS.into(),
            drops: METRIC_DROPS.into(),
        }
    }
}

/// Writes metric `i` of the tick, reusing the slot when there is one.
fn put_metric(metrics: &mut Vec<NodeMetric>, i: &mut usize, m: (TimestampNs, u64, &Arc<str>, f64)) {
    let (time, node, name, value) = m;
    if let Some(slot) = metrics.get_mut(*i) {
        slot.time = time;
        slot.node = node;
        if !Arc::ptr_eq(&slot.metric, name) {
            slot.metric = name.clone();
        }
        slot.value = value;
    } else {
        metrics.push(NodeMetric {
            time,
            node,
            metric: name.clone(),
            value,
        });
    }
    *i += 1;
}

/// Sorts `flows` (generated in `(src_node, dst_node)` order, in the tick starting at
/// `start`) by `(last_seen, src_node, dst_node)`: sorting small keys of
/// `(last_seen, generation order)` and gathering beats sorting 100-byte records.
/// `flows` and `spare` swap buffers.
fn sort_flows(
    flows: &mut Vec<FlowRecord>,
    spare: &mut Vec<FlowRecord>,
    keys: &mut Vec<u128>,
    start: i64,
) {
    keys.clear();
    keys.extend(
        flows
            .iter()
            .enumerate()
            .map(|(i, f)| (((f.last_seen.0 - start) as u128) << 64) | i as u128),
    );
    keys.sort_unstable();
    spare.clear();
    spare.extend(keys.iter().map(|&key| flows[key as u64 as usize].clone()));
    std::mem::swap(flows, spare);
}

/// A TCP event without the optional fields.
fn tcp_event(time: i64, node: u64, peer: u64, kind: TcpEventKind, ports: (u16, u16)) -> TcpEvent {
    TcpEvent {
        time: TimestampNs(time),
        node,
        peer_node: Some(peer),
        kind,
        src_ip: node_ip(node),
        dst_ip: node_ip(peer),
        src_port: ports.0,
        dst_port: ports.1,
        drop_reason: None,
        old_state: None,
        new_state: None,
        srtt_us: None,
    }
}

/// A drop event with its kernel reason.
fn drop_event(time: i64, node: u64, peer: u64, ports: (u16, u16), reason: &str) -> TcpEvent {
    TcpEvent {
        drop_reason: Some(reason.to_string()),
        ..tcp_event(time, node, peer, TcpEventKind::Drop, ports)
    }
}

/// Reusable buffers of a partition, so flows and metrics allocate nothing once warm.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The fault effects active in the current tick, by node.
    pub(crate) active: Vec<(u64, Effect)>,
    /// Sort keys of the flows: offset of `last_seen` in the tick, then generation order.
    keys: Vec<u128>,
    /// The other flow buffer of the sort.
    flows: Vec<FlowRecord>,
    /// The metric names the partition's samples share.
    metric_names: MetricNames,
}

/// The event-count distributions of one tick, scaled to its length.
#[derive(Clone, Copy, Debug)]
struct Rates {
    /// Length of the tick in seconds.
    secs: f64,
    retransmits: Poisson,
    egress_drops: Poisson,
    ingress_drops: Poisson,
    flood_drops: Poisson,
}

impl Rates {
    /// The rates of a tick of `secs` seconds.
    fn new(secs: f64) -> Rates {
        Rates {
            secs,
            retransmits: Poisson::new(RETRANSMIT_RATE * secs),
            egress_drops: Poisson::new(EGRESS_DROP_RATE * secs),
            ingress_drops: Poisson::new(INGRESS_DROP_RATE * secs),
            flood_drops: Poisson::new(FLOOD_DROP_RATE * secs),
        }
    }

    /// Mean retransmits of a TCP flow of `packets` packets from an overloaded sender
    /// and/or over a degraded link.
    fn faulty_retransmits(&self, overloaded: bool, degraded: bool, packets: f64) -> f64 {
        let mut lambda = RETRANSMIT_RATE * self.secs;
        if overloaded {
            lambda += OVERLOAD_RETRANSMIT_RATE * self.secs;
        }
        if degraded {
            let (floor, cap) = (
                LINK_RETRANSMIT_FLOOR * self.secs,
                LINK_RETRANSMIT_CAP * self.secs,
            );
            lambda += (LINK_LOSS * packets).clamp(floor, cap);
        }
        lambda
    }

    /// Egress drops per flow of an overloaded node with `degree` neighbours.
    fn overload_drops(&self, degree: usize) -> Poisson {
        let per_flow = (OVERLOAD_DROPS / degree.max(1) as f64).max(OVERLOAD_DROP_RATE);
        Poisson::new(per_flow * self.secs)
    }
}

/// Everything that stays fixed for a run: topology, per-node and per-edge baselines, faults.
pub(crate) struct Model {
    pub(crate) topo: Topology,
    pub(crate) clock: Clock,
    pub(crate) faults: FaultSchedule,
    hashes: Hashes,
    /// Baseline RTT per node, ms (5–40).
    node_rtt_ms: Vec<f32>,
    /// Baseline CPU load per node (0.2–0.5).
    node_cpu: Vec<f32>,
    /// Base rate per directed edge in adjacency order, bytes per second (lognormal).
    edge_rate: Vec<f32>,
}

impl std::fmt::Debug for Model {
    /// A summary: the tables are too large to print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("nodes", &self.topo.nodes)
            .field("edges", &self.topo.edges.len())
            .field("clock", &self.clock)
            .field("faults", &self.faults.truth.len())
            .finish_non_exhaustive()
    }
}

/// Where one tick's records go: the caller's buffers and the next metric slot to reuse.
struct Sink<'a> {
    tick: &'a mut Tick,
    metric_slot: usize,
    names: &'a MetricNames,
}

/// Per-node counts of one tick that its metrics summarise.
#[derive(Clone, Copy, Default)]
struct Tally {
    /// Bytes the node would send at its baseline.
    expected_out: f64,
    /// Bytes it sent.
    actual_out: f64,
    /// Retransmit events it observed.
    retransmits: u32,
    /// Drop events it observed.
    drops: u32,
}

/// The per-tick constants.
#[derive(Clone, Copy)]
struct TickCtx<'a> {
    k: u64,
    start: i64,
    end: i64,
    /// Bytes scale of the tick: its length in seconds × the daily shape.
    scale: f64,
    /// Event-count distributions of the tick.
    rates: Rates,
    active: Active<'a>,
}

impl Model {
    /// Derives the per-node and per-edge baselines of a topology.
    pub(crate) fn new(seed: u64, topo: Topology, clock: Clock, faults: FaultSchedule) -> Model {
        let base = seed ^ SALT_NODE_BASE;
        let node_rtt_ms = (0..topo.nodes as u64)
            .map(|n| (5.0 + 35.0 * unit(hash2(base, n, 0))) as f32)
            .collect();
        let node_cpu = (0..topo.nodes as u64)
            .map(|n| (0.2 + 0.3 * unit(hash2(base, n, 1))) as f32)
            .collect();
        let mut edge_rate = Vec::with_capacity(topo.directed_len());
        for n in 0..topo.nodes as u64 {
            for &d in topo.neighbours(n) {
                let z = hash_normal(hash2(seed ^ SALT_EDGE_RATE, n, d));
                edge_rate.push((MEDIAN_EDGE_RATE * (EDGE_RATE_SIGMA * z).exp()) as f32);
            }
        }
        Model {
            topo,
            clock,
            faults,
            hashes: Hashes::new(seed),
            node_rtt_ms,
            node_cpu,
            edge_rate,
        }
    }

    /// Fills `out` with tick `k` of the nodes `worker, worker + peers, ...`, using the
    /// effects in `scratch.active`.
    pub(crate) fn fill_tick(
        &self,
        k: u64,
        (worker, peers): (usize, usize),
        scratch: &mut Scratch,
        out: &mut Tick,
    ) {
        let (start, end) = (self.clock.tick_start(k), self.clock.tick_end(k));
        let secs = (end - start) as f64 / 1e9;
        let ctx = TickCtx {
            k,
            start,
            end,
            scale: secs * daily_shape(start + (end - start) / 2),
            rates: Rates::new(secs),
            active: Active(&scratch.active),
        };
        out.start = TimestampNs(start);
        out.end = TimestampNs(end);
        out.flows.clear();
        out.tcp_events.clear();
        let mut sink = Sink {
            tick: out,
            metric_slot: 0,
            names: &scratch.metric_names,
        };
        let mut n = worker;
        while n < self.topo.nodes {
            self.fill_node(&ctx, n as u64, &mut sink);
            n += peers;
        }
        let metric_count = sink.metric_slot;
        out.metrics.truncate(metric_count);
        sort_flows(&mut out.flows, &mut scratch.flows, &mut scratch.keys, start);
        out.tcp_events.sort_unstable_by(|a, b| {
            let key = |e: &TcpEvent| (e.time, e.node, e.peer_node, e.kind, e.src_port, e.dst_port);
            key(a).cmp(&key(b))
        });
    }

    /// One node's flows sent, events observed and metrics in one tick.
    fn fill_node(&self, ctx: &TickCtx<'_>, n: u64, sink: &mut Sink<'_>) {
        let out = &mut *sink.tick;
        let mut rng = ChaCha8Rng::seed_from_u64(self.hashes.node_tick(n, ctx.k));
        let state = ctx.active.state(n);
        let overload_rtt = if state.overloaded {
            OVERLOAD_RTT_FACTOR
        } else {
            1.0
        };
        let own_rtt = f64::from(self.node_rtt_ms[n as usize]) * overload_rtt;
        let mut tally = Tally::default();
        let src_ip = node_ip(n);
        let range = self.topo.edge_range(n);
        let overload_drops = state
            .overloaded
            .then(|| ctx.rates.overload_drops(range.len()));
        for (&dst, &rate) in self.topo.neighbours(n).iter().zip(&self.edge_rate[range]) {
            let Some(shape) = self.hashes.flow(n, dst, ctx.k, state.flooding) else {
                continue;
            };
            let degraded = state.degraded && ctx.active.degraded(n, dst);
            let mean = f64::from(rate) * ctx.scale;
            let (z_bytes, z_packet) = normal_pair(&mut rng);
            let mut bytes = mean * (FLOW_NOISE_SIGMA * z_bytes).exp();
            if state.flooding {
                bytes *= FLOOD_FACTOR;
            }
            if state.overloaded {
                bytes *= OVERLOAD_BYTES_FACTOR;
            }
            if degraded {
                bytes *= LINK_BYTES_FACTOR;
            }
            // Casts round half up here without a libm call (values are positive).
            let bytes = (bytes + 0.5).max(64.0) as u64 as f64;
            let packet_size = MEAN_PACKET_BYTES * (PACKET_NOISE_SIGMA * z_packet).exp();
            let packets = (bytes / packet_size + 0.5).max(1.0) as u64 as f64;
            tally.expected_out += mean;
            tally.actual_out += bytes;
            let last = instant_in(&mut rng, ctx.start, ctx.end - 1);
            let first = instant_in(&mut rng, ctx.start, last);
            let ports = (shape.src_port, shape.dst_port);
            out.flows.push(FlowRecord {
                src_node: n,
                dst_node: dst,
                src_ip,
                dst_ip: node_ip(dst),
                src_port: shape.src_port,
                dst_port: shape.dst_port,
                protocol: if shape.tcp { 6 } else { 17 },
                bytes: bytes as u64,
                packets: packets as u64,
                first_seen: TimestampNs(first),
                last_seen: TimestampNs(last),
                tcp_flags: shape.flags,
            });
            if shape.tcp {
                let count = if state.overloaded || degraded {
                    let lambda = ctx
                        .rates
                        .faulty_retransmits(state.overloaded, degraded, packets);
                    poisson(&mut rng, lambda)
                } else {
                    ctx.rates.retransmits.sample(&mut rng)
                };
                for _ in 0..count {
                    let t = instant_in(&mut rng, first, last);
                    let event = tcp_event(t, n, dst, TcpEventKind::Retransmit, ports);
                    out.tcp_events.push(event);
                }
                tally.retransmits += count;
                if shape.flags & SYN != 0 {
                    let link = if degraded { LINK_LATENCY_FACTOR } else { 1.0 };
                    let pair_rtt =
                        0.5 * (own_rtt + f64::from(self.node_rtt_ms[dst as usize])) * link;
                    let (z, _) = normal_pair(&mut rng);
                    let srtt_us = (pair_rtt * 1000.0 * (0.1 * z).exp() + 0.5) as u32;
                    out.tcp_events.push(TcpEvent {
                        old_state: Some("SYN_SENT".to_string()),
                        new_state: Some("ESTABLISHED".to_string()),
                        srtt_us: Some(srtt_us),
                        ..tcp_event(first, n, dst, TcpEventKind::StateChange, ports)
                    });
                }
            }
            let count = match overload_drops {
                Some(rate) => rate.sample(&mut rng),
                None => ctx.rates.egress_drops.sample(&mut rng),
            };
            for _ in 0..count {
                let t = instant_in(&mut rng, first, last);
                out.tcp_events
                    .push(drop_event(t, n, dst, ports, "QDISC_DROP"));
            }
            tally.drops += count;
        }
        tally.drops += self.ingress_drops(ctx, n, &mut rng, out);
        self.node_metrics(ctx, n, state, tally, &mut rng, sink);
    }

    /// Drops `n` observes on flows its neighbours send it; returns how many.
    fn ingress_drops(
        &self,
        ctx: &TickCtx<'_>,
        n: u64,
        rng: &mut ChaCha8Rng,
        out: &mut Tick,
    ) -> u32 {
        let mut drops = 0;
        for &src in self.topo.neighbours(n) {
            let flooding = ctx.active.flooding(src);
            let rate = if flooding {
                &ctx.rates.flood_drops
            } else {
                &ctx.rates.ingress_drops
            };
            // Drawn for every neighbour, so the stream does not depend on which flows exist.
            let count = rate.sample(rng);
            if count == 0 {
                continue;
            }
            let Some(shape) = self.hashes.flow(src, n, ctx.k, flooding) else {
                continue;
            };
            let reason = match (flooding, shape.tcp) {
                (true, _) => "SOCKET_RCVBUFF",
                (false, true) => "TCP_INVALID_SEQUENCE",
                (false, false) => "NO_SOCKET",
            };
            for _ in 0..count {
                let t = instant_in(rng, ctx.start, ctx.end - 1);
                // Seen from the receiver: local port is the service, remote the ephemeral one.
                let ports = (shape.dst_port, shape.src_port);
                out.tcp_events.push(drop_event(t, n, src, ports, reason));
            }
            drops += count;
        }
        drops
    }

    /// The four per-node metrics, stamped at the start of the tick they describe.
    fn node_metrics(
        &self,
        ctx: &TickCtx<'_>,
        n: u64,
        state: NodeState,
        tally: Tally,
        rng: &mut ChaCha8Rng,
        sink: &mut Sink<'_>,
    ) {
        let (z_rtt, z_cpu) = normal_pair(rng);
        let mut rtt = f64::from(self.node_rtt_ms[n as usize]) * (0.1 * z_rtt).exp();
        if state.overloaded {
            rtt *= OVERLOAD_RTT_FACTOR;
        }
        if state.degraded {
            rtt *= DEGRADED_NODE_RTT_FACTOR;
        }
        let traffic = if tally.expected_out > 0.0 && tally.actual_out > 0.0 {
            0.1 * (tally.actual_out / tally.expected_out).ln()
        } else {
            0.0
        };
        let mut cpu = f64::from(self.node_cpu[n as usize]) + traffic + 0.03 * z_cpu;
        if state.overloaded {
            cpu = cpu.max(OVERLOAD_CPU + 0.08 * rng.random::<f64>());
        }
        let time = TimestampNs(ctx.start);
        let (metrics, slot, names) = (&mut sink.tick.metrics, &mut sink.metric_slot, sink.names);
        put_metric(metrics, slot, (time, n, &names.rtt_ms, rtt));
        put_metric(
            metrics,
            slot,
            (time, n, &names.cpu_load, cpu.clamp(0.0, 1.0)),
        );
        put_metric(
            metrics,
            slot,
            (time, n, &names.retransmits, f64::from(tally.retransmits)),
        );
        put_metric(
            metrics,
            slot,
            (time, n, &names.drops, f64::from(tally.drops)),
        );
    }
}
