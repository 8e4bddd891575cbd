//! Configuration of the Parquet sink.

use std::path::PathBuf;
use std::time::Duration;

use meshflow_schemas::HumanDuration;
use serde::{Deserialize, Serialize};

use super::SinkError;

/// What to do with a table folder that already holds output from an earlier run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Remove the table's earlier output when the job starts (the default).
    #[default]
    Overwrite,
    /// Refuse to start if the table folder already holds Parquet files.
    ErrorIfExists,
}

/// The `[sinks.parquet]` section: where and how output tables are written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetSinkConfig {
    /// Output directory; each table gets its own folder below it.
    pub path: PathBuf,
    /// Rows per row group (the unit a reader can skip or give to one worker).
    pub row_group_rows: usize,
    /// Event-time span covered by one file; must be whole seconds and divide an hour,
    /// so a file never crosses an hour partition.
    pub roll_interval: HumanDuration,
    /// Files per span. Rows go to bucket `node % buckets`, independent of the worker
    /// count, so the same input gives the same files on any number of workers.
    pub buckets: u32,
    /// What to do with earlier output.
    pub mode: WriteMode,
    /// zstd compression level (1 to 22). The default, 1, compresses `node_features` as
    /// small as 3 does, for 7 % less CPU in a 10k-node replay (benchmarks/README.md,
    /// session 23); at 100k nodes a worker waited on the encoders at 3.
    pub zstd_level: i32,
    /// Also write the input telemetry the sources carry (per-node metrics, TCP events,
    /// system-call latencies) as tables `node_metrics`, `tcp_events`, `syscall_latency`.
    pub inputs: bool,
    /// Keep a file open past the end of its roll interval, within the hour, until it
    /// holds `row_group_rows` rows. Not a configuration key: the job sets it when no
    /// source is live (replays, a simulator as fast as possible), where nobody waits
    /// for a file to appear and a
    /// sparse trace otherwise became thousands of files of a few rows (each costing
    /// the writer far more than its rows; see benchmarks/README.md).
    #[serde(skip)]
    pub coalesce: bool,
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("meshflow-out"),
            row_group_rows: 128 * 1024,
            roll_interval: HumanDuration::from_secs(60),
            buckets: 2,
            mode: WriteMode::Overwrite,
            zstd_level: 1,
            inputs: false,
            coalesce: false,
        }
    }
}

impl ParquetSinkConfig {
    /// Checks every value, naming the key and the reason on failure.
    pub fn validate(&self) -> Result<(), SinkError> {
        let bad = |key: &str, reason: String| {
            Err(SinkError::Config {
                key: key.to_string(),
                reason,
            })
        };
        if self.row_group_rows == 0 {
            return bad("row_group_rows", "must be at least 1".into());
        }
        let roll = self.roll_interval.0;
        if roll < Duration::from_secs(1) || roll.subsec_nanos() != 0 || 3600 % roll.as_secs() != 0 {
            return bad(
                "roll_interval",
                format!(
                    "is {}; it must be whole seconds that divide 1h (e.g. 1m, 5m, 1h)",
                    self.roll_interval
                ),
            );
        }
        if self.buckets == 0 || self.buckets > 1024 {
            return bad(
                "buckets",
                format!("is {}; it must be between 1 and 1024", self.buckets),
            );
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad(
                "zstd_level",
                format!("is {}; it must be between 1 and 22", self.zstd_level),
            );
        }
        if self.path.as_os_str().is_empty() {
            return bad("path", "must not be empty".into());
        }
        Ok(())
    }
}
