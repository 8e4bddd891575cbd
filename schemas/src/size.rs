//! Human-readable sizes in configuration files (`"512MiB"`, `"1GiB"`, `"64KB"`).

use std::fmt;
use std::str::FromStr;

use crate::scaled::{UnitText, parse_scaled};

/// A number of bytes written as a number and a unit: `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), or as a plain
/// integer number of bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }

    /// `n` gibibytes.
    pub const fn gib(n: u64) -> Self {
        Self(n << 30)
    }
}

/// Units from largest to smallest, for printing; parsing accepts each of them.
const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(Self)
                .map_err(|_| format!("size `{text}` is out of range"));
        }
        let how = UnitText {
            kind: "size",
            example: "`512MiB`, `1GiB`",
            units: "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB",
        };
        let bytes = parse_scaled(text, &how, |unit| {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|&(_, scale)| scale as f64)
        })?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = UNITS
            .iter()
            .find(|&&(_, scale)| self.0 >= scale && self.0.is_multiple_of(scale));
        match unit {
            Some((name, scale)) => write!(f, "{}{name}", self.0 / scale),
            None => write!(f, "{}B", self.0),
        }
    }
}

serde_as_text!(ByteSize, "a size such as \"512MiB\" or a number of bytes");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units() {
        for (text, bytes) in [
            ("1GiB", 1u64 << 30),
            ("512MiB", 512 << 20),
            ("1.5GiB", 3 << 29),
            ("64KB", 64_000),
            ("10 mb", 10_000_000),
            ("0B", 0),
            ("4096", 4096),
        ] {
            let size: ByteSize = text.parse().unwrap();
            assert_eq!(size.0, bytes, "{text}");
        }
        assert_eq!(ByteSize::gib(1).to_string(), "1GiB");
        assert_eq!(ByteSize::mib(1536).to_string(), "1536MiB");
        assert_eq!(ByteSize(3_000_000).to_string(), "3MB");
        assert_eq!(ByteSize(1001).to_string(), "1001B");
        for size in [ByteSize::gib(3), ByteSize(12_345), ByteSize(0)] {
            assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }
    }

    #[test]
    fn rejects_bad_text_with_the_reason() {
        assert!("1.5".parse::<ByteSize>().unwrap_err().contains("no unit"));
        assert!(
            "10 parsecs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("unknown unit `parsecs`")
        );
        assert!("GiB".parse::<ByteSize>().unwrap_err().contains("number"));
    }

    #[test]
    fn reads_text_or_a_plain_number_of_bytes() {
        let read = |json: &str| serde_json::from_str::<ByteSize>(json).map_err(|e| e.to_string());
        assert_eq!(read("\"1GiB\""), Ok(ByteSize::gib(1)));
        assert_eq!(read("1073741824"), Ok(ByteSize::gib(1)));
        assert!(
            read("-1")
                .unwrap_err()
                .contains("does not start with a number")
        );
        assert!(read("true").unwrap_err().contains("a size such as"));
        let duration = serde_json::from_str::<crate::HumanDuration>("10").unwrap_err();
        assert!(duration.to_string().contains("no unit"), "{duration}");
    }
}
