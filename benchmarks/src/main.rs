//! `meshflow-bench`: end-to-end benchmarks of the real `meshflow` binary.
//!
//! `meshflow-bench replay --nodes 1000 --duration 10m --workers 1` writes a simulator
//! trace (once, cached by its parameters), replays it with `meshflow replay` as a child
//! process, and prints a Markdown row: flow events, wall time, events/s overall and per
//! worker, and the child's peak RSS (from `getrusage(RUSAGE_CHILDREN)`).
//!
//! `meshflow-bench ebpf-cost` prints the kernel-measured cost per packet of the XDP and
//! TC programs; `meshflow-bench ebpf-ingest` floods an eBPF source and accounts for
//! every event (see `benchmarks/README.md`). Both need root.
//!
//! `meshflow-bench scan` sets replay against a raw DataFusion scan of the same trace;
//! `meshflow-bench sql` times typical `meshflow sql` queries over 10M output rows.
//! `meshflow-bench kafka` measures the Kafka sink's throughput with transactions on
//! and off, against a local tansu broker it starts (or `--brokers`).
//!
//! `meshflow-bench nab` runs meshflow's threshold learner over the Numenta Anomaly
//! Benchmark and scores it with NAB's profiles; `meshflow-bench quality` measures
//! `anomaly_scores` against the simulator's ground truth per fault kind, and
//! `meshflow-bench rescore` does the same from stored `node_features`, and
//! `meshflow-bench scorer` times the scorer alone on them;
//! `meshflow-bench ctu` measures against the Stratosphere CTU labels (node ROC-AUC, AP).

mod ctu_cmd;
mod ebpf_cost;
mod ebpf_ingest;
mod flood;
mod frames;
mod kafka;
mod nab_cmd;
mod netns;
mod output;
mod quality_cmd;
mod rescore_cmd;
mod scan;
mod scorer_cmd;
mod sql_latency;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use meshflow_sources::simulator::SimConfig;

/// The allocator the `meshflow` binary uses (with its settings: `main`), so that what
/// runs in this process (the scorer, the quality runs' jobs) allocates as the product
/// does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "End-to-end meshflow benchmarks")]
enum Bench {
    /// sim trace → replay → per-node aggregation → Parquet.
    Replay {
        /// Mesh nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Simulated duration.
        #[arg(long, default_value = "10m")]
        duration: String,
        /// Worker threads for the replay.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Where traces are cached and output written.
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Replay runs to time (the best is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// ns per packet of the XDP and TC programs (`BPF_PROG_TEST_RUN`).
    EbpfCost {
        /// Runs of the program per measurement.
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        /// Measurements per row (the best is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Kernel ring buffer → dataflow ingest rate under a flood, loss accounted.
    EbpfIngest(ebpf_ingest::IngestArgs),
    /// Replay through the features graph next to a raw DataFusion scan of the same files.
    Scan(scan::ScanArgs),
    /// Latency of typical `meshflow sql` queries over 10M rows of output.
    Sql(sql_latency::SqlArgs),
    /// Kafka sink throughput (records/s, MB/s), transactions on and off.
    Kafka(kafka::KafkaArgs),
    /// meshflow's threshold learner on the NAB corpus, scored like NAB.
    Nab(nab_cmd::NabArgs),
    /// Anomaly detection quality against the simulator's ground truth, per fault kind.
    Quality(quality_cmd::QualityArgs),
    /// Node ROC-AUC / AP and (node, window) precision / recall on the Stratosphere CTU
    /// Zeek days, imported and replayed.
    Ctu(ctu_cmd::CtuArgs),
    /// Quality of anomaly settings on stored `node_features`, without the feature graph.
    Rescore(rescore_cmd::RescoreArgs),
    /// The anomaly scorer alone on stored `node_features`: ns per row as histories grow.
    Scorer(scorer_cmd::ScorerArgs),
}

/// CPU time the hypervisor took from this VM so far (`steal` in `/proc/stat`), in ms:
/// time a measurement also counts when the host is busy.
fn steal_ms() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let cpu = s
                .lines()
                .next()?
                .split_whitespace()
                .nth(8)?
                .parse::<u64>()
                .ok()?;
            Some(cpu * 1000 / hz)
        })
        .unwrap_or(0)
}

/// Fails, naming what is needed, unless this process runs as root.
fn require_root(bench: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    anyhow::ensure!(
        euid == 0,
        "{bench} loads eBPF programs and makes network namespaces: run it as root \
         (effective uid is {euid})"
    );
    Ok(())
}

fn meshflow_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("meshflow");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: cargo build --release -p meshflow",
        bin.display()
    );
    Ok(bin)
}

fn peak_rss_of_children_kib() -> i64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}

pub(crate) fn trace(dir: &Path, nodes: usize, duration: &str) -> anyhow::Result<(PathBuf, u64)> {
    let path = dir.join(format!("trace-{nodes}n-{duration}"));
    let marker = path.join("FLOWS");
    if let Ok(n) = std::fs::read_to_string(&marker) {
        return Ok((path, n.trim().parse()?));
    }
    let mut cfg = SimConfig {
        nodes,
        duration: duration.parse().map_err(anyhow::Error::msg)?,
        ..SimConfig::default()
    };
    // Faults start after their warm-up (2 min by default); a shorter trace has none.
    if cfg.duration.0 <= cfg.faults.warmup.0 {
        cfg.faults.count = 0;
    }
    let started = Instant::now();
    let counts = meshflow::sim::write_trace(cfg, &path)?;
    eprintln!(
        "generated {} flows in {:.1}s",
        counts.flows,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, counts.flows.to_string())?;
    Ok((path, counts.flows))
}

/// The `window close to emit` figures of a `meshflow` summary, or `-` when absent.
fn emit_latency(summary: &str) -> String {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("window close to emit: "))
        .unwrap_or("-")
        .to_string()
}

fn main() -> anyhow::Result<()> {
    meshflow::alloc::configure(meshflow::alloc::Workload::Batch);
    match Bench::parse() {
        Bench::EbpfCost { repeat, runs } => ebpf_cost::run(repeat, runs),
        Bench::EbpfIngest(args) => ebpf_ingest::run(&args),
        Bench::Scan(args) => scan::run(&args, &meshflow_bin()?),
        Bench::Sql(args) => sql_latency::run(&args, &meshflow_bin()?),
        Bench::Kafka(args) => kafka::run(&args),
        Bench::Nab(args) => nab_cmd::run(&args),
        Bench::Quality(args) => quality_cmd::run(&args),
        Bench::Ctu(args) => ctu_cmd::run(&args, &meshflow_bin()?),
        Bench::Rescore(args) => rescore_cmd::run(&args),
        Bench::Scorer(args) => scorer_cmd::run(&args),
        Bench::Replay {
            nodes,
            duration,
            workers,
            dir,
            runs,
        } => {
            let (trace, flows) = trace(&dir, nodes, &duration)?;
            let bin = meshflow_bin()?;
            let mut best = f64::MAX;
            let mut latency = String::from("-");
            for _ in 0..runs.max(1) {
                let out = dir.join("out");
                let started = Instant::now();
                let run = Command::new(&bin)
                    .args(["replay"])
                    .arg(&trace)
                    .arg("--out")
                    .arg(&out)
                    .args(["--workers", &workers.to_string()])
                    .stderr(std::process::Stdio::null())
                    .output()?;
                anyhow::ensure!(run.status.success(), "meshflow replay failed");
                let wall = started.elapsed().as_secs_f64();
                if wall < best {
                    best = wall;
                    latency = emit_latency(&String::from_utf8_lossy(&run.stdout));
                }
            }
            let rate = flows as f64 / best;
            println!(
                "| nodes | workers | flow events | best wall s | events/s | events/s/worker | peak RSS MiB | window close to emit (best run) |"
            );
            println!("|---|---|---|---|---|---|---|---|");
            println!(
                "| {nodes} | {workers} | {flows} | {best:.2} | {:.0} | {:.0} | {:.0} | {latency} |",
                rate,
                rate / workers as f64,
                peak_rss_of_children_kib() as f64 / 1024.0
            );
            Ok(())
        }
    }
}
