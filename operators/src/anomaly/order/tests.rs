//! The ordered index and its rank reads against sorting the same values.

use super::*;
use crate::anomaly::robust::quantile;
use proptest::prelude::*;

/// Builds an index of `values` (each exactly an `f32`).
fn index_of(values: &[f64]) -> OrderIndex {
    let mut index = OrderIndex::default();
    values.iter().for_each(|&v| index.insert(v as f32));
    index
}

/// The index of `values` and the values sorted, to read it against.
fn index_and_sorted(values: &[f64]) -> (OrderIndex, Vec<f64>) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (index_of(values), sorted)
}

fn mad_by_sorting(values: &[f64]) -> f64 {
    let median = quantile(&mut values.to_vec(), 0.5).unwrap();
    distance_median_by_sorting(values, median)
}

/// The median of `|v − x|` over `values`, by sorting.
fn distance_median_by_sorting(values: &[f64], x: f64) -> f64 {
    let mut d: Vec<f64> = values.iter().map(|v| (v - x).abs()).collect();
    quantile(&mut d, 0.5).unwrap()
}

/// Asserts that the index's MAD around `centre` equals the median of the sorted
/// distances, searched from no hint and from hints anywhere in the history.
fn mad_at_equals_sorting(
    ranked: &Ranked<'_>,
    values: &[f64],
    centre: f64,
) -> Result<(), TestCaseError> {
    let want = distance_median_by_sorting(values, centre);
    prop_assert_eq!(ranked.mad(centre).unwrap(), want, "centre {}", centre);
    let n = values.len();
    for (below, taken) in [(0, n), (n, 0), (n, n), (n / 3, n / 5), (n + 9, 2 * n)] {
        let mut hint = MadHint::at(below, taken);
        prop_assert_eq!(ranked.mad_near(centre, &mut hint).unwrap(), want);
        // The hint left behind is where the answer was: from it, again the same.
        prop_assert_eq!(ranked.mad_near(centre, &mut hint).unwrap(), want);
    }
    Ok(())
}

/// Values with many ties, signed zeros and wide spreads, each exactly an `f32`
/// (what the index keeps).
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1e6f32..1e6).prop_map(f64::from),
        (0u8..4).prop_map(f64::from),
        Just(-0.0),
        Just(0.0),
    ]
}

proptest! {
    #[test]
    fn ranks_quantiles_and_mad_equal_sorting(
        values in prop::collection::vec(value(), 1..900),
        p in 0.0f64..=1.0,
        centre in value(),
    ) {
        let (index, sorted) = index_and_sorted(&values);
        let mut starts = Vec::new();
        let ranked = index.ranked(&mut starts);
        for (r, v) in sorted.iter().enumerate() {
            prop_assert_eq!(ranked.get(r).to_bits(), v.to_bits());
        }
        prop_assert_eq!(ranked.quantile(p), quantile(&mut values.clone(), p));
        let median = ranked.quantile(0.5).unwrap();
        prop_assert_eq!(ranked.mad(median).unwrap(), mad_by_sorting(&values));
        // Any centre, not only the median (the search for the values below it
        // starts from the median's rank).
        mad_at_equals_sorting(&ranked, &values, centre)?;
        // Centres at and between the values around the median's rank, where that
        // search decides.
        let mid = values.len() / 2;
        for r in mid.saturating_sub(3)..(mid + 3).min(values.len()) {
            let next = sorted.get(r + 1).copied().unwrap_or(sorted[r]);
            for centre in [sorted[r], sorted[r] + 0.1 * (next - sorted[r]), sorted[r] + 0.9 * (next - sorted[r])] {
                mad_at_equals_sorting(&ranked, &values, centre)?;
            }
        }
    }

    #[test]
    fn mad_of_a_small_sample_equals_sorting_at_any_centre(
        values in prop::collection::vec(value(), 1..10),
        fraction in 0.0f64..1.0,
    ) {
        let (index, sorted) = index_and_sorted(&values);
        let mut starts = Vec::new();
        let ranked = index.ranked(&mut starts);
        for (r, v) in sorted.iter().enumerate() {
            let next = sorted.get(r + 1).copied().unwrap_or(v + 1.0);
            for centre in [*v, v + fraction * (next - v), v - 1.0] {
                mad_at_equals_sorting(&ranked, &values, centre)?;
            }
        }
    }

    #[test]
    fn a_sliding_history_stays_ordered(
        capacity in 1usize..400,
        values in prop::collection::vec(value(), 1..1500),
    ) {
        // The oldest of `capacity` values is removed when a new one comes, as a
        // learner's ring drops it. The MAD is searched after every value from
        // where the last search ended, as a learner does.
        let mut index = OrderIndex::default();
        let mut hint = MadHint::default();
        for (n, v) in values.iter().enumerate() {
            if n >= capacity {
                prop_assert!(index.remove(values[n - capacity] as f32));
            }
            index.insert(*v as f32);
            prop_assert!(index.blocks.iter().all(|b| !b.is_empty() && b.capacity() <= SPLIT));
            let fences: Vec<u32> = index.blocks.iter().map(|b| fence(b).to_bits()).collect();
            let kept_fences: Vec<u32> = index.fences.iter().map(|f| f.to_bits()).collect();
            prop_assert_eq!(kept_fences, fences);
            prop_assert!(index.blocks.concat().is_sorted_by(|a, b| !less(*b, *a)));
            let kept = &values[(n + 1).saturating_sub(capacity)..=n];
            let mut starts = Vec::new();
            let ranked = index.ranked(&mut starts);
            let median = ranked.quantile(0.5).unwrap();
            prop_assert_eq!(ranked.mad_near(median, &mut hint).unwrap(), mad_by_sorting(kept));
        }
        let kept = &values[values.len().saturating_sub(capacity)..];
        let mut sorted = kept.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut starts = Vec::new();
        let ranked = index.ranked(&mut starts);
        prop_assert_eq!(ranked.len(), kept.len());
        let got: Vec<u64> = (0..ranked.len()).map(|r| ranked.get(r).to_bits()).collect();
        let want: Vec<u64> = sorted.iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(got, want);
        let median = ranked.quantile(0.5).unwrap();
        prop_assert_eq!(ranked.mad(median).unwrap(), mad_by_sorting(kept));
    }
}

proptest! {
    #[test]
    fn a_search_from_a_hint_finds_the_partition_point(
        n in 0usize..300,
        answer in 0usize..300,
        hint in 0usize..320,
    ) {
        let answer = answer.min(n);
        let reads = std::cell::Cell::new(0);
        let pred = |r: usize| {
            reads.set(reads.get() + 1);
            r < answer
        };
        prop_assert_eq!(partition_point_from(n, hint, pred), answer);
        prop_assert_eq!(partition_point(n, |r| r < answer), answer);
        // Outwards from the hint: about two reads per doubling of the distance.
        let distance = answer.abs_diff(hint.min(n.saturating_sub(1))) + 1;
        prop_assert!(reads.get() <= 2 * (usize::BITS - distance.leading_zeros()) as usize + 2);
    }
}

#[test]
fn a_refresh_prefetch_stays_inside_the_index_for_any_hint() {
    let mut index = OrderIndex::default();
    index.prefetch_for_refresh(&MadHint::default());
    for n in 0..700 {
        index.insert(((n * 7919) % 1000) as f32);
        for (below, taken) in [
            (0, 0),
            (n, 0),
            (0, n),
            (n / 2, n / 4),
            (usize::MAX, usize::MAX),
        ] {
            index.prefetch_for_refresh(&MadHint::at(below, taken));
        }
    }
}

#[test]
fn removing_an_absent_value_changes_nothing() {
    let mut index = index_of(&[3.0, 1.0, 1.0, 0.0]);
    assert!(!index.remove(2.0));
    assert!(!index.remove(-0.0), "-0 is not 0");
    assert_eq!(index.len(), 4);
    assert!(index.remove(1.0));
    assert!(index.remove(1.0));
    assert!(!index.remove(1.0), "both copies are gone");
    assert!(index.remove(3.0));
    assert!(index.remove(0.0));
    assert!(index.is_empty());
    assert!(!index.remove(3.0));
}

#[test]
fn mean_abs_deviation_of_a_known_sample() {
    let values = [1.0, 2.0, 3.0, 4.0, 10.0];
    let index = index_of(&values);
    let mut starts = Vec::new();
    let ranked = index.ranked(&mut starts);
    assert_eq!(
        ranked.mean_abs_deviation(3.0),
        (2.0 + 1.0 + 0.0 + 1.0 + 7.0) / 5.0
    );
    assert_eq!(ranked.mad(3.0), Some(1.0));
}
