//! The incrementally maintained windows equal a plain batch recomputation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use differential_dataflow::input::InputSession;
use meshflow_schemas::TimestampNs;
use proptest::prelude::*;
use timely::dataflow::operators::{Inspect, Probe};

use super::*;
use crate::emit::emit_windows;
use crate::window::WindowSpec;

/// A flow for tests: (epoch, src, dst, bytes, packets).
type Flow = (u64, u64, u64, u64, u64);
type Row = (u64, u64, NodeTraffic);

const EPOCH_NS: i64 = 1_000;

/// Runs the dataflow on `workers` threads, each feeding its share of `flows` (sorted by epoch).
fn incremental(flows: &[Flow], spec: WindowSpec, workers: usize) -> Vec<Row> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let flows = Arc::new(flows.to_vec());
    let sink = out.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let sink = sink.clone();
        let mut session = InputSession::new();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let traffic = node_traffic(session.to_collection(scope));
            let rows = emit_windows(traffic, spec, |w, k: &u64, v: &NodeTraffic| (w, *k, *v));
            rows.inspect(move |row| sink.lock().unwrap().push(*row))
                .probe()
                .0
        });
        let mut input = TrafficInput::new(session, spec);
        for (i, &(epoch, src, dst, bytes, packets)) in flows.iter().enumerate() {
            input.advance_to_epoch(epoch);
            if i % peers == index {
                let t = TimestampNs(epoch as i64 * EPOCH_NS + 7);
                input
                    .add_flow(t, src, dst, bytes, packets)
                    .expect("sorted input is never late");
            }
            worker.step();
        }
        input.close();
        worker.step_while(|| !probe.done());
    })
    .unwrap();
    let mut rows = out.lock().unwrap().clone();
    rows.sort();
    rows
}

/// The same windows computed from scratch, window by window.
fn batch(flows: &[Flow], spec: WindowSpec) -> Vec<Row> {
    let mut windows = BTreeSet::new();
    for &(e, ..) in flows {
        let first = spec.first_window(e);
        windows.extend((first..spec.retire(first)).step_by(spec.slide as usize));
    }
    let mut rows = Vec::new();
    for w in windows {
        let mut per_node: BTreeMap<u64, (NodeTraffic, BTreeSet<u64>, BTreeSet<u64>)> =
            BTreeMap::new();
        for &(e, src, dst, bytes, packets) in flows {
            if e >= w || e + spec.length < w {
                continue;
            }
            let s = per_node.entry(src).or_default();
            s.0.bytes_out += bytes;
            s.0.packets_out += packets;
            s.0.flows_out += 1;
            if src != dst {
                s.2.insert(dst);
            }
            let d = per_node.entry(dst).or_default();
            d.0.bytes_in += bytes;
            d.0.packets_in += packets;
            d.0.flows_in += 1;
            if src != dst {
                d.1.insert(src);
            }
        }
        for (node, (mut t, ins, outs)) in per_node {
            t.in_degree = ins.len() as u32;
            t.out_degree = outs.len() as u32;
            t.distinct_peers = ins.union(&outs).count() as u32;
            rows.push((w, node, t));
        }
    }
    rows
}

fn flows_strategy() -> impl Strategy<Value = Vec<Flow>> {
    prop::collection::vec((0u64..30, 0u64..6, 0u64..6, 0u64..5_000, 1u64..20), 0..60).prop_map(
        |mut f| {
            f.sort_by_key(|x| x.0);
            f
        },
    )
}

fn spec_strategy() -> impl Strategy<Value = WindowSpec> {
    (1i64..4, 1i64..4).prop_map(|(slide, mult)| {
        WindowSpec::new(EPOCH_NS, slide * mult * EPOCH_NS, slide * EPOCH_NS).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn windows_equal_batch_recomputation_on_one_and_two_workers(flows in flows_strategy(), spec in spec_strategy()) {
        let expected = batch(&flows, spec);
        prop_assert_eq!(&incremental(&flows, spec, 1), &expected);
        prop_assert_eq!(&incremental(&flows, spec, 2), &expected);
    }
}

#[test]
fn steady_edges_stop_producing_updates_once_the_window_is_full() {
    let spec = WindowSpec::new(1, 4, 1).unwrap();
    let mut combiner = TrafficCombiner::new(spec);
    let mut per_time = BTreeMap::<u64, usize>::new();
    for epoch in 0..20 {
        combiner.add_flow(epoch, 1, 2, 100, 1);
        combiner.flush(epoch + 1, |_, t, _| *per_time.entry(t).or_default() += 1);
    }
    // Early on: totals and presence for both ends (4 updates); once the window is
    // full, presence nets to zero and only the two totals remain (bytes are steady too).
    assert_eq!(per_time[&1], 4);
    assert!(per_time.range(6..20).all(|(_, &n)| n == 0), "{per_time:?}");
}

#[test]
fn late_flows_are_refused() {
    let spec = WindowSpec::new(EPOCH_NS, 2 * EPOCH_NS, EPOCH_NS).unwrap();
    timely::execute_directly(move |worker| {
        let mut session = InputSession::new();
        worker.dataflow::<u64, _, _>(|scope| {
            node_traffic(session.to_collection(scope));
        });
        let mut input = TrafficInput::new(session, spec);
        input.advance_to_epoch(10);
        assert!(
            input
                .add_flow(TimestampNs(10 * EPOCH_NS), 1, 2, 1, 1)
                .is_ok()
        );
        let late = TimestampNs(3 * EPOCH_NS);
        assert_eq!(input.add_flow(late, 1, 2, 1, 1), Err(Late { time: late }));
        assert!(input.add_flow(TimestampNs(-5), 1, 2, 1, 1).is_err());
        input.close();
    });
}
