//! Process-wide memory settings that go with the mimalloc allocator the `meshflow`
//! binary links, shared with `meshflow-bench` so its in-process runs allocate as the
//! product does.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e` of mimalloc 3,
/// which `libmimalloc-sys` does not name): how long freed memory stays mapped
/// before it is given back to the OS.
const PURGE_DELAY: mi_option_t = 15;

/// What the process mostly does, which decides how long mimalloc keeps freed memory
/// before giving it back to the OS (unless `MIMALLOC_PURGE_DELAY` says otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A streaming job (`meshflow run`): freed memory is kept for good. Every purge
    /// stalls the workers (page-table flushes, then faults when the memory is needed
    /// again), and the windows closing just after one came 10–33 ms late: the live p99
    /// at 10k nodes was 121–131 ms with a 10-s delay and 94–100 ms with none, for 10 %
    /// more peak RSS (benchmarks/README.md, session 25).
    Live,
    /// Everything else (replays, imports, queries): freed memory goes back after 10 s
    /// unused. At mimalloc's default of 1 s a window's buffers went back between one
    /// slide and the next and every page of them faulted in (and was zeroed) again;
    /// at 10 s a 10k-node replay took 2.5M → 1.1M page faults and ran 5–8 % faster
    /// (session 23). Keeping it for good took the 100k-node replay past 4 GiB.
    Batch,
}

impl Workload {
    /// mimalloc's purge delay for this workload, in ms; `-1` is never.
    pub fn purge_delay_ms(self) -> i64 {
        match self {
            Workload::Live => -1,
            Workload::Batch => 10_000,
        }
    }
}

/// Applies the process's memory settings for `workload`; call it before any other
/// thread starts (mimalloc's options are not thread safe).
pub fn configure(workload: Workload) {
    disable_huge_pages();
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: no other thread runs yet; the option is a plain integer.
        unsafe { mi_option_set(PURGE_DELAY, workload.purge_delay_ms() as _) };
    }
}

/// Turns transparent huge pages off for this process (and the processes it starts),
/// unless `MIMALLOC_ALLOW_THP` is set. mimalloc asks for huge pages for its arenas, and
/// the kernel then zeroes 2 MiB at every fault of memory the allocator had returned:
/// 13 % of a 10k-node replay's worker time went to those faults (benchmarks/README.md,
/// session 13).
fn disable_huge_pages() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::{mi_option_get, mi_option_use_numa_nodes};

    #[test]
    fn the_purge_delay_option_is_where_mimalloc_keeps_it() {
        // The option after it is named by the crate; the linked library's default
        // for this one is 1000 ms, which no neighbour shares.
        assert_eq!(PURGE_DELAY + 1, mi_option_use_numa_nodes);
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reading an option.
            assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, 1000);
        }
    }
}
