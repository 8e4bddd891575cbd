//! A job's own output is a trace: `meshflow replay` of what `meshflow run` wrote
//! (its input tables in several buckets per minute) takes every event on any worker
//! count, writes the same features, and writes the input tables again when asked.

use std::path::Path;

use meshflow_integration::{meshflow, python_json, tree};

/// A 3-minute simulated mesh whose input tables are written too, in two buckets of
/// files a minute.
const RUN: &str = r#"
[sources.mesh]
type = "simulator"
nodes = 60
duration = "3m"
seed = 5

[sinks.parquet]
path = "run"
inputs = true
buckets = 2
# Files close at a minute's end once they hold a row group: several per bucket.
row_group_rows = 500
"#;

/// Writes the input tables of a replay again.
const INPUTS: &str = "[sinks.parquet]\ninputs = true\nrow_group_rows = 500\n";

/// Whether two outputs hold the same flows (every column), and how many.
const FLOWS: &str = r#"
import sys, json
import pyarrow.dataset as ds
def flows(root):
    t = ds.dataset(root + "/flows", format="parquet", partitioning="hive").to_table()
    cols = [c for c in t.column_names if c not in ("date", "hour")]
    col = lambda c: t[c].cast("int64") if str(t[c].type).startswith("timestamp") else t[c]
    rows = sorted(zip(*[col(c).to_pylist() for c in cols]))
    return cols, rows
a_cols, a = flows(sys.argv[1])
b_cols, b = flows(sys.argv[2])
print(json.dumps({"columns_equal": a_cols == b_cols, "rows": [len(a), len(b)], "equal": a == b}))
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The "events in" and "late" counts of a summary's source line.
fn events_and_late(summary: &str, source: &str) -> (u64, u64) {
    let line = (summary.lines())
        .find(|l| l.trim_start().starts_with(&format!("source {source}:")))
        .unwrap_or_else(|| panic!("no source line for {source} in:\n{summary}"));
    let number = |before: &str| -> u64 {
        let head = line.split(before).next().unwrap();
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    (number(" events in"), number(" late"))
}

#[test]
fn a_runs_output_replays_with_every_event_on_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("run.toml"), RUN).unwrap();
    std::fs::write(d.join("inputs.toml"), INPUTS).unwrap();
    let run = stdout(&meshflow(d, &["run", "--config", "run.toml"], true));
    let (events, late) = events_and_late(&run, "mesh");
    assert!(events > 0 && late == 0, "{run}");
    let bucketed = tree(&d.join("run/flows"));
    assert!(
        bucketed.len() >= 6,
        "two bucket files per minute: {:?}",
        bucketed.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let features = tree(&d.join("run/node_features"));
    for workers in ["1", "2", "3"] {
        let out = format!("replay{workers}");
        let args = [
            "replay",
            "run",
            "--out",
            &out,
            "--workers",
            workers,
            "--config",
            "inputs.toml",
        ];
        let replay = stdout(&meshflow(d, &args, true));
        assert_eq!(
            events_and_late(&replay, "trace"),
            (events, 0),
            "{workers} workers: every event in, none late\n{replay}"
        );
        assert!(
            tree(&d.join(&out).join("node_features")) == features,
            "{workers} workers: node_features differ from the run's"
        );
        let flows = python_json(FLOWS, &[&d.join("run"), &d.join(&out)]);
        assert_eq!(flows["columns_equal"], true, "{flows}");
        assert_eq!(flows["equal"], true, "{workers} workers: {flows}");
        assert!(flows["rows"][0].as_u64().unwrap() > 1000, "{flows}");
    }
    // Replaying into the trace itself would overwrite the tables being read.
    let same = meshflow(
        d,
        &["replay", "run", "--out", "run", "--config", "inputs.toml"],
        false,
    );
    let err = String::from_utf8_lossy(&same.stderr);
    assert!(
        err.contains("sinks.parquet.path is the trace") && err.contains("write to another"),
        "{err}"
    );
    // validate refuses the same configuration before any run.
    std::fs::write(
        d.join("same.toml"),
        "[sources.old]\ntype = \"replay\"\npath = \"run\"\n[sinks.parquet]\npath = \"run\"\ninputs = true\n",
    )
    .unwrap();
    let checked = meshflow(d, &["validate", "same.toml"], false);
    let err = String::from_utf8_lossy(&checked.stderr);
    assert!(err.contains("sinks.parquet.path is the trace"), "{err}");
    assert!(Path::new(&d.join("run/flows")).is_dir());
    assert!(
        tree(&d.join("run/flows")) == bucketed,
        "the trace is untouched"
    );
}
