//! `meshflow-bench ebpf-ingest`: how many kernel events per second the release
//! `meshflow run` takes from its ring buffers into the dataflow, with every event
//! accounted for.
//!
//! The benchmark makes two network namespaces joined by a veth pair (10.202.0.1 in the
//! sender, 10.202.0.2 in the receiver; nothing else is touched), starts `meshflow run`
//! with an eBPF source on the receiving veth in XDP sampling mode (`xdp_sample_every`,
//! default 1: one ring-buffer record, hence one one-packet flow, per packet), floods
//! it for a fixed time and reads meshflow's Parquet output once it has stopped by
//! itself (its `duration` ends [`SETTLE`] after the flood). Stopping on its own, the
//! source drains the rings and exports the counters one last time, and the job reads
//! that last batch; after a Ctrl-C the job stops reading sources at once. It counts:
//!
//! * sent: packets the generator handed to the kernel;
//! * seen by XDP: the program's own counter (`xdp_rx_packets` in `node_metrics`);
//! * dropped before XDP: sent − seen, explained by the veth drop counters;
//! * delivered: rows of the `flows` table (one per sampled packet);
//! * lost: the kernel's count of records that found the ring full
//!   (`ebpf_lost_events{program=xdp}`);
//! * late: records the dataflow refused as late (meshflow's summary);
//! * unaccounted: seen / sample_every − delivered − lost − late (0 with sampling 1;
//!   within one per CPU otherwise, as each CPU counts its own 1-in-N).
//!
//! Generators: `udp` sends datagrams with `sendmmsg` from threads in the sending
//! namespace, addressed to a MAC the receiver does not own, so right after XDP its
//! stack drops them as `PACKET_OTHERHOST`, the cheapest receive path. `test-run` runs
//! meshflow's attached XDP program itself with `BPF_PROG_TEST_RUN`, which produces
//! events without the cost of a network stack and shows the limit of the ingest path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::flood::{self, Sent};
use crate::netns::Pair;
use crate::output::{self, Counts, Cpu};

/// Which traffic the benchmark makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// UDP datagrams over the veth pair (`sendmmsg`).
    Udp,
    /// `BPF_PROG_TEST_RUN` of meshflow's attached XDP program.
    TestRun,
}

/// Settings of one run.
#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Traffic generator.
    #[arg(long, value_enum, default_value_t = Generator::Udp)]
    pub generator: Generator,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Packets per second over all threads (0 = as fast as they can).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// How long to flood, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// XDP sampling: one packet in N becomes an event.
    #[arg(long, default_value_t = 1)]
    pub sample_every: u32,
    /// The eBPF source's `wakeup_bytes`.
    #[arg(long, default_value_t = 262_144)]
    pub wakeup_bytes: u64,
    /// Working folder (config and output).
    #[arg(long, default_value = "/tmp/meshflow-bench/ebpf-ingest")]
    pub dir: PathBuf,
}

/// A running `meshflow run`, killed if the benchmark fails first.
struct Job {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Job {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(["run", "--config", "ebpf.toml"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let rx = meshflow_integration::lines_of(child.stderr.take().expect("piped stderr"));
        Ok(Self {
            child,
            stderr: rx,
            seen: Vec::new(),
        })
    }

    fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        anyhow::bail!(
            "meshflow never printed `{needle}`; stderr:\n{}",
            self.seen.join("\n")
        )
    }

    /// Waits for a successful exit; returns stdout.
    fn finish(mut self, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "meshflow did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout)?;
        }
        self.seen.extend(self.stderr.try_iter());
        anyhow::ensure!(
            status.success(),
            "meshflow exited with {status}\n{stdout}\n{}",
            self.seen.join("\n")
        );
        Ok(stdout)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long meshflow runs on after the flood before its `duration` ends: more than
/// an export interval (1 s), so one periodic export also follows the flood.
const SETTLE: Duration = Duration::from_secs(3);

fn config(args: &IngestArgs, iface: &str) -> String {
    let duration_ms = ((args.seconds + SETTLE.as_secs_f64()) * 1000.0) as u64;
    format!(
        "[job]\nworkers = 1\n\n[window]\nlength = \"1s\"\nslide = \"1s\"\n\n\
         [sources.kernel]\ntype = \"ebpf\"\ninterfaces = [\"{iface}\"]\ntc = false\n\
         tcp = false\ndrops = false\nsyscalls = false\nxdp_sample_every = {}\n\
         wakeup_bytes = {}\nduration = \"{duration_ms}ms\"\n\n\
         [sinks.parquet]\npath = \"out\"\ninputs = true\n",
        args.sample_every, args.wakeup_bytes
    )
}

/// The id of the one XDP program process `pid` holds open (from its fdinfo).
fn xdp_prog_id(pid: u32) -> anyhow::Result<u32> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.to_string_lossy() != "anon_inode:bpf-prog" {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            entry.file_name().display()
        ))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        // BPF_PROG_TYPE_XDP = 6.
        if field("prog_type:") == Some(6) {
            ids.extend(field("prog_id:"));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    match ids[..] {
        [id] => Ok(id),
        _ => anyhow::bail!("expected one XDP program in meshflow (pid {pid}), found {ids:?}"),
    }
}

/// Runs the benchmark once and prints its tables.
pub fn run(args: &IngestArgs) -> anyhow::Result<()> {
    crate::require_root("ebpf-ingest")?;
    anyhow::ensure!(args.senders > 0, "--senders must be at least 1");
    anyhow::ensure!(args.sample_every > 0, "--sample-every must be at least 1");
    let bin = crate::meshflow_bin()?;
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let pair = Pair::new()?;
    std::fs::write(
        args.dir.join("ebpf.toml"),
        config(args, &pair.receiver_iface()),
    )?;

    let mut job = Job::start(&bin, &args.dir)?;
    job.wait_for("attached", Duration::from_secs(60))?;
    let pid = job.child.id();
    let drops_before = pair.veth_drops()?;
    let cpu_before = Cpu::of(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let per_thread = args.rate / args.senders as f64;
    let mut threads = Vec::new();
    for i in 0..args.senders {
        threads.push(match args.generator {
            Generator::Udp => flood::udp(
                pair.sender_ns_path(),
                flood::addr(1, 40000 + i as u16),
                flood::addr(2, 9),
                per_thread,
                stop.clone(),
            ),
            Generator::TestRun => flood::test_runs(
                xdp_prog_id(pid)?,
                crate::frames::ipv4_udp(),
                per_thread,
                stop.clone(),
            ),
        });
    }
    let started = Instant::now();
    let steal = crate::steal_ms();
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut sent = Sent::default();
    for t in threads {
        let s = t.join().expect("generator thread")?;
        sent.packets += s.packets;
        sent.cpu_s += s.cpu_s;
    }
    let flood_s = started.elapsed().as_secs_f64();
    let steal = crate::steal_ms() - steal;
    // Let the reader catch up (it drains at least every 20 ms) before reading its CPU.
    std::thread::sleep(Duration::from_millis(500));
    let cpu = Cpu::of(pid)?.since(&cpu_before);
    let drops = pair.veth_drops()? - drops_before;
    let stdout = job.finish(SETTLE + Duration::from_secs(300))?;

    let counts = Counts::read(&args.dir.join("out"), &stdout)?;
    output::print(args, &sent, flood_s, drops, &counts, &cpu);
    println!("\nCPU time taken by the hypervisor (steal) during the flood: {steal} ms");
    drop(pair);
    Ok(())
}
