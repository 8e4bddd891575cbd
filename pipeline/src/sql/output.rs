//! Writing a query's result as a text table, CSV, JSON lines or Parquet.

use std::io::Write;

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
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            if result.batches.is_empty() {
                let empty =
                    datafusion::arrow::record_batch::RecordBatch::new_empty(result.schema.clone());
                writer.write(&empty)?;
            }
            for batch in &result.batches {
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
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
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
