//! `meshflow sim`: write a simulator trace (one folder per event kind, plus ground truth).

use std::path::Path;

use meshflow_schemas::{ArrowRecord, Counters, FlowRecord, GroundTruth, NodeMetric, TcpEvent};
use meshflow_sinks::parquet::{
    ParquetSinkConfig, SinkError, TableWriter, prepare_table_dir, write_table,
};
use meshflow_sources::simulator::{SimConfig, Simulator, Tick};

use crate::import::ImportReport;
use crate::import::trace::write_whole;

/// Rows written per table by [`write_trace`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceCounts {
    /// Flow records.
    pub flows: u64,
    /// Node metric samples.
    pub metrics: u64,
    /// TCP events.
    pub tcp_events: u64,
    /// Injected faults.
    pub faults: u64,
    /// Tables of an earlier trace removed from the output folder.
    pub removed: Vec<&'static str>,
    /// What the user should know (a folder left as it was), each said once.
    pub warnings: Vec<String>,
}

/// Generates the whole simulation into `out` as a replayable trace. It is written
/// aside and swapped in whole, as an import is ([`write_whole`]): the folder then
/// holds exactly this trace, or, if writing failed, what it held before.
pub fn write_trace(cfg: SimConfig, out: &Path) -> anyhow::Result<TraceCounts> {
    let sim = Simulator::new(cfg)?;
    let mut report = ImportReport::default();
    let mut counts = write_whole(out, &TRACE_TABLES, &mut report, |dir| {
        write_tables(&sim, dir)
    })?;
    counts.removed = report.removed;
    counts.warnings = report.warnings;
    Ok(counts)
}

/// The tables of a simulator trace.
const TRACE_TABLES: [&str; 4] = [
    FlowRecord::TABLE,
    NodeMetric::TABLE,
    TcpEvent::TABLE,
    GroundTruth::TABLE,
];

/// Writes the simulation's tables ([`TRACE_TABLES`]) into the folder `out`.
fn write_tables(sim: &Simulator, out: &Path) -> Result<TraceCounts, SinkError> {
    let sink = ParquetSinkConfig {
        path: out.to_path_buf(),
        buckets: 1,
        ..Default::default()
    };
    let mut flows = writer::<FlowRecord>(out, &sink)?;
    let mut metrics = writer::<NodeMetric>(out, &sink)?;
    let mut tcp = writer::<TcpEvent>(out, &sink)?;
    let mut partition = sim.partition(0, 1);
    let mut tick = Tick::default();
    let mut counts = TraceCounts::default();
    while partition.next_tick(&mut tick) {
        counts.flows += tick.flows.len() as u64;
        counts.metrics += tick.metrics.len() as u64;
        counts.tcp_events += tick.tcp_events.len() as u64;
        tick.metrics.sort_by_key(|m| (m.time, m.node));
        tick.tcp_events.sort_by_key(|e| (e.time, e.node));
        flows.write(tick.flows.drain(..))?;
        metrics.write(tick.metrics.drain(..))?;
        tcp.write(tick.tcp_events.drain(..))?;
    }
    flows.finish()?;
    metrics.finish()?;
    tcp.finish()?;
    counts.faults = sim.ground_truth().len() as u64;
    write_table(out, sim.ground_truth().to_vec(), &sink)?;
    Ok(counts)
}

fn writer<R: ArrowRecord>(
    out: &Path,
    sink: &ParquetSinkConfig,
) -> Result<TableWriter<R>, SinkError> {
    let dir = prepare_table_dir(out, R::TABLE, sink.mode)?;
    Ok(TableWriter::new(dir, 0, sink, Counters::shared()))
}
