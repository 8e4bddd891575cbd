//! `meshflow import`: real traces turned into meshflow traces that `meshflow replay`
//! accepts.
//!
//! - [`zeek`]: Zeek `conn.log` files → `flows/` (one record per direction that sent
//!   packets), with every Zeek column meshflow has no field for (labels included)
//!   kept as a text column of the same rows.
//! - [`metrics`]: a long-format metric CSV → `node_metrics/`, plus `nodes/` (names of
//!   the nodes) and, with an edge list, `edges/` (a given topology).
//!
//! A successful import leaves exactly its trace in the output folder: [`trace`]
//! writes it aside and swaps it in whole, removing the tables of an earlier trace; a
//! failed one leaves the folder as it was. Input may be plain or gzip. A
//! malformed line is reported with its file and line number, counted and skipped;
//! the rest is imported. Rows are sorted by event time
//! before they are written, as replay expects, so an import holds its rows in memory.

pub mod metrics;
pub mod trace;
pub mod zeek;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use meshflow_sinks::parquet::ParquetSinkConfig;

/// Lines reported in full in an [`ImportReport`]; later ones are only counted.
pub const REPORTED_LINES: usize = 20;

/// One input line that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// The input file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Input lines that held a record (headers and comments excluded).
    pub lines: u64,
    /// Rows written, per table; empty when nothing was written (no valid record).
    pub rows: Vec<(&'static str, u64)>,
    /// Malformed lines skipped.
    pub bad: u64,
    /// The first [`REPORTED_LINES`] malformed lines.
    pub bad_lines: Vec<BadLine>,
    /// What the user should know that is not a malformed line (ignored columns, a
    /// file given twice, ...), each said once.
    pub warnings: Vec<String>,
    /// Tables of an earlier trace removed from the output folder (see
    /// [`trace::remove_other_tables`]).
    pub removed: Vec<&'static str>,
}

impl ImportReport {
    /// Counts a malformed line, keeping its details if it is among the first few.
    pub fn skip(&mut self, file: &Path, line: u64, reason: impl Into<String>) {
        self.bad += 1;
        let bad = BadLine {
            file: file.to_path_buf(),
            line,
            reason: reason.into(),
        };
        tracing::debug!(%bad, "skipping malformed line");
        if self.bad_lines.len() < REPORTED_LINES {
            self.bad_lines.push(bad);
        }
    }

    /// Adds a warning for the user (see [`ImportReport::warnings`]).
    pub fn warn(&mut self, warning: impl Into<String>) {
        let warning = warning.into();
        tracing::debug!(%warning, "import warning");
        self.warnings.push(warning);
    }

    /// Rows written to `table`.
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }

    /// Why nothing was imported, for an import that wrote no row.
    pub fn why_nothing(&self) -> &'static str {
        if self.lines == 0 {
            "the input holds no record lines"
        } else if self.bad >= self.lines {
            "every record line was malformed"
        } else {
            "no record could be imported (see the warnings above)"
        }
    }

    /// A human summary: rows per table, then the malformed lines.
    pub fn text(&self, out: &Path) -> String {
        let mut text = if self.rows.is_empty() {
            format!("imported nothing; {} was left as it was\n", out.display())
        } else {
            format!(
                "imported {} input records into {}\n",
                self.lines - self.bad.min(self.lines),
                out.display()
            )
        };
        for (table, rows) in &self.rows {
            text.push_str(&format!("  {table:<14} {rows:>12} rows\n"));
        }
        if !self.removed.is_empty() {
            text.push_str(&format!(
                "removed the tables an earlier trace left in {}: {}\n",
                out.display(),
                self.removed.join(", ")
            ));
        }
        for warning in &self.warnings {
            text.push_str(&format!("warning: {warning}\n"));
        }
        if self.bad > 0 {
            text.push_str(&format!("skipped {} malformed lines:\n", self.bad));
            for bad in &self.bad_lines {
                text.push_str(&format!("  {bad}\n"));
            }
            if self.bad > self.bad_lines.len() as u64 {
                text.push_str(&format!(
                    "  ... and {} more\n",
                    self.bad - self.bad_lines.len() as u64
                ));
            }
        }
        text
    }
}

/// Why an import failed as a whole (a malformed line only skips that line).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file cannot be read.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A table an earlier trace left in the output folder cannot be removed.
    #[error("removing {path}, left by an earlier trace: {reason}")]
    Output {
        /// The table folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The trace could not be set up aside, or not moved into place; the output
    /// folder holds what it held before.
    #[error("{action} {path}: {reason}")]
    Staging {
        /// What was being done.
        action: &'static str,
        /// The folder involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Writing the trace failed; the output folder holds what it held before.
    #[error("{source}; {out} was left as it was")]
    Write {
        /// The output folder.
        out: PathBuf,
        /// What went wrong.
        source: meshflow_sinks::parquet::SinkError,
    },
}

/// The sink settings of an imported trace: one bucket (so files are in event-time
/// order) and hourly files.
pub(crate) fn trace_sink(out: &Path) -> ParquetSinkConfig {
    ParquetSinkConfig {
        path: out.to_path_buf(),
        buckets: 1,
        roll_interval: "1h".parse().expect("valid literal"),
        ..Default::default()
    }
}

/// Calls `each` with the 1-based number and the text of every line of `path` (gzip
/// when it starts with the gzip magic; see [`open_lines`]). A read error in the
/// middle of the file (a truncated gzip stream, a failing disk) ends the file: the
/// lines before it are kept, and the line where it broke is counted and reported
/// as malformed, so the import goes on with the other files.
pub(crate) fn each_line(
    path: &Path,
    progress: &ProgressBar,
    report: &mut ImportReport,
    mut each: impl FnMut(&mut ImportReport, u64, String) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    for (n, line) in open_lines(path, progress)?.enumerate() {
        let number = n as u64 + 1;
        match line {
            Ok(line) => each(report, number, line)?,
            Err(e) => {
                report.lines += 1;
                report.skip(
                    path,
                    number,
                    format!("the file cannot be read past this line ({e}); the lines before it were imported"),
                );
                break;
            }
        }
    }
    Ok(())
}

/// Reads the lines of `path` (gzip when it starts with the gzip magic), advancing
/// `progress` by the bytes of the file consumed. Lines are returned without their
/// end-of-line, and the first without a UTF-8 byte order mark (Excel writes one);
/// invalid UTF-8 is replaced, so it surfaces as a malformed value.
fn open_lines(
    path: &Path,
    progress: &ProgressBar,
) -> Result<impl Iterator<Item = std::io::Result<String>>, ImportError> {
    let input_err = |e: std::io::Error| ImportError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = BufReader::new(File::open(path).map_err(input_err)?);
    let gzip = file
        .fill_buf()
        .map_err(input_err)?
        .starts_with(&[0x1f, 0x8b]);
    let counted = Counted {
        inner: file,
        progress: progress.clone(),
    };
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::new(counted),
        )))
    } else {
        Box::new(BufReader::new(counted))
    };
    Ok(reader.split(b'\n').enumerate().map(|(n, line)| {
        let mut bytes = line?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if n == 0 && bytes.starts_with(UTF8_BOM) {
            bytes.drain(..UTF8_BOM.len());
        }
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }))
}

/// The UTF-8 byte order mark.
const UTF8_BOM: &[u8] = &[0xef, 0xbb, 0xbf];

/// `files` without repeats: a file given twice (the same canonical path) is imported
/// once, with a warning.
pub(crate) fn unique_files(files: &[PathBuf], report: &mut ImportReport) -> Vec<PathBuf> {
    let mut seen: HashMap<PathBuf, &Path> = HashMap::new();
    let mut unique = Vec::new();
    for file in files {
        let key = file.canonicalize().unwrap_or_else(|_| file.clone());
        match seen.get(&key) {
            Some(first) => report.warn(format!(
                "{} is given more than once (also as {}); it is imported once",
                file.display(),
                first.display()
            )),
            None => {
                seen.insert(key, file);
                unique.push(file.clone());
            }
        }
    }
    unique
}

/// A progress bar over the total size of `files` (drawn only on a terminal).
pub(crate) fn progress_for(files: &[PathBuf]) -> ProgressBar {
    let total = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// A reader that advances a progress bar by the bytes read through it.
struct Counted<R> {
    inner: R,
    progress: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_metrics;
#[cfg(test)]
mod tests_trace;
