//! One worker's share of a replay: its row groups by event time, as fast as possible or
//! paced by event time against the wall clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use meshflow_schemas::{Counters, TimestampNs};

use super::rows::ReplayRows;
use super::{FlowColumns, ReplayError, ReplayPlan, ReplayUnit, SkippedFile, TimeRange};

/// Reads one worker's row groups of a [`ReplayPlan`] into `B`: flow columns by
/// default, or whole records of another table (`Vec<NodeMetric>`, ...).
#[derive(Debug)]
pub struct ReplayWorker<B = FlowColumns> {
    units: std::iter::Peekable<std::vec::IntoIter<ReplayUnit>>,
    range: TimeRange,
    skip_bad_files: bool,
    pace: Option<Pace>,
    /// Paced replay: the current row group's rows in time order, and the next to give.
    pending: B,
    next: usize,
    newest: Option<TimestampNs>,
    done: bool,
}

/// Event time against the wall clock: `speed` event seconds per wall second.
#[derive(Debug)]
struct Pace {
    speed: f64,
    wall: Instant,
    /// The event time at `wall`: the plan's start, or the first flow read.
    anchor: Option<TimestampNs>,
}

impl Pace {
    /// The event time the clock has reached (everything at or before it is due).
    fn now(&self, anchor: TimestampNs) -> TimestampNs {
        let ahead = self.wall.elapsed().as_secs_f64() * self.speed * 1e9;
        TimestampNs(anchor.0.saturating_add(ahead.min(i64::MAX as f64) as i64))
    }

    /// How long until `time` is due.
    fn wait_for(&self, anchor: TimestampNs, time: TimestampNs) -> Duration {
        let after = (time.0.saturating_sub(anchor.0)).max(0) as f64 / 1e9 / self.speed;
        let due = self.wall + Duration::from_secs_f64(after.min(1e9));
        due.saturating_duration_since(Instant::now())
    }
}

impl<B: ReplayRows> ReplayWorker<B> {
    /// Worker `index` of `peers`'s share of `plan`. With `speed`, rows are handed out
    /// when the wall clock, running `speed` times faster than event time from `start`
    /// (the plan's start when `None`; give every table of one trace the same start),
    /// reaches them; without, as fast as they can be read.
    pub fn new(
        plan: &ReplayPlan,
        index: usize,
        peers: usize,
        skip_bad_files: bool,
        speed: Option<f64>,
        start: Option<TimestampNs>,
    ) -> Self {
        Self {
            units: plan
                .for_worker(index, peers)
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .peekable(),
            range: plan.range,
            skip_bad_files,
            pace: speed.map(|speed| Pace {
                speed,
                wall: Instant::now(),
                anchor: start.or(plan.start),
            }),
            pending: B::default(),
            next: 0,
            newest: None,
            done: false,
        }
    }

    /// Appends the next rows to `out`; returns `false` once every row group is read.
    /// A paced replay blocks at most `wait` for rows to be due, and may then return
    /// `true` with nothing added. Rows read
    /// go to `counters.received`; a bad row group, with `skip_bad_files`, goes to
    /// `counters.errored` and `skipped`, and otherwise fails the replay.
    pub fn next_batch(
        &mut self,
        out: &mut B,
        counters: &Counters,
        skipped: &Mutex<Vec<SkippedFile>>,
        wait: Duration,
    ) -> Result<bool, ReplayError> {
        if self.done {
            return Ok(false);
        }
        let before = out.len();
        if self.pace.is_none() {
            if !self.read_next_units(out, counters, skipped)? {
                return Ok(false);
            }
        } else {
            if self.next == self.pending.len() {
                let mut pending = std::mem::take(&mut self.pending);
                pending.truncate(0);
                self.next = 0;
                let more = self.read_next_units(&mut pending, counters, skipped)?;
                pending.sort_by_time();
                self.pending = pending;
                if !more {
                    return Ok(false);
                }
            }
            self.give_due(out, wait);
        }
        counters.add_received((out.len() - before) as u64);
        if let Some(max) = (before..out.len()).map(|i| out.time(i)).max() {
            self.newest = Some(self.newest.map_or(max, |n| n.max(max)));
        }
        Ok(true)
    }

    /// The event time below which this reader will hand out nothing more: the next
    /// pending row's when paced, else the newest handed out (`None` before any).
    pub fn low_watermark(&self) -> Option<TimestampNs> {
        if self.next < self.pending.len() {
            Some(self.pending.time(self.next))
        } else {
            self.newest
        }
    }

    /// The newest event time handed out so far.
    pub fn newest(&self) -> Option<TimestampNs> {
        self.newest
    }

    /// Stops reading: what was not handed out yet is left unread.
    pub fn stop(&mut self) {
        self.done = true;
        self.next = self.pending.len();
    }

    /// Whether every row group has been read and handed out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads the next readable unit into `out`, with every later unit whose rows may
    /// lie at or before the end of those read (so none of them falls behind the
    /// watermark that the batch sets); `false` (and done) when no unit is left.
    fn read_next_units(
        &mut self,
        out: &mut B,
        counters: &Counters,
        skipped: &Mutex<Vec<SkippedFile>>,
    ) -> Result<bool, ReplayError> {
        let mut read = false;
        // The latest event time of the units taken; `None` once one has no statistics.
        let mut end = Some(TimestampNs(i64::MIN));
        while let Some(unit) = self.units.next_if(|u| !read || u.overlaps(end)) {
            end = end.zip(unit.span).map(|(end, (_, last))| end.max(last));
            let before = out.len();
            match B::read_unit(&unit, &self.range, out) {
                Ok(()) => read = true,
                Err(e) if self.skip_bad_files => {
                    out.truncate(before);
                    counters.add_errored(unit.rows);
                    tracing::warn!(error = %e, "skipping unreadable row group");
                    // The list names the file; a unit's reason names its row group.
                    let reason = match e {
                        ReplayError::BadFile { reason, .. } => reason,
                        other => format!("row group {}: {other}", unit.row_group),
                    };
                    skipped.lock().expect("skipped list").push(SkippedFile {
                        path: unit.path.clone(),
                        reason,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if !read {
            self.done = true;
        }
        Ok(read)
    }

    /// Paced replay: moves the pending rows that are due to `out`, first sleeping
    /// (at most `wait`) if none is.
    fn give_due(&mut self, out: &mut B, wait: Duration) {
        let Some(pace) = self.pace.as_mut() else {
            return;
        };
        if self.next >= self.pending.len() {
            return;
        }
        let first = self.pending.time(self.next);
        let anchor = *pace.anchor.get_or_insert(first);
        let pending = &self.pending;
        let next = self.next;
        // The end of the due rows: the first pending row later than the clock.
        let due_end = |pace: &Pace| {
            let now = pace.now(anchor);
            let (mut lo, mut hi) = (next, pending.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if pending.time(mid) <= now {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let mut end = due_end(pace);
        if end == next {
            std::thread::sleep(pace.wait_for(anchor, first).min(wait));
            end = due_end(pace);
        }
        out.extend_from(&self.pending, next..end);
        self.next = end;
    }
}
