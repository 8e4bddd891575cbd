//! Which partition a record's key goes to, and so which worker writes it.
//!
//! The partition of a key is Kafka's default for keyed records in its Java client
//! (`murmur2(key) & 0x7fffffff` modulo the partition count), so a Java producer keyed
//! by the same node id picks the same partition. The worker that writes partition `p`
//! is `p % workers`, the same split the Kafka source reads with: every partition has
//! exactly one writer, and a transaction left open by one worker's crash holds back
//! only that worker's partitions.

/// Kafka's murmur2 hash of `data` (seed `0x9747b28c`), as the Java client computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` (at least 1).
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The worker (of `workers`) that writes partition `partition`.
pub fn writer_of(partition: i32, workers: usize) -> usize {
    partition as usize % workers.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Kafka's own test vectors (clients' UtilsTest.testMurmur2).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn partitions_and_writers_are_in_range_and_stable() {
        for partitions in 1..8 {
            for workers in 1..5 {
                for node in 0..200u64 {
                    let key = node.to_string();
                    let p = partition_of(key.as_bytes(), partitions);
                    assert!((0..partitions).contains(&p));
                    assert_eq!(p, partition_of(key.as_bytes(), partitions));
                    assert!(writer_of(p, workers) < workers);
                }
            }
        }
    }
}
