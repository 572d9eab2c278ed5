//! Benchmarks of sluice. Criterion benches live in `benches/` (`cargo bench -p sluice-benches`);
//! the client throughput benchmark against a local Tansu, side by side with librdkafka and
//! rskafka, is the `throughput` binary (`src/bin/throughput.rs`):
//! `cargo run --release -p sluice-benches --bin throughput -- --help`.
