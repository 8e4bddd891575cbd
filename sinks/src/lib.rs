//! Where meshflow's results go.
//!
//! - [`parquet`]: one folder per table, Hive partitions by event date and hour,
//!   zstd, files written under a temporary name and renamed when complete.

pub mod parquet;
