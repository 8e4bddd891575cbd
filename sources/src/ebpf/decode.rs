//! Turning the kernel's records into schema records: clocks, addresses, names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use meshflow_bpf as abi;
use meshflow_schemas::{FlowRecord, Ip16, SyscallLatency, TcpEvent, TcpEventKind, TimestampNs};

use super::config::NodeMap;

/// Converts `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct KernelClock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    offset: i64,
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl KernelClock {
    /// Samples both clocks now.
    pub fn now() -> Self {
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        Self {
            offset: real - mono,
        }
    }

    /// The wall-clock time of a kernel timestamp.
    pub fn wall(&self, ktime_ns: u64) -> TimestampNs {
        TimestampNs(ktime_ns as i64 + self.offset)
    }

    /// The kernel timestamp of "now".
    pub fn ktime_now() -> u64 {
        clock_ns(libc::CLOCK_MONOTONIC) as u64
    }
}

/// TCP state names by the kernel's `TCP_*` number.
const TCP_STATES: [&str; 14] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
    "BOUND_INACTIVE",
];

/// The name of a TCP state number.
pub fn tcp_state_name(state: i32) -> String {
    usize::try_from(state)
        .ok()
        .and_then(|s| TCP_STATES.get(s))
        .map_or_else(|| format!("STATE_{state}"), |s| s.to_string())
}

/// Names of the network system calls the tracer reports (x86_64 numbers).
pub fn syscall_name(nr: u32) -> String {
    match nr {
        42 => "connect".into(),
        43 => "accept".into(),
        44 => "sendto".into(),
        45 => "recvfrom".into(),
        46 => "sendmsg".into(),
        47 => "recvmsg".into(),
        288 => "accept4".into(),
        other => format!("syscall_{other}"),
    }
}

/// Parses the `skb_drop_reason` names from the `kfree_skb` tracepoint's format file
/// (`__print_symbolic(REC->reason, { 2, "NO_SOCKET" }, ...)`), so drop reasons are
/// named as this kernel names them.
pub fn parse_drop_reasons(format: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    let Some(start) = format.find("__print_symbolic(REC->reason") else {
        return out;
    };
    let mut rest = &format[start..];
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('}') else { break };
        let entry = &rest[..close];
        rest = &rest[close + 1..];
        if let Some((num, name)) = entry.split_once(',')
            && let Ok(n) = num.trim().parse::<u32>()
        {
            out.insert(n, name.trim().trim_matches('"').to_string());
        }
    }
    out
}

/// Decodes ring-buffer records into schema records.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Kernel → wall clock.
    pub clock: KernelClock,
    /// IP → node.
    pub nodes: NodeMap,
    /// Addresses of the monitored host(s): decides which end of a drop is local.
    pub local: BTreeSet<IpAddr>,
    /// This host's node, for records with no address (system calls).
    pub host_node: u64,
    /// Drop reason names of this kernel.
    pub drop_reasons: BTreeMap<u32, String>,
}

fn ip_of(bytes: &[u8; 16]) -> IpAddr {
    Ipv6Addr::from(*bytes).to_canonical()
}

/// Reads a `#[repr(C)]` record from a ring-buffer item, or `None` if it is too short.
pub fn read_record<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= std::mem::size_of::<T>())
        // SAFETY: the length is checked; the read is unaligned-safe, and `T` is a
        // plain-old-data mirror of a C struct, valid for any bit pattern.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl Decoder {
    /// A flow event as a flow record; `None` for non-IP flows (family 0).
    pub fn flow(&self, e: &abi::FlowEvent) -> Option<FlowRecord> {
        if e.key.family == 0 {
            return None;
        }
        let (src, dst) = (ip_of(&e.key.src), ip_of(&e.key.dst));
        Some(FlowRecord {
            src_node: self.nodes.node_of(src),
            dst_node: self.nodes.node_of(dst),
            src_ip: Ip16::from(src),
            dst_ip: Ip16::from(dst),
            src_port: e.key.sport,
            dst_port: e.key.dport,
            protocol: e.key.proto,
            bytes: e.val.bytes,
            packets: e.val.packets,
            first_seen: self.clock.wall(e.val.first_ns.max(e.val.last_export_ns)),
            last_seen: self.clock.wall(e.val.last_ns),
            tcp_flags: e.val.tcp_flags as u8,
        })
    }

    /// A TCP tracepoint event.
    pub fn tcp(&self, e: &abi::TcpEvent) -> Option<TcpEvent> {
        let (mut local, mut remote) = (ip_of(&e.saddr), ip_of(&e.daddr));
        let (mut lport, mut rport) = (e.sport, e.dport);
        let kind = match e.kind {
            1 => TcpEventKind::Retransmit,
            2 => TcpEventKind::Drop,
            3 => TcpEventKind::StateChange,
            _ => return None,
        };
        if kind == TcpEventKind::Drop
            && !self.local.contains(&local)
            && self.local.contains(&remote)
        {
            // An incoming packet was dropped: the receiving end is the local one.
            std::mem::swap(&mut local, &mut remote);
            std::mem::swap(&mut lport, &mut rport);
        }
        let has_addr = e.family != 0;
        let node = if has_addr {
            self.nodes.node_of(local)
        } else {
            self.host_node
        };
        Some(TcpEvent {
            time: self.clock.wall(e.ts_ns),
            node,
            peer_node: has_addr.then(|| self.nodes.node_of(remote)),
            kind,
            src_ip: Ip16::from(local),
            dst_ip: Ip16::from(remote),
            src_port: lport,
            dst_port: rport,
            drop_reason: (kind == TcpEventKind::Drop).then(|| {
                self.drop_reasons
                    .get(&e.drop_reason)
                    .cloned()
                    .unwrap_or_else(|| format!("REASON_{}", e.drop_reason))
            }),
            old_state: (kind == TcpEventKind::StateChange).then(|| tcp_state_name(e.old_state)),
            new_state: (kind != TcpEventKind::Drop).then(|| tcp_state_name(e.new_state)),
            srtt_us: (kind == TcpEventKind::StateChange && e.srtt_us > 0).then_some(e.srtt_us),
        })
    }

    /// A system-call latency sample.
    pub fn syscall(&self, e: &abi::SyscallEvent) -> SyscallLatency {
        SyscallLatency {
            time: self.clock.wall(e.ts_ns),
            node: self.host_node,
            pid: e.pid,
            syscall: syscall_name(e.syscall_nr),
            latency_ns: e.latency_ns,
        }
    }
}

#[cfg(test)]
mod tests;
