//! Network namespaces and interface addresses, for attaching to `NS/IFACE` names.
//!
//! An interface may be given as `veth0` (meshflow's own namespace) or `NS/veth0`,
//! where `NS` is a namespace under `/run/netns` (as made by `ip netns add`) or an
//! absolute path to a namespace file. The attaching thread enters the namespace with
//! `setns` (never `ip netns exec`, which remounts /sys and breaks tracepoints) and
//! returns to its own afterwards.

use std::ffi::CStr;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// An interface name, possibly qualified by a network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRef {
    /// The namespace file, or `None` for meshflow's own namespace.
    pub netns: Option<PathBuf>,
    /// The interface name inside it.
    pub name: String,
}

impl InterfaceRef {
    /// Parses `IFACE`, `NS/IFACE` or `/path/to/ns/IFACE`.
    pub fn parse(spec: &str) -> Self {
        match spec.rsplit_once('/') {
            None => Self {
                netns: None,
                name: spec.to_string(),
            },
            Some((ns, name)) if ns.starts_with('/') => Self {
                netns: Some(PathBuf::from(ns)),
                name: name.to_string(),
            },
            Some((ns, name)) => Self {
                netns: Some(PathBuf::from("/run/netns").join(ns)),
                name: name.to_string(),
            },
        }
    }
}

/// While alive, the calling thread is in another network namespace; dropping it
/// returns the thread to the namespace it came from.
pub struct NetnsGuard {
    home: Option<File>,
}

impl NetnsGuard {
    /// Enters `netns` (no-op for `None`).
    pub fn enter(netns: Option<&PathBuf>) -> Result<Self, String> {
        let Some(path) = netns else {
            return Ok(Self { home: None });
        };
        let home = File::open("/proc/thread-self/ns/net")
            .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
        let target = File::open(path)
            .map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
        setns(&target).map_err(|e| format!("cannot enter {}: {e}", path.display()))?;
        Ok(Self { home: Some(home) })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Some(home) = &self.home
            && let Err(e) = setns(home)
        {
            tracing::error!("cannot return to the original network namespace: {e}");
        }
    }
}

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: a valid namespace fd; CLONE_NEWNET only affects the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The interface index of `name` in the current namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Addresses of the interfaces in the current namespace, as `(interface, address)`.
pub fn interface_addresses() -> std::io::Result<Vec<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getifaddrs returned; each entry is valid.
        let entry = unsafe { &*cur };
        if !entry.ifa_addr.is_null() && !entry.ifa_name.is_null() {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(entry.ifa_name) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: sa_family tells which sockaddr type ifa_addr points to.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            let ip = match family {
                libc::AF_INET => {
                    // SAFETY: AF_INET means a sockaddr_in.
                    let sa = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                    Some(IpAddr::from(u32::from_be(sa.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    // SAFETY: AF_INET6 means a sockaddr_in6.
                    let sa = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                    Some(IpAddr::from(sa.sin6_addr.s6_addr))
                }
                _ => None,
            };
            if let Some(ip) = ip {
                out.push((name, ip));
            }
        }
        cur = entry.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qualified_names() {
        assert_eq!(
            InterfaceRef::parse("eth0"),
            InterfaceRef {
                netns: None,
                name: "eth0".into()
            }
        );
        assert_eq!(
            InterfaceRef::parse("mesh-a/veth-ab"),
            InterfaceRef {
                netns: Some("/run/netns/mesh-a".into()),
                name: "veth-ab".into()
            }
        );
        assert_eq!(
            InterfaceRef::parse("/proc/42/ns/net/eth1"),
            InterfaceRef {
                netns: Some("/proc/42/ns/net".into()),
                name: "eth1".into()
            }
        );
    }

    #[test]
    fn loopback_has_an_address_and_an_index() {
        let addrs = interface_addresses().unwrap();
        assert!(
            addrs.iter().any(|(n, ip)| n == "lo" && ip.is_loopback()),
            "{addrs:?}"
        );
        assert!(if_index("lo").is_some());
        assert!(if_index("no-such-if0").is_none());
    }
}
