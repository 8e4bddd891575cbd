//! What a job reports: live counters while it runs, and a summary when it ends.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshflow_schemas::{CounterSnapshot, Counters, TimestampNs};
use meshflow_sources::replay::SkippedFile;

/// What a finished job did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Flow events read, per source.
    pub sources: Vec<(String, CounterSnapshot)>,
    /// Events refused because they were late or before 1970.
    pub late: u64,
    /// With `job.replay_first`: where the live sources took over, and how many of
    /// their events came before it (already covered by the trace) and were dropped.
    pub handoff: Option<(TimestampNs, u64)>,
    /// Windows closed and written.
    pub windows: u64,
    /// Rows written, per table.
    pub rows: Vec<(&'static str, u64)>,
    /// Kafka sink counters per topic (empty without `[sinks.kafka]`): records
    /// received, committed (sent), skipped as committed by an earlier run (dropped),
    /// failed attempts (errored).
    pub kafka: Vec<(String, CounterSnapshot)>,
    /// Kafka sink rows of windows after the data's complete point, not committed
    /// (see `Progress::complete`), with that point.
    pub kafka_held_back: Option<(u64, TimestampNs)>,
    /// Files (or row groups) skipped as bad.
    pub skipped: Vec<SkippedFile>,
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// Wall time from a window's close (the input passing its end) to its rows leaving
    /// the feature dataflow, measured on worker 0 once per input advance.
    pub emit_latency: EmitLatency,
    /// With `job.profile_operators`: time scheduled and times scheduled per operator
    /// name, summed over this process's workers, longest first.
    pub operators: Vec<(String, Duration, u64)>,
    /// The output folder.
    pub out: PathBuf,
    /// When Ctrl-C stopped the sources early: the end of the last window closed
    /// (written whole; nothing after it was read).
    pub stopped: Option<TimestampNs>,
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
    /// Live events before the hand-off time, dropped (`job.replay_first`).
    pub overlap: Counters,
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
    /// Where the data's windows stop being complete, in epochs (windows ending there
    /// or earlier are): after a stop (Ctrl-C), the point through which every source
    /// still reading then had delivered all its events; and where a Kafka source
    /// ended (`stop_at_end`: its topic may go on). The lowest over the workers;
    /// `None` when neither happened. Later windows are not committed to Kafka, and a
    /// Kafka source commits no offset they still need.
    pub complete: Arc<Mutex<Option<u64>>>,
    /// Window close → emission latencies measured so far (worker 0).
    pub emit_latency: Mutex<Vec<Duration>>,
    /// Events the replay sources planned to read (0 when no source knows in advance).
    pub planned: std::sync::atomic::AtomicU64,
    /// Set to stop the sources (Ctrl-C): the eBPF source delivers what the kernel
    /// still holds, then the job closes every open window, writes it, and finishes
    /// its files.
    pub stop: AtomicBool,
}

/// Summary of the window close → emission latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EmitLatency {
    /// Measurements (input advances whose windows were emitted).
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl EmitLatency {
    /// Summarises measured latencies (nearest-rank percentiles).
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |q: f64| {
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1]
        };
        if sorted.is_empty() {
            return Self::default();
        }
        Self {
            samples: sorted.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: sorted[sorted.len() - 1],
        }
    }
}
