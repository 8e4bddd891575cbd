//! meshflow's metric-series detector ([`SeriesDetector`], the one the anomaly scorer
//! uses for metric series) as a univariate NAB detector: its strengths, turned into
//! NAB scores with one alarm per event ([`scores`]).

use meshflow_operators::anomaly::series::SeriesDetector;
pub use meshflow_operators::anomaly::series::SeriesParams;

/// Values after a flag whose score is held at 0 by default (the measured best).
pub const SUPPRESS: usize = 35;

/// The strengths of `values` (sampled at `timestamps`), in order.
pub fn strengths(values: &[f64], timestamps: &[String], p: &SeriesParams) -> Vec<f64> {
    let mut detector = SeriesDetector::new(p, step_secs(timestamps));
    values.iter().map(|&x| detector.strength(x)).collect()
}

/// Anomaly scores in `[0, 1)` from strengths: a flag (`S > k`) scores above 0.5 and
/// anything else at most 0.25, so "score ≥ 0.5" is exactly the detector's own flag
/// even when `S` ties `k` (common on quantised data); after a flag, scores are held at
/// 0 for `suppress` points.
pub fn scores(strengths: &[f64], k: f64, suppress: usize) -> Vec<f64> {
    let mut last_flag: Option<usize> = None;
    strengths
        .iter()
        .enumerate()
        .map(|(t, &s)| {
            if last_flag.is_some_and(|f| t - f <= suppress) {
                0.0
            } else if s > k {
                last_flag = Some(t);
                s / (k + s)
            } else {
                0.5 * s / (k + s)
            }
        })
        .collect()
}

/// The sampling interval in seconds of NAB timestamps (`YYYY-MM-DD HH:MM:SS`), from the
/// span of the first 11; `None` when they cannot be read.
pub fn step_secs(timestamps: &[String]) -> Option<f64> {
    let secs = |t: &String| {
        chrono::NaiveDateTime::parse_from_str(t.get(..19)?, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|d| d.and_utc().timestamp())
    };
    let (first, last) = (secs(timestamps.first()?)?, secs(timestamps.get(10)?)?);
    Some((last - first) as f64 / 10.0)
}

/// Anomaly scores in `[0, 1)` for `values` (sampled at `timestamps`), in order, with
/// the scores after a flag held at 0 for [`SUPPRESS`] values.
pub fn detect(values: &[f64], timestamps: &[String], p: &SeriesParams) -> Vec<f64> {
    scores(&strengths(values, timestamps, p), p.k, SUPPRESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(n: usize) -> Vec<String> {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        (0..n)
            .map(|i| {
                (start + chrono::Duration::minutes(5 * i as i64))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_spike_in_noise_is_flagged_once() {
        let values: Vec<f64> = (0..2000).map(|i| ((i * 7919) % 101) as f64).collect();
        let mut spiked = values.clone();
        spiked[1500] = 1e4;
        let p = SeriesParams::default();
        let scores = detect(&spiked, &minutes(2000), &p);
        assert!(scores[1500] > 0.5, "{}", scores[1500]);
        assert!(scores[..120].iter().all(|&s| s == 0.0));
        assert!(scores[1501..=1500 + SUPPRESS].iter().all(|&s| s == 0.0));
        assert!(scores.iter().all(|s| (0.0..1.0).contains(s)));
        // The same series without the spike is hardly ever flagged.
        let quiet = detect(&values, &minutes(2000), &p);
        let flags = quiet.iter().filter(|&&s| s >= 0.5).count();
        assert!(flags <= 5, "{flags} flags on noise");
    }

    #[test]
    fn a_missing_daily_bump_is_seen_by_the_seasonal_feature() {
        // 5-minute samples: 288 a day, a bump from 12:00 to 13:00 every day but day 20.
        let day = 288;
        let values: Vec<f64> = (0..day * 25)
            .map(|i| {
                let bump = (144..156).contains(&(i % day)) && i / day != 20;
                if bump { 100.0 } else { 0.0 }
            })
            .collect();
        let p = SeriesParams::default();
        let scores = detect(&values, &minutes(values.len()), &p);
        let flagged = |range: std::ops::Range<usize>| range.into_iter().any(|i| scores[i] >= 0.5);
        assert!(flagged(20 * day + 144..20 * day + 156));
        assert!(!flagged(22 * day..25 * day));
        assert_eq!(step_secs(&minutes(20)), Some(300.0));
    }
}
