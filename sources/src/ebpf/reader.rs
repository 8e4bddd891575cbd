//! The reader thread: drains the ring buffers through tokio's `AsyncFd`, reads the
//! counter maps at each export interval, and hands batches to the dataflow.
//!
//! Wake-ups are batched: the programs only wake the reader once enough data waits
//! (see `bpf/README.md`), and the reader otherwise drains every `poll_interval`, so it
//! never wakes per event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use meshflow_bpf as abi;
use meshflow_schemas::{Counters, NodeMetric, TimestampNs};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::decode::{Decoder, KernelClock, read_record};
use super::loader::Loaded;
use crate::SourceBatch;

/// Records taken from one flow ring per pass, so a flood cannot hold a batch back.
const DRAIN_LIMIT: usize = 1 << 16;

/// Program names by their index in `mf_lost`.
const PROGRAMS: [&str; 5] = ["xdp", "tc", "tcp", "kfree_skb", "syscalls"];

/// Everything the reader owns.
pub struct Reader {
    flows: AsyncFd<RingBuf<MapData>>,
    samples: AsyncFd<RingBuf<MapData>>,
    tcp: AsyncFd<RingBuf<MapData>>,
    syscalls: AsyncFd<RingBuf<MapData>>,
    flow_table: HashMap<MapData, abi::FlowKey, abi::FlowVal>,
    xdp_stats: PerCpuHashMap<MapData, abi::XdpKey, abi::XdpVal>,
    lost: PerCpuArray<MapData, u64>,
    decoder: Decoder,
    ifaces: BTreeMap<u32, (String, u64)>,
    export_ns: u64,
    counters: Arc<Counters>,
    decode_errors: u64,
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, String>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| format!("map {name} is missing from the object"))?;
    T::try_from(map).map_err(|e| format!("map {name}: {e}"))
}

fn ring(ebpf: &mut Ebpf, name: &str) -> Result<AsyncFd<RingBuf<MapData>>, String> {
    let rb = take::<RingBuf<MapData>>(ebpf, name)?;
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until
    // the AsyncFd (and with it the ring buffer) is dropped.
    unsafe { AsyncFd::register_with_interest(rb, Interest::READABLE) }
        .map_err(|e| format!("polling ring buffer {name}: {}", std::io::Error::from(e)))
}

impl Reader {
    /// Takes the maps out of `loaded` (which keeps the programs). Must run inside the
    /// tokio runtime that will poll it.
    pub fn new(
        loaded: &mut Loaded,
        decoder: Decoder,
        export_interval: Duration,
        counters: Arc<Counters>,
    ) -> Result<Self, String> {
        let ebpf = &mut loaded.ebpf;
        Ok(Self {
            flows: ring(ebpf, "mf_flows")?,
            samples: ring(ebpf, "mf_samples")?,
            tcp: ring(ebpf, "mf_tcp")?,
            syscalls: ring(ebpf, "mf_syscalls")?,
            flow_table: take(ebpf, "mf_flow_table")?,
            xdp_stats: take(ebpf, "mf_xdp_stats")?,
            lost: take(ebpf, "mf_lost")?,
            decoder,
            ifaces: loaded
                .interfaces
                .iter()
                .map(|i| (i.ifindex, (i.label.clone(), i.node)))
                .collect(),
            export_ns: export_interval.as_nanos() as u64,
            counters,
            decode_errors: 0,
        })
    }

    /// Runs until `stop` is set, `deadline` passes, or the receiver hangs up; then
    /// detaches the programs (dropping `ebpf`), exports what the maps still hold, and
    /// sends the last batch.
    ///
    /// After every pass that emptied the rings, `caught_up` is set (after the batch is
    /// sent) to the wall-clock time at which that pass began: every record submitted
    /// before then has been handed over. A reader that falls behind a flood stops
    /// advancing it, so the watermark waits for the backlog instead of declaring it late.
    pub async fn run(
        mut self,
        ebpf: Ebpf,
        tx: SyncSender<SourceBatch>,
        stop: Arc<AtomicBool>,
        caught_up: Arc<AtomicI64>,
        deadline: Option<Instant>,
        poll: Duration,
    ) -> Result<(), String> {
        let mut export = tokio::time::interval(Duration::from_nanos(self.export_ns));
        export.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        export.tick().await;
        let mut batch = SourceBatch::default();
        let mut behind = false;
        loop {
            let export_now = if behind {
                tokio::task::yield_now().await;
                false
            } else {
                tokio::select! {
                g = self.flows.readable_mut() => { g.map_err(|e| e.to_string())?.clear_ready(); false }
                g = self.samples.readable_mut() => { g.map_err(|e| e.to_string())?.clear_ready(); false }
                g = self.tcp.readable_mut() => { g.map_err(|e| e.to_string())?.clear_ready(); false }
                g = self.syscalls.readable_mut() => { g.map_err(|e| e.to_string())?.clear_ready(); false }
                _ = tokio::time::sleep(poll) => false,
                _ = export.tick() => true,
                }
            };
            let pass_start = KernelClock::now().wall(KernelClock::ktime_now());
            behind = !self.drain(&mut batch);
            if export_now {
                self.export(&mut batch, false);
            }
            if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
            if !behind {
                caught_up.store(pass_start.0, Ordering::Release);
            }
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        drop(ebpf);
        while !self.drain(&mut batch) {
            if tx.send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
        }
        self.export(&mut batch, true);
        let _ = tx.send(batch);
        Ok(())
    }

    /// Moves up to [`DRAIN_LIMIT`] records per ring into `batch`; returns whether every
    /// ring was left empty.
    fn drain(&mut self, batch: &mut SourceBatch) -> bool {
        let Self {
            flows,
            samples,
            tcp,
            syscalls,
            decoder,
            counters,
            decode_errors,
            ..
        } = self;
        let mut empty = true;
        for rb in [flows.get_mut(), samples.get_mut()] {
            let mut n = 0;
            while let Some(item) = rb.next() {
                n += 1;
                match read_record::<abi::FlowEvent>(&item) {
                    Some(e) => match decoder.flow(&e) {
                        Some(f) => {
                            counters.add_received(1);
                            batch.flows.push(&f);
                            batch.flow_records.push(f);
                        }
                        None => counters.add_dropped(1),
                    },
                    None => *decode_errors += 1,
                }
                if n == DRAIN_LIMIT {
                    empty = false;
                    break;
                }
            }
        }
        while let Some(item) = tcp.get_mut().next() {
            match read_record::<abi::TcpEvent>(&item).and_then(|e| decoder.tcp(&e)) {
                Some(e) => {
                    counters.add_received(1);
                    batch.tcp.push(e);
                }
                None => *decode_errors += 1,
            }
        }
        while let Some(item) = syscalls.get_mut().next() {
            match read_record::<abi::SyscallEvent>(&item) {
                Some(e) => {
                    counters.add_received(1);
                    batch.syscalls.push(decoder.syscall(&e));
                }
                None => *decode_errors += 1,
            }
        }
        empty
    }

    /// Exports flows idle for an interval (all of them when `all`), the XDP counters,
    /// and every loss counter.
    fn export(&mut self, batch: &mut SourceBatch, all: bool) {
        self.decoder.clock = KernelClock::now();
        let now_k = KernelClock::ktime_now();
        let now = self.decoder.clock.wall(now_k);
        let keys: Vec<abi::FlowKey> = self.flow_table.keys().filter_map(Result::ok).collect();
        for key in keys {
            let Ok(val) = self.flow_table.get(&key, 0) else {
                continue;
            };
            if !all && now_k.saturating_sub(val.last_ns) < self.export_ns {
                continue;
            }
            // A packet landing between the read and the removal is lost; the entry was
            // idle for a whole interval, so that is rare (and impossible at shutdown,
            // when the programs are already detached).
            let _ = self.flow_table.remove(&key);
            if val.packets == 0 {
                continue;
            }
            let event = abi::FlowEvent {
                key,
                val,
                reason: 2,
                pad: 0,
            };
            match self.decoder.flow(&event) {
                Some(f) => {
                    self.counters.add_received(1);
                    batch.flows.push(&f);
                    batch.flow_records.push(f);
                }
                None => self.counters.add_dropped(1),
            }
        }
        self.export_xdp(batch, now);
        let metric = |metric: String, value: f64| NodeMetric {
            time: now,
            node: self.decoder.host_node,
            metric: metric.into(),
            value,
        };
        for (id, name) in PROGRAMS.iter().enumerate() {
            let lost: u64 = self
                .lost
                .get(&(id as u32), 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0);
            batch.metrics.push(metric(
                format!("ebpf_lost_events{{program={name}}}"),
                lost as f64,
            ));
        }
        batch.metrics.push(metric(
            "ebpf_decode_errors".into(),
            self.decode_errors as f64,
        ));
        self.counters
            .add_errored(std::mem::take(&mut self.decode_errors));
    }

    fn export_xdp(&mut self, batch: &mut SourceBatch, now: TimestampNs) {
        let mut rows: Vec<(abi::XdpKey, u64, u64)> = Vec::new();
        for entry in self.xdp_stats.iter().filter_map(Result::ok) {
            let (key, values) = entry;
            let (packets, bytes) = values
                .iter()
                .fold((0, 0), |(p, b), v| (p + v.packets, b + v.bytes));
            rows.push((key, packets, bytes));
        }
        rows.sort_by_key(|(k, _, _)| (k.ifindex, k.l3, k.l4));
        for (key, packets, bytes) in rows {
            let (label, node) = self
                .ifaces
                .get(&key.ifindex)
                .cloned()
                .unwrap_or_else(|| (format!("ifindex{}", key.ifindex), self.decoder.host_node));
            let labels = format!(
                "{{iface={label},l3={},l4={}}}",
                l3_name(key.l3),
                l4_name(key.l4)
            );
            for (name, value) in [("xdp_rx_packets", packets), ("xdp_rx_bytes", bytes)] {
                batch.metrics.push(NodeMetric {
                    time: now,
                    node,
                    metric: format!("{name}{labels}").into(),
                    value: value as f64,
                });
            }
        }
    }
}

/// A readable name for an ethertype.
pub fn l3_name(ethertype: u16) -> String {
    match ethertype {
        0 => "unknown".into(),
        0x0800 => "ipv4".into(),
        0x86dd => "ipv6".into(),
        0x0806 => "arp".into(),
        other => format!("0x{other:04x}"),
    }
}

/// A readable name for an IP protocol number.
pub fn l4_name(proto: u8) -> String {
    match proto {
        0 => "none".into(),
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        255 => "unknown".into(),
        other => format!("proto{other}"),
    }
}
