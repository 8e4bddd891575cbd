//! Human-readable durations in configuration files (`"500ms"`, `"10s"`, `"5m"`, `"1h"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written as a number and a unit: `ns`, `us`, `ms`, `s`, `m`, `h`, `d`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Builds one from whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The length in nanoseconds, saturating at `i64::MAX`.
    pub fn as_nanos_i64(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                format!("duration `{text}` has no unit; write e.g. `10s`, `500ms`, `5m`")
            })?;
        let (num, unit) = s.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("duration `{text}` does not start with a number"))?;
        let nanos_per_unit = match unit.trim() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            other => {
                return Err(format!(
                    "duration `{text}` has unknown unit `{other}`; use ns, us, ms, s, m, h or d"
                ));
            }
        };
        let nanos = value * nanos_per_unit;
        if !nanos.is_finite() || nanos < 0.0 || nanos > u64::MAX as f64 {
            return Err(format!("duration `{text}` is out of range"));
        }
        Ok(Self(Duration::from_nanos(nanos.round() as u64)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        let units = [
            (86_400_000_000_000u128, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
        ];
        for (size, unit) in units {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}ns")
    }
}

serde_as_text!(HumanDuration, "a duration such as \"10s\" or \"500ms\"");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units() {
        for (text, nanos) in [
            ("500ms", 500_000_000u64),
            ("10s", 10_000_000_000),
            ("5m", 300_000_000_000),
            ("1h", 3_600_000_000_000),
            ("1.5s", 1_500_000_000),
            ("250us", 250_000),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0.as_nanos() as u64, nanos, "{text}");
        }
        assert_eq!(HumanDuration::from_secs(600).to_string(), "10m");
        assert_eq!(
            "1500ms".parse::<HumanDuration>().unwrap().to_string(),
            "1500ms"
        );
    }

    #[test]
    fn rejects_bad_text_with_the_reason() {
        assert!(
            "10".parse::<HumanDuration>()
                .unwrap_err()
                .contains("no unit")
        );
        assert!(
            "10 parsecs"
                .parse::<HumanDuration>()
                .unwrap_err()
                .contains("unknown unit `parsecs`")
        );
        assert!("s".parse::<HumanDuration>().unwrap_err().contains("number"));
    }
}
