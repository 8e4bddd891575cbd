// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * meshflow's eBPF programs, built into one object (meshflow.bpf.o) for aya:
 *   mf_xdp          XDP          per-(ifindex, ethertype, L4 proto) counters (+ sampling)
 *   mf_tc_ingress   classifier   flow records, ingress
 *   mf_tc_egress    classifier   flow records, egress
 *   mf_tcp_retrans  tracepoint   tcp/tcp_retransmit_skb
 *   mf_sock_state   tracepoint   sock/inet_sock_set_state (TCP only)
 *   mf_kfree_skb    tp_btf       kfree_skb (every drop reason but SKB_CONSUMED)
 *   mf_sys_enter    tp_btf       sys_enter (network syscalls only)
 *   mf_sys_exit     tp_btf       sys_exit -> syscall latency
 * Layouts of maps and records: meshflow.h. Overview: ../README.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "meshflow.h"
#include "parse.h"

#ifndef __TARGET_ARCH_x86
#error "meshflow's syscall programs use x86_64 syscall numbers and pt_regs"
#endif

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Set by the loader before load (aya: EbpfLoader::set_global); read-only afterwards. */
const volatile __u64 flow_export_ns = 1000000000ULL; /* TC: export interval */
const volatile __u32 xdp_sample_every = 0;           /* XDP: 0 = off, N = 1 in N */
const volatile __u32 target_tgid = 0;                /* syscalls: 0 = every process */
const volatile __u64 wakeup_bytes = 256 << 10;       /* ring buffers: see mf_submit() */
const volatile __u32 addr_filter = 0;                /* TCP events, drops: 1 = mf_addrs only */

/* TC return value: TC_ACT_UNSPEC (-1) == TCX_NEXT. With TCX links the packet goes on to
 * the next program and, at the end of the chain, is passed; with legacy clsact filters
 * it means "no verdict", which also passes the packet. Never a drop or a redirect. */
#define MF_TC_CONTINUE (-1)

#define MF_RINGBUF_BYTES (16 << 20)

/* ---- maps ------------------------------------------------------------------------ */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MF_PROG_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} mf_lost SEC(".maps");

/* One ring buffer per record kind, so a flood of one kind cannot crowd out another. */
#define MF_RINGBUF(name)                                    \
	struct {                                    \
		__uint(type, BPF_MAP_TYPE_RINGBUF);         \
		__uint(max_entries, MF_RINGBUF_BYTES);      \
	} name SEC(".maps")

MF_RINGBUF(mf_flows);
MF_RINGBUF(mf_samples);
MF_RINGBUF(mf_tcp);
MF_RINGBUF(mf_syscalls);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct mf_xdp_key);
	__type(value, struct mf_xdp_val);
} mf_xdp_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mf_sample_ctr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mf_flow_key);
	__type(value, struct mf_flow_val);
} mf_flow_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct mf_sys_start);
} mf_sys_start SEC(".maps");

/* The mesh's addresses (16 bytes, IPv4 v4-mapped): with addr_filter set, TCP events and
 * drops are reported only when one end is among them. Filled by the loader before it
 * attaches the tracepoints. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MF_ADDRS_MAX);
	__type(key, __u8[16]);
	__type(value, __u8);
} mf_addrs SEC(".maps");

/* Whether an event between these addresses is reported. An event whose addresses could
 * not be read (family 0) is reported whatever the filter. */
static __always_inline bool mf_addrs_wanted(__u16 family, const __u8 *saddr, const __u8 *daddr)
{
	return !addr_filter || family == MF_AF_UNSPEC || bpf_map_lookup_elem(&mf_addrs, saddr) ||
	       bpf_map_lookup_elem(&mf_addrs, daddr);
}

/*
 * Submits a reserved record with batched wake-ups: the reader is woken only by the
 * record that makes the ring's unconsumed data cross `wakeup_bytes` (the reserved
 * record is already counted in BPF_RB_AVAIL_DATA); every other record is submitted
 * without a wake-up and found at the reader's next timed drain (every poll_interval).
 * Waking on every record above the threshold instead would cost an irq_work per
 * record exactly when the reader is behind. A crossing missed because two CPUs
 * reserved at once only delays the reader until its timer.
 */
static __always_inline void mf_submit(void *ring, void *e, __u64 size)
{
	__u64 record = ((size + 7) & ~7ULL) + 8; /* 8-byte aligned, plus the ring's header */
	__u64 avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 flags = avail >= wakeup_bytes && avail < wakeup_bytes + record
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;

	bpf_ringbuf_submit(e, flags);
}

static __always_inline void mf_count_lost(__u32 prog)
{
	__u64 *n = bpf_map_lookup_elem(&mf_lost, &prog);

	if (n)
		*n += 1;
}

/* ---- XDP ------------------------------------------------------------------------- */

static __always_inline void mf_xdp_sample(struct mf_parsed *p, __u32 ifindex, __u64 len)
{
	__u32 zero = 0;
	__u64 *ctr = bpf_map_lookup_elem(&mf_sample_ctr, &zero);
	struct mf_flow_event *e;
	__u64 now;

	if (!ctr)
		return;
	if (++*ctr < xdp_sample_every)
		return;
	*ctr = 0;
	e = bpf_ringbuf_reserve(&mf_samples, sizeof(*e), 0);
	if (!e) {
		mf_count_lost(MF_PROG_XDP);
		return;
	}
	now = bpf_ktime_get_ns();
	e->key = p->key;
	e->key.dir = MF_DIR_INGRESS;
	e->key.pad = 0;
	e->key.ifindex = ifindex;
	e->key.pad2 = 0;
	e->val.first_ns = now;
	e->val.last_ns = now;
	e->val.bytes = len;
	e->val.packets = 1;
	e->val.last_export_ns = now;
	e->val.tcp_flags = p->tcp_flags;
	e->val.pad = 0;
	e->reason = MF_REASON_SAMPLE;
	e->pad = 0;
	mf_submit(&mf_samples, e, sizeof(*e));
}

SEC("xdp")
int mf_xdp(struct xdp_md *ctx)
{
	struct mf_parsed p = {};
	struct mf_xdp_key k = {};
	struct mf_xdp_val *v;
	__u64 len = ctx->data_end - ctx->data;

	/* Ports are only needed for samples; the rodata constant prunes the rest. */
	mf_parse_frame(ctx, &p, xdp_sample_every != 0);

	k.ifindex = ctx->ingress_ifindex;
	k.l3 = p.l3;
	k.l4 = p.key.proto;
	v = bpf_map_lookup_elem(&mf_xdp_stats, &k);
	if (v) {
		v->packets += 1; /* per-CPU value: no atomics needed */
		v->bytes += len;
	} else {
		struct mf_xdp_val nv = { .packets = 1, .bytes = len };

		/* Fails only if the map is full (or on a racing insert on this CPU: never). */
		bpf_map_update_elem(&mf_xdp_stats, &k, &nv, BPF_NOEXIST);
	}
	if (xdp_sample_every)
		mf_xdp_sample(&p, k.ifindex, len);
	return XDP_PASS;
}

/* ---- TC flow records --------------------------------------------------------------- */

static __always_inline struct mf_flow_event *mf_flow_reserve(void)
{
	struct mf_flow_event *e = bpf_ringbuf_reserve(&mf_flows, sizeof(*e), 0);

	if (!e)
		mf_count_lost(MF_PROG_TC);
	return e;
}

/*
 * Export the entry's pending delta: bytes/packets are swapped to 0 atomically, so a
 * packet counted concurrently lands in this event or in the next one, never in both.
 * If the ring buffer is full nothing is swapped and the delta stays in the map.
 */
static __always_inline void mf_flow_export(const struct mf_flow_key *key,
					   struct mf_flow_val *v, __u64 window_start,
					   __u32 reason)
{
	struct mf_flow_event *e = mf_flow_reserve();

	if (!e)
		return;
	e->key = *key;
	e->val.first_ns = v->first_ns;
	e->val.last_ns = v->last_ns;
	e->val.bytes = __sync_lock_test_and_set(&v->bytes, 0);
	e->val.packets = __sync_lock_test_and_set(&v->packets, 0);
	e->val.last_export_ns = window_start;
	e->val.tcp_flags = v->tcp_flags;
	e->val.pad = 0;
	e->reason = reason;
	e->pad = 0;
	mf_submit(&mf_flows, e, sizeof(*e));
}

static __always_inline void mf_flow_account(const struct mf_flow_key *key, __u64 bytes,
					    __u32 packets, __u32 flags)
{
	const bool end = flags & (MF_TCP_FIN | MF_TCP_RST);
	/* CLOCK_MONOTONIC at tick resolution (CONFIG_HZ): bpf_ktime_get_ns() costs ~50 ns
	 * a call here, a third of the whole per-packet cost. */
	__u64 now = bpf_ktime_get_coarse_ns();
	struct mf_flow_val *v;
	__u64 last;

	v = bpf_map_lookup_elem(&mf_flow_table, key);
	if (!v) {
		struct mf_flow_val nv = {
			.first_ns = now,
			.last_ns = now,
			.bytes = bytes,
			.packets = packets,
			.last_export_ns = now,
			.tcp_flags = flags,
		};

		if (end) {
			/* A flow whose first packet we see is a FIN/RST: report it, store nothing. */
			struct mf_flow_event *e = mf_flow_reserve();

			if (!e)
				return;
			e->key = *key;
			e->val = nv;
			e->reason = MF_REASON_END;
			e->pad = 0;
			mf_submit(&mf_flows, e, sizeof(*e));
			return;
		}
		if (bpf_map_update_elem(&mf_flow_table, key, &nv, BPF_NOEXIST) == 0)
			return;
		/* Another CPU inserted the key first: add to its entry. */
		v = bpf_map_lookup_elem(&mf_flow_table, key);
		if (!v)
			return;
	}
	__sync_fetch_and_add(&v->bytes, bytes);
	__sync_fetch_and_add(&v->packets, packets);
	if (v->last_ns < now)
		v->last_ns = now;
	if ((v->tcp_flags & flags) != flags)
		__sync_fetch_and_or(&v->tcp_flags, flags);

	last = v->last_export_ns;
	if (end) {
		mf_flow_export(key, v, last, MF_REASON_END);
		bpf_map_delete_elem(&mf_flow_table, key);
		return;
	}
	/* Exactly one CPU wins the compare-and-swap and exports this window. `now` may be
	 * older than a `last` another CPU just stored: that is not an elapsed interval. */
	if (now >= last && now - last >= flow_export_ns &&
	    __sync_val_compare_and_swap(&v->last_export_ns, last, now) == last)
		mf_flow_export(key, v, last, MF_REASON_INTERVAL);
}

static __always_inline int mf_tc(struct __sk_buff *skb, __u8 dir)
{
	struct mf_parsed p = {};
	__u16 l3 = bpf_ntohs(skb->protocol);
	__u32 off = 0, segs;

	/* Offsets are relative to the network header: works with and without L2. A VLAN
	 * tag is normally already stripped into skb metadata here; an in-band one (one
	 * level) sits at the network header. */
	if (l3 == MF_ETH_P_8021Q || l3 == MF_ETH_P_8021AD) {
		struct mf_vlan buf, *vh = mf_hdr(skb, false, 0, &buf, sizeof(buf));

		if (vh) {
			l3 = bpf_ntohs(vh->proto);
			off = sizeof(buf);
		}
	}
	if (l3 == MF_ETH_P_IP || l3 == MF_ETH_P_IPV6)
		mf_parse_l3(skb, false, off, l3, &p, true);
	p.key.dir = dir;
	p.key.ifindex = skb->ifindex;
	/* A GSO/GRO skb carries gso_segs packets on the wire (a TCP send is often tens of
	 * segments in one skb); its length counts their headers once. */
	segs = skb->gso_segs;
	mf_flow_account(&p.key, skb->len, segs > 1 ? segs : 1,
			p.key.proto == MF_IPPROTO_TCP ? p.tcp_flags : 0);
	return MF_TC_CONTINUE;
}

SEC("classifier")
int mf_tc_ingress(struct __sk_buff *skb)
{
	return mf_tc(skb, MF_DIR_INGRESS);
}

SEC("classifier")
int mf_tc_egress(struct __sk_buff *skb)
{
	return mf_tc(skb, MF_DIR_EGRESS);
}

/* ---- TCP tracepoints ---------------------------------------------------------------- */

static __always_inline struct mf_tcp_event *mf_tcp_reserve(__u32 prog)
{
	struct mf_tcp_event *e = bpf_ringbuf_reserve(&mf_tcp, sizeof(*e), 0);

	if (!e) {
		mf_count_lost(prog);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

/* Submits a TCP event, or discards it when neither end is a mesh address. */
static __always_inline void mf_submit_tcp(struct mf_tcp_event *e)
{
	if (mf_addrs_wanted(e->family, e->saddr, e->daddr))
		mf_submit(&mf_tcp, e, sizeof(*e));
	else
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int mf_tcp_retrans(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	struct mf_tcp_event *e = mf_tcp_reserve(MF_PROG_TCP);

	if (!e)
		return 0;
	e->kind = MF_TCP_RETRANSMIT;
	e->proto = MF_IPPROTO_TCP;
	e->family = ctx->family;
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	/* The tracepoint stores IPv4 as v4-mapped in *_v6, like our records. */
	bpf_probe_read_kernel(e->saddr, sizeof(e->saddr), ctx->saddr_v6);
	bpf_probe_read_kernel(e->daddr, sizeof(e->daddr), ctx->daddr_v6);
	e->new_state = ctx->state;
	mf_submit_tcp(e);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int mf_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct tcp_sock *tp;
	struct mf_tcp_event *e;

	if (ctx->protocol != MF_IPPROTO_TCP)
		return 0;
	e = mf_tcp_reserve(MF_PROG_TCP);
	if (!e)
		return 0;
	e->kind = MF_TCP_STATE;
	e->proto = MF_IPPROTO_TCP;
	e->family = ctx->family;
	e->sport = ctx->sport;
	e->dport = ctx->dport;
	bpf_probe_read_kernel(e->saddr, sizeof(e->saddr), ctx->saddr_v6);
	bpf_probe_read_kernel(e->daddr, sizeof(e->daddr), ctx->daddr_v6);
	e->old_state = ctx->oldstate;
	e->new_state = ctx->newstate;
	tp = (struct tcp_sock *)ctx->skaddr;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	mf_submit_tcp(e);
	return 0;
}

/* Addresses and ports of a dropped skb, read from skb->head via CO-RE. */
static __always_inline void mf_skb_addrs(struct sk_buff *skb, struct mf_tcp_event *e)
{
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u32 l4off;

	if (!head || nh == (__u16)~0U)
		return;
	if (proto == MF_ETH_P_IP) {
		struct mf_ipv4 ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) || (ip.vihl >> 4) != 4)
			return;
		e->family = MF_AF_INET;
		e->proto = ip.proto;
		mf_v4_mapped(e->saddr, ip.saddr);
		mf_v4_mapped(e->daddr, ip.daddr);
		if (bpf_ntohs(ip.frag_off) & 0x1fff)
			return;
		l4off = nh + (ip.vihl & 0x0f) * 4;
	} else if (proto == MF_ETH_P_IPV6) {
		struct mf_ipv6 ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) ||
		    (bpf_ntohl(ip6.vtc_flow) >> 28) != 6)
			return;
		e->family = MF_AF_INET6;
		e->proto = ip6.nexthdr;
		__builtin_memcpy(e->saddr, ip6.saddr, 16);
		__builtin_memcpy(e->daddr, ip6.daddr, 16);
		l4off = nh + sizeof(ip6);
	} else {
		return;
	}
	/* Prefer the stack's transport header when it was set past the network header. */
	if (th != (__u16)~0U && th > nh)
		l4off = th;
	if (e->proto == MF_IPPROTO_TCP || e->proto == MF_IPPROTO_UDP) {
		struct mf_l4ports ports;

		if (bpf_probe_read_kernel(&ports, sizeof(ports), head + l4off))
			return;
		e->sport = bpf_ntohs(ports.sport);
		e->dport = bpf_ntohs(ports.dport);
	}
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(mf_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct mf_tcp_event *e;

	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return 0;
	e = mf_tcp_reserve(MF_PROG_KFREE_SKB);
	if (!e)
		return 0;
	e->kind = MF_TCP_DROP;
	e->drop_reason = reason;
	mf_skb_addrs(skb, e);
	mf_submit_tcp(e);
	return 0;
}

/* ---- syscall latency ---------------------------------------------------------------- */

/* x86_64: connect, accept, sendto, recvfrom, sendmsg, recvmsg (42..47), accept4. */
static __always_inline bool mf_sys_wanted(long nr)
{
	return (nr >= 42 && nr <= 47) || nr == 288;
}

static __always_inline bool mf_tgid_wanted(__u64 pid_tgid)
{
	return target_tgid == 0 || (__u32)(pid_tgid >> 32) == target_tgid;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(mf_sys_enter, struct pt_regs *regs, long id)
{
	struct mf_sys_start s;
	__u64 pid_tgid;

	if (!mf_sys_wanted(id))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!mf_tgid_wanted(pid_tgid))
		return 0;
	s.ts_ns = bpf_ktime_get_ns();
	s.syscall_nr = id;
	s.pad = 0;
	bpf_map_update_elem(&mf_sys_start, &pid_tgid, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(mf_sys_exit, struct pt_regs *regs, long ret)
{
	struct mf_syscall_event *e;
	struct mf_sys_start *s;
	__u64 pid_tgid, now, start;
	__u32 nr;

	/* tp_btf arguments are BTF pointers: a direct (CO-RE relocated) load, no helper. */
	if (!mf_sys_wanted(regs->orig_ax))
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	if (!mf_tgid_wanted(pid_tgid))
		return 0;
	s = bpf_map_lookup_elem(&mf_sys_start, &pid_tgid);
	if (!s)
		return 0;
	now = bpf_ktime_get_ns();
	start = s->ts_ns;
	nr = s->syscall_nr;
	bpf_map_delete_elem(&mf_sys_start, &pid_tgid);

	e = bpf_ringbuf_reserve(&mf_syscalls, sizeof(*e), 0);
	if (!e) {
		mf_count_lost(MF_PROG_SYSCALL);
		return 0;
	}
	e->ts_ns = now;
	e->latency_ns = now - start;
	e->ret = ret;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->syscall_nr = nr;
	e->pad = 0;
	mf_submit(&mf_syscalls, e, sizeof(*e));
	return 0;
}
