//! Where meshflow's results go.
//!
//! - [`parquet`]: one folder per table, Hive partitions by event date and hour,
//!   zstd, files written under a temporary name and renamed when complete.
//! - [`kafka`]: one topic per table, JSON values, one transaction per closed window.

pub mod kafka;
pub mod parquet;
