//! meshflow's dataflow operators, maintained incrementally with differential dataflow.
//!
//! Time in the dataflow is the *epoch*: event time coarsened to a fixed width (1 s by
//! default), because per-nanosecond timestamps would swamp timely's progress tracking.
//! Sliding windows are expressed as inserts at the first window that contains a record
//! and retractions when the window slides past it ([`window::WindowSpec`]).
//!
//! - [`traffic`]: per-node, per-window traffic aggregation (bytes, packets, flows in
//!   and out, in/out degree, distinct peers), written as `node_features`.
//! - [`raw`]: raw input records (metrics, TCP events, system calls) as streams that
//!   close with the windows, for writing them as tables.
//! - [`anomaly`]: per-node anomaly scores, thresholds, health states and their
//!   explanation, from the closed windows' features.
//! - [`emit`]: turns a windowed differential collection into complete rows per
//!   closed window, once the frontier has passed it.

pub mod anomaly;
pub mod emit;
pub mod hash;
pub mod raw;
pub mod traffic;
pub mod window;
