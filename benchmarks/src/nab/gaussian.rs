//! NAB's published `windowedGaussian` baseline, re-implemented to check the scorer.
//!
//! The score of a value is one minus the two-sided Gaussian tail probability under
//! the mean and population standard deviation of a window of previous values: the
//! window grows to 6400 values, then slides by 100 at a time.

const WINDOW: usize = 6400;
const STEP: usize = 100;

/// Mean and population standard deviation (σ = 0 becomes 1e-6).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    (mean, if std == 0.0 { 0.000_001 } else { std })
}

/// `P(X > x)` for `X ~ N(mean, std)`, mirrored below the mean.
fn tail_probability(x: f64, mean: f64, std: f64) -> f64 {
    let x = if x < mean { 2.0 * mean - x } else { x };
    let z = (x - mean) / std;
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// `x` rounded to 12 significant digits, as NAB's results files store scores (the
/// pandas of 2016 wrote floats with `%.12g`): a score of 0.999999999999998 was
/// written, and so scored, as 1.0 — which the published threshold of 1.0 relies on.
pub fn as_published(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

/// Anomaly scores in `[0, 1]` for `values`, in order, rounded as NAB published them
/// ([`as_published`]).
pub fn windowed_gaussian(values: &[f64]) -> Vec<f64> {
    let mut window: Vec<f64> = Vec::new();
    let mut step: Vec<f64> = Vec::new();
    let (mut mean, mut std) = (0.0, 1.0);
    // While the window grows, Welford's update keeps the mean and variance in
    // linear time; each slide recomputes them in two passes.
    let mut m2 = 0.0;
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        out.push(if window.is_empty() {
            0.0
        } else {
            as_published(1.0 - tail_probability(v, mean, std))
        });
        if window.len() < WINDOW {
            window.push(v);
            let n = window.len() as f64;
            let delta = v - mean;
            mean += delta / n;
            m2 += delta * (v - mean);
            let s = (m2 / n).max(0.0).sqrt();
            std = if s == 0.0 { 0.000_001 } else { s };
        } else {
            step.push(v);
            if step.len() == STEP {
                window.drain(..STEP);
                window.append(&mut step);
                (mean, std) = mean_std(&window);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_as_published() {
        assert_eq!(as_published(0.999_999_999_999_998), 1.0);
        assert_eq!(as_published(0.841_344_746_068_542_9), 0.841_344_746_069);
        assert_eq!(as_published(0.0), 0.0);
    }
}
