//! eBPF end to end, as root: a mesh of three network namespaces, known traffic, and
//! what meshflow wrote, read back with pyarrow.
//!
//! These tests need root (or CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON), iproute2 and
//! nftables. They fail, loudly, where BPF cannot be loaded: they never skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use meshflow_integration::netns::{End, Mesh, in_netns, sh};
use meshflow_integration::{lines_of, meshflow_bin, python_json};
use serde_json::Value;

const UDP_DATAGRAMS: u64 = 300;
const UDP_PAYLOAD: usize = 400;
/// Datagrams sent just before the Ctrl-C of the detach test.
const CTRL_C_DATAGRAMS: u64 = 100;
const TCP_CONNECTIONS: u64 = 5;
const BULK_BYTES: usize = 400_000;

/// A running `meshflow run`, killed if the test fails before it exits.
struct Job {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Job {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(meshflow_bin())
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start meshflow");
        let rx = lines_of(child.stderr.take().expect("stderr"));
        Self {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; panics with what was seen.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "meshflow never printed `{needle}`; stderr:\n{}",
            self.seen.join("\n")
        );
    }

    /// Waits for exit; returns (success, stdout, stderr).
    fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "meshflow did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        self.seen.extend(self.stderr.try_iter());
        (status.success(), stdout, self.seen.join("\n"))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(ends: &[&End], nodes: &[(&End, u64)], extra: &str) -> String {
    let interfaces: Vec<String> = ends
        .iter()
        .map(|e| format!("\"{}\"", e.qualified()))
        .collect();
    let mut text = format!(
        "[window]\nlength = \"1s\"\nslide = \"1s\"\n\n[sources.kernel]\ntype = \"ebpf\"\n\
         interfaces = [{}]\ndirections = [\"ingress\", \"egress\"]\nexport_interval = \"500ms\"\n\
         syscall_pid = {}\n{extra}\n[sources.kernel.nodes]\n",
        interfaces.join(", "),
        std::process::id()
    );
    for (end, node) in nodes {
        text.push_str(&format!("\"{}\" = {node}\n", end.ip));
    }
    text.push_str("\n[sinks.parquet]\npath = \"out\"\ninputs = true\n");
    text
}

/// Sums and counts over the output tables, computed by pyarrow.
const READ_OUTPUT: &str = r#"
import sys, json, ipaddress, pyarrow as pa, pyarrow.dataset as ds
out = sys.argv[1]
def table(name):
    t = ds.dataset(f"{out}/{name}", format="parquet", partitioning="hive").to_table()
    # Timestamps are ns; as plain integers they need no pandas.
    for i, f in enumerate(t.schema):
        if pa.types.is_timestamp(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.int64()))
    return t.to_pylist()
def ip(b):
    a = ipaddress.IPv6Address(bytes(b))
    return str(a.ipv4_mapped or a)
flows = table("flows")
for f in flows:
    f["src_ip"], f["dst_ip"] = ip(f["src_ip"]), ip(f["dst_ip"])
tcp = table("tcp_events")
for t in tcp:
    t["src_ip"], t["dst_ip"] = ip(t["src_ip"]), ip(t["dst_ip"])
metrics = table("node_metrics")
sys_rows = table("syscall_latency")
def flows_between(src, dst, proto, dport):
    return [f for f in flows if f["src_ip"] == src and f["dst_ip"] == dst and f["protocol"] == proto and f["dst_port"] == dport]
def metric_max(name):
    vals = [m["value"] for m in metrics if m["metric"] == name]
    return max(vals) if vals else None
udp = flows_between(*sys.argv[2:4], 17, 9000)
conn = flows_between(*sys.argv[4:6], 6, 9100)
bulk = flows_between(*sys.argv[8:10], 6, 9200)
ports = {}
for f in conn:
    ports[f["src_port"]] = ports.get(f["src_port"], 0) | f["tcp_flags"]
established = [t for t in tcp if t["kind"] == "state_change" and t["new_state"] == "ESTABLISHED"
               and t["src_ip"] == sys.argv[4] and t["dst_port"] == 9100]
retrans = {}
for t in tcp:
    if t["kind"] == "retransmit":
        retrans[t["src_ip"]] = retrans.get(t["src_ip"], 0) + 1
drops = sorted({t["drop_reason"] for t in tcp if t["kind"] == "drop"})
lost = {m["metric"]: m["value"] for m in metrics if m["metric"].startswith("ebpf_lost_events")}
features = table("node_features")
bytes_out = {}
for r in features:
    bytes_out[r["node"]] = bytes_out.get(r["node"], 0) + r["bytes_out"]
print(json.dumps({
    "udp_packets": sum(f["packets"] for f in udp),
    "udp_bytes": sum(f["bytes"] for f in udp),
    "bulk_packets": sum(f["packets"] for f in bulk),
    "bulk_bytes": sum(f["bytes"] for f in bulk),
    "tcp_ports": len(ports),
    "tcp_flags": sorted(set(ports.values())),
    "established": len(established),
    "established_srtt": sum(1 for t in established if t["srtt_us"]),
    "retransmits": retrans,
    "drop_reasons": drops,
    "loopback_events": sum(1 for t in tcp if t["src_ip"].startswith("127.") or t["dst_ip"].startswith("127.")),
    "lost": lost,
    "xdp_udp": metric_max(sys.argv[6]),
    "sendto": sum(1 for s in sys_rows if s["syscall"] == "sendto" and s["pid"] == int(sys.argv[7])),
    "bytes_out": {str(k): v for k, v in bytes_out.items()},
}))
"#;

/// The tests load programs and check that none are left: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn loaded_programs() -> String {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool (apt-get install bpftool)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Programs are freed once their last reference closes; allow the kernel a moment.
fn assert_no_programs_left() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let progs = loaded_programs();
        if !progs.contains("name mf_") {
            return;
        }
        assert!(Instant::now() < deadline, "programs left behind:\n{progs}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn known_traffic_on_a_namespace_mesh_is_reported_exactly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mesh, ns) = Mesh::new(&["a", "b", "c"]);
    let (ab_a, ab_b) = mesh.link(&ns[0], &ns[1], 1);
    let (ac_a, ac_c) = mesh.link(&ns[0], &ns[2], 2);
    let (bc_b, bc_c) = mesh.link(&ns[1], &ns[2], 3);
    // 20% loss on link b–c: c drops every fifth packet b sends it. Counted, not
    // random: with GSO a 400 kB transfer is few packets, and a random 20% sometimes
    // dropped none of them, so nothing was retransmitted.
    mesh.nft(&ns[2], "add table inet mf");
    mesh.nft(
        &ns[2],
        "add chain inet mf input { type filter hook input priority 0 ; }",
    );
    mesh.nft(
        &ns[2],
        &format!(
            "add rule inet mf input ip saddr {} numgen inc mod 5 == 4 drop",
            bc_b.ip
        ),
    );

    let dir = tempfile::tempdir().unwrap();
    let nodes = [
        (&ab_a, 1),
        (&ac_a, 1),
        (&ab_b, 2),
        (&bc_b, 2),
        (&ac_c, 3),
        (&bc_c, 3),
    ];
    std::fs::write(
        dir.path().join("ebpf.toml"),
        config(&[&ab_a, &ac_a, &bc_b], &nodes, "duration = \"14s\""),
    )
    .unwrap();
    let mut job = Job::start(dir.path(), &["run", "--config", "ebpf.toml"]);
    job.wait_for("attached", Duration::from_secs(60));

    // Link a–b: exactly N UDP datagrams of S bytes, b → a.
    let (a_ip, b_ip) = (ab_a.ip.clone(), ab_b.ip.clone());
    let receiver = in_netns(&ns[0], move || {
        let sock = UdpSocket::bind((a_ip.as_str(), 9000)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        let mut got = 0;
        while got < UDP_DATAGRAMS && sock.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    std::thread::sleep(Duration::from_millis(200));
    let (a_ip, b_src) = (ab_a.ip.clone(), b_ip.clone());
    in_netns(&ns[1], move || {
        let sock = UdpSocket::bind((b_src.as_str(), 0)).unwrap();
        let payload = [7u8; UDP_PAYLOAD];
        for i in 0..UDP_DATAGRAMS {
            sock.send_to(&payload, (a_ip.as_str(), 9000)).unwrap();
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    })
    .join()
    .unwrap();
    assert_eq!(
        receiver.join().unwrap(),
        UDP_DATAGRAMS,
        "the datagrams crossed a–b"
    );

    // Link a–c: K TCP connections, c → a.
    let a_ip = ac_a.ip.clone();
    let listener = in_netns(&ns[0], move || {
        let l = TcpListener::bind((a_ip.as_str(), 9100)).unwrap();
        for _ in 0..TCP_CONNECTIONS {
            let (mut s, _) = l.accept().unwrap();
            let mut sink = Vec::new();
            s.read_to_end(&mut sink).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let a_ip = ac_a.ip.clone();
    in_netns(&ns[2], move || {
        for _ in 0..TCP_CONNECTIONS {
            let mut s = TcpStream::connect((a_ip.as_str(), 9100)).unwrap();
            s.write_all(&[1u8; 1000]).unwrap();
            s.shutdown(std::net::Shutdown::Both).unwrap();
        }
    })
    .join()
    .unwrap();
    listener.join().unwrap();

    // Link b–c, with 20% loss: a bulk transfer b → c must retransmit.
    let c_ip = bc_c.ip.clone();
    let sink = in_netns(&ns[2], move || {
        let l = TcpListener::bind((c_ip.as_str(), 9200)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len()
    });
    std::thread::sleep(Duration::from_millis(200));
    let c_ip = bc_c.ip.clone();
    in_netns(&ns[1], move || {
        let mut s = TcpStream::connect((c_ip.as_str(), 9200)).unwrap();
        s.write_all(&vec![3u8; BULK_BYTES]).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(sink.join().unwrap(), BULK_BYTES);

    // TCP on this host's loopback, outside the mesh: a connection with
    // data, and one to a closed port (a drop). The tracepoints must not report them.
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = local.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut server, _) = local.accept().unwrap();
    client.write_all(&[5u8; 10_000]).unwrap();
    client.shutdown(std::net::Shutdown::Both).unwrap();
    let mut sink = Vec::new();
    server.read_to_end(&mut sink).unwrap();
    drop(local);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let (ok, stdout, stderr) = job.finish(Duration::from_secs(60));
    assert!(ok, "meshflow failed:\n{stdout}\n{stderr}");

    let out = dir.path().join("out");
    let xdp_metric = format!(
        "xdp_rx_packets{{iface={},l3=ipv4,l4=udp}}",
        ab_a.qualified()
    );
    let pid = std::process::id().to_string();
    let got = python_json(
        READ_OUTPUT,
        &[
            &out,
            Path::new(&ab_b.ip),
            Path::new(&ab_a.ip),
            Path::new(&ac_c.ip),
            Path::new(&ac_a.ip),
            Path::new(&xdp_metric),
            Path::new(&pid),
            Path::new(&bc_b.ip),
            Path::new(&bc_c.ip),
        ],
    );
    let n = UDP_DATAGRAMS;
    // skb->len at TC counts the Ethernet, IPv4 and UDP headers: 14 + 20 + 8.
    assert_eq!(got["udp_packets"], n, "{got}");
    assert_eq!(got["udp_bytes"], n * (UDP_PAYLOAD as u64 + 42), "{got}");
    assert_eq!(got["xdp_udp"].as_f64(), Some(n as f64), "{got}");
    // Packets are wire packets: a GSO batch of the bulk transfer counts its segments,
    // so none is credited with more than a 1500-byte MTU frame (plus Ethernet).
    let bulk_bytes = got["bulk_bytes"].as_u64().unwrap();
    assert!(bulk_bytes >= BULK_BYTES as u64, "{got}");
    assert!(
        got["bulk_packets"].as_u64().unwrap() * 1514 >= bulk_bytes,
        "{got}"
    );
    assert_eq!(got["tcp_ports"], TCP_CONNECTIONS, "{got}");
    // Every connection was seen opening (SYN) and closing (FIN).
    for flags in got["tcp_flags"].as_array().unwrap() {
        assert_eq!(flags.as_u64().unwrap() & 0x03, 0x03, "{got}");
    }
    assert_eq!(got["established"], TCP_CONNECTIONS, "{got}");
    assert!(got["established_srtt"].as_u64().unwrap() > 0, "{got}");
    let retrans = got["retransmits"].as_object().unwrap();
    assert!(
        retrans.get(&bc_b.ip).and_then(Value::as_u64).unwrap_or(0) > 0,
        "retransmits on the lossy link: {got}"
    );
    // Both ends of b–c may retransmit (c's SYN-ACK or FIN when b's ACK is lost); the
    // addresses on the other links never do.
    for quiet in [&ab_a, &ab_b, &ac_a, &ac_c] {
        assert!(
            !retrans.contains_key(&quiet.ip),
            "no retransmits from {} (not on the lossy link): {got}",
            quiet.ip
        );
    }
    let reasons = got["drop_reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("NETFILTER")),
        "nft drops are reported with their reason: {got}"
    );
    assert_eq!(
        got["loopback_events"], 0,
        "the host's own loopback traffic is outside the mesh: {got}"
    );
    assert!(
        stderr.contains("TCP events and drops: those with an end at one of 6 mesh addresses"),
        "the start-up line says what the tracepoints report: {stderr}"
    );
    let lost = got["lost"].as_object().unwrap();
    assert_eq!(lost.len(), 5, "a loss counter per program: {got}");
    assert!(lost.values().all(|v| v.as_f64() == Some(0.0)), "{got}");
    assert!(got["sendto"].as_u64().unwrap() >= n, "{got}");
    let bytes_out = &got["bytes_out"];
    assert!(
        bytes_out["2"].as_u64().unwrap() >= BULK_BYTES as u64,
        "{got}"
    );
    assert!(stdout.contains("windows closed"), "{stdout}");
    eprintln!("{got}\n{stdout}");

    // Nothing is left attached.
    for end in [&ab_a, &ac_a, &bc_b] {
        let out = Command::new("ip")
            .args(["-n", &end.ns, "-d", "link", "show", &end.iface])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("xdp"),
            "XDP left on {}: {text}",
            end.qualified()
        );
    }
    assert_no_programs_left();
}

#[test]
fn without_privileges_it_says_what_is_missing_and_ctrl_c_detaches() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mesh, ns) = Mesh::new(&["p", "q"]);
    let (pq_p, pq_q) = mesh.link(&ns[0], &ns[1], 9);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ebpf.toml"), config(&[&pq_p], &[], "")).unwrap();

    // Root without capabilities: refused at start-up, naming what is missing.
    let out = Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all"])
        .arg(meshflow_bin())
        .args(["run", "--config", "ebpf.toml"])
        .current_dir(dir.path())
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for cap in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"] {
        assert!(stderr.contains(cap), "{stderr}");
    }

    // With privileges and no duration, Ctrl-C stops it cleanly and detaches, after
    // delivering what the kernel still holds: with a 60 s export interval, these
    // datagrams' flow is still in the kernel's table when Ctrl-C arrives.
    let slow_export = config(&[&pq_p], &[], "")
        .replace("export_interval = \"500ms\"", "export_interval = \"60s\"");
    std::fs::write(dir.path().join("ebpf.toml"), slow_export).unwrap();
    let mut job = Job::start(dir.path(), &["run", "--config", "ebpf.toml"]);
    job.wait_for("attached", Duration::from_secs(60));
    assert!(
        loaded_programs().contains("mf_tc_egress"),
        "loaded while running"
    );
    let (p_ip, q_ip) = (pq_p.ip.clone(), pq_q.ip.clone());
    in_netns(&ns[0], move || {
        let sock = UdpSocket::bind((p_ip.as_str(), 0)).unwrap();
        for _ in 0..CTRL_C_DATAGRAMS {
            sock.send_to(&[1u8; 100], (q_ip.as_str(), 9000)).unwrap();
        }
    })
    .join()
    .unwrap();
    sh("kill", &["-INT", &job.child.id().to_string()]);
    let (ok, stdout, stderr) = job.finish(Duration::from_secs(30));
    assert!(ok, "Ctrl-C ends the job successfully:\n{stdout}\n{stderr}");
    let got = python_json(
        "import sys, pyarrow.dataset as ds\n\
         t = ds.dataset(sys.argv[1] + '/flows', format='parquet', partitioning='hive').to_table(columns=['protocol', 'dst_port', 'packets'])\n\
         rows = [r for r in t.to_pylist() if r['protocol'] == 17 and r['dst_port'] == 9000]\n\
         import json; print(json.dumps({'packets': sum(r['packets'] for r in rows)}))",
        &[&dir.path().join("out")],
    );
    assert_eq!(
        got["packets"], CTRL_C_DATAGRAMS,
        "Ctrl-C delivers the kernel's last flows: {got}"
    );
    assert_no_programs_left();
    let text = Command::new("ip")
        .args(["-n", &pq_p.ns, "-d", "link", "show", &pq_p.iface])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&text.stdout).contains("xdp"));
}
