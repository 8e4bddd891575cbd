/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * Packet header parsing shared by the XDP and TC programs.
 *
 * One parser, two ways to read bytes: XDP reads the frame in place (bounds-checked
 * direct packet access, offsets from the Ethernet header); TC copies each header with
 * bpf_skb_load_bytes_relative() from the network header, which also covers non-linear
 * skbs and devices without an L2 header. `xdp` is a compile-time constant after
 * inlining, so each program keeps only its own branch.
 *
 * Wire header layouts are declared here (not taken from vmlinux.h) so that no CO-RE
 * relocation is attached to packet accesses: the wire format never changes.
 */
#ifndef MESHFLOW_PARSE_H
#define MESHFLOW_PARSE_H

#define MF_ETH_P_IP 0x0800
#define MF_ETH_P_IPV6 0x86DD
#define MF_ETH_P_8021Q 0x8100
#define MF_ETH_P_8021AD 0x88A8

#define MF_IPPROTO_HOPOPTS 0
#define MF_IPPROTO_ICMP 1
#define MF_IPPROTO_TCP 6
#define MF_IPPROTO_UDP 17
#define MF_IPPROTO_ROUTING 43
#define MF_IPPROTO_FRAGMENT 44
#define MF_IPPROTO_AH 51
#define MF_IPPROTO_ICMPV6 58
#define MF_IPPROTO_DSTOPTS 60
#define MF_IPPROTO_SCTP 132
#define MF_IPPROTO_UDPLITE 136

/* How many IPv6 extension headers are followed before giving up (MF_L4_UNKNOWN). */
#define MF_MAX_EXT_HDRS 6
/* Largest header offset read in place by XDP; anything beyond counts as truncated. */
#define MF_MAX_HDR_OFF 2048

struct mf_eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct mf_vlan {
	__be16 tci;
	__be16 proto;
};

struct mf_ipv4 {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct mf_ipv6 {
	__be32 vtc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* First 8 bytes of any IPv6 extension header we follow. */
struct mf_ext {
	__u8 nexthdr;
	__u8 len;
	__be16 frag_off; /* fragment header only */
	__be32 rest;
};

/* First 14 bytes of a TCP header: ports, sequence numbers and the flags byte. */
struct mf_tcp {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff;
	__u8 flags;
};

struct mf_l4ports {
	__be16 sport;
	__be16 dport;
};

/* What the parser found. key.dir / key.ifindex are filled by the caller. */
struct mf_parsed {
	struct mf_flow_key key;
	__u16 l3; /* ethertype (host order), MF_L3_UNKNOWN if truncated */
	__u8 tcp_flags;
	__u8 pad;
	__u32 pad2;
};

/*
 * Returns a pointer to `len` bytes at `off`: in the frame itself (XDP) or copied into
 * `buf` (TC). NULL when the packet is shorter than off + len.
 */
static __always_inline void *mf_hdr(void *ctx, const bool xdp, __u32 off, void *buf,
				    const __u32 len)
{
	if (xdp) {
		struct xdp_md *x = ctx;
		void *data = (void *)(long)x->data;
		void *end = (void *)(long)x->data_end;

		if (off > MF_MAX_HDR_OFF)
			return NULL;
		if (data + off + len > end)
			return NULL;
		return data + off;
	}
	if (bpf_skb_load_bytes_relative(ctx, off, buf, len, BPF_HDR_START_NET))
		return NULL;
	return buf;
}

static __always_inline void mf_v4_mapped(__u8 *dst, const __u8 *v4)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	dst[12] = v4[0];
	dst[13] = v4[1];
	dst[14] = v4[2];
	dst[15] = v4[3];
}

/* Ports (or ICMP type/code) and TCP flags of the L4 header at `off`. */
static __always_inline void mf_parse_l4(void *ctx, const bool xdp, __u32 off,
					struct mf_parsed *p)
{
	switch (p->key.proto) {
	case MF_IPPROTO_TCP: {
		struct mf_tcp buf, *th = mf_hdr(ctx, xdp, off, &buf, sizeof(buf));

		if (!th)
			return;
		p->key.sport = bpf_ntohs(th->sport);
		p->key.dport = bpf_ntohs(th->dport);
		p->tcp_flags = th->flags;
		return;
	}
	case MF_IPPROTO_UDP:
	case MF_IPPROTO_UDPLITE:
	case MF_IPPROTO_SCTP: {
		struct mf_l4ports buf, *ph = mf_hdr(ctx, xdp, off, &buf, sizeof(buf));

		if (!ph)
			return;
		p->key.sport = bpf_ntohs(ph->sport);
		p->key.dport = bpf_ntohs(ph->dport);
		return;
	}
	case MF_IPPROTO_ICMP:
	case MF_IPPROTO_ICMPV6: {
		__u8 buf[2], *ih = mf_hdr(ctx, xdp, off, buf, sizeof(buf));

		if (!ih)
			return;
		p->key.dport = ((__u16)ih[0] << 8) | ih[1];
		return;
	}
	}
}

static __always_inline void mf_parse_ipv4(void *ctx, const bool xdp, __u32 off,
					  struct mf_parsed *p, const bool ports)
{
	struct mf_ipv4 buf, *ip = mf_hdr(ctx, xdp, off, &buf, sizeof(buf));
	__u32 ihl;

	if (!ip) {
		p->l3 = MF_L3_UNKNOWN;
		return;
	}
	p->key.family = MF_AF_INET;
	p->key.proto = ip->proto;
	mf_v4_mapped(p->key.src, ip->saddr);
	mf_v4_mapped(p->key.dst, ip->daddr);
	ihl = (ip->vihl & 0x0f) * 4;
	/* Malformed header length, or a non-first fragment (no L4 header): no ports. */
	if (ihl < sizeof(struct mf_ipv4) || (bpf_ntohs(ip->frag_off) & 0x1fff))
		return;
	if (ports)
		mf_parse_l4(ctx, xdp, off + ihl, p);
}

static __always_inline void mf_parse_ipv6(void *ctx, const bool xdp, __u32 off,
					  struct mf_parsed *p, const bool ports)
{
	struct mf_ipv6 buf, *ip6 = mf_hdr(ctx, xdp, off, &buf, sizeof(buf));
	bool first_frag = true;
	__u8 nexthdr;
	int i;

	if (!ip6) {
		p->l3 = MF_L3_UNKNOWN;
		return;
	}
	p->key.family = MF_AF_INET6;
	__builtin_memcpy(p->key.src, ip6->saddr, 16);
	__builtin_memcpy(p->key.dst, ip6->daddr, 16);
	nexthdr = ip6->nexthdr;
	off += sizeof(struct mf_ipv6);

#pragma unroll
	for (i = 0; i < MF_MAX_EXT_HDRS; i++) {
		struct mf_ext ebuf, *eh;

		if (nexthdr != MF_IPPROTO_HOPOPTS && nexthdr != MF_IPPROTO_ROUTING &&
		    nexthdr != MF_IPPROTO_DSTOPTS && nexthdr != MF_IPPROTO_AH &&
		    nexthdr != MF_IPPROTO_FRAGMENT)
			break;
		eh = mf_hdr(ctx, xdp, off, &ebuf, sizeof(ebuf));
		if (!eh) {
			p->key.proto = MF_L4_UNKNOWN;
			return;
		}
		if (nexthdr == MF_IPPROTO_FRAGMENT) {
			if (bpf_ntohs(eh->frag_off) & 0xfff8)
				first_frag = false;
			off += 8;
		} else if (nexthdr == MF_IPPROTO_AH) {
			off += ((__u32)eh->len + 2) * 4;
		} else {
			off += ((__u32)eh->len + 1) * 8;
		}
		nexthdr = eh->nexthdr;
		if (!first_frag)
			break;
	}
	if (first_frag &&
	    (nexthdr == MF_IPPROTO_HOPOPTS || nexthdr == MF_IPPROTO_ROUTING ||
	     nexthdr == MF_IPPROTO_DSTOPTS || nexthdr == MF_IPPROTO_AH ||
	     nexthdr == MF_IPPROTO_FRAGMENT)) {
		p->key.proto = MF_L4_UNKNOWN; /* chain longer than MF_MAX_EXT_HDRS */
		return;
	}
	p->key.proto = nexthdr;
	if (first_frag && ports)
		mf_parse_l4(ctx, xdp, off, p);
}

/* L3 dispatch; `off` is where the L3 header starts for the chosen reader. */
static __always_inline void mf_parse_l3(void *ctx, const bool xdp, __u32 off, __u16 l3,
					struct mf_parsed *p, const bool ports)
{
	p->l3 = l3;
	if (l3 == MF_ETH_P_IP)
		mf_parse_ipv4(ctx, xdp, off, p, ports);
	else if (l3 == MF_ETH_P_IPV6)
		mf_parse_ipv6(ctx, xdp, off, p, ports);
}

/* XDP: Ethernet, at most one VLAN tag (802.1Q or 802.1ad), then L3. */
static __always_inline void mf_parse_frame(struct xdp_md *ctx, struct mf_parsed *p,
					   const bool ports)
{
	struct mf_eth *eth = mf_hdr(ctx, true, 0, NULL, sizeof(struct mf_eth));
	__u32 off = sizeof(struct mf_eth);
	__u16 proto;

	if (!eth) {
		p->l3 = MF_L3_UNKNOWN;
		return;
	}
	proto = bpf_ntohs(eth->proto);
	if (proto == MF_ETH_P_8021Q || proto == MF_ETH_P_8021AD) {
		struct mf_vlan *vh = mf_hdr(ctx, true, off, NULL, sizeof(struct mf_vlan));

		if (!vh) {
			p->l3 = MF_L3_UNKNOWN;
			return;
		}
		proto = bpf_ntohs(vh->proto);
		off += sizeof(struct mf_vlan);
	}
	mf_parse_l3(ctx, true, off, proto, p, ports);
}

#endif /* MESHFLOW_PARSE_H */
