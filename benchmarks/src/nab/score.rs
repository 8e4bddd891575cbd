//! NAB's scoring: anomaly windows, the scaled sigmoid, profile costs, and the
//! normalisation that maps "flag nothing" to 0 and a perfect detector to 100.
//!
//! Written from NAB's documentation and `nab/sweeper.py` semantics: every row of a
//! series is either probationary (the first `min(⌊0.15·n⌋, 750)` rows, never scored),
//! inside a labelled window, or outside. A window scores `−fn_weight` unless one of
//! its rows is flagged; then it scores the scaled sigmoid of its earliest flagged
//! row's position, weighted so the window's first row earns `tp_weight`. Every
//! flagged row outside windows costs `fp_weight × σ(position past the previous
//! window)` (−`fp_weight` before the first window).

/// The weights of one NAB profile (`config/profiles.json`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostMatrix {
    /// Weight of a detected window.
    pub tp_weight: f64,
    /// Weight of a false positive.
    pub fp_weight: f64,
    /// Weight of a missed window.
    pub fn_weight: f64,
}

/// NAB's scaled sigmoid: `2σ(−5x) − 1`, and −1 beyond `x > 3`.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Rows NAB leaves unscored at the start of a series of `n` rows.
pub fn probationary_length(n: usize) -> f64 {
    (0.15 * n as f64).floor().min(0.15 * 5000.0)
}

/// What a row counts as when flagged.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Row {
    /// Unscored.
    Probationary,
    /// Inside window `index`; a detection here is worth `weight`.
    Window { index: usize, weight: f64 },
    /// Outside every window; a detection costs `weight` (negative).
    Outside { weight: f64 },
}

/// One series prepared for scoring under one profile.
#[derive(Clone, Debug)]
pub struct ScoredSeries {
    rows: Vec<Row>,
    /// Windows with at least one scorable row (the others are entirely probationary).
    counted: Vec<bool>,
    fn_weight: f64,
}

/// Counts and score of one series at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SeriesScore {
    /// Raw NAB score.
    pub score: f64,
    /// Flagged scorable rows inside windows.
    pub tp: u64,
    /// Flagged scorable rows outside windows.
    pub fp: u64,
    /// Unflagged scorable rows inside windows.
    pub fn_: u64,
    /// Unflagged scorable rows outside windows.
    pub tn: u64,
}

impl ScoredSeries {
    /// Prepares a series of `n` rows with `windows` as inclusive row-index ranges,
    /// in time order and disjoint.
    pub fn new(n: usize, windows: &[(usize, usize)], cost: &CostMatrix) -> Self {
        let max_tp = scaled_sigmoid(-1.0);
        let probation = probationary_length(n);
        let mut rows = Vec::with_capacity(n);
        let mut counted = vec![false; windows.len()];
        let mut next = 0;
        let mut current: Option<(usize, usize, f64)> = None;
        let mut previous: Option<(usize, f64)> = None;
        for i in 0..n {
            if current.is_none() && next < windows.len() && i == windows[next].0 {
                let (left, right) = windows[next];
                current = Some((next, right, (right - left + 1) as f64));
                next += 1;
            }
            let row = match current {
                Some((index, right, width)) => {
                    let position = -((right as f64 - i as f64 + 1.0) / width);
                    Row::Window {
                        index,
                        weight: scaled_sigmoid(position) * cost.tp_weight / max_tp,
                    }
                }
                None => {
                    let unweighted = match previous {
                        None => -1.0,
                        Some((right, width)) => {
                            scaled_sigmoid((i - right) as f64 / (width - 1.0).max(1.0))
                        }
                    };
                    Row::Outside {
                        weight: unweighted * cost.fp_weight,
                    }
                }
            };
            if (i as f64) < probation {
                rows.push(Row::Probationary);
            } else {
                if let Row::Window { index, .. } = row {
                    counted[index] = true;
                }
                rows.push(row);
            }
            if let Some((_, right, width)) = current
                && i == right
            {
                previous = Some((i, width));
                current = None;
            }
        }
        Self {
            rows,
            counted,
            fn_weight: cost.fn_weight,
        }
    }

    /// Rows in the series.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the series has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Windows that are scored (not entirely probationary).
    pub fn counted_windows(&self) -> usize {
        self.counted.iter().filter(|c| **c).count()
    }

    /// The score when the rows where `flagged(i)` holds are detections.
    pub fn score(&self, flagged: impl Fn(usize) -> bool) -> SeriesScore {
        let mut windows: Vec<f64> = self
            .counted
            .iter()
            .map(|&c| if c { -self.fn_weight } else { 0.0 })
            .collect();
        let mut out = SeriesScore::default();
        let mut fp_total = 0.0;
        for (i, row) in self.rows.iter().enumerate() {
            let hit = flagged(i);
            match *row {
                Row::Probationary => {}
                Row::Window { index, weight } => {
                    if hit {
                        out.tp += 1;
                        windows[index] = windows[index].max(weight);
                    } else {
                        out.fn_ += 1;
                    }
                }
                Row::Outside { weight } => {
                    if hit {
                        out.fp += 1;
                        fp_total += weight;
                    } else {
                        out.tn += 1;
                    }
                }
            }
        }
        out.score = windows.iter().sum::<f64>() + fp_total;
        out
    }
}

/// The raw score of flagging nothing over these series: `−fn_weight` per counted window.
pub fn null_score(series: &[ScoredSeries]) -> f64 {
    series.iter().map(|s| s.score(|_| false).score).sum()
}

/// NAB's normalisation: `100 × (raw − null) / (perfect − null)`, where `perfect` is
/// `tp_weight` times the number of labelled windows.
pub fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    100.0 * (raw - null) / (perfect - null)
}

/// The corpus-wide threshold maximising the raw score of `scores` (one anomaly score
/// per row and series, a row being flagged when its score ≥ the threshold), found by
/// an exact sweep over every distinct score from the highest down, as NAB's
/// `calcScoreByThreshold` does. Returns `(threshold, raw score)`; a threshold above
/// every score (nothing flagged) is `f64::INFINITY`.
pub fn best_threshold(series: &[ScoredSeries], scores: &[Vec<f64>]) -> (f64, f64) {
    let mut points: Vec<(f64, usize, usize)> = Vec::new();
    for (s, (prepared, values)) in series.iter().zip(scores).enumerate() {
        for (i, row) in prepared.rows.iter().enumerate() {
            if !matches!(row, Row::Probationary) {
                points.push((values[i], s, i));
            }
        }
    }
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut window_value: Vec<Vec<f64>> = series
        .iter()
        .map(|p| {
            p.counted
                .iter()
                .map(|&c| if c { -p.fn_weight } else { 0.0 })
                .collect()
        })
        .collect();
    let mut current: f64 = window_value.iter().flatten().sum();
    let mut best = (f64::INFINITY, current);
    let mut k = 0;
    while k < points.len() {
        let threshold = points[k].0;
        while k < points.len() && points[k].0 == threshold {
            let (_, s, i) = points[k];
            match series[s].rows[i] {
                Row::Window { index, weight } => {
                    let old = window_value[s][index];
                    if weight > old {
                        window_value[s][index] = weight;
                        current += weight - old;
                    }
                }
                Row::Outside { weight } => current += weight,
                Row::Probationary => {}
            }
            k += 1;
        }
        if current > best.1 {
            best = (threshold, current);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: CostMatrix = CostMatrix {
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 1.0,
    };

    #[test]
    fn sigmoid_edges() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.986_614_298_151_430_3).abs() < 1e-12);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn probation_is_15_percent_capped_at_750() {
        assert_eq!(probationary_length(1000), 150.0);
        assert_eq!(probationary_length(22_695), 750.0);
    }

    #[test]
    fn detections_in_and_out_of_a_window() {
        // 1000 rows: probation 150; one window over rows 500..=599.
        let s = ScoredSeries::new(1000, &[(500, 599)], &STANDARD);
        assert_eq!(s.score(|_| false).score, -1.0);
        // Earliest possible detection earns exactly tp_weight.
        assert!((s.score(|i| i == 500).score - 1.0).abs() < 1e-12);
        // A detection at the window's last row is worth σ(−5/100)-ish, small but > 0.
        let late = s.score(|i| i == 599).score;
        assert!(late > 0.0 && late < 0.1, "{late}");
        // Only the best detection in a window counts.
        assert!((s.score(|i| (500..600).contains(&i)).score - 1.0).abs() < 1e-12);
        // A false positive before any window costs the full fp weight.
        assert!((s.score(|i| i == 300).score - (-1.0 - 0.11)).abs() < 1e-12);
        // Probationary rows are never scored.
        assert_eq!(s.score(|i| i < 150).score, -1.0);
        // Just after the window, an FP costs less than far after it.
        let near = s.score(|i| i == 601).score;
        let far = s.score(|i| i == 990).score;
        assert!(near > far && (far - (-1.0 - 0.11)).abs() < 1e-9);
    }

    #[test]
    fn sweep_finds_the_best_corpus_threshold() {
        let a = ScoredSeries::new(1000, &[(500, 599)], &STANDARD);
        let b = ScoredSeries::new(1000, &[(200, 299), (700, 799)], &STANDARD);
        let mut sa = vec![0.1; 1000];
        sa[510] = 0.9;
        sa[800] = 0.95; // an FP scoring higher than the hit
        let mut sb = vec![0.1; 1000];
        sb[200] = 0.8;
        sb[750] = 0.5;
        let series = [a, b];
        let (threshold, raw) = best_threshold(&series, &[sa.clone(), sb.clone()]);
        // Brute force over candidate thresholds.
        let mut best = (f64::INFINITY, null_score(&series));
        for t in [0.95, 0.9, 0.8, 0.5, 0.1] {
            let r = series[0].score(|i| sa[i] >= t).score + series[1].score(|i| sb[i] >= t).score;
            if r > best.1 {
                best = (t, r);
            }
        }
        assert_eq!(threshold, best.0);
        assert!((raw - best.1).abs() < 1e-12);
        assert_eq!(null_score(&series), -3.0);
    }

    #[test]
    fn normalisation_maps_null_to_0_and_perfect_to_100() {
        assert_eq!(normalise(-116.0, -116.0, 116.0), 0.0);
        assert_eq!(normalise(116.0, -116.0, 116.0), 100.0);
    }
}
