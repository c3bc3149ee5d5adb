//! Benchmarks of Spool; see `benches/`.
