//! `meshflow sql`: SQL over the Parquet output with DataFusion.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

/// A session with every table folder under `out` registered by its folder name, with
/// its Hive partitions (`date`, `hour`) as columns.
pub async fn session(out: &Path) -> anyhow::Result<(SessionContext, Vec<String>)> {
    let ctx = SessionContext::new();
    let mut tables = Vec::new();
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
        let url = ListingTableUrl::parse(format!("{}/", std::fs::canonicalize(&dir)?.display()))?;
        let partitioned = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("date="));
        let mut options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if partitioned {
            options = options.with_table_partition_cols(vec![
                ("date".into(), DataType::Utf8),
                ("hour".into(), DataType::Utf8),
            ]);
        }
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await?;
        ctx.register_table(name.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        tables.push(name);
    }
    Ok((ctx, tables))
}

/// Runs one query and returns its result batches.
pub async fn query(out: &Path, sql: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let (ctx, tables) = session(out).await?;
    let df = ctx.sql(sql).await.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("not found") {
            anyhow::anyhow!(
                "{msg}\navailable tables: {}",
                if tables.is_empty() {
                    "(none)".to_string()
                } else {
                    tables.join(", ")
                }
            )
        } else {
            anyhow::anyhow!("{msg}")
        }
    })?;
    Ok(df.collect().await?)
}
