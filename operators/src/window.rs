//! Epochs and sliding windows.

use meshflow_schemas::TimestampNs;

/// Geometry of the sliding windows, in epochs.
///
/// A window is identified by its exclusive end `W` (a multiple of `slide`) and covers
/// epochs `[W - length, W)`. A record at epoch `e` enters the collection at
/// [`WindowSpec::first_window`]`(e)` and is retracted at [`WindowSpec::retire`] of that,
/// so the collection at time `W` is exactly window `W`'s contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Width of one epoch in nanoseconds.
    pub epoch_ns: i64,
    /// Window length in epochs.
    pub length: u64,
    /// Window slide in epochs; `length` is a multiple of it.
    pub slide: u64,
}

/// Which width of a [`WindowSpec`] does not line up, with the widths in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The epoch is not positive.
    #[error("epoch must be positive")]
    Epoch,
    /// The slide is not a positive multiple of the epoch.
    #[error("slide ({slide_ns} ns) must be a positive multiple of the epoch ({epoch_ns} ns)")]
    Slide {
        /// The slide.
        slide_ns: i64,
        /// The epoch.
        epoch_ns: i64,
    },
    /// The length is not a positive multiple of the slide.
    #[error("length ({length_ns} ns) must be a positive multiple of the slide ({slide_ns} ns)")]
    Length {
        /// The length.
        length_ns: i64,
        /// The slide.
        slide_ns: i64,
    },
}

impl WindowSpec {
    /// Builds a spec from nanosecond widths, checking that they line up.
    pub fn new(epoch_ns: i64, length_ns: i64, slide_ns: i64) -> Result<Self, WindowError> {
        if epoch_ns <= 0 {
            return Err(WindowError::Epoch);
        }
        if slide_ns <= 0 || slide_ns % epoch_ns != 0 {
            return Err(WindowError::Slide { slide_ns, epoch_ns });
        }
        if length_ns < slide_ns || length_ns % slide_ns != 0 {
            return Err(WindowError::Length {
                length_ns,
                slide_ns,
            });
        }
        Ok(Self {
            epoch_ns,
            length: (length_ns / epoch_ns) as u64,
            slide: (slide_ns / epoch_ns) as u64,
        })
    }

    /// The epoch of an event time, or `None` for times before the Unix epoch.
    pub fn epoch_of(&self, t: TimestampNs) -> Option<u64> {
        (t.0 >= 0).then(|| (t.0 / self.epoch_ns) as u64)
    }

    /// End of the first window that contains epoch `e`: the next multiple of `slide` after `e`.
    pub fn first_window(&self, e: u64) -> u64 {
        (e / self.slide + 1) * self.slide
    }

    /// The time at which a record that entered at `first` leaves the window.
    pub fn retire(&self, first: u64) -> u64 {
        first + self.length
    }

    /// Exclusive end of window `w` as event time.
    pub fn window_end(&self, w: u64) -> TimestampNs {
        TimestampNs(w as i64 * self.epoch_ns)
    }

    /// Inclusive start of window `w` as event time.
    pub fn window_start(&self, w: u64) -> TimestampNs {
        TimestampNs((w as i64 - self.length as i64) * self.epoch_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_in_exactly_the_windows_that_cover_it() {
        let spec = WindowSpec::new(1, 6, 2).unwrap();
        for e in 0..20u64 {
            let first = spec.first_window(e);
            let windows: Vec<u64> = (first..spec.retire(first))
                .step_by(spec.slide as usize)
                .collect();
            let expected: Vec<u64> = (1..40u64)
                .filter(|&w| w % 2 == 0 && w as i64 - 6 <= e as i64 && e < w)
                .collect();
            assert_eq!(windows, expected, "epoch {e}");
        }
    }

    #[test]
    fn geometry_is_validated() {
        assert!(
            WindowSpec::new(1_000, 10_000, 3_000)
                .unwrap_err()
                .to_string()
                .contains("multiple of the slide")
        );
        assert!(
            WindowSpec::new(1_000, 10_000, 1_500)
                .unwrap_err()
                .to_string()
                .contains("multiple of the epoch")
        );
        let s = WindowSpec::new(1_000_000_000, 10_000_000_000, 1_000_000_000).unwrap();
        assert_eq!((s.length, s.slide), (10, 1));
        assert_eq!(s.window_start(12), TimestampNs(2_000_000_000));
        assert_eq!(s.epoch_of(TimestampNs(-1)), None);
    }
}
