//! Writing one table's rows into rolled, atomically renamed Parquet files.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::basic::{
    Compression, Encoding, LogicalType, Type as PhysicalType, ZstdLevel,
};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnDescriptor;
use meshflow_schemas::{ArrowRecord, Counters, NodeFeatures, TimestampNs};

use super::encoder::{Chunk, Encoder};
use super::{ParquetSinkConfig, SinkError, WriteMode};

/// Maps an I/O error to a [`SinkError`] naming what was done and where.
pub(super) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |source| SinkError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `root/table`, applies the write mode, and removes temporary files a crash
/// may have left. Call it once per table before any writer starts.
pub fn prepare_table_dir(root: &Path, table: &str, mode: WriteMode) -> Result<PathBuf, SinkError> {
    let dir = root.join(table);
    if dir.exists() {
        match mode {
            WriteMode::Overwrite => {
                fs::remove_dir_all(&dir).map_err(io("removing earlier output", &dir))?
            }
            WriteMode::ErrorIfExists => {
                if contains_parquet(&dir)? {
                    return Err(SinkError::Exists { path: dir });
                }
                remove_temporaries(&dir)?;
            }
        }
    }
    fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    Ok(dir)
}

/// Calls `visit` with every file below `dir`, at any depth.
pub(super) fn walk(
    dir: &Path,
    visit: &mut dyn FnMut(&Path) -> Result<(), SinkError>,
) -> Result<(), SinkError> {
    for entry in fs::read_dir(dir).map_err(io("listing", dir))? {
        let path = entry.map_err(io("listing", dir))?.path();
        if path.is_dir() {
            walk(&path, visit)?;
        } else {
            visit(&path)?;
        }
    }
    Ok(())
}

fn contains_parquet(dir: &Path) -> Result<bool, SinkError> {
    let mut found = false;
    walk(dir, &mut |p| {
        found |= p.extension().is_some_and(|e| e == "parquet");
        Ok(())
    })?;
    Ok(found)
}

fn remove_temporaries(dir: &Path) -> Result<(), SinkError> {
    walk(dir, &mut |p| {
        if p.extension().is_some_and(|e| e == "tmp") {
            fs::remove_file(p).map_err(io("removing stale temporary", p))?;
        }
        Ok(())
    })
}

/// Tables whose numbers are byte-stream split: the bytes of equal significance then
/// lie together, where zstd finds the runs that counters (small values in wide
/// integers) and values rounded from `f32` (the neighbourhood aggregates) leave. For
/// `node_features` its floats took the same space in less of the encoder's time,
/// and its traffic counters, nearly all distinct, 40% less than the dictionary they
/// overflowed (benchmarks/README.md, sessions 28 and 29). Full-precision doubles (the
/// anomaly scores) compress worse split, so the other tables keep plain encoding.
const SPLIT_TABLES: [&str; 1] = [NodeFeatures::TABLE];

/// The column of [`SPLIT_TABLES`] that holds rows' node ids, ascending within each
/// window: delta-encoded, it takes a few bytes per row group instead of a dictionary.
const NODE_COLUMN: &str = "node";

/// How the sink encodes one leaf column, if not by default (dictionary first).
fn column_encoding(split: bool, column: &ColumnDescriptor) -> Option<Encoding> {
    let top_level = column.max_rep_level() == 0;
    let timestamp = matches!(
        column.logical_type_ref(),
        Some(LogicalType::Timestamp { .. })
    );
    match column.physical_type() {
        PhysicalType::FLOAT | PhysicalType::DOUBLE if split => Some(Encoding::BYTE_STREAM_SPLIT),
        PhysicalType::FLOAT | PhysicalType::DOUBLE => Some(Encoding::PLAIN),
        PhysicalType::INT32 | PhysicalType::INT64 if split && top_level && !timestamp => {
            if column.path().string() == NODE_COLUMN {
                Some(Encoding::DELTA_BINARY_PACKED)
            } else {
                Some(Encoding::BYTE_STREAM_SPLIT)
            }
        }
        _ => None,
    }
}

/// The Parquet settings of every file the sink writes for `table`: zstd at the
/// configured level, row groups of `row_group_rows` (the encoder cuts them, whatever
/// the chunks it is given), page statistics (for pruning), and no dictionary for the
/// `schema`'s floating-point leaf columns, lists of floats included: measured values
/// rarely repeat, so a dictionary there only costs the encoder an intern per value
/// before it falls back to plain encoding. The tables of [`SPLIT_TABLES`] split
/// their numbers instead, and delta-encode the node id ([`column_encoding`]).
pub(super) fn writer_properties(
    cfg: &ParquetSinkConfig,
    table: &str,
    schema: &Schema,
) -> WriterProperties {
    let level = ZstdLevel::try_new(cfg.zstd_level).unwrap_or_default();
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page);
    let split = SPLIT_TABLES.contains(&table);
    // The leaves as the writer lays them out; a schema it cannot convert fails when
    // the file is opened, with the writer's own error.
    let leaves = ArrowSchemaConverter::new().convert(schema);
    leaves
        .iter()
        .flat_map(|descr| descr.columns())
        .fold(builder, |b, c| match column_encoding(split, c) {
            Some(encoding) => b
                .set_column_dictionary_enabled(c.path().clone(), false)
                .set_column_encoding(c.path().clone(), encoding),
            None => b,
        })
        .build()
}

struct OpenFile<R> {
    /// The span the file is named after: its first row's.
    span: i64,
    /// The span of its latest row (later than `span` when coalescing).
    latest: i64,
    /// Rows written to it.
    rows: usize,
    encoder: Encoder<R>,
}

/// One hour of event time, in ns: a file never crosses an hour partition.
const HOUR_NS: i64 = 3_600_000_000_000;

/// Rows handed to the encoder at most at a time: the row buffer stays small however
/// large the row groups (the encoder cuts those).
const CHUNK_ROWS: usize = 8192;

/// Rolled files still being completed at most at once; a writer with more waits for
/// the oldest (only a disk slower than the roll interval gets there).
const MAX_CLOSING: usize = 4;

/// Writes one bucket of one table: rows must arrive in non-decreasing event time.
///
/// Rows are handed in chunks to the open file's encoder thread, which writes row
/// groups of `row_group_rows`. When a row of a later span arrives, the file is
/// closed (when coalescing, only once it holds `row_group_rows` rows or the hour
/// changes; otherwise the row joins it): its encoder completes, syncs and renames it into place on its own thread
/// (syncing a file took a live window's close from 30 to 390 ms), and an error it
/// hits is returned by a later call. [`TableWriter::finish`] waits for every file.
/// File contents depend only on the rows, never on timing, chunking or worker count.
pub struct TableWriter<R: ArrowRecord> {
    dir: PathBuf,
    bucket: u32,
    roll_ns: i64,
    /// Rows a file reaches before a coalescing writer closes it at a span's end.
    row_group_rows: usize,
    /// Whether files stay open across spans of the hour while small
    /// ([`ParquetSinkConfig::coalesce`]).
    coalesce: bool,
    chunk_rows: usize,
    props: WriterProperties,
    open: Option<OpenFile<R>>,
    /// Rolled files being completed, oldest first.
    closing: VecDeque<Encoder<R>>,
    buffer: Vec<R>,
    /// Names of extra nullable text columns appended after the record's own.
    extra_names: Vec<String>,
    /// Buffered extra values, one vector per extra column, aligned with `buffer`.
    extra_values: Vec<Vec<Option<String>>>,
    counters: Arc<Counters>,
}

impl<R: ArrowRecord> TableWriter<R> {
    /// A writer for `bucket` into the prepared table folder `dir`.
    pub fn new(
        dir: PathBuf,
        bucket: u32,
        cfg: &ParquetSinkConfig,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            dir,
            bucket,
            roll_ns: cfg.roll_interval.as_nanos_i64(),
            row_group_rows: cfg.row_group_rows,
            coalesce: cfg.coalesce,
            chunk_rows: cfg.row_group_rows.min(CHUNK_ROWS),
            props: writer_properties(cfg, R::TABLE, &R::schema()),
            open: None,
            closing: VecDeque::new(),
            buffer: Vec::new(),
            extra_names: Vec::new(),
            extra_values: Vec::new(),
            counters,
        }
    }

    /// Adds nullable text columns after the record's own (an importer keeps input
    /// columns meshflow has no field for, such as labels, next to the rows). Readers
    /// that project the record's columns ignore them.
    pub fn with_extra_columns(mut self, names: Vec<String>) -> Self {
        self.extra_values = vec![Vec::new(); names.len()];
        self.extra_names = names;
        self
    }

    /// Appends rows (in non-decreasing event time), rolling files at span boundaries.
    /// Extra columns, if any, are null for these rows.
    pub fn write(&mut self, rows: impl IntoIterator<Item = R>) -> Result<(), SinkError> {
        for row in rows {
            self.push(row, &[])?;
        }
        Ok(())
    }

    /// Appends one row with the values of the extra columns, in their order; missing
    /// trailing values are null.
    pub fn write_with_extras(
        &mut self,
        row: R,
        extras: &[Option<String>],
    ) -> Result<(), SinkError> {
        self.push(row, extras)
    }

    fn push(&mut self, row: R, extras: &[Option<String>]) -> Result<(), SinkError> {
        let time = row.event_time();
        let span = time.0.div_euclid(self.roll_ns) * self.roll_ns;
        match self.open.as_mut() {
            Some(open) if open.latest == span => {}
            Some(open) if open.latest > span => {
                return Err(SinkError::OutOfOrder {
                    table: R::TABLE,
                    time,
                });
            }
            Some(open)
                if self.coalesce
                    && open.rows < self.row_group_rows
                    && open.span.div_euclid(HOUR_NS) == span.div_euclid(HOUR_NS) =>
            {
                open.latest = span;
            }
            _ => {
                self.close_file()?;
                self.open = Some(self.open_file(span)?);
            }
        }
        if let Some(open) = self.open.as_mut() {
            open.rows += 1;
        }
        self.counters.add_received(1);
        self.buffer.push(row);
        for (i, column) in self.extra_values.iter_mut().enumerate() {
            column.push(extras.get(i).cloned().flatten());
        }
        if self.buffer.len() >= self.chunk_rows {
            self.send_chunk()?;
        }
        Ok(())
    }

    /// The schema of the files: the record's, plus the extra text columns.
    fn file_schema(&self) -> SchemaRef {
        if self.extra_names.is_empty() {
            return R::schema();
        }
        let mut fields: Vec<Field> = R::schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            self.extra_names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true)),
        );
        Arc::new(Schema::new(fields))
    }

    /// Completes the open file, if any, renames it into place, and waits until every
    /// rolled file is complete too.
    /// Returns the first error, after every file that can land has.
    pub fn finish(&mut self) -> Result<(), SinkError> {
        let mut result = self.close_file();
        while !self.closing.is_empty() {
            let landed = self.reap_oldest();
            result = result.and(landed);
        }
        result
    }

    fn open_file(&self, span: i64) -> Result<OpenFile<R>, SinkError> {
        let (date, hour) = TimestampNs(span).date_hour();
        let folder = self
            .dir
            .join(format!("date={date}"))
            .join(format!("hour={hour:02}"));
        fs::create_dir_all(&folder).map_err(io("creating", &folder))?;
        let name = format!(
            "part-{:011}-{:04}.parquet",
            span.div_euclid(1_000_000_000),
            self.bucket
        );
        let dest = folder.join(&name);
        let tmp = folder.join(format!(".{name}.tmp"));
        let encoder = Encoder::start(
            tmp,
            dest,
            self.file_schema(),
            self.props.clone(),
            self.counters.clone(),
        )?;
        Ok(OpenFile {
            span,
            latest: span,
            rows: 0,
            encoder,
        })
    }

    /// Hands the buffered rows to the open file's encoder, then joins the encoders
    /// of rolled files that have stopped.
    fn send_chunk(&mut self) -> Result<(), SinkError> {
        self.hand_over()?;
        self.reap_finished()
    }

    /// Hands the buffered rows to the open file's encoder.
    fn hand_over(&mut self) -> Result<(), SinkError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(file) = self.open.as_mut() else {
            return Ok(());
        };
        let chunk = Chunk {
            rows: std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk_rows)),
            extras: self.extra_values.iter_mut().map(std::mem::take).collect(),
        };
        file.encoder.send(chunk)
    }

    /// Joins the rolled files' encoders that have stopped, returning the first
    /// error one hit.
    fn reap_finished(&mut self) -> Result<(), SinkError> {
        while self.closing.front().is_some_and(Encoder::is_finished) {
            self.reap_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest rolled file to be in place.
    fn reap_oldest(&mut self) -> Result<(), SinkError> {
        let Some(mut encoder) = self.closing.pop_front() else {
            return Ok(());
        };
        encoder.finish()
    }

    /// Closes the open file: its encoder completes and renames it in the background.
    /// It joins the rolled files only once queued among them, so an older file's
    /// error never keeps it from landing.
    fn close_file(&mut self) -> Result<(), SinkError> {
        let handed = self.hand_over();
        if let Some(OpenFile { mut encoder, .. }) = self.open.take() {
            encoder.close();
            self.closing.push_back(encoder);
        }
        handed?;
        while self.closing.len() > MAX_CLOSING {
            self.reap_oldest()?;
        }
        self.reap_finished()
    }
}

impl<R: ArrowRecord> Drop for TableWriter<R> {
    fn drop(&mut self) {
        // Rolled files hold complete spans: let them land.
        while !self.closing.is_empty() {
            let _ = self.reap_oldest();
        }
        if let Some(file) = self.open.take() {
            // Unfinished output is never renamed into place; remove the partial file.
            let tmp = file.encoder.tmp().to_path_buf();
            drop(file.encoder);
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// Writes a whole table in one go (prepare, sort by event time, write, finish):
/// for small tables such as the simulator's ground truth.
pub fn write_table<R: ArrowRecord>(
    root: &Path,
    mut rows: Vec<R>,
    cfg: &ParquetSinkConfig,
) -> Result<PathBuf, SinkError> {
    let dir = prepare_table_dir(root, R::TABLE, cfg.mode)?;
    rows.sort_by_key(|r| r.event_time());
    let mut writer = TableWriter::<R>::new(dir.clone(), 0, cfg, Counters::shared());
    writer.write(rows)?;
    writer.finish()?;
    Ok(dir)
}
