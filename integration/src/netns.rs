//! A small mesh of network namespaces joined by veth pairs, for the eBPF tests.
//!
//! Namespaces are made with `ip netns add` and torn down when the [`Mesh`] is dropped,
//! also when a test fails. Test traffic runs on threads that enter a namespace with
//! `setns` ([`in_netns`]); nothing is sent outside the mesh's own addresses.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Runs a command, panicking with its output unless it succeeds.
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (apt-get install iproute2 nftables)")
        });
    assert!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One end of a link: namespace, interface, address.
#[derive(Clone, Debug)]
pub struct End {
    /// Namespace name (under /run/netns).
    pub ns: String,
    /// Interface name.
    pub iface: String,
    /// IPv4 address (without prefix length).
    pub ip: String,
}

impl End {
    /// `NETNS/IFACE`, as the eBPF source config takes it.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.ns, self.iface)
    }
}

/// Namespaces and links; everything is removed on drop.
pub struct Mesh {
    namespaces: Vec<String>,
}

impl Mesh {
    /// Creates namespaces `names` (prefixed to be unique to this process) with
    /// loopback up and IPv6 off (so only the test's own traffic crosses the links).
    pub fn new(names: &[&str]) -> (Self, Vec<String>) {
        let prefix = format!("mf{}", std::process::id() % 100_000);
        let full: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
        let mut mesh = Self {
            namespaces: Vec::new(),
        };
        for ns in &full {
            sh("ip", &["netns", "add", ns]);
            mesh.namespaces.push(ns.clone());
            sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                ],
            );
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            );
        }
        (mesh, full)
    }

    /// Joins `a` and `b` with a veth pair on subnet `10.201.SUBNET.0/24` (.1 on `a`,
    /// .2 on `b`). The pair is made in meshflow's namespace and moved, so the two
    /// ends get interface indexes unique across the mesh.
    pub fn link(&self, a: &str, b: &str, subnet: u8) -> (End, End) {
        let (ia, ib) = (format!("v{subnet}a"), format!("v{subnet}b"));
        let (tmp_a, tmp_b) = (
            format!("mft{}a{subnet}", std::process::id() % 10_000),
            format!("mft{}b{subnet}", std::process::id() % 10_000),
        );
        sh(
            "ip",
            &[
                "link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b,
            ],
        );
        let ends = [(a, &tmp_a, &ia, 1), (b, &tmp_b, &ib, 2)];
        let mut out = Vec::new();
        for (ns, tmp, name, host) in ends {
            sh("ip", &["link", "set", tmp, "netns", ns]);
            sh("ip", &["-n", ns, "link", "set", tmp, "name", name]);
            let ip = format!("10.201.{subnet}.{host}");
            sh(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", name],
            );
            sh("ip", &["-n", ns, "link", "set", name, "up"]);
            out.push(End {
                ns: ns.to_string(),
                iface: name.to_string(),
                ip,
            });
        }
        let b_end = out.pop().expect("two ends");
        (out.pop().expect("two ends"), b_end)
    }

    /// Runs `nft` with `args` inside namespace `ns`.
    pub fn nft(&self, ns: &str, rule: &str) {
        sh("ip", &["netns", "exec", ns, "nft", rule]);
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Starts `f` on a new thread inside namespace `ns` (entered with `setns`, which only
/// moves that thread), so sockets it opens live in the namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}
