//! Robust statistics: quantiles and median/MAD standardisation.

/// The `p`-quantile (`0 ≤ p ≤ 1`) of `values` by linear interpolation between
/// closest ranks (numpy's default). Reorders `values`; `None` when empty.
pub fn quantile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 1.0);
    let rank = p * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = rank - lo as f64;
    let (_, &mut lo_value, upper) = values.select_nth_unstable_by(lo, f64::total_cmp);
    if frac == 0.0 || upper.is_empty() {
        return Some(lo_value);
    }
    let hi_value = upper.iter().copied().fold(f64::INFINITY, f64::min);
    Some(lo_value + frac * (hi_value - lo_value))
}

/// Histories up to this length are sorted to read their quantiles; longer ones are
/// partitioned around only the ranks asked for.
const SORT_BELOW: usize = 128;

/// Several quantiles of one sample at once: the values at the ranks that linear
/// interpolation between closest ranks needs for each `p`, found by one sort (short
/// samples) or one recursive partition around just those ranks (`O(n log k)` for
/// `k` ranks, against `k` full selections). Results equal [`quantile`]'s exactly.
#[derive(Debug, Default)]
pub struct Quantiles {
    ranks: Vec<usize>,
    values: Vec<f64>,
    len: usize,
}

impl Quantiles {
    /// Reads the quantiles `ps` (each in `[0, 1]`) of `values`, which it reorders.
    pub fn select(&mut self, values: &mut [f64], ps: &[f64]) {
        self.len = values.len();
        self.ranks.clear();
        self.values.clear();
        if values.is_empty() {
            return;
        }
        for &p in ps {
            let (lo, frac) = rank_of(p, values.len());
            self.ranks.push(lo);
            if frac != 0.0 && lo + 1 < values.len() {
                self.ranks.push(lo + 1);
            }
        }
        self.ranks.sort_unstable();
        self.ranks.dedup();
        self.values.resize(self.ranks.len(), 0.0);
        if values.len() < SORT_BELOW {
            values.sort_unstable_by(f64::total_cmp);
            for (v, &r) in self.values.iter_mut().zip(&self.ranks) {
                *v = values[r];
            }
        } else {
            select_ranks(values, 0, &self.ranks, &mut self.values);
        }
    }

    /// The `p`-quantile of the last sample, `p` one of those it was read for.
    pub fn get(&self, p: f64) -> Option<f64> {
        interpolate(self.len, p, |r| {
            self.ranks.binary_search(&r).ok().map(|i| self.values[i])
        })
    }
}

/// The `p`-quantile of `n` ordered values read by `at(rank)`, interpolating linearly
/// between closest ranks as [`quantile`] does; `None` when `n == 0` or `at` has no
/// value for a rank it needs.
pub(crate) fn interpolate(n: usize, p: f64, at: impl Fn(usize) -> Option<f64>) -> Option<f64> {
    interpolate_pair(n, p, |lo, next| {
        let lo_value = at(lo)?;
        let next_value = if next { Some(at(lo + 1)?) } else { None };
        Some((lo_value, next_value))
    })
}

/// As [`interpolate`], for sources that find a rank's value and the next one in one
/// search: `at(rank, next)` gives the value at `rank` and, when `next`, the value at
/// `rank + 1` (`None` when it has no value for a rank it is asked for).
pub(crate) fn interpolate_pair(
    n: usize,
    p: f64,
    at: impl FnOnce(usize, bool) -> Option<(f64, Option<f64>)>,
) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let (lo, frac) = rank_of(p, n);
    let next = frac != 0.0 && lo + 1 < n;
    let (lo_value, next_value) = at(lo, next)?;
    if !next {
        return Some(lo_value);
    }
    Some(lo_value + frac * (next_value? - lo_value))
}

/// The lower rank of the `p`-quantile of `n` values and the interpolation fraction.
fn rank_of(p: f64, n: usize) -> (usize, f64) {
    let rank = p.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = rank.floor() as usize;
    (lo, rank - lo as f64)
}

/// Puts the order statistics of `values` at `ranks` (ascending, relative to
/// `values[0]` being rank `offset`) into `out`, partitioning around the middle rank
/// and recursing into each side with the ranks that fall there.
fn select_ranks(values: &mut [f64], offset: usize, ranks: &[usize], out: &mut [f64]) {
    if ranks.is_empty() {
        return;
    }
    let mid = ranks.len() / 2;
    let at = ranks[mid] - offset;
    let (left, value, right) = values.select_nth_unstable_by(at, f64::total_cmp);
    out[mid] = *value;
    let (out_left, out_right) = out.split_at_mut(mid);
    select_ranks(left, offset, &ranks[..mid], out_left);
    select_ranks(
        right,
        offset + at + 1,
        &ranks[mid + 1..],
        &mut out_right[1..],
    );
}

/// Scale of the normal distribution's MAD: `MAD × 1.4826 ≈ σ` for normal data.
pub const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Robust location and scale of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RobustStats {
    /// Median.
    pub median: f64,
    /// Scale: MAD × 1.4826; when the MAD is 0 (over half the values equal) the IQR /
    /// 1.349; when that is 0 too, the mean absolute deviation from the median ×
    /// 1.2533; never below `1e-3 × |median|` nor `1e-9`.
    pub scale: f64,
}

impl RobustStats {
    /// Statistics of `values` (reordered); `None` when empty.
    pub fn of(values: &mut [f64]) -> Option<Self> {
        let mut q = Quantiles::default();
        q.select(values, &[0.5, 0.25, 0.75]);
        Self::from_quartiles(values, &q)
    }

    /// Statistics of `values`, whose median and quartiles `q` holds (read from them,
    /// possibly with other quantiles); `values` is overwritten.
    pub fn from_quartiles(values: &mut [f64], q: &Quantiles) -> Option<Self> {
        let (median, q1, q3) = (q.get(0.5)?, q.get(0.25)?, q.get(0.75)?);
        for v in values.iter_mut() {
            *v = (*v - median).abs();
        }
        let mean_abs = values.iter().sum::<f64>() / values.len() as f64;
        let mad = quantile(values, 0.5)?;
        Some(Self::from_parts(
            median,
            || (Some(q1), Some(q3)),
            mad,
            || mean_abs,
        ))
    }

    /// Statistics from a sample's median and median absolute deviation from the
    /// median (`mad`, unscaled). The quartiles `(q1, q3)` are asked for only when the
    /// MAD is 0, and `mean_abs`, the mean absolute deviation from the median, only
    /// when the IQR is 0 too (or a quartile is missing).
    pub fn from_parts(
        median: f64,
        quartiles: impl FnOnce() -> (Option<f64>, Option<f64>),
        mad: f64,
        mean_abs: impl FnOnce() -> f64,
    ) -> Self {
        let mad = mad * MAD_TO_SIGMA;
        let floor = (1e-3 * median.abs()).max(1e-9);
        let iqr = || match quartiles() {
            (Some(q1), Some(q3)) => (q3 - q1) / 1.349,
            _ => 0.0,
        };
        let scale = if mad > 0.0 {
            mad
        } else {
            match iqr() {
                iqr if iqr > 0.0 => iqr,
                _ => mean_abs() * 1.2533,
            }
        };
        Self {
            median,
            scale: scale.max(floor),
        }
    }

    /// `(x − median) / scale`, clamped to `±MAX_DEVIATION`.
    pub fn standardise(&self, x: f64) -> f64 {
        ((x - self.median) / self.scale).clamp(-MAX_DEVIATION, MAX_DEVIATION)
    }
}

/// Standardised deviations are clamped to this magnitude, so one constant feature
/// that suddenly moves cannot produce an infinite score.
pub const MAX_DEVIATION: f64 = 1000.0;

/// How often cached statistics over a history of `len` values are recomputed: after
/// `len / 256 + 1` new values, so a 10 000-point history is re-read every 40 values
/// and statistics lag the newest values by under 0.4 % of the history.
pub fn refresh_interval(len: usize) -> usize {
    len / 256 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted_quantile(values: &[f64], p: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = p * (v.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = rank.ceil() as usize;
        v[lo] + (rank - lo as f64) * (v[hi] - v[lo])
    }

    proptest! {
        #[test]
        fn quantile_matches_sort_reference(
            values in prop::collection::vec(-1e6f64..1e6, 1..300),
            p in 0.0f64..=1.0,
        ) {
            let expected = sorted_quantile(&values, p);
            let got = quantile(&mut values.clone(), p).unwrap();
            prop_assert!((got - expected).abs() <= 1e-9 * (1.0 + expected.abs()), "{got} vs {expected}");
        }
    }

    proptest! {
        #[test]
        fn quantiles_at_once_equal_one_at_a_time(
            values in prop::collection::vec(
                prop_oneof![-1e6f64..1e6, (0u8..4).prop_map(f64::from)],
                1..600,
            ),
            ps in prop::collection::vec(0.0f64..=1.0, 1..6),
        ) {
            let mut q = Quantiles::default();
            let mut ps = ps;
            ps.extend([0.0, 0.5, 1.0, 0.99, 0.01]);
            q.select(&mut values.clone(), &ps);
            for &p in &ps {
                let one = quantile(&mut values.clone(), p).unwrap();
                prop_assert_eq!(q.get(p).unwrap().to_bits(), one.to_bits(), "p {}", p);
            }
        }
    }

    /// The statistics one quantile at a time: the definition the shared selection
    /// must reproduce.
    fn plain_stats(values: &mut [f64]) -> RobustStats {
        let median = quantile(values, 0.5).unwrap();
        let q1 = quantile(values, 0.25).unwrap();
        let q3 = quantile(values, 0.75).unwrap();
        let mut dev: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let mean_abs = dev.iter().sum::<f64>() / dev.len() as f64 * 1.2533;
        let mad = quantile(&mut dev, 0.5).unwrap() * MAD_TO_SIGMA;
        let iqr = (q3 - q1) / 1.349;
        let scale = [mad, iqr, mean_abs]
            .into_iter()
            .find(|s| *s > 0.0)
            .unwrap_or(0.0);
        RobustStats {
            median,
            scale: scale.max((1e-3 * median.abs()).max(1e-9)),
        }
    }

    proptest! {
        #[test]
        fn stats_equal_the_plain_computation(
            values in prop::collection::vec(
                prop_oneof![-1e6f64..1e6, (0u8..3).prop_map(f64::from)],
                1..700,
            ),
        ) {
            let got = RobustStats::of(&mut values.clone()).unwrap();
            let expected = plain_stats(&mut values.clone());
            prop_assert_eq!(got.median, expected.median);
            prop_assert!((got.scale - expected.scale).abs() <= 1e-12 * expected.scale);
        }
    }

    #[test]
    fn median_and_mad_of_a_known_sample() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 100.0];
        let s = RobustStats::of(&mut v).unwrap();
        assert_eq!(s.median, 3.0);
        // |x − 3| = 2, 1, 0, 1, 97 → MAD 1.
        assert!((s.scale - MAD_TO_SIGMA).abs() < 1e-12);
        assert!((s.standardise(3.0 + MAD_TO_SIGMA * 2.0) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn constant_sample_has_a_positive_scale_and_clamped_deviation() {
        let s = RobustStats::of(&mut [0.0; 10]).unwrap();
        assert!(s.scale > 0.0);
        assert_eq!(s.standardise(5.0), MAX_DEVIATION);
        assert_eq!(s.standardise(-5.0), -MAX_DEVIATION);
        assert_eq!(s.standardise(0.0), 0.0);
        assert!(RobustStats::of(&mut []).is_none());
    }

    #[test]
    fn mostly_equal_values_fall_back_to_the_mean_absolute_deviation() {
        let mut v = vec![4.0; 9];
        v.push(5.0);
        let s = RobustStats::of(&mut v).unwrap();
        assert_eq!(s.median, 4.0);
        // MAD and IQR are 0; the mean absolute deviation is 0.1.
        assert!((s.scale - 0.12533).abs() < 1e-9, "{s:?}");
    }
}
