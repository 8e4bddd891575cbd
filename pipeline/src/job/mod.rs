//! Running a job: sources → timely/differential dataflow → Parquet.

mod sources;
mod writer;

pub use sources::{SharedSource, WorkerSource};
pub use writer::{WriteReport, write_parquet};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use differential_dataflow::input::InputSession;
use meshflow_operators::emit::emit_windows;
use meshflow_operators::traffic::{NodeTraffic, TrafficInput, node_traffic};
use meshflow_schemas::{
    ArrowRecord, CounterSnapshot, Counters, FlowRecord, NodeFeatures, node_label,
};
use meshflow_sinks::parquet::prepare_table_dir;
use meshflow_sources::replay::{FLOW_COLUMNS, FlowColumns, ReplayPlan, SkippedFile};
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
    /// Newest window end closed, in epochs.
    pub watermark: std::sync::atomic::AtomicU64,
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
    let dir = if first_process {
        prepare_table_dir(&sink.path, NodeFeatures::TABLE, sink.mode)?
    } else {
        sink.path.join(NodeFeatures::TABLE)
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
                let plan = ReplayPlan::new(
                    &replay.path,
                    FlowRecord::TABLE,
                    &schema,
                    replay.skip_bad_files,
                )?;
                skipped.extend(plan.skipped.iter().cloned());
                SharedSource::Replay {
                    name: name.clone(),
                    plan: Arc::new(plan),
                    skip_bad_files: replay.skip_bad_files,
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
        let probe = worker.dataflow::<u64, _, _>(|scope| {
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
            write_parquet(
                features,
                dir,
                sink,
                rows,
                report,
                |r: &NodeFeatures, buckets| ((r.node % u64::from(buckets)) as u32, r.node),
            );
            probe
        });

        let mut input = TrafficInput::new(session, spec);
        let mut readers: Vec<WorkerSource> = w_shared
            .iter()
            .map(|s| WorkerSource::new(s, index, peers, w_skipped.clone()))
            .collect();
        let mut batch = FlowColumns::default();
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
                let mut late = 0;
                for i in 0..batch.len() {
                    let accepted = input.add_flow(
                        batch.last_seen[i],
                        batch.src_node[i],
                        batch.dst_node[i],
                        batch.bytes[i],
                        batch.packets[i],
                    );
                    late += u64::from(accepted.is_err());
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
        rows: vec![(NodeFeatures::TABLE, progress.rows.snapshot().sent)],
        skipped,
        elapsed: started.elapsed(),
        out: cfg.sinks.parquet.path.clone(),
    })
}
