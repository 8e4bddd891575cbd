//! `meshflow-bench scan`: replay through the features graph next to a raw DataFusion
//! scan of the same files, in one run.
//!
//! The raw scan reads every column of every input table of the trace (`SELECT *`,
//! streamed and counted, nothing kept), with DataFusion's default parallelism and
//! with one partition. The replay runs `meshflow replay` as a child process, with 1
//! and 2 workers, through the features graph alone (`anomaly.enabled = false`) and
//! through the whole job. Rates are input rows per second over all tables (flows, node
//! metrics, TCP events), the rows a replay reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use datafusion::execution::options::ParquetReadOptions;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use meshflow_sources::replay::{TimeRange, TracePlan};

/// The input tables a replay reads.
const TABLES: [&str; 4] = ["flows", "node_metrics", "tcp_events", "syscall_latency"];

/// Arguments of `meshflow-bench scan`.
#[derive(clap::Args)]
pub struct ScanArgs {
    /// Mesh nodes of the simulator trace.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Simulated duration.
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Where traces are cached and output written.
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
    /// Runs of each measurement (the best is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Rows read by a raw scan of every column of every input table.
async fn raw_scan(trace: &Path, partitions: Option<usize>) -> anyhow::Result<u64> {
    let mut config = SessionConfig::new();
    if let Some(p) = partitions {
        config = config.with_target_partitions(p);
    }
    let ctx = SessionContext::new_with_config(config);
    let mut rows = 0;
    for table in TABLES {
        let dir = trace.join(table);
        if !dir.is_dir() {
            continue;
        }
        let path = format!("{}/", dir.display());
        ctx.register_parquet(table, &path, ParquetReadOptions::default())
            .await?;
        let mut stream = ctx
            .sql(&format!("SELECT * FROM {table}"))
            .await?
            .execute_stream()
            .await?;
        while let Some(batch) = stream.next().await {
            rows += batch?.num_rows() as u64;
        }
    }
    Ok(rows)
}

/// Bytes of every file below `dir` (0 if it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &ScanArgs, bin: &Path) -> anyhow::Result<()> {
    let (trace, _) = crate::trace(&args.dir, args.nodes, &args.duration)?;
    let planned = TracePlan::new(&trace, TimeRange::ALL, false)?.rows();
    let bytes: u64 = TABLES.iter().map(|t| dir_bytes(&trace.join(t))).sum();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows_table = Vec::new();
    for (label, partitions) in [
        ("raw scan, DataFusion default partitions", None),
        ("raw scan, 1 partition", Some(1)),
    ] {
        let mut best = f64::MAX;
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let rows = rt.block_on(raw_scan(&trace, partitions))?;
            anyhow::ensure!(
                rows == planned,
                "scan read {rows} rows, the plan has {planned}"
            );
            best = best.min(started.elapsed().as_secs_f64());
        }
        rows_table.push((label.to_string(), best));
    }
    // The features graph alone (no anomaly scorer), then the whole job.
    let features_only = args.dir.join("scan-features-only.toml");
    std::fs::write(&features_only, "[anomaly]\nenabled = false\n")?;
    for (graph, config) in [
        ("features", Some(&features_only)),
        ("features + anomaly scores", None),
    ] {
        for workers in [1, 2] {
            let mut best = f64::MAX;
            for _ in 0..args.runs.max(1) {
                let out = args.dir.join("scan-out");
                let mut replay = Command::new(bin);
                replay
                    .arg("replay")
                    .arg(&trace)
                    .arg("--out")
                    .arg(&out)
                    .args(["--workers", &workers.to_string()]);
                if let Some(config) = config {
                    replay.arg("--config").arg(config);
                }
                let started = Instant::now();
                let status = replay.stdout(Stdio::null()).status()?;
                anyhow::ensure!(status.success(), "meshflow replay failed");
                best = best.min(started.elapsed().as_secs_f64());
            }
            rows_table.push((
                format!("meshflow replay → {graph} → Parquet, {workers} worker(s)"),
                best,
            ));
        }
    }
    let scan_rate = planned as f64 / rows_table[0].1;
    println!(
        "trace: {} nodes, {}, {planned} input rows, {:.1} MiB on disk",
        args.nodes,
        args.duration,
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!("| reader | best wall s | rows/s | MiB/s | vs raw scan (default partitions) |");
    println!("|---|---|---|---|---|");
    for (label, secs) in &rows_table {
        let rate = planned as f64 / secs;
        println!(
            "| {label} | {secs:.2} | {rate:.0} | {:.1} | {:.0}% |",
            bytes as f64 / (1024.0 * 1024.0) / secs,
            100.0 * rate / scan_rate
        );
    }
    Ok(())
}
