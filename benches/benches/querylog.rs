//! Benchmarks of vitals-querylog (placeholder until the crate's issue lands).
use criterion::{criterion_group, criterion_main, Criterion};

/// Placeholder so that `cargo bench` builds.
fn placeholder(c: &mut Criterion) {
    c.bench_function("querylog/placeholder", |b| b.iter(|| std::hint::black_box(1 + 1)));
}

criterion_group!(benches, placeholder);
criterion_main!(benches);
