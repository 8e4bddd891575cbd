//! Traffic generators for `ebpf-ingest`: UDP datagrams with `sendmmsg` from a network
//! namespace, or `BPF_PROG_TEST_RUN` of the attached XDP program itself.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Datagrams handed to the kernel per `sendmmsg` call.
const BATCH: usize = 64;
/// Runs per `BPF_PROG_TEST_RUN` call of the test-run generator.
const TEST_RUN_CHUNK: u32 = 4096;
/// UDP payload: 18 bytes make a 60-byte frame, the Ethernet minimum.
pub const PAYLOAD: usize = 18;

/// What one generator thread did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// Packets (datagrams or test runs) the kernel accepted.
    pub packets: u64,
    /// CPU time of the thread (user + system), in seconds.
    pub cpu_s: f64,
}

/// Paces a thread to `rate` packets/s (0 = as fast as it can).
struct Pacer {
    rate: f64,
    start: Instant,
}

impl Pacer {
    fn wait(&self, done: u64) {
        if self.rate <= 0.0 {
            return;
        }
        let due = self.start + Duration::from_secs_f64(done as f64 / self.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Enters network namespace `ns` (a path) on this thread only.
fn enter_netns(ns: &str) -> anyhow::Result<()> {
    let file = File::open(ns).map_err(|e| anyhow::anyhow!("open {ns}: {e}"))?;
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    anyhow::ensure!(rc == 0, "setns {ns}: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Sends `PAYLOAD`-byte datagrams from `src` to `dst` with `sendmmsg`, from inside
/// namespace `ns`, at `rate` datagrams/s, until `stop` is set.
pub fn udp(
    ns: String,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<anyhow::Result<Sent>> {
    std::thread::spawn(move || {
        enter_netns(&ns)?;
        let sock = UdpSocket::bind(src)?;
        sock.connect(dst)?;
        let payload = [0x5au8; PAYLOAD];
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: PAYLOAD,
        };
        // SAFETY: mmsghdr is plain data; zeroed is a valid empty header.
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
            .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
            .collect();
        for m in &mut msgs {
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let cpu0 = thread_cpu_s();
        let pacer = Pacer {
            rate,
            start: Instant::now(),
        };
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            pacer.wait(sent);
            // SAFETY: BATCH valid headers, each pointing at the one live iovec (the
            // payload outlives the call); the socket is connected, so no address.
            let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOBUFS) {
                    continue; // the device queue is full: nothing was sent, retry
                }
                return Err(anyhow::anyhow!("sendmmsg: {e}"));
            }
            sent += n as u64;
        }
        Ok(Sent {
            packets: sent,
            cpu_s: thread_cpu_s() - cpu0,
        })
    })
}

/// `union bpf_attr` as `BPF_PROG_TEST_RUN` reads it (`struct { ... } test`).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Runs program `fd` `repeat` times on `frame` (`BPF_PROG_TEST_RUN`).
fn test_run(fd: BorrowedFd<'_>, frame: &[u8], repeat: u32) -> std::io::Result<()> {
    let mut attr = TestRunAttr {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: attr is a properly laid out, fully initialised bpf_attr prefix whose
    // unused tail is zero; the frame outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs the XDP program with id `prog_id` (meshflow's own, attached) on `frame` in
/// chunks, at `rate` runs/s, until `stop` is set. Each run is one packet to XDP.
pub fn test_runs(
    prog_id: u32,
    frame: Vec<u8>,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<anyhow::Result<Sent>> {
    std::thread::spawn(move || {
        let info = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .find(|p| p.id() == prog_id)
            .ok_or_else(|| anyhow::anyhow!("program {prog_id} is no longer loaded"))?;
        let fd = info.fd()?;
        let cpu0 = thread_cpu_s();
        let chunk = if rate > 0.0 {
            // About a millisecond of runs per call, so pacing stays smooth.
            ((rate / 1000.0) as u32).clamp(1, TEST_RUN_CHUNK)
        } else {
            TEST_RUN_CHUNK
        };
        let pacer = Pacer {
            rate,
            start: Instant::now(),
        };
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            pacer.wait(sent);
            test_run(fd.as_fd(), &frame, chunk)
                .map_err(|e| anyhow::anyhow!("BPF_PROG_TEST_RUN of program {prog_id}: {e}"))?;
            sent += u64::from(chunk);
        }
        Ok(Sent {
            packets: sent,
            cpu_s: thread_cpu_s() - cpu0,
        })
    })
}

/// `10.202.0.HOST:PORT`, in the benchmark's own subnet (inside its namespaces only).
pub fn addr(host: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 202, 0, host), port)
}
