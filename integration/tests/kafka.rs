//! The Kafka sink and source end to end, against a real broker (tansu) started here,
//! checked by independent readers (Python: a control-marker-aware Fetch client,
//! confluent-kafka, and pyarrow for the Parquet output of the same run).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use meshflow_integration::tansu::{Storage, Tansu};
use meshflow_integration::{meshflow, meshflow_bin, python_json};
use serde_json::Value;

/// The sink's fault-injection hook (`meshflow_sinks::kafka::COMMIT_DELAY_ENV`).
const COMMIT_DELAY_ENV: &str = "MESHFLOW_KAFKA_COMMIT_DELAY_MS";

const TABLES: [&str; 4] = ["node_features", "flows", "node_metrics", "tcp_events"];

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// The schema version meshflow tags a table's records with.
fn version(table: &str) -> u32 {
    use meshflow_schemas::{ArrowRecord, FlowRecord, NodeFeatures, NodeMetric, TcpEvent};
    match table {
        t if t == NodeFeatures::TABLE => NodeFeatures::VERSION,
        t if t == FlowRecord::TABLE => FlowRecord::VERSION,
        t if t == NodeMetric::TABLE => NodeMetric::VERSION,
        t if t == TcpEvent::TABLE => TcpEvent::VERSION,
        other => panic!("no version known for {other}"),
    }
}

fn check_script() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/kafka_check.py"))
}

/// Kafka's committed records against the Parquet output in `out`, per table.
fn check(tansu: &Tansu, out: &Path) -> Value {
    let mut args = vec![
        tansu.brokers(),
        out.display().to_string(),
        "meshflow.".into(),
        "meshflow.progress".into(),
    ];
    args.extend(TABLES.iter().map(|t| format!("{t}:{}", version(t))));
    let script = format!(
        "import runpy, sys; sys.argv = [{:?}] + {:?}; runpy.run_path({:?}, run_name='__main__')",
        check_script().display().to_string(),
        args,
        check_script().display().to_string()
    );
    python_json(&script, &[])
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Every table: the committed records are exactly the Parquet rows, tagged, keyed by
/// node, and each (writer, window) is committed once.
fn assert_exact(report: &Value) {
    assert_eq!(u(&report["progress"]["duplicated_windows"]), 0, "{report}");
    for table in TABLES {
        let t = &report[table];
        assert!(u(&t["parquet"]) > 0, "{table}: empty run: {report}");
        assert_eq!(u(&t["missing_from_kafka"]), 0, "{table}: {t}");
        assert_eq!(u(&t["extra_in_kafka"]), 0, "{table}: {t}");
        assert_eq!(u(&t["kafka"]), u(&t["parquet"]), "{table}: {t}");
        assert_eq!(u(&t["bad_tags"]), 0, "{table}: {t}");
        assert_eq!(u(&t["bad_keys"]), 0, "{table}: {t}");
        assert_eq!(u(&t["progress_rows"]), u(&t["kafka"]), "{table}: {t}");
        assert_eq!(u(&t["stats"]["open_records"]), 0, "{table}: {t}");
        assert!(
            t["compared_columns"].as_array().unwrap().len() >= 4,
            "{table}: {t}"
        );
    }
}

fn job_config(brokers: &str, pace: &str, duration: &str, extra: &str) -> String {
    format!(
        r#"[job]
workers = 2
[window]
length = "5s"
slide = "1s"
[sources.mesh]
type = "simulator"
nodes = 12
seed = 9
duration = "{duration}"
pace = "{pace}"
[sources.mesh.faults]
count = 0
[sinks.parquet]
path = "out"
inputs = true
[sinks.kafka]
brokers = "{brokers}"
inputs = true
timeout = "3s"
retry_backoff = "500ms"
retries = 60
{extra}"#
    )
}

fn summary_count(stdout: &str, needle: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{stdout}"));
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

#[test]
fn a_full_run_to_kafka_commits_every_record_once() {
    let tansu = Tansu::start(Storage::Memory);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("job.toml"),
        &job_config(&tansu.brokers(), "fast", "2m", ""),
    );
    let out = meshflow(d, &["run", "--config", "job.toml"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = check(&tansu, &d.join("out"));
    assert_exact(&report);
    let nf = &report["node_features"];
    assert_eq!(
        u(&nf["kafka"]),
        summary_count(&stdout, "rows written: node_features"),
        "{stdout}"
    );
    assert_eq!(
        summary_count(&stdout, "kafka: meshflow.node_features"),
        u(&nf["kafka"]),
        "{stdout}"
    );
    // No transaction was aborted in a clean run, so librdkafka agrees; and each
    // partition was written by one producer (one writer per partition).
    for table in TABLES {
        let t = &report[table];
        assert_eq!(u(&t["stats"]["aborts"]), 0, "{t}");
        assert_eq!(u(&t["stats"]["producers_per_partition"]), 1, "{t}");
        assert_eq!(u(&t["librdkafka_read_committed"]), u(&t["kafka"]), "{t}");
    }
}

/// The sum over the summary's `kafka:` lines of their `column`-th count (0 committed,
/// 1 skipped as already committed, 2 failed attempts).
fn kafka_total(stdout: &str, column: usize) -> u64 {
    stdout
        .lines()
        .filter(|l| l.contains("  kafka: "))
        .map(|l| {
            let part = l.split(", ").nth(column).unwrap_or_default();
            let word = part.split_whitespace().find(|w| w.parse::<u64>().is_ok());
            word.and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no count {column} in {l}"))
        })
        .sum()
}

/// A running `meshflow run`. Its output goes to files, not pipes: nobody reads a pipe
/// while the job runs, and a broker outage logs enough to fill one and stall the job.
struct Job {
    child: Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Job {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let stdout = dir.join("meshflow.stdout");
        let stderr = dir.join("meshflow.stderr");
        let mut cmd = Command::new(meshflow_bin());
        cmd.args(["run", "--config", "job.toml"])
            .current_dir(dir)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start meshflow");
        Job {
            child,
            stdout,
            stderr,
        }
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) every thread of the job.
    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid, with a valid signal number.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal}");
    }

    /// Waits up to `timeout` (then kills), and returns (succeeded, stdout, stderr).
    fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        (status.success(), read(&self.stdout), read(&self.stderr))
    }
}

/// Waits (up to 90 s) until `n` windows of `node_features` are committed, so a fault
/// injected next lands in the middle of a run, not before its first window.
fn wait_for_commits(tansu: &Tansu, n: u64) {
    let committed = python_json(
        r#"
import json, sys, time
import confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": "wait"})
want = int(sys.argv[2])
deadline, n = time.time() + 90, 0
while time.time() < deadline and n < want:
    try:
        n = sum(c.get_watermark_offsets(ck.TopicPartition("meshflow.progress.node_features", p), timeout=5)[1] for p in (0, 1))
    except ck.KafkaException:
        pass
    time.sleep(0.2)
print(json.dumps({"offsets": n}))
"#,
        &[Path::new(&tansu.brokers()), Path::new(&n.to_string())],
    );
    assert!(
        u(&committed["offsets"]) >= n,
        "fewer than {n} windows committed: {committed}"
    );
}

#[test]
fn meshflow_killed_mid_window_and_restarted_commits_every_window_once() {
    let tansu = Tansu::start(Storage::Memory);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("job.toml"),
        &job_config(&tansu.brokers(), "realtime", "20s", ""),
    );
    // Each transaction stays open 1.5 s, longer than a window's slide, so the writers
    // fall behind and always hold one open: the kill lands inside them. (Held open
    // 700 ms of every second, the kill once fell between transactions, all writers
    // being in step now that windows leave as soon as they close.)
    let delay = [(COMMIT_DELAY_ENV, "1500")];
    let mut job = Job::start(d, &delay);
    // Kill only once windows are being committed (a loaded machine starts slowly).
    wait_for_commits(&tansu, 6);
    std::thread::sleep(Duration::from_millis(2500));
    job.child.kill().unwrap();
    let (ok, _, _) = job.finish(Duration::from_secs(10));
    assert!(!ok, "SIGKILL ends the job");
    // The rerun regenerates the same windows (same seed) and skips committed ones.
    let (ok, stdout, stderr) = Job::start(d, &[]).finish(Duration::from_secs(120));
    assert!(ok, "restart failed:\n{stdout}\n{stderr}");
    assert!(
        summary_count(&stdout, "kafka: meshflow.node_features") > 0,
        "{stdout}"
    );
    let report = check(&tansu, &d.join("out"));
    assert_exact(&report);
    let aborted: u64 = TABLES
        .iter()
        .map(|t| u(&report[*t]["stats"]["aborts"]))
        .sum();
    assert!(
        aborted > 0,
        "the kill should have left open transactions for the restart to abort: {report}"
    );
    let skipped = kafka_total(&stdout, 1);
    assert!(
        skipped > 0,
        "the restart skipped committed windows:\n{stdout}"
    );
    eprintln!("kill/restart: {report}");
}

/// Ctrl-C mid-run: the windows that close after the stop hold only part of their
/// data, so they are not committed, and the restart computes and commits them whole.
#[test]
fn a_job_stopped_with_ctrl_c_and_restarted_commits_only_whole_windows() {
    let tansu = Tansu::start(Storage::Memory);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("job.toml"),
        &job_config(&tansu.brokers(), "realtime", "20s", ""),
    );
    let job = Job::start(d, &[]);
    wait_for_commits(&tansu, 6);
    job.signal(libc::SIGINT);
    let (ok, stdout, stderr) = job.finish(Duration::from_secs(60));
    assert!(ok, "Ctrl-C ends the job cleanly:\n{stdout}\n{stderr}");
    assert!(stdout.contains("not committed: incomplete"), "{stdout}");
    // The rerun regenerates the same windows (same seed) and skips committed ones.
    let (ok, stdout, stderr) = Job::start(d, &[]).finish(Duration::from_secs(120));
    assert!(ok, "restart failed:\n{stdout}\n{stderr}");
    assert!(kafka_total(&stdout, 1) > 0, "{stdout}");
    assert_exact(&check(&tansu, &d.join("out")));
}

#[test]
fn a_broker_killed_and_restarted_mid_run_loses_and_duplicates_nothing() {
    let mut tansu = Tansu::start(Storage::S3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("job.toml"),
        &job_config(&tansu.brokers(), "realtime", "20s", ""),
    );
    let job = Job::start(d, &[]);
    wait_for_commits(&tansu, 4);
    // The broker is killed between requests, never inside one: tansu 0.6's S3 storage
    // advances an idempotent producer's sequence before it stores the batch
    // (tansu-storage/src/dynostore.rs, `produce`), so a kill between the two loses a
    // batch and the client's retry is answered "duplicate": acknowledged, never
    // stored. That is a fault of the test broker's storage, not of a broker outage
    // as the job sees it. So the job is paused, the storage left to go quiet, the
    // broker killed, and the job resumed into the outage.
    job.signal(libc::SIGSTOP);
    tansu.wait_for_quiet_storage(Duration::from_secs(1));
    tansu.kill();
    job.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(6));
    tansu.restart();
    let (ok, stdout, stderr) = job.finish(Duration::from_secs(180));
    assert!(
        ok,
        "the job must survive the outage:\n{stdout}\n{stderr}\nbroker:\n{}",
        tansu.logs()
    );
    // The job saw the outage: its producer logged the refused connections. (Whether an
    // attempt also failed depends on timing: librdkafka may ride out a short outage.)
    let port = tansu.brokers();
    let refused = stderr
        .lines()
        .filter(|l| l.contains(&port) && l.contains("Connection refused"))
        .count();
    assert!(
        refused > 0,
        "the job never saw the broker go away:\n{stderr}"
    );
    let failed = kafka_total(&stdout, 2);
    let report = check(&tansu, &d.join("out"));
    assert_exact(&report);
    eprintln!(
        "broker restart: {refused} refused connections logged, failed attempts {failed}; {report}"
    );
}

#[test]
fn the_kafka_source_reads_what_the_sink_wrote_and_commits_its_offsets() {
    let tansu = Tansu::start(Storage::Memory);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("job.toml"),
        &job_config(&tansu.brokers(), "fast", "1m", ""),
    );
    let first = meshflow(d, &["run", "--config", "job.toml"], true);
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    let inputs: u64 = ["flows", "node_metrics", "tcp_events"]
        .iter()
        .map(|t| summary_count(&first, &format!("rows written: {t} ")))
        .sum();
    // What the source will read is what the first run committed, exactly: a
    // read_committed librdkafka consumer (as the source is) sees every committed
    // record of the input topics and nothing else.
    let committed = check(&tansu, &d.join("out"));
    assert_exact(&committed);
    for table in ["flows", "node_metrics", "tcp_events"] {
        let t = &committed[table];
        assert_eq!(
            u(&t["librdkafka_read_committed"]),
            u(&t["kafka"]),
            "{table}: {t}\nfirst run:\n{first}"
        );
    }
    // The same windows, recomputed from the input topics on two workers.
    let source = format!(
        r#"[job]
workers = 2
lateness = "30s"
[window]
length = "5s"
slide = "1s"
[sources.bus]
type = "kafka"
brokers = "{}"
topics = ["meshflow.flows", "meshflow.node_metrics", "meshflow.tcp_events"]
group_id = "e2e"
stop_at_end = true
[sinks.parquet]
path = "again"
"#,
        tansu.brokers()
    );
    write(&d.join("source.toml"), &source);
    let out = meshflow(d, &["run", "--config", "source.toml"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("late events dropped"), "{stdout}");
    // Every input record the first run wrote was read back, none twice.
    assert_eq!(
        summary_count(&stdout, "source bus:"),
        inputs,
        "first run:\n{first}\nagain:\n{stdout}"
    );
    let compare = python_json(
        r#"
import json, sys
import pyarrow.dataset as ds
def rows(p):
    t = ds.dataset(p, format="parquet", partitioning="hive").to_table()
    cols = [c for c in t.column_names if c not in ("date", "hour")]
    vals = [t.column(c).cast("int64").to_pylist() if "timestamp" in str(t.column(c).type) else t.column(c).to_pylist() for c in cols]
    # List columns become tuples (hashable); nulls sort by their text.
    return sorted((tuple(tuple(v) if isinstance(v, list) else v for v in r) for r in zip(*vals)), key=repr)
a, b = rows(sys.argv[1]), rows(sys.argv[2])
only_a, only_b = sorted(set(a) - set(b), key=repr), sorted(set(b) - set(a), key=repr)
print(json.dumps({"first": len(a), "again": len(b), "equal": a == b,
    "differing": [len(only_a), len(only_b)],
    "only_first": [str(d) for d in only_a[:3]], "only_again": [str(d) for d in only_b[:3]]}))
"#,
        &[
            &d.join("out").join("node_features"),
            &d.join("again").join("node_features"),
        ],
    );
    assert!(u(&compare["first"]) > 0, "{compare}");
    assert_eq!(compare["equal"], Value::Bool(true), "{compare}\n{stdout}");
    // Offsets were committed after the windows were written, except those of the
    // records the last, incomplete windows need (the topic may go on; with `lateness`,
    // the watermark trails the newest record by 30 s): a rerun reads those again, and
    // only those, as often as it runs.
    let rerun = |out: &str| {
        let args = ["run", "--config", "source.toml", "--out", out];
        let stdout = String::from_utf8_lossy(&meshflow(d, &args, true).stdout).to_string();
        summary_count(&stdout, "source bus:")
    };
    let tail = rerun("third");
    assert!(tail > 0 && tail < inputs, "{tail} of {inputs}");
    assert_eq!(rerun("fourth"), tail);

    // Without the Kafka sink, a window is durable only once its Parquet file is
    // finished: a job killed mid-stream has committed no offset, and its restart
    // reads every record again.
    let crash = d.join("crash");
    std::fs::create_dir(&crash).unwrap();
    let live = source.replace(
        "group_id = \"e2e\"\nstop_at_end = true\n",
        "group_id = \"crash\"\n",
    );
    assert_ne!(live, source);
    write(&crash.join("job.toml"), &live);
    let job = Job::start(&crash, &[]);
    std::thread::sleep(Duration::from_secs(8));
    job.signal(libc::SIGKILL);
    let (ok, _, _) = job.finish(Duration::from_secs(10));
    assert!(!ok, "SIGKILL ends the job");
    let committed = python_json(
        r#"
import json, sys
import confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": "crash"})
tps = [ck.TopicPartition(t, p) for t in ("meshflow.flows", "meshflow.node_metrics", "meshflow.tcp_events") for p in range(3)]
print(json.dumps({"offsets": [tp.offset for tp in c.committed(tps, timeout=10)]}))
"#,
        &[Path::new(&tansu.brokers())],
    );
    let offsets = committed["offsets"].as_array().unwrap();
    assert!(
        offsets.iter().all(|o| o.as_i64() == Some(-1001)),
        "{committed}"
    );
    write(
        &crash.join("job.toml"),
        &live.replace(
            "group_id = \"crash\"\n",
            "group_id = \"crash\"\nstop_at_end = true\n",
        ),
    );
    let (ok, stdout, stderr) = Job::start(&crash, &[]).finish(Duration::from_secs(120));
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(summary_count(&stdout, "source bus:"), inputs, "{stdout}");
}
