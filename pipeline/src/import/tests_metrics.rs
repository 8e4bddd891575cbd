//! Tests of `import metrics` on the forms metric CSVs come in: headers with a byte
//! order mark, blank lines or extra columns, and files without a header.

use std::path::Path;

use meshflow_schemas::{ArrowRecord, NodeMetric, NodeName, node_id_of_name};

use super::tests::read_table;
use super::{ImportReport, metrics};

/// Imports `text` as `name` in a fresh folder; the report and the (time in seconds,
/// metric, value) of every imported row, in time order.
fn import_csv(name: &str, text: &str) -> (ImportReport, Vec<(i64, String, f64)>) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join(name);
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("trace");
    let report = metrics::import(&csv, None, &out).unwrap();
    (report, rows(&out))
}

fn rows(out: &Path) -> Vec<(i64, String, f64)> {
    if !out.join(NodeMetric::TABLE).exists() {
        return Vec::new();
    }
    read_table(out, NodeMetric::TABLE)
        .iter()
        .flat_map(|b| NodeMetric::from_batch(b).unwrap())
        .map(|m| (m.time.0 / 1_000_000_000, m.metric.to_string(), m.value))
        .collect()
}

fn cpu(values: &[(i64, f64)]) -> Vec<(i64, String, f64)> {
    values
        .iter()
        .map(|&(t, v)| (t, "cpu".to_string(), v))
        .collect()
}

#[test]
fn a_header_after_a_byte_order_mark_or_blank_lines_is_a_header() {
    for (name, text) in [
        (
            "bom.csv",
            "\u{feff}timestamp,node,metric,value\n1397088300,a,cpu,1\n1397088360,a,cpu,2\n",
        ),
        (
            "blank.csv",
            "\n  \r\ntimestamp,node,metric,value\n1397088300,a,cpu,1\n1397088360,a,cpu,2\n",
        ),
    ] {
        let (report, rows) = import_csv(name, text);
        assert_eq!((report.lines, report.bad), (2, 0), "{name}: {report:?}");
        assert_eq!(
            rows,
            cpu(&[(1_397_088_300, 1.0), (1_397_088_360, 2.0)]),
            "{name}"
        );
    }
}

#[test]
fn extra_header_columns_are_ignored_and_named_once() {
    let (report, rows) = import_csv(
        "extra.csv",
        "node,timestamp,unit,metric,value\n\
         a,1397088300,pct,cpu,1\n\
         a,1397088360,pct,cpu,2\n\
         a,1397088420,cpu,3\n",
    );
    assert_eq!(rows, cpu(&[(1_397_088_300, 1.0), (1_397_088_360, 2.0)]));
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(
        report.warnings[0].ends_with(
            "extra.csv: ignoring the columns `unit` (only timestamp, node, metric and value are imported)"
        ),
        "{report:?}"
    );
    assert_eq!(report.bad, 1);
    assert!(
        report.bad_lines[0]
            .to_string()
            .ends_with("extra.csv:4: has 4 fields, expected 5 (node,timestamp,unit,metric,value)"),
        "{report:?}"
    );
}

/// A first line that names no column is a record (the header is optional): a bad
/// one is counted and skipped like any other, and the good rows after it are kept.
#[test]
fn a_bad_first_line_that_is_no_header_is_a_malformed_record() {
    let (report, rows) = import_csv(
        "firstbad.csv",
        "garbage-time,a,cpu,1\n1397088300,a,cpu,1\n1397088360,a,cpu,2\n",
    );
    assert_eq!(rows, cpu(&[(1_397_088_300, 1.0), (1_397_088_360, 2.0)]));
    assert_eq!((report.lines, report.bad), (3, 1));
    let bad = report.bad_lines[0].to_string();
    assert!(
        bad.contains("firstbad.csv:1: timestamp: `garbage-time` is neither an RFC 3339 time")
            && bad.ends_with(
                "; nor is the line a header (one naming the columns timestamp, node, metric and value)"
            ),
        "{bad}"
    );

    let (report, rows) = import_csv("noheader.csv", "1397088300,a,cpu,1\n");
    assert_eq!((report.lines, report.bad), (1, 0));
    assert_eq!(rows, cpu(&[(1_397_088_300, 1.0)]));
}

/// Two names of one node id (`7` and `007`; two spellings of an IPv6 address) give
/// one `nodes/` row, named as first seen, and one warning per other name.
#[test]
fn aliases_of_a_node_id_give_one_row_named_as_first_seen() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("aliases.csv");
    std::fs::write(
        &csv,
        "timestamp,node,metric,value\n\
         1397088300,7,cpu,1\n\
         1397088300,2001:DB8::1,cpu,2\n\
         1397088360,007,cpu,3\n\
         1397088360,2001:db8::1,cpu,4\n\
         1397088420,007,cpu,5\n",
    )
    .unwrap();
    let edges = dir.path().join("edges.csv");
    std::fs::write(&edges, "src,dst\n0007,2001:db8:0::1\n").unwrap();
    let out = dir.path().join("trace");
    let report = metrics::import(&csv, Some(&edges), &out).unwrap();
    assert_eq!(report.bad, 0, "{report:?}");
    assert_eq!(
        report.warnings,
        [
            "nodes `7` and `007` are the same node id 7; named `7` (the first seen)".to_string(),
            format!(
                "nodes `2001:DB8::1` and `2001:db8::1` are the same node id {}; named `2001:DB8::1` (the first seen)",
                node_id_of_name("2001:db8::1")
            ),
            "nodes `7` and `0007` are the same node id 7; named `7` (the first seen)".to_string(),
            format!(
                "nodes `2001:DB8::1` and `2001:db8:0::1` are the same node id {}; named `2001:DB8::1` (the first seen)",
                node_id_of_name("2001:db8::1")
            ),
        ]
    );
    let mut nodes: Vec<(u64, String, i64)> = read_table(&out, NodeName::TABLE)
        .iter()
        .flat_map(|b| NodeName::from_batch(b).unwrap())
        .map(|n| (n.node, n.name, n.first_seen.0 / 1_000_000_000))
        .collect();
    nodes.sort();
    let mut expected = vec![
        (7, "7".to_string(), 1_397_088_300),
        (
            node_id_of_name("2001:db8::1"),
            "2001:DB8::1".to_string(),
            1_397_088_300,
        ),
    ];
    expected.sort();
    assert_eq!(nodes, expected);
    assert_eq!(report.rows_of(NodeName::TABLE), 2);
}

/// A metric file without records imports nothing, even with an edge list: links
/// alone give a replay no window (and would start in 1970).
#[test]
fn edges_without_any_metric_import_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("header_only.csv");
    std::fs::write(&csv, "timestamp,node,metric,value\n").unwrap();
    let edges = dir.path().join("edges.csv");
    std::fs::write(&edges, "src,dst\na,b\n").unwrap();
    let out = dir.path().join("trace");
    let report = metrics::import(&csv, Some(&edges), &out).unwrap();
    assert!(report.rows.is_empty(), "{report:?}");
    assert!(!out.exists(), "nothing is written");
    assert_eq!(
        report.warnings,
        [format!(
            "{} holds no valid metric record, so the links of {} are not imported either (links alone give a replay no window)",
            csv.display(),
            edges.display()
        )]
    );
    assert_eq!(
        report.why_nothing(),
        "no record could be imported (see the warnings above)"
    );
}

/// The edge list's optional header follows the same rules as the metric CSV's: after
/// a byte order mark or blank lines it is still a header, never a link between nodes
/// named `src` and `dst`.
#[test]
fn an_edge_header_after_a_byte_order_mark_or_blank_lines_is_a_header() {
    for text in ["\u{feff}src,dst\na,b\n", "\n \r\nSRC, dst\na,b\n", "a,b\n"] {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("m.csv");
        std::fs::write(&csv, "1397088300,a,cpu,1\n1397088300,b,cpu,2\n").unwrap();
        let edges = dir.path().join("edges.csv");
        std::fs::write(&edges, text).unwrap();
        let out = dir.path().join("trace");
        let report = metrics::import(&csv, Some(&edges), &out).unwrap();
        assert_eq!((report.lines, report.bad), (3, 0), "{text:?}: {report:?}");
        let mut names: Vec<String> = read_table(&out, NodeName::TABLE)
            .iter()
            .flat_map(|b| NodeName::from_batch(b).unwrap())
            .map(|n| n.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"], "{text:?}");
        assert_eq!(report.rows_of("edges"), 1, "{text:?}");
    }
}
