#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS (default 20), seeded with the
# interop fixtures. Installs the nightly toolchain and cargo-fuzz when they are missing.
# Any crash, timeout, leak or over-limit allocation fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
fuzz_version=0.13.2

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo fuzz --version 2>/dev/null | grep -q "$fuzz_version"; then
  cargo install cargo-fuzz --locked --version "$fuzz_version"
fi

targets=$(cargo +nightly fuzz list)
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }
cargo +nightly fuzz build --release >/dev/null

seed_dir=protocol/tests/fixtures/kafka-python
for target in $targets; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  case $target in
    record_batch) cp "$seed_dir"/*.bin "$corpus"/ ;;
    decompress)
      # The first byte picks the codec (gzip, snappy, lz4, zstd), the rest is a records
      # section (a batch minus its 61-byte header).
      for f in "$seed_dir"/{gzip,snappy,snappy-raw,lz4,lz4-linked-blocks,zstd}.bin; do
        name=$(basename "$f" .bin)
        case $name in gzip) pick='\x00' ;; snappy*) pick='\x01' ;; lz4*) pick='\x02' ;; zstd) pick='\x03' ;; esac
        { printf "$pick"; tail -c +62 "$f"; } > "$corpus/seed-$name"
      done ;;
  esac
  echo "fuzz $target for ${seconds}s"
  # -malloc_limit_mb: one allocation over 256 MiB is a failure (decompression caps are 1 MiB
  # under fuzzing, frames are capped too). -timeout: one input may not take 10 s.
  log=fuzz/$target.log
  if ! cargo +nightly fuzz run --release "$target" "$corpus" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the reproducer is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|Done)' "$log" || true
done
echo "fuzz: $(echo $targets | wc -w) targets ran ${seconds}s each, no crash"
