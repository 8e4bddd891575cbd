//! meshflow's dataflow operators, maintained incrementally with differential dataflow.
//!
//! Time in the dataflow is the *epoch*: event time coarsened to a fixed width (1 s by
//! default), because per-nanosecond timestamps would swamp timely's progress tracking.
//! Sliding windows are expressed as inserts at the first window that contains a record
//! and retractions when the window slides past it ([`window::WindowSpec`]).
//!
//! - [`features`]: per-node, per-window features (traffic, degrees, retransmits and
//!   drops, RTT and system-call quantiles, metric means), their 1- and 2-hop
//!   neighbourhood aggregates and connected components, written as `node_features`.
//! - [`sketch`]: the mergeable quantile sketch behind the RTT and latency quantiles.
//! - [`raw`]: raw input records (metrics, TCP events, system calls) as streams that
//!   close with the windows, for writing them as tables.
//! - [`anomaly`]: per-node anomaly scores, thresholds, health states and their
//!   explanation, from the closed windows' features.
//! - [`fork`]: passes a stream on whole while a projection of each record goes to a
//!   second reader, so that reader does not get a clone of every record.
//! - [`emit`]: turns a windowed differential collection into complete rows per
//!   closed window, once the frontier has passed it.
//! - [`batches`]: containers sized by row count, for streams of large rows.

pub mod anomaly;
pub mod batches;
pub mod chunked;
pub mod emit;
pub mod features;
pub mod fork;
pub mod hash;
pub mod prefetch;
pub mod raw;
pub mod sketch;
pub mod total;
pub mod window;
