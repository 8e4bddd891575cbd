//! The trace folder an import writes: after a successful import it holds exactly the
//! tables this import wrote, so no table of an earlier trace mixes into its replay;
//! after a failed one, what it held before.

use std::fs;
use std::path::{Path, PathBuf};

use meshflow_schemas::{ArrowRecord, GroundTruth, INPUT_TABLES, NodeName, TopologyEdge};

use meshflow_sinks::parquet::SinkError;

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

/// Writes a trace into `out` whole: `write` writes the tables `written` into a
/// staging folder ([`Staged`]), which then replace those of an earlier trace, whose
/// other tables are removed (listed in `report`). If `write` fails, `out` is left as
/// it was and the error says so.
pub(crate) fn write_whole<T>(
    out: &Path,
    written: &[&str],
    report: &mut ImportReport,
    write: impl FnOnce(&Path) -> Result<T, SinkError>,
) -> Result<T, ImportError> {
    let staged = Staged::new(out)?;
    let value = write(staged.dir()).map_err(|source| ImportError::Write {
        out: out.to_path_buf(),
        source,
    })?;
    staged.commit(written, report)?;
    Ok(value)
}

/// The prefix of the hidden folder an import writes its trace into (followed by the
/// writing process's id); `meshflow sql` and replay skip hidden folders.
const STAGING_PREFIX: &str = ".meshflow-staging-";

/// A trace written aside, in a hidden folder inside its output folder, and moved into
/// place only once every table is complete: a failure while writing (a full disk, a
/// failing device) leaves an earlier trace in the output folder as it was. Dropped
/// without [`Staged::commit`], it removes what it wrote.
pub(super) struct Staged {
    out: PathBuf,
    dir: PathBuf,
}

impl Staged {
    /// Creates the output folder if needed and an empty staging folder inside it,
    /// first removing staging folders that processes no longer running left behind
    /// (an import killed part-way).
    pub(super) fn new(out: &Path) -> Result<Staged, ImportError> {
        fs::create_dir_all(out).map_err(staging_err("creating", out))?;
        for entry in fs::read_dir(out).map_err(staging_err("listing", out))? {
            let path = entry.map_err(staging_err("listing", out))?.path();
            let pid = path.file_name().and_then(|n| {
                n.to_str()?
                    .strip_prefix(STAGING_PREFIX)?
                    .parse::<u32>()
                    .ok()
            });
            let alive = |pid: u32| Path::new("/proc").join(pid.to_string()).exists();
            if pid.is_some_and(|pid| pid == std::process::id() || !alive(pid)) {
                fs::remove_dir_all(&path).map_err(staging_err("removing the stale", &path))?;
            }
        }
        let dir = out.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        fs::create_dir(&dir).map_err(staging_err("creating", &dir))?;
        Ok(Staged {
            out: out.to_path_buf(),
            dir,
        })
    }

    /// The folder to write the trace's tables into.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the `written` tables into the output folder, each replacing the folder
    /// of that name, then removes the other tables of an earlier trace (see
    /// [`remove_other_tables`]). Should a move fail, the tables already moved are put
    /// back, so the output folder holds either the earlier trace or this one.
    fn commit(self, written: &[&str], report: &mut ImportReport) -> Result<(), ImportError> {
        let replaced = self.dir.join(".replaced");
        fs::create_dir(&replaced).map_err(staging_err("creating", &replaced))?;
        let mut moved: Vec<(&str, bool)> = Vec::new();
        for &table in written {
            let target = self.out.join(table);
            let had_earlier = target.exists();
            let step = (|| {
                if had_earlier {
                    fs::rename(&target, replaced.join(table))
                        .map_err(staging_err("moving aside the earlier", &target))?;
                }
                fs::rename(self.dir.join(table), &target)
                    .map_err(staging_err("moving into place", &target))
            })();
            if let Err(e) = step {
                self.undo(&moved, &replaced);
                if had_earlier && !target.exists() {
                    let _ = fs::rename(replaced.join(table), &target);
                }
                return Err(e);
            }
            moved.push((table, had_earlier));
        }
        remove_other_tables(&self.out, written, report)
    }

    /// Puts back the earlier tables that `moved` replaced (best effort: this runs
    /// only after a move already failed).
    fn undo(&self, moved: &[(&str, bool)], replaced: &Path) {
        for &(table, had_earlier) in moved.iter().rev() {
            let target = self.out.join(table);
            let _ = fs::rename(&target, self.dir.join(table));
            if had_earlier {
                let _ = fs::rename(replaced.join(table), &target);
            }
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove an import's staging folder");
        }
    }
}

/// An [`ImportError::Staging`] for `action` on `path`.
fn staging_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImportError {
    let path = path.to_path_buf();
    move |e| ImportError::Staging {
        action,
        path,
        reason: e.to_string(),
    }
}
