use std::net::Ipv4Addr;

use super::*;

fn mapped(ip: Ipv4Addr) -> [u8; 16] {
    ip.to_ipv6_mapped().octets()
}

fn decoder() -> Decoder {
    let a: IpAddr = "10.1.0.1".parse().unwrap();
    Decoder {
        clock: KernelClock { offset: 1_000 },
        nodes: NodeMap::default(),
        local: [a].into_iter().collect(),
        host_node: 99,
        drop_reasons: [(2, "NO_SOCKET".to_string())].into_iter().collect(),
    }
}

fn flow(family: u8) -> abi::FlowEvent {
    abi::FlowEvent {
        key: abi::FlowKey {
            src: mapped(Ipv4Addr::new(10, 1, 0, 1)),
            dst: mapped(Ipv4Addr::new(10, 1, 0, 2)),
            sport: 4000,
            dport: 53,
            proto: 17,
            family,
            dir: 1,
            pad: 0,
            ifindex: 7,
            pad2: 0,
        },
        val: abi::FlowVal {
            first_ns: 100,
            last_ns: 900,
            bytes: 1234,
            packets: 3,
            last_export_ns: 400,
            tcp_flags: 0,
            pad: 0,
        },
        reason: 2,
        pad: 0,
    }
}

#[test]
fn flows_get_nodes_from_addresses_and_wall_clock_times() {
    let d = decoder();
    let f = d.flow(&flow(2)).unwrap();
    let (a, b): (IpAddr, IpAddr) = ("10.1.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap());
    assert_eq!(f.src_node, meshflow_schemas::node_id_of_ip(a));
    assert_eq!(f.dst_node, meshflow_schemas::node_id_of_ip(b));
    assert_eq!(f.src_ip.to_ip(), a);
    assert_eq!((f.src_port, f.dst_port, f.protocol), (4000, 53, 17));
    assert_eq!((f.bytes, f.packets), (1234, 3));
    // The delta starts at the previous export, not at the flow's first packet.
    assert_eq!(f.first_seen, TimestampNs(1_400));
    assert_eq!(f.last_seen, TimestampNs(1_900));
    assert!(d.flow(&flow(0)).is_none(), "non-IP flows are skipped");
}

#[test]
fn a_record_too_short_is_not_read() {
    let bytes = [0u8; 10];
    assert!(read_record::<abi::FlowEvent>(&bytes).is_none());
    let ev = flow(2);
    // SAFETY: FlowEvent is plain old data; viewing it as bytes is sound.
    let raw = unsafe {
        std::slice::from_raw_parts(
            (&ev as *const abi::FlowEvent).cast::<u8>(),
            std::mem::size_of::<abi::FlowEvent>(),
        )
    };
    let back = read_record::<abi::FlowEvent>(raw).unwrap();
    assert_eq!(back.val.bytes, 1234);
}

fn tcp(kind: u8, saddr: Ipv4Addr, daddr: Ipv4Addr) -> abi::TcpEvent {
    abi::TcpEvent {
        ts_ns: 5,
        saddr: mapped(saddr),
        daddr: mapped(daddr),
        sport: 1,
        dport: 2,
        family: 2,
        kind,
        proto: 6,
        drop_reason: 2,
        srtt_us: 250,
        old_state: 2,
        new_state: 1,
    }
}

#[test]
fn tcp_events_are_named_and_drops_are_oriented_to_the_local_end() {
    let d = decoder();
    let local = Ipv4Addr::new(10, 1, 0, 1);
    let remote = Ipv4Addr::new(10, 1, 0, 2);
    let s = d.tcp(&tcp(3, local, remote)).unwrap();
    assert_eq!(s.kind, TcpEventKind::StateChange);
    assert_eq!(s.old_state.as_deref(), Some("SYN_SENT"));
    assert_eq!(s.new_state.as_deref(), Some("ESTABLISHED"));
    assert_eq!(s.srtt_us, Some(250));
    assert_eq!(s.time, TimestampNs(1_005));
    let r = d.tcp(&tcp(1, local, remote)).unwrap();
    assert_eq!(r.kind, TcpEventKind::Retransmit);
    assert_eq!(r.old_state, None);
    assert_eq!(r.srtt_us, None);
    // An incoming packet dropped: the local address is its destination.
    let drop = d.tcp(&tcp(2, remote, local)).unwrap();
    assert_eq!(drop.src_ip.to_ip(), IpAddr::V4(local));
    assert_eq!((drop.src_port, drop.dst_port), (2, 1));
    assert_eq!(drop.drop_reason.as_deref(), Some("NO_SOCKET"));
    let mut unknown = tcp(2, remote, local);
    unknown.drop_reason = 77;
    assert_eq!(
        d.tcp(&unknown).unwrap().drop_reason.as_deref(),
        Some("REASON_77")
    );
    assert!(d.tcp(&tcp(9, local, remote)).is_none());
}

#[test]
fn syscalls_are_named() {
    let d = decoder();
    let e = abi::SyscallEvent {
        ts_ns: 10,
        latency_ns: 3_000,
        ret: 0,
        pid: 42,
        tid: 43,
        syscall_nr: 44,
        pad: 0,
    };
    let s = d.syscall(&e);
    assert_eq!(
        (s.syscall.as_str(), s.pid, s.node, s.latency_ns),
        ("sendto", 42, 99, 3_000)
    );
    assert_eq!(syscall_name(288), "accept4");
    assert_eq!(tcp_state_name(-1), "STATE_-1");
}

#[test]
fn drop_reasons_come_from_the_tracepoint_format() {
    let format = r#"print fmt: "skbaddr=%p reason: %s", REC->skbaddr, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 117, "MAX" })"#;
    let reasons = parse_drop_reasons(format);
    assert_eq!(reasons.get(&3).map(String::as_str), Some("NO_SOCKET"));
    assert_eq!(reasons.len(), 3);
    assert!(parse_drop_reasons("nothing").is_empty());
}
