//! `meshflow-bench rescore`: detection quality of anomaly settings on stored
//! features. The feature graph is the slow part of a quality run (minutes per trace
//! in a debug build); the scorer alone takes seconds. So a trace is replayed once
//! (`meshflow replay TRACE --out FEATURES`, any anomaly settings) and its
//! `node_features` are scored again here by one [`WorkerScorer`], exactly as a
//! job on any number of workers would, for each model; the result is evaluated against the trace's
//! `ground_truth` with the pair and delay definitions of `meshflow-bench quality`.
//!
//! [`WorkerScorer`]: meshflow_operators::anomaly::scorer::WorkerScorer

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshflow::config::JobConfig;
use meshflow_benchmarks::quality::{Quality, evaluate, read_table, rescore};
use meshflow_schemas::{AnomalyScore, FaultKind, GroundTruth, NodeFeatures};
use meshflow_sources::replay::{TimeRange, TracePlan};

use crate::quality_cmd::{model, print_row};

/// Arguments of `meshflow-bench rescore`.
#[derive(clap::Args)]
pub struct RescoreArgs {
    /// `TRACE:FEATURES` pairs: a trace folder (its `ground_truth`) and the output
    /// folder of its replay (its `node_features`).
    #[arg(required = true)]
    runs: Vec<String>,
    /// Models to compare (comma-separated: gmm, kmeans, pca, robust).
    #[arg(long, default_value = "gmm,kmeans,pca,robust")]
    models: String,
    /// A job configuration whose `[anomaly]` and window settings are used (the
    /// model is replaced by each of `--models`); without it, the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Per fault kind, the quality over all runs. In a run with several kinds, the
/// pairs positive for another kind's fault are left out of a kind's counts, and the
/// false positives (pairs outside every fault) are charged to every kind.
fn per_kind(
    scores: &[AnomalyScore],
    truth: &[GroundTruth],
    length: i64,
    slide: i64,
) -> Vec<(FaultKind, Quality)> {
    let mut out = Vec::new();
    for &kind in FaultKind::ALL {
        let (mine, others): (Vec<GroundTruth>, Vec<GroundTruth>) =
            truth.iter().cloned().partition(|g| g.kind == kind);
        if mine.is_empty() {
            continue;
        }
        // Pairs positive for another kind: the evaluation of `others` marks them.
        let kept: Vec<AnomalyScore> = scores
            .iter()
            .filter(|s| {
                let single = std::slice::from_ref(*s);
                let q = evaluate(single, &others, length, slide);
                q.tp + q.fn_ == 0
            })
            .cloned()
            .collect();
        out.push((kind, evaluate(&kept, &mine, length, slide)));
    }
    out
}

/// Scores every run with every model; prints a Markdown table.
pub fn run(args: &RescoreArgs) -> anyhow::Result<()> {
    let job = match &args.config {
        Some(p) => JobConfig::load(p)?,
        None => JobConfig::default(),
    };
    let spec = job.window_spec().map_err(anyhow::Error::msg)?;
    let (length, slide) = (
        spec.length as i64 * spec.epoch_ns,
        spec.slide as i64 * spec.epoch_ns,
    );
    let mut runs = Vec::new();
    for r in &args.runs {
        let (trace, features) = r
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("`{r}`: expected TRACE:FEATURES"))?;
        let truth: Vec<GroundTruth> = read_table(&PathBuf::from(trace))?;
        let mut rows: Vec<NodeFeatures> = read_table(&PathBuf::from(features))?;
        anyhow::ensure!(!rows.is_empty(), "{features}: no node_features rows");
        // As the job does: the windows after the last one the data filled hold only
        // its tail and are not scored. The end comes from the trace's row-group
        // statistics, as replay-then-live takes it.
        let end = TracePlan::new(Path::new(trace), TimeRange::default(), false)?.end();
        if let Some(epoch) = end.and_then(|t| spec.epoch_of(t)) {
            let cut = spec.window_end(spec.first_window(epoch));
            rows.retain(|r| r.window_end <= cut);
        }
        runs.push((truth, rows));
    }
    println!(
        "| model | fault kind | precision | recall | F1 | delay (windows) mean / max | faults detected |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in args.models.split(',') {
        let mut anomaly = job.anomaly.clone();
        anomaly.model = model(name)?;
        let mut kinds: BTreeMap<&'static str, Quality> = BTreeMap::new();
        let mut all = Quality::default();
        for (truth, rows) in &runs {
            let scores = rescore(rows.clone(), &anomaly);
            for (kind, q) in per_kind(&scores, truth, length, slide) {
                kinds.entry(kind.as_str()).or_default().add(&q);
            }
            all.add(&evaluate(&scores, truth, length, slide));
        }
        for &kind in FaultKind::ALL {
            if let Some(q) = kinds.get(kind.as_str()) {
                print_row(anomaly.model.as_str(), kind.as_str(), q);
            }
        }
        print_row(anomaly.model.as_str(), "all", &all);
    }
    Ok(())
}
