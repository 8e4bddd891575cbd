//! Compaction: merging a partition's small files into one, crash-safely.
//!
//! A long run leaves one file per roll interval and bucket in every hourly partition;
//! a sparse table (incidents, root causes) ends up as thousands of tiny files, and a
//! query pays for opening each. Compaction rewrites each settled partition's files as
//! one file sorted by event time, with the sink's writer settings.
//!
//! The steps, each surviving a crash: the merged rows are written to a hidden
//! temporary file and synced; a hidden journal naming the merged file and the inputs
//! is written and synced; the merged file is renamed into place; the inputs are
//! removed; the journal is removed. A journal found at the next compaction finishes
//! the step it records: with the merged file in place the inputs still present are
//! removed, else the temporary file is. So a partition never holds its rows twice or
//! not at all once a compaction has finished, and readers never see a partial file.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::parquet::file::statistics::Statistics;

use super::writer::{io, walk, writer_properties};
use super::{ParquetSinkConfig, SinkError};

/// The hidden journal of a compaction in progress, in the partition's folder.
const JOURNAL: &str = ".compact.journal";

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Partitions rewritten as one file.
    pub partitions: u64,
    /// Files merged away (the inputs of those partitions).
    pub files_in: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Partitions left alone because a file changed within the settle time.
    pub unsettled: u64,
    /// Partitions left alone because their files' schemas differ; each named.
    pub skipped: Vec<(PathBuf, String)>,
    /// Interrupted compactions found and finished.
    pub recovered: u64,
}

/// Compacts every partition of `table_dir` (a table folder of the sink's layout)
/// whose files are all older than `settle`, sorting rows by `time_column`.
pub fn compact_table(
    table_dir: &Path,
    time_column: &str,
    settle: Duration,
    cfg: &ParquetSinkConfig,
) -> Result<CompactReport, SinkError> {
    let mut report = CompactReport::default();
    // The folders that directly hold files, in order.
    let mut folders = BTreeSet::new();
    walk(table_dir, &mut |file| {
        folders.extend(file.parent().map(Path::to_path_buf));
        Ok(())
    })?;
    let now = SystemTime::now();
    // The table's name: its folder's (the sink's layout).
    let table = table_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for folder in folders {
        if recover(&folder)? {
            report.recovered += 1;
        }
        let files = parquet_files(&folder)?;
        if files.len() < 2 {
            continue;
        }
        let newest = files
            .iter()
            .filter_map(|f| f.metadata().and_then(|m| m.modified()).ok())
            .max()
            .unwrap_or(now);
        if now.duration_since(newest).unwrap_or_default() < settle {
            report.unsettled += 1;
            continue;
        }
        match merge(&folder, &files, table, time_column, cfg)? {
            Ok(rows) => {
                report.partitions += 1;
                report.files_in += files.len() as u64;
                report.rows += rows;
            }
            Err(reason) => report.skipped.push((folder, reason)),
        }
    }
    Ok(report)
}

/// The visible `*.parquet` files of `folder`, by name.
fn parquet_files(folder: &Path) -> Result<Vec<PathBuf>, SinkError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(folder).map_err(io("listing", folder))? {
        let path = entry.map_err(io("listing", folder))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && !name.starts_with('.') && name.ends_with(".parquet") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Finishes an interrupted compaction of `folder`, if its journal says there was one.
fn recover(folder: &Path) -> Result<bool, SinkError> {
    let journal = folder.join(JOURNAL);
    let Ok(text) = fs::read_to_string(&journal) else {
        return Ok(false);
    };
    let mut lines = text.lines();
    let (Some(tmp), Some(merged)) = (lines.next(), lines.next()) else {
        // The journal itself was cut short: nothing was renamed or removed yet.
        remove_if_present(&journal)?;
        return Ok(true);
    };
    // The merged file is written in full under its temporary name before the journal,
    // and renamed after it: while it is still there, nothing was renamed or removed.
    // (Whether `merged` exists says nothing: an earlier compacted file, an input,
    // may have the merged file's own name.)
    if folder.join(tmp).exists() {
        remove_if_present(&folder.join(tmp))?;
    } else {
        for input in lines.filter(|i| *i != merged) {
            remove_if_present(&folder.join(input))?;
        }
    }
    remove_if_present(&journal)?;
    Ok(true)
}

/// The input files an interrupted compaction of `folder` left next to its merged
/// file: their rows are in the folder twice until the next compaction finishes it.
/// Empty when no compaction was interrupted there after its rename.
pub fn left_inputs(folder: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string(folder.join(JOURNAL)) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let (Some(tmp), Some(merged)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    if folder.join(tmp).exists() {
        return Vec::new();
    }
    lines
        .filter(|i| *i != merged)
        .map(|i| folder.join(i))
        .filter(|p| p.exists())
        .collect()
}

fn remove_if_present(path: &Path) -> Result<(), SinkError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", path)(e)),
        _ => Ok(()),
    }
}

/// The smallest and largest value of the Int64-stored `column` (event times) in the
/// row groups of a Parquet file, from its footer; `None` without statistics.
fn time_span(meta: &ParquetMetaData, column: &str) -> Option<(i64, i64)> {
    let schema = meta.file_metadata().schema_descr();
    let index = (0..schema.num_columns()).find(|&i| schema.column(i).name() == column)?;
    let mut span: Option<(i64, i64)> = None;
    for group in meta.row_groups() {
        let Some(Statistics::Int64(stats)) = group.column(index).statistics() else {
            return None;
        };
        let (lo, hi) = (*stats.min_opt()?, *stats.max_opt()?);
        span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
    }
    span
}

/// `files` in runs that can be sorted one at a time: ordered by their earliest event
/// time, a file joins the run before it when its times overlap that run's. A run is
/// normally one roll interval's buckets, so a merge holds that much in memory, not
/// the partition; files without time statistics make one run of everything.
pub(super) fn runs(files: &[PathBuf], time_column: &str) -> Result<Vec<Vec<PathBuf>>, SinkError> {
    let mut spans = Vec::with_capacity(files.len());
    for file in files {
        let reader = File::open(file).map_err(io("opening", file))?;
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&reader)
            .map_err(|source| SinkError::Parquet {
                path: file.clone(),
                source,
            })?;
        match time_span(&meta, time_column) {
            Some(span) => spans.push((span, file.clone())),
            None => return Ok(vec![files.to_vec()]),
        }
    }
    spans.sort_by_key(|&((lo, hi), _)| (lo, hi));
    let mut runs: Vec<(i64, Vec<PathBuf>)> = Vec::new();
    for ((lo, hi), file) in spans {
        match runs.last_mut() {
            Some((end, run)) if lo < *end => {
                *end = (*end).max(hi);
                run.push(file);
            }
            _ => runs.push((hi, vec![file])),
        }
    }
    Ok(runs.into_iter().map(|(_, run)| run).collect())
}

/// Reads every row of `files`.
fn read_all(files: &[PathBuf]) -> Result<Vec<RecordBatch>, SinkError> {
    let mut batches = Vec::new();
    for file in files {
        let parquet = |source| SinkError::Parquet {
            path: file.clone(),
            source,
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            File::open(file).map_err(io("opening", file))?,
        )
        .and_then(|b| b.build())
        .map_err(parquet)?;
        for batch in reader {
            batches.push(batch.map_err(|e| parquet(e.into()))?);
        }
    }
    Ok(batches)
}

/// Merges `files` of `folder` into one; `Ok(Err(reason))` when they cannot be merged.
/// Runs of files overlapping in time (see [`runs`]) are sorted and written one after
/// another, so memory holds one run, not the partition.
fn merge(
    folder: &Path,
    files: &[PathBuf],
    table: &str,
    time_column: &str,
    cfg: &ParquetSinkConfig,
) -> Result<Result<u64, String>, SinkError> {
    let merged_path = merged_name(files);
    let merged_name = merged_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let tmp = folder.join(format!(".{merged_name}.tmp"));
    let parquet = |source| SinkError::Parquet {
        path: tmp.clone(),
        source,
    };
    let mut writer: Option<ArrowWriter<File>> = None;
    let mut fixed = None;
    let mut rows = 0u64;
    for run in runs(files, time_column)? {
        let batches = read_all(&run)?;
        let Some(first) = batches.first() else {
            continue;
        };
        // Every run must have the first run's schema.
        let schema = fixed.get_or_insert_with(|| first.schema()).clone();
        let refused = if let Some(b) = batches.iter().find(|b| b.schema() != schema) {
            Some(format!(
                "the files' schemas differ ({} columns against {})",
                b.num_columns(),
                schema.fields().len()
            ))
        } else {
            schema
                .index_of(time_column)
                .is_err()
                .then(|| format!("no `{time_column}` column"))
        };
        if let Some(reason) = refused {
            drop(writer);
            remove_if_present(&tmp)?;
            return Ok(Err(reason));
        }
        let time = schema.index_of(time_column).expect("checked above");
        let all = concat_batches(&schema, &batches).map_err(|e| parquet(e.into()))?;
        let order = sort_to_indices(all.column(time), None, None).map_err(|e| parquet(e.into()))?;
        let sorted = take_record_batch(&all, &order).map_err(|e| parquet(e.into()))?;
        let writer = match &mut writer {
            Some(writer) => writer,
            None => {
                let file = File::create(&tmp).map_err(io("creating", &tmp))?;
                let props = writer_properties(cfg, table, &schema);
                writer.insert(
                    ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(parquet)?,
                )
            }
        };
        writer.write(&sorted).map_err(parquet)?;
        rows += sorted.num_rows() as u64;
    }
    let Some(writer) = writer else {
        // Files without a row: nothing to merge into.
        return Ok(Ok(0));
    };
    let file = writer.into_inner().map_err(parquet)?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    drop(file);

    let journal = folder.join(JOURNAL);
    let mut text = format!(".{merged_name}.tmp\n{merged_name}\n");
    for f in files {
        text.push_str(f.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        text.push('\n');
    }
    let mut j = File::create(&journal).map_err(io("creating", &journal))?;
    j.write_all(text.as_bytes())
        .and_then(|()| j.sync_all())
        .map_err(io("writing", &journal))?;
    drop(j);
    fs::rename(&tmp, &merged_path).map_err(io("renaming into place", &merged_path))?;
    for f in files {
        if *f != merged_path {
            remove_if_present(f)?;
        }
    }
    remove_if_present(&journal)?;
    Ok(Ok(rows))
}

/// The merged file's name: the first input's span, marked as compacted
/// (`part-<span>-compacted.parquet`), so it sorts where its rows begin.
fn merged_name(files: &[PathBuf]) -> PathBuf {
    let first = files[0]
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("part");
    let span = first
        .strip_prefix("part-")
        .and_then(|rest| rest.split('-').next())
        .unwrap_or("0");
    files[0].with_file_name(format!("part-{span}-compacted.parquet"))
}
