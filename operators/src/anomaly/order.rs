//! A history's values in ascending order, kept up to date as values come and go, so
//! a learner reads its quantiles and its median absolute deviation without sorting
//! or selecting over the whole history.
//!
//! [`OrderIndex`] holds the values themselves (as `f32`, as the learners keep them),
//! ascending, in blocks of at most [`SPLIT`]: inserting or removing one moves at most
//! a block, a search reads contiguous values instead of following slots into a ring,
//! and a history of `n` values costs `4n` bytes on top of its ring, plus 4 bytes a
//! block for its largest value (its fence), which a search for a value's block reads
//! instead of the blocks themselves.

use std::cmp::Ordering;

use super::ring::grown;
use super::robust::{interpolate, interpolate_pair};
use crate::prefetch::prefetch_slice;

/// Most values a block holds: a full block is split in two before a value is added.
const SPLIT: usize = 128;

/// A block that shrinks below this many values is merged with a neighbour.
const MERGE: usize = 32;

/// A multiset of values in ascending order (`f32::total_cmp`), read by rank.
#[derive(Clone, Debug, Default)]
pub struct OrderIndex {
    blocks: Vec<Vec<f32>>,
    /// Each block's largest value, side by side: finding a value's block reads this
    /// one array instead of every probed block.
    fences: Vec<f32>,
    len: usize,
}

/// Whether `a` orders before `b`.
fn less(a: f32, b: f32) -> bool {
    a.total_cmp(&b) == Ordering::Less
}

/// The fence of a non-empty block: its largest value.
fn fence(block: &[f32]) -> f32 {
    *block.last().expect("blocks are never empty")
}

impl OrderIndex {
    /// Values ordered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is ordered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first block whose largest value is not below `x`, or the last block when
    /// every value is (the index is not empty): where `x` is, or belongs.
    fn block_of(&self, x: f32) -> usize {
        self.fences
            .partition_point(|&f| less(f, x))
            .min(self.blocks.len() - 1)
    }

    /// Adds `x`.
    pub fn insert(&mut self, x: f32) {
        self.len += 1;
        if self.blocks.is_empty() {
            self.blocks.push(vec![x]);
            self.fences.push(x);
            return;
        }
        let mut b = self.block_of(x);
        if self.blocks[b].len() == SPLIT {
            // A full block is split before it grows, into two new allocations of
            // half its size.
            let (head, tail) = self.blocks[b].split_at(SPLIT / 2);
            let (head, tail) = (head.to_vec(), tail.to_vec());
            self.fences[b] = fence(&head);
            self.fences.insert(b + 1, fence(&tail));
            self.blocks[b] = head;
            self.blocks.insert(b + 1, tail);
            if less(self.fences[b], x) {
                b += 1;
            }
        }
        let block = &mut self.blocks[b];
        if block.len() == block.capacity() {
            // By a quarter, not doubling: a block holds at most a fifth spare.
            block.reserve_exact(grown(block.len()).min(SPLIT) - block.len());
        }
        let at = block.partition_point(|&v| less(v, x));
        block.insert(at, x);
        if at + 1 == block.len() {
            self.fences[b] = x;
        }
    }

    /// Removes one copy of `x` (equal bit for bit, as `f32::total_cmp` compares).
    /// Returns whether there was one.
    pub fn remove(&mut self, x: f32) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_of(x);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|&v| less(v, x));
        if block
            .get(at)
            .is_none_or(|v| v.total_cmp(&x) != Ordering::Equal)
        {
            return false;
        }
        block.remove(at);
        self.len -= 1;
        if at == block.len() && !block.is_empty() {
            self.fences[b] = fence(block);
        }
        if block.len() < MERGE {
            self.merge_small(b);
        }
        true
    }

    /// Merges block `b` (below [`MERGE`] values) into a neighbour when the two fit in
    /// one block, and drops it when it is empty, so blocks stay few and full.
    fn merge_small(&mut self, b: usize) {
        // A merged block's fence is the fence of the later of the two.
        if self.blocks[b].is_empty() {
            self.blocks.remove(b);
            self.fences.remove(b);
            return;
        }
        let fits =
            |i: usize, j: usize, blocks: &[Vec<f32>]| blocks[i].len() + blocks[j].len() <= SPLIT;
        if b + 1 < self.blocks.len() && fits(b, b + 1, &self.blocks) {
            let next = self.blocks.remove(b + 1);
            self.blocks[b].reserve_exact(next.len());
            self.blocks[b].extend(next);
            self.fences.remove(b);
        } else if b > 0 && fits(b - 1, b, &self.blocks) {
            let this = self.blocks.remove(b);
            self.blocks[b - 1].reserve_exact(this.len());
            self.blocks[b - 1].extend(this);
            self.fences.remove(b - 1);
        }
    }

    /// Asks for the memory of the list of blocks and their fences (a hint: see
    /// [`crate::prefetch`]).
    pub fn prefetch_list(&self) {
        prefetch_slice(&self.blocks);
        prefetch_slice(&self.fences);
    }

    /// Asks for the memory of every block; read the list first
    /// ([`Self::prefetch_list`]), as this follows its pointers.
    pub fn prefetch_blocks(&self) {
        self.blocks.iter().for_each(|b| prefetch_slice(b));
    }

    /// Asks for the memory of the block where `x` is or belongs; read the list and
    /// the fences first ([`Self::prefetch_list`]), as this searches the one and
    /// follows the other.
    pub fn prefetch_block_of(&self, x: f32) {
        if !self.blocks.is_empty() {
            prefetch_slice(&self.blocks[self.block_of(x)]);
        }
    }

    /// Asks for the memory of the blocks a refresh reads: around the median's rank
    /// and the two ranks where the MAD search of `hint` ended. The blocks are found
    /// by rank as if all were equally full, which they are to within a factor of
    /// four; read the list first ([`Self::prefetch_list`]).
    pub fn prefetch_for_refresh(&self, hint: &MadHint) {
        let (n, blocks) = (self.len, self.blocks.len());
        if n == 0 {
            return;
        }
        let (below, taken) = (hint.below as usize, hint.taken as usize);
        let left = below.saturating_sub(taken + 1);
        let right = below + (n / 2).saturating_sub(taken);
        for rank in [n / 2, left, right] {
            let b = (rank.min(n - 1) * blocks / n).min(blocks - 1);
            prefetch_slice(&self.blocks[b]);
        }
    }

    /// A view that reads values by rank, using `starts` as working space.
    pub fn ranked<'a>(&'a self, starts: &'a mut Vec<usize>) -> Ranked<'a> {
        starts.clear();
        let mut at = 0;
        for block in &self.blocks {
            starts.push(at);
            at += block.len();
        }
        Ranked {
            blocks: &self.blocks,
            starts,
            len: self.len,
        }
    }
}

/// An [`OrderIndex`] read by rank: the `r`-th smallest value in `O(log blocks)`.
pub struct Ranked<'a> {
    blocks: &'a [Vec<f32>],
    starts: &'a [usize],
    len: usize,
}

/// Where a MAD search ended ([`Ranked::mad_near`]): how many values lie below the
/// median, and how many of the smallest distances from it come from below.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MadHint {
    below: u32,
    taken: u32,
}

impl MadHint {
    /// A hint of the two positions (saturating at `u32::MAX`).
    fn at(below: usize, taken: usize) -> Self {
        let narrow = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            below: narrow(below),
            taken: narrow(taken),
        }
    }
}

impl Ranked<'_> {
    /// Values ordered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is ordered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `rank`-th smallest value (0-based, `rank < len`).
    pub fn get(&self, rank: usize) -> f64 {
        let value = match self.blocks {
            // A history of up to `SPLIT` values is one block.
            [block] => block[rank],
            blocks => {
                let b = self.starts.partition_point(|&s| s <= rank) - 1;
                blocks[b][rank - self.starts[b]]
            }
        };
        f64::from(value)
    }

    /// The `p`-quantile by linear interpolation between closest ranks, equal to
    /// [`super::robust::quantile`] of the same values; `None` when empty.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        interpolate(self.len, p, |r| Some(self.get(r)))
    }

    /// The median of `|v − median|` over the values (the unscaled MAD), equal to
    /// [`super::robust::quantile`]`(0.5)` of those distances; `None` when empty.
    pub fn mad(&self, median: f64) -> Option<f64> {
        self.mad_near(median, &mut MadHint::default())
    }

    /// [`Self::mad`], searching outwards from where the search of `hint` ended and
    /// leaving this search's end in it: a history that changed by a few values since
    /// moves these positions by about as many, so a learner that keeps its hint reads
    /// a few ranks instead of two binary searches' worth. The answer does not depend
    /// on the hint.
    ///
    /// The distances of the values below `median`, read downwards, and of the rest,
    /// read upwards, are two ascending sequences; their order statistics are found
    /// by a search over how many each contributes, never by listing them.
    pub fn mad_near(&self, median: f64, hint: &mut MadHint) -> Option<f64> {
        let below = partition_point_from(self.len, hint.below as usize, |r| self.get(r) < median);
        let left = |i: usize| (self.get(below - 1 - i) - median).abs();
        let right = |j: usize| (self.get(below + j) - median).abs();
        let (n_left, n_right) = (below, self.len - below);
        let mut taken = hint.taken as usize;
        let mad = interpolate_pair(self.len, 0.5, |k, next| {
            Some(kth_of_two(
                k, next, n_left, n_right, &mut taken, left, right,
            ))
        });
        *hint = MadHint::at(below, taken);
        mad
    }

    /// The mean of `|v − median|` over the values (0 when empty).
    pub fn mean_abs_deviation(&self, median: f64) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let sum: f64 = self
            .blocks
            .iter()
            .flatten()
            .map(|&v| (f64::from(v) - median).abs())
            .sum();
        sum / self.len as f64
    }
}

/// The first of `0..n` for which `pred` is false (`pred` true then false).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// As [`partition_point`], searching outwards from `hint` (a guess at the answer) in
/// steps that double, then by halves: `O(log d)` reads for an answer `d` from `hint`.
fn partition_point_from(n: usize, hint: usize, pred: impl Fn(usize) -> bool) -> usize {
    if n == 0 {
        return 0;
    }
    let hint = hint.min(n - 1);
    // The answer lies in `lo..=hi`: `pred` is true below `lo`, and false at `hi`
    // unless `hi == n`.
    let (mut lo, mut hi) = (0, n);
    let mut step = 1;
    if pred(hint) {
        lo = hint + 1;
        while hint + step < n {
            let probe = hint + step;
            if !pred(probe) {
                hi = probe;
                break;
            }
            lo = probe + 1;
            step *= 2;
        }
    } else {
        hi = hint;
        while let Some(probe) = hint.checked_sub(step) {
            if pred(probe) {
                lo = probe + 1;
                break;
            }
            hi = probe;
            step *= 2;
        }
    }
    lo + partition_point(hi - lo, |d| pred(lo + d))
}

/// The `k`-th smallest (0-based) of the union of two ascending sequences of lengths
/// `n_left` and `n_right`, read by index (`k < n_left + n_right`), and with `next`
/// the `k + 1`-th too (`None` when there is none). `taken` is a guess at how many of
/// the `k + 1` smallest come from the left, and is left holding the answer.
fn kth_of_two(
    k: usize,
    next: bool,
    n_left: usize,
    n_right: usize,
    taken: &mut usize,
    left: impl Fn(usize) -> f64,
    right: impl Fn(usize) -> f64,
) -> (f64, Option<f64>) {
    // Take `i` of the `k + 1` smallest from the left and the rest from the right: the
    // right `i` is the first at which the left's next value is not below the largest
    // taken from the right.
    let want = k + 1;
    let lo = want.saturating_sub(n_right);
    let hi = want.min(n_left);
    let i = lo
        + partition_point_from(hi - lo, taken.saturating_sub(lo), |d| {
            let i = lo + d;
            left(i) < right(want - i - 1)
        });
    *taken = i;
    let j = want - i;
    let kth = match (i, j) {
        (0, _) => right(j - 1),
        (_, 0) => left(i - 1),
        _ => left(i - 1).max(right(j - 1)),
    };
    // The next smallest is the smaller of the first ones not taken.
    let after = if next {
        match (
            (i < n_left).then(|| left(i)),
            (j < n_right).then(|| right(j)),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    } else {
        None
    };
    (kth, after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::robust::quantile;
    use proptest::prelude::*;

    /// Builds an index of `values` (each exactly an `f32`).
    fn index_of(values: &[f64]) -> OrderIndex {
        let mut index = OrderIndex::default();
        values.iter().for_each(|&v| index.insert(v as f32));
        index
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
            let index = index_of(&values);
            let mut starts = Vec::new();
            let ranked = index.ranked(&mut starts);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
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
            let index = index_of(&values);
            let mut starts = Vec::new();
            let ranked = index.ranked(&mut starts);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
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
}
