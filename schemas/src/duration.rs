//! Human-readable durations in configuration files (`"500ms"`, `"10s"`, `"5m"`, `"1h"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::scaled::{UnitText, parse_scaled};

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
        let how = UnitText {
            kind: "duration",
            example: "`10s`, `500ms`, `5m`",
            units: "ns, us, ms, s, m, h or d",
        };
        // A compound duration (`2h30m`, `1m 30s`) is the sum of its terms.
        let terms = terms(text);
        let mut nanos = 0u64;
        for term in &terms {
            let scaled = parse_scaled(term, &how, |unit| match unit {
                "ns" => Some(1.0),
                "us" | "µs" => Some(1e3),
                "ms" => Some(1e6),
                "s" => Some(1e9),
                "m" | "min" => Some(60e9),
                "h" => Some(3600e9),
                "d" => Some(86400e9),
                _ => None,
            });
            let within = |e: String| match terms.len() {
                1 => e,
                _ => format!("{e} (in `{}`)", text.trim()),
            };
            nanos = scaled
                .map_err(within)?
                .checked_add(nanos)
                .ok_or_else(|| format!("duration `{}` is out of range", text.trim()))?;
        }
        Ok(Self(Duration::from_nanos(nanos)))
    }
}

/// The terms of a duration: each a number and what follows it up to the next number
/// (`"2h 30m"` gives `"2h "` and `"30m"`); text with one number is one term.
fn terms(text: &str) -> Vec<&str> {
    let text = text.trim();
    let numeric = |c: char| c.is_ascii_digit() || c == '.';
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_unit = false;
    for (i, c) in text.char_indices() {
        if numeric(c) && in_unit {
            terms.push(&text[start..i]);
            start = i;
        }
        in_unit = !numeric(c);
    }
    terms.push(&text[start..]);
    terms
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
        assert_eq!(
            "2h30x".parse::<HumanDuration>().unwrap_err(),
            "duration `30x` has unknown unit `x`; use ns, us, ms, s, m, h or d (in `2h30x`)"
        );
        assert!(
            "1h30"
                .parse::<HumanDuration>()
                .unwrap_err()
                .contains("`30` has no unit")
        );
    }

    #[test]
    fn compound_durations_are_summed() {
        for (text, secs) in [
            ("2h30m", 9000.0),
            ("1m 30s", 90.0),
            ("  1d1h ", 90_000.0),
            ("1s500ms", 1.5),
            ("10 s", 10.0),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0.as_secs_f64(), secs, "{text}");
        }
        assert_eq!(
            "2h30m".parse::<HumanDuration>().unwrap().to_string(),
            "150m"
        );
    }
}
