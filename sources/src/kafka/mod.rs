//! Input events from Kafka topics, in the Kafka sink's JSON encoding.
//!
//! Partitions are spread over workers without any coordination of meshflow's own:
//! worker `index` of `peers` reads every partition `p` with `p % peers == index` of
//! every topic (so timely's multi-process mode needs nothing more), by assignment,
//! not by a consumer-group rebalance. Records are read with `read_committed`
//! isolation. Offsets are committed to the consumer group only once every window the
//! records fell into has been written ([`KafkaSource::commit_through`]): a restarted
//! job resumes after the last written window, never before an unwritten one.
//!
//! The watermark is event time: the oldest of the partitions' newest event times,
//! where a partition idle for `idle_timeout` no longer counts, minus the job's
//! lateness (applied by the caller).

mod config;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use meshflow_schemas::json::{self, JsonError};
use meshflow_schemas::{
    ArrowRecord, Counters, FlowRecord, NodeMetric, SyscallLatency, TcpEvent, TimestampNs,
};
use meshflow_sinks::kafka::TracingContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub use config::{KafkaConfigError, KafkaSourceConfig, StartAt};

use crate::SourceBatch;

/// Why the Kafka source failed.
#[derive(Debug, thiserror::Error)]
#[error("Kafka source: {action}: {message}")]
pub struct KafkaSourceError {
    /// What was being done.
    pub action: String,
    /// librdkafka's message.
    pub message: String,
}

impl KafkaSourceError {
    fn new(action: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self {
            action: action.into(),
            message: e.to_string(),
        }
    }
}

/// One assigned partition's reading state.
#[derive(Debug)]
struct PartitionState {
    /// Newest event time read.
    newest: Option<TimestampNs>,
    /// When the last record arrived (or the source started).
    last_record: Instant,
    /// End offset at start (for `stop_at_end`).
    end_at_start: i64,
    /// Whether the partition reached `end_at_start`.
    done: bool,
    /// Offsets awaiting commit: (the time, in epochs, once every window holding the
    /// records before `next_offset` is closed; `next_offset`).
    uncommitted: VecDeque<(u64, i64)>,
}

/// One worker's reader of its partitions.
pub struct KafkaSource {
    consumer: BaseConsumer<TracingContext>,
    cfg: KafkaSourceConfig,
    partitions: BTreeMap<(String, i32), PartitionState>,
    /// Epoch width and window geometry: `retire(e)` is the epoch from which every
    /// window holding epoch `e` is closed.
    retire: Box<dyn Fn(TimestampNs) -> u64 + Send>,
    committed: BTreeMap<(String, i32), i64>,
    finished: bool,
}

impl KafkaSource {
    /// Connects, assigns this worker's partitions (`p % peers == index`) at the
    /// group's committed offsets (or `start`), and records their end offsets.
    /// `retire(t)` is the timely time from which every window holding an event of
    /// time `t` is closed.
    pub fn open(
        cfg: &KafkaSourceConfig,
        index: usize,
        peers: usize,
        retire: Box<dyn Fn(TimestampNs) -> u64 + Send>,
    ) -> Result<Self, KafkaSourceError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set(
                "auto.offset.reset",
                match cfg.start {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                },
            );
        for (k, v) in &cfg.properties {
            c.set(k, v);
        }
        let consumer: BaseConsumer<TracingContext> =
            c.create_with_context(TracingContext).map_err(|e| {
                KafkaSourceError::new("creating the consumer", meshflow_sinks::kafka::describe(&e))
            })?;
        let timeout = cfg.timeout.0;
        let mut tpl = TopicPartitionList::new();
        for topic in &cfg.topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| KafkaSourceError::new(format!("reading metadata of `{topic}`"), e))?;
            let ids: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if ids.is_empty() {
                return Err(KafkaSourceError::new(
                    format!("topic `{topic}`"),
                    "does not exist or has no partitions",
                ));
            }
            for p in ids {
                if p as usize % peers == index {
                    tpl.add_partition(topic, p);
                }
            }
        }
        let committed = consumer
            .committed_offsets(tpl.clone(), timeout)
            .map_err(|e| KafkaSourceError::new("reading committed offsets", e))?;
        let mut assignment = TopicPartitionList::new();
        let mut partitions = BTreeMap::new();
        let now = Instant::now();
        for e in committed.elements() {
            let (low, high) = consumer
                .fetch_watermarks(e.topic(), e.partition(), timeout)
                .map_err(|err| {
                    KafkaSourceError::new(
                        format!("reading end offsets of {}/{}", e.topic(), e.partition()),
                        err,
                    )
                })?;
            let start = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => match cfg.start {
                    StartAt::Earliest => Offset::Beginning,
                    StartAt::Latest => Offset::End,
                },
            };
            let position = match start {
                Offset::Offset(o) => o,
                Offset::End => high,
                _ => low,
            };
            assignment
                .add_partition_offset(e.topic(), e.partition(), start)
                .map_err(|err| KafkaSourceError::new("assigning partitions", err))?;
            partitions.insert(
                (e.topic().to_string(), e.partition()),
                PartitionState {
                    newest: None,
                    last_record: now,
                    end_at_start: high,
                    done: cfg.stop_at_end && position >= high,
                    uncommitted: VecDeque::new(),
                },
            );
        }
        consumer
            .assign(&assignment)
            .map_err(|e| KafkaSourceError::new("assigning partitions", e))?;
        Ok(Self {
            consumer,
            cfg: cfg.clone(),
            partitions,
            retire,
            committed: BTreeMap::new(),
            finished: false,
        })
    }

    /// The partitions this worker reads, as `topic/partition`.
    pub fn assigned(&self) -> Vec<String> {
        self.partitions
            .keys()
            .map(|(t, p)| format!("{t}/{p}"))
            .collect()
    }

    /// Reads up to `max_batch` records into `out`, waiting at most `wait` for the
    /// first. Returns `false` once finished (`stop_at_end` and every partition at its
    /// start-time end). A record that is not a readable event is counted as errored,
    /// logged with its topic, partition and offset, and skipped.
    pub fn poll(
        &mut self,
        out: &mut SourceBatch,
        counters: &Counters,
        wait: Duration,
    ) -> Result<bool, KafkaSourceError> {
        if self.finished {
            return Ok(false);
        }
        let mut taken = 0;
        let mut timeout = wait;
        while taken < self.cfg.max_batch {
            let Some(message) = self.consumer.poll(timeout) else {
                break;
            };
            timeout = Duration::ZERO;
            match message {
                Err(KafkaError::PartitionEOF(_)) => self.check_ends()?,
                Err(e) => return Err(KafkaSourceError::new("reading", e)),
                Ok(m) => {
                    taken += 1;
                    let key = (m.topic().to_string(), m.partition());
                    let time = match m.payload() {
                        Some(bytes) => decode(bytes, out),
                        None => Err(JsonError::Syntax("empty record".into())),
                    };
                    let state = self.partitions.get_mut(&key);
                    let Some(state) = state else { continue };
                    state.last_record = Instant::now();
                    match time {
                        Ok(t) => {
                            counters.add_received(1);
                            state.newest = state.newest.max(Some(t));
                        }
                        Err(e) => {
                            counters.add_errored(1);
                            tracing::warn!(
                                "Kafka source: {}/{} offset {}: record skipped: {e}",
                                key.0,
                                key.1,
                                m.offset()
                            );
                        }
                    }
                    let retire = state.newest.map_or(0, |t| (self.retire)(t));
                    let next = m.offset() + 1;
                    match state.uncommitted.back_mut() {
                        Some(back) if back.0 == retire => back.1 = next,
                        _ => state.uncommitted.push_back((retire, next)),
                    }
                    if self.cfg.stop_at_end && next >= state.end_at_start {
                        state.done = true;
                    }
                }
            }
        }
        // Finished only by a read that found nothing more queued, so records fetched
        // before the end was seen are never left behind.
        if self.cfg.stop_at_end && taken == 0 && self.partitions.values().all(|p| p.done) {
            self.finished = true;
        }
        Ok(!self.finished)
    }

    /// Marks partitions whose position passed their start-time end (control records
    /// of transactions occupy offsets no message is read at).
    fn check_ends(&mut self) -> Result<(), KafkaSourceError> {
        if !self.cfg.stop_at_end {
            return Ok(());
        }
        let position = self
            .consumer
            .position()
            .map_err(|e| KafkaSourceError::new("reading positions", e))?;
        for e in position.elements() {
            if let (Offset::Offset(o), Some(state)) = (
                e.offset(),
                self.partitions
                    .get_mut(&(e.topic().to_string(), e.partition())),
            ) && o >= state.end_at_start
            {
                state.done = true;
            }
        }
        Ok(())
    }

    /// The newest event time below which this worker's partitions will deliver
    /// nothing more (before lateness), or `None` once finished or when no partition
    /// has delivered anything yet and none is idle.
    pub fn watermark(&self) -> Option<TimestampNs> {
        if self.finished {
            return None;
        }
        let idle = self.cfg.idle_timeout.0;
        let active: Vec<Option<TimestampNs>> = self
            .partitions
            .values()
            .filter(|p| !p.done && p.last_record.elapsed() < idle)
            .map(|p| p.newest)
            .collect();
        if active.is_empty() {
            return self.partitions.values().filter_map(|p| p.newest).max();
        }
        active.into_iter().min().flatten()
    }

    /// The event time through which every partition that delivered records has
    /// delivered all it read: the lowest of their newest times. Unlike `watermark`
    /// (which passes over idle and finished partitions to keep a live stream moving),
    /// it depends only on what was read, so where a run ends the windows it calls
    /// complete, and the offsets it commits, are the same however the reads were
    /// timed.
    pub fn read_through(&self) -> Option<TimestampNs> {
        self.partitions.values().filter_map(|p| p.newest).min()
    }

    /// Stops reading (Ctrl-C): `poll` returns `false` from now on; what was read is
    /// committed by `commit_through` once its windows are written.
    pub fn stop(&mut self) {
        self.finished = true;
    }

    /// Whether every partition is finished.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Commits, for every partition, the offsets of records all of whose windows
    /// are closed and written: `frontier` is the written output's frontier (`None`
    /// when everything is written). Asynchronous unless `sync`.
    pub fn commit_through(
        &mut self,
        frontier: Option<u64>,
        sync: bool,
    ) -> Result<(), KafkaSourceError> {
        let mut tpl = TopicPartitionList::new();
        for (key, state) in &mut self.partitions {
            let mut next = None;
            while let Some(&(retire, offset)) = state.uncommitted.front() {
                if frontier.is_some_and(|f| retire > f) {
                    break;
                }
                next = Some(offset);
                state.uncommitted.pop_front();
            }
            if let Some(offset) = next
                && self.committed.get(key) != Some(&offset)
            {
                tpl.add_partition_offset(&key.0, key.1, Offset::Offset(offset))
                    .map_err(|e| KafkaSourceError::new("committing offsets", e))?;
                self.committed.insert(key.clone(), offset);
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.consumer
            .commit(&tpl, mode)
            .map_err(|e| KafkaSourceError::new("committing offsets", e))
    }
}

/// Decodes one record into `out`, returning its event time.
fn decode(bytes: &[u8], out: &mut SourceBatch) -> Result<TimestampNs, JsonError> {
    let table = json::table_of(bytes)?;
    match table.as_str() {
        FlowRecord::TABLE => {
            let f: FlowRecord = json::decode(bytes)?;
            let t = f.event_time();
            out.flows.push(&f);
            out.flow_records.push(f);
            Ok(t)
        }
        NodeMetric::TABLE => {
            let m: NodeMetric = json::decode(bytes)?;
            let t = m.event_time();
            out.metrics.push(m);
            Ok(t)
        }
        TcpEvent::TABLE => {
            let e: TcpEvent = json::decode(bytes)?;
            let t = e.event_time();
            out.tcp.push(e);
            Ok(t)
        }
        SyscallLatency::TABLE => {
            let s: SyscallLatency = json::decode(bytes)?;
            let t = s.event_time();
            out.syscalls.push(s);
            Ok(t)
        }
        _ => Err(JsonError::WrongTable {
            expected: "flows, node_metrics, tcp_events or syscall_latency",
            found: table,
        }),
    }
}
