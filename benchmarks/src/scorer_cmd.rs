//! `meshflow-bench scorer`: the anomaly scorer alone, timed on stored
//! `node_features`. The scorer's cost grows with its histories, and in a job it is
//! mixed with the feature graph's; here one [`WorkerScorer`] scores every window of
//! a replay's output in time order (as a job on one worker does), and the time per
//! row is reported for each quarter of the windows, so the growth shows.
//!
//! [`WorkerScorer`]: meshflow_operators::anomaly::scorer::WorkerScorer

use std::path::PathBuf;
use std::time::{Duration, Instant};

use meshflow::config::JobConfig;
use meshflow_operators::anomaly::scorer::WorkerScorer;
use meshflow_operators::anomaly::vector::ScoreInput;
use meshflow_schemas::{Counters, NodeFeatures};

use meshflow_benchmarks::quality::{by_window, read_table_as};

/// Arguments of `meshflow-bench scorer`.
#[derive(clap::Args)]
pub struct ScorerArgs {
    /// Output folder of a replay (its `node_features` are scored).
    out: PathBuf,
    /// A job configuration whose `[anomaly]` settings are used; without it, the
    /// defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Timed runs (each from an empty scorer; the best total is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// The stored rows as the scorer reads them, grouped by window in time order.
fn windows(out: &std::path::Path) -> anyhow::Result<Vec<Vec<ScoreInput>>> {
    let rows = read_table_as(out, |f: NodeFeatures| ScoreInput::from(&f))?;
    anyhow::ensure!(!rows.is_empty(), "{}: no node_features rows", out.display());
    Ok(by_window(rows))
}

/// Scores every window once from an empty scorer; the time of each window.
fn score_all(windows: &[Vec<ScoreInput>], cfg: &JobConfig) -> Vec<Duration> {
    let mut scorer = WorkerScorer::new(cfg.anomaly.clone(), Counters::shared());
    let mut times = Vec::with_capacity(windows.len());
    for w in windows {
        let mut rows = w.clone();
        let start = Instant::now();
        let scores = scorer.process_window(&mut rows);
        times.push(start.elapsed());
        std::hint::black_box(scores);
    }
    times
}

/// Times the scorer; prints a Markdown table of ns per row by quarter of the run.
pub fn run(args: &ScorerArgs) -> anyhow::Result<()> {
    let cfg = match &args.config {
        Some(p) => JobConfig::load(p)?,
        None => JobConfig::default(),
    };
    let windows = windows(&args.out)?;
    let rows: usize = windows.iter().map(Vec::len).sum();
    println!("{} windows, {rows} rows", windows.len());
    println!("| run | total s | rows/s | ns/row, windows by quarter: 1st | 2nd | 3rd | 4th |");
    println!("|---|---|---|---|---|---|---|");
    let quarter = windows.len().div_ceil(4);
    for run in 1..=args.runs.max(1) {
        let times = score_all(&windows, &cfg);
        let total: Duration = times.iter().sum();
        let per_quarter: Vec<String> = times
            .chunks(quarter)
            .zip(windows.chunks(quarter))
            .map(|(t, w)| {
                let ns = t.iter().sum::<Duration>().as_nanos() as f64;
                let n = w.iter().map(Vec::len).sum::<usize>().max(1) as f64;
                format!("{:.0}", ns / n)
            })
            .collect();
        println!(
            "| {run} | {:.2} | {:.0} | {} |",
            total.as_secs_f64(),
            rows as f64 / total.as_secs_f64(),
            per_quarter.join(" | ")
        );
    }
    Ok(())
}
