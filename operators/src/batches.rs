//! A container builder that fills vectors by row count rather than by bytes.
//!
//! Timely's `CapacityContainerBuilder` sizes a `Vec` container at 8 KiB of records.
//! For rows of a kilobyte or more (`node_features` is about 1.4 KB) that is five rows
//! a container, so a window of thousands of rows becomes thousands of messages, each
//! an allocation, a channel push and an operator activation on every stream it
//! passes (fork, exchange to the writers). [`RowBatches`] fills containers with at
//! least [`BATCH_ROWS`] rows instead.

use std::collections::VecDeque;

use timely::container::{
    ContainerBuilder, LengthPreservingContainerBuilder, PushInto, buffer::default_capacity,
};

/// Rows a [`RowBatches`] container holds at least (more for records small enough
/// that 8 KiB holds more).
pub const BATCH_ROWS: usize = 256;

/// Builds `Vec<T>` containers of `max(BATCH_ROWS, 8 KiB of T)` rows, in order.
#[derive(Debug)]
pub struct RowBatches<T> {
    current: Vec<T>,
    /// A sent container handed back, reused when empty.
    empty: Option<Vec<T>>,
    pending: VecDeque<Vec<T>>,
}

impl<T> Default for RowBatches<T> {
    fn default() -> Self {
        Self {
            current: Vec::new(),
            empty: None,
            pending: VecDeque::new(),
        }
    }
}

impl<T> RowBatches<T> {
    /// Rows per container.
    const ROWS: usize = if default_capacity::<T>() > BATCH_ROWS {
        default_capacity::<T>()
    } else {
        BATCH_ROWS
    };
}

impl<T> PushInto<T> for RowBatches<T> {
    #[inline]
    fn push_into(&mut self, item: T) {
        if self.current.capacity() == 0 {
            self.current = self.empty.take().unwrap_or_default();
            self.current.clear();
            self.current.reserve(Self::ROWS);
        }
        self.current.push(item);
        if self.current.len() >= Self::ROWS {
            self.pending.push_back(std::mem::take(&mut self.current));
        }
    }
}

impl<T: 'static> ContainerBuilder for RowBatches<T> {
    type Container = Vec<T>;

    #[inline]
    fn extract(&mut self) -> Option<&mut Vec<T>> {
        let container = self.pending.pop_front()?;
        self.empty = Some(container);
        self.empty.as_mut()
    }

    #[inline]
    fn finish(&mut self) -> Option<&mut Vec<T>> {
        if !self.current.is_empty() {
            self.pending.push_back(std::mem::take(&mut self.current));
        }
        self.empty = self.pending.pop_front();
        self.empty.as_mut()
    }
}

impl<T: 'static> LengthPreservingContainerBuilder for RowBatches<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row comes out once, in order, in containers of the batch size but the
    /// last.
    #[test]
    fn rows_come_out_in_order_in_full_batches() {
        let mut builder = RowBatches::<[u8; 1400]>::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..1000u32 {
            builder.push_into([(i % 251) as u8; 1400]);
            while let Some(c) = builder.extract() {
                sizes.push(c.len());
                out.extend(c.drain(..).map(|r| r.to_vec()));
            }
        }
        while let Some(c) = builder.finish() {
            sizes.push(c.len());
            out.extend(c.drain(..).map(|r| r.to_vec()));
        }
        assert_eq!(sizes, vec![256, 256, 256, 232]);
        assert_eq!(out.len(), 1000);
        assert!(out.iter().enumerate().all(|(i, r)| r[0] == (i % 251) as u8));
        // Small records keep timely's larger count.
        assert_eq!(RowBatches::<u8>::ROWS, 8192);
    }
}
