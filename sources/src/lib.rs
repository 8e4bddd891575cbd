//! Where meshflow's events come from.
//!
//! Every source is partitionable by worker: given `(worker, peers)` it yields only
//! its share of the input, so timely's multi-process mode needs no extra layer.
//!
//! - [`simulator`]: the seeded mesh simulator with ground-truth faults (the default).
//! - [`replay`]: historical Parquet traces, split by row group across workers.

pub mod duration;
pub mod replay;
pub mod simulator;

pub use duration::HumanDuration;
