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
mod tests;
