//! What a replay reads: flow columns (the fast path) or whole records of any table.

use std::fs::File;
use std::ops::Range;

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meshflow_schemas::{ArrowRecord, TimestampNs};

use super::read::read_flow_columns;
use super::{FlowColumns, ReplayError, ReplayUnit, TimeRange};

/// A buffer of replayed rows in event-time order: what a [`super::ReplayWorker`] fills.
pub trait ReplayRows: Default + Send {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keeps the first `len` rows.
    fn truncate(&mut self, len: usize);
    /// Event time of row `i`.
    fn time(&self, i: usize) -> TimestampNs;
    /// Orders the rows by event time, keeping the order of equal times.
    fn sort_by_time(&mut self);
    /// Appends `rows` of `other`.
    fn extend_from(&mut self, other: &Self, rows: Range<usize>);
    /// Appends one row group's rows in `range` (all of them unless the unit is marked
    /// for filtering). On error `out` may hold part of the unit; callers discard it.
    fn read_unit(unit: &ReplayUnit, range: &TimeRange, out: &mut Self) -> Result<(), ReplayError>;
}

impl ReplayRows for FlowColumns {
    fn len(&self) -> usize {
        FlowColumns::len(self)
    }
    fn truncate(&mut self, len: usize) {
        FlowColumns::truncate(self, len);
    }
    fn time(&self, i: usize) -> TimestampNs {
        self.last_seen[i]
    }
    fn sort_by_time(&mut self) {
        FlowColumns::sort_by_time(self);
    }
    fn extend_from(&mut self, other: &Self, rows: Range<usize>) {
        FlowColumns::extend_from(self, other, rows);
    }
    fn read_unit(unit: &ReplayUnit, range: &TimeRange, out: &mut Self) -> Result<(), ReplayError> {
        read_flow_columns(unit, range, out)
    }
}

impl<R: ArrowRecord + Sync> ReplayRows for Vec<R> {
    fn len(&self) -> usize {
        <[R]>::len(self)
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    fn time(&self, i: usize) -> TimestampNs {
        self[i].event_time()
    }
    fn sort_by_time(&mut self) {
        self.sort_by_key(|r| r.event_time());
    }
    fn extend_from(&mut self, other: &Self, rows: Range<usize>) {
        self.extend_from_slice(&other[rows]);
    }
    fn read_unit(unit: &ReplayUnit, range: &TimeRange, out: &mut Self) -> Result<(), ReplayError> {
        let bad = |reason: String| ReplayError::BadFile {
            path: unit.path.clone(),
            reason: format!("row group {}: {reason}", unit.row_group),
        };
        let file = File::open(&unit.path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| {
                b.with_row_groups(vec![unit.row_group])
                    .with_batch_size(64 * 1024)
                    .build()
            })
            .map_err(|e| bad(e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| bad(e.to_string()))?;
            let rows = R::from_batch(&batch).map_err(|e| bad(e.to_string()))?;
            if unit.filter {
                out.extend(rows.into_iter().filter(|r| range.contains(r.event_time())));
            } else {
                out.extend(rows);
            }
        }
        Ok(())
    }
}
