/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * meshflow's kernel <-> userspace ABI: map values and ring-buffer records.
 *
 * Every struct has a fixed layout with explicit padding (no implicit holes) and a size
 * that is a multiple of 8; the Rust mirrors in src/lib.rs assert the same sizes.
 * Byte order: addresses are in network order exactly as on the wire; IPv4 is stored as
 * the IPv4-mapped IPv6 address ::ffff:a.b.c.d. Ports, ethertypes and every other
 * integer are in host order. Timestamps are CLOCK_MONOTONIC ns: bpf_ktime_get_ns(),
 * except the TC flow table and its records (first_ns, last_ns, last_export_ns), which
 * use bpf_ktime_get_coarse_ns() (same clock, CONFIG_HZ tick resolution, much cheaper).
 * Padding is always written as zero.
 */
#ifndef MESHFLOW_H
#define MESHFLOW_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Program ids: the index into the per-CPU array mf_lost. */
#define MF_PROG_XDP 0
#define MF_PROG_TC 1
#define MF_PROG_TCP 2
#define MF_PROG_KFREE_SKB 3
#define MF_PROG_SYSCALL 4
#define MF_PROG_COUNT 5

/* max_entries of mf_addrs: how many mesh addresses the tracepoints can be limited to. */
#define MF_ADDRS_MAX 4096

/* mf_flow_key.dir */
#define MF_DIR_INGRESS 0
#define MF_DIR_EGRESS 1

/* mf_flow_key.family (the kernel's AF_* values); 0 = not IP or too short to tell. */
#define MF_AF_UNSPEC 0
#define MF_AF_INET 2
#define MF_AF_INET6 10

/* mf_xdp_key.l3 when the frame is too short to hold its L2/L3 header. */
#define MF_L3_UNKNOWN 0
/* mf_xdp_key.l4 / mf_flow_key.proto when an IPv6 extension-header chain is longer than
 * the parser follows, or is truncated. Non-IP frames have l4 = 0. */
#define MF_L4_UNKNOWN 255

/* mf_flow_event.reason */
#define MF_REASON_END 1      /* TCP FIN or RST seen: the entry was deleted */
#define MF_REASON_INTERVAL 2 /* flow_export_ns elapsed: delta since the last export */
#define MF_REASON_SAMPLE 3   /* XDP sampling mode: one packet, header fields only */

/* mf_tcp_event.kind */
#define MF_TCP_RETRANSMIT 1
#define MF_TCP_DROP 2
#define MF_TCP_STATE 3

/* TCP flag bits as in the TCP header's 14th byte (mf_flow_val.tcp_flags). */
#define MF_TCP_FIN 0x01
#define MF_TCP_SYN 0x02
#define MF_TCP_RST 0x04
#define MF_TCP_PSH 0x08
#define MF_TCP_ACK 0x10
#define MF_TCP_URG 0x20
#define MF_TCP_ECE 0x40
#define MF_TCP_CWR 0x80

/*
 * Flow identity (48 bytes): key of mf_flow_table and part of mf_flow_event.
 * TCP/UDP/UDP-Lite/SCTP: sport/dport are the ports. ICMP/ICMPv6: sport = 0,
 * dport = type << 8 | code. Non-first fragments, truncated L4 headers and other
 * protocols: both 0. Non-IP or truncated L3: family 0, addresses 0, proto 0.
 */
struct mf_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;  /* IP protocol / IPv6 upper-layer header */
	__u8 family; /* MF_AF_* */
	__u8 dir;    /* MF_DIR_* */
	__u8 pad;
	__u32 ifindex;
	__u32 pad2;
};

/*
 * Flow counters (48 bytes): value of mf_flow_table, and in mf_flow_event.
 * In the map, bytes/packets are what has not been exported yet; an export swaps them
 * to 0 atomically. In an event they are the delta since the previous export of the
 * same key, so a consumer sums every event of a key to get its totals.
 */
struct mf_flow_val {
	__u64 first_ns;       /* first packet of this map entry */
	__u64 last_ns;        /* latest packet */
	__u64 bytes;          /* skb->len (TC) / frame length (XDP sample) */
	__u64 packets;
	__u64 last_export_ns; /* start of the current delta window: first_ns or last export */
	__u32 tcp_flags;      /* OR of MF_TCP_* seen since first_ns (low 8 bits) */
	__u32 pad;
};

/* Ring buffer record of mf_flows and mf_samples (104 bytes). */
struct mf_flow_event {
	struct mf_flow_key key;
	struct mf_flow_val val;
	__u32 reason; /* MF_REASON_* */
	__u32 pad;
};

/*
 * Ring buffer record of mf_tcp (64 bytes). Addresses as in mf_flow_key; family is
 * MF_AF_* (0 with zero addresses/ports when a dropped skb is not IPv4/IPv6).
 * retransmit: new_state = socket state, old_state = 0.
 * drop: drop_reason = enum skb_drop_reason; ports only for TCP/UDP.
 * state: old_state/new_state = TCP_* states, srtt_us = smoothed RTT in microseconds.
 */
struct mf_tcp_event {
	__u64 ts_ns;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 kind;  /* MF_TCP_RETRANSMIT / MF_TCP_DROP / MF_TCP_STATE */
	__u8 proto; /* IP protocol: 6 for retransmit/state, the packet's for drops */
	__u32 drop_reason;
	__u32 srtt_us;
	__s32 old_state;
	__s32 new_state;
};

/* Ring buffer record of mf_syscalls (40 bytes). */
struct mf_syscall_event {
	__u64 ts_ns;      /* syscall exit */
	__u64 latency_ns; /* exit - entry */
	__s64 ret;        /* return value (negative errno on failure) */
	__u32 pid;        /* process id (tgid) */
	__u32 tid;        /* thread id */
	__u32 syscall_nr; /* x86_64 number */
	__u32 pad;
};

/* Value of mf_sys_start, keyed by pid_tgid (16 bytes). */
struct mf_sys_start {
	__u64 ts_ns;
	__u32 syscall_nr;
	__u32 pad;
};

/* Key of mf_xdp_stats (8 bytes): l3 = ethertype (after one VLAN tag). */
struct mf_xdp_key {
	__u32 ifindex;
	__u16 l3;
	__u8 l4;
	__u8 pad;
};

/* Per-CPU value of mf_xdp_stats (16 bytes). */
struct mf_xdp_val {
	__u64 packets;
	__u64 bytes;
};

#endif /* MESHFLOW_H */
