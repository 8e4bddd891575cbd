//! `meshflow-bench ebpf-cost`: per-packet cost of the XDP and TC programs, measured by
//! the kernel with `BPF_PROG_TEST_RUN` on crafted frames.
//!
//! The kernel runs a program `repeat` times on one frame and reports the average time
//! of a run (it divides by `repeat` itself), which includes the test-run loop's own
//! overhead of a few ns. Each row is the best of `runs` such averages.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{Program, TestRun, TestRunOptions};
use aya::{Ebpf, EbpfLoader};
use meshflow_bpf as abi;

use crate::frames;

/// Records a 16 MiB ring holds (112 bytes each): runs that submit a record per packet
/// use fewer repeats than this and drain between runs, so none is lost.
const RING_RECORDS: u32 = abi::RINGBUF_BYTES / 112;
/// Repeats of the runs that write a ring-buffer record per packet.
const RECORD_REPEAT: u32 = 100_000;
const _: () = assert!(RECORD_REPEAT < RING_RECORDS);

/// One row of the table.
struct Row {
    program: &'static str,
    setting: String,
    frame: &'static str,
    repeat: u32,
    ns: u128,
    lost: u64,
}

fn load(export_ns: u64, sample_every: u32, wakeup_bytes: u64) -> anyhow::Result<Ebpf> {
    Ok(EbpfLoader::new()
        .override_global(abi::GLOBAL_FLOW_EXPORT_NS, &export_ns, true)
        .override_global(abi::GLOBAL_XDP_SAMPLE_EVERY, &sample_every, true)
        .override_global(abi::GLOBAL_WAKEUP_BYTES, &wakeup_bytes, true)
        .load(abi::OBJECT)?)
}

fn drain(ebpf: &mut Ebpf, map: &str) -> anyhow::Result<u64> {
    let mut rb = RingBuf::try_from(
        ebpf.map_mut(map)
            .ok_or_else(|| anyhow::anyhow!("map {map} missing"))?,
    )?;
    let mut n = 0;
    while rb.next().is_some() {
        n += 1;
    }
    Ok(n)
}

fn lost(ebpf: &Ebpf, prog_id: u32) -> anyhow::Result<u64> {
    let map: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
        ebpf.map(abi::MAP_LOST)
            .ok_or_else(|| anyhow::anyhow!("map mf_lost missing"))?,
    )?;
    Ok(map.get(&prog_id, 0)?.iter().sum())
}

/// The kernel-measured average ns of one run of program `name` (XDP or TC) on `frame`.
fn test_run(ebpf: &mut Ebpf, name: &str, frame: &[u8], repeat: u32) -> anyhow::Result<u128> {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..Default::default()
    };
    let r = match ebpf.program_mut(name) {
        Some(Program::Xdp(p)) => p.test_run(opts)?,
        Some(Program::SchedClassifier(p)) => p.test_run(opts)?,
        _ => anyhow::bail!("{name} is not an XDP or TC program of the object"),
    };
    Ok(r.duration.as_nanos())
}

/// Best of `runs` averages of `name` on `frame`, draining `ring` after each run if set.
fn best(
    ebpf: &mut Ebpf,
    name: &str,
    frame: &[u8],
    repeat: u32,
    runs: usize,
    ring: Option<&str>,
) -> anyhow::Result<u128> {
    let mut best = u128::MAX;
    for _ in 0..runs.max(1) {
        best = best.min(test_run(ebpf, name, frame, repeat)?);
        if let Some(ring) = ring {
            drain(ebpf, ring)?;
        }
    }
    Ok(best)
}

/// Loads program `name` (XDP or TC) into the kernel.
fn load_program(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    match ebpf.program_mut(name) {
        Some(Program::Xdp(p)) => p.load()?,
        Some(Program::SchedClassifier(p)) => p.load()?,
        _ => anyhow::bail!("{name} is not an XDP or TC program of the object"),
    }
    Ok(())
}

/// Runs the cost table and prints it as Markdown.
pub fn run(repeat: u32, runs: usize) -> anyhow::Result<()> {
    crate::require_root("ebpf-cost")?;
    let frames = frames::all();
    let udp = frames::ipv4_udp();
    let fin = frames::ipv4_tcp(0x11);
    let mut rows = Vec::new();
    let steal = crate::steal_ms();

    let mut ebpf = load(1_000_000_000, 0, abi::DEFAULT_WAKEUP_BYTES)?;
    load_program(&mut ebpf, abi::PROG_XDP)?;
    for (label, frame) in &frames {
        let ns = best(&mut ebpf, abi::PROG_XDP, frame, repeat, runs, None)?;
        rows.push(Row {
            program: abi::PROG_XDP,
            setting: "counters only".into(),
            frame: label,
            repeat,
            ns,
            lost: 0,
        });
    }
    for name in [abi::PROG_TC_EGRESS, abi::PROG_TC_INGRESS] {
        let mut ebpf = load(1_000_000_000, 0, abi::DEFAULT_WAKEUP_BYTES)?;
        load_program(&mut ebpf, name)?;
        for (label, frame) in &frames {
            let ns = best(&mut ebpf, name, frame, repeat, runs, Some(abi::MAP_FLOWS))?;
            rows.push(Row {
                program: name,
                setting: "steady flow, 1 s export".into(),
                frame: label,
                repeat,
                ns,
                lost: lost(&ebpf, abi::PROG_ID_TC)?,
            });
        }
    }

    // A ring-buffer record per packet: XDP sampling every packet, and TC seeing only
    // FINs of unknown flows (each reported at once, nothing stored). Nothing drains
    // the ring during a run, so it crosses the default wakeup_bytes once, early.
    for (name, setting, frame, label, ring, id) in [
        (
            abi::PROG_XDP,
            "xdp_sample_every = 1: a record per packet",
            &udp,
            "IPv4 UDP",
            abi::MAP_SAMPLES,
            abi::PROG_ID_XDP,
        ),
        (
            abi::PROG_TC_EGRESS,
            "FIN of an unknown flow: a record per packet",
            &fin,
            "IPv4 TCP FIN",
            abi::MAP_FLOWS,
            abi::PROG_ID_TC,
        ),
    ] {
        let mut ebpf = load(1_000_000_000, 1, abi::DEFAULT_WAKEUP_BYTES)?;
        load_program(&mut ebpf, name)?;
        let ns = best(&mut ebpf, name, frame, RECORD_REPEAT, runs, Some(ring))?;
        rows.push(Row {
            program: name,
            setting: setting.into(),
            frame: label,
            repeat: RECORD_REPEAT,
            ns,
            lost: lost(&ebpf, id)?,
        });
    }

    println!("| program | setting | frame | repeat | ns/packet (best of {runs}) | lost records |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.program, r.setting, r.frame, r.repeat, r.ns, r.lost
        );
    }
    println!(
        "\nCPU time taken by the hypervisor (steal) during the measurements: {} ms",
        crate::steal_ms() - steal
    );
    Ok(())
}
