//! Tests of the Parquet sink's layout, atomicity and determinism.

use std::fs;
use std::path::{Path, PathBuf};

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meshflow_schemas::{ArrowRecord, Counters, NodeMetric, TimestampNs};

use super::*;

const HOUR_NS: i64 = 3_600_000_000_000;
const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn metric(t: i64, node: u64) -> NodeMetric {
    NodeMetric {
        time: TimestampNs(t),
        node,
        metric: "rtt_ms".into(),
        value: node as f64 * 0.5,
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out.sort();
    out
}

/// The files below `dir`, as paths relative to it.
fn relative_files(dir: &Path) -> Vec<String> {
    files(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

fn read_rows(path: &Path) -> (Vec<NodeMetric>, usize) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    let groups = reader.metadata().num_row_groups();
    let rows = reader
        .build()
        .unwrap()
        .flat_map(|b| NodeMetric::from_batch(&b.unwrap()).unwrap())
        .collect();
    (rows, groups)
}

fn cfg(root: &Path) -> ParquetSinkConfig {
    ParquetSinkConfig {
        path: root.to_path_buf(),
        row_group_rows: 3,
        ..Default::default()
    }
}

#[test]
fn rows_land_in_hive_partitions_rolled_by_span_with_row_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = prepare_table_dir(tmp.path(), NodeMetric::TABLE, cfg.mode).unwrap();
    let counters = Counters::shared();
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 1, &cfg, counters.clone());
    let rows: Vec<NodeMetric> = (0..7)
        .map(|i| metric(T0 + i * 10_000_000_000, i as u64))
        .collect();
    // 0..60 s is span 0 (6 rows), 60 s is span 1; then one row in the next hour.
    w.write(rows.clone()).unwrap();
    w.write([metric(T0 + HOUR_NS + 5, 9)]).unwrap();
    w.finish().unwrap();

    let names = relative_files(&dir);
    assert_eq!(
        names,
        [
            "date=2026-01-01/hour=00/part-01767225600-0001.parquet",
            "date=2026-01-01/hour=00/part-01767225660-0001.parquet",
            "date=2026-01-01/hour=01/part-01767229200-0001.parquet",
        ]
    );
    let (first, groups) = read_rows(&files(&dir)[0]);
    assert_eq!(first, rows[..6]);
    assert_eq!(
        groups, 2,
        "6 rows with row_group_rows = 3 make two row groups"
    );
    assert_eq!(read_rows(&files(&dir)[1]).0, rows[6..]);
    assert_eq!(counters.snapshot().sent, 8);
}

#[test]
fn a_coalescing_writer_keeps_small_files_open_within_the_hour() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        coalesce: true,
        ..cfg(tmp.path())
    };
    let dir = prepare_table_dir(tmp.path(), NodeMetric::TABLE, cfg.mode).unwrap();
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 0, &cfg, Counters::shared());
    // One row a minute: the first file takes minutes 0..2 (3 rows = row_group_rows),
    // the next minutes 3..4; the next hour starts a file of its own.
    let rows: Vec<NodeMetric> = (0..5)
        .map(|i| metric(T0 + i * 60_000_000_000, i as u64))
        .collect();
    w.write(rows.clone()).unwrap();
    w.write([metric(T0 + HOUR_NS, 9)]).unwrap();
    w.finish().unwrap();
    let names = relative_files(&dir);
    assert_eq!(
        names,
        [
            "date=2026-01-01/hour=00/part-01767225600-0000.parquet",
            "date=2026-01-01/hour=00/part-01767225780-0000.parquet",
            "date=2026-01-01/hour=01/part-01767229200-0000.parquet",
        ]
    );
    assert_eq!(read_rows(&files(&dir)[0]).0, rows[..3]);
    assert_eq!(read_rows(&files(&dir)[1]).0, rows[3..]);
    // Rows of an earlier span than the file's latest are still refused.
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 1, &cfg, Counters::shared());
    w.write([metric(T0 + 120_000_000_000, 1)]).unwrap();
    assert!(w.write([metric(T0 + 60_000_000_000, 1)]).is_err());
}

#[test]
fn row_groups_span_many_chunks_and_every_row_is_counted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ParquetSinkConfig {
        row_group_rows: 20_000,
        ..cfg(tmp.path())
    };
    let dir = prepare_table_dir(tmp.path(), NodeMetric::TABLE, cfg.mode).unwrap();
    let counters = Counters::shared();
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 0, &cfg, counters.clone());
    // 50,000 rows in one span: chunks of 8,192 rows, row groups of 20,000.
    let rows: Vec<NodeMetric> = (0..50_000).map(|i| metric(T0 + i, i as u64)).collect();
    for part in rows.chunks(3_001) {
        w.write(part.to_vec()).unwrap();
    }
    w.finish().unwrap();
    let written = files(&dir);
    assert_eq!(written.len(), 1, "{written:?}");
    let (back, groups) = read_rows(&written[0]);
    assert_eq!(groups, 3, "20,000 + 20,000 + 10,000 rows");
    assert_eq!(back, rows);
    let seen = counters.snapshot();
    assert_eq!((seen.received, seen.sent), (50_000, 50_000));
}

#[test]
fn out_of_order_rows_are_refused_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = prepare_table_dir(tmp.path(), "t", cfg.mode).unwrap();
    let mut w = TableWriter::<NodeMetric>::new(dir, 0, &cfg, Counters::shared());
    w.write([metric(T0 + 120_000_000_000, 1)]).unwrap();
    let err = w.write([metric(T0, 2)]).unwrap_err();
    assert!(err.to_string().contains("arrived after"), "{err}");
}

#[test]
fn an_unfinished_file_is_never_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = prepare_table_dir(tmp.path(), "t", cfg.mode).unwrap();
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 0, &cfg, Counters::shared());
    w.write((0..5).map(|i| metric(T0 + i, i as u64))).unwrap();
    let during = files(&dir);
    assert!(
        during
            .iter()
            .all(|p| p.file_name().unwrap().to_string_lossy().starts_with('.')),
        "{during:?}"
    );
    drop(w);
    assert!(
        files(&dir).is_empty(),
        "dropping an unfinished writer removes its temporary file"
    );
}

#[test]
fn a_rolled_file_lands_without_waiting_for_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = prepare_table_dir(tmp.path(), "t", cfg.mode).unwrap();
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 0, &cfg, Counters::shared());
    let first: Vec<NodeMetric> = (0..5).map(|i| metric(T0 + i, i as u64)).collect();
    w.write(first.clone()).unwrap();
    // A row of the next span rolls the first file; its encoder completes it alone.
    w.write([metric(T0 + 60_000_000_000, 9)]).unwrap();
    let landed = dir.join("date=2026-01-01/hour=00/part-01767225600-0000.parquet");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !landed.exists() {
        assert!(std::time::Instant::now() < deadline, "{:?}", files(&dir));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(read_rows(&landed).0, first);
    drop(w);
    assert_eq!(
        files(&dir),
        [landed],
        "the open span's partial file is removed"
    );
}

#[test]
fn a_rolled_file_that_cannot_land_fails_a_later_call_and_loses_no_other_span() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = prepare_table_dir(tmp.path(), "t", cfg.mode).unwrap();
    let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 0, &cfg, Counters::shared());
    w.write([metric(T0, 1)]).unwrap();
    // A non-empty folder where the first file must go: its rename fails.
    let blocked = dir.join("date=2026-01-01/hour=00/part-01767225600-0000.parquet");
    fs::create_dir_all(blocked.join("in-the-way")).unwrap();
    w.write([metric(T0 + 60_000_000_000, 2)]).unwrap();
    let err = w.finish().unwrap_err().to_string();
    assert!(
        err.contains("renaming into place") && err.contains("part-01767225600-0000"),
        "{err}"
    );
    drop(w);
    let second = dir.join("date=2026-01-01/hour=00/part-01767225660-0000.parquet");
    assert_eq!(read_rows(&second).0, [metric(T0 + 60_000_000_000, 2)]);
}

#[test]
fn write_modes_and_stale_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t").join("date=2026-01-01").join("hour=00");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".part-1-0000.parquet.tmp"), b"partial").unwrap();
    prepare_table_dir(tmp.path(), "t", WriteMode::ErrorIfExists).unwrap();
    assert!(
        files(&tmp.path().join("t")).is_empty(),
        "stale temporaries are removed"
    );

    fs::write(dir.join("part-1-0000.parquet"), b"old").unwrap();
    let err = prepare_table_dir(tmp.path(), "t", WriteMode::ErrorIfExists).unwrap_err();
    assert!(err.to_string().contains("already holds output"), "{err}");
    prepare_table_dir(tmp.path(), "t", WriteMode::Overwrite).unwrap();
    assert!(
        files(&tmp.path().join("t")).is_empty(),
        "overwrite clears earlier output"
    );
}

#[test]
fn identical_rows_give_identical_bytes_whatever_the_call_pattern() {
    let rows: Vec<NodeMetric> = (0..50)
        .map(|i| metric(T0 + i * 1_000_000_000, i as u64 % 7))
        .collect();
    let mut outputs = Vec::new();
    for chunk in [1, 7, 50] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg(tmp.path());
        let dir = prepare_table_dir(tmp.path(), "t", cfg.mode).unwrap();
        let mut w = TableWriter::<NodeMetric>::new(dir.clone(), 0, &cfg, Counters::shared());
        for c in rows.chunks(chunk) {
            w.write(c.to_vec()).unwrap();
        }
        w.finish().unwrap();
        outputs.push(
            files(&dir)
                .iter()
                .map(|p| fs::read(p).unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn config_errors_name_the_key() {
    let mut c = ParquetSinkConfig {
        roll_interval: "7m".parse().unwrap(),
        ..Default::default()
    };
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .starts_with("sinks.parquet.roll_interval is 7m")
    );
    c.roll_interval = "5m".parse().unwrap();
    c.buckets = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .starts_with("sinks.parquet.buckets")
    );
    let err = toml::from_str::<ParquetSinkConfig>("pathh = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `pathh`"), "{err}");
}

#[test]
fn write_table_sorts_small_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = write_table(tmp.path(), vec![metric(T0 + 2, 2), metric(T0 + 1, 1)], &cfg).unwrap();
    let (rows, _) = read_rows(&files(&dir)[0]);
    assert_eq!(rows, vec![metric(T0 + 1, 1), metric(T0 + 2, 2)]);
}

/// Two buckets over two hours, rolled every minute: 2 partitions of several files.
fn rolled_output(root: &Path) -> (PathBuf, Vec<NodeMetric>) {
    let cfg = cfg(root);
    let dir = prepare_table_dir(root, "node_metrics", cfg.mode).unwrap();
    let mut all = Vec::new();
    for bucket in 0..2u32 {
        let rows: Vec<NodeMetric> = (0..40)
            .map(|i| {
                metric(
                    T0 + i * 180_000_000_000 + i64::from(bucket),
                    u64::from(bucket) * 10 + i as u64 % 3,
                )
            })
            .collect();
        all.extend(rows.clone());
        let mut w = TableWriter::<NodeMetric>::new(dir.clone(), bucket, &cfg, Counters::shared());
        w.write(rows).unwrap();
        w.finish().unwrap();
    }
    all.sort_by_key(|r| (r.time, r.node));
    (dir, all)
}

fn all_rows(dir: &Path) -> Vec<NodeMetric> {
    let mut rows: Vec<NodeMetric> = files(dir)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .flat_map(|f| read_rows(f).0)
        .collect();
    rows.sort_by_key(|r| (r.time, r.node));
    rows
}

#[test]
fn compaction_leaves_one_time_sorted_file_per_partition_with_the_same_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = rolled_output(tmp.path());
    let before = files(&dir).len();
    assert!(before > 4, "{before} files");
    // Written just now: with a settle time, nothing is touched.
    let held = compact_table(
        &dir,
        "time",
        std::time::Duration::from_secs(600),
        &cfg(tmp.path()),
    )
    .unwrap();
    assert_eq!((held.partitions, held.unsettled), (0, 2));
    assert_eq!(files(&dir).len(), before);

    let report = compact_table(&dir, "time", std::time::Duration::ZERO, &cfg(tmp.path())).unwrap();
    assert_eq!(report.partitions, 2);
    assert_eq!(report.files_in as usize, before);
    assert_eq!(report.rows as usize, want.len());
    let after = files(&dir);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after
            .iter()
            .all(|f| f.to_string_lossy().ends_with("-compacted.parquet"))
    );
    for f in &after {
        let (rows, _) = read_rows(f);
        assert!(
            rows.windows(2).all(|w| w[0].time <= w[1].time),
            "{} is sorted",
            f.display()
        );
    }
    assert_eq!(all_rows(&dir), want);
    // Compacting again changes nothing.
    let again = compact_table(&dir, "time", std::time::Duration::ZERO, &cfg(tmp.path())).unwrap();
    assert_eq!(again.partitions, 0);
    assert_eq!(all_rows(&dir), want);
}

#[test]
fn an_interrupted_compaction_is_finished_without_losing_or_doubling_rows() {
    let zero = std::time::Duration::ZERO;
    for crash_after_rename in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, want) = rolled_output(tmp.path());
        let hour0 = dir.join("date=2026-01-01").join("hour=00");
        let inputs: Vec<PathBuf> = files(&hour0);
        // Compact a copy of hour 0 elsewhere to get the merged file a crash would leave.
        let side = tempfile::tempdir().unwrap();
        let side_hour = side.path().join("t").join("h");
        fs::create_dir_all(&side_hour).unwrap();
        for f in &inputs {
            fs::copy(f, side_hour.join(f.file_name().unwrap())).unwrap();
        }
        compact_table(&side.path().join("t"), "time", zero, &cfg(tmp.path())).unwrap();
        let merged = files(&side_hour).pop().unwrap();
        let merged_name = merged.file_name().unwrap().to_str().unwrap().to_string();
        let mut journal = format!(".{merged_name}.tmp\n{merged_name}\n");
        for f in &inputs {
            journal.push_str(&format!("{}\n", f.file_name().unwrap().to_str().unwrap()));
        }
        fs::write(hour0.join(".compact.journal"), journal).unwrap();
        if crash_after_rename {
            // Renamed into place, inputs not yet removed: both visible.
            fs::copy(&merged, hour0.join(&merged_name)).unwrap();
        } else {
            fs::copy(&merged, hour0.join(format!(".{merged_name}.tmp"))).unwrap();
        }
        let report = compact_table(&dir, "time", zero, &cfg(tmp.path())).unwrap();
        assert_eq!(report.recovered, 1);
        assert_eq!(
            all_rows(&dir),
            want,
            "crash after rename: {crash_after_rename}"
        );
        assert!(
            files(&dir)
                .iter()
                .all(|f| !f.to_string_lossy().contains(".compact")
                    && !f.to_string_lossy().ends_with(".tmp")),
            "{:?}",
            files(&dir)
        );
    }
}

/// An hour compacted once, then given new files: the next compaction's merged file
/// has the name of its first input (the earlier compacted file). A crash before its
/// rename must leave every input, not take that name for the merged file's.
#[test]
fn an_interrupted_recompaction_keeps_the_earlier_compacted_file() {
    let zero = std::time::Duration::ZERO;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = rolled_output(tmp.path());
    let hour0 = dir.join("date=2026-01-01").join("hour=00");
    // Hold back the hour's later files, compact the rest, then put them back.
    let held = tempfile::tempdir().unwrap();
    let inputs = files(&hour0);
    assert!(inputs.len() >= 4, "{inputs:?}");
    for f in &inputs[inputs.len() / 2..] {
        fs::rename(f, held.path().join(f.file_name().unwrap())).unwrap();
    }
    compact_table(&dir, "time", zero, &cfg(tmp.path())).unwrap();
    for f in files(held.path()) {
        fs::rename(&f, hour0.join(f.file_name().unwrap())).unwrap();
    }
    let inputs = files(&hour0);
    let merged_name = inputs[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(merged_name.ends_with("-compacted.parquet"), "{inputs:?}");
    // What the crash leaves: the merged rows under the temporary name, the journal.
    let side = tempfile::tempdir().unwrap();
    let side_hour = side.path().join("t").join("h");
    fs::create_dir_all(&side_hour).unwrap();
    for f in &inputs {
        fs::copy(f, side_hour.join(f.file_name().unwrap())).unwrap();
    }
    compact_table(&side.path().join("t"), "time", zero, &cfg(tmp.path())).unwrap();
    let merged = files(&side_hour).pop().unwrap();
    assert_eq!(merged.file_name().unwrap().to_str().unwrap(), merged_name);
    fs::copy(&merged, hour0.join(format!(".{merged_name}.tmp"))).unwrap();
    let mut journal = format!(".{merged_name}.tmp\n{merged_name}\n");
    for f in &inputs {
        journal.push_str(&format!("{}\n", f.file_name().unwrap().to_str().unwrap()));
    }
    fs::write(hour0.join(".compact.journal"), journal).unwrap();

    let report = compact_table(&dir, "time", zero, &cfg(tmp.path())).unwrap();
    assert_eq!(report.recovered, 1);
    assert_eq!(all_rows(&dir), want, "every row kept once");
    assert_eq!(files(&hour0).len(), 1, "{:?}", files(&hour0));
}

/// The encodings of column `name` (a dotted leaf path) in the first row group of `path`.
fn encodings(path: &Path, name: &str) -> Vec<datafusion::parquet::basic::Encoding> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    let group = reader.metadata().row_group(0);
    let column = (0..group.num_columns())
        .map(|i| group.column(i))
        .find(|c| c.column_path().string() == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    column.encodings().collect()
}

/// Whether `encodings` (a column's) include a dictionary.
fn dictionary(encodings: &[datafusion::parquet::basic::Encoding]) -> bool {
    use datafusion::parquet::basic::Encoding;
    encodings
        .iter()
        .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
}

/// Writes `rows` as one table of a fresh output folder (kept alive by the returned
/// guard) and returns its one file.
fn write_one_file<R: ArrowRecord>(
    rows: impl IntoIterator<Item = R>,
) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = cfg(tmp.path());
    let dir = prepare_table_dir(tmp.path(), R::TABLE, cfg.mode).unwrap();
    let mut w = TableWriter::<R>::new(dir.clone(), 0, &cfg, Counters::shared());
    w.write(rows).unwrap();
    w.finish().unwrap();
    let file = files(&dir)[0].clone();
    (tmp, file)
}

#[test]
fn float_columns_are_written_without_a_dictionary_and_text_keeps_one() {
    use datafusion::parquet::basic::Encoding;
    let (_tmp, file) = write_one_file((0..5).map(|i| metric(T0 + i, i as u64)));
    let encodings = |name: &str| encodings(&file, name);
    assert!(!dictionary(&encodings("value")), "{:?}", encodings("value"));
    assert!(
        !encodings("value").contains(&Encoding::BYTE_STREAM_SPLIT),
        "only node_features splits its floats: {:?}",
        encodings("value")
    );
    assert!(
        dictionary(&encodings("metric")),
        "{:?}",
        encodings("metric")
    );
    assert_eq!(read_rows(&file).0.len(), 5);
}

#[test]
fn node_features_numbers_are_split_and_node_delta_encoded_and_read_back_exactly() {
    use datafusion::parquet::basic::Encoding;
    use meshflow_schemas::NodeFeatures;
    // Node ids up to u64::MAX (ids made from addresses fill all 64 bits): the delta
    // encoding of the node column wraps around and reads back exactly.
    let ids = (0..40u64).chain([u64::MAX - 3, u64::MAX, 1 << 63, (1 << 63) - 1, 41]);
    let rows: Vec<NodeFeatures> = ids
        .map(|i| {
            let mut r = NodeFeatures::empty(TimestampNs(T0), TimestampNs(T0 + 1), i);
            r.drop_rate = (i % 3 != 0).then(|| i as f64 / 7.0);
            r.bytes_in = i.wrapping_mul(1_000_003);
            r.in_degree = (i % 4) as u32;
            r.bytes_in_n1_mean = Some(f64::from(i as f32 * 1.5));
            r.metric_names = vec!["cpu_load".into()];
            r.metric_means = vec![-(i as f64) / 3.0];
            r.metric_samples = vec![i];
            r
        })
        .collect();
    let (_tmp, path) = write_one_file(rows.iter().cloned());
    for name in [
        "drop_rate",
        "bytes_in_n1_mean",
        "metric_means.list.item",
        "bytes_in",
        "in_degree",
    ] {
        let encodings = encodings(&path, name);
        assert!(
            encodings.contains(&Encoding::BYTE_STREAM_SPLIT) && !dictionary(&encodings),
            "{name}: {encodings:?}"
        );
    }
    let node = encodings(&path, "node");
    assert!(
        node.contains(&Encoding::DELTA_BINARY_PACKED) && !dictionary(&node),
        "{node:?}"
    );
    for name in ["window_end", "node_label", "metric_names.list.item"] {
        let encodings = encodings(&path, name);
        assert!(dictionary(&encodings), "{name}: {encodings:?}");
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path).unwrap()).unwrap();
    let mut back: Vec<NodeFeatures> = reader
        .build()
        .unwrap()
        .flat_map(|b| NodeFeatures::from_batch(&b.unwrap()).unwrap())
        .collect();
    back.sort_by_key(|r| r.node);
    let mut rows = rows;
    rows.sort_by_key(|r| r.node);
    assert_eq!(back, rows);
}

/// Files overlapping in time are merged together, others one run at a time; a file
/// without time statistics puts every file in one run.
#[test]
fn compaction_sorts_runs_of_files_that_overlap_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, times: &[i64], stats: bool| {
        let path = tmp.path().join(name);
        let rows: Vec<NodeMetric> = times.iter().map(|&t| metric(T0 + t, 1)).collect();
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_statistics_enabled(if stats {
                datafusion::parquet::file::properties::EnabledStatistics::Chunk
            } else {
                datafusion::parquet::file::properties::EnabledStatistics::None
            })
            .build();
        let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
            fs::File::create(&path).unwrap(),
            NodeMetric::schema(),
            Some(props),
        )
        .unwrap();
        w.write(&NodeMetric::to_batch(&rows)).unwrap();
        w.close().unwrap();
        path
    };
    let c = file("c.parquet", &[30, 40], true);
    let a = file("a.parquet", &[0, 10], true);
    let b = file("b.parquet", &[5, 20], true);
    let d = file("d.parquet", &[40, 50], true);
    let got = super::compact::runs(&[a.clone(), b.clone(), c.clone(), d.clone()], "time");
    // d starts where c ends: rows at the same time may sit in either run.
    assert_eq!(
        got.unwrap(),
        vec![vec![a.clone(), b.clone()], vec![c.clone()], vec![d.clone()]]
    );
    let e = file("e.parquet", &[60], false);
    let got = super::compact::runs(&[a.clone(), b.clone(), e.clone()], "time");
    assert_eq!(got.unwrap(), vec![vec![a, b, e]]);
}
