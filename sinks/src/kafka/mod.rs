//! The Kafka sink: one topic per table, JSON values, exactly once per window.
//!
//! Transport is kept apart from format: records are encoded by
//! [`meshflow_schemas::json`] (one tagged object per record, with its schema version)
//! and handed to a [`WindowProducer`] as bytes.
//!
//! With `transactions = true` (the default) each worker's writer of a table has its
//! own transactional id, `<transactional_id>-<table>-<worker>`, and writes every
//! closed window as one Kafka transaction holding the window's rows and a
//! [`ProgressRecord`] in the progress topic. A restarted job reads the newest
//! committed progress record of each writer *before* fencing the previous instance,
//! then skips the windows it finds: no window is committed twice, and the window that
//! was open at a crash is aborted and written again.
//!
//! Every partition of a data topic has one writer ([`partition_of`], [`writer_of`]),
//! so the transactions of different workers never interleave in a partition.

mod admin;
mod config;
mod partition;
mod producer;
#[cfg(test)]
mod tests;

pub use admin::{ProgressRecord, TracingContext, client_config, create_topics, last_committed};
pub use config::KafkaSinkConfig;
pub use partition::{murmur2, partition_of, writer_of};
pub use producer::{COMMIT_DELAY_ENV, Encoded, WindowProducer};

/// Why the Kafka sink failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    /// A configuration value is invalid.
    #[error("sinks.kafka.{key} {reason}")]
    Config {
        /// The offending key.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A broker operation failed.
    #[error("Kafka sink: {action}: {message}")]
    Broker {
        /// What was being done.
        action: String,
        /// librdkafka's message.
        message: String,
    },
    /// A window could not be written after every attempt.
    #[error(
        "Kafka sink {writer}: window {window} not written after {attempts} attempts: {message}"
    )]
    Window {
        /// The writer's transactional id.
        writer: String,
        /// The window.
        window: u64,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
}

impl KafkaSinkError {
    fn kafka(action: &str, e: rdkafka::error::KafkaError) -> Self {
        KafkaSinkError::Broker {
            action: action.into(),
            message: describe(&e),
        }
    }
}

/// librdkafka's message for `e`, without the value of a refused client property
/// (its own message repeats it, and it may be a password).
pub fn describe(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, message, key, _) => {
            format!("client property `{key}` refused: {message}")
        }
        other => other.to_string(),
    }
}
