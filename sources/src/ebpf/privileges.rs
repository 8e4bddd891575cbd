//! What loading the programs needs from the host: capabilities and tracefs.

use std::path::Path;

/// Linux capability numbers (`linux/capability.h`).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Where tracepoint ids are read from; aya looks here (and under debugfs).
const TRACEFS: &str = "/sys/kernel/tracing";

/// The effective capability mask of this process, from `/proc/self/status`.
pub fn effective_capabilities() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_cap_eff(&status).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/proc/self/status has no readable CapEff line",
        )
    })
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// The capabilities missing from `caps` for loading and attaching the programs, by
/// name. Empty when CAP_SYS_ADMIN is held, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON.
pub fn missing_capabilities(caps: u64) -> Vec<&'static str> {
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    [
        (CAP_BPF, "CAP_BPF"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_PERFMON, "CAP_PERFMON"),
    ]
    .into_iter()
    .filter(|(cap, _)| !has(*cap))
    .map(|(_, name)| name)
    .collect()
}

/// Fails with a message that names exactly what is missing, unless this process may
/// load and attach eBPF programs.
pub fn check_capabilities() -> Result<(), String> {
    let caps = effective_capabilities().map_err(|e| format!("cannot read capabilities: {e}"))?;
    let missing = missing_capabilities(caps);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the eBPF source needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; this process \
         lacks {} (effective capabilities {caps:#x}). Run as root, or grant them with \
         `setcap cap_bpf,cap_net_admin,cap_perfmon+ep $(which meshflow)`. Replay and SQL \
         need no privileges.",
        missing.join(", ")
    ))
}

/// Makes sure tracefs is mounted at `/sys/kernel/tracing`, mounting it if needed, so
/// tracepoints can be attached.
pub fn ensure_tracefs() -> Result<(), String> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let target = std::ffi::CString::new(TRACEFS).expect("no NUL");
    let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
    let source = std::ffi::CString::new("nodev").expect("no NUL");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 && Path::new(TRACEFS).join("events").is_dir() {
        tracing::info!("mounted tracefs at {TRACEFS}");
        return Ok(());
    }
    Err(format!(
        "tracefs is not mounted at {TRACEFS} and mounting it failed ({}); mount it with \
         `mount -t tracefs nodev {TRACEFS}`, or disable the tracepoint programs \
         (tcp = false, syscalls = false)",
        std::io::Error::last_os_error()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_capeff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }

    #[test]
    fn names_what_is_missing() {
        assert!(missing_capabilities(1 << CAP_SYS_ADMIN).is_empty());
        let all = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON);
        assert!(missing_capabilities(all).is_empty());
        assert_eq!(
            missing_capabilities(1 << CAP_BPF),
            vec!["CAP_NET_ADMIN", "CAP_PERFMON"]
        );
        assert_eq!(missing_capabilities(0).len(), 3);
    }
}
