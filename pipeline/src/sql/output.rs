//! Writing a query's result as a text table, CSV, JSON lines or Parquet.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::WriterBuilder as JsonWriterBuilder;
use datafusion::arrow::json::writer::LineDelimited;
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::QueryResult;

/// How `meshflow sql` writes a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A text table for people.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// Newline-delimited JSON: one object per row with every column (`null` for a
    /// missing value), timestamps as RFC 3339 text.
    Json,
    /// A Parquet file (zstd); needs `--output`.
    Parquet,
}

impl Format {
    /// Whether the format is binary, so it is never written to a terminal.
    pub fn is_binary(self) -> bool {
        self == Format::Parquet
    }
}

/// Whether CSV cannot hold a column of type `t` as it is.
fn nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

/// `schema` with each nested column as text (JSON).
fn flat_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = (schema.fields().iter())
        .map(|f| match nested(f.data_type()) {
            true => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            false => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `batch` with each nested column as its values' JSON text (`null` stays null).
fn flatten(batch: &RecordBatch, schema: &SchemaRef) -> anyhow::Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !nested(field.data_type()) {
            columns.push(column.clone());
            continue;
        }
        // One column's rows as JSON objects (`{"name": value}`), the value taken out.
        let single = RecordBatch::try_new(
            Arc::new(Schema::new(vec![field.as_ref().clone()])),
            vec![column.clone()],
        )?;
        let mut text = Vec::new();
        let mut writer = JsonWriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut text);
        writer.write(&single)?;
        writer.finish()?;
        let values = (text.split(|b| *b == b'\n'))
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut row: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(line)?;
                Ok(match row.remove(field.name()) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(value) => Some(value.to_string()),
                })
            })
            .collect::<anyhow::Result<Vec<Option<String>>>>()?;
        anyhow::ensure!(
            values.len() == column.len(),
            "column `{}`: {} rows as JSON, expected {}",
            field.name(),
            values.len(),
            column.len()
        );
        columns.push(Arc::new(StringArray::from(values)));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Writes `result` to `out` in `format`.
pub fn write_result(
    result: &QueryResult,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let table = pretty_format_batches_with_schema(result.schema.clone(), &result.batches)?;
            writeln!(out, "{table}")?;
        }
        Format::Csv => {
            // CSV has no nested values: lists (`top_features`, `metric_names`, ...) go
            // in as JSON text, converted before anything is written.
            let schema = flat_schema(&result.schema);
            let mut batches = Vec::with_capacity(result.batches.len().max(1));
            for batch in &result.batches {
                batches.push(flatten(batch, &schema)?);
            }
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(schema));
            }
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            for batch in &batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut *out);
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let mut buffer = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut buffer, result.schema.clone(), Some(props))?;
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.close()?;
            out.write_all(&buffer)?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn result() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("node", DataType::Int64, false),
            Field::new("label", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
            ],
        )
        .unwrap();
        QueryResult {
            schema,
            batches: vec![batch],
        }
    }

    fn written(result: &QueryResult, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        write_result(result, format, &mut out).unwrap();
        out
    }

    #[test]
    fn csv_and_json_lines() {
        let csv = String::from_utf8(written(&result(), Format::Csv)).unwrap();
        assert_eq!(csv, "node,label\n1,\"a,b\"\n2,\n");
        let json = String::from_utf8(written(&result(), Format::Json)).unwrap();
        assert_eq!(
            json,
            "{\"node\":1,\"label\":\"a,b\"}\n{\"node\":2,\"label\":null}\n"
        );
    }

    #[test]
    fn csv_writes_lists_as_json_text() {
        use datafusion::arrow::array::{ListBuilder, StringBuilder};
        let mut names = ListBuilder::new(StringBuilder::new());
        names.values().append_value("rtt_p99_us");
        names.values().append_value("say \"hi\", ok");
        names.append(true);
        names.append(true);
        names.append(false);
        let names = names.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("node", DataType::Int64, false),
            Field::new("top_features", names.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(names)],
        )
        .unwrap();
        let lists = QueryResult {
            schema: schema.clone(),
            batches: vec![batch],
        };
        let csv = String::from_utf8(written(&lists, Format::Csv)).unwrap();
        assert_eq!(
            csv,
            "node,top_features\n1,\"[\"\"rtt_p99_us\"\",\"\"say \\\"\"hi\\\"\", ok\"\"]\"\n2,[]\n3,\n"
        );
        let empty = QueryResult {
            schema,
            batches: vec![],
        };
        let csv = String::from_utf8(written(&empty, Format::Csv)).unwrap();
        assert_eq!(csv, "node,top_features\n");
    }

    #[test]
    fn table_and_empty_results_keep_their_header() {
        let table = String::from_utf8(written(&result(), Format::Table)).unwrap();
        assert!(table.contains("| node | label |"), "{table}");
        let empty = QueryResult {
            schema: result().schema,
            batches: vec![],
        };
        let table = String::from_utf8(written(&empty, Format::Table)).unwrap();
        assert!(table.contains("| node | label |"), "{table}");
        let csv = String::from_utf8(written(&empty, Format::Csv)).unwrap();
        assert_eq!(csv, "node,label\n");
        assert!(written(&empty, Format::Json).is_empty());
    }

    #[test]
    fn parquet_reads_back() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), written(&result(), Format::Parquet)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file.reopen().unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(batches, result().batches);
    }
}
