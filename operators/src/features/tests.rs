//! The incrementally maintained rows equal a plain batch recomputation of each window.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use differential_dataflow::difference::Abelian;
use differential_dataflow::input::InputSession;
use meshflow_schemas::{
    FEATURE_NAMES, Ip16, NodeFeatures, NodeMetric, SyscallLatency, TcpEvent, TcpEventKind,
    TimestampNs,
};
use proptest::prelude::*;
use timely::dataflow::operators::{Inspect, Probe};

use crate::anomaly::vector::ScoreInput;

use super::batch::{Event, batch};
use super::*;
use crate::total::Accumulate;
use crate::window::WindowSpec;

const EPOCH_NS: i64 = 1_000;

fn at(epoch: u64) -> TimestampNs {
    TimestampNs(epoch as i64 * EPOCH_NS + 7)
}

fn tcp(
    epoch: u64,
    node: u64,
    kind: TcpEventKind,
    reason: Option<String>,
    srtt: Option<u32>,
) -> TcpEvent {
    TcpEvent {
        time: at(epoch),
        node,
        peer_node: None,
        kind,
        src_ip: Ip16::default(),
        dst_ip: Ip16::default(),
        src_port: 0,
        dst_port: 0,
        drop_reason: reason,
        old_state: None,
        new_state: None,
        srtt_us: srtt,
    }
}

/// Feeds one event into the input.
fn give(input: &mut FeatureInput, epoch: u64, event: &Event) {
    let refused = match event {
        Event::Flow(src, dst, bytes, packets) => {
            input.add_flow(at(epoch), *src, *dst, *bytes, *packets)
        }
        Event::Tcp(node, kind, reason, srtt) => {
            input.add_tcp(&tcp(epoch, *node, *kind, reason.clone(), *srtt))
        }
        Event::Syscall(node, ns) => input.add_syscall(&SyscallLatency {
            time: at(epoch),
            node: *node,
            pid: 1,
            syscall: "sendto".into(),
            latency_ns: *ns,
        }),
        Event::Metric(node, name, value) => input.add_metric(&NodeMetric {
            time: at(epoch),
            node: *node,
            metric: name.as_str().into(),
            value: *value,
        }),
        Event::Link(..) => unreachable!("links are given with `FeatureInput::set_links`"),
    };
    refused.expect("sorted input is never late");
}

/// Runs the dataflow on `workers` threads, each feeding its share of `events` (sorted by epoch).
fn incremental(events: &[(u64, Event)], spec: WindowSpec, workers: usize) -> Vec<NodeFeatures> {
    incremental_with_links(events, &[], 0, spec, workers)
}

/// [`incremental`] with a given topology: `links` hold before epoch `until`, and each
/// worker gets a share of them.
fn incremental_with_links(
    events: &[(u64, Event)],
    links: &[Link],
    until: u64,
    spec: WindowSpec,
    workers: usize,
) -> Vec<NodeFeatures> {
    let run = run(events, links, until, spec, workers);
    run.rows.into_iter().map(|(_, r)| r).collect()
}

/// What [`run`] collects, each record with its timely time, sorted by time and node.
struct Run {
    rows: Vec<(u64, NodeFeatures)>,
    inputs: Vec<(u64, ScoreInput)>,
}

/// Runs [`node_features_scored`] on `workers` threads, each feeding its share of
/// `events` (sorted by epoch) and of `links` (which hold before epoch `until`).
fn run(
    events: &[(u64, Event)],
    links: &[Link],
    until: u64,
    spec: WindowSpec,
    workers: usize,
) -> Run {
    let rows = Arc::new(Mutex::new(Vec::new()));
    let inputs = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::new(events.to_vec());
    let links = Arc::new(links.to_vec());
    let (row_sink, input_sink) = (rows.clone(), inputs.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (row_sink, input_sink) = (row_sink.clone(), input_sink.clone());
        let mut session = InputSession::new();
        let probes = worker.dataflow::<u64, _, _>(|scope| {
            let (features, scored) = node_features_scored(session.to_collection(scope), spec);
            [
                collect_timed(features, row_sink),
                collect_timed(scored, input_sink),
            ]
        });
        let mut input = FeatureInput::new(session, spec);
        let share = links.iter().enumerate().filter(|(i, _)| i % peers == index);
        input.set_links(share.map(|(_, l)| *l).collect(), until);
        for (i, (epoch, event)) in events.iter().enumerate() {
            input.advance_to_epoch(*epoch);
            if i % peers == index {
                give(&mut input, *epoch, event);
            }
            worker.step();
        }
        input.close();
        worker.step_while(|| probes.iter().any(|p| !p.done()));
    })
    .unwrap();
    let mut rows = rows.lock().unwrap().clone();
    rows.sort_by_key(|(t, r)| (*t, r.window_end, r.node));
    let mut inputs = inputs.lock().unwrap().clone();
    inputs.sort_by_key(|(t, i)| (*t, i.window_end, i.node));
    Run { rows, inputs }
}

/// Adds every record of `stream` to `sink` with its time; the probe tells when all are in.
fn collect_timed<'s, D: Clone + 'static>(
    stream: timely::dataflow::Stream<'s, u64, Vec<D>>,
    sink: Arc<Mutex<Vec<(u64, D)>>>,
) -> timely::dataflow::ProbeHandle<u64> {
    stream
        .inspect_core(move |event| {
            if let Ok((stamp, batch)) = event {
                let t = *stamp.least().expect("stamped with a time");
                let mut sink = sink.lock().unwrap();
                sink.extend(batch.iter().map(|r| (t, r.clone())));
            }
        })
        .probe()
        .0
}

/// Asserts that the scorer's inputs are those of the rows, at the rows' times.
fn assert_inputs_match(run: &Run) -> Result<(), TestCaseError> {
    let want: Vec<(u64, ScoreInput)> = (run.rows.iter())
        .map(|(t, r)| (*t, ScoreInput::from(r)))
        .collect();
    prop_assert_eq!(&run.inputs, &want);
    Ok(())
}

/// Asserts equal rows: exactly, except the neighbour aggregates, which the dataflow
/// keeps as `f32` (relative tolerance 1e-6 of the exact batch value).
fn assert_rows_match(got: &[NodeFeatures], want: &[NodeFeatures]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "row count");
    for (g, w) in got.iter().zip(want) {
        let (gv, wv) = (g.feature_values(), w.feature_values());
        for (i, name) in FEATURE_NAMES.iter().enumerate() {
            let close = match (gv[i], wv[i]) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0),
                (a, b) => a == b,
            };
            prop_assert!(
                close,
                "window {:?} node {} {}: got {:?} want {:?}",
                w.window_end,
                w.node,
                name,
                gv[i],
                wv[i]
            );
        }
        let strip = |r: &NodeFeatures| {
            let mut r = r.clone();
            for i in 0..meshflow_schemas::BASE_FEATURE_COUNT {
                r.set_aggregates(i, [None; 4]);
            }
            r
        };
        prop_assert_eq!(strip(g), strip(w));
    }
    Ok(())
}

fn event_strategy(nodes: u64) -> impl Strategy<Value = Event> {
    let reason = prop::option::of(prop::sample::select(vec![
        "TCP_CSUM".to_string(),
        "QDISC_DROP".into(),
    ]));
    prop_oneof![
        6 => (0..nodes, 0..nodes, 0u64..5_000, 1u64..20).prop_map(|(s, d, b, p)| Event::Flow(s, d, b, p)),
        1 => (0..nodes).prop_map(|n| Event::Tcp(n, TcpEventKind::Retransmit, None, None)),
        1 => (0..nodes, reason).prop_map(|(n, r)| Event::Tcp(n, TcpEventKind::Drop, r, None)),
        1 => (0..nodes, prop::option::of(0u32..50_000)).prop_map(|(n, s)| Event::Tcp(n, TcpEventKind::StateChange, None, s)),
        1 => (0..nodes, 0u64..2_000_000).prop_map(|(n, ns)| Event::Syscall(n, ns)),
        1 => (0..nodes, prop::sample::select(vec!["cpu_load".to_string(), "rtt_ms".into()]), -5.0f64..500.0)
            .prop_map(|(n, m, v)| Event::Metric(n, m, v)),
    ]
}

fn events_strategy() -> impl Strategy<Value = Vec<(u64, Event)>> {
    prop::collection::vec((0u64..24, event_strategy(7)), 0..70).prop_map(|mut e| {
        e.sort_by_key(|x| x.0);
        e
    })
}

fn spec_strategy() -> impl Strategy<Value = WindowSpec> {
    (1i64..4, 1i64..4).prop_map(|(slide, mult)| {
        WindowSpec::new(EPOCH_NS, slide * mult * EPOCH_NS, slide * EPOCH_NS).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn features_equal_batch_recomputation_on_one_two_and_three_workers(events in events_strategy(), spec in spec_strategy()) {
        let expected = batch(&events, spec);
        // Three workers: the neighbourhood layers route to workers by remainder, not
        // by mask, when their count is not a power of two.
        for workers in [1, 2, 3] {
            assert_rows_match(&incremental(&events, spec, workers), &expected)?;
        }
    }

    #[test]
    fn scorer_inputs_are_the_rows_own_on_one_and_two_workers(
        events in events_strategy(),
        links in prop::collection::vec((0u64..24, 0u64..9, 0u64..9), 0..4),
        spec in spec_strategy(),
    ) {
        let links: Vec<Link> = links
            .into_iter()
            .map(|(from_epoch, src, dst)| Link { from_epoch, src, dst })
            .collect();
        for workers in [1, 2] {
            let run = run(&events, &links, 20, spec, workers);
            prop_assert!(run.rows.iter().all(|(t, r)| r.window_end == spec.window_end(*t)));
            assert_inputs_match(&run)?;
        }
    }

    #[test]
    fn features_with_given_links_equal_batch_recomputation_on_one_and_two_workers(
        events in events_strategy(),
        links in prop::collection::vec((0u64..24, 0u64..9, 0u64..9), 0..8),
        until in 0u64..30,
        spec in spec_strategy(),
    ) {
        let links: Vec<Link> = links
            .into_iter()
            .map(|(from_epoch, src, dst)| Link { from_epoch, src, dst })
            .collect();
        // The batch definition: a link is an event in every epoch it holds in.
        let mut all = events.clone();
        for l in &links {
            all.extend((l.from_epoch..until).map(|e| (e, Event::Link(l.src, l.dst))));
        }
        all.sort_by_key(|x| x.0);
        let expected = batch(&all, spec);
        assert_rows_match(&incremental_with_links(&events, &links, until, spec, 1), &expected)?;
        assert_rows_match(&incremental_with_links(&events, &links, until, spec, 2), &expected)?;
    }
}

/// A window with a known answer, to pin the definitions (not only agreement).
#[test]
fn a_path_and_an_island_have_known_features() {
    // Window of 2 epochs; path 1 - 2 - 3 and the isolated edge 7 - 8, all at epoch 0.
    let spec = WindowSpec::new(EPOCH_NS, 2 * EPOCH_NS, EPOCH_NS).unwrap();
    let events = vec![
        (0, Event::Flow(1, 2, 100, 1)),
        (0, Event::Flow(2, 3, 300, 3)),
        (0, Event::Flow(7, 8, 10, 1)),
        (0, Event::Tcp(2, TcpEventKind::Retransmit, None, None)),
        (0, Event::Tcp(2, TcpEventKind::Drop, None, None)),
        (
            0,
            Event::Tcp(3, TcpEventKind::StateChange, None, Some(1_000)),
        ),
        (0, Event::Metric(9, "cpu_load".into(), 0.25)),
        (0, Event::Metric(9, "cpu_load".into(), 0.75)),
        // Tiny and huge samples keep their means (micro-units read 2e-7 as 0, and the
        // sum of two 1e32 samples wrapped negative).
        (0, Event::Metric(9, "seconds".into(), 1e-7)),
        (0, Event::Metric(9, "seconds".into(), 3e-7)),
        (0, Event::Metric(9, "total_bytes".into(), 1e18)),
        (0, Event::Metric(9, "total_bytes".into(), 1e18)),
    ];
    let rows = incremental(&events, spec, 2);
    let first: BTreeMap<u64, &NodeFeatures> = rows
        .iter()
        .filter(|r| r.window_end == TimestampNs(EPOCH_NS))
        .map(|r| (r.node, r))
        .collect();
    assert_eq!(
        first.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 7, 8, 9]
    );
    let (n1, n2, n3) = (first[&1], first[&2], first[&3]);
    assert_eq!(
        (n2.bytes_in, n2.bytes_out, n2.distinct_peers),
        (100, 300, 2)
    );
    assert_eq!((n2.retransmits, n2.drops), (1, 1));
    assert_eq!(n2.retransmit_rate, Some(1.0 / 3.0));
    assert_eq!(n2.drop_rate, Some(1.0 / 4.0));
    assert_eq!(n2.drop_reasons, vec![UNKNOWN_DROP_REASON.into()]);
    assert!((n3.rtt_p50_us.unwrap() - 1_000.0).abs() <= 10.0);
    assert_eq!(n1.rtt_p50_us, None);
    // bytes_out: node 1 sent 100, node 2 sent 300, node 3 sent 0.
    assert_eq!(n2.bytes_out_n1_mean, Some(50.0));
    assert_eq!(n2.bytes_out_n1_max, Some(100.0));
    // Node 1's only neighbour is 2: 1-hop = 300; 2-hop = mean of 2's 1-hop mean (50).
    assert_eq!(n1.bytes_out_n1_mean, Some(300.0));
    assert_eq!(n1.bytes_out_n2_mean, Some(50.0));
    assert_eq!(n1.bytes_out_n2_max, Some(100.0));
    // Node 2: 2-hop walks reach 2 (via 1 and via 3): mean of (300, 300), max 300.
    assert_eq!(n2.bytes_out_n2_mean, Some(300.0));
    // RTT exists only at 3: node 2's 1-hop mean is 3's value; node 1's is null.
    assert_eq!(
        n2.rtt_p50_us_n1_mean,
        n3.rtt_p50_us.map(|v| f64::from(v as f32))
    );
    assert_eq!(n1.rtt_p50_us_n1_mean, None);
    // Components: {1,2,3}, {7,8}, {9}.
    assert_eq!((n1.component, n2.component, n3.component), (1, 1, 1));
    assert_eq!((first[&8].component, first[&9].component), (7, 9));
    assert!(first.values().all(|r| r.components == 3));
    assert_eq!(
        first[&9].metric_names,
        vec!["cpu_load".into(), "seconds".into(), "total_bytes".into()]
    );
    let means = &first[&9].metric_means;
    assert_eq!((means[0], means[2]), (0.5, 1e18));
    assert!((means[1] - 2e-7).abs() < 1e-15, "{means:?}");
    assert_eq!(first[&9].metric_samples, vec![2, 2, 2]);
    assert_eq!(first[&9].bytes_out_n1_mean, None);
}

/// A node that swaps one peer for another with the same traffic keeps its values,
/// yet its new neighbour (often on another worker) needs them.
#[test]
fn a_new_neighbour_gets_values_that_did_not_change() {
    let spec = WindowSpec::new(EPOCH_NS, EPOCH_NS, EPOCH_NS).unwrap();
    let events: Vec<(u64, Event)> = (0..8)
        .map(|epoch| (epoch, Event::Flow(1, 10 + epoch, 100, 1)))
        .collect();
    let expected = batch(&events, spec);
    for workers in [1, 2, 3] {
        let rows = incremental(&events, spec, workers);
        assert_rows_match(&rows, &expected).expect("rows equal the batch's");
        let peers: Vec<&NodeFeatures> = rows.iter().filter(|r| r.node != 1).collect();
        assert_eq!(peers.len(), 8);
        assert!(peers.iter().all(|r| r.bytes_out_n1_mean == Some(100.0)));
        assert!(peers.iter().all(|r| r.bytes_out_n2_mean == Some(0.0)));
    }
}

#[test]
fn steady_edges_stop_producing_updates_once_the_window_is_full() {
    let spec = WindowSpec::new(1, 4, 1).unwrap();
    let mut combiner = FeatureCombiner::new(spec);
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
fn late_and_invalid_records_are_refused() {
    let spec = WindowSpec::new(EPOCH_NS, 2 * EPOCH_NS, EPOCH_NS).unwrap();
    timely::execute_directly(move |worker| {
        let mut session = InputSession::new();
        worker.dataflow::<u64, _, _>(|scope| {
            node_features(session.to_collection(scope), spec);
        });
        let mut input = FeatureInput::new(session, spec);
        input.advance_to_epoch(10);
        assert!(
            input
                .add_flow(TimestampNs(10 * EPOCH_NS), 1, 2, 1, 1)
                .is_ok()
        );
        let late = TimestampNs(3 * EPOCH_NS);
        assert_eq!(
            input.add_flow(late, 1, 2, 1, 1),
            Err(Refused::Late(Late { time: late }))
        );
        // Before 1970 no window holds it: a bad record, not a late one.
        match input.add_flow(TimestampNs(-5), 1, 2, 1, 1) {
            Err(Refused::Invalid(what)) => assert!(
                what.contains("flows: node 1") && what.contains("-5 ns before 1970"),
                "{what}"
            ),
            other => panic!("{other:?}"),
        }
        let metric = |time, value| NodeMetric {
            time,
            node: 4,
            metric: "cpu_load".into(),
            value,
        };
        let mut refused = input.add_records(
            &[
                metric(TimestampNs(10 * EPOCH_NS), 0.5),
                metric(TimestampNs(10 * EPOCH_NS), f64::NAN),
                metric(late, 0.5),
                metric(TimestampNs(10 * EPOCH_NS), 1e19),
                metric(TimestampNs(10 * EPOCH_NS), -1e18),
                metric(TimestampNs(-1), 0.5),
            ],
            &[tcp(3, 4, TcpEventKind::Retransmit, None, None)],
            &[],
        );
        assert_eq!((refused.late, refused.invalid), (2, 3));
        let what = refused.first_invalid.clone().unwrap();
        assert!(
            what.contains("node 4") && what.contains("cpu_load") && what.contains("NaN"),
            "{what}"
        );
        // A wrapped 64-bit counter is not traffic: refused, naming the flow.
        refused.tally(input.add_flow(TimestampNs(10 * EPOCH_NS), 1, 2, u64::MAX, 1));
        refused.tally(input.add_flow(TimestampNs(10 * EPOCH_NS), 1, 2, 1 << 53, 1 << 53));
        assert_eq!(refused.invalid, 4);
        input.close();
    });
}

#[test]
fn base_values_of_the_operator_and_the_row_agree() {
    let diff = FeatureDiff {
        bytes_in: 10,
        packets_in: 2,
        packets_out: 4,
        retransmits: 1,
        ..Default::default()
    };
    let drop = FeatureVal::Drop("X".into());
    let rtt = FeatureVal::Rtt(crate::sketch::bucket_of(250.0));
    let sys = FeatureVal::Syscall(crate::sketch::bucket_of(3_000.0));
    let peer = FeatureVal::Peer(5, Direction::In);
    let input = [
        (FeatureVal::Totals, diff),
        (peer, FeatureDiff::count(1)),
        (drop, FeatureDiff::count(3)),
        (rtt, FeatureDiff::count(2)),
        (sys, FeatureDiff::count(1)),
    ];
    let mut tally = NodeTally::default();
    for (val, diff) in &input {
        tally.add(val, diff);
    }
    let base = NodeBase::fold(&tally);
    assert_eq!(tally.take_neighbour_changes().collect::<Vec<_>>(), [(5, 1)]);
    let mut row = NodeFeatures::empty(TimestampNs(0), TimestampNs(1), 1);
    base.fill(&mut row);
    let rounded = row.base_values().map(|v| v.map(|v| f64::from(v as f32)));
    assert_eq!(base.values().values(), rounded);
    assert_eq!(row.drop_rate, Some(0.5));
    assert!((row.syscall_p99_us.unwrap() - 3.0).abs() < 0.03);
}

#[test]
fn a_rise_in_components_is_reported_once_per_window_and_at_most_once_a_minute() {
    let minute = PARTITION_WARN_EVERY_NS;
    let row = |w: i64, node: u64, components: u64| NodeFeatures {
        components,
        ..NodeFeatures::empty(TimestampNs(w - 10), TimestampNs(w), node)
    };
    let mut watch = PartitionWatch::default();
    let seen: Vec<_> = [
        row(1, 1, 1),
        row(1, 2, 1),
        row(2, 1, 3),
        row(2, 2, 3),
        row(3, 1, 2),
        row(4, 1, 4),
        row(5, 1, 2),
        row(6, 1, 5),
        row(2 + minute, 1, 6),
    ]
    .iter()
    .map(|r| watch.observe(r).map(|p| (p.before, p.now, p.unreported)))
    .collect();
    assert_eq!(
        seen,
        vec![
            None,
            None,
            Some((1, 3, 0)),
            None,
            None,
            None,
            None,
            None,
            Some((5, 6, 2))
        ]
    );
}

/// A feature value other than peer presence, drawn from a few of each kind (the
/// combiner's tests draw from these too).
pub(super) fn non_peer_value() -> impl Strategy<Value = FeatureVal> {
    prop_oneof![
        Just(FeatureVal::Totals),
        (0usize..3).prop_map(|r| FeatureVal::Drop(Name::from(["a", "b", "c"][r]))),
        (0i32..5).prop_map(FeatureVal::Rtt),
        (0i32..5).prop_map(FeatureVal::Syscall),
        (0usize..2).prop_map(|m| FeatureVal::Metric(Name::from(["m", "n"][m]))),
    ]
}

/// A feature update drawn from a few values of each kind.
fn feature_update() -> impl Strategy<Value = (FeatureVal, FeatureDiff)> {
    let peer = (0u64..4, any::<bool>())
        .prop_map(|(p, out)| FeatureVal::Peer(p, if out { Direction::Out } else { Direction::In }));
    let val = prop_oneof![non_peer_value(), peer];
    (val, -3i64..4, -5i64..6, -7i128..8).prop_map(|(val, count, bytes, sum)| {
        let diff = FeatureDiff {
            count,
            bytes_in: bytes,
            retransmits: count,
            sum,
            ..Default::default()
        };
        (val, diff)
    })
}

proptest! {
    /// A tally is the same whatever the order of its updates, and is empty again once
    /// each update is retracted; its neighbour changes net, in any order, to its
    /// neighbours (every peer counted in either direction) and back to none.
    #[test]
    fn a_tally_commutes_and_its_retractions_cancel(
        (updates, shuffled) in prop::collection::vec(feature_update(), 0..40)
            .prop_flat_map(|u| (Just(u.clone()), Just(u).prop_shuffle())),
    ) {
        let net = |tally: &mut NodeTally| {
            let mut changes: Vec<_> = tally.take_neighbour_changes().collect();
            differential_dataflow::consolidation::consolidate(&mut changes);
            changes
        };
        let mut forward = NodeTally::default();
        updates.iter().for_each(|(v, d)| forward.add(v, d));
        let mut other = NodeTally::default();
        shuffled.iter().for_each(|(v, d)| other.add(v, d));
        let gained = net(&mut forward);
        prop_assert_eq!(&gained, &net(&mut other));
        prop_assert_eq!(&forward, &other);
        prop_assert!(gained.iter().all(|&(_, r)| r == 1), "{:?}", gained);
        let peers = updates.iter().filter_map(|(v, _)| match v {
            FeatureVal::Peer(p, _) => Some(*p),
            _ => None,
        });
        let linked: std::collections::BTreeSet<u64> = peers
            .filter(|p| {
                [Direction::In, Direction::Out].iter().any(|dir| {
                    let counts = updates.iter().filter(|(v, _)| *v == FeatureVal::Peer(*p, *dir));
                    counts.map(|(_, d)| d.count).sum::<i64>() > 0
                })
            })
            .collect();
        prop_assert_eq!(gained.iter().map(|c| c.0).collect::<Vec<_>>(), linked.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(NodeBase::fold(&forward).distinct_peers as usize, gained.len());
        for (v, d) in &updates {
            let mut negated = *d;
            negated.negate();
            forward.add(v, &negated);
        }
        let lost = net(&mut forward);
        prop_assert_eq!(lost, gained.iter().map(|&(p, r)| (p, -r)).collect::<Vec<_>>());
        prop_assert!(forward.is_empty());
        prop_assert_eq!(forward, NodeTally::default());
    }
}
