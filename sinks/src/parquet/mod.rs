//! The Parquet sink: durable, partitioned, never partial.
//!
//! Layout: `OUT/TABLE/date=YYYY-MM-DD/hour=HH/part-<span start, unix s>-<bucket>.parquet`.
//! Each file holds one bucket's rows for one roll interval of event time, sorted as
//! the caller delivered them. A file is written as `.NAME.tmp` in the same folder,
//! synced, and renamed when complete, so readers never see a half-written file and
//! a crash leaves only a hidden temporary file, removed at the next start.

mod compact;
mod config;
mod encoder;
mod windows;
mod writer;

pub use compact::{CompactReport, compact_table, left_inputs};
pub use config::{ParquetSinkConfig, WriteMode};
pub use windows::WindowWriter;
pub use writer::{TableWriter, prepare_table_dir, write_table};

use std::path::PathBuf;

/// Why the Parquet sink could not write.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A configuration value is invalid.
    #[error("sinks.parquet.{key} {reason}")]
    Config {
        /// The offending key.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Encoding Parquet failed.
    #[error("writing {path}: {source}")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: datafusion::parquet::errors::ParquetError,
    },
    /// The table folder already holds output and the mode forbids replacing it.
    #[error("{path} already holds output; remove it or set sinks.parquet.mode = \"overwrite\"")]
    Exists {
        /// The table folder.
        path: PathBuf,
    },
    /// Rows arrived out of event-time order for one writer.
    #[error("table {table}: a row at {time} arrived after the file for a later span was opened")]
    OutOfOrder {
        /// The table.
        table: &'static str,
        /// The late row's event time.
        time: meshflow_schemas::TimestampNs,
    },
}

#[cfg(test)]
mod tests;
