//! Process-wide memory settings that go with the mimalloc allocator the `meshflow`
//! binary links, shared with `meshflow-bench` so its in-process runs allocate as the
//! product does.

/// Turns transparent huge pages off for this process (and the processes it starts),
/// unless `MIMALLOC_ALLOW_THP` is set. mimalloc asks for huge pages for its arenas, and
/// the kernel then zeroes 2 MiB at every fault of memory the allocator had returned:
/// 13 % of a 10k-node replay's worker time went to those faults (benchmarks/README.md,
/// session 13).
pub fn disable_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            "transparent huge pages stay on: prctl failed: {}",
            std::io::Error::last_os_error()
        );
    }
}
