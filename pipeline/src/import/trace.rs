//! The trace folder an import writes: after a successful import it holds exactly the
//! tables this import wrote, so no table of an earlier trace mixes into its replay.

use std::path::Path;

use meshflow_schemas::{ArrowRecord, GroundTruth, INPUT_TABLES, NodeName, TopologyEdge};

use super::{ImportError, ImportReport};

/// The tables of a trace: the input tables replay reads, the given topology and node
/// names (`meshflow import metrics`), and the simulator's ground truth.
pub fn trace_tables() -> impl Iterator<Item = &'static str> {
    INPUT_TABLES
        .into_iter()
        .chain([TopologyEdge::TABLE, NodeName::TABLE, GroundTruth::TABLE])
}

/// Removes from `out` the trace tables (see [`trace_tables`]) that an import which
/// wrote `written` did not write: an earlier trace's, which replay would otherwise
/// mix in. Call it only after the import succeeded. A folder is removed only if it
/// is a table, holding nothing but Parquet files (in partition folders) and
/// temporary files; anything else there is left as it was, with a warning. Removed
/// tables are listed in [`ImportReport::removed`].
pub(crate) fn remove_other_tables(
    out: &Path,
    written: &[&str],
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    for table in trace_tables().filter(|t| !written.contains(t)) {
        let dir = out.join(table);
        if !dir.is_dir() {
            continue;
        }
        let output_err = |e: std::io::Error| ImportError::Output {
            path: dir.clone(),
            reason: e.to_string(),
        };
        match other_file(&dir).map_err(output_err)? {
            Some(file) => report.warn(format!(
                "{} was left as it was: it is not a table of an earlier trace (it holds {})",
                dir.display(),
                file.display()
            )),
            None => {
                std::fs::remove_dir_all(&dir).map_err(output_err)?;
                report.removed.push(table);
            }
        }
    }
    Ok(())
}

/// A file below `dir` that is neither Parquet nor a writer's temporary, if any.
fn other_file(dir: &Path) -> std::io::Result<Option<std::path::PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if let Some(other) = other_file(&path)? {
                return Ok(Some(other));
            }
        } else if !path
            .extension()
            .is_some_and(|e| e == "parquet" || e == "tmp")
        {
            return Ok(Some(path));
        }
    }
    Ok(None)
}
