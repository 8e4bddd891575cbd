//! Tests of the output folder of an import: a successful import leaves exactly its
//! own trace there; a failed one leaves the folder as it was.

use std::path::Path;

use meshflow_schemas::{TimestampNs, TopologyEdge};

use super::trace::Staged;
use super::{metrics, zeek};

/// The folders in `out`, sorted.
fn folders(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_import_removes_the_tables_of_the_earlier_trace_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("m.csv");
    std::fs::write(&csv, "1397088300,a,cpu,1\n1397088360,b,cpu,2\n").unwrap();
    let edges = d.join("e.csv");
    std::fs::write(&edges, "a,b\n").unwrap();
    let log = d.join("conn.log");
    std::fs::write(
        &log,
        "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n\
         1397088300\t10.0.0.1\t1\t10.0.0.2\t2\ttcp\n",
    )
    .unwrap();
    let out = d.join("trace");
    metrics::import(&csv, Some(&edges), &out).unwrap();
    assert_eq!(folders(&out), ["edges", "node_metrics", "nodes"]);
    // Not tables of a trace: a user's folder, and a table folder holding other files.
    std::fs::create_dir_all(out.join("notes")).unwrap();
    std::fs::write(out.join("notes/readme.txt"), "mine").unwrap();
    std::fs::create_dir_all(out.join("tcp_events/date=2014-04-10")).unwrap();
    std::fs::write(out.join("tcp_events/date=2014-04-10/keep.txt"), "mine").unwrap();

    // Without --edges, the earlier edges go.
    let report = metrics::import(&csv, None, &out).unwrap();
    assert_eq!(report.removed, ["edges"]);
    assert!(
        report.text(&out).contains(&format!(
            "removed the tables an earlier trace left in {}: edges\n",
            out.display()
        )),
        "{}",
        report.text(&out)
    );
    assert_eq!(
        folders(&out),
        ["node_metrics", "nodes", "notes", "tcp_events"]
    );
    assert_eq!(
        report.warnings,
        [format!(
            "{} was left as it was: it is not a table of an earlier trace (it holds {})",
            out.join("tcp_events").display(),
            out.join("tcp_events/date=2014-04-10/keep.txt").display()
        )]
    );

    // A Zeek import replaces the metric trace; a metric import the Zeek trace.
    let report = zeek::import(std::slice::from_ref(&log), &out).unwrap();
    assert_eq!(report.removed, ["node_metrics", "nodes"]);
    assert_eq!(folders(&out), ["flows", "notes", "tcp_events"]);
    let report = metrics::import(&csv, Some(&edges), &out).unwrap();
    assert_eq!(report.removed, ["flows"]);
    assert_eq!(
        folders(&out),
        ["edges", "node_metrics", "nodes", "notes", "tcp_events"]
    );

    // A failed import (no valid record) removes nothing.
    let bad = d.join("bad.log");
    std::fs::write(&bad, "#fields\tts\n").unwrap();
    let report = zeek::import(std::slice::from_ref(&bad), &out).unwrap();
    assert!(report.rows.is_empty() && report.removed.is_empty());
    assert_eq!(
        folders(&out),
        ["edges", "node_metrics", "nodes", "notes", "tcp_events"]
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes/readme.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_trace_left_unfinished_leaves_the_earlier_trace_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("m.csv");
    std::fs::write(&csv, "1397088300,a,cpu,1\n1397088360,b,cpu,2\n").unwrap();
    let out = d.join("trace");
    metrics::import(&csv, None, &out).unwrap();

    // A write that fails part-way: one table written aside, then the error returns.
    let staged = Staged::new(&out).unwrap();
    let aside = staged.dir().to_path_buf();
    assert!(aside.starts_with(&out) && aside.is_dir());
    let sink = super::trace_sink(staged.dir());
    let link = TopologyEdge {
        valid_from: TimestampNs(0),
        src_node: 1,
        dst_node: 2,
    };
    meshflow_sinks::parquet::write_table(staged.dir(), vec![link], &sink).unwrap();
    assert!(aside.join("edges").is_dir());
    drop(staged);

    assert!(!aside.exists());
    assert_eq!(folders(&out), ["node_metrics", "nodes"]);
}

#[test]
fn an_import_removes_what_an_import_killed_part_way_left_aside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("m.csv");
    std::fs::write(&csv, "1397088300,a,cpu,1\n").unwrap();
    let out = d.join("trace");
    // Process ids stop at 2^22, so this one never runs.
    let stale = out.join(".meshflow-staging-99999999/node_metrics");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("part-0-0.parquet"), "half").unwrap();
    metrics::import(&csv, None, &out).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["node_metrics", "nodes"]);
}
