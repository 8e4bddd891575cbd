//! `meshflow`: see which nodes of a mesh network misbehave, and why, as it happens.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshflow::alloc::Workload;
use meshflow::config::{ConfigError, EventTime, JobConfig, ReplaySourceConfig, SourceConfig};
use meshflow::import;
use meshflow::job::{self, Cluster, Progress};
use meshflow::report::{ProgressLine, summary_text};
use meshflow::sql::{
    Format, Lines, SqlSession, Terminal, history_path, run_prompt, split_statements, write_result,
};
use meshflow_sources::simulator::{SimConfig, TopologyKind};

/// mimalloc instead of glibc's allocator: the dataflow allocates and frees small
/// records at a high rate (measured in benchmarks/README.md, session 12).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Replay this trace first, then switch to the live sources at its end
        /// (overrides job.replay_first).
        #[arg(long, value_name = "TRACE")]
        replay_first: Option<PathBuf>,
        /// Print how long timely scheduled each operator (overrides
        /// job.profile_operators).
        #[arg(long)]
        profile_operators: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Replay a Parquet trace through the same dataflow, as fast as possible or paced.
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
        /// Replay only events at or after this time (RFC 3339 or epoch seconds).
        #[arg(long)]
        from: Option<EventTime>,
        /// Replay only events before this time (RFC 3339 or epoch seconds).
        #[arg(long)]
        to: Option<EventTime>,
        /// Pace events by event time, N times faster than real time (1 = real time);
        /// without it, replay as fast as possible.
        #[arg(long, value_name = "N")]
        speed: Option<f64>,
        /// Print how long timely scheduled each operator (overrides
        /// job.profile_operators).
        #[arg(long)]
        profile_operators: bool,
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
        /// Number of faults to inject after the warm-up (`faults.count`; 0 for none,
        /// which a run shorter than the 2-minute warm-up needs).
        #[arg(long)]
        faults: Option<usize>,
        /// Further simulator settings: a TOML file holding one simulator table, or a job
        /// configuration with one simulator source.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Convert real traces into a meshflow trace folder for `meshflow replay`.
    Import {
        #[command(subcommand)]
        kind: ImportKind,
    },
    /// Check a configuration file (and that the traces it replays exist and can be
    /// planned) and report the first problem, naming the key.
    Validate {
        /// The TOML file.
        config: PathBuf,
    },
    /// Run SQL over the output tables (each folder is a table); without a query, an
    /// interactive prompt.
    Sql {
        /// The query; without it, a prompt (statements end with `;`, `\d` lists the
        /// tables, `\d TABLE` shows one, `\q` quits).
        query: Option<String>,
        /// Output folder to query.
        #[arg(long, default_value = "meshflow-out")]
        out: PathBuf,
        /// Result format: a text table, CSV, JSON (one object per line) or Parquet.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write the result to FILE instead of stdout (required for parquet).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Merge each hourly partition's small files into one sorted file, so queries
    /// over long runs open few files. Safe against crashes; partitions written to
    /// within `--settle` are left alone.
    Compact {
        /// Output folder to compact.
        #[arg(long, default_value = "meshflow-out")]
        out: PathBuf,
        /// Only these tables (repeatable); all by default.
        #[arg(long = "table", value_name = "TABLE")]
        tables: Vec<String>,
        /// How long a partition must have had no new file.
        #[arg(long, default_value = "10m")]
        settle: meshflow_schemas::HumanDuration,
    },
}

#[derive(Subcommand)]
enum ImportKind {
    /// Zeek conn.log files (TSV with a #fields header, plain or gzip) → flows/, with
    /// every other Zeek column (labels included) kept as a column of the same rows.
    Zeek {
        /// conn.log files, in any order.
        #[arg(required = true, value_name = "CONN_LOG")]
        files: Vec<PathBuf>,
        /// Trace folder to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// A long-format metric CSV (timestamp,node,metric,value) → node_metrics/ and
    /// nodes/, with an optional topology → edges/.
    Metrics {
        /// The CSV; timestamps in RFC 3339, or epoch seconds or milliseconds.
        csv: PathBuf,
        /// Trace folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Edge list CSV (`src,dst`, header optional) giving the topology.
        #[arg(long, value_name = "EDGES_CSV")]
        edges: Option<PathBuf>,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    meshflow::alloc::configure(match cli.command {
        Command::Run { .. } => Workload::Live,
        _ => Workload::Batch,
    });
    if let Err(e) = real_main(cli) {
        // A reader that stops early (`meshflow sql ... | head`) is not an error.
        if is_broken_pipe(&e) {
            return;
        }
        meshflow::say!("error: {}", meshflow::error_text(&e));
        std::process::exit(1);
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone (some writers,
/// such as arrow's, keep only the I/O error's text).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.to_string().contains("Broken pipe (os error 32)")
    })
}

/// The simulator settings in `path`: a file holding one simulator table, or a job
/// configuration (as `meshflow run` takes) with exactly one simulator source.
fn sim_config(path: &Path) -> anyhow::Result<SimConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_job = text
        .parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key("sources"));
    if !is_job {
        return toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let job = JobConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut sims = job.sources.into_iter().filter_map(|(name, s)| match s {
        SourceConfig::Simulator(sim) => Some((name, sim)),
        _ => None,
    });
    match (sims.next(), sims.next()) {
        (Some((_, sim)), None) => Ok(sim),
        (None, _) => anyhow::bail!(
            "{}: the job configuration has no simulator source (`type = \"simulator\"`)",
            path.display()
        ),
        (Some((a, _)), Some((b, _))) => anyhow::bail!(
            "{}: the job configuration has more than one simulator source (sources.{a}, sources.{b}); give one",
            path.display()
        ),
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

/// A job's configuration, with the file it was read from (path and text).
struct Loaded {
    cfg: JobConfig,
    file: Option<(PathBuf, String)>,
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Loaded> {
    Ok(match path {
        Some(p) => {
            let (cfg, text) = JobConfig::load_text(p)?;
            Loaded {
                cfg,
                file: Some((p.clone(), text)),
            }
        }
        None => Loaded {
            cfg: JobConfig::embedded_default(),
            file: None,
        },
    })
}

impl Loaded {
    /// Checks the configuration; an invalid value is shown at its line in the file,
    /// unless a flag set it (`flags`: the keys, or key prefixes, that flags set).
    fn validate(&self, flags: &[&str]) -> anyhow::Result<()> {
        self.cfg.validate().map_err(|e| {
            let by_flag = matches!(&e, ConfigError::Invalid { key, .. }
                if flags.iter().any(|f| key.starts_with(f)));
            match &self.file {
                Some((path, text)) if !by_flag => e.at_key(path, text),
                _ => e,
            }
        })?;
        Ok(())
    }
}

/// Runs a job whose configuration [`Loaded::validate`] passed.
fn execute(cfg: JobConfig, cluster: Cluster) -> anyhow::Result<()> {
    if let Cluster::Multi { process, hosts } = &cluster {
        job::report_peer_failures(cfg.job.workers, *process, hosts.len());
    }
    let progress = Arc::new(Progress::default());
    watch_ctrl_c(progress.clone());
    // A replay-only job in one process knows its total from the plan: show a bar.
    let bounded = matches!(cluster, Cluster::Local)
        && cfg
            .sources
            .values()
            .all(|s| matches!(s, SourceConfig::Replay(_)));
    let line = ProgressLine::start(
        progress.clone(),
        cfg.job.progress_interval.0,
        cfg.job.epoch.as_nanos_i64(),
        bounded,
    );
    let result = job::run(&cfg, &cluster, progress);
    drop(line);
    let summary = result?;
    write!(std::io::stdout(), "{}", summary_text(&summary))?;
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
                meshflow::say!(
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

/// Opens the SQL session over `out`, first saying what the user should know about
/// the output (hours an interrupted compaction left twice).
fn open_session(rt: &tokio::runtime::Runtime, out: &Path) -> anyhow::Result<SqlSession> {
    let session = rt.block_on(SqlSession::open(out))?;
    for warning in session.warnings() {
        meshflow::say!("{warning}");
    }
    Ok(session)
}

fn sql(
    out: &Path,
    query: Option<&str>,
    format: Format,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let Some(query) = query else {
        anyhow::ensure!(
            output.is_none(),
            "--output needs a query; the prompt prints its results"
        );
        let session = open_session(&rt, out)?;
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        if !std::io::stdin().is_terminal() {
            let mut lines = Lines(std::io::stdin().lock());
            let failed = run_prompt(
                &session,
                &rt,
                format,
                &mut lines,
                &mut stdout.lock(),
                &mut stderr.lock(),
            )?;
            // A script fails as a whole when any of its statements did.
            anyhow::ensure!(failed == 0, "{failed} statement(s) of the input failed");
            return Ok(());
        }
        meshflow::say!(
            "meshflow sql over {}: tables {}. End statements with `;`; \\d lists tables, \\d TABLE shows one, \\q quits.",
            out.display(),
            session.tables().join(", ")
        );
        let mut terminal = Terminal::open(history_path())?;
        run_prompt(
            &session,
            &rt,
            format,
            &mut terminal,
            &mut stdout.lock(),
            &mut stderr.lock(),
        )?;
        return Ok(());
    };
    anyhow::ensure!(
        !(format.is_binary() && output.is_none()),
        "--format parquet writes a binary file; name it with --output FILE"
    );
    let (statements, rest) = split_statements(query);
    let count = statements.len() + usize::from(!rest.trim().is_empty());
    let session = open_session(&rt, out)?;
    if count > 1 {
        // Several statements: each result in turn (one file cannot hold them all).
        anyhow::ensure!(
            output.is_none(),
            "--output takes one statement; the query holds {count}"
        );
        // Run as piped input is: every statement, a failing one reported and passed.
        let failed = run_prompt(
            &session,
            &rt,
            format,
            &mut Lines(std::io::Cursor::new(query)),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
        anyhow::ensure!(failed == 0, "{failed} statement(s) of the query failed");
        return Ok(());
    }
    let result = rt.block_on(session.run(query))?;
    match output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot create --output {}", path.display()))?;
            write_result(&result, format, &mut file)
                .with_context(|| format!("writing {}", path.display()))?;
            meshflow::say!("wrote {} rows to {}", result.rows(), path.display());
        }
        None => write_result(&result, format, &mut std::io::stdout().lock())?,
    }
    Ok(())
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            config,
            workers,
            out,
            replay_first,
            profile_operators,
            cluster: c,
        } => {
            let mut loaded = load(config.as_ref())?;
            let mut flags = Vec::new();
            let cfg = &mut loaded.cfg;
            if let Some(w) = workers {
                cfg.job.workers = w;
                flags.push("job.workers");
            }
            if replay_first.is_some() {
                cfg.job.replay_first = replay_first;
                flags.push("job.replay_first");
            }
            if let Some(out) = out {
                cfg.sinks.parquet.path = out;
                flags.push("sinks.parquet.path");
            }
            cfg.job.profile_operators |= profile_operators;
            loaded.validate(&flags)?;
            execute(loaded.cfg, cluster(c)?)
        }
        Command::Replay {
            trace,
            out,
            workers,
            config,
            skip_bad_files,
            from,
            to,
            speed,
            profile_operators,
            cluster: c,
        } => {
            // The flags are checked here so that their errors name the flags, not the
            // configuration keys they become.
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(to > from, "--to ({to}) must be after --from ({from})");
            }
            if let Some(speed) = speed {
                anyhow::ensure!(
                    speed.is_finite() && speed > 0.0,
                    "--speed is {speed}; it must be a positive number (1 = real time)"
                );
            }
            let mut loaded = load(config.as_ref())?;
            let mut flags = vec!["sources", "sinks.parquet.path"];
            let cfg = &mut loaded.cfg;
            cfg.sources.clear();
            cfg.sources.insert(
                "trace".into(),
                SourceConfig::Replay(ReplaySourceConfig {
                    skip_bad_files,
                    from,
                    to,
                    speed,
                    ..ReplaySourceConfig::new(trace)
                }),
            );
            cfg.sinks.parquet.path = out;
            if let Some(w) = workers {
                cfg.job.workers = w;
                flags.push("job.workers");
            }
            cfg.job.profile_operators |= profile_operators;
            loaded.validate(&flags)?;
            execute(loaded.cfg, cluster(c)?)
        }
        Command::Sim {
            out,
            nodes,
            duration,
            seed,
            topology,
            faults,
            config,
        } => {
            let mut sim = match config {
                Some(p) => sim_config(&p)?,
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
            if let Some(count) = faults {
                sim.faults.count = count;
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
            writeln!(
                std::io::stdout(),
                "wrote trace {} in {:.2}s: {} flows, {} metric samples, {} tcp events, {} faults (ground_truth/)",
                out.display(),
                started.elapsed().as_secs_f64(),
                counts.flows,
                counts.metrics,
                counts.tcp_events,
                counts.faults
            )?;
            if !counts.removed.is_empty() {
                writeln!(
                    std::io::stdout(),
                    "removed the tables an earlier trace left in {}: {}",
                    out.display(),
                    counts.removed.join(", ")
                )?;
            }
            for warning in &counts.warnings {
                meshflow::say!("warning: {warning}");
            }
            writeln!(
                std::io::stdout(),
                "next: meshflow replay {} --out meshflow-out",
                out.display()
            )?;
            Ok(())
        }
        Command::Validate { config } => {
            let loaded = load(Some(&config))?;
            let cfg = &loaded.cfg;
            loaded
                .validate(&[])
                .and_then(|()| Ok(cfg.check_traces()?))
                .with_context(|| format!("{} is invalid", config.display()))?;
            writeln!(
                std::io::stdout(),
                "{} is valid: {} source(s), window {} sliding by {}, {} worker(s)",
                config.display(),
                cfg.sources.len(),
                cfg.window.length,
                cfg.window.slide,
                cfg.job.workers
            )?;
            Ok(())
        }
        Command::Import { kind } => {
            let (report, out) = match kind {
                ImportKind::Zeek { files, out } => (import::zeek::import(&files, &out)?, out),
                ImportKind::Metrics { csv, out, edges } => {
                    (import::metrics::import(&csv, edges.as_deref(), &out)?, out)
                }
            };
            meshflow::say!("{}", report.text(&out).trim_end());
            let written: u64 = report.rows.iter().map(|(_, n)| n).sum();
            anyhow::ensure!(
                written > 0,
                "nothing was imported: {}",
                report.why_nothing()
            );
            Ok(())
        }
        Command::Sql {
            query,
            out,
            format,
            output,
        } => sql(&out, query.as_deref(), format, output.as_deref()),
        Command::Compact {
            out,
            tables,
            settle,
        } => {
            let report = meshflow::compact::compact(&out, &tables, settle.0)?;
            write!(std::io::stdout(), "{report}")?;
            Ok(())
        }
    }
}
