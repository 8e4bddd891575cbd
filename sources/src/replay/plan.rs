//! Listing a trace table's row groups and dealing them to workers.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::ReplayError;

/// One row group of one file: the unit of replay work given to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayUnit {
    /// The Parquet file.
    pub path: PathBuf,
    /// Row group index within the file.
    pub row_group: usize,
    /// Rows in the row group.
    pub rows: u64,
}

/// A file left out of the replay, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

/// The row groups of one trace table, in path order, and the files skipped.
#[derive(Clone, Debug, Default)]
pub struct ReplayPlan {
    /// Units in replay order.
    pub units: Vec<ReplayUnit>,
    /// Files that were bad and skipped (only with `skip_bad_files`).
    pub skipped: Vec<SkippedFile>,
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
        if !trace.is_dir() {
            return Err(ReplayError::Trace {
                path: trace.to_path_buf(),
                reason: "is not a folder".into(),
            });
        }
        let dir = trace.join(table);
        let mut plan = ReplayPlan::default();
        if !dir.exists() {
            return Ok(plan);
        }
        let mut files = Vec::new();
        list_parquet(&dir, &mut files)?;
        files.sort();
        for path in files {
            match inspect(&path, required) {
                Ok(groups) => {
                    plan.units
                        .extend(groups.into_iter().enumerate().map(|(row_group, rows)| {
                            ReplayUnit {
                                path: path.clone(),
                                row_group,
                                rows,
                            }
                        }))
                }
                Err(reason) if skip_bad_files => {
                    tracing::warn!(file = %path.display(), %reason, "skipping bad file");
                    plan.skipped.push(SkippedFile { path, reason });
                }
                Err(reason) => return Err(ReplayError::BadFile { path, reason }),
            }
        }
        Ok(plan)
    }

    /// The units worker `index` of `peers` replays: every `peers`-th, starting at `index`.
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

/// Opens a file's footer, checks the required columns, and returns rows per row group.
fn inspect(path: &Path, required: &SchemaRef) -> Result<Vec<u64>, String> {
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
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect())
}

fn compatible(
    found: &datafusion::arrow::datatypes::DataType,
    expected: &datafusion::arrow::datatypes::DataType,
) -> bool {
    use datafusion::arrow::datatypes::DataType::*;
    match (found, expected) {
        (Timestamp(a, _), Timestamp(b, _)) => a == b,
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (a, b) => a == b,
    }
}
