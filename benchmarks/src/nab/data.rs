//! Reading the NAB corpus: the series, their labelled windows and the profiles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::score::CostMatrix;

/// One NAB series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Path relative to `data/`, e.g. `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Timestamps as written (`YYYY-MM-DD HH:MM:SS`).
    pub timestamps: Vec<String>,
    /// Values.
    pub values: Vec<f64>,
    /// Labelled anomaly windows as inclusive row ranges.
    pub windows: Vec<(usize, usize)>,
}

/// The corpus: every series with its windows, the profiles, and the number of
/// labelled windows (which makes the perfect score).
#[derive(Clone, Debug)]
pub struct Corpus {
    /// Series sorted by name.
    pub series: Vec<Series>,
    /// Profiles by name (`standard`, `reward_low_FP_rate`, `reward_low_FN_rate`).
    pub profiles: BTreeMap<String, CostMatrix>,
    /// Labelled windows in `labels/combined_windows.json`.
    pub label_windows: usize,
}

/// The first 19 characters (`YYYY-MM-DD HH:MM:SS`): windows carry microseconds, the
/// data does not.
fn second_key(t: &str) -> &str {
    t.get(..19).unwrap_or(t)
}

fn read_csv(path: &Path, name: &str) -> anyhow::Result<(Vec<String>, Vec<f64>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    for (line_no, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (t, v) = line
            .split_once(',')
            .with_context(|| format!("{name}:{}: expected `timestamp,value`", line_no + 1))?;
        let v: f64 = v
            .trim()
            .parse()
            .with_context(|| format!("{name}:{}: value `{v}` is not a number", line_no + 1))?;
        timestamps.push(t.trim().to_string());
        values.push(v);
    }
    Ok((timestamps, values))
}

/// Row range `[first ≥ start, last ≤ end]` of a labelled window.
fn window_rows(timestamps: &[String], start: &str, end: &str) -> Option<(usize, usize)> {
    let (start, end) = (second_key(start), second_key(end));
    let left = timestamps.iter().position(|t| second_key(t) >= start)?;
    let right = timestamps.iter().rposition(|t| second_key(t) <= end)?;
    (left <= right).then_some((left, right))
}

/// Loads the corpus under `root` (the folder with `data/`, `labels/`, `config/`).
pub fn load(root: &Path) -> anyhow::Result<Corpus> {
    let json = |rel: &str| -> anyhow::Result<serde_json::Value> {
        let path = root.join(rel);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is the NAB path right?)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let labels = json("labels/combined_windows.json")?;
    let labels = labels
        .as_object()
        .context("combined_windows.json: expected an object")?;
    let mut label_windows = 0;
    let mut series = Vec::new();
    for (name, windows) in labels {
        let windows = windows
            .as_array()
            .with_context(|| format!("combined_windows.json: `{name}` is not a list"))?;
        label_windows += windows.len();
        let path: PathBuf = root.join("data").join(name);
        let (timestamps, values) = read_csv(&path, name)?;
        let mut rows = Vec::new();
        for w in windows {
            let pair = w
                .as_array()
                .filter(|p| p.len() == 2)
                .and_then(|p| Some((p[0].as_str()?, p[1].as_str()?)))
                .with_context(|| format!("combined_windows.json: `{name}`: bad window {w}"))?;
            let range = window_rows(&timestamps, pair.0, pair.1)
                .with_context(|| format!("{name}: window {pair:?} covers no row of the series"))?;
            rows.push(range);
        }
        series.push(Series {
            name: name.clone(),
            timestamps,
            values,
            windows: rows,
        });
    }
    series.sort_by(|a, b| a.name.cmp(&b.name));
    let profiles_json = json("config/profiles.json")?;
    let mut profiles = BTreeMap::new();
    for (name, p) in profiles_json
        .as_object()
        .context("profiles.json: expected an object")?
    {
        let weight = |key: &str| {
            p["CostMatrix"][key]
                .as_f64()
                .with_context(|| format!("profiles.json: {name}.CostMatrix.{key} missing"))
        };
        profiles.insert(
            name.clone(),
            CostMatrix {
                tp_weight: weight("tpWeight")?,
                fp_weight: weight("fpWeight")?,
                fn_weight: weight("fnWeight")?,
            },
        );
    }
    Ok(Corpus {
        series,
        profiles,
        label_windows,
    })
}
