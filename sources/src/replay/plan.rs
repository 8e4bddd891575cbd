//! Listing a trace table's row groups and dealing them to workers.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampNanosecondType};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::RowGroupMetaData;
use datafusion::parquet::file::statistics::Statistics;
use meshflow_schemas::TimestampNs;

use super::ReplayError;
use super::range::{Overlap, TimeRange};

/// One row group of one file: the unit of replay work given to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayUnit {
    /// The Parquet file.
    pub path: PathBuf,
    /// Row group index within the file.
    pub row_group: usize,
    /// Rows the unit delivers: all of the row group's, or those in the plan's range.
    pub rows: u64,
    /// Whether some of its rows lie outside the plan's range and must be filtered out.
    pub filter: bool,
    /// The earliest and latest event time of its rows (within the plan's range), from
    /// the footer statistics; `None` when they are not recorded.
    pub span: Option<(TimestampNs, TimestampNs)>,
}

impl ReplayUnit {
    /// Whether `self`, which starts no earlier than a set of units reaching `end`
    /// (`None`: unknown), may hold rows before that end: then they must be handed
    /// out together, or its rows would fall behind the others' watermark (a row at
    /// the watermark itself is on time).
    pub fn overlaps(&self, end: Option<TimestampNs>) -> bool {
        match (self.span, end) {
            (Some((start, _)), Some(end)) => start < end,
            _ => true,
        }
    }
}

/// A file left out of the replay, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

/// The row groups of one trace table, by event time, and the files skipped.
#[derive(Clone, Debug, Default)]
pub struct ReplayPlan {
    /// Units in replay order: by their earliest event time (those without statistics
    /// first), then path and row group. Files need not follow each other in time (a
    /// sink writes several buckets for the same minutes), so path order is not time
    /// order.
    pub units: Vec<ReplayUnit>,
    /// Files that were bad and skipped (only with `skip_bad_files`).
    pub skipped: Vec<SkippedFile>,
    /// The event-time range replayed (of the time column given to [`ReplayPlan::in_range`]).
    pub range: TimeRange,
    /// Row groups left unread because none of their rows lies in the range.
    pub pruned: usize,
    /// The earliest event time planned, from the row groups' statistics: where paced
    /// replay starts its clock.
    pub start: Option<TimestampNs>,
    /// The latest event time planned, from the row groups' statistics; `None` when the
    /// plan is empty or a row group has no statistics.
    pub end: Option<TimestampNs>,
}

impl ReplayPlan {
    /// Plans `trace/table`: every `*.parquet` below it (hidden files excluded), checked
    /// against `required` (name and type of each column the replay reads).
    ///
    /// A missing table folder gives an empty plan, so a trace may omit event kinds.
    /// A file that cannot be opened or lacks a required column is an error naming
    /// the file, or with `skip_bad_files` is listed in [`ReplayPlan::skipped`].
    pub fn new(
        trace: &Path,
        table: &str,
        required: &SchemaRef,
        skip_bad_files: bool,
    ) -> Result<Self, ReplayError> {
        Self::plan(trace, table, required, None, skip_bad_files)
    }

    /// Like [`ReplayPlan::new`], limited to the rows whose `time_column` (a nanosecond
    /// timestamp) lies in `range`. Row groups whose footer statistics put them wholly
    /// outside the range are never read and those wholly inside are read unfiltered.
    /// The others have their time column read once here, so [`ReplayUnit::rows`] is
    /// exact, and are filtered row by row when replayed.
    pub fn in_range(
        trace: &Path,
        table: &str,
        required: &SchemaRef,
        time_column: &str,
        range: TimeRange,
        skip_bad_files: bool,
    ) -> Result<Self, ReplayError> {
        let time = Some((time_column, range));
        Self::plan(trace, table, required, time, skip_bad_files)
    }

    fn plan(
        trace: &Path,
        table: &str,
        required: &SchemaRef,
        time: Option<(&str, TimeRange)>,
        skip_bad_files: bool,
    ) -> Result<Self, ReplayError> {
        if !trace.is_dir() {
            return Err(ReplayError::Trace {
                path: trace.to_path_buf(),
                reason: "is not a folder".into(),
            });
        }
        let dir = trace.join(table);
        let mut plan = ReplayPlan {
            range: time.map(|(_, range)| range).unwrap_or_default(),
            ..ReplayPlan::default()
        };
        if !dir.exists() {
            return Ok(plan);
        }
        let mut files = Vec::new();
        list_parquet(&dir, &mut files)?;
        files.sort();
        for path in files {
            match plan_file(&path, required, time) {
                Ok(file) => {
                    let first = plan.units.is_empty();
                    plan.end = match (first, plan.end, file.end) {
                        (_, _, None) if !file.units.is_empty() => None,
                        (_, _, None) => plan.end,
                        (true, _, Some(end)) => Some(end),
                        (false, Some(a), Some(b)) => Some(a.max(b)),
                        (false, None, Some(_)) => None,
                    };
                    plan.units.extend(file.units);
                    plan.pruned += file.pruned;
                    plan.start = earliest(plan.start, file.start);
                }
                Err(reason) if skip_bad_files => {
                    tracing::warn!(file = %path.display(), %reason, "skipping bad file");
                    plan.skipped.push(SkippedFile { path, reason });
                }
                Err(reason) => return Err(ReplayError::BadFile { path, reason }),
            }
        }
        // Stable: units with the same start stay in path order.
        plan.units.sort_by_key(|u| u.span.map(|s| s.0));
        Ok(plan)
    }

    /// The units worker `index` of `peers` replays: every `peers`-th, starting at
    /// `index`, in replay order.
    pub fn for_worker(&self, index: usize, peers: usize) -> impl Iterator<Item = &ReplayUnit> {
        self.units.iter().skip(index).step_by(peers.max(1))
    }

    /// Total rows planned.
    pub fn rows(&self) -> u64 {
        self.units.iter().map(|u| u.rows).sum()
    }
}

fn list_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    let err = |e: std::io::Error| ReplayError::Trace {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']));
        if hidden {
            continue;
        }
        if path.is_dir() {
            list_parquet(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// One file's share of a plan.
#[derive(Default)]
struct FilePlan {
    units: Vec<ReplayUnit>,
    pruned: usize,
    start: Option<TimestampNs>,
    /// Latest event time of the planned units; `None` if one lacks statistics.
    end: Option<TimestampNs>,
}

/// Opens a file's footer, checks the required columns, and plans its row groups: all
/// of them, or with a bounded `time` range those that hold rows in it.
fn plan_file(
    path: &Path,
    required: &SchemaRef,
    time: Option<(&str, TimeRange)>,
) -> Result<FilePlan, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = builder.schema();
    for field in required.fields() {
        match schema.field_with_name(field.name()) {
            Err(_) => return Err(format!("column `{}` is missing", field.name())),
            Ok(found) if !compatible(found.data_type(), field.data_type()) => {
                return Err(format!(
                    "column `{}` has type {}, expected {}",
                    field.name(),
                    found.data_type(),
                    field.data_type()
                ));
            }
            Ok(_) => {}
        }
    }
    if let Some((column, _)) = time {
        match schema.field_with_name(column).map(|f| f.data_type()) {
            Ok(DataType::Timestamp(TimeUnit::Nanosecond, _)) => {}
            Ok(other) => {
                return Err(format!(
                    "time column `{column}` has type {other}, expected a nanosecond timestamp"
                ));
            }
            Err(_) => return Err(format!("time column `{column}` is missing")),
        }
    }
    let mut plan = FilePlan::default();
    for (i, group) in builder.metadata().row_groups().iter().enumerate() {
        let all_rows = group.num_rows().max(0) as u64;
        let Some((column, range)) = time else {
            plan.units.push(unit(path, i, all_rows, false, None));
            continue;
        };
        let stats = time_statistics(group, column);
        let overlap = match stats {
            _ if range.is_all() => Overlap::Full,
            Some((min, max)) => range.overlap(min, max),
            None => Overlap::Partial,
        };
        let rows = match overlap {
            Overlap::None => 0,
            Overlap::Full => all_rows,
            Overlap::Partial => count_in_range(path, i, column, &range)
                .map_err(|e| format!("row group {i}: {e}"))?,
        };
        if rows == 0 {
            plan.pruned += 1;
            continue;
        }
        let min = stats.map(|(min, _)| range.from.map_or(min, |from| min.max(from)));
        let max = stats.map(|(_, max)| range.to.map_or(max, |to| max.min(TimestampNs(to.0 - 1))));
        let span = min.zip(max);
        plan.units
            .push(unit(path, i, rows, overlap == Overlap::Partial, span));
        plan.start = earliest(plan.start, min);
        plan.end = match (plan.units.len(), plan.end, max) {
            (1, _, max) => max,
            (_, Some(end), Some(max)) => Some(end.max(max)),
            _ => None,
        };
    }
    Ok(plan)
}

fn unit(
    path: &Path,
    row_group: usize,
    rows: u64,
    filter: bool,
    span: Option<(TimestampNs, TimestampNs)>,
) -> ReplayUnit {
    ReplayUnit {
        path: path.to_path_buf(),
        row_group,
        rows,
        filter,
        span,
    }
}

fn earliest(a: Option<TimestampNs>, b: Option<TimestampNs>) -> Option<TimestampNs> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The `[min, max]` of a row group's INT64 time column from the footer, if recorded.
fn time_statistics(group: &RowGroupMetaData, column: &str) -> Option<(TimestampNs, TimestampNs)> {
    let chunk = group
        .columns()
        .iter()
        .find(|c| c.column_descr().path().string() == column)?;
    match chunk.statistics()? {
        Statistics::Int64(s) => Some((TimestampNs(*s.min_opt()?), TimestampNs(*s.max_opt()?))),
        _ => None,
    }
}

/// Reads one row group's time column and counts its rows in `range`.
fn count_in_range(
    path: &Path,
    row_group: usize,
    column: &str,
    range: &TimeRange,
) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), [column]);
    let reader = builder
        .with_projection(mask)
        .with_row_groups(vec![row_group])
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    let mut count = 0;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let times = batch
            .column(0)
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| format!("time column `{column}` is not a nanosecond timestamp"))?;
        count += times
            .iter()
            .flatten()
            .filter(|t| range.contains(TimestampNs(*t)))
            .count() as u64;
    }
    Ok(count)
}

fn compatible(found: &DataType, expected: &DataType) -> bool {
    use datafusion::arrow::datatypes::DataType::*;
    match (found, expected) {
        (Timestamp(a, _), Timestamp(b, _)) => a == b,
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (a, b) => a == b,
    }
}
