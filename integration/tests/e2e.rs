//! End to end: simulator trace → replay → Parquet, read back by pyarrow.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use meshflow_integration::{meshflow, meshflow_bin, python_json, tree};
use serde_json::Value;

const TOTALS: &str = r#"
import sys, json
import pyarrow.dataset as ds
trace, out = sys.argv[1], sys.argv[2]
flows = ds.dataset(trace + "/flows", format="parquet", partitioning="hive").to_table(columns=["src_node", "dst_node", "bytes", "packets"])
feat = ds.dataset(out + "/node_features", format="parquet", partitioning="hive").to_table()
sent = flows.group_by("src_node").aggregate([("bytes", "sum"), ("packets", "sum"), ("bytes", "count")])
recv = flows.group_by("dst_node").aggregate([("bytes", "sum")])
got = feat.group_by("node").aggregate([("bytes_out", "sum"), ("packets_out", "sum"), ("flows_out", "sum"), ("bytes_in", "sum")])
def table(t, key, cols):
    d = t.to_pydict()
    return {str(k): [d[c][i] for c in cols] for i, k in enumerate(d[key])}
print(json.dumps({
    "sent": table(sent, "src_node", ["bytes_sum", "packets_sum", "bytes_count"]),
    "recv": table(recv, "dst_node", ["bytes_sum"]),
    "got": table(got, "node", ["bytes_out_sum", "packets_out_sum", "flows_out_sum", "bytes_in_sum"]),
    "window_end_type": str(feat.schema.field("window_end").type),
    "rows": feat.num_rows,
}))
"#;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Checks that summing each node's windows gives `copies` times the simulator's own
/// per-node totals (each flow lies in `length / slide` windows).
fn assert_totals(trace: &Path, out: &Path, copies: u64) {
    let r = python_json(TOTALS, &[trace, out]);
    assert_eq!(r["window_end_type"], "timestamp[ns, tz=UTC]");
    let got: BTreeMap<String, Vec<u64>> = r["got"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().iter().map(u).collect()))
        .collect();
    let sent = r["sent"].as_object().unwrap();
    let recv = r["recv"].as_object().unwrap();
    assert!(
        sent.len() >= 30,
        "the trace should cover most nodes: {}",
        sent.len()
    );
    for (node, s) in sent {
        let s: Vec<u64> = s.as_array().unwrap().iter().map(u).collect();
        let g = &got[node];
        assert_eq!(g[0], copies * s[0], "node {node} bytes_out");
        assert_eq!(g[1], copies * s[1], "node {node} packets_out");
        assert_eq!(g[2], copies * s[2], "node {node} flows_out");
    }
    for (node, bytes) in recv {
        assert_eq!(got[node][3], copies * u(&bytes[0]), "node {node} bytes_in");
    }
}

#[test]
fn replay_totals_match_the_simulator_and_output_is_identical_across_runs_workers_and_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = meshflow(
        d,
        &[
            "sim",
            "--out",
            "trace",
            "--nodes",
            "40",
            "--duration",
            "3m",
            "--seed",
            "7",
        ],
        true,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("flows"),
        "sim prints what it wrote"
    );
    for table in ["flows", "node_metrics", "tcp_events", "ground_truth"] {
        assert!(
            !tree(&d.join("trace").join(table)).is_empty(),
            "trace has {table}/"
        );
    }
    // `validate` plans a replay source's trace (its footers) and accepts this one.
    write(
        &d.join("replay.toml"),
        "[sources.old]\ntype = \"replay\"\npath = \"trace\"\n",
    );
    meshflow(d, &["validate", "replay.toml"], true);

    write(
        &d.join("tumbling.toml"),
        "[window]\nlength = \"10s\"\nslide = \"10s\"\n[sinks.parquet]\nrow_group_rows = 500\n\
         [anomaly]\nwarmup_windows = 4\nrefit_every = 4\n",
    );
    meshflow(
        d,
        &[
            "replay",
            "trace",
            "--out",
            "t1",
            "--workers",
            "1",
            "--config",
            "tumbling.toml",
        ],
        true,
    );
    meshflow(
        d,
        &[
            "replay",
            "trace",
            "--out",
            "t2",
            "--workers",
            "2",
            "--config",
            "tumbling.toml",
        ],
        true,
    );
    meshflow(
        d,
        &[
            "replay",
            "trace",
            "--out",
            "t3",
            "--workers",
            "2",
            "--config",
            "tumbling.toml",
        ],
        true,
    );
    let (t1, t2, t3) = (
        tree(&d.join("t1")),
        tree(&d.join("t2")),
        tree(&d.join("t3")),
    );
    assert!(
        t1.len() > 2,
        "several files: {:?}",
        t1.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        t1.iter()
            .all(|(p, _)| !p.to_string_lossy().contains(".tmp")),
        "no temporary files remain"
    );
    // A short warm-up and frequent refits: nodes are scored from about the twelfth
    // of the 18 windows on, with models fitted on every worker's training rows.
    assert!(
        t1.iter().any(|(p, _)| p.starts_with("anomaly_scores")
            && p.extension().is_some_and(|e| e == "parquet")),
        "anomaly_scores written: {:?}",
        t1.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(t1 == t2, "1 and 2 workers give byte-identical output");
    assert!(t2 == t3, "two runs give byte-identical output");
    // Timely's multi-process mode: two processes of one worker each, on loopback,
    // write the same files as one worker.
    write(&d.join("hosts"), &meshflow_integration::hosts_file(2));
    let cluster = |process: &str| {
        Command::new(meshflow_bin())
            .args([
                "replay",
                "trace",
                "--out",
                "tp",
                "--workers",
                "1",
                "--config",
                "tumbling.toml",
                "--hosts",
                "hosts",
                "--process",
                process,
            ])
            .current_dir(d)
            .output()
    };
    let other = std::thread::scope(|s| {
        let other = s.spawn(|| cluster("1"));
        let first = cluster("0").unwrap();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        other.join().unwrap().unwrap()
    });
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(
        tree(&d.join("tp")) == t1,
        "two processes give the files of one worker"
    );
    assert_totals(&d.join("trace"), &d.join("t1"), 1);

    // Default sliding windows (10 s sliding by 1 s): every flow lies in 10 windows.
    let out = meshflow(
        d,
        &["replay", "trace", "--out", "s2", "--workers", "2"],
        true,
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("windows closed: 189"),
        "180 one-second slides plus 9 trailing windows:\n{summary}"
    );
    assert_totals(&d.join("trace"), &d.join("s2"), 10);
    // The default warm-up (60 windows) ends within the 189: scores too are the same
    // on 1 worker as on 2, tail windows included.
    meshflow(
        d,
        &["replay", "trace", "--out", "s1", "--workers", "1"],
        true,
    );
    let scores = |o: &str| tree(&d.join(o).join("anomaly_scores"));
    assert!(!scores("s1").is_empty(), "anomaly_scores written");
    assert!(scores("s1") == scores("s2"), "1 and 2 workers score alike");
}

#[test]
fn bad_files_are_named_and_can_be_skipped_without_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    meshflow(
        d,
        &[
            "sim",
            "--out",
            "trace",
            "--nodes",
            "20",
            "--duration",
            "4m",
            "--seed",
            "3",
        ],
        true,
    );
    let files: Vec<_> = tree(&d.join("trace/flows"))
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    // A truncated file and a file of another table placed among the flows.
    let truncated_rel = Path::new("trace/flows").join(&files[1]);
    let truncated = d.join(&truncated_rel);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let metrics = tree(&d.join("trace/node_metrics"));
    let stray = d.join("trace/flows").join("zz-stray.parquet");
    std::fs::write(&stray, &metrics[0].1).unwrap();

    let out = meshflow(d, &["replay", "trace", "--out", "o1"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&truncated_rel.display().to_string()) && err.contains("--skip-bad-files"),
        "{err}"
    );

    let out = meshflow(
        d,
        &["replay", "trace", "--out", "o2", "--skip-bad-files"],
        true,
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("skipped 2 bad file(s)"), "{summary}");
    assert!(
        summary.contains(&truncated_rel.display().to_string()),
        "{summary}"
    );
    assert!(
        summary.contains("zz-stray.parquet") && summary.contains("column `last_seen` is missing"),
        "{summary}"
    );
    let read = python_json(
        "import sys, json, pyarrow.dataset as ds\nt = ds.dataset(sys.argv[1], format='parquet', partitioning='hive').to_table()\nprint(json.dumps({'rows': t.num_rows}))",
        &[&d.join("o2/node_features")],
    );
    assert!(read["rows"].as_u64().unwrap() > 0);
    assert!(
        tree(&d.join("o2"))
            .iter()
            .all(|(p, _)| !p.to_string_lossy().ends_with(".tmp"))
    );
}

/// A file whose footer is whole but whose data is damaged fails mid-stream: the job
/// fails, and what it leaves in the output folder is never a window closed over data
/// it could not read (those came out with flows missing and the mesh split into
/// single nodes).
#[test]
fn a_replay_that_fails_mid_stream_leaves_no_wrong_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = [
        "sim",
        "--out",
        "trace",
        "--nodes",
        "30",
        "--duration",
        "4m",
        "--seed",
        "5",
    ];
    meshflow(d, &sim, true);
    meshflow(d, &["replay", "trace", "--out", "good"], true);
    let flows = tree(&d.join("trace/flows"));
    let last = d.join("trace/flows").join(&flows.last().unwrap().0);
    let damaged = python_json(
        r#"
import json, sys
import pyarrow.parquet as pq
p = sys.argv[1]
col = pq.ParquetFile(p).metadata.row_group(0).column(1)
start = col.dictionary_page_offset or col.data_page_offset
b = bytearray(open(p, "rb").read())
for i in range(start + 40, start + 240):
    b[i] ^= 0x5A
open(p, "wb").write(b)
print(json.dumps({"column": col.path_in_schema}))
"#,
        &[&last],
    );
    let out = meshflow(d, &["replay", "trace", "--out", "bad"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row group 0"), "{damaged}\n{err}");
    // Every row the failed job left is the good replay's row, value for value.
    let compare = python_json(
        r#"
import json, sys, os
import pyarrow.dataset as ds
def rows(p):
    if not os.path.isdir(p):
        return []
    t = ds.dataset(p, format="parquet", partitioning="hive").to_table()
    return [repr(r) for r in t.to_pylist()]
out = {}
for table in ("node_features", "anomaly_scores"):
    good = set(rows(os.path.join(sys.argv[1], table)))
    bad = rows(os.path.join(sys.argv[2], table))
    out[table] = {"left": len(bad), "wrong": sum(r not in good for r in bad)}
print(json.dumps(out))
"#,
        &[&d.join("good"), &d.join("bad")],
    );
    for table in ["node_features", "anomaly_scores"] {
        assert_eq!(compare[table]["wrong"], 0, "{compare}\n{err}");
    }
    assert!(
        tree(&d.join("bad"))
            .iter()
            .all(|(p, _)| !p.to_string_lossy().ends_with(".tmp")),
        "no unfinished file is left"
    );
    // Skipped, the row group is listed once under its file, without the advice to
    // skip it.
    let args = ["replay", "trace", "--out", "skip", "--skip-bad-files"];
    let summary = String::from_utf8_lossy(&meshflow(d, &args, true).stdout).to_string();
    let name = flows.last().unwrap().0.display().to_string();
    let line = summary
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_default();
    assert!(
        line.matches("row group 0").count() == 1
            && !line.contains("bad file")
            && !line.contains("--skip-bad-files"),
        "{summary}"
    );
}

#[test]
fn the_default_run_finishes_with_a_summary_and_sql_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = meshflow(d, &["run"], true);
    let summary = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "events in:",
        "windows closed: 609",
        "rows written: node_features",
        "rows written: anomaly_scores",
        "next: meshflow sql",
    ] {
        assert!(
            summary.contains(expected),
            "missing `{expected}` in:\n{summary}"
        );
    }
    let out = meshflow(
        d,
        &[
            "sql",
            "SELECT count(DISTINCT node) AS nodes, min(date) AS day FROM node_features",
        ],
        true,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| 50 ") && table.contains("2026-01-01"),
        "{table}"
    );
    let out = meshflow(d, &["sql", "SELECT * FROM no_such_table"], false);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("available tables: anomaly_scores, node_features")
    );
}

/// `meshflow run` on the simulator writes `anomaly_scores` in which the root node of
/// every fault (degraded link, overload, flood, cascade) is flagged, with an
/// explanation, and quiet nodes rarely are.
#[test]
fn the_simulator_run_flags_the_faulted_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The same seeded simulator: `sim` writes its ground truth, `run` scores it live.
    meshflow(d, &["sim", "--out", "trace"], true);
    meshflow(d, &["run", "--out", "out"], true);
    let truth = python_json(
        GROUND_TRUTH,
        &[&d.join("trace/ground_truth"), &d.join("out/anomaly_scores")],
    );
    let faults = truth["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 4, "{truth}");
    for f in faults {
        assert!(
            f["root_flagged_during_fault"].as_u64().unwrap() > 0,
            "fault not flagged: {f} in {truth}"
        );
    }
    // Outside every fault (and its trailing windows), flags are rare.
    let quiet = truth["quiet_flag_rate"].as_f64().unwrap();
    assert!(
        quiet < QUIET_FLAG_RATE,
        "flag rate outside faults {quiet}: {truth}"
    );
    // Every flagged row explains itself.
    assert!(
        truth["flagged_with_explanation"] == truth["flagged"],
        "{truth}"
    );
    assert!(truth["flagged"].as_u64().unwrap() > 0);
    // The data ends at 00:10:00 (10 simulated minutes): the 9 windows after it, which
    // hold less and less of the data, are written as features but not scored.
    let end_ns = 1_767_226_200_000_000_000u64;
    assert_eq!(truth["last_scored"].as_u64().unwrap(), end_ns, "{truth}");
}

/// Largest share of flagged windows outside every fault the default settings may
/// raise (measured: see benchmarks/README.md).
const QUIET_FLAG_RATE: f64 = 0.02;

/// Per fault: flagged windows of its root node while the fault acts on it; overall:
/// the flag rate outside every fault's span (plus the 10 s a window trails it), and
/// whether flagged rows carry their top features and deviations.
const GROUND_TRUTH: &str = r#"
import sys, json
import pyarrow.dataset as ds
gt = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table().to_pylist()
sc = ds.dataset(sys.argv[2], format="parquet", partitioning="hive").to_table().to_pylist()
ns = lambda t: int(t.timestamp() * 1e9) if hasattr(t, "timestamp") else int(t)
faults, spans = [], {}
for g in gt:
    start, end = ns(g["start"]), ns(g["end"])
    for n in g["affected_nodes"]:
        spans.setdefault(n, []).append((start, end + 10_000_000_000))
    hit = sum(1 for s in sc if s["node"] == g["root_node"] and s["is_anomaly"]
              and start < ns(s["window_end"]) <= end + 10_000_000_000)
    faults.append({"kind": g["kind"], "root": g["root_node"], "root_flagged_during_fault": hit})
quiet = [s for s in sc if not any(a < ns(s["window_end"]) <= b for a, b in spans.get(s["node"], []))]
flagged = [s for s in sc if s["is_anomaly"]]
explained = [s for s in flagged if s["top_features"] and len(s["top_features"]) == len(s["top_deviations"])]
print(json.dumps({
    "faults": faults,
    "quiet_flag_rate": sum(1 for s in quiet if s["is_anomaly"]) / max(1, len(quiet)),
    "flagged": len(flagged),
    "flagged_with_explanation": len(explained),
    "last_scored": max(ns(s["window_end"]) for s in sc),
}))
"#;

const EVENT_FEATURES: &str = r#"
import sys, json
import pyarrow.dataset as ds
out = sys.argv[1]
def rows(t, cols):
    return ds.dataset(out + "/" + t, format="parquet", partitioning="hive").to_table(columns=cols).to_pylist()
feat = rows("node_features", ["node", "retransmits", "drop_reasons", "drop_counts", "metric_names",
    "metric_samples", "rtt_p50_us", "bytes_out_n1_mean", "bytes_out_n2_max", "component", "components"])
tcp = rows("tcp_events", ["node", "kind", "drop_reason"])
metrics = rows("node_metrics", ["node", "metric"])
want, got = {}, {}
def bump(d, k, n=1):
    d[k] = d.get(k, 0) + n
for t in tcp:
    if t["kind"] == "retransmit":
        bump(want, f'{t["node"]} retransmits')
    if t["kind"] == "drop":
        bump(want, f'{t["node"]} drop {t["drop_reason"] or "NOT_SPECIFIED"}')
for m in metrics:
    bump(want, f'{m["node"]} metric {m["metric"]}')
for r in feat:
    bump(got, f'{r["node"]} retransmits', r["retransmits"])
    for reason, n in zip(r["drop_reasons"], r["drop_counts"]):
        bump(got, f'{r["node"]} drop {reason}', n)
    for name, n in zip(r["metric_names"], r["metric_samples"]):
        bump(got, f'{r["node"]} metric {name}', n)
got = {k: v for k, v in got.items() if v}
print(json.dumps({
    "want": want,
    "got": got,
    "rows": len(feat),
    "rtt_rows": sum(1 for r in feat if r["rtt_p50_us"] is not None),
    "n1_rows": sum(1 for r in feat if r["bytes_out_n1_mean"] is not None),
    "n2_rows": sum(1 for r in feat if r["bytes_out_n2_max"] is not None),
    "bad_components": sum(1 for r in feat if r["component"] > r["node"] or r["components"] < 1),
    "columns": len(ds.dataset(out + "/node_features", format="parquet", partitioning="hive").schema.names),
}))
"#;

#[test]
fn simulator_run_features_account_for_every_tcp_event_and_metric_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("sim.toml"),
        "[sources.mesh]\ntype = \"simulator\"\nnodes = 30\nduration = \"3m\"\nseed = 3\n\
         [window]\nlength = \"10s\"\nslide = \"10s\"\n[sinks.parquet]\npath = \"out\"\ninputs = true\n",
    );
    meshflow(d, &["run", "--config", "sim.toml"], true);
    let r = python_json(EVENT_FEATURES, &[&d.join("out")]);
    // Tumbling windows: every event lies in exactly one window.
    assert_eq!(r["want"], r["got"]);
    assert!(r["want"].as_object().unwrap().len() > 30, "{}", r["want"]);
    let rows = u(&r["rows"]);
    assert!(rows >= 30 * 6, "{rows} rows");
    assert!(u(&r["rtt_rows"]) > 0, "{r}");
    // Nearly every simulated node exchanges flows in every window.
    assert!(u(&r["n1_rows"]) * 10 >= rows * 9, "{r}");
    assert_eq!(r["n2_rows"], r["n1_rows"]);
    assert_eq!(u(&r["bad_components"]), 0);
    assert!(u(&r["columns"]) > 90, "{r}");
}

/// Ctrl-C on a live job: it closes the open windows, finishes its files, exits
/// successfully, and its summary says it stopped early and how far it got.
#[test]
fn ctrl_c_stops_a_live_job_with_complete_windows_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("live.toml"),
        "[sources.mesh]\ntype = \"simulator\"\nnodes = 20\nduration = \"10m\"\npace = \"realtime\"\n\
         [sinks.parquet]\ninputs = true\n",
    )
    .unwrap();
    let child = Command::new(meshflow_bin())
        .args(["run", "--config", "live.toml", "--out", "out"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid, with a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The windows after the stop thin out as the data slides out of them: that is
    // not the mesh partitioning.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("mesh partitioned"), "{stderr}");
    let claim = "stopped early (Ctrl-C): windows closed up to ";
    let complete = stdout
        .split_once(claim)
        .map(|(_, rest)| rest[..19].to_string())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(complete.starts_with("2026-01-01T00:00:0"), "{stdout}");
    // Up to the time it claims, the run read every flow of the same seeded
    // simulator: the tick under way when Ctrl-C came is not counted as complete.
    meshflow(
        d,
        &[
            "sim",
            "--out",
            "trace",
            "--nodes",
            "20",
            "--duration",
            "10m",
        ],
        true,
    );
    let before = |out: &str| {
        let query = format!("SELECT count(*) FROM flows WHERE last_seen < TIMESTAMP '{complete}'");
        let rows = meshflow(d, &["sql", "--out", out, "--format", "csv", &query], true);
        String::from_utf8_lossy(&rows.stdout).to_string()
    };
    assert_eq!(
        before("out"),
        before("trace"),
        "complete through {complete}"
    );
    // Every written window holds all 20 nodes.
    let rows = meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "--format",
            "csv",
            "SELECT count(*) AS windows, min(n) AS least FROM (SELECT window_end, count(*) AS n FROM node_features GROUP BY window_end)",
        ],
        true,
    );
    let text = String::from_utf8_lossy(&rows.stdout);
    let line = text.lines().nth(1).unwrap_or_default().to_string();
    let (windows, least) = line.split_once(',').unwrap();
    assert!(windows.parse::<u64>().unwrap() >= 1, "{text}");
    assert_eq!(least, "20", "{text}");
}
