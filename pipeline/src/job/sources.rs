//! One worker's share of each configured source, as batches of flows with a watermark.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshflow_operators::features::Link;
use meshflow_operators::window::WindowSpec;
use meshflow_schemas::{Counters, TimestampNs};
use meshflow_sources::SourceBatch;
use meshflow_sources::ebpf::{EbpfError, EbpfSource};
use meshflow_sources::kafka::{KafkaSource, KafkaSourceConfig, KafkaSourceError};
use meshflow_sources::replay::{ReplayError, SkippedFile, TracePlan, TraceReader};
use meshflow_sources::simulator::Simulator;

use super::simulated::SimReader;

/// What a source shares between its workers (built once per process).
pub enum SharedSource {
    /// A simulator; each worker generates its own nodes.
    Simulator {
        /// The source's name in the config.
        name: String,
        /// The simulator (topology and fault schedule).
        sim: Arc<Simulator>,
        /// Whether to pace ticks to wall-clock time.
        realtime: bool,
    },
    /// A planned trace; each worker reads its own row groups of every table.
    Replay {
        /// The source's name in the config.
        name: String,
        /// The planned row groups of each table (and the time range they are filtered to).
        plan: Arc<TracePlan>,
        /// Skip unreadable row groups instead of failing.
        skip_bad_files: bool,
        /// Event seconds per wall-clock second, when paced; `None` is as fast as possible.
        speed: Option<f64>,
    },
    /// This host's kernel telemetry, started before the workers; the process's first
    /// worker takes it, the others have no share.
    Ebpf {
        /// The source's name in the config.
        name: String,
        /// The running source, until a worker takes it.
        source: Mutex<Option<EbpfSource>>,
    },
    /// Kafka topics; each worker reads the partitions `p % peers == index`.
    Kafka {
        /// The source's name in the config.
        name: String,
        /// The source's configuration.
        cfg: KafkaSourceConfig,
        /// The window geometry, to know when records' windows are closed.
        spec: WindowSpec,
    },
}

/// This worker's share of the given topologies of the replayed traces, and the epoch
/// before which they hold: each link from its `valid_from` (or the replayed range's
/// start) to the epoch after the last trace's last event (or its `--to`). Links are
/// dealt round-robin in a fixed order, so the windows do not depend on the split.
pub fn worker_links(
    shared: &[SharedSource],
    spec: &WindowSpec,
    index: usize,
    peers: usize,
) -> (Vec<Link>, u64) {
    let mut links = Vec::new();
    let mut until = 0;
    for source in shared {
        let SharedSource::Replay { plan, .. } = source else {
            continue;
        };
        if plan.links.is_empty() {
            continue;
        }
        let range = plan.flows.range;
        let end = match (plan.end(), range.to) {
            (Some(end), Some(to)) => Some(end.min(TimestampNs(to.0 - 1))),
            (end, None) => end,
            (None, to) => to.map(|t| TimestampNs(t.0 - 1)),
        };
        let Some(end) = end.and_then(|e| spec.epoch_of(e)) else {
            continue;
        };
        until = until.max(end + 1);
        let start = [plan.start(), range.from]
            .into_iter()
            .flatten()
            .filter_map(|t| spec.epoch_of(t))
            .max()
            .unwrap_or(0);
        links.extend(plan.links.iter().map(|l| Link {
            from_epoch: spec.epoch_of(l.valid_from).unwrap_or(0).max(start),
            src: l.src_node,
            dst: l.dst_node,
        }));
    }
    let share = links
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % peers == index)
        .map(|(_, l)| l)
        .collect();
    (share, until)
}

impl SharedSource {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            SharedSource::Simulator { name, .. }
            | SharedSource::Replay { name, .. }
            | SharedSource::Ebpf { name, .. }
            | SharedSource::Kafka { name, .. } => name,
        }
    }
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading a trace failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The eBPF reader failed.
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    /// The Kafka consumer failed.
    #[error(transparent)]
    Kafka(#[from] KafkaSourceError),
}

/// One worker's reader of one source.
pub enum WorkerSource {
    /// Generates this worker's simulator nodes, tick by tick.
    Simulator {
        /// The reader.
        reader: SimReader,
    },
    /// Reads this worker's row groups in order.
    Replay {
        /// This worker's reader.
        reader: Box<TraceReader>,
        /// Units skipped, shared for the summary.
        skipped: Arc<Mutex<Vec<SkippedFile>>>,
    },
    /// Live kernel telemetry (only on the process's first worker; `None` elsewhere).
    Ebpf {
        /// The running source.
        source: Option<EbpfSource>,
    },
    /// This worker's Kafka partitions, connected on the first read.
    Kafka {
        /// The configuration.
        cfg: KafkaSourceConfig,
        /// The window geometry.
        spec: WindowSpec,
        /// This worker's index and the worker count.
        worker: (usize, usize),
        /// The consumer, once connected.
        source: Option<Box<KafkaSource>>,
        /// Stopped (Ctrl-C) before or after connecting: read nothing more.
        stopped: bool,
    },
}

impl WorkerSource {
    /// This worker's share of a shared source.
    pub fn new(
        shared: &SharedSource,
        index: usize,
        peers: usize,
        skipped: Arc<Mutex<Vec<SkippedFile>>>,
    ) -> Self {
        match shared {
            SharedSource::Simulator { sim, realtime, .. } => WorkerSource::Simulator {
                reader: SimReader::new(
                    sim.partition(index, peers),
                    sim.tick_ns(),
                    realtime.then(|| (Instant::now(), sim.start_time())),
                ),
            },
            SharedSource::Replay {
                plan,
                skip_bad_files,
                speed,
                ..
            } => WorkerSource::Replay {
                reader: Box::new(TraceReader::new(
                    plan,
                    index,
                    peers,
                    *skip_bad_files,
                    *speed,
                )),
                skipped,
            },
            SharedSource::Ebpf { source, .. } => WorkerSource::Ebpf {
                source: source.lock().expect("eBPF source lock").take(),
            },
            SharedSource::Kafka { cfg, spec, .. } => WorkerSource::Kafka {
                cfg: cfg.clone(),
                spec: *spec,
                worker: (index, peers),
                source: None,
                stopped: false,
            },
        }
    }

    /// Appends the next batch of events to `out`; returns `false` once exhausted.
    /// A source with nothing ready blocks at most `wait` for it (and may then return
    /// `true` with nothing added), so the worker can step its dataflow meanwhile.
    /// `counters` receives what was read and what had to be skipped.
    pub fn next_batch(
        &mut self,
        out: &mut SourceBatch,
        counters: &Counters,
        wait: Duration,
    ) -> Result<bool, SourceError> {
        match self {
            WorkerSource::Simulator { reader } => Ok(reader.next_batch(out, counters, wait)),
            WorkerSource::Replay { reader, skipped } => {
                Ok(reader.next_batch(out, counters, skipped, wait)?)
            }
            WorkerSource::Ebpf { source } => {
                let Some(src) = source else { return Ok(false) };
                let before = out.len();
                let more = src.poll(out, wait)?;
                counters.add_received((out.len() - before) as u64);
                if !more {
                    *source = None;
                }
                Ok(more)
            }
            WorkerSource::Kafka {
                cfg,
                spec,
                worker,
                source,
                stopped,
            } => {
                if *stopped && source.is_none() {
                    return Ok(false);
                }
                let src = match source {
                    Some(src) => src,
                    None => {
                        let spec = *spec;
                        let retire = Box::new(move |t: TimestampNs| {
                            spec.retire(spec.first_window(spec.epoch_of(t).unwrap_or(0)))
                        });
                        let opened = KafkaSource::open(cfg, worker.0, worker.1, retire)?;
                        tracing::info!(
                            "Kafka source worker {}: partitions {}",
                            worker.0,
                            opened.assigned().join(", ")
                        );
                        source.insert(Box::new(opened))
                    }
                };
                Ok(src.poll(out, counters, wait)?)
            }
        }
    }

    /// Stops the source (Ctrl-C): the simulator and replay stop at once; the eBPF
    /// source exports what the kernel still holds, delivers it, and then finishes.
    pub fn stop(&mut self) {
        match self {
            WorkerSource::Simulator { reader } => reader.stop(),
            WorkerSource::Replay { reader, .. } => reader.stop(),
            WorkerSource::Ebpf { source } => {
                if let Some(src) = source {
                    src.stop();
                }
            }
            WorkerSource::Kafka {
                source, stopped, ..
            } => {
                *stopped = true;
                if let Some(src) = source {
                    src.stop();
                }
            }
        }
    }

    /// Tells the source that every window before `frontier` (all, when `None`) is
    /// written, so it may commit what it read for them; `sync` waits for the broker.
    pub fn commit_through(&mut self, frontier: Option<u64>, sync: bool) -> Result<(), SourceError> {
        if let WorkerSource::Kafka {
            source: Some(src), ..
        } = self
        {
            src.commit_through(frontier, sync)?;
        }
        Ok(())
    }

    /// Whether a later run can go on where this source ended (a Kafka topic, from the
    /// committed offsets): the windows after its data are then not complete.
    pub fn resumes(&self) -> bool {
        matches!(self, WorkerSource::Kafka { .. })
    }

    /// Where this source's data stops being complete once it has ended, in epochs
    /// less the lateness, when that follows from what it read rather than from its
    /// last watermark: for a Kafka source, the partition that read the least far.
    pub fn end_mark(&self, spec: &WindowSpec, lateness: u64) -> Option<u64> {
        match self {
            WorkerSource::Kafka {
                source: Some(src), ..
            } => src
                .read_through()
                .map(|t| spec.epoch_of(t).unwrap_or(0).saturating_sub(lateness)),
            _ => None,
        }
    }

    /// The epoch below which this source will produce nothing more, or `None` once
    /// it is exhausted (it then holds nothing back).
    pub fn watermark(&self, spec: &WindowSpec, lateness: u64) -> Option<u64> {
        match self {
            WorkerSource::Simulator { reader } if reader.is_done() => None,
            WorkerSource::Ebpf { source: None } => None,
            WorkerSource::Replay { reader, .. } if reader.is_done() => None,
            WorkerSource::Kafka {
                source: None,
                stopped: true,
                ..
            } => None,
            WorkerSource::Kafka { source: None, .. } => Some(0),
            WorkerSource::Kafka {
                source: Some(src), ..
            } => {
                if src.is_finished() {
                    return None;
                }
                Some(
                    src.watermark()
                        .and_then(|t| spec.epoch_of(t))
                        .unwrap_or(0)
                        .saturating_sub(lateness),
                )
            }
            WorkerSource::Ebpf { source: Some(src) } => Some(
                spec.epoch_of(src.watermark())
                    .unwrap_or(0)
                    .saturating_sub(lateness),
            ),
            WorkerSource::Simulator { reader } => Some(
                reader
                    .watermark()
                    .and_then(|t| spec.epoch_of(t))
                    .unwrap_or(0),
            ),
            WorkerSource::Replay { reader, .. } => Some(
                reader
                    .watermark()
                    .and_then(|t| spec.epoch_of(t))
                    .unwrap_or(0)
                    .saturating_sub(lateness),
            ),
        }
    }
}
