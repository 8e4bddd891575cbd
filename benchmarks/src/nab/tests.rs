//! Checks of the NAB scorer against NAB's published results, on the corpus in
//! `../shared/datasets/nab`.

use std::path::PathBuf;

use super::*;

fn nab_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab")
}

fn published(detector: &str, profile: &str) -> f64 {
    let path = nab_root().join("results/final_results.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("final_results.json"))
            .expect("json");
    json[detector][profile].as_f64().expect("published score")
}

fn corpus() -> Corpus {
    data::load(&nab_root()).expect("the NAB corpus in ../shared/datasets/nab")
}

#[test]
fn corpus_has_58_series_and_116_windows() {
    let c = corpus();
    assert_eq!(c.series.len(), 58);
    assert_eq!(c.label_windows, 116);
    assert_eq!(c.series.iter().map(|s| s.windows.len()).sum::<usize>(), 116);
    assert_eq!(c.profiles.len(), 3);
}

#[test]
fn null_scores_0_and_perfect_scores_100() {
    let c = corpus();
    let null: Vec<Vec<f64>> = c.series.iter().map(|s| vec![0.0; s.values.len()]).collect();
    let perfect: Vec<Vec<f64>> = c
        .series
        .iter()
        .map(|s| {
            let mut v = vec![0.0; s.values.len()];
            for &(left, _) in &s.windows {
                v[left] = 1.0;
            }
            v
        })
        .collect();
    for (profile, r) in evaluate(&c, &null, Threshold::Fixed(0.5)) {
        assert_eq!(r.normalised, 0.0, "{profile}");
    }
    for (profile, r) in evaluate(&c, &perfect, Threshold::Fixed(0.5)) {
        assert!(
            (r.normalised - 100.0).abs() < 1e-9,
            "{profile}: {}",
            r.normalised
        );
    }
}

/// NAB's `windowedGaussian` at its published threshold (1.0) scores what NAB
/// published for it: 39.65 standard, 20.87 low-FP, 47.41 low-FN; NAB's own per-run
/// totals (`results/windowedGaussian/windowedGaussian_standard_scores.csv`) count
/// 521 true-positive and 409 false-positive rows.
#[test]
fn windowed_gaussian_reproduces_its_published_scores() {
    let c = corpus();
    let scores: Vec<Vec<f64>> = c
        .series
        .iter()
        .map(|s| gaussian::windowed_gaussian(&s.values))
        .collect();
    let results = evaluate(&c, &scores, Threshold::Fixed(1.0));
    for (profile, r) in &results {
        let expected = published("windowedGaussian", profile);
        assert!(
            (r.normalised - expected).abs() < 0.05,
            "{profile}: {} vs published {expected}",
            r.normalised
        );
    }
    let standard = results["standard"];
    assert_eq!((standard.tp, standard.fp), (521, 409));
}
