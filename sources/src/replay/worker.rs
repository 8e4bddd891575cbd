//! One worker's share of a replay: its row groups in order, as fast as possible or
//! paced by event time against the wall clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use meshflow_schemas::{Counters, TimestampNs};

use super::read::read_flow_columns;
use super::{FlowColumns, ReplayError, ReplayPlan, ReplayUnit, SkippedFile, TimeRange};

/// The longest a paced read sleeps before handing control back to the worker loop.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Reads one worker's row groups of a [`ReplayPlan`].
#[derive(Debug)]
pub struct ReplayWorker {
    units: std::vec::IntoIter<ReplayUnit>,
    range: TimeRange,
    skip_bad_files: bool,
    pace: Option<Pace>,
    /// Paced replay: the current row group's flows in time order, and the next to give.
    pending: FlowColumns,
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

impl ReplayWorker {
    /// Worker `index` of `peers`'s share of `plan`. With `speed`, flows are handed out
    /// when the wall clock, running `speed` times faster than event time from the
    /// plan's start, reaches them; without, as fast as they can be read.
    pub fn new(
        plan: &ReplayPlan,
        index: usize,
        peers: usize,
        skip_bad_files: bool,
        speed: Option<f64>,
    ) -> Self {
        Self {
            units: plan
                .for_worker(index, peers)
                .cloned()
                .collect::<Vec<_>>()
                .into_iter(),
            range: plan.range,
            skip_bad_files,
            pace: speed.map(|speed| Pace {
                speed,
                wall: Instant::now(),
                anchor: plan.start,
            }),
            pending: FlowColumns::default(),
            next: 0,
            newest: None,
            done: false,
        }
    }

    /// Appends the next flows to `out`; returns `false` once every row group is read.
    /// A paced replay may return `true` with nothing added while it waits. Rows read
    /// go to `counters.received`; a bad row group, with `skip_bad_files`, goes to
    /// `counters.errored` and `skipped`, and otherwise fails the replay.
    pub fn next_batch(
        &mut self,
        out: &mut FlowColumns,
        counters: &Counters,
        skipped: &Mutex<Vec<SkippedFile>>,
    ) -> Result<bool, ReplayError> {
        if self.done {
            return Ok(false);
        }
        let before = out.len();
        if self.pace.is_none() {
            if !self.read_next_unit(out, counters, skipped)? {
                return Ok(false);
            }
        } else {
            if self.next == self.pending.len() {
                let mut pending = std::mem::take(&mut self.pending);
                pending.clear();
                self.next = 0;
                let more = self.read_next_unit(&mut pending, counters, skipped)?;
                pending.sort_by_time();
                self.pending = pending;
                if !more {
                    return Ok(false);
                }
            }
            self.give_due(out);
        }
        let given = &out.last_seen[before..];
        counters.add_received(given.len() as u64);
        if let Some(max) = given.iter().max() {
            self.newest = Some(self.newest.map_or(*max, |n| n.max(*max)));
        }
        Ok(true)
    }

    /// The newest event time handed out so far.
    pub fn newest(&self) -> Option<TimestampNs> {
        self.newest
    }

    /// Whether every row group has been read and handed out.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads the next readable unit into `out`; `false` (and done) when none is left.
    fn read_next_unit(
        &mut self,
        out: &mut FlowColumns,
        counters: &Counters,
        skipped: &Mutex<Vec<SkippedFile>>,
    ) -> Result<bool, ReplayError> {
        loop {
            let Some(unit) = self.units.next() else {
                self.done = true;
                return Ok(false);
            };
            let before = out.len();
            match read_flow_columns(&unit, &self.range, out) {
                Ok(()) => return Ok(true),
                Err(e) if self.skip_bad_files => {
                    out.truncate(before);
                    counters.add_errored(unit.rows);
                    tracing::warn!(error = %e, "skipping unreadable row group");
                    skipped.lock().expect("skipped list").push(SkippedFile {
                        path: unit.path.clone(),
                        reason: format!("row group {}: {e}", unit.row_group),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Paced replay: moves the pending flows that are due to `out`, first sleeping
    /// (at most [`MAX_SLEEP`]) if none is.
    fn give_due(&mut self, out: &mut FlowColumns) {
        let Some(pace) = self.pace.as_mut() else {
            return;
        };
        let Some(&first) = self.pending.last_seen.get(self.next) else {
            return;
        };
        let anchor = *pace.anchor.get_or_insert(first);
        let due = |pace: &Pace, times: &[TimestampNs]| {
            let now = pace.now(anchor);
            times.partition_point(|t| *t <= now)
        };
        let mut count = due(pace, &self.pending.last_seen[self.next..]);
        if count == 0 {
            std::thread::sleep(pace.wait_for(anchor, first).min(MAX_SLEEP));
            count = due(pace, &self.pending.last_seen[self.next..]);
        }
        out.extend_from(&self.pending, self.next..self.next + count);
        self.next += count;
    }
}
