//! Detection quality against the simulator's ground truth.
//!
//! For one fault kind, a simulator run injects only faults of that kind; the job
//! writes `anomaly_scores`; each scored `(node, window)` pair is *positive* when the
//! node is one the fault affects and the window `[window_start, window_end)`
//! overlaps the time the fault acts on it (`[start + delay, end)`). Flagged pairs
//! (`is_anomaly`) give precision, recall and F1; a fault's *delay* is the number of
//! window slides from its start to the end of the first flagged window of one of its
//! nodes (counted from the first window ending after the start, so a flag in that
//! window is delay 0).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meshflow::config::{JobConfig, SourceConfig};
use meshflow::job::{Cluster, Progress, run};
use meshflow_operators::anomaly::AnomalyConfig;
use meshflow_operators::anomaly::scorer::WorkerScorer;
use meshflow_operators::anomaly::vector::ScoreInput;
use meshflow_schemas::{AnomalyScore, ArrowRecord, Counters, FaultKind, GroundTruth, NodeFeatures};
use meshflow_sources::simulator::{SimConfig, Simulator};

/// Quality of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quality {
    /// Flagged positive pairs.
    pub tp: u64,
    /// Flagged negative pairs.
    pub fp: u64,
    /// Unflagged positive pairs.
    pub fn_: u64,
    /// Per fault: slides from start to the first flag, `None` when never flagged.
    pub delays: Vec<Option<u64>>,
}

impl Quality {
    /// TP / (TP + FP), 0 when nothing is flagged.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// TP / (TP + FN).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    /// Adds another run's counts.
    pub fn add(&mut self, other: &Quality) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.delays.extend(other.delays.iter().copied());
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Scores `scores` against `truth`, with windows `length_ns` long sliding by `slide_ns`.
pub fn evaluate(
    scores: &[AnomalyScore],
    truth: &[GroundTruth],
    length_ns: i64,
    slide_ns: i64,
) -> Quality {
    // Per node, the intervals during which a fault acts on it, with the fault index.
    let mut active: BTreeMap<u64, Vec<(i64, i64, usize)>> = BTreeMap::new();
    for (f, g) in truth.iter().enumerate() {
        for (node, delay) in g.affected_nodes.iter().zip(&g.affected_delays_ns) {
            active
                .entry(*node)
                .or_default()
                .push((g.start.0 + *delay as i64, g.end.0, f));
        }
    }
    let mut q = Quality::default();
    let mut first_flag: Vec<Option<i64>> = vec![None; truth.len()];
    for s in scores {
        let (end, start) = (s.window_end.0, s.window_end.0 - length_ns);
        let faults: Vec<usize> = active
            .get(&s.node)
            .map(|spans| {
                spans
                    .iter()
                    .filter(|(from, to, _)| start < *to && *from < end)
                    .map(|s| s.2)
                    .collect()
            })
            .unwrap_or_default();
        match (faults.is_empty(), s.is_anomaly) {
            (false, true) => {
                q.tp += 1;
                for f in faults {
                    let t = &mut first_flag[f];
                    *t = Some(t.map_or(end, |t| t.min(end)));
                }
            }
            (false, false) => q.fn_ += 1,
            (true, true) => q.fp += 1,
            (true, false) => {}
        }
    }
    q.delays = truth
        .iter()
        .zip(&first_flag)
        .map(|(g, flag)| {
            flag.map(|end| {
                // The first window ending after the start is delay 0.
                let after = (end - g.start.0).max(1);
                ((after - 1) / slide_ns) as u64
            })
        })
        .collect();
    q
}

/// Every `*.parquet` file below `dir`, sorted (none when `dir` does not exist).
pub fn parquet_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every row of `table` under `out`.
pub fn read_table<R: ArrowRecord>(out: &Path) -> anyhow::Result<Vec<R>> {
    read_table_as(out, |r: R| r)
}

/// Reads every row of `table` under `out` as `map` turns it, a batch at a time, so a
/// table larger than memory can be read into a smaller form.
pub fn read_table_as<R: ArrowRecord, T>(
    out: &Path,
    mut map: impl FnMut(R) -> T,
) -> anyhow::Result<Vec<T>> {
    let mut rows = Vec::new();
    for f in parquet_files(&out.join(R::TABLE))? {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f)?)
            .with_context(|| format!("opening {}", f.display()))?
            .build()?;
        for batch in reader {
            rows.extend(R::from_batch(&batch?)?.into_iter().map(&mut map));
        }
    }
    Ok(rows)
}

/// One quality run's setup.
#[derive(Clone, Debug)]
pub struct Run {
    /// The only fault kind injected.
    pub kind: FaultKind,
    /// Simulator seed.
    pub seed: u64,
    /// Faults injected.
    pub faults: usize,
    /// Simulated duration.
    pub duration: String,
    /// Mesh nodes.
    pub nodes: usize,
    /// Worker threads.
    pub workers: usize,
}

/// Runs the job on the simulator with `anomaly` settings and evaluates it.
pub fn measure(run_cfg: &Run, anomaly: &AnomalyConfig, dir: &Path) -> anyhow::Result<Quality> {
    let mut sim = SimConfig {
        nodes: run_cfg.nodes,
        seed: run_cfg.seed,
        duration: run_cfg.duration.parse().map_err(anyhow::Error::msg)?,
        ..SimConfig::default()
    };
    sim.faults.kinds = vec![run_cfg.kind];
    sim.faults.count = run_cfg.faults;
    let truth = Simulator::new(sim.clone())?.ground_truth().to_vec();
    let out: PathBuf = dir.join(format!(
        "quality-{}-{}-{}",
        run_cfg.kind.as_str(),
        run_cfg.seed,
        anomaly.model.as_str()
    ));
    let mut cfg = JobConfig::default();
    cfg.job.workers = run_cfg.workers;
    cfg.sources
        .insert("mesh".into(), SourceConfig::Simulator(sim));
    cfg.sinks.parquet.path = out.clone();
    cfg.anomaly = anomaly.clone();
    run(&cfg, &Cluster::Local, Arc::new(Progress::default()))?;
    let scores: Vec<AnomalyScore> = read_table(&out)?;
    let _ = std::fs::remove_dir_all(&out);
    let spec = cfg.window_spec().map_err(anyhow::Error::msg)?;
    Ok(evaluate(
        &scores,
        &truth,
        spec.length as i64 * spec.epoch_ns,
        spec.slide as i64 * spec.epoch_ns,
    ))
}

/// Scores stored `node_features` rows again, window by window in time order, with
/// one scorer (what a job computes on any number of workers): the anomaly settings can then be
/// compared without running the feature graph again.
pub fn rescore(rows: Vec<NodeFeatures>, anomaly: &AnomalyConfig) -> Vec<AnomalyScore> {
    let rows: Vec<ScoreInput> = rows.iter().map(ScoreInput::from).collect();
    let mut scorer = WorkerScorer::new(anomaly.clone(), Counters::shared());
    let mut out = Vec::new();
    for mut window in by_window(rows) {
        out.extend(scorer.process_window(&mut window));
    }
    out
}

/// `rows` grouped by window, windows in time order and each window's rows in node
/// order: the order in which a job's scorer sees them.
pub fn by_window(mut rows: Vec<ScoreInput>) -> Vec<Vec<ScoreInput>> {
    rows.sort_by_key(|r| (r.window_end, r.node));
    let mut windows: Vec<Vec<ScoreInput>> = Vec::new();
    for row in rows {
        match windows.last_mut() {
            Some(w) if w[0].window_end == row.window_end => w.push(row),
            _ => windows.push(vec![row]),
        }
    }
    windows
}

/// Nodes in `scores` (for reports).
pub fn nodes(scores: &[AnomalyScore]) -> BTreeSet<u64> {
    scores.iter().map(|s| s.node).collect()
}

#[cfg(test)]
mod tests {
    use meshflow_schemas::{HealthState, TimestampNs, Trend};

    use super::*;

    fn score(node: u64, end_s: i64, flagged: bool) -> AnomalyScore {
        AnomalyScore {
            window_end: TimestampNs(end_s * 1_000_000_000),
            node,
            node_label: String::new(),
            score: 0.0,
            threshold: 0.0,
            is_anomaly: flagged,
            state: HealthState::Healthy,
            strategy: "".into(),
            score_trend: Trend::Stable,
            top_features: vec![],
            top_deviations: vec![],
            top_values: vec![],
            top_thresholds: vec![],
            top_trends: vec![],
        }
    }

    #[test]
    fn pairs_and_delay() {
        let s = 1_000_000_000;
        let truth = vec![GroundTruth {
            fault_id: 0,
            kind: FaultKind::TrafficFlood,
            root_node: 1,
            peer_node: None,
            affected_nodes: vec![1, 2],
            affected_delays_ns: vec![0, 5 * s as u64],
            start: TimestampNs(100 * s),
            end: TimestampNs(120 * s),
        }];
        // Windows are 10 s long: node 1 is positive for ends in (100, 130], node 2
        // for ends in (105, 130].
        let scores = vec![
            score(1, 100, true),  // FP: window [90, 100) ends at the start
            score(1, 101, false), // FN
            score(1, 103, true),  // TP, delay 2
            score(2, 105, true),  // FP for node 2 (its fault starts at 105)
            score(2, 106, true),  // TP
            score(3, 110, true),  // FP: unaffected node
            score(1, 130, true),  // FP: window [120, 130) starts at the fault's end
        ];
        let q = evaluate(&scores, &truth, 10 * s, s);
        assert_eq!((q.tp, q.fp, q.fn_), (2, 4, 1));
        assert_eq!(q.delays, vec![Some(2)]);
        assert!((q.precision() - 2.0 / 6.0).abs() < 1e-12);
        assert!((q.recall() - 2.0 / 3.0).abs() < 1e-12);
    }
}
