//! `type = "kafka"`: which topics to read and how.

use std::collections::BTreeMap;

use meshflow_schemas::HumanDuration;
use serde::{Deserialize, Serialize};

/// Where a partition without a committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// The oldest retained record.
    #[default]
    Earliest,
    /// Only records produced after the job started.
    Latest,
}

/// Configuration of a Kafka source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics to read; each record is one tagged JSON object of `flows`,
    /// `node_metrics`, `tcp_events` or `syscall_latency` (the Kafka sink's encoding).
    pub topics: Vec<String>,
    /// Consumer group whose committed offsets say where to resume. Offsets are
    /// committed only once every window that consumed the records has been written.
    pub group_id: String,
    /// Where a partition without a committed offset starts.
    pub start: StartAt,
    /// Stop once every assigned partition has reached the end offset it had when the
    /// job started (a bounded run); otherwise read until the job is stopped.
    pub stop_at_end: bool,
    /// A partition with nothing new for this long no longer holds back the watermark.
    pub idle_timeout: HumanDuration,
    /// Most records taken per read.
    pub max_batch: usize,
    /// Time limit of one broker operation (metadata, offsets).
    pub timeout: HumanDuration,
    /// librdkafka consumer properties passed through unchanged (SASL, TLS, …).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topics: Vec::new(),
            group_id: "meshflow".into(),
            start: StartAt::Earliest,
            stop_at_end: false,
            idle_timeout: HumanDuration::from_secs(5),
            max_batch: 10_000,
            timeout: HumanDuration::from_secs(30),
            properties: BTreeMap::new(),
        }
    }
}

/// Properties the source sets itself.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "auto.offset.reset",
    "enable.partition.eof",
];

/// An invalid value: the key (relative to the source's table) and why.
#[derive(Debug, PartialEq, Eq)]
pub struct KafkaConfigError {
    /// The key.
    pub key: String,
    /// Why it is invalid.
    pub reason: String,
}

impl KafkaSourceConfig {
    /// Checks every value, naming the key.
    pub fn validate(&self) -> Result<(), KafkaConfigError> {
        let err = |key: &str, reason: &str| {
            Err(KafkaConfigError {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if self.brokers.trim().is_empty() {
            return err("brokers", "must not be empty");
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.is_empty()) {
            return err("topics", "must list at least one topic, none empty");
        }
        if self.group_id.is_empty() {
            return err("group_id", "must not be empty");
        }
        if self.idle_timeout.0.is_zero() {
            return err("idle_timeout", "must be positive");
        }
        if self.max_batch == 0 {
            return err("max_batch", "must be at least 1");
        }
        if self.timeout.0.is_zero() {
            return err("timeout", "must be positive");
        }
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| RESERVED.contains(&k.as_str()))
        {
            return err(
                &format!("properties.\"{key}\""),
                "is set by the source itself (use brokers, group_id and start)",
            );
        }
        Ok(())
    }
}
