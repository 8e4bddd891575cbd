//! Running a job: sources → timely/differential dataflow → Parquet (`node_features`,
//! `anomaly_scores`, and optionally the input tables).

mod backlog;
mod kafka;
mod peers;
mod profile;
mod raw;
mod setup;
mod simulated;
mod sources;
mod summary;
mod writer;

pub use kafka::{KafkaReport, write_kafka};
pub use peers::report_peer_failures;
pub use profile::OperatorProfile;
pub use sources::{SharedSource, SourceError, WorkerSource};
pub use summary::{EmitLatency, Progress, Summary};
pub use writer::{WriteReport, write_parquet};

use backlog::{Backlog, IDLE_WAIT, WAIT_PARK};
use raw::{RawInputs, RawOutputs};
use setup::Sources;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use differential_dataflow::input::InputSession;
use meshflow_operators::anomaly::anomaly_scores;
use meshflow_operators::anomaly::vector::ScoreInput;
use meshflow_operators::features::{
    FeatureInput, PartitionWatch, node_features, node_features_scored,
};
use meshflow_operators::fork::fork;
use meshflow_operators::raw::RawInput;
use meshflow_schemas::{
    AnomalyScore, ArrowRecord, Counters, FlowRecord, INPUT_TABLES, NodeFeatures, NodeMetric,
    SyscallLatency, TcpEvent,
};
use meshflow_sinks::parquet::prepare_table_dir;
use meshflow_sources::SourceBatch;
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Inspect, Probe};

use crate::config::JobConfig;

/// How this process takes part in the computation.
#[derive(Clone, Debug, Default)]
pub enum Cluster {
    /// One process with `[job] workers` threads.
    #[default]
    Local,
    /// Timely's own multi-process mode: this process is `process` of `hosts`.
    Multi {
        /// This process's index.
        process: usize,
        /// `host:port` of every process, in order.
        hosts: Vec<String>,
    },
}

/// Runs `cfg` to completion (every source exhausted, every window written).
pub fn run(cfg: &JobConfig, cluster: &Cluster, progress: Arc<Progress>) -> anyhow::Result<Summary> {
    cfg.validate()?;
    let started = Instant::now();
    let spec = cfg.window_spec().map_err(anyhow::Error::msg)?;
    let lateness = cfg.lateness_epochs();
    // Sources first: one that cannot open leaves the output folder as it was.
    let Sources {
        shared,
        skipped,
        handoff,
    } = setup::open_sources(cfg, spec, &progress)?;
    let mut sink = cfg.sinks.parquet.clone();
    // Without live sources nobody waits for files to appear: a sparse trace's small
    // files coalesce (the same at any --speed, so pacing never changes the output).
    sink.coalesce = !cfg.has_live_source();
    let first_process = matches!(cluster, Cluster::Local | Cluster::Multi { process: 0, .. });
    let table_dir = |table: &str| -> anyhow::Result<PathBuf> {
        Ok(if first_process {
            prepare_table_dir(&sink.path, table, sink.mode)?
        } else {
            sink.path.join(table)
        })
    };
    // Only a folder an earlier run wrote (with node_features) has stale tables: in a
    // trace, the input tables are the data.
    let earlier_run = sink.path.join(NodeFeatures::TABLE).is_dir();
    let dir = table_dir(NodeFeatures::TABLE)?;
    if first_process && earlier_run {
        for table in setup::remove_stale_tables(cfg)? {
            crate::say!(
                "removed {}, left by an earlier run (sinks.parquet.mode = \"overwrite\"; this job does not write it)",
                sink.path.join(table).display()
            );
        }
    }
    let anomaly = cfg.anomaly.clone();
    let scorer_threads = setup::scorer_threads(cfg);
    let anomaly_dir = if anomaly.enabled {
        Some(table_dir(AnomalyScore::TABLE)?)
    } else {
        None
    };
    let kafka_sink = cfg.sinks.kafka.clone();
    let kafka_inputs = kafka_sink.as_ref().is_some_and(|k| k.inputs);
    if let Some(k) = &kafka_sink
        && k.create_topics
        && first_process
    {
        setup::create_topics(k, cfg, cluster)?;
    }
    let kafka_report = Arc::new(KafkaReport::default());
    let input_dirs = if sink.inputs {
        let [flows, metrics, tcp, syscalls] = INPUT_TABLES;
        Some([
            table_dir(flows)?,
            table_dir(metrics)?,
            table_dir(tcp)?,
            table_dir(syscalls)?,
        ])
    } else {
        None
    };

    let shared = Arc::new(shared);
    let source_counters: Arc<Vec<Arc<Counters>>> =
        Arc::new(shared.iter().map(|_| Counters::shared()).collect());
    let skipped = Arc::new(Mutex::new(skipped));
    let report = Arc::new(WriteReport::default());
    let abort = Arc::new(AtomicBool::new(false));
    let source_error: Arc<Mutex<Option<String>>> = Arc::default();

    let timely_config = match cluster {
        Cluster::Local => timely::Config::process(cfg.job.workers),
        Cluster::Multi { process, hosts } => timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: cfg.job.workers,
                process: *process,
                addresses: hosts.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        },
    };

    let profile = cfg
        .job
        .profile_operators
        .then(|| Arc::new(OperatorProfile::default()));
    let w_profile = profile.clone();
    let w_kafka = kafka_report.clone();
    let (w_shared, w_counters, w_skipped, w_report, w_abort, w_error, w_progress) = (
        shared.clone(),
        source_counters.clone(),
        skipped.clone(),
        report.clone(),
        abort.clone(),
        source_error.clone(),
        progress.clone(),
    );
    let guards = timely::execute(timely_config, move |worker| {
        if let Some(p) = &w_profile {
            p.register(worker);
        }
        let (index, peers) = (worker.index(), worker.peers());
        let mut session = InputSession::new();
        let (dir, sink, report, rows) = (
            dir.clone(),
            sink.clone(),
            w_report.clone(),
            w_progress.rows.clone(),
        );
        let input_dirs = input_dirs.clone();
        let kafka_sink = kafka_sink.clone();
        // A window is durable once written when the Kafka sink has committed it; the
        // Parquet files only once their roll interval ends. Without the Kafka sink, a
        // Kafka source commits its offsets only when the job ends cleanly, after the
        // files are finished, so a crash loses no record the output had not kept.
        let commit_as_written = kafka_sink.is_some();
        let w_kafka = w_kafka.clone();
        let (anomaly, anomaly_dir) = (anomaly.clone(), anomaly_dir.clone());
        // Set when this worker's data ends: windows after the last one its data
        // filled hold only the tail (they thin out as the data slides out of them).
        let tail_after = std::rc::Rc::new(std::cell::Cell::new(None::<u64>));
        let tail = tail_after.clone();
        let (backlog, mut raw, data_end) = worker.dataflow::<u64, _, _>(|scope| {
            let mut watch = PartitionWatch::default();
            let updates = session.to_collection(scope);
            // With helper threads to score on, the scorer's inputs come from the nodes'
            // own features, ahead of the rows, and a window is scored alongside its
            // neighbourhood work. Without, the worker scores: from the finished rows,
            // so its scoring does not sit in the middle of feature work whose messages
            // the other workers wait for.
            let (features, early_inputs) = if anomaly_dir.is_some() && scorer_threads > 0 {
                let (rows, inputs) = node_features_scored(updates, spec);
                (rows, Some(inputs))
            } else {
                (node_features(updates, spec), None)
            };
            // Every row of a window has the window's component count: one row of each
            // batch (all of one window) tells, without reading every row again. The
            // tail windows' thinning traffic is no partition.
            let features = features.inspect_core(move |event| {
                if index == 0
                    && let Ok((_, rows)) = event
                    && let Some(row) = rows.first()
                    && tail.get().is_none_or(|last| spec.epoch_of(row.window_end) <= Some(last))
                    && let Some(p) = watch.observe(row)
                {
                    tracing::warn!(
                        "mesh partitioned: {} connected components in the window ending {}, {} before{}",
                        p.now,
                        row.window_end,
                        p.before,
                        match p.unreported {
                            0 => String::new(),
                            n => format!(" ({n} more rises since the last warning, not logged)"),
                        }
                    );
                }
            });
            // `written` passes a window once every output has it; `featured` once its
            // features are out (the scores may trail them by `SCORE_LAG`).
            let (featured, features) = features.probe();
            let probe = ProbeHandle::new();
            let mut features = features.probe_with(&probe);
            let mut ends_input = None;
            if let Some(k) = &kafka_sink {
                write_kafka(
                    features.clone(),
                    k.clone(),
                    index,
                    peers,
                    w_kafka.clone(),
                    report.clone(),
                    |r: &NodeFeatures| r.node,
                    w_progress.complete.clone(),
                )
                .probe_with(&probe);
            }
            if let Some(anomaly_dir) = anomaly_dir {
                let (data_end, ends) = scope.new_input::<Option<u64>>();
                ends_input = Some(data_end);
                let inputs = match early_inputs {
                    Some(inputs) => inputs,
                    None => {
                        // The scorer reads a few fields of each row: it gets those,
                        // split off by reference, instead of a clone of every row.
                        let (whole, inputs) =
                            fork(features, "ScoreInputs", |r: &NodeFeatures| ScoreInput::from(r));
                        features = whole;
                        inputs
                    }
                };
                let scores = anomaly_scores(
                    inputs,
                    ends,
                    anomaly,
                    w_progress.anomaly.clone(),
                    Some(probe.clone()),
                    scorer_threads,
                );
                let scores = scores.probe_with(&probe);
                if let Some(k) = &kafka_sink {
                    write_kafka(
                        scores.clone(),
                        k.clone(),
                        index,
                        peers,
                        w_kafka.clone(),
                        report.clone(),
                        |r: &AnomalyScore| r.node,
                        w_progress.complete.clone(),
                    )
                    .probe_with(&probe);
                }
                write_parquet(
                    scores,
                    anomaly_dir,
                    sink.clone(),
                    w_progress.anomaly_rows.clone(),
                    report.clone(),
                    |r: &AnomalyScore, b| ((r.node % u64::from(b)) as u32, r.node),
                );
            }
            write_parquet(
                features,
                dir,
                sink.clone(),
                rows,
                report.clone(),
                |r: &NodeFeatures, buckets| ((r.node % u64::from(buckets)) as u32, r.node),
            );
            let raw = (input_dirs.is_some() || kafka_inputs).then(|| {
                let [f_rows, m_rows, t_rows, s_rows] = w_progress.input_rows.clone();
                let dirs = input_dirs.clone().map(|d| d.map(Some));
                let [f_dir, m_dir, t_dir, s_dir] = dirs.unwrap_or_default();
                let out = RawOutputs {
                    kafka: kafka_sink.as_ref().filter(|k| k.inputs),
                    parquet: &sink,
                    worker: (index, peers),
                    kafka_report: &w_kafka,
                    report: &report,
                    probe: &probe,
                    complete: &w_progress.complete,
                };
                let (flows, stream) = RawInput::<FlowRecord>::new(scope, spec);
                out.write(stream, f_dir, f_rows, |r: &FlowRecord| r.src_node);
                let (metrics, stream) = RawInput::<NodeMetric>::new(scope, spec);
                out.write(stream, m_dir, m_rows, |r: &NodeMetric| r.node);
                let (tcp, stream) = RawInput::<TcpEvent>::new(scope, spec);
                out.write(stream, t_dir, t_rows, |r: &TcpEvent| r.node);
                let (syscalls, stream) = RawInput::<SyscallLatency>::new(scope, spec);
                out.write(stream, s_dir, s_rows, |r: &SyscallLatency| r.node);
                RawInputs {
                    flows,
                    metrics,
                    tcp,
                    syscalls,
                }
            });
            (Backlog { featured, written: probe, slide: spec.slide }, raw, ends_input)
        });

        let probe = &backlog.written;
        let mut input = FeatureInput::new(session, spec);
        if let Some(data_end) = data_end {
            input.set_data_end_input(data_end);
        }
        let (links, until) = sources::worker_links(&w_shared, &spec, index, peers);
        input.set_links(links, until);
        let mut readers: Vec<WorkerSource> = w_shared
            .iter()
            .map(|s| WorkerSource::new(s, index, peers, w_skipped.clone()))
            .collect();
        let mut batch = SourceBatch::default();
        // Input times not yet passed by the feature output, with when the input passed them.
        let mut closing = std::collections::VecDeque::<(u64, Instant)>::new();
        // The last input time queued there (a time is measured once, when first passed).
        let mut last_closed = 0;
        let emitted = |closing: &mut std::collections::VecDeque<(u64, Instant)>| {
            while let Some(&(t, at)) = closing.front() {
                if probe.less_than(&t) {
                    break;
                }
                closing.pop_front();
                let took = at.elapsed();
                tracing::debug!("windows before {t}: close to emit {took:?}");
                w_progress.emit_latency.lock().expect("lock").push(took);
            }
        };
        let mut stopping = false;
        // Per source, its last watermark: the epoch through which it has delivered
        // every event (for a stopped simulator its last whole tick, for the eBPF
        // source its final export); and whether that bounds which windows are
        // complete: a source a later run can resume (Kafka), or any still reading
        // when Ctrl-C came.
        let mut marks: Vec<Option<u64>> = vec![None; readers.len()];
        let mut bounds: Vec<bool> = readers.iter().map(WorkerSource::resumes).collect();
        loop {
            // Ctrl-C: every source stops; the eBPF source first delivers what the
            // kernel still holds, so the loop runs until it has.
            if !stopping && w_progress.stop.load(Ordering::Relaxed) {
                stopping = true;
                // Live sources waiting for a trace replayed first have read nothing.
                let replaying = handoff.is_some() && readers[0].watermark(&spec, lateness).is_some();
                for (i, (bound, r)) in bounds.iter_mut().zip(&readers).enumerate() {
                    *bound |= !(i > 0 && replaying) && r.watermark(&spec, lateness).is_some();
                }
                readers.iter_mut().for_each(WorkerSource::stop);
            }
            // With a trace to replay first, this worker's live sources wait for its share.
            let replaying =
                !stopping && handoff.is_some() && readers[0].watermark(&spec, lateness).is_some();
            if w_abort.load(Ordering::Relaxed) || w_report.error.lock().expect("lock").is_some() {
                w_abort.store(true, Ordering::Relaxed);
                break;
            }
            // While the output trails the input, sources do not block: every step of the
            // dataflow taken now brings a closed window's rows out sooner.
            let wait = if probe.less_than(&input.time()) {
                Duration::ZERO
            } else {
                // Idle until the next close: its netting is done now, not then.
                input.prepare();
                IDLE_WAIT
            };
            let mut active = false;
            // When this step's input was read: a window's close, if the watermark now
            // passes it, is measured from here, its last records and flush included.
            let mut read_at = None;
            for (i, (reader, counters)) in readers.iter_mut().zip(w_counters.iter()).enumerate() {
                let live = handoff.is_some() && i > 0;
                if live && replaying {
                    active = true;
                    continue;
                }
                batch.clear();
                let read = reader.next_batch(&mut batch, counters, wait);
                read_at.get_or_insert_with(Instant::now);
                match read {
                    Ok(more) => active |= more,
                    Err(e) => {
                        w_error.lock().expect("lock").get_or_insert(e.to_string());
                        w_abort.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                if let Some(at) = handoff.filter(|_| live) {
                    w_progress.overlap.add_dropped(batch.retain_from(at) as u64);
                }
                w_progress.events.add_received(batch.len() as u64);
                let flows = &batch.flows;
                let mut refused = input.add_records(&batch.metrics, &batch.tcp, &batch.syscalls);
                for i in 0..flows.len() {
                    refused.tally(input.add_flow(
                        flows.last_seen[i],
                        flows.src_node[i],
                        flows.dst_node[i],
                        flows.bytes[i],
                        flows.packets[i],
                    ));
                }
                let late = refused.late;
                if refused.invalid > 0 {
                    counters.add_errored(refused.invalid);
                    if let Some(what) = refused.first_invalid {
                        tracing::warn!("skipped {} bad record(s): {what}", refused.invalid);
                    }
                }
                if let Some(raw) = &mut raw {
                    // Same lateness rule as the feature input, which counted it already.
                    raw.give(&mut batch);
                }
                if late > 0 {
                    counters.add_dropped(late);
                    w_progress.late.add_dropped(late);
                }
            }
            if let Some(watermark) = readers
                .iter()
                .enumerate()
                .filter(|(i, _)| !replaying || *i == 0)
                .filter_map(|(_, r)| r.watermark(&spec, lateness))
                .min()
            {
                input.advance_to_epoch(watermark);
                if index == 0 && last_closed < input.time() {
                    last_closed = input.time();
                    closing.push_back((last_closed, read_at.unwrap_or_else(Instant::now)));
                }
                if let Some(raw) = &mut raw {
                    raw.advance_to_epoch(watermark);
                }
            }
            for (mark, reader) in marks.iter_mut().zip(&readers) {
                if let Some(now) = reader.watermark(&spec, lateness) {
                    *mark = Some(mark.map_or(now, |m| m.max(now)));
                }
            }
            worker.step();
            while backlog.behind(input.time()) {
                worker.step_or_park(Some(WAIT_PARK));
            }
            let written = probe.with_frontier(|f| f.first().copied());
            // Before the input's first watermark, the frontier names no real window.
            if index == 0
                && last_closed > 0
                && let Some(t) = written
            {
                w_progress.watermark.fetch_max(t, Ordering::Relaxed);
            }
            for reader in readers.iter_mut().filter(|_| commit_as_written) {
                if let Err(e) = reader.commit_through(written, false) {
                    w_error.lock().expect("lock").get_or_insert(e.to_string());
                    w_abort.store(true, Ordering::Relaxed);
                }
            }
            emitted(&mut closing);
            if !active {
                break;
            }
        }
        if w_abort.load(Ordering::Relaxed) {
            // The job failed (a source or a writer): its dataflows are dropped, not
            // drained. Draining would close every open window over data never read and
            // finish their files as if whole; dropped, the writers remove the files
            // they had not finished, and only files finished before the failure stay.
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
            return;
        }
        // Set before this worker's input passes it, so before any later window closes.
        // A Kafka source's end is taken from what it read, not from its last sampled
        // watermark (which depends on when the loop looked), so reruns of a bounded
        // run commit, and then read again, the same tail.
        let through = (marks.iter().zip(&bounds).zip(&readers))
            .filter(|((_, bound), _)| **bound)
            .filter_map(|((mark, _), r)| r.end_mark(&spec, lateness).or(*mark))
            .min();
        if let Some(through) = through {
            let mut complete = w_progress.complete.lock().expect("lock");
            *complete = Some(complete.map_or(through, |c| c.min(through)));
        }
        // The last close is measured on its own, before the tail windows below add
        // their work to it.
        while !closing.is_empty()
            && !w_abort.load(Ordering::Relaxed)
            && w_report.error.lock().expect("lock").is_none()
        {
            worker.step_or_park(Some(WAIT_PARK));
            emitted(&mut closing);
        }
        // The data has ended: close its remaining windows one slide at a time, as the
        // steady state does, rather than all at once (which would hold every tail
        // window's neighbourhood joins in memory together).
        tail_after.set(input.last_window());
        input.announce_data_end();
        // The input tables have nothing pending; closed now, they do not hold the
        // probe back while the feature windows drain.
        if let Some(raw) = &mut raw {
            raw.close();
        }
        while let Some(next) = input
            .next_pending_window()
            .filter(|_| !w_abort.load(Ordering::Relaxed))
        {
            let before = input.time();
            input.advance_to_epoch(next + spec.slide - 1);
            if input.time() == before {
                break;
            }
            while backlog.behind(input.time()) {
                worker.step_or_park(Some(WAIT_PARK));
            }
            emitted(&mut closing);
        }
        input.close();
        while !probe.done() {
            worker.step_or_park(Some(WAIT_PARK));
            emitted(&mut closing);
        }
        // The writers after the probe finish their files as the dataflow completes:
        // offsets are committed once they have.
        while readers.iter().any(WorkerSource::resumes)
            && worker.has_dataflows()
            && !w_abort.load(Ordering::Relaxed)
        {
            worker.step_or_park(Some(WAIT_PARK));
        }
        if !w_abort.load(Ordering::Relaxed) && w_report.error.lock().expect("lock").is_none() {
            // Offsets that windows after the complete point still need stay
            // uncommitted, so a restart reads those records again.
            let through = w_progress.complete.lock().expect("lock").map(|c| c + 1);
            for reader in &mut readers {
                if let Err(e) = reader.commit_through(through, true) {
                    w_error.lock().expect("lock").get_or_insert(e.to_string());
                }
            }
        }
    })
    .map_err(|e| peers::start_error(e, cluster))?;
    let results = guards.join();
    for r in results {
        r.map_err(anyhow::Error::msg)?;
    }
    if let Some(e) = source_error.lock().expect("lock").take() {
        anyhow::bail!(
            "{e}\n(the output holds only the files finished before this error; the windows \
             still open were not written)"
        );
    }
    if let Some(e) = report.error.lock().expect("lock").take() {
        anyhow::bail!("writing output failed: {e}");
    }
    let skipped = skipped.lock().expect("lock").clone();
    let complete = *progress.complete.lock().expect("lock");
    let epoch_ns = cfg.job.epoch.as_nanos_i64();
    let at_epoch = |e: u64| meshflow_schemas::TimestampNs((e as i64).saturating_mul(epoch_ns));
    Ok(Summary {
        sources: shared
            .iter()
            .zip(source_counters.iter())
            .map(|(s, c)| (s.name().to_string(), c.snapshot()))
            .collect(),
        late: progress.late.snapshot().dropped,
        handoff: handoff.map(|at| (at, progress.overlap.snapshot().dropped)),
        windows: report.windows.lock().expect("lock").len() as u64,
        rows: std::iter::once((NodeFeatures::TABLE, progress.rows.snapshot().sent))
            .chain(
                cfg.anomaly
                    .enabled
                    .then(|| (AnomalyScore::TABLE, progress.anomaly_rows.snapshot().sent)),
            )
            .chain(
                cfg.sinks
                    .parquet
                    .inputs
                    .then(|| {
                        INPUT_TABLES
                            .into_iter()
                            .zip(progress.input_rows.iter().map(|c| c.snapshot().sent))
                    })
                    .into_iter()
                    .flatten(),
            )
            .collect(),
        kafka: kafka_report.snapshot(),
        kafka_held_back: complete
            .map(|c| (kafka_report.held_back.load(Ordering::Relaxed), at_epoch(c))),
        skipped,
        elapsed: started.elapsed(),
        emit_latency: EmitLatency::of(&progress.emit_latency.lock().expect("lock")),
        operators: profile.map_or_else(Vec::new, |p| p.rows()),
        out: cfg.sinks.parquet.path.clone(),
        stopped: progress.stop.load(Ordering::Relaxed).then(|| {
            // Sources that had all ended before the stop leave every window complete.
            at_epoch(complete.unwrap_or_else(|| progress.watermark.load(Ordering::Relaxed)))
        }),
    })
}
