//! `meshflow-bench quality`: per fault kind precision, recall, F1 and detection
//! delay of `anomaly_scores` against the simulator's ground truth, per model.

use std::path::PathBuf;

use meshflow_benchmarks::quality::{Quality, Run, measure};
use meshflow_operators::anomaly::AnomalyConfig;
use meshflow_operators::anomaly::model::ModelKind;
use meshflow_schemas::FaultKind;

/// Arguments of `meshflow-bench quality`.
#[derive(clap::Args)]
pub struct QualityArgs {
    /// Models to compare (comma-separated: gmm, kmeans, pca, robust).
    #[arg(long, default_value = "gmm,kmeans,pca,robust")]
    models: String,
    /// Simulator seeds (one run per seed and kind).
    #[arg(long, default_value = "1,2")]
    seeds: String,
    /// Faults per run.
    #[arg(long, default_value_t = 4)]
    faults: usize,
    /// Simulated duration per run.
    #[arg(long, default_value = "900s")]
    duration: String,
    /// Mesh nodes.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Where the runs write (removed after reading).
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
}

/// The model named `name`.
pub(crate) fn model(name: &str) -> anyhow::Result<ModelKind> {
    Ok(match name.trim() {
        "gmm" => ModelKind::Gmm,
        "kmeans" => ModelKind::Kmeans,
        "pca" => ModelKind::Pca,
        "robust" => ModelKind::Robust,
        other => anyhow::bail!("--models: unknown model `{other}`"),
    })
}

/// Runs every model on every kind and seed; prints a Markdown table.
pub fn run(args: &QualityArgs) -> anyhow::Result<()> {
    let models: Vec<ModelKind> = args
        .models
        .split(',')
        .map(model)
        .collect::<Result<_, _>>()?;
    let seeds: Vec<u64> = args
        .seeds
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&args.dir)?;
    println!(
        "| model | fault kind | precision | recall | F1 | delay (windows) mean / max | faults detected |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &m in &models {
        let anomaly = AnomalyConfig {
            model: m,
            ..AnomalyConfig::default()
        };
        let mut all = Quality::default();
        for &kind in FaultKind::ALL {
            let mut q = Quality::default();
            for &seed in &seeds {
                let r = Run {
                    kind,
                    seed,
                    faults: args.faults,
                    duration: args.duration.clone(),
                    nodes: args.nodes,
                    workers: args.workers,
                };
                q.add(&measure(&r, &anomaly, &args.dir)?);
            }
            all.add(&q);
            print_row(m.as_str(), kind.as_str(), &q);
        }
        print_row(m.as_str(), "all", &all);
    }
    Ok(())
}

/// Prints one Markdown row of a quality table.
pub(crate) fn print_row(model: &str, kind: &str, q: &Quality) {
    let found: Vec<u64> = q.delays.iter().flatten().copied().collect();
    let delay = if found.is_empty() {
        "-".to_string()
    } else {
        format!(
            "{:.1} / {}",
            found.iter().sum::<u64>() as f64 / found.len() as f64,
            found.iter().max().expect("non-empty")
        )
    };
    println!(
        "| {model} | {kind} | {:.3} | {:.3} | {:.3} | {delay} | {} / {} |",
        q.precision(),
        q.recall(),
        q.f1(),
        found.len(),
        q.delays.len()
    );
}
