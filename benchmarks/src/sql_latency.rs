//! `meshflow-bench sql`: latency of typical `meshflow sql` queries over 10M rows of output.
//!
//! Writes (once, cached) an output folder shaped like a long run's: `anomaly_scores`
//! for `nodes` nodes, one row per node per 1 s window (10M rows by default, about 2.8
//! hours at 1,000 nodes), and `root_causes` with three ranked causes per incident, one
//! incident a minute over seven days. Each query runs as `meshflow sql` (a fresh
//! process: start, table registration, planning, execution, output), and the best and
//! median of `runs` are reported.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use meshflow_schemas::{
    AnomalyScore, Counters, HealthState, RootCause, TimestampNs, Trend, node_label,
};
use meshflow_sinks::parquet::{ParquetSinkConfig, TableWriter, prepare_table_dir};

/// Arguments of `meshflow-bench sql`.
#[derive(clap::Args)]
pub struct SqlArgs {
    /// Rows of `anomaly_scores`.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Nodes (one row per node per window).
    #[arg(long, default_value_t = 1000)]
    nodes: u64,
    /// Where the output folder is cached.
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
    /// Runs of each query.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Query a copy of the output after `meshflow compact` (one file per hour).
    #[arg(long)]
    compacted: bool,
}

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600;

fn write_output(out: &Path, rows: u64, nodes: u64) -> anyhow::Result<()> {
    let sink = ParquetSinkConfig {
        path: out.to_path_buf(),
        ..Default::default()
    };
    let dir = prepare_table_dir(out, "anomaly_scores", sink.mode)?;
    let mut writers: Vec<TableWriter<AnomalyScore>> = (0..sink.buckets)
        .map(|b| TableWriter::new(dir.clone(), b, &sink, Counters::shared()))
        .collect();
    let windows = rows.div_ceil(nodes);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut written = 0;
    let mut window_rows: Vec<Vec<AnomalyScore>> = vec![Vec::new(); sink.buckets as usize];
    for w in 0..windows {
        let window_end = TimestampNs::from_secs(START + w as i64 + 1);
        for node in 0..nodes {
            if written == rows {
                break;
            }
            written += 1;
            let r = next();
            let score = (r % 10_000) as f64 / 1000.0;
            let is_anomaly = score > 9.5;
            window_rows[(node % u64::from(sink.buckets)) as usize].push(AnomalyScore {
                window_end,
                node,
                node_label: node_label(node),
                score,
                threshold: 9.5,
                is_anomaly,
                state: if is_anomaly {
                    HealthState::Degraded
                } else {
                    HealthState::Healthy
                },
                strategy: "percentile/kmeans".into(),
                top_features: vec![
                    "bytes_out".into(),
                    "rtt_p99".into(),
                    "retransmit_rate".into(),
                ],
                top_deviations: vec![score, score / 2.0, score / 3.0],
                score_trend: Trend::Stable,
                top_values: vec![r as f64, 1.0, 0.5],
                top_thresholds: vec![1e6, 2.0, 0.1],
                top_trends: vec![Trend::Stable, Trend::Increasing, Trend::Stable],
            });
        }
        for (writer, rows) in writers.iter_mut().zip(window_rows.iter_mut()) {
            writer.write(rows.drain(..))?;
        }
    }
    for writer in &mut writers {
        writer.finish()?;
    }
    let dir = prepare_table_dir(out, "root_causes", sink.mode)?;
    let mut writer = TableWriter::<RootCause>::new(dir, 0, &sink, Counters::shared());
    for minute in 0..7 * 24 * 60i64 {
        let time = TimestampNs::from_secs(START + minute * 60);
        for rank in 1..=3u32 {
            let r = next();
            writer.write([RootCause {
                time,
                incident_id: format!("inc-{minute}"),
                rank,
                node: r % nodes,
                confidence: 1.0 / f64::from(rank) - (r % 100) as f64 / 1000.0,
                reason: "retransmits rose first on its links".into(),
                remediation: "check the link's physical layer".into(),
            }])?;
        }
    }
    writer.finish()?;
    Ok(())
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &SqlArgs, bin: &Path) -> anyhow::Result<()> {
    let out = args.dir.join(format!("sql-{}r-{}n", args.rows, args.nodes));
    let marker = out.join("COMPLETE");
    if !marker.exists() {
        let started = Instant::now();
        write_output(&out, args.rows, args.nodes)?;
        std::fs::write(&marker, "")?;
        eprintln!(
            "wrote {} rows in {:.1}s",
            args.rows,
            started.elapsed().as_secs_f64()
        );
    }
    let out = if args.compacted {
        let compacted = out.with_file_name(format!(
            "{}-compacted",
            out.file_name().and_then(|n| n.to_str()).unwrap_or("out")
        ));
        if !compacted.join("COMPACTED").exists() {
            let _ = std::fs::remove_dir_all(&compacted);
            let copy = Command::new("cp")
                .arg("-r")
                .arg(&out)
                .arg(&compacted)
                .status()?;
            anyhow::ensure!(copy.success(), "copying {} failed", out.display());
            let started = Instant::now();
            let run = Command::new(bin)
                .args(["compact", "--settle", "0s", "--out"])
                .arg(&compacted)
                .output()?;
            anyhow::ensure!(run.status.success(), "meshflow compact failed");
            eprint!("{}", String::from_utf8_lossy(&run.stdout));
            eprintln!("compacted in {:.1}s", started.elapsed().as_secs_f64());
            std::fs::write(compacted.join("COMPACTED"), "")?;
        }
        compacted
    } else {
        out
    };
    let windows = args.rows.div_ceil(args.nodes) as i64;
    let last_hour = TimestampNs::from_secs(START + windows + 1 - 3600);
    let queries = [
        (
            "top anomalous nodes in the last hour",
            format!(
                "SELECT node_label, count(*) AS flagged, max(score) AS worst FROM anomaly_scores \
                 WHERE is_anomaly AND window_end >= '{last_hour}' \
                 GROUP BY node_label ORDER BY flagged DESC, node_label LIMIT 10"
            ),
        ),
        (
            "root causes per day",
            "SELECT date, node, count(*) AS incidents, avg(confidence) AS confidence \
             FROM root_causes WHERE rank = 1 GROUP BY date, node ORDER BY date, incidents DESC"
                .to_string(),
        ),
        (
            "one node's last hour",
            format!(
                "SELECT window_end, score, state FROM anomaly_scores \
                 WHERE node = 7 AND window_end >= '{last_hour}' ORDER BY window_end"
            ),
        ),
        (
            "flag rate per hour, whole table",
            "SELECT date, hour, avg(CAST(is_anomaly AS DOUBLE)) AS rate, count(*) AS n \
             FROM anomaly_scores GROUP BY date, hour ORDER BY date, hour"
                .to_string(),
        ),
    ];
    println!(
        "output: {} rows of anomaly_scores ({} nodes), 30240 rows of root_causes",
        args.rows, args.nodes
    );
    println!("| query | best ms | median ms | result rows |");
    println!("|---|---|---|---|");
    for (name, sql) in queries {
        let mut times = Vec::new();
        let mut result_rows = 0;
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let output = Command::new(bin)
                .args(["sql", "--format", "csv", "--out"])
                .arg(&out)
                .arg(&sql)
                .stderr(Stdio::inherit())
                .output()?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(output.status.success(), "query `{name}` failed");
            result_rows = String::from_utf8_lossy(&output.stdout)
                .lines()
                .count()
                .saturating_sub(1);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.0} | {:.0} | {result_rows} |",
            times[0],
            times[times.len() / 2]
        );
    }
    Ok(())
}
