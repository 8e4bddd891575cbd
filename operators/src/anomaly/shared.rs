//! The model every worker holds alike: its training rows, its fitting schedule and
//! the fitted model.
//!
//! Each worker scores its own nodes, but the model they are scored with must not
//! depend on which nodes a worker owns, or the output would change with the worker
//! count. So every worker sends each window's training rows ([`Lesson`]) to every
//! worker ([`super::operator`]), and each feeds them, window by window in time order
//! and node by node within a window, into its own [`SharedModel`]. The schedule
//! counts windows that any worker scored, and a fit is a deterministic function of
//! its rows, so all workers fit, and swap in, the same models at the same windows:
//! the ones a single worker fits over all the nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};

use meshflow_schemas::Counters;
use serde::{Deserialize, Serialize};

use super::config::AnomalyConfig;
use super::model::{MIN_TRAINING_ROWS, Model, ModelError, ModelKind};
use super::ring::RingBuffer;
use super::vector::FEATURES;

/// A refit is due once `refit_every` windows have passed and at least one training
/// row in this many is new since the last fit.
const REFIT_NEW_SHARE: usize = 4;

/// Whether this process has warned of a failed fit (every worker fits the same rows).
static FIT_FAILURE_SAID: AtomicBool = AtomicBool::new(false);

/// A node's squashed standardised deviations: what the model is fitted on and scores.
pub type Deviations = [f64; FEATURES.len()];

/// One worker's training rows of one window: `(node, deviations)`, in node order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    /// The window (the dataflow time it was scored at).
    pub window: u64,
    /// Nodes the worker scored in the window (whether or not they left a row here),
    /// counted by the history memory they keep: a node scored from many metric
    /// series counts as several (see `scorer::metrics::SeriesState::weight`).
    pub nodes: u64,
    /// The rows, in node order, at most the training buffer's capacity (only the
    /// last that many of a window can survive in the buffer).
    pub rows: Vec<(u64, Deviations)>,
}

/// A fit running on a background thread, swapped in at window `swap_at`.
struct PendingFit {
    result: Receiver<Result<Model, ModelError>>,
    swap_at: u64,
}

/// The training rows, the fitting schedule and the fitted model.
pub struct SharedModel {
    kind: ModelKind,
    components: usize,
    warmup_windows: u64,
    refit_every: u64,
    training: RingBuffer<Deviations>,
    model: Option<Model>,
    pending: Option<PendingFit>,
    /// Windows entered so far.
    windows: u64,
    /// The latest window entered.
    latest: Option<u64>,
    /// The window count when the last fit started.
    last_fit: Option<u64>,
    /// Training rows learned since the last fit started.
    new_rows: usize,
    /// The most nodes any window learned so far held, over all workers.
    max_nodes: u64,
    counters: Arc<Counters>,
}

impl SharedModel {
    /// No model and no training rows yet; fit and refit as `cfg` says. A failed fit
    /// is counted as an error in `counters`: once per worker, since every worker
    /// fits its own copy.
    pub fn new(cfg: &AnomalyConfig, counters: Arc<Counters>) -> Self {
        Self {
            kind: cfg.model,
            components: cfg.components,
            warmup_windows: u64::from(cfg.warmup_windows),
            refit_every: u64::from(cfg.refit_every),
            training: RingBuffer::new(cfg.training_rows),
            model: None,
            pending: None,
            windows: 0,
            latest: None,
            last_fit: None,
            new_rows: 0,
            max_nodes: 0,
            counters,
        }
    }

    /// The model to score with, once one has been fitted and swapped in.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }

    /// Whether a fit is running, not yet swapped in.
    pub fn fitting(&self) -> bool {
        self.pending.is_some()
    }

    /// Most training rows one window can leave in the buffer.
    pub fn capacity(&self) -> usize {
        self.training.capacity()
    }

    /// The window after the latest one entered (for a scorer that numbers its own
    /// windows).
    pub fn next_window(&self) -> u64 {
        self.latest.map_or(0, |w| w + 1)
    }

    /// Enters `window`, which is scored next or whose training rows come next: counts
    /// it, starts a fit when one is due, and swaps in a finished one when its window
    /// has come. A window already entered, or one before it, is a no-op, so every
    /// worker may enter each window whether it scored it or only learns from it.
    ///
    /// A fit is swapped in at a set window, waiting only if it has not finished by
    /// then, so results depend only on the input. A refit started at window `w` is
    /// swapped in at `w + refit_every / 2`. The first fit is swapped in at the next
    /// window when it starts at the end of the warm-up (no node can be scored before
    /// the next window, and waiting for the fit at once stalled a live window's close
    /// by 300 ms), and at once if it starts later (nodes are waiting for it).
    pub fn enter(&mut self, window: u64) {
        if self.latest.is_some_and(|w| w >= window) {
            return;
        }
        self.latest = Some(window);
        self.windows += 1;
        let due = match self.last_fit {
            None => self.windows >= self.warmup_windows && self.training.len() >= MIN_TRAINING_ROWS,
            // A refit on rows mostly seen before changes little: on a sparse trace
            // (a few nodes a window) refits every `refit_every` windows were most of
            // the replay's time (benchmarks/README.md, "A sparse real trace").
            Some(last) => {
                self.windows - last >= self.refit_every
                    && self.new_rows * REFIT_NEW_SHARE >= self.training.len()
            }
        };
        if due && self.pending.is_none() {
            self.start_fit();
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| self.windows >= p.swap_at)
        {
            let pending = self.pending.take().expect("checked above");
            match pending.result.recv() {
                Ok(Ok(model)) => self.model = Some(model),
                // A failed fit keeps the previous model; the error is counted, and
                // the first one in this process is said once (every worker fits).
                Ok(Err(e)) => {
                    self.counters.add_errored(1);
                    if !FIT_FAILURE_SAID.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "the anomaly model could not be fitted ({e}); {}",
                            if self.model.is_some() {
                                "the previous model stays in use"
                            } else {
                                "no window is scored until a later fit succeeds"
                            }
                        );
                    }
                }
                Err(_) => self.counters.add_errored(1),
            }
        }
    }

    /// Starts a fit on the training rows on a background thread.
    fn start_fit(&mut self) {
        let rows: Vec<Vec<f64>> = self.training.iter().map(|r| r.to_vec()).collect();
        let (kind, components) = (self.kind, self.components);
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("meshflow-anomaly-fit".into())
            .spawn(move || {
                // The receiver may be gone if the job ended: nothing to do then.
                let _ = tx.send(Model::fit(kind, components, &rows));
            });
        match spawned {
            Ok(_) => {
                let delay = if self.model.is_none() {
                    u64::from(self.windows <= self.warmup_windows)
                } else {
                    (self.refit_every / 2).max(1)
                };
                self.pending = Some(PendingFit {
                    result: rx,
                    swap_at: self.windows + delay,
                });
            }
            Err(_) => self.counters.add_errored(1),
        }
        self.last_fit = Some(self.windows);
        self.new_rows = 0;
    }

    /// Adds the training rows of the window entered last, in order, and the number
    /// of nodes it held.
    pub fn learn(&mut self, nodes: u64, rows: impl IntoIterator<Item = Deviations>) {
        self.max_nodes = self.max_nodes.max(nodes);
        for row in rows {
            self.training.push(row);
            self.new_rows += 1;
        }
    }

    /// The most nodes any window learned so far held (0 before any): what the
    /// histories are sized for, the same on every worker.
    pub fn max_nodes(&self) -> u64 {
        self.max_nodes
    }

    /// Enters `window` and adds every worker's training rows of it, merged into node
    /// order: what one worker holding every node would have added.
    pub fn learn_window(&mut self, window: u64, lessons: Vec<Lesson>) {
        self.enter(window);
        let nodes = lessons.iter().map(|l| l.nodes).sum();
        let mut rows: Vec<(u64, Deviations)> = lessons.into_iter().flat_map(|l| l.rows).collect();
        // Each lesson is sorted already: the stable sort merges the runs.
        rows.sort_by_key(|r| r.0);
        self.learn(nodes, rows.into_iter().map(|r| r.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Varied rows, so that a fit succeeds.
    fn rows(n: usize, salt: usize) -> Vec<Deviations> {
        (0..n)
            .map(|i| std::array::from_fn(|f| ((i * 7 + f * 3 + salt) % 11) as f64 / 10.0))
            .collect()
    }

    #[test]
    fn a_refit_waits_until_a_quarter_of_the_training_rows_are_new() {
        let cfg = AnomalyConfig {
            warmup_windows: 2,
            refit_every: 2,
            training_rows: 100,
            ..AnomalyConfig::default()
        };
        let mut model = SharedModel::new(&cfg, Counters::shared());
        let mut window = 0u64;
        // The windows at which a fit starts, with `n` training rows a window.
        let mut run = |model: &mut SharedModel, windows: usize, n: usize| {
            let mut starts = Vec::new();
            for _ in 0..windows {
                let before = model.last_fit;
                model.enter(window);
                model.learn(n as u64, rows(n, window as usize));
                if model.last_fit != before {
                    starts.push(window);
                }
                window += 1;
            }
            starts
        };
        // Busy windows: a fit every refit_every windows.
        let busy = run(&mut model, 12, 50);
        assert!(busy.len() >= 5, "{busy:?}");
        assert!(busy.windows(2).all(|w| w[1] - w[0] == 2), "{busy:?}");
        // A row a window: a refit once 25 of the 100 rows are new, not every 2.
        let sparse = run(&mut model, 100, 1);
        assert!(sparse.len() >= 3, "{sparse:?}");
        assert!(sparse.windows(2).all(|w| w[1] - w[0] == 25), "{sparse:?}");
    }
}
