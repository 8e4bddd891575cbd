//! Per-component event counters, in the style of Vector's internal metrics.
//!
//! Every source, operator and sink counts what it received, sent, dropped and
//! errored, so a user can always see where events went.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one component, shared by its worker-local instances.
#[derive(Debug, Default)]
pub struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    errored: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Events the component took in.
    pub received: u64,
    /// Events it passed on or wrote.
    pub sent: u64,
    /// Events it deliberately discarded (late, filtered, skipped).
    pub dropped: u64,
    /// Events or items it could not process because of an error.
    pub errored: u64,
}

impl Counters {
    /// A fresh, shareable set of counters.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Adds to `received`.
    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds to `sent`.
    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds to `dropped`.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds to `errored`.
    pub fn add_errored(&self, n: u64) {
        self.errored.fetch_add(n, Ordering::Relaxed);
    }
    /// Reads all four counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errored: self.errored.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Display for CounterSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} sent {} dropped {} errored {}",
            self.received, self.sent, self.dropped, self.errored
        )
    }
}
