//! The simulator's configuration: a table of the product's TOML config.

use meshflow_schemas::{FaultKind, TimestampNs};
use serde::{Deserialize, Serialize};

use super::clock::parse_rfc3339_utc;
use crate::HumanDuration;

/// Largest node count: node ids map one to one onto the addresses of 10.0.0.0/8.
pub const MAX_NODES: usize = 1 << 24;

/// Settings of the seeded mesh simulator; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Number of mesh nodes (ids `0..nodes`).
    pub nodes: usize,
    /// How the mesh is wired.
    pub topology: TopologyKind,
    /// Target mean number of neighbours per node.
    pub mean_degree: f64,
    /// Seed of every random choice: same seed, same telemetry.
    pub seed: u64,
    /// Start of the simulated clock, RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`, a fraction of
    /// a second allowed).
    pub start: String,
    /// Length of the simulated run.
    pub duration: HumanDuration,
    /// Granularity of generation: each tick yields one batch of records.
    pub tick: HumanDuration,
    /// Whether the driver emits ticks as fast as possible or in step with the wall clock.
    pub pace: Pace,
    /// Which faults to inject, and when.
    pub faults: FaultPlan,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 50,
            topology: TopologyKind::default(),
            mean_degree: 6.0,
            seed: 42,
            start: "2026-01-01T00:00:00Z".to_string(),
            duration: HumanDuration::from_secs(600),
            tick: HumanDuration::from_secs(1),
            pace: Pace::default(),
            faults: FaultPlan::default(),
        }
    }
}

/// The shape of the simulated mesh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyKind {
    /// Random geometric graph in the unit square: nodes link to everything within a radius,
    /// like radios in range of each other. The radius is chosen for `mean_degree`; a few
    /// nearest-node links are then added to connect stray components.
    #[default]
    Geometric,
    /// Barabási–Albert preferential attachment: a scale-free graph with hubs. Each new
    /// node links to `m = round(mean_degree / 2)` (at least 1) others, so the mean degree
    /// is about `2m`.
    BarabasiAlbert,
}

/// How fast the driver replays simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as the pipeline can consume.
    #[default]
    Fast,
    /// One simulated second per wall-clock second.
    Realtime,
}

/// The fault injection plan: how many faults, of which kinds, how long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultPlan {
    /// Number of faults to inject (0 disables injection).
    pub count: usize,
    /// Kinds to inject, cycled through in order.
    pub kinds: Vec<FaultKind>,
    /// Quiet time at the start so detectors can learn the baseline.
    pub warmup: HumanDuration,
    /// Shortest fault.
    pub min_duration: HumanDuration,
    /// Longest fault.
    pub max_duration: HumanDuration,
    /// Delay per hop before a cascading failure reaches the next nodes.
    pub cascade_lag: HumanDuration,
    /// How many hops a cascading failure spreads.
    pub cascade_hops: usize,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            count: 4,
            kinds: FaultKind::ALL.to_vec(),
            warmup: HumanDuration::from_secs(120),
            min_duration: HumanDuration::from_secs(30),
            max_duration: HumanDuration::from_secs(90),
            cascade_lag: HumanDuration::from_secs(5),
            cascade_hops: 2,
        }
    }
}

/// Why a simulator configuration is rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    /// A field has a value the simulator cannot use.
    #[error("simulator config: `{field}` {reason}")]
    Invalid {
        /// The offending field, as written in the config (`faults.warmup`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Shorthand for an [`SimError::Invalid`].
fn invalid(field: &'static str, reason: impl Into<String>) -> SimError {
    SimError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl SimConfig {
    /// Checks every field, naming the first offending one and why.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.nodes < 2 {
            return Err(invalid(
                "nodes",
                format!("is {}; a mesh needs at least 2 nodes", self.nodes),
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(invalid(
                "nodes",
                format!(
                    "is {}; at most {MAX_NODES} nodes fit the 10.0.0.0/8 addressing",
                    self.nodes
                ),
            ));
        }
        let max_degree = (self.nodes - 1) as f64;
        if !(self.mean_degree > 0.0 && self.mean_degree <= max_degree) {
            return Err(invalid(
                "mean_degree",
                format!(
                    "is {}; it must be in (0, nodes - 1] = (0, {max_degree}]",
                    self.mean_degree
                ),
            ));
        }
        let start = self.start_time()?;
        let tick = self.tick.as_nanos_i64();
        if tick <= 0 {
            return Err(invalid("tick", "must be longer than zero"));
        }
        let duration = self.duration.as_nanos_i64();
        if duration < tick {
            return Err(invalid(
                "duration",
                format!(
                    "is {}; it must be at least one tick ({})",
                    self.duration, self.tick
                ),
            ));
        }
        if start.0.checked_add(duration).is_none() {
            return Err(invalid(
                "duration",
                "runs past the year 2262, the end of nanosecond timestamps",
            ));
        }
        self.faults.validate(self.nodes, duration, tick)
    }

    /// The parsed start of the simulated clock.
    pub fn start_time(&self) -> Result<TimestampNs, SimError> {
        parse_rfc3339_utc(&self.start).map_err(|why| invalid("start", why))
    }

    /// Number of ticks in the run (the last one may be shorter than `tick`).
    pub(crate) fn tick_count(&self) -> u64 {
        ticks_covering(self.duration.as_nanos_i64(), self.tick.as_nanos_i64())
    }
}

/// How many ticks of `tick` ns it takes to cover `span` ns.
pub(crate) fn ticks_covering(span: i64, tick: i64) -> u64 {
    u64::try_from(span.max(0))
        .unwrap_or(0)
        .div_ceil(u64::try_from(tick.max(1)).unwrap_or(1))
}

impl FaultPlan {
    /// Checks the plan against the run it belongs to.
    fn validate(&self, nodes: usize, duration: i64, tick: i64) -> Result<(), SimError> {
        if self.min_duration.0.is_zero() {
            return Err(invalid("faults.min_duration", "must be longer than zero"));
        }
        if self.min_duration > self.max_duration {
            return Err(invalid(
                "faults.min_duration",
                format!(
                    "({}) is longer than faults.max_duration ({})",
                    self.min_duration, self.max_duration
                ),
            ));
        }
        if self.count == 0 {
            return Ok(());
        }
        if self.kinds.is_empty() {
            return Err(invalid(
                "faults.kinds",
                "is empty but faults.count > 0; list at least one kind",
            ));
        }
        if self.count > nodes {
            return Err(invalid(
                "faults.count",
                format!(
                    "is {}; each fault needs its own root node and there are only {nodes}",
                    self.count
                ),
            ));
        }
        let warmup = self.warmup.as_nanos_i64();
        if warmup >= duration {
            return Err(invalid(
                "faults.warmup",
                format!(
                    "({}) leaves no time for faults in a run of {}; it must be shorter than duration (or set faults.count = 0, `meshflow sim --faults 0`, for a run without faults)",
                    self.warmup,
                    HumanDuration(std::time::Duration::from_nanos(duration as u64))
                ),
            ));
        }
        let room = ticks_covering(duration, tick) - ticks_covering(warmup, tick);
        if (self.count as u64) > room {
            return Err(invalid(
                "faults.count",
                format!(
                    "is {}; only {room} ticks remain after warmup, one fault needs at least one",
                    self.count
                ),
            ));
        }
        Ok(())
    }
}
