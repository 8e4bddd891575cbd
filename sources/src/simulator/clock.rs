//! A minimal RFC 3339 parser for the simulated clock's start
//! (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`).
//!
//! Only the canonical UTC form is accepted so a config means exactly one instant.

use meshflow_schemas::{NANOS_PER_SEC, TimestampNs};

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (UTC, no offset; a fraction of up to nine digits may
/// follow the seconds, as a hand-off time's display has) into a timestamp.
pub(crate) fn parse_rfc3339_utc(text: &str) -> Result<TimestampNs, String> {
    let bad = |why: &str| {
        format!("`{text}` is not a UTC time of the form YYYY-MM-DDTHH:MM:SS[.fraction]Z ({why})")
    };
    let all = text.as_bytes();
    // The seconds' fraction, if any, set apart from the fixed-width form around it.
    let (b, fraction): (Vec<u8>, &[u8]) = match all.len() {
        20 => (all.to_vec(), &[]),
        22..=30 if all[19] == b'.' => {
            let mut fixed = all[..19].to_vec();
            fixed.push(all[all.len() - 1]);
            (fixed, &all[20..all.len() - 1])
        }
        _ => return Err(bad("wrong length")),
    };
    if !fraction.iter().all(u8::is_ascii_digit) {
        return Err(bad("non-digit in the fraction of a second"));
    }
    let nanos = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(9)
        .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'));
    let shape_ok = b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && (b[19] == b'Z' || b[19] == b'z');
    if !shape_ok {
        return Err(bad("misplaced separator or missing `Z`"));
    }
    let num = |from: usize, to: usize| -> Result<u32, String> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + u32::from(c - b'0'))
            } else {
                Err(bad("non-digit in a number"))
            }
        })
    };
    let year = i64::from(num(0, 4)?);
    let month = num(5, 7)?;
    let day = num(8, 10)?;
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    let month_len = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > month_len {
        return Err(bad("day out of range for the month"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("time of day out of range"));
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    secs.checked_mul(NANOS_PER_SEC)
        .and_then(|ns| ns.checked_add(nanos))
        .map(TimestampNs)
        .ok_or_else(|| bad("outside the years 1678..2262 that nanosecond timestamps cover"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Parsing agrees with chrono's rendering of the same instant.
        #[test]
        fn parse_round_trips_through_display(
            year in 1678i64..2262, month in 1u32..=12, day in 1u32..=28,
            hour in 0u32..24, minute in 0u32..60, second in 0u32..60,
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
            // Every instant of these years fits in nanosecond timestamps.
            let shown = parse_rfc3339_utc(&text).unwrap().to_string();
            prop_assert_eq!(format!("{}Z", &shown[..19]), text);
        }
    }

    #[test]
    fn parses_canonical_utc_times() {
        assert_eq!(
            parse_rfc3339_utc("1970-01-01T00:00:00Z").unwrap(),
            TimestampNs(0)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-01-01T03:00:59Z").unwrap(),
            TimestampNs::from_secs(1_767_225_600 + 3 * 3600 + 59)
        );
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T12:00:00Z").unwrap(),
            TimestampNs::from_secs(1_709_208_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2000-03-01T00:00:00z").unwrap(),
            TimestampNs::from_secs(951_868_800)
        );
        assert_eq!(
            parse_rfc3339_utc("1969-12-31T23:59:59Z").unwrap(),
            TimestampNs::from_secs(-1)
        );
        // A fraction, as a hand-off time displays itself.
        let handoff = TimestampNs(1_767_225_620_250_000_000);
        assert_eq!(parse_rfc3339_utc(&handoff.to_string()).unwrap(), handoff);
        assert_eq!(
            parse_rfc3339_utc("2026-01-01T00:00:20.5Z").unwrap(),
            TimestampNs(1_767_225_620_500_000_000)
        );
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        for (text, why) in [
            ("2026-01-01", "wrong length"),
            ("2026-01-01T00:00:00+01:00", "wrong length"),
            ("2026-01-01 00:00:00Z", "separator"),
            ("2026-13-01T00:00:00Z", "month"),
            ("2025-02-29T00:00:00Z", "day"),
            ("2026-01-01T24:00:00Z", "time of day"),
            ("2026-0a-01T00:00:00Z", "non-digit"),
            ("2026-01-01T00:00:00.1x5Z", "fraction"),
            ("2026-01-01T00:00:00.1234567891Z", "wrong length"),
            ("3000-01-01T00:00:00Z", "outside"),
        ] {
            let err = parse_rfc3339_utc(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
