//! A whole trace: every input table planned, and one worker's reader of all of them.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use meshflow_schemas::{
    ArrowRecord, Counters, FlowRecord, INPUT_TABLES, NodeMetric, NodeName, SyscallLatency,
    TcpEvent, TimestampNs, TopologyEdge,
};

use super::{
    FLOW_COLUMNS, ReplayError, ReplayPlan, ReplayRows, ReplayWorker, SkippedFile, TimeRange,
};
use crate::SourceBatch;

/// The plans of a trace's input tables: `flows` (only the columns the dataflow
/// reads, unless whole records are asked for), `node_metrics`, `tcp_events` and
/// `syscall_latency`. A table the trace lacks has an empty plan. A given topology
/// (`edges`, small) is read whole here.
#[derive(Clone, Debug, Default)]
pub struct TracePlan {
    /// Flow records.
    pub flows: ReplayPlan,
    /// Per-node metric samples.
    pub metrics: ReplayPlan,
    /// TCP events.
    pub tcp: ReplayPlan,
    /// System-call latency samples.
    pub syscalls: ReplayPlan,
    /// The trace's given topology (`meshflow import metrics --edges`), sorted; empty
    /// when the trace has none (its topology then comes from its flows).
    pub links: Vec<TopologyEdge>,
    /// The names of the trace's named nodes (`nodes/`, from `meshflow import
    /// metrics`); empty when it has none.
    pub names: Vec<NodeName>,
    /// Whether its readers read whole flow records ([`SourceBatch::flow_records`])
    /// besides the columns the dataflow reads, for a job that writes the `flows`
    /// input table again; the plan then requires every flow column.
    pub whole_flows: bool,
}

impl TracePlan {
    /// Plans every input table of `trace` limited to `range` (see
    /// [`ReplayPlan::in_range`]), reading only the flow columns the dataflow reads.
    pub fn new(trace: &Path, range: TimeRange, skip_bad_files: bool) -> Result<Self, ReplayError> {
        Self::with_whole_flows(trace, range, skip_bad_files, false)
    }

    /// Like [`TracePlan::new`], with `whole_flows` (see [`TracePlan::whole_flows`]).
    pub fn with_whole_flows(
        trace: &Path,
        range: TimeRange,
        skip_bad_files: bool,
        whole_flows: bool,
    ) -> Result<Self, ReplayError> {
        if !trace.is_dir() {
            return Err(ReplayError::Trace {
                path: trace.to_path_buf(),
                reason: if trace.exists() {
                    "is not a trace folder".into()
                } else {
                    "does not exist".into()
                },
            });
        }
        let flow_schema = if whole_flows {
            FlowRecord::schema()
        } else {
            std::sync::Arc::new(
                FlowRecord::schema()
                    .project(
                        &FLOW_COLUMNS
                            .map(|c| FlowRecord::schema().index_of(c).expect("flow column")),
                    )
                    .expect("flow columns exist"),
            )
        };
        let plan = |table: &str, schema, time: &str| {
            ReplayPlan::in_range(trace, table, &schema, time, range, skip_bad_files)
        };
        let plans = Self {
            flows: plan(FlowRecord::TABLE, flow_schema, FlowRecord::TIME_COLUMN)?,
            metrics: plan(
                NodeMetric::TABLE,
                NodeMetric::schema(),
                NodeMetric::TIME_COLUMN,
            )?,
            tcp: plan(TcpEvent::TABLE, TcpEvent::schema(), TcpEvent::TIME_COLUMN)?,
            syscalls: plan(
                SyscallLatency::TABLE,
                SyscallLatency::schema(),
                SyscallLatency::TIME_COLUMN,
            )?,
            links: read_links(trace, skip_bad_files)?,
            names: read_whole(trace, skip_bad_files)?,
            whole_flows,
        };
        let tables = INPUT_TABLES;
        if tables.iter().all(|t| !trace.join(t).is_dir()) {
            // A table's own folder given for the trace's: say which folder is meant.
            let parent = trace.parent().filter(|p| !p.as_os_str().is_empty());
            let hint = match (trace.file_name().and_then(|n| n.to_str()), parent) {
                (Some(name), Some(parent)) if tables.contains(&name) => format!(
                    "; it is the trace's {name} table: give the trace folder, {}",
                    parent.display()
                ),
                _ => String::new(),
            };
            return Err(ReplayError::Trace {
                path: trace.to_path_buf(),
                reason: format!("holds none of the input tables {}{hint}", tables.join(", ")),
            });
        }
        Ok(plans)
    }

    fn all(&self) -> [&ReplayPlan; 4] {
        [&self.flows, &self.metrics, &self.tcp, &self.syscalls]
    }

    /// Rows planned over all tables.
    pub fn rows(&self) -> u64 {
        self.all().iter().map(|p| p.rows()).sum()
    }

    /// Files skipped as bad, over all tables.
    pub fn skipped(&self) -> Vec<SkippedFile> {
        self.all()
            .iter()
            .flat_map(|p| p.skipped.iter().cloned())
            .collect()
    }

    /// The latest event time planned in any table, from row-group statistics; `None`
    /// when the trace is empty or a row group lacks statistics.
    pub fn end(&self) -> Option<TimestampNs> {
        let planned: Vec<&ReplayPlan> = self
            .all()
            .into_iter()
            .filter(|p| !p.units.is_empty())
            .collect();
        if planned.iter().any(|p| p.end.is_none()) {
            return None;
        }
        planned.iter().filter_map(|p| p.end).max()
    }

    /// The earliest event time planned in any table: where paced replay starts.
    pub fn start(&self) -> Option<TimestampNs> {
        self.all().iter().filter_map(|p| p.start).min()
    }
}

/// Every link of `trace/edges` (all of them: a link valid before `--from` still holds).
fn read_links(trace: &Path, skip_bad_files: bool) -> Result<Vec<TopologyEdge>, ReplayError> {
    let mut links: Vec<TopologyEdge> = read_whole(trace, skip_bad_files)?;
    links.sort_by_key(|l| (l.valid_from, l.src_node, l.dst_node));
    Ok(links)
}

/// Every row of a small table of `trace` (none when the trace lacks it).
fn read_whole<R: ArrowRecord + Sync>(
    trace: &Path,
    skip_bad_files: bool,
) -> Result<Vec<R>, ReplayError> {
    let plan = ReplayPlan::new(trace, R::TABLE, &R::schema(), skip_bad_files)?;
    let mut rows = Vec::new();
    for unit in &plan.units {
        Vec::<R>::read_unit(unit, &TimeRange::ALL, &mut rows)?;
    }
    Ok(rows)
}

/// One worker's reader of a trace's flows: the columns the dataflow reads, or whole
/// records with those columns filled from them.
#[derive(Debug)]
enum FlowReader {
    Columns(ReplayWorker),
    Records(ReplayWorker<Vec<FlowRecord>>, Vec<FlowRecord>),
}

impl FlowReader {
    fn is_done(&self) -> bool {
        match self {
            FlowReader::Columns(r) => r.is_done(),
            FlowReader::Records(r, _) => r.is_done(),
        }
    }

    fn low_watermark(&self) -> Option<TimestampNs> {
        match self {
            FlowReader::Columns(r) => r.low_watermark(),
            FlowReader::Records(r, _) => r.low_watermark(),
        }
    }

    fn stop(&mut self) {
        match self {
            FlowReader::Columns(r) => r.stop(),
            FlowReader::Records(r, _) => r.stop(),
        }
    }

    fn next_batch(
        &mut self,
        out: &mut SourceBatch,
        counters: &Counters,
        skipped: &Mutex<Vec<SkippedFile>>,
        wait: Duration,
    ) -> Result<bool, ReplayError> {
        match self {
            FlowReader::Columns(r) => r.next_batch(&mut out.flows, counters, skipped, wait),
            FlowReader::Records(r, records) => {
                records.clear();
                let more = r.next_batch(records, counters, skipped, wait)?;
                records.iter().for_each(|f| out.flows.push(f));
                out.flow_records.append(records);
                Ok(more)
            }
        }
    }
}

/// One worker's share of every table of a trace, merged by event time.
///
/// Each call reads from the table that is furthest behind, so the tables advance
/// together, and the watermark is the lowest of the tables still being read.
#[derive(Debug)]
pub struct TraceReader {
    flows: FlowReader,
    metrics: ReplayWorker<Vec<NodeMetric>>,
    tcp: ReplayWorker<Vec<TcpEvent>>,
    syscalls: ReplayWorker<Vec<SyscallLatency>>,
}

impl TraceReader {
    /// Worker `index` of `peers`'s share of `plan`, paced at `speed` (see [`ReplayWorker::new`]).
    pub fn new(
        plan: &TracePlan,
        index: usize,
        peers: usize,
        skip_bad_files: bool,
        speed: Option<f64>,
    ) -> Self {
        let start = plan.start();
        Self {
            flows: match plan.whole_flows {
                true => FlowReader::Records(
                    ReplayWorker::new(&plan.flows, index, peers, skip_bad_files, speed, start),
                    Vec::new(),
                ),
                false => FlowReader::Columns(ReplayWorker::new(
                    &plan.flows,
                    index,
                    peers,
                    skip_bad_files,
                    speed,
                    start,
                )),
            },
            metrics: ReplayWorker::new(&plan.metrics, index, peers, skip_bad_files, speed, start),
            tcp: ReplayWorker::new(&plan.tcp, index, peers, skip_bad_files, speed, start),
            syscalls: ReplayWorker::new(&plan.syscalls, index, peers, skip_bad_files, speed, start),
        }
    }

    /// The low watermark of each table still being read (`None` before its first
    /// read), in the order flows, metrics, TCP, system calls.
    fn open_tables(&self) -> impl Iterator<Item = (usize, Option<TimestampNs>)> + '_ {
        [
            (self.flows.is_done(), self.flows.low_watermark()),
            (self.metrics.is_done(), self.metrics.low_watermark()),
            (self.tcp.is_done(), self.tcp.low_watermark()),
            (self.syscalls.is_done(), self.syscalls.low_watermark()),
        ]
        .into_iter()
        .enumerate()
        .filter(|(_, (done, _))| !done)
        .map(|(i, (_, low))| (i, low))
    }

    /// Appends the next rows of the table furthest behind to `out`; `false` once
    /// every table is read. A paced replay blocks at most `wait` for rows to be due.
    pub fn next_batch(
        &mut self,
        out: &mut SourceBatch,
        counters: &Counters,
        skipped: &Mutex<Vec<SkippedFile>>,
        wait: Duration,
    ) -> Result<bool, ReplayError> {
        loop {
            let Some((table, _)) = self.open_tables().min_by_key(|(_, low)| *low) else {
                return Ok(false);
            };
            let more = match table {
                0 => self.flows.next_batch(out, counters, skipped, wait)?,
                1 => self
                    .metrics
                    .next_batch(&mut out.metrics, counters, skipped, wait)?,
                2 => self.tcp.next_batch(&mut out.tcp, counters, skipped, wait)?,
                _ => self
                    .syscalls
                    .next_batch(&mut out.syscalls, counters, skipped, wait)?,
            };
            if more {
                return Ok(true);
            }
        }
    }

    /// The event time below which nothing more will be read: the lowest of the open
    /// tables' (`TimestampNs(0)` while one has not been read yet), or `None` once
    /// every table is read.
    pub fn watermark(&self) -> Option<TimestampNs> {
        self.open_tables()
            .map(|(_, low)| low.unwrap_or(TimestampNs(0)))
            .min()
    }

    /// Stops reading every table (Ctrl-C): the rest of the trace is left unread.
    pub fn stop(&mut self) {
        self.flows.stop();
        self.metrics.stop();
        self.tcp.stop();
        self.syscalls.stop();
    }

    /// Whether every table has been read.
    pub fn is_done(&self) -> bool {
        self.open_tables().next().is_none()
    }
}
