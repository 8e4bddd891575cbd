//! `meshflow sql`: SQL over the Parquet output with DataFusion.
//!
//! Every table folder under the output folder is registered by its folder name, with
//! its Hive partitions (`date`, `hour`) as text columns. A filter on the partitions
//! lists only the matching files, and so does a bound on a meshflow table's event-time
//! column (e.g. `window_end >= '2026-01-01T10:00:00Z'`), which is turned into a
//! bound on the partitions ([`prune`]).

mod output;
mod prompt;
mod prune;
mod udf;

pub use output::{Format, write_result};
pub use prompt::{
    Interrupt, Line, LineSource, Lines, Terminal, history_path, run_prompt, split_statements,
};
pub use prune::{TimePartitionedTable, partition_filters};

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

/// The Hive partition columns of meshflow's output tables.
const PARTITIONS: [&str; 2] = ["date", "hour"];

/// A query's result: its schema (kept when there are no rows) and its batches.
#[derive(Clone, Debug)]
pub struct QueryResult {
    /// The result's columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// A result of text columns, built row by row.
    fn text(columns: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<Self> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let arrays: Vec<ArrayRef> = (0..columns.len())
            .map(|i| {
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r[i]))) as ArrayRef
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Self {
            schema,
            batches: vec![batch],
        })
    }
}

/// A DataFusion session over one output folder.
pub struct SqlSession {
    ctx: SessionContext,
    tables: Vec<String>,
    warnings: Vec<String>,
}

impl SqlSession {
    /// Registers every table folder under `out` (folders starting with `.` or `_`
    /// are skipped).
    pub async fn open(out: &Path) -> anyhow::Result<Self> {
        // Footers are read when a query scans a file; reading every footer at planning
        // time too (to collect statistics) doubles the cost on a long run's many files.
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_collect_statistics(false),
        );
        udf::register(&ctx);
        let mut tables = Vec::new();
        let mut warnings = Vec::new();
        let entries = std::fs::read_dir(out)
            .map_err(|e| anyhow::anyhow!("cannot read output folder {}: {e}", out.display()))?;
        let mut dirs: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let Some(name) = dir.file_name().map(|n| n.to_string_lossy().to_string()) else {
                continue;
            };
            if name.starts_with(['.', '_']) {
                continue;
            }
            let files = parquet_files(&dir);
            warnings.extend(interrupted_compactions(&files));
            let Some(table) = listing_table(&ctx, &dir, &name, files)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read table {}: {e}", dir.display()))?
            else {
                continue;
            };
            let partitioned = PARTITIONS
                .iter()
                .all(|p| table.schema().field_with_name(p).is_ok());
            match meshflow_schemas::time_column(&name) {
                Some(time) if partitioned && table.schema().field_with_name(time).is_ok() => {
                    ctx.register_table(
                        name.as_str(),
                        Arc::new(TimePartitionedTable::new(table, time)),
                    )?;
                }
                _ => {
                    ctx.register_table(name.as_str(), table)?;
                }
            }
            tables.push(name);
        }
        Ok(Self {
            ctx,
            tables,
            warnings,
        })
    }

    /// What the user should know about the output before trusting a result: hours
    /// where an interrupted `meshflow compact` left rows twice.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The registered tables, sorted.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// The DataFusion session, for callers that need more than [`SqlSession::run`].
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one statement. Errors carry DataFusion's message; an unknown table also
    /// lists the available ones.
    pub async fn run(&self, sql: &str) -> anyhow::Result<QueryResult> {
        let df = self.ctx.sql(sql).await.map_err(|e| {
            let msg = e.to_string();
            if msg.contains("not found") {
                anyhow::anyhow!("{msg}\navailable tables: {}", self.available())
            } else {
                anyhow::anyhow!("{}", shorten_field_list(&msg))
            }
        })?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(QueryResult { schema, batches })
    }

    /// The tables as a one-column result.
    pub fn list(&self) -> anyhow::Result<QueryResult> {
        QueryResult::text(
            &["table"],
            self.tables.iter().map(|t| vec![t.clone()]).collect(),
        )
    }

    /// A table's columns: name, type, nullability, and which are partitions or the
    /// event time that partitions follow.
    pub async fn describe(&self, table: &str) -> anyhow::Result<QueryResult> {
        if !self.tables.iter().any(|t| t == table) {
            anyhow::bail!(
                "unknown table `{table}`; available tables: {}",
                self.available()
            );
        }
        let schema = self.ctx.table_provider(table).await?.schema();
        let time = meshflow_schemas::time_column(table);
        let rows = schema
            .fields()
            .iter()
            .map(|f| {
                let note = if PARTITIONS.contains(&f.name().as_str()) {
                    "partition"
                } else if Some(f.name().as_str()) == time {
                    "event time (decides date, hour)"
                } else {
                    ""
                };
                vec![
                    f.name().clone(),
                    f.data_type().to_string(),
                    if f.is_nullable() { "yes" } else { "no" }.to_string(),
                    note.to_string(),
                ]
            })
            .collect();
        QueryResult::text(&["column", "type", "nullable", "note"], rows)
    }

    fn available(&self) -> String {
        if self.tables.is_empty() {
            "(none)".to_string()
        } else {
            self.tables.join(", ")
        }
    }
}

/// Fields of DataFusion's `Valid fields are …` list shown in an error; the rest are
/// counted. A query on `node_features` would otherwise list its hundred columns.
const LISTED_FIELDS: usize = 12;

/// `msg` with DataFusion's list of valid fields (after an unknown column) cut to its
/// first [`LISTED_FIELDS`], and a pointer to `DESCRIBE`, which lists them all.
fn shorten_field_list(msg: &str) -> String {
    const LIST: &str = "Valid fields are ";
    let Some(at) = msg.find(LIST) else {
        return msg.to_string();
    };
    let (head, list) = msg.split_at(at + LIST.len());
    // The list ends at its full stop: the message's end, or a line's.
    let end = list.find(".\n").unwrap_or(list.trim_end_matches('.').len());
    let (list, tail) = list.split_at(end);
    let fields: Vec<&str> = list.split(", ").collect();
    if fields.len() <= LISTED_FIELDS {
        return msg.to_string();
    }
    format!(
        "{head}{}, … and {} more (`DESCRIBE table` lists a table's columns){tail}",
        fields[..LISTED_FIELDS].join(", "),
        fields.len() - LISTED_FIELDS,
    )
}

/// Every Parquet file below `dir`, in path order (hidden files excluded).
fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']))
        })
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for path in entries {
        if path.is_dir() {
            files.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|x| x == "parquet") {
            files.push(path);
        }
    }
    files
}

/// A warning for every folder of a table's `files` where an interrupted compaction
/// left its input files next to the merged file (a crash between the two; `meshflow
/// compact` finishes it), since a query then counts those rows twice.
fn interrupted_compactions(files: &[std::path::PathBuf]) -> Vec<String> {
    let mut folders: Vec<std::path::PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    folders.sort();
    folders.dedup();
    folders
        .into_iter()
        .filter_map(|folder| {
            let left = meshflow_sinks::parquet::left_inputs(&folder);
            (!left.is_empty()).then(|| {
                format!(
                    "warning: {}: an interrupted `meshflow compact` left {} file(s) next to \
                     their merged file, so their rows count twice here; run `meshflow compact` \
                     on this output to finish it",
                    folder.display(),
                    left.len()
                )
            })
        })
        .collect()
}

/// Parquet's magic number, at the start and the end of every file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Checks that `file` ends as a whole Parquet file does: the magic number at both
/// ends, and a footer length that fits inside the file. The Parquet reader trusts
/// that length (a damaged file made it panic, or read far past the file's end), so a
/// table's files are checked before any query reads them; this costs two small reads
/// a file, not the footer's decoding.
fn check_parquet_file(file: &Path) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len < 12 {
        return Err(format!("{len} bytes, too short for a Parquet file"));
    }
    let mut head = [0u8; 4];
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8)).map_err(|e| e.to_string())?;
    f.read_exact(&mut tail).map_err(|e| e.to_string())?;
    if &head != PARQUET_MAGIC || &tail[4..] != PARQUET_MAGIC {
        return Err("not a Parquet file (no PAR1 magic number at its start and end)".into());
    }
    let footer = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if footer > len - 12 {
        return Err(format!(
            "damaged: its footer claims {footer} bytes, the file has {len} (cut short?)"
        ));
    }
    Ok(())
}

/// A listing table over one folder, with the `date` and `hour` partitions as text
/// columns when the folder has them. A folder with no files yet is a known table with
/// its schema (e.g. `syscall_latency` when nothing was traced), or skipped if unknown.
/// `files` are the folder's Parquet files ([`parquet_files`]); each is checked first.
async fn listing_table(
    ctx: &SessionContext,
    dir: &Path,
    name: &str,
    files: Vec<std::path::PathBuf>,
) -> anyhow::Result<Option<Arc<ListingTable>>> {
    let url = ListingTableUrl::parse(format!("{}/", std::fs::canonicalize(dir)?.display()))?;
    for file in &files {
        check_parquet_file(file).map_err(|why| {
            anyhow::anyhow!(
                "{}: {why}; move it out of the output folder to query the rest",
                file.display()
            )
        })?;
    }
    let first = files.into_iter().next();
    let known = meshflow_schemas::schema_of(name);
    let empty = first.is_none();
    if empty && known.is_none() {
        return Ok(None);
    }
    let partitioned = empty
        || std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("date="));
    let format =
        || ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let mut options = format();
    if partitioned {
        options = options.with_table_partition_cols(
            PARTITIONS
                .iter()
                .map(|p| (p.to_string(), DataType::Utf8))
                .collect(),
        );
    }
    // The schema of one file stands for the table: every file of a table is written
    // with the same schema, and reading every footer at start-up would cost a second
    // per thousand files on a long run's output.
    let schema = match (first, known) {
        (Some(file), _) => {
            let url = ListingTableUrl::parse(std::fs::canonicalize(file)?.display().to_string())?;
            ListingTableConfig::new(url)
                .with_listing_options(format())
                .infer_schema(&ctx.state())
                .await?
                .file_schema
                .ok_or_else(|| anyhow::anyhow!("no schema inferred"))?
        }
        (None, Some(schema)) => schema,
        (None, None) => return Ok(None),
    };
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
}

/// Runs one query over the output folder `out` and returns its result batches.
pub async fn query(out: &Path, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    Ok(SqlSession::open(out).await?.run(sql).await?.batches)
}

#[cfg(test)]
mod tests;
