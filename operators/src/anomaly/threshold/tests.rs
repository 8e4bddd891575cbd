//! The threshold learners against plain computations over their histories.

use super::*;
use crate::anomaly::robust::quantile;
use proptest::prelude::*;

/// `values` as a learner keeps them (each the nearest `f32`).
fn kept_as(values: &[f64]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v as f32)).collect()
}

#[test]
fn values_are_kept_as_the_nearest_f32_and_saturate() {
    let mut learner = ThresholdLearner::new(ThresholdParams::default(), 8);
    for v in [0.1, 1e300, -1e300, f64::INFINITY, f64::NAN] {
        learner.push(v);
    }
    let kept: Vec<f32> = learner.history().iter().copied().collect();
    assert_eq!(kept, vec![0.1f32, f32::MAX, -f32::MAX]);
    assert_eq!(learner.stats().unwrap().median, f64::from(0.1f32));
}

fn params(strategy: ThresholdStrategy) -> ThresholdParams {
    ThresholdParams {
        strategy,
        ..ThresholdParams::default()
    }
}

#[test]
fn percentile_bounds_of_1_to_101() {
    let mut v: Vec<f64> = (1..=101).map(f64::from).collect();
    let b = params(ThresholdStrategy::Percentile)
        .bounds(&mut v)
        .unwrap();
    assert!((b.upper - 100.0).abs() < 1e-9);
    assert!((b.lower - 2.0).abs() < 1e-9);
}

#[test]
fn sigma_and_iqr_bounds_of_a_known_sample() {
    let mut v = vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let b = params(ThresholdStrategy::Sigma).bounds(&mut v).unwrap();
    // Mean 5, population σ 2.
    assert!((b.upper - 11.0).abs() < 1e-9 && (b.lower + 1.0).abs() < 1e-9);
    let b = params(ThresholdStrategy::Iqr).bounds(&mut v).unwrap();
    // Q1 4, Q3 5.5 (linear interpolation), IQR 1.5.
    assert!((b.upper - 7.75).abs() < 1e-9, "{b:?}");
    assert!((b.lower - 1.75).abs() < 1e-9, "{b:?}");
}

#[test]
fn an_outlier_does_not_move_the_median() {
    let mut learner = ThresholdLearner::new(ThresholdParams::default(), 100);
    for i in 0..99 {
        learner.push(10.0 + (i % 3) as f64);
    }
    learner.push(1e9);
    learner.push(f64::NAN);
    assert_eq!(learner.len(), 100);
    let s = learner.learned().unwrap().stats;
    assert_eq!(s.median, 11.0);
    assert!(s.scale < 2.0);
    assert!(learner.deviation(11.0).abs() < 1e-12);
    assert_eq!(
        ThresholdLearner::new(ThresholdParams::default(), 5).deviation(3.0),
        0.0
    );
}

#[test]
fn trend_classification() {
    let up: Vec<f64> = (0..50).map(|i| i as f64 + (i % 3) as f64 * 0.1).collect();
    assert_eq!(classify_trend(&up), Trend::Increasing);
    let down: Vec<f64> = up.iter().map(|v| -v).collect();
    assert_eq!(classify_trend(&down), Trend::Decreasing);
    let flat: Vec<f64> = (0..50).map(|i| ((i * 7919) % 13) as f64).collect();
    assert_eq!(classify_trend(&flat), Trend::Stable);
    assert_eq!(classify_trend(&[1.0, 5.0]), Trend::Stable);
    assert_eq!(classify_trend(&[3.0; 20]), Trend::Stable);
}

/// The least-squares trend computed plainly (mean first, then the slope, then the
/// residuals), with the change's size against [`TREND_MIN_CHANGE`] noise.
fn trend_by_passes(values: &[f64]) -> (Trend, f64) {
    let n = values.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / n;
    let dx = |i: usize| i as f64 - mean_x;
    let sxy: f64 = values
        .iter()
        .enumerate()
        .map(|(i, y)| dx(i) * (y - mean_y))
        .sum();
    let sxx: f64 = (0..values.len()).map(|i| dx(i) * dx(i)).sum();
    let slope = sxy / sxx;
    let resid: f64 = values
        .iter()
        .enumerate()
        .map(|(i, y)| (y - mean_y - slope * dx(i)).powi(2))
        .sum();
    let noise = (resid / (n - 2.0)).sqrt().max(1e-12 * (1.0 + mean_y.abs()));
    let change = slope * (n - 1.0);
    let trend = if change.abs() <= TREND_MIN_CHANGE * noise {
        Trend::Stable
    } else if change > 0.0 {
        Trend::Increasing
    } else {
        Trend::Decreasing
    };
    (trend, change.abs() / (TREND_MIN_CHANGE * noise))
}

/// Any of the three threshold strategies.
fn any_strategy() -> impl Strategy<Value = ThresholdStrategy> {
    prop_oneof![
        Just(ThresholdStrategy::Percentile),
        Just(ThresholdStrategy::Sigma),
        Just(ThresholdStrategy::Iqr),
    ]
}

/// Checks a learner's learned band and statistics against a plain computation
/// over the values it should keep.
fn equals_batch(
    got: Learned,
    params: ThresholdParams,
    kept: &std::collections::VecDeque<f64>,
) -> Result<(), TestCaseError> {
    let kept: Vec<f64> = kept.iter().copied().collect();
    let stats = RobustStats::of(&mut kept.clone()).unwrap();
    prop_assert_eq!(got.bounds, params.bounds(&mut kept.clone()).unwrap());
    prop_assert_eq!(got.stats.median, stats.median);
    prop_assert!((got.stats.scale - stats.scale).abs() <= 1e-12 * stats.scale);
    Ok(())
}

proptest! {
    #[test]
    fn learner_history_is_bounded_and_bounds_bracket_the_median(
        capacity in 1usize..300,
        values in prop::collection::vec(-1e3f64..1e3, 1..600),
        strategy in any_strategy(),
    ) {
        let mut learner = ThresholdLearner::new(params(strategy), capacity);
        for v in &values {
            learner.push(*v);
            prop_assert!(learner.len() <= capacity);
        }
        // Small histories are refreshed on every value: bounds match a fresh
        // computation over the newest `capacity` values.
        let kept: Vec<f64> = kept_as(&values[values.len().saturating_sub(capacity)..]);
        let b = learner.bounds().unwrap();
        let fresh = params(strategy).bounds(&mut kept.clone()).unwrap();
        if capacity < 256 {
            prop_assert_eq!(b, fresh);
        }
        let median = quantile(&mut kept.clone(), 0.5).unwrap();
        prop_assert!(b.lower <= median + 1e-9 && median <= b.upper + 1e-9);
    }

    #[test]
    fn learned_equals_the_plain_computation(
        values in prop::collection::vec(
            prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from)],
            1..700,
        ),
        strategy in any_strategy(),
        percentile in 50.0f64..=100.0,
    ) {
        let params = ThresholdParams { percentile, ..params(strategy) };
        let mut learner = ThresholdLearner::new(params, values.len());
        values.iter().for_each(|v| learner.push(*v));
        let got = learner.learned().unwrap();
        let values = kept_as(&values);
        let bounds = params.bounds(&mut values.clone()).unwrap();
        let stats = RobustStats::of(&mut values.clone()).unwrap();
        prop_assert_eq!(got.bounds, bounds);
        prop_assert_eq!(got.stats.median, stats.median);
        // The scale's last fallback (mean absolute deviation) sums in whatever
        // order the selection left the values.
        prop_assert!((got.stats.scale - stats.scale).abs() <= 1e-12 * stats.scale);
    }

    #[test]
    fn a_small_sliding_history_is_exact_after_every_value(
        capacity in 1usize..256,
        values in prop::collection::vec(
            prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from), Just(f64::NAN)],
            1..1500,
        ),
        strategy in any_strategy(),
    ) {
        let params = params(strategy);
        let mut learner = ThresholdLearner::new(params, capacity);
        let mut kept = std::collections::VecDeque::new();
        for v in &values {
            learner.push(*v);
            if v.is_finite() {
                kept.push_back(f64::from(*v as f32));
                if kept.len() > capacity {
                    kept.pop_front();
                }
            }
            let Some(got) = learner.learned() else {
                prop_assert!(kept.is_empty());
                continue;
            };
            equals_batch(got, params, &kept)?;
        }
    }

    #[test]
    fn a_history_cut_to_a_new_capacity_is_exact_from_then_on(
        first in 1usize..700,
        second in 1usize..256,
        values in prop::collection::vec(-1e3f64..1e3, 0..900),
        cut_at in 0usize..900,
        strategy in any_strategy(),
    ) {
        let params = params(strategy);
        let mut learner = ThresholdLearner::new(params, first);
        let mut kept = std::collections::VecDeque::new();
        let mut capacity = first;
        for (i, v) in values.iter().enumerate() {
            if i == cut_at {
                learner.set_capacity(second);
                capacity = second;
                while kept.len() > capacity {
                    kept.pop_front();
                }
                prop_assert_eq!(learner.len(), kept.len());
            }
            learner.push(*v);
            kept.push_back(f64::from(*v as f32));
            if kept.len() > capacity {
                kept.pop_front();
            }
            if i < cut_at {
                continue;
            }
            let got = learner.learned().unwrap();
            equals_batch(got, params, &kept)?;
        }
    }

    #[test]
    fn a_band_asked_for_late_is_the_band_of_its_refresh(
        capacity in 200usize..700,
        values in prop::collection::vec(
            prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from)],
            1..1500,
        ),
        asks in prop::collection::vec(any::<bool>(), 1500),
        strategy in any_strategy(),
    ) {
        // `eager` computes its band at every refresh; `lazy` only when asked,
        // some values later (histories past 256 values refresh every few).
        let mut eager = ThresholdLearner::new(params(strategy), capacity);
        let mut lazy = ThresholdLearner::new(params(strategy), capacity);
        for (v, ask) in values.iter().zip(&asks) {
            eager.push(*v);
            lazy.push(*v);
            let band = eager.bounds();
            prop_assert_eq!(lazy.stats(), eager.stats());
            if *ask {
                prop_assert_eq!(lazy.bounds(), band);
            }
        }
    }

    #[test]
    fn a_learners_trend_is_the_trend_of_its_newest_values(
        capacity in 1usize..80,
        values in prop::collection::vec(-1e3f64..1e3, 0..200),
        window in 0usize..100,
    ) {
        let mut learner = ThresholdLearner::new(ThresholdParams::default(), capacity);
        values.iter().for_each(|v| learner.push(*v));
        let kept = kept_as(&values[values.len().saturating_sub(capacity)..]);
        let newest = &kept[kept.len().saturating_sub(window)..];
        prop_assert_eq!(learner.trend(window), classify_trend(newest));
    }

    #[test]
    fn a_trend_with_the_next_value_is_the_trend_after_pushing_it(
        capacity in 1usize..80,
        values in prop::collection::vec(-1e3f64..1e3, 0..200),
        next in prop::option::of(prop_oneof![-1e3f64..1e3, Just(f64::NAN)]),
        window in 0usize..100,
    ) {
        let mut learner = ThresholdLearner::new(ThresholdParams::default(), capacity);
        values.iter().for_each(|v| learner.push(*v));
        let predicted = learner.trend_with(window, next);
        if let Some(x) = next {
            learner.push(x);
        }
        prop_assert_eq!(predicted, learner.trend(window));
    }

    #[test]
    fn the_one_pass_trend_equals_the_plain_one(
        values in prop::collection::vec(
            prop_oneof![-1e3f64..1e3, (0u8..3).prop_map(f64::from)],
            3..60,
        ),
        offset in prop_oneof![Just(0.0), 1e6f64..1e9],
        slope in prop_oneof![Just(0.0), -10f64..10.0],
    ) {
        // Far from zero, with small variations, as a learner keeps them (`f32`).
        let values: Vec<f64> = values
            .iter()
            .enumerate()
            .map(|(i, v)| f64::from((offset + v + slope * i as f64) as f32))
            .collect();
        let (want, margin) = trend_by_passes(&values);
        // Equal unless the change sits on the decision boundary within rounding.
        if (margin - 1.0).abs() > 1e-6 {
            prop_assert_eq!(classify_trend(&values), want, "margin {}", margin);
        }
    }

    #[test]
    fn a_shifted_series_has_the_same_trend(
        values in prop::collection::vec(-100f64..100.0, 3..80),
        shift in -1e3f64..1e3,
    ) {
        let shifted: Vec<f64> = values.iter().map(|v| v + shift).collect();
        let (a, b) = (classify_trend(&values), classify_trend(&shifted));
        // Equal unless the change sits on the decision boundary within rounding.
        if a != b {
            prop_assert!(a == Trend::Stable || b == Trend::Stable);
        }
    }
}
