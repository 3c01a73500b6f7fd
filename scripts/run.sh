#!/usr/bin/env bash
# `make run`: builds LibriAssist, indexes the example bookstore FAQ and serves it through Envoy
# and the edge filter on http://127.0.0.1:8080/ (the origin alone listens on 127.0.0.1:8000).
#
# LLM backends come from the environment (OLLAMA_URLS / OPENAI_URLS, OLLAMA_MODEL). With none,
# answers are extractive: the best passages of the documents, with their sources.
# Documents: LIBRIASSIST_DOCS (default the example FAQ); index: LIBRIASSIST_INDEX.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBRIASSIST_CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}
DOCS=${LIBRIASSIST_DOCS:-examples/faq-librairie.jsonl}
export LIBRIASSIST_INDEX=${LIBRIASSIST_INDEX:-$LIBRIASSIST_CACHE/index/examples}
# envoy/envoy.yaml expects the origin on 127.0.0.1:8000 and serves 127.0.0.1:8080.
export LIBRIASSIST_LISTEN=127.0.0.1:8000

cargo build --release -p libriassist
cargo build --release -p libriassist-filter --target wasm32-wasip1
bin=target/release/libriassist

"$bin" ingest --input "$DOCS" --out "$LIBRIASSIST_INDEX"

pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

"$bin" serve &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs -o /dev/null http://127.0.0.1:8000/healthz && break
    sleep 0.1
done

"$LIBRIASSIST_CACHE/envoy" -c envoy/envoy.yaml --log-level warn &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs -o /dev/null http://127.0.0.1:8080/healthz && break
    sleep 0.1
done

echo
echo "LibriAssist is ready: open http://127.0.0.1:8080/ (through Envoy; origin alone: http://127.0.0.1:8000/)"
echo "Stop with Ctrl-C."
wait -n "${pids[@]}"
