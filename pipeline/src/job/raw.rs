//! The raw input tables (`flows`, `node_metrics`, `tcp_events`, `syscall_latency`):
//! their entry points on a worker and where they are written.

use std::path::PathBuf;
use std::sync::Arc;

use meshflow_operators::raw::RawInput;
use meshflow_schemas::{ArrowRecord, Counters, FlowRecord, NodeMetric, SyscallLatency, TcpEvent};
use meshflow_sinks::kafka::KafkaSinkConfig;
use meshflow_sinks::parquet::ParquetSinkConfig;
use meshflow_sources::SourceBatch;
use timely::dataflow::operators::Probe;

use super::{KafkaReport, WriteReport, write_kafka, write_parquet};

/// Where one worker writes the raw input tables.
pub(super) struct RawOutputs<'a> {
    /// Kafka sink, when it takes the input tables.
    pub(super) kafka: Option<&'a KafkaSinkConfig>,
    /// Parquet sink settings.
    pub(super) parquet: &'a ParquetSinkConfig,
    /// This worker's index and the worker count.
    pub(super) worker: (usize, usize),
    /// Kafka counters.
    pub(super) kafka_report: &'a Arc<KafkaReport>,
    /// Parquet write counters.
    pub(super) report: &'a Arc<WriteReport>,
    /// The job's probe, which every sink joins.
    pub(super) probe: &'a timely::dataflow::ProbeHandle<u64>,
    /// Where the data's windows stop being complete (`Progress::complete`).
    pub(super) complete: &'a Arc<std::sync::Mutex<Option<u64>>>,
}

impl RawOutputs<'_> {
    /// Writes one raw table to Kafka (when configured for inputs) and to Parquet
    /// (when `dir` is set), keyed and bucketed by `node`.
    pub(super) fn write<'s, R>(
        &self,
        stream: timely::dataflow::Stream<'s, u64, Vec<R>>,
        dir: Option<PathBuf>,
        rows: Arc<Counters>,
        node: fn(&R) -> u64,
    ) where
        R: ArrowRecord + serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    {
        let stream = stream.probe_with(self.probe);
        if let Some(k) = self.kafka {
            let (worker, peers) = self.worker;
            write_kafka(
                stream.clone(),
                k.clone(),
                worker,
                peers,
                self.kafka_report.clone(),
                self.report.clone(),
                node,
                self.complete.clone(),
            )
            .probe_with(self.probe);
        }
        if let Some(dir) = dir {
            write_parquet(
                stream,
                dir,
                self.parquet.clone(),
                rows,
                self.report.clone(),
                move |r: &R, buckets| ((node(r) % u64::from(buckets)) as u32, node(r)),
            );
        }
    }
}

/// The raw input tables' entry points on one worker.
pub(super) struct RawInputs {
    /// Flow records.
    pub(super) flows: RawInput<FlowRecord>,
    /// Metric samples.
    pub(super) metrics: RawInput<NodeMetric>,
    /// TCP events.
    pub(super) tcp: RawInput<TcpEvent>,
    /// System-call latencies.
    pub(super) syscalls: RawInput<SyscallLatency>,
}

impl RawInputs {
    /// Queues the batch's records. A late record is left out here without counting:
    /// the feature input applies the same rule and has counted it.
    pub(super) fn give(&mut self, batch: &mut SourceBatch) {
        for f in batch.flow_records.drain(..) {
            let _ = self.flows.give(f.last_seen, f);
        }
        for m in batch.metrics.drain(..) {
            let _ = self.metrics.give(m.time, m);
        }
        for t in batch.tcp.drain(..) {
            let _ = self.tcp.give(t.time, t);
        }
        for s in batch.syscalls.drain(..) {
            let _ = self.syscalls.give(s.time, s);
        }
    }

    pub(super) fn advance_to_epoch(&mut self, epoch: u64) {
        self.flows.advance_to_epoch(epoch);
        self.metrics.advance_to_epoch(epoch);
        self.tcp.advance_to_epoch(epoch);
        self.syscalls.advance_to_epoch(epoch);
    }

    pub(super) fn close(&mut self) {
        self.flows.close();
        self.metrics.close();
        self.tcp.close();
        self.syscalls.close();
    }
}
