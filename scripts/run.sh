#!/usr/bin/env bash
# `make run`: builds LibriAssist and serves it on this machine. LLM backends come from the
# environment (OLLAMA_URLS / OPENAI_URLS, OLLAMA_MODEL); with none the service still starts and
# says what to configure.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBRIASSIST_CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}

cargo build --release -p libriassist
exec target/release/libriassist serve "$@"
