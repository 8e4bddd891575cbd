//! Live kernel telemetry: the C programs in `bpf/`, loaded with aya, read from BPF
//! ring buffers.
//!
//! One [`EbpfSource`] per process (host) loads and attaches the programs, then a
//! reader thread drains the ring buffers with tokio's `AsyncFd` and reads the counter
//! maps at every export interval. Records become schema records with wall-clock event
//! times, and node ids from their addresses. Every loss counter (failed ring-buffer
//! reservations per program, undecodable records) is exported as a metric, so loss is
//! never silent. Dropping the source detaches every program and frees every map.

pub mod config;
pub mod decode;
pub mod loader;
pub mod netns;
pub mod privileges;
pub mod reader;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meshflow_schemas::{Counters, TimestampNs};

pub use config::{Direction, EbpfConfig, NodeMap, TraceScope, XdpAttachMode};

use crate::SourceBatch;
use decode::{Decoder, KernelClock, parse_drop_reasons};

/// Why the eBPF source could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The process lacks the capabilities to load programs.
    #[error("{0}")]
    Privileges(String),
    /// tracefs is missing and could not be mounted.
    #[error("{0}")]
    Tracefs(String),
    /// A configured interface or namespace is unusable.
    #[error("{0}")]
    Interface(String),
    /// The object or a program could not be loaded.
    #[error("{0}")]
    Load(String),
    /// A program could not be attached.
    #[error("attaching {program} to {target}: {reason}")]
    Attach {
        /// The program.
        program: String,
        /// Where it was being attached.
        target: String,
        /// Why it failed.
        reason: String,
    },
    /// The reader thread failed.
    #[error("eBPF reader: {0}")]
    Reader(String),
}

/// A running eBPF source: programs attached, reader thread draining.
pub struct EbpfSource {
    rx: Receiver<SourceBatch>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    delay_ns: i64,
    /// Set by the reader: records submitted before this wall time have been sent.
    caught_up: Arc<AtomicI64>,
    /// The reader's `caught_up` as of the last poll that also drained the channel.
    delivered_until: i64,
    finished: bool,
    counters: Arc<Counters>,
    description: String,
}

impl EbpfSource {
    /// Checks privileges, loads and attaches the configured programs, and starts the
    /// reader. Fails with a message naming what is missing or which attach failed.
    pub fn start(cfg: &EbpfConfig) -> Result<Self, EbpfError> {
        privileges::check_capabilities().map_err(EbpfError::Privileges)?;
        if cfg.tcp {
            privileges::ensure_tracefs().map_err(EbpfError::Tracefs)?;
        }
        let nodes = cfg.node_map();
        let mut loaded = loader::load(cfg, &nodes)?;
        let drop_reasons =
            std::fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format")
                .map(|f| parse_drop_reasons(&f))
                .unwrap_or_default();
        let decoder = Decoder {
            clock: KernelClock::now(),
            nodes,
            local: loaded.local.clone(),
            host_node: loaded.host_node,
            drop_reasons,
        };
        let mut description = String::new();
        for i in &loaded.interfaces {
            description.push_str(&format!(
                "{} (ifindex {}, node {}) ",
                i.label,
                i.ifindex,
                meshflow_schemas::node_label(i.node)
            ));
        }
        let programs = [
            (cfg.xdp, "xdp"),
            (cfg.tc, "tc"),
            (cfg.tcp, "tcp"),
            (cfg.drops, "drops"),
            (cfg.syscalls, "syscalls"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ");
        let scope = match loaded.mesh_addresses {
            _ if !(cfg.tcp || cfg.drops) => String::new(),
            None => "; TCP events and drops: the whole host".into(),
            Some(n) => {
                format!("; TCP events and drops: those with an end at one of {n} mesh addresses")
            }
        };
        let description = format!(
            "programs {programs} attached; interfaces: {}{scope}",
            if description.is_empty() {
                "none"
            } else {
                description.trim_end()
            }
        );
        let export = cfg.export_interval.0;
        let poll = cfg.poll_interval.0;
        let deadline = cfg.duration.map(|d| Instant::now() + d.0);
        let counters = Counters::shared();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let caught_up = Arc::new(AtomicI64::new(
            KernelClock::now().wall(KernelClock::ktime_now()).0,
        ));
        let (t_stop, t_counters, t_caught_up) = (stop.clone(), counters.clone(), caught_up.clone());
        let thread = std::thread::Builder::new()
            .name("meshflow-ebpf".into())
            .spawn(move || -> Result<(), String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    let reader = reader::Reader::new(&mut loaded, decoder, export, t_counters);
                    let reader = match reader {
                        Ok(r) => {
                            let _ = ready_tx.send(Ok(()));
                            r
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.clone()));
                            return Err(e);
                        }
                    };
                    reader
                        .run(loaded.ebpf, tx, t_stop, t_caught_up, deadline, poll)
                        .await
                })
            })
            .map_err(|e| EbpfError::Reader(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(EbpfError::Reader(e)),
            Err(_) => return Err(EbpfError::Reader("reader thread died at start".into())),
        }
        Ok(Self {
            rx,
            stop,
            thread: Some(thread),
            delay_ns: 2 * export.as_nanos() as i64 + poll.as_nanos() as i64,
            caught_up,
            delivered_until: i64::MIN,
            finished: false,
            counters,
            description,
        })
    }

    /// What was attached where, for the user.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Moves what the reader has delivered into `out`, waiting up to `wait` for the
    /// first batch. Returns `false` once the source has finished (duration reached or
    /// stopped) and everything was delivered.
    pub fn poll(&mut self, out: &mut SourceBatch, wait: Duration) -> Result<bool, EbpfError> {
        if self.finished {
            return Ok(false);
        }
        // Read before draining the channel: every batch the reader sent before it
        // published this time is then already in the channel and drained below.
        let caught_up = self.caught_up.load(Ordering::Acquire);
        let first = match self.rx.recv_timeout(wait) {
            Ok(b) => Some(b),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return self.finish(),
        };
        if let Some(mut b) = first {
            out.append(&mut b);
            loop {
                match self.rx.try_recv() {
                    Ok(mut b) => out.append(&mut b),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.finish()?;
                        break;
                    }
                }
            }
        }
        self.delivered_until = caught_up;
        Ok(!self.finished)
    }

    fn finish(&mut self) -> Result<bool, EbpfError> {
        self.finished = true;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(EbpfError::Reader(e)),
            Some(Err(_)) => Err(EbpfError::Reader("reader thread panicked".into())),
            _ => Ok(false),
        }
    }

    /// Event time before which this source will deliver nothing more: the time up to
    /// which the reader has handed over everything (it stalls while the reader works
    /// through a backlog), less two export intervals (a flow's last packet may wait
    /// that long in the kernel's table) and one poll interval.
    pub fn watermark(&self) -> TimestampNs {
        let now = KernelClock::now().wall(KernelClock::ktime_now()).0;
        TimestampNs(now.min(self.delivered_until).saturating_sub(self.delay_ns))
    }

    /// Records decoded (received), non-IP flows skipped (dropped), undecodable (errored).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Asks the reader to export what the kernel still holds and finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for EbpfSource {
    fn drop(&mut self) {
        self.stop();
        // Unblock a reader waiting on a full channel, then wait for it to detach.
        while self.rx.try_recv().is_ok() {}
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = thread.join();
        }
    }
}
