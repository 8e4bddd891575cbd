//! End to end: `meshflow sql` (formats, prompt, partition pruning, errors) and
//! `meshflow replay --from/--to/--speed`, checked with pyarrow.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use meshflow_integration::{meshflow, meshflow_with_stdin, python_json, tree};
use serde_json::Value;

/// Tumbling 10 s windows: every flow lies in exactly one window.
const TUMBLING: &str = "[window]\nlength = \"10s\"\nslide = \"10s\"\n";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A 20-node, 3-minute trace from 23:59 to 00:02, replayed into `out` (node
/// features on both sides of midnight: two dates, two hours).
fn midnight_output(d: &Path) {
    write(&d.join("sim.toml"), "start = \"2026-01-01T23:59:00Z\"\n");
    write(&d.join("tumbling.toml"), TUMBLING);
    let sim = [
        "sim",
        "--out",
        "trace",
        "--nodes",
        "20",
        "--duration",
        "3m",
        "--seed",
        "11",
        "--config",
        "sim.toml",
    ];
    meshflow(d, &sim, true);
    meshflow(
        d,
        &[
            "replay",
            "trace",
            "--out",
            "out",
            "--config",
            "tumbling.toml",
        ],
        true,
    );
}

const FEATURES: &str = r#"
import sys, json
import pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds
feat = ds.dataset(sys.argv[1] + "/node_features", format="parquet", partitioning="hive").to_table()
per_node = feat.group_by("node").aggregate([("bytes_out", "sum"), ("bytes_out", "count")]).to_pydict()
per_date = feat.group_by("date").aggregate([("node", "count")]).to_pydict()
midnight = pa.scalar(1767312000 * 10**9, type=pa.timestamp("ns", tz="UTC"))
after = feat.filter(pc.greater_equal(feat["window_end"], midnight)).num_rows
print(json.dumps({
    "per_node": {str(n): [b, c] for n, b, c in zip(per_node["node"], per_node["bytes_out_sum"], per_node["bytes_out_count"])},
    "per_date": {str(d): n for d, n in zip(per_date["date"], per_date["node_count"])},
    "after_midnight": after,
    "rows": feat.num_rows,
}))
"#;

const PARQUET_RESULT: &str = r#"
import sys, json
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(json.dumps({"rows": t.num_rows, "columns": t.column_names, "min_end": str(min(t["window_end"].to_pylist()))}))
"#;

/// `meshflow sql --out out --format csv QUERY` in `d`: its stdout.
fn sql_csv(d: &Path, query: &str) -> String {
    stdout(&meshflow(
        d,
        &["sql", "--out", "out", "--format", "csv", query],
        true,
    ))
}

#[test]
fn sql_formats_prompt_errors_and_partition_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    midnight_output(d);

    // A reader that stops early (`| head`): megabytes of table, one line read.
    let mut child = std::process::Command::new(meshflow_integration::meshflow_bin())
        .args(["sql", "--out", "out", "SELECT * FROM node_features"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let early = child.wait_with_output().unwrap();
    assert!(first.starts_with('+'), "{first}");
    assert!(
        early.status.success() && stderr(&early).is_empty(),
        "{:?}: {}",
        early.status,
        stderr(&early)
    );
    let truth = python_json(FEATURES, &[&d.join("out")]);
    assert_eq!(
        truth["per_date"].as_object().unwrap().len(),
        2,
        "the output spans two dates: {truth}"
    );

    // CSV on stdout.
    let csv = sql_csv(
        d,
        "SELECT node, sum(bytes_out) AS bytes, count(*) AS n FROM node_features GROUP BY node ORDER BY node",
    );
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("node,bytes,n"));
    let got: BTreeMap<String, Value> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let v = [f[1].parse::<u64>().unwrap(), f[2].parse::<u64>().unwrap()];
            (f[0].to_string(), serde_json::json!(v))
        })
        .collect();
    let expected: BTreeMap<String, Value> = truth["per_node"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got, expected);

    // JSON lines to a file.
    meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "--format",
            "json",
            "--output",
            "dates.json",
            "SELECT date, count(*) AS n FROM node_features GROUP BY date ORDER BY date",
        ],
        true,
    );
    let text = std::fs::read_to_string(d.join("dates.json")).unwrap();
    let dates: BTreeMap<String, Value> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["date"].as_str().unwrap().to_string(), v["n"].clone())
        })
        .collect();
    let expected: BTreeMap<String, Value> = truth["per_date"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(dates, expected);

    // Parquet to a file, with a time filter.
    let out = meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "--format",
            "parquet",
            "--output",
            "late.parquet",
            "SELECT * FROM node_features WHERE window_end >= '2026-01-02T00:00:00Z'",
        ],
        true,
    );
    assert!(stderr(&out).contains("late.parquet"), "{}", stderr(&out));
    let late = python_json(PARQUET_RESULT, &[&d.join("late.parquet")]);
    assert_eq!(late["rows"], truth["after_midnight"]);
    assert!(
        late["min_end"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-02 00:00"),
        "{late}"
    );
    assert!(late["columns"].as_array().unwrap().contains(&"date".into()));
    let out = meshflow(
        d,
        &["sql", "--out", "out", "--format", "parquet", "SELECT 1"],
        false,
    );
    assert!(stderr(&out).contains("--output FILE"), "{}", stderr(&out));
    // Several statements in one query: each result in turn; one --output file cannot
    // hold them.
    assert_eq!(
        sql_csv(d, "SELECT 1 AS a; SELECT 'x;y' AS b"),
        "a\n1\nb\nx;y\n"
    );
    // A failing statement is reported; the ones after it still run; the exit fails.
    let out = meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "--format",
            "csv",
            "SELECT 1 AS a; SELECT nosuch FROM node_features; SELECT 3 AS c",
        ],
        false,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n1\nc\n3\n");
    assert!(
        stderr(&out).contains("nosuch")
            && stderr(&out).contains("1 statement(s) of the query failed"),
        "{}",
        stderr(&out)
    );
    let out = meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "--output",
            "two.csv",
            "SELECT 1; SELECT 2",
        ],
        false,
    );
    assert!(
        stderr(&out).contains("--output takes one statement"),
        "{}",
        stderr(&out)
    );

    // Partition pruning: the physical plan lists only the matching hour's files.
    for (filter, kept, dropped) in [
        (
            "date = '2026-01-02'",
            "date=2026-01-02/hour=00",
            "date=2026-01-01",
        ),
        (
            "window_end >= '2026-01-02T00:00:00Z'",
            "date=2026-01-02/hour=00",
            "date=2026-01-01",
        ),
        (
            "window_end < '2026-01-02T00:00:00Z'",
            "date=2026-01-01/hour=23",
            "date=2026-01-02",
        ),
    ] {
        let query = format!("EXPLAIN SELECT node, bytes_out FROM node_features WHERE {filter}");
        let plan = stdout(&meshflow(d, &["sql", "--out", "out", &query], true));
        assert!(
            plan.contains(kept) && !plan.contains(dropped),
            "{filter}:\n{plan}"
        );
    }
    let plan = stdout(&meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "EXPLAIN SELECT node FROM node_features",
        ],
        true,
    ));
    assert!(plan.contains("date=2026-01-01/hour=23") && plan.contains("date=2026-01-02/hour=00"));

    // Errors: DataFusion's message; an unknown table lists the tables.
    let out = meshflow(
        d,
        &["sql", "--out", "out", "SELECT nope FROM node_features"],
        false,
    );
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    let out = meshflow(
        d,
        &["sql", "--out", "out", "SELECT * FROM no_such_table"],
        false,
    );
    assert!(
        stderr(&out).contains("available tables: anomaly_scores, node_features"),
        "{}",
        stderr(&out)
    );

    // The prompt, fed through a pipe.
    let script = "\\d\n\\d node_features\nSELECT count(*)\n  AS n FROM node_features;\nSELECT nope FROM node_features;\nSELECT 6 * 7 AS answer;\n\\q\nSELECT 'not run';\n";
    // A statement of it fails, so the whole script exits with an error (after
    // running the rest).
    let out = meshflow_with_stdin(
        d,
        &["sql", "--out", "out", "--format", "csv"],
        script,
        false,
    );
    let (text, errors) = (stdout(&out), stderr(&out));
    assert!(
        text.starts_with("table\nanomaly_scores\nnode_features\n"),
        "{text}"
    );
    assert!(
        text.contains("window_end,") && text.contains("date,Utf8,no,partition"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nn\n{}\n", truth["rows"])),
        "{text}"
    );
    assert!(text.ends_with("answer\n42\n"), "{text}");
    assert!(
        errors.contains("error: ") && errors.contains("nope"),
        "{errors}"
    );
    assert!(
        errors.contains("1 statement(s) of the input failed"),
        "{errors}"
    );
    let out = meshflow_with_stdin(d, &["sql", "--out", "out"], "SELECT 1 AS one;", true);
    assert!(stdout(&out).contains("| one |") && stdout(&out).contains("(1 row)"));
}

const RANGE_TOTALS: &str = r#"
import sys, json
import pyarrow as pa, pyarrow.dataset as ds
trace, out, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ts = lambda v: pa.scalar(v, type=pa.timestamp("ns", tz="UTC"))
flows = ds.dataset(trace + "/flows", format="parquet", partitioning="hive").to_table(
    columns=["src_node", "dst_node", "bytes", "packets"],
    filter=(ds.field("last_seen") >= ts(lo)) & (ds.field("last_seen") < ts(hi)))
feat = ds.dataset(out + "/node_features", format="parquet", partitioning="hive").to_table()
sent = flows.group_by("src_node").aggregate([("bytes", "sum"), ("packets", "sum"), ("bytes", "count")]).to_pydict()
recv = flows.group_by("dst_node").aggregate([("bytes", "sum")]).to_pydict()
got = feat.group_by("node").aggregate([("bytes_out", "sum"), ("packets_out", "sum"), ("flows_out", "sum"), ("bytes_in", "sum")]).to_pydict()
expected = {}
for n, b, p, c in zip(sent["src_node"], sent["bytes_sum"], sent["packets_sum"], sent["bytes_count"]):
    expected.setdefault(str(n), [0, 0, 0, 0])[:3] = [b, p, c]
for n, b in zip(recv["dst_node"], recv["bytes_sum"]):
    expected.setdefault(str(n), [0, 0, 0, 0])[3] = b
actual = {str(n): [b, p, f, i] for n, b, p, f, i in zip(got["node"], got["bytes_out_sum"], got["packets_out_sum"], got["flows_out_sum"], got["bytes_in_sum"])}
actual = {k: v for k, v in actual.items() if any(v)}
others = sum(
    ds.dataset(trace + "/" + t, format="parquet", partitioning="hive").count_rows(
        filter=(ds.field("time") >= ts(lo)) & (ds.field("time") < ts(hi)))
    for t in ["node_metrics", "tcp_events"])
print(json.dumps({"expected": expected, "actual": actual, "flows": flows.num_rows, "others": others,
                  "total": ds.dataset(trace + "/flows", format="parquet", partitioning="hive").count_rows()}))
"#;

#[test]
fn replay_range_equals_filtering_the_trace_for_any_workers_and_speed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("tumbling.toml"), TUMBLING);
    let sim = [
        "sim",
        "--out",
        "trace",
        "--nodes",
        "20",
        "--duration",
        "3m",
        "--seed",
        "5",
    ];
    meshflow(d, &sim, true);
    // 00:00:30 (RFC 3339) to 00:02:10 (epoch seconds): the first and last minute's
    // row groups straddle the range, the middle one lies inside it.
    let (from, to) = ("2026-01-01T00:00:30Z", "1767225730");
    let replay = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "replay",
            "trace",
            "--out",
            out,
            "--config",
            "tumbling.toml",
            "--from",
            from,
            "--to",
            to,
        ];
        args.extend_from_slice(extra);
        meshflow(d, &args, true)
    };
    let one = replay("r1", &["--workers", "1"]);
    replay("r2", &["--workers", "2"]);
    assert!(
        tree(&d.join("r1")) == tree(&d.join("r2")),
        "1 and 2 workers agree"
    );

    let lo = (1_767_225_600i64 + 30) * 1_000_000_000;
    let hi = 1_767_225_730i64 * 1_000_000_000;
    let (lo, hi) = (lo.to_string(), hi.to_string());
    let r = python_json(
        RANGE_TOTALS,
        &[
            &d.join("trace"),
            &d.join("r1"),
            Path::new(&lo),
            Path::new(&hi),
        ],
    );
    assert_eq!(r["actual"], r["expected"], "per-node totals over the range");
    assert!(r["expected"].as_object().unwrap().len() >= 15, "{r}");
    let flows = r["flows"].as_u64().unwrap();
    assert!(flows > 0 && flows < r["total"].as_u64().unwrap(), "{r}");
    // Metric samples and TCP events in the range are replayed too.
    let others = r["others"].as_u64().unwrap();
    assert!(others > 0, "{r}");
    let summary = stdout(&one);
    assert!(
        summary.contains(&format!("events in: {} ", flows + others)),
        "{summary}"
    );
    assert!(
        !stderr(&one).contains("ETA"),
        "no progress bar without a terminal"
    );

    // Paced at 50x: the 100 s range takes about 2 s, with the same output.
    let started = Instant::now();
    replay("paced", &["--speed", "50", "--workers", "2"]);
    let took = started.elapsed().as_secs_f64();
    assert!(
        took >= 1.5,
        "--speed 50 over 100 s of events took only {took:.2}s"
    );
    assert!(
        tree(&d.join("paced")) == tree(&d.join("r1")),
        "pacing does not change output"
    );

    // A range past the trace is refused, says where the trace lies, and leaves the
    // earlier output as it was (not replaced by empty tables).
    let before = tree(&d.join("r1"));
    let past = meshflow(
        d,
        &[
            "replay",
            "trace",
            "--out",
            "r1",
            "--from",
            "2027-01-01T00:00:00Z",
        ],
        false,
    );
    assert!(
        stderr(&past).contains("selects no rows of trace; the trace spans 2026-01-01T00:00:00")
            && stderr(&past).contains("Nothing was written; the output folder is as it was"),
        "{}",
        stderr(&past)
    );
    assert!(tree(&d.join("r1")) == before, "r1 changed");

    for (args, message) in [
        (vec!["--from", "yesterday"], "RFC 3339"),
        (vec!["--from", "1767225730", "--to", from], "--to (2026-"),
        (
            vec!["--speed", "0"],
            "--speed is 0; it must be a positive number",
        ),
    ] {
        let mut all = vec!["replay", "trace", "--out", "bad"];
        all.extend(args);
        let out = meshflow(d, &all, false);
        assert!(stderr(&out).contains(message), "{all:?}: {}", stderr(&out));
    }
}
