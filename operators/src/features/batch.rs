//! A plain batch computation of `node_features`, window by window, for the tests:
//! the definition the incremental dataflow must match.

use std::collections::{BTreeMap, BTreeSet};

use meshflow_schemas::{BASE_FEATURE_COUNT, NodeFeatures, TcpEventKind};

use super::diff::{metric_mean, quantize_metric};
use super::input::UNKNOWN_DROP_REASON;
use crate::sketch::QuantileSketch;
use crate::window::WindowSpec;

/// A test event at an epoch.
#[derive(Clone, Debug)]
pub enum Event {
    /// A flow: src, dst, bytes, packets.
    Flow(u64, u64, u64, u64),
    /// A TCP event: node, kind, drop reason, srtt (µs).
    Tcp(u64, TcpEventKind, Option<String>, Option<u32>),
    /// A system call: node, latency (ns).
    Syscall(u64, u64),
    /// A metric sample: node, name, value.
    Metric(u64, String, f64),
    /// A given topology's link holding in this epoch: src, dst (peers, no traffic).
    Link(u64, u64),
}

#[derive(Default)]
struct Acc {
    row: Option<NodeFeatures>,
    ins: BTreeSet<u64>,
    outs: BTreeSet<u64>,
    drops: BTreeMap<String, u64>,
    rtt: QuantileSketch,
    syscalls: QuantileSketch,
    metrics: BTreeMap<String, (i128, u64)>,
}

/// Every window's rows, sorted by window and node.
pub fn batch(events: &[(u64, Event)], spec: WindowSpec) -> Vec<NodeFeatures> {
    let mut windows = BTreeSet::new();
    for (e, _) in events {
        let first = spec.first_window(*e);
        windows.extend((first..spec.retire(first)).step_by(spec.slide as usize));
    }
    let mut rows = Vec::new();
    for w in windows {
        rows.extend(window(events, spec, w));
    }
    rows
}

fn acc(nodes: &mut BTreeMap<u64, Acc>, spec: WindowSpec, w: u64, n: u64) -> &mut Acc {
    let a = nodes.entry(n).or_default();
    a.row
        .get_or_insert_with(|| NodeFeatures::empty(spec.window_start(w), spec.window_end(w), n));
    a
}

fn window(events: &[(u64, Event)], spec: WindowSpec, w: u64) -> Vec<NodeFeatures> {
    let mut nodes: BTreeMap<u64, Acc> = BTreeMap::new();
    for (e, event) in events {
        if *e >= w || e + spec.length < w {
            continue;
        }
        // A state change without an RTT says nothing about the node.
        if let Event::Tcp(_, TcpEventKind::StateChange, _, srtt) = event
            && !srtt.is_some_and(|s| s > 0)
        {
            continue;
        }
        match event {
            Event::Flow(src, dst, bytes, packets) => {
                let s = acc(&mut nodes, spec, w, *src);
                let r = s.row.as_mut().unwrap();
                r.bytes_out += bytes;
                r.packets_out += packets;
                r.flows_out += 1;
                if src != dst {
                    s.outs.insert(*dst);
                }
                let d = acc(&mut nodes, spec, w, *dst);
                let r = d.row.as_mut().unwrap();
                r.bytes_in += bytes;
                r.packets_in += packets;
                r.flows_in += 1;
                if src != dst {
                    d.ins.insert(*src);
                }
            }
            Event::Tcp(node, kind, reason, srtt) => {
                let a = acc(&mut nodes, spec, w, *node);
                match kind {
                    TcpEventKind::Retransmit => a.row.as_mut().unwrap().retransmits += 1,
                    TcpEventKind::Drop => {
                        let reason = reason.clone().unwrap_or(UNKNOWN_DROP_REASON.into());
                        *a.drops.entry(reason).or_default() += 1;
                    }
                    TcpEventKind::StateChange => {}
                }
                if let Some(s) = srtt.filter(|&s| s > 0) {
                    a.rtt.add(f64::from(s));
                }
            }
            Event::Link(src, dst) if src != dst => {
                acc(&mut nodes, spec, w, *src).outs.insert(*dst);
                acc(&mut nodes, spec, w, *dst).ins.insert(*src);
            }
            Event::Link(..) => {}
            Event::Syscall(node, ns) => acc(&mut nodes, spec, w, *node).syscalls.add(*ns as f64),
            Event::Metric(node, name, value) => {
                let a = acc(&mut nodes, spec, w, *node);
                let m = a.metrics.entry(name.clone()).or_default();
                m.0 += quantize_metric(*value).expect("finite test values");
                m.1 += 1;
            }
        }
    }

    // The node's own features.
    let mut neighbours: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (&n, a) in &mut nodes {
        let r = a.row.as_mut().unwrap();
        r.in_degree = a.ins.len() as u32;
        r.out_degree = a.outs.len() as u32;
        let all: BTreeSet<u64> = a.ins.union(&a.outs).copied().collect();
        r.distinct_peers = all.len() as u32;
        neighbours.insert(n, all);
        r.drops = a.drops.values().sum();
        r.drop_reasons = a.drops.keys().map(|k| k.as_str().into()).collect();
        r.drop_counts = a.drops.values().copied().collect();
        r.retransmit_rate =
            (r.packets_out > 0).then(|| r.retransmits as f64 / r.packets_out as f64);
        let packets = r.packets_in + r.packets_out;
        r.drop_rate = (packets > 0).then(|| r.drops as f64 / packets as f64);
        r.rtt_p50_us = a.rtt.quantile(0.5);
        r.rtt_p99_us = a.rtt.quantile(0.99);
        r.syscall_p99_us = a.syscalls.quantile(0.99).map(|v| v / 1_000.0);
        r.metric_names = a.metrics.keys().map(|k| k.as_str().into()).collect();
        r.metric_means = a
            .metrics
            .values()
            .map(|&(s, c)| metric_mean(s, c))
            .collect();
        r.metric_samples = a.metrics.values().map(|m| m.1).collect();
    }
    let x: BTreeMap<u64, [Option<f64>; BASE_FEATURE_COUNT]> = nodes
        .iter()
        .map(|(&n, a)| (n, a.row.as_ref().unwrap().base_values()))
        .collect();

    // 1-hop: mean and max over neighbours; 2-hop: over neighbours' 1-hop mean and max.
    let agg = |items: Vec<[Option<f64>; BASE_FEATURE_COUNT]>,
               maxes: Vec<[Option<f64>; BASE_FEATURE_COUNT]>| {
        let mut mean = [None; BASE_FEATURE_COUNT];
        let mut max = [None; BASE_FEATURE_COUNT];
        for i in 0..BASE_FEATURE_COUNT {
            let vals: Vec<f64> = items.iter().filter_map(|v| v[i]).collect();
            if !vals.is_empty() {
                mean[i] = Some(vals.iter().sum::<f64>() / vals.len() as f64);
            }
            max[i] = maxes.iter().filter_map(|v| v[i]).reduce(f64::max);
        }
        (mean, max)
    };
    let one_hop: BTreeMap<u64, _> = neighbours
        .iter()
        .filter(|(_, ns)| !ns.is_empty())
        .map(|(&v, ns)| {
            let xs: Vec<_> = ns.iter().map(|u| x[u]).collect();
            (v, agg(xs.clone(), xs))
        })
        .collect();
    let two_hop: BTreeMap<u64, _> = one_hop
        .keys()
        .map(|&v| {
            let means = neighbours[&v].iter().map(|u| one_hop[u].0).collect();
            let maxes = neighbours[&v].iter().map(|u| one_hop[u].1).collect();
            (v, agg(means, maxes))
        })
        .collect();

    // Connected components by union-find.
    let ids: Vec<u64> = nodes.keys().copied().collect();
    let index: BTreeMap<u64, usize> = ids.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (v, ns) in &neighbours {
        for u in ns {
            let (a, b) = (find(&mut parent, index[v]), find(&mut parent, index[u]));
            // Keep the smaller index (= smaller node id) as the root.
            parent[a.max(b)] = a.min(b);
        }
    }
    let roots: Vec<usize> = (0..ids.len()).map(|i| find(&mut parent, i)).collect();
    let components = roots.iter().collect::<BTreeSet<_>>().len() as u64;

    nodes
        .into_iter()
        .map(|(n, a)| {
            let mut r = a.row.unwrap();
            if let (Some(h1), Some(h2)) = (one_hop.get(&n), two_hop.get(&n)) {
                for i in 0..BASE_FEATURE_COUNT {
                    r.set_aggregates(i, [h1.0[i], h1.1[i], h2.0[i], h2.1[i]]);
                }
            }
            r.component = ids[roots[index[&n]]];
            r.components = components;
            r
        })
        .collect()
}
