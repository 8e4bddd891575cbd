//! The scorer on helper threads of its own, or on the worker where no core is spare.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use meshflow_schemas::AnomalyScore;
use timely::scheduling::SyncActivator;

use super::scorer::WorkerScorer;
use super::shared::Lesson;
use super::vector::ScoreInput;

/// A scored window: its time, its scores, and the training rows it gives every worker.
pub type ScoredWindow = (u64, Vec<AnomalyScore>, Lesson);

/// What the operator asks of the scorer, carried out in the order asked.
enum Job {
    Learn(u64, Vec<Lesson>),
    Score(u64, Vec<ScoreInput>),
    Settle,
}

impl Job {
    /// Carries the job out on `scorer`; a scored window is returned.
    fn run(self, scorer: &mut WorkerScorer) -> Option<ScoredWindow> {
        match self {
            Job::Learn(window, lessons) => scorer.learn_window(window, lessons),
            Job::Score(window, mut rows) => {
                let (scores, lesson) = scorer.score_window(window, &mut rows);
                return Some((window, scores, lesson));
            }
            Job::Settle => scorer.settle(),
        }
        None
    }
}

/// Wakes the operator when dropped, so that a helper that stops (a panic included)
/// is noticed instead of leaving the operator waiting for a window.
struct WakeOnDrop(SyncActivator);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        // The worker may be gone already (the job is ending): nothing to wake.
        let _ = self.0.activate();
    }
}

/// A helper thread and its jobs: one shard of a worker's nodes.
struct Shard {
    jobs: Sender<Job>,
    results: Receiver<ScoredWindow>,
    /// The shard's result for the window being collected, once it has come.
    ready: Option<ScoredWindow>,
    helper: JoinHandle<()>,
}

/// The most helper threads one worker's scorer uses. Each shard keeps a copy of the
/// model and fits it again at each refit, so more shards cost more than they save.
pub const MAX_SCORER_THREADS: usize = 4;

/// One worker's scoring, run on helper threads when they are asked for, so that
/// scoring a window and the upkeep of its histories overlap the worker's feature work
/// on the next window instead of following it.
///
/// With `n` helpers, the worker's nodes are split into `n` shards by a hash of the
/// node id, each a [`WorkerScorer`] of its own on its own thread: a window's rows are
/// scored by all of them at once. Each shard learns every window's training rows, as
/// every worker does, and a window's result is the shards' scores and training rows
/// merged by node, so the scores are exactly those of one scorer (as they are for any
/// number of workers). The helpers carry out [`Self::learn`], [`Self::score`] and
/// [`Self::settle`] in the order they are asked for, as the worker would; each scored
/// window comes back through [`Self::next_scored`], in order, and a helper wakes the
/// operator when its part is ready. Without helpers (none asked for, or none could be
/// started) the worker runs each job when it is asked for.
pub struct Scoring {
    /// The scorer, when the worker runs it.
    inline: Option<Box<WorkerScorer>>,
    /// Scored windows, when the worker runs the scorer.
    done: VecDeque<ScoredWindow>,
    shards: Vec<Shard>,
    /// Training rows a window's merged result keeps at most.
    lesson_capacity: usize,
    /// Windows asked for and not yet taken.
    in_flight: usize,
    /// Whether a taken window has not been settled since.
    unsettled: bool,
}

impl Scoring {
    /// Runs the scorers `make` builds on `threads` helper threads, named after
    /// `helper`'s name, which wake the operator through its activator; on the worker
    /// if `threads` is 0 or `helper` is `None`. `threads` is capped at
    /// [`MAX_SCORER_THREADS`]; if fewer threads start, fewer shards are used.
    pub fn new(
        make: impl Fn() -> WorkerScorer,
        threads: usize,
        helper: Option<(String, SyncActivator)>,
    ) -> Self {
        let first = make();
        let mut this = Self {
            lesson_capacity: first.lesson_capacity(),
            inline: Some(Box::new(first)),
            done: VecDeque::new(),
            shards: Vec::new(),
            in_flight: 0,
            unsettled: false,
        };
        let Some((name, activator)) = helper else {
            return this;
        };
        for i in 0..threads.min(MAX_SCORER_THREADS) {
            let scorer = match this.inline.take() {
                Some(first) => first,
                None => Box::new(make()),
            };
            let name = if i == 0 {
                name.clone()
            } else {
                format!("{name}.{i}")
            };
            match spawn(name, activator.clone(), scorer) {
                Ok(shard) => this.shards.push(shard),
                Err((e, scorer)) => {
                    if this.shards.is_empty() {
                        this.inline = Some(scorer);
                    }
                    tracing::warn!(
                        "no thread to score anomalies on ({e}); {} of {threads} started{}",
                        this.shards.len(),
                        if this.shards.is_empty() {
                            ", the worker scores them"
                        } else {
                            ""
                        }
                    );
                    break;
                }
            }
        }
        this
    }

    /// Learns a window's training rows from every worker.
    pub fn learn(&mut self, window: u64, lessons: Vec<Lesson>) {
        if let Some((last, rest)) = self.shards.split_last() {
            for shard in rest {
                send(shard, Job::Learn(window, lessons.clone()));
            }
            send(last, Job::Learn(window, lessons));
        } else {
            self.run_inline(Job::Learn(window, lessons));
        }
    }

    /// Scores a closed window's rows; the result comes back from [`Self::next_scored`].
    pub fn score(&mut self, window: u64, rows: Vec<ScoreInput>) {
        self.in_flight += 1;
        let n = self.shards.len();
        if n == 0 {
            self.run_inline(Job::Score(window, rows));
            return;
        }
        let mut parts: Vec<Vec<ScoreInput>> = (0..n).map(|_| Vec::new()).collect();
        for row in rows {
            parts[shard_of(row.node, n)].push(row);
        }
        // Every shard scores every window, with rows or without: each enters it.
        for (shard, part) in self.shards.iter().zip(parts) {
            send(shard, Job::Score(window, part));
        }
    }

    /// Adds the last scored window's values to their histories
    /// ([`WorkerScorer::settle`]).
    pub fn settle(&mut self) {
        self.unsettled = false;
        if self.shards.is_empty() {
            self.run_inline(Job::Settle);
        }
        for shard in &self.shards {
            send(shard, Job::Settle);
        }
    }

    /// The next scored window, in the order asked for, if it is ready.
    ///
    /// # Panics
    /// If a helper stopped (it panicked; its own message says why).
    pub fn next_scored(&mut self) -> Option<ScoredWindow> {
        let next = match self.done.pop_front() {
            Some(done) => Some(done),
            None if self.in_flight == 0 || self.shards.is_empty() => None,
            None => self.collect(),
        };
        if next.is_some() {
            self.in_flight -= 1;
            self.unsettled = true;
        }
        next
    }

    /// The shards' parts of the oldest window in flight, merged, once all are in.
    fn collect(&mut self) -> Option<ScoredWindow> {
        for shard in &mut self.shards {
            if shard.ready.is_none() {
                match shard.results.try_recv() {
                    Ok(part) => shard.ready = Some(part),
                    Err(TryRecvError::Empty) => return None,
                    Err(TryRecvError::Disconnected) => {
                        panic!("the anomaly scorer's thread stopped with windows still to score")
                    }
                }
            }
        }
        let parts = self.shards.iter_mut().filter_map(|s| s.ready.take());
        Some(merge(parts.collect(), self.lesson_capacity))
    }

    /// Whether a taken window has not been settled since.
    pub fn unsettled(&self) -> bool {
        self.unsettled
    }

    fn run_inline(&mut self, job: Job) {
        if let Some(scored) = self.inline.as_mut().and_then(|scorer| job.run(scorer)) {
            self.done.push_back(scored);
        }
    }
}

/// Starts a helper thread called `name` that runs `scorer`'s jobs and wakes the
/// operator through `activator` when a window is scored; gives the scorer back if no
/// thread starts.
fn spawn(
    name: String,
    activator: SyncActivator,
    scorer: Box<WorkerScorer>,
) -> Result<Shard, (std::io::Error, Box<WorkerScorer>)> {
    let (jobs, inbox) = channel::<Job>();
    let (outbox, results) = channel();
    // The scorer follows once the thread exists, so it stays here if none can start.
    let (give, take) = sync_channel::<Box<WorkerScorer>>(1);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let wake = WakeOnDrop(activator);
        let Ok(mut scorer) = take.recv() else {
            return;
        };
        for job in inbox {
            if let Some(scored) = job.run(&mut scorer) {
                if outbox.send(scored).is_err() {
                    return;
                }
                let _ = wake.0.activate();
            }
        }
    });
    let helper = match spawned {
        Ok(helper) => helper,
        Err(e) => return Err((e, scorer)),
    };
    match give.send(scorer) {
        Ok(()) => Ok(Shard {
            jobs,
            results,
            ready: None,
            helper,
        }),
        Err(back) => Err((
            std::io::Error::other("the scorer's thread stopped at once"),
            back.0,
        )),
    }
}

/// Hands `job` to `shard`'s helper.
///
/// # Panics
/// If the helper stopped (it panicked; its own message says why).
fn send(shard: &Shard, job: Job) {
    if shard.jobs.send(job).is_err() {
        panic!("the anomaly scorer's thread stopped");
    }
}

/// The shard of `n` that scores `node`: a mix of the id, so that the shards stay even
/// whatever share of the ids the worker holds (workers split nodes by id modulo
/// their count).
fn shard_of(node: u64, n: usize) -> usize {
    ((node.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n as u64) as usize
}

/// One window's result from the shards' parts: the scores and the training rows in
/// node order, as one scorer gives them (at most `capacity` rows, the last ones).
fn merge(mut parts: Vec<ScoredWindow>, capacity: usize) -> ScoredWindow {
    if parts.len() == 1
        && let Some(part) = parts.pop()
    {
        // One shard's part is in node order and within capacity already.
        return part;
    }
    let window = parts.first().map_or(0, |p| p.0);
    let mut scores = Vec::new();
    let mut lesson = Lesson {
        window,
        ..Lesson::default()
    };
    for (w, part_scores, part_lesson) in parts {
        debug_assert_eq!(w, window, "shards score windows in the same order");
        scores.extend(part_scores);
        lesson.nodes += part_lesson.nodes;
        lesson.rows.extend(part_lesson.rows);
    }
    scores.sort_by_key(|s| s.node);
    lesson.rows.sort_by_key(|r| r.0);
    let skip = lesson.rows.len().saturating_sub(capacity);
    lesson.rows.drain(..skip);
    (window, scores, lesson)
}

impl Drop for Scoring {
    fn drop(&mut self) {
        for shard in self.shards.drain(..) {
            drop(shard.jobs);
            // A panic there was reported when it happened.
            let _ = shard.helper.join();
        }
    }
}
