//! End to end: a metrics CSV with a given topology (`meshflow import metrics
//! --edges`), replayed on 1 and 2 workers, gives nodes without flows their degrees,
//! neighbour aggregates and components; checked with pyarrow.

use std::path::Path;

use meshflow_integration::{meshflow, python_json};
use serde_json::Value;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Per window (by end), per node name: degrees, the 1-hop mean of distinct peers,
/// and the component's smallest member name; plus the component count. And every
/// (name, label) pair of node_features (scores take the same label; too short a
/// trace to score here).
const READ: &str = r#"
import sys, json
import pyarrow.dataset as ds
names = {r["node"]: r["name"] for r in ds.dataset(sys.argv[1] + "/nodes", format="parquet").to_table().to_pylist()}
t = ds.dataset(sys.argv[2] + "/node_features", format="parquet", partitioning="hive").to_table()
labels = sorted({(names[r["node"]], r["node_label"]) for r in t.select(["node", "node_label"]).to_pylist()})
cols = ["window_end", "node", "in_degree", "out_degree", "distinct_peers", "distinct_peers_n1_mean", "component", "components"]
rows = t.select(cols).to_pylist()
out = {}
for r in rows:
    w = str(r["window_end"].timestamp())
    comp_members = sorted(names[x["node"]] for x in rows if x["window_end"] == r["window_end"] and x["component"] == r["component"])
    out.setdefault(w, {})[names[r["node"]]] = [r["in_degree"], r["out_degree"], r["distinct_peers"], r["distinct_peers_n1_mean"], comp_members[0], r["components"]]
print(json.dumps({"windows": out, "labels": labels}, sort_keys=True))
"#;

#[test]
fn a_given_topology_gives_metric_only_nodes_degrees_neighbourhoods_and_components() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Five nodes report a metric every 5 s for a minute; `e` stops after 30 s.
    let start = 1_767_225_600; // 2026-01-01T00:00:00Z, epoch seconds
    let mut csv = String::from("timestamp,node,metric,value\n");
    for t in (0..60).step_by(5) {
        for n in ["a", "b", "c", "d", "e"] {
            if n == "e" && t >= 30 {
                continue;
            }
            csv.push_str(&format!("{},{n},cpu_load,{}\n", start + t, t % 7));
        }
    }
    write(&d.join("metrics.csv"), &csv);
    // a - b - c, and d - e: two components.
    write(&d.join("edges.csv"), "src,dst\na,b\nb,c\nd,e\n");
    meshflow(
        d,
        &[
            "import",
            "metrics",
            "metrics.csv",
            "--edges",
            "edges.csv",
            "--out",
            "trace",
        ],
        true,
    );
    let mut outputs = Vec::new();
    for workers in [1, 2] {
        let config =
            format!("[job]\nworkers = {workers}\n[window]\nlength = \"10s\"\nslide = \"10s\"\n");
        write(&d.join("job.toml"), &config);
        let out = format!("out{workers}");
        let replay = meshflow(
            d,
            &["replay", "trace", "--out", &out, "--config", "job.toml"],
            true,
        );
        // Six windows are too few to score: the summary says so.
        let summary = String::from_utf8_lossy(&replay.stdout);
        assert!(
            summary.contains("anomaly_scores 0 -> ")
                && summary.contains(
                    "a node seen only through metric series, once a series has about 120 windows"
                ),
            "{summary}"
        );
        outputs.push(python_json(READ, &[&d.join("trace"), &d.join(&out)]));
    }
    assert_eq!(outputs[0], outputs[1], "1 and 2 workers differ");
    // Named nodes are labelled with their names.
    let labels = outputs[0]["labels"].as_array().unwrap();
    assert!(labels.len() >= 5, "{labels:?}");
    for pair in labels {
        assert_eq!(pair[0], pair[1], "label is the node's name: {labels:?}");
    }
    let windows = outputs[0]["windows"].as_object().unwrap();
    // Data spans [0 s, 55 s]: six tumbling windows, none before or after.
    assert_eq!(windows.len(), 6, "{}", outputs[0]);
    let row = |w: &Value, n: &str| w[n].as_array().cloned().unwrap_or_default();
    for (end, w) in windows {
        // [in_degree, out_degree, distinct_peers, peers' mean of distinct_peers, component, components]
        assert_eq!(
            row(w, "a"),
            serde_json::json!([0, 1, 1, 2.0, "a", 2])
                .as_array()
                .unwrap()
                .clone(),
            "window {end}: {w}"
        );
        assert_eq!(
            row(w, "b"),
            serde_json::json!([1, 1, 2, 1.0, "a", 2])
                .as_array()
                .unwrap()
                .clone(),
            "window {end}: {w}"
        );
        assert_eq!(
            row(w, "c"),
            serde_json::json!([1, 0, 1, 2.0, "a", 2])
                .as_array()
                .unwrap()
                .clone(),
            "window {end}: {w}"
        );
        assert_eq!(
            row(w, "d"),
            serde_json::json!([0, 1, 1, 1.0, "d", 2])
                .as_array()
                .unwrap()
                .clone(),
            "window {end}: {w}"
        );
    }
    // `e` stays in the mesh after it stops reporting: the link holds for the trace.
    for w in windows.values() {
        assert_eq!(w["e"][4], "d", "{w}");
    }
}
