#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests (origin with simulators, real Redis, real
# llama-server, the wasm filter in wasmtime and in a real Envoy), then the browser tests and the
# deployment checks. Called by `make test` after scripts/setup.sh has installed what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBRIASSIST_CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}

# The filter is built for wasm first: the harness and the Envoy tests load the .wasm.
cargo build -p libriassist-filter --target wasm32-wasip1 --release
cargo build --workspace --all-targets

# Process-level tests start several servers each; two at a time suits 2 cores.
cargo nextest run --workspace --no-fail-fast --test-threads 2

LIBRIASSIST_BIN="$PWD/target/debug/libriassist" tests/browser/run.sh
# The metrics test above saved a scrape of a fresh origin: the dashboard may only query
# families that exist there.
scripts/validate-deploy.sh --metrics target/tmp/origin-metrics-fresh.prom
