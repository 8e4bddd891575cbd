//! The timely operator: closed windows' features in, anomaly scores out at the same
//! window time.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshflow_schemas::{AnomalyScore, Counters, NodeFeatures};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::config::AnomalyConfig;
use super::scorer::WorkerScorer;

/// Scores every node's closed windows.
///
/// Rows are exchanged by node (`node % workers` for a power-of-two worker count),
/// so each node's history, thresholds and health live on one worker; each worker
/// fits its own model on its own nodes' recent windows. A window is scored once the
/// frontier has passed it, windows in time order, and its scores are emitted at the
/// window's time. Results are deterministic for a given worker count; what depends
/// on the worker count is only each model's training set (the nodes of its worker).
pub fn anomaly_scores<'s>(
    features: Stream<'s, u64, Vec<NodeFeatures>>,
    cfg: AnomalyConfig,
    counters: Arc<Counters>,
) -> Stream<'s, u64, Vec<AnomalyScore>> {
    let mut scorer = WorkerScorer::new(cfg, counters);
    features.unary_frontier::<CapacityContainerBuilder<Vec<AnomalyScore>>, _, _, _>(
        Exchange::new(|f: &NodeFeatures| f.node),
        "AnomalyScores",
        move |_capability, _info| {
            let mut pending: BTreeMap<u64, (Capability<u64>, Vec<NodeFeatures>)> = BTreeMap::new();
            move |(input, frontier), output| {
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
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (cap, mut rows) = entry.remove();
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
