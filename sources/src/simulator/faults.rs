//! The fault schedule: which faults happen where and when, their ground truth, and
//! the per-tick effects the traffic model applies.

use std::collections::HashSet;

use meshflow_schemas::{FaultKind, GroundTruth, HumanDuration, TimestampNs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{SimConfig, ticks_covering};
use super::rng::{SALT_FAULTS, splitmix64};
use super::topology::Topology;

/// At most this many nodes take part in one cascading failure (root included).
pub(crate) const CASCADE_MAX_NODES: usize = 10;

/// What a fault does to one node while it is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// High CPU, latency ×4, egress queue drops, less traffic out.
    Overload,
    /// Sends ×20 (mostly UDP) to every neighbour; receivers drop some of it.
    Flood,
    /// Loss and latency on the link to `peer`.
    DegradedLink {
        /// The other end of the degraded link.
        peer: u64,
    },
}

/// One effect on one node over the ticks `[from_tick, to_tick)`.
#[derive(Clone, Copy, Debug)]
struct Span {
    node: u64,
    effect: Effect,
    from_tick: u64,
    to_tick: u64,
}

/// Every fault of a run: its ground truth and its effects in tick units.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultSchedule {
    /// One row per fault, in start order, `fault_id` = index.
    pub(crate) truth: Vec<GroundTruth>,
    spans: Vec<Span>,
}

/// Timing of the run, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    /// First instant of the run.
    pub(crate) start: i64,
    /// Exclusive end of the run.
    pub(crate) end: i64,
    /// Tick length.
    pub(crate) tick: i64,
    /// Number of ticks (the last one may be short).
    pub(crate) ticks: u64,
}

impl Clock {
    /// Start of tick `k`.
    pub(crate) fn tick_start(&self, k: u64) -> i64 {
        let offset = i64::try_from(k)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.tick);
        self.start.saturating_add(offset)
    }

    /// Exclusive end of tick `k`, clipped to the end of the run.
    pub(crate) fn tick_end(&self, k: u64) -> i64 {
        self.tick_start(k).saturating_add(self.tick).min(self.end)
    }

    /// The first tick starting at or after instant `t`.
    fn first_tick_from(&self, t: i64) -> u64 {
        ticks_covering(t - self.start, self.tick)
    }
}

impl FaultSchedule {
    /// Draws the schedule of `cfg.faults` on `topo`, deterministically from the seed.
    ///
    /// Faults take turns: the time after warmup is cut into `count` equal slots and each
    /// fault lies inside its own slot, on its own root node. Kinds cycle through
    /// `faults.kinds`. Durations are whole ticks, clipped to the slot.
    pub(crate) fn build(cfg: &SimConfig, topo: &Topology, clock: Clock) -> FaultSchedule {
        let plan = &cfg.faults;
        let mut schedule = FaultSchedule::default();
        if plan.count == 0 || plan.kinds.is_empty() {
            return schedule;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(cfg.seed ^ SALT_FAULTS));
        let warm = ticks_covering(plan.warmup.as_nanos_i64(), clock.tick);
        let slot = clock.ticks.saturating_sub(warm) / plan.count as u64;
        if slot == 0 {
            return schedule;
        }
        let shortest = ticks_covering(plan.min_duration.as_nanos_i64(), clock.tick).max(1);
        let longest = (plan.max_duration.as_nanos_i64() / clock.tick).max(shortest as i64) as u64;
        if slot < shortest {
            let slot_time = std::time::Duration::from_nanos(slot * clock.tick as u64);
            tracing::warn!(
                "faults last at most {} (the time after faults.warmup, {}, shared by {} faults), shorter than faults.min_duration ({}); lengthen the run, or lower faults.count or faults.warmup",
                HumanDuration(slot_time),
                plan.warmup,
                plan.count,
                plan.min_duration
            );
        }
        let mut roots = HashSet::with_capacity(plan.count);
        for i in 0..plan.count {
            let kind = plan.kinds[i % plan.kinds.len()];
            let length = rng.random_range(shortest..=longest).min(slot);
            let first = warm + i as u64 * slot + rng.random_range(0..=slot - length);
            let start = clock.tick_start(first);
            let end = clock.tick_start(first + length).min(clock.end);
            let root = loop {
                let n = rng.random_range(0..topo.nodes as u64);
                if roots.insert(n) {
                    break n;
                }
            };
            let neighbours = topo.neighbours(root);
            if neighbours.is_empty() && kind != FaultKind::NodeOverload {
                // A fault that needs a neighbour cannot happen at an isolated node.
                continue;
            }
            let mut affected = vec![(root, 0u64)];
            let mut peer_node = None;
            match kind {
                FaultKind::LinkDegradation => {
                    let peer = neighbours[rng.random_range(0..neighbours.len())];
                    peer_node = Some(peer);
                    affected.push((peer, 0));
                }
                FaultKind::NodeOverload => {}
                FaultKind::TrafficFlood => affected.extend(neighbours.iter().map(|&n| (n, 0))),
                FaultKind::CascadingFailure => {
                    let lag = plan.cascade_lag.as_nanos_i64().max(0);
                    let to_tick = clock.first_tick_from(end);
                    affected = cascade(topo, root, plan.cascade_hops, &mut rng)
                        .into_iter()
                        .map(|(n, hop)| (n, (hop as i64).saturating_mul(lag)))
                        // A hop the fault ends before reaching is not affected.
                        .filter(|&(_, delay)| {
                            delay < end - start && clock.first_tick_from(start + delay) < to_tick
                        })
                        .map(|(n, delay)| (n, delay as u64))
                        .collect();
                }
            }
            let to_tick = clock.first_tick_from(end);
            for &(node, delay) in &affected {
                let from_tick = clock.first_tick_from(start + delay as i64);
                let mut add = |node, effect| {
                    schedule.spans.push(Span {
                        node,
                        effect,
                        from_tick,
                        to_tick,
                    });
                };
                match (kind, peer_node) {
                    (FaultKind::LinkDegradation, Some(peer)) if node == root => {
                        add(node, Effect::DegradedLink { peer });
                    }
                    (FaultKind::LinkDegradation, _) => {
                        add(node, Effect::DegradedLink { peer: root })
                    }
                    (FaultKind::TrafficFlood, _) if node == root => add(node, Effect::Flood),
                    // Flood receivers react to the flood itself; no effect of their own.
                    (FaultKind::TrafficFlood, _) => {}
                    (FaultKind::NodeOverload | FaultKind::CascadingFailure, _) => {
                        add(node, Effect::Overload)
                    }
                }
            }
            schedule.truth.push(GroundTruth {
                fault_id: schedule.truth.len() as u64,
                kind,
                root_node: root,
                peer_node,
                affected_nodes: affected.iter().map(|a| a.0).collect(),
                affected_delays_ns: affected.iter().map(|a| a.1).collect(),
                start: TimestampNs(start),
                end: TimestampNs(end),
            });
        }
        schedule
    }

    /// The effects active during tick `k`, sorted by node, into `out`.
    pub(crate) fn active(&self, k: u64, out: &mut Vec<(u64, Effect)>) {
        out.clear();
        out.extend(
            self.spans
                .iter()
                .filter(|s| s.from_tick <= k && k < s.to_tick)
                .map(|s| (s.node, s.effect)),
        );
        out.sort_unstable_by_key(|&(node, _)| node);
    }
}

/// The cascade of a failure at `root`: BFS up to `hops` hops, visiting neighbours in a
/// seeded random order, at most [`CASCADE_MAX_NODES`] nodes; returns `(node, hop)`.
fn cascade(topo: &Topology, root: u64, hops: usize, rng: &mut ChaCha8Rng) -> Vec<(u64, usize)> {
    let mut out = vec![(root, 0usize)];
    let mut frontier_start = 0;
    for hop in 1..=hops {
        let frontier_end = out.len();
        for f in frontier_start..frontier_end {
            let mut next: Vec<u64> = topo.neighbours(out[f].0).to_vec();
            for i in (1..next.len()).rev() {
                next.swap(i, rng.random_range(0..=i));
            }
            for n in next {
                if out.len() >= CASCADE_MAX_NODES {
                    return out;
                }
                if !out.iter().any(|&(m, _)| m == n) {
                    out.push((n, hop));
                }
            }
        }
        frontier_start = frontier_end;
    }
    out
}

/// What is happening to one node during a tick, looked up from the active effects.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeState {
    /// Under a node overload (directly or as part of a cascade).
    pub(crate) overloaded: bool,
    /// Flooding its neighbours.
    pub(crate) flooding: bool,
    /// At least one of its links is degraded.
    pub(crate) degraded: bool,
}

/// The active effects of one tick, with lookups by node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Active<'a>(pub(crate) &'a [(u64, Effect)]);

impl Active<'_> {
    /// The effects on `node`.
    fn of(&self, node: u64) -> &[(u64, Effect)] {
        if self.0.is_empty() {
            return &[];
        }
        let from = self.0.partition_point(|&(n, _)| n < node);
        let to = from + self.0[from..].partition_point(|&(n, _)| n == node);
        &self.0[from..to]
    }

    /// Summary of what happens to `node`.
    pub(crate) fn state(&self, node: u64) -> NodeState {
        let mut s = NodeState::default();
        for &(_, e) in self.of(node) {
            match e {
                Effect::Overload => s.overloaded = true,
                Effect::Flood => s.flooding = true,
                Effect::DegradedLink { .. } => s.degraded = true,
            }
        }
        s
    }

    /// Whether `node` floods its neighbours.
    pub(crate) fn flooding(&self, node: u64) -> bool {
        self.of(node).iter().any(|&(_, e)| e == Effect::Flood)
    }

    /// Whether the link from `node` to `peer` is degraded.
    pub(crate) fn degraded(&self, node: u64, peer: u64) -> bool {
        self.of(node)
            .iter()
            .any(|&(_, e)| e == Effect::DegradedLink { peer })
    }
}
