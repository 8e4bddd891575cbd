//! Replay planning with time ranges, row filtering and paced reading.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use meshflow_schemas::{ArrowRecord, Counters, FlowRecord, Ip16, TimestampNs};

use super::*;

/// How long a paced read may block.
const WAIT: Duration = Duration::from_millis(50);

fn secs(s: i64) -> TimestampNs {
    TimestampNs::from_secs(s)
}

fn flow(t: i64) -> FlowRecord {
    FlowRecord {
        src_node: t as u64,
        dst_node: 1000 + t as u64,
        src_ip: Ip16([0; 16]),
        dst_ip: Ip16([0; 16]),
        src_port: 1,
        dst_port: 2,
        protocol: 17,
        bytes: 10 * t as u64,
        packets: 1,
        first_seen: secs(t),
        last_seen: secs(t),
        tcp_flags: 0,
    }
}

/// Writes flows at `times` (seconds) to `path`, `group` rows per row group.
fn write_flows(path: &Path, times: &[i64], group: usize, stats: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let rows: Vec<FlowRecord> = times.iter().map(|&t| flow(t)).collect();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .set_statistics_enabled(if stats {
            EnabledStatistics::Chunk
        } else {
            EnabledStatistics::None
        })
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, FlowRecord::schema(), Some(props)).unwrap();
    writer.write(&FlowRecord::to_batch(&rows)).unwrap();
    writer.close().unwrap();
}

fn required() -> SchemaRef {
    let schema = FlowRecord::schema();
    Arc::new(
        schema
            .project(&FLOW_COLUMNS.map(|c| schema.index_of(c).unwrap()))
            .unwrap(),
    )
}

fn range(from: i64, to: i64) -> TimeRange {
    TimeRange {
        from: Some(secs(from)),
        to: Some(secs(to)),
    }
}

fn plan(trace: &Path, r: TimeRange) -> ReplayPlan {
    ReplayPlan::in_range(trace, "flows", &required(), "last_seen", r, false).unwrap()
}

/// Reads every flow of `plan` as worker 0 of 1.
fn read_all(plan: &ReplayPlan, speed: Option<f64>) -> FlowColumns {
    let mut worker = ReplayWorker::new(plan, 0, 1, false, speed, None);
    let (counters, skipped) = (Counters::default(), Mutex::new(Vec::new()));
    let mut out = FlowColumns::default();
    while worker
        .next_batch(&mut out, &counters, &skipped, WAIT)
        .unwrap()
    {}
    assert!(worker.is_done());
    assert_eq!(counters.snapshot().received, out.len() as u64);
    out
}

#[test]
fn ranges_contain_half_open_intervals_and_classify_spans() {
    let r = range(10, 20);
    assert!(r.contains(secs(10)) && r.contains(secs(19)) && !r.contains(secs(20)));
    assert_eq!(r.overlap(secs(0), secs(9)), Overlap::None);
    assert_eq!(r.overlap(secs(20), secs(30)), Overlap::None);
    assert_eq!(r.overlap(secs(10), secs(19)), Overlap::Full);
    assert_eq!(r.overlap(secs(5), secs(10)), Overlap::Partial);
    assert_eq!(r.overlap(secs(19), secs(20)), Overlap::Partial);
    assert_eq!(TimeRange::ALL.overlap(secs(-5), secs(5)), Overlap::Full);
    let open = TimeRange {
        from: Some(secs(3)),
        to: None,
    };
    assert!(open.contains(secs(i64::MAX / 1_000_000_000)) && !open.contains(secs(2)));
}

#[test]
fn statistics_skip_row_groups_outside_the_range_and_rows_are_filtered_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let times: Vec<i64> = (0..30).collect();
    write_flows(&dir.path().join("flows/a.parquet"), &times, 10, true);

    let all = ReplayPlan::new(dir.path(), "flows", &required(), false).unwrap();
    assert_eq!((all.units.len(), all.rows()), (3, 30));

    let p = plan(dir.path(), range(10, 25));
    assert_eq!(p.pruned, 1, "row group 0 (0..9 s) is never read");
    let shape: Vec<_> = p
        .units
        .iter()
        .map(|u| (u.row_group, u.rows, u.filter))
        .collect();
    assert_eq!(shape, [(1, 10, false), (2, 5, true)]);
    assert_eq!(p.start, Some(secs(10)));
    let read = read_all(&p, None);
    assert_eq!(read.last_seen, (10..25).map(secs).collect::<Vec<_>>());
    assert_eq!(
        read.bytes,
        (10..25).map(|t| 10 * t as u64).collect::<Vec<_>>()
    );
    assert_eq!(read.dst_node[0], 1010);

    let none = plan(dir.path(), range(100, 200));
    assert_eq!((none.units.len(), none.pruned), (0, 3));
}

#[test]
fn without_statistics_every_row_group_is_counted_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let times: Vec<i64> = (0..30).rev().collect();
    write_flows(
        &dir.path().join("flows/date=x/b.parquet"),
        &times,
        10,
        false,
    );
    let p = plan(dir.path(), range(10, 25));
    let shape: Vec<_> = p
        .units
        .iter()
        .map(|u| (u.row_group, u.rows, u.filter))
        .collect();
    assert_eq!(shape, [(0, 5, true), (1, 10, true)]);
    assert_eq!((p.pruned, p.start), (1, None));
    let mut read = read_all(&p, None);
    read.sort_by_time();
    assert_eq!(read.last_seen, (10..25).map(secs).collect::<Vec<_>>());
}

#[test]
fn a_missing_time_column_is_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    write_flows(&dir.path().join("flows/a.parquet"), &[1, 2], 10, true);
    let err = ReplayPlan::in_range(dir.path(), "flows", &required(), "nope", range(0, 5), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.parquet") && err.contains("time column `nope` is missing"),
        "{err}"
    );
    let skipped =
        ReplayPlan::in_range(dir.path(), "flows", &required(), "nope", range(0, 5), true).unwrap();
    assert_eq!((skipped.units.len(), skipped.skipped.len()), (0, 1));
}

#[test]
fn paced_replay_follows_the_wall_clock_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    // Two row groups, each in reverse time order; 14 s of events at 20x ≈ 0.7 s.
    let times: Vec<i64> = (10..20).rev().chain((20..25).rev()).collect();
    write_flows(&dir.path().join("flows/a.parquet"), &times, 10, true);
    let p = plan(dir.path(), TimeRange::ALL);
    let started = Instant::now();
    let read = read_all(&p, Some(20.0));
    let took = started.elapsed().as_secs_f64();
    assert!(took >= 0.6, "paced replay finished in {took:.3}s");
    assert_eq!(read.last_seen, (10..25).map(secs).collect::<Vec<_>>());

    let started = Instant::now();
    let fast = read_all(&p, None);
    assert_eq!(fast.len(), 15);
    assert!(started.elapsed().as_secs_f64() < took);
}

#[test]
fn flow_columns_sort_stably_and_extend_from_a_slice() {
    let mut c = FlowColumns::default();
    for (t, n) in [(3, 1), (1, 2), (3, 3), (2, 4)] {
        let mut f = flow(t);
        f.src_node = n;
        c.push(&f);
    }
    c.sort_by_time();
    assert_eq!(c.src_node, [2, 4, 1, 3]);
    let mut d = FlowColumns::default();
    d.extend_from(&c, 1..3);
    assert_eq!(
        (d.src_node.clone(), d.last_seen.clone()),
        (vec![4, 1], vec![secs(2), secs(3)])
    );
}

/// Writes node metrics at `times` (seconds) to `path`, `group` rows per row group.
fn write_metrics(path: &Path, times: &[i64], group: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let rows: Vec<meshflow_schemas::NodeMetric> = times
        .iter()
        .map(|&t| meshflow_schemas::NodeMetric {
            time: secs(t),
            node: 7,
            metric: "cpu".into(),
            value: t as f64,
        })
        .collect();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let schema = meshflow_schemas::NodeMetric::schema();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer
        .write(&meshflow_schemas::NodeMetric::to_batch(&rows))
        .unwrap();
    writer.close().unwrap();
}

#[test]
fn a_trace_reader_merges_tables_and_never_passes_an_unread_row() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path();
    // Dense flows and sparse metrics, in row groups of different spans.
    let flow_times: Vec<i64> = (0..600).collect();
    let metric_times: Vec<i64> = (0..600).step_by(15).collect();
    write_flows(&trace.join("flows/a.parquet"), &flow_times, 50, true);
    write_metrics(&trace.join("node_metrics/a.parquet"), &metric_times, 4);
    for speed in [None, Some(2000.0)] {
        let plan = TracePlan::new(trace, TimeRange::ALL, false).unwrap();
        assert_eq!(plan.rows(), 600 + 40);
        let mut reader = TraceReader::new(&plan, 0, 1, false, speed);
        let (counters, skipped) = (Counters::default(), Mutex::new(Vec::new()));
        let mut batch = crate::SourceBatch::default();
        let (mut flows, mut metrics) = (Vec::new(), Vec::new());
        let mut watermark = TimestampNs(i64::MIN);
        while reader
            .next_batch(&mut batch, &counters, &skipped, WAIT)
            .unwrap()
        {
            let times = batch
                .flows
                .last_seen
                .iter()
                .chain(batch.metrics.iter().map(|m| &m.time));
            for t in times {
                assert!(*t >= watermark, "{t} read after watermark {watermark}");
            }
            flows.extend(batch.flows.last_seen.iter().map(|t| t.0 / 1_000_000_000));
            metrics.extend(batch.metrics.iter().map(|m| m.time.0 / 1_000_000_000));
            batch.clear();
            if let Some(w) = reader.watermark() {
                assert!(w >= watermark, "the watermark never goes back");
                watermark = w;
            }
        }
        assert!(reader.is_done() && reader.watermark().is_none());
        assert_eq!(flows, flow_times, "{speed:?}");
        assert_eq!(metrics, metric_times, "{speed:?}");
        assert_eq!(counters.snapshot().received, 640);
    }
}

/// Two files over the same minutes (as a sink's buckets are), and a third later
/// one: one worker reads the overlapping row groups together, so no row comes after
/// the watermark an earlier batch set, and the later file on its own.
#[test]
fn row_groups_that_overlap_in_time_are_read_together_whatever_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path();
    let evens: Vec<i64> = (0..120).step_by(2).collect();
    let odds: Vec<i64> = (1..120).step_by(2).collect();
    let later: Vec<i64> = (200..230).collect();
    // Path order puts the later file and one bucket's whole span first.
    write_flows(&trace.join("flows/a-later.parquet"), &later, 10, true);
    write_flows(&trace.join("flows/b-bucket0.parquet"), &evens, 20, true);
    write_flows(&trace.join("flows/c-bucket1.parquet"), &odds, 20, true);
    for speed in [None, Some(5000.0)] {
        let plan = TracePlan::new(trace, TimeRange::ALL, false).unwrap();
        let starts: Vec<i64> = (plan.flows.units.iter())
            .map(|u| u.span.unwrap().0.0 / 1_000_000_000)
            .collect();
        assert!(starts.is_sorted(), "units by start: {starts:?}");
        let mut reader = TraceReader::new(&plan, 0, 1, false, speed);
        let (counters, skipped) = (Counters::default(), Mutex::new(Vec::new()));
        let mut batch = crate::SourceBatch::default();
        let mut flows = Vec::new();
        let mut watermark = TimestampNs(i64::MIN);
        let mut batches = 0;
        while reader
            .next_batch(&mut batch, &counters, &skipped, WAIT)
            .unwrap()
        {
            for t in &batch.flows.last_seen {
                assert!(*t >= watermark, "{t} read after watermark {watermark}");
            }
            batches += usize::from(!batch.flows.is_empty());
            flows.extend(batch.flows.last_seen.iter().map(|t| t.0 / 1_000_000_000));
            batch.clear();
            if let Some(w) = reader.watermark() {
                watermark = w;
            }
        }
        flows.sort();
        let mut all: Vec<i64> = evens.iter().chain(&odds).chain(&later).copied().collect();
        all.sort();
        assert_eq!(flows, all, "{speed:?}");
        if speed.is_none() {
            // Row groups of the two buckets pair up by time; the later file's three
            // row groups come one by one.
            assert_eq!(batches, 3 + 3, "{speed:?}");
        }
    }
}

#[test]
fn a_folder_without_input_tables_is_not_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("node_features")).unwrap();
    let err = TracePlan::new(dir.path(), TimeRange::ALL, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("holds none of the input tables flows, node_metrics"),
        "{err}"
    );
    // A table's folder given for the trace's is named as such.
    let flows = dir.path().join("trace").join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let err = TracePlan::new(&flows, TimeRange::ALL, false).unwrap_err();
    assert!(
        err.to_string().ends_with(&format!(
            "it is the trace's flows table: give the trace folder, {}",
            dir.path().join("trace").display()
        )),
        "{err}"
    );
    let err = TracePlan::new(&dir.path().join("nope"), TimeRange::ALL, false).unwrap_err();
    assert!(err.to_string().contains("nope: does not exist"), "{err}");
    std::fs::write(dir.path().join("file"), "").unwrap();
    let err = TracePlan::new(&dir.path().join("file"), TimeRange::ALL, false).unwrap_err();
    assert!(err.to_string().contains("is not a trace folder"), "{err}");
}
