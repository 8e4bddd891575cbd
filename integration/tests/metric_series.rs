//! A real metric series (NAB's `ec2_request_latency_system_failure`, three labelled
//! system failures) imported with `meshflow import metrics`, replayed in 5-minute
//! windows and scored from its series: the labelled failures are flagged, and little
//! else once the detector has learned the series.

use std::path::{Path, PathBuf};

use meshflow_integration::meshflow;

const SERIES: &str = "realKnownCause/ec2_request_latency_system_failure.csv";

fn nab() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab")
}

/// Seconds since 1970 of a NAB timestamp (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
fn epoch(t: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(&t[..19], "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp()
}

/// The series' labelled anomaly windows, as epoch-second ranges.
fn labelled_windows() -> Vec<(i64, i64)> {
    let labels = std::fs::read_to_string(nab().join("labels/combined_windows.json")).unwrap();
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    labels[SERIES]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (epoch(w[0].as_str().unwrap()), epoch(w[1].as_str().unwrap())))
        .collect()
}

fn sql(d: &Path, query: &str) -> Vec<String> {
    let out = meshflow(d, &["sql", "--out", "out", "--format", "csv", query], true);
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().skip(1).map(str::to_string).collect()
}

#[test]
fn a_real_latency_series_alone_is_scored_and_its_failures_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = std::fs::read_to_string(nab().join("data").join(SERIES)).unwrap();
    let mut csv = String::from("timestamp,node,metric,value\n");
    let mut points = 0;
    for line in data.lines().skip(1) {
        let (t, v) = line.split_once(',').unwrap();
        csv.push_str(&format!("{}Z,ec2,latency,{v}\n", t.replace(' ', "T")));
        points += 1;
    }
    assert_eq!(points, 4032);
    std::fs::write(d.join("m.csv"), csv).unwrap();
    // One sample a window; the series has a 65-minute gap, which the default
    // forget_after (1 h) would treat as the node leaving.
    std::fs::write(
        d.join("w.toml"),
        "[window]\nlength = \"5m\"\nslide = \"5m\"\n[anomaly]\nforget_after = \"1d\"\n",
    )
    .unwrap();
    meshflow(d, &["import", "metrics", "m.csv", "--out", "trace"], true);
    meshflow(
        d,
        &["replay", "trace", "--out", "out", "--config", "w.toml"],
        true,
    );
    // 4,020 windows hold a sample (a few hold two); all but the first 121 are scored.
    let counts = sql(
        d,
        "SELECT (SELECT count(*) FROM node_features) AS windows, count(*) AS scored, min(strategy), \
         max(strategy) FROM anomaly_scores",
    );
    assert_eq!(
        counts,
        ["4020,3899,percentile/series,percentile/series"],
        "{counts:?}"
    );
    let flags: Vec<i64> = sql(
        d,
        "SELECT CAST(window_end AS BIGINT) / 1000000000 FROM anomaly_scores \
         WHERE is_anomaly ORDER BY 1",
    )
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    // A flag counts for a labelled failure when its window ends inside the failure's
    // window or within one window (5 minutes) after it.
    let windows = labelled_windows();
    assert_eq!(windows.len(), 3);
    let inside = |t: i64| windows.iter().any(|&(a, b)| t > a && t <= b + 300);
    for &(a, b) in &windows {
        assert!(
            flags.iter().any(|&t| t > a && t <= b + 300),
            "the failure from {a} to {b} is not flagged: {flags:?}"
        );
    }
    // NAB's probation: the first 15 % of the series is for learning. Past it, more
    // flags are in the labelled windows than outside (16 and 10 when written).
    let probation_end = epoch("2014-03-07 03:41:00") + 605 * 300;
    let late: Vec<i64> = flags
        .iter()
        .copied()
        .filter(|&t| t > probation_end)
        .collect();
    let false_alarms = late.iter().filter(|&&t| !inside(t)).count();
    assert!(
        false_alarms * 2 < late.len(),
        "{false_alarms} of {} flags after probation are outside the failures: {late:?}",
        late.len()
    );
}
