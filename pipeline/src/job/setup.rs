//! What a job sets up before its workers start: the sources every worker shares,
//! the Kafka topics it writes, and the anomaly scorer's threads.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use meshflow_operators::window::WindowSpec;
use meshflow_schemas::{AnomalyScore, ArrowRecord, INPUT_TABLES, NodeFeatures, TimestampNs};
use meshflow_sinks::kafka::KafkaSinkConfig;
use meshflow_sources::ebpf::EbpfSource;
use meshflow_sources::replay::{SkippedFile, TimeRange, TracePlan};
use meshflow_sources::simulator::{Pace, Simulator};

use super::{Cluster, Progress, SharedSource};
use crate::config::{JobConfig, SourceConfig};

/// The job's sources, opened once for all workers.
pub(super) struct Sources {
    /// One per source, in order; with `job.replay_first`, the trace is the first.
    pub shared: Vec<SharedSource>,
    /// Trace files skipped as unreadable (with `skip_bad_files`).
    pub skipped: Vec<SkippedFile>,
    /// Where a replayed trace hands over to the live sources: the first epoch
    /// boundary after its last event.
    pub handoff: Option<TimestampNs>,
}

/// Where a trace lies in time, to say beside a time range that selects none of it.
fn trace_span(trace: &Path) -> String {
    let whole = TracePlan::new(trace, TimeRange::ALL, true);
    match whole.as_ref().map(|p| (p.start(), p.end())) {
        Ok((Some(start), Some(end))) => format!("the trace spans {start} to {end}"),
        Ok(_) => "the trace holds no rows with time statistics".to_string(),
        Err(e) => e.to_string(),
    }
}

/// Labels the named nodes of a trace with their names in every output.
fn register_names(plan: &TracePlan) {
    meshflow_schemas::register_node_names(plan.names.iter().map(|n| (n.node, n.name.clone())));
}

/// The trace this job replays (a replay source or `job.replay_first`) that is also
/// its output folder, if any.
/// With `sinks.parquet.mode = "overwrite"`, removes the tables an earlier run left in
/// the output folder that this job does not write (`anomaly_scores` when scoring is
/// off, the input tables without `inputs`), so the folder holds this job's output
/// only; a trace replayed from that same folder keeps its input tables. Call it only
/// for a folder an earlier run wrote. Returns the tables removed.
pub(super) fn remove_stale_tables(cfg: &JobConfig) -> anyhow::Result<Vec<&'static str>> {
    let sink = &cfg.sinks.parquet;
    if sink.mode != meshflow_sinks::parquet::WriteMode::Overwrite {
        return Ok(Vec::new());
    }
    let keep_inputs = sink.inputs || cfg.replayed_output().is_some();
    let stale = (!cfg.anomaly.enabled)
        .then_some(AnomalyScore::TABLE)
        .into_iter()
        .chain(INPUT_TABLES.into_iter().filter(|_| !keep_inputs));
    let mut removed = Vec::new();
    for table in stale {
        let dir = sink.path.join(table);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("removing {}, left by an earlier run: {e}", dir.display())
            })?;
            removed.push(table);
        }
    }
    Ok(removed)
}

/// Opens every source of `cfg` (and the trace of `job.replay_first`), adding the
/// rows the traces plan to `progress`.
pub(super) fn open_sources(
    cfg: &JobConfig,
    spec: WindowSpec,
    progress: &Progress,
) -> anyhow::Result<Sources> {
    let mut shared = Vec::new();
    let mut skipped = Vec::new();
    // A job that writes the input tables again needs the traces' whole flow records.
    let whole_flows =
        cfg.sinks.parquet.inputs || cfg.sinks.kafka.as_ref().is_some_and(|k| k.inputs);
    cfg.check_output()?;
    // Replay first, then live: the trace is source 0, and the live sources take over
    // at the first epoch boundary after its last event.
    let handoff = match &cfg.job.replay_first {
        Some(trace) => {
            let plan = TracePlan::with_whole_flows(trace, TimeRange::ALL, false, whole_flows)
                .map_err(|e| anyhow::anyhow!("job.replay_first: {e}"))?;
            let end = plan.end().ok_or_else(|| {
                anyhow::anyhow!(
                    "job.replay_first: {} is empty or lacks row-group statistics, so where it ends is unknown",
                    trace.display()
                )
            })?;
            let epoch = cfg.job.epoch.as_nanos_i64();
            register_names(&plan);
            progress.planned.fetch_add(plan.rows(), Ordering::Relaxed);
            skipped.extend(plan.skipped());
            shared.push(SharedSource::Replay {
                name: "replay_first".into(),
                plan: Arc::new(plan),
                skip_bad_files: false,
                speed: None,
            });
            Some(TimestampNs((end.0.div_euclid(epoch) + 1) * epoch))
        }
        None => None,
    };
    for (name, source) in &cfg.sources {
        shared.push(match source {
            SourceConfig::Simulator(sim_cfg) => {
                let mut sim_cfg = sim_cfg.clone();
                if let Some(at) = handoff {
                    // A simulated live mesh continues where the trace ends.
                    sim_cfg.start = at.to_string();
                }
                SharedSource::Simulator {
                    name: name.clone(),
                    sim: Arc::new(Simulator::new(sim_cfg.clone())?),
                    realtime: sim_cfg.pace == Pace::Realtime,
                }
            }
            SourceConfig::Replay(replay) => {
                let plan = TracePlan::with_whole_flows(
                    &replay.path,
                    replay.range(),
                    replay.skip_bad_files,
                    whole_flows,
                )
                .map_err(|e| anyhow::anyhow!("source `{name}` (replay): {e}"))?;
                register_names(&plan);
                if plan.rows() == 0 && !replay.range().is_all() {
                    let span = trace_span(&replay.path);
                    // The job's only input: it would replace the output with empty
                    // tables, which is never what was meant.
                    anyhow::ensure!(
                        cfg.sources.len() > 1 || handoff.is_some(),
                        "source `{name}`: the time range (--from/--to) selects no rows of {}; {span}. Nothing was written; the output folder is as it was",
                        replay.path.display()
                    );
                    crate::say!(
                        "warning: source `{name}`: the time range (--from/--to) selects no rows; {span}"
                    );
                }
                progress.planned.fetch_add(plan.rows(), Ordering::Relaxed);
                skipped.extend(plan.skipped());
                SharedSource::Replay {
                    name: name.clone(),
                    plan: Arc::new(plan),
                    skip_bad_files: replay.skip_bad_files,
                    speed: replay.speed,
                }
            }
            SourceConfig::Kafka(kafka) => SharedSource::Kafka {
                name: name.clone(),
                cfg: kafka.clone(),
                spec,
            },
            SourceConfig::Ebpf(ebpf) => {
                let source = EbpfSource::start(ebpf)
                    .map_err(|e| anyhow::anyhow!("source `{name}` (eBPF) cannot start: {e}"))?;
                crate::say!("source `{name}` (eBPF): {}", source.description());
                SharedSource::Ebpf {
                    name: name.clone(),
                    source: Mutex::new(Some(source)),
                }
            }
        });
    }
    Ok(Sources {
        shared,
        skipped,
        handoff,
    })
}

/// Creates the topics the Kafka sink `k` writes: one per output table (and per
/// input table with `inputs`), with `k.partitions` partitions, and its progress
/// topic with a partition per worker of the cluster.
pub(super) fn create_topics(
    k: &KafkaSinkConfig,
    cfg: &JobConfig,
    cluster: &Cluster,
) -> anyhow::Result<()> {
    let peers = cfg.job.workers
        * match cluster {
            Cluster::Local => 1,
            Cluster::Multi { hosts, .. } => hosts.len(),
        };
    let mut tables = vec![NodeFeatures::TABLE];
    if cfg.anomaly.enabled {
        tables.push(AnomalyScore::TABLE);
    }
    if k.inputs {
        tables.extend(INPUT_TABLES);
    }
    let mut topics = Vec::new();
    for table in tables {
        topics.push((k.topic(table), k.partitions));
        topics.push((k.progress_topic(table), peers as i32));
    }
    meshflow_sinks::kafka::create_topics(k, &topics)?;
    Ok(())
}

/// Helper threads for each worker's anomaly scorer.
///
/// The scorer gets threads of its own only where a core is left over once every
/// worker of this process has one. Where the sources follow the clock, a worker
/// waits while its window is scored, so its scorer may spread a window over the
/// worker's share of the cores; where they do not (a replay as fast as possible),
/// the worker reads on meanwhile and more helpers would only take its core.
pub(super) fn scorer_threads(cfg: &JobConfig) -> usize {
    let live = cfg.follows_clock();
    match std::thread::available_parallelism() {
        Ok(cores) if cores.get() > cfg.job.workers => match live {
            true => cores.get() / cfg.job.workers.max(1),
            false => 1,
        },
        _ => 0,
    }
}
