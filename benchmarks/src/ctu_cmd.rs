//! `meshflow-bench ctu`: anomaly scores against the Stratosphere CTU labels.
//!
//! For each day: `meshflow import zeek` of the labelled `conn.log`, `meshflow replay`
//! of the trace, then two measurements against the flows' `label` column (kept by the
//! importer next to each flow):
//! - per node: the node's score is its highest anomaly score over all windows (a node
//!   never scored ranks lowest), its label whether it originated at least one flow
//!   labelled Malicious; ROC-AUC and average precision over every node in the trace;
//! - per (node, window): flagged (`is_anomaly`) against "the node originated a
//!   Malicious flow in the window"; precision and recall over the windows emitted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meshflow_benchmarks::quality::{parquet_files, read_table};
use meshflow_benchmarks::ranking::{average_precision, roc_auc};
use meshflow_schemas::{AnomalyScore, NodeFeatures};

/// Arguments of `meshflow-bench ctu`.
#[derive(clap::Args)]
pub struct CtuArgs {
    /// The Stratosphere CTU Zeek folder (`NNN-zeek-*/data/conn.log.labeled`).
    #[arg(long, default_value = "../shared/datasets/stratosphere_ctu_zeek")]
    data: PathBuf,
    /// Days to evaluate, by folder prefix.
    #[arg(long, default_value = "008,010")]
    days: String,
    /// Work folder for the traces and outputs.
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
    /// Job settings for the replay (a TOML file: windows, `[anomaly]`); by default
    /// [`DEFAULT_CONFIG`].
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Windows for a day of sparse flows: 1 minute sliding by 10 s, on 10 s epochs (the
/// 1 s defaults would step the dataflow through 86,400 mostly empty epochs a day).
pub const DEFAULT_CONFIG: &str =
    "[job]\nepoch = \"10s\"\n[window]\nlength = \"60s\"\nslide = \"10s\"\n";

/// One originated flow: who, when, and whether it was labelled Malicious.
struct Flow {
    src: u64,
    dst: u64,
    time: i64,
    malicious: bool,
}

/// The flows of a trace with their labels, from the `flows` table the importer wrote.
fn labelled_flows(trace: &Path) -> anyhow::Result<Vec<Flow>> {
    let mut flows = Vec::new();
    for f in parquet_files(&trace.join("flows"))? {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f)?)?.build()?;
        for batch in reader {
            let batch = batch?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .with_context(|| format!("{}: no column `{name}`", f.display()))
            };
            let src = col("src_node")?.as_primitive::<UInt64Type>();
            let dst = col("dst_node")?.as_primitive::<UInt64Type>();
            let time = col("last_seen")?
                .as_primitive::<TimestampNanosecondType>()
                .clone();
            let label = col("label")?.as_string::<i32>();
            let direction = col("direction")?.as_string::<i32>();
            for i in 0..batch.num_rows() {
                let orig = !direction.is_null(i) && direction.value(i) == "orig";
                let malicious = !label.is_null(i) && label.value(i).contains("Malicious");
                flows.push(Flow {
                    src: src.value(i),
                    dst: dst.value(i),
                    time: time.value(i),
                    malicious: orig && malicious,
                });
            }
        }
    }
    Ok(flows)
}

fn meshflow(bin: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let out = Command::new(bin).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "meshflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Runs the evaluation and prints one Markdown row per day.
pub fn run(args: &CtuArgs, bin: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let config = match &args.config {
        Some(c) => c.clone(),
        None => {
            let c = args.dir.join("ctu.toml");
            std::fs::write(&c, DEFAULT_CONFIG)?;
            c
        }
    };
    println!(
        "| day | flows | nodes | Malicious originators | node ROC-AUC | node AP | AP of a random ranking | node-windows | positive | flagged | precision | recall |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for day in args.days.split(',').map(str::trim) {
        let folder = std::fs::read_dir(&args.data)
            .with_context(|| format!("listing {}", args.data.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(day))
            })
            .with_context(|| format!("no day {day} in {}", args.data.display()))?;
        let conn = folder.join("data").join("conn.log.labeled");
        let trace = args.dir.join(format!("ctu-{day}-trace"));
        let out = args.dir.join(format!("ctu-{day}-out"));
        for d in [&trace, &out] {
            let _ = std::fs::remove_dir_all(d);
        }
        meshflow(
            bin,
            &[
                "import".as_ref(),
                "zeek".as_ref(),
                conn.as_os_str(),
                "--out".as_ref(),
                trace.as_os_str(),
            ],
        )?;
        meshflow(
            bin,
            &[
                "replay".as_ref(),
                trace.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
                "--config".as_ref(),
                config.as_os_str(),
            ],
        )?;

        let flows = labelled_flows(&trace)?;
        let scores: Vec<AnomalyScore> = read_table(&out)?;
        let windows: Vec<NodeFeatures> = read_table(&out)?;

        let nodes: BTreeSet<u64> = flows.iter().flat_map(|f| [f.src, f.dst]).collect();
        let attackers: BTreeSet<u64> = flows
            .iter()
            .filter(|f| f.malicious)
            .map(|f| f.src)
            .collect();
        let mut best: BTreeMap<u64, f64> = BTreeMap::new();
        for s in &scores {
            let b = best.entry(s.node).or_insert(f64::NEG_INFINITY);
            *b = b.max(s.score);
        }
        let ranked: Vec<(f64, bool)> = nodes
            .iter()
            .map(|n| {
                (
                    best.get(n).copied().unwrap_or(f64::NEG_INFINITY),
                    attackers.contains(n),
                )
            })
            .collect();

        // (node, window_end) pairs: emitted, positive, flagged.
        let mut malicious: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
        for f in flows.iter().filter(|f| f.malicious) {
            malicious.entry(f.src).or_default().push(f.time);
        }
        malicious.values_mut().for_each(|t| t.sort_unstable());
        let mut positive = BTreeSet::new();
        for w in &windows {
            let (start, end) = (w.window_start.0, w.window_end.0);
            let times = malicious.get(&w.node).map_or(&[][..], Vec::as_slice);
            let first = times.partition_point(|&t| t < start);
            if times.get(first).is_some_and(|&t| t < end) {
                positive.insert((w.node, end));
            }
        }
        let flagged: BTreeSet<(u64, i64)> = scores
            .iter()
            .filter(|s| s.is_anomaly)
            .map(|s| (s.node, s.window_end.0))
            .collect();
        let hits = flagged.intersection(&positive).count() as f64;
        let ratio = |a: f64, b: usize| if b == 0 { f64::NAN } else { a / b as f64 };
        let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
        println!(
            "| {day} | {} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {:.3} | {:.3} |",
            flows.len(),
            nodes.len(),
            attackers.len(),
            fmt(roc_auc(&ranked)),
            fmt(average_precision(&ranked)),
            attackers.len() as f64 / nodes.len().max(1) as f64,
            windows.len(),
            positive.len(),
            flagged.len(),
            ratio(hits, flagged.len()),
            ratio(hits, positive.len()),
        );
    }
    Ok(())
}
