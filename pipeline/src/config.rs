//! The job configuration (`meshflow.toml`): sources, window, sinks, workers and
//! anomaly scoring.
//!
//! Every table rejects unknown keys, and [`JobConfig::validate`] names the key and
//! the reason for any invalid value. `meshflow.example.toml` documents every option.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshflow_operators::anomaly::AnomalyConfig;
use meshflow_operators::window::{WindowError, WindowSpec};
use meshflow_schemas::{HumanDuration, TimestampNs};
use meshflow_sinks::kafka::{KafkaSinkConfig, KafkaSinkError};
use meshflow_sinks::parquet::ParquetSinkConfig;
use meshflow_sources::ebpf::EbpfConfig;
use meshflow_sources::kafka::KafkaSourceConfig;
use meshflow_sources::replay::TimeRange;
use meshflow_sources::simulator::SimConfig;
use serde::{Deserialize, Serialize};

/// A whole job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Execution settings.
    pub job: JobSection,
    /// Window geometry.
    pub window: WindowSection,
    /// Named sources; each worker reads its share of every source.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Sinks.
    pub sinks: SinksSection,
    /// Anomaly scoring (`anomaly_scores`).
    pub anomaly: AnomalyConfig,
}

/// `[job]`: workers, epochs and lateness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSection {
    /// Worker threads in this process.
    pub workers: usize,
    /// Width of one epoch: event time is coarsened to it for progress tracking.
    pub epoch: HumanDuration,
    /// How far behind the newest event a source's watermark trails; older events are late.
    pub lateness: HumanDuration,
    /// How often the progress line is refreshed.
    pub progress_interval: HumanDuration,
    /// A trace to replay first: the live sources then take over at its end (the next
    /// epoch boundary after its last event), without a gap or an overlap in event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_first: Option<PathBuf>,
    /// Sum the time timely schedules each operator for, and print the table at the
    /// end (where a job spends its time; costs a little per scheduling).
    pub profile_operators: bool,
}

impl Default for JobSection {
    fn default() -> Self {
        Self {
            workers: 1,
            epoch: HumanDuration::from_secs(1),
            lateness: HumanDuration::from_secs(0),
            progress_interval: "250ms".parse().expect("valid literal"),
            replay_first: None,
            profile_operators: false,
        }
    }
}

/// `[window]`: sliding window length and slide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSection {
    /// Window length; a multiple of `slide`.
    pub length: HumanDuration,
    /// Window slide; a multiple of the epoch.
    pub slide: HumanDuration,
}

impl Default for WindowSection {
    fn default() -> Self {
        Self {
            length: HumanDuration::from_secs(10),
            slide: HumanDuration::from_secs(1),
        }
    }
}

/// One source, selected by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// The seeded mesh simulator.
    Simulator(SimConfig),
    /// A Parquet trace, replayed as fast as possible or paced, optionally limited to a
    /// time range.
    Replay(ReplaySourceConfig),
    /// Live kernel telemetry from this host's eBPF programs (needs root or CAP_BPF,
    /// CAP_NET_ADMIN and CAP_PERFMON).
    Ebpf(EbpfConfig),
    /// Events from Kafka topics in the Kafka sink's JSON encoding; partitions are
    /// spread over workers and offsets committed once their windows are written.
    Kafka(KafkaSourceConfig),
}

impl SourceConfig {
    /// Whether the source delivers events as the wall clock brings them (live
    /// telemetry, a topic, a paced simulator or replay), so that a worker waits
    /// between windows rather than reading on at once.
    pub fn follows_clock(&self) -> bool {
        match self {
            SourceConfig::Simulator(sim) => sim.pace == meshflow_sources::simulator::Pace::Realtime,
            SourceConfig::Replay(replay) => replay.speed.is_some(),
            SourceConfig::Ebpf(_) | SourceConfig::Kafka(_) => true,
        }
    }

    /// Whether the source is live (kernel telemetry, a topic, a real-time simulator):
    /// its events arrive as they happen, and its output is watched as it comes. A
    /// replay, paced or not, is a trace.
    pub fn is_live(&self) -> bool {
        match self {
            SourceConfig::Replay(_) => false,
            other => other.follows_clock(),
        }
    }
}

/// `type = "replay"`: a trace folder to replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySourceConfig {
    /// The trace folder (with `flows/` inside).
    pub path: PathBuf,
    /// Skip corrupt or mismatched files (listed in the summary) instead of failing.
    #[serde(default)]
    pub skip_bad_files: bool,
    /// Replay only events at or after this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "from_time"
    )]
    pub from: Option<EventTime>,
    /// Replay only events before this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "to_time"
    )]
    pub to: Option<EventTime>,
    /// Pace events against the wall clock, `speed` times faster than real time (1 is
    /// real time); unset replays as fast as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

impl ReplaySourceConfig {
    /// A replay of the whole trace at `path`, as fast as possible.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            skip_bad_files: false,
            from: None,
            to: None,
            speed: None,
        }
    }

    /// The event-time range to replay.
    pub fn range(&self) -> TimeRange {
        TimeRange {
            from: self.from.map(|t| t.0),
            to: self.to.map(|t| t.0),
        }
    }

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            key: format!("{key}.{field}"),
            reason,
        };
        if self.path.as_os_str().is_empty() {
            return Err(invalid("path", "must not be empty".into()));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to <= from
        {
            return Err(invalid(
                "to",
                format!("({to}) must be after {key}.from ({from})"),
            ));
        }
        match self.speed {
            Some(speed) if !(speed.is_finite() && speed > 0.0) => Err(invalid(
                "speed",
                format!("is {speed}; it must be a positive number (1 = real time)"),
            )),
            _ => Ok(()),
        }
    }
}

fn from_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<EventTime>, D::Error> {
    keyed_time(d, "from")
}

fn to_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<EventTime>, D::Error> {
    keyed_time(d, "to")
}

/// An [`EventTime`] whose error names its key (an internally tagged source table
/// otherwise reports only the table).
fn keyed_time<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
) -> Result<Option<EventTime>, D::Error> {
    EventTime::deserialize(d)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("`{key}`: {e}")))
}

/// An instant in a configuration: RFC 3339 text (`"2026-01-01T00:05:00Z"`) or seconds
/// since the epoch (a number, or text holding one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime(pub TimestampNs);

impl std::fmt::Display for EventTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for EventTime {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(EventTime)
    }
}

impl Serialize for EventTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EventTime;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 time in quotes or seconds since the epoch")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EventTime, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<EventTime, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EventTime, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<EventTime, E> {
                self.visit_str(&format!("{v:.9}"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[sinks]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksSection {
    /// The Parquet sink.
    pub parquet: ParquetSinkConfig,
    /// The Kafka sink, when configured (`[sinks.kafka]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSinkConfig>,
}

/// An invalid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key and line.
        message: String,
    },
    /// A value is invalid.
    #[error("{key} {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl ConfigError {
    /// An invalid value shown at its key's line in `text` (the file at `path`) when
    /// the file sets that key, as a parse error is; any other error as it is.
    pub fn at_key(self, path: &Path, text: &str) -> Self {
        match &self {
            Self::Invalid { key, reason } => match located::at_key(text, key, reason) {
                Some(message) => Self::Parse {
                    path: path.into(),
                    message,
                },
                None => self,
            },
            _ => self,
        }
    }
}

impl JobConfig {
    /// The embedded default: the simulator with its defaults into `./meshflow-out`.
    pub fn embedded_default() -> Self {
        let mut cfg = Self::default();
        cfg.sources
            .insert("mesh".into(), SourceConfig::Simulator(SimConfig::default()));
        cfg
    }

    /// Reads a TOML file. Values are checked by [`JobConfig::validate`], after any
    /// command-line overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_text(path).map(|(cfg, _)| cfg)
    }

    /// [`JobConfig::load`], also returning the file's text, which
    /// [`ConfigError::at_key`] shows a validation error in.
    pub fn load_text(path: &Path) -> Result<(Self, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })?;
        Ok((cfg, text))
    }

    /// Parses TOML text (without validating values). A bad key or value in a
    /// source table is reported at its own line and by its key.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let message = located::source_error(text).unwrap_or_else(|| located::error(text, &e));
            located::plain_words(message.trim_end())
        })
    }

    /// Checks every value, naming the key and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason,
            })
        };
        if !(1..=512).contains(&self.job.workers) {
            return invalid(
                "job.workers",
                format!("is {}; it must be between 1 and 512", self.job.workers),
            );
        }
        if self.job.epoch.0.is_zero() {
            return invalid("job.epoch", "must be positive".into());
        }
        if self.job.progress_interval.0.is_zero() {
            return invalid("job.progress_interval", "must be positive".into());
        }
        let epoch = self.job.epoch.as_nanos_i64();
        if self.job.lateness.as_nanos_i64() % epoch != 0 {
            return invalid(
                "job.lateness",
                format!(
                    "is {}; it must be a multiple of job.epoch ({})",
                    self.job.lateness, self.job.epoch
                ),
            );
        }
        if let Err(e) = self.window_spec() {
            let (length, slide, epoch) = (self.window.length, self.window.slide, self.job.epoch);
            return match e {
                WindowError::Length { .. } => invalid(
                    "window.length",
                    format!(
                        "is {length}; it must be a positive multiple of window.slide ({slide})"
                    ),
                ),
                WindowError::Slide { .. } => invalid(
                    "window.slide",
                    format!("is {slide}; it must be a positive multiple of job.epoch ({epoch})"),
                ),
                // Checked above.
                WindowError::Epoch => invalid("job.epoch", "must be positive".into()),
            };
        }
        for (name, source) in &self.sources {
            match source {
                SourceConfig::Simulator(sim) => {
                    sim.validate().map_err(|e| ConfigError::Invalid {
                        key: format!("sources.{name}"),
                        reason: e.to_string(),
                    })?
                }
                SourceConfig::Replay(replay) => replay.validate(&format!("sources.{name}"))?,
                SourceConfig::Kafka(kafka) => {
                    kafka.validate().map_err(|e| ConfigError::Invalid {
                        key: format!("sources.{name}.{}", e.key),
                        reason: e.reason,
                    })?
                }
                SourceConfig::Ebpf(ebpf) => ebpf.validate().map_err(|e| ConfigError::Invalid {
                    key: format!("sources.{name}.{}", e.key),
                    reason: e.reason,
                })?,
            }
        }
        if let Some(sink) = self.sinks.kafka.as_ref().filter(|k| k.inputs) {
            // Reading what the job itself writes back would feed it its own events.
            let written: Vec<String> = meshflow_schemas::INPUT_TABLES
                .iter()
                .map(|t| sink.topic(t))
                .collect();
            for (name, source) in &self.sources {
                if let SourceConfig::Kafka(kafka) = source
                    && let Some(topic) = kafka.topics.iter().find(|t| written.contains(t))
                {
                    return invalid(
                        &format!("sources.{name}.topics"),
                        format!(
                            "includes `{topic}`, which this job writes its input events to (sinks.kafka.inputs = true): it would read its own events again"
                        ),
                    );
                }
            }
        }
        if let Some(kafka) = &self.sinks.kafka {
            kafka.validate().map_err(|e| match e {
                KafkaSinkError::Config { key, reason } => ConfigError::Invalid {
                    key: format!("sinks.kafka.{key}"),
                    reason,
                },
                other => ConfigError::Invalid {
                    key: "sinks.kafka".into(),
                    reason: other.to_string(),
                },
            })?;
        }
        self.anomaly.validate().map_err(|e| ConfigError::Invalid {
            key: format!("anomaly.{}", e.key),
            reason: e.reason,
        })?;
        self.sinks.parquet.validate().map_err(|e| match e {
            meshflow_sinks::parquet::SinkError::Config { key, reason } => ConfigError::Invalid {
                key: format!("sinks.parquet.{key}"),
                reason,
            },
            other => ConfigError::Invalid {
                key: "sinks.parquet".into(),
                reason: other.to_string(),
            },
        })?;
        // Last, so that a file being written shows its other mistakes first.
        if self.sources.is_empty() {
            return invalid(
                "sources",
                "is empty; configure at least one source, e.g. [sources.mesh] type = \"simulator\""
                    .into(),
            );
        }
        Ok(())
    }

    /// Every trace the job replays, with the key that names it: `job.replay_first`
    /// (whole), then each replay source with its time range and `skip_bad_files`.
    pub fn traces(&self) -> impl Iterator<Item = (String, &Path, TimeRange, bool)> + '_ {
        let first = (self.job.replay_first.iter()).map(|path| {
            (
                "job.replay_first".to_string(),
                path.as_path(),
                TimeRange::ALL,
                false,
            )
        });
        let replays = self
            .sources
            .iter()
            .filter_map(|(name, source)| match source {
                SourceConfig::Replay(replay) => Some((
                    format!("sources.{name}.path"),
                    replay.path.as_path(),
                    replay.range(),
                    replay.skip_bad_files,
                )),
                _ => None,
            });
        first.chain(replays)
    }

    /// Checks what the configuration points at, which [`JobConfig::validate`] does
    /// not: every trace it replays must exist and hold input tables that can be
    /// planned (their files' footers are read), and the output must not overwrite
    /// one ([`JobConfig::check_output`]).
    pub fn check_traces(&self) -> Result<(), ConfigError> {
        for (key, path, range, skip_bad_files) in self.traces() {
            meshflow_sources::replay::TracePlan::new(path, range, skip_bad_files).map_err(|e| {
                ConfigError::Invalid {
                    key,
                    reason: e.to_string(),
                }
            })?;
        }
        self.check_output()
    }

    /// Whether any source follows the wall clock ([`SourceConfig::follows_clock`]).
    pub fn follows_clock(&self) -> bool {
        self.sources.values().any(SourceConfig::follows_clock)
    }

    /// Whether any source is live ([`SourceConfig::is_live`]).
    pub fn has_live_source(&self) -> bool {
        self.sources.values().any(SourceConfig::is_live)
    }

    /// The replayed trace that is also the Parquet output folder, if any.
    pub fn replayed_output(&self) -> Option<&Path> {
        let out = self.sinks.parquet.path.canonicalize().ok()?;
        self.traces()
            .map(|(_, trace, ..)| trace)
            .find(|trace| trace.canonicalize().is_ok_and(|t| t == out))
    }

    /// Refuses an output folder that is a replayed trace when the job writes the
    /// input tables there: they would be overwritten while they are read.
    pub fn check_output(&self) -> Result<(), ConfigError> {
        match self.replayed_output() {
            Some(trace) if self.sinks.parquet.inputs => Err(ConfigError::Invalid {
                key: "sinks.parquet.path".into(),
                reason: format!(
                    "is the trace {} this job replays, whose input tables \
                     sinks.parquet.inputs would overwrite while they are read: write to \
                     another folder",
                    trace.display()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The window geometry in epochs.
    pub fn window_spec(&self) -> Result<WindowSpec, WindowError> {
        WindowSpec::new(
            self.job.epoch.as_nanos_i64(),
            self.window.length.as_nanos_i64(),
            self.window.slide.as_nanos_i64(),
        )
    }

    /// Lateness in epochs.
    pub fn lateness_epochs(&self) -> u64 {
        (self.job.lateness.as_nanos_i64() / self.job.epoch.as_nanos_i64().max(1)) as u64
    }
}

mod located;
#[cfg(test)]
mod tests;
