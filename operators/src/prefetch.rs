//! Software prefetching: asks the processor to start loading memory that a later step
//! will read, so the load overlaps the work in between. Operators whose state is
//! larger than the caches and visited in a known order (a slide's keys, a window's
//! nodes) use it to keep the worker busy instead of waiting on memory.

/// Bytes in a cache line.
const LINE: usize = 64;

/// Asks for every cache line of `items` (a hint only: changes nothing else).
#[inline]
pub fn prefetch_slice<T>(items: &[T]) {
    prefetch_bytes(items.as_ptr().cast(), std::mem::size_of_val(items));
}

/// Asks for every cache line of `item` (a hint only: changes nothing else).
#[inline]
pub fn prefetch<T>(item: &T) {
    prefetch_bytes((item as *const T).cast(), std::mem::size_of::<T>());
}

/// Asks for every cache line of the `len` bytes from `start`.
#[inline]
fn prefetch_bytes(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let skew = start as usize % LINE;
        let mut offset = 0;
        while offset < len + skew {
            let line = start.wrapping_sub(skew).wrapping_add(offset);
            // SAFETY: SSE, which `_mm_prefetch` needs, is part of every x86_64
            // processor; a prefetch is only a hint, reads no value and cannot fault,
            // even on an address outside any allocation.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.cast()) };
            offset += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}
