//! Microbenchmark: one step of a threshold learner (a value's deviation, then the
//! value added), with its history full, as the anomaly scorer does for every node,
//! feature and window.

// criterion_main! generates a `main` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use meshflow_operators::anomaly::threshold::{ThresholdLearner, ThresholdParams};

/// A deterministic noisy series around 1000.
fn value(i: u64) -> f64 {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    1000.0 + ((h >> 40) % 1000) as f64 / 10.0
}

fn learner(c: &mut Criterion) {
    let mut group = c.benchmark_group("learner step");
    for history in [60usize, 1_000, 10_000] {
        let mut learner = ThresholdLearner::new(ThresholdParams::default(), history);
        let mut i = 0u64;
        for _ in 0..history {
            learner.push(value(i));
            i += 1;
        }
        group.bench_function(BenchmarkId::new("history", history), |b| {
            b.iter(|| {
                let x = value(i);
                i += 1;
                let d = learner.deviation_with_floor(x, 1.0);
                learner.push(x);
                d
            })
        });
    }
    group.finish();
}

criterion_group!(benches, learner);
criterion_main!(benches);
