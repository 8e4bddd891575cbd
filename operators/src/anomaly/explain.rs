//! Why a node was flagged: its most deviating features.

/// The `k` entries of `deviations` with the largest `|deviation|`, most deviating
/// first; ties keep input order. Returns indices into `deviations`.
pub fn top_k(deviations: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..deviations.len())
        .filter(|&i| deviations[i].is_finite())
        .collect();
    idx.sort_by(|&a, &b| deviations[b].abs().total_cmp(&deviations[a].abs()));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_largest_magnitudes_first() {
        assert_eq!(top_k(&[0.5, -7.0, 3.0, 7.0, f64::NAN], 3), vec![1, 3, 2]);
        assert_eq!(top_k(&[1.0], 5), vec![0]);
        assert!(top_k(&[], 2).is_empty());
    }

    proptest! {
        #[test]
        fn no_unpicked_entry_beats_a_picked_one(
            d in prop::collection::vec(-50f64..50.0, 0..40),
            k in 0usize..10,
        ) {
            let picked = top_k(&d, k);
            prop_assert_eq!(picked.len(), k.min(d.len()));
            let weakest = picked.iter().map(|&i| d[i].abs()).fold(f64::INFINITY, f64::min);
            for (i, v) in d.iter().enumerate() {
                if !picked.contains(&i) {
                    prop_assert!(v.abs() <= weakest);
                }
            }
        }
    }
}
