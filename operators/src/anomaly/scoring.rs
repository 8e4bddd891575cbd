//! The scorer on a helper thread of its own, or on the worker where no core is spare.

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

/// One worker's [`WorkerScorer`], run on a helper thread when one is asked for, so
/// that scoring a window and the upkeep of its histories overlap the worker's feature
/// work on the next window instead of following it.
///
/// The helper carries out [`Self::learn`], [`Self::score`] and [`Self::settle`] in
/// the order they are asked for, as the worker would; each scored window comes back
/// through [`Self::next_scored`], in order, and the helper wakes the operator when one
/// is ready. The scores are therefore exactly what they are on the worker. Without a
/// helper (none asked for, or none could be started) the worker runs each job when
/// it is asked for.
pub struct Scoring {
    /// The scorer, when the worker runs it.
    inline: Option<Box<WorkerScorer>>,
    /// Scored windows, when the worker runs the scorer.
    done: VecDeque<ScoredWindow>,
    jobs: Option<Sender<Job>>,
    results: Receiver<ScoredWindow>,
    helper: Option<JoinHandle<()>>,
    /// Windows asked for and not yet taken.
    in_flight: usize,
    /// Whether a taken window has not been settled since.
    unsettled: bool,
}

impl Scoring {
    /// Runs `scorer` on a helper thread called by the given name, which wakes the
    /// operator through the given activator; on the worker if `helper` is `None`.
    pub fn new(scorer: WorkerScorer, helper: Option<(String, SyncActivator)>) -> Self {
        let (jobs, inbox) = channel::<Job>();
        let (outbox, results) = channel();
        let mut this = Self {
            inline: Some(Box::new(scorer)),
            done: VecDeque::new(),
            jobs: None,
            results,
            helper: None,
            in_flight: 0,
            unsettled: false,
        };
        let Some((name, activator)) = helper else {
            return this;
        };
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
        match spawned {
            Ok(handle) => {
                if let Some(scorer) = this.inline.take()
                    && let Err(back) = give.send(scorer)
                {
                    this.inline = Some(back.0);
                    return this;
                }
                this.jobs = Some(jobs);
                this.helper = Some(handle);
            }
            Err(e) => {
                tracing::warn!("no thread to score anomalies on ({e}); the worker scores them");
            }
        }
        this
    }

    /// Learns a window's training rows from every worker.
    pub fn learn(&mut self, window: u64, lessons: Vec<Lesson>) {
        self.run(Job::Learn(window, lessons));
    }

    /// Scores a closed window's rows; the result comes back from [`Self::next_scored`].
    pub fn score(&mut self, window: u64, rows: Vec<ScoreInput>) {
        self.in_flight += 1;
        self.run(Job::Score(window, rows));
    }

    /// Adds the last scored window's values to their histories
    /// ([`WorkerScorer::settle`]).
    pub fn settle(&mut self) {
        self.unsettled = false;
        self.run(Job::Settle);
    }

    /// The next scored window, in the order asked for, if it is ready.
    ///
    /// # Panics
    /// If the helper stopped (it panicked; its own message says why).
    pub fn next_scored(&mut self) -> Option<ScoredWindow> {
        let next = match self.done.pop_front() {
            Some(done) => Some(done),
            None if self.in_flight == 0 => None,
            None => match self.results.try_recv() {
                Ok(done) => Some(done),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    panic!("the anomaly scorer's thread stopped with windows still to score")
                }
            },
        };
        if next.is_some() {
            self.in_flight -= 1;
            self.unsettled = true;
        }
        next
    }

    /// Whether a taken window has not been settled since.
    pub fn unsettled(&self) -> bool {
        self.unsettled
    }

    fn run(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs {
            match jobs.send(job) {
                Ok(()) => return,
                Err(_) => panic!("the anomaly scorer's thread stopped"),
            }
        }
        if let Some(scored) = self.inline.as_mut().and_then(|scorer| job.run(scorer)) {
            self.done.push_back(scored);
        }
    }
}

impl Drop for Scoring {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(helper) = self.helper.take() {
            // A panic there was reported when it happened.
            let _ = helper.join();
        }
    }
}
