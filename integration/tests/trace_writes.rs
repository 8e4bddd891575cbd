//! What `meshflow sim` and `meshflow import` leave in a trace folder that already
//! holds a trace: exactly the new trace when they succeed, the earlier one untouched
//! when writing fails (here: a filesystem that fills up part-way).

use std::path::{Path, PathBuf};
use std::process::Command;

use meshflow_integration::{meshflow, meshflow_bin};

/// Every file below `dir` with its bytes, by path relative to `dir`, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    found.sort();
    found
}

/// The names in `dir`, hidden ones included, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `script` (with `$MESHFLOW` set) in a private mount namespace of its own, in
/// `cwd`, where it may mount a small tmpfs that vanishes with it. Returns stderr.
fn in_mount_namespace(cwd: &Path, script: &str) -> String {
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("MESHFLOW", meshflow_bin())
        .current_dir(cwd)
        .output()
        .expect("run unshare (util-linux); the test runs as root");
    assert!(
        out.status.success(),
        "the script failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A trace of 10 nodes over 20 s takes about 90 KB; one of 50 nodes over 2 minutes,
/// about 950 KB. On a 512 KiB filesystem holding the first, the second cannot be
/// written: the error names the disk, and the first trace stays byte for byte, with
/// no staging folder left behind. The same for a metric and a Zeek import over it.
#[test]
fn a_full_disk_leaves_the_earlier_trace_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small = [
        "sim",
        "--out",
        "small",
        "--nodes",
        "10",
        "--duration",
        "20s",
    ];
    meshflow(d, &[&small[..], &["--faults", "0"]].concat(), true);
    // 60,000 samples of scattered values: about 760 KB of Parquet.
    let csv: String = (0..60_000u64)
        .map(|i| {
            let value = (i * 2_654_435_761 % 1_000_003) as f64 / 7.0;
            format!("{},n{},cpu,{value}\n", 1_397_088_300 + i, i % 97)
        })
        .collect();
    std::fs::write(d.join("big.csv"), csv).unwrap();
    // 10,000 connections both ways with scattered addresses, ports and counts: about
    // 870 KB of Parquet.
    let mut log = String::from(
        "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\t\
         orig_bytes\tresp_bytes\torig_pkts\tresp_pkts\n",
    );
    for i in 0..10_000u64 {
        let h = i * 2_654_435_761 % 4_294_967_291;
        log.push_str(&format!(
            "{}.{:03}\t10.0.{}.{}\t{}\t10.1.{}.{}\t{}\ttcp\t{}.{:03}\t{}\t{}\t{}\t{}\n",
            1_397_088_300 + i / 3,
            i % 1000,
            h % 251,
            h % 241,
            h % 60_000 + 1024,
            h % 239,
            h % 233,
            h % 1000 + 1,
            h % 100,
            h % 997,
            h % 99_991,
            h % 88_883,
            h % 97 + 1,
            h % 89 + 1
        ));
    }
    std::fs::write(d.join("big.log"), log).unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
    let stderr = in_mount_namespace(
        d,
        r#"set -u
mount -t tmpfs -o size=512k tmpfs mnt || exit 1
cp -r small mnt/trace || exit 1
"$MESHFLOW" sim --out mnt/trace --nodes 50 --duration 2m --faults 0 && exit 2
echo "--- import" >&2
"$MESHFLOW" import metrics big.csv --out mnt/trace && exit 3
echo "--- zeek" >&2
"$MESHFLOW" import zeek big.log --out mnt/trace && exit 4
cp -r mnt/trace after || exit 1
ls -A mnt/trace > after.names
"#,
    );
    let (sim, imports) = stderr.split_once("--- import").expect("every command ran");
    let (metrics, zeek) = imports.split_once("--- zeek").expect("every command ran");
    for said in [sim, metrics, zeek] {
        assert!(said.contains("No space left on device"), "{stderr}");
        assert!(said.contains("mnt/trace was left as it was"), "{stderr}");
        assert!(!said.contains("External: No space left on device (os error 28): External"));
    }
    assert_eq!(files(&d.join("after")), files(&d.join("small")));
    let listed = std::fs::read_to_string(d.join("after.names")).unwrap();
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["flows", "ground_truth", "node_metrics", "tcp_events"],
        "a staging folder was left behind"
    );
}

/// A simulator trace written over a metric import's folder replaces it whole: the
/// import's `nodes/` and `edges/` would otherwise name and link the simulator's nodes
/// in a replay.
#[test]
fn sim_removes_the_tables_of_the_trace_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("m.csv"), "1397088300,a,cpu,1\n1397088360,b,cpu,2\n").unwrap();
    std::fs::write(d.join("e.csv"), "a,b\n").unwrap();
    let import = [
        "import", "metrics", "m.csv", "--edges", "e.csv", "--out", "trace",
    ];
    meshflow(d, &import, true);
    assert_eq!(names(&d.join("trace")), ["edges", "node_metrics", "nodes"]);
    let sim = [
        "sim",
        "--out",
        "trace",
        "--nodes",
        "10",
        "--duration",
        "20s",
    ];
    let out = meshflow(d, &[&sim[..], &["--faults", "0"]].concat(), true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("removed the tables an earlier trace left in trace: edges, nodes"),
        "{stdout}"
    );
    assert_eq!(
        names(&d.join("trace")),
        ["flows", "ground_truth", "node_metrics", "tcp_events"]
    );
}
