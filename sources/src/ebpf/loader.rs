//! Loading the programs in `bpf/` with aya and attaching them where the config says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use aya::maps::HashMap;
use aya::programs::{BtfTracePoint, SchedClassifier, TcAttachType, TracePoint, Xdp, XdpMode};
use aya::{Btf, Ebpf, EbpfLoader};
use meshflow_bpf as abi;

use super::EbpfError;
use super::config::{Direction, EbpfConfig, NodeMap, TraceScope, XdpAttachMode};
use super::netns::{InterfaceRef, NetnsGuard, if_index, interface_addresses};

/// An interface the programs are attached to.
#[derive(Clone, Debug)]
pub struct Attached {
    /// The name as configured (`IFACE` or `NETNS/IFACE`).
    pub label: String,
    /// Its index in its namespace.
    pub ifindex: u32,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its node: the configured host node, else its first IPv4 address's node.
    pub node: u64,
}

/// The loaded object with everything attached.
pub struct Loaded {
    /// The programs and maps; dropping it detaches every program and frees every map.
    pub ebpf: Ebpf,
    /// Interfaces the XDP and TC programs are attached to.
    pub interfaces: Vec<Attached>,
    /// This host's node.
    pub host_node: u64,
    /// Every address of the monitored interfaces.
    pub local: BTreeSet<IpAddr>,
    /// How many mesh addresses the TCP events and drops are limited to, or `None` when
    /// they are not (`trace_scope = "host"`).
    pub mesh_addresses: Option<usize>,
}

fn attach_err(program: &str, target: &str, e: impl std::fmt::Display) -> EbpfError {
    EbpfError::Attach {
        program: program.into(),
        target: target.into(),
        reason: e.to_string(),
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, EbpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| EbpfError::Load(format!("program {name} is missing from the object")))?
        .try_into()
        .map_err(|e| EbpfError::Load(format!("program {name}: {e}")))
}

fn load_err(name: &str, e: impl std::fmt::Display) -> EbpfError {
    EbpfError::Load(format!("the kernel refused program {name}: {e}"))
}

/// Loads the object with the config's settings and attaches the enabled programs.
pub fn load(cfg: &EbpfConfig, nodes: &NodeMap) -> Result<Loaded, EbpfError> {
    let export_ns = cfg.export_interval.as_nanos_i64() as u64;
    let tgid = cfg.syscall_pid.unwrap_or(0);
    let addr_filter = u32::from(cfg.trace_scope == TraceScope::Mesh);
    let mut ebpf = EbpfLoader::new()
        .override_global(abi::GLOBAL_FLOW_EXPORT_NS, &export_ns, true)
        .override_global(abi::GLOBAL_TARGET_TGID, &tgid, true)
        .override_global(abi::GLOBAL_WAKEUP_BYTES, &cfg.wakeup_bytes, true)
        .override_global(abi::GLOBAL_XDP_SAMPLE_EVERY, &cfg.xdp_sample_every, true)
        .override_global(abi::GLOBAL_ADDR_FILTER, &addr_filter, true)
        .load(abi::OBJECT)
        .map_err(|e| EbpfError::Load(format!("loading the eBPF object: {e}")))?;

    let mut interfaces = Vec::new();
    let mut ifindexes: BTreeMap<u32, String> = BTreeMap::new();
    if cfg.xdp {
        let xdp: &mut Xdp = program(&mut ebpf, "mf_xdp")?;
        xdp.load().map_err(|e| load_err("mf_xdp", e))?;
    }
    if cfg.tc {
        for name in ["mf_tc_ingress", "mf_tc_egress"] {
            let tc: &mut SchedClassifier = program(&mut ebpf, name)?;
            tc.load().map_err(|e| load_err(name, e))?;
        }
    }
    for spec in &cfg.interfaces {
        let iface = InterfaceRef::parse(spec);
        let _ns = NetnsGuard::enter(iface.netns.as_ref()).map_err(EbpfError::Interface)?;
        let ifindex = if_index(&iface.name).ok_or_else(|| {
            EbpfError::Interface(format!(
                "interface `{spec}` does not exist{}",
                if iface.netns.is_some() {
                    " in that network namespace"
                } else {
                    " (qualify it as NETNS/IFACE if it lives in another namespace)"
                }
            ))
        })?;
        if let Some(other) = ifindexes.insert(ifindex, spec.clone()) {
            tracing::warn!(
                "interfaces `{other}` and `{spec}` share ifindex {ifindex} (different \
                 namespaces); their XDP counters are merged"
            );
        }
        let addresses: Vec<IpAddr> = interface_addresses()
            .map_err(|e| EbpfError::Interface(format!("listing addresses of `{spec}`: {e}")))?
            .into_iter()
            .filter(|(n, _)| *n == iface.name)
            .map(|(_, ip)| ip)
            .collect();
        if cfg.xdp {
            let xdp: &mut Xdp = program(&mut ebpf, "mf_xdp")?;
            attach_xdp(xdp, &iface.name, cfg.xdp_mode)
                .map_err(|e| attach_err("mf_xdp", spec, e))?;
        }
        if cfg.tc {
            for dir in &cfg.directions {
                let (name, hook) = match dir {
                    Direction::Ingress => ("mf_tc_ingress", TcAttachType::Ingress),
                    Direction::Egress => ("mf_tc_egress", TcAttachType::Egress),
                };
                let tc: &mut SchedClassifier = program(&mut ebpf, name)?;
                tc.attach(&iface.name, hook)
                    .map_err(|e| attach_err(name, spec, e))?;
            }
        }
        let first_v4 = addresses.iter().find(|ip| ip.is_ipv4()).copied();
        interfaces.push(Attached {
            label: spec.clone(),
            ifindex,
            node: cfg
                .node
                .as_deref()
                .and_then(|n| nodes.resolve(n))
                .or_else(|| first_v4.map(|ip| nodes.node_of(ip)))
                .unwrap_or(u64::from(ifindex)),
            addresses,
        });
    }

    let local: BTreeSet<IpAddr> = interfaces
        .iter()
        .flat_map(|i| i.addresses.iter().map(|ip| ip.to_canonical()))
        .collect();
    let mesh_addresses = if addr_filter == 1 {
        Some(fill_mesh_addresses(&mut ebpf, cfg, &local)?)
    } else {
        None
    };
    if cfg.tcp {
        for (name, category, event) in [
            ("mf_tcp_retrans", "tcp", "tcp_retransmit_skb"),
            ("mf_sock_state", "sock", "inet_sock_set_state"),
        ] {
            let tp: &mut TracePoint = program(&mut ebpf, name)?;
            tp.load().map_err(|e| load_err(name, e))?;
            tp.attach(category, event)
                .map_err(|e| attach_err(name, &format!("tracepoint {category}:{event}"), e))?;
        }
    }
    let needs_btf = cfg.drops || cfg.syscalls;
    let btf = if needs_btf {
        Some(Btf::from_sys_fs().map_err(|e| {
            EbpfError::Load(format!(
                "reading kernel BTF from /sys/kernel/btf/vmlinux: {e}; the drop and \
                 system-call tracers need a kernel built with CONFIG_DEBUG_INFO_BTF"
            ))
        })?)
    } else {
        None
    };
    let mut tp_btf = |name: &str, event: &str| -> Result<(), EbpfError> {
        let btf = btf.as_ref().expect("BTF loaded when needed");
        let tp: &mut BtfTracePoint = program(&mut ebpf, name)?;
        tp.load(event, btf).map_err(|e| load_err(name, e))?;
        tp.attach()
            .map_err(|e| attach_err(name, &format!("tp_btf {event}"), e))?;
        Ok(())
    };
    if cfg.drops {
        tp_btf("mf_kfree_skb", "kfree_skb")?;
    }
    if cfg.syscalls {
        tp_btf("mf_sys_enter", "sys_enter")?;
        tp_btf("mf_sys_exit", "sys_exit")?;
    }

    let host_node = cfg
        .node
        .as_deref()
        .and_then(|n| nodes.resolve(n))
        .or_else(|| interfaces.first().map(|i| i.node))
        .or_else(|| {
            interface_addresses()
                .ok()?
                .into_iter()
                .map(|(_, ip)| ip)
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
                .map(|ip| nodes.node_of(ip))
        })
        .unwrap_or(0);
    Ok(Loaded {
        ebpf,
        interfaces,
        host_node,
        local,
        mesh_addresses,
    })
}

/// Writes the mesh's addresses (`local`, the monitored interfaces' addresses, and the
/// keys of `cfg.nodes`) into [`abi::MAP_ADDRS`]; returns how many.
fn fill_mesh_addresses(
    ebpf: &mut Ebpf,
    cfg: &EbpfConfig,
    local: &BTreeSet<IpAddr>,
) -> Result<usize, EbpfError> {
    let map_err =
        |e: &dyn std::fmt::Display| EbpfError::Load(format!("map {}: {e}", abi::MAP_ADDRS));
    let mesh: BTreeSet<IpAddr> = local
        .iter()
        .copied()
        .chain(
            cfg.nodes
                .keys()
                .filter_map(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| ip.to_canonical()),
        )
        .collect();
    if mesh.len() > abi::ADDRS_MAX as usize {
        return Err(EbpfError::Load(format!(
            "the mesh has {} addresses (interfaces and nodes); TCP events and drops can be \
             limited to {} (set trace_scope = \"host\" to report all of them)",
            mesh.len(),
            abi::ADDRS_MAX
        )));
    }
    let mut map: HashMap<_, [u8; 16], u8> = HashMap::try_from(
        ebpf.map_mut(abi::MAP_ADDRS)
            .ok_or_else(|| map_err(&"missing from the object"))?,
    )
    .map_err(|e| map_err(&e))?;
    for ip in &mesh {
        let key = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        map.insert(key, 1, 0).map_err(|e| map_err(&e))?;
    }
    if mesh.is_empty() && (cfg.tcp || cfg.drops) {
        tracing::warn!(
            "the monitored interfaces have no addresses and `nodes` is empty: no TCP event \
             or drop has an end in the mesh, so none is reported (set trace_scope = \"host\" \
             to report the host's)"
        );
    }
    Ok(mesh.len())
}

fn attach_xdp(xdp: &mut Xdp, iface: &str, mode: XdpAttachMode) -> Result<(), String> {
    match mode {
        XdpAttachMode::Native => xdp.attach(iface, XdpMode::Driver).map(drop),
        XdpAttachMode::Skb => xdp.attach(iface, XdpMode::Skb).map(drop),
        XdpAttachMode::Auto => xdp
            .attach(iface, XdpMode::Driver)
            .or_else(|_| xdp.attach(iface, XdpMode::Skb))
            .map(drop),
    }
    .map_err(|e| e.to_string())
}
