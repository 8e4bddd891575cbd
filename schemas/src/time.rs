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

impl std::str::FromStr for TimestampNs {
    type Err = String;

    /// Parses an instant given as RFC 3339 (`2026-01-01T00:05:00Z`, any offset, optional
    /// fraction) or as seconds since the epoch (`1767225900`, `1767225900.25`).
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = |why: &str| {
            format!(
                "`{text}` is neither an RFC 3339 time (e.g. 2026-01-01T00:05:00Z) nor seconds since the epoch ({why})"
            )
        };
        if text.starts_with(|c: char| c.is_ascii_digit() || c == '-')
            && !text.contains([':', 'T', 't'])
        {
            return epoch_seconds(text).ok_or_else(|| bad("not a number of seconds in range"));
        }
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| bad(&e.to_string()))?;
        parsed
            .timestamp_nanos_opt()
            .map(TimestampNs)
            .ok_or_else(|| bad("outside the years 1678..2262 that nanosecond timestamps cover"))
    }
}

/// `[-]SECONDS[.FRACTION]` (at most nanosecond precision) as nanoseconds since the epoch.
fn epoch_seconds(text: &str) -> Option<TimestampNs> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let nanos_of_fraction = format!("{fraction:0<9}").parse::<i64>().ok()?;
    let nanos = whole
        .parse::<i64>()
        .ok()?
        .checked_mul(NANOS_PER_SEC)?
        .checked_add(nanos_of_fraction)?;
    Some(TimestampNs(if negative { -nanos } else { nanos }))
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

    #[test]
    fn instants_parse_from_rfc3339_or_epoch_seconds() {
        let t = |s: &str| s.parse::<TimestampNs>().unwrap().0;
        let base = 1_767_225_600 * NANOS_PER_SEC;
        assert_eq!(t("2026-01-01T00:00:00Z"), base);
        assert_eq!(t("2026-01-01T01:00:00+01:00"), base);
        assert_eq!(t("2026-01-01T00:00:00.25Z"), base + 250_000_000);
        assert_eq!(t("1767225600"), base);
        assert_eq!(t(" 1767225600.000000001 "), base + 1);
        assert_eq!(t("-1.5"), -1_500_000_000);
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "1.2.3",
            "1e9",
            "1.0000000001",
        ] {
            let err = bad.parse::<TimestampNs>().unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }
}
