//! `meshflow-bench nab`: meshflow's threshold learner on the NAB corpus, scored with
//! NAB's standard profiles, next to the re-implemented `windowedGaussian` baseline.

use std::path::PathBuf;
use std::time::Instant;

use meshflow_benchmarks::nab::learner::{SUPPRESS, SeriesParams, scores, strengths};
use meshflow_benchmarks::nab::{Threshold, data, evaluate, gaussian};

/// Arguments of `meshflow-bench nab`.
#[derive(clap::Args)]
pub struct NabArgs {
    /// The NAB folder (with data/, labels/, config/).
    #[arg(long, default_value = "../shared/datasets/nab")]
    data: PathBuf,
    /// Percentile of a feature's past deviations that scales its deviation.
    #[arg(long, default_value_t = SeriesParams::default().percentile)]
    percentile: f64,
    /// Percentile for the daily-difference feature (100: the largest seen).
    #[arg(long, default_value_t = SeriesParams::default().seasonal_percentile)]
    seasonal_percentile: f64,
    /// Flag level: a point is flagged when its strength exceeds it.
    #[arg(long, default_value_t = SeriesParams::default().k)]
    k: f64,
    /// History (ring buffer) capacity of every learner.
    #[arg(long, default_value_t = SeriesParams::default().history)]
    history: usize,
    /// Length of the rolling-mean feature.
    #[arg(long, default_value_t = SeriesParams::default().mean_len)]
    mean_len: usize,
    /// Turn the daily-difference feature off.
    #[arg(long)]
    no_seasonal: bool,
    /// Points after a flag whose score is held at 0 (comma-separated: one row each).
    #[arg(long, default_value_t = SUPPRESS.to_string())]
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
    let corpus = data::load(&args.data)?;
    let rows: usize = corpus.series.iter().map(|s| s.values.len()).sum();
    eprintln!(
        "NAB: {} series, {rows} rows, {} windows",
        corpus.series.len(),
        corpus.label_windows
    );
    let suppress: Vec<usize> = args
        .suppress
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--suppress: {e}"))?;
    println!(
        "| detector | threshold | standard | reward_low_FP | reward_low_FN | threshold (standard) | TP / FP rows (standard) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let params = SeriesParams {
        history: args.history,
        mean_len: args.mean_len,
        percentile: args.percentile,
        seasonal_percentile: args.seasonal_percentile,
        period_secs: if args.no_seasonal {
            0
        } else {
            SeriesParams::default().period_secs
        },
        k: args.k,
        ..SeriesParams::default()
    };
    let started = Instant::now();
    let learned: Vec<Vec<f64>> = corpus
        .series
        .iter()
        .map(|s| strengths(&s.values, &s.timestamps, &params))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    for &suppress in &suppress {
        let s: Vec<Vec<f64>> = learned
            .iter()
            .map(|l| scores(l, args.k, suppress))
            .collect();
        let name = format!(
            "meshflow learner (p{}, k {}, history {}, mean {}, seasonal {}, suppress {suppress})",
            args.percentile,
            args.k,
            args.history,
            args.mean_len,
            if args.no_seasonal { "off" } else { "on" },
        );
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
    eprintln!("detector: {rows} rows in {elapsed:.2}s");
    Ok(())
}
