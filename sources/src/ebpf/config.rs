//! `type = "ebpf"`: which programs to load, where to attach them, how to name nodes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use meshflow_schemas::{HumanDuration, node_id_of_ip};
use serde::{Deserialize, Serialize};

/// Default of [`EbpfConfig::wakeup_bytes`]: 256 KiB.
pub const DEFAULT_WAKEUP_BYTES: u64 = meshflow_bpf::DEFAULT_WAKEUP_BYTES;
/// Largest [`EbpfConfig::wakeup_bytes`]: half of a 16 MiB ring buffer.
pub const MAX_WAKEUP_BYTES: u64 = 8 << 20;

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpAttachMode {
    /// Native (driver) mode where the driver supports it, else generic (skb) mode.
    #[default]
    Auto,
    /// Driver mode only; attaching fails where the driver lacks XDP support.
    Native,
    /// Generic (skb) mode: works on every interface, costs more per packet.
    Skb,
}

/// A TC hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Packets arriving on the interface.
    Ingress,
    /// Packets leaving through the interface.
    Egress,
}

/// Which TCP events and drops the tracepoints report. They fire for the whole host
/// (every network namespace), not only the monitored interfaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceScope {
    /// Those with an end at a mesh address: an address of `interfaces` or a key of
    /// `nodes`. The host's other traffic (its loopback, say) is left out.
    #[default]
    Mesh,
    /// Every one on the host.
    Host,
}

/// Configuration of the eBPF source: one per host (process), reading that host's kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EbpfConfig {
    /// Interfaces to attach the XDP and TC programs to: `IFACE` in meshflow's own
    /// network namespace, or `NETNS/IFACE` for a namespace under `/run/netns`.
    pub interfaces: Vec<String>,
    /// Which TC hooks report flows. Default egress only: each packet is counted once,
    /// by its sender; add `ingress` when the peers are not monitored themselves.
    pub directions: Vec<Direction>,
    /// Load the XDP per-protocol packet and byte counters.
    pub xdp: bool,
    /// How to attach XDP.
    pub xdp_mode: XdpAttachMode,
    /// Load the TC flow accounting (ingress and egress, TCX links).
    pub tc: bool,
    /// Load the TCP tracepoints (retransmits, state changes with srtt).
    pub tcp: bool,
    /// Load the `kfree_skb` drop tracer (drops with their reason).
    pub drops: bool,
    /// Load the network system-call latency tracer.
    pub syscalls: bool,
    /// Only trace system calls of this process id (thread-group id); all when unset.
    pub syscall_pid: Option<u32>,
    /// Which TCP events and drops are reported: `"mesh"` (default) those with an end at
    /// an address of `interfaces` or `nodes`, or `"host"` all of the host's.
    pub trace_scope: TraceScope,
    /// How often counters are read and long-lived flows are exported.
    pub export_interval: HumanDuration,
    /// How often the ring buffers are drained when no wake-up came (the programs only
    /// wake the reader once `wakeup_bytes` wait, so wake-ups are batched).
    pub poll_interval: HumanDuration,
    /// The record that makes a ring buffer's unread data reach this many bytes wakes
    /// the reader (1 to 8 MiB, default 256 KiB; a flow record takes 112). Smaller
    /// wakes more often; 1 wakes it whenever a record lands in an empty ring. A record
    /// never waits longer than `poll_interval` either way; lower that for lower latency.
    pub wakeup_bytes: u64,
    /// Diagnostic and benchmark mode: write one XDP-sampled packet in N to a ring
    /// buffer as a one-packet flow record (0 = off, the default; 1 = every packet).
    /// Costs a ring-buffer record per sampled packet.
    pub xdp_sample_every: u32,
    /// Stop after this much wall-clock time; unset runs until Ctrl-C.
    pub duration: Option<HumanDuration>,
    /// This host's node (an IP address or a numeric node id), for the records it
    /// observes itself (counters, TCP events, system calls). Default: the first IPv4
    /// address of the first interface.
    pub node: Option<String>,
    /// Overrides of the IP → node id mapping (`"10.0.0.1" = 17`). Unlisted addresses
    /// map to a node id derived from the address itself.
    pub nodes: BTreeMap<String, u64>,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            directions: vec![Direction::Egress],
            xdp: true,
            xdp_mode: XdpAttachMode::Auto,
            tc: true,
            tcp: true,
            drops: true,
            syscalls: true,
            syscall_pid: None,
            trace_scope: TraceScope::Mesh,
            export_interval: HumanDuration::from_secs(1),
            poll_interval: "20ms".parse().expect("valid literal"),
            wakeup_bytes: DEFAULT_WAKEUP_BYTES,
            xdp_sample_every: 0,
            duration: None,
            node: None,
            nodes: BTreeMap::new(),
        }
    }
}

/// An invalid eBPF source setting: the key (relative to the source) and why.
#[derive(Debug, thiserror::Error)]
#[error("{key} {reason}")]
pub struct EbpfConfigError {
    /// The key within the source's table, e.g. `nodes."10.0.0.300"`.
    pub key: String,
    /// Why it is invalid.
    pub reason: String,
}

impl EbpfConfig {
    /// Checks every value, naming the key and the reason.
    pub fn validate(&self) -> Result<(), EbpfConfigError> {
        let err = |key: String, reason: &str| {
            Err(EbpfConfigError {
                key,
                reason: reason.into(),
            })
        };
        if (self.xdp || self.tc) && self.interfaces.is_empty() {
            return err(
                "interfaces".into(),
                "is empty; name at least one interface, or set xdp = false and tc = false",
            );
        }
        if let Some(bad) = self.interfaces.iter().find(|i| {
            let name = i.rsplit('/').next().unwrap_or_default();
            name.is_empty() || name.len() > 15
        }) {
            return err(
                "interfaces".into(),
                &format!(
                    "has `{bad}`, which is not `IFACE` or `NETNS/IFACE` with an interface \
                     name of 1 to 15 characters"
                ),
            );
        }
        if self.tc && self.directions.is_empty() {
            return err(
                "directions".into(),
                "is empty; use [\"egress\"], [\"ingress\"] or both",
            );
        }
        if !(self.xdp || self.tc || self.tcp || self.drops || self.syscalls) {
            return err(
                "xdp".into(),
                "and every other program are disabled; enable one",
            );
        }
        if self.export_interval.as_nanos_i64() < 10_000_000 {
            return err("export_interval".into(), "must be at least 10ms");
        }
        if self.poll_interval.0.is_zero() || self.poll_interval > self.export_interval {
            return err(
                "poll_interval".into(),
                "must be positive and at most export_interval",
            );
        }
        if self.wakeup_bytes == 0 || self.wakeup_bytes > MAX_WAKEUP_BYTES {
            return err(
                "wakeup_bytes".into(),
                "must be 1 to 8388608 (8 MiB, half a ring buffer); lower poll_interval \
                 for lower latency",
            );
        }
        if self.xdp_sample_every > 0 && !self.xdp {
            return err("xdp_sample_every".into(), "needs xdp = true");
        }
        if self.duration.is_some_and(|d| d.0.is_zero()) {
            return err("duration".into(), "must be positive when set");
        }
        if let Some(node) = &self.node
            && node.parse::<IpAddr>().is_err()
            && node.parse::<u64>().is_err()
        {
            return err(
                "node".into(),
                &format!("is `{node}`; give an IP address or a numeric node id"),
            );
        }
        for ip in self.nodes.keys() {
            if ip.parse::<IpAddr>().is_err() {
                return err(format!("nodes.\"{ip}\""), "is not an IP address");
            }
        }
        Ok(())
    }

    /// The IP → node mapping this config describes (validated keys only).
    pub fn node_map(&self) -> NodeMap {
        NodeMap {
            overrides: self
                .nodes
                .iter()
                .filter_map(|(ip, node)| Some((ip.parse::<IpAddr>().ok()?.to_canonical(), *node)))
                .collect(),
        }
    }
}

/// Maps addresses seen by the kernel to mesh node ids.
#[derive(Clone, Debug, Default)]
pub struct NodeMap {
    overrides: BTreeMap<IpAddr, u64>,
}

impl NodeMap {
    /// The node of `ip`: a configured override, else the id derived from the address.
    pub fn node_of(&self, ip: IpAddr) -> u64 {
        let ip = ip.to_canonical();
        self.overrides
            .get(&ip)
            .copied()
            .unwrap_or_else(|| node_id_of_ip(ip))
    }

    /// Resolves a configured `node` value (an IP or a numeric id).
    pub fn resolve(&self, node: &str) -> Option<u64> {
        match node.parse::<IpAddr>() {
            Ok(ip) => Some(self.node_of(ip)),
            Err(_) => node.parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EbpfConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_need_an_interface() {
        let e = EbpfConfig::default().validate().unwrap_err();
        assert_eq!(e.key, "interfaces");
        let cfg = parse("interfaces = [\"veth0\"]").unwrap();
        cfg.validate().unwrap();
        let cfg = parse("xdp = false\ntc = false").unwrap();
        cfg.validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        assert!(
            parse("interfaces = [\"a\"]\nbogus = 1")
                .unwrap_err()
                .contains("bogus")
        );
        let cfg = parse("interfaces = [\"a\"]\n[nodes]\n\"10.0.0.300\" = 3").unwrap();
        assert_eq!(cfg.validate().unwrap_err().key, "nodes.\"10.0.0.300\"");
        let cfg = parse("interfaces = [\"a\"]\nnode = \"host-a\"").unwrap();
        assert_eq!(cfg.validate().unwrap_err().key, "node");
        let cfg = parse("interfaces = [\"a\"]\nexport_interval = \"1ms\"").unwrap();
        assert_eq!(cfg.validate().unwrap_err().key, "export_interval");
        let cfg = parse("interfaces = [\"a-very-long-interface-name\"]").unwrap();
        assert_eq!(cfg.validate().unwrap_err().key, "interfaces");
        for bad in ["0", "8388609"] {
            let cfg = parse(&format!("interfaces = [\"a\"]\nwakeup_bytes = {bad}")).unwrap();
            assert_eq!(cfg.validate().unwrap_err().key, "wakeup_bytes");
        }
        let cfg = parse("interfaces = [\"a\"]\nwakeup_bytes = 8388608").unwrap();
        cfg.validate().unwrap();
        let cfg = parse("tc = false\nxdp = false\nxdp_sample_every = 1").unwrap();
        assert_eq!(cfg.validate().unwrap_err().key, "xdp_sample_every");
        let e = parse("interfaces = [\"a\"]\ntrace_scope = \"world\"").unwrap_err();
        assert!(e.contains("trace_scope") && e.contains("mesh"), "{e}");
        let cfg = parse("interfaces = [\"a\"]\ntrace_scope = \"host\"").unwrap();
        assert_eq!(cfg.trace_scope, TraceScope::Host);
    }

    #[test]
    fn node_map_prefers_overrides_and_folds_mapped_v4() {
        let cfg = parse("interfaces = [\"a\"]\n[nodes]\n\"10.0.0.1\" = 17").unwrap();
        let map = cfg.node_map();
        assert_eq!(map.node_of("10.0.0.1".parse().unwrap()), 17);
        assert_eq!(map.node_of("::ffff:10.0.0.1".parse().unwrap()), 17);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(map.node_of(other), node_id_of_ip(other));
        assert_eq!(map.resolve("10.0.0.1"), Some(17));
        assert_eq!(map.resolve("42"), Some(42));
        assert_eq!(map.resolve("x"), None);
    }
}
