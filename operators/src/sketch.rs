//! A mergeable quantile sketch with bounded relative error (DDSketch-style).
//!
//! A positive value `v` falls in bucket `i = ceil(log_γ v)` with `γ = (1 + α) / (1 - α)`,
//! and bucket `i` reports `2γ^i / (γ + 1)`: within `α` (relative) of every value in
//! `(γ^(i-1), γ^i]`. Values below [`MIN_VALUE`] share one bucket that reports 0.
//! A sketch is just a count per bucket, so sketches merge (and, in a sliding window,
//! retract) by adding and subtracting counts: the dataflow keeps the counts as
//! `(node, bucket)` updates and asks [`quantile_bucket`] over the window's buckets.

use std::collections::BTreeMap;

/// Relative accuracy of a reported quantile.
pub const ALPHA: f64 = 0.01;
/// Smallest value with its own bucket; anything below reports 0.
pub const MIN_VALUE: f64 = 1e-9;
/// The bucket of zero and of values below [`MIN_VALUE`].
pub const ZERO_BUCKET: i32 = i32::MIN;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// The bucket of a value (negative values and NaN count as zero).
pub fn bucket_of(value: f64) -> i32 {
    if value.is_nan() || value < MIN_VALUE {
        return ZERO_BUCKET;
    }
    (value.ln() / gamma().ln()).ceil() as i32
}

/// The value a bucket reports.
pub fn value_of(bucket: i32) -> f64 {
    if bucket == ZERO_BUCKET {
        return 0.0;
    }
    let g = gamma();
    2.0 * g.powi(bucket) / (g + 1.0)
}

/// The bucket holding the `q`-quantile of samples given as `(bucket, count)` in
/// ascending bucket order: the bucket of the sample at rank `floor(q · (n - 1))`
/// (0-based) of the sorted samples. `None` when there are no samples.
pub fn quantile_bucket<I>(buckets: I, q: f64) -> Option<i32>
where
    I: IntoIterator<Item = (i32, u64)>,
    I::IntoIter: Clone,
{
    let buckets = buckets.into_iter();
    let n: u64 = buckets.clone().map(|b| b.1).sum();
    if n == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
    let mut seen = 0;
    let mut last = None;
    for (bucket, count) in buckets {
        seen += count;
        if seen > rank {
            return Some(bucket);
        }
        last = Some(bucket);
    }
    last
}

/// A sketch held in one place (the batch reference and tests use it; the dataflow
/// keeps the same counts as differential updates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuantileSketch {
    counts: BTreeMap<i32, u64>,
}

impl QuantileSketch {
    /// Adds one sample.
    pub fn add(&mut self, value: f64) {
        *self.counts.entry(bucket_of(value)).or_default() += 1;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &QuantileSketch) {
        for (&b, &c) in &other.counts {
            *self.counts.entry(b).or_default() += c;
        }
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The `q`-quantile, within [`ALPHA`] of the exact sample at rank `floor(q · (n - 1))`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_bucket(self.counts.iter().map(|(&b, &c)| (b, c)), q).map(value_of)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn exact(samples: &[f64], q: f64) -> f64 {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        s[(q * (s.len() - 1) as f64).floor() as usize]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_relative_accuracy(
            samples in prop::collection::vec(1e-3f64..1e9, 1..300),
            split in 0usize..300,
            q in 0.0f64..=1.0,
        ) {
            // Built in two halves and merged, as windows are.
            let split = split.min(samples.len());
            let (mut a, mut b) = (QuantileSketch::default(), QuantileSketch::default());
            samples[..split].iter().for_each(|&v| a.add(v));
            samples[split..].iter().for_each(|&v| b.add(v));
            a.merge(&b);
            prop_assert_eq!(a.count(), samples.len() as u64);
            let got = a.quantile(q).unwrap();
            let want = exact(&samples, q);
            prop_assert!((got - want).abs() <= ALPHA * want * (1.0 + 1e-9), "q {} got {} want {}", q, got, want);
        }
    }

    #[test]
    fn zero_and_empty() {
        let mut s = QuantileSketch::default();
        assert_eq!(s.quantile(0.5), None);
        s.add(0.0);
        s.add(-3.0);
        s.add(5.0);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 5.0).abs() <= 0.05);
    }
}
