#!/usr/bin/env bash
# Builds meshflow in release (in its own target folder, so the dev build used by the
# tests is left alone) and runs the end-to-end replay benchmark.
# Usage: benchmarks/run.sh NODES DURATION WORKERS   (defaults: 1000 10m 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HOME/.cache/meshflow-release}"
cargo build --release -p meshflow -p meshflow-benchmarks --bins
"$CARGO_TARGET_DIR/release/meshflow-bench" replay --nodes "${1:-1000}" --duration "${2:-10m}" \
  --workers "${3:-1}" --dir "${BENCH_DIR:-/tmp/meshflow-bench}"
