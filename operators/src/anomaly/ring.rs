//! A bounded ring buffer: the history every learner keeps.

/// A FIFO of at most `capacity` values; pushing onto a full buffer drops the oldest.
#[derive(Clone, Debug)]
pub struct RingBuffer<T> {
    items: Vec<T>,
    head: usize,
    capacity: usize,
}

/// The capacity a full allocation of `len` values grows to: a quarter more, and by at
/// least 4.
pub(crate) fn grown(len: usize) -> usize {
    len + (len / 4).max(4)
}

impl<T> RingBuffer<T> {
    /// An empty buffer holding at most `capacity` (at least 1) values.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Vec::new(),
            head: 0,
            capacity: capacity.max(1),
        }
    }

    /// Maximum number of values kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of values kept.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends `value`, dropping the oldest when full.
    pub fn push(&mut self, value: T) {
        if self.items.len() < self.capacity {
            // Grow by a quarter, never past the capacity: a growing history then
            // holds at most a fifth of its allocation spare (doubling would leave up
            // to half, and end a 10 000-value history in a 16 384-slot allocation).
            if self.items.len() == self.items.capacity() {
                let len = self.items.len();
                let target = grown(len).min(self.capacity);
                self.items.reserve_exact(target - len);
            }
            self.items.push(value);
        } else {
            self.items[self.head] = value;
            self.head = (self.head + 1) % self.capacity;
        }
    }

    /// Whether the next push drops the oldest value.
    pub fn is_full(&self) -> bool {
        self.items.len() == self.capacity
    }

    /// The oldest value when the buffer is full: the one the next push drops.
    pub fn oldest_if_full(&self) -> Option<&T> {
        if self.is_full() {
            self.items.get(self.head)
        } else {
            None
        }
    }

    /// Values, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + Clone + '_ {
        let (newer, older) = self.items.split_at(self.head);
        older.iter().chain(newer.iter())
    }

    /// The newest `n` values (fewer if fewer are kept) as the two runs of storage
    /// they lie in, oldest first; the second is empty unless they wrap around.
    pub fn latest_parts(&self, n: usize) -> (&[T], &[T]) {
        let (newer, older) = self.items.split_at(self.head);
        let skip = self.len().saturating_sub(n);
        match skip.checked_sub(older.len()) {
            None => (&older[skip..], newer),
            Some(rest) => (&newer[rest..], &[]),
        }
    }

    /// Changes the capacity to `capacity` (at least 1). A buffer holding more drops
    /// its oldest values, oldest first, handing each to `dropped`, and gives back the
    /// memory they held.
    pub fn set_capacity(&mut self, capacity: usize, mut dropped: impl FnMut(T))
    where
        T: Copy,
    {
        let capacity = capacity.max(1);
        if self.items.len() > capacity {
            let excess = self.items.len() - capacity;
            let mut kept = Vec::with_capacity(capacity);
            for (i, &v) in self.iter().enumerate() {
                if i < excess {
                    dropped(v);
                } else {
                    kept.push(v);
                }
            }
            self.items = kept;
            self.head = 0;
        } else if self.items.len() == self.capacity && self.head != 0 {
            // A full ring that may grow again: oldest first, so new values append.
            self.items.rotate_left(self.head);
            self.head = 0;
        }
        self.capacity = capacity;
        if self.items.capacity() > capacity {
            self.items.shrink_to(capacity);
        }
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.items.clear();
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bounded_and_keeps_the_newest(
            capacity in 1usize..50,
            values in prop::collection::vec(any::<i32>(), 0..200),
        ) {
            let mut ring = RingBuffer::new(capacity);
            for (i, v) in values.iter().enumerate() {
                ring.push(*v);
                prop_assert!(ring.len() <= capacity);
                prop_assert!(ring.items.capacity() <= grown(ring.len()).min(capacity));
                prop_assert_eq!(ring.len(), (i + 1).min(capacity));
            }
            let expected: Vec<i32> =
                values[values.len().saturating_sub(capacity)..].to_vec();
            let got: Vec<i32> = ring.iter().copied().collect();
            prop_assert_eq!(&got, &expected);
            for n in 0..capacity + 2 {
                let (older, newer) = ring.latest_parts(n);
                let latest = [older, newer].concat();
                prop_assert_eq!(&latest[..], &expected[expected.len().saturating_sub(n)..]);
                prop_assert!(!older.is_empty() || newer.is_empty());
            }
        }
    }

    proptest! {
        #[test]
        fn a_new_capacity_keeps_the_newest_values_in_order(
            values in proptest::collection::vec(any::<i32>(), 0..60),
            first in 1usize..20,
            second in 1usize..30,
            more in proptest::collection::vec(any::<i32>(), 0..30),
        ) {
            let mut ring = RingBuffer::new(first);
            for &v in &values {
                ring.push(v);
            }
            let before: Vec<i32> = ring.iter().copied().collect();
            let mut dropped = Vec::new();
            ring.set_capacity(second, |v| dropped.push(v));
            let split = before.len().saturating_sub(second);
            prop_assert_eq!(&dropped[..], &before[..split]);
            prop_assert_eq!(ring.iter().copied().collect::<Vec<_>>(), before[split..].to_vec());
            prop_assert_eq!(ring.capacity(), second);
            prop_assert!(ring.items.capacity() <= second.max(ring.len()));
            // It goes on as a buffer of the new capacity would.
            let mut expected: Vec<i32> = before[split..].to_vec();
            for &v in &more {
                ring.push(v);
                expected.push(v);
            }
            let expected = &expected[expected.len().saturating_sub(second)..];
            prop_assert_eq!(ring.iter().copied().collect::<Vec<_>>(), expected.to_vec());
        }
    }

    #[test]
    fn allocation_stops_at_the_capacity() {
        let mut ring = RingBuffer::new(10_000);
        for i in 0..25_000 {
            ring.push(i);
            assert!(ring.items.capacity() <= 10_000);
        }
        assert_eq!(ring.items.capacity(), 10_000);
        assert_eq!(ring.iter().next(), Some(&15_000));
    }

    #[test]
    fn zero_capacity_means_one() {
        let mut ring = RingBuffer::new(0);
        ring.push(1);
        ring.push(2);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec![2]);
        ring.clear();
        assert!(ring.is_empty());
    }
}
