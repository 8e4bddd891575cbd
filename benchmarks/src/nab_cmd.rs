//! `meshflow-bench nab`: meshflow's threshold learner on the NAB corpus, scored with
//! NAB's standard profiles, next to the re-implemented `windowedGaussian` baseline.

use std::path::PathBuf;
use std::time::Instant;

use meshflow_benchmarks::nab::learner::{LearnerParams, scores, strengths};
use meshflow_benchmarks::nab::{Threshold, data, evaluate, gaussian};
use meshflow_operators::anomaly::threshold::{ThresholdParams, ThresholdStrategy};

/// Arguments of `meshflow-bench nab`.
#[derive(clap::Args)]
pub struct NabArgs {
    /// The NAB folder (with data/, labels/, config/).
    #[arg(long, default_value = "../shared/datasets/nab")]
    data: PathBuf,
    /// Threshold strategy: percentile, sigma or iqr.
    #[arg(long, default_value = "percentile")]
    strategy: String,
    /// Percentile for the percentile strategy.
    #[arg(long, default_value_t = 99.0)]
    percentile: f64,
    /// k for the sigma strategy.
    #[arg(long, default_value_t = 3.0)]
    sigma_k: f64,
    /// k for the iqr strategy.
    #[arg(long, default_value_t = 1.5)]
    iqr_k: f64,
    /// History (ring buffer) capacity.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Values seen before scoring starts.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Points after a flag whose score is held at 0 (comma-separated: one row each;
    /// 150 scored best, see benchmarks/README.md).
    #[arg(long, default_value = "0,150")]
    suppress: String,
    /// Skip the windowedGaussian baseline.
    #[arg(long)]
    no_baseline: bool,
}

fn row(
    name: &str,
    mode: &str,
    results: &std::collections::BTreeMap<String, meshflow_benchmarks::nab::ProfileResult>,
) {
    let get = |p: &str| results.get(p).copied();
    let (s, fp, fnr) = (
        get("standard"),
        get("reward_low_FP_rate"),
        get("reward_low_FN_rate"),
    );
    let fmt = |r: Option<meshflow_benchmarks::nab::ProfileResult>| {
        r.map_or("-".to_string(), |r| format!("{:.1}", r.normalised))
    };
    println!(
        "| {name} | {mode} | {} | {} | {} | {} | {} / {} |",
        fmt(s),
        fmt(fp),
        fmt(fnr),
        s.map_or("-".into(), |r| format!("{:.4}", r.threshold)),
        s.map_or(0, |r| r.tp),
        s.map_or(0, |r| r.fp),
    );
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &NabArgs) -> anyhow::Result<()> {
    let strategy = match args.strategy.as_str() {
        "percentile" => ThresholdStrategy::Percentile,
        "sigma" => ThresholdStrategy::Sigma,
        "iqr" => ThresholdStrategy::Iqr,
        other => anyhow::bail!("--strategy `{other}`: expected percentile, sigma or iqr"),
    };
    let corpus = data::load(&args.data)?;
    let rows: usize = corpus.series.iter().map(|s| s.values.len()).sum();
    eprintln!(
        "NAB: {} series, {rows} rows, {} windows",
        corpus.series.len(),
        corpus.label_windows
    );
    let params = LearnerParams {
        history: args.history,
        threshold: ThresholdParams {
            strategy,
            percentile: args.percentile,
            sigma_k: args.sigma_k,
            iqr_k: args.iqr_k,
        },
        warmup: args.warmup,
        suppress: 0,
    };
    let suppress: Vec<usize> = args
        .suppress
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--suppress: {e}"))?;
    let started = Instant::now();
    let points: Vec<_> = corpus
        .series
        .iter()
        .map(|s| strengths(&s.values, &params))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "| detector | threshold | standard | reward_low_FP | reward_low_FN | threshold (standard) | TP / FP rows (standard) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &suppress in &suppress {
        let name = format!(
            "meshflow learner ({}, history {}, suppress {suppress})",
            strategy.as_str(),
            args.history,
        );
        let s: Vec<Vec<f64>> = points.iter().map(|p| scores(p, suppress)).collect();
        row(
            &name,
            "fixed 0.5 (learned)",
            &evaluate(&corpus, &s, Threshold::Fixed(0.5)),
        );
        row(
            &name,
            "NAB-optimised",
            &evaluate(&corpus, &s, Threshold::Optimised),
        );
    }
    if !args.no_baseline {
        let baseline: Vec<Vec<f64>> = corpus
            .series
            .iter()
            .map(|s| gaussian::windowed_gaussian(&s.values))
            .collect();
        row(
            "windowedGaussian (re-implemented)",
            "published 1.0",
            &evaluate(&corpus, &baseline, Threshold::Fixed(1.0)),
        );
    }
    eprintln!("learner: {rows} rows in {elapsed:.2}s");
    Ok(())
}
