//! How far a worker's sources may run ahead of its outputs, and how long a worker
//! waits with nothing to do.

use std::time::Duration;

use timely::dataflow::ProbeHandle;

/// The longest a source blocks waiting for input while the dataflow has caught up
/// (it also bounds how late Ctrl-C is noticed).
pub(super) const IDLE_WAIT: Duration = Duration::from_millis(5);

/// The longest a worker waiting for the dataflow to catch up sleeps with nothing to
/// do. It wakes at once when another worker sends it data or an operator is
/// activated; spinning instead took the cores the other workers and the Parquet
/// encoders needed.
pub(super) const WAIT_PARK: Duration = Duration::from_millis(1);

/// How many slides the anomaly scores may trail the features before the sources wait.
/// The scorer works on a window once its features are out, beside the worker; held
/// to the features' own lag, the worker waited for each window's scores, idle for a
/// seventh of a 10k-node replay (benchmarks/README.md, session 28). A window waiting
/// for its scores holds only its score inputs.
const SCORE_LAG: u64 = 1;

/// How far a worker's sources may run ahead of its outputs.
pub(super) struct Backlog {
    /// Passes a window once its features are out.
    pub(super) featured: ProbeHandle<u64>,
    /// Passes a window once every output has it.
    pub(super) written: ProbeHandle<u64>,
    /// The window slide, in epochs.
    pub(super) slide: u64,
}

impl Backlog {
    /// Whether sources at input time `time` must wait for the outputs. The features
    /// may trail by one slide: every window in flight holds its neighbourhood messages
    /// in the dataflow, so a longer backlog costs memory in proportion to the edges,
    /// and it buys no throughput (benchmarks/README.md, "backlog"). The rest of the
    /// outputs may trail by [`SCORE_LAG`] slides more.
    pub(super) fn behind(&self, time: u64) -> bool {
        self.featured.less_than(&time.saturating_sub(self.slide))
            || self
                .written
                .less_than(&time.saturating_sub(self.slide * (1 + SCORE_LAG)))
    }
}
