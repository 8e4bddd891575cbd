//! Everything around producing: the progress record, client settings and logging,
//! topic creation and metadata, and reading back the last committed window.

use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{KafkaSinkConfig, KafkaSinkError};

/// The progress record committed with every window, in the progress topic, keyed by
/// the writer's transactional id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressRecord {
    /// Always `"kafka_progress"`.
    #[serde(rename = "_table")]
    pub table_tag: String,
    /// Schema version of this record (1).
    #[serde(rename = "_version")]
    pub version: u32,
    /// The writer's transactional id.
    pub writer: String,
    /// The table written.
    pub table: String,
    /// Its topic.
    pub topic: String,
    /// The writing worker's index.
    pub worker: usize,
    /// Workers in the job.
    pub peers: usize,
    /// The window (timely time, in epochs) this record closes.
    pub window: u64,
    /// Data records written for it by this worker.
    pub rows: u64,
}

impl ProgressRecord {
    /// The `_table` tag of progress records.
    pub const TABLE: &'static str = "kafka_progress";
    /// Their schema version.
    pub const VERSION: u32 = 1;
}

/// librdkafka's callbacks, logging through `tracing`; the end of a partition, which
/// librdkafka reports as an error, is an ordinary event here.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    // Logged under the target `librdkafka`: the sink's and the source's clients share
    // this context.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac}: {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{fac}: {log_message}")
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            // Reaching a partition's end is how a reader knows it is done, not an error.
            KafkaError::PartitionEOF(_)
            | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF) => {
                tracing::trace!(target: "librdkafka", "{reason}")
            }
            e => tracing::error!(target: "librdkafka", "{e}: {reason}"),
        }
    }
}

impl ConsumerContext for TracingContext {}

/// The librdkafka configuration shared by every client: brokers and the user's
/// pass-through properties.
pub fn client_config(
    brokers: &str,
    properties: &std::collections::BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// Creates `topics` (name, partitions) that do not exist yet.
pub fn create_topics(
    cfg: &KafkaSinkConfig,
    topics: &[(String, i32)],
) -> Result<(), KafkaSinkError> {
    let admin: AdminClient<TracingContext> = client_config(&cfg.brokers, &cfg.properties)
        .create_with_context(TracingContext)
        .map_err(|e| KafkaSinkError::kafka("creating the admin client", e))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(-1)))
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(cfg.timeout.0))
        .request_timeout(Some(cfg.timeout.0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaSinkError::Broker {
            action: "starting the admin runtime".into(),
            message: e.to_string(),
        })?;
    let results = runtime
        .block_on(admin.create_topics(&new, &opts))
        .map_err(|e| {
            let timed_out = matches!(e, KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut));
            let mut e = KafkaSinkError::kafka(&format!("creating topics on `{}`", cfg.brokers), e);
            if timed_out && let KafkaSinkError::Broker { message, .. } = &mut e {
                message.push_str(&format!(
                    " (no broker answered within {}: check `brokers`, and the \
                     security.protocol and sasl.* properties against the broker's \
                     listener)",
                    cfg.timeout
                ));
            }
            e
        })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaSinkError::Broker {
                    action: format!("creating topic `{topic}`"),
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The newest window committed by worker `worker`'s writer of `table`, read from its
/// own partition (`worker`) of the table's progress topic with `read_committed`
/// isolation. A transaction still open in that partition can only be this writer's
/// own (from a previous instance): it is not visible, and fencing aborts it. (With one
/// shared partition, another writer's open transaction would hide records committed
/// after it.)
/// Records written for another topic or by a job with another worker count are
/// refused: skipping "committed" windows then would lose them.
pub fn last_committed(
    cfg: &KafkaSinkConfig,
    table: &str,
    worker: usize,
    peers: usize,
) -> Result<Option<u64>, KafkaSinkError> {
    let writer = cfg.transactional_id(table, worker);
    let consumer: BaseConsumer<TracingContext> = client_config(&cfg.brokers, &cfg.properties)
        .set("group.id", format!("{writer}-progress-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create_with_context(TracingContext)
        .map_err(|e| KafkaSinkError::kafka("creating the progress reader", e))?;
    let topic = &cfg.progress_topic(table);
    let metadata = consumer
        .fetch_metadata(Some(topic), cfg.timeout.0)
        .map_err(|e| KafkaSinkError::kafka("reading progress topic metadata", e))?;
    let partitions = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().len())
        .sum::<usize>();
    if partitions == 0 {
        return Ok(None);
    }
    if partitions <= worker {
        return Err(KafkaSinkError::Broker {
            action: format!("reading progress topic `{topic}`"),
            message: format!(
                "it has {partitions} partitions, one per worker of the job that created it; \
                 worker {worker} has none (the worker count must not change between runs)"
            ),
        });
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, worker as i32, Offset::Beginning)
        .map_err(|e| KafkaSinkError::kafka("assigning the progress partition", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| KafkaSinkError::kafka("assigning the progress partition", e))?;
    let partitions = [worker as i32];
    let mut at_end = std::collections::BTreeSet::new();
    let mut newest = None;
    let deadline = Instant::now() + cfg.timeout.0;
    while at_end.len() < partitions.len() {
        if Instant::now() > deadline {
            return Err(KafkaSinkError::Broker {
                action: format!("reading progress topic `{topic}`"),
                message: format!("did not reach its end within {}", cfg.timeout),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(KafkaSinkError::kafka("reading progress", e)),
            Some(Ok(m)) => {
                if m.key() != Some(writer.as_bytes()) {
                    continue;
                }
                let Some(payload) = m.payload() else { continue };
                match serde_json::from_slice::<ProgressRecord>(payload) {
                    Ok(p) if p.topic != cfg.topic(table) || p.peers != peers => {
                        return Err(KafkaSinkError::Broker {
                            action: format!("reading progress topic `{topic}`"),
                            message: format!(
                                "{writer} committed windows to topic `{}` with {} worker(s); \
                                 this job writes `{}` with {peers}: skipping its windows as \
                                 committed would lose them. Give this job its own \
                                 `progress_topic` and `transactional_id`, or keep the topic \
                                 and worker count",
                                p.topic,
                                p.peers,
                                cfg.topic(table)
                            ),
                        });
                    }
                    Ok(p) => newest = newest.max(Some(p.window)),
                    Err(e) => tracing::warn!(
                        "progress topic `{topic}` partition {} offset {}: unreadable record skipped: {e}",
                        m.partition(),
                        m.offset()
                    ),
                }
            }
        }
    }
    Ok(newest)
}

/// The number of partitions of `topic`, which must exist.
pub(super) fn topic_partitions<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, KafkaSinkError> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| KafkaSinkError::kafka(&format!("reading metadata of `{topic}`"), e))?;
    let partitions = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .sum::<usize>();
    if partitions == 0 {
        return Err(KafkaSinkError::Broker {
            action: format!("topic `{topic}`"),
            message: "does not exist or has no partitions (create it, or set create_topics = true)"
                .into(),
        });
    }
    Ok(partitions as i32)
}
