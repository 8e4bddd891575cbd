//! The event-time range a replay is limited to.

use meshflow_schemas::TimestampNs;

/// Events with `from <= time < to`; an open end is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start, if any.
    pub from: Option<TimestampNs>,
    /// Exclusive end, if any.
    pub to: Option<TimestampNs>,
}

/// How a span of event times `[min, max]` (a row group's statistics) meets a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// No event of the span can be in the range: skip it unread.
    None,
    /// Some may be: read it and filter its rows.
    Partial,
    /// Every event of the span is in the range: read it without filtering.
    Full,
}

impl TimeRange {
    /// The unbounded range: every event.
    pub const ALL: TimeRange = TimeRange {
        from: None,
        to: None,
    };

    /// Whether neither end is bounded.
    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// Whether `time` lies in the range.
    pub fn contains(&self, time: TimestampNs) -> bool {
        self.from.is_none_or(|from| time >= from) && self.to.is_none_or(|to| time < to)
    }

    /// How the closed span `[min, max]` meets the range.
    pub fn overlap(&self, min: TimestampNs, max: TimestampNs) -> Overlap {
        if self.from.is_some_and(|from| max < from) || self.to.is_some_and(|to| min >= to) {
            Overlap::None
        } else if self.contains(min) && self.contains(max) {
            Overlap::Full
        } else {
            Overlap::Partial
        }
    }
}
