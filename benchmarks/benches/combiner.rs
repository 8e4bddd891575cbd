//! Microbenchmark: folding flows into the feature combiner and flushing it.

// criterion_main! generates a `main` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshflow_operators::features::FeatureCombiner;
use meshflow_operators::window::WindowSpec;

fn combiner(c: &mut Criterion) {
    let spec = WindowSpec::new(1_000_000_000, 10_000_000_000, 1_000_000_000).unwrap();
    let nodes = 10_000u64;
    let per_epoch = 60_000u64;
    let mut group = c.benchmark_group("combiner");
    group.throughput(Throughput::Elements(per_epoch * 10));
    group.bench_function("10k nodes, 60k flows/epoch, 10 epochs", |b| {
        b.iter(|| {
            let mut comb = FeatureCombiner::new(spec);
            let mut updates = 0u64;
            for epoch in 0..10u64 {
                for i in 0..per_epoch {
                    let src = i % nodes;
                    let dst = (src * 7 + i / nodes + 1) % nodes;
                    comb.add_flow(epoch, src, dst, 1000 + i % 300, 3);
                }
                comb.flush(epoch + 1, |_, _, _| updates += 1);
            }
            updates
        })
    });
    group.finish();
}

criterion_group!(benches, combiner);
criterion_main!(benches);
