//! A stream passed on whole, with a projection of each record split off to a second
//! stream.
//!
//! Timely clones every container for each reader of a stream but the last. A reader
//! that needs only a few fields of large records (the anomaly scorer reads eight of
//! `node_features`' hundred columns) would otherwise get a full clone of every row,
//! strings and lists included, and hold a whole window of them.

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::Timestamp;
use timely::progress::operate::FrontierInterest;

/// Splits `stream` into the same records, moved on unchanged, and `project` of each
/// record, computed by reference, at the same times.
pub fn fork<'s, T, D, E, F>(
    stream: Stream<'s, T, Vec<D>>,
    name: &str,
    mut project: F,
) -> (Stream<'s, T, Vec<D>>, Stream<'s, T, Vec<E>>)
where
    T: Timestamp,
    D: 'static,
    E: 'static,
    F: FnMut(&D) -> E + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    let (mut whole, whole_stream) = builder.new_output::<Vec<D>>();
    let (mut part, part_stream) = builder.new_output::<Vec<E>>();
    builder.build(move |_capabilities| {
        let mut projected = Vec::new();
        move |_frontiers| {
            let mut whole = whole.activate();
            let mut part = part.activate();
            input.for_each_stamp(|cap, data| {
                for container in data {
                    projected.extend(container.iter().map(&mut project));
                    part.give(&cap, &mut projected);
                    projected.clear();
                    whole.give(&cap, container);
                }
            });
        }
    });
    (whole_stream, part_stream)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::vec::Input as _;
    use timely::dataflow::operators::{Inspect, Probe};

    use super::*;

    /// Both outputs carry every record, at its time, on 1 and 2 workers.
    #[test]
    fn both_outputs_carry_every_record_at_its_time() {
        for workers in [1, 2] {
            let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
            let sink = seen.clone();
            timely::execute(timely::Config::process(workers), move |worker| {
                let index = worker.index() as u64;
                let sink = sink.clone();
                let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                    let (input, stream) = scope.new_input::<(u64, String)>();
                    let (whole, lengths) = fork(stream, "Fork", |(_, s): &(u64, String)| s.len());
                    let (a, b) = (sink.clone(), sink.clone());
                    let whole = whole.inspect_core(move |event| {
                        if let Ok((stamp, data)) = event {
                            let t = *stamp.expect_singleton();
                            a.lock()
                                .unwrap()
                                .0
                                .extend(data.iter().map(|r| (t, r.clone())));
                        }
                    });
                    let lengths = lengths.inspect_core(move |event| {
                        if let Ok((stamp, data)) = event {
                            let t = *stamp.expect_singleton();
                            b.lock().unwrap().1.extend(data.iter().map(|n| (t, *n)));
                        }
                    });
                    let (probe, _) = whole.probe();
                    lengths.probe_with(&probe);
                    (input, probe)
                });
                for t in 0..3u64 {
                    input.send((index * 10 + t, "x".repeat((t + 1) as usize)));
                    input.advance_to(t + 1);
                    while probe.less_than(&(t + 1)) {
                        worker.step();
                    }
                }
            })
            .unwrap();
            let (mut whole, mut lengths) = std::mem::take(&mut *seen.lock().unwrap());
            whole.sort();
            lengths.sort();
            let expected: Vec<(u64, (u64, String))> = (0..workers as u64)
                .flat_map(|w| {
                    (0..3u64).map(move |t| (t, (w * 10 + t, "x".repeat((t + 1) as usize))))
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut expected_lengths: Vec<(u64, usize)> =
                expected.iter().map(|(t, (_, s))| (*t, s.len())).collect();
            expected_lengths.sort();
            assert_eq!(whole, expected, "{workers} workers");
            assert_eq!(lengths, expected_lengths, "{workers} workers");
        }
    }
}
