//! Human-readable durations, re-exported from the schemas crate for source configs.

pub use meshflow_schemas::duration::HumanDuration;
