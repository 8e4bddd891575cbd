//! Where meshflow's events come from.
//!
//! Every source is partitionable by worker: given `(worker, peers)` it yields only
//! its share of the input, so timely's multi-process mode needs no extra layer.
//!
//! - [`simulator`]: the seeded mesh simulator with ground-truth faults (the default).
//! - [`replay`]: historical Parquet traces, split by row group across workers.
//! - [`ebpf`]: live kernel telemetry from the programs in `bpf/`, read from BPF ring
//!   buffers with aya (one loader per process, owned by its first worker).
//! - [`kafka`]: events from Kafka topics (the Kafka sink's JSON), partitions spread
//!   over workers, offsets committed once the windows that used them are written.
//!
//! Each hands the dataflow [`batch::SourceBatch`]es of mixed events.

pub mod batch;
pub mod duration;
pub mod ebpf;
pub mod kafka;
pub mod replay;
pub mod simulator;

pub use batch::SourceBatch;
pub use duration::HumanDuration;
