//! The job configuration (`meshflow.toml`): sources, window, sinks and workers.
//!
//! Every table rejects unknown keys, and [`JobConfig::validate`] names the key and
//! the reason for any invalid value. `meshflow.example.toml` documents every option.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshflow_schemas::HumanDuration;
use meshflow_sinks::parquet::ParquetSinkConfig;
use meshflow_sources::ebpf::EbpfConfig;
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
}

impl Default for JobSection {
    fn default() -> Self {
        Self {
            workers: 1,
            epoch: HumanDuration::from_secs(1),
            lateness: HumanDuration::from_secs(0),
            progress_interval: "250ms".parse().expect("valid literal"),
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
    /// A Parquet trace, replayed as fast as possible.
    Replay(ReplaySourceConfig),
    /// Live kernel telemetry from this host's eBPF programs (needs root or CAP_BPF,
    /// CAP_NET_ADMIN and CAP_PERFMON).
    Ebpf(EbpfConfig),
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
}

/// `[sinks]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksSection {
    /// The Parquet sink.
    pub parquet: ParquetSinkConfig,
}

/// An invalid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses TOML text (without validating values).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
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
        if let Err(reason) = self.window_spec() {
            let key = if reason.starts_with("slide") {
                "window.slide"
            } else {
                "window.length"
            };
            return invalid(key, reason);
        }
        if self.sources.is_empty() {
            return invalid(
                "sources",
                "is empty; configure at least one source, e.g. [sources.mesh] type = \"simulator\""
                    .into(),
            );
        }
        for (name, source) in &self.sources {
            match source {
                SourceConfig::Simulator(sim) => {
                    sim.validate().map_err(|e| ConfigError::Invalid {
                        key: format!("sources.{name}"),
                        reason: e.to_string(),
                    })?
                }
                SourceConfig::Replay(replay) if replay.path.as_os_str().is_empty() => {
                    return invalid(&format!("sources.{name}.path"), "must not be empty".into());
                }
                SourceConfig::Replay(_) => {}
                SourceConfig::Ebpf(ebpf) => ebpf.validate().map_err(|e| ConfigError::Invalid {
                    key: format!("sources.{name}.{}", e.key),
                    reason: e.reason,
                })?,
            }
        }
        self.sinks.parquet.validate().map_err(|e| match e {
            meshflow_sinks::parquet::SinkError::Config { key, reason } => ConfigError::Invalid {
                key: format!("sinks.parquet.{key}"),
                reason,
            },
            other => ConfigError::Invalid {
                key: "sinks.parquet".into(),
                reason: other.to_string(),
            },
        })
    }

    /// The window geometry in epochs.
    pub fn window_spec(&self) -> Result<meshflow_operators::window::WindowSpec, String> {
        meshflow_operators::window::WindowSpec::new(
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

#[cfg(test)]
mod tests;
