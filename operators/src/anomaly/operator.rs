//! The timely operator: closed windows' features in, anomaly scores out at the same
//! window time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use meshflow_schemas::{AnomalyScore, Counters};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::ProbeHandle;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Capability, Concat, ConnectLoop, Feedback, OkErr};

use super::config::AnomalyConfig;
use super::scorer::WorkerScorer;
use super::scoring::Scoring;
use super::shared::Lesson;
use super::vector::ScoreInput;

/// How often the scorer looks whether a scored window's output is out, to settle it.
const SETTLE_POLL: Duration = Duration::from_millis(1);

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

/// What reaches the scorer besides the features, on every worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Control {
    /// A worker's end of data.
    End(Option<u64>),
    /// A worker's training rows of a window, delivered one time unit later.
    Lesson(Lesson),
}

/// What the scorer emits: scores, and training rows that go round to every worker.
enum Scored {
    Score(AnomalyScore),
    Lesson(Lesson),
}

/// Scores every node's closed windows, read as [`ScoreInput`]s.
///
/// Rows are exchanged by node (`node % workers` for a power-of-two worker count),
/// so each node's history, thresholds and health live on one worker. The model is
/// the same on every worker: each window's training rows go from every worker to
/// every worker through a feedback edge one time unit long, and are learned once
/// all have arrived (see [`super::shared`]). A window is scored once the frontiers
/// of the features, the ends and the training rows have passed it, windows in time
/// order, so every earlier window's rows are learned first, and its scores are
/// emitted at the window's time. The output is therefore the same for any worker
/// count: what one worker holding every node computes.
///
/// `ends` carries each worker's end of data (broadcast here to every worker). A
/// bounded input ends with `length / slide − 1` *tail* windows that hold less and
/// less of the data as it slides out; scored, every node's traffic would look as if
/// it collapsed. Windows after the last one any worker's data filled are therefore
/// not scored (counted as dropped): a window is processed once both inputs' frontiers
/// have passed it, so the announcements that make it a tail window have arrived.
///
/// `emitted`, when given, tells when a window's output is out (a probe on the job's
/// outputs): the scored window's values join their histories only then (or when the
/// next window is scored, if sooner), so that upkeep is not between a window's close
/// and its scores. Without it, they join at once.
///
/// With `scorer_threads` above 0, scoring and upkeep run on that many helper threads
/// of this operator's, each over a shard of the worker's nodes ([`Scoring`]), while
/// the worker goes on with its feature work; the scores are the same. That is worth
/// it where the process has cores to spare for the helpers, and a cost where every
/// core already runs a worker.
pub fn anomaly_scores<'s>(
    features: Stream<'s, u64, Vec<ScoreInput>>,
    ends: Stream<'s, u64, Vec<Option<u64>>>,
    cfg: AnomalyConfig,
    counters: Arc<Counters>,
    emitted: Option<ProbeHandle<u64>>,
    scorer_threads: usize,
) -> Stream<'s, u64, Vec<AnomalyScore>> {
    let scope = features.scope();
    let peers = scope.peers();
    let (loop_handle, lessons) = scope.feedback::<Vec<Control>>(1);
    let control = ends.map(Control::End).broadcast().concat(lessons);
    let scored = features.binary_frontier::<_, CapacityContainerBuilder<Vec<Scored>>, _, _, _, _>(
        control,
        Exchange::new(|f: &ScoreInput| f.node),
        Pipeline,
        "AnomalyScores",
        move |_capability, info| {
            let helper = (scorer_threads > 0).then(|| {
                (
                    format!("meshflow-score-{}", scope.index()),
                    scope.worker().sync_activator_for(info.address.to_vec()),
                )
            });
            let make = || WorkerScorer::new(cfg.clone(), counters.clone());
            let mut scoring = Scoring::new(make, scorer_threads, helper);
            let activator = scope.activator_for(info.address);
            // Windows given to the scorer, with their capabilities, oldest first.
            let mut scoring_caps: VecDeque<Capability<u64>> = VecDeque::new();
            // The latest window scored.
            let mut scored_last: Option<u64> = None;
            let mut pending: BTreeMap<u64, (Capability<u64>, Vec<ScoreInput>)> = BTreeMap::new();
            let mut learning: BTreeMap<u64, Vec<Lesson>> = BTreeMap::new();
            let mut data_ends = DataEnds::default();
            move |(input, frontier), (control, control_frontier), output| {
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
                control.for_each(|_cap, data| {
                    for c in data.drain(..) {
                        match c {
                            Control::End(e) => data_ends.add(e),
                            Control::Lesson(l) => learning.entry(l.window).or_default().push(l),
                        }
                    }
                });
                loop {
                    // Scored windows go out in time order, with their capabilities.
                    while let Some((w, scores, lesson)) = scoring.next_scored() {
                        let Some(cap) = scoring_caps.pop_front() else {
                            break;
                        };
                        debug_assert_eq!(*cap.time(), w, "windows are scored in time order");
                        scored_last = Some(w);
                        let mut session = output.session(&cap);
                        // Sent even when empty: it tells every worker the window was scored.
                        session.give(Scored::Lesson(lesson));
                        for s in scores {
                            session.give(Scored::Score(s));
                        }
                    }
                    // A window's training rows are complete once no worker can send
                    // more: they arrive at the window's time + 1.
                    while let Some(entry) = learning.first_entry() {
                        let v = *entry.key();
                        if control_frontier.less_equal(&v.saturating_add(1)) {
                            break;
                        }
                        scoring.learn(v, entry.remove());
                    }
                    let Some(entry) = pending.first_entry() else {
                        break;
                    };
                    let w = *entry.key();
                    if frontier.less_equal(&w) || control_frontier.less_equal(&w) {
                        break;
                    }
                    let (cap, rows) = entry.remove();
                    if data_ends.is_tail(w, peers) {
                        counters.add_received(rows.len() as u64);
                        counters.add_dropped(rows.len() as u64);
                        continue;
                    }
                    scoring.score(w, rows);
                    // On a helper thread the scores come later (it wakes the operator);
                    // the next window waits for this one's training rows either way.
                    scoring_caps.push_back(cap);
                }
                if scoring.unsettled() {
                    let out = match (&emitted, scored_last) {
                        (Some(probe), Some(w)) => !probe.less_equal(&w),
                        _ => true,
                    };
                    if out {
                        scoring.settle();
                    } else {
                        activator.activate_after(SETTLE_POLL);
                    }
                }
            }
        },
    );
    let (scores, lessons) = scored.ok_err(|s| match s {
        Scored::Score(s) => Ok(s),
        Scored::Lesson(l) => Err(Control::Lesson(l)),
    });
    lessons.broadcast().connect_loop(loop_handle);
    scores
}
