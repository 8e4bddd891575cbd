//! Tests of the generated topologies.

use super::{FaultPlan, SimConfig, Simulator, Topology, TopologyKind};

fn build(kind: TopologyKind, nodes: usize, mean_degree: f64, seed: u64) -> Topology {
    let faults = FaultPlan {
        count: 0,
        ..FaultPlan::default()
    };
    let cfg = SimConfig {
        nodes,
        topology: kind,
        mean_degree,
        seed,
        faults,
        ..SimConfig::default()
    };
    Simulator::new(cfg)
        .expect("valid config")
        .topology()
        .clone()
}

/// Checks the structural invariants every topology must satisfy.
fn assert_well_formed(t: &Topology, nodes: usize) {
    assert_eq!(t.nodes, nodes);
    assert!(
        t.edges.windows(2).all(|w| w[0] < w[1]),
        "edges sorted and unique"
    );
    assert!(
        t.edges.iter().all(|&(u, v)| u < v && v < nodes as u64),
        "u < v < nodes"
    );
    let mut listed = 0;
    for n in 0..nodes as u64 {
        let ns = t.neighbours(n);
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "neighbours of {n} sorted and unique"
        );
        assert!(!ns.contains(&n), "self loop at {n}");
        for &m in ns {
            assert!(
                t.neighbours(m).binary_search(&n).is_ok(),
                "{n}-{m} not symmetric"
            );
            assert!(t.edges.binary_search(&(n.min(m), n.max(m))).is_ok());
        }
        listed += ns.len();
    }
    assert_eq!(listed, 2 * t.edges.len());
    assert!(t.is_connected(), "not connected");
}

#[test]
fn geometric_graph_is_simple_connected_and_hits_the_mean_degree() {
    for seed in [1, 2, 3] {
        let t = build(TopologyKind::Geometric, 2000, 6.0, seed);
        assert_well_formed(&t, 2000);
        let mean = t.mean_degree();
        assert!(
            (4.5..=7.5).contains(&mean),
            "seed {seed}: mean degree {mean}"
        );
    }
    let dense = build(TopologyKind::Geometric, 2000, 20.0, 9);
    assert!(
        (15.0..=25.0).contains(&dense.mean_degree()),
        "{}",
        dense.mean_degree()
    );
}

#[test]
fn barabasi_albert_graph_is_simple_connected_and_heavy_tailed() {
    for (mean_degree, seed) in [(6.0, 1), (6.0, 2), (10.0, 3), (2.0, 4)] {
        let t = build(TopologyKind::BarabasiAlbert, 2000, mean_degree, seed);
        assert_well_formed(&t, 2000);
        let mean = t.mean_degree();
        assert!(
            (mean - mean_degree).abs() <= 0.25 * mean_degree,
            "mean degree {mean} for {mean_degree}"
        );
        assert!(
            t.max_degree() as f64 >= 6.0 * mean,
            "max degree {} is not a hub for mean {mean}",
            t.max_degree()
        );
    }
    // The geometric graph, by contrast, has no hubs.
    let g = build(TopologyKind::Geometric, 2000, 6.0, 1);
    assert!((g.max_degree() as f64) < 4.0 * g.mean_degree());
}

#[test]
fn tiny_and_complete_meshes_work() {
    for kind in [TopologyKind::Geometric, TopologyKind::BarabasiAlbert] {
        let pair = build(kind, 2, 1.0, 3);
        assert_eq!(pair.edges, vec![(0, 1)]);
        let full = build(kind, 12, 11.0, 3);
        assert_well_formed(&full, 12);
        assert!(
            full.mean_degree() >= 8.0,
            "{kind:?}: {}",
            full.mean_degree()
        );
    }
}

#[test]
fn topology_depends_on_the_seed_only() {
    for kind in [TopologyKind::Geometric, TopologyKind::BarabasiAlbert] {
        let a = build(kind, 500, 6.0, 11);
        assert_eq!(a, build(kind, 500, 6.0, 11));
        assert_ne!(a.edges, build(kind, 500, 6.0, 12).edges);
    }
}

#[test]
fn hundred_thousand_node_meshes_build_connected() {
    for kind in [TopologyKind::Geometric, TopologyKind::BarabasiAlbert] {
        let t = build(kind, 100_000, 6.0, 42);
        assert_eq!(t.nodes, 100_000);
        assert!(t.is_connected(), "{kind:?} is not connected");
        let mean = t.mean_degree();
        assert!((4.5..=7.5).contains(&mean), "{kind:?}: mean degree {mean}");
        assert!(t.edges.windows(2).all(|w| w[0] < w[1]));
        assert!(t.edges.iter().all(|&(u, v)| u < v));
    }
}
