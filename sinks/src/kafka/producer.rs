//! The transport: one worker's transactional (or idempotent) producer of one table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshflow_schemas::Counters;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::admin::{
    ProgressRecord, TracingContext, client_config, last_committed, topic_partitions,
};
use super::partition::partition_of;
use super::{KafkaSinkConfig, KafkaSinkError};

/// One encoded data record: key and value bytes.
pub type Encoded = (Vec<u8>, Vec<u8>);

/// Delivery reports, shared with librdkafka's polling thread.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Vec<usize>>,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        TracingContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((e, _)) = result {
            self.0.errors.fetch_add(1, Ordering::Relaxed);
            self.0.failed.lock().expect("deliveries lock").push(index);
            *self.0.last_error.lock().expect("deliveries lock") = Some(e.to_string());
        }
    }
}

/// Writes one table's windows for one worker, each window atomically (one
/// transaction holding the rows and a [`ProgressRecord`]) when transactions are on.
pub struct WindowProducer {
    cfg: KafkaSinkConfig,
    producer: ThreadedProducer<Context>,
    deliveries: Arc<Deliveries>,
    table: String,
    topic: String,
    progress_topic: String,
    writer: String,
    worker: usize,
    peers: usize,
    /// The data topic's partition count (records go to [`partition_of`] their key).
    partitions: i32,
    committed: Option<u64>,
    counters: Arc<Counters>,
    commit_delay: Option<Duration>,
}

/// Fault injection for tests: `MESHFLOW_KAFKA_COMMIT_DELAY_MS` holds every
/// transaction open that long before committing it, so a test can kill the job while
/// transactions are open.
pub const COMMIT_DELAY_ENV: &str = "MESHFLOW_KAFKA_COMMIT_DELAY_MS";

impl WindowProducer {
    /// Opens the writer of `table` for worker `worker` of `peers`: reads the newest
    /// window it already committed, then (with transactions) fences any earlier
    /// instance of it, aborting that instance's open transaction.
    pub fn open(
        cfg: &KafkaSinkConfig,
        table: &str,
        worker: usize,
        peers: usize,
        counters: Arc<Counters>,
    ) -> Result<Self, KafkaSinkError> {
        let writer = cfg.transactional_id(table, worker);
        let committed = last_committed(cfg, table, worker, peers)?;
        let (producer, deliveries) = Self::producer(cfg, &writer)?;
        let topic = cfg.topic(table);
        let partitions = topic_partitions(producer.client(), &topic, cfg.timeout.0)?;
        Ok(Self {
            cfg: cfg.clone(),
            producer,
            deliveries,
            table: table.into(),
            topic,
            progress_topic: cfg.progress_topic(table),
            writer,
            worker,
            peers,
            partitions,
            committed,
            counters,
            commit_delay: std::env::var(COMMIT_DELAY_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
        })
    }

    fn producer(
        cfg: &KafkaSinkConfig,
        writer: &str,
    ) -> Result<(ThreadedProducer<Context>, Arc<Deliveries>), KafkaSinkError> {
        let deliveries = Arc::<Deliveries>::default();
        let mut c = client_config(&cfg.brokers, &cfg.properties);
        c.set("enable.idempotence", "true");
        if cfg.transactions {
            c.set("transactional.id", writer);
        }
        let producer: ThreadedProducer<Context> = c
            .create_with_context(Context(deliveries.clone()))
            .map_err(|e| KafkaSinkError::kafka("creating the producer", e))?;
        if cfg.transactions {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match producer.init_transactions(cfg.timeout.0) {
                    Ok(()) => break,
                    Err(e) if attempt < cfg.retries && !is_fatal(&e) => {
                        tracing::warn!("{writer}: initialising transactions failed, retrying: {e}");
                        std::thread::sleep(cfg.retry_backoff.0);
                    }
                    Err(e) => return Err(KafkaSinkError::kafka("initialising transactions", e)),
                }
            }
        }
        Ok((producer, deliveries))
    }

    /// The newest window committed (by this run or an earlier one), if any.
    pub fn committed(&self) -> Option<u64> {
        self.committed
    }

    /// The topic written.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The data topic's partition count: a record keyed `k` goes to
    /// `partition_of(k, partitions)`, written by worker `writer_of` that partition.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Writes one closed window's records (already encoded), with its progress record.
    /// A window at or before [`WindowProducer::committed`] was written by an earlier
    /// run: it is skipped (its rows counted as dropped) and `Ok(false)` is returned.
    /// Failed attempts are counted as errors and retried `retries` times.
    pub fn write_window(&mut self, window: u64, rows: &[Encoded]) -> Result<bool, KafkaSinkError> {
        self.counters.add_received(rows.len() as u64);
        if self.committed.is_some_and(|c| window <= c) {
            self.counters.add_dropped(rows.len() as u64);
            return Ok(false);
        }
        let progress = serde_json::to_vec(&ProgressRecord {
            table_tag: ProgressRecord::TABLE.into(),
            version: ProgressRecord::VERSION,
            writer: self.writer.clone(),
            table: self.table.clone(),
            topic: self.topic.clone(),
            worker: self.worker,
            peers: self.peers,
            window,
            rows: rows.len() as u64,
        })
        .expect("progress serialises");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = if self.cfg.transactions {
                self.try_transaction(rows, &progress)
            } else {
                self.try_idempotent(rows, &progress)
            };
            match result {
                Ok(()) => {
                    self.committed = Some(window);
                    self.counters.add_sent(rows.len() as u64);
                    return Ok(true);
                }
                Err(e) => {
                    self.counters.add_errored(1);
                    if attempt >= self.cfg.retries {
                        return Err(KafkaSinkError::Window {
                            writer: self.writer.clone(),
                            window,
                            attempts: attempt,
                            message: e.to_string(),
                        });
                    }
                    tracing::warn!(
                        "{}: window {window} attempt {attempt} failed, retrying: {e}",
                        self.writer
                    );
                    std::thread::sleep(self.cfg.retry_backoff.0);
                    if e.fatal {
                        // Whether the failed transaction committed is unknown: read the
                        // progress records again (before fencing, which aborts it if open).
                        let reopen = || -> Result<_, KafkaSinkError> {
                            let committed =
                                last_committed(&self.cfg, &self.table, self.worker, self.peers)?;
                            let (producer, deliveries) = Self::producer(&self.cfg, &self.writer)?;
                            Ok((committed, producer, deliveries))
                        };
                        let (committed, producer, deliveries) =
                            reopen().map_err(|e| KafkaSinkError::Window {
                                writer: self.writer.clone(),
                                window,
                                attempts: attempt,
                                message: format!("reopening after a fatal error: {e}"),
                            })?;
                        self.producer = producer;
                        self.deliveries = deliveries;
                        self.committed = committed;
                        if committed.is_some_and(|c| window <= c) {
                            self.counters.add_sent(rows.len() as u64);
                            return Ok(true);
                        }
                    }
                }
            }
        }
    }

    /// Delivery errors reported by librdkafka since the writer opened (each failed
    /// record once per failed attempt).
    pub fn delivery_errors(&self) -> u64 {
        self.deliveries.errors.load(Ordering::Relaxed)
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    fn send(&self, topic: &str, key: &[u8], value: &[u8], index: usize) -> Result<(), Attempt> {
        let mut record = BaseRecord::with_opaque_to(topic, index)
            .key(key)
            .payload(value);
        record = record.partition(if topic == self.progress_topic {
            self.worker as i32
        } else {
            partition_of(key, self.partitions)
        });
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(Attempt::from(e)),
            }
        }
    }

    fn try_transaction(&self, rows: &[Encoded], progress: &[u8]) -> Result<(), Attempt> {
        self.deliveries.failed.lock().expect("lock").clear();
        self.producer.begin_transaction().map_err(Attempt::from)?;
        let sent = (|| {
            for (i, (key, value)) in rows.iter().enumerate() {
                self.send(&self.topic, key, value, i)?;
            }
            self.send(
                &self.progress_topic,
                self.writer.as_bytes(),
                progress,
                usize::MAX,
            )?;
            if let Some(delay) = self.commit_delay {
                std::thread::sleep(delay);
            }
            // A commit that timed out may have completed on the broker: it is retried,
            // never aborted (aborting it could not undo it, and the window would be
            // written twice).
            let mut tries = 0;
            loop {
                tries += 1;
                match self.producer.commit_transaction(self.cfg.timeout.0) {
                    Ok(()) => return Ok(()),
                    Err(e) if is_retriable(&e) && tries < self.cfg.retries => {
                        self.counters.add_errored(1);
                        tracing::warn!("{}: commit failed, retrying it: {e}", self.writer);
                        std::thread::sleep(self.cfg.retry_backoff.0);
                    }
                    Err(e) => return Err(Attempt::from(e)),
                }
            }
        })();
        let Err(e) = sent else { return Ok(()) };
        if e.fatal {
            return Err(e);
        }
        // Abort until the broker confirms it: a new transaction cannot begin before.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.producer.abort_transaction(self.cfg.timeout.0) {
                Ok(()) => return Err(e),
                Err(abort) => {
                    let abort = Attempt::from(abort);
                    if abort.fatal || tries >= self.cfg.retries {
                        return Err(Attempt {
                            fatal: true,
                            message: format!("{e}; then aborting failed: {abort}"),
                        });
                    }
                    std::thread::sleep(self.cfg.retry_backoff.0);
                }
            }
        }
    }

    fn try_idempotent(&self, rows: &[Encoded], progress: &[u8]) -> Result<(), Attempt> {
        let mut pending: Vec<usize> = {
            let failed = std::mem::take(&mut *self.deliveries.failed.lock().expect("lock"));
            if failed.is_empty() {
                (0..=rows.len()).collect()
            } else {
                failed
            }
        };
        pending.sort_unstable();
        for &i in &pending {
            match rows.get(i) {
                Some((key, value)) => self.send(&self.topic, key, value, i)?,
                None => self.send(
                    &self.progress_topic,
                    self.writer.as_bytes(),
                    progress,
                    rows.len(),
                )?,
            }
        }
        self.producer
            .flush(self.cfg.timeout.0)
            .map_err(Attempt::from)?;
        let failed = self.deliveries.failed.lock().expect("lock").len();
        if failed > 0 {
            let last = self.deliveries.last_error.lock().expect("lock").clone();
            return Err(Attempt {
                fatal: false,
                message: format!(
                    "{failed} records not delivered (they are resent): {}",
                    last.unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Flushes whatever is still in flight (nothing, with transactions: every window
    /// was committed before `write_window` returned).
    pub fn finish(&self) -> Result<(), KafkaSinkError> {
        self.producer
            .flush(self.cfg.timeout.0)
            .map_err(|e| KafkaSinkError::kafka("flushing at shutdown", e))
    }
}

/// One failed attempt.
#[derive(Debug)]
struct Attempt {
    fatal: bool,
    message: String,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<KafkaError> for Attempt {
    fn from(e: KafkaError) -> Self {
        Attempt {
            fatal: is_fatal(&e),
            message: e.to_string(),
        }
    }
}

/// Whether the operation may simply be tried again (a timeout, a broker away).
fn is_retriable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_retriable(),
        KafkaError::Flush(_) => true,
        _ => false,
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_fatal(),
        _ => matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced)
        ),
    }
}
