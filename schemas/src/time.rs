//! Event time: nanoseconds since the Unix epoch, UTC.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch, UTC; stored in Parquet as `TIMESTAMP(ns, UTC)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TimestampNs(pub i64);

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

impl TimestampNs {
    /// Builds a timestamp from whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        Self(secs * NANOS_PER_SEC)
    }

    /// The UTC calendar date and hour of this instant, used for Hive partitions.
    pub fn date_hour(self) -> (String, u32) {
        let dt = self.to_datetime();
        (
            format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day()),
            dt.hour(),
        )
    }

    /// Converts to a chrono UTC datetime.
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_nanos(self.0)
    }
}

impl fmt::Display for TimestampNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_datetime().format("%Y-%m-%dT%H:%M:%S%.9fZ"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_hour_is_utc() {
        let t = TimestampNs::from_secs(1_767_225_600 + 3 * 3600 + 59); // 2026-01-01T03:00:59Z
        assert_eq!(t.date_hour(), ("2026-01-01".to_string(), 3));
        assert_eq!(t.to_string(), "2026-01-01T03:00:59.000000000Z");
    }
}
