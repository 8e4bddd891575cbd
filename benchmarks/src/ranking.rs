//! Ranking quality of scores against binary labels: ROC-AUC and average precision.
//!
//! Both treat tied scores as one threshold, as scikit-learn does: ROC-AUC counts a
//! tied positive-negative pair as half right (the Mann-Whitney form with average
//! ranks), and average precision steps recall only where the score changes.

/// Area under the ROC curve of `(score, is_positive)` pairs; `None` without both a
/// positive and a negative.
pub fn roc_auc(items: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = items.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|x| x.1).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of the positives' average ranks (1-based), ties sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * sorted[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Average precision (area under the precision-recall step curve) of `(score,
/// is_positive)` pairs, highest scores first; `None` without a positive.
pub fn average_precision(items: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = items.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = sorted.iter().filter(|x| x.1).count() as f64;
    if positives == 0.0 {
        return None;
    }
    let (mut ap, mut tp, mut seen, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        tp += sorted[i..j].iter().filter(|x| x.1).count() as f64;
        seen += (j - i) as f64;
        let recall = tp / positives;
        ap += (recall - last_recall) * (tp / seen);
        last_recall = recall;
        i = j;
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("defined");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn perfect_reversed_and_undefined_rankings() {
        let perfect = [(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        close(roc_auc(&perfect), 1.0);
        close(average_precision(&perfect), 1.0);
        let reversed = [(0.1, true), (0.2, true), (0.8, false), (0.9, false)];
        close(roc_auc(&reversed), 0.0);
        // Positives found at ranks 3 and 4: precision 1/3 then 2/4, each for half the recall.
        close(average_precision(&reversed), 0.5 * (1.0 / 3.0) + 0.5 * 0.5);
        assert_eq!(roc_auc(&[(1.0, true)]), None);
        assert_eq!(average_precision(&[(1.0, false)]), None);
    }

    #[test]
    fn hand_computed_cases_with_and_without_ties() {
        // scikit-learn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75,
        // average_precision_score(...) = 0.8333...
        let items = [(0.1, false), (0.4, false), (0.35, true), (0.8, true)];
        close(roc_auc(&items), 0.75);
        close(average_precision(&items), 0.5 * 1.0 + 0.5 * (2.0 / 3.0));
        // All tied: AUC 0.5, AP the positive rate.
        let tied = [(1.0, true), (1.0, false), (1.0, false), (1.0, true)];
        close(roc_auc(&tied), 0.5);
        close(average_precision(&tied), 0.5);
        // One tie across classes at the top: the pair counts half.
        let items = [(0.9, true), (0.9, false), (0.5, true), (0.1, false)];
        // Pairs (p, n): (0.9,0.9) half, (0.9,0.1) 1, (0.5,0.9) 0, (0.5,0.1) 1 -> 2.5 / 4.
        close(roc_auc(&items), 0.625);
        // Thresholds: 0.9 -> P 1/2, R 1/2; 0.5 -> P 2/3, R 1.
        close(average_precision(&items), 0.5 * 0.5 + 0.5 * (2.0 / 3.0));
    }
}
