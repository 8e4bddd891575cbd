//! Running a job: sources → timely/differential dataflow → Parquet (`node_features`,
//! `anomaly_scores`, and optionally the input tables).

mod sources;
mod writer;

pub use sources::{SharedSource, SourceError, WorkerSource};
pub use writer::{WriteReport, write_parquet};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use differential_dataflow::input::InputSession;
use meshflow_operators::anomaly::anomaly_scores;
use meshflow_operators::emit::emit_windows;
use meshflow_operators::raw::RawInput;
use meshflow_operators::traffic::{NodeTraffic, TrafficInput, node_traffic};
use meshflow_schemas::{
    AnomalyScore, ArrowRecord, CounterSnapshot, Counters, FlowRecord, NodeFeatures, NodeMetric,
    SyscallLatency, TcpEvent, node_label,
};
use meshflow_sinks::parquet::prepare_table_dir;
use meshflow_sources::SourceBatch;
use meshflow_sources::ebpf::EbpfSource;
use meshflow_sources::replay::{FLOW_COLUMNS, ReplayPlan, SkippedFile};
use meshflow_sources::simulator::{Pace, Simulator};
use timely::dataflow::operators::Probe;

use crate::config::{JobConfig, SourceConfig};

/// How this process takes part in the computation.
#[derive(Clone, Debug, Default)]
pub enum Cluster {
    /// One process with `[job] workers` threads.
    #[default]
    Local,
    /// Timely's own multi-process mode: this process is `process` of `hosts`.
    Multi {
        /// This process's index.
        process: usize,
        /// `host:port` of every process, in order.
        hosts: Vec<String>,
    },
}

/// What a finished job did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Flow events read, per source.
    pub sources: Vec<(String, CounterSnapshot)>,
    /// Events refused because they were late or before 1970.
    pub late: u64,
    /// Windows closed and written.
    pub windows: u64,
    /// Rows written, per table.
    pub rows: Vec<(&'static str, u64)>,
    /// Files (or row groups) skipped as bad.
    pub skipped: Vec<SkippedFile>,
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// The output folder.
    pub out: PathBuf,
}

impl Summary {
    /// Events read from all sources.
    pub fn events(&self) -> u64 {
        self.sources.iter().map(|(_, c)| c.received).sum()
    }
}

/// Live counters the progress line reads while the job runs.
#[derive(Default)]
pub struct Progress {
    /// Flow events read.
    pub events: Counters,
    /// Late events refused.
    pub late: Counters,
    /// Rows written to `node_features`.
    pub rows: Arc<Counters>,
    /// Rows written to `anomaly_scores`.
    pub anomaly_rows: Arc<Counters>,
    /// The anomaly scorer: feature rows received, scores sent, rows dropped while a
    /// node warms up, model fits that failed.
    pub anomaly: Arc<Counters>,
    /// Rows written to the input tables (`flows`, `node_metrics`, `tcp_events`,
    /// `syscall_latency`), when `sinks.parquet.inputs` is set.
    pub input_rows: [Arc<Counters>; 4],
    /// Newest window end closed, in epochs.
    pub watermark: std::sync::atomic::AtomicU64,
    /// Events the replay sources planned to read (0 when no source knows in advance).
    pub planned: std::sync::atomic::AtomicU64,
    /// Set to stop reading sources (Ctrl-C): the job then closes every open window,
    /// writes it, and finishes its files.
    pub stop: AtomicBool,
}

/// Runs `cfg` to completion (every source exhausted, every window written).
pub fn run(cfg: &JobConfig, cluster: &Cluster, progress: Arc<Progress>) -> anyhow::Result<Summary> {
    cfg.validate()?;
    let started = Instant::now();
    let spec = cfg.window_spec().map_err(anyhow::Error::msg)?;
    let lateness = cfg.lateness_epochs();
    let sink = cfg.sinks.parquet.clone();
    let first_process = matches!(cluster, Cluster::Local | Cluster::Multi { process: 0, .. });
    let table_dir = |table: &str| -> anyhow::Result<PathBuf> {
        Ok(if first_process {
            prepare_table_dir(&sink.path, table, sink.mode)?
        } else {
            sink.path.join(table)
        })
    };
    let dir = table_dir(NodeFeatures::TABLE)?;
    let anomaly = cfg.anomaly.clone();
    let anomaly_dir = if anomaly.enabled {
        Some(table_dir(AnomalyScore::TABLE)?)
    } else {
        None
    };
    let input_dirs = if sink.inputs {
        Some([
            table_dir(FlowRecord::TABLE)?,
            table_dir(NodeMetric::TABLE)?,
            table_dir(TcpEvent::TABLE)?,
            table_dir(SyscallLatency::TABLE)?,
        ])
    } else {
        None
    };

    let mut shared = Vec::new();
    let mut skipped = Vec::new();
    for (name, source) in &cfg.sources {
        shared.push(match source {
            SourceConfig::Simulator(sim_cfg) => SharedSource::Simulator {
                name: name.clone(),
                sim: Arc::new(Simulator::new(sim_cfg.clone())?),
                realtime: sim_cfg.pace == Pace::Realtime,
            },
            SourceConfig::Replay(replay) => {
                let schema = Arc::new(FlowRecord::schema().project(
                    &FLOW_COLUMNS.map(|c| FlowRecord::schema().index_of(c).expect("flow column")),
                )?);
                let plan = ReplayPlan::in_range(
                    &replay.path,
                    FlowRecord::TABLE,
                    &schema,
                    FlowRecord::TIME_COLUMN,
                    replay.range(),
                    replay.skip_bad_files,
                )?;
                progress.planned.fetch_add(plan.rows(), Ordering::Relaxed);
                skipped.extend(plan.skipped.iter().cloned());
                SharedSource::Replay {
                    name: name.clone(),
                    plan: Arc::new(plan),
                    skip_bad_files: replay.skip_bad_files,
                    speed: replay.speed,
                }
            }
            SourceConfig::Ebpf(ebpf) => {
                let source = EbpfSource::start(ebpf)
                    .map_err(|e| anyhow::anyhow!("source `{name}` (eBPF) cannot start: {e}"))?;
                eprintln!("source `{name}` (eBPF): {}", source.description());
                SharedSource::Ebpf {
                    name: name.clone(),
                    source: Mutex::new(Some(source)),
                }
            }
        });
    }
    let shared = Arc::new(shared);
    let source_counters: Arc<Vec<Arc<Counters>>> =
        Arc::new(shared.iter().map(|_| Counters::shared()).collect());
    let skipped = Arc::new(Mutex::new(skipped));
    let report = Arc::new(WriteReport::default());
    let abort = Arc::new(AtomicBool::new(false));
    let source_error: Arc<Mutex<Option<String>>> = Arc::default();

    let timely_config = match cluster {
        Cluster::Local => timely::Config::process(cfg.job.workers),
        Cluster::Multi { process, hosts } => timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: cfg.job.workers,
                process: *process,
                addresses: hosts.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        },
    };

    let (w_shared, w_counters, w_skipped, w_report, w_abort, w_error, w_progress) = (
        shared.clone(),
        source_counters.clone(),
        skipped.clone(),
        report.clone(),
        abort.clone(),
        source_error.clone(),
        progress.clone(),
    );
    let guards = timely::execute(timely_config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mut session = InputSession::new();
        let (dir, sink, report, rows) = (
            dir.clone(),
            sink.clone(),
            w_report.clone(),
            w_progress.rows.clone(),
        );
        let input_dirs = input_dirs.clone();
        let (anomaly, anomaly_dir) = (anomaly.clone(), anomaly_dir.clone());
        let (probe, mut raw) = worker.dataflow::<u64, _, _>(|scope| {
            let traffic = node_traffic(session.to_collection(scope));
            let features = emit_windows(traffic, spec, move |w, node: &u64, t: &NodeTraffic| {
                NodeFeatures {
                    window_end: spec.window_end(w),
                    window_start: spec.window_start(w),
                    node: *node,
                    node_label: node_label(*node),
                    bytes_in: t.bytes_in,
                    bytes_out: t.bytes_out,
                    packets_in: t.packets_in,
                    packets_out: t.packets_out,
                    flows_in: t.flows_in,
                    flows_out: t.flows_out,
                    in_degree: t.in_degree,
                    out_degree: t.out_degree,
                    distinct_peers: t.distinct_peers,
                }
            });
            let (probe, features) = features.probe();
            if let Some(anomaly_dir) = anomaly_dir {
                let scores = anomaly_scores(features.clone(), anomaly, w_progress.anomaly.clone());
                write_parquet(
                    scores.probe_with(&probe),
                    anomaly_dir,
                    sink.clone(),
                    w_progress.anomaly_rows.clone(),
                    report.clone(),
                    |r: &AnomalyScore, b| ((r.node % u64::from(b)) as u32, r.node),
                );
            }
            write_parquet(
                features,
                dir,
                sink.clone(),
                rows,
                report.clone(),
                |r: &NodeFeatures, buckets| ((r.node % u64::from(buckets)) as u32, r.node),
            );
            let raw = input_dirs.map(|[flows_dir, metrics_dir, tcp_dir, sys_dir]| {
                let [f_rows, m_rows, t_rows, s_rows] = w_progress.input_rows.clone();
                let (flows, stream) = RawInput::<FlowRecord>::new(scope, spec);
                write_parquet(
                    stream.probe_with(&probe),
                    flows_dir,
                    sink.clone(),
                    f_rows,
                    report.clone(),
                    |r: &FlowRecord, b| ((r.src_node % u64::from(b)) as u32, r.src_node),
                );
                let (metrics, stream) = RawInput::<NodeMetric>::new(scope, spec);
                write_parquet(
                    stream.probe_with(&probe),
                    metrics_dir,
                    sink.clone(),
                    m_rows,
                    report.clone(),
                    |r: &NodeMetric, b| ((r.node % u64::from(b)) as u32, r.node),
                );
                let (tcp, stream) = RawInput::<TcpEvent>::new(scope, spec);
                write_parquet(
                    stream.probe_with(&probe),
                    tcp_dir,
                    sink.clone(),
                    t_rows,
                    report.clone(),
                    |r: &TcpEvent, b| ((r.node % u64::from(b)) as u32, r.node),
                );
                let (syscalls, stream) = RawInput::<SyscallLatency>::new(scope, spec);
                write_parquet(
                    stream.probe_with(&probe),
                    sys_dir,
                    sink.clone(),
                    s_rows,
                    report.clone(),
                    |r: &SyscallLatency, b| ((r.node % u64::from(b)) as u32, r.node),
                );
                RawInputs {
                    flows,
                    metrics,
                    tcp,
                    syscalls,
                }
            });
            (probe, raw)
        });

        let mut input = TrafficInput::new(session, spec);
        let mut readers: Vec<WorkerSource> = w_shared
            .iter()
            .map(|s| WorkerSource::new(s, index, peers, w_skipped.clone()))
            .collect();
        let mut batch = SourceBatch::default();
        // How far (in epochs) sources may run ahead of the windows being written.
        let max_lag = spec.length + 4 * spec.slide;
        loop {
            if w_progress.stop.load(Ordering::Relaxed) {
                break;
            }
            if w_abort.load(Ordering::Relaxed) || w_report.error.lock().expect("lock").is_some() {
                w_abort.store(true, Ordering::Relaxed);
                break;
            }
            let mut active = false;
            for (reader, counters) in readers.iter_mut().zip(w_counters.iter()) {
                batch.clear();
                match reader.next_batch(&mut batch, counters) {
                    Ok(more) => active |= more,
                    Err(e) => {
                        w_error.lock().expect("lock").get_or_insert(e.to_string());
                        w_abort.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                w_progress.events.add_received(batch.len() as u64);
                let flows = &batch.flows;
                let mut late = 0;
                for i in 0..flows.len() {
                    let accepted = input.add_flow(
                        flows.last_seen[i],
                        flows.src_node[i],
                        flows.dst_node[i],
                        flows.bytes[i],
                        flows.packets[i],
                    );
                    late += u64::from(accepted.is_err());
                }
                match &mut raw {
                    Some(raw) => late += raw.give(&mut batch),
                    None => batch.flow_records.clear(),
                }
                if late > 0 {
                    counters.add_dropped(late);
                    w_progress.late.add_dropped(late);
                }
            }
            if let Some(watermark) = readers
                .iter()
                .filter_map(|r| r.watermark(&spec, lateness))
                .min()
            {
                input.advance_to_epoch(watermark);
                if let Some(raw) = &mut raw {
                    raw.advance_to_epoch(watermark);
                }
            }
            worker.step();
            while probe.less_than(&input.time().saturating_sub(max_lag)) {
                worker.step();
            }
            if index == 0 {
                probe.with_frontier(|f| {
                    if let Some(t) = f.first() {
                        w_progress.watermark.fetch_max(*t, Ordering::Relaxed);
                    }
                });
            }
            if !active {
                break;
            }
        }
        input.close();
        if let Some(raw) = &mut raw {
            raw.close();
        }
        while !probe.done() {
            worker.step();
        }
    })
    .map_err(anyhow::Error::msg)?;
    let results = guards.join();
    for r in results {
        r.map_err(anyhow::Error::msg)?;
    }
    if let Some(e) = source_error.lock().expect("lock").take() {
        anyhow::bail!("{e}");
    }
    if let Some(e) = report.error.lock().expect("lock").take() {
        anyhow::bail!("writing output failed: {e}");
    }
    let skipped = skipped.lock().expect("lock").clone();
    Ok(Summary {
        sources: shared
            .iter()
            .zip(source_counters.iter())
            .map(|(s, c)| (s.name().to_string(), c.snapshot()))
            .collect(),
        late: progress.late.snapshot().dropped,
        windows: report.windows.lock().expect("lock").len() as u64,
        rows: std::iter::once((NodeFeatures::TABLE, progress.rows.snapshot().sent))
            .chain(
                cfg.anomaly
                    .enabled
                    .then(|| (AnomalyScore::TABLE, progress.anomaly_rows.snapshot().sent)),
            )
            .chain(
                cfg.sinks
                    .parquet
                    .inputs
                    .then(|| {
                        [
                            FlowRecord::TABLE,
                            NodeMetric::TABLE,
                            TcpEvent::TABLE,
                            SyscallLatency::TABLE,
                        ]
                        .into_iter()
                        .zip(progress.input_rows.iter().map(|c| c.snapshot().sent))
                    })
                    .into_iter()
                    .flatten(),
            )
            .collect(),
        skipped,
        elapsed: started.elapsed(),
        out: cfg.sinks.parquet.path.clone(),
    })
}

/// The raw input tables' entry points on one worker.
struct RawInputs {
    flows: RawInput<FlowRecord>,
    metrics: RawInput<NodeMetric>,
    tcp: RawInput<TcpEvent>,
    syscalls: RawInput<SyscallLatency>,
}

impl RawInputs {
    /// Queues the batch's records, returning how many non-flow records were late (a
    /// late flow was already refused, and counted, by the traffic input: same rule).
    fn give(&mut self, batch: &mut SourceBatch) -> u64 {
        let mut late = 0;
        for f in batch.flow_records.drain(..) {
            let _ = self.flows.give(f.last_seen, f);
        }
        for m in batch.metrics.drain(..) {
            late += u64::from(self.metrics.give(m.time, m).is_err());
        }
        for t in batch.tcp.drain(..) {
            late += u64::from(self.tcp.give(t.time, t).is_err());
        }
        for s in batch.syscalls.drain(..) {
            late += u64::from(self.syscalls.give(s.time, s).is_err());
        }
        late
    }

    fn advance_to_epoch(&mut self, epoch: u64) {
        self.flows.advance_to_epoch(epoch);
        self.metrics.advance_to_epoch(epoch);
        self.tcp.advance_to_epoch(epoch);
        self.syscalls.advance_to_epoch(epoch);
    }

    fn close(&mut self) {
        self.flows.close();
        self.metrics.close();
        self.tcp.close();
        self.syscalls.close();
    }
}
