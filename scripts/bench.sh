#!/usr/bin/env bash
# Reproduces every number of the serving sections of docs/BENCHMARKS.md (pool overhead, wait
# vs users, capacity limit, plain balancers, chaos) in one run on this machine, and rewrites
# only the generated blocks of those sections plus docs/bench/ (results.json, results.md and
# the SVG charts).
#
# usage: scripts/bench.sh [extra `libriassist bench all` flags]
#   BENCH_TIME_SCALE  field time multiplier (default 0.1: a 5 s answer takes 0.5 s, and the
#                     whole suite about ten minutes on 2 cores)
#
# The bench starts every process it needs (simulators, Redis, 2 origins, Envoy + filter) as its
# own children on loopback ports and ends them by PID. Run it on a quiet machine: shared cores
# slow every component alike, so the tables report ratios measured within the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBRIASSIST_CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}

# Envoy, Redis and the embedding model (the semantic cache), idempotently.
scripts/setup.sh run
cargo build -p libriassist-filter --target wasm32-wasip1 --release
cargo build --release -p libriassist --bin libriassist

exec target/release/libriassist bench all \
    --time-scale "${BENCH_TIME_SCALE:-0.1}" \
    --out docs/bench \
    --update-docs docs/BENCHMARKS.md \
    "$@"
