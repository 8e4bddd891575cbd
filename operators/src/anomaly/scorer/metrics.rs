//! The scorer's path for a window that carries only metric series (no flows, no
//! TCP events): the model has nothing to read there, so each series is scored by its
//! own [`SeriesDetector`] and the window by its series furthest out.

use std::borrow::Cow;
use std::sync::Arc;

use meshflow_schemas::{AnomalyScore, TimestampNs};

use super::super::config::HISTORIES_PER_NODE;
use super::super::explain::top_k;
use super::super::health::{Health, Hysteresis};
use super::super::series::{Exceedance, SeriesDetector, SeriesParams, SeriesView};
use super::super::threshold::{ThresholdLearner, ThresholdParams, Trend};
use super::super::vector::ScoreInput;

/// Histories one series keeps: two learners for each of its three views, and the
/// seasonal view's last period of values.
const SERIES_HISTORIES: u64 = 7;

/// The `strategy` column of a window scored from its metric series.
pub const SERIES_STRATEGY: &str = "percentile/series";

/// A node's metric series and what was learned of them.
#[derive(Clone, Debug)]
pub(super) struct SeriesState {
    /// End of the node's last window with metrics.
    last_end: TimestampNs,
    /// The node's slide between two windows with metrics, in seconds, once seen:
    /// the series' sampling interval, which sets the seasonal view's period.
    step_secs: Option<f64>,
    /// One detector per series, sorted by name.
    detectors: Vec<(Arc<str>, SeriesDetector)>,
    /// The window strengths that were not flagged, for the score trend.
    strengths: ThresholdLearner,
}

/// What scoring a window from its series needs of the scorer's settings.
pub(super) struct SeriesSettings<'a> {
    /// Detector settings (their history: the scorer's current cap).
    pub params: SeriesParams,
    /// Threshold settings of the strength history.
    pub threshold: ThresholdParams,
    /// The health state machine's settings.
    pub hysteresis: &'a Hysteresis,
    /// Windows a trend reads.
    pub trend_windows: usize,
    /// Series an explanation names at most.
    pub top_k: usize,
}

impl SeriesState {
    /// A node's series, first seen in the window ending `now`.
    pub(super) fn new(now: TimestampNs, s: &SeriesSettings<'_>) -> Self {
        Self {
            last_end: now,
            step_secs: None,
            detectors: Vec::new(),
            strengths: ThresholdLearner::new(s.threshold, s.params.history),
        }
    }

    /// The node's share of the history memory, in nodes scored by the model
    /// ([`HISTORIES_PER_NODE`] histories each): its feature histories' share, 1, and
    /// once it has series, theirs and its strengths', rounded up.
    pub(super) fn weight(&self) -> u64 {
        match self.detectors.len() as u64 {
            0 => 1,
            series => 1 + (1 + SERIES_HISTORIES * series).div_ceil(HISTORIES_PER_NODE),
        }
    }

    /// The trend of the newest `window` values of the series `name`.
    fn trend_of(&self, name: &Arc<str>, window: usize) -> Trend {
        let i = (self.detectors.binary_search_by(|(n, _)| n.cmp(name)))
            .expect("a series seen this window has a detector");
        self.detectors[i].1.trend_with(window, None)
    }

    /// Keeps at most `capacity` values in every history from now on.
    pub(super) fn set_capacity(&mut self, capacity: usize) {
        self.detectors
            .iter_mut()
            .for_each(|(_, d)| d.set_capacity(capacity));
        self.strengths.set_capacity(capacity);
    }

    /// Scores `row`'s metric series and learns them. Returns the window's score once
    /// a series is past its warm-up, `None` before (and for the node's first window
    /// with metrics, which only fixes its sampling interval).
    pub(super) fn score(
        &mut self,
        row: &mut ScoreInput,
        health: &mut Health,
        s: &SeriesSettings<'_>,
    ) -> Option<AnomalyScore> {
        let gap = (row.window_end.0 - self.last_end.0) as f64 / 1e9;
        self.last_end = row.window_end;
        if self.step_secs.is_none() {
            if gap <= 0.0 {
                return None;
            }
            self.step_secs = Some(gap);
        }
        // Each series seen past its warm-up: its detector's name and how far out it is.
        let mut seen = Vec::with_capacity(row.metrics.len());
        for (name, value) in &row.metrics {
            let i = match self.detectors.binary_search_by(|(n, _)| n.cmp(name)) {
                Ok(i) => i,
                Err(i) => {
                    let detector = SeriesDetector::new(&s.params, self.step_secs);
                    self.detectors.insert(i, (name.clone(), detector));
                    i
                }
            };
            if let Some(e) = self.detectors[i].1.observe(*value) {
                seen.push((name, e));
            }
        }
        if seen.is_empty() {
            return None;
        }
        let exceedances: Vec<f64> = seen.iter().map(|(_, e)| e.exceedance).collect();
        // Trends only of the series the explanation names.
        let top: Vec<(&Arc<str>, Exceedance, Trend)> = (top_k(&exceedances, s.top_k).iter())
            .map(|&t| {
                let (name, e) = seen[t];
                (name, e, self.trend_of(name, s.trend_windows))
            })
            .collect();
        let score = exceedances.iter().fold(0.0, |m: f64, e| m.max(e.abs()));
        let is_anomaly = score > s.params.k;
        let learned = (!is_anomaly).then_some(score);
        let score_trend = self.strengths.trend_with(s.trend_windows, learned);
        if let Some(v) = learned {
            self.strengths.push(v);
        }
        let label = |name: &Arc<str>, view| match view {
            SeriesView::Value => name.to_string(),
            SeriesView::Mean => format!("{name} (mean of {})", s.params.mean_len),
            SeriesView::Seasonal if s.params.period_secs == 86_400 => {
                format!("{name} (change over a day)")
            }
            SeriesView::Seasonal => format!("{name} (change over {} s)", s.params.period_secs),
        };
        Some(AnomalyScore {
            window_end: row.window_end,
            node: row.node,
            node_label: std::mem::take(&mut row.node_label),
            score,
            threshold: s.params.k,
            is_anomaly,
            state: health.observe(is_anomaly, s.hysteresis),
            strategy: Cow::Borrowed(SERIES_STRATEGY),
            score_trend,
            top_features: top
                .iter()
                .map(|t| Cow::Owned(label(t.0, t.1.view)))
                .collect(),
            top_deviations: top.iter().map(|t| t.1.exceedance).collect(),
            top_values: top.iter().map(|t| t.1.value).collect(),
            top_thresholds: top.iter().map(|t| t.1.threshold).collect(),
            top_trends: top.iter().map(|t| t.2).collect(),
        })
    }
}
