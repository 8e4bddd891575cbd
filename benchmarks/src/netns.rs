//! Two network namespaces joined by a veth pair, made by the benchmark and removed on
//! drop: sender `vs` 10.202.0.1/24, receiver `vr` 10.202.0.2/24, IPv6 off, so only
//! the benchmark's own frames cross the link.

use std::process::Command;

/// The sender's static neighbour entry for 10.202.0.2: a MAC the receiver does not own
/// (its own is [`RECEIVER_MAC`]), so the receiver drops the frames right after XDP.
const NOT_THE_RECEIVER: &str = "02:00:00:02:02:fe";
/// The receiving veth's MAC.
const RECEIVER_MAC: &str = "02:00:00:02:02:02";

/// Runs a command, failing with its output unless it succeeds.
pub fn sh(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {program}: {e} (apt-get install iproute2)"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespaces and the link between them.
pub struct Pair {
    sender: String,
    receiver: String,
    made: Vec<String>,
}

impl Pair {
    /// Creates both namespaces and the link (names unique to this process).
    pub fn new() -> anyhow::Result<Self> {
        let id = std::process::id() % 100_000;
        let mut pair = Self {
            sender: format!("mfb{id}s"),
            receiver: format!("mfb{id}r"),
            made: Vec::new(),
        };
        for ns in [pair.sender.clone(), pair.receiver.clone()] {
            sh("ip", &["netns", "add", &ns])?;
            pair.made.push(ns.clone());
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            for key in ["all", "default"] {
                let sysctl = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                sh("ip", &["netns", "exec", &ns, "sysctl", "-qw", &sysctl])?;
            }
        }
        let (tmp_s, tmp_r) = (format!("mfbs{id}"), format!("mfbr{id}"));
        sh(
            "ip",
            &[
                "link", "add", &tmp_s, "type", "veth", "peer", "name", &tmp_r,
            ],
        )?;
        for (tmp, ns, name, ip) in [
            (&tmp_s, &pair.sender, "vs", "10.202.0.1/24"),
            (&tmp_r, &pair.receiver, "vr", "10.202.0.2/24"),
        ] {
            sh("ip", &["link", "set", tmp, "netns", ns])?;
            sh("ip", &["-n", ns, "link", "set", tmp, "name", name])?;
            if name == "vr" {
                sh(
                    "ip",
                    &["-n", ns, "link", "set", name, "address", RECEIVER_MAC],
                )?;
            }
            sh("ip", &["-n", ns, "addr", "add", ip, "dev", name])?;
            sh("ip", &["-n", ns, "link", "set", name, "up"])?;
        }
        sh(
            "ip",
            &[
                "-n",
                &pair.sender,
                "neigh",
                "replace",
                "10.202.0.2",
                "lladdr",
                NOT_THE_RECEIVER,
                "dev",
                "vs",
                "nud",
                "permanent",
            ],
        )?;
        Ok(pair)
    }

    /// The sending namespace's file, for `setns`.
    pub fn sender_ns_path(&self) -> String {
        format!("/run/netns/{}", self.sender)
    }

    /// The receiving veth as the eBPF source names it (`NETNS/IFACE`).
    pub fn receiver_iface(&self) -> String {
        format!("{}/vr", self.receiver)
    }

    /// Frames the kernel dropped on the way to the receiver's XDP: the sender veth's
    /// transmit drops (peer queue full), the receiver's receive drops, and the
    /// per-CPU backlog drops of `/proc/net/softnet_stat` (host-wide).
    pub fn veth_drops(&self) -> anyhow::Result<u64> {
        let stat = |ns: &str, dev: &str, dir: &str| -> anyhow::Result<u64> {
            let json = sh("ip", &["-n", ns, "-s", "-j", "link", "show", "dev", dev])?;
            let v: serde_json::Value = serde_json::from_str(&json)?;
            v[0]["stats64"][dir]["dropped"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no {dir} drop counter for {ns}/{dev}: {json}"))
        };
        let softnet: u64 = std::fs::read_to_string("/proc/net/softnet_stat")?
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
            .sum();
        Ok(stat(&self.sender, "vs", "tx")? + stat(&self.receiver, "vr", "rx")? + softnet)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in &self.made {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
