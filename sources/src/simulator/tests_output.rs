//! Tests of the generated records: determinism, partition invariance, timing, consistency.

use meshflow_schemas::{FlowRecord, NodeMetric, TcpEvent, TcpEventKind};

use super::{
    FaultPlan, METRIC_CPU_LOAD, METRIC_DROPS, METRIC_RETRANSMITS, METRIC_RTT_MS, SimConfig,
    Simulator, Tick, TopologyKind, node_ip,
};
use crate::HumanDuration;

/// A small run with faults early enough to be inside it.
pub(super) fn small_config(seed: u64, topology: TopologyKind) -> SimConfig {
    SimConfig {
        nodes: 30,
        topology,
        seed,
        duration: HumanDuration::from_secs(150),
        faults: FaultPlan {
            count: 4,
            warmup: HumanDuration::from_secs(20),
            min_duration: HumanDuration::from_secs(15),
            max_duration: HumanDuration::from_secs(25),
            ..FaultPlan::default()
        },
        ..SimConfig::default()
    }
}

/// Every tick of one partition.
pub(super) fn run(sim: &Simulator, worker: usize, peers: usize) -> Vec<Tick> {
    let mut part = sim.partition(worker, peers);
    let mut ticks = Vec::new();
    let mut tick = Tick::default();
    while part.next_tick(&mut tick) {
        ticks.push(tick.clone());
    }
    assert_eq!(ticks.len() as u64, sim.ticks());
    ticks
}

fn flow_key(f: &FlowRecord) -> (i64, u64, u64) {
    (f.last_seen.0, f.src_node, f.dst_node)
}

/// The tick's records in a canonical order, for multiset comparison.
fn canonical(
    mut flows: Vec<FlowRecord>,
    mut metrics: Vec<NodeMetric>,
    events: &[TcpEvent],
) -> (Vec<FlowRecord>, Vec<NodeMetric>, Vec<String>) {
    flows.sort_by_key(flow_key);
    metrics.sort_by(|a, b| (a.node, &a.metric).cmp(&(b.node, &b.metric)));
    let mut events: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    events.sort();
    (flows, metrics, events)
}

#[test]
fn same_seed_same_output_and_different_seed_different_output() {
    let a = run(
        &Simulator::new(small_config(5, TopologyKind::Geometric)).unwrap(),
        0,
        1,
    );
    let b = run(
        &Simulator::new(small_config(5, TopologyKind::Geometric)).unwrap(),
        0,
        1,
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.flows, y.flows);
        assert_eq!(x.metrics, y.metrics);
        assert_eq!(x.tcp_events, y.tcp_events);
    }
    let c = run(
        &Simulator::new(small_config(6, TopologyKind::Geometric)).unwrap(),
        0,
        1,
    );
    assert_ne!(a[0].flows, c[0].flows);
    assert_ne!(a[0].metrics, c[0].metrics);
}

#[test]
fn union_of_partitions_equals_the_whole_for_any_worker_count() {
    for topology in [TopologyKind::Geometric, TopologyKind::BarabasiAlbert] {
        let sim = Simulator::new(small_config(11, topology)).unwrap();
        let whole = run(&sim, 0, 1);
        for peers in [2, 3] {
            let parts: Vec<Vec<Tick>> = (0..peers).map(|w| run(&sim, w, peers)).collect();
            for (k, full) in whole.iter().enumerate() {
                let mut flows = Vec::new();
                let mut metrics = Vec::new();
                let mut events = Vec::new();
                for (w, part) in parts.iter().enumerate() {
                    let t = &part[k];
                    assert_eq!(t.start, full.start);
                    assert!(t.flows.iter().all(|f| f.src_node as usize % peers == w));
                    assert!(t.metrics.iter().all(|m| m.node as usize % peers == w));
                    assert!(t.tcp_events.iter().all(|e| e.node as usize % peers == w));
                    flows.extend(t.flows.iter().cloned());
                    metrics.extend(t.metrics.iter().cloned());
                    events.extend(t.tcp_events.iter().cloned());
                }
                assert_eq!(
                    canonical(flows, metrics, &events),
                    canonical(full.flows.clone(), full.metrics.clone(), &full.tcp_events),
                    "{topology:?}: tick {k} differs with {peers} peers"
                );
            }
        }
    }
}

#[test]
fn records_lie_inside_their_tick_and_are_sorted() {
    let mut cfg = small_config(3, TopologyKind::Geometric);
    // 150s in 7s ticks: the last tick is 3s long.
    cfg.tick = HumanDuration::from_secs(7);
    let sim = Simulator::new(cfg).unwrap();
    let ticks = run(&sim, 0, 1);
    assert_eq!(ticks.len(), 22);
    for (k, t) in ticks.iter().enumerate() {
        let start = sim.start_time().0 + k as i64 * sim.tick_ns();
        let end = (start + sim.tick_ns()).min(sim.end_time().0);
        assert_eq!((t.start.0, t.end.0), (start, end));
        let inside = |ns: i64| (start..end).contains(&ns);
        for f in &t.flows {
            assert!(
                inside(f.first_seen.0) && inside(f.last_seen.0),
                "tick {k}: {f:?}"
            );
            assert!(f.first_seen <= f.last_seen);
        }
        assert!(t.metrics.iter().all(|m| inside(m.time.0)));
        assert!(t.tcp_events.iter().all(|e| inside(e.time.0)));
        assert!(
            t.flows
                .windows(2)
                .all(|w| flow_key(&w[0]) < flow_key(&w[1])),
            "flows unsorted in tick {k}"
        );
        assert!(
            t.tcp_events
                .windows(2)
                .all(|w| (w[0].time, w[0].node) <= (w[1].time, w[1].node))
        );
    }
}

#[test]
fn flows_are_well_formed() {
    let sim = Simulator::new(small_config(8, TopologyKind::BarabasiAlbert)).unwrap();
    let topo = sim.topology();
    let ticks = run(&sim, 0, 1);
    let (mut tcp, mut udp, mut syn) = (0, 0, 0);
    for t in &ticks {
        for f in &t.flows {
            assert!(topo.neighbours(f.src_node).contains(&f.dst_node), "{f:?}");
            assert_eq!(
                (f.src_ip, f.dst_ip),
                (node_ip(f.src_node), node_ip(f.dst_node))
            );
            assert!(f.bytes >= f.packets && f.packets >= 1);
            assert!(f.src_port >= 32_768);
            assert!([443, 80, 53, 8080, 9000].contains(&f.dst_port));
            match f.protocol {
                6 => {
                    tcp += 1;
                    assert!(f.tcp_flags & 0x10 != 0, "TCP flow without ACK: {f:?}");
                    syn += usize::from(f.tcp_flags & 0x02 != 0);
                }
                17 => {
                    udp += 1;
                    assert_eq!(f.tcp_flags, 0);
                }
                p => panic!("unexpected protocol {p}"),
            }
        }
    }
    let share = tcp as f64 / (tcp + udp) as f64;
    assert!((0.7..0.92).contains(&share), "TCP share {share}");
    // Every SYN flow reports its connection set-up with an RTT sample.
    let set_ups: Vec<&TcpEvent> = ticks
        .iter()
        .flat_map(|t| &t.tcp_events)
        .filter(|e| e.kind == TcpEventKind::StateChange)
        .collect();
    assert_eq!(set_ups.len(), syn);
    assert!(set_ups.iter().all(
        |e| e.srtt_us.is_some_and(|us| (1000..1_000_000).contains(&us))
            && e.old_state.as_deref() == Some("SYN_SENT")
            && e.new_state.as_deref() == Some("ESTABLISHED")
    ));
    assert_eq!(node_ip(0x01_02_03).to_string(), "10.1.2.3");
}

#[test]
fn counter_metrics_equal_the_events_observed() {
    let sim = Simulator::new(small_config(13, TopologyKind::Geometric)).unwrap();
    let (mut retransmits, mut drops) = (0.0, 0.0);
    for t in run(&sim, 1, 2) {
        let owned = (0..30u64).filter(|n| n % 2 == 1).count();
        assert_eq!(t.metrics.len(), 4 * owned);
        for m in &t.metrics {
            let count = |kind| {
                t.tcp_events
                    .iter()
                    .filter(|e| e.node == m.node && e.kind == kind)
                    .count() as f64
            };
            match &*m.metric {
                METRIC_RETRANSMITS => {
                    assert_eq!(
                        m.value,
                        count(TcpEventKind::Retransmit),
                        "node {} at {}",
                        m.node,
                        t.start
                    );
                    retransmits += m.value;
                }
                METRIC_DROPS => {
                    assert_eq!(
                        m.value,
                        count(TcpEventKind::Drop),
                        "node {} at {}",
                        m.node,
                        t.start
                    );
                    drops += m.value;
                }
                METRIC_CPU_LOAD => assert!((0.0..=1.0).contains(&m.value)),
                METRIC_RTT_MS => assert!(m.value > 1.0 && m.value < 1000.0, "{m:?}"),
                other => panic!("unexpected metric {other}"),
            }
        }
    }
    assert!(retransmits > 0.0 && drops > 0.0);
    let drops_have_reasons = run(&sim, 0, 1)
        .iter()
        .flat_map(|t| t.tcp_events.clone())
        .filter(|e| e.kind == TcpEventKind::Drop)
        .all(|e| e.drop_reason.is_some());
    assert!(drops_have_reasons);
}

#[test]
fn a_reused_tick_buffer_gives_the_same_records() {
    let sim = Simulator::new(small_config(21, TopologyKind::Geometric)).unwrap();
    let fresh = run(&sim, 0, 2);
    let mut part = sim.partition(0, 2);
    let mut tick = Tick::default();
    tick.metrics.push(fresh[3].metrics[5].clone());
    tick.metrics[0].metric = "stale".into();
    let mut k = 0;
    while part.next_tick(&mut tick) {
        assert_eq!(tick.flows, fresh[k].flows);
        assert_eq!(tick.metrics, fresh[k].metrics);
        assert_eq!(tick.tcp_events, fresh[k].tcp_events);
        k += 1;
    }
    assert!(tick.flows.is_empty() && tick.metrics.is_empty() && tick.tcp_events.is_empty());
    assert!(!part.next_tick(&mut tick));
    assert_eq!(part.next_tick_start(), None);
}

#[test]
fn simulators_and_partitions_can_move_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Simulator>();
    assert_send_sync::<super::SimPartition>();
    assert_send_sync::<Tick>();
    let sim = Simulator::new(small_config(2, TopologyKind::Geometric)).unwrap();
    let handles: Vec<_> = (0..2)
        .map(|w| {
            let sim = sim.clone();
            std::thread::spawn(move || run(&sim, w, 2).iter().map(|t| t.flows.len()).sum::<usize>())
        })
        .collect();
    let threaded: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let whole: usize = run(&sim, 0, 1).iter().map(|t| t.flows.len()).sum();
    assert_eq!(threaded, whole);
}
