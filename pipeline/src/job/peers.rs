//! Clear errors when timely's connections between the processes of a multi-process
//! job cannot be made or fail.
//!
//! Timely's communication threads panic when a peer sends what this process cannot
//! place (processes started with different `--workers`) or goes away, and every
//! worker and the main thread then panic in turn: twenty lines of backtraces that name
//! neither cause. The hook below reports the first such panic once, with what to
//! check, and keeps the rest quiet. Panics anywhere else (meshflow's own operators run
//! on timely's worker threads too) go to the default hook unchanged.

use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Cluster;

/// Whether a panic comes from timely's communication layer: raised in its code, or on
/// one of its network threads (`timely:send-N`, `timely:recv-N`).
fn from_timely_communication(info: &PanicHookInfo<'_>) -> bool {
    let in_timely = info
        .location()
        .is_some_and(|l| l.file().contains("timely_communication"));
    let thread = std::thread::current();
    let name = thread.name().unwrap_or_default();
    in_timely || name.starts_with("timely:send") || name.starts_with("timely:recv")
}

fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Installs the hook for a process running `workers` workers as process `process` of
/// `processes`.
pub fn report_peer_failures(workers: usize, process: usize, processes: usize) {
    let default = std::panic::take_hook();
    let reported = AtomicBool::new(false);
    std::panic::set_hook(Box::new(move |info| {
        if !from_timely_communication(info) {
            return default(info);
        }
        if reported.swap(true, Ordering::SeqCst) {
            return;
        }
        let thread = std::thread::current();
        crate::say!(
            "error: the connection between this job's processes failed (process {process} \
             of {processes}, thread {}: {}). Every process must run the same --workers \
             (this one runs {workers}) with the same hosts file; a peer that stopped or \
             crashed does this too, so see the other processes' output.",
            thread.name().unwrap_or("unnamed"),
            message(info)
        );
    }));
}

/// Timely's start-up error `e` (it could not listen or connect), with what this process
/// listens on in a multi-process job.
pub(super) fn start_error(e: String, cluster: &Cluster) -> anyhow::Error {
    match cluster {
        Cluster::Local => anyhow::Error::msg(e),
        Cluster::Multi { process, hosts } => anyhow::anyhow!(
            "{e}: process {process} listens on {} (its entry in the hosts file) and \
             connects to the processes listed before it",
            hosts[*process]
        ),
    }
}
