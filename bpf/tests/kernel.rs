//! Loads `meshflow.bpf.o` into the running kernel with aya: every program must pass the
//! verifier, XDP and TC run on crafted packets (`BPF_PROG_TEST_RUN`), ring-buffer
//! wake-ups are batched, and the syscall and drop programs see this process's own
//! `connect()` to a closed port.
//!
//! Needs root and `/sys/kernel/btf/vmlinux`, and mounts tracefs if it is missing. Where
//! any of that is unavailable each test fails, saying what is needed: none skips.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::{BtfTracePoint, SchedClassifier, TestRun, TestRunOptions, TracePoint, Xdp};
use aya::{Btf, Ebpf, EbpfLoader};
use meshflow_bpf::*;

const TRACEFS: &str = "/sys/kernel/tracing";

/// Panics, naming what is missing, unless this process is root on a kernel with BTF.
fn require_kernel() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false);
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    assert!(
        root && btf,
        "the kernel tests load eBPF programs: they need root (effective uid 0; root={root}) \
         and kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=y; btf={btf}). \
         Run them as root: sudo -E cargo test -p meshflow-bpf --test kernel"
    );
}

/// Mounts tracefs at /sys/kernel/tracing unless it is there; panics if that fails.
fn require_tracefs() {
    let events = Path::new(TRACEFS).join("events");
    if events.is_dir() {
        return;
    }
    let out = Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .output()
        .unwrap_or_else(|e| panic!("tracefs is not mounted and `mount` cannot run: {e}"));
    assert!(
        out.status.success() && events.is_dir(),
        "tracefs is not mounted at {TRACEFS} and `mount -t tracefs nodev {TRACEFS}` failed \
         ({}): {}; the inet_sock_set_state tracepoint needs it",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn load_with_wakeup(export_ns: u64, sample_every: u32, tgid: u32, wakeup: u64) -> Ebpf {
    EbpfLoader::new()
        .override_global(GLOBAL_FLOW_EXPORT_NS, &export_ns, true)
        .override_global(GLOBAL_XDP_SAMPLE_EVERY, &sample_every, true)
        .override_global(GLOBAL_TARGET_TGID, &tgid, true)
        .override_global(GLOBAL_WAKEUP_BYTES, &wakeup, true)
        .load(OBJECT)
        .expect("aya parses and loads the object's maps")
}

fn load(export_ns: u64, sample_every: u32, tgid: u32) -> Ebpf {
    load_with_wakeup(export_ns, sample_every, tgid, DEFAULT_WAKEUP_BYTES)
}

fn eth_ipv4_tcp(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let tot_len = (20 + 20 + payload) as u16;
    p.extend_from_slice(&[0x45, 0, (tot_len >> 8) as u8, tot_len as u8, 0, 1, 0x40, 0]);
    p.extend_from_slice(&[64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.resize(p.len() + payload, b'x');
    p
}

fn mapped(v4: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&v4);
    a
}

fn drain<T: aya::Pod>(rb: &mut RingBuf<&mut MapData>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(item) = rb.next() {
        out.push(read_record::<T>(&item).expect("record size"));
    }
    out
}

#[test]
fn every_program_passes_the_verifier() {
    require_kernel();
    let mut ebpf = load(1_000_000_000, 0, 0);
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let xdp: &mut Xdp = ebpf.program_mut(PROG_XDP).unwrap().try_into().unwrap();
    xdp.load().expect("mf_xdp verifies");
    for name in [PROG_TC_INGRESS, PROG_TC_EGRESS] {
        let tc: &mut SchedClassifier = ebpf.program_mut(name).unwrap().try_into().unwrap();
        tc.load()
            .unwrap_or_else(|e| panic!("{name} verifies: {e:?}"));
    }
    for name in [PROG_TCP_RETRANSMIT, PROG_SOCK_STATE] {
        let tp: &mut TracePoint = ebpf.program_mut(name).unwrap().try_into().unwrap();
        tp.load()
            .unwrap_or_else(|e| panic!("{name} verifies: {e:?}"));
    }
    for (name, tp) in [
        (PROG_KFREE_SKB, BTF_TP_KFREE_SKB),
        (PROG_SYS_ENTER, BTF_TP_SYS_ENTER),
        (PROG_SYS_EXIT, BTF_TP_SYS_EXIT),
    ] {
        let p: &mut BtfTracePoint = ebpf.program_mut(name).unwrap().try_into().unwrap();
        p.load(tp, &btf)
            .unwrap_or_else(|e| panic!("{name} verifies: {e:?}"));
    }
    assert_eq!(ebpf.programs().count(), 8);
}

#[test]
fn xdp_counts_and_samples_crafted_frames() {
    require_kernel();
    let mut ebpf = load(1_000_000_000, 1, 0);
    let xdp: &mut Xdp = ebpf.program_mut(PROG_XDP).unwrap().try_into().unwrap();
    xdp.load().unwrap();
    let pkt = eth_ipv4_tcp(1234, 80, 0x18, 20);
    // Ethernet says IPv4 but only 6 bytes follow: truncated, counted as L3 unknown.
    let mut short = pkt[..20].to_vec();
    short[14] = 0x45;
    for data in [&pkt[..], &pkt[..], &short[..]] {
        let r = xdp
            .test_run(TestRunOptions {
                data_in: Some(data),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r.return_value, 2, "XDP_PASS");
    }

    let stats: PerCpuHashMap<_, XdpKey, XdpVal> =
        PerCpuHashMap::try_from(ebpf.map(MAP_XDP_STATS).unwrap()).unwrap();
    let mut seen = Vec::new();
    for entry in stats.iter() {
        let (k, per_cpu) = entry.unwrap();
        let packets: u64 = per_cpu.iter().map(|v| v.packets).sum();
        let bytes: u64 = per_cpu.iter().map(|v| v.bytes).sum();
        seen.push((k.l3, k.l4, packets, bytes));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![(L3_UNKNOWN, 0, 1, 20), (0x0800, 6, 2, 2 * pkt.len() as u64)]
    );

    let mut rb = RingBuf::try_from(ebpf.map_mut(MAP_SAMPLES).unwrap()).unwrap();
    let samples: Vec<FlowEvent> = drain(&mut rb);
    assert_eq!(samples.len(), 3, "sample_every = 1 samples every frame");
    let s = samples[0];
    assert_eq!(s.reason, REASON_SAMPLE);
    assert_eq!(
        (s.key.sport, s.key.dport, s.key.proto, s.key.family),
        (1234, 80, 6, AF_INET)
    );
    assert_eq!(s.key.src, mapped([10, 0, 0, 1]));
    assert_eq!(s.key.dst, mapped([10, 0, 0, 2]));
    assert_eq!(
        (s.val.packets, s.val.bytes, s.val.tcp_flags),
        (1, pkt.len() as u64, 0x18)
    );

    // Overfill the 16 MiB ring (112 bytes a record): every sample is delivered or counted lost.
    let xdp: &mut Xdp = ebpf.program_mut(PROG_XDP).unwrap().try_into().unwrap();
    let repeat = 200_000;
    xdp.test_run(TestRunOptions {
        data_in: Some(&pkt),
        repeat,
        ..Default::default()
    })
    .unwrap();
    let mut rb = RingBuf::try_from(ebpf.map_mut(MAP_SAMPLES).unwrap()).unwrap();
    let delivered = drain::<FlowEvent>(&mut rb).len() as u64;
    let lost_map: PerCpuArray<_, u64> = PerCpuArray::try_from(ebpf.map(MAP_LOST).unwrap()).unwrap();
    let lost: u64 = lost_map.get(&PROG_ID_XDP, 0).unwrap().iter().sum();
    assert!(lost > 0, "ring overfilled");
    assert_eq!(delivered + lost, u64::from(repeat));
}

/// Blocks in `poll(2)` on `fd` until it is readable (or 10 s pass), then reports
/// `(poll's return value, revents)` on the channel.
fn poller(fd: i32) -> mpsc::Receiver<(i32, i16)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the ring buffer's fd outlives the 10 s wait.
        let rc = unsafe { libc::poll(&mut pfd, 1, 10_000) };
        let _ = tx.send((rc, pfd.revents));
    });
    rx
}

#[test]
fn ring_buffer_wakes_the_reader_only_once_wakeup_bytes_wait() {
    require_kernel();
    // A sample takes 112 bytes of ring (8 header + 104): wake once 64 of them wait.
    let wakeup = 64 * 112;
    let mut ebpf = load_with_wakeup(1_000_000_000, 1, 0, wakeup);
    let xdp: &mut Xdp = ebpf.program_mut(PROG_XDP).unwrap().try_into().unwrap();
    xdp.load().unwrap();
    let pkt = eth_ipv4_tcp(1234, 80, 0x10, 20);
    let mut rb = RingBuf::try_from(ebpf.take_map(MAP_SAMPLES).unwrap()).unwrap();
    let run = |ebpf: &mut Ebpf, repeat: u32| {
        let xdp: &mut Xdp = ebpf.program_mut(PROG_XDP).unwrap().try_into().unwrap();
        xdp.test_run(TestRunOptions {
            data_in: Some(&pkt),
            repeat,
            ..Default::default()
        })
        .unwrap();
    };

    let woken = poller(rb.as_raw_fd());
    std::thread::sleep(Duration::from_millis(200)); // the poller is asleep in poll()
    run(&mut ebpf, 10);
    assert!(
        woken.recv_timeout(Duration::from_millis(500)).is_err(),
        "10 records (1120 bytes) below wakeup_bytes ({wakeup}) must not wake the reader"
    );
    run(&mut ebpf, 100);
    let (rc, revents) = woken
        .recv_timeout(Duration::from_secs(5))
        .expect("crossing wakeup_bytes wakes the reader");
    assert_eq!((rc, revents & libc::POLLIN), (1, libc::POLLIN));
    let mut delivered = 0;
    while rb.next().is_some() {
        delivered += 1;
    }
    assert_eq!(delivered, 110, "nothing is held back, only the wake-up");
}

#[test]
fn tc_aggregates_flows_and_exports_on_fin_and_interval() {
    require_kernel();
    let run = |tc: &SchedClassifier, data: &[u8]| {
        let r = tc
            .test_run(TestRunOptions {
                data_in: Some(data),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r.return_value as i32, TC_RETURN);
    };

    // Default 1 s interval: two ACKs then a FIN make one END record of three packets.
    let mut ebpf = load(1_000_000_000, 0, 0);
    let tc: &mut SchedClassifier = ebpf
        .program_mut(PROG_TC_EGRESS)
        .unwrap()
        .try_into()
        .unwrap();
    tc.load().unwrap();
    let ack = eth_ipv4_tcp(40000, 443, 0x10, 100);
    let fin = eth_ipv4_tcp(40000, 443, 0x11, 0);
    run(tc, &ack);
    run(tc, &ack);
    {
        let table: HashMap<_, FlowKey, FlowVal> =
            HashMap::try_from(ebpf.map(MAP_FLOW_TABLE).unwrap()).unwrap();
        let entries: Vec<_> = table.iter().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 1);
        let (k, v) = entries[0];
        assert_eq!(
            (k.sport, k.dport, k.proto, k.dir),
            (40000, 443, 6, DIR_EGRESS)
        );
        assert_eq!((v.packets, v.bytes), (2, 2 * ack.len() as u64));
    }
    let tc: &mut SchedClassifier = ebpf
        .program_mut(PROG_TC_EGRESS)
        .unwrap()
        .try_into()
        .unwrap();
    run(tc, &fin);
    let table: HashMap<_, FlowKey, FlowVal> =
        HashMap::try_from(ebpf.map(MAP_FLOW_TABLE).unwrap()).unwrap();
    assert_eq!(table.keys().count(), 0, "FIN deletes the entry");
    let mut rb = RingBuf::try_from(ebpf.map_mut(MAP_FLOWS).unwrap()).unwrap();
    let events: Vec<FlowEvent> = drain(&mut rb);
    assert_eq!(events.len(), 1);
    let e = events[0];
    assert_eq!(e.reason, REASON_END);
    assert_eq!(
        (e.val.packets, e.val.bytes),
        (3, 2 * ack.len() as u64 + fin.len() as u64)
    );
    assert_eq!(e.val.tcp_flags, TCP_ACK | TCP_FIN);
    assert_eq!(e.key.family, AF_INET);

    // Interval 0: every packet after the first exports the pending delta; deltas add up.
    let mut ebpf = load(0, 0, 0);
    let tc: &mut SchedClassifier = ebpf
        .program_mut(PROG_TC_INGRESS)
        .unwrap()
        .try_into()
        .unwrap();
    tc.load().unwrap();
    for _ in 0..3 {
        run(tc, &ack);
    }
    let mut rb = RingBuf::try_from(ebpf.map_mut(MAP_FLOWS).unwrap()).unwrap();
    let events: Vec<FlowEvent> = drain(&mut rb);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.reason == REASON_INTERVAL));
    assert!(events.iter().all(|e| e.key.dir == DIR_INGRESS));
    assert_eq!(events.iter().map(|e| e.val.packets).sum::<u64>(), 3);
    assert!(events[1].val.last_export_ns >= events[0].val.last_export_ns);
}

#[test]
fn own_connect_to_a_closed_port_is_traced() {
    require_kernel();
    let mut ebpf = load(1_000_000_000, 0, std::process::id());
    let btf = Btf::from_sys_fs().unwrap();
    for (name, tp) in [
        (PROG_SYS_ENTER, BTF_TP_SYS_ENTER),
        (PROG_SYS_EXIT, BTF_TP_SYS_EXIT),
        (PROG_KFREE_SKB, BTF_TP_KFREE_SKB),
    ] {
        let p: &mut BtfTracePoint = ebpf.program_mut(name).unwrap().try_into().unwrap();
        p.load(tp, &btf).unwrap();
        p.attach().unwrap();
    }
    // The classic tracepoint needs tracefs (tp_btf programs do not).
    require_tracefs();
    let tp: &mut TracePoint = ebpf
        .program_mut(PROG_SOCK_STATE)
        .unwrap()
        .try_into()
        .unwrap();
    tp.load().unwrap();
    tp.attach(TP_SOCK_STATE.0, TP_SOCK_STATE.1).unwrap();

    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped: the port is now closed
    let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    let mut sys_events: Vec<SyscallEvent> = Vec::new();
    let mut tcp_events: Vec<TcpEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        {
            let mut rb = RingBuf::try_from(ebpf.map_mut(MAP_SYSCALLS).unwrap()).unwrap();
            sys_events.extend(drain::<SyscallEvent>(&mut rb));
        }
        {
            let mut rb = RingBuf::try_from(ebpf.map_mut(MAP_TCP).unwrap()).unwrap();
            tcp_events.extend(
                drain::<TcpEvent>(&mut rb)
                    .into_iter()
                    .filter(|e| e.dport == port || e.sport == port),
            );
        }
        let connect = sys_events
            .iter()
            .any(|e| e.syscall_nr == SYS_CONNECT && e.ret == -111);
        let drop = tcp_events.iter().any(|e| e.kind == TCP_DROP);
        let states = tcp_events
            .iter()
            .any(|e| e.kind == TCP_STATE && e.dport == port);
        if (connect && drop && states) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let c = sys_events
        .iter()
        .find(|e| e.syscall_nr == SYS_CONNECT)
        .unwrap_or_else(|| panic!("no connect event in {sys_events:?}"));
    assert_eq!(c.ret, -111, "ECONNREFUSED");
    assert_eq!(c.pid, std::process::id());
    assert!(c.latency_ns > 0 && c.latency_ns < 5_000_000_000);
    assert!(sys_events.iter().all(|e| e.pid == std::process::id()));

    let d = tcp_events
        .iter()
        .find(|e| e.kind == TCP_DROP)
        .unwrap_or_else(|| panic!("no drop of the SYN in {tcp_events:?}"));
    assert_eq!((d.family, d.proto, d.dport), (2, 6, port));
    assert_eq!(d.daddr, mapped([127, 0, 0, 1]));
    assert!(d.drop_reason > 1, "a real drop reason, not SKB_CONSUMED");
    let s = tcp_events
        .iter()
        .find(|e| e.kind == TCP_STATE && e.dport == port) // not the listener's own
        .unwrap_or_else(|| panic!("no state change in {tcp_events:?}"));
    assert_eq!((s.family, s.proto, s.dport), (2, 6, port));
    assert_eq!((s.old_state, s.new_state), (7, 2), "CLOSE -> SYN_SENT");
}
