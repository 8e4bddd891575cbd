//! A buffer that grows by fixed-size chunks instead of doubling.
//!
//! The operators buffer a whole slide's updates until the frontier passes its time.
//! A vector grown by doubling holds up to twice what it needs, and three times
//! while it reallocates: at 100k nodes that was about 800 MB of the peak heap.

/// Items per chunk.
const CHUNK: usize = 4096;

/// Items in chunks of [`CHUNK`], each allocated at its full size once.
#[derive(Debug)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self { chunks: Vec::new() }
    }
}

impl<T> Chunked<T> {
    /// Appends `item`, starting a chunk when the last one is full.
    pub fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => chunk.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunks, in the order their items were pushed.
    pub fn chunks(&self) -> &[Vec<T>] {
        &self.chunks
    }

    /// The chunks, mutably, in the order their items were pushed.
    pub fn chunks_mut(&mut self) -> &mut [Vec<T>] {
        &mut self.chunks
    }

    /// The items in one vector of exactly their number, each chunk freed once moved.
    pub fn into_vec(self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.len());
        for chunk in self.chunks {
            all.extend(chunk);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, Chunked};

    #[test]
    fn items_keep_their_order_across_chunks() {
        let mut c = Chunked::default();
        assert!(c.is_empty());
        let n = 2 * CHUNK + 3;
        for i in 0..n {
            c.push(i);
        }
        assert_eq!(c.len(), n);
        assert_eq!(c.chunks().len(), 3);
        assert!(c.chunks().iter().all(|chunk| chunk.capacity() == CHUNK));
        let all = c.into_vec();
        assert_eq!(all.capacity(), n);
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }
}
