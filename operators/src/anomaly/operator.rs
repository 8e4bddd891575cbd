//! The timely operator: closed windows' features in, anomaly scores out at the same
//! window time.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshflow_schemas::{AnomalyScore, Counters};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;

use super::config::AnomalyConfig;
use super::scorer::WorkerScorer;
use super::vector::ScoreInput;

/// What the workers announced about the end of their data (see
/// [`crate::features::DataEndInput`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataEnds {
    /// Workers that announced.
    pub reported: usize,
    /// The latest window any of them filled.
    pub last_window: Option<u64>,
}

impl DataEnds {
    /// Records one worker's announcement.
    pub fn add(&mut self, end: Option<u64>) {
        self.reported += 1;
        self.last_window = self.last_window.max(end);
    }

    /// Whether window `w` only holds the tail of the data: every one of `peers`
    /// workers has ended, and `w` comes after the last window any of them filled.
    pub fn is_tail(&self, w: u64, peers: usize) -> bool {
        self.reported >= peers && self.last_window.is_some_and(|last| w > last)
    }
}

/// Scores every node's closed windows, read as [`ScoreInput`]s.
///
/// Rows are exchanged by node (`node % workers` for a power-of-two worker count),
/// so each node's history, thresholds and health live on one worker; each worker
/// fits its own model on its own nodes' recent windows. A window is scored once the
/// frontier has passed it, windows in time order, and its scores are emitted at the
/// window's time. Results are deterministic for a given worker count; what depends
/// on the worker count is only each model's training set (the nodes of its worker).
///
/// `ends` carries each worker's end of data (broadcast here to every worker). A
/// bounded input ends with `length / slide − 1` *tail* windows that hold less and
/// less of the data as it slides out; scored, every node's traffic would look as if
/// it collapsed. Windows after the last one any worker's data filled are therefore
/// not scored (counted as dropped): a window is processed once both inputs' frontiers
/// have passed it, so the announcements that make it a tail window have arrived.
pub fn anomaly_scores<'s>(
    features: Stream<'s, u64, Vec<ScoreInput>>,
    ends: Stream<'s, u64, Vec<Option<u64>>>,
    cfg: AnomalyConfig,
    counters: Arc<Counters>,
) -> Stream<'s, u64, Vec<AnomalyScore>> {
    let mut scorer = WorkerScorer::new(cfg, counters.clone());
    let peers = features.scope().peers();
    features.binary_frontier::<_, CapacityContainerBuilder<Vec<AnomalyScore>>, _, _, _, _>(
        ends.broadcast(),
        Exchange::new(|f: &ScoreInput| f.node),
        Pipeline,
        "AnomalyScores",
        move |_capability, _info| {
            let mut pending: BTreeMap<u64, (Capability<u64>, Vec<ScoreInput>)> = BTreeMap::new();
            let mut data_ends = DataEnds::default();
            move |(input, frontier), (ends, ends_frontier), output| {
                input.for_each(|cap, data| {
                    let (Some(time), Some(retained)) = (cap.least().copied(), cap.retain_least(0))
                    else {
                        return;
                    };
                    pending
                        .entry(time)
                        .or_insert_with(|| (retained, Vec::new()))
                        .1
                        .append(data);
                });
                ends.for_each(|_cap, data| data.drain(..).for_each(|e| data_ends.add(e)));
                while let Some(entry) = pending.first_entry() {
                    let w = *entry.key();
                    if frontier.less_equal(&w) || ends_frontier.less_equal(&w) {
                        break;
                    }
                    let (cap, mut rows) = entry.remove();
                    if data_ends.is_tail(w, peers) {
                        counters.add_received(rows.len() as u64);
                        counters.add_dropped(rows.len() as u64);
                        continue;
                    }
                    let scores = scorer.process_window(&mut rows);
                    if !scores.is_empty() {
                        let mut session = output.session(&cap);
                        for s in scores {
                            session.give(s);
                        }
                    }
                }
            }
        },
    )
}
