//! The command line around a job: `validate`, what `mode = "overwrite"` leaves in the
//! output folder, the simulator's warnings, and a multi-process job's start-up errors.

use std::path::Path;

use meshflow_integration::meshflow;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn validate_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("bad.toml"),
        "[job]\nworkers = 2\n[sources.a]\ntype = \"simulator\"\nnodes = 10\n[window]\nslide = \"3s\"\n",
    );
    let out = meshflow(d, &["validate", "bad.toml"], false);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("window.length"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A value the file sets is shown at its line; one a flag sets, by its key alone.
    write(
        &d.join("zero.toml"),
        "[job]\nworkers = 0\n[sources.a]\ntype = \"simulator\"\n",
    );
    let out = meshflow(d, &["validate", "zero.toml"], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("zero.toml: invalid value at line 2, column 11")
            && stderr.contains("2 | workers = 0")
            && stderr.contains("`job.workers` is 0; it must be between 1 and 512"),
        "{stderr}"
    );
    let out = meshflow(
        d,
        &[
            "run",
            "--config",
            "bad.toml",
            "--workers",
            "0",
            "--out",
            "o",
        ],
        false,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: job.workers is 0; it must be between 1 and 512"),
        "{stderr}"
    );
    write(&d.join("typo.toml"), "[sinks.parquet]\npaht = \"x\"\n");
    let out = meshflow(d, &["validate", "typo.toml"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `paht`"));
    let example = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../meshflow.example.toml");
    let out = meshflow(d, &["validate", example.to_str().unwrap()], true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
    // What a replay source points at is checked too: a missing trace, an empty folder.
    write(
        &d.join("gone.toml"),
        "[sources.old]\ntype = \"replay\"\npath = \"no-such-trace\"\n",
    );
    let out = meshflow(d, &["validate", "gone.toml"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sources.old.path") && err.contains("no-such-trace: does not exist"),
        "{err}"
    );
    std::fs::create_dir(d.join("empty")).unwrap();
    write(
        &d.join("first.toml"),
        "[job]\nreplay_first = \"empty\"\n[sources.a]\ntype = \"simulator\"\n",
    );
    let out = meshflow(d, &["validate", "first.toml"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("job.replay_first") && err.contains("holds none of the input tables"),
        "{err}"
    );
}

/// `mode = "overwrite"` (the default) leaves the output folder holding this job's
/// tables only, except a trace's input tables when the job replays that folder.
#[test]
fn overwrite_removes_the_tables_an_earlier_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = [
        "sim",
        "--out",
        "trace",
        "--nodes",
        "20",
        "--duration",
        "1m",
        "--faults",
        "0",
    ];
    meshflow(d, &sim, true);
    write(
        &d.join("all.toml"),
        "[sinks.parquet]\ninputs = true\n[anomaly]\nwarmup_windows = 10\n",
    );
    write(&d.join("bare.toml"), "[anomaly]\nenabled = false\n");
    let replay = |out: &str, config: &str| {
        let args = ["replay", "trace", "--out", out, "--config", config];
        String::from_utf8_lossy(&meshflow(d, &args, true).stderr).to_string()
    };
    replay("out", "all.toml");
    let tables = ["anomaly_scores", "flows", "node_metrics", "tcp_events"];
    for table in tables {
        assert!(d.join("out").join(table).is_dir(), "{table}");
    }
    let stderr = replay("out", "bare.toml");
    for table in tables {
        assert!(
            !d.join("out").join(table).exists(),
            "{table} left: {stderr}"
        );
        assert!(
            stderr.contains(&format!("out/{table}, left by an earlier run")),
            "{stderr}"
        );
    }
    assert!(d.join("out/node_features").is_dir());
    // Replayed into its own folder twice: the trace keeps what it is made of.
    replay("trace", "bare.toml");
    let stderr = replay("trace", "bare.toml");
    assert!(!stderr.contains("left by an earlier run"), "{stderr}");
    for table in ["flows", "node_metrics", "tcp_events", "ground_truth"] {
        assert!(d.join("trace").join(table).is_dir(), "{table}");
    }
}

/// Faults squeezed into slots shorter than `faults.min_duration` are written, with a
/// warning that says so; with room, no warning.
#[test]
fn sim_warns_when_faults_cannot_last_their_min_duration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let short = [
        "sim",
        "--out",
        "short",
        "--duration",
        "3m",
        "--faults",
        "10",
    ];
    let out = meshflow(d, &short, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("faults last at most 6s") && stderr.contains("faults.min_duration (30s)"),
        "{stderr}"
    );
    let roomy = [
        "sim",
        "--out",
        "roomy",
        "--duration",
        "10m",
        "--faults",
        "4",
    ];
    let out = meshflow(d, &roomy, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("faults last at most"), "{stderr}");
}

#[test]
fn multi_process_start_up_failures_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(&d.join("hosts"), &meshflow_integration::hosts_file(2));
    write(
        &d.join("job.toml"),
        "[sources.mesh]\ntype = \"simulator\"\nnodes = 20\nduration = \"60s\"\n\
         [sources.mesh.faults]\ncount = 0\n",
    );
    let start = |process: &str, workers: &str| {
        std::process::Command::new(meshflow_integration::meshflow_bin())
            .args([
                "run",
                "--config",
                "job.toml",
                "--out",
                "out",
                "--process",
                process,
                "--hosts",
                "hosts",
                "--workers",
                workers,
            ])
            .current_dir(d)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // A process whose port is taken says which address it could not listen on.
    let hosts = std::fs::read_to_string(d.join("hosts")).unwrap();
    let mine = hosts.lines().next().unwrap();
    let taken = std::net::TcpListener::bind(mine).unwrap();
    let out = start("0", "1").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("process 0 listens on {mine}")),
        "{stderr}"
    );
    drop(taken);
    let first = start("0", "1");
    let second = start("1", "2");
    for (child, workers) in [(first, 1), (second, 2)] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "Every process must run the same --workers (this one runs {workers})"
            )),
            "{stderr}"
        );
        assert_eq!(
            stderr.matches("error: the connection").count(),
            1,
            "{stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

#[test]
fn a_trace_of_node_metrics_alone_is_scored_from_its_series() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("timestamp,node,metric,value\n");
    // Every 10-s window of these values has the same mean (7 steps through 0..9), but
    // n2's cpu jumps to 100 at second 250 and its memory stays level.
    for t in 0..300 {
        for node in 0..4 {
            let mut value = (t * 7 + node * 13) % 10;
            if node == 2 && t == 250 {
                value = 100;
            }
            csv.push_str(&format!("{},n{node},cpu,{value}\n", 1_767_225_600 + t));
            csv.push_str(&format!(
                "{},n{node},mem,{}\n",
                1_767_225_600 + t,
                50 + node
            ));
        }
    }
    write(&d.join("m.csv"), &csv);
    meshflow(d, &["import", "metrics", "m.csv", "--out", "trace"], true);
    let out = meshflow(d, &["replay", "trace", "--out", "out"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("could not be fitted"), "{stderr}");
    let query = |sql: &str| {
        let out = meshflow(d, &["sql", "--out", "out", "--format", "csv", sql], true);
        String::from_utf8(out.stdout).unwrap()
    };
    // Scored from the 122nd window a node has (one to learn the slide, 120 to warm
    // up): the windows ending at 122 s to 300 s.
    let summary = query(
        "SELECT node_label, count(*) AS n, sum(CAST(is_anomaly AS INT)) AS flagged, \
         min(strategy) AS s FROM anomaly_scores GROUP BY node_label ORDER BY node_label",
    );
    assert_eq!(
        summary,
        "node_label,n,flagged,s\n\
         n0,179,0,percentile/series\nn1,179,0,percentile/series\n\
         n2,179,5,percentile/series\nn3,179,0,percentile/series\n",
        "{summary}"
    );
    // The first window holding the jump (its mean 13.9 against 4.5), explained by
    // cpu; then the rolling mean of five windows while it climbs. The bar is a high
    // percentile of the series' own past deviations, the jump's among them once
    // seen: over this short history it is the largest, so the later windows holding
    // the jump sit at the bar (1.0), not past it (1.1).
    let flagged = query(
        "SELECT CAST(window_end AS BIGINT) / 1000000000 - 1767225600 AS end_s, \
         top_features[1] AS why, round(top_values[1], 2) AS value, state FROM anomaly_scores \
         WHERE is_anomaly ORDER BY end_s",
    );
    let want = "end_s,why,value,state\n251,cpu,13.9,HEALTHY\n\
                252,cpu (mean of 5),8.26,DEGRADED\n253,cpu (mean of 5),10.14,DEGRADED\n\
                254,cpu (mean of 5),12.02,DEGRADED\n255,cpu (mean of 5),13.9,DEGRADED\n";
    assert_eq!(flagged, want, "{flagged}");
}

#[test]
fn a_closed_stderr_does_not_crash_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Many malformed lines: the import reports them all on stderr, then fails.
    let mut log = String::from("#fields\tts\tuid\n");
    for i in 0..100 {
        log.push_str(&format!("not-a-time\tC{i}\n"));
    }
    write(&d.join("conn.log"), &log);
    let mut child = std::process::Command::new(meshflow_integration::meshflow_bin())
        .args(["import", "zeek", "conn.log", "--out", "trace"])
        .current_dir(d)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away at once, as `2>&1 | head -1` does after its line.
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an import error, not a panic (101)");
}
