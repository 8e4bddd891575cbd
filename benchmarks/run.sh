#!/usr/bin/env bash
# Builds meshflow for benchmarking and runs the end-to-end replay benchmark.
#
# Dependencies are built as in the dev profile (opt-level 2); meshflow's own crates are
# overridden to opt-level 3 without debug assertions or overflow checks. Not yet run to
# completion: in the first try cargo rebuilt datafusion (about 20 min on 2 cores) before
# benchmarking, so allow for that. Usage: benchmarks/run.sh NODES DURATION WORKERS
set -euo pipefail
cd "$(dirname "$0")/.."
overrides=()
for crate in meshflow meshflow-schemas meshflow-sources meshflow-operators meshflow-sinks meshflow-benchmarks; do
  overrides+=(--config "profile.dev.package.$crate.opt-level=3"
              --config "profile.dev.package.$crate.debug-assertions=false"
              --config "profile.dev.package.$crate.overflow-checks=false")
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meshflow-target}"
cargo build --workspace --tests "${overrides[@]}"
"$CARGO_TARGET_DIR/debug/meshflow-bench" replay --nodes "${1:-1000}" --duration "${2:-10m}" --workers "${3:-1}" --dir "${BENCH_DIR:-/tmp/meshflow-bench}"
