//! Tests of the fault schedule, its ground truth, and the faults' visible effects.

use std::collections::{HashSet, VecDeque};

use meshflow_schemas::{FaultKind, GroundTruth, TcpEventKind};

use super::faults::CASCADE_MAX_NODES;
use super::tests_output::run;
use super::{
    METRIC_CPU_LOAD, METRIC_DROPS, METRIC_RTT_MS, SimConfig, Simulator, Tick, Topology,
    TopologyKind,
};

fn sim(seed: u64, topology: TopologyKind) -> Simulator {
    Simulator::new(SimConfig {
        nodes: 60,
        seed,
        topology,
        ..SimConfig::default()
    })
    .unwrap()
}

/// Hop distances from `root`.
fn hops_from(topo: &Topology, root: u64) -> Vec<usize> {
    let mut dist = vec![usize::MAX; topo.nodes];
    dist[root as usize] = 0;
    let mut queue = VecDeque::from([root]);
    while let Some(n) = queue.pop_front() {
        for &m in topo.neighbours(n) {
            if dist[m as usize] == usize::MAX {
                dist[m as usize] = dist[n as usize] + 1;
                queue.push_back(m);
            }
        }
    }
    dist
}

#[test]
fn ground_truth_follows_the_plan() {
    for seed in 0..12 {
        let topology = if seed % 2 == 0 {
            TopologyKind::Geometric
        } else {
            TopologyKind::BarabasiAlbert
        };
        let sim = sim(seed, topology);
        let cfg = sim.config();
        let topo = sim.topology();
        let truth = sim.ground_truth();
        assert_eq!(truth.len(), cfg.faults.count);
        let earliest = sim.start_time().0 + cfg.faults.warmup.as_nanos_i64();
        let lag = cfg.faults.cascade_lag.as_nanos_i64() as u64;
        let mut roots = HashSet::new();
        for (i, gt) in truth.iter().enumerate() {
            assert_eq!(gt.fault_id, i as u64);
            assert_eq!(gt.kind, cfg.faults.kinds[i % cfg.faults.kinds.len()]);
            assert!(
                gt.start.0 >= earliest && gt.start < gt.end && gt.end <= sim.end_time(),
                "{gt:?}"
            );
            let length = gt.end.0 - gt.start.0;
            assert!(
                length >= cfg.faults.min_duration.as_nanos_i64()
                    && length <= cfg.faults.max_duration.as_nanos_i64()
            );
            assert_eq!(
                (gt.start.0 - sim.start_time().0) % sim.tick_ns(),
                0,
                "faults start on a tick"
            );
            if i > 0 {
                assert!(truth[i - 1].end <= gt.start, "faults overlap");
            }
            assert!(roots.insert(gt.root_node), "root {} reused", gt.root_node);
            assert_eq!(gt.affected_nodes[0], gt.root_node);
            assert_eq!(gt.affected_nodes.len(), gt.affected_delays_ns.len());
            assert_eq!(
                gt.affected_nodes.iter().collect::<HashSet<_>>().len(),
                gt.affected_nodes.len()
            );
            let neighbours = topo.neighbours(gt.root_node);
            match gt.kind {
                FaultKind::LinkDegradation => {
                    let peer = gt.peer_node.expect("link faults name the peer");
                    assert!(neighbours.contains(&peer));
                    assert_eq!(gt.affected_nodes, vec![gt.root_node, peer]);
                    assert_eq!(gt.affected_delays_ns, vec![0, 0]);
                }
                FaultKind::NodeOverload => {
                    assert_eq!(gt.affected_nodes, vec![gt.root_node]);
                    assert_eq!(gt.peer_node, None);
                }
                FaultKind::TrafficFlood => {
                    assert_eq!(&gt.affected_nodes[1..], neighbours);
                    assert!(gt.affected_delays_ns.iter().all(|&d| d == 0));
                }
                FaultKind::CascadingFailure => {
                    let dist = hops_from(topo, gt.root_node);
                    assert!(gt.affected_nodes.len() <= CASCADE_MAX_NODES);
                    assert!(
                        gt.affected_nodes.len() > 1,
                        "a mesh of 60 nodes lets a cascade spread"
                    );
                    for (&n, &delay) in gt.affected_nodes.iter().zip(&gt.affected_delays_ns) {
                        let hop = dist[n as usize];
                        assert!(hop <= cfg.faults.cascade_hops);
                        assert_eq!(delay, hop as u64 * lag, "node {n} at hop {hop}");
                    }
                    assert!(gt.affected_delays_ns.windows(2).all(|w| w[0] <= w[1]));
                }
            }
        }
    }
}

/// Value of `metric` for `node` in tick `t`.
fn metric(t: &Tick, node: u64, name: &str) -> f64 {
    t.metrics
        .iter()
        .find(|m| m.node == node && &*m.metric == name)
        .expect("metric present")
        .value
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Ticks before the first fault, and ticks inside `gt`.
fn split<'a>(
    sim: &Simulator,
    ticks: &'a [Tick],
    gt: &GroundTruth,
) -> (Vec<&'a Tick>, Vec<&'a Tick>) {
    let first_fault = sim.ground_truth()[0].start;
    let before = ticks.iter().filter(|t| t.start < first_fault).collect();
    let during = ticks
        .iter()
        .filter(|t| t.start >= gt.start && t.start < gt.end)
        .collect();
    (before, during)
}

fn fault_of(sim: &Simulator, kind: FaultKind) -> GroundTruth {
    sim.ground_truth()
        .iter()
        .find(|g| g.kind == kind)
        .expect("every kind is scheduled")
        .clone()
}

#[test]
fn faults_are_visible_in_the_telemetry() {
    for (seed, topology) in [
        (1, TopologyKind::Geometric),
        (2, TopologyKind::BarabasiAlbert),
    ] {
        let sim = sim(seed, topology);
        let ticks = run(&sim, 0, 1);

        // Traffic flood: the root sends >= 10x its usual bytes; neighbours drop some of it.
        let flood = fault_of(&sim, FaultKind::TrafficFlood);
        let root = flood.root_node;
        let bytes_out = |t: &Tick| {
            t.flows
                .iter()
                .filter(|f| f.src_node == root)
                .map(|f| f.bytes as f64)
                .sum::<f64>()
        };
        let (before, during) = split(&sim, &ticks, &flood);
        let usual = median(before.iter().map(|t| bytes_out(t)).collect());
        for t in &during {
            assert!(
                bytes_out(t) >= 10.0 * usual,
                "seed {seed}: flood tick {} sends {} vs {usual}",
                t.start,
                bytes_out(t)
            );
        }
        let victim_drops = |ts: &[&Tick]| {
            ts.iter()
                .map(|t| {
                    flood.affected_nodes[1..]
                        .iter()
                        .map(|&n| metric(t, n, METRIC_DROPS))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / ts.len() as f64
        };
        assert!(
            victim_drops(&during) >= 10.0 * victim_drops(&before).max(0.05),
            "seed {seed}: flood victims drop {} per tick vs {}",
            victim_drops(&during),
            victim_drops(&before)
        );

        // Link degradation: retransmits on the faulted edge dwarf those on any other edge.
        let link = fault_of(&sim, FaultKind::LinkDegradation);
        let (a, b) = (link.root_node, link.peer_node.unwrap());
        let (before, during) = split(&sim, &ticks, &link);
        let on_edge = |e: &&meshflow_schemas::TcpEvent| {
            e.kind == TcpEventKind::Retransmit
                && ((e.node, e.peer_node) == (a, Some(b)) || (e.node, e.peer_node) == (b, Some(a)))
        };
        let faulted: usize = during
            .iter()
            .map(|t| t.tcp_events.iter().filter(on_edge).count())
            .sum();
        let others: usize = during
            .iter()
            .map(|t| {
                t.tcp_events
                    .iter()
                    .filter(|e| e.kind == TcpEventKind::Retransmit && !on_edge(e))
                    .count()
            })
            .sum();
        let other_edges = sim.topology().edges.len() - 1;
        assert!(
            faulted as f64 >= 50.0 * (others as f64 / other_edges as f64).max(0.01),
            "seed {seed}: {faulted} vs {others}"
        );
        for n in [a, b] {
            let usual = median(before.iter().map(|t| metric(t, n, METRIC_RTT_MS)).collect());
            let hit = median(during.iter().map(|t| metric(t, n, METRIC_RTT_MS)).collect());
            assert!(
                hit >= 2.0 * usual,
                "seed {seed}: rtt of {n} {hit} vs {usual}"
            );
        }

        // Node overload: high CPU every tick, higher RTT, many drops; back to normal after.
        let overload = fault_of(&sim, FaultKind::NodeOverload);
        let x = overload.root_node;
        let (before, during) = split(&sim, &ticks, &overload);
        assert!(during.iter().all(|t| metric(t, x, METRIC_CPU_LOAD) >= 0.9));
        assert!(before.iter().all(|t| metric(t, x, METRIC_CPU_LOAD) < 0.9));
        let rtt = |ts: &[&Tick]| median(ts.iter().map(|t| metric(t, x, METRIC_RTT_MS)).collect());
        assert!(rtt(&during) >= 3.0 * rtt(&before));
        let drops = |ts: &[&Tick]| {
            ts.iter().map(|t| metric(t, x, METRIC_DROPS)).sum::<f64>() / ts.len() as f64
        };
        assert!(
            drops(&during) >= 5.0 && drops(&during) >= 20.0 * drops(&before),
            "seed {seed}: drops {} vs {}",
            drops(&during),
            drops(&before)
        );
        let after = ticks.iter().find(|t| t.start >= overload.end).unwrap();
        assert!(metric(after, x, METRIC_CPU_LOAD) < 0.9);

        // Cascading failure: each affected node is overloaded exactly from its delay on.
        let cascade = fault_of(&sim, FaultKind::CascadingFailure);
        for (&n, &delay) in cascade
            .affected_nodes
            .iter()
            .zip(&cascade.affected_delays_ns)
        {
            let hit_from = cascade.start.0 + delay as i64;
            for t in ticks
                .iter()
                .filter(|t| t.start >= cascade.start && t.start < cascade.end)
            {
                let cpu = metric(t, n, METRIC_CPU_LOAD);
                assert_eq!(
                    cpu >= 0.9,
                    t.start.0 >= hit_from,
                    "seed {seed}: node {n} at {} has cpu {cpu}",
                    t.start
                );
            }
        }
    }
}
