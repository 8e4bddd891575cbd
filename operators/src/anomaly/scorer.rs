//! One worker's anomaly scorer: per-node state and the model every worker holds
//! alike, fed one closed window at a time. The timely operator
//! ([`super::operator`]) routes each node to one worker, calls
//! [`WorkerScorer::score_window`] in time order, and hands every worker's training
//! rows to every worker's [`WorkerScorer::learn_window`].

use std::borrow::Cow;
use std::sync::Arc;

use meshflow_schemas::{AnomalyScore, Counters, TimestampNs};

use super::config::{AnomalyConfig, history_bytes};
use super::explain::top_k;
use super::health::{Health, Hysteresis};
use super::model::{ModelKind, squash};
use super::series::SeriesParams;
use super::shared::{Deviations, Lesson, SharedModel};
use super::threshold::{ThresholdLearner, ThresholdParams, ThresholdStrategy, narrow};
use super::vector::{FEATURES, ScoreInput};
use crate::hash::FxHashMap;
use crate::prefetch::prefetch;
use metrics::{SeriesSettings, SeriesState};

/// Windows of a node's own history before its deviations count (before that they
/// are 0): a median/MAD over fewer values means little.
pub const MIN_NODE_HISTORY: usize = 10;

/// Scores a node needs before its learned threshold is used (before that the
/// threshold is `min_threshold`).
pub const MIN_SCORE_HISTORY: usize = 10;

// `NodeState::read_bands` has a bit per feature.
const _: () = assert!(FEATURES.len() <= u32::BITS as usize);

/// Everything kept about one node, in one piece of memory but for the histories.
#[derive(Clone, Debug)]
struct NodeState {
    node: u64,
    /// End of the node's latest window.
    last_seen: TimestampNs,
    features: [ThresholdLearner; FEATURES.len()],
    scores: ThresholdLearner,
    health: Health,
    windows: u64,
    /// The latest scored window's values, not yet in the histories (see
    /// [`NodeState::settle`]).
    pending: Option<Pending>,
    /// The features whose band the latest scored window read (its top contributors),
    /// one bit each: the node's next window most likely reads the same ones, so
    /// [`NodeState::settle`] computes their bands ahead.
    read_bands: u32,
    /// The node's metric series, once a window of it carried no traffic.
    series: Option<Box<SeriesState>>,
}

impl NodeState {
    /// A node with no history, seen in the window ending `now`.
    fn new(node: u64, now: TimestampNs, params: ThresholdParams, history: usize) -> Self {
        Self {
            node,
            last_seen: now,
            features: std::array::from_fn(|_| ThresholdLearner::new(params, history)),
            scores: ThresholdLearner::new(params, history),
            health: Health::default(),
            windows: 0,
            pending: None,
            read_bands: 0,
            series: None,
        }
    }

    /// Adds the values of the node's latest scored window to their histories. With
    /// `read_ahead`, also reads what the node's next window reads first (statistics,
    /// the score band, the bands of the features that explained the last window),
    /// which a refresh due then computes now, from the same history: nothing joins it
    /// in between.
    fn settle(&mut self, read_ahead: bool) {
        let Some(values) = self.pending.take() else {
            return;
        };
        let features = self.features.iter_mut().zip(&values[..FEATURES.len()]);
        for (f, (learner, &v)) in features.enumerate() {
            if v.is_finite() {
                learner.push(f64::from(v));
                if read_ahead && learner.len() >= MIN_NODE_HISTORY {
                    learner.stats();
                    if self.read_bands & (1 << f) != 0 {
                        learner.bounds();
                    }
                }
            }
        }
        let score = values[FEATURES.len()];
        if score.is_finite() {
            self.scores.push(f64::from(score));
            if read_ahead && self.scores.len() >= MIN_SCORE_HISTORY {
                self.scores.bounds();
            }
        }
    }

    /// Whether the node's latest window ended longer than `span` (ns) before `now`,
    /// so it is to be forgotten.
    fn gone(&self, now: TimestampNs, span: i64) -> bool {
        now.0.saturating_sub(self.last_seen.0) > span
    }

    /// The learners, features first.
    fn learners(&self) -> impl Iterator<Item = &ThresholdLearner> {
        self.features.iter().chain([&self.scores])
    }
}

/// How many rows ahead [`WorkerScorer::score_window`] asks for a node's state, then
/// its histories, then their orders: each step follows pointers the previous one
/// loaded. A window's node states are far larger than the caches, and a row's work
/// waits mostly on them.
const PREFETCH_STATE: usize = 3;

/// The `strategy` column's text for a threshold strategy and a model
/// (`percentile/gmm`): a constant, so that rows share it without copies.
fn strategy_label(strategy: ThresholdStrategy, model: ModelKind) -> &'static str {
    use ModelKind::{Gmm, Kmeans, Pca, Robust};
    use ThresholdStrategy::{Iqr, Percentile, Sigma};
    match (strategy, model) {
        (Percentile, Gmm) => "percentile/gmm",
        (Percentile, Kmeans) => "percentile/kmeans",
        (Percentile, Pca) => "percentile/pca",
        (Percentile, Robust) => "percentile/robust",
        (Sigma, Gmm) => "sigma/gmm",
        (Sigma, Kmeans) => "sigma/kmeans",
        (Sigma, Pca) => "sigma/pca",
        (Sigma, Robust) => "sigma/robust",
        (Iqr, Gmm) => "iqr/gmm",
        (Iqr, Kmeans) => "iqr/kmeans",
        (Iqr, Pca) => "iqr/pca",
        (Iqr, Robust) => "iqr/robust",
    }
}

/// One worker's scorer.
pub struct WorkerScorer {
    cfg: AnomalyConfig,
    params: ThresholdParams,
    hysteresis: Hysteresis,
    /// The `strategy` column: threshold strategy / model.
    strategy: &'static str,
    /// Each node's index in `states`.
    index: FxHashMap<u64, usize>,
    states: Vec<NodeState>,
    /// The state index of each row of the window being scored.
    slots: Vec<usize>,
    /// The states of the last scored window's rows, whose values wait for
    /// [`WorkerScorer::settle`] (or their node's next row).
    upkeep: Vec<usize>,
    /// When absent nodes were last looked for (a window's end).
    last_sweep: Option<TimestampNs>,
    /// Values every history keeps at most (see [`AnomalyConfig::history_cap`]).
    history: usize,
    /// The cap last logged, to log again only when it has fallen by a tenth.
    logged_cap: usize,
    model: SharedModel,
    counters: Arc<Counters>,
}

impl WorkerScorer {
    /// A scorer with no history.
    pub fn new(cfg: AnomalyConfig, counters: Arc<Counters>) -> Self {
        Self {
            params: cfg.threshold_params(),
            hysteresis: cfg.hysteresis(),
            strategy: strategy_label(cfg.threshold_params().strategy, cfg.model),
            model: SharedModel::new(&cfg, counters.clone()),
            index: FxHashMap::default(),
            states: Vec::new(),
            slots: Vec::new(),
            upkeep: Vec::new(),
            last_sweep: None,
            history: cfg.history,
            logged_cap: cfg.history,
            counters,
            cfg,
        }
    }

    /// Training rows a window's [`Lesson`] holds at most.
    pub fn lesson_capacity(&self) -> usize {
        self.model.capacity()
    }

    /// Scores the rows of one closed window and learns from them at once: what a
    /// scorer that holds every node does (tests, benchmarks). Windows are numbered
    /// in the order they come.
    pub fn process_window(&mut self, rows: &mut [ScoreInput]) -> Vec<AnomalyScore> {
        let window = self.model.next_window();
        let (scores, lesson) = self.score_window(window, rows);
        self.model
            .learn(lesson.nodes, lesson.rows.into_iter().map(|r| r.1));
        scores
    }

    /// Every worker's training rows of `window` (see [`SharedModel::learn_window`]),
    /// once all have arrived, windows in time order.
    pub fn learn_window(&mut self, window: u64, lessons: Vec<Lesson>) {
        self.model.learn_window(window, lessons);
    }

    /// Scores the rows of one closed window, `window` in the dataflow's time (any
    /// order; processed by node), with the model as it is after every earlier
    /// window's training rows. Returns one [`AnomalyScore`] per node that is past its
    /// warm-up, in node order, and the window's training rows, which are not learned
    /// here. The window's values join their histories at [`Self::settle`], or when
    /// their node's next row is scored. Each scored row's label moves into its score.
    pub fn score_window(
        &mut self,
        window: u64,
        rows: &mut [ScoreInput],
    ) -> (Vec<AnomalyScore>, Lesson) {
        // Slots move when absent nodes are forgotten: a value still pending joins its
        // history when its node's next row comes (or the histories are cut).
        self.upkeep.clear();
        rows.sort_by_key(|r| r.node);
        self.counters.add_received(rows.len() as u64);
        self.model.enter(window);
        self.fit_histories();
        let mut lesson = Lesson {
            window,
            nodes: 0,
            rows: Vec::new(),
        };
        let mut out = Vec::with_capacity(rows.len());
        if let Some(now) = rows.iter().map(|r| r.window_end).max() {
            self.forget_absent(now);
        }
        self.slots.clear();
        let span = self.cfg.forget_after.as_nanos_i64();
        for row in rows.iter() {
            let fresh = self.states.len();
            let slot = *self.index.entry(row.node).or_insert(fresh);
            let new = || NodeState::new(row.node, row.window_end, self.params, self.history);
            if slot == fresh {
                self.states.push(new());
            } else if self.states[slot].gone(row.window_end, span) {
                // Back after longer than `forget_after`, whether or not a sweep has
                // dropped it yet: it starts again, the same on any worker.
                self.states[slot] = new();
            }
            self.states[slot].last_seen = row.window_end;
            self.slots.push(slot);
        }
        let trend_windows = self.cfg.trend_windows;
        let series = SeriesSettings {
            params: SeriesParams {
                history: self.history,
                ..SeriesParams::default()
            },
            threshold: self.params,
            hysteresis: &self.hysteresis,
            trend_windows,
            top_k: self.cfg.top_k,
        };
        for (i, row) in rows.iter_mut().enumerate() {
            prefetch_ahead(&self.states, &self.slots[i + 1..], trend_windows);
            let vector = row.vector;
            let slot = self.slots[i];
            let state = &mut self.states[slot];
            state.settle(false);
            state.windows += 1;
            if !row.metrics.is_empty() {
                // No traffic, only metric series: scored by their own detectors, and
                // no lesson for the model. Its traffic values (0 or missing) still
                // join their histories: a quiet window is part of the node's traffic.
                state.pending = Some(pending(&vector, None));
                self.upkeep.push(slot);
                let metrics = (state.series)
                    .get_or_insert_with(|| Box::new(SeriesState::new(row.window_end, &series)));
                match metrics.score(row, &mut state.health, &series) {
                    Some(score) => out.push(score),
                    None => self.counters.add_dropped(1),
                }
                lesson.nodes += metrics.weight();
                continue;
            }
            // The memory the node's histories take counts toward the history cap.
            lesson.nodes += state.series.as_ref().map_or(1, |s| s.weight());
            // A missing value (no RTT sample in the window) is no evidence either
            // way: its deviation is 0 and it is not added to the history.
            let deviations: [f64; FEATURES.len()] = std::array::from_fn(|f| {
                let learner = &mut state.features[f];
                match vector[f] {
                    Some(v) if learner.len() >= MIN_NODE_HISTORY => {
                        learner.deviation_with_floor(v, row.floors[f])
                    }
                    _ => 0.0,
                }
            });
            let x: Deviations = deviations.map(squash);
            let scored = match self.model.model() {
                Some(model) if state.windows > u64::from(self.cfg.warmup_windows) => {
                    Some(model.score(&x))
                }
                _ => None,
            };
            let Some(score) = scored else {
                if state.windows >= MIN_NODE_HISTORY as u64 {
                    lesson.rows.push((row.node, x));
                }
                state.pending = Some(pending(&vector, None));
                self.upkeep.push(slot);
                self.counters.add_dropped(1);
                continue;
            };
            // The explanation is read before the window's values join the histories;
            // a feature without a value in the window is not part of it.
            let explained: [f64; FEATURES.len()] =
                std::array::from_fn(|f| vector[f].map_or(f64::NAN, |_| deviations[f]));
            let top = top_k(&explained, self.cfg.top_k);
            state.read_bands = top.iter().fold(0, |bits, &f| bits | 1 << f);
            let top_thresholds: Vec<f64> = top
                .iter()
                .map(|&i| {
                    state.features[i].bounds().map_or(f64::NAN, |b| {
                        if deviations[i] >= 0.0 {
                            b.upper
                        } else {
                            b.lower
                        }
                    })
                })
                .collect();
            let learned = if state.scores.len() >= MIN_SCORE_HISTORY {
                state.scores.bounds().map_or(f64::NEG_INFINITY, |b| b.upper)
            } else {
                f64::NEG_INFINITY
            };
            let threshold = learned.max(self.cfg.min_threshold);
            let is_anomaly = score > threshold;
            let health = state.health.observe(is_anomaly, &self.hysteresis);
            // Only normal windows teach the score threshold and the model: a fault
            // must not raise the bar it is measured against. A lasting change of
            // behaviour still becomes normal, through the feature histories.
            let learned_score = (!is_anomaly).then_some(score);
            if !is_anomaly {
                lesson.rows.push((row.node, x));
            }
            // Trends include this window's values, as if they had joined already.
            out.push(AnomalyScore {
                window_end: row.window_end,
                node: row.node,
                node_label: std::mem::take(&mut row.node_label),
                score,
                threshold,
                is_anomaly,
                state: health,
                strategy: Cow::Borrowed(self.strategy),
                score_trend: state.scores.trend_with(trend_windows, learned_score),
                top_features: top.iter().map(|&i| Cow::Borrowed(FEATURES[i].0)).collect(),
                top_deviations: top.iter().map(|&i| deviations[i]).collect(),
                top_values: top.iter().map(|&i| vector[i].unwrap_or(f64::NAN)).collect(),
                top_thresholds,
                top_trends: top
                    .iter()
                    .map(|&i| state.features[i].trend_with(trend_windows, vector[i]))
                    .collect(),
            });
            state.pending = Some(pending(&vector, learned_score));
            self.upkeep.push(slot);
        }
        self.counters.add_sent(out.len() as u64);
        let skip = lesson.rows.len().saturating_sub(self.model.capacity());
        lesson.rows.drain(..skip);
        (out, lesson)
    }

    /// Adds the last scored window's values to their histories, and reads what the
    /// next window reads of them (statistics, the score band) while nothing else
    /// waits: a value joins its history, and the learner refreshes, exactly as if
    /// done in [`Self::score_window`], only later. The operator calls this once the
    /// window's scores are out, so the upkeep is not between a window's close and its
    /// scores; otherwise each node's values join when its next row is scored.
    pub fn settle(&mut self) {
        for (i, &slot) in self.upkeep.iter().enumerate() {
            // No trends are read here: one newest value is enough.
            prefetch_ahead(&self.states, &self.upkeep[i + 1..], 1);
            self.states[slot].settle(true);
        }
        self.upkeep.clear();
    }

    /// Whether a scored window's values still wait for [`Self::settle`].
    pub fn unsettled(&self) -> bool {
        !self.upkeep.is_empty()
    }

    /// Cuts every history to what `history_memory` allows for the most nodes any
    /// window learned so far held. The cap only falls, and falls alike on every
    /// worker (each learns every window's node count), so scores do not depend on
    /// the worker count.
    fn fit_histories(&mut self) {
        let cap = self.cfg.history_cap(self.model.max_nodes());
        if cap >= self.history {
            return;
        }
        self.history = cap;
        for state in &mut self.states {
            // The pending values join before the cut, as they would have.
            state.settle(false);
            state.features.iter_mut().for_each(|l| l.set_capacity(cap));
            state.scores.set_capacity(cap);
            if let Some(series) = &mut state.series {
                series.set_capacity(cap);
            }
        }
        if cap * 10 <= self.logged_cap * 9 {
            self.logged_cap = cap;
            let (memory, nodes) = (self.cfg.history_memory, self.model.max_nodes());
            if cap == self.cfg.history_floor() {
                tracing::warn!(
                    "anomaly histories cut to their floor of {cap} values: anomaly.history_memory = {memory} does not hold even that for {nodes} nodes, which need about {} MB",
                    history_bytes(cap as u64, nodes) / 1_000_000
                );
            } else {
                tracing::warn!(
                    "anomaly histories cut to {cap} values (anomaly.history = {}) to fit anomaly.history_memory = {memory} over {nodes} nodes; raise it to keep more",
                    self.cfg.history
                );
            }
        }
    }

    /// Values every history keeps at most now.
    pub fn history_cap(&self) -> usize {
        self.history
    }

    /// Drops the state of every node whose latest window ended longer than
    /// `forget_after` before `now`. Looks at most once per quarter of that span of
    /// event time, so a window rarely pays for the scan; a node that returns is
    /// reset when its row arrives either way (see [`Self::score_window`]).
    fn forget_absent(&mut self, now: TimestampNs) {
        let span = self.cfg.forget_after.as_nanos_i64();
        if self
            .last_sweep
            .is_some_and(|t| now.0.saturating_sub(t.0) < span / 4)
        {
            return;
        }
        self.last_sweep = Some(now);
        let mut i = 0;
        while i < self.states.len() {
            if self.states[i].gone(now, span) {
                let gone = self.states.swap_remove(i);
                self.index.remove(&gone.node);
                if let Some(moved) = self.states.get(i) {
                    self.index.insert(moved.node, i);
                }
            } else {
                i += 1;
            }
        }
        if self.states.len() < self.states.capacity() / 4 {
            self.states.shrink_to_fit();
        }
    }

    /// Nodes whose state is kept.
    pub fn nodes_kept(&self) -> usize {
        self.states.len()
    }

    /// Whether a model has been fitted and swapped in.
    pub fn has_model(&self) -> bool {
        self.model.model().is_some()
    }

    /// Whether a fit is running, not yet swapped in.
    pub fn fitting(&self) -> bool {
        self.model.fitting()
    }
}

/// A scored row's values as they join its node's histories: the features', then the
/// score; a NaN joins nothing. A learner keeps its values as `f32`, so nothing is lost.
type Pending = [f32; FEATURES.len() + 1];

/// The [`Pending`] values of a row: its features, and its score when that is learned.
fn pending(vector: &[Option<f64>; FEATURES.len()], score: Option<f64>) -> Pending {
    let kept = |v: Option<f64>| v.filter(|v| v.is_finite()).map_or(f32::NAN, narrow);
    std::array::from_fn(|i| kept(vector.get(i).copied().unwrap_or(score)))
}

/// Asks for the memory of the rows to come (`ahead`: their state indices), a stage
/// per row: the state of the row [`PREFETCH_STATE`] ahead, the histories of the one
/// before it (the newest values, which trends read, and the oldest, which a pending
/// value pushes out), and the histories' orders of the next row (where its pending
/// values go).
fn prefetch_ahead(states: &[NodeState], ahead: &[usize], trend: usize) {
    if let Some(&s) = ahead.get(PREFETCH_STATE - 1) {
        prefetch(&states[s]);
    }
    if let Some(&s) = ahead.get(PREFETCH_STATE - 2) {
        states[s].learners().for_each(|l| l.prefetch_history(trend));
    }
    if let Some(&s) = ahead.first() {
        prefetch_orders(&states[s]);
    }
}

/// Asks for the order blocks a state's pending values go into.
fn prefetch_orders(state: &NodeState) {
    let Some(values) = &state.pending else {
        return;
    };
    for (learner, &v) in state.learners().zip(values) {
        if v.is_finite() {
            learner.prefetch_order(Some(f64::from(v)));
        }
    }
}

mod metrics;
#[cfg(test)]
mod tests;
