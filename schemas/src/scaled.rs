//! Parsing of a number followed by a unit, shared by [`crate::HumanDuration`] and
//! [`crate::ByteSize`], so both read and complain alike.

/// How one kind of quantity is written, for its error messages.
pub(crate) struct UnitText<'a> {
    /// The quantity's name (`duration`, `size`).
    pub kind: &'a str,
    /// Examples of well-formed values.
    pub example: &'a str,
    /// The units it knows, listed.
    pub units: &'a str,
}

/// Parses `text` as a decimal number followed by a unit that `scale` knows, and
/// gives the number times the unit's scale, rounded. Each error names `text` and
/// what is wrong with it.
pub(crate) fn parse_scaled(
    text: &str,
    how: &UnitText<'_>,
    scale: impl Fn(&str) -> Option<f64>,
) -> Result<u64, String> {
    let UnitText {
        kind,
        example,
        units,
    } = how;
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{kind} `{text}` has no unit; write e.g. {example}"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{kind} `{text}` does not start with a number"))?;
    let unit = unit.trim();
    let scale = scale(unit)
        .ok_or_else(|| format!("{kind} `{text}` has unknown unit `{unit}`; use {units}"))?;
    let scaled = value * scale;
    if !scaled.is_finite() || scaled < 0.0 || scaled > u64::MAX as f64 {
        return Err(format!("{kind} `{text}` is out of range"));
    }
    Ok(scaled.round() as u64)
}
