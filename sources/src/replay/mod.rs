//! Replay of historical Parquet traces.
//!
//! A trace is a folder with one sub-folder per event kind (`flows/`, `node_metrics/`,
//! `tcp_events/`, ..., plus `ground_truth/` from the simulator), each holding Parquet
//! files, possibly in Hive partitions. [`ReplayPlan`] lists a table's row groups by
//! their earliest event time (from the footer statistics) and deals them round-robin
//! to workers, so every worker reads its own share and all advance through event time
//! together. A worker reads row groups that overlap in time (a sink's buckets of the
//! same minutes) together, so none of their rows falls behind the watermark.
//!
//! A replay may be limited to a [`TimeRange`]: the plan skips row groups whose footer
//! statistics lie outside it and marks those that straddle it for row filtering.
//! [`ReplayWorker`] reads one worker's share, as fast as possible or paced by event
//! time against the wall clock.

mod plan;
mod range;
mod read;
mod rows;
mod trace;
mod worker;

pub use plan::{ReplayPlan, ReplayUnit, SkippedFile};
pub use range::{Overlap, TimeRange};
pub use read::{FLOW_COLUMNS, FlowColumns, read_flow_columns};
pub use rows::ReplayRows;
pub use trace::{TracePlan, TraceReader};
pub use worker::ReplayWorker;

use std::path::PathBuf;

/// Why a trace cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The trace folder or table folder is missing or unreadable.
    #[error("{path}: {reason}")]
    Trace {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One file is corrupt or does not match the table's schema.
    #[error(
        "bad file {path}: {reason} (use --skip-bad-files, or skip_bad_files = true in a replay source, to replay the rest)"
    )]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
