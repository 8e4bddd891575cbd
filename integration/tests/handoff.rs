//! Replay then live: `meshflow run --replay-first TRACE` hands over to the live sources
//! at the trace's end, with no gap and no overlap in event time.

use std::path::Path;

use meshflow_integration::{meshflow, python_json};

const LIVE: &str = r#"
[window]
length = "10s"
slide = "10s"

[sinks.parquet]
inputs = true

[sources.later]
type = "replay"
path = "longer"
"#;

/// Per-node bytes sent and metric rows, split at the hand-off time, for the first
/// trace, the live one, and the output (whose tumbling windows count each flow once).
const SPLIT: &str = r#"
import sys, json
import pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds
first, live, out, at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
at = pa.scalar(at, type=pa.timestamp("ns", tz="UTC"))
def table(root, name):
    return ds.dataset(root + "/" + name, format="parquet", partitioning="hive")
def bytes_before(root, before):
    f = table(root, "flows").to_table(columns=["last_seen", "bytes"])
    keep = pc.less(f["last_seen"], at) if before else pc.greater_equal(f["last_seen"], at)
    return int(pc.sum(pc.filter(f["bytes"], keep)).as_py() or 0), int(pc.max(f["last_seen"]).cast("int64").as_py())
def count(root, name, col, before):
    t = table(root, name).to_table(columns=[col])[col]
    keep = pc.less(t, at) if before else pc.greater_equal(t, at)
    return int(pc.sum(keep.cast("int64")).as_py() or 0)
first_bytes, first_max = bytes_before(first, True)
live_bytes, _ = bytes_before(live, False)
live_early = sum(count(live, n, c, True) for n, c in [("flows", "last_seen"), ("node_metrics", "time"), ("tcp_events", "time")])
feat = table(out, "node_features").to_table(columns=["window_end", "bytes_out"])
ends = sorted(set(feat["window_end"].cast("int64").to_pylist()))
print(json.dumps({
    "first_bytes": first_bytes, "first_max": first_max, "live_bytes": live_bytes,
    "out_bytes": int(pc.sum(feat["bytes_out"]).as_py()),
    "first_metrics": count(first, "node_metrics", "time", True),
    "live_metrics": count(live, "node_metrics", "time", False),
    "out_metrics": table(out, "node_metrics").count_rows(),
    "live_early": live_early,
    "window_gaps": [b - a for a, b in zip(ends, ends[1:]) if b - a != 10_000_000_000],
}))
"#;

#[test]
fn replay_first_hands_over_to_live_sources_without_gap_or_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("live.toml"), LIVE).unwrap();
    let sim = |out: &str, duration: &str| {
        meshflow(
            d,
            &[
                "sim",
                "--out",
                out,
                "--nodes",
                "20",
                "--duration",
                duration,
                "--seed",
                "3",
            ],
            true,
        );
    };
    // The trace covers three minutes; the "live" source covers four, so its first
    // three minutes overlap the trace and must be dropped.
    sim("first", "3m");
    sim("longer", "4m");
    for workers in ["1", "2"] {
        let out = format!("out{workers}");
        let run = meshflow(
            d,
            &[
                "run",
                "--config",
                "live.toml",
                "--replay-first",
                "first",
                "--out",
                &out,
                "--workers",
                workers,
            ],
            true,
        );
        let summary = String::from_utf8_lossy(&run.stdout).into_owned();
        let r = python_json(
            SPLIT,
            &[
                &d.join("first"),
                &d.join("longer"),
                &d.join(&out),
                Path::new(&handoff_ns(&summary).to_string()),
            ],
        );
        let at = handoff_ns(&summary);
        let first_max = r["first_max"].as_i64().unwrap();
        assert!(
            first_max < at && at - first_max <= 1_000_000_000,
            "hand-off at the epoch after the trace's last event: {first_max} -> {at}"
        );
        // No overlap: everything before the hand-off comes from the trace alone, and
        // the live source's earlier events are dropped and counted. No gap: every
        // live event from the hand-off on is in.
        let (first, live) = (
            r["first_bytes"].as_u64().unwrap(),
            r["live_bytes"].as_u64().unwrap(),
        );
        assert!(first > 0 && live > 0, "{r}");
        assert_eq!(r["out_bytes"].as_u64().unwrap(), first + live, "{r}");
        assert_eq!(
            r["out_metrics"].as_u64().unwrap(),
            r["first_metrics"].as_u64().unwrap() + r["live_metrics"].as_u64().unwrap(),
            "{r}"
        );
        let early = r["live_early"].as_u64().unwrap();
        assert!(early > 0, "{r}");
        assert!(
            summary.contains(&format!("{early} live events before it dropped")),
            "{summary}\n{r}"
        );
        assert_eq!(
            r["window_gaps"],
            serde_json::json!([]),
            "windows are consecutive: {r}"
        );
    }
}

/// A simulated live mesh after a trace: it starts at the hand-off time.
const SIM_LIVE: &str = r#"
[sinks.parquet]
inputs = true

[sources.mesh]
type = "simulator"
nodes = 20
duration = "1m"
seed = 3
[sources.mesh.faults]
count = 0
"#;

/// Flows before and after the hand-off in a trace and an output, the output's
/// latest flow, and its windows' gaps.
const SIM_SPLIT: &str = r#"
import sys, json
import pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds
first, out, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
at_ts = pa.scalar(at, type=pa.timestamp("ns", tz="UTC"))
def flows(root):
    return ds.dataset(root + "/flows", format="parquet", partitioning="hive").to_table(columns=["last_seen"])["last_seen"]
def split(t):
    return [int(pc.sum(pc.less(t, at_ts).cast("int64")).as_py() or 0), int(pc.sum(pc.greater_equal(t, at_ts).cast("int64")).as_py() or 0)]
o = flows(out)
feat = ds.dataset(out + "/node_features", format="parquet", partitioning="hive").to_table(columns=["window_end"])
ends = sorted(set(feat["window_end"].cast("int64").to_pylist()))
print(json.dumps({
    "first": split(flows(first)), "out": split(o),
    "out_last": int(pc.max(o).cast("int64").as_py()),
    "window_gaps": [b - a for a, b in zip(ends, ends[1:]) if b - a != 1_000_000_000],
    "last_window": ends[-1],
}))
"#;

#[test]
fn replay_first_hands_over_to_a_simulated_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sim.toml"), SIM_LIVE).unwrap();
    let sim = [
        "sim",
        "--out",
        "first",
        "--nodes",
        "20",
        "--duration",
        "2m",
        "--seed",
        "3",
        "--faults",
        "0",
    ];
    meshflow(d, &sim, true);
    let run = meshflow(
        d,
        &[
            "run",
            "--config",
            "sim.toml",
            "--replay-first",
            "first",
            "--out",
            "out",
        ],
        true,
    );
    let summary = String::from_utf8_lossy(&run.stdout).into_owned();
    let at = handoff_ns(&summary);
    let r = python_json(
        SIM_SPLIT,
        &[&d.join("first"), &d.join("out"), Path::new(&at.to_string())],
    );
    // Every trace flow is before the hand-off and in the output; the simulated mesh
    // adds flows from the hand-off on, for its whole minute, and the windows run on
    // without a gap.
    let first = r["first"][0].as_u64().unwrap();
    assert!(first > 0 && r["first"][1] == 0, "{r}");
    assert_eq!(r["out"][0].as_u64().unwrap(), first, "{r}");
    assert!(r["out"][1].as_u64().unwrap() > 0, "{r}");
    let last = r["out_last"].as_i64().unwrap();
    assert!(
        last >= at + 55_000_000_000 && last <= at + 60_000_000_000,
        "the simulated minute follows the hand-off at {at}: {r}"
    );
    assert_eq!(r["window_gaps"], serde_json::json!([]), "{r}");
}

/// The hand-off time the summary reports, in nanoseconds since the epoch.
fn handoff_ns(summary: &str) -> i64 {
    let line = summary
        .lines()
        .find(|l| l.contains("live sources took over at"))
        .unwrap_or_else(|| panic!("no hand-off line in:\n{summary}"));
    let text = line
        .split("took over at ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    text.parse::<meshflow_schemas::TimestampNs>().unwrap().0
}
