//! `meshflow`: see which nodes of a mesh network misbehave, and why, as it happens.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{Parser, Subcommand};
use datafusion::arrow::util::pretty::pretty_format_batches;
use meshflow::config::{JobConfig, ReplaySourceConfig, SourceConfig};
use meshflow::job::{self, Cluster, Progress};
use meshflow::report::{ProgressLine, summary_text};
use meshflow_sources::simulator::{SimConfig, TopologyKind};

#[derive(Parser)]
#[command(
    name = "meshflow",
    version,
    about = "Streaming detection of misbehaving mesh nodes, and why."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Default)]
struct ClusterArgs {
    /// This process's index in a timely multi-process cluster (needs --hosts).
    #[arg(long, requires = "hosts")]
    process: Option<usize>,
    /// File with one `host:port` per line, one per process of the cluster.
    #[arg(long, requires = "process")]
    hosts: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a streaming job (the embedded simulator by default) and write Parquet output.
    Run {
        /// Job configuration (TOML); without it, the simulator's defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Worker threads (overrides job.workers).
        #[arg(long)]
        workers: Option<usize>,
        /// Output folder (overrides sinks.parquet.path).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Replay a Parquet trace through the same dataflow, as fast as possible.
    Replay {
        /// Trace folder (as written by `meshflow sim` or an importer).
        trace: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Worker threads.
        #[arg(long)]
        workers: Option<usize>,
        /// Window, job and sink settings (its sources are replaced by the trace).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Skip corrupt or mismatched files, list them, and replay the rest.
        #[arg(long)]
        skip_bad_files: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Write a simulator trace for replay: one folder per event kind plus ground_truth/.
    Sim {
        /// Trace folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Number of mesh nodes.
        #[arg(long)]
        nodes: Option<usize>,
        /// Simulated duration, e.g. 10m.
        #[arg(long)]
        duration: Option<String>,
        /// Random seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Topology: geometric or barabasi_albert.
        #[arg(long)]
        topology: Option<String>,
        /// Further simulator settings (a TOML file holding one simulator table).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and report the first problem, naming the key.
    Validate {
        /// The TOML file.
        config: PathBuf,
    },
    /// Run SQL over the output tables (each folder is a table).
    Sql {
        /// The query.
        query: String,
        /// Output folder to query.
        #[arg(long, default_value = "meshflow-out")]
        out: PathBuf,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn cluster(args: ClusterArgs) -> anyhow::Result<Cluster> {
    match (args.process, args.hosts) {
        (Some(process), Some(hosts)) => {
            let text = std::fs::read_to_string(&hosts)
                .with_context(|| format!("reading hosts file {}", hosts.display()))?;
            let hosts: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            anyhow::ensure!(
                process < hosts.len(),
                "--process {process} is not below the {} hosts in the hosts file",
                hosts.len()
            );
            Ok(Cluster::Multi { process, hosts })
        }
        _ => Ok(Cluster::Local),
    }
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<JobConfig> {
    Ok(match path {
        Some(p) => JobConfig::load(p)?,
        None => JobConfig::embedded_default(),
    })
}

fn execute(cfg: JobConfig, cluster: Cluster) -> anyhow::Result<()> {
    cfg.validate()?;
    let progress = Arc::new(Progress::default());
    watch_ctrl_c(progress.clone());
    let line = ProgressLine::start(
        progress.clone(),
        cfg.job.progress_interval.0,
        cfg.job.epoch.as_nanos_i64(),
    );
    let result = job::run(&cfg, &cluster, progress);
    drop(line);
    let summary = result?;
    print!("{}", summary_text(&summary));
    Ok(())
}

/// First Ctrl-C: stop reading, close and write open windows, finish files. Second: exit now.
fn watch_ctrl_c(progress: Arc<Progress>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nstopping: closing open windows and finishing files (Ctrl-C again to abort)"
                );
                progress.stop.store(true, Ordering::Relaxed);
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
    });
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            config,
            workers,
            out,
            cluster: c,
        } => {
            let mut cfg = load(config.as_ref())?;
            if let Some(w) = workers {
                cfg.job.workers = w;
            }
            if let Some(out) = out {
                cfg.sinks.parquet.path = out;
            }
            execute(cfg, cluster(c)?)
        }
        Command::Replay {
            trace,
            out,
            workers,
            config,
            skip_bad_files,
            cluster: c,
        } => {
            let mut cfg = load(config.as_ref())?;
            cfg.sources.clear();
            cfg.sources.insert(
                "trace".into(),
                SourceConfig::Replay(ReplaySourceConfig {
                    path: trace,
                    skip_bad_files,
                }),
            );
            cfg.sinks.parquet.path = out;
            if let Some(w) = workers {
                cfg.job.workers = w;
            }
            execute(cfg, cluster(c)?)
        }
        Command::Sim {
            out,
            nodes,
            duration,
            seed,
            topology,
            config,
        } => {
            let mut sim: SimConfig = match config {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
                }
                None => SimConfig::default(),
            };
            if let Some(n) = nodes {
                sim.nodes = n;
            }
            if let Some(d) = duration {
                sim.duration = d
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--duration: {e}"))?;
            }
            if let Some(s) = seed {
                sim.seed = s;
            }
            if let Some(t) = topology {
                sim.topology = match t.as_str() {
                    "geometric" => TopologyKind::Geometric,
                    "barabasi_albert" => TopologyKind::BarabasiAlbert,
                    other => anyhow::bail!(
                        "--topology `{other}` is unknown; use geometric or barabasi_albert"
                    ),
                };
            }
            sim.validate()?;
            let started = std::time::Instant::now();
            let counts = meshflow::sim::write_trace(sim, &out)?;
            println!(
                "wrote trace {} in {:.2}s: {} flows, {} metric samples, {} tcp events, {} faults (ground_truth/)",
                out.display(),
                started.elapsed().as_secs_f64(),
                counts.flows,
                counts.metrics,
                counts.tcp_events,
                counts.faults
            );
            println!("next: meshflow replay {} --out meshflow-out", out.display());
            Ok(())
        }
        Command::Validate { config } => {
            let cfg = JobConfig::load(&config)?;
            cfg.validate()
                .with_context(|| format!("{} is invalid", config.display()))?;
            println!(
                "{} is valid: {} source(s), window {} sliding by {}, {} worker(s)",
                config.display(),
                cfg.sources.len(),
                cfg.window.length,
                cfg.window.slide,
                cfg.job.workers
            );
            Ok(())
        }
        Command::Sql { query, out } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let batches = rt.block_on(meshflow::sql::query(&out, &query))?;
            println!("{}", pretty_format_batches(&batches)?);
            Ok(())
        }
    }
}
