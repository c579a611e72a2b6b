//! Criterion benchmarks for vitals; see `benches/README.md`. The targets live in `benches/benches/`.
