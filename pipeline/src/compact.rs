//! `meshflow compact`: merging each settled partition's small files into one.

use std::path::Path;
use std::time::Duration;

use meshflow_sinks::parquet::{CompactReport, ParquetSinkConfig, compact_table};

/// Compacts the tables of the output folder `out` (all of them, or those named in
/// `tables`) whose partitions have had no new file for `settle`, and returns a line
/// per table saying what was done. A folder that is not a meshflow table is reported
/// and left alone.
pub fn compact(out: &Path, tables: &[String], settle: Duration) -> anyhow::Result<String> {
    anyhow::ensure!(out.is_dir(), "{} is not an output folder", out.display());
    let mut names: Vec<String> = if tables.is_empty() {
        std::fs::read_dir(out)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect()
    } else {
        tables.to_vec()
    };
    names.sort();
    let cfg = ParquetSinkConfig::default();
    let mut text = String::new();
    for name in names {
        let dir = out.join(&name);
        anyhow::ensure!(
            dir.is_dir(),
            "table `{name}`: {} does not exist",
            dir.display()
        );
        let Some(time) = meshflow_schemas::time_column(&name) else {
            text.push_str(&format!("{name}: not a meshflow table, left alone\n"));
            continue;
        };
        let report = compact_table(&dir, time, settle, &cfg)
            .map_err(|e| anyhow::anyhow!("table `{name}`: {e}"))?;
        text.push_str(&line(&name, &report));
    }
    Ok(text)
}

fn line(name: &str, r: &CompactReport) -> String {
    let mut s = format!(
        "{name}: {} partitions compacted ({} files into {}, {} rows)",
        r.partitions, r.files_in, r.partitions, r.rows
    );
    if r.unsettled > 0 {
        s.push_str(&format!(", {} still being written left alone", r.unsettled));
    }
    if r.recovered > 0 {
        s.push_str(&format!(
            ", {} interrupted compactions finished",
            r.recovered
        ));
    }
    s.push('\n');
    for (folder, reason) in &r.skipped {
        s.push_str(&format!("  skipped {}: {reason}\n", folder.display()));
    }
    s
}
