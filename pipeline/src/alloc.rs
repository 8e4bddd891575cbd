//! Process-wide memory settings that go with the mimalloc allocator the `meshflow`
//! binary links, shared with `meshflow-bench` so its in-process runs allocate as the
//! product does.

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e` of mimalloc 3,
/// which `libmimalloc-sys` does not name): how long freed memory stays mapped
/// before it is given back to the OS.
const PURGE_DELAY: mi_option_t = 15;

/// How long, in ms, mimalloc keeps freed memory before giving it back to the OS,
/// unless `MIMALLOC_PURGE_DELAY` says otherwise. A window's buffers are freed and
/// allocated again one slide to one window length later; at mimalloc's default of
/// 1 s the memory went back to the OS in between and every page of it faulted in
/// (and was zeroed) again. At 10 s, a 10k-node replay took 2.5M → 1.1M page faults
/// and ran 5–8 % faster for 4 % more peak RSS (benchmarks/README.md, session 23).
pub const PURGE_DELAY_MS: i64 = 10_000;

/// Applies the process's memory settings; call first thing in `main`, before any
/// other thread starts (mimalloc's options are not thread safe).
pub fn configure() {
    disable_huge_pages();
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: no other thread runs yet; the option is a plain integer.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS as _) };
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
