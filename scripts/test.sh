#!/usr/bin/env bash
# The one test command: README's Quick start and .ci/run both call this.
# It installs what it needs on a fresh machine (Python interop peers, cargo-fuzz, the nightly
# toolchain's fuzz runner), runs every check, and stops at the first failure. Nothing is
# skipped: a step that cannot run fails the whole command.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "system packages and the local broker (Tansu)"
scripts/test-deps.sh
scripts/broker.sh install >/dev/null

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The workspace build turns on the client's tls and sasl features (the CLI wants them); check
# the client as a library user gets it by default too.
cargo clippy -p sluice-client --all-targets --locked -- -D warnings

step "no C in the library crates and the CLI"
scripts/check-pure-rust.sh

step "unit, property and integration tests (including benches in test mode)"
# The kafka-python interop test leaves the batches sluice wrote here for the next step.
interop_out=$root/target/interop/sluice-written
SLUICE_INTEROP_OUT=$interop_out cargo test --workspace --all-targets --locked

step "interop with kafka-python (batches sluice wrote, read by another implementation)"
scripts/python-env.sh
"$root/.venv/bin/python" scripts/interop/kafka_python_batches.py verify "$interop_out"

step "fuzz every decoder briefly"
scripts/fuzz.sh "${SLUICE_FUZZ_SECONDS:-20}"

step "all checks passed in $(( $(date +%s) - started )) s"
