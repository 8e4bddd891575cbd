//! Multivariate scorers fitted with linfa on recent standardised feature vectors.
//!
//! Every scorer maps a vector to a raw score (higher is more anomalous):
//!
//! - `gmm`: negative log-likelihood under a Gaussian mixture (full covariances).
//! - `kmeans`: Euclidean distance to the nearest k-means centre.
//! - `pca`: reconstruction error (distance to the principal subspace).
//! - `robust`: no fitting, the root mean square of the vector (a baseline).
//!
//! Raw scores are then *calibrated* against the training set: 0 is the training
//! rows' median score and 1 their 99th percentile, so successive refits produce
//! comparable scores and the per-node thresholds survive a model swap.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{GaussianMixtureModel, KMeans};
use linfa_reduction::Pca;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::robust::{RobustStats, quantile};

/// Which scorer to fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Gaussian mixture, negative log-likelihood.
    Gmm,
    /// k-means, distance to the nearest centre.
    Kmeans,
    /// PCA, reconstruction error.
    Pca,
    /// No model: root mean square of the standardised vector.
    Robust,
}

impl ModelKind {
    /// The name written in the `strategy` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gmm => "gmm",
            Self::Kmeans => "kmeans",
            Self::Pca => "pca",
            Self::Robust => "robust",
        }
    }
}

/// Why a fit failed (the previous model stays in use).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Too few rows to fit.
    #[error("{rows} training rows; at least {needed} are needed")]
    TooFewRows {
        /// Rows given.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// linfa refused the data.
    #[error("{model} fit failed: {message}")]
    Fit {
        /// The model.
        model: &'static str,
        /// linfa's message.
        message: String,
    },
}

/// A fitted raw scorer.
#[derive(Clone, Debug)]
enum Raw {
    Gmm {
        log_weights: Vec<f64>,
        means: Array2<f64>,
        /// Cholesky factors `L` of each precision matrix (`P = L Lᵀ`), packed by
        /// column: column `j` of `L` from its diagonal down, for `j = 0, 1, …`.
        /// `L` is lower triangular, so the zeros above the diagonal are left out
        /// and scoring reads each column as one contiguous slice.
        precision_chol: Vec<Vec<f64>>,
        /// `ln det L` per component (half of `ln det P`).
        log_det_chol: Vec<f64>,
    },
    Kmeans {
        centroids: Array2<f64>,
    },
    Pca {
        mean: Array1<f64>,
        components: Array2<f64>,
    },
    Robust,
}

impl Raw {
    fn score(&self, x: &[f64]) -> f64 {
        match self {
            Raw::Gmm {
                log_weights,
                means,
                precision_chol,
                log_det_chol,
            } => {
                let d = x.len() as f64;
                let mut terms = Vec::with_capacity(log_weights.len());
                for k in 0..log_weights.len() {
                    let mu = means.row(k);
                    // ‖Lᵀ(x − μ)‖² = (x − μ)ᵀ P (x − μ), one column of L at a time,
                    // from its diagonal down (the entries above it are zero).
                    let mut maha = 0.0;
                    let mut packed = precision_chol[k].as_slice();
                    for j in 0..x.len() {
                        let (column, rest) = packed.split_at(x.len() - j);
                        packed = rest;
                        let s = column
                            .iter()
                            .zip(&x[j..])
                            .zip(mu.iter().skip(j))
                            .fold(0.0, |s, ((l, a), m)| s + l * (a - m));
                        maha += s * s;
                    }
                    terms.push(
                        log_weights[k] + log_det_chol[k]
                            - 0.5 * (maha + d * (2.0 * std::f64::consts::PI).ln()),
                    );
                }
                let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                -(max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln())
            }
            Raw::Kmeans { centroids } => centroids
                .rows()
                .into_iter()
                .map(|c| c.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .fold(f64::INFINITY, f64::min)
                .sqrt(),
            Raw::Pca { mean, components } => {
                let centred: Vec<f64> = x.iter().zip(mean.iter()).map(|(a, m)| a - m).collect();
                let mut residual = centred.clone();
                for c in components.rows() {
                    let proj: f64 = c.iter().zip(&centred).map(|(a, b)| a * b).sum();
                    for (r, a) in residual.iter_mut().zip(c.iter()) {
                        *r -= proj * a;
                    }
                }
                residual.iter().map(|r| r * r).sum::<f64>().sqrt()
            }
            Raw::Robust => (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt(),
        }
    }
}

/// The lower triangle of a square matrix, column by column from the diagonal down: the
/// layout `Raw::Gmm` scores from.
fn pack_lower_by_column(l: &Array2<f64>) -> Vec<f64> {
    let n = l.nrows();
    (0..n)
        .flat_map(|j| (j..n).map(move |i| l[(i, j)]))
        .collect()
}

/// Lower Cholesky factor of a symmetric positive-definite matrix, `None` if it is not.
fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[(i, j)];
            for k in 0..j {
                s -= l[(i, k)] * l[(j, k)];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[(i, j)] = s.sqrt();
            } else {
                l[(i, j)] = s / l[(j, j)];
            }
        }
    }
    Some(l)
}

/// A fitted, calibrated scorer.
#[derive(Clone, Debug)]
pub struct Model {
    kind: ModelKind,
    raw: Raw,
    calibration: RobustStats,
}

/// The training score quantile that calibrated score 1 stands for.
pub const CALIBRATION_QUANTILE: f64 = 0.99;

/// Fewest training rows a fit accepts.
pub const MIN_TRAINING_ROWS: usize = 20;

impl Model {
    /// Fits `kind` with `components` clusters (GMM, k-means) or dimensions (PCA) on
    /// `rows` (all of one length). Deterministic: linfa's fixed-seed generators.
    pub fn fit(kind: ModelKind, components: usize, rows: &[Vec<f64>]) -> Result<Self, ModelError> {
        if rows.len() < MIN_TRAINING_ROWS {
            return Err(ModelError::TooFewRows {
                rows: rows.len(),
                needed: MIN_TRAINING_ROWS,
            });
        }
        let d = rows[0].len();
        let data = Array2::from_shape_fn((rows.len(), d), |(i, j)| rows[i][j]);
        let fail = |model: &'static str, e: &dyn std::fmt::Display| ModelError::Fit {
            model,
            message: e.to_string(),
        };
        let k = components.max(1);
        let raw = match kind {
            ModelKind::Gmm => {
                let dataset = DatasetBase::from(data.clone());
                let gmm = GaussianMixtureModel::params(k.min(rows.len() / 10).max(1))
                    .reg_covariance(0.05)
                    .max_n_iterations(100)
                    .fit(&dataset)
                    .map_err(|e| fail("gmm", &e))?;
                let mut precision_chol = Vec::new();
                let mut log_det_chol = Vec::new();
                for p in gmm.precisions().outer_iter() {
                    let l = cholesky(&p.to_owned()).ok_or_else(|| {
                        fail("gmm", &"a precision matrix is not positive definite")
                    })?;
                    log_det_chol.push(l.diag().iter().map(|v| v.ln()).sum());
                    precision_chol.push(pack_lower_by_column(&l));
                }
                Raw::Gmm {
                    log_weights: gmm.weights().iter().map(|w| w.max(1e-300).ln()).collect(),
                    means: gmm.means().clone(),
                    precision_chol,
                    log_det_chol,
                }
            }
            ModelKind::Kmeans => {
                let dataset = DatasetBase::from(data.clone());
                let model = KMeans::params(k.min(rows.len()))
                    .max_n_iterations(100)
                    .fit(&dataset)
                    .map_err(|e| fail("kmeans", &e))?;
                Raw::Kmeans {
                    centroids: model.centroids().clone(),
                }
            }
            ModelKind::Pca => {
                let dataset = DatasetBase::from(data.clone());
                let pca = Pca::params(k.min(d.saturating_sub(1)).max(1))
                    .fit(&dataset)
                    .map_err(|e| fail("pca", &e))?;
                Raw::Pca {
                    mean: pca.mean().clone(),
                    components: pca.components().clone(),
                }
            }
            ModelKind::Robust => Raw::Robust,
        };
        let mut train: Vec<f64> = rows.iter().map(|r| raw.score(r)).collect();
        let median = quantile(&mut train, 0.5).unwrap_or(0.0);
        let tail = quantile(&mut train, CALIBRATION_QUANTILE).unwrap_or(median);
        let calibration = RobustStats {
            median,
            scale: (tail - median).max(1e-9 * (1.0 + median.abs())),
        };
        Ok(Self {
            kind,
            raw,
            calibration,
        })
    }

    /// The model kind.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The calibrated score of `x`: `(raw − median) / (p99 − median)` of the
    /// training rows' raw scores (clamped to ±1000).
    pub fn score(&self, x: &[f64]) -> f64 {
        let s = self.raw.score(x);
        if s.is_finite() {
            self.calibration.standardise(s)
        } else {
            super::robust::MAX_DEVIATION
        }
    }
}

/// Compresses a standardised deviation for the model: `sign(z)·ln(1 + |z|)`, so a
/// 1000σ outlier cannot dominate a fit while order is kept.
pub fn squash(z: f64) -> f64 {
    z.signum() * z.abs().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clusters of 2-D points on a deterministic lattice-like spread.
    fn training() -> Vec<Vec<f64>> {
        (0..200)
            .map(|i| {
                let a = ((i * 37) % 17) as f64 / 17.0 - 0.5;
                let b = ((i * 53) % 19) as f64 / 19.0 - 0.5;
                let centre = if i % 2 == 0 { 0.0 } else { 5.0 };
                vec![centre + a * 0.5, centre + b * 0.5 + 0.1 * a]
            })
            .collect()
    }

    #[test]
    fn every_model_scores_an_outlier_above_inliers() {
        let rows = training();
        for kind in [
            ModelKind::Gmm,
            ModelKind::Kmeans,
            ModelKind::Pca,
            ModelKind::Robust,
        ] {
            let model = Model::fit(kind, 2, &rows).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let inlier = model.score(&[0.05, 0.0]);
            let outlier = model.score(&[-20.0, 30.0]);
            assert!(outlier > inlier + 3.0, "{kind:?}: {outlier} vs {inlier}");
            assert!(outlier > 3.0, "{kind:?}: {outlier}");
        }
    }

    #[test]
    fn fits_are_deterministic() {
        let rows = training();
        for kind in [ModelKind::Gmm, ModelKind::Kmeans, ModelKind::Pca] {
            let a = Model::fit(kind, 2, &rows).unwrap();
            let b = Model::fit(kind, 2, &rows).unwrap();
            assert_eq!(a.score(&[1.0, 2.0]), b.score(&[1.0, 2.0]), "{kind:?}");
        }
    }

    #[test]
    fn too_few_rows_is_an_error() {
        assert!(matches!(
            Model::fit(ModelKind::Gmm, 2, &training()[..5]),
            Err(ModelError::TooFewRows { rows: 5, .. })
        ));
    }

    /// The mixture score read the plain way: every entry of each dense `L`, zeros
    /// above the diagonal included.
    fn dense_mixture_score(
        weights: &[f64],
        means: &[Vec<f64>],
        ls: &[Array2<f64>],
        x: &[f64],
    ) -> f64 {
        let d = x.len() as f64;
        let terms: Vec<f64> = (0..weights.len())
            .map(|k| {
                let l = &ls[k];
                let mut maha = 0.0;
                for j in 0..l.ncols() {
                    let mut s = 0.0;
                    for i in 0..l.nrows() {
                        s += l[(i, j)] * (x[i] - means[k][i]);
                    }
                    maha += s * s;
                }
                let log_det: f64 = l.diag().iter().map(|v| v.ln()).sum();
                weights[k].ln() + log_det - 0.5 * (maha + d * (2.0 * std::f64::consts::PI).ln())
            })
            .collect();
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        -(max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln())
    }

    proptest::proptest! {
        #[test]
        fn the_packed_mixture_score_equals_the_dense_one(
            n in 1usize..9,
            k in 1usize..4,
            values in proptest::collection::vec(-3.0f64..3.0, 200),
        ) {
            let mut next = values.iter().copied().cycle();
            let weights: Vec<f64> = (0..k).map(|_| next.next().unwrap().abs() + 0.1).collect();
            let means: Vec<Vec<f64>> =
                (0..k).map(|_| (0..n).map(|_| next.next().unwrap()).collect()).collect();
            let ls: Vec<Array2<f64>> = (0..k)
                .map(|_| {
                    Array2::from_shape_fn((n, n), |(i, j)| match i.cmp(&j) {
                        std::cmp::Ordering::Less => 0.0,
                        std::cmp::Ordering::Equal => next.next().unwrap().abs() + 0.5,
                        std::cmp::Ordering::Greater => next.next().unwrap(),
                    })
                })
                .collect();
            let x: Vec<f64> = (0..n).map(|_| next.next().unwrap() * 2.0).collect();
            let raw = Raw::Gmm {
                log_weights: weights.iter().map(|w| w.ln()).collect(),
                means: Array2::from_shape_fn((k, n), |(c, i)| means[c][i]),
                precision_chol: ls.iter().map(pack_lower_by_column).collect(),
                log_det_chol: ls.iter().map(|l| l.diag().iter().map(|v| v.ln()).sum()).collect(),
            };
            let want = dense_mixture_score(&weights, &means, &ls, &x);
            proptest::prop_assert_eq!(raw.score(&x).to_bits(), want.to_bits());
        }
    }

    #[test]
    fn cholesky_of_a_known_matrix() {
        let a = ndarray::array![[4.0, 2.0], [2.0, 3.0]];
        let l = cholesky(&a).unwrap();
        assert!((l[(0, 0)] - 2.0).abs() < 1e-12);
        assert!((l[(1, 0)] - 1.0).abs() < 1e-12);
        assert!((l[(1, 1)] - 2f64.sqrt()).abs() < 1e-12);
        assert!(cholesky(&ndarray::array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }

    #[test]
    fn squash_keeps_order_and_sign() {
        assert_eq!(squash(0.0), 0.0);
        assert!(squash(-3.0) < 0.0 && squash(3.0) > squash(2.0));
        assert!(squash(1000.0) < 7.0);
    }
}
