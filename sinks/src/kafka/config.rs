//! `[sinks.kafka]`: where and how the Kafka sink writes.

use std::collections::BTreeMap;

use meshflow_schemas::{AnomalyScore, ArrowRecord, HumanDuration, INPUT_TABLES, NodeFeatures};
use serde::{Deserialize, Serialize};

use super::KafkaSinkError;

/// The Kafka sink's settings. The sink is on when the section is present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers, `host:port[,host:port…]` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Prefix of each table's topic: table `node_features` goes to
    /// `<topic_prefix>node_features` unless `topics` names it.
    pub topic_prefix: String,
    /// Per-table topic names, overriding `topic_prefix` (`node_features = "nf"`).
    pub topics: BTreeMap<String, String>,
    /// Also write the input tables (`flows`, `node_metrics`, `tcp_events`,
    /// `syscall_latency`) as the dataflow saw them.
    pub inputs: bool,
    /// One Kafka transaction per closed window per worker and table, committing a
    /// progress record with the data (exactly once per window). Off: idempotent
    /// producer, flushed per window (at least once across restarts).
    pub transactions: bool,
    /// Prefix of the transactional ids: `<transactional_id>-<table>-<worker>`. Two jobs
    /// writing the same topics concurrently must use different prefixes.
    pub transactional_id: String,
    /// Prefix of the progress topics: table `T`'s progress records (one per committed
    /// window and worker) go to `<progress_topic>.T`, partition = worker index, so the
    /// topic has one partition per worker of the job.
    pub progress_topic: String,
    /// Create missing topics (data topics with `partitions`, progress topics with one
    /// partition per worker).
    pub create_topics: bool,
    /// Partitions of data topics the sink creates.
    pub partitions: i32,
    /// Time limit of one broker operation (commit, abort, flush, reading progress).
    pub timeout: HumanDuration,
    /// Attempts per window before the job fails with the last error.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_backoff: HumanDuration,
    /// librdkafka properties passed through unchanged (SASL, TLS, compression, …),
    /// e.g. `"security.protocol" = "SASL_SSL"`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "meshflow.".into(),
            topics: BTreeMap::new(),
            inputs: false,
            transactions: true,
            transactional_id: "meshflow".into(),
            progress_topic: "meshflow.progress".into(),
            create_topics: true,
            partitions: 3,
            timeout: HumanDuration::from_secs(30),
            retries: 20,
            retry_backoff: HumanDuration::from_secs(1),
            properties: BTreeMap::new(),
        }
    }
}

/// Properties the sink sets itself; passing them in `properties` would break its
/// guarantees.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "enable.idempotence",
    "transactional.id",
    "isolation.level",
    "enable.auto.commit",
];

impl KafkaSinkConfig {
    /// The topic of `table`.
    pub fn topic(&self, table: &str) -> String {
        self.topics
            .get(table)
            .cloned()
            .unwrap_or_else(|| format!("{}{table}", self.topic_prefix))
    }

    /// The progress topic of `table`.
    pub fn progress_topic(&self, table: &str) -> String {
        format!("{}.{table}", self.progress_topic)
    }

    /// The transactional id of one worker's writer of `table`.
    pub fn transactional_id(&self, table: &str, worker: usize) -> String {
        format!("{}-{table}-{worker}", self.transactional_id)
    }

    /// Checks every value, naming the key.
    pub fn validate(&self) -> Result<(), KafkaSinkError> {
        let invalid = |key: &str, reason: &str| {
            Err(KafkaSinkError::Config {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if self.brokers.trim().is_empty() {
            return invalid("brokers", "must not be empty");
        }
        if self.transactional_id.is_empty() {
            return invalid("transactional_id", "must not be empty");
        }
        if self.progress_topic.is_empty() {
            return invalid("progress_topic", "must not be empty");
        }
        if let Some((table, _)) = self.topics.iter().find(|(_, t)| t.is_empty()) {
            return invalid(&format!("topics.{table}"), "must not be empty");
        }
        let tables: Vec<&str> = [NodeFeatures::TABLE, AnomalyScore::TABLE]
            .into_iter()
            .chain(INPUT_TABLES)
            .collect();
        if let Some(table) = self.topics.keys().find(|t| !tables.contains(&t.as_str())) {
            return invalid(
                &format!("topics.{table}"),
                &format!(
                    "names no table the sink writes; use one of {}",
                    tables.join(", ")
                ),
            );
        }
        if self.partitions < 1 {
            return invalid("partitions", "must be at least 1");
        }
        if self.timeout.0.is_zero() {
            return invalid("timeout", "must be positive");
        }
        if self.retries == 0 {
            return invalid("retries", "must be at least 1");
        }
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return invalid(
                &format!("properties.\"{key}\""),
                "is set by the sink itself (use `brokers` and `transactions`)",
            );
        }
        Ok(())
    }
}
