//! SQL over a small output folder spanning two dates: partition pruning, errors,
//! table descriptions and the prompt.

use std::path::Path;

use meshflow_schemas::{NodeFeatures, TimestampNs};
use meshflow_sinks::parquet::{ParquetSinkConfig, write_table};

use super::*;

/// 2026-01-01T23:58:30Z.
const START: i64 = 1_767_311_910;

/// Node features every 30 s from 23:58:30 to 00:01:30 for nodes 1..=3: one file per
/// minute, two in `date=2026-01-01/hour=23` and two in `date=2026-01-02/hour=00`.
fn output(dir: &Path) {
    let rows = (0..7)
        .flat_map(|i| {
            (1..=3u64).map(move |node| NodeFeatures {
                bytes_in: 10 * node,
                bytes_out: 100 * node + i as u64,
                packets_in: 1,
                packets_out: 1,
                flows_in: 1,
                flows_out: 1,
                in_degree: 1,
                out_degree: 1,
                distinct_peers: 1,
                metric_names: vec!["cpu_load".into(), "rtt_ms".into()],
                metric_means: vec![0.5, node as f64],
                metric_samples: vec![10, 10],
                ..NodeFeatures::empty(
                    TimestampNs::from_secs(START + 30 * i - 10),
                    TimestampNs::from_secs(START + 30 * i),
                    node,
                )
            })
        })
        .collect();
    let cfg = ParquetSinkConfig {
        path: dir.to_path_buf(),
        buckets: 1,
        ..Default::default()
    };
    write_table(dir, rows, &cfg).unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn csv(result: &QueryResult) -> String {
    let mut out = Vec::new();
    write_result(result, Format::Csv, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The physical plan of `query`, as text.
fn plan(rt: &tokio::runtime::Runtime, session: &SqlSession, query: &str) -> String {
    csv(&rt
        .block_on(session.run(&format!("EXPLAIN {query}")))
        .unwrap())
}

/// The explanation columns are lists: indexing and DataFusion's array functions work
/// on them.
#[test]
fn list_columns_take_indexing_and_array_functions() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    let query = "SELECT node, metric_names[2] AS second, array_length(metric_names) AS n, \
                 array_has(metric_names, 'rtt_ms') AS has, metric_means[2] AS rtt \
                 FROM node_features WHERE window_end = (SELECT min(window_end) FROM node_features) ORDER BY node";
    let got = csv(&rt.block_on(session.run(query)).unwrap());
    assert_eq!(
        got,
        "node,second,n,has,rtt\n1,rtt_ms,2,true,1.0\n2,rtt_ms,2,true,2.0\n3,rtt_ms,2,true,3.0\n"
    );
}

/// Standard SQL's time, string and pattern functions work (DataFusion's datetime,
/// string, unicode and regex function sets).
#[test]
fn standard_time_string_and_pattern_functions_work() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    let query = "SELECT EXTRACT(second FROM window_end) AS s, date_trunc('minute', window_end) AS m, \
                 SUBSTRING(metric_names[1] FROM 5) AS sub, POSITION('_' IN metric_names[1]) AS pos, \
                 upper(metric_names[2]) AS up, regexp_like(metric_names[2], '^rtt') AS re \
                 FROM node_features WHERE node = 1 ORDER BY window_end LIMIT 2";
    let got = csv(&rt.block_on(session.run(query)).unwrap());
    assert_eq!(
        got,
        "s,m,sub,pos,up,re\n30,2026-01-01T23:58:00Z,load,4,RTT_MS,true\n\
         0,2026-01-01T23:59:00Z,load,4,RTT_MS,true\n"
    );
}

#[test]
fn partition_and_time_filters_scan_only_the_matching_files() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    assert_eq!(session.tables(), ["node_features"]);

    let all = plan(&rt, &session, "SELECT node FROM node_features");
    assert!(
        all.contains("date=2026-01-01/hour=23") && all.contains("date=2026-01-02/hour=00"),
        "{all}"
    );
    for (query, kept, dropped) in [
        (
            "SELECT node FROM node_features WHERE date = '2026-01-02'",
            "date=2026-01-02/hour=00",
            "date=2026-01-01",
        ),
        (
            "SELECT node FROM node_features WHERE hour = '23'",
            "date=2026-01-01/hour=23",
            "date=2026-01-02",
        ),
        (
            "SELECT node FROM node_features WHERE window_end >= '2026-01-02T00:00:00Z'",
            "date=2026-01-02/hour=00",
            "date=2026-01-01",
        ),
        (
            "SELECT node FROM node_features WHERE window_end < TIMESTAMP '2026-01-02 00:00:00'",
            "date=2026-01-01/hour=23",
            "date=2026-01-02",
        ),
        (
            "SELECT node FROM node_features WHERE node = 2 AND window_end BETWEEN '2026-01-01T23:00:00Z' AND '2026-01-01T23:59:59Z'",
            "date=2026-01-01/hour=23",
            "date=2026-01-02",
        ),
    ] {
        let shown = plan(&rt, &session, query);
        assert!(
            shown.contains(kept) && !shown.contains(dropped),
            "{query}\n{shown}"
        );
    }

    // Pruning changes which files are read, never the answer.
    for (query, expected) in [
        (
            "SELECT count(*) AS n FROM node_features WHERE window_end >= '2026-01-02T00:00:00Z'",
            12,
        ),
        (
            "SELECT count(*) AS n FROM node_features WHERE window_end > '2026-01-02T00:00:00Z'",
            9,
        ),
        (
            "SELECT count(*) AS n FROM node_features WHERE window_end <= '2026-01-02T00:00:00Z'",
            12,
        ),
        (
            "SELECT count(*) AS n FROM node_features WHERE date = '2026-01-01'",
            9,
        ),
    ] {
        let got = csv(&rt.block_on(session.run(query)).unwrap());
        assert_eq!(got, format!("n\n{expected}\n"), "{query}");
    }
}

#[test]
fn errors_carry_datafusions_message_and_unknown_tables_list_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    let err = rt
        .block_on(session.run("SELECT * FROM nope"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("available tables: node_features"),
        "{err}"
    );
    let err = rt
        .block_on(session.run("SELECT no_such_column FROM node_features"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_column"), "{err}");
    // DataFusion lists every column of the table: the first 12 are shown.
    let columns = <meshflow_schemas::NodeFeatures as meshflow_schemas::ArrowRecord>::schema()
        .fields()
        .len();
    assert!(
        err.contains("Valid fields are node_features.window_end, node_features.window_start,")
            && err.contains(&format!(
                ", … and {} more (`DESCRIBE table` lists a table's columns).",
                columns + 2 - 12
            ))
            && !err.contains("node_features.components"),
        "{err}"
    );
    let err = rt
        .block_on(session.run("SELECT nodee FROM node_features"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Did you mean 'node_features.node'?"), "{err}");
    let err = rt.block_on(session.run("SELEC 1")).unwrap_err().to_string();
    assert!(err.contains("SELEC"), "{err}");
    let err = rt
        .block_on(SqlSession::open(&dir.path().join("missing")))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot read output folder") && err.contains("missing"));
}

#[test]
fn describe_marks_partitions_and_event_time() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    let shown = csv(&rt.block_on(session.describe("node_features")).unwrap());
    assert!(shown.starts_with("column,type,nullable,note\n"), "{shown}");
    assert!(
        shown.contains(
            "window_end,\"Timestamp(ns, \"\"UTC\"\")\",no,\"event time (decides date, hour)\""
        ),
        "{shown}"
    );
    assert!(shown.contains("date,Utf8,no,partition"), "{shown}");
    let err = rt
        .block_on(session.describe("nodes"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown table `nodes`; available tables: node_features"
    );
}

#[test]
fn the_prompt_runs_multi_line_statements_survives_errors_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    let script = "\\d\n\n\\d node_features\nSELECT count(*)\n  AS n\nFROM node_features;\nSELECT nope FROM node_features;\n\\x\nSELECT 40 + 2 AS answer; SELECT 'x;y' AS two;\n\\q\nSELECT 'after quit';\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let failed = run_prompt(
        &session,
        &rt,
        Format::Csv,
        &mut Lines(script.as_bytes()),
        &mut out,
        &mut err,
    )
    .unwrap();
    assert_eq!(failed, 2, "the bad column and the unknown command");
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(
        out.starts_with("table\nnode_features\ncolumn,type"),
        "{out}"
    );
    assert!(out.contains("\nn\n21\n"), "{out}");
    assert!(out.ends_with("answer\n42\ntwo\nx;y\n"), "{out}");
    assert!(!out.contains("after quit"), "{out}");
    assert!(err.contains("error: ") && err.contains("nope"), "{err}");
    assert!(err.contains("unknown command `\\x`"), "{err}");

    // End of input runs an unterminated last statement; tables show a row count.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut lines = Lines("SELECT 1 AS one".as_bytes());
    let failed = run_prompt(&session, &rt, Format::Table, &mut lines, &mut out, &mut err).unwrap();
    assert_eq!(failed, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("| one |") && out.ends_with("(1 row)\n"),
        "{out}"
    );

    let mut lines = Lines("".as_bytes());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let refused = run_prompt(
        &session,
        &rt,
        Format::Parquet,
        &mut lines,
        &mut out,
        &mut err,
    );
    assert!(refused.unwrap_err().to_string().contains("--output FILE"));
}

/// Piped lines whose running statements are interrupted after 300 ms, as Ctrl-C on
/// the terminal would.
struct Impatient<'a>(Lines<&'a [u8]>);

impl LineSource for Impatient<'_> {
    fn read_line(&mut self, prompt: &str) -> anyhow::Result<Line> {
        self.0.read_line(prompt)
    }

    fn interrupt(&self) -> Option<Interrupt> {
        Some(Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }))
    }
}

#[test]
fn an_interrupted_statement_is_cancelled_and_the_prompt_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    // 21^7 (1.8 billion) rows: far longer than the interrupt takes to come.
    let script = "SELECT count(*) FROM node_features a, node_features b, node_features c, \
                  node_features d, node_features e, node_features f, node_features g;\n\
                  SELECT 40 + 2 AS answer;\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut lines = Impatient(Lines(script.as_bytes()));
    let failed = run_prompt(&session, &rt, Format::Csv, &mut lines, &mut out, &mut err).unwrap();
    assert_eq!(failed, 1);
    let err = String::from_utf8(err).unwrap();
    assert_eq!(err, "error: statement cancelled (Ctrl-C)\n");
    assert_eq!(String::from_utf8(out).unwrap(), "answer\n42\n");
}

#[test]
fn empty_table_folders_are_known_tables_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    // What a job with `inputs = true` leaves when nothing was traced, and a stray folder.
    std::fs::create_dir_all(dir.path().join("syscall_latency")).unwrap();
    std::fs::create_dir_all(dir.path().join("scratch")).unwrap();
    let rt = rt();
    let session = rt.block_on(SqlSession::open(dir.path())).unwrap();
    let result = rt
        .block_on(session.run("SELECT count(*) AS n, max(latency_ns) AS m FROM syscall_latency"))
        .unwrap();
    assert_eq!(csv(&result).lines().nth(1), Some("0,"));
    let err = rt
        .block_on(session.run("SELECT * FROM scratch"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("available tables: node_features, syscall_latency"),
        "{err}"
    );
}

#[test]
fn a_damaged_file_is_named_instead_of_read() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let count = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            let session = SqlSession::open(dir.path()).await?;
            let result = session.run("SELECT count(*) FROM node_features").await?;
            anyhow::Ok(csv(&result))
        })
    };
    assert_eq!(count(&rt).unwrap(), "count(*)\n21\n");
    let file = parquet_files(&dir.path().join("node_features"))
        .pop()
        .unwrap();
    let whole = std::fs::read(&file).unwrap();
    // Cut short, but still ending in the magic number: the footer length read from
    // the new end points before the file's start.
    let mut cut = whole[..whole.len() / 2].to_vec();
    cut.extend_from_slice(&whole[whole.len() - 8..]);
    let at = cut.len() - 8;
    cut[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&file, &cut).unwrap();
    let err = count(&rt).unwrap_err().to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("footer claims"),
        "{err}"
    );
    std::fs::write(&file, b"not parquet at all").unwrap();
    let err = count(&rt).unwrap_err().to_string();
    assert!(err.contains("not a Parquet file"), "{err}");
    std::fs::write(&file, &whole).unwrap();
    assert_eq!(count(&rt).unwrap(), "count(*)\n21\n");
}

#[test]
fn rows_an_interrupted_compaction_left_twice_are_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    output(dir.path());
    let rt = rt();
    let open = || rt.block_on(SqlSession::open(dir.path())).unwrap();
    assert!(open().warnings().is_empty());
    // A crash after the merged file was renamed into place, before its input was
    // removed: the journal names both, and the input's rows are there twice.
    let input = parquet_files(&dir.path().join("node_features"))
        .pop()
        .unwrap();
    let folder = input.parent().unwrap();
    std::fs::copy(&input, folder.join("part-0-compacted.parquet")).unwrap();
    let name = input.file_name().unwrap().to_str().unwrap();
    std::fs::write(
        folder.join(".compact.journal"),
        format!(".part-0-compacted.parquet.tmp\npart-0-compacted.parquet\n{name}\n"),
    )
    .unwrap();
    let session = open();
    let warnings = session.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&folder.display().to_string())
            && warnings[0].contains("left 1 file(s)")
            && warnings[0].contains("meshflow compact"),
        "{warnings:?}"
    );
    // Before the rename (the merged file still under its temporary name) nothing
    // counts twice.
    std::fs::write(folder.join(".part-0-compacted.parquet.tmp"), b"").unwrap();
    assert!(open().warnings().is_empty());
}
