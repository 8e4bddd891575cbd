//! meshflow's kernel programs: the compiled eBPF object and its userspace ABI.
//!
//! [`OBJECT`] is `meshflow.bpf.o`, built by `build.rs` from `src/meshflow.bpf.c` with
//! clang against a bpftool-generated `vmlinux.h` (CO-RE). The `#[repr(C)]` structs here
//! mirror `src/meshflow.h` byte for byte (sizes are checked at compile time, padding is
//! explicit and always zero); the constants name the maps, programs, attach points and
//! loader-set globals. See `bpf/README.md` for what each program does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static ALIGNED: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/meshflow.bpf.o")));

/// The compiled ELF object (8-byte aligned), ready for `aya::EbpfLoader::load`.
pub static OBJECT: &[u8] = &ALIGNED.0;

// ---- programs ------------------------------------------------------------------------

/// XDP program (`SEC("xdp")`): per-(ifindex, ethertype, L4 proto) counters; always passes.
pub const PROG_XDP: &str = "mf_xdp";
/// TC program (`SEC("classifier")`) for ingress: flow records; returns `TC_ACT_UNSPEC`.
pub const PROG_TC_INGRESS: &str = "mf_tc_ingress";
/// TC program (`SEC("classifier")`) for egress: flow records; returns `TC_ACT_UNSPEC`.
pub const PROG_TC_EGRESS: &str = "mf_tc_egress";
/// Tracepoint program (`SEC("tracepoint/tcp/tcp_retransmit_skb")`).
pub const PROG_TCP_RETRANSMIT: &str = "mf_tcp_retrans";
/// Tracepoint program (`SEC("tracepoint/sock/inet_sock_set_state")`), TCP sockets only.
pub const PROG_SOCK_STATE: &str = "mf_sock_state";
/// BTF tracepoint program (`SEC("tp_btf/kfree_skb")`): drops with their reason.
pub const PROG_KFREE_SKB: &str = "mf_kfree_skb";
/// BTF tracepoint program (`SEC("tp_btf/sys_enter")`): network syscall entry time.
pub const PROG_SYS_ENTER: &str = "mf_sys_enter";
/// BTF tracepoint program (`SEC("tp_btf/sys_exit")`): network syscall latency.
pub const PROG_SYS_EXIT: &str = "mf_sys_exit";

/// `(category, name)` for `TracePoint::attach` of [`PROG_TCP_RETRANSMIT`].
pub const TP_TCP_RETRANSMIT: (&str, &str) = ("tcp", "tcp_retransmit_skb");
/// `(category, name)` for `TracePoint::attach` of [`PROG_SOCK_STATE`].
pub const TP_SOCK_STATE: (&str, &str) = ("sock", "inet_sock_set_state");
/// Tracepoint name for `BtfTracePoint::load` of [`PROG_KFREE_SKB`].
pub const BTF_TP_KFREE_SKB: &str = "kfree_skb";
/// Tracepoint name for `BtfTracePoint::load` of [`PROG_SYS_ENTER`].
pub const BTF_TP_SYS_ENTER: &str = "sys_enter";
/// Tracepoint name for `BtfTracePoint::load` of [`PROG_SYS_EXIT`].
pub const BTF_TP_SYS_EXIT: &str = "sys_exit";

/// Value the TC programs return: `TC_ACT_UNSPEC` (-1), which is also `TCX_NEXT`.
pub const TC_RETURN: i32 = -1;

// ---- maps ----------------------------------------------------------------------------

/// `PERCPU_ARRAY` of `u64` indexed by program id ([`PROG_ID_XDP`]..): failed ring-buffer reserves.
pub const MAP_LOST: &str = "mf_lost";
/// `RINGBUF` of [`FlowEvent`] from the TC programs (reasons [`REASON_END`], [`REASON_INTERVAL`]).
pub const MAP_FLOWS: &str = "mf_flows";
/// `RINGBUF` of [`FlowEvent`] samples from XDP (reason [`REASON_SAMPLE`]).
pub const MAP_SAMPLES: &str = "mf_samples";
/// `RINGBUF` of [`TcpEvent`] (retransmits, drops, state changes).
pub const MAP_TCP: &str = "mf_tcp";
/// `RINGBUF` of [`SyscallEvent`].
pub const MAP_SYSCALLS: &str = "mf_syscalls";
/// `PERCPU_HASH` [`XdpKey`] -> [`XdpVal`] (per CPU; sum the CPUs).
pub const MAP_XDP_STATS: &str = "mf_xdp_stats";
/// `PERCPU_ARRAY` of one `u64`: the XDP sampling counter (internal).
pub const MAP_SAMPLE_CTR: &str = "mf_sample_ctr";
/// `LRU_HASH` [`FlowKey`] -> [`FlowVal`]: open flows; userspace sweeps idle ones.
pub const MAP_FLOW_TABLE: &str = "mf_flow_table";
/// `LRU_HASH` `u64` pid_tgid -> [`SysStart`]: syscalls in progress (internal).
pub const MAP_SYS_START: &str = "mf_sys_start";

/// Size in bytes of each ring buffer.
pub const RINGBUF_BYTES: u32 = 16 << 20;
/// `max_entries` of [`MAP_FLOW_TABLE`].
pub const FLOW_TABLE_ENTRIES: u32 = 65536;
/// `max_entries` of [`MAP_XDP_STATS`].
pub const XDP_STATS_ENTRIES: u32 = 4096;
/// `max_entries` of [`MAP_SYS_START`].
pub const SYS_START_ENTRIES: u32 = 16384;
/// Hash `[u8; 16]` (an address, IPv4 as v4-mapped IPv6) → `u8`: the mesh addresses, one
/// of which a TCP event or drop must have when [`GLOBAL_ADDR_FILTER`] is set.
pub const MAP_ADDRS: &str = "mf_addrs";
/// `max_entries` of [`MAP_ADDRS`].
pub const ADDRS_MAX: u32 = 4096;

// ---- globals set by the loader (`EbpfLoader::override_global`) ---------------------

/// `u64`: TC flow export interval in ns (default 1 s).
pub const GLOBAL_FLOW_EXPORT_NS: &str = "flow_export_ns";
/// `u32`: XDP sampling, 0 = off (default), N = one packet in N to [`MAP_SAMPLES`].
pub const GLOBAL_XDP_SAMPLE_EVERY: &str = "xdp_sample_every";
/// `u32`: only trace syscalls of this process (tgid); 0 = all (default).
pub const GLOBAL_TARGET_TGID: &str = "target_tgid";
/// `u32`: 1 = TCP events and drops are reported only with an end in [`MAP_ADDRS`]; 0 =
/// all of them (default).
pub const GLOBAL_ADDR_FILTER: &str = "addr_filter";
/// `u64`: the record that makes a ring's unread data reach this many bytes wakes its reader.
pub const GLOBAL_WAKEUP_BYTES: &str = "wakeup_bytes";
/// Default of [`GLOBAL_WAKEUP_BYTES`]: 256 KiB, about 2300 flow records.
pub const DEFAULT_WAKEUP_BYTES: u64 = 256 << 10;

// ---- program ids (index into MAP_LOST) ------------------------------------------------

/// Program id of the XDP program.
pub const PROG_ID_XDP: u32 = 0;
/// Program id of the TC programs.
pub const PROG_ID_TC: u32 = 1;
/// Program id of the TCP tracepoints (retransmit, state).
pub const PROG_ID_TCP: u32 = 2;
/// Program id of the kfree_skb program.
pub const PROG_ID_KFREE_SKB: u32 = 3;
/// Program id of the syscall programs.
pub const PROG_ID_SYSCALL: u32 = 4;
/// Number of program ids (entries of [`MAP_LOST`]).
pub const PROG_ID_COUNT: u32 = 5;

// ---- field values ---------------------------------------------------------------------

/// [`FlowKey::dir`]: ingress.
pub const DIR_INGRESS: u8 = 0;
/// [`FlowKey::dir`]: egress.
pub const DIR_EGRESS: u8 = 1;
/// Family: not IP, or too short to tell.
pub const AF_UNSPEC: u8 = 0;
/// Family: IPv4 (stored as `::ffff:a.b.c.d`).
pub const AF_INET: u8 = 2;
/// Family: IPv6.
pub const AF_INET6: u8 = 10;
/// [`XdpKey::l3`] of a frame too short for its L2/L3 header.
pub const L3_UNKNOWN: u16 = 0;
/// L4 protocol of a packet whose IPv6 extension-header chain was too long or truncated.
pub const L4_UNKNOWN: u8 = 255;
/// [`FlowEvent::reason`]: TCP FIN or RST seen; the map entry was deleted.
pub const REASON_END: u32 = 1;
/// [`FlowEvent::reason`]: export interval elapsed; counters are the delta since the last export.
pub const REASON_INTERVAL: u32 = 2;
/// [`FlowEvent::reason`]: one XDP-sampled packet.
pub const REASON_SAMPLE: u32 = 3;
/// [`TcpEvent::kind`]: retransmission.
pub const TCP_RETRANSMIT: u8 = 1;
/// [`TcpEvent::kind`]: skb dropped (kfree_skb with a reason other than SKB_CONSUMED).
pub const TCP_DROP: u8 = 2;
/// [`TcpEvent::kind`]: TCP state change.
pub const TCP_STATE: u8 = 3;
/// TCP FIN flag bit in [`FlowVal::tcp_flags`].
pub const TCP_FIN: u32 = 0x01;
/// TCP SYN flag bit.
pub const TCP_SYN: u32 = 0x02;
/// TCP RST flag bit.
pub const TCP_RST: u32 = 0x04;
/// TCP PSH flag bit.
pub const TCP_PSH: u32 = 0x08;
/// TCP ACK flag bit.
pub const TCP_ACK: u32 = 0x10;
/// TCP URG flag bit.
pub const TCP_URG: u32 = 0x20;
/// TCP ECE flag bit.
pub const TCP_ECE: u32 = 0x40;
/// TCP CWR flag bit.
pub const TCP_CWR: u32 = 0x80;
/// Traced x86_64 syscall: connect.
pub const SYS_CONNECT: u32 = 42;
/// Traced x86_64 syscall: accept.
pub const SYS_ACCEPT: u32 = 43;
/// Traced x86_64 syscall: sendto.
pub const SYS_SENDTO: u32 = 44;
/// Traced x86_64 syscall: recvfrom.
pub const SYS_RECVFROM: u32 = 45;
/// Traced x86_64 syscall: sendmsg.
pub const SYS_SENDMSG: u32 = 46;
/// Traced x86_64 syscall: recvmsg.
pub const SYS_RECVMSG: u32 = 47;
/// Traced x86_64 syscall: accept4.
pub const SYS_ACCEPT4: u32 = 288;

// ---- records --------------------------------------------------------------------------

/// Flow identity: key of [`MAP_FLOW_TABLE`] (`struct mf_flow_key`, 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address, network order; IPv4 as `::ffff:a.b.c.d`.
    pub src: [u8; 16],
    /// Destination address, like `src`.
    pub dst: [u8; 16],
    /// Source port (host order); 0 for ICMP, fragments, other protocols.
    pub sport: u16,
    /// Destination port (host order); ICMP: `type << 8 | code`.
    pub dport: u16,
    /// IP protocol number ([`L4_UNKNOWN`] for an unparsed IPv6 extension chain).
    pub proto: u8,
    /// [`AF_INET`], [`AF_INET6`] or [`AF_UNSPEC`].
    pub family: u8,
    /// [`DIR_INGRESS`] or [`DIR_EGRESS`].
    pub dir: u8,
    /// Zero.
    pub pad: u8,
    /// Interface index.
    pub ifindex: u32,
    /// Zero.
    pub pad2: u32,
}

/// Flow counters: value of [`MAP_FLOW_TABLE`] (`struct mf_flow_val`, 48 bytes).
///
/// In the map, `bytes`/`packets` are what has not been exported yet. In a [`FlowEvent`]
/// they are the delta since the previous export of the same key: sum them per key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowVal {
    /// First packet of this map entry (CLOCK_MONOTONIC ns; tick resolution from TC).
    pub first_ns: u64,
    /// Latest packet (CLOCK_MONOTONIC ns; tick resolution from TC).
    pub last_ns: u64,
    /// Bytes (`skb->len`) not yet exported / in this delta.
    pub bytes: u64,
    /// Packets not yet exported / in this delta.
    pub packets: u64,
    /// Start of the delta window: `first_ns` or the previous export time.
    pub last_export_ns: u64,
    /// OR of the TCP flags ([`TCP_FIN`]..) seen since `first_ns`.
    pub tcp_flags: u32,
    /// Zero.
    pub pad: u32,
}

/// Ring-buffer record of [`MAP_FLOWS`] and [`MAP_SAMPLES`] (`struct mf_flow_event`, 104 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowEvent {
    /// The flow.
    pub key: FlowKey,
    /// Its counters (a delta, see [`FlowVal`]).
    pub val: FlowVal,
    /// [`REASON_END`], [`REASON_INTERVAL`] or [`REASON_SAMPLE`].
    pub reason: u32,
    /// Zero.
    pub pad: u32,
}

/// Ring-buffer record of [`MAP_TCP`] (`struct mf_tcp_event`, 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpEvent {
    /// Event time (CLOCK_MONOTONIC ns).
    pub ts_ns: u64,
    /// Source address, network order; IPv4 as `::ffff:a.b.c.d`.
    pub saddr: [u8; 16],
    /// Destination address, like `saddr`.
    pub daddr: [u8; 16],
    /// Source port (host order).
    pub sport: u16,
    /// Destination port (host order).
    pub dport: u16,
    /// Address family (2 or 10; 0 for a dropped non-IP skb).
    pub family: u16,
    /// [`TCP_RETRANSMIT`], [`TCP_DROP`] or [`TCP_STATE`].
    pub kind: u8,
    /// IP protocol: 6 for retransmit/state, the packet's for drops.
    pub proto: u8,
    /// `enum skb_drop_reason` for drops, else 0.
    pub drop_reason: u32,
    /// Smoothed RTT in µs for state changes, else 0.
    pub srtt_us: u32,
    /// Previous TCP state for state changes, else 0.
    pub old_state: i32,
    /// New TCP state for state changes; socket state for retransmits.
    pub new_state: i32,
}

/// Ring-buffer record of [`MAP_SYSCALLS`] (`struct mf_syscall_event`, 40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallEvent {
    /// Syscall exit time (CLOCK_MONOTONIC ns).
    pub ts_ns: u64,
    /// Exit minus entry, ns.
    pub latency_ns: u64,
    /// Return value (negative errno on failure).
    pub ret: i64,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// x86_64 syscall number ([`SYS_CONNECT`]..).
    pub syscall_nr: u32,
    /// Zero.
    pub pad: u32,
}

/// Value of [`MAP_SYS_START`] (`struct mf_sys_start`, 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SysStart {
    /// Syscall entry time (CLOCK_MONOTONIC ns).
    pub ts_ns: u64,
    /// x86_64 syscall number.
    pub syscall_nr: u32,
    /// Zero.
    pub pad: u32,
}

/// Key of [`MAP_XDP_STATS`] (`struct mf_xdp_key`, 8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XdpKey {
    /// Ingress interface index.
    pub ifindex: u32,
    /// Ethertype after at most one VLAN tag (host order); [`L3_UNKNOWN`] if truncated.
    pub l3: u16,
    /// IP protocol; 0 for non-IP; [`L4_UNKNOWN`] for an unparsed IPv6 extension chain.
    pub l4: u8,
    /// Zero.
    pub pad: u8,
}

/// Per-CPU value of [`MAP_XDP_STATS`] (`struct mf_xdp_val`, 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct XdpVal {
    /// Frames.
    pub packets: u64,
    /// Frame bytes.
    pub bytes: u64,
}

const _: () = assert!(size_of::<FlowKey>() == 48);
const _: () = assert!(size_of::<FlowVal>() == 48);
const _: () = assert!(size_of::<FlowEvent>() == 104);
const _: () = assert!(size_of::<TcpEvent>() == 64);
const _: () = assert!(size_of::<SyscallEvent>() == 40);
const _: () = assert!(size_of::<SysStart>() == 16);
const _: () = assert!(size_of::<XdpKey>() == 8);
const _: () = assert!(size_of::<XdpVal>() == 16);

// SAFETY: all are #[repr(C)] structs of integers and byte arrays with explicit padding
// (no implicit holes, as the size checks above show), so every bit pattern is valid.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowVal {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowEvent {}
// SAFETY: as above.
unsafe impl aya::Pod for TcpEvent {}
// SAFETY: as above.
unsafe impl aya::Pod for SyscallEvent {}
// SAFETY: as above.
unsafe impl aya::Pod for SysStart {}
// SAFETY: as above.
unsafe impl aya::Pod for XdpKey {}
// SAFETY: as above.
unsafe impl aya::Pod for XdpVal {}

/// Copies a record out of a ring-buffer item; `None` if `buf` is shorter than `T`.
pub fn read_record<T: aya::Pod>(buf: &[u8]) -> Option<T> {
    if buf.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `buf` holds at least size_of::<T>() bytes, the read is unaligned-safe, and
    // `T: Pod` is valid for any bit pattern.
    Some(unsafe { buf.as_ptr().cast::<T>().read_unaligned() })
}

/// The address stored in a record: IPv4 for [`AF_INET`], IPv6 for [`AF_INET6`], else `None`.
pub fn ip_addr(family: u16, addr: [u8; 16]) -> Option<IpAddr> {
    match family {
        2 => Some(IpAddr::V4(Ipv4Addr::new(
            addr[12], addr[13], addr[14], addr[15],
        ))),
        10 => Some(IpAddr::V6(Ipv6Addr::from(addr))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_an_aligned_bpf_elf() {
        assert_eq!(OBJECT.as_ptr() as usize % 8, 0);
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247, "EM_BPF");
        let has = |s: &str| OBJECT.windows(s.len()).any(|w| w == s.as_bytes());
        for name in [
            PROG_XDP,
            PROG_TC_INGRESS,
            PROG_TC_EGRESS,
            PROG_TCP_RETRANSMIT,
            PROG_SOCK_STATE,
            PROG_KFREE_SKB,
            PROG_SYS_ENTER,
            PROG_SYS_EXIT,
            MAP_LOST,
            MAP_FLOWS,
            MAP_SAMPLES,
            MAP_TCP,
            MAP_SYSCALLS,
            MAP_XDP_STATS,
            MAP_SAMPLE_CTR,
            MAP_FLOW_TABLE,
            MAP_SYS_START,
            MAP_ADDRS,
            GLOBAL_FLOW_EXPORT_NS,
            GLOBAL_XDP_SAMPLE_EVERY,
            GLOBAL_TARGET_TGID,
            GLOBAL_WAKEUP_BYTES,
            GLOBAL_ADDR_FILTER,
            "Dual MIT/GPL",
        ] {
            assert!(has(name), "{name} missing from the object");
        }
    }

    #[test]
    fn records_round_trip_and_addresses_decode() {
        let mut ev = FlowEvent::default();
        ev.key.src[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
        ev.key.family = AF_INET;
        ev.reason = REASON_END;
        // SAFETY: FlowEvent is Pod with no padding holes.
        let bytes =
            unsafe { std::slice::from_raw_parts((&ev as *const FlowEvent).cast::<u8>(), 104) };
        assert_eq!(read_record::<FlowEvent>(bytes), Some(ev));
        assert_eq!(read_record::<FlowEvent>(&bytes[..103]), None);
        assert_eq!(
            ip_addr(ev.key.family.into(), ev.key.src),
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(ip_addr(0, [0; 16]), None);
    }
}
