//! End to end: `meshflow compact` leaves one file per partition and the same rows,
//! checked with pyarrow; `meshflow sql` reads the result.

use meshflow_integration::{meshflow, python_json};

/// Per table: row count, a content checksum independent of row order, and the files
/// per partition folder.
const SUMMARY: &str = r#"
import sys, json, os, hashlib
import pyarrow.dataset as ds
out = {}
for table in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], table)
    t = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist())
    files = {}
    for root, _, names in os.walk(path):
        n = sum(1 for f in names if f.endswith(".parquet"))
        if n:
            files[os.path.relpath(root, path)] = n
    out[table] = {"rows": len(rows), "digest": hashlib.sha256("\n".join(rows).encode()).hexdigest(), "files": files}
print(json.dumps(out))
"#;

#[test]
fn compaction_keeps_every_row_and_leaves_one_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sim.toml"), "start = \"2026-01-01T23:59:00Z\"\n").unwrap();
    let sim = [
        "sim",
        "--out",
        "trace",
        "--nodes",
        "12",
        "--duration",
        "3m",
        "--seed",
        "5",
        "--config",
        "sim.toml",
    ];
    meshflow(d, &sim, true);
    meshflow(d, &["replay", "trace", "--out", "out"], true);
    let out = d.join("out");
    let before = python_json(SUMMARY, &[&out]);
    let tables = before.as_object().unwrap();
    assert!(
        tables.values().any(|t| t["files"]
            .as_object()
            .unwrap()
            .values()
            .any(|n| n.as_u64() > Some(1))),
        "the run left several files in some partition: {before}"
    );
    // Files written just now are left alone under the default settle time.
    let held = meshflow(d, &["compact", "--out", "out"], true);
    let held = String::from_utf8_lossy(&held.stdout).into_owned();
    assert!(held.contains("still being written left alone"), "{held}");
    assert_eq!(python_json(SUMMARY, &[&out]), before);

    let done = meshflow(d, &["compact", "--out", "out", "--settle", "0s"], true);
    let done = String::from_utf8_lossy(&done.stdout).into_owned();
    assert!(done.contains("node_features: "), "{done}");
    let after = python_json(SUMMARY, &[&out]);
    for (table, b) in tables {
        let a = &after[table];
        assert_eq!(a["rows"], b["rows"], "{table}");
        assert_eq!(a["digest"], b["digest"], "{table}: the same rows");
        assert_eq!(
            a["files"].as_object().unwrap().keys().collect::<Vec<_>>(),
            b["files"].as_object().unwrap().keys().collect::<Vec<_>>(),
            "{table}: the same partitions"
        );
        assert!(
            a["files"]
                .as_object()
                .unwrap()
                .values()
                .all(|n| n.as_u64() == Some(1)),
            "{table}: one file per partition: {a}"
        );
    }
    let sql = meshflow(
        d,
        &[
            "sql",
            "--out",
            "out",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM node_features",
        ],
        true,
    );
    let n = before["node_features"]["rows"].as_u64().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sql.stdout).trim(),
        format!("n\n{n}")
    );
    // An unknown table is named.
    let bad = meshflow(d, &["compact", "--out", "out", "--table", "nope"], false);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("table `nope`"));
}
